//! Issues: a searchable list with sparklines, and the detail of one issue with its tags,
//! trading context, exception, breadcrumb timeline and events.

use super::{
    Page, UiError, Viewer, ago, charts, clip, csrf_field, empty, layout, raw, urlencode, when,
};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::StoreError;
use crate::store::read::{Term, parse_query};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/issues", get(list))
        .route("/issues/{id}", get(detail))
        .route("/issues/{id}/status", post(set_status))
}

const PAGE: i64 = 50;
/// Text shown of one untrusted value at most (the payload keeps it whole).
const SHOW: usize = 2_000;

#[derive(Debug, Deserialize, Default)]
struct Filters {
    project: Option<String>,
    query: Option<String>,
    status: Option<String>,
    level: Option<String>,
    asset: Option<String>,
    phase: Option<String>,
    service: Option<String>,
    strategy: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    page: Option<i64>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    fn terms(&self) -> Vec<Term> {
        let mut terms = parse_query(self.query.as_deref().unwrap_or(""));
        let has_status = terms.iter().any(|t| matches!(t, Term::Status(_)));
        match nonempty(&self.status) {
            Some("all") => {}
            Some(s) => terms.push(Term::Status(s.to_owned())),
            None if !has_status => terms.push(Term::Status("unresolved".into())),
            None => {}
        }
        if let Some(l) = nonempty(&self.level) {
            terms.push(Term::Level(l.to_owned()));
        }
        if let Some(r) = nonempty(&self.release) {
            terms.push(Term::Release(r.to_owned()));
        }
        if let Some(e) = nonempty(&self.environment) {
            terms.push(Term::Environment(e.to_owned()));
        }
        for (key, v) in [
            ("trade.asset", &self.asset),
            ("trade.phase", &self.phase),
            ("service", &self.service),
            ("strategy", &self.strategy),
        ] {
            if let Some(v) = nonempty(v) {
                terms.push(Term::Tag {
                    key: key.into(),
                    value: v.to_owned(),
                    negated: false,
                });
            }
        }
        terms
    }

    fn query_string(&self, page: i64) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("project", &self.project),
            ("query", &self.query),
            ("status", &self.status),
            ("level", &self.level),
            ("asset", &self.asset),
            ("phase", &self.phase),
            ("service", &self.service),
            ("strategy", &self.strategy),
            ("release", &self.release),
            ("environment", &self.environment),
        ] {
            if let Some(v) = nonempty(v) {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        parts.push(format!("page={page}"));
        parts.join("&")
    }
}

/// A project: (id, slug).
pub(super) type ProjectChoice = (i64, String);

/// The projects of the default organisation, and the one `wanted` (or the first).
pub(super) fn pick_project(
    reader: &crate::store::read::Reader,
    wanted: Option<&str>,
) -> Result<(Vec<ProjectChoice>, ProjectChoice), StoreError> {
    let all = reader.projects("default")?;
    let chosen = match wanted {
        Some(w) => all.iter().find(|(_, s)| s == w).cloned(),
        None => all.first().cloned(),
    }
    .ok_or_else(|| StoreError::NotFound(format!("project {}", wanted.unwrap_or("default"))))?;
    Ok((all, chosen))
}

/// A `<select>` of projects for filter forms.
pub(super) fn project_select(all: &[(i64, String)], chosen: &str) -> Markup {
    html! {
        @if all.len() > 1 {
            label { "Project " select name="project" {
                @for (_, slug) in all { option value=(slug) selected[slug == chosen] { (slug) } }
            } }
        } @else {
            input type="hidden" name="project" value=(chosen);
        }
    }
}

