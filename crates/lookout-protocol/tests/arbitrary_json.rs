//! Everything in an event is attacker-controlled: normalise, scrub and group must never
//! panic on any JSON, including JSON shaped like an event with wrong types everywhere.
#![allow(missing_docs)]

use chrono::{DateTime, Utc};
use lookout_protocol::normalize::{ItemKind, NormalizeContext, normalize_event};
use lookout_protocol::{grouping, scrub};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys the code looks up, so random trees reach the real paths.
const KEYS: &[&str] = &[
    "event_id",
    "timestamp",
    "start_timestamp",
    "level",
    "type",
    "platform",
    "message",
    "logentry",
    "formatted",
    "params",
    "exception",
    "values",
    "stacktrace",
    "frames",
    "module",
    "filename",
    "function",
    "context_line",
    "in_app",
    "mechanism",
    "synthetic",
    "value",
    "breadcrumbs",
    "threads",
    "tags",
    "fingerprint",
    "transaction",
    "contexts",
    "trace",
    "spans",
    "span_id",
    "op",
    "data",
    "user",
    "request",
    "headers",
    "password",
    "api_key",
    "Authorization",
    "tx_hash",
    "release",
    "environment",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,30}".prop_map(Value::String),
        Just(json!("{{ default }}")),
        Just(json!("sk_live_0123456789abcdef0123456789")),
        Just(json!("2026-11-24T11:59:00Z")),
        Just(json!(1_795_003_200.5)),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn ctx(item: ItemKind) -> NormalizeContext {
    NormalizeContext {
        item,
        received: DateTime::<Utc>::from_timestamp(1_795_003_260, 0).unwrap_or_default(),
        sent_at: DateTime::<Utc>::from_timestamp(1_795_000_000, 0),
        header_event_id: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_panic_on_arbitrary_json(v in arb_json()) {
        // Raw payloads straight into scrub and grouping too: the server never relies on
        // normalisation having happened first for these to be safe.
        let mut raw = v.clone();
        let _ = scrub::scrub_event(&mut raw);
        let _ = grouping::compute_grouping(&v);
        for item in [ItemKind::Event, ItemKind::Transaction] {
            if let Ok(mut n) = normalize_event(v.clone(), &ctx(item)) {
                let _ = scrub::scrub_event(&mut n.payload);
                let g = grouping::compute_grouping(&n.payload);
                prop_assert_eq!(g.hash.len(), 32);
                prop_assert_eq!(n.event_id.len(), 32);
            }
        }
    }

    #[test]
    fn a_planted_key_never_survives(path in prop::collection::vec(prop::sample::select(KEYS), 1..5)) {
        // Bury a Purple Flea key at a random path; after scrubbing it is gone from the
        // serialised event.
        let secret = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
        let mut v = json!(format!("note {secret} end"));
        for k in path.iter().rev() {
            let mut m = Map::new();
            m.insert((*k).to_owned(), v);
            v = Value::Object(m);
        }
        let _ = scrub::scrub_event(&mut v);
        prop_assert!(!v.to_string().contains("9f8e7d6c5b4a3928"));
    }
}

#[test]
fn deep_nesting_does_not_overflow() {
    // serde_json's parser refuses nesting past 128 levels, so that is the deepest a payload
    // from the wire can be.
    let mut v = json!("x");
    for _ in 0..127 {
        v = json!([v]);
    }
    let mut ev = json!({"extra": v, "message": "m"});
    let _ = scrub::scrub_event(&mut ev);
    let _ = grouping::compute_grouping(&ev);
    // The scrubber cuts the tree past 64 levels and notes it.
    assert!(ev.to_string().matches('[').count() < 100);
    assert!(ev["_meta"]["scrubbed"].to_string().contains("depth"));
}
