//! Alerts: the rules (presets and custom), created and edited here; fired incidents with
//! their timeline; notification deliveries and their outcome.

use super::issues::{pick_project, project_select};
use super::{
    CsrfForm, Page, UiError, Viewer, ago, clip, csrf_field, empty, fields_text, layout, when,
};
use crate::alerts::rules::ids;
use crate::http::state::AppState;
use crate::services::ServiceError;
use crate::services::blocking;
use crate::services::rule_book::{self, Save};
use crate::store::alerts::StoredRule;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/rules", post(create))
        .route("/alerts/rules/new", get(new_rule))
        .route("/alerts/rules/{id}", get(edit_rule).post(update))
        .route("/alerts/rules/{id}/delete", post(delete))
        .route("/alerts/incidents/{id}", get(incident))
}

/// Aggregates offered in the form (any other the API accepts can be typed in).
const AGGREGATES: &[(&str, &str)] = &[
    ("error_rate()", "error rate: error events / all events, %"),
    ("p99(transaction.duration)", "p99 transaction duration, ms"),
    ("p95(transaction.duration)", "p95 transaction duration, ms"),
    ("failure_rate()", "failed transactions / transactions (0–1)"),
    ("count()", "number of events"),
    (
        "tag_ratio(outcome, rejected_risk)",
        "risk rejections / pipeline runs, %",
    ),
    ("agent_down(60)", "agents crashed or hung (grace 60 s)"),
    (
        "percentage(sessions_crashed, sessions)",
        "crash-free sessions, %",
    ),
];

fn summary(r: &StoredRule) -> String {
    let s = &r.spec;
    if r.kind == "metric" {
        let trig = s
            .get("triggers")
            .and_then(Value::as_array)
            .and_then(|t| t.first());
        let above = s.get("thresholdType").and_then(Value::as_i64) != Some(1);
        format!(
            "{} {} {} over {} min{}",
            s.get("aggregate").and_then(Value::as_str).unwrap_or("?"),
            if above { ">" } else { "<" },
            trig.and_then(|t| t.get("alertThreshold"))
                .map(Value::to_string)
                .unwrap_or_default(),
            s.get("timeWindow")
                .map(Value::to_string)
                .unwrap_or_default(),
            match s.get("query").and_then(Value::as_str) {
                Some(q) if !q.is_empty() => format!(" where {q}"),
                _ => String::new(),
            }
        )
    } else {
        let n = |k: &str| s.get(k).and_then(Value::as_array).map_or(0, Vec::len);
        format!(
            "{} conditions, {} filters, {} actions",
            n("conditions"),
            n("filters"),
            n("actions")
        )
    }
}

