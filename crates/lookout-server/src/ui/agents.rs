//! The landing page: every agent with its health at a glance, troubled agents first, each
//! with the reasons for its status; and one page per agent (`/agents/{agent_id}`): its
//! timeline, open issues, pipelines and latest decisions. Both update in place (`data-live`
//! regions, refreshed by `app.js`).

use super::{
    LIVE_EVERY_SECS, Page, Viewer, ago, charts, clip, csrf_field, empty, field_error_slot, layout,
    ms, pct, urlencode, when,
};
use crate::http::state::AppState;
use crate::services::agents::{
    AgentHealth, AgentPage, EntryKind, Reason, ReasonKind, Status, decisions, ms_text,
    outcome_series, pct_text, stage_series, timeline,
};
use crate::services::trading::{Actor, TradingState};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The link to an agent's page.
pub(super) fn agent_href(agent_id: &str) -> String {
    format!("/agents/{}", urlencode(agent_id))
}

fn reasons_list(a: &AgentHealth) -> Markup {
    html! {
        @if !a.reasons.is_empty() {
            ul.reasons { @for r in &a.reasons { (reason_item(r)) } }
        }
    }
}

fn reason_item(r: &Reason) -> Markup {
    let class = match r.kind {
        ReasonKind::Lifecycle => "reason lifecycle",
        ReasonKind::Alert => "reason alert",
        _ => "reason",
    };
    html! {
        li class=(class) title=(r.detail) {
            @match r.incident_id {
                Some(id) => a href=(format!("/alerts/incidents/{id}")) { (clip(&r.text, 160)) },
                None => (clip(&r.text, 160)),
            }
        }
    }
}

/// A figure, marked when outside its threshold (in words, not only in colour).
fn figure(text: String, over: bool, threshold: &str, title: String) -> Markup {
    html! {
        @if over {
            td.num.over title=(title) { (text) span.flag { " ▲ over " (threshold) } }
        } @else {
            td.num title=(title) { (text) }
        }
    }
}

fn overview_table(rows: &[AgentHealth], now: i64) -> Markup {
    let count = |s: Status| rows.iter().filter(|a| a.status == s.as_str()).count();
    html! {
        div.summary id="agent-summary" {
            @for s in Status::ALL {
                span class=(format!("pill {}", s.as_str())) { (count(s)) " " (s.as_str()) }
            }
        }
        @if rows.is_empty() {
            (empty("No agent has reported yet. Point an agent's DSN at this server (see the README) and it appears here within seconds."))
        } @else {
            div.table-scroll tabindex="0" role="region" aria-label="Agents and their health" {
            table.grid.agents-table id="agents" {
                thead { tr {
                    th { "Agent" } th { "Status and why" } th { "Last heartbeat" } th { "Strategy · release" }
                    th.num { "Crash-free (24 h)" } th.num { "Error rate (1 h)" } th.num { "p99 order.pipeline (1 h)" }
                    th.num { "Risk rejections (1 h)" } th { "Top open issue" }
                } }
                tbody { @for a in rows {
                    tr class=(format!("agent status-{}", a.status)) data-agent=(a.agent_id) {
                        td { a.agent-link href=(agent_href(&a.agent_id)) { (clip(&a.agent_id, 60)) }
                             @if a.project_slug != "default" { span.muted { " · " (a.project_slug) } } }
                        td.status-cell {
                            span class=(format!("pill {}", a.status)) { (a.status) }
                            (trading_row(a, now))
                            (reasons_list(a))
                        }
                        td { @match a.last_heartbeat {
                                Some(t) => { (ago(t, now)) @if let Some(h) = &a.heartbeat_status { span.muted { " (" (h) ")" } } },
                                None => { "seen " (ago(a.last_seen, now)) br; span.muted { "no heartbeat monitor" } },
                        } }
                        td { (clip(a.strategy.as_deref().unwrap_or("–"), 40)) br;
                             @if let Some(r) = &a.release { a.muted href="/releases" { (clip(r, 40)) } } @else { span.muted { "–" } } }
                        td.num { (pct(a.crash_free)) }
                        (figure(
                            a.error_rate().map(pct_text).unwrap_or_else(|| "–".into()),
                            a.error_rate_over(),
                            &pct_text(a.thresholds.error_rate_pct.value),
                            format!("{} of {} transactions failed, {} error events; {}",
                                a.failed_transactions_1h, a.transactions_1h, a.errors_1h, a.thresholds.error_rate_pct.source()),
                        ))
                        (figure(
                            a.p99_ms.map(ms_text).unwrap_or_else(|| "–".into()),
                            a.p99_over(),
                            &ms_text(a.thresholds.p99_ms.value),
                            format!("{} runs, {} failed; {}", a.cycles_1h, a.failed_cycles_1h, a.thresholds.p99_ms.source()),
                        ))
                        (figure(
                            a.risk_rejected_rate().map(pct_text).unwrap_or_else(|| "–".into()),
                            a.risk_over(),
                            &pct_text(a.thresholds.risk_rejected_pct.value),
                            format!("{} of {} order pipelines; {}", a.risk_rejected_1h, a.cycles_1h, a.thresholds.risk_rejected_pct.source()),
                        ))
                        td.top-issue {
                            @match &a.top_issue {
                                Some(t) => {
                                    a href=(format!("/issues/{}", t.id)) title=(t.title) { (clip(&t.title, 70)) }
                                    br;
                                    span.muted { (t.short_id) " · " (t.events) " events" }
                                    @if a.open_issues > 1 {
                                        " · " a href=(format!("/issues?query={}", urlencode(&format!("is:unresolved agent_id:{}", a.agent_id)))) {
                                            (a.open_issues) " open"
                                        }
                                    }
                                },
                                None => span.muted { "none open" },
                            }
                        }
                    }
                } }
            }
            }
        }
    }
}

