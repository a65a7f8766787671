//! Retention: events older than the configured days, and events past a project's cap, are
//! deleted in small transactions (with their tags and spans), so no writer waits long.

use super::Result;
use super::db::Db;
use super::sql::params;
use crate::config::RetentionConfig;

/// Rows deleted per transaction.
const CHUNK: i64 = 1000;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Events (and transactions) removed for age.
    pub expired: u64,
    /// Events removed by the per-project cap.
    pub capped: u64,
    /// Profiles removed for age (`retention.profiles_days`).
    pub profiles: u64,
}

/// Delete the events matching `where_clause` a chunk per transaction, taking the writer
/// for one chunk at a time so the digest's batches slip in between.
fn delete_events(db: &Db, where_clause: &str, args: &[i64]) -> Result<u64> {
    let mut total = 0;
    loop {
        let conn = db.writer()?;
        let tx = conn.begin()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS doomed (id BIGINT PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM doomed", [])?;
        let sql = format!(
            "INSERT INTO doomed SELECT id FROM events WHERE {where_clause} ORDER BY timestamp LIMIT {CHUNK}"
        );
        let n = tx.execute(&sql, super::sql::params_from_iter(args.iter()))?;
        if n == 0 {
            tx.commit()?;
            return Ok(total);
        }
        tx.execute(
            "DELETE FROM event_tags WHERE event_row IN (SELECT id FROM doomed)",
            [],
        )?;
        tx.execute(
            "DELETE FROM spans WHERE event_row IN (SELECT id FROM doomed)",
            [],
        )?;
        tx.execute("DELETE FROM events WHERE id IN (SELECT id FROM doomed)", [])?;
        tx.commit()?;
        total += n as u64;
        if (n as i64) < CHUNK {
            return Ok(total);
        }
    }
}

impl super::Store {
    /// One retention pass at `now_ms`.
    pub fn sweep(&self, config: &RetentionConfig, now_ms: i64) -> Result<Swept> {
        sweep(&self.db, config, now_ms)
    }
}

fn sweep(db: &Db, config: &RetentionConfig, now_ms: i64) -> Result<Swept> {
    let cutoff = now_ms - i64::from(config.days) * 86_400_000;
    let mut swept = Swept {
        expired: delete_events(db, "timestamp < ?1", &[cutoff])?,
        ..Swept::default()
    };
    swept.profiles =
        super::profiles::sweep(db, now_ms - i64::from(config.profiles_days) * 86_400_000)?;
    let conn = db.writer()?;
    for table in [
        "rollup_events",
        "rollup_latency",
        "rollup_sessions",
        "rollup_tags",
        "rollup_users",
        "client_reports",
        "agent_minutes",
        "agent_stage_minutes",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE minute < ?1"), [cutoff])?;
    }
    conn.execute("DELETE FROM logs WHERE timestamp < ?1", [cutoff])?;
    conn.execute("DELETE FROM check_ins WHERE received_at < ?1", [cutoff])?;
    conn.execute("DELETE FROM digest_rejections WHERE at < ?1", [cutoff])?;
    conn.execute("DELETE FROM agents WHERE last_seen < ?1", [cutoff])?;
    conn.execute("DELETE FROM agent_trading_changes WHERE at < ?1", [cutoff])?;
    conn.execute("DELETE FROM ui_sessions WHERE expires_at < ?1", [now_ms])?;
    conn.execute(
        "DELETE FROM issue_tags WHERE issue_id IN (SELECT id FROM issues WHERE last_seen < ?1)",
        [cutoff],
    )?;
    conn.execute(
        "DELETE FROM issue_users WHERE issue_id IN (SELECT id FROM issues WHERE last_seen < ?1)",
        [cutoff],
    )?;
    conn.execute("DELETE FROM issues WHERE last_seen < ?1", [cutoff])?;
    // The cap below takes the writer a chunk at a time.
    drop(conn);
    if config.max_events_per_project > 0 {
        let conn = db.reader()?;
        let cap = i64::try_from(config.max_events_per_project).unwrap_or(i64::MAX);
        let projects: Vec<(i64, i64)> = {
            let mut stmt =
                conn.prepare("SELECT project_id, COUNT(*) FROM events GROUP BY project_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<Vec<_>>>()?
        };
        for (project, count) in projects {
            if count > cap {
                // The timestamp below which the oldest (count - cap) events lie.
                let boundary: i64 = conn.query_row(
                    "SELECT timestamp FROM events WHERE project_id = ?1 ORDER BY timestamp LIMIT 1 OFFSET ?2",
                    params![project, count - cap],
                    |r| r.get(0),
                )?;
                swept.capped += delete_events(
                    db,
                    "project_id = ?1 AND timestamp < ?2",
                    &[project, boundary],
                )?;
            }
        }
    }
    Ok(swept)
}
