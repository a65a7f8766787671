//! The landing page: every agent with its health at a glance.

use super::{Page, Viewer, ago, clip, empty, layout, ms, pct, urlencode};
use crate::http::state::AppState;
use axum::extract::State;
use maud::html;

/// Agents overview.
pub(super) async fn page(State(state): State<AppState>, viewer: Viewer) -> Page {
    let now = state.clock.now_ms();
    let rows = crate::services::agents::overview(&state.store, "default", now).await?;
    let count = |s: &str| rows.iter().filter(|a| a.status == s).count();
    let body = html! {
        div.page-head {
            h1 { "Agents" }
            // Reloaded by app.js every 15 s while the tab is visible.
            span.muted data-autorefresh="15" { "Updated " (super::when(now)) " UTC · refreshes every 15 s" }
        }
        div.summary id="agent-summary" {
            span.pill.healthy { (count("healthy")) " healthy" }
            span.pill.hung { (count("hung")) " hung" }
            span.pill.crashed { (count("crashed")) " crashed" }
            span.pill.silent { (count("silent")) " silent" }
            span.pill.stopped { (count("stopped")) " stopped" }
        }
        @if rows.is_empty() {
            (empty("No agent has reported yet. Point an agent's DSN at this server (see the README) and it appears here within seconds."))
        } @else {
            table.grid id="agents" {
                thead { tr {
                    th { "Agent" } th { "Status" } th { "Last heartbeat" } th { "Strategy" } th { "Release" }
                    th.num { "Crash-free (24 h)" } th.num { "Error rate (1 h)" } th.num { "p99 order.pipeline (1 h)" } th.num { "Open issues" }
                } }
                tbody { @for a in &rows {
                    tr class=(format!("agent status-{}", a.status)) {
                        td { a href=(format!("/issues?query={}", urlencode(&format!("agent_id:{}", a.agent_id)))) { (clip(&a.agent_id, 60)) }
                             @if a.project_slug != "default" { span.muted { " · " (a.project_slug) } } }
                        td { span class=(format!("pill {}", a.status)) { (a.status) }
                             @if let Some(s) = &a.session_status { span.muted title="latest session" { " " (s) } } }
                        td { @match a.last_heartbeat {
                                Some(t) => { (ago(t, now)) @if let Some(h) = &a.heartbeat_status { span.muted { " (" (h) ")" } } },
                                None => { span.muted { "no heartbeat monitor · seen " (ago(a.last_seen, now)) } },
                        } }
                        td { (clip(a.strategy.as_deref().unwrap_or("–"), 40)) }
                        td { @if let Some(r) = &a.release { a href="/releases" { (clip(r, 40)) } } @else { "–" } }
                        td.num { (pct(a.crash_free)) }
                        td.num title=(format!("{} errors in {} events", a.errors_1h, a.events_1h)) { (pct(a.error_rate())) }
                        td.num title=(format!("{} runs, {} failed", a.cycles_1h, a.failed_cycles_1h)) { (ms(a.p99_ms)) }
                        td.num { @if a.open_issues > 0 {
                            a href=(format!("/issues?query={}", urlencode(&format!("is:unresolved agent_id:{}", a.agent_id)))) { (a.open_issues) }
                        } @else { "0" } }
                    }
                } }
            }
        }
    };
    Ok(layout(&viewer, "agents", "Agents", body))
}