async fn list(State(state): State<AppState>, viewer: Viewer, Query(f): Query<Filters>) -> Page {
    let reader = state.reader.clone();
    let now = state.clock.now_ms();
    let terms = f.terms();
    let page = f.page.unwrap_or(0).max(0);
    let wanted = nonempty(&f.project).map(str::to_owned);
    let picker = reader.clone();
    let (projects, (pid, slug)) =
        blocking(move || pick_project(&picker, wanted.as_deref())).await?;
    let found =
        crate::services::issues::search(&state.store, pid, terms, None, PAGE, page * PAGE).await?;
    let ids: Vec<i64> = found.issues.iter().map(|i| i.id).collect();
    let sparks = blocking(move || reader.hourly_counts(&ids, now)).await?;
    let (issues, more) = (found.issues, found.more);
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let status = nonempty(&f.status).unwrap_or("unresolved").to_owned();
    let body = html! {
        div.page-head { h1 { "Issues" } }
        form.filters id="issue-filters" method="get" action="/issues" {
            (project_select(&projects, &slug))
            input.wide type="search" name="query" placeholder="Search: text, key:value, !key:value" value=(text(&f.query));
            label { "Status " select name="status" {
                @for s in ["unresolved", "resolved", "ignored", "all"] { option value=(s) selected[s == status] { (s) } }
            } }
            label { "Level " select name="level" {
                option value="" { "any" }
                @for l in ["fatal", "error", "warning", "info", "debug"] { option value=(l) selected[nonempty(&f.level) == Some(l)] { (l) } }
            } }
            input name="asset" placeholder="asset" value=(text(&f.asset)) size="8";
            input name="phase" placeholder="phase" value=(text(&f.phase)) size="12";
            input name="service" placeholder="service" value=(text(&f.service)) size="8";
            input name="strategy" placeholder="strategy" value=(text(&f.strategy)) size="10";
            input name="release" placeholder="release" value=(text(&f.release)) size="14";
            input name="environment" placeholder="environment" value=(text(&f.environment)) size="10";
            button type="submit" { "Filter" }
        }
        @if issues.is_empty() {
            (empty("No issue matches."))
        } @else {
            table.grid id="issues" data-live="15" {
                thead { tr { th { "Issue" } th { "Level" } th { "Last seen" } th.num { "Events" } th.num { "Agents" } th { "24 h" } } }
                tbody { @for (i, spark) in issues.iter().zip(&sparks) {
                    tr.issue {
                        td {
                            a.issue-title href=(format!("/issues/{}", i.id)) { (clip(&i.title, 140)) }
                            div.muted { (i.short_id()) " · " (clip(&i.culprit, 100))
                                @if i.status != "unresolved" { " · " span class=(format!("pill {}", i.status)) { (i.status) } } }
                        }
                        td { span class=(format!("level {}", i.level)) { (i.level) } }
                        td { (ago(i.last_seen, now)) }
                        td.num { (i.times_seen) }
                        td.num { (i.user_count) }
                        td.spark { (raw(charts::sparkline(spark, 120, 28))) }
                    }
                } }
            }
            div.pager {
                @if page > 0 { a href=(format!("/issues?{}", f.query_string(page - 1))) { "← Newer" } }
                @if more { a href=(format!("/issues?{}", f.query_string(page + 1))) { "Older →" } }
            }
        }
    };
    Ok(layout(&viewer, "issues", "Issues", body))
}

#[derive(Debug, Deserialize)]
struct DetailQuery {
    /// 0 = latest event, 1 = the one before, …
    event: Option<i64>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => clip(s, SHOW),
        Value::Null => String::new(),
        other => clip(&other.to_string(), SHOW),
    }
}

fn values(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The mark a breadcrumb gets on the timeline: signal, risk, http, trade or other.
fn crumb_kind(b: &Value) -> &'static str {
    let cat = b.get("category").and_then(Value::as_str).unwrap_or("");
    let ty = b.get("type").and_then(Value::as_str).unwrap_or("");
    if cat.starts_with("trade.signal") || cat == "signal" {
        "signal"
    } else if cat.starts_with("trade.risk") || cat == "risk" {
        "risk"
    } else if cat == "http" || ty == "http" || cat.starts_with("trade.api") {
        "http"
    } else if cat.starts_with("trade") {
        "trade"
    } else {
        "other"
    }
}

