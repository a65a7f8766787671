//! Init, trading state, the error taxonomy, scopes, the noise filter, breadcrumbs and the
//! tracing layer, checked on the envelopes the client really produces.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Agent, capture, events, options};
use lookout_agent::breadcrumbs::{ApiResponse, PositionChange, RiskCheck, Signal};
use lookout_agent::{
    NoiseFilter, Options, Phase, Service, Side, TradingError, TradingErrorKind, TradingSnapshot,
    capture_trading_error, capture_trading_error_with,
};
use sentry::protocol::{Context, Level};
use serde_json::json;

#[test]
fn every_event_carries_the_agent_tags_user_release_and_environment() {
    let envelopes = capture(options("ag_01"), || {
        sentry::capture_message("hello", Level::Warning);
    });
    let events = events(&envelopes);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.tags["agent_id"], "ag_01");
    assert_eq!(event.tags["strategy"], "mean_reversion");
    assert_eq!(event.tags["platform"], "purple_flea");
    let user = event.user.as_ref().expect("user");
    assert_eq!(user.id.as_deref(), Some("ag_01"));
    assert_eq!(user.username.as_deref(), Some("agent-ag_01"));
    assert_eq!(event.release.as_deref(), Some("test-bot@1.0.0"));
    assert_eq!(event.environment.as_deref(), Some("test"));
}

#[test]
fn release_comes_from_git_or_an_environment_variable() {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "the tests run inside the git checkout"
    );
    let sha = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let release = Options::new("ag")
        .release_from_git("momentum-bot")
        .resolved_release();
    assert_eq!(release, Some(format!("momentum-bot@{sha}")));

    // Any variable the process has will do; PATH is always set.
    let path = std::env::var("PATH").expect("PATH is set");
    let release = Options::new("ag")
        .release_from_env("PATH")
        .resolved_release();
    assert_eq!(release, Some(path));
    let unset = "LOOKOUT_AGENT_TEST_NO_SUCH_VARIABLE";
    assert_eq!(
        Options::new("ag")
            .release_from_env(unset)
            .resolved_release(),
        None
    );
}

#[test]
fn trading_state_is_attached_to_sent_events_and_only_computed_for_them() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let opts = options("ag_state").state_provider(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        TradingSnapshot::new()
            .asset("ETH")
            .open_positions(2)
            .portfolio_value_usd(10_250.5)
            .last_order_id("ord_9")
            .last_signal_z(-2.4)
            .field("regime", "trending")
    });
    let agent = Agent::new(opts);
    agent.run(|| {
        // A thousand quiet cycles: breadcrumbs and spans, nothing sent.
        for i in 0..1000 {
            Signal::new("ETH", f64::from(i) / 100.0)
                .action("hold")
                .record();
        }
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no snapshot without an event"
    );
    agent.run(|| {
        // A dropped (transient) error costs no snapshot either.
        capture_trading_error(
            &TradingError::new(TradingErrorKind::Network, "connection reset")
                .with_phase(Phase::BalancePoll),
        );
    });
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "filtered events take no snapshot"
    );
    agent.run(|| {
        sentry::capture_message("rebalanced", Level::Error);
    });
    let events = events(&agent.envelopes());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(events.len(), 1);
    let Some(Context::Other(trading)) = events[0].contexts.get("trading") else {
        panic!("trading context missing: {:?}", events[0].contexts);
    };
    assert_eq!(trading["asset"], json!("ETH"));
    assert_eq!(trading["open_positions"], json!(2));
    assert_eq!(trading["portfolio_value_usd"], json!(10_250.5));
    assert_eq!(trading["last_order_id"], json!("ord_9"));
    assert_eq!(trading["last_signal_z"], json!(-2.4));
    assert_eq!(trading["regime"], json!("trending"));
}

fn order_rejected() -> TradingError {
    TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
        .with_trading("BTC", "buy", "ord_77", Some(64_010.5))
        .with_phase(Phase::OrderPlacement)
        .with_http_status(400)
}

