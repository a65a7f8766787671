//! Ingest load generator: a real server over a temporary SQLite file on loopback, and
//! `CONCURRENCY` keep-alive connections (one load-generator thread, `shared/loadgen.rs`)
//! posting a real Python-SDK error envelope (~8.8 KB, captured from sentry-sdk by
//! `fixtures/make_fixture.py`, gzip-compressed as the SDK does without brotli) for `SECS`
//! seconds. Reports accepted envelopes/s and latency percentiles. The digest runs meanwhile,
//! as in production, unless `LOOKOUT_BENCH_DIGEST=paused` (ingest alone).
//!
//! Run: `cargo bench -p lookout-server --bench ingest` (env `LOOKOUT_BENCH_SECS`,
//! `LOOKOUT_BENCH_CONCURRENCY`, `LOOKOUT_BENCH_SYNC=full|normal`,
//! `LOOKOUT_BENCH_DIGEST=running|paused`).
#![allow(clippy::print_stdout, missing_docs)]

#[path = "shared/loadgen.rs"]
mod loadgen;

use lookout_server::RunningServer;
use lookout_server::config::{Config, Synchronous};
use std::io::Write;
use std::time::{Duration, Instant};

/// The allocator of the `lookout` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let paused = std::env::var("LOOKOUT_BENCH_DIGEST").as_deref() == Ok("paused");
    runtime.block_on(run(secs, concurrency, sync, paused));
}

async fn run(secs: u64, concurrency: usize, sync: Synchronous, paused: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    config.ingest.synchronous = sync;
    config.digest_paused = paused;
    let server = RunningServer::start(config).await.expect("server");
    let projects = server.store.list_projects().expect("projects");
    let auth = format!(
        "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.68.0",
        projects[0].public_key
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(ENVELOPE).expect("gzip");
    let body = bytes::Bytes::from(gz.finish().expect("gzip"));

    let request = loadgen::post(
        &format!("/api/{}/envelope/", projects[0].id),
        &[
            format!("x-sentry-auth: {auth}"),
            "content-type: application/x-sentry-envelope".into(),
            "content-encoding: gzip".into(),
        ],
        &body,
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let outcome = loadgen::spawn(server.addr, concurrency, move |_, _| {
        (Instant::now() < deadline).then(|| request.clone())
    })
    .join()
    .expect("load generator");
    let mut all = outcome.latencies_us;
    let refused = outcome.refused;
    let elapsed = outcome.elapsed.as_secs_f64();
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
        "ingest: {} cores, concurrency {concurrency}, synchronous={sync:?}, digest {}, envelope {} B ({} B gzip), {secs} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if paused { "paused" } else { "running" },
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
