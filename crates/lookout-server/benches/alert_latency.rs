//! Alert latency: from an event's arrival (the SDK's POST) to the notifier's request at the
//! channel, for an issue alert (first seen → signed webhook), while background traffic
//! keeps the digest busy.
//!
//! Run: `cargo bench -p lookout-server --bench alert_latency` (env `LOOKOUT_BENCH_ALERTS`,
//! default 200 alerts; `LOOKOUT_BENCH_BACKGROUND`, default 500 background events/s;
//! `LOOKOUT_BENCH_DEBUG=1` prints every latency and the server's warnings).
//!
//! Sustained case: `LOOKOUT_BENCH_SUSTAINED=3000` first fills the last 60 minutes (the
//! window of the six presets' longest rule) with transactions and errors, then sends that
//! many envelopes a second (two transactions of `order.pipeline` for one error, through
//! the light load generator) for `LOOKOUT_BENCH_SECS` seconds (default 30) while a new
//! issue arrives every half second; it reports the alert latency over the run and its mean
//! in the first and the last third (flat: the alert stage keeps up as the window stays
//! full), and the digest lag sampled meanwhile.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "shared/loadgen.rs"]
mod loadgen;

use axum::extract::State;
use axum::routing::post;
use lookout_server::Server;
use lookout_server::config::Config;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

type Arrivals = Arc<(Mutex<HashMap<String, Instant>>, Notify)>;

