//! Releases with deploys, release health and new issues; cron and heartbeat monitors with
//! their recent check-ins.

use super::{Page, Viewer, ago, clip, empty, layout, pct, urlencode, when};
use crate::api::blocking;
use crate::config::Synchronous;
use crate::http::AppState;
use crate::store::releases::Releases;
use crate::store::{connect, monitors};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::html;
use rusqlite::params;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/releases", get(releases))
}

/// Sessions, crashed sessions, users, crashed users of a release (all environments).
type Health = (i64, i64, i64, i64);

async fn releases(State(state): State<AppState>, viewer: Viewer) -> Page {
    let dir = state.config.data_dir.clone();
    let now = state.clock.now_ms();
    let rows = blocking(move || {
        let list = Releases::new(&dir).list("default", None)?;
        let conn = connect(&dir.join("lookout.db"), Synchronous::Normal)?;
        let mut sessions = conn.prepare_cached(
            "SELECT COALESCE(SUM(init), 0), COALESCE(SUM(crashed), 0) FROM rollup_sessions WHERE release = ?1",
        )?;
        let mut users = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(crashed > 0), 0) FROM session_users WHERE release = ?1",
        )?;
        // Releases seen in sessions, issues and agents but never created through the API
        // (Sentry creates those on first sight too).
        let mut seen = conn.prepare_cached(
            "SELECT release, MIN(at) FROM (
                 SELECT release, MIN(minute) AS at FROM rollup_sessions GROUP BY release
                 UNION ALL SELECT first_release, MIN(first_seen) FROM issues WHERE first_release IS NOT NULL GROUP BY first_release
                 UNION ALL SELECT release, MIN(first_seen) FROM agents WHERE release IS NOT NULL GROUP BY release)
             WHERE release != '' GROUP BY release",
        )?;
        let mut new_issues =
            conn.prepare_cached("SELECT COUNT(*) FROM issues WHERE first_release = ?1")?;
        let known: std::collections::HashSet<String> =
            list.iter().map(|r| r.version.clone()).collect();
        let mut list = list;
        for row in seen.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (version, first) = row?;
            if known.contains(&version) {
                continue;
            }
            let new_groups: i64 = new_issues.query_row([&version], |r| r.get(0))?;
            list.push(crate::store::releases::Release {
                id: 0,
                version,
                url: None,
                date_created: first,
                date_started: None,
                date_released: None,
                projects: Vec::new(),
                commit_count: 0,
                last_commit: None,
                deploy_count: 0,
                last_deploy: None,
                new_groups,
            });
        }
        list.sort_by_key(|r| std::cmp::Reverse(r.date_created));
        let mut out = Vec::with_capacity(list.len());
        for r in list.into_iter().take(200) {
            let (s, sc): (i64, i64) =
                sessions.query_row(params![r.version], |x| Ok((x.get(0)?, x.get(1)?)))?;
            let (u, uc): (i64, i64) =
                users.query_row(params![r.version], |x| Ok((x.get(0)?, x.get(1)?)))?;
            let health: Health = (s, sc, u, uc);
            out.push((r, health));
        }
        Ok(out)
    })
    .await?;
    let rate = |n: i64, bad: i64| (n > 0).then(|| (n - bad) as f64 * 100.0 / n as f64);
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
                tbody { @for (r, (s, sc, u, uc)) in &rows {
                    tr {
                        td { code { (clip(&r.version, 80)) } }
                        td { (ago(r.date_created, now)) }
                        td { @match &r.last_deploy {
                            Some(d) => { (clip(&d.environment, 40)) " · " (ago(d.date_finished, now)) },
                            None => { span.muted { "never" } },
                        } }
                        td.num { (r.deploy_count) }
                        td.num { (s) }
                        td.num { (pct(rate(*s, *sc))) }
                        td.num { (pct(rate(*u, *uc))) }
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
    let path = state.config.data_dir.join("lookout.db");
    let now = state.clock.now_ms();
    let rows = blocking(move || {
        let conn = connect(&path, Synchronous::Normal)?;
        let list = monitors::list(&conn, "default", None)?;
        let mut out = Vec::with_capacity(list.len());
        for m in list.into_iter().take(500) {
            let mut checks = monitors::check_ins(&conn, "default", &m.slug, 30)?;
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
