//! Ingest and end-to-end digest on each backend, in one sitting: the embedded SQLite store,
//! PostgreSQL with one node, and PostgreSQL with two nodes sharing it (two servers in this
//! process, each with its own pools, inbox writer and digest, as two `lookout serve` would
//! run on this machine).
//!
//! `COUNT` copies of the Python-SDK error envelope of `fixtures/` (each with its own event
//! id) are posted by `CONCURRENCY` keep-alive connections, spread evenly over the nodes;
//! the bench reports when every one was answered 200 (ingest) and when every one was
//! digested (end to end), and the machine's CPU time per envelope over the whole run, read
//! from `/proc/stat`: the server, PostgreSQL and the load generator together, so the
//! backends are compared on everything they cost.
//!
//! Run: `cargo bench -p lookout-server --bench cluster` (env `LOOKOUT_BENCH_COUNT`,
//! `LOOKOUT_BENCH_CONCURRENCY`, `LOOKOUT_BENCH_ROUNDS`, `LOOKOUT_BENCH_ONLY=sqlite|pg1|pg2`,
//! `LOOKOUT_BENCH_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, where
//! a scratch database is created and dropped for each run).
#![allow(clippy::print_stdout, missing_docs)]

#[allow(dead_code)]
#[path = "shared/envelopes.rs"]
mod envelopes;
#[allow(dead_code)]
#[path = "shared/loadgen.rs"]
mod loadgen;

use lookout_server::config::Config;
use lookout_server::{RunningServer, Server};
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

/// Busy and total jiffies of the whole machine.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// CPU time (jiffies) of every process named `postgres` on the machine (the server and its
/// backends), to tell PostgreSQL's share from Lookout's.
fn postgres_jiffies() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid … utime(14) stime(15), counted after the comm's ')'.
            let (head, rest) = stat.rsplit_once(')')?;
            if !head.ends_with("(postgres") {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn admin(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("PostgreSQL");
        c.batch_execute(&sql).expect("admin statement");
    })
    .join()
    .expect("admin thread");
}

struct Outcome {
    ingest_s: f64,
    digest_s: f64,
    cpu_ms_per_envelope: f64,
    /// PostgreSQL's part of it.
    postgres_ms_per_envelope: f64,
    /// Busy cores over the run (of the machine's).
    busy_cores: f64,
}