fn crumb_time(b: &Value) -> String {
    match b.get("timestamp") {
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|f| when((f * 1000.0) as i64))
            .unwrap_or_default(),
        Some(Value::String(t)) => clip(t, 40),
        _ => String::new(),
    }
}

fn kv_table(obj: &serde_json::Map<String, Value>) -> Markup {
    html! {
        table.kv { @for (k, v) in obj.iter().take(200) {
            tr { th { (clip(k, 100)) } td { code { (s(v)) } } }
        } }
    }
}

fn exception(p: &Value) -> Markup {
    let excs = values(p.get("exception"));
    html! {
        @for e in excs.iter().rev().take(10) {
            div.exception {
                h3 { span.exc-type { (s(e.get("type").unwrap_or(&Value::Null))) } ": " span.exc-value { (s(e.get("value").unwrap_or(&Value::Null))) } }
                @let frames = e.get("stacktrace").and_then(|st| st.get("frames")).and_then(Value::as_array).cloned().unwrap_or_default();
                @if !frames.is_empty() {
                    ol.frames { @for f in frames.iter().rev().take(100) {
                        li class=(if f.get("in_app").and_then(Value::as_bool) == Some(true) { "frame in-app" } else { "frame" }) {
                            code {
                                (s(f.get("function").unwrap_or(&Value::Null)))
                                " in "
                                (s(f.get("module").or_else(|| f.get("filename")).or_else(|| f.get("abs_path")).unwrap_or(&Value::Null)))
                                @if let Some(l) = f.get("lineno") { ":" (s(l)) }
                            }
                            @if let Some(c) = f.get("context_line").and_then(Value::as_str) { pre.context { (clip(c, 400)) } }
                        }
                    } }
                }
            }
        }
    }
}

fn breadcrumbs(p: &Value) -> Markup {
    let crumbs = values(p.get("breadcrumbs"));
    html! {
        @if crumbs.is_empty() { (empty("No breadcrumbs.")) } @else {
            ol.timeline id="breadcrumbs" { @for b in crumbs.iter().rev().take(200).collect::<Vec<_>>().into_iter().rev() {
                @let kind = crumb_kind(b);
                li class=(format!("crumb crumb-{kind}")) {
                    span.mark title=(kind) { (kind) }
                    span.time { (crumb_time(b)) }
                    span.cat { (s(b.get("category").unwrap_or(&Value::Null))) }
                    @if let Some(l) = b.get("level").and_then(Value::as_str) { span class=(format!("level {}", clip(l, 10))) { (clip(l, 10)) } }
                    span.msg { (s(b.get("message").unwrap_or(&Value::Null))) }
                    @if let Some(d) = b.get("data").and_then(Value::as_object) {
                        span.data { @for (k, v) in d.iter().take(12) { span.kv { (clip(k, 40)) "=" (clip(&s(v), 120)) } " " } }
                    }
                }
            } }
        }
    }
}

