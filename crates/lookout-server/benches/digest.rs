//! Digest throughput end to end: from the request to queryable through the API.
//!
//! A real server over a temporary SQLite file; `CONCURRENCY` clients post `COUNT` envelopes
//! (the ~8.8 KB Python-SDK error envelope of `fixtures/`, each with its own event id, or a
//! transaction with five spans), then the bench waits until the API reports every one of
//! them. It samples the digest lag (`lookout_digest_lag_ms`) every 100 ms meanwhile.
//!
//! Run: `cargo bench -p lookout-server --bench digest` (env `LOOKOUT_BENCH_COUNT`,
//! `LOOKOUT_BENCH_CONCURRENCY`, `LOOKOUT_BENCH_KIND=error|transaction|both`).
//!
//! `LOOKOUT_BENCH_DIGEST=after` measures the digest alone: the envelopes are posted with the
//! digest paused, the server is stopped and started again over the same data directory, and
//! the bench times how fast the digest drains the inbox with nothing else running.
//!
//! `LOOKOUT_BENCH_PROFILED=P` (0–100, default 0) gives P % of the transactions a profile
//! item of the shape sentry-python sends with `profiles_sample_rate` (100 samples of one
//! thread over the transaction, 30 frames, 10 stacks 12 to 21 deep, over the spans).
//!
//! `LOOKOUT_BENCH_RATE=N` sends at a steady N envelopes/s instead of as fast as the clients
//! can (sustained load): the bench reports the rate achieved and the lag sampled while
//! sending (median, 99th percentile, max, and the mean of the first and last thirds of the
//! run: a lag that grows with time is a digest that does not keep up).
#![allow(clippy::print_stdout, missing_docs)]

#[path = "shared/envelopes.rs"]
mod envelopes;
#[path = "shared/loadgen.rs"]
mod loadgen;

use lookout_server::Server;
use lookout_server::config::Config;
use std::time::{Duration, Instant};

/// The allocator of the `lookout` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let count: u64 = env_or("LOOKOUT_BENCH_COUNT", 50_000);
    let concurrency: u64 = env_or("LOOKOUT_BENCH_CONCURRENCY", 32);
    let kind = std::env::var("LOOKOUT_BENCH_KIND").unwrap_or_else(|_| "both".into());
    let after = std::env::var("LOOKOUT_BENCH_DIGEST").as_deref() == Ok("after");
    let profiled: u64 = env_or("LOOKOUT_BENCH_PROFILED", 0);
    let rate: Option<f64> = std::env::var("LOOKOUT_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r: &f64| *r > 0.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for k in ["error", "transaction"] {
        if kind == k || kind == "both" {
            runtime.block_on(run(k, count, concurrency, after, rate, profiled));
        }
    }
}

