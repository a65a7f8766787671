//! Turning one inbox row into records for the store. Every item is handled on its own: a
//! bad item becomes a [`Rejection`] with a reason and the rest of the envelope goes on.

use super::InboxRow;
use crate::store::digest::{
    Batch, CheckInRecord, EventRecord, LogRecord, Rejection, SessionAggregateRecord, SessionRecord,
    SpanRecord, TransactionRecord,
};
use chrono::{DateTime, Utc};
use lookout_protocol::codec::{self, Encoding};
use lookout_protocol::normalize::{ItemKind, NormalizeContext, normalize_event};
use lookout_protocol::profile::{self, ProfileKind};
use lookout_protocol::{envelope, grouping, scrub, stacktrace};
use serde_json::Value;

/// Largest decoded envelope the digest reads (the ingest cap is lower).
const MAX_DECODED: usize = 256 * 1024 * 1024;

/// Sessions older than this are refused (Relay: 5 days).
const MAX_SESSION_AGE_MS: i64 = 5 * 86_400_000;

fn reject(
    batch: &mut Batch,
    row: &InboxRow,
    item_type: &str,
    reason: &str,
    detail: impl Into<String>,
) {
    batch.rejections.push(Rejection {
        inbox_id: row.id,
        project_id: row.project_id,
        item_type: item_type.to_owned(),
        reason: reason.to_owned(),
        detail: detail.into(),
    });
}

/// Digest one inbox row into `batch`, with the built-in in-app rules only.
pub fn process_row(row: &InboxRow, batch: &mut Batch) {
    process_row_with(row, &stacktrace::InAppRules::default(), batch);
}