#[test]
fn a_trading_error_has_its_fingerprint_tags_and_trade_context_in_its_own_scope() {
    let envelopes = capture(
        options("ag_fp").noise_filter(NoiseFilter::disabled()),
        || {
            capture_trading_error_with(
                &order_rejected(),
                Some(json!({"requested_leverage": 60, "max": 50})),
            );
            sentry::capture_message("after", Level::Error);
        },
    );
    let events = events(&envelopes);
    assert_eq!(events.len(), 2);
    let (first, after) = (&events[0], &events[1]);
    let fp: Vec<&str> = first.fingerprint.iter().map(|s| s.as_ref()).collect();
    assert_eq!(
        fp,
        ["{{ default }}", "OrderRejected", "BTC", "order_placement"]
    );
    for (key, value) in [
        ("trade.asset", "BTC"),
        ("trade.phase", "order_placement"),
        ("trade.error_type", "OrderRejected"),
        ("trade.order_id", "ord_77"),
        ("service", "trading"),
        ("asset", "BTC"),
        ("side", "buy"),
        ("order_id", "ord_77"),
        ("fill_price", "64010.5"),
        ("http.status_code", "400"),
        ("agent_id", "ag_fp"),
    ] {
        assert_eq!(
            first.tags.get(key).map(String::as_str),
            Some(value),
            "tag {key}"
        );
    }
    assert_eq!(
        first.extra["trade_context"],
        json!({"requested_leverage": 60, "max": 50})
    );
    let exception = first.exception.values.last().expect("exception");
    assert_eq!(exception.ty, "OrderRejected");
    assert_eq!(exception.value.as_deref(), Some("leverage above the cap"));

    // Nothing leaked into the next event.
    let default_fp: Vec<&str> = after.fingerprint.iter().map(|s| s.as_ref()).collect();
    assert_eq!(default_fp, ["{{ default }}"]);
    assert!(
        after
            .tags
            .keys()
            .all(|k| !k.starts_with("trade.") && k != "service"),
        "{:?}",
        after.tags
    );
    assert!(!after.extra.contains_key("trade_context"));
}

#[test]
fn missing_asset_and_phase_are_named_in_the_fingerprint_and_service_tags_are_set() {
    let cases = [
        (
            TradingError::new(TradingErrorKind::Game, "bet rejected")
                .with_casino("dice", 5, "lost"),
            vec![("game", "dice"), ("bet_size", "5"), ("outcome", "lost")],
        ),
        (
            TradingError::new(TradingErrorKind::AlreadyClaimed, "claimed")
                .with_faucet("c_1", "ag_x"),
            vec![("claim_id", "c_1"), ("agent_id", "ag_x")],
        ),
        (
            TradingError::new(TradingErrorKind::EscrowTimeout, "timed out")
                .with_escrow("esc_1", "ag_b", 12.5),
            vec![
                ("escrow_id", "esc_1"),
                ("counterparty", "ag_b"),
                ("amount", "12.5"),
            ],
        ),
        (
            TradingError::new(TradingErrorKind::InsufficientFunds, "low").with_wallet(
                "evm",
                "base",
                Some("0xabc".to_owned()),
            ),
            vec![
                ("wallet_type", "evm"),
                ("network", "base"),
                ("tx_hash", "0xabc"),
            ],
        ),
        (
            TradingError::new(TradingErrorKind::BidRejected, "below step").with_domains(
                "flea.ai",
                "ai",
                Some("auc_3".to_owned()),
            ),
            vec![
                ("domain_name", "flea.ai"),
                ("tld", "ai"),
                ("auction_id", "auc_3"),
            ],
        ),
    ];
    for (error, expected) in cases {
        let service = error.service().expect("service set");
        let kind = error.kind().as_str().to_owned();
        let envelopes = capture(options("ag_svc"), || {
            capture_trading_error(&error);
        });
        let events = events(&envelopes);
        assert_eq!(events.len(), 1, "{kind}");
        let event = &events[0];
        let fp: Vec<&str> = event.fingerprint.iter().map(|s| s.as_ref()).collect();
        assert_eq!(
            fp,
            [
                "{{ default }}",
                kind.as_str(),
                "unknown_asset",
                "unknown_phase"
            ]
        );
        assert_eq!(event.tags["service"], service.as_str());
        for (key, value) in expected {
            assert_eq!(
                event.tags.get(key).map(String::as_str),
                Some(value),
                "{kind} {key}"
            );
        }
    }
    assert_eq!(Service::Domains.as_str(), "domains");
}

/// Capture `f`'s output with the default filter; return (events, dropped by filter).
fn filtered(f: impl FnOnce()) -> (Vec<sentry::protocol::Event<'static>>, u64) {
    let opts = options("ag_filter");
    let counters = opts.counters();
    let envelopes = capture(opts, f);
    (events(&envelopes), counters.snapshot().dropped_by_filter)
}

#[test]
fn transient_trading_errors_are_dropped_outside_order_placement_and_counted() {
    let transient = [
        TradingError::new(TradingErrorKind::Network, "connection reset by peer"),
        TradingError::new(TradingErrorKind::RateLimited, "slow down").with_http_status(429),
        TradingError::new(TradingErrorKind::Other("Upstream".into()), "bad gateway")
            .with_http_status(502),
        TradingError::new(TradingErrorKind::Game, "overloaded").with_http_status(503),
    ];
    for error in transient {
        let label = error.to_string();
        let error = error
            .with_phase(Phase::BalancePoll)
            .with_service(Service::Trading);
        let (events, dropped) = filtered(|| {
            capture_trading_error(&error);
        });
        assert!(events.is_empty(), "{label} should be dropped");
        assert_eq!(dropped, 1, "{label} counted");
    }
}