/// The kill switch in an overview row: a `paused` pill with why, and the button that leads
/// to the confirmation page.
fn trading_row(a: &AgentHealth, now: i64) -> Markup {
    let paused = a.trading.as_ref().filter(|t| t.paused);
    html! {
        @if let Some(t) = paused {
            " " span.pill.paused.trading-paused title=(trading_words(t, now)) { "trading paused" }
            " " a.button.small.resume-agent href=(format!("{}/resume", agent_href(&a.agent_id)))
                aria-label=(format!("Resume trading of agent {}", clip(&a.agent_id, 60))) { "Resume" }
        } @else {
            " " a.button.small.pause-agent href=(format!("{}/pause", agent_href(&a.agent_id)))
                aria-label=(format!("Pause trading of agent {}", clip(&a.agent_id, 60))) { "Pause" }
        }
    }
}

/// A pause in words: why, by whom, since and until.
fn trading_words(t: &TradingState, now: i64) -> String {
    let mut out = format!(
        "paused by {}: {}",
        t.by.as_ref().map(Actor::describe).unwrap_or_default(),
        t.reason.as_deref().unwrap_or("")
    );
    if let Some(s) = t.since {
        out.push_str(&format!(", {}", ago(s, now)));
    }
    if let Some(u) = t.until {
        out.push_str(&format!(", until {} UTC", when(u)));
    }
    out
}

/// The agent page's kill-switch panel: its trading state and the button.
fn trading_panel(a: &AgentHealth, now: i64) -> Markup {
    let href = agent_href(&a.agent_id);
    let paused = a.trading.as_ref().filter(|t| t.paused);
    html! {
        div.trading id="agent-trading" {
            @if let Some(t) = paused {
                span.pill.paused id="agent-trading-state" { "trading paused" }
                " "
                span id="agent-trading-why" { (clip(&trading_words(t, now), 400)) }
                " "
                a.button id="agent-resume" href=(format!("{href}/resume")) { "Resume trading" }
            } @else {
                span.pill.healthy id="agent-trading-state" { "trading active" }
                " "
                a.button id="agent-pause" href=(format!("{href}/pause")) { "Pause trading" }
            }
        }
    }
}

/// The project of agent `agent_id` (its most recently seen one) and its trading state;
/// `None` when no agent of that id has reported.
async fn find_agent(
    state: &AppState,
    agent_id: &str,
) -> Result<Option<AgentHealth>, super::UiError> {
    let now = state.clock.now_ms();
    let rows = crate::services::agents::overview(&state.store, "default", now).await?;
    Ok(rows
        .into_iter()
        .filter(|a| a.agent_id == agent_id)
        .max_by_key(|a| a.last_seen))
}

/// The pause form's fields.
#[derive(Debug, Deserialize)]
pub(super) struct PauseForm {
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    minutes: String,
}

