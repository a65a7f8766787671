//! Cron and heartbeat monitors: the list (`/crons`) with each monitor's latest check-ins,
//! and a page per monitor (`/crons/{slug}`) with its schedule, the state of each
//! environment and its check-ins, newest first, with durations and status.

use super::{LIVE_EVERY_SECS, Page, UiError, Viewer, ago, clip, empty, layout, urlencode, when};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::monitors::{CheckInRow, MonitorConfig, MonitorRow, Schedule};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use maud::{Markup, html};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/crons", get(crons))
        .route("/crons/{slug}", get(monitor))
}

/// Check-ins a monitor's page lists.
const CHECK_INS_SHOWN: i64 = 100;

/// Cron and heartbeat monitors.
async fn crons(State(state): State<AppState>, viewer: Viewer) -> Page {
    let monitors = state.store.monitors();
    let now = state.clock.now_ms();
    let rows = blocking(move || {
        let list = monitors.list("default", None)?;
        let mut out = Vec::with_capacity(list.len());
        for m in list.into_iter().take(500) {
            let mut checks = monitors.check_ins("default", &m.slug, 30)?;
            checks.reverse();
            out.push((m, checks));
        }
        Ok(out)
    })
    .await?;
    let body = html! {
        div.page-head { h1 { "Crons and heartbeats" } }
        div id="monitors-live" data-live=(LIVE_EVERY_SECS) {
            @if rows.is_empty() {
                (empty("No monitor yet. A check-in with a monitor_config creates one (the agent library's heartbeats and cron jobs do)."))
            } @else {
                table.grid id="monitors" {
                    thead { tr { th { "Monitor" } th { "Status" } th { "Schedule" } th { "Last check-in" } th { "Next due" } th { "Recent check-ins (oldest → newest)" } } }
                    tbody { @for (m, checks) in &rows {
                        @let env = m.environments.first();
                        @let status = env.map(|e| e.1.as_str()).unwrap_or("pending");
                        tr class=(format!("monitor status-{}", clip(status, 20))) {
                            td { a.monitor-link href=(monitor_href(&m.slug)) { (clip(&m.name, 80)) } div.muted { code { (clip(&m.slug, 80)) } } }
                            td { span class=(format!("pill {}", clip(status, 20))) { (status) } @if m.status != "active" { span.muted { " (" (m.status) ")" } } }
                            td { code { (clip(&schedule_text(&m.config), 60)) } }
                            td { @match env.and_then(|e| e.2) { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                            td { @match env.and_then(|e| e.3) { Some(t) => { (when(t)) }, None => { "–" } } }
                            td.checkins { (dots(checks)) }
                        }
                    } }
                }
            }
        }
    };
    Ok(layout(&viewer, "crons", "Crons", body))
}

fn monitor_href(slug: &str) -> String {
    format!("/crons/{}", urlencode(slug))
}

/// One dot per check-in, coloured by status, the details in its tooltip.
fn dots(checks: &[CheckInRow]) -> Markup {
    html! {
        @for (id, st, dur, envname, at) in checks {
            span class=(format!("dot {}", clip(st, 20)))
                title=(format!("{} · {} · {} · {}", clip(st, 20), when(*at), dur.map(|d| format!("{d:.0} ms")).unwrap_or_default(), clip(envname, 30)))
                data-check-in=(clip(id, 40)) {}
        }
    }
}

/// A monitor's schedule as the SDKs and the API send it (`0 * * * *`, `every 5 minute`).
fn schedule_text(config: &serde_json::Value) -> String {
    match MonitorConfig::parse(config).map(|c| c.schedule) {
        Ok(Schedule::Crontab(c)) => c,
        Ok(Schedule::Interval(1, unit)) => format!("every {unit}"),
        Ok(Schedule::Interval(n, unit)) => format!("every {n} {unit}s"),
        Err(_) => match config.get("schedule") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
    }
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A check-in's duration for reading.
fn duration(d: Option<f64>) -> String {
    match d {
        Some(d) if d >= 60_000.0 => format!("{:.1} min", d / 60_000.0),
        Some(d) => super::ms(Some(d)),
        None => "–".into(),
    }
}

async fn monitor(State(state): State<AppState>, viewer: Viewer, Path(slug): Path<String>) -> Page {
    monitor_page(state, &viewer, slug).await
}

async fn monitor_page(state: AppState, viewer: &Viewer, slug: String) -> Page {
    let monitors = state.store.monitors();
    let now = state.clock.now_ms();
    let wanted = slug.clone();
    let (found, checks): (Vec<MonitorRow>, Vec<CheckInRow>) = blocking(move || {
        let found = monitors.list("default", Some(&wanted))?;
        let checks = if found.is_empty() {
            Vec::new()
        } else {
            monitors.check_ins("default", &wanted, CHECK_INS_SHOWN)?
        };
        Ok((found, checks))
    })
    .await?;
    let Some(m) = found.first() else {
        return Err(UiError::missing(&format!("monitor {}", clip(&slug, 80))));
    };
    let cfg = MonitorConfig::parse(&m.config).ok();
    let count = |st: &str| checks.iter().filter(|c| c.1 == st).count();
    let failures = checks
        .iter()
        .filter(|c| matches!(c.1.as_str(), "error" | "missed" | "timeout"))
        .count();
    let mut oldest_first = checks.clone();
    oldest_first.reverse();
    let body = html! {
        div.page-head {
            h1 id="monitor-title" { (clip(&m.name, 120)) }
            code.muted { (clip(&m.slug, 120)) }
            @if m.status != "active" { span.pill.stopped { (m.status) } }
        }
        dl.facts id="monitor-facts" {
            div { dt { "Schedule" } dd { code id="monitor-schedule" { (clip(&schedule_text(&m.config), 80)) }
                @if let Some(c) = &cfg { @if matches!(c.schedule, Schedule::Crontab(_)) { " " span.muted { (clip(&c.timezone, 60)) } } } } }
            @if let Some(c) = &cfg {
                div { dt { "Grace" } dd { (c.checkin_margin) " min" } }
                div { dt { "Longest run" } dd { (c.max_runtime) " min" } }
                div { dt { "Opens an issue after" } dd { (plural(c.failure_issue_threshold, "failure", "failures")) } }
                div { dt { "Resolves after" } dd { (plural(c.recovery_threshold, "success", "successes")) } }
            }
            div { dt { "Project" } dd { (clip(&m.project_slug, 60)) } }
            div { dt { "Created" } dd { (ago(m.date_created, now)) } }
        }
        // Live regions: each environment's state and the check-ins, which arrive while the
        // page is open; the monitor's settings change only through the API.
        h2 { "Status by environment" }
        div id="monitor-environments-live" data-live=(LIVE_EVERY_SECS) {
            @if m.environments.is_empty() { (empty("No check-in yet.")) } @else {
                table.grid id="monitor-environments" {
                    thead { tr { th { "Environment" } th { "Status" } th { "Last check-in" } th { "Next due" } th { "Late after" } } }
                    tbody { @for (env, st, last, next, latest) in &m.environments {
                        tr {
                            td { (clip(env, 60)) }
                            td { span class=(format!("pill {}", clip(st, 20))) { (clip(st, 20)) } }
                            td { @match last { Some(t) => { (ago(*t, now)) }, None => { "–" } } }
                            td { @match next { Some(t) => { (when(*t)) " UTC" }, None => { "–" } } }
                            td { @match latest { Some(t) => { (when(*t)) " UTC" }, None => { "–" } } }
                        }
                    } }
                }
            }
        }
        div id="check-ins-live" data-live=(LIVE_EVERY_SECS) {
            h2 { "Check-ins " span.muted { "(latest " (checks.len()) ", newest first)" } }
            @if checks.is_empty() { (empty("No check-in stored.")) } @else {
                p.checkin-summary {
                    span.checkins { (dots(&oldest_first)) }
                    " " (count("ok")) " ok · " (failures) " failed or missed"
                }
                table.grid id="check-ins" {
                    thead { tr { th { "Received (UTC)" } th { "Status" } th.num { "Duration" } th { "Environment" } th { "Check-in" } } }
                    tbody { @for (id, st, dur, env, at) in &checks {
                        tr class=(format!("check-in status-{}", clip(st, 20))) {
                            td { (when(*at)) " " span.muted { (ago(*at, now)) } }
                            td { span class=(format!("pill {}", clip(st, 20))) { (clip(st, 20)) } }
                            td.num { (duration(*dur)) }
                            td { (clip(env, 60)) }
                            td { code.muted { (clip(id, 40)) } }
                        }
                    } }
                }
            }
        }
    };
    Ok(layout(viewer, "crons", &clip(&m.name, 80), body))
}
