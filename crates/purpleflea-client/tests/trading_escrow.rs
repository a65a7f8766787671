//! Trading and escrow through the client against the sandbox: every method, and every
//! documented error code mapped to its kind (slippage and insufficient margin apart; escrow
//! timeout under the manual clock).

mod common;

use std::time::Duration;

use common::{casino_agent, client, expect_kind, keyed, sandbox, set_market, trading_agent};
use purpleflea_client::escrow::{CreateEscrow, EscrowStatus};
use purpleflea_client::trading::{
    LimitOrderRequest, OpenPosition, RiskSettingsUpdate, Side, TradingRegisterRequest,
};
use purpleflea_client::{ErrorKind, Service};
use purpleflea_sandbox::SandboxConfig;

#[tokio::test]
async fn trading_flow_and_error_kinds() {
    let handle = sandbox(SandboxConfig::for_tests(21)).await;
    let anon = client(&handle);
    let t = anon.trading();

    let markets = t.markets().await.expect("markets");
    assert!(markets.iter().any(|m| m.coin == "BTC"));
    assert!(markets.total_markets.unwrap_or(0) > 5);
    let btc = t.market("BTC").await.expect("market");
    assert!(btc.price.unwrap_or(0.0) > 0.0);
    let eth = t.price("ETH").await.expect("price");
    assert!(eth.price.unwrap_or(0.0) > 0.0);
    expect_kind(
        t.market("NOPE").await,
        ErrorKind::Api,
        Some("market_not_found"),
    );

    // A new agent has no margin: insufficient margin, not slippage.
    let (c, agent) = trading_agent(&handle, &anon, 0.0).await;
    let tr = c.trading();
    let account = tr.account().await.expect("account");
    assert_eq!(account.tier.as_deref(), Some("free"));
    let e = expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, 1_000.0))
            .await,
        ErrorKind::InsufficientMargin,
        Some("trade_failed"),
    );
    assert_eq!(e.context().asset.as_deref(), Some("BTC"));
    handle
        .sandbox()
        .deposit(purpleflea_sandbox::Service::Trading, &agent, 10_000.0)
        .expect("deposit");

    let opened = tr
        .open(&OpenPosition::new("BTC", Side::Long, 1_000.0).leverage(3.0))
        .await
        .expect("open");
    assert_eq!(opened.side, Some(Side::Long));
    assert_eq!(opened.leverage, Some(3.0));
    let positions = tr.positions().await.expect("positions");
    assert_eq!(positions.positions.len(), 1);
    assert_eq!(positions.positions[0].position_id, opened.position_id);

    let sl = tr
        .stop_loss(&opened.position_id, 1.0)
        .await
        .expect("stop loss");
    assert_eq!(sl.status.as_deref(), Some("pending"));
    let tp = tr
        .take_profit(&opened.position_id, 1e9)
        .await
        .expect("take profit");
    assert_eq!(tp.position_id.as_deref(), Some(opened.position_id.as_str()));
    expect_kind(
        tr.stop_loss(&opened.position_id, -1.0).await,
        ErrorKind::OrderRejected,
        Some("invalid_trigger_price"),
    );
    expect_kind(
        tr.stop_loss("pos_missing", 1.0).await,
        ErrorKind::Api,
        Some("position_not_found"),
    );

    let closed = tr.close(&opened.position_id).await.expect("close");
    assert_eq!(closed.status.as_deref(), Some("closed"));
    let pnl = closed.pnl.expect("pnl");
    expect_kind(
        tr.stop_loss(&opened.position_id, 1.0).await,
        ErrorKind::OrderRejected,
        Some("position_not_open"),
    );
    expect_kind(
        tr.close(&opened.position_id).await,
        ErrorKind::Api,
        Some("position_not_found"),
    );
    let all = tr.all_positions().await.expect("all positions");
    assert_eq!(all.positions[0].status.as_deref(), Some("closed"));
    assert_eq!(all.positions[0].size_usd, Some(1_000.0));
    let history = tr.history(Some(10)).await.expect("history");
    assert_eq!(history.trades.len(), 2);
    assert_eq!(history.trades[0].realized_pnl, Some(pnl));

    // Slippage: the book is wider than the ±0.5% band.
    set_market(&handle, "SOL", serde_json::json!({"half_spread_bps": 80})).await;
    let e = expect_kind(
        tr.open(&OpenPosition::new("SOL", Side::Short, 500.0)).await,
        ErrorKind::SlippageLimit,
        Some("trade_failed"),
    );
    assert!(
        e.message()
            .is_some_and(|m| m.starts_with("Order not filled"))
    );
    assert_eq!(e.context().side.as_deref(), Some("short"));
    let eth_pos = tr
        .open(&OpenPosition::new("ETH", Side::Short, 500.0))
        .await
        .expect("open eth");
    set_market(&handle, "ETH", serde_json::json!({"half_spread_bps": 80})).await;
    expect_kind(
        tr.close(&eth_pos.position_id).await,
        ErrorKind::SlippageLimit,
        Some("close_failed"),
    );
    set_market(&handle, "ETH", serde_json::json!({"half_spread_bps": 0.5})).await;
    tr.close(&eth_pos.position_id).await.expect("close eth");

    // Other refusals.
    expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, 20_000.0))
            .await,
        ErrorKind::OrderRejected,
        Some("position_too_large"),
    );
    expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, 100.0).leverage(0.5))
            .await,
        ErrorKind::OrderRejected,
        Some("invalid_leverage"),
    );
    expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, -5.0)).await,
        ErrorKind::OrderRejected,
        Some("invalid_size"),
    );
    expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, 5.0)).await,
        ErrorKind::OrderRejected,
        Some("trade_failed"),
    );
    expect_kind(
        tr.open(&OpenPosition::new("xyz:COIN", Side::Long, 100.0).leverage(10.0))
            .await,
        ErrorKind::OrderRejected,
        Some("trade_failed"),
    );
    expect_kind(
        tr.open(&OpenPosition::new("NOPE", Side::Long, 100.0)).await,
        ErrorKind::OrderRejected,
        Some("trade_failed"),
    );

    // Limit orders.
    let price = tr.price("BTC").await.expect("price").price.unwrap_or(1.0);
    let limit = |size_usd: f64, limit_price: f64, coin: &str| LimitOrderRequest {
        coin: coin.into(),
        side: Side::Long,
        size_usd,
        limit_price,
        leverage: None,
    };
    let order = tr
        .limit(&limit(100.0, price * 0.5, "BTC"))
        .await
        .expect("limit");
    assert_eq!(order.status.as_deref(), Some("pending"));
    let orders = tr.limit_orders().await.expect("orders");
    assert!(orders.pending.iter().any(|o| o.order_id == order.order_id));
    let check = tr.check_limits().await.expect("check");
    assert!(check.triggered.is_empty());
    let cancelled = tr
        .cancel_limit_order(&order.order_id)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status.as_deref(), Some("cancelled"));
    expect_kind(
        tr.cancel_limit_order(&order.order_id).await,
        ErrorKind::OrderRejected,
        Some("not_pending"),
    );
    expect_kind(
        tr.limit(&limit(100.0, -1.0, "BTC")).await,
        ErrorKind::OrderRejected,
        Some("invalid_price"),
    );
    expect_kind(
        tr.limit(&limit(50_000.0, 1.0, "BTC")).await,
        ErrorKind::OrderRejected,
        Some("too_large"),
    );
    expect_kind(
        tr.limit(&limit(100.0, 1.0, "NOPE")).await,
        ErrorKind::OrderRejected,
        Some("unknown_coin"),
    );
    for _ in 0..10 {
        tr.limit(&limit(100.0, 1.0, "BTC"))
            .await
            .expect("pending limit");
    }
    expect_kind(
        tr.limit(&limit(100.0, 1.0, "BTC")).await,
        ErrorKind::OrderRejected,
        Some("limit_reached"),
    );

    // Risk settings and the daily loss gate (the close above realised a loss or a gain).
    let settings = tr.risk_settings().await.expect("risk settings");
    assert_eq!(settings.max_daily_loss_usd, None);
    let updated = tr
        .set_risk_settings(&RiskSettingsUpdate {
            max_daily_loss_usd: Some(0.001),
            ..Default::default()
        })
        .await
        .expect("set risk");
    assert_eq!(updated.max_daily_loss_usd, Some(0.001));
    // An immediate round trip pays the spread twice, so today's realised PnL is negative.
    let realized: f64 = tr
        .history(None)
        .await
        .expect("history")
        .trades
        .iter()
        .filter_map(|t| t.realized_pnl)
        .sum();
    assert!(
        pnl < 0.0 && realized < -0.001,
        "pnl {pnl}, realised today {realized}"
    );
    expect_kind(
        tr.open(&OpenPosition::new("BTC", Side::Long, 100.0)).await,
        ErrorKind::RiskLimitBreach,
        Some("daily_loss_limit_reached"),
    );
    expect_kind(
        tr.set_risk_settings(&RiskSettingsUpdate {
            max_leverage: Some(-1.0),
            ..Default::default()
        })
        .await,
        ErrorKind::Api,
        Some("invalid_request"),
    );

    // A wallet without its signing key cannot execute; an unknown key is invalid_key.
    let reg = t
        .register(&TradingRegisterRequest {
            hl_wallet_address: Some(format!("0x{}", "a".repeat(40))),
            ..Default::default()
        })
        .await
        .expect("register with wallet");
    let nokey = keyed(&anon, Service::Trading, &reg.api_key);
    expect_kind(
        nokey
            .trading()
            .open(&OpenPosition::new("BTC", Side::Long, 100.0))
            .await,
        ErrorKind::OrderRejected,
        Some("wallet_not_configured"),
    );
    let wrong = keyed(
        &anon,
        Service::Trading,
        &format!("sk_trade_{}", "0".repeat(48)),
    );
    expect_kind(
        wrong.trading().positions().await,
        ErrorKind::Unauthorized,
        Some("invalid_key"),
    );
}

