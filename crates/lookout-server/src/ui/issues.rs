//! Issues: a searchable list with sparklines, and the detail of one issue with its tags,
//! trading context, exception, breadcrumb timeline and events.

use super::{
    LIVE_EVERY_SECS, Page, UiError, Viewer, ago, charts, clip, csrf_field, empty, layout, raw,
    urlencode, when,
};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::StoreError;
use crate::store::read::{IssueRow, Term, parse_query};
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
    let (sparks, split_tags) = blocking(move || {
        Ok((
            reader.hourly_counts(&ids, now)?,
            reader.issues_tag_values(&ids, &SPLIT_TAGS.map(|t| t.0))?,
        ))
    })
    .await?;
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
                            @let chips = split_chips(i, split_tags.get(&i.id).map(Vec::as_slice).unwrap_or(&[]));
                            @if !chips.is_empty() {
                                span.split-chips title="What set this issue apart from others of the same error (its fingerprint)" {
                                    @for (label, value) in &chips {
                                        " " span.chip data-split=[label.as_deref()] {
                                            @if let Some(l) = label { span.chip-key { (l) } " " }
                                            (clip(value, 40))
                                        }
                                    }
                                }
                            }
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

/// Tags whose values name a fingerprint part in the issues list: (tag key, chip label).
const SPLIT_TAGS: [(&str, &str); 2] = [("trade.asset", "asset"), ("trade.phase", "phase")];

/// The chips beside an issue's title: the values of its custom fingerprint (what split it
/// from issues of the same error), labelled `asset` or `phase` when the issue's tags say
/// which, the exception type (already the title) left out; at most 4.
fn split_chips(issue: &IssueRow, tags: &[(String, String)]) -> Vec<(Option<String>, String)> {
    let meta: Value = serde_json::from_str(&issue.metadata).unwrap_or(Value::Null);
    let ty = meta.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(parts) = meta.get("fingerprint").and_then(Value::as_array) else {
        return Vec::new();
    };
    parts
        .iter()
        .filter_map(Value::as_str)
        .filter(|v| !v.is_empty() && *v != ty)
        .map(|v| {
            let label = SPLIT_TAGS
                .iter()
                .find(|(key, _)| tags.iter().any(|(k, tv)| k == key && tv == v))
                .map(|(_, l)| (*l).to_owned());
            (label, v.to_owned())
        })
        .take(4)
        .collect()
}

#[derive(Debug, Deserialize)]
struct DetailQuery {
    /// 0 = latest event, 1 = the one before, …
    event: Option<i64>,
    /// Only breadcrumbs of this category.
    crumbs: Option<String>,
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

/// A breadcrumb's time: (`HH:MM:SS.mmm`, the full UTC date for its tooltip).
fn crumb_time(b: &Value) -> (String, String) {
    let ms = match b.get("timestamp") {
        Some(Value::Number(n)) => n.as_f64().map(|f| (f * 1000.0) as i64),
        Some(Value::String(t)) => chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp_millis()),
        _ => None,
    };
    match ms.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(d) => (
            d.format("%H:%M:%S%.3f").to_string(),
            format!("{} UTC", d.format("%Y-%m-%d %H:%M:%S%.3f")),
        ),
        None => (String::new(), String::new()),
    }
}

fn kv_table(obj: &serde_json::Map<String, Value>) -> Markup {
    html! {
        table.kv { @for (k, v) in obj.iter().take(200) {
            tr { th { (clip(k, 100)) } td { code { (s(v)) } } }
        } }
    }
}

/// How many breadcrumbs show before the "older" fold.
const CRUMBS_SHOWN: usize = 20;
/// Most breadcrumbs an event page lists (the payload keeps them all).
const CRUMBS_MAX: usize = 500;

/// The frames of one exception's stack trace, newest (the raising frame) first.
fn frames_of(e: &Value) -> Vec<&Value> {
    e.get("stacktrace")
        .and_then(|st| st.get("frames"))
        .and_then(Value::as_array)
        .map(|f| f.iter().rev().take(200).collect())
        .unwrap_or_default()
}

