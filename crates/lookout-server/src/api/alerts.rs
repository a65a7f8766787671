//! Alerts API, in Sentry's shapes: issue alert rules at `/projects/{org}/{project}/rules/`,
//! metric alert rules at `/organizations/{org}/alert-rules/` and
//! `/projects/{org}/{project}/alert-rules/`, the channels they notify
//! (`/organizations/{org}/integrations/`), and what fired: incidents with their timeline,
//! and every notification delivery.

use super::{Caller, blocking, iso, parse_id};
use crate::alerts::notify;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::rule_book::{self, Save};
use crate::store::alerts::{Alerts, Delivery, Incident, Integration, StoredRule};
use crate::store::triage::{Ack, Mute};
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
            axum::routing::delete(delete_integration).put(update_integration),
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
        .route(
            "/api/0/organizations/{org}/incidents/{id}/acknowledge/",
            axum::routing::post(acknowledge_incident),
        )
        .route(
            "/api/0/projects/{org}/{project}/rules/{id}/snooze/",
            axum::routing::post(snooze_issue_rule).delete(unsnooze_issue_rule),
        )
        .route(
            "/api/0/projects/{org}/{project}/alert-rules/{id}/snooze/",
            axum::routing::post(snooze_metric_rule_project).delete(unsnooze_metric_rule_project),
        )
        .route(
            "/api/0/organizations/{org}/alert-rules/{id}/snooze/",
            axum::routing::post(snooze_metric_rule_org).delete(unsnooze_metric_rule_org),
        )
}

fn store(state: &AppState) -> Alerts {
    state.store.alerts()
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
    let mutes = mutes(&state).await?;
    Ok(Json(Value::Array(
        rules
            .iter()
            .map(|r| with_snooze(issue_rule_json(r), mutes.get(&r.id)))
            .collect(),
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
    let rule =
        rule_book::save_issue_rule(&state.store, &org, &project, None, body, Save::Merge).await?;
    Ok((StatusCode::CREATED, Json(issue_rule_json(&rule))))
}

async fn get_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let id = parse_id("rule", &id)?;
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
    let mute = mute_of(&state, rule.id).await?;
    Ok(Json(with_snooze(issue_rule_json(&rule), mute.as_ref())))
}

async fn update_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    object(&body)?;
    let id = parse_id("rule", &id)?;
    let rule =
        rule_book::save_issue_rule(&state.store, &org, &project, Some(id), body, Save::Merge)
            .await?;
    Ok(Json(issue_rule_json(&rule)))
}

async fn delete_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id("rule", &id)?;
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
    let mutes = mutes(&state).await?;
    Ok(Json(Value::Array(
        rules
            .iter()
            .map(|r| with_snooze(metric_rule_json(r), mutes.get(&r.id)))
            .collect(),
    )))
}

async fn save_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: Option<i64>,
    body: Value,
) -> Result<StoredRule, ApiError> {
    Ok(rule_book::save_metric_rule(&state.store, &org, project.as_deref(), id, body).await?)
}

async fn get_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: String,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("rule", &id)?;
    let s = store(&state);
    let rule = blocking(move || {
        let oid = s.org_id(&org)?;
        s.rule(oid, id, "metric")
    })
    .await?;
    if project.is_some_and(|p| p != rule.project_slug) {
        return Err(ApiError::NotFound(format!("rule {id} not found")));
    }
    let mute = mute_of(&state, rule.id).await?;
    Ok(Json(with_snooze(metric_rule_json(&rule), mute.as_ref())))
}

async fn delete_metric(
    state: AppState,
    org: String,
    project: Option<String>,
    id: String,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("rule", &id)?;
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
    let r = save_metric(state, org, None, Some(parse_id("rule", &id)?), body).await?;
    Ok(Json(metric_rule_json(&r)))
}

async fn update_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    let r = save_metric(
        state,
        org,
        Some(project),
        Some(parse_id("rule", &id)?),
        body,
    )
    .await?;
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