fn pause_form(
    viewer: &Viewer,
    agent_id: &str,
    reason: &str,
    minutes: &str,
    errors: &serde_json::Value,
) -> Markup {
    let error = |f: &str| {
        errors
            .get(f)
            .and_then(|v| v.get(0))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let href = agent_href(agent_id);
    html! {
        p.crumbs { a href="/" { "Agents" } " / " a href=(href) { (clip(agent_id, 120)) } " / " }
        div.page-head { h1 id="confirm-title" { "Pause trading of agent " (clip(agent_id, 120)) "?" } }
        p { "The agent's library refuses new orders within seconds (reduce-only orders still go through) until it is resumed here, through the API, or when the pause ends. The agent cannot lift it itself." }
        form.stacked method="post" action=(format!("{href}/pause")) id="pause-form" {
            (csrf_field(viewer))
            label for="reason" { "Reason" }
            textarea id="reason" name="reason" required maxlength=(crate::services::trading::MAX_REASON_CHARS) rows="3" { (reason) }
            (field_error_slot("reason", error("reason").as_deref()))
            label for="minutes" { "For how many minutes (empty: until resumed)" }
            input id="minutes" name="minutes" type="number" min="1" max=(crate::services::trading::MAX_MINUTES) value=(minutes);
            (field_error_slot("minutes", error("minutes").as_deref()))
            div.actions {
                button.danger type="submit" id="confirm-pause" { "Pause " (clip(agent_id, 60)) }
                " " a href=(href) { "Cancel" }
            }
        }
    }
}

/// `GET /agents/{id}/pause`: the confirmation page, naming the agent.
pub(super) async fn pause_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(agent_id): Path<String>,
) -> Result<Response, super::UiError> {
    if find_agent(&state, &agent_id).await?.is_none() {
        return Ok(unknown_agent(&viewer, &agent_id));
    }
    let body = pause_form(&viewer, &agent_id, "", "", &serde_json::Value::Null);
    let title = format!("Pause {}", clip(&agent_id, 60));
    Ok(layout(&viewer, "agents", &title, body).into_response())
}

fn unknown_agent(viewer: &Viewer, agent_id: &str) -> Response {
    not_found(
        viewer,
        &format!(
            "No agent {:?} has reported to this server.",
            clip(agent_id, 120)
        ),
    )
}

/// `POST /agents/{id}/pause`: pause, then back to the agent's page (post/redirect/get);
/// field errors come back beside their field.
pub(super) async fn pause_post(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(agent_id): Path<String>,
    Form(f): Form<PauseForm>,
) -> Result<Response, super::UiError> {
    viewer.check_csrf(&f.csrf)?;
    let Some(agent) = find_agent(&state, &agent_id).await? else {
        return Ok(unknown_agent(&viewer, &agent_id));
    };
    let now = state.clock.now_ms();
    let minutes = match f.minutes.trim() {
        "" => Ok(None),
        m => m.parse::<i64>().map(Some).map_err(|_| {
            crate::services::ServiceError::Fields(
                serde_json::json!({"minutes": ["Enter a whole number of minutes."]}),
            )
        }),
    };
    let checked = minutes
        .and_then(|m| crate::services::trading::until_of(m, now))
        .and_then(|until| crate::services::trading::check_reason(&f.reason).map(|r| (r, until)));
    let (reason, until) = match checked {
        Ok(v) => v,
        Err(crate::services::ServiceError::Fields(errors)) => {
            let body = pause_form(&viewer, &agent_id, &f.reason, &f.minutes, &errors);
            let title = format!("Pause {}", clip(&agent_id, 60));
            return Ok((
                StatusCode::BAD_REQUEST,
                layout(&viewer, "agents", &title, body),
            )
                .into_response());
        }
        Err(e) => return Err(crate::http::error::ApiError::from(e).into()),
    };
    let store = state.store.clone();
    let by = Actor::User(viewer.username().to_owned());
    let project = agent.project_id;
    let id = agent_id.clone();
    crate::services::blocking(move || {
        Ok(crate::services::trading::pause(
            &store, project, &id, &reason, by, until, now,
        ))
    })
    .await?
    .map_err(crate::http::error::ApiError::from)?;
    Ok(Redirect::to(&agent_href(&agent_id)).into_response())
}

