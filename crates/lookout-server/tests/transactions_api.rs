//! Recent transactions in the REST API: a trace can be found without an error event
//! pointing at it, filtered by name, op, status and agent.

mod common;

use common::TestServer;
use serde_json::{Value, json};

/// Transaction `n` ends `n` seconds before `now` (seconds).
fn transaction(now: f64, n: u64, t: (&str, &str, &str, &str, f64)) -> Vec<u8> {
    let (name, op, status, agent, ms) = t;
    let end = now - n as f64;
    let p = json!({"event_id": format!("{:032x}", n + 1), "type": "transaction", "transaction": name,
        "start_timestamp": end - ms / 1000.0, "timestamp": end, "platform": "rust",
        "contexts": {"trace": {"trace_id": format!("{:032x}", 1000 + n), "span_id": "aaaaaaaaaaaaaaaa",
                               "op": op, "status": status}},
        "tags": {"agent_id": agent}, "spans": []})
    .to_string();
    format!(
        "{{}}\n{{\"type\":\"transaction\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_transactions_filter_by_name_op_status_and_agent() {
    let s = TestServer::start().await;
    let token = s.token();
    let client = reqwest::Client::new();
    let sent = [
        (
            "Order Pipeline: BTC buy",
            "order.pipeline",
            "ok",
            "ag_vol_arb",
            120.0,
        ),
        (
            "Order Pipeline: ETH buy",
            "order.pipeline",
            "internal_error",
            "ag_vol_arb",
            2500.0,
        ),
        ("Dice bet", "casino.bet", "ok", "ag_casino_kelly", 40.0),
        (
            "Order Pipeline: BTC buy",
            "order.pipeline",
            "deadline_exceeded",
            "ag_other",
            3000.0,
        ),
    ];
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for (n, t) in sent.iter().enumerate() {
        s.post_envelope(&client, transaction(now, n as u64, *t))
            .await;
    }
    let base = "/api/0/projects/default/default/transactions/recent/";
    let all = s
        .eventually("transactions digested", || async {
            let (_, v) = s.api(&token, base).await;
            (v["data"].as_array().map_or(0, Vec::len) == sent.len()).then_some(v)
        })
        .await;
    let first = &all["data"][0];
    assert_eq!(
        first["eventId"],
        format!("{:032x}", 1),
        "newest first: {all:#}"
    );
    assert_eq!(first["traceId"], format!("{:032x}", 1000));
    assert_eq!(first["agent"], "ag_vol_arb");
    assert!(
        (first["duration"].as_f64().unwrap() - 120.0).abs() < 1.0,
        "{first}"
    );

    let names = |v: &Value| -> Vec<(String, String)> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["transaction"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (_, v) = s
        .api(
            &token,
            &format!("{base}?op=order.pipeline&agent=ag_vol_arb"),
        )
        .await;
    assert_eq!(
        names(&v),
        [
            ("Order Pipeline: BTC buy".into(), "ok".into()),
            ("Order Pipeline: ETH buy".into(), "internal_error".into())
        ]
    );
    let (_, v) = s
        .api(
            &token,
            &format!("{base}?transaction=Order%20Pipeline%3A%20BTC%20buy&status=deadline_exceeded"),
        )
        .await;
    assert_eq!(
        names(&v),
        [("Order Pipeline: BTC buy".into(), "deadline_exceeded".into())]
    );
    let (_, v) = s.api(&token, &format!("{base}?op=casino.bet")).await;
    assert_eq!(v["data"][0]["agent"], "ag_casino_kelly");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (status, v) = s.api(&token, &format!("{base}?limit=0")).await;
    assert_eq!(status, 400);
    assert!(v["detail"].as_str().unwrap().contains("limit"), "{v}");
}
