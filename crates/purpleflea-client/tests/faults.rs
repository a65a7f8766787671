//! Client behaviour under the sandbox's injected faults: timeouts, 5xx, 429 with and without
//! `Retry-After`, connect errors; which calls are retried and which never are.
//!
//! The client's sleeper is replaced by a recorder that notes each wait and then changes the
//! world as time passing would (clears the fault, advances the sandbox's manual clock), so
//! a retry that should not happen would succeed and be seen (a second position, a 2xx).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Recorder, builder, client, expect_kind, keyed, sandbox, trading_registration};
use purpleflea_client::trading::{OpenPosition, Side};
use purpleflea_client::{Client, ErrorKind, RegisterRequest, RetryPolicy, Service};
use purpleflea_sandbox::{
    FaultConfig, FaultRule, Hang, RateLimitStyle, SandboxConfig, SandboxHandle,
};

fn rule(status: &str, retry_after_secs: Option<u64>) -> FaultRule {
    FaultRule {
        errors: Some(BTreeMap::from([(status.to_owned(), 1.0)])),
        retry_after_secs,
        ..FaultRule::default()
    }
}

fn hang() -> FaultRule {
    FaultRule {
        hang: Some(Hang {
            probability: 1.0,
            duration_ms: 10_000,
        }),
        ..FaultRule::default()
    }
}

fn set(handle: &SandboxHandle, pattern: &str, rule: FaultRule) {
    let faults =
        FaultConfig::none().with_endpoint(purpleflea_sandbox::Service::Trading, pattern, rule);
    handle.sandbox().set_faults(faults).expect("valid faults");
}

