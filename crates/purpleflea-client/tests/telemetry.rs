//! Telemetry through `sentry-tracing` into `sentry::test`'s transport: every call is an
//! `http.client` span and an `http` breadcrumb, with no key anywhere; and (feature `lookout`)
//! client errors become `TradingError`s with kind, service, status and tags.

mod common;

use purpleflea_client::trading::{OpenPosition, Side};
use purpleflea_client::{ErrorKind, Service};
use purpleflea_sandbox::SandboxConfig;
use sentry::protocol::{Context, EnvelopeItem, SpanStatus};
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn a_call_is_an_http_client_span_and_an_http_breadcrumb_without_secrets() {
    let mut key = String::new();
    let envelopes = sentry::test::with_captured_envelopes_options(
        || {
            let subscriber = tracing_subscriber::registry()
                .with(sentry_tracing::SpanLayer::new())
                .with(sentry_tracing::BreadcrumbLayer::new());
            let _guard = tracing::subscriber::set_default(subscriber);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            key = runtime.block_on(async {
                let handle = common::sandbox(SandboxConfig::for_tests(51)).await;
                let anon = common::client(&handle);
                let (key, _) = common::trading_registration(&handle, &anon, 0.0).await;
                let c = common::keyed(&anon, Service::Trading, &key);
                c.trading().markets().await.expect("markets");
                let err = c
                    .trading()
                    .open(&OpenPosition::new("BTC", Side::Long, 100.0))
                    .await
                    .expect_err("no margin");
                assert_eq!(err.kind(), ErrorKind::InsufficientMargin);
                key
            });
            sentry::capture_message("after the calls", sentry::Level::Error);
        },
        sentry::ClientOptions::new().traces_sample_rate(1.0),
    );
    assert!(!key.is_empty());

    let mut transactions = Vec::new();
    let mut events = Vec::new();
    for envelope in &envelopes {
        for item in envelope.items() {
            match item {
                EnvelopeItem::Transaction(t) => transactions.push(t.clone()),
                EnvelopeItem::Event(e) => events.push(e.clone()),
                _ => {}
            }
        }
    }
    let op_of = |t: &sentry::protocol::Transaction<'_>| match t.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace.op.clone(),
        _ => None,
    };
    let markets = transactions
        .iter()
        .find(|t| t.name.as_deref() == Some("GET /v1/markets"))
        .unwrap_or_else(|| {
            panic!(
                "no GET /v1/markets span in {:?}",
                transactions.iter().map(|t| &t.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(op_of(markets).as_deref(), Some("http.client"));
    let data = match markets.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace.data.clone(),
        _ => Default::default(),
    };
    let has = |k: &str| data.contains_key(k) || markets.extra.contains_key(k);
    assert!(
        has("http.status_code") && has("latency_ms") && has("service"),
        "span data: {data:?} / {:?}",
        markets.extra
    );
    let open = transactions
        .iter()
        .find(|t| t.name.as_deref() == Some("POST /v1/trade/open"))
        .expect("open span");
    assert_eq!(op_of(open).as_deref(), Some("http.client"));
    // Each span ends with the status Sentry derives from its HTTP code, so failure rates per
    // endpoint count the 400.
    let status_of = |t: &sentry::protocol::Transaction<'_>| match t.contexts.get("trace") {
        Some(Context::Trace(trace)) => trace.status,
        _ => None,
    };
    assert_eq!(status_of(markets), Some(SpanStatus::Ok));
    assert_eq!(status_of(open), Some(SpanStatus::InvalidArgument));

    let event = events
        .iter()
        .find(|e| e.message.as_deref() == Some("after the calls"))
        .expect("the message event");
    let crumbs: Vec<_> = event
        .breadcrumbs
        .iter()
        .filter(|b| b.category.as_deref() == Some("http"))
        .collect();
    assert!(crumbs.len() >= 3, "register, markets, open: {crumbs:?}");
    let ok = crumbs
        .iter()
        .find(|b| b.data.get("url").and_then(|u| u.as_str()) == Some("/trading/v1/markets"))
        .expect("markets breadcrumb");
    assert_eq!(ok.level, sentry::Level::Info);
    assert_eq!(
        ok.data.get("status_code").and_then(|s| s.as_u64()),
        Some(200)
    );
    assert_eq!(
        ok.data.get("service").and_then(|s| s.as_str()),
        Some("trading")
    );
    assert!(ok.data.contains_key("latency_ms") && ok.data.contains_key("method"));
    let failed = crumbs
        .iter()
        .find(|b| b.data.get("url").and_then(|u| u.as_str()) == Some("/trading/v1/trade/open"))
        .expect("open breadcrumb");
    assert_eq!(failed.level, sentry::Level::Warning);
    assert_eq!(
        failed.data.get("status_code").and_then(|s| s.as_u64()),
        Some(400)
    );

    let mut wire = Vec::new();
    for envelope in &envelopes {
        envelope.to_writer(&mut wire).expect("serialise");
    }
    let wire = String::from_utf8_lossy(&wire);
    assert!(!wire.contains(&key), "an API key reached Sentry");
    assert!(
        !wire.contains(&key["sk_trade_".len()..]),
        "an API key reached Sentry"
    );
}

#[cfg(feature = "lookout")]
#[tokio::test]
async fn client_errors_convert_into_trading_errors_with_tags() {
    use lookout_agent::{Phase, TradingError, TradingErrorKind};
    use purpleflea_client::casino::{Bet, CoinSide};
    use purpleflea_client::escrow::CreateEscrow;

    let handle = common::sandbox(SandboxConfig::for_tests(52)).await;
    let anon = common::client(&handle);
    common::set_market(&handle, "SOL", serde_json::json!({"half_spread_bps": 80})).await;
    let (trader, _) = common::trading_agent(&handle, &anon, 1_000.0).await;
    let err = trader
        .trading()
        .open(&OpenPosition::new("SOL", Side::Short, 200.0))
        .await
        .expect_err("slippage");
    let t: TradingError = err.into();
    assert_eq!(t.kind(), &TradingErrorKind::SlippageLimit);
    assert_eq!(t.service(), Some(lookout_agent::Service::Trading));
    assert_eq!(t.http_status(), Some(400));
    assert_eq!(t.asset(), Some("SOL"));
    assert_eq!(t.phase(), Some(&Phase::OrderPlacement));
    assert_eq!(t.service_tags()["side"], "short");
    assert_eq!(t.service_tags()["error_code"], "trade_failed");
    assert!(
        std::error::Error::source(&t).is_some(),
        "the client error is the source"
    );

    let (player, _) = common::casino_agent(&handle, &anon, 10.0).await;
    let err = player
        .casino()
        .play(&Bet::coin_flip(500.0, CoinSide::Heads))
        .await
        .expect_err("too big");
    let t = TradingError::from(err);
    assert_eq!(t.kind(), &TradingErrorKind::InsufficientBalance);
    assert_eq!(t.service(), Some(lookout_agent::Service::Casino));
    assert_eq!(t.service_tags()["game"], "coin-flip");
    assert_eq!(t.service_tags()["bet_size"], "500");
    assert_eq!(t.service_tags()["outcome"], "error");

    let err = player
        .escrow()
        .create(&CreateEscrow::new(1_000.0, "a big job", "ag_000000000000"))
        .await
        .expect_err("no counterparty");
    let t = err.into_trading_error(Some(Phase::Confirmation));
    assert_eq!(t.kind(), &TradingErrorKind::Other("api_error".into()));
    assert_eq!(t.service(), Some(lookout_agent::Service::Escrow));
    assert_eq!(t.phase(), Some(&Phase::Confirmation));
    assert_eq!(t.service_tags()["counterparty"], "ag_000000000000");
    assert_eq!(t.service_tags()["amount"], "1000");

    let hang = purpleflea_sandbox::FaultRule {
        hang: Some(purpleflea_sandbox::Hang {
            probability: 1.0,
            duration_ms: 10_000,
        }),
        ..Default::default()
    };
    handle
        .sandbox()
        .set_faults(
            purpleflea_sandbox::FaultConfig::none()
                .with_service(purpleflea_sandbox::Service::Domains, hang),
        )
        .expect("faults");
    let c = common::builder(&handle)
        .timeout(std::time::Duration::from_millis(150))
        .domains_key(format!("sk_domains_{}", "0".repeat(48)))
        .build()
        .expect("client");
    let err = c
        .domains()
        .bid("auc_1", 5.0, Some("lookout.dev"))
        .await
        .expect_err("timeout");
    let t = TradingError::from(err);
    assert_eq!(t.kind(), &TradingErrorKind::Network);
    assert!(t.is_transient());
    assert_eq!(t.http_status(), None);
    assert_eq!(t.service_tags()["domain_name"], "lookout.dev");
    assert_eq!(t.service_tags()["tld"], "dev");
    assert_eq!(t.service_tags()["auction_id"], "auc_1");
}
