//! The ingest endpoints: `POST /api/{project_id}/envelope/` and `POST /api/{project_id}/store/`.
//!
//! The hot path does no heavy work: authenticate the key, read the body within bounds,
//! decode it, check the envelope framing and per-item limits, apply the key's quota, append
//! the raw envelope to the durable inbox, and answer only after the inbox commit.

pub mod auth;
pub mod body;
pub mod keys;
pub mod ratelimit;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::metrics::ItemLabel;
use crate::store::KeyInfo;
use crate::store::inbox::{Append, QueueError, try_queue};
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use base64::Engine;
use lookout_protocol::codec::{self, Encoding};
use lookout_protocol::envelope::{self, Envelope};
use serde_json::{Map, Value, json};
use std::io::Read;
use std::time::Duration;
use tokio::sync::oneshot;
use tower_http::cors::{Any, CorsLayer};

/// The ingest routes, with CORS for browser SDKs.
pub fn routes() -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([axum::http::Method::POST, axum::http::Method::OPTIONS])
        .allow_headers(Any)
        .expose_headers([
            header::HeaderName::from_static("x-sentry-rate-limits"),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(3600));
    Router::new()
        .route("/api/{project_id}/envelope/", post(envelope_endpoint))
        .route("/api/{project_id}/envelope", post(envelope_endpoint))
        .route("/api/{project_id}/store/", post(store_endpoint))
        .route("/api/{project_id}/store", post(store_endpoint))
        .layer(cors)
}

/// Size limits per item type after decompression, as Relay's defaults.
pub fn item_limit(item_type: &str) -> Option<usize> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    Some(match item_type {
        "event" | "transaction" | "feedback" | "user_report" | "trace_metric" => MIB,
        "check_in" | "session" | "sessions" | "client_report" => 100 * KIB,
        "log" | "otel_log" => 2 * MIB,
        "span" => 10 * MIB,
        // Profiles are refused as items past this (the rest of the envelope is kept): the
        // Python SDK's 30 s profiles stay well under 1 MiB; Relay's 50 MiB is a bomb here.
        "profile" | "profile_chunk" => lookout_protocol::profile::MAX_PROFILE_BYTES,
        "attachment" | "replay_recording" | "replay_video" => 200 * MIB,
        _ => return None,
    })
}

/// Whether an item past its size limit is refused alone (dropped from the envelope, counted
/// in `lookout_items_refused_total`) rather than with the whole envelope (413).
fn refused_alone(item_type: &str) -> bool {
    matches!(item_type, "profile" | "profile_chunk")
}

/// Whether an item counts against event quotas.
fn is_event_item(item_type: &str) -> bool {
    matches!(item_type, "event" | "transaction")
}

fn parse_project_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| {
        ApiError::bad_request(
            "bad_project_id",
            format!("project id {raw:?} in the URL is not a number"),
        )
    })
}

async fn authorize(state: &AppState, project_id: i64, key: &str) -> Result<KeyInfo, ApiError> {
    let info = state
        .keys
        .get(&state.store, key)
        .await?
        .ok_or_else(|| ApiError::Unauthorized(format!("unknown public key {key:?}")))?;
    if info.project_id != project_id {
        return Err(ApiError::Forbidden(format!(
            "this key does not belong to project {project_id}"
        )));
    }
    if !info.active {
        return Err(ApiError::Forbidden(
            "the project or its key is disabled".into(),
        ));
    }
    Ok(info)
}

