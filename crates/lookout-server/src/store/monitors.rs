//! Cron and heartbeat monitors (sentry-protocol.md §6): a monitor per project and slug,
//! created or updated by the `monitor_config` sent with a check-in (or through the API),
//! one state per environment.
//!
//! * A check-in moves its environment's state: `ok` counts towards recovery, `error`
//!   towards failure; `in_progress` only marks a run as started.
//! * On each clock tick: an environment whose next check-in is overdue by more than
//!   `checkin_margin` minutes gets a `missed` check-in (only after a first check-in); an
//!   `in_progress` check-in older than `max_runtime` minutes becomes `timeout`.
//! * `failure_issue_threshold` consecutive failures open an issue (`Monitor failure: …`);
//!   `recovery_threshold` consecutive successes resolve it.

use super::sql::{Conn, OptionalExtension, params};
use super::{Result, StoreError};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use std::str::FromStr;

/// A monitor's schedule and thresholds, as Sentry's `monitor_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// `crontab` or `interval`.
    pub schedule: Schedule,
    /// Minutes of grace after the expected time.
    pub checkin_margin: i64,
    /// Minutes an `in_progress` run may take.
    pub max_runtime: i64,
    /// IANA time zone of a crontab.
    pub timezone: String,
    /// Consecutive failures that open an issue.
    pub failure_issue_threshold: i64,
    /// Consecutive successes that resolve it.
    pub recovery_threshold: i64,
}

/// When check-ins are expected.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A 5-field crontab.
    Crontab(String),
    /// Every `n` units.
    Interval(i64, String),
}

impl MonitorConfig {
    /// Parse Sentry's `monitor_config` JSON; the error names the field.
    pub fn parse(v: &Value) -> std::result::Result<MonitorConfig, String> {
        let mut schedule = v.get("schedule").ok_or("schedule is required")?;
        // The SDKs send `{"type": "crontab", "value": "0 * * * *"}` or
        // `{"type": "interval", "value": 1, "unit": "minute"}`; the API `schedule_type` +
        // `schedule`.
        let object_type = schedule.get("type").and_then(Value::as_str);
        if object_type == Some("crontab") {
            schedule = schedule
                .get("value")
                .ok_or("schedule: crontab value is required")?;
        }
        let kind = v
            .get("schedule_type")
            .and_then(Value::as_str)
            .or(object_type)
            .unwrap_or(if schedule.is_array() {
                "interval"
            } else {
                "crontab"
            });
        let schedule = match (kind, schedule) {
            ("crontab", Value::String(c)) => {
                cron_schedule(c).map_err(|e| format!("schedule: {e}"))?;
                Schedule::Crontab(c.clone())
            }
            ("interval", Value::Array(a)) if a.len() == 2 => {
                let n = a[0]
                    .as_i64()
                    .filter(|n| *n > 0)
                    .ok_or("schedule: interval must be a positive integer")?;
                let unit = a[1].as_str().unwrap_or_default().to_owned();
                if unit_ms(&unit).is_none() {
                    return Err(format!("schedule: unknown interval unit {unit:?}"));
                }
                Schedule::Interval(n, unit)
            }
            ("interval", Value::Object(o)) => {
                let n = o
                    .get("value")
                    .and_then(Value::as_i64)
                    .filter(|n| *n > 0)
                    .ok_or("schedule: interval must be a positive integer")?;
                let unit = o
                    .get("unit")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if unit_ms(&unit).is_none() {
                    return Err(format!("schedule: unknown interval unit {unit:?}"));
                }
                Schedule::Interval(n, unit)
            }
            _ => return Err("schedule: expected a crontab string or [n, unit]".into()),
        };
        let int = |k: &str, default: i64| -> std::result::Result<i64, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or(format!("{k} must be a non-negative integer")),
            }
        };
        let timezone = v
            .get("timezone")
            .and_then(Value::as_str)
            .unwrap_or("UTC")
            .to_owned();
        if chrono_tz::Tz::from_str(&timezone).is_err() {
            return Err(format!("timezone: unknown time zone {timezone:?}"));
        }
        Ok(MonitorConfig {
            schedule,
            checkin_margin: int("checkin_margin", 1)?.max(1),
            max_runtime: int("max_runtime", 30)?.max(1),
            timezone,
            failure_issue_threshold: int("failure_issue_threshold", 1)?.max(1),
            recovery_threshold: int("recovery_threshold", 1)?.max(1),
        })
    }

    /// As Sentry shows it.
    pub fn to_json(&self) -> Value {
        let (kind, schedule) = match &self.schedule {
            Schedule::Crontab(c) => ("crontab", json!(c)),
            Schedule::Interval(n, u) => ("interval", json!([n, u])),
        };
        json!({
            "schedule_type": kind, "schedule": schedule, "checkin_margin": self.checkin_margin,
            "max_runtime": self.max_runtime, "timezone": self.timezone,
            "failure_issue_threshold": self.failure_issue_threshold, "recovery_threshold": self.recovery_threshold,
        })
    }

    /// The first expected check-in strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.schedule {
            Schedule::Interval(n, unit) => Some(after_ms + n * unit_ms(unit)?),
            Schedule::Crontab(c) => {
                let sched = cron_schedule(c).ok()?;
                let tz = chrono_tz::Tz::from_str(&self.timezone).ok()?;
                let after = tz.timestamp_millis_opt(after_ms).single()?;
                sched
                    .after(&after)
                    .next()
                    .map(|t| t.with_timezone(&Utc).timestamp_millis())
            }
        }
    }
}

fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit.trim_end_matches('s') {
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 604_800_000,
        "month" => 30 * 86_400_000,
        "year" => 365 * 86_400_000,
        _ => return None,
    })
}

/// A 5-field crontab as the `cron` crate's 6-field form (seconds first).
fn cron_schedule(c: &str) -> std::result::Result<cron::Schedule, String> {
    let fields = c.split_whitespace().count();
    if fields != 5 {
        return Err(format!("expected 5 crontab fields, got {fields}"));
    }
    cron::Schedule::from_str(&format!("0 {c}")).map_err(|e| e.to_string())
}

/// One check-in as the digest hands it over.
#[derive(Debug, Clone)]
pub struct CheckIn<'a> {
    /// The project it belongs to.
    pub project_id: i64,
    /// Check-in id (hex).
    pub check_in_id: &'a str,
    /// The URL-safe name.
    pub slug: &'a str,
    /// The environment of the check-in.
    pub environment: &'a str,
    /// in_progress, ok, error.
    pub status: &'a str,
    /// The `monitor_config` JSON, if sent.
    pub config: Option<&'a str>,
    /// When it happened (ms since the epoch).
    pub at: i64,
}

/// Create or update the monitor of a check-in from its config. `None`: no such monitor
/// and no config to create it from.
pub(crate) fn upsert_from_check_in(
    conn: &Conn,
    c: &CheckIn<'_>,
) -> Result<Option<(i64, MonitorConfig)>> {
    let existing: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, config FROM monitors WHERE project_id = ?1 AND slug = ?2",
            params![c.project_id, c.slug],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let sent = c
        .config
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| MonitorConfig::parse(&v).ok());
    match (existing, sent) {
        (Some((id, _)), Some(cfg)) => {
            conn.execute(
                "UPDATE monitors SET config = ?2 WHERE id = ?1",
                params![id, cfg.to_json().to_string()],
            )?;
            Ok(Some((id, cfg)))
        }
        (Some((id, stored)), None) => {
            let cfg = serde_json::from_str::<Value>(&stored)
                .ok()
                .and_then(|v| MonitorConfig::parse(&v).ok());
            Ok(cfg.map(|cfg| (id, cfg)))
        }
        (None, Some(cfg)) => {
            let id: i64 = conn.query_row(
                "INSERT INTO monitors (project_id, slug, name, status, config, date_created) VALUES (?1, ?2, ?2, 'active', ?3, ?4) RETURNING id",
                params![c.project_id, c.slug, cfg.to_json().to_string(), c.at],
                |r| r.get(0),
            )?;
            Ok(Some((id, cfg)))
        }
        (None, None) => Ok(None),
    }
}

