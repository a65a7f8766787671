//! Release health as the API reports it: per release and environment, with crash-free
//! rates and adoption, and per strategy.

use super::{ServiceError, blocking};
use crate::store::Store;
use crate::store::health::{ReleaseEnvHealth, crash_free};
use std::collections::BTreeMap;

/// One release in one environment, with its rates.
#[derive(Debug, Clone)]
pub struct ReleaseHealth {
    /// The stored figures.
    pub figures: ReleaseEnvHealth,
    /// Crash-free sessions, in percent (`None` without sessions).
    pub crash_free_sessions: Option<f64>,
    /// Crash-free users, in percent (`None` without users).
    pub crash_free_users: Option<f64>,
    /// The release's share of all sessions in the window, in percent.
    pub adoption: Option<f64>,
}

/// The releases of one strategy taken together.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyHealth {
    /// The `strategy` tag.
    pub strategy: String,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that crashed.
    pub crashed: i64,
    /// Crash-free sessions, in percent.
    pub crash_free_sessions: Option<f64>,
    /// Its releases, in the order first met.
    pub releases: Vec<String>,
}

/// The health of every release of `org`/`project` over the window since `since_ms`.
pub async fn release_health(
    store: &Store,
    org: &str,
    project: &str,
    since_ms: i64,
) -> Result<(Vec<ReleaseHealth>, Vec<StrategyHealth>), ServiceError> {
    let store = store.clone();
    let (org, project) = (org.to_owned(), project.to_owned());
    let rows = blocking(move || {
        let p = store.reader().project(&org, &project)?;
        store.health().by_release(p.id, since_ms)
    })
    .await?;
    let total: i64 = rows.iter().map(|r| r.sessions).sum();
    let mut strategies: BTreeMap<String, StrategyHealth> = BTreeMap::new();
    for r in &rows {
        if let Some(s) = &r.strategy {
            let e = strategies
                .entry(s.clone())
                .or_insert_with(|| StrategyHealth {
                    strategy: s.clone(),
                    sessions: 0,
                    crashed: 0,
                    crash_free_sessions: None,
                    releases: Vec::new(),
                });
            e.sessions += r.sessions;
            e.crashed += r.crashed;
            if !e.releases.contains(&r.release) {
                e.releases.push(r.release.clone());
            }
        }
    }
    let by_strategy = strategies
        .into_values()
        .map(|mut s| {
            s.crash_free_sessions = crash_free(s.sessions, s.crashed);
            s
        })
        .collect();
    let releases = rows
        .into_iter()
        .map(|r| ReleaseHealth {
            crash_free_sessions: crash_free(r.sessions, r.crashed),
            crash_free_users: crash_free(r.users, r.users_crashed),
            adoption: (total > 0).then(|| r.sessions as f64 / total as f64 * 100.0),
            figures: r,
        })
        .collect();
    Ok((releases, by_strategy))
}
