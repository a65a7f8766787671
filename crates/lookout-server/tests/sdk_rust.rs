//! The official Rust `sentry` crate, with its real HTTP transport, against the server:
//! errors, messages, transactions, sessions, check-ins and logs all reach the inbox.

mod common;

use common::TestServer;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_traffic_reaches_the_inbox() {
    let s = TestServer::start().await;
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let guard = sentry::init(
            sentry::ClientOptions::new()
                .dsn(&dsn)
                .release("agent@1.0.0")
                .environment("test")
                .traces_sample_rate(1.0),
        );
        assert!(
            guard.is_enabled(),
            "the DSN of our server must be accepted by the SDK"
        );

        sentry::start_session();
        sentry::capture_message("order 1234 failed", sentry::Level::Warning);
        let err = std::io::Error::other("connection reset by venue");
        sentry::capture_error(&err);

        let tx = sentry::start_transaction(sentry::TransactionContext::new(
            "Order Pipeline: BTC buy",
            "order.pipeline",
        ));
        let span = tx.start_child("risk.check", "max exposure");
        span.finish();
        tx.finish();

        sentry::logger_info!("agent heartbeat {}", 42);

        // A check-in: the crate has the protocol types but no capture API.
        let check_in = sentry::protocol::MonitorCheckIn {
            check_in_id: sentry::protocol::Uuid::new_v4(),
            monitor_slug: "recalibrate".into(),
            status: sentry::protocol::MonitorCheckInStatus::Ok,
            environment: Some("test".into()),
            duration: Some(1.5),
            monitor_config: None,
        };
        let mut envelope = sentry::Envelope::new();
        envelope.add_item(check_in);
        if let Some(client) = sentry::Hub::current().client() {
            client.send_envelope(envelope);
        }
        sentry::end_session();
        assert!(
            sentry::Hub::current()
                .client()
                .is_some_and(|c| c.flush(Some(Duration::from_secs(10)))),
            "the SDK could not flush to our server"
        );
        drop(guard);
    })
    .await
    .unwrap();

    let mut by_type: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for row in s.inbox() {
        for (t, payload) in row.items() {
            by_type.entry(t).or_default().push(payload);
        }
    }
    let events = &by_type["event"];
    assert!(
        events.iter().any(|e| e["message"] == "order 1234 failed"
            || e["logentry"]["formatted"] == "order 1234 failed"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["exception"]["values"][0]["value"] == "connection reset by venue"),
        "{events:?}"
    );
    assert_eq!(
        by_type["transaction"][0]["transaction"],
        "Order Pipeline: BTC buy"
    );
    assert_eq!(by_type["transaction"][0]["spans"][0]["op"], "risk.check");
    assert!(
        by_type["session"]
            .iter()
            .any(|s| s["attrs"]["release"] == "agent@1.0.0")
    );
    assert_eq!(by_type["check_in"][0]["monitor_slug"], "recalibrate");
    assert!(
        by_type["log"]
            .iter()
            .any(|l| l.to_string().contains("agent heartbeat 42")),
        "{:?}",
        by_type.get("log")
    );
}