/// Apply one check-in to its monitor's environment state (inside the digest transaction).
pub(crate) fn apply_check_in(conn: &Conn, c: &CheckIn<'_>) -> Result<()> {
    let Some((monitor, cfg)) = upsert_from_check_in(conn, c)? else {
        return Ok(());
    };
    let disabled: bool = conn.query_row(
        "SELECT status = 'disabled' FROM monitors WHERE id = ?1",
        [monitor],
        |r| r.get(0),
    )?;
    if disabled {
        return Ok(());
    }
    ensure_env(conn, monitor, c.environment)?;
    let next = cfg.next_after(c.at);
    let latest = next.map(|n| n + cfg.checkin_margin * 60_000);
    match c.status {
        "in_progress" => {
            conn.execute(
                "UPDATE monitor_environments SET last_checkin = ?3, next_checkin = ?4, next_checkin_latest = ?5,
                    status = CASE WHEN status = 'new' THEN 'active' ELSE status END
                 WHERE monitor_id = ?1 AND environment = ?2",
                params![monitor, c.environment, c.at, next, latest],
            )?;
        }
        "ok" => {
            conn.execute(
                "UPDATE monitor_environments SET last_checkin = ?3, next_checkin = ?4, next_checkin_latest = ?5,
                    status = 'ok', successes = successes + 1, failures = 0
                 WHERE monitor_id = ?1 AND environment = ?2",
                params![monitor, c.environment, c.at, next, latest],
            )?;
            maybe_recover(conn, monitor, c.environment, &cfg, c.at)?;
        }
        _ => {
            conn.execute(
                "UPDATE monitor_environments SET last_checkin = ?3, next_checkin = ?4, next_checkin_latest = ?5,
                    status = 'error', failures = failures + 1, successes = 0
                 WHERE monitor_id = ?1 AND environment = ?2",
                params![monitor, c.environment, c.at, next, latest],
            )?;
            maybe_fail(conn, monitor, c.environment, &cfg, "error", c.at)?;
        }
    }
    Ok(())
}

fn ensure_env(conn: &Conn, monitor: i64, env: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO monitor_environments (monitor_id, environment, status) VALUES (?1, ?2, 'new') ON CONFLICT DO NOTHING",
        params![monitor, env],
    )?;
    Ok(())
}