async fn page(State(state): State<AppState>, viewer: Viewer) -> Page {
    let store = state.store.alerts();
    let now = state.clock.now_ms();
    let (rules, incidents, deliveries) = blocking(move || {
        let oid = store.org_id("default")?;
        let mut rules = store.rules(oid, None, "metric")?;
        rules.extend(store.rules(oid, None, "issue")?);
        rules.sort_by_key(|r| r.id);
        Ok((
            rules,
            store.incidents(oid, None, 50)?,
            store.deliveries(oid, 50)?,
        ))
    })
    .await?;
    let body = html! {
        div.page-head { h1 { "Alerts" } a.button id="new-rule" href="/alerts/rules/new" { "New alert rule" } }
        h2 { "Rules" }
        table.grid id="rules" {
            thead { tr { th { "Rule" } th { "Kind" } th { "Project" } th { "When" } th {} } }
            tbody { @for r in &rules {
                tr.rule {
                    td { a href=(format!("/alerts/rules/{}", r.id)) { (clip(&r.name, 100)) }
                         @if let Some(p) = &r.preset { " " span.pill.preset title=(p) { "preset" } } }
                    td { (r.kind) }
                    td { (r.project_slug) }
                    td.muted { (clip(&summary(r), 160)) }
                    td { form.inline method="post" action=(format!("/alerts/rules/{}/delete", r.id)) data-confirm="Delete this rule?" {
                        (csrf_field(&viewer)) button.link type="submit" { "Delete" }
                    } }
                }
            } }
        }
        h2 { "Incidents" }
        @if incidents.is_empty() { (empty("No alert has fired.")) } @else {
            table.grid id="incidents" {
                thead { tr { th { "Incident" } th { "Rule" } th { "Status" } th { "Severity" } th { "Opened" } th { "Closed" } } }
                tbody { @for i in &incidents {
                    tr {
                        td { a href=(format!("/alerts/incidents/{}", i.id)) { (clip(&i.title, 120)) } @if !i.key.is_empty() { div.muted { (clip(&i.key, 60)) } } }
                        td { (clip(&i.rule_name, 80)) }
                        td { span class=(format!("pill {}", clip(&i.status, 20))) { (i.status) } }
                        td { (i.severity) }
                        td { (ago(i.opened_at, now)) }
                        td { @match i.closed_at { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                    }
                } }
            }
        }
        h2 { "Notification deliveries" }
        @if deliveries.is_empty() { (empty("No notification sent yet. Channels are configured through the API (see the README).")) } @else {
            (deliveries_table(&deliveries, now))
        }
    };
    Ok(layout(&viewer, "alerts", "Alerts", body))
}

fn deliveries_table(deliveries: &[crate::store::alerts::Delivery], now: i64) -> Markup {
    html! {
        table.grid id="deliveries" {
            thead { tr { th { "Incident" } th { "Channel" } th { "Outcome" } th.num { "Attempts" } th { "Queued" } th { "Delivered" } th { "Last error" } } }
            tbody { @for d in deliveries {
                tr {
                    td { a href=(format!("/alerts/incidents/{}", d.incident_id)) { "#" (d.incident_id) } }
                    td { (d.provider) " #" (d.integration_id) }
                    td { span class=(format!("pill {}", clip(&d.status, 20))) { (d.status) } }
                    td.num { (d.attempts) }
                    td { (ago(d.created_at, now)) }
                    td { @match d.delivered_at { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                    td.muted { (clip(d.last_error.as_deref().unwrap_or(""), 200)) }
                }
            } }
        }
    }
}

async fn incident(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let store = state.store.alerts();
    let now = state.clock.now_ms();
    let (i, activity, deliveries) = blocking(move || {
        let oid = store.org_id("default")?;
        store.incident(oid, id)
    })
    .await?;
    let body = html! {
        div.page-head {
            h1 { (clip(&i.title, 200)) }
            div.muted { "Rule " (clip(&i.rule_name, 100)) " · " (i.project_slug) @if !i.key.is_empty() { " · " (clip(&i.key, 60)) } }
        }
        div.issue-meta {
            span class=(format!("pill {}", clip(&i.status, 20))) { (i.status) }
            span { (i.severity) }
            @if let Some(v) = i.value { span { "value " (format!("{v:.3}")) } }
            @if let Some(issue) = i.issue_id { a href=(format!("/issues/{issue}")) { "Issue #" (issue) } }
        }
        h2 { "Timeline" }
        ol.timeline id="incident-timeline" {
            @for a in &activity {
                li { span.time { (when(a.at)) } span.cat { (clip(&a.kind, 40)) } span.msg { (clip(&a.detail, 500)) } }
            }
        }
        h2 { "Deliveries" }
        @if deliveries.is_empty() { (empty("No delivery for this incident.")) } @else { (deliveries_table(&deliveries, now)) }
    };
    Ok(layout(&viewer, "alerts", "Incident", body))
}

#[derive(Debug, Deserialize, Default)]
struct RuleForm {
    csrf: String,
    kind: String,
    name: Option<String>,
    project: Option<String>,
    aggregate: Option<String>,
    query: Option<String>,
    time_window: Option<String>,
    threshold_type: Option<String>,
    threshold: Option<String>,
    resolve_threshold: Option<String>,
    spec: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NewQuery {
    kind: Option<String>,
}

/// Values the form shows (from a stored rule, or what was submitted after an error).
#[derive(Debug, Default, Clone)]
struct FormValues {
    kind: String,
    name: String,
    project: String,
    aggregate: String,
    query: String,
    time_window: String,
    above: bool,
    threshold: String,
    resolve: String,
    spec: String,
}

impl FormValues {
    fn of_rule(r: &StoredRule) -> FormValues {
        let s = &r.spec;
        let trig = s
            .get("triggers")
            .and_then(Value::as_array)
            .and_then(|t| t.first());
        let num = |v: Option<&Value>| match v.and_then(Value::as_f64) {
            // 1500, not 1500.0: what the operator typed.
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            Some(f) => f.to_string(),
            None => String::new(),
        };
        FormValues {
            kind: r.kind.clone(),
            name: r.name.clone(),
            project: r.project_slug.clone(),
            aggregate: s
                .get("aggregate")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            query: s
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            time_window: num(s.get("timeWindow")),
            above: s.get("thresholdType").and_then(Value::as_i64) != Some(1),
            threshold: num(trig.and_then(|t| t.get("alertThreshold"))),
            resolve: num(trig
                .and_then(|t| t.get("resolveThreshold"))
                .or_else(|| s.get("resolveThreshold"))),
            spec: serde_json::to_string_pretty(s).unwrap_or_default(),
        }
    }

    fn of_form(f: &RuleForm) -> FormValues {
        let t = |v: &Option<String>| v.clone().unwrap_or_default();
        FormValues {
            kind: f.kind.clone(),
            name: t(&f.name),
            project: t(&f.project),
            aggregate: t(&f.aggregate),
            query: t(&f.query),
            time_window: t(&f.time_window),
            above: f.threshold_type.as_deref() != Some("below"),
            threshold: t(&f.threshold),
            resolve: t(&f.resolve_threshold),
            spec: t(&f.spec),
        }
    }
}

fn issue_template() -> String {
    serde_json::to_string_pretty(&json!({
        "name": "Order rejected on BTC",
        "actionMatch": "all",
        "filterMatch": "all",
        "frequency": 5,
        "conditions": [{"id": ids::FIRST_SEEN}],
        "filters": [{"id": ids::TAGGED_EVENT, "key": "trade.asset", "match": "eq", "value": "BTC"}],
        "actions": [{"id": ids::ALL_CHANNELS}],
    }))
    .unwrap_or_default()
}

fn rule_form(
    viewer: &Viewer,
    action: &str,
    v: &FormValues,
    projects: &[(i64, String)],
    error: Option<&str>,
) -> Markup {
    html! {
        @if let Some(e) = error { p.error id="form-error" { (e) } }
        @if v.kind == "issue" {
            form.rule-form id="rule-form" method="post" action=(action) {
                (csrf_field(viewer))
                input type="hidden" name="kind" value="issue";
                (project_select(projects, &v.project))
                label.block { "Rule (Sentry's issue alert rule JSON: conditions, filters, actions)"
                    textarea id="spec" name="spec" rows="22" cols="90" spellcheck="false" { (v.spec) } }
                button id="save-rule" type="submit" { "Save rule" }
            }
        } @else {
            form.rule-form id="rule-form" method="post" action=(action) {
                (csrf_field(viewer))
                input type="hidden" name="kind" value="metric";
                label.block { "Name" input id="rule-name" name="name" value=(v.name) required size="50"; }
                (project_select(projects, &v.project))
                label.block { "Measure"
                    input id="aggregate" name="aggregate" list="aggregates" value=(v.aggregate) required size="40";
                    datalist id="aggregates" { @for (a, label) in AGGREGATES { option value=(a) { (label) } } }
                }
                label.block { "Events matching (search syntax, e.g. transaction.op:order.pipeline trade.asset:BTC)"
                    input id="query" name="query" value=(v.query) size="60"; }
                label.block { "Over the last (minutes)" input id="time-window" name="time_window" type="number" min="1" max="1440" value=(if v.time_window.is_empty() { "5" } else { &v.time_window }) required; }
                label.block { "Fire when the value is "
                    select name="threshold_type" {
                        option value="above" selected[v.above] { "above" }
                        option value="below" selected[!v.above] { "below" }
                    }
                    input id="threshold" name="threshold" type="number" step="any" value=(v.threshold) required;
                }
                label.block { "Resolve when back past (optional)" input id="resolve" name="resolve_threshold" type="number" step="any" value=(v.resolve); }
                p.muted { "Notifies every configured channel." }
                button id="save-rule" type="submit" { "Save rule" }
            }
        }
    }
}

async fn projects(state: &AppState) -> Result<Vec<(i64, String)>, UiError> {
    let reader = state.reader.clone();
    Ok(blocking(move || Ok(pick_project(&reader, None)?.0)).await?)
}

async fn new_rule(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<NewQuery>,
) -> Page {
    let all = projects(&state).await?;
    let kind = if q.kind.as_deref() == Some("issue") {
        "issue"
    } else {
        "metric"
    };
    let v = FormValues {
        kind: kind.into(),
        project: all.first().map(|p| p.1.clone()).unwrap_or_default(),
        above: true,
        spec: issue_template(),
        ..FormValues::default()
    };
    let body = html! {
        div.page-head { h1 { "New alert rule" } }
        p { "Kind: "
            a href="/alerts/rules/new?kind=metric" class=(if kind == "metric" { "active" } else { "" }) { "metric (a measure crosses a threshold)" }
            " · "
            a href="/alerts/rules/new?kind=issue" class=(if kind == "issue" { "active" } else { "" }) { "issue (on each matching event)" }
        }
        (rule_form(&viewer, "/alerts/rules", &v, &all, None))
    };
    Ok(layout(&viewer, "alerts", "New alert rule", body))
}

async fn edit_rule(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Page {
    let all = projects(&state).await?;
    let rule = find_rule(&state, id).await?;
    let v = FormValues::of_rule(&rule);
    let body = html! {
        div.page-head { h1 { "Edit " (clip(&rule.name, 100)) } @if let Some(p) = &rule.preset { span.pill.preset { "preset " (p) } } }
        (rule_form(&viewer, &format!("/alerts/rules/{id}"), &v, &all, None))
    };
    Ok(layout(&viewer, "alerts", "Edit alert rule", body))
}

async fn find_rule(state: &AppState, id: i64) -> Result<StoredRule, UiError> {
    let store = state.store.alerts();
    Ok(blocking(move || {
        let oid = store.org_id("default")?;
        match store.rule(oid, id, "metric") {
            Err(crate::store::StoreError::NotFound(_)) => store.rule(oid, id, "issue"),
            other => other,
        }
    })
    .await?)
}

fn parse_num(field: &str, v: &Option<String>, required: bool) -> Result<Option<f64>, String> {
    match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None if required => Err(format!("{field}: a number is required")),
        None => Ok(None),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| format!("{field}: {s:?} is not a number")),
    }
}

fn metric_body(f: &RuleForm) -> Result<Value, String> {
    let threshold = parse_num("threshold", &f.threshold, true)?;
    let resolve = parse_num("resolve threshold", &f.resolve_threshold, false)?;
    let window = parse_num("time window", &f.time_window, true)?.unwrap_or(5.0);
    let mut trigger = json!({
        "label": "critical",
        "alertThreshold": threshold,
        "actions": [{"type": "all", "targetType": "specific"}],
    });
    if let Some(r) = resolve {
        trigger["resolveThreshold"] = json!(r);
    }
    let mut body = json!({
        "name": f.name.clone().unwrap_or_default(),
        "aggregate": f.aggregate.clone().unwrap_or_default(),
        "query": f.query.clone().unwrap_or_default(),
        "timeWindow": window as i64,
        "thresholdType": if f.threshold_type.as_deref() == Some("below") { 1 } else { 0 },
        "triggers": [trigger],
    });
    if let Some(r) = resolve {
        body["resolveThreshold"] = json!(r);
    }
    Ok(body)
}

/// Save the form as rule `id` (or a new rule); on a validation error, the form again with
/// the error and what was typed.
async fn save(
    state: AppState,
    viewer: Viewer,
    id: Option<i64>,
    f: RuleForm,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let project = f
        .project
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let outcome: Result<i64, String> = if f.kind == "issue" {
        match serde_json::from_str::<Value>(f.spec.as_deref().unwrap_or("")) {
            Err(e) => Err(format!("the rule is not valid JSON: {e}")),
            Ok(body) if !body.is_object() => Err("the rule must be a JSON object".into()),
            Ok(body) => {
                match rule_book::save_issue_rule(
                    &state.store,
                    "default",
                    &project,
                    id,
                    body,
                    Save::Replace,
                )
                .await
                {
                    Ok(rule) => Ok(rule.id),
                    Err(ServiceError::Fields(v)) => Err(fields_text(&v)),
                    Err(other) => return Err(other.into()),
                }
            }
        }
    } else {
        match metric_body(&f) {
            Err(e) => Err(e),
            Ok(body) => {
                match rule_book::save_metric_rule(&state.store, "default", Some(&project), id, body)
                    .await
                {
                    Ok(rule) => Ok(rule.id),
                    Err(ServiceError::Fields(v)) => Err(fields_text(&v)),
                    Err(other) => return Err(other.into()),
                }
            }
        }
    };
    match outcome {
        Ok(_) => Ok(Redirect::to("/alerts").into_response()),
        Err(message) => {
            let all = projects(&state).await?;
            let action = match id {
                Some(id) => format!("/alerts/rules/{id}"),
                None => "/alerts/rules".into(),
            };
            let v = FormValues::of_form(&f);
            let body = html! {
                div.page-head { h1 { @if id.is_some() { "Edit alert rule" } @else { "New alert rule" } } }
                (rule_form(&viewer, &action, &v, &all, Some(&message)))
            };
            Ok((
                axum::http::StatusCode::BAD_REQUEST,
                layout(&viewer, "alerts", "Alert rule", body),
            )
                .into_response())
        }
    }
}

async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(f): Form<RuleForm>,
) -> Result<Response, UiError> {
    save(state, viewer, None, f).await
}

async fn update(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<RuleForm>,
) -> Result<Response, UiError> {
    let existing = find_rule(&state, id).await?;
    let mut f = f;
    f.kind = existing.kind;
    save(state, viewer, Some(id), f).await
}

async fn delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&f.csrf)?;
    let rule = find_rule(&state, id).await?;
    let store = state.store.alerts();
    blocking(move || store.delete_rule(rule.id)).await?;
    Ok(Redirect::to("/alerts").into_response())
}
