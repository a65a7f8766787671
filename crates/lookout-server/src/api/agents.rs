//! The kill switch over HTTP.
//!
//! With an API token (`Authorization: Bearer`):
//! * `GET /api/0/projects/{org}/{project}/agents/` (`project:read`): every agent with its
//!   health `status` and its trading state.
//! * `POST …/agents/{agent_id}/pause/` with `{"reason": "…", "minutes": N?}` and
//!   `POST …/agents/{agent_id}/resume/` (`agents:write`).
//!
//! With the DSN's public key (the forms ingest takes: `X-Sentry-Auth`, `Authorization:
//! Sentry`, `sentry_key` in the query), read-only:
//! * `GET /api/{project_id}/agents/{agent_id}/control/?since=<version>&wait=<secs>`: the
//!   agent's trading state, at once when its version differs from `since`, else as soon as
//!   it changes (on any node) or after `wait` seconds (default 25, at most 60). No endpoint
//!   lets a DSN key change the state: an agent can never lift its own pause.

use super::{Caller, blocking, iso};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::ingest::auth;
use crate::services::trading::{self, Actor, TradingState};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait a control request may ask for, in seconds.
pub(super) const MAX_WAIT_SECS: u64 = 60;
/// The wait when the request names none, in seconds.
pub(super) const DEFAULT_WAIT_SECS: u64 = 25;
/// Longest agent id accepted in a path.
const MAX_AGENT_ID: usize = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/0/projects/{org}/{project}/agents/", get(list))
        .route(
            "/api/0/projects/{org}/{project}/agents/{agent_id}/pause/",
            post(pause),
        )
        .route(
            "/api/0/projects/{org}/{project}/agents/{agent_id}/resume/",
            post(resume),
        )
        .route("/api/{project_id}/agents/{agent_id}/control/", get(control))
}

fn actor_json(a: &Actor) -> Value {
    json!({"kind": a.kind(), "id": a.id(), "name": a.name(), "text": a.describe()})
}

/// An agent's trading state in the API's shape.
fn state_json(s: &TradingState) -> Value {
    json!({
        "trading": s.trading(),
        "pausedReason": s.reason,
        "pausedBy": s.by.as_ref().map(actor_json),
        "pausedSince": s.since.filter(|_| s.paused).map(iso),
        "pausedUntil": s.until.map(iso),
        "version": s.version,
    })
}

/// An agent's trading state with its id, and its health `status` when known (the list; a
/// pause or resume answers without it).
fn agent_json(agent_id: &str, status: &str, s: &TradingState) -> Value {
    let mut v = state_json(s);
    v["id"] = json!(agent_id);
    if !status.is_empty() {
        v["status"] = json!(status);
    }
    v
}

fn check_agent_id(agent_id: &str) -> Result<(), ApiError> {
    if agent_id.is_empty()
        || agent_id.len() > MAX_AGENT_ID
        || agent_id.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid",
            format!("agent id must be 1-{MAX_AGENT_ID} bytes without control characters"),
        ));
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:read")?;
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let agents = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        Ok(trading::list(&store, &org, p.id, now))
    })
    .await??;
    Ok(Json(Value::Array(
        agents
            .iter()
            .map(|a| agent_json(&a.agent_id, a.status, &a.trading))
            .collect(),
    )))
}

/// The body of a pause: `reason` (required) and `minutes` (optional, 1..=10080).
fn pause_body(bytes: &[u8]) -> Result<(String, Option<i64>), ApiError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    if !body.is_object() {
        return Err(ApiError::Fields(
            json!({"nonFieldErrors": ["Invalid data. Expected a dictionary."]}),
        ));
    }
    let reason = match body.get("reason") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => {
            return Err(ApiError::Fields(
                json!({"reason": ["This field is required."]}),
            ));
        }
        Some(_) => return Err(ApiError::Fields(json!({"reason": ["Not a valid string."]}))),
    };
    let minutes = match body.get("minutes") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::Fields(json!({"minutes": ["A valid integer is required."]}))
        })?),
    };
    Ok((reason, minutes))
}