#[test]
fn order_placement_errors_are_never_dropped_and_are_escalated_to_fatal() {
    for kind in [TradingErrorKind::Network, TradingErrorKind::OrderRejected] {
        let error = TradingError::new(kind.clone(), "failed")
            .with_phase(Phase::OrderPlacement)
            .with_http_status(503);
        let (events, dropped) = filtered(|| {
            capture_trading_error(&error);
        });
        assert_eq!(dropped, 0, "{kind}");
        assert_eq!(events.len(), 1, "{kind}");
        assert_eq!(events[0].level, Level::Fatal, "{kind}");
        assert_eq!(events[0].tags["trade.escalated"], "true");
    }
}

#[test]
fn real_errors_are_judged_by_kind_not_wording() {
    // Not transient: kept at level error, even when the message says "timed out".
    let kept = [
        TradingError::new(
            TradingErrorKind::EscrowTimeout,
            "escrow timed out, refunded",
        )
        .with_phase(Phase::Confirmation),
        TradingError::new(TradingErrorKind::InsufficientMargin, "margin").with_phase(Phase::Sizing),
        TradingError::new(TradingErrorKind::SlippageLimit, "Order not filled")
            .with_phase(Phase::Confirmation)
            .with_http_status(400),
    ];
    for error in kept {
        let (events, dropped) = filtered(|| {
            capture_trading_error(&error);
        });
        assert_eq!((events.len(), dropped), (1, 0), "{error}");
        assert_eq!(events[0].level, Level::Error);
    }
}

#[test]
fn foreign_transient_errors_are_dropped_and_others_kept() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A real tokio timeout.
    let elapsed = runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await
        })
        .expect_err("times out");
    // A real refused connection from reqwest (port of a listener just closed).
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let refused = runtime
        .block_on(reqwest::get(format!("http://127.0.0.1:{port}/")))
        .expect_err("refused");
    let reset = std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset by peer",
    );

    let (events, dropped) = filtered(|| {
        sentry::capture_error(&elapsed);
        sentry::capture_error(&refused);
        sentry::capture_error(&reset);
    });
    assert!(events.is_empty(), "{events:#?}");
    assert_eq!(dropped, 3);

    let not_found = std::io::Error::new(std::io::ErrorKind::NotFound, "strategy.toml missing");
    let parse = serde_json::from_str::<serde_json::Value>("{").expect_err("bad json");
    let (events, dropped) = filtered(|| {
        sentry::capture_error(&not_found);
        sentry::capture_error(&parse);
    });
    assert_eq!((events.len(), dropped), (2, 0));

    // The same timeout during order placement is escalated, not dropped.
    let (events, dropped) = filtered(|| {
        sentry::with_scope(
            |scope| scope.set_tag("trade.phase", "order_placement"),
            || sentry::capture_error(&elapsed),
        );
    });
    assert_eq!((events.len(), dropped), (1, 0));
    assert_eq!(events[0].level, Level::Fatal);
}

#[test]
fn a_disabled_filter_keeps_everything() {
    let envelopes = capture(
        options("ag_nf").noise_filter(NoiseFilter::disabled()),
        || {
            capture_trading_error(&TradingError::new(TradingErrorKind::Network, "reset"));
        },
    );
    assert_eq!(events(&envelopes).len(), 1);
}

#[test]
fn decision_breadcrumbs_have_their_data_and_levels() {
    let envelopes = capture(options("ag_bc"), || {
        Signal::new("SOL", 2.25)
            .iv(0.71)
            .rv(0.52)
            .action("buy")
            .record();
        RiskCheck::new("max_drawdown", true, 0.04, 0.10).record();
        RiskCheck::new("max_position_usd", false, 7_500.0, 5_000.0).record();
        ApiResponse::new("POST /v1/trade/open", 200, Duration::from_millis(84))
            .order_id("ord_5")
            .record();
        ApiResponse::new("POST /v1/trade/open", 429, Duration::from_millis(12)).record();
        PositionChange::new("SOL", Side::Sell, 3.0, 151.2)
            .rationale("mean reverted")
            .record();
        sentry::capture_message("cycle failed", Level::Error);
    });
    let events = events(&envelopes);
    let crumbs = &events[0].breadcrumbs.values;
    assert_eq!(crumbs.len(), 6);
    let signal = &crumbs[0];
    assert_eq!(signal.category.as_deref(), Some("trade.signal"));
    assert_eq!(signal.data["asset"], json!("SOL"));
    assert_eq!(signal.data["z_score"], json!(2.25));
    assert_eq!(signal.data["iv"], json!(0.71));
    assert_eq!(signal.data["rv"], json!(0.52));
    assert_eq!(signal.data["action"], json!("buy"));
    assert_eq!(crumbs[1].level, Level::Info);
    assert_eq!(crumbs[2].level, Level::Warning);
    assert_eq!(crumbs[2].data["check"], json!("max_position_usd"));
    assert_eq!(crumbs[2].data["passed"], json!(false));
    assert_eq!(crumbs[2].data["value"], json!(7_500.0));
    assert_eq!(crumbs[2].data["limit"], json!(5_000.0));
    assert_eq!(crumbs[3].ty, "http");
    assert_eq!(crumbs[3].level, Level::Info);
    assert_eq!(crumbs[3].data["status_code"], json!(200));
    assert_eq!(crumbs[3].data["order_id"], json!("ord_5"));
    assert_eq!(crumbs[3].data["latency_ms"], json!(84.0));
    assert_eq!(crumbs[4].level, Level::Error);
    assert_eq!(crumbs[5].category.as_deref(), Some("trade.position"));
    assert_eq!(crumbs[5].data["side"], json!("sell"));
    assert_eq!(crumbs[5].data["rationale"], json!("mean reverted"));
}