/// Consecutive frames split into runs: (in the application's code, the run's frames).
fn runs<'a>(frames: &[&'a Value]) -> Vec<(bool, Vec<&'a Value>)> {
    let mut out: Vec<(bool, Vec<&Value>)> = Vec::new();
    for f in frames {
        let app = in_app(f);
        match out.last_mut() {
            Some((a, run)) if *a == app => run.push(f),
            _ => out.push((app, vec![f])),
        }
    }
    out
}

fn in_app(f: &Value) -> bool {
    f.get("in_app").and_then(Value::as_bool) == Some(true)
}

fn frame_line(f: &Value) -> Markup {
    let func = f
        .get("function")
        .and_then(Value::as_str)
        .unwrap_or("<unknown>");
    let place = f
        .get("filename")
        .or_else(|| f.get("abs_path"))
        .or_else(|| f.get("module"))
        .and_then(Value::as_str);
    html! {
        div.frame-head {
            code.fn { (clip(func, 200)) }
            @if let Some(place) = place {
                " " span.muted { "in " } code.file { (clip(place, 200))
                    @if let Some(l) = f.get("lineno").and_then(Value::as_i64) { ":" (l) }
                    @if let Some(c) = f.get("colno").and_then(Value::as_i64) { ":" (c) } }
            }
        }
        @if let Some(c) = f.get("context_line").and_then(Value::as_str) {
            @let pre: Vec<&str> = f.get("pre_context").and_then(Value::as_array).map(|a| a.iter().rev().take(2).filter_map(Value::as_str).collect::<Vec<_>>().into_iter().rev().collect()).unwrap_or_default();
            @let post: Vec<&str> = f.get("post_context").and_then(Value::as_array).map(|a| a.iter().take(2).filter_map(Value::as_str).collect()).unwrap_or_default();
            pre.context {
                @for l in &pre { span.ctx { (clip(l, 300)) } "\n" }
                span.ctx-line { (clip(c, 300)) }
                @for l in &post { "\n" span.ctx { (clip(l, 300)) } }
            }
        }
    }
}

