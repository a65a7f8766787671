//! Releases: the list with deploys, release health and new issues, and a page per release
//! (`/releases/{version}`) with its deploys, its health (crash-free sessions and users,
//! adoption) and the issues first seen in it.

use super::{
    LIVE_EVERY_SECS, Page, UiError, Viewer, ago, clip, empty, layout, pct, urlencode, when,
};
use crate::http::state::AppState;
use crate::services::blocking;
use crate::store::health::crash_free;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use maud::html;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/releases", get(releases))
        .route("/releases/{version}", get(release))
}

async fn releases(State(state): State<AppState>, viewer: Viewer) -> Page {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let rows = blocking(move || {
        // One read for every release's health, not one per row.
        let mut totals = store.health().totals_by_release()?;
        let out: Vec<_> = store
            .releases()
            .list_with_seen("default")?
            .into_iter()
            .take(200)
            .map(|r| {
                let t = totals.remove(&r.version).unwrap_or_default();
                (r, t)
            })
            .collect();
        Ok(out)
    })
    .await?;
    let body = html! {
        div.page-head { h1 { "Releases" } }
        div id="releases-live" data-live=(LIVE_EVERY_SECS) {
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
                            td { a.release-link href=(release_href(&r.version)) { code { (clip(&r.version, 80)) } } }
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
        }
    };
    Ok(layout(&viewer, "releases", "Releases", body))
}

/// The page of release `version`.
pub(super) fn release_href(version: &str) -> String {
    format!("/releases/{}", urlencode(version))
}

/// New issues a release page lists.
const NEW_ISSUES_SHOWN: i64 = 50;
/// Adoption is measured over the last day, as Sentry does.
const ADOPTION_WINDOW_MS: i64 = 86_400_000;

async fn release(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(version): Path<String>,
) -> Page {
    release_page(state, &viewer, version).await
}

async fn release_page(state: AppState, viewer: &Viewer, version: String) -> Page {
    if version.is_empty() || version.len() > 250 {
        return Err(UiError::missing(&format!("release {}", clip(&version, 80))));
    }
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let v = version.clone();
    let (rel, deploys, totals, adoption, issues) = blocking(move || {
        let releases = store.releases();
        let rel = releases.get_or_seen("default", &v)?;
        let deploys = releases.deploys_of_release(&rel)?;
        let health = store.health();
        let totals = health.totals(&v)?;
        let adoption = health.adoption(&v, now - ADOPTION_WINDOW_MS)?;
        let issues = store
            .reader()
            .issues_first_seen_in("default", &v, NEW_ISSUES_SHOWN)?;
        Ok((rel, deploys, totals, adoption, issues))
    })
    .await?;
    let adoption_pct = (adoption.1 > 0).then(|| adoption.0 as f64 * 100.0 / adoption.1 as f64);
    let body = html! {
        div.page-head {
            h1 id="release-title" { "Release " code { (clip(&rel.version, 120)) } }
            div.muted {
                "created " (ago(rel.date_created, now))
                @if let Some(d) = rel.date_released { " · finalized " (ago(d, now)) }
                @if !rel.projects.is_empty() { " · " @for (i, (_, p)) in rel.projects.iter().enumerate() { @if i > 0 { ", " } (clip(p, 40)) } }
                @if rel.commit_count > 0 { " · " (rel.commit_count) " commits" }
                @if rel.id == 0 { " · seen in events only (not created through the API)" }
            }
        }
        // Live regions: its health, its deploys and its new issues (sessions, sentry-cli and
        // errors change them while the page is open).
        h2 { "Health" }
        div id="release-health-live" data-live=(LIVE_EVERY_SECS) {
            dl.facts.health id="release-health" {
                div { dt { "Crash-free sessions" } dd id="crash-free-sessions" { (pct(crash_free(totals.sessions, totals.crashed))) } }
                div { dt { "Crash-free users" } dd { (pct(crash_free(totals.users, totals.users_crashed))) } }
                div { dt { "Sessions" } dd { (totals.sessions) span.muted { " · " (totals.crashed) " crashed" } } }
                div { dt { "Adoption (24 h)" } dd id="adoption" { (pct(adoption_pct)) span.muted { " · " (adoption.0) " of " (adoption.1) " sessions" } } }
            }
        }
        h2 { "Deploys" }
        div id="release-deploys-live" data-live=(LIVE_EVERY_SECS) {
            @if deploys.is_empty() { (empty("No deploy recorded (sentry-cli releases deploys … new records one).")) } @else {
                table.grid id="deploys" {
                    thead { tr { th { "Environment" } th { "Name" } th { "Finished (UTC)" } th.num { "Took" } } }
                    tbody { @for d in &deploys {
                        tr {
                            td { span.pill { (clip(&d.environment, 60)) } }
                            td { @match (&d.name, &d.url) {
                                (Some(n), Some(u)) if u.starts_with("https://") || u.starts_with("http://") => { a href=(u) rel="noopener noreferrer" { (clip(n, 80)) } },
                                (Some(n), _) => { (clip(n, 80)) },
                                _ => { span.muted { "–" } },
                            } }
                            td { (when(d.date_finished)) " " span.muted { (ago(d.date_finished, now)) } }
                            td.num { @match d.date_started { Some(s) if s <= d.date_finished => { (super::ms(Some((d.date_finished - s) as f64))) }, _ => { "–" } } }
                        }
                    } }
                }
            }
        }
        div id="release-issues-live" data-live=(LIVE_EVERY_SECS) {
            h2 { "New issues " span.muted { "(first seen in this release: " (rel.new_groups) ")" } }
            @if issues.is_empty() { (empty("No issue was first seen in this release.")) } @else {
                table.grid id="new-issues" {
                    thead { tr { th { "Issue" } th { "Level" } th { "First seen" } th.num { "Events" } th { "Status" } } }
                    tbody { @for i in &issues {
                        tr {
                            td { a.issue-title href=(format!("/issues/{}", i.id)) { (clip(&i.title, 140)) } div.muted { (i.short_id()) } }
                            td { span class=(format!("level {}", i.level)) { (i.level) } }
                            td { (ago(i.first_seen, now)) }
                            td.num { (i.times_seen) }
                            td { span class=(format!("pill {}", i.status)) { (i.status) } }
                        }
                    } }
                }
                @if rel.new_groups > issues.len() as i64 { p.muted { "The latest " (issues.len()) " of " (rel.new_groups) " are listed." } }
                p { a href=(format!("/issues?status=all&release={}", urlencode(&rel.version))) { "Every issue seen in this release →" } }
            }
        }
    };
    Ok(layout(viewer, "releases", &clip(&rel.version, 80), body))
}