#[test]
fn decisions_interleave_with_other_breadcrumbs_in_time_and_only_the_newest_100_are_sent() {
    let envelopes = capture(options("ag_log"), || {
        for i in 0..150_i32 {
            Signal::new("BTC", f64::from(i)).record();
            if i % 50 == 49 {
                sentry::add_breadcrumb(sentry::Breadcrumb {
                    category: Some("other".to_owned()),
                    message: Some(format!("after signal {i}")),
                    ..Default::default()
                });
            }
        }
        sentry::capture_message("first", Level::Error);
    });
    let events = events(&envelopes);
    assert_eq!(events.len(), 1);
    let crumbs = &events[0].breadcrumbs.values;
    assert_eq!(crumbs.len(), 100);
    assert!(crumbs.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    // 150 signals and 3 others: the newest 100 are signals 52..=149 and two others.
    let z = |c: &sentry::Breadcrumb| c.data.get("z_score").and_then(|v| v.as_f64());
    assert_eq!(z(&crumbs[0]), Some(52.0));
    assert_eq!(z(&crumbs[98]), Some(149.0));
    assert_eq!(crumbs[99].message.as_deref(), Some("after signal 149"));
    let after_99 = crumbs
        .iter()
        .position(|c| c.message.as_deref() == Some("after signal 99"))
        .expect("other breadcrumb kept");
    assert_eq!(z(&crumbs[after_99 - 1]), Some(99.0));
    assert_eq!(z(&crumbs[after_99 + 1]), Some(100.0));
}

#[test]
fn decisions_follow_the_scope_they_were_recorded_in() {
    let asset = |event: &sentry::protocol::Event<'static>| -> Vec<String> {
        event
            .breadcrumbs
            .values
            .iter()
            .filter_map(|c| c.data.get("asset").and_then(|v| v.as_str()))
            .map(str::to_owned)
            .collect()
    };
    let envelopes = capture(options("ag_scope"), || {
        Signal::new("BTC", 1.0).record();
        sentry::with_scope(
            |_| {},
            || {
                Signal::new("ETH", 9.0).record();
                sentry::capture_message("inside", Level::Error);
            },
        );
        sentry::capture_message("after the scope", Level::Error);
        sentry::configure_scope(|scope| scope.clear_breadcrumbs());
        sentry::capture_message("after clearing", Level::Error);
        Signal::new("SOL", 3.0).record();
        sentry::capture_message("after a new decision", Level::Error);
    });
    let events = events(&envelopes);
    let trails: Vec<_> = events.iter().map(asset).collect();
    assert_eq!(
        trails,
        [vec!["BTC", "ETH"], vec!["BTC"], vec![], vec!["SOL"]]
    );
}

#[test]
fn the_tracing_layer_turns_errors_into_events_and_info_into_breadcrumbs() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(lookout_agent::tracing_layer());
    let envelopes = capture(options("ag_tr"), || {
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("ignored");
            tracing::info!(asset = "BTC", "signal computed");
            tracing::warn!("spread is wide");
            let err = std::io::Error::other("order book unavailable");
            tracing::error!(error = &err as &dyn std::error::Error, "cycle failed");
        });
    });
    let events = events(&envelopes);
    assert_eq!(events.len(), 1, "{events:#?}");
    let crumbs: Vec<_> = events[0]
        .breadcrumbs
        .values
        .iter()
        .filter_map(|c| c.message.as_deref())
        .collect();
    assert_eq!(crumbs, ["signal computed", "spread is wide"]);
    assert_eq!(events[0].tags["agent_id"], "ag_tr");
}
