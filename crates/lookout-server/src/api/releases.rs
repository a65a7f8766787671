//! Releases, commits, deploys and repositories: the endpoints sentry-cli 3.x calls, with the
//! fields it parses (`version`, `dateCreated`, …) and the statuses it expects (201 created,
//! 208 unchanged, 400 `{"projects": ["Invalid project slugs"]}`).

use super::{Caller, blocking, iso};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::StoreError;
use crate::store::releases::{
    Commit, Deploy, NewDeploy, Ref, Release, ReleaseUpdate, Releases, Repo, Upsert,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/0/organizations/{org}/releases/",
            get(list_org).post(create),
        )
        .route(
            "/api/0/projects/{org}/{project}/releases/",
            get(list_project),
        )
        .route(
            "/api/0/organizations/{org}/releases/{version}/",
            get(detail).put(update),
        )
        .route(
            "/api/0/organizations/{org}/releases/{version}/previous-with-commits/",
            get(previous),
        )
        .route(
            "/api/0/organizations/{org}/releases/{version}/deploys/",
            get(deploys).post(create_deploy),
        )
        .route(
            "/api/0/organizations/{org}/releases/{version}/issues-after-deploy/",
            get(issues_after_deploy),
        )
        .route(
            "/api/0/organizations/{org}/repos/",
            get(repos).post(create_repo),
        )
}

fn deploy_json(d: &Deploy) -> Value {
    json!({
        "id": d.id.to_string(),
        "environment": d.environment,
        "name": d.name,
        "url": d.url,
        "dateStarted": d.date_started.map(iso),
        "dateFinished": iso(d.date_finished),
    })
}

fn release_json(r: &Release) -> Value {
    json!({
        "id": r.id,
        "version": r.version,
        "shortVersion": r.version,
        "ref": null,
        "url": r.url,
        "status": "open",
        "dateCreated": iso(r.date_created),
        "dateStarted": r.date_started.map(iso),
        "dateReleased": r.date_released.map(iso),
        "newGroups": r.new_groups,
        "commitCount": r.commit_count,
        "lastCommit": r.last_commit.as_ref().map(|id| json!({ "id": id })),
        "deployCount": r.deploy_count,
        "lastDeploy": r.last_deploy.as_ref().map(deploy_json),
        "authors": [],
        "data": {},
        "firstEvent": null,
        "lastEvent": null,
        "projects": r.projects.iter().map(|(id, slug)| json!({
            "id": id, "slug": slug, "name": slug, "newGroups": r.new_groups, "platform": null, "platforms": [], "hasHealthData": false
        })).collect::<Vec<_>>(),
    })
}

fn releases(state: &AppState) -> Releases {
    state.store.releases()
}

/// Dates arrive as RFC 3339; anything else is a field error.
fn parse_date(field: &str, v: Option<&Value>) -> Result<Option<i64>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.timestamp_millis()))
            .map_err(|_| {
                ApiError::Fields(json!({ field: ["Datetime has wrong format. Use RFC 3339."] }))
            }),
        Some(_) => Err(ApiError::Fields(
            json!({ field: ["Datetime has wrong format. Use RFC 3339."] }),
        )),
    }
}

/// Projects come as slugs, or as numbers when a slug is all digits.
fn parse_projects(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(ApiError::Fields(
                    json!({"projects": ["Invalid project slugs"]}),
                )),
            })
            .collect(),
        Some(_) => Err(ApiError::Fields(
            json!({"projects": ["Expected a list of items."]}),
        )),
    }
}

fn projects_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(msg) if msg == "Invalid project slugs" => {
            ApiError::Fields(json!({"projects": [msg]}))
        }
        other => ApiError::from(other),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("project:releases")?;
    let Some(version) = body
        .get("version")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(ApiError::Fields(
            json!({"version": ["This field is required."]}),
        ));
    };
    let projects = parse_projects(body.get("projects"))?;
    if projects.is_empty() {
        return Err(ApiError::Fields(
            json!({"projects": ["This field is required."]}),
        ));
    }
    let url = body.get("url").and_then(Value::as_str).map(str::to_owned);
    let started = parse_date("dateStarted", body.get("dateStarted"))?;
    let released = parse_date("dateReleased", body.get("dateReleased"))?;
    let store = releases(&state);
    let (release, upsert) = tokio::task::spawn_blocking(move || {
        store.upsert(&org, &version, &projects, url, started, released)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(projects_error)?;
    let status = match upsert {
        Upsert::Created => StatusCode::CREATED,
        Upsert::Unchanged => StatusCode::ALREADY_REPORTED,
    };
    Ok((status, Json(release_json(&release))))
}

async fn list_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let list = blocking(move || store.list(&org, None)).await?;
    Ok(Json(Value::Array(list.iter().map(release_json).collect())))
}

