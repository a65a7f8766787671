//! Cron and heartbeat monitors in Sentry's shapes (`/organizations/{org}/monitors/`), and
//! release health per release and environment, and per strategy
//! (`/projects/{org}/{project}/releases/health/`).

use super::{Caller, blocking, iso, parse_period};
use crate::config::Synchronous;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::monitors::{self, MonitorConfig, MonitorRow};
use crate::store::{StoreError, connect};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{OptionalExtension, params};
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

fn db(state: &AppState) -> std::path::PathBuf {
    state.config.data_dir.join("lookout.db")
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
    let path = db(&state);
    let rows =
        blocking(move || monitors::list(&connect(&path, Synchronous::Full)?, &org, None)).await?;
    Ok(Json(Value::Array(rows.iter().map(monitor_json).collect())))
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let path = db(&state);
    let rows =
        blocking(move || monitors::list(&connect(&path, Synchronous::Full)?, &org, Some(&slug)))
            .await?;
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
    let path = db(&state);
    let rows = blocking(move || {
        let conn = connect(&path, Synchronous::Full)?;
        let project_id: Option<i64> = conn
            .query_row(
                "SELECT p.id FROM projects p JOIN organizations o ON o.id = p.org_id
                 WHERE o.slug = ?1 AND (p.slug = ?2 OR (?2 IS NULL AND p.id = (SELECT m.project_id FROM monitors m JOIN projects p2 ON p2.id = m.project_id JOIN organizations o2 ON o2.id = p2.org_id WHERE o2.slug = ?1 AND m.slug = ?3)))
                 ORDER BY p.id LIMIT 1",
                params![org, project, slug],
                |r| r.get(0),
            )
            .optional()?;
        let Some(project_id) = project_id else {
            return Err(StoreError::Invalid("project: a valid project slug is required".into()));
        };
        monitors::put(&conn, project_id, &slug, &name, &status, &config)?;
        monitors::list(&conn, &org, Some(&slug))
    })
    .await?;
    rows.first()
        .map(monitor_json)
        .ok_or_else(|| ApiError::Internal("monitor vanished after save".into()))
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
    let path = db(&state);
    blocking(move || monitors::delete(&connect(&path, Synchronous::Full)?, &org, &slug)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn checkins(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let path = db(&state);
    let rows = blocking(move || {
        monitors::check_ins(&connect(&path, Synchronous::Full)?, &org, &slug, 100)
    })
    .await?;
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
    let reader = state.reader.clone();
    let path = db(&state);
    let rows = blocking(move || {
        let p = reader.project(&org, &project)?;
        let conn = connect(&path, Synchronous::Full)?;
        let mut stmt = conn.prepare(
            "SELECT release, environment, SUM(init), SUM(crashed), SUM(abnormal), SUM(errored), MIN(minute), MAX(minute)
             FROM rollup_sessions WHERE project_id = ?1 AND minute >= ?2 GROUP BY release, environment ORDER BY release, environment",
        )?;
        type Row = (String, String, i64, i64, i64, i64, i64, i64);
        let sessions: Vec<Row> = stmt
            .query_map(params![p.id, since - since.rem_euclid(60_000)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut users = conn.prepare(
            "SELECT COUNT(*), COALESCE(SUM(crashed > 0), 0) FROM session_users
             WHERE project_id = ?1 AND release = ?2 AND environment = ?3 AND last_seen >= ?4",
        )?;
        // A release's agents share a strategy: the `strategy` tag of its events.
        let mut strategy_of = conn.prepare(
            "SELECT t.value FROM events e JOIN event_tags t ON t.event_row = e.id
             WHERE e.project_id = ?1 AND e.release = ?2 AND e.timestamp >= ?3 AND t.key = 'strategy'
             GROUP BY t.value ORDER BY COUNT(*) DESC, t.value LIMIT 1",
        )?;
        let total: i64 = sessions.iter().map(|s| s.2).sum();
        let mut out = Vec::new();
        // strategy → (sessions, crashed, releases)
        let mut strategies: std::collections::BTreeMap<String, (i64, i64, Vec<String>)> =
            std::collections::BTreeMap::new();
        for (release, env, init, crashed, abnormal, errored, first, last) in sessions {
            let (u, uc): (i64, i64) = users.query_row(params![p.id, release, env, since], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let strategy: Option<String> = strategy_of
                .query_row(params![p.id, release, since], |r| r.get(0))
                .optional()?;
            if let Some(s) = &strategy {
                let e = strategies.entry(s.clone()).or_default();
                e.0 += init;
                e.1 += crashed;
                if !e.2.contains(&release) {
                    e.2.push(release.clone());
                }
            }
            out.push(json!({
                "release": release, "environment": env, "strategy": strategy,
                "sessions": init, "sessionsCrashed": crashed, "sessionsAbnormal": abnormal, "sessionsErrored": errored,
                "crashFreeSessions": (init > 0).then(|| (1.0 - crashed as f64 / init as f64) * 100.0),
                "users": u, "usersCrashed": uc,
                "crashFreeUsers": (u > 0).then(|| (1.0 - uc as f64 / u as f64) * 100.0),
                "adoption": (total > 0).then(|| init as f64 / total as f64 * 100.0),
                "firstSeen": iso(first), "lastSeen": iso(last),
            }));
        }
        let by_strategy: Vec<Value> = strategies
            .into_iter()
            .map(|(strategy, (init, crashed, releases))| {
                json!({"strategy": strategy, "sessions": init, "sessionsCrashed": crashed,
                       "crashFreeSessions": (init > 0).then(|| (1.0 - crashed as f64 / init as f64) * 100.0),
                       "releases": releases})
            })
            .collect();
        Ok((out, by_strategy))
    })
    .await?;
    let (rows, strategies) = rows;
    Ok(Json(json!({"data": rows, "strategies": strategies})))
}
