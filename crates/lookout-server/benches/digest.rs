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
#![allow(clippy::print_stdout, missing_docs)]

#[path = "shared/envelopes.rs"]
mod envelopes;
#[path = "shared/loadgen.rs"]
mod loadgen;

use lookout_server::RunningServer;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for k in ["error", "transaction"] {
        if kind == k || kind == "both" {
            runtime.block_on(run(k, count, concurrency, after));
        }
    }
}

async fn run(kind: &str, count: u64, concurrency: u64, after: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        digest_paused: after,
        ..Config::default()
    };
    let mut server = RunningServer::start(config.clone()).await.expect("server");
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
        server = RunningServer::start(config).await.expect("restart");
    }
    let metrics_url = format!("{}/metrics", server.base_url());
    // Sample the lag while sending and until the digest has caught up.
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let counter = if gzip {
        "lookout_digested_events_total"
    } else {
        "lookout_digested_transactions_total"
    };
    let mut max_lag = 0.0f64;
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
        max_lag = max_lag.max(metric(&text, "lookout_digest_lag_ms"));
        if sent_at.is_none() && sender.as_ref().is_none_or(|s| s.is_finished()) {
            sent_at = Some(started.elapsed());
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
            "digest {kind} (digest alone): {cores} cores, {count} envelopes already in the inbox: all digested in {:.2} s ({:.0}/s)",
            digested.as_secs_f64(),
            rate(digested),
        );
    } else {
        println!(
            "digest {kind}: {cores} cores, {count} envelopes at concurrency {concurrency}: accepted in {:.2} s ({:.0}/s), all digested in {:.2} s ({:.0}/s end to end), max lag {:.0} ms",
            sent.as_secs_f64(),
            rate(sent),
            digested.as_secs_f64(),
            rate(digested),
            max_lag
        );
    }
}
