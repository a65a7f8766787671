//! Alerts API, in Sentry's shapes: issue alert rules at `/projects/{org}/{project}/rules/`,
//! metric alert rules at `/organizations/{org}/alert-rules/` and
//! `/projects/{org}/{project}/alert-rules/`, the channels they notify
//! (`/organizations/{org}/integrations/`), and what fired: incidents with their timeline,
//! and every notification delivery.

use super::{Caller, blocking, iso};
use crate::alerts::notify;
use crate::alerts::rules;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::alerts::{Alerts, Delivery, Incident, Integration, StoredRule};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/0/projects/{org}/{project}/rules/",
            get(list_issue_rules).post(create_issue_rule),
        )
        .route(
            "/api/0/projects/{org}/{project}/rules/{id}/",
            get(get_issue_rule)
                .put(update_issue_rule)
                .delete(delete_issue_rule),
        )
        .route(
            "/api/0/organizations/{org}/alert-rules/",
            get(list_metric_rules_org).post(create_metric_rule_org),
        )
        .route(
            "/api/0/organizations/{org}/alert-rules/{id}/",
            get(get_metric_rule_org)
                .put(update_metric_rule_org)
                .delete(delete_metric_rule_org),
        )
        .route(
            "/api/0/projects/{org}/{project}/alert-rules/",
            get(list_metric_rules_project).post(create_metric_rule_project),
        )
        .route(
            "/api/0/projects/{org}/{project}/alert-rules/{id}/",
            get(get_metric_rule_project)
                .put(update_metric_rule_project)
                .delete(delete_metric_rule_project),
        )
        .route(
            "/api/0/organizations/{org}/integrations/",
            get(list_integrations).post(create_integration),
        )
        .route(
            "/api/0/organizations/{org}/integrations/{id}/",
            axum::routing::delete(delete_integration),
        )
        .route("/api/0/organizations/{org}/incidents/", get(list_incidents))
        .route(
            "/api/0/organizations/{org}/incidents/{id}/",
            get(get_incident),
        )
        .route(
            "/api/0/organizations/{org}/notification-deliveries/",
            get(list_deliveries),
        )
}

fn store(state: &AppState) -> Alerts {
    state.store.alerts()
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("rule {id} not found")))
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::Fields(json!({"nonFieldErrors": ["Invalid data. Expected a dictionary."]}))
    })
}

// ---------- issue rules ----------

fn issue_rule_json(r: &StoredRule) -> Value {
    let s = &r.spec;
    json!({
        "id": r.id.to_string(),
        "name": r.name,
        "conditions": s.get("conditions").cloned().unwrap_or(json!([])),
        "filters": s.get("filters").cloned().unwrap_or(json!([])),
        "actions": s.get("actions").cloned().unwrap_or(json!([])),
        "actionMatch": s.get("actionMatch").cloned().unwrap_or(json!("all")),
        "filterMatch": s.get("filterMatch").cloned().unwrap_or(json!("all")),
        "frequency": s.get("frequency").and_then(Value::as_i64).or_else(|| s.get("frequency").and_then(Value::as_str).and_then(|f| f.parse().ok())).unwrap_or(30),
        "environment": s.get("environment").cloned().unwrap_or(Value::Null),
        "owner": s.get("owner").cloned().unwrap_or(Value::Null),
        "createdBy": Value::Null,
        "dateCreated": iso(r.date_created),
        "projects": [r.project_slug],
        "status": "active",
        "snooze": false,
        "preset": r.preset,
    })
}

/// The body as stored: the fields Sentry's serializer keeps.
pub(crate) fn keep(body: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for f in fields {
        if let Some(v) = body.get(*f) {
            out.insert((*f).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

pub(crate) const ISSUE_FIELDS: &[&str] = &[
    "name",
    "actionMatch",
    "filterMatch",
    "frequency",
    "conditions",
    "filters",
    "actions",
    "environment",
    "owner",
];

async fn list_issue_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let s = store(&state);
    let rules = blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        s.rules(oid, Some(pid), "issue")
    })
    .await?;
    Ok(Json(Value::Array(
        rules.iter().map(issue_rule_json).collect(),
    )))
}

async fn create_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("alerts:write")?;
    object(&body)?;
    let s = store(&state);
    let rule = blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        let ids: Vec<i64> = s.integrations(oid)?.iter().map(|i| i.id).collect();
        let parsed = rules::parse_issue_rule(&body, &ids);
        match parsed {
            Err(e) => Ok(Err(e)),
            Ok(r) => {
                let id = s.create_rule(pid, "issue", &r.name, &keep(&body, ISSUE_FIELDS))?;
                Ok(Ok(s.rule(oid, id, "issue")?))
            }
        }
    })
    .await?
    .map_err(ApiError::Fields)?;
    Ok((StatusCode::CREATED, Json(issue_rule_json(&rule))))
}

