//! Ingest load generator: a real server over a temporary SQLite file on loopback, and
//! `CONCURRENCY` clients posting a real Python-SDK error envelope (~8.8 KB, captured from
//! sentry-sdk by `fixtures/make_fixture.py`, gzip-compressed as the SDK does without brotli)
//! for `SECS` seconds. Reports accepted envelopes/s and latency percentiles.
//!
//! Run: `cargo bench -p lookout-server --bench ingest` (env `LOOKOUT_BENCH_SECS`,
//! `LOOKOUT_BENCH_CONCURRENCY`, `LOOKOUT_BENCH_SYNC=full|normal`).
#![allow(clippy::print_stdout, missing_docs)]

use lookout_server::RunningServer;
use lookout_server::config::{Config, Synchronous};
use std::io::Write;
use std::time::{Duration, Instant};

const ENVELOPE: &[u8] = include_bytes!("fixtures/python_error_envelope.bin");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches passes nothing
    // useful. Either way, run once.
    let secs: u64 = env_or("LOOKOUT_BENCH_SECS", 10);
    let concurrency: usize = env_or("LOOKOUT_BENCH_CONCURRENCY", 32);
    let sync = match std::env::var("LOOKOUT_BENCH_SYNC").as_deref() {
        Ok("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(secs, concurrency, sync));
}

async fn run(secs: u64, concurrency: usize, sync: Synchronous) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.ingest.synchronous = sync;
    let server = RunningServer::start(config).await.expect("server");
    let projects = server.store.list_projects().expect("projects");
    let url = format!("{}/api/{}/envelope/", server.base_url(), projects[0].id);
    let auth = format!(
        "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.68.0",
        projects[0].public_key
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(ENVELOPE).expect("gzip");
    let body = bytes::Bytes::from(gz.finish().expect("gzip"));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, auth, body) = (client.clone(), url.clone(), auth.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(100_000);
            let mut refused = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("x-sentry-auth", &auth)
                    .header("content-type", "application/x-sentry-envelope")
                    .header("content-encoding", "gzip")
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                } else {
                    refused += 1;
                }
            }
            (latencies_us, refused)
        }));
    }
    let mut all = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (l, r) = t.await.expect("task");
        all.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let commits = metric("lookout_inbox_commit_batch_size_count");
    let batch_mean = metric("lookout_inbox_commit_batch_size_sum") / commits.max(1.0);
    let commit_ms = 1000.0 * metric("lookout_inbox_commit_seconds_sum") / commits.max(1.0);
    server.stop().await.expect("stop");
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[i]) / 1000.0
    };
    println!(
        "ingest: {} cores, concurrency {concurrency}, synchronous={sync:?}, envelope {} B ({} B gzip), {secs} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        ENVELOPE.len(),
        body.len()
    );
    println!(
        "accepted {} ({:.0}/s), refused {refused}, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "inbox: {commits:.0} commits, {batch_mean:.1} envelopes per commit, {commit_ms:.2} ms per commit"
    );
}