#[tokio::test]
async fn escrow_flow_and_error_kinds() {
    let handle = sandbox(SandboxConfig::for_tests(22)).await;
    let anon = client(&handle);
    let (creator, creator_id) = casino_agent(&handle, &anon, 100.0).await;
    let (party, party_id) = casino_agent(&handle, &anon, 0.0).await;

    let before = creator
        .casino()
        .balance()
        .await
        .expect("balance")
        .balance_usd;
    let e1 = creator
        .escrow()
        .create(&CreateEscrow::new(10.0, "write the report", &party_id))
        .await
        .expect("create");
    assert_eq!(e1.status, EscrowStatus::Funded);
    assert_eq!(e1.creator_id.as_deref(), Some(creator_id.as_str()));
    let after = creator
        .casino()
        .balance()
        .await
        .expect("balance")
        .balance_usd;
    assert!((before - after - 10.0).abs() < 1e-6, "debited at create");

    let seen = creator.escrow().get(&e1.escrow_id).await.expect("get");
    assert!(!seen.events.is_empty(), "participants see events");
    let public = anon.escrow().get(&e1.escrow_id).await.expect("public get");
    assert!(public.events.is_empty());

    let e = expect_kind(
        creator.escrow().complete(&e1.escrow_id).await,
        ErrorKind::Dispute,
        Some("forbidden"),
    );
    assert_eq!(
        e.context().escrow_id.as_deref(),
        Some(e1.escrow_id.as_str())
    );
    let done = party
        .escrow()
        .complete(&e1.escrow_id)
        .await
        .expect("complete");
    assert_eq!(done.status, EscrowStatus::Completed);
    expect_kind(
        party.escrow().release(&e1.escrow_id).await,
        ErrorKind::Dispute,
        Some("forbidden"),
    );
    let released = creator
        .escrow()
        .release(&e1.escrow_id)
        .await
        .expect("release");
    assert_eq!(released.status, EscrowStatus::Released);
    assert_eq!(released.amount_released, Some(9.9));
    expect_kind(
        creator.escrow().release(&e1.escrow_id).await,
        ErrorKind::Dispute,
        Some("invalid_status"),
    );

    let e2 = creator
        .escrow()
        .create(&CreateEscrow::new(5.0, "second job", &party_id))
        .await
        .expect("create");
    let disputed = party
        .escrow()
        .dispute(&e2.escrow_id, Some("not delivered"))
        .await
        .expect("dispute");
    assert_eq!(disputed.status, EscrowStatus::Disputed);
    assert_eq!(disputed.reason.as_deref(), Some("not delivered"));
    expect_kind(
        creator.escrow().release(&e2.escrow_id).await,
        ErrorKind::Dispute,
        Some("invalid_status"),
    );

    let esc = creator.escrow();
    expect_kind(
        esc.create(&CreateEscrow::new(0.01, "tiny job", &party_id))
            .await,
        ErrorKind::Api,
        Some("invalid_amount"),
    );
    expect_kind(
        esc.create(&CreateEscrow::new(1.0, "x", &party_id)).await,
        ErrorKind::Api,
        Some("invalid_description"),
    );
    expect_kind(
        esc.create(&CreateEscrow::new(1.0, "a job", "bob")).await,
        ErrorKind::Api,
        Some("invalid_counterparty"),
    );
    expect_kind(
        esc.create(&CreateEscrow::new(1.0, "a job", &creator_id))
            .await,
        ErrorKind::Api,
        Some("self_escrow"),
    );
    expect_kind(
        esc.create(&CreateEscrow::new(1.0, "a job", "ag_000000000000"))
            .await,
        ErrorKind::Api,
        Some("counterparty_not_found"),
    );
    let e = expect_kind(
        esc.create(&CreateEscrow::new(5_000.0, "a big job", &party_id))
            .await,
        ErrorKind::InsufficientBalance,
        Some("insufficient_balance"),
    );
    assert_eq!(e.status(), Some(402));
    assert_eq!(e.context().counterparty.as_deref(), Some(party_id.as_str()));
    expect_kind(
        esc.get("esc_missing").await,
        ErrorKind::Api,
        Some("not_found"),
    );
    let stats = anon.escrow().stats().await.expect("stats");
    assert_eq!(stats.total_escrows, Some(2));
}