async fn get_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let id = parse_id(&id)?;
    let s = store(&state);
    let rule = blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        let r = s.rule(oid, id, "issue")?;
        if r.project_id != pid {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        Ok(r)
    })
    .await?;
    Ok(Json(issue_rule_json(&rule)))
}

async fn update_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    object(&body)?;
    let id = parse_id(&id)?;
    let s = store(&state);
    let rule = blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        let existing = s.rule(oid, id, "issue")?;
        if existing.project_id != pid {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        // PUT replaces; absent fields keep their stored values (Sentry's UI sends all).
        let mut merged = existing.spec.clone();
        if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
            for (k, v) in b {
                m.insert(k.clone(), v.clone());
            }
        }
        let ids: Vec<i64> = s.integrations(oid)?.iter().map(|i| i.id).collect();
        match rules::parse_issue_rule(&merged, &ids) {
            Err(e) => Ok(Err(e)),
            Ok(r) => {
                s.update_rule(id, pid, &r.name, &keep(&merged, ISSUE_FIELDS))?;
                Ok(Ok(s.rule(oid, id, "issue")?))
            }
        }
    })
    .await?
    .map_err(ApiError::Fields)?;
    Ok(Json(issue_rule_json(&rule)))
}

async fn delete_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id(&id)?;
    let s = store(&state);
    blocking(move || {
        let (pid, oid) = s.project(&org, &project)?;
        let r = s.rule(oid, id, "issue")?;
        if r.project_id != pid {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        s.delete_rule(id)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

// ---------- metric rules ----------

const METRIC_FIELDS: &[&str] = &[
    "name",
    "aggregate",
    "query",
    "timeWindow",
    "thresholdType",
    "triggers",
    "resolveThreshold",
    "environment",
    "dataset",
    "queryType",
    "eventTypes",
    "thresholdPeriod",
    "comparisonDelta",
    "owner",
];

fn metric_rule_json(r: &StoredRule) -> Value {
    let mut out = r.spec.as_object().cloned().unwrap_or_default();
    let threshold_type = r.spec.get("thresholdType").cloned().unwrap_or(json!(0));
    let triggers: Vec<Value> = r
        .spec
        .get("triggers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| {
            let trigger_id = r.id * 10 + i as i64 + 1;
            let mut t = t.as_object().cloned().unwrap_or_default();
            let actions: Vec<Value> = t
                .get("actions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(j, a)| {
                    let mut a = a.as_object().cloned().unwrap_or_default();
                    a.insert(
                        "id".into(),
                        json!((trigger_id * 10 + j as i64 + 1).to_string()),
                    );
                    a.insert("alertRuleTriggerId".into(), json!(trigger_id.to_string()));
                    a.insert("dateCreated".into(), json!(iso(r.date_created)));
                    Value::Object(a)
                })
                .collect();
            t.insert("id".into(), json!(trigger_id.to_string()));
            t.insert("alertRuleId".into(), json!(r.id.to_string()));
            t.insert("thresholdType".into(), threshold_type.clone());
            t.insert("dateCreated".into(), json!(iso(r.date_created)));
            t.insert("actions".into(), Value::Array(actions));
            Value::Object(t)
        })
        .collect();
    out.insert("triggers".into(), Value::Array(triggers));
    out.insert("id".into(), json!(r.id.to_string()));
    out.insert("name".into(), json!(r.name));
    out.insert("organizationId".into(), json!(r.org_id.to_string()));
    out.insert("projects".into(), json!([r.project_slug]));
    out.insert("dateCreated".into(), json!(iso(r.date_created)));
    out.insert("dateModified".into(), json!(iso(r.date_modified)));
    out.insert("createdBy".into(), Value::Null);
    out.insert("originalAlertRuleId".into(), Value::Null);
    out.insert("status".into(), json!(0));
    out.insert("preset".into(), json!(r.preset));
    out.entry("resolveThreshold").or_insert(Value::Null);
    out.entry("environment").or_insert(Value::Null);
    out.entry("thresholdPeriod").or_insert(json!(1));
    out.entry("dataset").or_insert(json!("events"));
    Value::Object(out)
}

/// Which project a metric rule body is for: the path's, or `projects: [slug]`.
fn body_project(body: &Value, path_project: Option<&str>) -> Result<String, ApiError> {
    if let Some(p) = path_project {
        return Ok(p.to_owned());
    }
    match body
        .get("projects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([Value::String(slug)]) => Ok(slug.clone()),
        Some([_, _, ..]) => Err(ApiError::Fields(
            json!({"projects": ["Only one project per alert rule."]}),
        )),
        _ => Err(ApiError::Fields(
            json!({"projects": ["This field is required."]}),
        )),
    }
}

async fn list_metric(
    state: AppState,
    org: String,
    project: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let s = store(&state);
    let rules = blocking(move || {
        let oid = s.org_id(&org)?;
        let pid = match &project {
            Some(p) => Some(s.project(&org, p)?.0),
            None => None,
        };
        s.rules(oid, pid, "metric")
    })
    .await?;
    Ok(Json(Value::Array(
        rules.iter().map(metric_rule_json).collect(),
    )))
}

pub(crate) async fn save_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: Option<i64>,
    body: Value,
) -> Result<StoredRule, ApiError> {
    object(&body)?;
    let s = store(&state);
    let (merged, project_slug) = if let Some(id) = id {
        let s2 = s.clone();
        let org2 = org.clone();
        let existing = blocking(move || {
            let oid = s2.org_id(&org2)?;
            s2.rule(oid, id, "metric")
        })
        .await?;
        if project
            .as_deref()
            .is_some_and(|p| p != existing.project_slug)
        {
            return Err(ApiError::NotFound(format!("rule {id} not found")));
        }
        let mut merged = existing.spec.clone();
        if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
            for (k, v) in b {
                m.insert(k.clone(), v.clone());
            }
        }
        let slug = match body.get("projects") {
            Some(_) if project.is_none() => body_project(&body, None)?,
            _ => existing.project_slug.clone(),
        };
        (merged, slug)
    } else {
        let slug = body_project(&body, project.as_deref())?;
        (body, slug)
    };
    blocking(move || {
        let (pid, oid) = match s.project(&org, &project_slug) {
            Ok(p) => p,
            Err(crate::store::StoreError::NotFound(_)) => {
                return Ok(Err(json!({"projects": ["Invalid project slugs"]})));
            }
            Err(e) => return Err(e),
        };
        let ids: Vec<i64> = s.integrations(oid)?.iter().map(|i| i.id).collect();
        match rules::parse_metric_rule(&merged, &ids) {
            Err(e) => Ok(Err(e)),
            Ok(r) => {
                let spec = keep(&merged, METRIC_FIELDS);
                let rid = match id {
                    Some(id) => {
                        s.update_rule(id, pid, &r.name, &spec)?;
                        id
                    }
                    None => s.create_rule(pid, "metric", &r.name, &spec)?,
                };
                Ok(Ok(s.rule(oid, rid, "metric")?))
            }
        }
    })
    .await?
    .map_err(ApiError::Fields)
}

