//! Issues and events: list with a query, detail, status changes, an issue's events, the
//! latest event with exception, breadcrumbs, tags and contexts.

use super::{Caller, blocking, iso, parse_id, parse_period};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::read::{EventRow, IssueRow, parse_query};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/0/projects/{org}/{project}/issues/", get(list_issues))
        .route("/api/0/issues/{id}/", get(get_issue).put(update_issue))
        .route(
            "/api/0/organizations/{org}/issues/{id}/",
            get(get_org_issue).put(update_org_issue),
        )
        .route("/api/0/issues/{id}/events/", get(issue_events))
        .route("/api/0/issues/{id}/events/{which}/", get(issue_event))
        .route("/api/0/issues/{id}/tags/", get(issue_tags))
        .route(
            "/api/0/projects/{org}/{project}/events/{event_id}/",
            get(project_event),
        )
}

#[derive(Debug, Deserialize)]
struct ListParams {
    query: Option<String>,
    #[serde(rename = "statsPeriod")]
    stats_period: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn parse_cursor(cursor: Option<&str>) -> i64 {
    // Cursors look like `0:100:0` (Sentry's value:offset:is_prev); we use the offset.
    cursor
        .and_then(|c| c.split(':').nth(1))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

fn issue_json(i: &IssueRow) -> Value {
    let metadata: Value = serde_json::from_str(&i.metadata).unwrap_or_else(|_| json!({}));
    json!({
        "id": i.id.to_string(),
        "shortId": i.short_id(),
        "title": i.title,
        "culprit": i.culprit,
        "level": i.level,
        "status": i.status,
        "type": i.kind,
        "metadata": metadata,
        "count": i.times_seen.to_string(),
        "userCount": i.user_count,
        "firstSeen": iso(i.first_seen),
        "lastSeen": iso(i.last_seen),
        "firstRelease": i.first_release.as_ref().map(|v| json!({ "version": v })),
        "project": { "id": i.project.id.to_string(), "slug": i.project.slug, "name": i.project.slug },
        "permalink": format!("/issues/{}/", i.id),
        "isUnhandled": false,
    })
}

async fn list_issues(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<(axum::http::HeaderMap, Json<Value>), ApiError> {
    caller.require("event:read")?;
    let reader = state.reader.clone();
    // Sentry's default query for the issue stream.
    let query = params.query.unwrap_or_else(|| "is:unresolved".into());
    let terms = parse_query(&query);
    let since = match params.stats_period.as_deref() {
        Some(p) if !p.is_empty() => Some(chrono::Utc::now().timestamp_millis() - parse_period(p)?),
        _ => None,
    };
    let limit = params.limit.unwrap_or(25).clamp(1, 100);
    let offset = parse_cursor(params.cursor.as_deref());
    let p = blocking(move || reader.project(&org, &project)).await?;
    let page =
        crate::services::issues::search(&state.store, p.id, terms, since, limit, offset).await?;
    let more = page.more;
    let body: Vec<Value> = page.issues.iter().map(issue_json).collect();
    let mut headers = axum::http::HeaderMap::new();
    let link = format!(
        "<?cursor=0:{prev}:1>; rel=\"previous\"; results=\"{has_prev}\"; cursor=\"0:{prev}:1\", <?cursor=0:{next}:0>; rel=\"next\"; results=\"{more}\"; cursor=\"0:{next}:0\"",
        prev = (offset - limit).max(0),
        has_prev = offset > 0,
        next = offset + limit,
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
        headers.insert(axum::http::header::LINK, v);
    }
    Ok((headers, Json(Value::Array(body))))
}

async fn issue_detail(state: AppState, id: i64) -> Result<Json<Value>, ApiError> {
    let reader = state.reader.clone();
    let (issue, tags) = blocking(move || Ok((reader.issue(id)?, reader.issue_tags(id)?))).await?;
    let mut body = issue_json(&issue);
    body["tags"] = tags_json(&tags);
    Ok(Json(body))
}

fn tags_json(tags: &[(String, Vec<(String, i64)>)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(key, values)| {
                let total: i64 = values.iter().map(|(_, n)| n).sum();
                json!({
                    "key": key,
                    "name": key,
                    "totalValues": total,
                    "topValues": values.iter().take(10).map(|(v, n)| json!({"key": key, "value": v, "name": v, "count": n})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

async fn get_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    issue_detail(state, parse_id("issue", &id)?).await
}

async fn get_org_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path((_org, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    issue_detail(state, parse_id("issue", &id)?).await
}

#[derive(Debug, Deserialize)]
struct UpdateIssue {
    status: Option<String>,
}

async fn update(state: AppState, id: i64, body: UpdateIssue) -> Result<Json<Value>, ApiError> {
    let status = match body.status.as_deref() {
        Some(s @ ("resolved" | "unresolved" | "ignored")) => s.to_owned(),
        Some("muted" | "archived") => "ignored".to_owned(),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid",
                format!("status {other:?} is not one of resolved, unresolved, ignored"),
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid",
                "nothing to update: send {\"status\": …}",
            ));
        }
    };
    let store = state.store.clone();
    blocking(move || store.set_issue_status(id, &status)).await?;
    issue_detail(state, id).await
}

async fn update_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateIssue>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:write")?;
    update(state, parse_id("issue", &id)?, body).await
}

async fn update_org_issue(
    State(state): State<AppState>,
    caller: Caller,
    Path((_org, id)): Path<(String, String)>,
    Json(body): Json<UpdateIssue>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:write")?;
    update(state, parse_id("issue", &id)?, body).await
}

/// An event in Sentry's event-detail shape: entries for exception, breadcrumbs, message and
/// request; tags as a list; contexts (the agent's `trading` context among them).
pub(crate) fn event_json(e: &EventRow) -> Value {
    let p = &e.payload;
    let mut entries = Vec::new();
    if let Some(exc) = p.get("exception").filter(|v| !v.is_null()) {
        entries.push(json!({"type": "exception", "data": exc}));
    }
    if let Some(b) = p.get("breadcrumbs").filter(|v| !v.is_null()) {
        entries.push(json!({"type": "breadcrumbs", "data": b}));
    }
    if let Some(m) = p.get("logentry").filter(|v| !v.is_null()) {
        entries.push(json!({"type": "message", "data": m}));
    } else if let Some(m) = p.get("message").and_then(Value::as_str) {
        entries.push(json!({"type": "message", "data": {"formatted": m}}));
    }
    if let Some(r) = p.get("request").filter(|v| !v.is_null()) {
        entries.push(json!({"type": "request", "data": r}));
    }
    if let Some(s) = p.get("spans").filter(|v| v.is_array()) {
        entries.push(json!({"type": "spans", "data": s}));
    }
    let tags: Vec<Value> = p
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    let message = p
        .get("logentry")
        .and_then(|l| l.get("formatted"))
        .or_else(|| p.get("message"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "id": e.event_id,
        "eventID": e.event_id,
        "groupID": e.issue_id.map(|i| i.to_string()),
        "title": p.get("title").cloned().unwrap_or(Value::Null),
        "culprit": p.get("culprit").cloned().unwrap_or(Value::Null),
        "message": message,
        "dateCreated": iso(e.timestamp),
        "platform": p.get("platform").cloned().unwrap_or(Value::Null),
        "level": p.get("level").cloned().unwrap_or(Value::Null),
        "release": p.get("release").cloned().unwrap_or(Value::Null),
        "environment": p.get("environment").cloned().unwrap_or(Value::Null),
        "user": p.get("user").cloned().unwrap_or(Value::Null),
        "sdk": p.get("sdk").cloned().unwrap_or(Value::Null),
        "fingerprints": p.get("fingerprint").cloned().unwrap_or(Value::Null),
        // Which rules grouped the event: hash, variant, components and config.
        "grouping": p.get("_grouping").cloned().unwrap_or(Value::Null),
        "contexts": p.get("contexts").cloned().unwrap_or_else(|| json!({})),
        "context": p.get("extra").cloned().unwrap_or_else(|| json!({})),
        "tags": tags,
        "entries": entries,
        "_meta": p.get("_meta").cloned().unwrap_or_else(|| json!({})),
    })
}

#[derive(Debug, Deserialize)]
struct EventsParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn issue_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<EventsParams>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let id = parse_id("issue", &id)?;
    let reader = state.reader.clone();
    let limit = params.limit.unwrap_or(50).clamp(1, 100);
    let offset = parse_cursor(params.cursor.as_deref());
    let events = blocking(move || {
        reader.issue(id)?;
        reader.issue_events(id, limit, offset)
    })
    .await?;
    Ok(Json(Value::Array(events.iter().map(event_json).collect())))
}

async fn issue_event(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, which)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let id = parse_id("issue", &id)?;
    let reader = state.reader.clone();
    let event = blocking(move || {
        let issue = reader.issue(id)?;
        match which.as_str() {
            "latest" | "recommended" => reader.issue_events(id, 1, 0)?.into_iter().next(),
            "oldest" => {
                let n = issue.times_seen.max(1);
                reader.issue_events(id, 1, n - 1)?.into_iter().next()
            }
            event_id => {
                Some(reader.event(issue.project.id, event_id)?).filter(|e| e.issue_id == Some(id))
            }
        }
        .ok_or_else(|| crate::store::StoreError::NotFound("event".into()))
    })
    .await?;
    Ok(Json(event_json(&event)))
}

async fn issue_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let id = parse_id("issue", &id)?;
    let reader = state.reader.clone();
    let tags = blocking(move || {
        reader.issue(id)?;
        reader.issue_tags(id)
    })
    .await?;
    Ok(Json(tags_json(&tags)))
}

async fn project_event(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, event_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let reader = state.reader.clone();
    let event_id = lookout_protocol::envelope::normalize_uuid(&event_id)
        .ok_or_else(|| ApiError::NotFound("event not found".into()))?;
    let event = blocking(move || {
        let p = reader.project(&org, &project)?;
        reader.event(p.id, &event_id)
    })
    .await?;
    Ok(Json(event_json(&event)))
}