/// Everything an accepted request turns into.
struct Accepted {
    event_id: Option<String>,
    item_types: Vec<String>,
    /// The plain envelope.
    envelope: Vec<u8>,
    /// Whether `envelope` differs from what the client sent (a wrapped store event, an
    /// added event id): then the received bytes cannot be kept as they are.
    rewritten: bool,
    /// Items dropped from the envelope: (item type, reason).
    refused: Vec<(String, &'static str)>,
}

async fn envelope_endpoint(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let result = ingest(
        &state,
        &project_id,
        query.as_deref(),
        &headers,
        body,
        Kind::Envelope,
    )
    .await;
    finish(&state, result)
}

async fn store_endpoint(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let result = ingest(
        &state,
        &project_id,
        query.as_deref(),
        &headers,
        body,
        Kind::Store,
    )
    .await;
    finish(&state, result)
}

fn finish(
    state: &AppState,
    result: Result<Option<String>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    match result {
        Ok(Some(id)) => Ok(Json(json!({ "id": id }))),
        Ok(None) => Ok(Json(json!({}))),
        Err(e) => {
            state.metrics.reject(e.reason());
            Err(e)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Envelope,
    Store,
}

async fn ingest(
    state: &AppState,
    project_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    kind: Kind,
) -> Result<Option<String>, ApiError> {
    // The server's clock (manual in tests), so arrival times and ticks agree.
    let received_at = chrono::DateTime::from_timestamp_millis(state.clock.now_ms())
        .unwrap_or_else(chrono::Utc::now);
    let project_id = parse_project_id(project_id)?;
    let creds = auth::from_request(headers, query)?;
    // Authenticate before reading the body when the request carries the key.
    let mut key = match &creds {
        Some(c) => Some(authorize(state, project_id, &c.key).await?),
        None if kind == Kind::Store => {
            return Err(ApiError::Unauthorized(
                "missing authorization: send X-Sentry-Auth, Authorization or sentry_key".into(),
            ));
        }
        None => None,
    };

    let limits = &state.config.ingest;
    let encoding = Encoding::parse(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let mut reservation = body::Reservation::new(state.memory.clone());
    let raw = body::read_limited(body, limits.max_body_bytes, &mut reservation).await?;
    let raw_len = raw.len();
    state
        .metrics
        .bytes
        .get_or_create(&crate::metrics::StageLabel { stage: "received" })
        .inc_by(raw_len as u64);
    let max_decoded = limits.max_envelope_bytes;
    let mut received: Option<bytes::Bytes> = None;
    let decoded = if encoding == Encoding::Identity {
        raw
    } else {
        // Pay for the decoded copy before making it: first a typical ratio, and only when
        // the body really inflates further, the whole limit.
        let raw = bytes::Bytes::from(raw);
        let guess = max_decoded.min(raw_len.saturating_mul(32).max(64 * 1024));
        reservation.ensure(raw_len.saturating_add(guess))?;
        received = Some(raw.clone());
        match decode_off_thread(raw.clone(), encoding, guess).await {
            Err(ApiError::TooLarge { .. }) if guess < max_decoded => {
                reservation.ensure(raw_len.saturating_add(max_decoded))?;
                decode_off_thread(raw, encoding, max_decoded).await?
            }
            other => other?,
        }
    };
    if encoding != Encoding::Identity {
        // The compressed copy is still held until the request ends.
        reservation.ensure(raw_len + decoded.len())?;
    }
    state
        .metrics
        .bytes
        .get_or_create(&crate::metrics::StageLabel {
            stage: "decompressed",
        })
        .inc_by(decoded.len() as u64);

    let accepted = match kind {
        Kind::Envelope => {
            let (accepted, dsn_key) = check_envelope(decoded)?;
            match (&key, dsn_key) {
                (None, Some(k)) => key = Some(authorize(state, project_id, &k).await?),
                (None, None) => {
                    return Err(ApiError::Unauthorized(
                        "missing authorization: send X-Sentry-Auth, Authorization, sentry_key or an envelope dsn"
                            .into(),
                    ));
                }
                (Some(_), _) => {}
            }
            accepted
        }
        Kind::Store => store_to_envelope(decoded)?,
    };
    let key = key.ok_or_else(|| ApiError::Internal("no key after authorization".into()))?;

    let events = accepted
        .item_types
        .iter()
        .filter(|t| is_event_item(t))
        .count() as u64;
    let limit = key
        .rate_limit_per_minute
        .unwrap_or(state.config.rate_limits.events_per_minute);
    state
        .limiter
        .admit(key.key_id, limit, events, received_at.timestamp())
        .map_err(|r| ApiError::RateLimited {
            retry_after: r.retry_after,
            limits: r.header,
            detail: format!("event quota of {limit} per minute for this key is spent"),
        })?;

    let Some(tx) = state.inbox.as_ref() else {
        return Err(shutting_down());
    };
    // Keep the body as the client compressed it; compress plain bodies that are worth it.
    // Either way the inbox writes a fraction of the decoded size.
    let (stored, stored_encoding) = match received {
        Some(bytes) if !accepted.rewritten => (bytes, encoding),
        _ => {
            let (packed, encoding) = codec::pack(accepted.envelope);
            (bytes::Bytes::from(packed), encoding)
        }
    };
    let (done_tx, done_rx) = oneshot::channel();
    let append = Append {
        project_id,
        key_id: key.key_id,
        event_id: accepted.event_id.clone(),
        item_types: accepted.item_types.join(","),
        envelope: stored,
        encoding: stored_encoding.name(),
        received_at: received_at.timestamp_millis(),
        permit: reservation.into_permit(),
        done: done_tx,
    };
    match try_queue(tx, append) {
        Ok(()) => {}
        Err(QueueError::Full) => {
            return Err(ApiError::Unavailable {
                reason: "queue_full",
                retry_after: 1,
                detail: "server overloaded: the inbox writer is behind, retry later".into(),
            });
        }
        Err(QueueError::Closed) => return Err(shutting_down()),
    }
    match done_rx.await {
        Ok(Ok(_row)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, "inbox append failed");
            return Err(ApiError::Unavailable {
                reason: "store_failed",
                retry_after: 5,
                detail: "the envelope could not be stored, retry later".into(),
            });
        }
        Err(_) => return Err(shutting_down()),
    }
    state.metrics.envelopes_accepted.inc();
    for (item_type, reason) in &accepted.refused {
        state.metrics.item_refused(item_type, reason);
    }
    for t in &accepted.item_types {
        let label = ItemLabel {
            item_type: t.clone(),
        };
        if envelope::is_known_item_type(t) {
            state.metrics.items_accepted.get_or_create(&label).inc();
        } else {
            state.metrics.items_skipped.get_or_create(&label).inc();
        }
    }
    Ok(accepted.event_id)
}

/// Decode small bodies inline, large ones on the blocking pool.
async fn decode_off_thread(
    raw: bytes::Bytes,
    encoding: Encoding,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    if raw.len() <= 256 * 1024 {
        return Ok(codec::decode(&raw, encoding, max)?);
    }
    Ok(
        tokio::task::spawn_blocking(move || codec::decode(&raw, encoding, max))
            .await
            .map_err(|e| ApiError::Internal(format!("decode task failed: {e}")))??,
    )
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable {
        reason: "shutting_down",
        retry_after: 5,
        detail: "the server is shutting down, retry later".into(),
    }
}

/// Check framing and item limits; make sure an envelope with an event has an `event_id`
/// header (taken from the payload, or generated) so the id answered is the id stored.
fn check_envelope(decoded: Vec<u8>) -> Result<(Accepted, Option<String>), ApiError> {
    let (event_id, item_types, dsn_key, missing_event_id, refused, kept) = {
        let env = envelope::parse(&decoded)
            .map_err(|e| ApiError::bad_request("bad_envelope", format!("invalid envelope: {e}")))?;
        let mut item_types = Vec::with_capacity(env.items.len());
        let mut refused = Vec::new();
        for (i, item) in env.items.iter().enumerate() {
            let t = item.item_type();
            if let Some(limit) = item_limit(t)
                && item.payload.len() > limit
                && refused_alone(t)
            {
                refused.push((i, t.to_owned(), "too_large"));
                continue;
            }
            if let Some(limit) = item_limit(t)
                && item.payload.len() > limit
            {
                return Err(ApiError::bad_request(
                    "item_too_large",
                    format!(
                        "envelope exceeded size limits for type '{t}': item {} has {} bytes, the limit is {limit}",
                        i + 1,
                        item.payload.len()
                    ),
                ));
            }
            item_types.push(t.to_owned());
        }
        let needs_id = env
            .items
            .iter()
            .any(|i| matches!(i.item_type(), "event" | "transaction"));
        let mut event_id = env.event_id();
        let missing = needs_id && event_id.is_none();
        if missing {
            event_id = Some(payload_event_id(&env).unwrap_or_else(new_event_id));
        }
        // The envelope without its refused items, written again only when there are some.
        let kept = (!refused.is_empty()).then(|| {
            let items: Vec<(Map<String, Value>, &[u8])> = env
                .items
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused.iter().any(|(r, _, _)| r == i))
                .map(|(_, item)| (item.headers.clone(), item.payload))
                .collect();
            envelope::serialize(&env.headers, &items)
        });
        (
            event_id,
            item_types,
            env.dsn().and_then(auth::key_from_dsn),
            missing,
            refused,
            kept,
        )
    };
    let rewritten = missing_event_id || kept.is_some();
    let decoded = kept.unwrap_or(decoded);
    let envelope = if missing_event_id {
        with_event_id_header(&decoded, event_id.as_deref().unwrap_or_default())?
    } else {
        decoded
    };
    Ok((
        Accepted {
            event_id,
            item_types,
            envelope,
            rewritten,
            refused: refused.into_iter().map(|(_, t, r)| (t, r)).collect(),
        },
        dsn_key,
    ))
}

fn payload_event_id(env: &Envelope<'_>) -> Option<String> {
    let item = env
        .items
        .iter()
        .find(|i| matches!(i.item_type(), "event" | "transaction"))?;
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: Option<String>,
    }
    let id: Id = serde_json::from_slice(item.payload).ok()?;
    id.event_id.as_deref().and_then(envelope::normalize_uuid)
}

fn new_event_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Replace the envelope header line with one that carries `event_id`.
fn with_event_id_header(decoded: &[u8], event_id: &str) -> Result<Vec<u8>, ApiError> {
    let end = decoded
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(decoded.len());
    let mut headers: Map<String, Value> = serde_json::from_slice(&decoded[..end]).map_err(|e| {
        ApiError::bad_request("bad_envelope", format!("invalid envelope header: {e}"))
    })?;
    headers.insert("event_id".into(), Value::String(event_id.to_owned()));
    let mut out = Value::Object(headers).to_string().into_bytes();
    out.extend_from_slice(&decoded[end..]);
    Ok(out)
}

/// The legacy store endpoint: one JSON event (plain, or base64 of zlib), wrapped into an
/// envelope so the digest reads one format.
fn store_to_envelope(decoded: Vec<u8>) -> Result<Accepted, ApiError> {
    let json = if decoded.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        decoded
    } else {
        let text: Vec<u8> = decoded
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|_| {
                ApiError::bad_request(
                    "bad_json",
                    "store body is neither a JSON object nor base64-encoded zlib JSON",
                )
            })?;
        let mut out = Vec::new();
        let limit = item_limit("event").unwrap_or(1 << 20) as u64 + 1;
        flate2::read::ZlibDecoder::new(&compressed[..])
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| {
                ApiError::bad_request(
                    "bad_compression",
                    format!("store body is not valid zlib: {e}"),
                )
            })?;
        out
    };
    let limit = item_limit("event").unwrap_or(1 << 20);
    if json.len() > limit {
        return Err(ApiError::bad_request(
            "item_too_large",
            format!(
                "envelope exceeded size limits for type 'event': {} bytes, the limit is {limit}",
                json.len()
            ),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Peek {
        event_id: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let peek: Peek = serde_json::from_slice(&json).map_err(|e| {
        ApiError::bad_request("bad_json", format!("store body is not a JSON event: {e}"))
    })?;
    let event_id = match peek.event_id.as_deref() {
        Some(id) => envelope::normalize_uuid(id).ok_or_else(|| {
            ApiError::bad_request("bad_json", format!("event_id {id:?} is not a UUID"))
        })?,
        None => new_event_id(),
    };
    let item_type = if peek.kind.as_deref() == Some("transaction") {
        "transaction"
    } else {
        "event"
    };
    let mut headers = Map::new();
    headers.insert("event_id".into(), Value::String(event_id.clone()));
    let mut item = Map::new();
    item.insert("type".into(), Value::String(item_type.into()));
    let bytes = envelope::serialize(&headers, &[(item, &json[..])]);
    Ok(Accepted {
        event_id: Some(event_id),
        item_types: vec![item_type.into()],
        envelope: bytes,
        rewritten: true,
        refused: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_event_id_is_taken_from_payload_or_generated() {
        let body =
            b"{}\n{\"type\":\"event\"}\n{\"event_id\":\"9EC79C33-EC99-42AB-8353-589FCB2E04DC\"}\n"
                .to_vec();
        let (acc, _) = check_envelope(body).unwrap();
        assert_eq!(
            acc.event_id.as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        let env = envelope::parse(&acc.envelope).unwrap();
        assert_eq!(env.event_id(), acc.event_id);
        assert_eq!(env.items.len(), 1);

        let (acc, _) = check_envelope(b"{}\n{\"type\":\"event\"}\n{}\n".to_vec()).unwrap();
        let id = acc.event_id.unwrap();
        assert_eq!(
            envelope::parse(&acc.envelope).unwrap().event_id().unwrap(),
            id
        );
        // Sessions alone need no id.
        let (acc, _) = check_envelope(b"{}\n{\"type\":\"session\"}\n{}\n".to_vec()).unwrap();
        assert_eq!(acc.event_id, None);
    }

    #[test]
    fn item_limits() {
        let mut body = b"{}\n{\"type\":\"check_in\"}\n{\"x\":\"".to_vec();
        body.extend(std::iter::repeat_n(b'a', 101 * 1024));
        body.extend_from_slice(b"\"}\n");
        let e = check_envelope(body).err().unwrap();
        assert!(
            e.to_string().contains("size limits for type 'check_in'"),
            "{e}"
        );
    }

    #[test]
    fn store_accepts_plain_and_base64_zlib() {
        let ev = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hi"}"#;
        let acc = store_to_envelope(ev.to_vec()).unwrap();
        assert_eq!(acc.item_types, ["event"]);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, br#"{"type":"transaction","spans":[]}"#).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
        let acc = store_to_envelope(b64.into_bytes()).unwrap();
        assert_eq!(acc.item_types, ["transaction"]);
        assert!(store_to_envelope(b"[1,2]".to_vec()).is_err());
    }
}