/// Change a channel: `name`, and `config` keys merged into the stored config (a key set to
/// null is removed; keys not sent, secrets included, stay as they are). The result is
/// checked as a new channel's config is.
async fn update_integration(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    let body = object(&body)?.clone();
    let id = parse_id("integration", &id)?;
    let patch = match body.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::Fields(json!({"config": ["Expected an object."]}))),
    };
    let new_name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 80 => {
            Some(n.trim().to_owned())
        }
        Some(_) => {
            return Err(ApiError::Fields(
                json!({"name": ["A name of 1 to 80 characters."]}),
            ));
        }
    };
    let s = store(&state);
    let triage = state.store.triage();
    let by = format!("token:{}", caller.token_name);
    let now = chrono::Utc::now().timestamp_millis();
    let updated = blocking(move || {
        let oid = s.org_id(&org)?;
        triage.edit_channel(oid, id, &by, now, |provider, name, config| {
            let mut merged = config.as_object().cloned().unwrap_or_default();
            for (k, v) in patch {
                if v.is_null() {
                    merged.remove(&k);
                } else {
                    merged.insert(k, v);
                }
            }
            let merged = Value::Object(merged);
            notify::validate_config(provider, &merged)?;
            Ok((new_name.unwrap_or_else(|| name.to_owned()), merged))
        })?;
        s.integrations(oid)?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| crate::store::StoreError::NotFound(format!("integration {id}")))
    })
    .await
    .map_err(|e| match e {
        crate::services::ServiceError::Store(crate::store::StoreError::Invalid(m)) => {
            ApiError::Fields(json!({"config": [m]}))
        }
        other => other.into(),
    })?;
    Ok(Json(integration_json(&updated)))
}

async fn delete_integration(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id("integration", &id)?;
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
    let triage = state.store.triage();
    let ids: Vec<i64> = list.iter().map(|i| i.id).collect();
    let acks = blocking(move || triage.acks(&ids)).await?;
    Ok(Json(Value::Array(
        list.iter()
            .map(|i| {
                let mut v = incident_json(i);
                with_ack(&mut v, acks.get(&i.id));
                v
            })
            .collect(),
    )))
}

async fn get_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:read")?;
    let id = parse_id("incident", &id)?;
    let s = store(&state);
    let (incident, activity, deliveries) = blocking(move || {
        let oid = s.org_id(&org)?;
        s.incident(oid, id)
    })
    .await?;
    let mut out = incident_json(&incident);
    let triage = state.store.triage();
    let ack = blocking(move || triage.ack(id)).await?;
    with_ack(&mut out, ack.as_ref());
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

// ---------- triage: acknowledgements and rule snoozes ----------

/// `dateAcknowledged` and `acknowledgedBy` of an incident (null when not acknowledged).
fn with_ack(out: &mut Value, ack: Option<&Ack>) {
    out["acknowledged"] = json!(ack.is_some());
    out["dateAcknowledged"] = json!(ack.map(|a| iso(a.at)));
    out["acknowledgedBy"] = json!(ack.map(|a| a.by.clone()));
}

/// Sentry's snooze fields of a rule (`snooze`, `snoozeCreatedBy`, `snoozeForEveryone`), and
/// Lookout's `snoozeUntil` (null: until unmuted). A lapsed mute is not a snooze.
fn with_snooze(mut out: Value, mute: Option<&Mute>) -> Value {
    let now = chrono::Utc::now().timestamp_millis();
    let mute = mute.filter(|m| m.active(now));
    out["snooze"] = json!(mute.is_some());
    out["snoozeCreatedBy"] = json!(mute.map(|m| m.by.clone()));
    out["snoozeForEveryone"] = json!(mute.is_some());
    out["snoozeUntil"] = json!(mute.and_then(|m| m.until).map(iso));
    out
}

async fn mutes(state: &AppState) -> Result<std::collections::HashMap<i64, Mute>, ApiError> {
    let triage = state.store.triage();
    Ok(blocking(move || triage.mutes()).await?)
}

async fn mute_of(state: &AppState, rule: i64) -> Result<Option<Mute>, ApiError> {
    let triage = state.store.triage();
    Ok(blocking(move || triage.mute_of(rule)).await?)
}

async fn acknowledge_incident(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id("incident", &id)?;
    let s = store(&state);
    let triage = state.store.triage();
    let by = format!("token:{}", caller.token_name);
    let now = chrono::Utc::now().timestamp_millis();
    let (incident, ack) = blocking(move || {
        let oid = s.org_id(&org)?;
        let acked = triage.acknowledge(oid, id, &by, now)?;
        let (incident, _, _) = s.incident(oid, id)?;
        Ok((incident, acked.ack().clone()))
    })
    .await?;
    let mut out = incident_json(&incident);
    with_ack(&mut out, Some(&ack));
    Ok(Json(out))
}

