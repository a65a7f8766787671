//! Profiles (issue 26) against the real Python `sentry-sdk` with `profiles_sample_rate=1.0`:
//! a CPU-bound function inside a `risk.check` span shows in the stored raw profile, in the
//! transaction's aggregated flame graph, in the part of the profile inside that span, and at
//! the top of the self-time list of the span op; the transaction and its trace name the
//! profile. Bad profiles are refused one by one (reason counted in `/metrics`), the rest of
//! their envelope kept. A continuous profiling chunk (v2) is stored and readable.

mod common;

use common::{TestServer, run_python};
use serde_json::{Value, json};
use std::io::Write;

const SCRIPT: &str = r#"
import hashlib, os, time, sentry_sdk

sentry_sdk.init(
    dsn=os.environ["DSN"],
    release="py-agent@3.0.0",
    environment="paper",
    traces_sample_rate=1.0,
    profiles_sample_rate=1.0,
)

def risk_model():
    digest = b"order"
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
    return digest

with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy"):
    with sentry_sdk.start_span(op="signal.validate", name="signal"):
        time.sleep(0.05)
    with sentry_sdk.start_span(op="risk.check", name="risk"):
        risk_model()
sentry_sdk.flush(timeout=10)
print("sent")
"#;

const TRANSACTION: &str = "Order Pipeline: BTC buy";

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn frame_names(frames: &Value, key: &str) -> Vec<String> {
    frames
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f[key].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_profile_shows_in_raw_flamegraph_and_top_functions() {
    let s = TestServer::start().await;
    let out = run_python(SCRIPT, &[("DSN", s.dsn())]).await;
    assert!(out.contains("sent"), "{out}");
    let token = s.token();
    let project = s.project_id();

    // The transaction, then its trace with the profile id on its spans.
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
    let (status, trace) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/traces/{trace_id}/"),
        )
        .await;
    assert_eq!(status, 200, "{trace}");
    let profile_id = trace["profiles"][0]["profileId"]
        .as_str()
        .unwrap_or_else(|| panic!("trace names no profile: {trace}"))
        .to_owned();
    assert_eq!(trace["profiles"][0]["eventId"], event_id.as_str());
    let spans = trace["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .all(|sp| sp["profileId"] == profile_id.as_str()),
        "{trace}"
    );

    // The stored transaction carries the profile's id as Sentry's does.
    let (status, event) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/events/{event_id}/"),
        )
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(
        event["contexts"]["profile"]["profile_id"],
        profile_id.as_str(),
        "{event}"
    );

    // The raw profile, in Sentry's v1 shape.
    let (status, raw) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/profiling/profiles/{profile_id}/"),
        )
        .await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["version"], "1");
    assert_eq!(raw["event_id"], profile_id.as_str());
    assert!(
        frame_names(&raw["profile"]["frames"], "function").contains(&"risk_model".to_owned()),
        "{}",
        raw["profile"]["frames"]
    );
    assert!(
        !raw["profile"]["samples"]
            .as_array()
            .expect("samples")
            .is_empty()
    );

    // The transaction's aggregated flame graph.
    let query = encode(&format!("transaction:\"{TRANSACTION}\""));
    let (status, graph) = s
        .api(
            &token,
            &format!(
                "/api/0/organizations/default/profiling/flamegraph/?project={project}&query={query}&statsPeriod=1h"
            ),
        )
        .await;
    assert_eq!(status, 200, "{graph}");
    let names = frame_names(&graph["shared"]["frames"], "name");
    let risk = names
        .iter()
        .position(|n| n == "risk_model")
        .unwrap_or_else(|| panic!("risk_model not in the flame graph: {names:?}"));
    let profile0 = &graph["profiles"][0];
    let samples = profile0["samples"].as_array().expect("samples");
    let weights = profile0["weights"].as_array().expect("weights");
    assert_eq!(samples.len(), weights.len());
    let risk_ns: u64 = samples
        .iter()
        .zip(weights)
        .filter(|(s, _)| s.as_array().is_some_and(|s| s.contains(&json!(risk))))
        .map(|(_, w)| w.as_u64().unwrap_or(0))
        .sum();
    assert!(
        risk_ns >= 100_000_000,
        "risk_model took {risk_ns} ns: {graph}"
    );
    assert_eq!(
        graph["shared"]["profiles"][0]["profile_id"],
        profile_id.as_str()
    );

    // Top functions of the span op: risk_model first, with about 300 ms of self time.
    let top = |op: &'static str| {
        let s = &s;
        let token = token.clone();
        async move {
            let q = encode(&format!("transaction:\"{TRANSACTION}\" span.op:{op}"));
            let (status, v) = s
                .api(
                    &token,
                    &format!(
                        "/api/0/organizations/default/profiling/functions/?project=default&query={q}&statsPeriod=1h"
                    ),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    let risk_top = top("risk.check").await;
    let first = &risk_top["data"][0];
    assert_eq!(first["function"], "risk_model", "{risk_top}");
    let self_ns = first["sum(function.self_time)"].as_u64().unwrap_or(0);
    assert!(self_ns >= 100_000_000, "{risk_top}");
    assert_eq!(first["previous_sum(function.self_time)"], 0);
    let signal_top = top("signal.validate").await;
    assert!(
        !signal_top["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|f| f["function"] == "risk_model"),
        "{signal_top}"
    );

    // The service the trace page uses: the part of the profile inside the risk.check span.
    let view =
        lookout_server::services::profiles::for_transaction(&s.server.store, project, &event_id)
            .await
            .expect("profile view")
            .expect("the transaction was profiled");
    assert_eq!(view.profile_id, profile_id);
    let span = |op: &str| {
        let sp = spans
            .iter()
            .find(|sp| sp["op"] == op)
            .unwrap_or_else(|| panic!("no {op} span"));
        let ns = |k: &str| {
            ((sp[k].as_f64().expect("span time") * 1000.0 - view.transaction_start_ms) * 1e6)
                .max(0.0) as u64
        };
        (ns("startTimestamp"), ns("timestamp"))
    };
    let (a, b) = span("risk.check");
    let inside = view.window(a, b);
    let risk_frame = inside
        .frames
        .iter()
        .position(|f| f.name == "risk_model")
        .expect("risk_model inside the risk.check span");
    assert!(
        inside
            .stacks
            .iter()
            .any(|st| st.frames.last() == Some(&(risk_frame as u32))),
        "{inside:?}"
    );
    let (a, b) = span("signal.validate");
    assert!(
        !view
            .window(a, b)
            .frames
            .iter()
            .any(|f| f.name == "risk_model"),
        "risk_model outside its span"
    );
}

/// An envelope of `items` (type, payload).
fn envelope(items: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"{}\n".to_vec();
    for (t, payload) in items {
        out.extend_from_slice(
            json!({"type": t, "length": payload.len()})
                .to_string()
                .as_bytes(),
        );
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    }
    out
}

fn v1_profile(profile_id: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "event_id": profile_id,
        "version": "1",
        "platform": "python",
        "timestamp": now.to_rfc3339(),
        "transactions": [{"id": "f".repeat(32), "name": "orphan", "trace_id": "e".repeat(32),
                          "active_thread_id": "1"}],
        "profile": {
            "frames": [{"function": "main", "module": "bot"}, {"function": "size", "module": "bot"}],
            "stacks": [[1, 0]],
            "samples": [
                {"stack_id": 0, "thread_id": "1", "elapsed_since_start_ns": "0"},
                {"stack_id": 0, "thread_id": "1", "elapsed_since_start_ns": "10000000"}
            ],
            "thread_metadata": {"1": {"name": "MainThread"}}
        }
    })
}