async fn run(
    kind: &str,
    count: u64,
    concurrency: u64,
    after: bool,
    pace: Option<f64>,
    profiled: u64,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        digest_paused: after,
        ..Config::default()
    };
    let mut server = Server::builder(config.clone())
        .start()
        .await
        .expect("server");
    let p = &server.store.list_projects().expect("projects")[0];
    let auth = format!("Sentry sentry_key={}, sentry_version=7", p.public_key);
    let gzip = kind == "error";
    let path = format!("/api/{}/envelope/", p.id);
    let mut headers = vec![format!("x-sentry-auth: {auth}")];
    if gzip {
        headers.push("content-encoding: gzip".into());
    }
    let requests: Vec<Vec<u8>> = (0..count)
        .map(|n| {
            let body = if gzip {
                envelopes::error_envelope(n)
            } else if n % 100 < profiled {
                with_profile(envelopes::transaction_envelope(n), n)
            } else {
                envelopes::transaction_envelope(n)
            };
            loadgen::post(&path, &headers, &body)
        })
        .collect();
    let client = reqwest::Client::new();
    let mut started = Instant::now();
    // Every envelope must be accepted.
    let accepted_all = |sender: std::thread::JoinHandle<loadgen::Outcome>| {
        let outcome = sender.join().expect("load generator");
        let accepted = outcome.latencies_us.len();
        assert!(
            outcome.refused == 0 && accepted as u64 == count,
            "{} envelopes refused, {accepted} accepted of {count}",
            outcome.refused
        );
    };
    // Connection `c` sends envelopes c, c + concurrency, …, each once.
    let mut sender = Some(loadgen::spawn(
        server.addr,
        concurrency as usize,
        pace.map(|r| Duration::from_secs_f64(1.0 / r)),
        move |c, n| {
            let i = usize::try_from(n * concurrency).ok()? + c;
            requests.get(i).cloned()
        },
    ));
    if after {
        // Everything in the inbox first; then the digest alone, from a fresh start.
        if let Some(sender) = sender.take() {
            accepted_all(sender);
        }
        server.stop().await.expect("stop");
        let config = Config {
            digest_paused: false,
            ..config
        };
        started = Instant::now();
        server = Server::builder(config).start().await.expect("restart");
    }
    let metrics_url = format!("{}/metrics", server.base_url());
    // Sample the lag while sending and until the digest has caught up.
    let metric = loadgen::metric;
    let counter = if gzip {
        "lookout_digested_events_total"
    } else {
        "lookout_digested_transactions_total"
    };
    let mut max_lag = 0.0f64;
    // The lag sampled while the clients are sending.
    let mut sending_lags: Vec<f64> = Vec::new();
    let mut sent_at = None;
    loop {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let lag = metric(&text, "lookout_digest_lag_ms");
        max_lag = max_lag.max(lag);
        if sent_at.is_none() && sender.as_ref().is_none_or(|s| s.is_finished()) {
            sent_at = Some(started.elapsed());
        }
        if sent_at.is_none() {
            sending_lags.push(lag);
        }
        if metric(&text, counter) as u64 >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let digested = started.elapsed();
    let sent = sent_at.unwrap_or(digested);
    if let Some(sender) = sender {
        accepted_all(sender);
    }
    server.stop().await.expect("stop");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    if after {
        println!(
            "digest {kind} (digest alone, {profiled} % profiled): {cores} cores, {count} envelopes already in the inbox: all digested in {:.2} s ({:.0}/s)",
            digested.as_secs_f64(),
            rate(digested),
        );
    } else if let Some(target) = pace {
        let third = sending_lags.len() / 3;
        let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64;
        let (first, last) = (
            mean(&sending_lags[..third]),
            mean(&sending_lags[sending_lags.len() - third..]),
        );
        sending_lags.sort_by(f64::total_cmp);
        let pct = |p: f64| loadgen::percentile(&sending_lags, p).unwrap_or(0.0);
        println!(
            "digest {kind}: {cores} cores, {count} envelopes paced at {target:.0}/s on {concurrency} connections: sent in {:.2} s ({:.0}/s), all digested {:.2} s after sending began",
            sent.as_secs_f64(),
            rate(sent),
            digested.as_secs_f64(),
        );
        println!(
            "lag while sending ({} samples): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; mean of the first third {first:.0} ms, of the last third {last:.0} ms",
            sending_lags.len(),
            pct(0.5),
            pct(0.99),
            max_lag,
        );
    } else {
        println!(
            "digest {kind} ({profiled} % profiled): {cores} cores, {count} envelopes at concurrency {concurrency}: accepted in {:.2} s ({:.0}/s), all digested in {:.2} s ({:.0}/s end to end), max lag {:.0} ms",
            sent.as_secs_f64(),
            rate(sent),
            digested.as_secs_f64(),
            rate(digested),
            max_lag
        );
    }
}

/// `envelope` (a transaction from [`envelopes::transaction_envelope`], ending now and lasting
/// 0.5 s) with a v1 profile item for it: 100 samples 5 ms apart on the transaction's thread,
/// 30 frames (a third in the app), 10 distinct stacks 12 to 21 frames deep, leaf first.
fn with_profile(mut envelope: Vec<u8>, n: u64) -> Vec<u8> {
    let start = chrono::Utc::now() - chrono::Duration::milliseconds(500);
    let frames: Vec<serde_json::Value> = (0..30)
        .map(|i| {
            serde_json::json!({"function": format!("fn_{i}"), "module": format!("vol_arb.module_{}", i / 5),
                "filename": format!("vol_arb/module_{}.py", i / 5), "abs_path": format!("/srv/vol_arb/module_{}.py", i / 5),
                "lineno": 10 + i, "in_app": i % 3 == 0})
        })
        .collect();
    let stacks: Vec<Vec<u32>> = (0..10u32)
        .map(|s| (0..12 + s).rev().map(|d| (d + s) % 30).collect())
        .collect();
    let samples: Vec<serde_json::Value> = (0..100u64)
        .map(|i| {
            serde_json::json!({"stack_id": (i / 10) % 10, "thread_id": "140001",
                "elapsed_since_start_ns": (i * 5_000_000).to_string()})
        })
        .collect();
    let profile = serde_json::json!({
        "event_id": format!("{:032x}", u128::from(n) + (1u128 << 100)),
        "version": "1", "platform": "python", "release": "vol-arb@1.0.0", "environment": "production",
        "timestamp": start.to_rfc3339(),
        "device": {"architecture": "x86_64"}, "os": {"name": "Linux", "version": "6.1"},
        "runtime": {"name": "CPython", "version": "3.12.3"},
        "transactions": [{"id": format!("{:032x}", n + 1), "name": "Order Pipeline: BTC buy",
            "relative_start_ns": "0", "relative_end_ns": "500000000",
            "trace_id": format!("{:032x}", n + 1), "active_thread_id": "140001"}],
        "profile": {"frames": frames, "stacks": stacks, "samples": samples,
            "thread_metadata": {"140001": {"name": "MainThread"}, "140002": {"name": "sentry.monitor"}}},
    })
    .to_string();
    envelope.extend_from_slice(
        format!(
            "{{\"type\":\"profile\",\"length\":{}}}\n{profile}\n",
            profile.len()
        )
        .as_bytes(),
    );
    envelope
}
