//! Release health: sessions, crashes and users per release, environment and strategy, from
//! the per-minute session rollups and the per-user session table. The API's
//! `releases/health/` endpoint and the Releases page both read it here, so the figures they
//! show are computed one way.

use super::Result;
use super::db::Db;
use super::sql::{OptionalExtension, params};
use std::sync::Arc;

/// The health of one release in one environment over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseEnvHealth {
    /// Release version.
    pub release: String,
    /// Environment name (empty when the SDK sent none).
    pub environment: String,
    /// The `strategy` tag most of the release's events carry in the window, if any.
    pub strategy: Option<String>,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that ended crashed.
    pub crashed: i64,
    /// Sessions that ended abnormally (hung, killed).
    pub abnormal: i64,
    /// Sessions that saw at least one error.
    pub errored: i64,
    /// Distinct users (session distinct ids) seen in the window.
    pub users: i64,
    /// Of those, the users with at least one crashed session.
    pub users_crashed: i64,
    /// First minute with a session (ms).
    pub first_seen: i64,
    /// Last minute with a session (ms).
    pub last_seen: i64,
}

/// Session and user totals of one release over all environments and all time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReleaseTotals {
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that ended crashed.
    pub crashed: i64,
    /// Distinct users.
    pub users: i64,
    /// Users with at least one crashed session.
    pub users_crashed: i64,
}

/// `part` of `whole` that went well, in percent; `None` without data.
pub fn crash_free(whole: i64, bad: i64) -> Option<f64> {
    (whole > 0).then(|| (1.0 - bad as f64 / whole as f64) * 100.0)
}

/// The release-health repository.
#[derive(Debug, Clone)]
pub struct Health {
    db: Arc<Db>,
}

impl Health {
    pub(crate) fn new(db: Arc<Db>) -> Health {
        Health { db }
    }

    /// Every release and environment of `project_id` with a session since `since_ms`.
    pub fn by_release(&self, project_id: i64, since_ms: i64) -> Result<Vec<ReleaseEnvHealth>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT release, environment, SUM(init), SUM(crashed), SUM(abnormal), SUM(errored), MIN(minute), MAX(minute)
             FROM rollup_sessions WHERE project_id = ?1 AND minute >= ?2 GROUP BY release, environment ORDER BY release, environment",
        )?;
        let mut rows: Vec<ReleaseEnvHealth> = stmt
            .query_map(
                params![project_id, since_ms - since_ms.rem_euclid(60_000)],
                |r| {
                    Ok(ReleaseEnvHealth {
                        release: r.get(0)?,
                        environment: r.get(1)?,
                        strategy: None,
                        sessions: r.get(2)?,
                        crashed: r.get(3)?,
                        abnormal: r.get(4)?,
                        errored: r.get(5)?,
                        users: 0,
                        users_crashed: 0,
                        first_seen: r.get(6)?,
                        last_seen: r.get(7)?,
                    })
                },
            )?
            .collect::<Result<_>>()?;
        let mut users = conn.prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN crashed > 0 THEN 1 ELSE 0 END), 0) FROM session_users
             WHERE project_id = ?1 AND release = ?2 AND environment = ?3 AND last_seen >= ?4",
        )?;
        // A release's agents share a strategy: the `strategy` tag of its events.
        let mut strategy_of = conn.prepare_cached(
            "SELECT t.value FROM events e JOIN event_tags t ON t.event_row = e.id
             WHERE e.project_id = ?1 AND e.release = ?2 AND e.timestamp >= ?3 AND t.key = 'strategy'
             GROUP BY t.value ORDER BY COUNT(*) DESC, t.value LIMIT 1",
        )?;
        for row in &mut rows {
            (row.users, row.users_crashed) = users.query_row(
                params![project_id, row.release, row.environment, since_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            row.strategy = strategy_of
                .query_row(params![project_id, row.release, since_ms], |r| r.get(0))
                .optional()?;
        }
        Ok(rows)
    }

    /// Adoption of `release` since `since_ms`: (its sessions, every release's sessions)
    /// over every project, from the per-minute rollups (one query).
    pub fn adoption(&self, release: &str, since_ms: i64) -> Result<(i64, i64)> {
        let conn = self.db.reader()?;
        conn
            .prepare_cached(
                "SELECT COALESCE(SUM(CASE WHEN release = ?1 THEN init ELSE 0 END), 0), COALESCE(SUM(init), 0)
                 FROM rollup_sessions WHERE minute >= ?2",
            )?
            .query_row(params![release, since_ms - since_ms.rem_euclid(60_000)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }

    /// [`Health::totals`] of every release at once (two queries for a whole list):
    /// release → totals. Releases without a session are absent.
    pub fn totals_by_release(&self) -> Result<std::collections::HashMap<String, ReleaseTotals>> {
        let conn = self.db.reader()?;
        let mut out: std::collections::HashMap<String, ReleaseTotals> =
            std::collections::HashMap::new();
        conn.prepare_cached(
            "SELECT release, COALESCE(SUM(init), 0), COALESCE(SUM(crashed), 0) FROM rollup_sessions GROUP BY release",
        )?
        .for_each([], |r| {
            let t = out.entry(r.get(0)?).or_default();
            (t.sessions, t.crashed) = (r.get(1)?, r.get(2)?);
            Ok(())
        })?;
        conn.prepare_cached(
            "SELECT release, COUNT(*), COALESCE(SUM(CASE WHEN crashed > 0 THEN 1 ELSE 0 END), 0) FROM session_users GROUP BY release",
        )?
        .for_each([], |r| {
            let t = out.entry(r.get(0)?).or_default();
            (t.users, t.users_crashed) = (r.get(1)?, r.get(2)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Totals of `release` over every project, environment and minute.
    pub fn totals(&self, release: &str) -> Result<ReleaseTotals> {
        let conn = self.db.reader()?;
        let (sessions, crashed) = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(init), 0), COALESCE(SUM(crashed), 0) FROM rollup_sessions WHERE release = ?1",
            )?
            .query_row([release], |x| Ok((x.get(0)?, x.get(1)?)))?;
        let (users, users_crashed) = conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN crashed > 0 THEN 1 ELSE 0 END), 0) FROM session_users WHERE release = ?1",
            )?
            .query_row([release], |x| Ok((x.get(0)?, x.get(1)?)))?;
        Ok(ReleaseTotals {
            sessions,
            crashed,
            users,
            users_crashed,
        })
    }
}
