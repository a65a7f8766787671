//! Cron and heartbeat monitors in Sentry's shapes (`/organizations/{org}/monitors/`), and
//! release health per release and environment, and per strategy
//! (`/projects/{org}/{project}/releases/health/`).

use super::{Caller, blocking, iso, parse_period};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::monitors::{MonitorConfig, MonitorRow};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/0/organizations/{org}/monitors/",
            get(list).post(create),
        )
        .route(
            "/api/0/organizations/{org}/monitors/{slug}/",
            get(detail).put(update).delete(remove),
        )
        .route(
            "/api/0/organizations/{org}/monitors/{slug}/checkins/",
            get(checkins),
        )
        .route(
            "/api/0/projects/{org}/{project}/releases/health/",
            get(release_health),
        )
}

fn monitor_json(m: &MonitorRow) -> Value {
    let envs: Vec<Value> = m
        .environments
        .iter()
        .map(|(name, status, last, next, latest)| {
            json!({"name": name, "status": status, "lastCheckIn": last.map(iso),
                   "nextCheckIn": next.map(iso), "nextCheckInLatest": latest.map(iso), "isMuted": false})
        })
        .collect();
    let worst = m
        .environments
        .iter()
        .map(|e| e.1.as_str())
        .find(|s| matches!(*s, "error" | "missed_checkin" | "timeout"))
        .unwrap_or(if m.environments.is_empty() {
            "new"
        } else {
            "ok"
        });
    json!({
        "id": m.id.to_string(), "slug": m.slug, "name": m.name,
        "status": m.status, "health": worst, "type": "cron_job",
        "config": m.config, "environments": envs,
        "project": {"slug": m.project_slug}, "dateCreated": iso(m.date_created),
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let monitors = state.store.monitors();
    let rows = blocking(move || monitors.list(&org, None)).await?;
    Ok(Json(Value::Array(rows.iter().map(monitor_json).collect())))
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let monitors = state.store.monitors();
    let rows = blocking(move || monitors.list(&org, Some(&slug))).await?;
    rows.first()
        .map(|m| Json(monitor_json(m)))
        .ok_or_else(|| ApiError::NotFound("monitor not found".into()))
}

/// Validate a create/update body: (project slug, slug, name, status, config).
fn parse_body(
    body: &Value,
    slug_from_path: Option<&str>,
) -> Result<(Option<String>, String, String, String, MonitorConfig), ApiError> {
    let mut errors = serde_json::Map::new();
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let slug = slug_from_path
        .map(str::to_owned)
        .or_else(|| body.get("slug").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| name.as_ref().map(|n| n.to_lowercase().replace(' ', "-")));
    let slug = match slug {
        Some(s)
            if !s.is_empty()
                && s.len() <= 50
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            s
        }
        _ => {
            errors.insert(
                "slug".into(),
                json!(["Enter a valid slug: letters, digits, - and _ (at most 50)."]),
            );
            String::new()
        }
    };
    let config = match body.get("config") {
        None => {
            errors.insert("config".into(), json!(["This field is required."]));
            None
        }
        Some(c) => match MonitorConfig::parse(c) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.insert("config".into(), json!([e]));
                None
            }
        },
    };
    let status = match body
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("active")
    {
        s @ ("active" | "disabled") => s.to_owned(),
        other => {
            errors.insert(
                "status".into(),
                json!([format!("\"{other}\" is not a valid choice.")]),
            );
            String::new()
        }
    };
    let project = body
        .get("project")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match config {
        Some(config) if errors.is_empty() => {
            Ok((project, slug.clone(), name.unwrap_or(slug), status, config))
        }
        _ => Err(ApiError::Fields(Value::Object(errors))),
    }
}

async fn save(
    state: AppState,
    org: String,
    slug: Option<String>,
    body: Value,
) -> Result<Value, ApiError> {
    let (project, slug, name, status, config) = parse_body(&body, slug.as_deref())?;
    let monitors = state.store.monitors();
    let row =
        blocking(move || monitors.save(&org, project.as_deref(), &slug, &name, &status, &config))
            .await?;
    Ok(monitor_json(&row))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("project:write")?;
    Ok((
        StatusCode::CREATED,
        Json(save(state, org, None, body).await?),
    ))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:write")?;
    Ok(Json(save(state, org, Some(slug), body).await?))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("project:write")?;
    let monitors = state.store.monitors();
    blocking(move || monitors.delete(&org, &slug)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn checkins(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let monitors = state.store.monitors();
    let rows = blocking(move || monitors.check_ins(&org, &slug, 100)).await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|(id, status, duration, env, at)| {
                json!({"id": id, "status": status, "duration": duration, "environment": env, "dateCreated": iso(*at)})
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
struct Window {
    #[serde(rename = "statsPeriod")]
    stats_period: Option<String>,
}

/// Crash-free sessions and users per release and environment (sentry-protocol.md §5):
/// crash-free sessions = 1 − crashed / sessions; crash-free users = 1 − users with a crashed
/// session / users; adoption = the release's share of all sessions in the window.
async fn release_health(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Query(w): Query<Window>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:read")?;
    let period = parse_period(w.stats_period.as_deref().unwrap_or("24h"))?;
    let now = state.clock.now_ms();
    let since = now - period;
    let (rows, strategies) =
        crate::services::health::release_health(&state.store, &org, &project, since).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|h| {
            let r = &h.figures;
            json!({
                "release": r.release, "environment": r.environment, "strategy": r.strategy,
                "sessions": r.sessions, "sessionsCrashed": r.crashed, "sessionsAbnormal": r.abnormal, "sessionsErrored": r.errored,
                "crashFreeSessions": h.crash_free_sessions,
                "users": r.users, "usersCrashed": r.users_crashed,
                "crashFreeUsers": h.crash_free_users,
                "adoption": h.adoption,
                "firstSeen": iso(r.first_seen), "lastSeen": iso(r.last_seen),
            })
        })
        .collect();
    let by_strategy: Vec<Value> = strategies
        .iter()
        .map(|s| {
            json!({"strategy": s.strategy, "sessions": s.sessions, "sessionsCrashed": s.crashed,
                   "crashFreeSessions": s.crash_free_sessions, "releases": s.releases})
        })
        .collect();
    Ok(Json(json!({"data": data, "strategies": by_strategy})))
}