async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, agent_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    caller.require("agents:write")?;
    check_agent_id(&agent_id)?;
    let (reason, minutes) = pause_body(&body)?;
    let now = state.clock.now_ms();
    let until = trading::until_of(minutes, now)?;
    trading::check_reason(&reason)?;
    let store = state.store.clone();
    let by = Actor::Token {
        id: caller.token_id,
        name: caller.token_name.clone(),
    };
    let s = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        Ok(trading::pause(
            &store, p.id, &agent_id, &reason, by, until, now,
        ))
    })
    .await??;
    tracing::info!(agent = %s.agent_id, token = caller.token_id, "agent paused through the API");
    Ok(Json(agent_json(&s.agent_id, "", &s)))
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, agent_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("agents:write")?;
    check_agent_id(&agent_id)?;
    let now = state.clock.now_ms();
    let store = state.store.clone();
    let by = Actor::Token {
        id: caller.token_id,
        name: caller.token_name.clone(),
    };
    let s = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        Ok(trading::resume(&store, p.id, &agent_id, by, now))
    })
    .await??;
    tracing::info!(agent = %s.agent_id, token = caller.token_id, "agent resumed through the API");
    Ok(Json(agent_json(&s.agent_id, "", &s)))
}

/// `since` and `wait` of a control request.
fn control_query(query: Option<&str>) -> Result<(Option<i64>, u64), ApiError> {
    let mut since = None;
    let mut wait = DEFAULT_WAIT_SECS;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*k {
            "since" => {
                since = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("invalid", format!("since={v:?} is not a version"))
                })?);
            }
            "wait" => {
                wait = v
                    .parse::<u64>()
                    .ok()
                    .filter(|w| *w <= MAX_WAIT_SECS)
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid",
                            format!("wait={v:?} must be 0-{MAX_WAIT_SECS} seconds"),
                        )
                    })?;
            }
            _ => {}
        }
    }
    Ok((since, wait))
}

/// The control channel: see the module docs.
async fn control(
    State(state): State<AppState>,
    Path((project_id, agent_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let project_id: i64 = project_id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_project_id",
            format!("project id {project_id:?} in the URL is not a number"),
        )
    })?;
    let creds = auth::from_request(&headers, query.as_deref())?.ok_or_else(|| {
        ApiError::Unauthorized(
            "missing authorization: send the DSN's key in X-Sentry-Auth, Authorization or sentry_key"
                .into(),
        )
    })?;
    let key = state
        .keys
        .get(&state.store, &creds.key)
        .await?
        .ok_or_else(|| ApiError::Unauthorized(format!("unknown public key {:?}", creds.key)))?;
    if key.project_id != project_id {
        return Err(ApiError::Forbidden(format!(
            "this key does not belong to project {project_id}"
        )));
    }
    if !key.active {
        return Err(ApiError::Forbidden(
            "the project or its key is disabled".into(),
        ));
    }
    check_agent_id(&agent_id)?;
    let (since, wait) = control_query(query.as_deref())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let mut changes = state.store.trading().subscribe();
    loop {
        changes.borrow_and_update();
        let now = state.clock.now_ms();
        let store = state.store.clone();
        let agent = agent_id.clone();
        let s = blocking(move || store.trading().get(project_id, &agent, now)).await?;
        if since != Some(s.version) || tokio::time::Instant::now() >= deadline {
            let mut body = state_json(&s);
            body["reason"] = body["pausedReason"].take();
            body["until"] = body["pausedUntil"].take();
            body["since"] = body["pausedSince"].take();
            if let Some(o) = body.as_object_mut() {
                o.remove("pausedReason");
                o.remove("pausedUntil");
                o.remove("pausedSince");
            }
            return Ok(Json(body));
        }
        // A pause with an end wakes the wait when it lifts itself.
        let lifts = s
            .until
            .map(|u| Duration::from_millis(u.saturating_sub(now).max(0) as u64 + 1))
            .unwrap_or(Duration::from_secs(MAX_WAIT_SECS + 1));
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The store is going away; answer with what holds now.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = tokio::time::sleep(lifts) => {}
        }
    }
}