fn metric(m: &str, name: &str, reason: &str) -> u64 {
    let prefix = format!("{name}{{item_type=\"profile\",reason=\"{reason}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_profiles_are_refused_alone_with_their_reason() {
    // The default cap on a decoded envelope (100 MiB, as Relay's) leaves room for a 50 MiB
    // item beside an event.
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let token = s.token();

    let mut wrong_version = v1_profile(&"1".repeat(32));
    wrong_version["version"] = json!("7");
    let mut truncated = v1_profile(&"2".repeat(32));
    truncated["profile"]["samples"][1]["stack_id"] = json!(3);
    let mut frame_out = v1_profile(&"3".repeat(32));
    frame_out["profile"]["stacks"][0] = json!([1, 0, 9]);
    let cases = [
        ("invalid_version", wrong_version),
        ("truncated_samples", truncated),
        ("frame_out_of_range", frame_out),
    ];
    for (reason, profile) in &cases {
        // Distinct words: grouping ignores numbers in messages.
        let event = json!({"message": format!("kept beside {reason}"), "level": "error"});
        let body = envelope(&[
            ("event", event.to_string().into_bytes()),
            ("profile", profile.to_string().into_bytes()),
        ]);
        s.post_envelope(&client, body).await;
    }

    // The bomb: a valid-looking 50 MiB profile, gzip-compressed to a small body.
    let mut bomb = v1_profile(&"4".repeat(32));
    bomb["padding"] = json!("0".repeat(50 << 20));
    let event = json!({"message": "kept beside the bomb", "level": "error"});
    let plain = envelope(&[
        ("event", event.to_string().into_bytes()),
        ("profile", bomb.to_string().into_bytes()),
    ]);
    assert!(plain.len() > 50 << 20);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).expect("gzip");
    let body = gz.finish().expect("gzip");
    drop(plain);
    assert!(body.len() < 1 << 20, "{} bytes", body.len());
    let r = client
        .post(s.envelope_url())
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={}, sentry_version=7", s.key()),
        )
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .expect("bomb request");
    assert_eq!(r.status(), 200);

    // A good profile in the same kind of envelope is kept, so the refusals above are the
    // profiles' own.
    let good = v1_profile(&"5".repeat(32));
    s.post_envelope(
        &client,
        envelope(&[("profile", good.to_string().into_bytes())]),
    )
    .await;

    // Every event was kept.
    let titles = s
        .eventually("the events beside the bad profiles", || async {
            let (_, v) = s
                .api(&token, "/api/0/projects/default/default/issues/?query=")
                .await;
            let titles: Vec<String> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["title"].as_str().map(str::to_owned))
                .collect();
            (titles.len() == 4).then_some(titles)
        })
        .await;
    assert!(
        titles.iter().any(|t| t == "kept beside the bomb"),
        "{titles:?}"
    );
    let good_path = format!(
        "/api/0/projects/default/default/profiling/profiles/{}/",
        "5".repeat(32)
    );
    s.eventually("the good profile", || async {
        (s.api(&token, &good_path).await.0 == 200).then_some(())
    })
    .await;

    // Each refusal counted with its reason; none of the bad profiles stored.
    let m = s
        .eventually("refusals counted", || async {
            let m = s.metrics().await;
            cases
                .iter()
                .all(|(reason, _)| metric(&m, "lookout_digest_rejected_items_total", reason) == 1)
                .then_some(m)
        })
        .await;
    assert_eq!(
        metric(&m, "lookout_items_refused_total", "too_large"),
        1,
        "{m}"
    );
    for id in ["1", "2", "3", "4"] {
        let (status, _) = s
            .api(
                &token,
                &format!(
                    "/api/0/projects/default/default/profiling/profiles/{}/",
                    id.repeat(32)
                ),
            )
            .await;
        assert_eq!(status, 404, "profile {id} stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_profiling_chunk_is_stored_and_readable() {
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let token = s.token();
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let chunk = json!({
        "version": "2",
        "platform": "python",
        "release": "py-agent@3.0.0",
        "profiler_id": "a".repeat(32),
        "chunk_id": "b".repeat(32),
        "client_sdk": {"name": "sentry.python", "version": "2.0.0"},
        "profile": {
            "frames": [{"function": "tick", "module": "bot", "in_app": true,
                        "vars": {"api_key": "sk_live_abcdefghijklmnopqrstu"}}],
            "stacks": [[0]],
            "samples": [
                {"stack_id": 0, "thread_id": "1", "timestamp": now},
                {"stack_id": 0, "thread_id": "1", "timestamp": now + 0.01}
            ],
            "thread_metadata": {"1": {"name": "MainThread"}}
        }
    });
    s.post_envelope(
        &client,
        envelope(&[("profile_chunk", chunk.to_string().into_bytes())]),
    )
    .await;
    let path = format!(
        "/api/0/projects/default/default/profiling/profiles/{}/",
        "b".repeat(32)
    );
    let raw = s
        .eventually("the chunk stored", || async {
            let (status, v) = s.api(&token, &path).await;
            (status == 200).then_some(v)
        })
        .await;
    assert_eq!(raw["version"], "2");
    assert_eq!(raw["profiler_id"], "a".repeat(32));
    assert_eq!(raw["profile"]["frames"][0]["function"], "tick");
    assert!(!raw.to_string().contains("sk_live_"), "{raw}");

    // Profiles have their own retention.
    let config = lookout_server::config::RetentionConfig {
        profiles_days: 30,
        ..Default::default()
    };
    let now = chrono::Utc::now().timestamp_millis();
    let sweep = |at: i64| {
        let store = s.server.store.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || store.sweep(&config, at).expect("sweep"))
    };
    assert_eq!(
        sweep(now + 29 * 86_400_000).await.expect("sweep").profiles,
        0
    );
    assert_eq!(s.api(&token, &path).await.0, 200);
    assert_eq!(
        sweep(now + 31 * 86_400_000).await.expect("sweep").profiles,
        1
    );
    assert_eq!(s.api(&token, &path).await.0, 404);
}

