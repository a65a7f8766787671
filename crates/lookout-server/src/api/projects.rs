//! Project details in Sentry's shape (`/projects/{org}/{project}/`), with Lookout's project
//! settings: the in-app include and exclude prefixes of its stack traces.

use super::{Caller, blocking};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::settings::InAppPrefixes;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/0/projects/{org}/{project}/", get(detail).put(update))
}

fn project_json(org: &str, id: i64, slug: &str, p: &InAppPrefixes) -> Value {
    json!({"id": id.to_string(), "slug": slug, "name": slug,
           "organization": {"slug": org}, "platform": "rust",
           "inAppInclude": p.include, "inAppExclude": p.exclude})
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:read")?;
    let store = state.store.clone();
    let (p, prefixes) = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        let prefixes = store.settings().in_app(p.id)?;
        Ok((p, prefixes))
    })
    .await?;
    Ok(Json(project_json(&p.org_slug, p.id, &p.slug, &prefixes)))
}

/// A list of strings, or a field error naming `field`.
fn strings(body: &Value, field: &str) -> Result<Option<Vec<String>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| ApiError::Fields(json!({field: ["Expected a list of strings."]}))),
        Some(_) => Err(ApiError::Fields(
            json!({field: ["Expected a list of strings."]}),
        )),
    }
}

/// Change the in-app prefixes (`inAppInclude`, `inAppExclude`: lists of prefixes matched
/// against a frame's module, function, file name and path; include wins). Absent fields
/// keep their value. New events use them; stored events keep their flags.
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("project:write")?;
    if !body.is_object() {
        return Err(ApiError::Fields(
            json!({"nonFieldErrors": ["Invalid data. Expected a dictionary."]}),
        ));
    }
    let include = strings(&body, "inAppInclude")?;
    let exclude = strings(&body, "inAppExclude")?;
    let store = state.store.clone();
    let (p, prefixes) = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        let settings = store.settings();
        let mut prefixes = settings.in_app(p.id)?;
        if let Some(i) = include {
            prefixes.include = i;
        }
        if let Some(e) = exclude {
            prefixes.exclude = e;
        }
        settings.set_in_app(p.id, &prefixes)?;
        Ok((p, prefixes))
    })
    .await?;
    Ok(Json(project_json(&p.org_slug, p.id, &p.slug, &prefixes)))
}