async fn get_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let s = store(&state);
    let rule = blocking(move || {
        let oid = s.org_id(&org)?;
        s.rule(oid, id, "metric")
    })
    .await?;
    if project.is_some_and(|p| p != rule.project_slug) {
        return Err(ApiError::NotFound(format!("rule {id} not found")));
    }
    Ok(Json(metric_rule_json(&rule)))
}

async fn delete_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: String,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let s = store(&state);
    blocking(move || {
        let oid = s.org_id(&org)?;
        let rule = s.rule(oid, id, "metric")?;
        if project.is_some_and(|p| p != rule.project_slug) {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        s.delete_rule(id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_metric_rules_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    list_metric(state, org, None).await
}

async fn list_metric_rules_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    list_metric(state, org, Some(project)).await
}

async fn create_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("alerts:write")?;
    let r = save_metric(state, org, None, None, body).await?;
    Ok((StatusCode::CREATED, Json(metric_rule_json(&r))))
}

async fn create_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("alerts:write")?;
    let r = save_metric(state, org, Some(project), None, body).await?;
    Ok((StatusCode::CREATED, Json(metric_rule_json(&r))))
}

async fn get_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    get_metric(state, org, None, id).await
}

async fn get_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    get_metric(state, org, Some(project), id).await
}

async fn update_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    let r = save_metric(state, org, None, Some(parse_id(&id)?), body).await?;
    Ok(Json(metric_rule_json(&r)))
}