/// When a snooze body says to end: `until` (ISO 8601, in the future), `minutes`, or neither
/// (until unmuted). `target` may only be `everyone`: a Lookout mute silences the rule.
fn snooze_until(body: &Value, now: i64) -> Result<Option<i64>, ApiError> {
    let body = object(body)?;
    if let Some(t) = body.get("target")
        && t.as_str() != Some("everyone")
    {
        return Err(ApiError::Fields(
            json!({"target": ["Lookout mutes a rule for everyone: send \"everyone\" or leave it out."]}),
        ));
    }
    match (body.get("until"), body.get("minutes")) {
        (Some(_), Some(m)) if !m.is_null() => Err(ApiError::Fields(
            json!({"nonFieldErrors": ["Send either until or minutes, not both."]}),
        )),
        (Some(Value::String(u)), _) => {
            let at = chrono::DateTime::parse_from_rfc3339(u)
                .map_err(|_| {
                    ApiError::Fields(json!({"until": [format!("{u:?} is not an ISO 8601 date and time, e.g. 2026-01-01T12:00:00Z.")]}))
                })?
                .timestamp_millis();
            if at <= now {
                return Err(ApiError::Fields(
                    json!({"until": ["Cannot snooze a rule until a time in the past."]}),
                ));
            }
            Ok(Some(at))
        }
        (Some(Value::Null) | None, None | Some(Value::Null)) => Ok(None),
        (None | Some(Value::Null), Some(m)) => match m.as_i64() {
            Some(m) if m > 0 && m <= 30 * 24 * 60 => Ok(Some(now + m * 60_000)),
            _ => Err(ApiError::Fields(
                json!({"minutes": ["A whole number of minutes from 1 to 43200 (30 days)."]}),
            )),
        },
        (Some(_), _) => Err(ApiError::Fields(
            json!({"until": ["Expected an ISO 8601 date and time."]}),
        )),
    }
}

/// Mute rule `id` (of `kind`, and of `project` if given) for the caller.
async fn snooze(
    state: AppState,
    caller: Caller,
    org: String,
    project: Option<String>,
    kind: &'static str,
    id: String,
    body: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id("rule", &id)?;
    let now = chrono::Utc::now().timestamp_millis();
    let until = snooze_until(&body, now)?;
    let s = store(&state);
    let triage = state.store.triage();
    let by = format!("token:{}", caller.token_name);
    let mute = blocking(move || {
        let oid = s.org_id(&org)?;
        let rule = s.rule(oid, id, kind)?;
        if project.is_some_and(|p| p != rule.project_slug) {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        triage.mute(oid, id, until, &by, now)
    })
    .await?;
    let key = if kind == "issue" {
        "ruleId"
    } else {
        "alertRuleId"
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            key: mute.rule_id.to_string(),
            "ownerId": Value::Null,
            "userId": Value::Null,
            "createdBy": mute.by,
            "until": mute.until.map(iso),
            "dateAdded": iso(mute.at),
        })),
    ))
}

async fn unsnooze(
    state: AppState,
    caller: Caller,
    org: String,
    project: Option<String>,
    kind: &'static str,
    id: String,
) -> Result<StatusCode, ApiError> {
    caller.require("alerts:write")?;
    let id = parse_id("rule", &id)?;
    let s = store(&state);
    let triage = state.store.triage();
    let by = format!("token:{}", caller.token_name);
    let now = chrono::Utc::now().timestamp_millis();
    blocking(move || {
        let oid = s.org_id(&org)?;
        let rule = s.rule(oid, id, kind)?;
        if project.is_some_and(|p| p != rule.project_slug) {
            return Err(crate::store::StoreError::NotFound(format!("rule {id}")));
        }
        triage.unmute(oid, id, &by, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn snooze_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    body: Option<Json<Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_or_else(|| json!({}), |Json(b)| b);
    snooze(state, caller, org, Some(project), "issue", id, body).await
}

async fn unsnooze_issue_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    unsnooze(state, caller, org, Some(project), "issue", id).await
}

async fn snooze_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
    body: Option<Json<Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_or_else(|| json!({}), |Json(b)| b);
    snooze(state, caller, org, Some(project), "metric", id, body).await
}

async fn unsnooze_metric_rule_project(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, project, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    unsnooze(state, caller, org, Some(project), "metric", id).await
}

async fn snooze_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_or_else(|| json!({}), |Json(b)| b);
    snooze(state, caller, org, None, "metric", id, body).await
}

async fn unsnooze_metric_rule_org(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    unsnooze(state, caller, org, None, "metric", id).await
}
