//! Normalisation of event and transaction payloads into one canonical JSON form.
//!
//! SDKs disagree on details: timestamps are RFC 3339 or float seconds, event ids hyphenated
//! or not, the Rust SDK omits `level` when it is `error` and `type` on transactions, tags
//! come as a map or a list of pairs, breadcrumbs and exceptions as `{values: [...]}` or a
//! plain list. After [`normalize_event`] every timestamp is float seconds, the event id is
//! 32 lowercase hex, `level` and `type` are set, tags are a string map, and the list
//! containers are `{values: [...]}`.
//!
//! Time, as Relay handles it: a client clock that drifts from the server's by 55 minutes or
//! more (seen through the envelope's `sent_at`) is corrected by shifting every timestamp;
//! an event more than 60 s in the future is moved to the time it was received (and noted
//! in `_meta`); an event older than 30 days is refused.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// Longest message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8192;
/// Longest tag key or value kept, in characters.
pub const MAX_TAG_CHARS: usize = 200;
/// Events older than this are refused.
pub const MAX_AGE_SECS: i64 = 30 * 86_400;
/// Events further in the future than this are moved to the receive time.
pub const MAX_FUTURE_SECS: i64 = 60;
/// Clock drift below this is left alone (Relay's threshold).
pub const MIN_DRIFT_SECS: i64 = 55 * 60;

/// Which envelope item the payload came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An `event` item (error or message).
    Event,
    /// A `transaction` item.
    Transaction,
}

/// What the normaliser knows besides the payload.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    /// The item type.
    pub item: ItemKind,
    /// When the server received the envelope.
    pub received: DateTime<Utc>,
    /// The envelope's `sent_at`, if any.
    pub sent_at: Option<DateTime<Utc>>,
    /// The envelope's `event_id` (32 hex), which wins over the payload's.
    pub header_event_id: Option<String>,
}

/// Why a payload was refused. [`RejectReason::as_str`] is a stable metrics label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// Not a JSON object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// Older than 30 days.
    #[error("event timestamp is more than 30 days old")]
    TooOld,
    /// A transaction without valid start/end, or ending before it starts.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
}

impl RejectReason {
    /// Stable snake_case label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NotAnObject => "invalid_json",
            Self::TooOld => "too_old",
            Self::InvalidTransaction(_) => "invalid_transaction",
        }
    }
}

/// A normalised payload with the fields the server indexes.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The canonical payload.
    pub payload: Value,
    /// 32 lowercase hex.
    pub event_id: String,
    /// Event time (for transactions, the end).
    pub timestamp: DateTime<Utc>,
    /// `error`, `default` or `transaction`.
    pub kind: &'static str,
    /// fatal, error, warning, info, debug.
    pub level: String,
    /// The timestamp was in the future and was moved to the receive time.
    pub clamped_future: bool,
}

/// Parse a timestamp given as float seconds or RFC 3339.
pub fn parse_timestamp(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() || !(-1e11..1e11).contains(&f) {
                return None;
            }
            DateTime::from_timestamp_micros((f * 1e6) as i64)
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                // Python's isoformat without a zone.
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|n| n.and_utc())
            })
            .or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .and_then(|f| parse_timestamp(&json!(f)))
            }),
        _ => None,
    }
}

