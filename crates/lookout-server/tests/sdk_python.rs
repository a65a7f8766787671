//! Python `sentry-sdk` (from the test venv) against the server, compressing as it does by
//! default (brotli when importable, else gzip): errors, messages, transactions, sessions,
//! check-ins and logs all reach the inbox.

mod common;

use common::{TestServer, run_python};
use std::collections::BTreeMap;

const SCRIPT: &str = r#"
import os, sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.crons.consts import MonitorStatus

algo = os.environ["ALGO"]
experiments = {} if algo == "default" else {"transport_compression_algo": algo}
sentry_sdk.init(
    dsn=os.environ["DSN"],
    release="py-agent@2.0.0",
    environment="paper",
    traces_sample_rate=1.0,
    enable_logs=True,
    _experiments=experiments,
)
sentry_sdk.set_tag("algo", algo)
scope = sentry_sdk.get_isolation_scope()
scope.start_session()

class InsufficientMargin(Exception):
    pass

try:
    raise InsufficientMargin("margin 12.5 below 20.0 on BTC")
except InsufficientMargin:
    sentry_sdk.capture_exception()

sentry_sdk.capture_message("order 5678 failed")
with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: ETH sell"):
    for op in ["signal.validate", "risk.check", "order.size", "http.client", "order.confirm"]:
        with sentry_sdk.start_span(op=op, name=op):
            pass
capture_checkin(monitor_slug="rebalance", status=MonitorStatus.OK, duration=2.0)
sentry_sdk.logger.info("decision cycle done for {asset}", asset="ETH")
scope.end_session()
sentry_sdk.flush(timeout=10)
print("sent")
"#;

async fn run(algo: &str) {
    let s = TestServer::start().await;
    let out = run_python(SCRIPT, &[("DSN", s.dsn()), ("ALGO", algo.to_owned())]).await;
    assert!(out.contains("sent"));

    let mut by_type: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for row in s.inbox() {
        for (t, payload) in row.items() {
            by_type.entry(t).or_default().push(payload);
        }
    }
    let events = &by_type["event"];
    assert!(
        events
            .iter()
            .any(|e| e["exception"]["values"][0]["type"] == "InsufficientMargin"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["message"] == "order 5678 failed"),
        "{events:?}"
    );
    let tx = &by_type["transaction"][0];
    assert_eq!(tx["transaction"], "Order Pipeline: ETH sell");
    assert_eq!(tx["spans"].as_array().map(Vec::len), Some(5));
    assert!(
        by_type["session"]
            .iter()
            .any(|s| s["attrs"]["release"] == "py-agent@2.0.0")
    );
    assert_eq!(by_type["check_in"][0]["monitor_slug"], "rebalance");
    assert!(
        by_type["log"]
            .iter()
            .any(|l| l.to_string().contains("decision cycle done for ETH")),
        "{:?}",
        by_type.keys()
    );
    // The SDK compressed its bodies; the inbox holds them decoded.
    let m = s.metrics().await;
    let bytes = |stage: &str| -> f64 {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("lookout_ingest_bytes_total{{stage=\"{stage}\"}} "))
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(bytes("received") < bytes("decompressed"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_default_compression() {
    run("default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_gzip() {
    run("gzip").await;
}
