//! From real SDK traffic to grouped issues, events, traces and percentiles, read back
//! through the REST API; secrets planted everywhere never reach the store.

mod common;

use common::{TestServer, run_python};
use serde_json::{Value, json};

async fn issues(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let q = query.replace(' ', "%20").replace(':', "%3A");
    let (status, body) = s
        .api(
            token,
            &format!("/api/0/projects/default/default/issues/?query={q}"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

const TRADING_SCRIPT: &str = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], release="vol-arb@1.0.0", environment="paper")

class InsufficientMargin(Exception):
    pass

def place(asset, amount):
    raise InsufficientMargin(f"margin {amount} below maintenance on {asset}")

for asset, amount in [("BTC", 12.5), ("BTC", 99.1), ("ETH", 3.2)]:
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["{{ default }}", "InsufficientMargin", asset, "order_placement"]
        scope.set_tag("trade.asset", asset)
        scope.set_user({"id": f"agent-{asset}"})
        try:
            place(asset, amount)
        except InsufficientMargin:
            sentry_sdk.capture_exception()

sentry_sdk.capture_message("order 1234 failed")
sentry_sdk.capture_message("order 5678 failed")
sentry_sdk.flush(timeout=10)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_errors_group_by_fingerprint_and_messages_by_parameters() {
    let s = TestServer::start().await;
    let token = s.token();
    run_python(TRADING_SCRIPT, &[("DSN", s.dsn())]).await;

    let all = s
        .eventually("three issues", || async {
            let all = issues(&s, &token, "is:unresolved").await;
            let total: u64 = all
                .iter()
                .map(|i| {
                    i["count"]
                        .as_str()
                        .unwrap_or("0")
                        .parse::<u64>()
                        .unwrap_or(0)
                })
                .sum();
            (total == 5).then_some(all)
        })
        .await;
    assert_eq!(all.len(), 3, "{all:#?}");

    let btc = issues(&s, &token, "trade.asset:BTC").await;
    assert_eq!(btc.len(), 1);
    assert_eq!(btc[0]["count"], "2");
    assert_eq!(btc[0]["userCount"], 1);
    assert!(
        btc[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("InsufficientMargin"),
        "{}",
        btc[0]
    );
    assert!(btc[0]["shortId"].as_str().unwrap().starts_with("DEFAULT-"));
    let eth = issues(&s, &token, "trade.asset:ETH").await;
    assert_eq!((eth.len(), eth[0]["count"].as_str()), (1, Some("1")));
    assert_ne!(btc[0]["id"], eth[0]["id"]);

    let orders = issues(&s, &token, "order failed").await;
    assert_eq!(orders.len(), 1, "{orders:#?}");
    assert_eq!(orders[0]["count"], "2");

    // Latest event: exception with its stack trace, tags, contexts.
    let id = btc[0]["id"].as_str().unwrap();
    let (status, latest) = s
        .api(&token, &format!("/api/0/issues/{id}/events/latest/"))
        .await;
    assert_eq!(status, 200);
    let exc = latest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "exception")
        .unwrap();
    let frames = exc["data"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert!(frames.iter().any(|f| f["function"] == "place"));
    assert!(
        latest["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "trade.asset" && t["value"] == "BTC")
    );
    let (_, events) = s.api(&token, &format!("/api/0/issues/{id}/events/")).await;
    assert_eq!(events.as_array().unwrap().len(), 2);

    // Resolve, then a new event is a regression that reopens the issue.
    s.api_client(&token)
        .put(
            &format!("/api/0/issues/{id}/"),
            &json!({"status": "resolved"}),
        )
        .await
        .expect(200);
    assert_eq!(issues(&s, &token, "is:resolved").await.len(), 1);
    run_python(TRADING_SCRIPT, &[("DSN", s.dsn())]).await;
    s.eventually("the regression", || async {
        let (_, issue) = s.api(&token, &format!("/api/0/issues/{id}/")).await;
        (issue["status"] == "unresolved" && issue["count"] == "4").then_some(())
    })
    .await;
    assert!(issues(&s, &token, "is:resolved").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_errors_and_panics_become_issues() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let guard = sentry::init(
            sentry::ClientOptions::new()
                .dsn(&dsn)
                .release("rust-agent@0.1.0"),
        );
        let err = std::io::Error::other("venue rejected order 77");
        sentry::capture_error(&err);
        sentry::capture_error(&std::io::Error::other("venue rejected order 78"));
        let _ = std::panic::catch_unwind(|| panic!("risk limit breached"));
        drop(guard);
    })
    .await
    .unwrap();
    let all = s
        .eventually("rust issues", || async {
            let all = issues(&s, &token, "").await;
            // The panic hook is process-wide: other tests' panics may arrive too.
            let panic = all.iter().find(|i| {
                i["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("risk limit breached"))
            })?;
            (all.iter()
                .filter(|i| i["title"].as_str().unwrap_or("").contains("venue rejected"))
                .count()
                > 0)
            .then(|| (panic.clone(), all.clone()))
        })
        .await;
    let (panic, all) = all;
    assert_eq!(panic["level"], "fatal", "{panic}");
    // capture_error groups by type + normalised value: orders 77 and 78 are one issue.
    let venue: Vec<&Value> = all
        .iter()
        .filter(|i| i["title"].as_str().unwrap_or("").contains("venue rejected"))
        .collect();
    assert_eq!(venue.len(), 1, "{all:#?}");
    assert_eq!(venue[0]["count"], "2");
}

fn transaction_envelope(
    event_id: &str,
    trace_id: &str,
    duration_ms: f64,
    span_ms: &[(&str, f64)],
) -> Vec<u8> {
    let start = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - 5.0;
    let mut t = start;
    let spans: Vec<Value> = span_ms
        .iter()
        .enumerate()
        .map(|(i, (op, ms))| {
            let s = json!({
                "span_id": format!("{:016x}", i + 1), "parent_span_id": "aaaaaaaaaaaaaaaa", "trace_id": trace_id,
                "op": op, "description": format!("{op} step"), "start_timestamp": t, "timestamp": t + ms / 1000.0,
                "status": "ok", "data": {"z_score": 2.5}
            });
            t += ms / 1000.0;
            s
        })
        .collect();
    let payload = json!({
        "event_id": event_id, "type": "transaction", "transaction": "Order Pipeline: BTC buy",
        "start_timestamp": start, "timestamp": start + duration_ms / 1000.0,
        "contexts": {"trace": {"trace_id": trace_id, "span_id": "aaaaaaaaaaaaaaaa", "op": "order.pipeline", "status": "ok"}},
        "spans": spans, "release": "vol-arb@1.0.0", "environment": "paper", "platform": "python"
    })
    .to_string();
    format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"transaction\",\"length\":{}}}\n{payload}\n",
        payload.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_give_percentiles_per_transaction_and_span_op() {
    let s = TestServer::start().await;
    let token = s.token();
    let client = reqwest::Client::new();
    // 100 pipelines of 1..=100 ms; each stage a fixed share of it.
    for n in 1..=100u32 {
        let d = f64::from(n);
        let body = transaction_envelope(
            &format!("{:032x}", n),
            &format!("{:032x}", 1000 + n),
            d,
            &[
                ("signal.validate", d * 0.1),
                ("risk.check", d * 0.2),
                ("order.size", d * 0.1),
                ("http.client", d * 0.5),
                ("order.confirm", d * 0.1),
            ],
        );
        s.post_envelope(&client, body).await;
    }
    let txs = s
        .eventually("100 transactions", || async {
            let (_, body) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/transactions/?statsPeriod=1h",
                )
                .await;
            (body["data"][0]["count"] == 100).then_some(body)
        })
        .await;
    let row = &txs["data"][0];
    assert_eq!(row["name"], "Order Pipeline: BTC buy");
    assert_eq!(row["op"], "order.pipeline");
    let near = |v: &Value, want: f64| {
        let got = v.as_f64().unwrap();
        assert!(
            (got - want).abs() <= want * 0.02 + 0.01,
            "got {got}, want {want}"
        );
    };
    // Nearest-rank percentiles of 1..=100 ms.
    near(&row["p50"], 50.0);
    near(&row["p95"], 95.0);
    near(&row["p99"], 99.0);
    assert_eq!(row["failureRate"], 0.0);

    let (_, ops) = s
        .api(
            &token,
            "/api/0/projects/default/default/span-ops/?statsPeriod=1h",
        )
        .await;
    let ops = ops["data"].as_array().unwrap();
    assert_eq!(ops.len(), 5, "{ops:?}");
    let http = ops.iter().find(|o| o["op"] == "http.client").unwrap();
    assert_eq!(http["count"], 100);
    near(&http["p50"], 25.0);
    near(&http["p99"], 49.5);

    let trace_id = format!("{:032x}", 1000 + 7);
    let (status, trace) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/traces/{trace_id}/"),
        )
        .await;
    assert_eq!(status, 200);
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 6, "root + five children: {trace}");
    assert_eq!(spans[0]["op"], "order.pipeline");
    assert!(
        spans
            .iter()
            .any(|s| s["op"] == "risk.check" && s["data"]["z_score"] == 2.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_needs_a_token_with_the_right_scope() {
    let s = TestServer::start().await;
    let (status, _) = s
        .api("nope", "/api/0/projects/default/default/issues/")
        .await;
    assert_eq!(status, 401);
    let (_, releases_only) = s
        .server
        .store
        .create_token("ci", &["project:releases".into()])
        .unwrap();
    let (status, body) = s
        .api(&releases_only, "/api/0/projects/default/default/issues/")
        .await;
    assert_eq!(status, 403, "{body}");
    let token = s.token();
    let (status, _) = s.api(&token, "/api/0/projects/default/nope/issues/").await;
    assert_eq!(status, 404);
    let (status, _) = s.api(&token, "/api/0/issues/999/").await;
    assert_eq!(status, 404);
}

/// Secrets an agent might leak, each unique so a grep finds it anywhere.
const SECRETS: &[&str] = &[
    "sk_live_4f9a0c21b7e44f9a0c21b7e44f9a0c21b7e44f9a0c21b7e4",
    "sk_trade_9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a",
    "pk_live_0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071",
    "sk_domains_aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66",
    "pf_live_77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd77ee88ff",
    "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2VjcmV0c2lnbmF0dXJl",
];
const MNEMONIC: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
const PASSWORD: &str = "hunter2-correct-horse-battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_planted_everywhere_never_reach_the_store() {
    let s = TestServer::start_with(|c| c.ingest.inbox_retention_secs = 0).await;
    let token = s.token();
    let script = r#"
import os, json, sentry_sdk
S = json.loads(os.environ["SECRETS"]); M = os.environ["MNEMONIC"]; password = os.environ["PASSWORD"]
sentry_sdk.init(dsn=os.environ["DSN"], traces_sample_rate=1.0, include_local_variables=True, send_default_pii=True)
sentry_sdk.set_tag("api_key", S[0])
sentry_sdk.set_tag("note", "key " + S[1])
sentry_sdk.set_extra("wallet", {"private_key": S[5], "mnemonic": M, "password": password})
sentry_sdk.set_extra("log_line", "calling with Authorization: Bearer " + S[6])
sentry_sdk.set_extra("pasted", M.replace(" ", "\u00a0"))
sentry_sdk.set_context("trading", {"casino_key": S[0], "seed_phrase": M})
sentry_sdk.set_user({"id": "agent-1", "data": {"wallet_key": S[2]}})
sentry_sdk.add_breadcrumb(category="http", message="POST /v1/orders with " + S[1], data={"authorization": "Bearer " + S[6], "domains_key": S[3]})
with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy") as tx:
    with sentry_sdk.start_span(op="http.client", name="POST /orders key=" + S[4]) as span:
        span.set_data("api_key", S[4]); span.set_data("header", "Bearer " + S[6])
    tx.set_data("seed", M)
def fail(secret_arg):
    local_private_key = S[5]
    local_phrase = M
    raise RuntimeError("order failed for key " + S[0] + " with mnemonic " + M + " password=" + password)
try:
    fail(S[2])
except RuntimeError:
    sentry_sdk.capture_exception()
sentry_sdk.capture_message("leaked " + S[3] + " and " + S[4])
sentry_sdk.flush(timeout=10)
"#;
    run_python(
        script,
        &[
            ("DSN", s.dsn()),
            ("SECRETS", serde_json::to_string(SECRETS).unwrap()),
            ("MNEMONIC", MNEMONIC.to_owned()),
            ("PASSWORD", PASSWORD.to_owned()),
        ],
    )
    .await;
    s.eventually("events digested", || async {
        let all = issues(&s, &token, "").await;
        let (_, txs) = s
            .api(
                &token,
                "/api/0/projects/default/default/transactions/?statsPeriod=1h",
            )
            .await;
        (all.len() >= 2 && txs["data"].as_array().is_some_and(|d| !d.is_empty())).then_some(())
    })
    .await;
    // The events are there, with [Filtered] where the secrets were.
    let all = issues(&s, &token, "").await;
    let err = all
        .iter()
        .find(|i| i["title"].as_str().unwrap_or("").contains("RuntimeError"))
        .unwrap();
    let (_, latest) = s
        .api(
            &token,
            &format!(
                "/api/0/issues/{}/events/latest/",
                err["id"].as_str().unwrap()
            ),
        )
        .await;
    assert!(latest.to_string().contains("[Filtered]"), "{latest}");

    // Stop the server so everything is checkpointed, then grep every database file.
    let dir = s.dir.path().to_owned();
    let TestServer {
        server,
        dir: tmp,
        db,
    } = s;
    server.stop().await.unwrap();
    // The mnemonic as pasted with no-break spaces, too.
    let pasted = MNEMONIC.replace(' ', "\u{a0}");
    let mut needles: Vec<&str> = SECRETS.to_vec();
    needles.push(MNEMONIC);
    needles.push(&pasted);
    needles.push(PASSWORD);
    // On SQLite, the files themselves (PostgreSQL's are the server's, not ours to read).
    if db.is_none() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("lookout.db") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for needle in &needles {
                let n = needle.as_bytes();
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n),
                    "secret {needle:?} found in {name}"
                );
            }
        }
    }
    // Payloads are stored compressed, so grep them decoded too, as the store returns them.
    let store = match &db {
        Some(db) => lookout_server::store::Store::open_postgres(&db.url).unwrap(),
        None => lookout_server::store::Store::open(&dir).unwrap(),
    };
    let reader = store.reader();
    let project = reader.project("default", "default").unwrap();
    let mut payloads = Vec::new();
    for issue in reader.issues(project.id, &[], None, 1_000, 0).unwrap() {
        for e in reader.issue_events(issue.id, 1_000, 0).unwrap() {
            payloads.push(e.payload.to_string());
        }
    }
    let filter = lookout_server::store::read::TransactionFilter::default();
    for t in reader.transactions(project.id, &filter, 1_000).unwrap() {
        payloads.push(
            reader
                .event(project.id, &t.event_id)
                .unwrap()
                .payload
                .to_string(),
        );
    }
    assert!(payloads.len() >= 3, "{} stored events", payloads.len());
    for text in payloads {
        for needle in &needles {
            assert!(
                !text.contains(needle),
                "secret {needle:?} found in a stored event: {text}"
            );
        }
    }
    // The raw envelopes are deleted from the inbox once digested.
    assert!(common::read_store_inbox(&store).is_empty());
    drop(store);
    drop(tmp);
    drop(db);
}