#[tokio::test]
async fn escrow_timeout_under_the_manual_clock() {
    let handle = sandbox(SandboxConfig::for_tests(23)).await;
    let anon = client(&handle);
    let (creator, _) = casino_agent(&handle, &anon, 100.0).await;
    let (party, party_id) = casino_agent(&handle, &anon, 0.0).await;
    let esc = creator.escrow();
    let timed = esc
        .create(&CreateEscrow::new(10.0, "timed job", &party_id).timeout_hours(1.0))
        .await
        .expect("create");
    let held = esc
        .create(&CreateEscrow::new(10.0, "held job", &party_id).timeout_hours(1.0))
        .await
        .expect("create");
    party
        .escrow()
        .complete(&timed.escrow_id)
        .await
        .expect("complete");
    party
        .escrow()
        .dispute(&held.escrow_id, None)
        .await
        .expect("dispute");
    let before = creator
        .casino()
        .balance()
        .await
        .expect("balance")
        .balance_usd;

    // Past the deadline and the next 5-minute sweep.
    let now = handle.sandbox().advance(Duration::from_secs(3_600 + 301));
    let info = esc.get(&timed.escrow_id).await.expect("get");
    assert_eq!(info.status, EscrowStatus::Refunded);
    assert!(info.is_timed_out(now));
    let e = expect_kind(
        esc.release(&timed.escrow_id).await,
        ErrorKind::EscrowTimeout,
        Some("invalid_status"),
    );
    assert_eq!(e.status(), Some(409));
    expect_kind(
        party.escrow().complete(&timed.escrow_id).await,
        ErrorKind::EscrowTimeout,
        Some("invalid_status"),
    );
    let after = creator
        .casino()
        .balance()
        .await
        .expect("balance")
        .balance_usd;
    assert!(
        (after - before - 9.9).abs() < 1e-6,
        "creator refunded amount − commission"
    );
    // Disputed escrows are never swept.
    assert_eq!(
        esc.get(&held.escrow_id).await.expect("get").status,
        EscrowStatus::Disputed
    );
}
