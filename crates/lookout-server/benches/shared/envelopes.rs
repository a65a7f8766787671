//! The envelopes the digest benches send: the ~8.8 KB Python-SDK error envelope of
//! `fixtures/` (captured by `fixtures/make_fixture.py`) and a transaction with five spans.

use std::io::Write;

const ENVELOPE: &[u8] = include_bytes!("../fixtures/python_error_envelope.bin");

/// The fixture, gzip-compressed as the Python SDK sends it, with event id `n + 1`.
pub(crate) fn error_envelope(n: u64) -> Vec<u8> {
    // Give every copy its own event id (the fixture's id is 32 hex in both places).
    let text = String::from_utf8_lossy(ENVELOPE).into_owned();
    let old = text
        .split("\"event_id\":\"")
        .nth(1)
        .and_then(|r| r.get(..32))
        .unwrap_or_default()
        .to_owned();
    let new = format!("{:032x}", n + 1);
    let replaced = text.replace(&old, &new);
    // The item keeps its declared length: ids have the same length.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = gz.write_all(replaced.as_bytes());
    gz.finish().unwrap_or_default()
}

/// A plain transaction envelope with five spans, ending now, with event and trace id `n + 1`.
pub(crate) fn transaction_envelope(n: u64) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let ops = [
        "signal.validate",
        "risk.check",
        "order.size",
        "http.client",
        "order.confirm",
    ];
    let spans: Vec<serde_json::Value> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            serde_json::json!({"span_id": format!("{:016x}", i + 1), "parent_span_id": "aaaaaaaaaaaaaaaa",
                "trace_id": format!("{:032x}", n + 1), "op": op, "description": op,
                "start_timestamp": now - 0.5 + i as f64 * 0.01, "timestamp": now - 0.49 + i as f64 * 0.01,
                "status": "ok", "data": {"latency_ms": 10}})
        })
        .collect();
    let payload = serde_json::json!({"event_id": format!("{:032x}", n + 1), "type": "transaction",
        "transaction": "Order Pipeline: BTC buy", "start_timestamp": now - 0.5, "timestamp": now,
        "contexts": {"trace": {"trace_id": format!("{:032x}", n + 1), "span_id": "aaaaaaaaaaaaaaaa", "op": "order.pipeline", "status": "ok"}},
        "spans": spans, "platform": "python", "release": "vol-arb@1.0.0",
        // As the agent library tags every event: 50 agents share the load.
        "tags": {"agent_id": format!("ag_{}", n % 50), "strategy": "vol-arb"}})
    .to_string();
    format!(
        "{{\"event_id\":\"{:032x}\"}}\n{{\"type\":\"transaction\",\"length\":{}}}\n{payload}\n",
        n + 1,
        payload.len()
    )
    .into_bytes()
}
