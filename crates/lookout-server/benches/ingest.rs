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
//!
//! `LOOKOUT_BENCH_FLOOR=http|decode` measures what the machine gives before Lookout's own
//! work, with the same load generator and request: `http` is a bare axum server on the same
//! runtime that reads the body and answers 200 with an event id (no auth, no inbox);
//! `decode` also inflates the body and frames the envelope, as ingest checks it. What ingest
//! adds on top (auth, limits, the inbox's SQLite write and fsync) is the difference.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "shared/loadgen.rs"]
mod loadgen;

use lookout_server::Server;
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
    match std::env::var("LOOKOUT_BENCH_FLOOR").as_deref() {
        Ok(floor @ ("http" | "decode")) => {
            runtime.block_on(run_floor(secs, concurrency, floor == "decode"));
        }
        _ => runtime.block_on(run(secs, concurrency, sync, paused)),
    }
}

fn gzip_envelope() -> bytes::Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(ENVELOPE).expect("gzip");
    bytes::Bytes::from(gz.finish().expect("gzip"))
}

/// Accepted requests/s and latency percentiles, as printed by every mode.
fn report(outcome: loadgen::Outcome) -> String {
    let mut all = outcome.latencies_us;
    all.sort_unstable();
    let pct = |p: f64| loadgen::percentile(&all, p).map_or(0.0, |us| f64::from(us) / 1000.0);
    format!(
        "accepted {} ({:.0}/s), refused {}, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        all.len() as f64 / outcome.elapsed.as_secs_f64(),
        outcome.refused,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    )
}

/// The same load against a bare axum server: the floor under ingest on this machine.
async fn run_floor(secs: u64, concurrency: usize, decode: bool) {
    use axum::routing::post;
    let handler = move |body: bytes::Bytes| async move {
        if decode {
            let plain = lookout_protocol::codec::decode(
                &body,
                lookout_protocol::codec::Encoding::Gzip,
                20 * 1024 * 1024,
            )
            .map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
            let envelope = lookout_protocol::envelope::parse(&plain)
                .map_err(|_| axum::http::StatusCode::BAD_REQUEST)?;
            if envelope.items.is_empty() {
                return Err(axum::http::StatusCode::BAD_REQUEST);
            }
        }
        Ok(axum::Json(
            serde_json::json!({"id": "9ec79c33ec9942ab8353589fcb2e04dc"}),
        ))
    };
    let app = axum::Router::new().route("/api/{project_id}/envelope/", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let request = loadgen::post(
        "/api/1/envelope/",
        &[
            "content-type: application/x-sentry-envelope".into(),
            "content-encoding: gzip".into(),
        ],
        &gzip_envelope(),
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let outcome = loadgen::spawn(addr, concurrency, None, move |_, _| {
        (Instant::now() < deadline).then(|| request.clone())
    })
    .join()
    .expect("load generator");
    server.abort();
    println!(
        "ingest floor ({}): {} cores, concurrency {concurrency}, envelope {} B, {secs} s",
        if decode {
            "bare axum, inflate and frame the envelope"
        } else {
            "bare axum, read the body"
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        ENVELOPE.len(),
    );
    println!("{}", report(outcome));
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
    let server = Server::builder(config).start().await.expect("server");
    let projects = server.store.list_projects().expect("projects");
    let auth = format!(
        "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.68.0",
        projects[0].public_key
    );
    let body = gzip_envelope();

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
    let outcome = loadgen::spawn(server.addr, concurrency, None, move |_, _| {
        (Instant::now() < deadline).then(|| request.clone())
    })
    .join()
    .expect("load generator");
    let metrics = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let metric = |name: &str| loadgen::metric(&metrics, name);
    let commits = metric("lookout_inbox_commit_batch_size_count");
    let batch_mean = metric("lookout_inbox_commit_batch_size_sum") / commits.max(1.0);
    let commit_ms = 1000.0 * metric("lookout_inbox_commit_seconds_sum") / commits.max(1.0);
    server.stop().await.expect("stop");
    println!(
        "ingest: {} cores, concurrency {concurrency}, synchronous={sync:?}, digest {}, envelope {} B ({} B gzip), {secs} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if paused { "paused" } else { "running" },
        ENVELOPE.len(),
        body.len()
    );
    println!("{}", report(outcome));
    println!(
        "inbox: {commits:.0} commits, {batch_mean:.1} envelopes per commit, {commit_ms:.2} ms per commit"
    );
}