fn secs(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_micros() as f64 / 1e6)
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{values: [...]}` from either that or a plain list.
fn values_container(v: Option<Value>) -> Option<Value> {
    match v? {
        Value::Array(items) => Some(json!({ "values": items })),
        Value::Object(mut m) => match m.remove("values") {
            Some(Value::Array(items)) => {
                m.insert("values".into(), Value::Array(items));
                Some(Value::Object(m))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Tags as a string map, from a map or a list of `[key, value]` pairs.
fn normalize_tags(v: Option<Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |k: &str, v: &Value| {
        if let Some(text) = as_text(v)
            && !k.is_empty()
        {
            out.insert(
                truncate(k, MAX_TAG_CHARS),
                Value::String(truncate(&text, MAX_TAG_CHARS)),
            );
        }
    };
    match v {
        Some(Value::Object(m)) => {
            for (k, v) in &m {
                put(k, v);
            }
        }
        Some(Value::Array(items)) => {
            for pair in &items {
                if let Some([k, v]) = pair.as_array().map(Vec::as_slice)
                    && let Some(k) = k.as_str()
                {
                    put(k, v);
                }
            }
        }
        _ => {}
    }
    out
}

fn normalize_level(v: Option<&Value>, default: &str) -> String {
    match v
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some(l @ ("fatal" | "error" | "warning" | "info" | "debug")) => l.to_owned(),
        Some("warn") => "warning".into(),
        Some("critical") => "fatal".into(),
        Some("log") => "info".into(),
        _ => default.to_owned(),
    }
}

/// Shift a timestamp field of `obj` by `shift` (and rewrite it as float seconds).
fn fix_time(obj: &mut Map<String, Value>, key: &str, shift: chrono::Duration) {
    if let Some(t) = obj.get(key).and_then(parse_timestamp) {
        obj.insert(key.into(), secs(t + shift));
    } else if obj.contains_key(key) {
        obj.remove(key);
    }
}

/// Normalise an event or transaction payload.
pub fn normalize_event(payload: Value, ctx: &NormalizeContext) -> Result<Normalized, RejectReason> {
    let Value::Object(mut e) = payload else {
        return Err(RejectReason::NotAnObject);
    };
    let is_tx = ctx.item == ItemKind::Transaction
        || e.get("type").and_then(Value::as_str) == Some("transaction");

    let event_id = ctx
        .header_event_id
        .clone()
        .or_else(|| {
            e.get("event_id")
                .and_then(Value::as_str)
                .and_then(crate::envelope::normalize_uuid)
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    e.insert("event_id".into(), Value::String(event_id.clone()));

    // Clock drift, seen through sent_at.
    let mut shift = chrono::Duration::zero();
    if let Some(sent) = ctx.sent_at {
        let drift = ctx.received - sent;
        if drift.num_seconds().abs() >= MIN_DRIFT_SECS {
            shift = drift;
            e.entry("_meta")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.insert("clock_drift_secs".into(), json!(drift.num_seconds())));
        }
    }
    let mut timestamp = e
        .get("timestamp")
        .and_then(parse_timestamp)
        .map(|t| t + shift)
        .unwrap_or(ctx.received);
    let mut clamped_future = false;
    let mut future_shift = chrono::Duration::zero();
    if (timestamp - ctx.received).num_seconds() > MAX_FUTURE_SECS {
        future_shift = ctx.received - timestamp;
        timestamp = ctx.received;
        clamped_future = true;
        e.entry("_meta")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert("future_timestamp".into(), json!(true)));
    }
    if (ctx.received - timestamp).num_seconds() > MAX_AGE_SECS {
        return Err(RejectReason::TooOld);
    }
    let total_shift = shift + future_shift;
    e.insert("timestamp".into(), secs(timestamp));
    e.insert("received".into(), secs(ctx.received));

    // Level and type.
    let level = normalize_level(e.get("level"), if is_tx { "info" } else { "error" });
    e.insert("level".into(), Value::String(level.clone()));

    // Containers.
    for key in ["breadcrumbs", "exception", "threads"] {
        let v = values_container(e.remove(key));
        if let Some(v) = v {
            e.insert(key.into(), v);
        }
    }
    if let Some(crumbs) = e
        .get_mut("breadcrumbs")
        .and_then(|b| b.get_mut("values"))
        .and_then(Value::as_array_mut)
    {
        crumbs.retain(Value::is_object);
        for c in crumbs.iter_mut() {
            if let Value::Object(c) = c {
                fix_time(c, "timestamp", total_shift);
                if let Some(l) = c.get("level") {
                    let l = normalize_level(Some(l), "info");
                    c.insert("level".into(), Value::String(l));
                }
            }
        }
    }
    let tags = normalize_tags(e.remove("tags"));
    e.insert("tags".into(), Value::Object(tags));

    // Message: string or logentry → both `logentry` and a plain `message`.
    let formatted = match (e.get("logentry"), e.get("message")) {
        (Some(Value::Object(l)), _) => l
            .get("formatted")
            .and_then(Value::as_str)
            .or_else(|| l.get("message").and_then(Value::as_str))
            .map(str::to_owned),
        (_, Some(Value::String(m))) => Some(m.clone()),
        (_, Some(Value::Object(m))) => m
            .get("formatted")
            .and_then(Value::as_str)
            .or_else(|| m.get("message").and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    };
    if let Some(f) = formatted {
        let f = truncate(&f, MAX_MESSAGE_CHARS);
        let raw = e
            .get("logentry")
            .and_then(|l| l.get("message"))
            .and_then(Value::as_str)
            .map(|m| truncate(m, MAX_MESSAGE_CHARS));
        let params = e.get("logentry").and_then(|l| l.get("params")).cloned();
        let mut logentry = Map::new();
        logentry.insert("formatted".into(), Value::String(f.clone()));
        if let Some(raw) = raw {
            logentry.insert("message".into(), Value::String(raw));
        }
        if let Some(p) = params {
            logentry.insert("params".into(), p);
        }
        e.insert("logentry".into(), Value::Object(logentry));
        e.insert("message".into(), Value::String(f));
    } else {
        e.remove("message");
        e.remove("logentry");
    }

    for key in ["contexts", "extra", "user", "request", "sdk"] {
        if e.get(key).is_some_and(|v| !v.is_object()) {
            e.remove(key);
        }
    }
    // The Rust SDK's serializer stamps `"type": "unknown"` on every custom context (the
    // agent library's `trading`, say): it says nothing, so it is not kept.
    if let Some(Value::Object(contexts)) = e.get_mut("contexts") {
        for ctx in contexts.values_mut() {
            if let Value::Object(c) = ctx
                && c.get("type").and_then(Value::as_str) == Some("unknown")
            {
                c.remove("type");
            }
        }
    }
    for key in [
        "release",
        "environment",
        "transaction",
        "platform",
        "logger",
        "server_name",
        "dist",
    ] {
        match e.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {
                let t = truncate(s, 250);
                e.insert(key.into(), Value::String(t));
            }
            Some(v) if !v.is_null() => {
                if let Some(t) = as_text(v) {
                    e.insert(key.into(), Value::String(truncate(&t, 250)));
                } else {
                    e.remove(key);
                }
            }
            _ => {
                e.remove(key);
            }
        }
    }
    if !e.contains_key("platform") {
        e.insert("platform".into(), Value::String("other".into()));
    }
    match e.get("fingerprint") {
        Some(Value::Array(items))
            if items.iter().all(|i| as_text(i).is_some()) && !items.is_empty() =>
        {
            let strs: Vec<Value> = items
                .iter()
                .filter_map(as_text)
                .map(Value::String)
                .collect();
            e.insert("fingerprint".into(), Value::Array(strs));
        }
        _ => {
            e.remove("fingerprint");
        }
    }

    let kind = if is_tx {
        normalize_transaction(&mut e, total_shift, timestamp)?;
        "transaction"
    } else if e
        .get("exception")
        .and_then(|x| x.get("values"))
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty())
    {
        "error"
    } else {
        "default"
    };
    e.insert("type".into(), Value::String(kind.into()));
    Ok(Normalized {
        payload: Value::Object(e),
        event_id,
        timestamp,
        kind,
        level,
        clamped_future,
    })
}

fn normalize_transaction(
    e: &mut Map<String, Value>,
    shift: chrono::Duration,
    end: DateTime<Utc>,
) -> Result<(), RejectReason> {
    let start = e
        .get("start_timestamp")
        .and_then(parse_timestamp)
        .map(|t| t + shift)
        .ok_or_else(|| {
            RejectReason::InvalidTransaction("start_timestamp is missing or invalid".into())
        })?;
    if start > end {
        return Err(RejectReason::InvalidTransaction(
            "start_timestamp is after timestamp".into(),
        ));
    }
    e.insert("start_timestamp".into(), secs(start));
    if !e.get("transaction").is_some_and(Value::is_string) {
        e.insert(
            "transaction".into(),
            Value::String("<unlabeled transaction>".into()),
        );
    }
    let contexts = e.entry("contexts").or_insert_with(|| json!({}));
    if let Value::Object(c) = contexts {
        let trace = c.entry("trace").or_insert_with(|| json!({}));
        if let Value::Object(t) = trace {
            if !t.get("trace_id").is_some_and(Value::is_string) {
                t.insert(
                    "trace_id".into(),
                    Value::String(uuid::Uuid::new_v4().simple().to_string()),
                );
            }
            if !t.get("span_id").is_some_and(Value::is_string) {
                t.insert(
                    "span_id".into(),
                    Value::String(uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()),
                );
            }
            if !t.get("op").is_some_and(Value::is_string) {
                t.insert("op".into(), Value::String("default".into()));
            }
            if !t.get("status").is_some_and(Value::is_string) {
                t.insert("status".into(), Value::String("ok".into()));
            }
        }
    }
    if let Some(spans) = e.get_mut("spans").and_then(Value::as_array_mut) {
        spans.retain(|s| s.get("span_id").is_some_and(Value::is_string));
        for s in spans.iter_mut() {
            if let Value::Object(s) = s {
                fix_time(s, "start_timestamp", shift);
                fix_time(s, "timestamp", shift);
                let (a, b) = (
                    s.get("start_timestamp").and_then(Value::as_f64),
                    s.get("timestamp").and_then(Value::as_f64),
                );
                match (a, b) {
                    (Some(a), Some(b)) if b >= a => {}
                    (Some(a), _) => {
                        s.insert("timestamp".into(), json!(a));
                    }
                    (None, Some(b)) => {
                        s.insert("start_timestamp".into(), json!(b));
                    }
                    (None, None) => {
                        s.insert("start_timestamp".into(), secs(start));
                        s.insert("timestamp".into(), secs(start));
                    }
                }
                if !s.get("op").is_some_and(Value::is_string) {
                    s.insert("op".into(), Value::String("default".into()));
                }
            }
        }
    } else {
        e.insert("spans".into(), json!([]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(item: ItemKind) -> NormalizeContext {
        NormalizeContext {
            item,
            received: DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            sent_at: None,
            header_event_id: None,
        }
    }

    #[test]
    fn rust_and_python_shapes_agree() {
        let rust = json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "timestamp": 1_795_089_600.5,
            "exception": [{"type": "E", "value": "x"}], "tags": {"a": "b"}, "breadcrumbs": [{"message": "m", "timestamp": 1_795_089_599.0}]});
        let python = json!({"event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC", "timestamp": "2026-11-19T12:00:00.500000Z", "level": "error",
            "exception": {"values": [{"type": "E", "value": "x"}]}, "tags": [["a", "b"]], "breadcrumbs": {"values": [{"message": "m", "timestamp": "2026-11-19T11:59:59Z"}]}});
        let a = normalize_event(rust, &ctx(ItemKind::Event)).unwrap();
        let b = normalize_event(python, &ctx(ItemKind::Event)).unwrap();
        assert_eq!(a.event_id, "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.level, "error");
        assert_eq!(a.kind, "error");
        assert_eq!(a.timestamp, b.timestamp);
        for key in [
            "exception",
            "tags",
            "breadcrumbs",
            "timestamp",
            "level",
            "type",
        ] {
            assert_eq!(a.payload[key], b.payload[key], "{key}");
        }
    }

    #[test]
    fn custom_contexts_lose_the_sdks_unknown_type() {
        let event = json!({"message": "m", "contexts": {
            "trading": {"type": "unknown", "asset": "ETH", "phase": "order_placement"},
            "os": {"type": "os", "name": "Linux"}}});
        let n = normalize_event(event, &ctx(ItemKind::Event)).unwrap();
        assert_eq!(
            n.payload["contexts"]["trading"],
            json!({"asset": "ETH", "phase": "order_placement"})
        );
        assert_eq!(n.payload["contexts"]["os"]["type"], "os");
    }

    #[test]
    fn time_rules() {
        let c = ctx(ItemKind::Event);
        let old = json!({"timestamp": "2026-10-01T00:00:00Z", "message": "x"});
        assert_eq!(normalize_event(old, &c).unwrap_err(), RejectReason::TooOld);
        let future = json!({"timestamp": "2026-11-24T12:05:00Z", "message": "x"});
        let n = normalize_event(future, &c).unwrap();
        assert!(n.clamped_future);
        assert_eq!(n.timestamp, c.received);
        // A client clock two hours slow is corrected through sent_at.
        let mut drift = c.clone();
        drift.sent_at = Some(c.received - chrono::Duration::hours(2));
        let n = normalize_event(
            json!({"timestamp": "2026-11-24T09:59:00Z", "message": "x"}),
            &drift,
        )
        .unwrap();
        assert_eq!(n.timestamp, c.received - chrono::Duration::minutes(1));
        // Small drift is left alone.
        drift.sent_at = Some(c.received - chrono::Duration::minutes(5));
        let n = normalize_event(
            json!({"timestamp": "2026-11-24T11:50:00Z", "message": "x"}),
            &drift,
        )
        .unwrap();
        assert_eq!(n.timestamp, c.received - chrono::Duration::minutes(10));
    }

    #[test]
    fn transactions_without_type_are_classified_by_item() {
        let tx = json!({"start_timestamp": 1_795_003_200.0, "timestamp": "2026-11-19T12:00:01Z", "transaction": "T",
            "contexts": {"trace": {"trace_id": "a", "span_id": "b", "op": "order.pipeline"}},
            "spans": [{"span_id": "c", "op": "risk.check", "start_timestamp": 1_795_003_200.1, "timestamp": 1_795_003_200.3}]});
        let n = normalize_event(tx, &ctx(ItemKind::Transaction)).unwrap();
        assert_eq!(n.kind, "transaction");
        assert_eq!(n.level, "info");
        assert_eq!(n.payload["type"], "transaction");
        let bad = json!({"start_timestamp": 1_795_003_201.0, "timestamp": 1_795_003_200.0});
        assert!(matches!(
            normalize_event(bad, &ctx(ItemKind::Transaction)),
            Err(RejectReason::InvalidTransaction(_))
        ));
    }

    #[test]
    fn messages_and_levels() {
        let n = normalize_event(json!({"logentry": {"message": "order %s failed", "params": ["1"], "formatted": "order 1 failed"}, "level": "warn"}), &ctx(ItemKind::Event)).unwrap();
        assert_eq!(n.payload["message"], "order 1 failed");
        assert_eq!(n.payload["logentry"]["message"], "order %s failed");
        assert_eq!(n.level, "warning");
        assert_eq!(n.kind, "default");
        let long = "x".repeat(20_000);
        let n = normalize_event(json!({"message": long}), &ctx(ItemKind::Event)).unwrap();
        assert_eq!(
            n.payload["message"].as_str().unwrap().len(),
            MAX_MESSAGE_CHARS
        );
        assert!(normalize_event(json!([1]), &ctx(ItemKind::Event)).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(ts in prop_oneof![Just(json!(null)), any::<f64>().prop_map(|f| json!(f)), "\\PC{0,40}".prop_map(|s| json!(s))],
                        tags in prop_oneof![Just(json!(null)), Just(json!([[1, 2], ["a"], "x"])), Just(json!({"k": {"nested": 1}}))],
                        msg in prop_oneof![Just(json!(null)), "\\PC{0,50}".prop_map(|s| json!(s)), Just(json!({"formatted": 3}))]) {
            let ev = json!({"timestamp": ts, "tags": tags, "message": msg, "exception": "nope", "breadcrumbs": [1, {"timestamp": "x"}],
                            "start_timestamp": ts, "spans": [{"span_id": 1}, {"span_id": "a", "start_timestamp": "bad"}]});
            let _ = normalize_event(ev.clone(), &ctx(ItemKind::Event));
            let _ = normalize_event(ev, &ctx(ItemKind::Transaction));
        }
    }
}