async fn list_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let list = blocking(move || store.list(&org, Some(&project))).await?;
    Ok(Json(Value::Array(list.iter().map(release_json).collect())))
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let r = blocking(move || store.get(&org, &version)).await?;
    Ok(Json(release_json(&r)))
}

#[derive(Debug, Deserialize)]
struct CommitIn {
    id: String,
    repository: Option<String>,
    message: Option<String>,
    author_name: Option<String>,
    author_email: Option<String>,
    timestamp: Option<String>,
    patch_set: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefIn {
    repository: String,
    commit: String,
    previous_commit: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let commits = match body.get("commits") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<CommitIn>>(v.clone())
                .map_err(|e| ApiError::Fields(json!({"commits": [e.to_string()]})))?
                .into_iter()
                .map(|c| Commit {
                    id: c.id,
                    repository: c.repository,
                    message: c.message,
                    author_name: c.author_name,
                    author_email: c.author_email,
                    timestamp: c.timestamp,
                    patch_set: c.patch_set.map(|p| p.to_string()),
                })
                .collect(),
        ),
    };
    let refs = match body.get("refs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<RefIn>>(v.clone())
                .map_err(|e| ApiError::Fields(json!({"refs": [e.to_string()]})))?
                .into_iter()
                .map(|r| Ref {
                    repository: r.repository,
                    commit: r.commit,
                    previous_commit: r.previous_commit,
                })
                .collect(),
        ),
    };
    let update = ReleaseUpdate {
        date_released: parse_date("dateReleased", body.get("dateReleased"))?,
        url: body.get("url").and_then(Value::as_str).map(str::to_owned),
        projects: parse_projects(body.get("projects"))?,
        commits,
        refs,
    };
    let store = releases(&state);
    let r = tokio::task::spawn_blocking(move || store.update(&org, &version, update))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            StoreError::Invalid(msg) if msg.starts_with("Unknown repository") => {
                ApiError::Fields(json!({"refs": [msg]}))
            }
            other => projects_error(other),
        })?;
    Ok(Json(release_json(&r)))
}

async fn previous(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let prev = blocking(move || store.previous_with_commits(&org, &version)).await?;
    Ok(Json(
        prev.as_ref().map(release_json).unwrap_or_else(|| json!({})),
    ))
}

async fn deploys(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let list = blocking(move || store.deploys(&org, &version)).await?;
    Ok(Json(Value::Array(list.iter().map(deploy_json).collect())))
}

async fn create_deploy(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("project:releases")?;
    let Some(environment) = body
        .get("environment")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(ApiError::Fields(
            json!({"environment": ["This field is required."]}),
        ));
    };
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let url = body.get("url").and_then(Value::as_str).map(str::to_owned);
    let started = parse_date("dateStarted", body.get("dateStarted"))?;
    let finished = parse_date("dateFinished", body.get("dateFinished"))?;
    let store = releases(&state);
    let d = blocking(move || {
        let new = NewDeploy {
            environment,
            name,
            url,
            date_started: started,
            date_finished: finished,
        };
        store.create_deploy(&org, &version, new)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(deploy_json(&d))))
}

#[derive(Debug, Deserialize)]
struct AfterDeploy {
    minutes: Option<i64>,
}

async fn issues_after_deploy(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, version)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<AfterDeploy>,
) -> Result<Json<Value>, ApiError> {
    caller.require("event:read")?;
    let minutes = q.minutes.unwrap_or(10).clamp(1, 10_080);
    let store = releases(&state);
    let list = blocking(move || store.issues_after_deploys(&org, &version, minutes)).await?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|(id, first)| json!({"id": id.to_string(), "firstSeen": iso(*first)}))
            .collect(),
    )))
}

fn repo_json(r: &Repo) -> Value {
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "url": r.url,
        "provider": {"id": r.provider, "name": r.provider},
        "status": "active",
        "dateCreated": iso(r.date_created),
    })
}

async fn repos(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:releases")?;
    let store = releases(&state);
    let list = blocking(move || store.repos(&org)).await?;
    Ok(Json(Value::Array(list.iter().map(repo_json).collect())))
}

async fn create_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("org:write")?;
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_owned) else {
        return Err(ApiError::Fields(
            json!({"name": ["This field is required."]}),
        ));
    };
    let url = body.get("url").and_then(Value::as_str).map(str::to_owned);
    let provider = body
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or("git")
        .to_owned();
    let store = releases(&state);
    let r = blocking(move || store.create_repo(&org, &name, url, &provider)).await?;
    Ok((StatusCode::CREATED, Json(repo_json(&r))))
}