const CONTINUOUS_SCRIPT: &str = r#"
import hashlib, os, time, sentry_sdk
from sentry_sdk.profiler import start_profiler, stop_profiler

sentry_sdk.init(
    dsn=os.environ["DSN"],
    release="py-agent@3.0.0",
    traces_sample_rate=1.0,
    profile_session_sample_rate=1.0,
    profile_lifecycle="manual",
)

def risk_model():
    digest = b"order"
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
    return digest

start_profiler()
with sentry_sdk.start_transaction(op="order.pipeline", name="Continuous Pipeline"):
    with sentry_sdk.start_span(op="signal.validate", name="signal"):
        time.sleep(0.05)
    with sentry_sdk.start_span(op="risk.check", name="risk"):
        risk_model()
# Stopping joins the profiler's thread, which sends its last chunk.
stop_profiler()
sentry_sdk.flush(timeout=10)
print("sent")
"#;

/// Continuous profiling (v2 chunks): the real sentry-python's transaction names its
/// profiler session (`contexts.profile.profiler_id`); the trace names that session and
/// `for_transaction` builds the transaction's profile from the chunks' samples inside it,
/// so a CPU-bound function shows inside its span and not in the span before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_profiling_chunks_link_to_their_transaction() {
    let s = TestServer::start().await;
    let out = run_python(CONTINUOUS_SCRIPT, &[("DSN", s.dsn())]).await;
    assert!(out.contains("sent"), "{out}");
    let token = s.token();
    let project = s.project_id();

    let recent = s
        .eventually("transaction digested", || async {
            let (_, v) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/transactions/recent/",
                )
                .await;
            v["data"].as_array().and_then(|d| {
                d.iter()
                    .find(|t| t["transaction"] == "Continuous Pipeline")
                    .cloned()
            })
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
    let profiler_id = event["contexts"]["profile"]["profiler_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no profiler id: {event}"))
        .to_owned();

    // The trace names the session once its chunks are stored.
    let trace_path = format!("/api/0/projects/default/default/traces/{trace_id}/");
    let trace = s
        .eventually("the trace names the profiler session", || async {
            let (status, v) = s.api(&token, &trace_path).await;
            (status == 200 && v["profiles"][0]["profilerId"].is_string()).then_some(v)
        })
        .await;
    assert_eq!(trace["profiles"][0]["profilerId"], profiler_id.as_str());
    assert_eq!(trace["profiles"][0]["eventId"], event_id.as_str());
    assert!(trace["profiles"][0]["profileId"].is_null(), "{trace}");
    let spans = trace["spans"].as_array().expect("spans");
    assert!(
        spans
            .iter()
            .all(|sp| sp["profilerId"] == profiler_id.as_str()),
        "{trace}"
    );

    let view =
        lookout_server::services::profiles::for_transaction(&s.server.store, project, &event_id)
            .await
            .expect("profile view")
            .expect("the transaction was profiled continuously");
    assert_eq!(view.profiler_id.as_deref(), Some(profiler_id.as_str()));
    assert_eq!(view.event_id, event_id);
    // The view's first chunk is readable as it was stored.
    let (status, raw) = s
        .api(
            &token,
            &format!(
                "/api/0/projects/default/default/profiling/profiles/{}/",
                view.profile_id
            ),
        )
        .await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(raw["version"], "2");
    assert_eq!(raw["profiler_id"], profiler_id.as_str());

    let span = |op: &str| {
        let sp = spans
            .iter()
            .find(|sp| sp["op"] == op)
            .unwrap_or_else(|| panic!("no {op} span"));
        let ns = |k: &str| {
            ((sp[k].as_f64().expect("span time") * 1000.0 - view.transaction_start_ms) * 1e6)
                .max(0.0) as u64
        };
        (ns("startTimestamp"), ns("timestamp"))
    };
    let (a, b) = span("risk.check");
    let inside = view.window(a, b);
    let risk_frame = inside
        .frames
        .iter()
        .position(|f| f.name == "risk_model")
        .unwrap_or_else(|| panic!("risk_model not inside the risk.check span: {inside:?}"));
    let risk_ns: u64 = inside
        .stacks
        .iter()
        .filter(|st| st.frames.last() == Some(&(risk_frame as u32)))
        .map(|st| st.weight_ns)
        .sum();
    assert!(risk_ns >= 100_000_000, "risk_model took {risk_ns} ns");
    let (a, b) = span("signal.validate");
    assert!(
        !view
            .window(a, b)
            .frames
            .iter()
            .any(|f| f.name == "risk_model"),
        "risk_model outside its span"
    );
    // Nothing of the session falls outside the transaction.
    let whole = view.flamegraph();
    let duration_ns = ((recent["duration"].as_f64().expect("duration") + 1.0) * 1e6) as u64;
    assert!(whole.total_ns() <= duration_ns + 50_000_000, "{whole:?}");
}
