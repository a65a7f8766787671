//! Alert latency: from an event's arrival (the SDK's POST) to the notifier's request at the
//! channel, for an issue alert (first seen → signed webhook), while background traffic
//! keeps the digest busy.
//!
//! Run: `cargo bench -p lookout-server --bench alert_latency` (env `LOOKOUT_BENCH_ALERTS`,
//! default 200 alerts; `LOOKOUT_BENCH_BACKGROUND`, default 500 background events/s;
//! `LOOKOUT_BENCH_DEBUG=1` prints every latency and the server's warnings).
#![allow(clippy::print_stdout, missing_docs)]

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