async fn hook(State(got): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let now = Instant::now();
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && let Some(id) = v["event"]["eventId"].as_str()
    {
        got.0.lock().unwrap().insert(id.to_owned(), now);
        got.1.notify_waiters();
    }
    "ok"
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(id: &str, title: &str) -> Vec<u8> {
    let p = json!({"event_id": id, "level": "error", "platform": "rust",
        "exception": {"values": [{"type": "OrderRejected", "value": title}]},
        "fingerprint": [title]})
    .to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n", p.len()).into_bytes()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    if std::env::var("LOOKOUT_BENCH_DEBUG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    }
    let sustained: u64 = env_or("LOOKOUT_BENCH_SUSTAINED", 0);
    let alerts: usize = env_or("LOOKOUT_BENCH_ALERTS", 200);
    let background: u64 = env_or("LOOKOUT_BENCH_BACKGROUND", 500);
    let got: Arrivals = Arc::new((Mutex::new(HashMap::new()), Notify::new()));
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

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
        .post(format!("{base}/api/0/organizations/default/integrations/"))
        .bearer_auth(&token)
        .json(&json!({"provider": "webhook", "name": "bench", "config": {"url": hook_url, "secret": "s"}}))
        .send()
        .await
        .expect("integration");
    let integration: Value = r.json().await.expect("json");
    let r = client
        .post(format!("{base}/api/0/projects/default/default/rules/"))
        .bearer_auth(&token)
        .json(&json!({"name": "bench", "actionMatch": "all", "frequency": 5,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "actions": [{"id": "lookout.actions.WebhookAction", "integration": integration["id"]}]}))
        .send()
        .await
        .expect("rule");
    assert_eq!(r.status(), 201);
    let p = &server.store.list_projects().expect("projects")[0];
    let url = format!("{base}/api/{}/envelope/", p.id);
    let auth = format!("Sentry sentry_key={}, sentry_version=7", p.public_key);

    if sustained > 0 {
        let secs: u64 = env_or("LOOKOUT_BENCH_SECS", 30);
        sustained_run(
            &server,
            &got,
            &url,
            &auth,
            p.id,
            &p.public_key,
            sustained,
            secs,
        )
        .await;
        server.stop().await.expect("stop");
        return;
    }

    // Background load: repeated events of one issue (no alert), at a steady rate.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bg = {
        let (client, url, auth, stop) =
            (client.clone(), url.clone(), auth.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_micros(1_000_000 / background.max(1)));
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let id = format!("{n:032x}");
                let _ = client
                    .post(&url)
                    .header("x-sentry-auth", &auth)
                    .body(event(&id, "background"))
                    .send()
                    .await;
            }
        })
    };

    let mut latencies = Vec::with_capacity(alerts);
    for i in 0..alerts {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let start = Instant::now();
        let r = client
            .post(&url)
            .header("x-sentry-auth", &auth)
            .body(event(&id, &format!("new failure mode {i}")))
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success());
        let deadline = start + Duration::from_secs(30);
        loop {
            let waiter = got.1.notified();
            if let Some(at) = got.0.lock().unwrap().get(&id) {
                latencies.push(at.duration_since(start).as_secs_f64() * 1000.0);
                break;
            }
            assert!(Instant::now() < deadline, "alert {i} never arrived");
            let _ = tokio::time::timeout(Duration::from_millis(50), waiter).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = bg.await;
    server.stop().await.expect("stop");
    if std::env::var("LOOKOUT_BENCH_DEBUG").is_ok() {
        println!("latencies {latencies:.0?}");
    }
    latencies.sort_by(f64::total_cmp);
    let q = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "alert latency: {} cores, {alerts} alerts with {background} background events/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        q(0.50),
        q(0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}

fn now_s() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// An error event of the trading kind at `at` (seconds), one issue per `asset`.
fn trading_error(n: u64, at: f64, asset: &str) -> Vec<u8> {
    let p = json!({"event_id": format!("{:032x}", n + 1), "timestamp": at, "level": "error",
        "platform": "rust", "user": {"id": format!("agent-{}", n % 4)},
        "exception": {"values": [{"type": "InsufficientMargin", "value": format!("margin short on {asset}")}]},
        "tags": {"trade.asset": asset, "trade.phase": "order_placement", "service": "trading"},
        "fingerprint": ["InsufficientMargin", asset]})
    .to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n", p.len()).into_bytes()
}

/// An `order.pipeline` transaction ending at `at` (seconds); one in ten rejected by risk.
fn pipeline(n: u64, at: f64) -> Vec<u8> {
    let outcome = if n.is_multiple_of(10) {
        "rejected_risk"
    } else {
        "filled"
    };
    let p = json!({"event_id": format!("{:032x}", n + 1), "type": "transaction",
        "transaction": "Order Pipeline: BTC buy", "start_timestamp": at - 0.2, "timestamp": at,
        "contexts": {"trace": {"trace_id": format!("{:032x}", n + 1), "span_id": "aaaaaaaaaaaaaaaa",
                               "op": "order.pipeline", "status": "ok"}},
        "tags": {"outcome": outcome}, "spans": [], "platform": "rust", "release": "vol-arb@1.0.0",
        "user": {"id": format!("agent-{}", n % 4)}})
    .to_string();
    format!(
        "{{}}\n{{\"type\":\"transaction\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

#[allow(clippy::too_many_arguments)]
async fn sustained_run(
    server: &lookout_server::RunningServer,
    got: &Arrivals,
    url: &str,
    auth: &str,
    project: i64,
    key: &str,
    rate: u64,
    secs: u64,
) {
    let path = format!("/api/{project}/envelope/");
    let headers = vec![format!(
        "x-sentry-auth: Sentry sentry_key={key}, sentry_version=7"
    )];
    let client = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", server.base_url());
    let digested = |text: &str| loadgen::metric(text, "lookout_digested_rows_total");
    // The last hour, full: 500 envelopes a minute, spread over each minute.
    let now = now_s();
    let fill: u64 = 60 * 500;
    let requests: Vec<Vec<u8>> = (0..fill)
        .map(|n| {
            let at = now - 3600.0 + n as f64 * 3600.0 / fill as f64;
            let body = if n.is_multiple_of(3) {
                trading_error(n, at, if n.is_multiple_of(2) { "BTC" } else { "ETH" })
            } else {
                pipeline(n, at)
            };
            loadgen::post(&path, &headers, &body)
        })
        .collect();
    let started = Instant::now();
    let filled = loadgen::spawn(server.addr, 32, None, move |c, n| {
        requests.get(usize::try_from(n * 32).ok()? + c).cloned()
    })
    .join()
    .expect("fill");
    assert_eq!(filled.refused, 0, "fill refused");
    loop {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if digested(&text) >= fill as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "filled the last 60 minutes with {fill} envelopes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Sustained load: `rate` envelopes a second for `secs` seconds.
    let total = rate * secs;
    let base = fill;
    let load = loadgen::spawn(
        server.addr,
        32,
        Some(Duration::from_secs_f64(1.0 / rate as f64)),
        move |c, n| {
            let i = n * 32 + c as u64;
            (i < total).then(|| {
                let k = base + i;
                let body = if i.is_multiple_of(3) {
                    trading_error(k, now_s(), if i.is_multiple_of(2) { "BTC" } else { "ETH" })
                } else {
                    pipeline(k, now_s())
                };
                loadgen::post(&path, &headers, &body)
            })
        },
    );
    let run_started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new(); // (seconds into the run, latency ms)
    let mut lags: Vec<f64> = Vec::new();
    let mut i = 0u64;
    while run_started.elapsed() < Duration::from_secs(secs) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let start = Instant::now();
        let r = client
            .post(url)
            .header("x-sentry-auth", auth)
            .body(event(&id, &format!("sustained failure mode {i}")))
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success());
        i += 1;
        let deadline = start + Duration::from_secs(60);
        loop {
            let waiter = got.1.notified();
            if let Some(at) = got.0.lock().unwrap().get(&id) {
                samples.push((
                    run_started.elapsed().as_secs_f64(),
                    at.duration_since(start).as_secs_f64() * 1000.0,
                ));
                break;
            }
            assert!(Instant::now() < deadline, "alert {id} never arrived");
            let _ = tokio::time::timeout(Duration::from_millis(50), waiter).await;
        }
        if let Ok(r) = client.get(&metrics_url).send().await
            && let Ok(text) = r.text().await
        {
            lags.push(loadgen::metric(&text, "lookout_digest_lag_ms"));
        }
        tokio::time::sleep_until((start + Duration::from_millis(500)).into()).await;
    }
    let outcome = load.join().expect("load");
    let sent = outcome.latencies_us.len() as f64;
    let mut latencies: Vec<f64> = samples.iter().map(|s| s.1).collect();
    latencies.sort_by(f64::total_cmp);
    let third = samples.len() / 3;
    let mean = |xs: &[(f64, f64)]| xs.iter().map(|s| s.1).sum::<f64>() / xs.len().max(1) as f64;
    lags.sort_by(f64::total_cmp);
    println!(
        "sustained: {} cores, {rate}/s asked, {:.0}/s accepted ({} refused) for {secs} s with the last hour full; \
         alert latency over {} alerts: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; mean of the first third {:.0} ms, of the last third {:.0} ms; \
         digest lag: p50 {:.0} ms, max {:.0} ms",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        sent / outcome.elapsed.as_secs_f64(),
        outcome.refused,
        samples.len(),
        loadgen::percentile(&latencies, 0.5).unwrap_or(0.0),
        loadgen::percentile(&latencies, 0.99).unwrap_or(0.0),
        latencies.last().copied().unwrap_or(0.0),
        mean(&samples[..third]),
        mean(&samples[samples.len() - third..]),
        loadgen::percentile(&lags, 0.5).unwrap_or(0.0),
        lags.last().copied().unwrap_or(0.0),
    );
}