fn maybe_fail(
    conn: &Conn,
    monitor: i64,
    env: &str,
    cfg: &MonitorConfig,
    reason: &str,
    at: i64,
) -> Result<()> {
    let (failures, issue): (i64, Option<i64>) = conn.query_row(
        "SELECT failures, issue_id FROM monitor_environments WHERE monitor_id = ?1 AND environment = ?2",
        params![monitor, env],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if failures < cfg.failure_issue_threshold {
        return Ok(());
    }
    let (project, slug): (i64, String) = conn.query_row(
        "SELECT project_id, slug FROM monitors WHERE id = ?1",
        [monitor],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let hash = format!("monitor:{monitor}:{env}");
    let title = format!("Monitor failure: {slug} ({env})");
    let existing: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, status FROM issues WHERE project_id = ?1 AND hash = ?2",
            params![project, hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let id = match existing {
        Some((id, status)) => {
            conn.execute(
                "UPDATE issues SET last_seen = ?2, times_seen = times_seen + 1, culprit = ?3,
                    status = 'unresolved', regressed_at = CASE WHEN ?4 = 'resolved' THEN ?2 ELSE regressed_at END, resolved_at = NULL
                 WHERE id = ?1",
                params![id, at, reason, status],
            )?;
            id
        }
        None => {
            let seq: i64 = conn.query_row(
                "SELECT COALESCE(MAX(short_seq), 0) + 1 FROM issues WHERE project_id = ?1",
                [project],
                |r| r.get(0),
            )?;
            conn.query_row(
                "INSERT INTO issues (project_id, short_seq, hash, title, culprit, level, kind, metadata, status, first_seen, last_seen, times_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'error', 'monitor', ?6, 'unresolved', ?7, ?7, 1) RETURNING id",
                params![project, seq, hash, title, reason, json!({"type": "MonitorFailure", "value": reason, "monitor": slug}).to_string(), at],
                |r| r.get(0),
            )?
        }
    };
    if issue != Some(id) {
        conn.execute(
            "UPDATE monitor_environments SET issue_id = ?3 WHERE monitor_id = ?1 AND environment = ?2",
            params![monitor, env, id],
        )?;
    }
    Ok(())
}

fn maybe_recover(conn: &Conn, monitor: i64, env: &str, cfg: &MonitorConfig, at: i64) -> Result<()> {
    let (successes, issue): (i64, Option<i64>) = conn.query_row(
        "SELECT successes, issue_id FROM monitor_environments WHERE monitor_id = ?1 AND environment = ?2",
        params![monitor, env],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if let Some(issue) = issue
        && successes >= cfg.recovery_threshold
    {
        conn.execute(
            "UPDATE issues SET status = 'resolved', resolved_at = ?2 WHERE id = ?1 AND status = 'unresolved'",
            params![issue, at],
        )?;
        conn.execute(
            "UPDATE monitor_environments SET issue_id = NULL WHERE monitor_id = ?1 AND environment = ?2",
            params![monitor, env],
        )?;
    }
    Ok(())
}

/// Whether `agent`'s latest session in `project` ended cleanly (`exited`).
fn stopped_cleanly(conn: &Conn, project: i64, agent: &str) -> Result<bool> {
    let status: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT session_status FROM agents WHERE project_id = ?1 AND agent_id = ?2",
        )?
        .query_row(params![project, agent], |r| r.get(0))
        .optional()?;
    Ok(status.flatten().as_deref() == Some("exited"))
}

/// Missed and timed-out check-ins as of `now` (the clock tick).
pub(super) fn tick(conn: &Conn, now: i64) -> Result<()> {
    // Timeouts: runs still in progress past max_runtime.
    let running: Vec<(i64, String, i64, String, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT c.id, c.environment, m.id, m.config, c.received_at FROM check_ins c
             JOIN monitors m ON m.project_id = c.project_id AND m.slug = c.monitor_slug
             WHERE c.status = 'in_progress' AND m.status = 'active'",
        )?;
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_>>()?
    };
    for (row, env, monitor, config, started) in running {
        let Some(cfg) = serde_json::from_str::<Value>(&config)
            .ok()
            .and_then(|v| MonitorConfig::parse(&v).ok())
        else {
            continue;
        };
        if now - started <= cfg.max_runtime * 60_000 {
            continue;
        }
        conn.execute(
            "UPDATE check_ins SET status = 'timeout', updated_at = ?2 WHERE id = ?1",
            params![row, now],
        )?;
        ensure_env(conn, monitor, &env)?;
        conn.execute(
            "UPDATE monitor_environments SET status = 'timeout', failures = failures + 1, successes = 0
             WHERE monitor_id = ?1 AND environment = ?2",
            params![monitor, env],
        )?;
        maybe_fail(conn, monitor, &env, &cfg, "timeout", now)?;
    }
    // Missed: overdue past the margin, only once a first check-in was seen.
    let overdue: Vec<(i64, String, i64, String, String, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT m.id, e.environment, m.project_id, m.slug, m.config, e.next_checkin FROM monitor_environments e
             JOIN monitors m ON m.id = e.monitor_id
             WHERE m.status = 'active' AND e.last_checkin IS NOT NULL AND e.next_checkin_latest IS NOT NULL AND e.next_checkin_latest < ?1",
        )?;
        stmt.query_map([now], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_>>()?
    };
    for (monitor, env, project, slug, config, expected) in overdue {
        let Some(cfg) = serde_json::from_str::<Value>(&config)
            .ok()
            .and_then(|v| MonitorConfig::parse(&v).ok())
        else {
            continue;
        };
        // An agent that ended its session cleanly is stopped, not silent: its heartbeat
        // monitor waits for the next check-in instead of counting misses.
        if let Some(agent) = super::agents::agent_of_monitor(&slug)
            && stopped_cleanly(conn, project, agent)?
        {
            conn.execute(
                "UPDATE monitor_environments SET next_checkin = NULL, next_checkin_latest = NULL
                 WHERE monitor_id = ?1 AND environment = ?2",
                params![monitor, env],
            )?;
            continue;
        }
        conn.execute(
            "INSERT INTO check_ins (project_id, check_in_id, monitor_slug, environment, status, duration_ms, release, monitor_config, received_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'missed', NULL, NULL, NULL, ?5, ?6)",
            params![project, uuid::Uuid::new_v4().simple().to_string(), slug, env, expected, now],
        )?;
        // The next expected check-in after now, so one outage is one miss per period.
        let next = cfg.next_after(now.max(expected));
        conn.execute(
            "UPDATE monitor_environments SET status = 'missed_checkin', failures = failures + 1, successes = 0,
                next_checkin = ?3, next_checkin_latest = ?4
             WHERE monitor_id = ?1 AND environment = ?2",
            params![monitor, env, next, next.map(|n| n + cfg.checkin_margin * 60_000)],
        )?;
        maybe_fail(conn, monitor, &env, &cfg, "missed_checkin", now)?;
    }
    Ok(())
}

/// (environment, status, last check-in, next expected, next latest) in ms.
pub type EnvState = (String, String, Option<i64>, Option<i64>, Option<i64>);

/// (check-in id, status, duration ms, environment, received ms).
pub type CheckInRow = (String, String, Option<f64>, String, i64);

/// A monitor as the API shows it.
#[derive(Debug, Clone)]
pub struct MonitorRow {
    /// The monitor's id.
    pub id: i64,
    /// Its project's slug.
    pub project_slug: String,
    /// The URL-safe name.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// active or disabled.
    pub status: String,
    /// Config JSON.
    pub config: Value,
    /// When it was created (ms since the epoch).
    pub date_created: i64,
    /// (environment, status, last check-in, next, next latest).
    pub environments: Vec<EnvState>,
}

/// Monitors of an organisation (one slug, or all).
fn list(conn: &Conn, org: &str, slug: Option<&str>) -> Result<Vec<MonitorRow>> {
    let mut stmt = conn.prepare(
        "SELECT m.id, p.slug, m.slug, m.name, m.status, m.config, m.date_created FROM monitors m
         JOIN projects p ON p.id = m.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND (?2 IS NULL OR m.slug = ?2) ORDER BY m.slug",
    )?;
    let mut out: Vec<MonitorRow> = stmt
        .query_map(params![org, slug], |r| {
            Ok(MonitorRow {
                id: r.get(0)?,
                project_slug: r.get(1)?,
                slug: r.get(2)?,
                name: r.get(3)?,
                status: r.get(4)?,
                config: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(Value::Null),
                date_created: r.get(6)?,
                environments: Vec::new(),
            })
        })?
        .collect::<Result<_>>()?;
    let mut envs = conn.prepare(
        "SELECT environment, status, last_checkin, next_checkin, next_checkin_latest FROM monitor_environments WHERE monitor_id = ?1 ORDER BY environment",
    )?;
    for m in &mut out {
        m.environments = envs
            .query_map([m.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_>>()?;
    }
    Ok(out)
}

/// Create or replace a monitor through the API.
fn put(
    conn: &Conn,
    project_id: i64,
    slug: &str,
    name: &str,
    status: &str,
    cfg: &MonitorConfig,
) -> Result<()> {
    conn.execute(
        "INSERT INTO monitors (project_id, slug, name, status, config, date_created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (project_id, slug) DO UPDATE SET name = excluded.name, status = excluded.status, config = excluded.config",
        params![project_id, slug, name, status, cfg.to_json().to_string(), chrono::Utc::now().timestamp_millis()],
    )?;
    Ok(())
}

/// Delete a monitor of an organisation with its states.
fn delete(conn: &Conn, org: &str, slug: &str) -> Result<()> {
    let ids: Vec<i64> = {
        let mut stmt = conn.prepare(
            "SELECT m.id FROM monitors m JOIN projects p ON p.id = m.project_id JOIN organizations o ON o.id = p.org_id WHERE o.slug = ?1 AND m.slug = ?2",
        )?;
        stmt.query_map(params![org, slug], |r| r.get(0))?
            .collect::<Result<_>>()?
    };
    if ids.is_empty() {
        return Err(StoreError::NotFound(format!("monitor {slug}")));
    }
    for id in ids {
        conn.execute(
            "DELETE FROM monitor_environments WHERE monitor_id = ?1",
            [id],
        )?;
        conn.execute("DELETE FROM monitors WHERE id = ?1", [id])?;
    }
    Ok(())
}

/// Recent check-ins of a monitor: (id, status, duration ms, environment, received).
fn check_ins(conn: &Conn, org: &str, slug: &str, limit: i64) -> Result<Vec<CheckInRow>> {
    let mut stmt = conn.prepare(
        "SELECT c.check_in_id, c.status, c.duration_ms, c.environment, c.received_at FROM check_ins c
         JOIN projects p ON p.id = c.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND c.monitor_slug = ?2 ORDER BY c.received_at DESC, c.id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![org, slug, limit], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    rows.collect::<Result<_>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let c = MonitorConfig::parse(
            &json!({"schedule_type": "interval", "schedule": [5, "minute"], "checkin_margin": 2}),
        )
        .unwrap();
        assert_eq!(c.next_after(0), Some(300_000));
        assert_eq!(c.checkin_margin, 2);
        let c = MonitorConfig::parse(&json!({"schedule": "0 * * * *"})).unwrap();
        // 00:30 UTC → 01:00 UTC.
        assert_eq!(c.next_after(1_800_000), Some(3_600_000));
        let c =
            MonitorConfig::parse(&json!({"schedule": "0 9 * * *", "timezone": "Europe/Berlin"}))
                .unwrap();
        // 1970-01-01 09:00 in Berlin (UTC+1) is 08:00 UTC.
        assert_eq!(c.next_after(0), Some(8 * 3_600_000));
        assert!(
            MonitorConfig::parse(&json!({"schedule": "bad"}))
                .unwrap_err()
                .starts_with("schedule")
        );
        assert!(MonitorConfig::parse(&json!({"schedule": [1, "fortnight"]})).is_err());
        // The SDKs' object forms.
        let c =
            MonitorConfig::parse(&json!({"schedule": {"type": "crontab", "value": "*/5 * * * *"}}))
                .unwrap();
        assert_eq!(c.schedule, Schedule::Crontab("*/5 * * * *".into()));
        let c = MonitorConfig::parse(
            &json!({"schedule": {"type": "interval", "value": 2, "unit": "hour"}}),
        )
        .unwrap();
        assert_eq!(c.schedule, Schedule::Interval(2, "hour".into()));
        assert!(
            MonitorConfig::parse(&json!({"schedule": "* * * * *", "timezone": "Mars/Base"}))
                .unwrap_err()
                .contains("timezone")
        );
    }
}

/// The monitors repository: cron and heartbeat monitors and their check-ins.
#[derive(Debug, Clone)]
pub struct Monitors {
    db: std::sync::Arc<super::db::Db>,
}

impl Monitors {
    pub(crate) fn new(db: std::sync::Arc<super::db::Db>) -> Monitors {
        Monitors { db }
    }

    /// The monitors of organisation `org` (one, when `slug` is given), with the state of
    /// each environment.
    pub fn list(&self, org: &str, slug: Option<&str>) -> Result<Vec<MonitorRow>> {
        list(&*self.db.reader()?, org, slug)
    }

    /// The latest `limit` check-ins of a monitor, newest first.
    pub fn check_ins(&self, org: &str, slug: &str, limit: i64) -> Result<Vec<CheckInRow>> {
        check_ins(&*self.db.reader()?, org, slug, limit)
    }

    /// Create or replace monitor `slug` of organisation `org` in `project` (a slug; when
    /// absent, the project the monitor already belongs to), and return it as listed.
    pub fn save(
        &self,
        org: &str,
        project: Option<&str>,
        slug: &str,
        name: &str,
        status: &str,
        config: &MonitorConfig,
    ) -> Result<MonitorRow> {
        self.db.write(|tx| {
            let project_id: Option<i64> = tx
                .query_row(
                    "SELECT p.id FROM projects p JOIN organizations o ON o.id = p.org_id
                     WHERE o.slug = ?1 AND (p.slug = ?2 OR (?2 IS NULL AND p.id = (SELECT m.project_id FROM monitors m JOIN projects p2 ON p2.id = m.project_id JOIN organizations o2 ON o2.id = p2.org_id WHERE o2.slug = ?1 AND m.slug = ?3)))
                     ORDER BY p.id LIMIT 1",
                    params![org, project, slug],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(project_id) = project_id else {
                return Err(StoreError::Invalid(
                    "project: a valid project slug is required".into(),
                ));
            };
            put(tx, project_id, slug, name, status, config)?;
            list(tx, org, Some(slug))?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NotFound(format!("monitor {slug}")))
        })
    }

    /// Delete monitor `slug` of organisation `org` and its check-ins.
    pub fn delete(&self, org: &str, slug: &str) -> Result<()> {
        delete(&*self.db.writer()?, org, slug)
    }

    /// Mark missed and timed-out check-ins as of `now` (the clock tick).
    pub fn tick(&self, now: i64) -> Result<()> {
        self.db.write(|tx| tick(tx, now))
    }
}
