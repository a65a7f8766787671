//! The kill switch, agent side, against a real server: `lookout-agent` (the `sentry` crate's
//! HTTP transport, its own control channel) is paused within 2 s of the API call, refuses
//! orders with a `Paused` error captured once, lets reduce-only orders through, trades again
//! after a resume, and follows its unreachable-server policy. One test: the agent library's
//! client and control channel are process-wide.

mod common;

use common::TestServer;
use lookout_agent::control::{self, Unreachable};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Side, Stage, TradingErrorKind, is_trading_allowed,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const AGENTS: &str = "/api/0/projects/default/default/agents/";

/// One order attempt the way an agent writes it; `Err` carries the error kind.
fn place_order(reduce_only: bool) -> Result<(), TradingErrorKind> {
    let mut pipeline = if reduce_only {
        OrderPipeline::start_reduce_only("BTC", Side::Sell)
    } else {
        OrderPipeline::start("BTC", Side::Buy)
    };
    pipeline
        .stage(Stage::http("POST", "/v1/trade/open"), |s| {
            s.order_id("ord");
            Ok(())
        })
        .map_err(|e| e.kind().clone())?;
    pipeline.finish(Outcome::Filled);
    Ok(())
}

async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_obeys_pauses_within_two_seconds_and_cannot_lift_them() {
    let s = TestServer::start().await;
    let api = s.api_client(&s.token());
    let changes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&changes);
    let guard = lookout_agent::init(
        Options::new("ag_ks")
            .dsn(s.dsn())
            .release("ks-bot@1.0.0")
            .on_trading_change(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            }),
    );
    // The server knows the agent from what it sends.
    sentry::capture_message("agent started", sentry::Level::Info);
    assert!(guard.flush(Duration::from_secs(10)));
    s.eventually("the agent to be seen", || async {
        s.agents()
            .iter()
            .any(|a| a.agent_id == "ag_ks")
            .then_some(())
    })
    .await;
    assert!(is_trading_allowed());
    assert_eq!(place_order(false), Ok(()));

    // Paused through the API: the agent refuses orders within 2 s.
    let started = Instant::now();
    api.post(
        &format!("{AGENTS}ag_ks/pause/"),
        &json!({"reason": "drawdown"}),
    )
    .await
    .expect(200);
    wait_until("the agent to see the pause", Duration::from_secs(2), || {
        !is_trading_allowed()
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "paused after {took:?}");
    let state = control::trading_state().expect("control channel");
    assert!(state.paused);
    assert_eq!(state.reason.as_deref(), Some("drawdown"));
    assert!(changes.load(Ordering::SeqCst) >= 1, "the callback ran");

    // Every attempt is refused with `Paused`; reduce-only orders go through.
    let refused = tokio::task::spawn_blocking(|| {
        let mut kinds = Vec::new();
        for _ in 0..5 {
            kinds.push(place_order(false));
        }
        let try_start = OrderPipeline::try_start("ETH", Side::Buy).map(|_| ());
        (
            kinds,
            try_start.map_err(|e| e.kind().clone()),
            place_order(true),
        )
    })
    .await
    .expect("orders");
    assert!(
        refused
            .0
            .iter()
            .all(|k| *k == Err(TradingErrorKind::Paused)),
        "{refused:?}"
    );
    assert_eq!(refused.1, Err(TradingErrorKind::Paused));
    assert_eq!(refused.2, Ok(()), "reduce-only passes");

    // The Paused error was captured once for this pause, not once per attempt.
    sentry::capture_message("marker after the attempts", sentry::Level::Info);
    assert!(guard.flush(Duration::from_secs(10)));
    let issues = s
        .eventually("the marker to be digested", || async {
            let list = api
                .get("/api/0/projects/default/default/issues/?query=&statsPeriod=24h")
                .await
                .expect(200);
            let has_marker = list.as_array().is_some_and(|a| {
                a.iter()
                    .any(|i| i["title"].as_str().unwrap_or("").contains("marker"))
            });
            has_marker.then_some(list)
        })
        .await;
    let paused: Vec<&Value> = issues
        .as_array()
        .expect("issues")
        .iter()
        .filter(|i| i["title"].as_str().unwrap_or("").contains("Paused"))
        .collect();
    assert_eq!(paused.len(), 1, "{issues}");
    assert_eq!(paused[0]["count"], "1", "{}", paused[0]);

    // Resumed through the API: it trades again.
    let before = changes.load(Ordering::SeqCst);
    api.post(&format!("{AGENTS}ag_ks/resume/"), &json!({}))
        .await
        .expect(200);
    wait_until(
        "the agent to see the resume",
        Duration::from_secs(2),
        is_trading_allowed,
    )
    .await;
    assert!(changes.load(Ordering::SeqCst) > before);
    let ok = tokio::task::spawn_blocking(|| place_order(false))
        .await
        .expect("order");
    assert_eq!(ok, Ok(()));
    drop(guard);

    // Server unreachable: by default the agent keeps trading and records it …
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let dead_dsn = format!("http://{}@{dead}/{}", s.key(), s.project_id());
    let guard = lookout_agent::init(Options::new("ag_ks").dsn(dead_dsn.clone()));
    wait_until("a failed contact", Duration::from_secs(5), || {
        control::failures() > 0
    })
    .await;
    assert!(is_trading_allowed(), "default policy: keep trading");
    drop(guard);
    // … or, as configured, pauses itself after that long without contact.
    let guard = lookout_agent::init(
        Options::new("ag_ks")
            .dsn(dead_dsn)
            .when_unreachable(Unreachable::PauseAfter(Duration::from_secs(1))),
    );
    let took = wait_until("the policy to pause", Duration::from_secs(5), || {
        !is_trading_allowed()
    })
    .await;
    assert!(took >= Duration::from_millis(900), "paused after {took:?}");
    let kind = tokio::task::spawn_blocking(|| place_order(false))
        .await
        .expect("order");
    assert_eq!(kind, Err(TradingErrorKind::Paused));
    drop(guard);
    assert!(
        is_trading_allowed(),
        "no control channel after the guard is gone"
    );
}