async fn update_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    let r = save_metric(state, org, Some(project), Some(parse_id(&id)?), body).await?;
    Ok(Json(metric_rule_json(&r)))
}

async fn delete_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    delete_metric(state, org, None, id).await
}

async fn delete_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    delete_metric(state, org, Some(project), id).await
}

// ---------- integrations ----------

/// A channel as the API shows it: which config keys are set, never their values.
fn integration_json(i: &Integration) -> Value {
    let keys: Vec<&String> = i
        .config
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    json!({
        "id": i.id.to_string(),
        "name": i.name,
        "provider": {"key": i.provider, "name": i.provider},
        "status": "active",
        "configured": keys,
        "dateCreated": iso(i.date_created),
    })
}

async fn list_integrations(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require("org:read")?;
    let s = store(&state);
    let list = blocking(move || {
        let oid = s.org_id(&org)?;
        s.integrations(oid)
    })
    .await?;
    Ok(Json(Value::Array(
        list.iter().map(integration_json).collect(),
    )))
}

async fn create_integration(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("alerts:write")?;
    object(&body)?;
    let provider = body
        .get("provider")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Fields(json!({"provider": ["This field is required."]})))?
        .to_owned();
    let config = body.get("config").cloned().unwrap_or(json!({}));
    if !config.is_object() {
        return Err(ApiError::Fields(json!({"config": ["Expected an object."]})));
    }
    notify::validate_config(&provider, &config)
        .map_err(|e| ApiError::Fields(json!({"config": [e]})))?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&provider)
        .to_owned();
    let s = store(&state);
    let created = blocking(move || {
        let oid = s.org_id(&org)?;
        let id = s.create_integration(oid, &provider, &name, &config)?;
        let list = s.integrations(oid)?;
        list.into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| crate::store::StoreError::NotFound(format!("integration {id}")))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(integration_json(&created))))
}

async fn delete_integration(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("integration {id} not found")))?;
    let s = store(&state);
    blocking(move || {
        let oid = s.org_id(&org)?;
        s.delete_integration(oid, id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------- incidents and deliveries ----------

fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id.to_string(),
        "identifier": i.id.to_string(),
        "alertRule": {"id": i.rule_id.to_string(), "name": i.rule_name},
        "projects": [i.project_slug],
        "key": i.key,
        "issueId": i.issue_id.map(|id| id.to_string()),
        "status": i.status,
        "severity": i.severity,
        "title": i.title,
        "value": i.value,
        "dateStarted": iso(i.opened_at),
        "dateClosed": i.closed_at.map(iso),
    })
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id.to_string(),
        "incidentId": d.incident_id.to_string(),
        "integrationId": d.integration_id.to_string(),
        "provider": d.provider,
        "status": d.status,
        "attempts": d.attempts,
        "lastError": d.last_error,
        "dateCreated": iso(d.created_at),
        "dateDelivered": d.delivered_at.map(iso),
    })
}

#[derive(Debug, Deserialize)]
struct IncidentQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_incidents(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<IncidentQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let s = store(&state);
    let list = blocking(move || {
        let oid = s.org_id(&org)?;
        s.incidents(
            oid,
            q.status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
    })
    .await?;
    Ok(Json(Value::Array(list.iter().map(incident_json).collect())))
}

async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("incident {id} not found")))?;
    let s = store(&state);
    let (incident, activity, deliveries) = blocking(move || {
        let oid = s.org_id(&org)?;
        s.incident(oid, id)
    })
    .await?;
    let mut out = incident_json(&incident);
    out["activities"] = Value::Array(
        activity
            .iter()
            .map(|a| json!({"type": a.kind, "detail": a.detail, "dateCreated": iso(a.at)}))
            .collect(),
    );
    out["deliveries"] = Value::Array(deliveries.iter().map(delivery_json).collect());
    Ok(Json(out))
}

async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<IncidentQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let s = store(&state);
    let list = blocking(move || {
        let oid = s.org_id(&org)?;
        s.deliveries(oid, q.limit.unwrap_or(100).clamp(1, 1000))
    })
    .await?;
    Ok(Json(Value::Array(list.iter().map(delivery_json).collect())))
}