async fn run(label: &str, nodes: usize, count: u64, concurrency: u64) -> Outcome {
    let admin_url = std::env::var("LOOKOUT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let db_name = format!("lookout_bench_{}", std::process::id());
    let database_url = (nodes > 0).then(|| {
        admin(
            &admin_url,
            format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
        );
        admin(&admin_url, format!("CREATE DATABASE {db_name}"));
        let (server, _) = admin_url.rsplit_once('/').expect("URL with a database");
        format!("{server}/{db_name}")
    });
    let mut servers: Vec<RunningServer> = Vec::new();
    for _ in 0..nodes.max(1) {
        let config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_owned(),
            database_url: database_url.clone(),
            ..Config::default()
        };
        servers.push(Server::builder(config).start().await.expect("server"));
    }
    let p = &servers[0].store.list_projects().expect("projects")[0];
    let auth = format!("Sentry sentry_key={}, sentry_version=7", p.public_key);
    let path = format!("/api/{}/envelope/", p.id);
    let headers = vec![
        format!("x-sentry-auth: {auth}"),
        "content-encoding: gzip".to_owned(),
    ];
    let requests: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(
        (0..count)
            .map(|n| loadgen::post(&path, &headers, &envelopes::error_envelope(n)))
            .collect(),
    );
    let client = reqwest::Client::new();
    let (busy0, total0) = cpu_jiffies();
    let pg0 = postgres_jiffies();
    let started = Instant::now();
    // Node k's connections send envelopes k, k + nodes, … (each once).
    let per_node = (concurrency as usize / servers.len()).max(1);
    let stride = (per_node * servers.len()) as u64;
    let senders: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let requests = std::sync::Arc::clone(&requests);
            loadgen::spawn(s.addr, per_node, None, move |c, n| {
                let i = usize::try_from(n * stride).ok()? + k * per_node + c;
                requests.get(i).cloned()
            })
        })
        .collect();
    let mut accepted = 0;
    for s in senders {
        let o = s.join().expect("load generator");
        assert_eq!(o.refused, 0, "{label}: envelopes refused");
        accepted += o.latencies_us.len();
    }
    assert_eq!(accepted as u64, count, "{label}: every envelope accepted");
    let ingest_s = started.elapsed().as_secs_f64();
    loop {
        let mut digested = 0.0;
        for s in &servers {
            let text = client
                .get(format!("{}/metrics", s.base_url()))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            digested += loadgen::metric(&text, "lookout_digested_events_total");
        }
        if digested as u64 >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let digest_s = started.elapsed().as_secs_f64();
    let (busy1, total1) = cpu_jiffies();
    let pg1 = postgres_jiffies();
    for s in servers {
        s.stop().await.expect("stop");
    }
    if database_url.is_some() {
        admin(
            &admin_url,
            format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
        );
    }
    let ticks = 100.0; // USER_HZ on Linux
    let cpu_s = (busy1 - busy0) as f64 / ticks;
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    Outcome {
        ingest_s,
        digest_s,
        cpu_ms_per_envelope: cpu_s * 1000.0 / count as f64,
        postgres_ms_per_envelope: pg1.saturating_sub(pg0) as f64 / ticks * 1000.0 / count as f64,
        busy_cores: (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores,
    }
}

fn main() {
    let count: u64 = env_or("LOOKOUT_BENCH_COUNT", 20_000);
    let concurrency: u64 = env_or("LOOKOUT_BENCH_CONCURRENCY", 32);
    let rounds: usize = env_or("LOOKOUT_BENCH_ROUNDS", 3);
    let only = std::env::var("LOOKOUT_BENCH_ONLY").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let setups: [(&str, usize); 3] = [("sqlite", 0), ("pg1", 1), ("pg2", 2)];
    let mut results: Vec<(&str, Vec<Outcome>)> = setups
        .iter()
        .filter(|(l, _)| only.as_deref().is_none_or(|o| o == *l))
        .map(|(l, _)| (*l, Vec::new()))
        .collect();
    // Alternate the setups round by round, so the machine's noise falls on all of them.
    for _ in 0..rounds {
        for (label, outcomes) in &mut results {
            let nodes = setups.iter().find(|(l, _)| l == label).map_or(0, |s| s.1);
            outcomes.push(runtime.block_on(run(label, nodes, count, concurrency)));
        }
    }
    println!(
        "cluster bench: {cores} cores, {count} error envelopes (~8.8 KB gzip) per run on {concurrency} connections, {rounds} rounds alternated; medians"
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut sqlite_e2e = None;
    for (label, outcomes) in results {
        let ingest = median(outcomes.iter().map(|o| count as f64 / o.ingest_s).collect());
        let e2e = median(outcomes.iter().map(|o| count as f64 / o.digest_s).collect());
        let cpu = median(outcomes.iter().map(|o| o.cpu_ms_per_envelope).collect());
        let pg = median(
            outcomes
                .iter()
                .map(|o| o.postgres_ms_per_envelope)
                .collect(),
        );
        let busy = median(outcomes.iter().map(|o| o.busy_cores).collect());
        if label == "sqlite" {
            sqlite_e2e = Some(e2e);
        }
        let ratio = sqlite_e2e.map_or(String::new(), |s| {
            format!(", {:.2}× SQLite end to end", e2e / s)
        });
        println!(
            "{label:>6}: ingest {ingest:>6.0}/s, end to end {e2e:>6.0}/s, machine CPU {cpu:.3} ms per envelope (PostgreSQL {pg:.3}), {busy:.2} of {cores} cores busy{ratio}"
        );
    }
}