/// The exceptions of an event, the one raised last first; each with its frames newest
/// first, the application's own frames shown and every run of library frames folded.
fn exception(p: &Value) -> Markup {
    let excs = values(p.get("exception"));
    html! {
        @for (n, e) in excs.iter().rev().take(10).enumerate() {
            @let frames = frames_of(e);
            @let app = frames.iter().filter(|f| in_app(f)).count();
            div.exception id=(format!("exception-{n}")) {
                h3 {
                    @if n > 0 { span.muted { "Caused by " } }
                    span.exc-type { (s(e.get("type").unwrap_or(&Value::Null))) }
                    @if let Some(v) = e.get("value").filter(|v| !v.is_null()) { ": " span.exc-value { (s(v)) } }
                }
                @if let Some(m) = e.get("mechanism").and_then(|m| m.get("type")).and_then(Value::as_str) {
                    div.muted.mechanism { "mechanism " code { (clip(m, 60)) }
                        @if e.get("mechanism").and_then(|m| m.get("handled")).and_then(Value::as_bool) == Some(false) { " · " span.pill.error { "unhandled" } } }
                }
                @if frames.is_empty() {
                    p.muted { "No stack trace was sent with this exception." }
                } @else if app == 0 {
                    div.muted.frames-summary { (frames.len()) " frames, none marked as the agent's code · newest first" }
                    ol.frames { @for f in &frames { li.frame { (frame_line(f)) } } }
                } @else {
                    div.muted.frames-summary { (frames.len()) " frames · " (app) " in the agent's code · newest first" }
                    ol.frames {
                        @for (app_run, run) in runs(&frames) {
                            @if app_run {
                                @for f in run { li.frame.in-app { (frame_line(f)) } }
                            } @else {
                                li.lib-run {
                                    details.lib-frames {
                                        summary { (run.len()) @if run.len() == 1 { " library frame" } @else { " library frames" } }
                                        ol.frames { @for f in run { li.frame { (frame_line(f)) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A breadcrumb's HTTP status, when it records an HTTP call.
fn crumb_status(b: &Value) -> Option<i64> {
    let d = b.get("data")?;
    let v = d.get("status_code").or_else(|| d.get("http.status_code"))?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The event's own HTTP status: its `http.status_code` tag or its response context.
fn event_status(p: &Value) -> Option<i64> {
    let tag = p
        .get("tags")
        .and_then(|t| t.get("http.status_code"))
        .or_else(|| {
            p.get("contexts")
                .and_then(|c| c.get("response"))
                .and_then(|r| r.get("status_code"))
        })?;
    tag.as_i64()
        .or_else(|| tag.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Index (in the event's order) of the failing HTTP call: the latest HTTP breadcrumb with
/// the event's own status, else the latest with a status of 400 or more.
fn failing_call(crumbs: &[Value], status: Option<i64>) -> Option<usize> {
    let http = |b: &Value| crumb_kind(b) == "http";
    status
        .filter(|s| *s >= 400)
        .and_then(|st| {
            crumbs
                .iter()
                .rposition(|b| http(b) && crumb_status(b) == Some(st))
        })
        .or_else(|| {
            crumbs
                .iter()
                .rposition(|b| http(b) && crumb_status(b).is_some_and(|s| s >= 400))
        })
}

fn crumb_category(b: &Value) -> String {
    b.get("category")
        .and_then(Value::as_str)
        .map(|c| clip(c, 60))
        .unwrap_or_else(|| "default".into())
}

fn crumb_item(b: &Value, failing: bool) -> Markup {
    let kind = crumb_kind(b);
    let cat = crumb_category(b);
    html! {
        li class=(format!("crumb crumb-{kind}{}", if failing { " failing-call" } else { "" }))
           id=[failing.then_some("failing-call")] data-category=(cat) {
            span.mark { (kind) }
            @let (time, full) = crumb_time(b);
            span.time title=(full) { (time) }
            span.cat { (cat) }
            @if failing { span.pill.error { "failed call" } }
            @if let Some(l) = b.get("level").and_then(Value::as_str) { span class=(format!("level {}", clip(l, 10))) { (clip(l, 10)) } }
            span.msg { (s(b.get("message").unwrap_or(&Value::Null))) }
            @if let Some(d) = b.get("data").and_then(Value::as_object) {
                span.data { @for (k, v) in d.iter().take(12) { span.kv { (clip(k, 40)) "=" (clip(&readable(k, v).0, 120)) } " " } }
            }
        }
    }
}

/// Breadcrumbs newest first: the latest 20 shown, the rest behind one click; a category
/// filter (`only`, from the `crumbs` query parameter; app.js filters in place too); the
/// failing HTTP call marked.
fn breadcrumbs(p: &Value, only: Option<&str>, issue_id: i64, nth: i64) -> Markup {
    let all = values(p.get("breadcrumbs"));
    let failing = failing_call(&all, event_status(p));
    let mut categories: Vec<String> = all.iter().map(crumb_category).collect();
    categories.sort();
    categories.dedup();
    // Newest first, with each crumb's index in the event's order.
    let listed: Vec<(usize, &Value)> = all
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| only.is_none_or(|c| crumb_category(b) == c))
        .take(CRUMBS_MAX)
        .collect();
    let (shown, older) = listed.split_at(listed.len().min(CRUMBS_SHOWN));
    html! {
        div.crumbs-head {
            h2 id="breadcrumbs-title" { "Breadcrumbs " span.muted { "(" (all.len()) ", newest first)" } }
            @if categories.len() > 1 {
                form.crumb-filter method="get" action=(format!("/issues/{issue_id}#breadcrumbs-title")) {
                    @if nth > 0 { input type="hidden" name="event" value=(nth); }
                    label { "Category " select id="crumb-category" name="crumbs" {
                        option value="" { "all" }
                        @for c in &categories { option value=(c) selected[only == Some(c.as_str())] { (c) } }
                    } }
                    button.secondary type="submit" id="crumb-filter-apply" { "Filter" }
                }
            }
        }
        @if all.is_empty() { (empty("No breadcrumbs.")) } @else if listed.is_empty() { (empty("No breadcrumb of this category.")) } @else {
            ol.timeline id="breadcrumbs" {
                @for (i, b) in shown { (crumb_item(b, failing == Some(*i))) }
            }
            @if !older.is_empty() {
                details.older-crumbs id="older-breadcrumbs" {
                    summary id="show-older-breadcrumbs" { "Show " (older.len()) " older breadcrumbs" }
                    ol.timeline {
                        @for (i, b) in older { (crumb_item(b, failing == Some(*i))) }
                    }
                }
            }
        }
    }
}

/// A value of the trading context for reading, and the value as sent (for its tooltip).
/// Prices and other decimals to 6 significant digits (2 decimals from 1,000 up, with
/// thousands separators), percentages as `12.35 %`, integers grouped.
fn readable(key: &str, v: &Value) -> (String, String) {
    let sent = match v {
        Value::String(t) => clip(t, SHOW),
        other => clip(&other.to_string(), SHOW),
    };
    let number = match v {
        Value::Number(n) => n.as_f64().map(|f| (f, n.is_f64())),
        Value::String(t) if t.len() <= 40 && t.trim().parse::<f64>().is_ok() => {
            t.trim().parse::<f64>().ok().map(|f| (f, t.contains('.')))
        }
        _ => None,
    };
    let Some((f, fractional)) = number.filter(|(f, _)| f.is_finite()) else {
        return (sent.clone(), sent);
    };
    let k = key.to_ascii_lowercase();
    let shown = if k.contains("pct") || k.contains("percent") {
        format!("{} %", group(&format!("{f:.2}")))
    } else if !fractional {
        group(&format!("{f:.0}"))
    } else {
        round_sig(f)
    };
    (shown, sent)
}

/// A decimal to 6 significant digits (2 decimals from 1,000 up), trailing zeros trimmed.
fn round_sig(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let mag = f.abs().log10().floor() as i32;
    let decimals = if mag >= 3 { 2 } else { (5 - mag).clamp(0, 12) } as usize;
    let t = format!("{f:.decimals$}");
    let t = if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        t
    };
    group(&t)
}

/// Thousands separators on the integer part of a formatted number.
fn group(t: &str) -> String {
    let (sign, rest) = t.strip_prefix('-').map_or(("", t), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    if int.len() <= 4 {
        return t.to_owned();
    }
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(fr) => format!("{sign}{out}.{fr}"),
        None => format!("{sign}{out}"),
    }
}

/// The trading context as a compact grid of readable values.
fn trading_grid(obj: &serde_json::Map<String, Value>) -> Markup {
    html! {
        dl.trading-grid { @for (k, v) in obj.iter().take(60) {
            @let (shown, sent) = readable(k, v);
            div {
                dt { (clip(k, 60)) }
                dd title=(sent) { (shown) }
            }
        } }
    }
}

async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw_id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Page {
    let Some(id) = raw_id.parse::<i64>().ok().filter(|i| *i > 0) else {
        return Err(UiError::missing(&format!("issue {raw_id:?}")));
    };
    detail_page(state, &viewer, id, q).await
}

async fn detail_page(state: AppState, viewer: &Viewer, id: i64, q: DetailQuery) -> Page {
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
    let mut trading: serde_json::Map<String, Value> = p
        .get("contexts")
        .and_then(|c| c.get("trading"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(extra) = p
        .get("extra")
        .and_then(|e| e.get("trade_context"))
        .and_then(Value::as_object)
    {
        for (k, v) in extra.iter().take(40) {
            trading.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
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
        .map(s)
        .filter(|m| !m.is_empty());
    let trace_id = p
        .get("contexts")
        .and_then(|c| c.get("trace"))
        .and_then(|t| t.get("trace_id"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 64)
        .map(str::to_owned);
    let trace_href = trace_id.as_ref().map(|t| {
        format!(
            "/performance/traces/{}?project={}",
            urlencode(t),
            urlencode(&issue.project.slug)
        )
    });
    let event_release = p
        .get("release")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let release_link = |r: &str| {
        html! { a.release-link href=(format!("/releases/{}", urlencode(r))) { code { (clip(r, 60)) } } }
    };
    let has_exception = !values(p.get("exception")).is_empty();
    let crumbs = values(p.get("breadcrumbs"));
    let failing = failing_call(&crumbs, event_status(&p)).and_then(|i| crumbs.get(i));
    let only = q.crumbs.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let body = html! {
        div.page-head.issue-head {
            h1 id="issue-title" { (clip(&issue.title, 300)) }
        }
        // Live regions: the status, the counts and when it was last seen, each on its own
        // (the status form beside them is left alone).
        div.issue-meta {
            span class=(format!("pill {}", issue.status)) #issue-status data-live=(LIVE_EVERY_SECS) { (issue.status) }
            span class=(format!("level {}", issue.level)) { (issue.level) }
            span.muted { (issue.short_id()) }
            span #issue-counts data-live=(LIVE_EVERY_SECS) { (issue.times_seen) " events · " (issue.user_count) " agents" }
            span #issue-seen data-live=(LIVE_EVERY_SECS) { "first " (ago(issue.first_seen, now)) " · last " (ago(issue.last_seen, now)) }
            @if let Some(r) = &issue.first_release { span { "first release " (release_link(r)) } }
            form.inline method="post" action=(format!("/issues/{}/status", issue.id)) {
                (csrf_field(viewer))
                @if issue.status == "unresolved" {
                    button id="resolve" name="status" value="resolved" { "Resolve" }
                    " "
                    button.secondary id="ignore" name="status" value="ignored" { "Ignore" }
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
                        span.muted { "Event " code { (clip(&e.event_id, 32)) } " · " (when(e.timestamp)) " UTC" }
                        @if let Some(r) = &event_release { span { "release " (release_link(r)) } }
                        @if let (Some(t), Some(href)) = (&trace_id, &trace_href) {
                            a.trace-link id="trace-link" href=(href) title=(t) { "Trace " code { (clip(t, 8)) } " →" }
                        }
                        @if nth + 1 < issue.times_seen { a id="older-event" href=(format!("/issues/{}?event={}", issue.id, nth + 1)) { "Older →" } }
                    }
                    section.cause id="cause" {
                        @if has_exception { (exception(&p)) }
                        @if let Some(m) = &message { @if !has_exception { h2 { "Message" } } pre.message { (m) } }
                        @if let Some(b) = failing {
                            p.failing-summary id="failing-summary" {
                                span.pill.error { "failed call" } " "
                                code { (s(b.get("message").unwrap_or(&Value::Null))) }
                                @if let Some(st) = crumb_status(b) { " · HTTP " (st) }
                                " · " a href="#failing-call" { "in the breadcrumbs" }
                            }
                        }
                    }
                    @if !trading.is_empty() {
                        h2 { "Trading context" }
                        div id="trading-context" { (trading_grid(&trading)) }
                    }
                    (breadcrumbs(&p, only, issue.id, nth))
                    @if let Some(t) = p.get("tags").and_then(Value::as_object) { h2 { "Tags of this event" } (kv_table(t)) }
                    @for (name, ctx) in &other_contexts {
                        h3 { "Context: " (clip(name, 60)) }
                        @if name == "trace" && trace_href.is_some() {
                            p { a href=[trace_href.as_deref()] { "Open this trace's waterfall →" } }
                        }
                        (kv_table(ctx))
                    }
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
                                span.v {
                                    @if key == "release" {
                                        a href=(format!("/releases/{}", urlencode(v))) { (clip(v, 60)) }
                                    } @else {
                                        a href=(format!("/issues?status=all&query={}", urlencode(&format!("{key}:\"{v}\"")))) { (clip(v, 60)) }
                                    }
                                }
                                span.n { (format!("{share:.0}%")) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(viewer, "issues", &clip(&issue.title, 80), body))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trading_numbers_are_rounded_for_reading() {
        let r = |k: &str, v: Value| readable(k, &v).0;
        assert_eq!(r("last_price", json!(97_123.456_789_123)), "97,123.46");
        assert_eq!(r("price", json!(1.234_567_89)), "1.23457");
        assert_eq!(r("signal_z", json!(0.000_123_456_789)), "0.000123457");
        assert_eq!(r("size", json!(0.5)), "0.5");
        assert_eq!(r("drawdown_pct", json!(4.126_75)), "4.13 %");
        assert_eq!(r("open_positions", json!(1_234_567)), "1,234,567");
        assert_eq!(r("pnl", json!(-12_345.678)), "-12,345.68");
        assert_eq!(r("price", json!("97000.123456789")), "97,000.12");
        assert_eq!(r("asset", json!("BTC")), "BTC");
        assert_eq!(r("order_id", json!("1234")), "1234");
        // The value as sent stays available (the tooltip).
        assert_eq!(readable("p", &json!(1.234_567_89)).1, "1.23456789");
    }

    #[test]
    fn the_failing_call_is_the_one_with_the_events_status_else_the_latest_failure() {
        let http = |status: i64| json!({"category": "http", "type": "http", "data": {"status_code": status}});
        let crumbs = vec![
            http(500),
            http(400),
            http(200),
            json!({"category": "trade.signal"}),
        ];
        assert_eq!(failing_call(&crumbs, Some(500)), Some(0));
        assert_eq!(failing_call(&crumbs, None), Some(1));
        assert_eq!(failing_call(&crumbs, Some(200)), Some(1));
        assert_eq!(failing_call(&crumbs[2..], None), None);
        // Status as text, as some SDKs send it.
        let text = vec![json!({"category": "http", "data": {"status_code": "503"}})];
        assert_eq!(failing_call(&text, None), Some(0));
    }

    #[test]
    fn frames_fold_into_runs() {
        let f = |app: bool| json!({"function": "f", "in_app": app});
        let frames = [f(false), f(true), f(true), f(false), f(false)];
        let refs: Vec<&Value> = frames.iter().collect();
        let got: Vec<(bool, usize)> = runs(&refs).iter().map(|(a, r)| (*a, r.len())).collect();
        assert_eq!(got, vec![(false, 1), (true, 2), (false, 2)]);
    }

    #[test]
    fn chips_name_what_split_an_issue() {
        let issue = IssueRow {
            id: 1,
            project: crate::store::read::ProjectRef {
                id: 1,
                slug: "default".into(),
                org_slug: "default".into(),
            },
            short_seq: 1,
            title: "OrderRejected (ETH, confirmation): no".into(),
            culprit: String::new(),
            level: "error".into(),
            kind: "error".into(),
            metadata: json!({"type": "OrderRejected", "fingerprint": ["OrderRejected", "ETH", "confirmation", "<b>x</b>"]}).to_string(),
            status: "unresolved".into(),
            first_seen: 0,
            last_seen: 0,
            times_seen: 1,
            user_count: 0,
            first_release: None,
        };
        let tags = vec![
            ("trade.asset".to_owned(), "ETH".to_owned()),
            ("trade.phase".to_owned(), "confirmation".to_owned()),
        ];
        assert_eq!(
            split_chips(&issue, &tags),
            vec![
                (Some("asset".into()), "ETH".into()),
                (Some("phase".into()), "confirmation".into()),
                (None, "<b>x</b>".into()),
            ]
        );
        let plain = IssueRow {
            metadata: "{}".into(),
            ..issue
        };
        assert!(split_chips(&plain, &tags).is_empty());
    }
}