/// Digest one inbox row into `batch`; `in_app` holds the project's in-app prefixes.
pub fn process_row_with(row: &InboxRow, in_app: &stacktrace::InAppRules, batch: &mut Batch) {
    let Some(encoding) = Encoding::from_name(&row.encoding) else {
        reject(
            batch,
            row,
            "envelope",
            "bad_encoding",
            format!("unknown inbox encoding {:?}", row.encoding),
        );
        return;
    };
    let decoded = match codec::decode(&row.envelope, encoding, MAX_DECODED) {
        Ok(d) => d,
        Err(e) => {
            reject(batch, row, "envelope", "bad_encoding", e.to_string());
            return;
        }
    };
    let env = match envelope::parse(&decoded) {
        Ok(env) => env,
        Err(e) => {
            reject(batch, row, "envelope", "bad_envelope", e.to_string());
            return;
        }
    };
    let received = DateTime::<Utc>::from_timestamp_millis(row.received_at).unwrap_or_else(Utc::now);
    let sent_at = env
        .headers
        .get("sent_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let header_event_id = env.event_id();
    let (sessions_before, events_before, transactions_before) = (
        batch.sessions.len(),
        batch.events.len(),
        batch.transactions.len(),
    );
    // Profiles first: a transaction whose profile is valid carries its id
    // (`contexts.profile.profile_id`), as Relay adds it.
    let mut profiles = Vec::new();
    for item in &env.items {
        let t = item.item_type();
        if let Some(kind) = ProfileKind::from_item_type(t) {
            match profile::parse(item.payload, kind) {
                Ok(p) => profiles.push(p),
                Err(e) => reject(batch, row, t, e.reason(), e.to_string()),
            }
        }
    }
    let profiled: Vec<(&str, &str)> = profiles
        .iter()
        .filter_map(|p| Some((p.transaction.as_ref()?.id.as_str(), p.profile_id.as_str())))
        .collect();
    for item in &env.items {
        let t = item.item_type();
        match t {
            "event" | "transaction" => event_item(
                row,
                batch,
                in_app,
                t,
                item.payload,
                received,
                sent_at,
                header_event_id.as_deref(),
                &profiled,
            ),
            "session" => session_item(row, batch, item.payload, received),
            "sessions" => sessions_item(row, batch, item.payload),
            "check_in" => check_in_item(row, batch, item.payload, received),
            "client_report" => client_report_item(row, batch, item.payload, received),
            "log" => log_items(row, batch, item.payload, received),
            // Profiles were read above. Attachments, replays, metrics and unknown types
            // are accepted and not digested.
            _ => {}
        }
    }
    for p in &profiles {
        let transaction = p.transaction.as_ref().and_then(|t| {
            batch.transactions[transactions_before..]
                .iter()
                .find(|r| r.event_id == t.id)
        });
        let record =
            super::profiles::record(row.project_id, received.timestamp_millis(), p, transaction);
        batch.profiles.push(record);
    }
    tag_sessions_with_agent(batch, sessions_before, events_before, transactions_before);
}

/// Session updates name their agent by the `agent_id` tag of an event or transaction in the
/// same envelope: the SDKs send a crash's session update with the crash event, so a crashed
/// agent reaches `agent_down` and the agents overview under the same id as its events and
/// heartbeat monitor, whether or not its user id was set (and whatever it was set to).
fn tag_sessions_with_agent(batch: &mut Batch, sessions: usize, events: usize, transactions: usize) {
    if batch.sessions.len() == sessions {
        return;
    }
    let agent = batch.events[events..]
        .iter()
        .map(|e| &e.tags)
        .chain(batch.transactions[transactions..].iter().map(|t| &t.tags))
        .find_map(|tags| tags.iter().find(|(k, _)| k == "agent_id"))
        .map(|(_, v)| v.clone());
    if let Some(agent) = agent {
        for s in &mut batch.sessions[sessions..] {
            s.agent = Some(agent.clone());
        }
    }
}

fn parse_json(row: &InboxRow, batch: &mut Batch, item_type: &str, payload: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(v @ Value::Object(_)) => Some(v),
        Ok(_) => {
            reject(
                batch,
                row,
                item_type,
                "invalid_json",
                "payload is not a JSON object",
            );
            None
        }
        Err(e) => {
            reject(
                batch,
                row,
                item_type,
                "invalid_json",
                format!("payload is not valid JSON: {e}"),
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn event_item(
    row: &InboxRow,
    batch: &mut Batch,
    in_app: &stacktrace::InAppRules,
    item_type: &str,
    payload: &[u8],
    received: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    header_event_id: Option<&str>,
    profiled: &[(&str, &str)],
) {
    let Some(value) = parse_json(row, batch, item_type, payload) else {
        return;
    };
    let ctx = NormalizeContext {
        item: if item_type == "transaction" {
            ItemKind::Transaction
        } else {
            ItemKind::Event
        },
        received,
        sent_at,
        header_event_id: header_event_id.map(str::to_owned),
    };
    let mut n = match normalize_event(value, &ctx) {
        Ok(n) => n,
        Err(e) => {
            reject(batch, row, item_type, e.as_str(), e.to_string());
            return;
        }
    };
    // Secrets go before anything is stored, tags included.
    scrub::scrub_event(&mut n.payload);
    if n.kind == "transaction"
        && let Some((_, profile_id)) = profiled.iter().find(|(t, _)| *t == n.event_id)
        && let Some(contexts) = n.payload.as_object_mut().map(|m| {
            m.entry("contexts")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        && let Value::Object(contexts) = contexts
    {
        contexts.insert(
            "profile".into(),
            serde_json::json!({ "profile_id": profile_id }),
        );
    }
    let p = &n.payload;
    let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
    let tags = tag_pairs(p);
    let user_key = user_key(p);
    let trace = p.get("contexts").and_then(|c| c.get("trace"));
    let trace_id = trace
        .and_then(|t| t.get("trace_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let timestamp_ms = n.timestamp.timestamp_millis();
    if n.kind == "transaction" {
        let start = p
            .get("start_timestamp")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let end = p.get("timestamp").and_then(Value::as_f64).unwrap_or(start);
        let spans = p
            .get("spans")
            .and_then(Value::as_array)
            .map(|spans| {
                spans
                    .iter()
                    .filter_map(|s| {
                        let a = s.get("start_timestamp").and_then(Value::as_f64)?;
                        let b = s.get("timestamp").and_then(Value::as_f64)?;
                        Some(SpanRecord {
                            span_id: s.get("span_id").and_then(Value::as_str)?.to_owned(),
                            parent_span_id: s
                                .get("parent_span_id")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            op: s
                                .get("op")
                                .and_then(Value::as_str)
                                .unwrap_or("default")
                                .to_owned(),
                            description: s
                                .get("description")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            status: s.get("status").and_then(Value::as_str).map(str::to_owned),
                            start_ms: a * 1000.0,
                            duration_ms: (b - a) * 1000.0,
                            data: s
                                .get("data")
                                .filter(|d| d.is_object())
                                .map(Value::to_string),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = text("transaction").unwrap_or_default();
        batch.transactions.push(TransactionRecord {
            project_id: row.project_id,
            event_id: n.event_id.clone(),
            timestamp_ms,
            received_ms: received.timestamp_millis(),
            op: trace
                .and_then(|t| t.get("op"))
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            status: trace
                .and_then(|t| t.get("status"))
                .and_then(Value::as_str)
                .unwrap_or("ok")
                .to_owned(),
            span_id: trace
                .and_then(|t| t.get("span_id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            trace_id: trace_id.unwrap_or_default(),
            duration_ms: (end - start) * 1000.0,
            start_ms: start * 1000.0,
            release: text("release"),
            environment: text("environment"),
            user_key,
            tags,
            spans,
            payload: compress(p),
            name,
        });
        return;
    }
    let mut payload = n.payload;
    // In-app flags first: grouping, culprit, API and UI all read them; the project's
    // prefixes come before the built-in rules.
    stacktrace::apply_in_app(&mut payload, in_app);
    let g = grouping::compute_grouping(&payload);
    if let Value::Object(m) = &mut payload {
        m.insert("title".into(), Value::String(g.title.clone()));
        m.insert("culprit".into(), Value::String(g.culprit.clone()));
        m.insert("metadata".into(), g.metadata.clone());
        m.insert(
            "_grouping".into(),
            serde_json::json!({"hash": g.hash, "variant": g.variant, "components": g.components,
                "config": grouping::GROUPING_CONFIG}),
        );
    }
    batch.events.push(EventRecord {
        project_id: row.project_id,
        event_id: n.event_id,
        timestamp_ms,
        received_ms: received.timestamp_millis(),
        level: n.level,
        kind: n.kind,
        release: payload
            .get("release")
            .and_then(Value::as_str)
            .map(str::to_owned),
        environment: payload
            .get("environment")
            .and_then(Value::as_str)
            .map(str::to_owned),
        transaction: payload
            .get("transaction")
            .and_then(Value::as_str)
            .map(str::to_owned),
        trace_id,
        user_key,
        hash: g.hash,
        title: g.title,
        culprit: g.culprit,
        metadata: g.metadata.to_string(),
        tags,
        payload: compress(&payload),
    });
}

/// The tags an event is searched by: its own, plus level, release, environment,
/// transaction and user, as Sentry indexes them.
fn tag_pairs(p: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = p
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    for key in ["level", "release", "environment", "transaction"] {
        if let Some(v) = p.get(key).and_then(Value::as_str)
            && !out.iter().any(|(k, _)| k == key)
        {
            out.push((key.to_owned(), v.chars().take(200).collect()));
        }
    }
    if let Some(u) = user_key(p) {
        out.push(("user".into(), u.chars().take(200).collect()));
    }
    out
}

/// One key per user for distinct-user counts: id, else email, username, IP.
fn user_key(p: &Value) -> Option<String> {
    let u = p.get("user")?;
    for (field, prefix) in [
        ("id", "id"),
        ("email", "email"),
        ("username", "username"),
        ("ip_address", "ip"),
    ] {
        if let Some(v) = u.get(field) {
            let s = match v {
                Value::String(s) if !s.is_empty() && s != "{{auto}}" => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            return Some(format!("{prefix}:{s}"));
        }
    }
    None
}

fn compress(v: &Value) -> Vec<u8> {
    thread_local! {
        // One zstd context per digest thread, reused: creating one per event showed in
        // profiles (allocation and table set-up).
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(1).ok());
    }
    // Room for a typical event up front: growing the buffer while serialising showed in
    // profiles.
    let mut bytes = Vec::with_capacity(16 * 1024);
    if serde_json::to_writer(&mut bytes, v).is_err() {
        bytes.clear();
    }
    COMPRESSOR
        .with_borrow_mut(|c| c.as_mut().and_then(|c| c.compress(&bytes).ok()))
        .unwrap_or(bytes)
}

/// Timestamps as RFC 3339 or float seconds → ms since epoch.
fn ts_ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| (f * 1000.0) as i64),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.timestamp_millis())
            .or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| (f * 1000.0) as i64)
            }),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

fn session_item(row: &InboxRow, batch: &mut Batch, payload: &[u8], received: DateTime<Utc>) {
    let Some(v) = parse_json(row, batch, "session", payload) else {
        return;
    };
    let attrs = v.get("attrs");
    let Some(release) = str_of(attrs.and_then(|a| a.get("release"))).filter(|r| !r.is_empty())
    else {
        reject(
            batch,
            row,
            "session",
            "missing_release",
            "session attrs.release is required",
        );
        return;
    };
    let Some(sid) = str_of(v.get("sid")) else {
        reject(
            batch,
            row,
            "session",
            "invalid_session",
            "session has no sid",
        );
        return;
    };
    let Some(started_ms) = ts_ms(v.get("started")) else {
        reject(
            batch,
            row,
            "session",
            "invalid_session",
            "session has no valid started timestamp",
        );
        return;
    };
    let now = received.timestamp_millis();
    if now - started_ms > MAX_SESSION_AGE_MS {
        reject(
            batch,
            row,
            "session",
            "too_old",
            "session started more than 5 days ago",
        );
        return;
    }
    let status = match v.get("status").and_then(Value::as_str).unwrap_or("ok") {
        s @ ("ok" | "exited" | "crashed" | "abnormal" | "errored") => s.to_owned(),
        "unhandled" => "crashed".to_owned(),
        other => {
            reject(
                batch,
                row,
                "session",
                "invalid_session",
                format!("unknown session status {other:?}"),
            );
            return;
        }
    };
    // A nil UUID is no user.
    let did = str_of(v.get("did"))
        .filter(|d| !d.is_empty() && d != "00000000-0000-0000-0000-000000000000");
    batch.sessions.push(SessionRecord {
        project_id: row.project_id,
        sid,
        did,
        agent: None,
        init: v.get("init").and_then(Value::as_bool).unwrap_or(false),
        status,
        errors: v.get("errors").and_then(Value::as_i64).unwrap_or(0).max(0),
        started_ms,
        timestamp_ms: ts_ms(v.get("timestamp")).unwrap_or(now),
        duration: v.get("duration").and_then(Value::as_f64),
        release,
        environment: str_of(attrs.and_then(|a| a.get("environment")))
            .unwrap_or_else(|| "production".into()),
    });
}

fn sessions_item(row: &InboxRow, batch: &mut Batch, payload: &[u8]) {
    let Some(v) = parse_json(row, batch, "sessions", payload) else {
        return;
    };
    let attrs = v.get("attrs");
    let Some(release) = str_of(attrs.and_then(|a| a.get("release"))).filter(|r| !r.is_empty())
    else {
        reject(
            batch,
            row,
            "sessions",
            "missing_release",
            "sessions attrs.release is required",
        );
        return;
    };
    let environment =
        str_of(attrs.and_then(|a| a.get("environment"))).unwrap_or_else(|| "production".into());
    let Some(aggregates) = v.get("aggregates").and_then(Value::as_array) else {
        reject(
            batch,
            row,
            "sessions",
            "invalid_session",
            "sessions item has no aggregates list",
        );
        return;
    };
    for a in aggregates {
        let Some(started_ms) = ts_ms(a.get("started")) else {
            reject(
                batch,
                row,
                "sessions",
                "invalid_session",
                "aggregate without a valid started",
            );
            continue;
        };
        let n = |k: &str| a.get(k).and_then(Value::as_i64).unwrap_or(0).max(0);
        batch.session_aggregates.push(SessionAggregateRecord {
            project_id: row.project_id,
            started_ms,
            did: str_of(a.get("did")),
            exited: n("exited"),
            errored: n("errored"),
            abnormal: n("abnormal"),
            crashed: n("crashed") + n("unhandled"),
            release: release.clone(),
            environment: environment.clone(),
        });
    }
}

fn check_in_item(row: &InboxRow, batch: &mut Batch, payload: &[u8], received: DateTime<Utc>) {
    let Some(v) = parse_json(row, batch, "check_in", payload) else {
        return;
    };
    let slug: String = str_of(v.get("monitor_slug"))
        .unwrap_or_default()
        .chars()
        .take(50)
        .collect();
    if slug.is_empty() {
        reject(
            batch,
            row,
            "check_in",
            "invalid_check_in",
            "check-in has no monitor_slug",
        );
        return;
    }
    let Some(check_in_id) =
        str_of(v.get("check_in_id")).and_then(|id| envelope::normalize_uuid(&id))
    else {
        reject(
            batch,
            row,
            "check_in",
            "invalid_check_in",
            "check_in_id is not a UUID",
        );
        return;
    };
    let status = match v.get("status").and_then(Value::as_str) {
        Some(s @ ("in_progress" | "ok" | "error")) => s.to_owned(),
        Some(_) | None => "unknown".to_owned(),
    };
    batch.check_ins.push(CheckInRecord {
        project_id: row.project_id,
        check_in_id,
        monitor_slug: slug,
        environment: str_of(v.get("environment"))
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "production".into()),
        status,
        duration_ms: v
            .get("duration")
            .and_then(Value::as_f64)
            .map(|s| s * 1000.0),
        release: str_of(v.get("release")),
        monitor_config: v
            .get("monitor_config")
            .filter(|c| c.is_object())
            .map(Value::to_string),
        received_ms: received.timestamp_millis(),
    });
}

fn client_report_item(row: &InboxRow, batch: &mut Batch, payload: &[u8], received: DateTime<Utc>) {
    let Some(v) = parse_json(row, batch, "client_report", payload) else {
        return;
    };
    let at = ts_ms(v.get("timestamp")).unwrap_or(received.timestamp_millis());
    let minute = at.div_euclid(60_000) * 60_000;
    for key in [
        "discarded_events",
        "rate_limited_events",
        "filtered_events",
        "filtered_sampling_events",
    ] {
        for d in v.get(key).and_then(Value::as_array).into_iter().flatten() {
            let reason = str_of(d.get("reason"))
                .unwrap_or_else(|| key.trim_end_matches("_events").to_owned());
            let category = str_of(d.get("category")).unwrap_or_default();
            let q = d
                .get("quantity")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .max(0);
            *batch
                .client_reports
                .entry((row.project_id, minute, reason, category))
                .or_insert(0) += q;
        }
    }
}

fn log_items(row: &InboxRow, batch: &mut Batch, payload: &[u8], received: DateTime<Utc>) {
    let Some(v) = parse_json(row, batch, "log", payload) else {
        return;
    };
    for item in v
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut item = item.clone();
        scrub::scrub_value(&mut item);
        let body: String = str_of(item.get("body"))
            .unwrap_or_default()
            .chars()
            .take(8192)
            .collect();
        batch.logs.push(LogRecord {
            project_id: row.project_id,
            timestamp_ms: ts_ms(item.get("timestamp")).unwrap_or(received.timestamp_millis()),
            level: str_of(item.get("level")).unwrap_or_else(|| "info".into()),
            body,
            trace_id: str_of(item.get("trace_id")),
            attributes: item.get("attributes").map(Value::to_string),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_that_is_not_utf8_is_refused_alone() {
        let mut envelope = b"{}\n{\"type\":\"event\"}\n{\"message\":\"bad \xff byte\"}\n".to_vec();
        envelope.extend_from_slice(b"{\"type\":\"event\"}\n{\"message\":\"order 1 failed\"}\n");
        let row = InboxRow {
            id: 7,
            project_id: 1,
            received_at: Utc::now().timestamp_millis(),
            encoding: "identity".into(),
            envelope,
        };
        let mut batch = Batch::default();
        process_row(&row, &mut batch);
        assert_eq!(batch.rejections.len(), 1, "{:?}", batch.rejections);
        let r = &batch.rejections[0];
        assert_eq!((r.inbox_id, r.reason.as_str()), (7, "invalid_json"));
        assert!(r.detail.contains("not valid JSON"), "{}", r.detail);
        // The envelope's other item goes on.
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].title, "order 1 failed");
    }
}
