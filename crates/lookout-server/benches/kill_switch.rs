//! Kill-switch latency (issue 24): from the triggering event, captured by the agent through the
//! Rust `sentry` SDK (the agent library's real HTTP transport), to the agent refusing orders.
//!
//! The server runs in-process over a temporary SQLite file with an issue rule "first seen →
//! `lookout.rules.actions.PauseAgentAction`". Each round resumes the agent through the REST
//! API, waits until the agent trades again, then captures a new error (a new issue, so the
//! rule fires) and times until `OrderPipeline::try_start` returns the `Paused` error: ingest,
//! digest, the alert stage's transaction, the control channel's long poll and the agent's
//! thread, end to end.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-bench-kill cargo bench -p lookout-server --bench
//! kill_switch` (env `LOOKOUT_BENCH_ROUNDS`, default 50).
#![allow(clippy::print_stdout, missing_docs)]

use lookout_agent::{Options, OrderPipeline, Side, TradingErrorKind, is_trading_allowed};
use lookout_server::Server;
use lookout_server::config::Config;
use serde_json::json;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn refused() -> bool {
    matches!(
        OrderPipeline::try_start("BTC", Side::Buy).map(|_| ()),
        Err(e) if *e.kind() == TradingErrorKind::Paused
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let rounds: usize = env_or("LOOKOUT_BENCH_ROUNDS", 50);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let server = Server::builder(config).start().await.expect("server");
    let (_, token) = server.store.create_token("bench", &[]).expect("token");
    let base = server.base_url();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/0/projects/default/default/rules/"))
        .bearer_auth(&token)
        .json(&json!({"name": "pause on a new failure", "actionMatch": "all", "filterMatch": "all", "frequency": 5,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "filters": [{"id": "sentry.rules.filters.tagged_event.TaggedEventFilter", "key": "agent_id", "match": "eq", "value": "ag_bench"}],
            "actions": [{"id": "lookout.rules.actions.PauseAgentAction"}]}))
        .send()
        .await
        .expect("rule");
    assert_eq!(r.status(), 201);
    let dsn = server.dsn().expect("dsn");
    let guard = lookout_agent::init(Options::new("ag_bench").dsn(dsn).release("bench@1.0.0"));
    // The server learns of the agent from a first (info) event.
    sentry::capture_message("bench agent up", sentry::Level::Info);
    let project = server.store.list_projects().expect("projects")[0].id;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .store
        .trading()
        .is_known(project, "ag_bench")
        .expect("known")
    {
        assert!(Instant::now() < deadline, "the agent was never seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let resume = format!("{base}/api/0/projects/default/default/agents/ag_bench/resume/");
    let mut took = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let r = client
            .post(&resume)
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .expect("resume");
        assert_eq!(r.status(), 200);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_trading_allowed() {
            assert!(
                Instant::now() < deadline,
                "round {round}: not resumed; server {:?}; agent {:?}; failed polls {}",
                server.store.trading().get(
                    project,
                    "ag_bench",
                    chrono::Utc::now().timestamp_millis()
                ),
                lookout_agent::control::trading_state(),
                lookout_agent::control::failures()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A new issue each round: its first event fires the rule.
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            let mut event = sentry::protocol::Event {
                level: sentry::Level::Fatal,
                ..Default::default()
            };
            event.exception.values.push(sentry::protocol::Exception {
                ty: format!("BenchFailure{round}"),
                value: Some("critical trade failure".into()),
                ..Default::default()
            });
            sentry::capture_event(event);
        })
        .await
        .expect("capture");
        let deadline = started + Duration::from_secs(30);
        // Watch the flag (starting a pipeline while allowed would send one each time), then
        // check that an order is refused.
        while is_trading_allowed() {
            assert!(Instant::now() < deadline, "round {round}: never paused");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(started.elapsed());
        assert!(
            refused(),
            "round {round}: paused but an order was not refused"
        );
    }
    took.sort();
    let q = |p: f64| {
        let i = ((took.len() as f64 * p).ceil() as usize).clamp(1, took.len()) - 1;
        took[i].as_secs_f64() * 1000.0
    };
    println!(
        "kill switch, event to refused order: {} rounds, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        took.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    drop(guard);
    server.stop().await.expect("stop");
}
