//! End to end: a Rust agent with the agent library's `profiling` feature, over the `sentry`
//! crate's real HTTP transport, into a real server: the profile of its order pipeline is
//! stored, linked to its transaction, and readable from the raw profile API with the
//! CPU-bound function of its risk stage.

mod common;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use common::TestServer;
use lookout_agent::{Options, OrderPipeline, Outcome, Side, Stage};

const TRANSACTION: &str = "Order Pipeline: BTC buy";

/// This thread's CPU time, from `/proc/thread-self/stat` (clock ticks of 10 ms).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat fields")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// The risk stage's work: hashing for 300 ms of this thread's CPU time.
#[inline(never)]
fn risk_model() -> u64 {
    let until = thread_cpu_time() + Duration::from_millis(300);
    let mut hasher = DefaultHasher::new();
    let mut rounds = 0u64;
    while thread_cpu_time() < until {
        for i in 0..10_000u64 {
            (i ^ rounds).hash(&mut hasher);
        }
        rounds += 1;
    }
    hasher.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_agents_pipeline_profile_is_stored_and_readable() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    let sent = tokio::task::spawn_blocking(move || {
        let options = Options::new("ag_prof_e2e")
            .dsn(dsn)
            .strategy("momentum")
            .release("prof-bot@1.0.0")
            .environment("paper")
            .profiles_sample_rate(1.0);
        let counters = options.counters();
        let hub = options.hub();
        sentry::Hub::run(hub.clone(), || {
            let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
            pipeline
                .stage(Stage::RiskCheck, |s| {
                    s.risk_pass(risk_model() != 0);
                    Ok(())
                })
                .expect("risk");
            pipeline.finish(Outcome::Filled);
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
        counters.snapshot().profiles_sent
    })
    .await
    .expect("agent thread");
    assert_eq!(sent, 1, "the agent sent its pipeline's profile");

    // The transaction, and the profile it names.
    let recent = s
        .eventually("transaction digested", || async {
            let (_, v) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/transactions/recent/",
                )
                .await;
            v["data"]
                .as_array()
                .and_then(|d| d.iter().find(|t| t["transaction"] == TRANSACTION).cloned())
        })
        .await;
    let event_id = recent["eventId"].as_str().expect("event id").to_owned();
    let trace_id = recent["traceId"].as_str().expect("trace id").to_owned();
    let (status, event) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/events/{event_id}/"),
        )
        .await;
    assert_eq!(status, 200, "{event}");
    let profile_id = event["contexts"]["profile"]["profile_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the transaction names no profile: {event}"))
        .to_owned();

    let raw = s
        .eventually("profile stored", || async {
            let (status, raw) = s
                .api(
                    &token,
                    &format!("/api/0/projects/default/default/profiling/profiles/{profile_id}/"),
                )
                .await;
            (status == 200).then_some(raw)
        })
        .await;
    assert_eq!(raw["version"], "1");
    assert_eq!(raw["platform"], "rust");
    assert_eq!(raw["event_id"], profile_id.as_str());
    assert_eq!(raw["release"], "prof-bot@1.0.0");
    let transaction = raw
        .get("transaction")
        .filter(|t| t.is_object())
        .or_else(|| raw["transactions"].get(0))
        .unwrap_or_else(|| panic!("no transaction in the profile: {raw}"));
    assert_eq!(
        transaction["id"].as_str().map(|id| id.replace('-', "")),
        Some(event_id.replace('-', "")),
        "{raw}"
    );
    assert_eq!(
        transaction["trace_id"]
            .as_str()
            .map(|id| id.replace('-', "")),
        Some(trace_id.replace('-', ""))
    );
    let frames = raw["profile"]["frames"].as_array().expect("frames");
    let risk = frames
        .iter()
        .find(|f| {
            f["function"]
                .as_str()
                .is_some_and(|name| name.ends_with("risk_model"))
        })
        .unwrap_or_else(|| panic!("risk_model not in the stored frames: {frames:?}"));
    assert_eq!(risk["in_app"], true, "{risk}");
    let samples = raw["profile"]["samples"].as_array().expect("samples");
    assert!(
        samples.len() >= 10,
        "300 ms of CPU at 101 Hz: {}",
        samples.len()
    );
}