/// `GET /agents/{id}/resume`: the confirmation page, naming the agent.
pub(super) async fn resume_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(agent_id): Path<String>,
) -> Result<Response, super::UiError> {
    let Some(agent) = find_agent(&state, &agent_id).await? else {
        return Ok(unknown_agent(&viewer, &agent_id));
    };
    let now = state.clock.now_ms();
    let href = agent_href(&agent_id);
    let body = html! {
        p.crumbs { a href="/" { "Agents" } " / " a href=(href) { (clip(&agent_id, 120)) } " / " }
        div.page-head { h1 id="confirm-title" { "Resume trading of agent " (clip(&agent_id, 120)) "?" } }
        @match agent.trading.as_ref().filter(|t| t.paused) {
            Some(t) => p id="resume-what" { "It is " (clip(&trading_words(t, now), 400)) "." },
            None => p id="resume-what" { "It is not paused." },
        }
        form.stacked method="post" action=(format!("{href}/resume")) id="resume-form" {
            (csrf_field(&viewer))
            div.actions {
                button type="submit" id="confirm-resume" { "Resume " (clip(&agent_id, 60)) }
                " " a href=(href) { "Cancel" }
            }
        }
    };
    let title = format!("Resume {}", clip(&agent_id, 60));
    Ok(layout(&viewer, "agents", &title, body).into_response())
}

/// `POST /agents/{id}/resume`: resume, then back to the agent's page.
pub(super) async fn resume_post(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(agent_id): Path<String>,
    Form(f): Form<super::CsrfForm>,
) -> Result<Response, super::UiError> {
    viewer.check_csrf(&f.csrf)?;
    let Some(agent) = find_agent(&state, &agent_id).await? else {
        return Ok(unknown_agent(&viewer, &agent_id));
    };
    let now = state.clock.now_ms();
    let store = state.store.clone();
    let by = Actor::User(viewer.username().to_owned());
    let project = agent.project_id;
    let id = agent_id.clone();
    crate::services::blocking(move || {
        Ok(crate::services::trading::resume(
            &store, project, &id, by, now,
        ))
    })
    .await?
    .map_err(crate::http::error::ApiError::from)?;
    Ok(Redirect::to(&agent_href(&agent_id)).into_response())
}

/// Agents overview.
pub(super) async fn page(State(state): State<AppState>, viewer: Viewer) -> Page {
    let now = state.clock.now_ms();
    let rows = crate::services::agents::overview(&state.store, "default", now).await?;
    let body = html! {
        div.page-head {
            h1 { "Agents" }
            span.muted id="agents-updated" data-live=(LIVE_EVERY_SECS) {
                "Updated " (when(now)) " UTC · updates in place every " (LIVE_EVERY_SECS) " s"
            }
        }
        div id="agents-live" data-live=(LIVE_EVERY_SECS) { (overview_table(&rows, now)) }
        p.muted.thresholds-note {
            "An agent is degraded when a figure of the last hour is above its threshold (from the project's metric alert rules, else "
            (pct_text(crate::services::agents::DEFAULT_ERROR_RATE_PCT)) " errors, "
            (ms_text(crate::services::agents::DEFAULT_P99_MS)) " p99, "
            (pct_text(crate::services::agents::DEFAULT_RISK_REJECTED_PCT)) " risk rejections), a cron missed or failed, or an alert about it is firing. "
            "The error rate is the share of its transactions that failed: an agent that sends none has none."
        }
    };
    Ok(layout(&viewer, "agents", "Agents", body))
}

/// `?period=` of the agent page.
#[derive(Debug, Deserialize)]
pub(super) struct AgentQuery {
    period: Option<String>,
}

const PERIODS: [(&str, i64, i64); 4] = [
    ("1h", 3_600_000, 5 * 60_000),
    ("6h", 6 * 3_600_000, 30 * 60_000),
    ("24h", 24 * 3_600_000, 3_600_000),
    ("7d", 7 * 24 * 3_600_000, 6 * 3_600_000),
];

/// 404 inside the app's layout.
fn not_found(viewer: &Viewer, what: &str) -> Response {
    let body = html! {
        div.page-head { h1 { "Not found" } }
        p.error id="not-found" { (what) }
        p { a href="/" { "Back to the agents" } }
    };
    (
        StatusCode::NOT_FOUND,
        layout(viewer, "agents", "Not found", body),
    )
        .into_response()
}

/// One agent's page.
pub(super) async fn agent_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(agent_id): Path<String>,
    Query(q): Query<AgentQuery>,
) -> Result<Response, super::UiError> {
    let period = q.period.as_deref().unwrap_or("24h");
    let Some(&(period, span, bucket)) = PERIODS.iter().find(|p| p.0 == period) else {
        return Err(super::UiError::BadRequest(format!(
            "unknown period {:?}: use one of 1h, 6h, 24h, 7d",
            clip(period, 20)
        )));
    };
    let now = state.clock.now_ms();
    let since = {
        let t = now - span;
        t - t.rem_euclid(60_000)
    };
    let Some(page) =
        crate::services::agents::agent(&state.store, "default", &agent_id, since, now).await?
    else {
        return Ok(not_found(
            &viewer,
            &format!(
                "No agent {:?} has reported to this server.",
                clip(&agent_id, 120)
            ),
        ));
    };
    let body = agent_body(&page, period, since, bucket, now);
    let title = format!("Agent {}", clip(&agent_id, 60));
    Ok(layout(&viewer, "agents", &title, body).into_response())
}

