//! Releases with deploys, release health and new issues; cron and heartbeat monitors with
//! their recent check-ins.

use super::{Page, Viewer, ago, clip, empty, layout, pct, urlencode, when};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::health::crash_free;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::html;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/releases", get(releases))
}

async fn releases(State(state): State<AppState>, viewer: Viewer) -> Page {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let rows = blocking(move || {
        let health = store.health();
        let mut out = Vec::new();
        for r in store
            .releases()
            .list_with_seen("default")?
            .into_iter()
            .take(200)
        {
            let totals = health.totals(&r.version)?;
            out.push((r, totals));
        }
        Ok(out)
    })
    .await?;
    let body = html! {
        div.page-head { h1 { "Releases" } }
        @if rows.is_empty() {
            (empty("No release yet. Agents name theirs in the SDK's release option; sentry-cli records deploys."))
        } @else {
            table.grid id="releases" {
                thead { tr {
                    th { "Release" } th { "Created" } th { "Last deploy" } th.num { "Deploys" }
                    th.num { "Sessions" } th.num { "Crash-free sessions" } th.num { "Crash-free users" } th.num { "New issues" }
                } }
                tbody { @for (r, t) in &rows {
                    tr {
                        td { code { (clip(&r.version, 80)) } }
                        td { (ago(r.date_created, now)) }
                        td { @match &r.last_deploy {
                            Some(d) => { (clip(&d.environment, 40)) " · " (ago(d.date_finished, now)) },
                            None => { span.muted { "never" } },
                        } }
                        td.num { (r.deploy_count) }
                        td.num { (t.sessions) }
                        td.num { (pct(crash_free(t.sessions, t.crashed))) }
                        td.num { (pct(crash_free(t.users, t.users_crashed))) }
                        td.num { @if r.new_groups > 0 {
                            a href=(format!("/issues?status=all&release={}", urlencode(&r.version))) { (r.new_groups) }
                        } @else { "0" } }
                    }
                } }
            }
        }
    };
    Ok(layout(&viewer, "releases", "Releases", body))
}

/// Cron and heartbeat monitors.
pub(super) async fn crons(State(state): State<AppState>, viewer: Viewer) -> Page {
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
        @if rows.is_empty() {
            (empty("No monitor yet. A check-in with a monitor_config creates one (the agent library's heartbeats and cron jobs do)."))
        } @else {
            table.grid id="monitors" {
                thead { tr { th { "Monitor" } th { "Status" } th { "Schedule" } th { "Last check-in" } th { "Next due" } th { "Recent check-ins (oldest → newest)" } } }
                tbody { @for (m, checks) in &rows {
                    @let env = m.environments.first();
                    @let status = env.map(|e| e.1.as_str()).unwrap_or("pending");
                    tr class=(format!("monitor status-{}", clip(status, 20))) {
                        td { (clip(&m.name, 80)) div.muted { code { (clip(&m.slug, 80)) } } }
                        td { span class=(format!("pill {}", clip(status, 20))) { (status) } @if m.status != "active" { span.muted { " (" (m.status) ")" } } }
                        td { code { (clip(&schedule_text(&m.config), 60)) } }
                        td { @match env.and_then(|e| e.2) { Some(t) => { (ago(t, now)) }, None => { "–" } } }
                        td { @match env.and_then(|e| e.3) { Some(t) => { (when(t)) }, None => { "–" } } }
                        td.checkins { @for (id, st, dur, envname, at) in checks {
                            span class=(format!("dot {}", clip(st, 20)))
                                title=(format!("{} · {} · {} · {}", clip(st, 20), when(*at), dur.map(|d| format!("{d:.0} ms")).unwrap_or_default(), clip(envname, 30)))
                                data-check-in=(clip(id, 40)) {}
                        } }
                    }
                } }
            }
        }
    };
    Ok(layout(&viewer, "crons", "Crons", body))
}

fn schedule_text(config: &serde_json::Value) -> String {
    match config.get("schedule") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) if a.len() == 2 => {
            format!("every {} {}", a[0], a[1].as_str().unwrap_or(""))
        }
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
