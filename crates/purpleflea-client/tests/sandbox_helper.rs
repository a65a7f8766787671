//! `purpleflea_client::sandbox`: register and fund an agent on a real sandbox in one call.

mod common;

use purpleflea_client::trading::{OpenPosition, Side};
use purpleflea_client::{ErrorKind, Service, sandbox};
use purpleflea_sandbox::SandboxConfig;

#[tokio::test]
async fn a_funded_trader_can_open_a_position_that_an_unfunded_one_cannot() {
    let handle = common::sandbox(SandboxConfig::for_tests(61)).await;
    let order = OpenPosition::new("BTC", Side::Long, 100.0);

    let unfunded = sandbox::register_and_fund_trading(&handle.url(), 0.0)
        .await
        .expect("registered");
    let err = unfunded
        .client
        .trading()
        .open(&order)
        .await
        .expect_err("no margin");
    assert_eq!(err.kind(), ErrorKind::InsufficientMargin);

    let trader = sandbox::register_and_fund_trading(&format!("{}/", handle.url()), 1_000.0)
        .await
        .expect("registered and funded");
    assert!(trader.api_key.starts_with("sk_trade_"));
    assert!(!format!("{trader:?}").contains(&trader.api_key));
    let position = trader.client.trading().open(&order).await.expect("opened");
    assert!(!position.position_id.is_empty());
}

#[tokio::test]
async fn a_refused_deposit_is_an_error_with_its_status() {
    let handle = common::sandbox(SandboxConfig::for_tests(62)).await;
    let err = sandbox::deposit(&handle.url(), Service::Trading, "ag_nobody", 10.0)
        .await
        .expect_err("unknown agent");
    assert!(err.status().is_some_and(|s| s >= 400), "{err:?}");
}