fn entry_class(kind: EntryKind, failed: bool) -> String {
    let mut c = format!("entry entry-{}", kind.label());
    if kind.bad() || failed {
        c.push_str(" bad");
    }
    c
}

fn agent_body(p: &AgentPage, period: &str, since: i64, bucket: i64, now: i64) -> Markup {
    let a = &p.health;
    let d = &p.detail;
    let entries = timeline(d, 100);
    let stages = stage_series(d, since, bucket);
    let outcomes = outcome_series(d, since, now, bucket);
    let decided = decisions(d, 30);
    let stage_points: Vec<(String, Vec<charts::StagePoint>)> = stages
        .iter()
        .map(|s| {
            let points = s
                .buckets
                .iter()
                .map(|b| charts::StagePoint {
                    start: b.start,
                    count: b.count,
                    failed: b.failed,
                    latency: b.p99,
                })
                .collect();
            (s.op.clone(), points)
        })
        .collect();
    let href = agent_href(&a.agent_id);
    html! {
        p.crumbs { a href="/" { "Agents" } " / " }
        div.page-head {
            h1 id="agent-title" { (clip(&a.agent_id, 120)) }
            span.muted id="agent-updated" data-live=(LIVE_EVERY_SECS) { "Updated " (when(now)) " UTC" }
        }
        div id="agent-health" data-live=(LIVE_EVERY_SECS) {
            div.agent-status {
                span id="agent-status" class=(format!("pill {}", a.status)) { (a.status) }
                span.muted {
                    " project " (a.project_slug)
                    @if let Some(s) = &a.strategy { " · strategy " (clip(s, 60)) }
                    @if let Some(r) = &a.release { " · release " (clip(r, 60)) }
                    @if let Some(e) = &a.environment { " · " (clip(e, 40)) }
                    " · first seen " (ago(a.first_seen, now)) " · last seen " (ago(a.last_seen, now))
                }
            }
            (trading_panel(a, now))
            @if a.reasons.is_empty() {
                p.muted id="agent-reasons" { "Nothing outside its thresholds in the last hour." }
            } @else {
                ul.reasons id="agent-reasons" { @for r in &a.reasons { (reason_item(r)) } }
            }
            div.table-scroll tabindex="0" role="region" aria-label="The agent's figures" {
            table.grid.figures id="agent-figures" {
                thead { tr {
                    th.num { "Crash-free (24 h)" } th.num { "Error rate (1 h)" } th.num { "p99 order.pipeline (1 h)" }
                    th.num { "Risk rejections (1 h)" } th.num { "Errors (1 h)" } th.num { "Open issues" }
                } }
                tbody { tr {
                    td.num { (pct(a.crash_free)) }
                    (figure(a.error_rate().map(pct_text).unwrap_or_else(|| "–".into()), a.error_rate_over(),
                        &pct_text(a.thresholds.error_rate_pct.value),
                        format!("{} of {} transactions failed; {}", a.failed_transactions_1h, a.transactions_1h, a.thresholds.error_rate_pct.source())))
                    (figure(a.p99_ms.map(ms_text).unwrap_or_else(|| "–".into()), a.p99_over(),
                        &ms_text(a.thresholds.p99_ms.value),
                        format!("{} runs; {}", a.cycles_1h, a.thresholds.p99_ms.source())))
                    (figure(a.risk_rejected_rate().map(pct_text).unwrap_or_else(|| "–".into()), a.risk_over(),
                        &pct_text(a.thresholds.risk_rejected_pct.value),
                        format!("{} of {} order pipelines; {}", a.risk_rejected_1h, a.cycles_1h, a.thresholds.risk_rejected_pct.source())))
                    td.num { (a.errors_1h) }
                    td.num { (a.open_issues) }
                } }
            }
            }
        }
        div.agent-columns {
            section {
                h2 { "Timeline" }
                div id="agent-timeline-live" data-live=(LIVE_EVERY_SECS) {
                    @if entries.is_empty() {
                        (empty("No session, deploy, alert or check-in yet."))
                    } @else {
                        ol.timeline.agent-timeline id="agent-timeline" { @for e in &entries {
                            li class=(entry_class(e.kind, e.failed)) data-at=(e.at) {
                                span.time title=(when(e.at)) { (ago(e.at, now)) }
                                span.mark { (e.kind.label()) }
                                @match &e.link {
                                    Some(l) => a href=(l) { (clip(&e.text, 200)) },
                                    None => span { (clip(&e.text, 200)) },
                                }
                            }
                        } }
                    }
                }
            }
            section {
                h2 { "Open issues" }
                div id="agent-issues-live" data-live=(LIVE_EVERY_SECS) {
                    @if d.issues.is_empty() {
                        (empty("No open issue."))
                    } @else {
                        table.grid id="agent-issues" {
                            thead { tr { th { "Issue" } th.num { "Events" } th { "Last seen" } } }
                            tbody { @for i in &d.issues {
                                tr {
                                    td { a.issue-title href=(format!("/issues/{}", i.id)) { (clip(&i.title, 120)) }
                                         br; span.muted { (i.short_id) " · " span class=(format!("level {}", i.level)) { (i.level) }
                                             @if !i.culprit.is_empty() { " · " (clip(&i.culprit, 80)) } } }
                                    td.num { (i.events) }
                                    td { (ago(i.last_seen, now)) }
                                }
                            } }
                        }
                    }
                }
                h2 { "Latest decisions" }
                div id="agent-decisions-live" data-live=(LIVE_EVERY_SECS) {
                    @if decided.is_empty() {
                        (empty("No decision breadcrumb (trade.signal, trade.risk, trade.api, trade.position) on its latest events."))
                    } @else {
                        ol.timeline id="agent-decisions" { @for c in &decided {
                            @let kind = c.category.trim_start_matches("trade.");
                            li class=(format!("crumb-{}", match kind { "signal" => "signal", "risk" => "risk", "api" => "http", _ => "trade" })) {
                                span.time { @match c.at { Some(t) => (ago(t, now)), None => "–" } }
                                span.mark { (clip(kind, 20)) }
                                span.msg { (clip(&c.message, 300)) }
                                @if !c.data.is_empty() {
                                    span.data { @for (k, v) in c.data.iter().take(8) { span.kv { (clip(k, 40)) "=" (clip(v, 80)) " " } } }
                                }
                                @if let Some(issue) = c.issue_id {
                                    a.muted href=(format!("/issues/{issue}")) { "event" }
                                }
                            }
                        } }
                    }
                }
            }
        }
        h2 { "Pipelines" }
        form.filters method="get" action=(href) {
            label { "Window " select name="period" {
                @for (p, _, _) in PERIODS { option value=(p) selected[p == period] { (p) } }
            } }
            button type="submit" { "Show" }
        }
        div id="agent-pipelines-live" data-live=(LIVE_EVERY_SECS) {
            @if stages.is_empty() {
                (empty("No order.pipeline transaction of this agent in this window."))
            } @else {
                (charts::stage_charts("agent-", "p99 latency per stage", &stage_points, bucket, (since, now)))
                div.table-scroll tabindex="0" role="region" aria-label="Pipeline stages" {
                table.grid id="agent-stages" {
                    thead { tr { th { "Stage" } th.num { "Runs" } th.num { "Failed" } th.num { "p50" } th.num { "p95" } th.num { "p99" } } }
                    tbody { @for s in &stages {
                        tr { td { code { (clip(&s.op, 80)) } } td.num { (s.total.count) } td.num { (s.total.failed) }
                             td.num { (ms(s.total.p50)) } td.num { (ms(s.total.p95)) } td.num { (ms(s.total.p99)) } }
                    } }
                }
                }
                h3 { "Outcomes over time" }
                div.table-scroll tabindex="0" role="region" aria-label="Outcomes over time" {
                table.grid id="agent-outcomes" {
                    thead { tr { th { "From (UTC)" } th.num { "Ok" } th.num { "Failed" } th.num { "Rejected by risk" } th.num { "Error events" } } }
                    tbody { @for o in outcomes.iter().rev().filter(|o| o.ok + o.failed + o.errors > 0) {
                        tr { td { (when(o.start)) } td.num { (o.ok) }
                             td.num { @if o.failed > 0 { span.error { (o.failed) } } @else { "0" } }
                             td.num { (o.risk_rejected) } td.num { (o.errors) } }
                    } }
                }
                }
            }
        }
    }
}
