//! Performance: transaction and span-op summaries (count, p50/p75/p95/p99, failure rate)
//! over a time window, merged from per-minute sketches; a trace with its spans.

use super::{Caller, blocking, parse_period};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::profiles;
use crate::store::read::TransactionFilter;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most transactions of one trace looked up for a continuous profiler session.
const MAX_CONTINUOUS_LOOKUPS: usize = 50;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/0/projects/{org}/{project}/transactions/",
            get(transactions),
        )
        .route(
            "/api/0/projects/{org}/{project}/transactions/recent/",
            get(recent),
        )
        .route("/api/0/projects/{org}/{project}/span-ops/", get(span_ops))
        .route(
            "/api/0/projects/{org}/{project}/traces/{trace_id}/",
            get(trace),
        )
}

#[derive(Debug, Deserialize)]
struct Window {
    #[serde(rename = "statsPeriod")]
    stats_period: Option<String>,
}

async fn summary(
    state: AppState,
    org: String,
    project: String,
    window: Window,
    kind: &'static str,
) -> Result<Json<Value>, ApiError> {
    let period = parse_period(window.stats_period.as_deref().unwrap_or("24h"))?;
    let now = chrono::Utc::now().timestamp_millis();
    let reader = state.reader.clone();
    let rows = blocking(move || {
        let p = reader.project(&org, &project)?;
        // Include the current minute.
        reader.latency(p.id, kind, now - period, now + 60_000)
    })
    .await?;
    Ok(Json(json!({ "data": rows })))
}

async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    summary(state, org, project, window, "transaction").await
}

async fn span_ops(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    summary(state, org, project, window, "span").await
}

async fn trace(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, trace_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let reader = state.reader.clone();
    let store = state.store.clone();
    let id = trace_id.to_ascii_lowercase();
    let (project_id, spans, profiled) = blocking(move || {
        let p = reader.project(&org, &project)?;
        Ok((
            p.id,
            reader.trace(p.id, &id)?,
            store.profiles().ids_in_trace(p.id, &id)?,
        ))
    })
    .await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("trace {trace_id} not found")));
    }
    // Transactions without a profile of their own, profiled by a continuous profiler.
    let mut continuous: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in &spans {
        if profiled.iter().any(|(e, _)| *e == s.event_id) || !seen.insert(s.event_id.as_str()) {
            continue;
        }
        if seen.len() > MAX_CONTINUOUS_LOOKUPS {
            break;
        }
        if let Some(profiler_id) =
            profiles::linked_profiler(&state.store, project_id, &s.event_id).await?
        {
            continuous.push((s.event_id.clone(), profiler_id));
        }
    }
    // Each span of a profiled transaction names its profile, as Sentry's trace view does.
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            if let Some((_, profile_id)) = profiled.iter().find(|(e, _)| *e == s.event_id)
                && let Value::Object(m) = &mut v
            {
                m.insert("profileId".into(), Value::String(profile_id.clone()));
            }
            if let Some((_, profiler_id)) = continuous.iter().find(|(e, _)| *e == s.event_id)
                && let Value::Object(m) = &mut v
            {
                m.insert("profilerId".into(), Value::String(profiler_id.clone()));
            }
            v
        })
        .collect();
    let profiles: Vec<Value> =
        profiled
            .iter()
            .map(|(event_id, profile_id)| json!({"eventId": event_id, "profileId": profile_id}))
            .chain(continuous.iter().map(
                |(event_id, profiler_id)| json!({"eventId": event_id, "profilerId": profiler_id}),
            ))
            .collect();
    Ok(Json(
        json!({ "traceId": trace_id.to_ascii_lowercase(), "spans": spans,
                    "profiles": profiles }),
    ))
}

#[derive(Debug, Deserialize)]
struct RecentQuery {
    transaction: Option<String>,
    op: Option<String>,
    status: Option<String>,
    agent: Option<String>,
    #[serde(rename = "statsPeriod")]
    stats_period: Option<String>,
    limit: Option<i64>,
}

/// Recent transactions, newest first, with their trace, status, duration and agent;
/// filtered by name (`transaction`), `op`, `status` and `agent`, within `statsPeriod`
/// (default 24h); `limit` 1–1000 (default 100). A trace can be found here without an
/// error pointing at it.
async fn recent(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Query(q): Query<RecentQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let period = parse_period(q.stats_period.as_deref().unwrap_or("24h"))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid",
            format!("limit {limit} is out of range: use 1 to 1000"),
        ));
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = TransactionFilter {
        name: nonempty(q.transaction),
        op: nonempty(q.op),
        status: nonempty(q.status),
        agent: nonempty(q.agent),
        since_ms: Some(state.clock.now_ms() - period),
    };
    let reader = state.reader.clone();
    let rows = blocking(move || {
        let p = reader.project(&org, &project)?;
        reader.transactions(p.id, &filter, limit)
    })
    .await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({"eventId": t.event_id, "transaction": t.transaction, "op": t.op,
                   "traceId": t.trace_id, "status": t.status, "duration": t.duration_ms,
                   "timestamp": crate::time::iso(t.timestamp), "agent": t.agent,
                   "release": t.release, "environment": t.environment})
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
