//! Web UI page times with a million events stored.
//!
//! Fills a fresh data directory straight through SQL with the shape the digest writes
//! (1,000,000 events: 700,000 errors over 1,000 issues and 300,000 `order.pipeline`
//! transactions with five stage spans each, spread over 7 days, from 50 agents on 4
//! assets; their tags, rollups, sessions, agents and check-ins), starts a real server on
//! it, logs in, and requests every page `ROUNDS` times over loopback. Reports the median
//! and the worst time per page; the target is < 100 ms each.
//!
//! Run: `cargo bench -p lookout-server --bench ui_pages` (env `LOOKOUT_BENCH_EVENTS`,
//! `LOOKOUT_BENCH_ROUNDS`).
#![allow(clippy::print_stdout, missing_docs)]

use lookout_protocol::sketch::DDSketch;
use lookout_server::Server;
use lookout_server::config::Config;
use rusqlite::params;
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password-123";
const ISSUES: i64 = 1_000;
const AGENTS: i64 = 50;
const ASSETS: [&str; 4] = ["BTC", "ETH", "SOL", "ARB"];
const STAGES: [&str; 5] = [
    "signal.validate",
    "risk.check",
    "order.size",
    "http.client",
    "order.confirm",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn compress(v: &serde_json::Value) -> Vec<u8> {
    zstd::bulk::compress(&serde_json::to_vec(v).unwrap_or_default(), 3).unwrap_or_default()
}

fn fill(db: &std::path::Path, events: i64, now: i64) -> rusqlite::Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let tx = conn.transaction()?;
    let errors = events * 7 / 10;
    let transactions = events - errors;
    let span_ms = 7 * 86_400_000;
    let error_payload = compress(&serde_json::json!({
        "level": "error", "platform": "rust", "message": "order rejected",
        "exception": {"values": [{"type": "OrderRejected", "value": "leverage above the cap",
            "stacktrace": {"frames": [{"function": "place_order", "module": "bot::orders", "lineno": 42, "in_app": true}]}}]},
        "breadcrumbs": {"values": [
            {"category": "trade.signal", "message": "z=2.3 buy", "timestamp": 1.0},
            {"category": "trade.risk", "message": "max_leverage ok", "timestamp": 1.1},
            {"category": "http", "type": "http", "message": "POST /v1/trade/open 400", "timestamp": 1.2}]},
        "contexts": {"trading": {"asset": "BTC", "open_positions": 2, "portfolio_value_usd": 10250.5}},
        "tags": {"trade.asset": "BTC", "trade.phase": "order_placement", "agent_id": "ag_1"},
    }));
    for i in 0..ISSUES {
        let asset = ASSETS[(i % 4) as usize];
        tx.execute(
            "INSERT INTO issues (project_id, short_seq, hash, title, culprit, level, kind, metadata, status, first_seen, last_seen, times_seen, user_count, first_release)
             VALUES (1, ?1, ?2, ?3, 'bot::orders in place_order', 'error', 'error', '{}', 'unresolved', ?4, ?5, ?6, 3, ?7)",
            params![
                i + 1,
                format!("{i:032x}"),
                format!("OrderRejected: leverage above the cap ({asset}, variant {i})"),
                now - span_ms,
                now - i * 1000,
                errors / ISSUES,
                format!("bot@1.{}", i % 20)
            ],
        )?;
        for (k, v) in [
            ("trade.asset", asset.to_owned()),
            ("trade.phase", "order_placement".to_owned()),
            ("agent_id", format!("ag_{}", i % AGENTS)),
            ("service", "trading".to_owned()),
        ] {
            tx.execute(
                "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![i + 1, k, v, errors / ISSUES, now - span_ms, now],
            )?;
        }
    }
    {
        let mut ev = tx.prepare(
            "INSERT INTO events (project_id, event_id, issue_id, kind, timestamp, received_at, level, release, environment, transaction_name, trace_id, user_key, title, payload)
             VALUES (1, ?1, ?2, ?3, ?4, ?4, ?5, ?6, 'prod', ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut tag =
            tx.prepare("INSERT INTO event_tags (key, value, event_row) VALUES (?1, ?2, ?3)")?;
        let mut span = tx.prepare(
            "INSERT INTO spans (event_row, trace_id, span_id, parent_span_id, op, description, status, start_ms, duration_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ok', ?7, ?8, NULL)",
        )?;
        let mut rollup = tx.prepare(
            "INSERT INTO rollup_events (project_id, minute, issue_id, release, environment, level, count) VALUES (1, ?1, ?2, ?3, 'prod', 'error', 1)
             ON CONFLICT DO UPDATE SET count = count + 1",
        )?;
        for n in 0..events {
            let ts = now - (n * span_ms / events);
            let agent = format!("ag_{}", n % AGENTS);
            let release = format!("bot@1.{}", n % 20);
            // Seven errors for every three transactions, interleaved in time.
            if n % 10 < 7 {
                let issue = n % ISSUES + 1;
                ev.execute(params![
                    format!("{n:032x}"),
                    issue,
                    "error",
                    ts,
                    "error",
                    release,
                    Option::<String>::None,
                    Option::<String>::None,
                    format!("id:{agent}"),
                    "OrderRejected: leverage above the cap",
                    error_payload
                ])?;
                let row = tx.last_insert_rowid();
                tag.execute(params!["agent_id", agent, row])?;
                tag.execute(params!["trade.asset", ASSETS[(issue % 4) as usize], row])?;
                tag.execute(params!["level", "error", row])?;
                rollup.execute(params![ts - ts.rem_euclid(60_000), issue, release])?;
            } else {
                let trace = format!("{n:032x}");
                let tx_payload = compress(&serde_json::json!({
                    "type": "transaction", "transaction": "Order Pipeline: BTC buy",
                    "start_timestamp": (ts - 40) as f64 / 1000.0, "timestamp": ts as f64 / 1000.0,
                    "contexts": {"trace": {"trace_id": trace, "span_id": "a".repeat(16), "op": "order.pipeline", "status": "ok"}},
                }));
                ev.execute(params![
                    format!("{n:032x}"),
                    Option::<i64>::None,
                    "transaction",
                    ts,
                    "info",
                    release,
                    "Order Pipeline: BTC buy",
                    trace,
                    format!("id:{agent}"),
                    "Order Pipeline: BTC buy",
                    tx_payload
                ])?;
                let row = tx.last_insert_rowid();
                tag.execute(params!["agent_id", agent, row])?;
                span.execute(params![
                    row,
                    trace,
                    "a".repeat(16),
                    Option::<String>::None,
                    "order.pipeline",
                    "Order Pipeline: BTC buy",
                    (ts - 40) as f64,
                    40.0
                ])?;
                for (k, op) in STAGES.iter().enumerate() {
                    span.execute(params![
                        row,
                        trace,
                        format!("{:016x}", k + 1),
                        "a".repeat(16),
                        op,
                        op,
                        (ts - 40 + 8 * k as i64) as f64,
                        7.0
                    ])?;
                }
            }
        }
    }
    // Per-minute latency over the last day (what the digest keeps for charts).
    let mut lat = tx.prepare(
        "INSERT INTO rollup_latency (project_id, minute, kind, name, op, count, errors, sketch) VALUES (1, ?1, ?2, ?3, ?4, ?5, 0, ?6)",
    )?;
    let per_minute = (transactions / (7 * 1440)).max(1);
    for m in 0..(7 * 1440) {
        let minute = (now - now.rem_euclid(60_000)) - m * 60_000;
        let mut s = DDSketch::new();
        for v in 0..per_minute {
            s.add(20.0 + (v % 40) as f64);
        }
        let bytes = s.to_bytes();
        lat.execute(params![
            minute,
            "transaction",
            "Order Pipeline: BTC buy",
            "order.pipeline",
            per_minute,
            bytes
        ])?;
        for op in STAGES {
            lat.execute(params![minute, "span", op, op, per_minute, bytes])?;
        }
    }
    drop(lat);
    for a in 0..AGENTS {
        let agent = format!("ag_{a}");
        tx.execute(
            "INSERT INTO agents (project_id, agent_id, strategy, release, environment, first_seen, last_seen, session_status, session_updated)
             VALUES (1, ?1, 'vol-arb', 'bot@1.19', 'prod', ?2, ?3, 'ok', ?3)",
            params![agent, now - span_ms, now - 5_000],
        )?;
        for m in 0..60 {
            let mut s = DDSketch::new();
            for v in 0..10 {
                s.add(20.0 + f64::from(v));
            }
            tx.execute(
                "INSERT INTO agent_minutes (project_id, agent_id, minute, events, errors, cycles, failed_cycles, sketch,
                                            transactions, failed_transactions, risk_rejected)
                 VALUES (1, ?1, ?2, 12, 2, 10, 1, ?3, 10, 1, 1)",
                params![agent, (now - now.rem_euclid(60_000)) - m * 60_000, s.to_bytes()],
            )?;
        }
        // A day of its pipelines' stages per minute (the agent page's default window).
        let mut s = DDSketch::new();
        for v in 0..10 {
            s.add(20.0 + f64::from(v));
        }
        let bytes = s.to_bytes();
        let mut stage = tx.prepare_cached(
            "INSERT INTO agent_stage_minutes (project_id, agent_id, op, minute, count, failed, sketch) VALUES (1, ?1, ?2, ?3, 10, 1, ?4)",
        )?;
        for m in 0..1440 {
            let minute = (now - now.rem_euclid(60_000)) - m * 60_000;
            for op in std::iter::once("order.pipeline").chain(STAGES) {
                stage.execute(params![agent, op, minute, bytes])?;
            }
        }
        for sn in 0..200 {
            tx.execute(
                "INSERT INTO sessions (project_id, sid, did, release, environment, status, errors, started, updated, counted_errored)
                 VALUES (1, ?1, ?2, 'bot@1.19', 'prod', ?3, 0, ?4, ?4, 0)",
                params![format!("{a}-{sn}"), agent, if sn % 50 == 0 { "crashed" } else { "exited" }, now - sn * 300_000],
            )?;
        }
    }
    for r in 0..20 {
        tx.execute(
            "INSERT INTO rollup_sessions (project_id, minute, release, environment, init, exited, errored, abnormal, crashed) VALUES (1, ?1, ?2, 'prod', 500, 490, 5, 0, 5)",
            params![now - now.rem_euclid(60_000) - r * 60_000, format!("bot@1.{r}")],
        )?;
    }
    tx.commit()
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let res = client
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={PASSWORD}&next=/"))
        .send()
        .await
        .expect("login");
    res.headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: i64 = env_or("LOOKOUT_BENCH_EVENTS", 1_000_000);
    let rounds: usize = env_or("LOOKOUT_BENCH_ROUNDS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_owned(),
        admin_password: Some(PASSWORD.into()),
        ..Config::default()
    };
    // Create the schema and the default project, then stop and fill.
    let store = lookout_server::store::Store::open(dir.path()).expect("store");
    store.ensure_default_project().expect("project");
    drop(store);
    let now = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let db = dir.path().join("lookout.db");
    tokio::task::spawn_blocking(move || fill(&db, events, now))
        .await
        .expect("fill thread")
        .expect("fill");
    let size = std::fs::metadata(dir.path().join("lookout.db")).map_or(0, |m| m.len());
    println!(
        "filled {events} events in {:.1} s ({:.0} MB database)",
        started.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    let server = Server::builder(config).start().await.expect("server");
    let base = server.base_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = login(&client, &base).await;
    let trace = format!("{:032x}", 9);
    let pages = [
        "/".to_owned(),
        "/agents/ag_7".to_owned(),
        "/agents/ag_7?period=7d".to_owned(),
        "/issues".to_owned(),
        "/issues?query=agent_id%3Aag_7&asset=BTC".to_owned(),
        "/issues/1".to_owned(),
        "/issues/500?event=3".to_owned(),
        "/performance".to_owned(),
        "/performance?period=24h".to_owned(),
        format!("/performance/traces/{trace}"),
        "/releases".to_owned(),
        // console-objects: the object pages.
        "/issues/1?crumbs=http".to_owned(),
        "/releases/bot%401.3".to_owned(),
        "/performance?transaction=Order%20Pipeline%3A%20BTC%20buy".to_owned(),
        "/crons".to_owned(),
        "/alerts".to_owned(),
        "/settings".to_owned(),
    ];
    println!(
        "{:<48} {:>10} {:>10} {:>10}",
        "page", "median ms", "max ms", "bytes"
    );
    let mut worst = Duration::ZERO;
    for page in &pages {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let res = client
                .get(format!("{base}{page}"))
                .header(reqwest::header::COOKIE, &cookie)
                .send()
                .await
                .expect("page");
            let status = res.status();
            let body = res.bytes().await.expect("body");
            times.push(t.elapsed());
            assert_eq!(status, 200, "{page}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
        }
        times.sort();
        let median = times[times.len() / 2];
        let max = times[times.len() - 1];
        worst = worst.max(median);
        println!(
            "{page:<48} {:>10.1} {:>10.1} {bytes:>10}",
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
    println!(
        "slowest median: {:.1} ms (target < 100 ms)",
        worst.as_secs_f64() * 1000.0
    );
    server.stop().await.expect("stop");
    if std::env::var_os("LOOKOUT_BENCH_KEEP").is_some() {
        println!("data kept in {}", dir.keep().display());
    }
}