async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<DetailQuery>,
) -> Page {
    let reader = state.reader.clone();
    let now = state.clock.now_ms();
    let nth = q.event.unwrap_or(0).max(0);
    let (issue, tags, events) = blocking(move || {
        let issue = reader.issue(id)?;
        let tags = reader.issue_tags(id)?;
        let events = reader.issue_events(id, 1, nth)?;
        Ok((issue, tags, events))
    })
    .await?;
    let event = events.first();
    let p = event.map(|e| &e.payload).cloned().unwrap_or(Value::Null);
    let trading = p
        .get("contexts")
        .and_then(|c| c.get("trading"))
        .and_then(Value::as_object);
    let other_contexts: Vec<(String, serde_json::Map<String, Value>)> = p
        .get("contexts")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "trading")
                .filter_map(|(k, v)| v.as_object().map(|o| (k.clone(), o.clone())))
                .take(20)
                .collect()
        })
        .unwrap_or_default();
    let message = p
        .get("logentry")
        .and_then(|l| l.get("formatted").or_else(|| l.get("message")))
        .or_else(|| p.get("message"))
        .map(s);
    let body = html! {
        div.page-head {
            h1 id="issue-title" { (clip(&issue.title, 300)) }
            div.muted { (issue.short_id()) " · " (clip(&issue.culprit, 200)) " · " span class=(format!("level {}", issue.level)) { (issue.level) } }
        }
        div.issue-meta {
            span class=(format!("pill {}", issue.status)) #issue-status { (issue.status) }
            span { "First seen " (ago(issue.first_seen, now)) }
            span { "Last seen " (ago(issue.last_seen, now)) }
            span { (issue.times_seen) " events" }
            span { (issue.user_count) " agents" }
            @if let Some(r) = &issue.first_release { span { "First release " (clip(r, 60)) } }
            form.inline method="post" action=(format!("/issues/{}/status", issue.id)) {
                (csrf_field(&viewer))
                @if issue.status == "unresolved" {
                    button id="resolve" name="status" value="resolved" { "Resolve" }
                    button id="ignore" name="status" value="ignored" { "Ignore" }
                } @else {
                    button id="reopen" name="status" value="unresolved" { "Reopen" }
                }
            }
        }
        div.columns {
            div.main-col {
                @if let Some(e) = event {
                    div.event-nav {
                        @if nth > 0 { a id="newer-event" href=(format!("/issues/{}?event={}", issue.id, nth - 1)) { "← Newer" } }
                        span { "Event " (clip(&e.event_id, 32)) " · " (when(e.timestamp)) " UTC" }
                        @if nth + 1 < issue.times_seen { a id="older-event" href=(format!("/issues/{}?event={}", issue.id, nth + 1)) { "Older →" } }
                    }
                    @if let Some(m) = &message { @if !m.is_empty() { h2 { "Message" } pre.message { (m) } } }
                    @if trading.is_some() || p.get("exception").is_some() {
                        @if let Some(t) = trading { h2 { "Trading context" } div id="trading-context" { (kv_table(t)) } }
                        @if p.get("exception").is_some() { h2 { "Exception" } (exception(&p)) }
                    }
                    h2 { "Breadcrumbs" }
                    (breadcrumbs(&p))
                    @if let Some(t) = p.get("tags").and_then(Value::as_object) { h2 { "Tags of this event" } (kv_table(t)) }
                    @for (name, ctx) in &other_contexts { h3 { "Context: " (clip(name, 60)) } (kv_table(ctx)) }
                } @else {
                    (empty("No stored event (retention may have removed them)."))
                }
            }
            aside.side-col {
                h2 { "Tags" }
                @for (key, vals) in tags.iter().take(40) {
                    @let total: i64 = vals.iter().map(|v| v.1).sum();
                    div.tag-dist {
                        div.tag-key { (clip(key, 60)) }
                        @for (v, n) in vals.iter().take(5) {
                            @let share = if total > 0 { *n as f64 * 100.0 / total as f64 } else { 0.0 };
                            div.tag-val {
                                span.bar style=(format!("width:{share:.0}%")) {}
                                span.v { a href=(format!("/issues?status=all&query={}", urlencode(&format!("{key}:\"{v}\"")))) { (clip(v, 60)) } }
                                span.n { (format!("{share:.0}%")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&viewer, "issues", &clip(&issue.title, 80), body))
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    csrf: String,
    status: String,
}

async fn set_status(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<StatusForm>,
) -> Result<Response, UiError> {
    viewer.check_csrf(&form.csrf)?;
    let status = match form.status.as_str() {
        s @ ("resolved" | "unresolved" | "ignored") => s.to_owned(),
        other => {
            return Err(UiError::BadRequest(format!(
                "status {other:?} is not one of resolved, unresolved, ignored"
            )));
        }
    };
    let store = state.store.clone();
    blocking(move || store.set_issue_status(id, &status)).await?;
    Ok(Redirect::to(&format!("/issues/{id}")).into_response())
}