/// A retrying client whose waits clear the faults (the outage is over when it retries).
fn healing_client(handle: &SandboxHandle, recorder: &Recorder, timeout: Duration) -> Client {
    let sandbox = handle.sandbox().clone();
    builder(handle)
        .timeout(timeout)
        .retry_policy(RetryPolicy::default())
        .sleeper(recorder.sleeper(move |_| {
            sandbox
                .set_faults(FaultConfig::none())
                .expect("valid faults");
        }))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_a_network_timeout() {
    let handle = sandbox(SandboxConfig::for_tests(41)).await;
    set(&handle, "GET /markets", hang());
    let c = common::builder(&handle)
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let e = expect_kind(c.trading().markets().await, ErrorKind::Network, None);
    assert!(e.is_timeout(), "{e}");
    assert_eq!((e.status(), e.attempts()), (None, 1));
}

#[tokio::test]
async fn a_timed_out_order_open_is_not_retried_but_a_timed_out_get_is() {
    let handle = sandbox(SandboxConfig::for_tests(42)).await;
    let anon = client(&handle);
    let (key, _) = trading_registration(&handle, &anon, 10_000.0).await;
    let setup = keyed(&anon, Service::Trading, &key);
    let recorder = Recorder::default();
    let key_client = keyed(
        &healing_client(&handle, &recorder, Duration::from_millis(200)),
        Service::Trading,
        &key,
    );

    set(&handle, "POST /trade/open", hang());
    let e = expect_kind(
        key_client
            .trading()
            .open(&OpenPosition::new("BTC", Side::Long, 500.0))
            .await,
        ErrorKind::Network,
        None,
    );
    assert!(e.is_timeout());
    assert_eq!(e.attempts(), 1);
    assert!(
        recorder.waits().is_empty(),
        "an order open was retried: {:?}",
        recorder.waits()
    );
    handle
        .sandbox()
        .set_faults(FaultConfig::none())
        .expect("faults");
    // A retry would have found the fault cleared and opened a position.
    assert!(
        setup
            .trading()
            .positions()
            .await
            .expect("positions")
            .positions
            .is_empty()
    );

    set(&handle, "GET /trade/positions", hang());
    let positions = key_client
        .trading()
        .positions()
        .await
        .expect("retried after the timeout");
    assert!(positions.positions.is_empty());
    assert_eq!(recorder.waits().len(), 1);
}

#[tokio::test]
async fn a_500_on_order_open_is_not_retried_but_a_5xx_on_a_get_is() {
    let handle = sandbox(SandboxConfig::for_tests(43)).await;
    let anon = client(&handle);
    let (key, _) = trading_registration(&handle, &anon, 10_000.0).await;
    let setup = keyed(&anon, Service::Trading, &key);
    let recorder = Recorder::default();
    let c = keyed(
        &healing_client(&handle, &recorder, Duration::from_secs(5)),
        Service::Trading,
        &key,
    );

    set(&handle, "POST /trade/open", rule("500", None));
    let e = expect_kind(
        c.trading()
            .open(&OpenPosition::new("BTC", Side::Long, 500.0))
            .await,
        ErrorKind::Network,
        Some("internal_error"),
    );
    assert_eq!((e.status(), e.attempts()), (Some(500), 1));
    assert!(recorder.waits().is_empty(), "an order open was retried");
    assert!(
        setup
            .trading()
            .positions()
            .await
            .expect("positions")
            .positions
            .is_empty()
    );

    // 503 from the proxy (an HTML page) on a GET: retried, then the real answer.
    set(&handle, "GET /trade/positions", rule("503", None));
    c.trading()
        .positions()
        .await
        .expect("retried after the 503");
    assert_eq!(recorder.waits().len(), 1);
    // 500 on a public GET too.
    set(&handle, "GET /markets/*", rule("500", None));
    c.trading()
        .market("BTC")
        .await
        .expect("retried after the 500");
    assert_eq!(recorder.waits().len(), 2);
    // Every wait is a bounded backoff.
    assert!(
        recorder
            .waits()
            .iter()
            .all(|w| *w <= Duration::from_secs(5))
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for_and_retried() {
    let handle = sandbox(SandboxConfig::for_tests(44)).await;
    let anon = client(&handle);
    let (key, _) = trading_registration(&handle, &anon, 10_000.0).await;
    let setup = keyed(&anon, Service::Trading, &key);
    let recorder = Recorder::default();
    let c = keyed(
        &healing_client(&handle, &recorder, Duration::from_secs(5)),
        Service::Trading,
        &key,
    );

    set(&handle, "GET /markets", rule("429", Some(7)));
    let markets = c.trading().markets().await.expect("retried after the 429");
    assert!(markets.total_markets.is_some());
    assert_eq!(
        recorder.waits(),
        vec![Duration::from_secs(7)],
        "waited what Retry-After said"
    );
    let state = c.rate_limit(Service::Trading).expect("rate-limit state");
    assert_eq!(
        (state.retry_after, state.remaining),
        (Some(Duration::from_secs(7)), Some(0))
    );

    // A 429 was not processed, so even an order open is retried, and opens exactly once.
    set(&handle, "POST /trade/open", rule("429", Some(2)));
    c.trading()
        .open(&OpenPosition::new("BTC", Side::Long, 500.0))
        .await
        .expect("open after the 429");
    assert_eq!(recorder.waits().len(), 2);
    assert_eq!(
        setup
            .trading()
            .positions()
            .await
            .expect("positions")
            .positions
            .len(),
        1
    );

    // A wait longer than the policy allows is returned at once.
    set(&handle, "GET /markets", rule("429", Some(600)));
    let e = expect_kind(
        c.trading().markets().await,
        ErrorKind::RateLimited,
        Some("rate_limited"),
    );
    assert_eq!(
        (e.attempts(), e.retry_after()),
        (1, Some(Duration::from_secs(600)))
    );
    assert_eq!(recorder.waits().len(), 2);
}

#[tokio::test]
async fn real_limiters_website_headers_are_honoured_and_code_style_backs_off() {
    // Website style: the real limiter sends Retry-After; waiting it out (on the sandbox's
    // manual clock) opens a new window, so the 11th registration succeeds on its retry.
    let faults = FaultConfig {
        rate_limit_style: RateLimitStyle::Website,
        ..FaultConfig::none()
    };
    let handle = sandbox(SandboxConfig::for_tests(45).faults(faults)).await;
    let recorder = Recorder::default();
    let sandbox_ctl = handle.sandbox().clone();
    let c = builder(&handle)
        .retry_policy(RetryPolicy::default())
        .sleeper(recorder.sleeper(move |d| {
            sandbox_ctl.advance(d);
        }))
        .build()
        .expect("client");
    for _ in 0..10 {
        c.casino()
            .register(&RegisterRequest::new())
            .await
            .expect("register");
    }
    c.casino()
        .register(&RegisterRequest::new())
        .await
        .expect("11th after waiting");
    let waits = recorder.waits();
    assert_eq!(waits.len(), 1);
    assert!(
        waits[0] > Duration::from_secs(50) && waits[0] <= Duration::from_secs(60),
        "{waits:?}"
    );

    // Code style: no headers, so exponential backoff, bounded by max_attempts.
    let handle = sandbox(SandboxConfig::for_tests(46)).await;
    let recorder = Recorder::default();
    let sandbox_ctl = handle.sandbox().clone();
    let c = builder(&handle)
        .retry_policy(
            RetryPolicy::default()
                .max_attempts(3)
                .base_delay(Duration::from_millis(100)),
        )
        .sleeper(recorder.sleeper(move |d| {
            sandbox_ctl.advance(d);
        }))
        .build()
        .expect("client");
    for _ in 0..10 {
        c.casino()
            .register(&RegisterRequest::new())
            .await
            .expect("register");
    }
    let e = expect_kind(
        c.casino().register(&RegisterRequest::new()).await,
        ErrorKind::RateLimited,
        Some("rate_limited"),
    );
    assert_eq!(e.attempts(), 3);
    let waits = recorder.waits();
    assert_eq!(waits.len(), 2);
    assert!(
        waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100),
        "{waits:?}"
    );
    assert!(
        waits[1] >= Duration::from_millis(100) && waits[1] <= Duration::from_millis(200),
        "{waits:?}"
    );
}

#[tokio::test]
async fn connect_errors_are_network_and_retried_for_every_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let recorder = Recorder::default();
    let c = Client::builder()
        .sandbox(format!("http://{addr}"))
        .trading_key(format!("sk_trade_{}", "0".repeat(48)))
        .retry_policy(RetryPolicy::default())
        .sleeper(recorder.sleeper(|_| {}))
        .build()
        .expect("client");
    let e = expect_kind(
        c.trading()
            .open(&OpenPosition::new("BTC", Side::Long, 500.0))
            .await,
        ErrorKind::Network,
        None,
    );
    assert!(e.is_connect(), "{e}");
    assert_eq!(
        e.attempts(),
        3,
        "the request never left, so even an open is retried"
    );
    assert_eq!(recorder.waits().len(), 2);
}
