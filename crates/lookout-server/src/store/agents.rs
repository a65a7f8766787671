//! Agents as the digest sees them: one row per agent (from the `agent_id` tag of its events
//! and transactions, the distinct id of its sessions, and its `agent-<id>-heartbeat`
//! monitor), with per-minute counts and `order.pipeline` latency, so the agents overview
//! reads a few rows per agent whatever the number of events stored.

use super::Result;
use super::records::{Batch, is_failure};
use lookout_protocol::sketch::DDSketch;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;

const MINUTE_MS: i64 = 60_000;

/// The transaction whose latency and failures the overview shows per agent.
pub const PIPELINE: &str = "order.pipeline";

/// An agent seen longer ago than this, with no session or heartbeat saying otherwise, is
/// `silent`.
pub const SILENT_AFTER_MS: i64 = 10 * MINUTE_MS;

#[derive(Default)]
struct Seen {
    strategy: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    first: i64,
    last: i64,
    last_error: Option<i64>,
    session: Option<(i64, String)>,
}

#[derive(Default)]
struct Minute {
    events: i64,
    errors: i64,
    cycles: i64,
    failed: i64,
    sketch: Option<DDSketch>,
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

impl Seen {
    fn touch(&mut self, at: i64) {
        if self.first == 0 || at < self.first {
            self.first = at;
        }
        self.last = self.last.max(at);
    }
}

/// The agent a heartbeat monitor slug belongs to (`agent-<id>-heartbeat`).
pub fn agent_of_monitor(slug: &str) -> Option<&str> {
    slug.strip_prefix("agent-")?
        .strip_suffix("-heartbeat")
        .filter(|s| !s.is_empty())
}

/// The agent a session's distinct id names: the agent library sends the agent id as the
/// user id, which the SDK puts in `did` as is.
pub fn agent_of_did(did: &str) -> &str {
    did.strip_prefix("id:").unwrap_or(did)
}

/// Keep `agents` and `agent_minutes` up to date with what `batch` says, inside the batch's
/// transaction.
pub(super) fn apply(tx: &Transaction<'_>, batch: &Batch) -> Result<()> {
    let mut agents: HashMap<(i64, String), Seen> = HashMap::new();
    let mut minutes: HashMap<(i64, String, i64), Minute> = HashMap::new();
    let mut seen_at = |project: i64,
                       agent: &str,
                       at: i64,
                       tags: &[(String, String)],
                       release: &Option<String>,
                       environment: &Option<String>| {
        let s = agents.entry((project, agent.to_owned())).or_default();
        s.touch(at);
        if at >= s.last {
            if let Some(v) = tag(tags, "strategy") {
                s.strategy = Some(v.to_owned());
            }
            if release.is_some() {
                s.release.clone_from(release);
            }
            if environment.is_some() {
                s.environment.clone_from(environment);
            }
        }
    };
    for e in &batch.events {
        let Some(agent) = tag(&e.tags, "agent_id") else {
            continue;
        };
        seen_at(
            e.project_id,
            agent,
            e.timestamp_ms,
            &e.tags,
            &e.release,
            &e.environment,
        );
        let m = minutes
            .entry((
                e.project_id,
                agent.to_owned(),
                e.timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            ))
            .or_default();
        m.events += 1;
        if matches!(e.level.as_str(), "error" | "fatal") {
            m.errors += 1;
        }
    }
    for t in &batch.transactions {
        let Some(agent) = tag(&t.tags, "agent_id") else {
            continue;
        };
        seen_at(
            t.project_id,
            agent,
            t.timestamp_ms,
            &t.tags,
            &t.release,
            &t.environment,
        );
        let m = minutes
            .entry((
                t.project_id,
                agent.to_owned(),
                t.timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            ))
            .or_default();
        m.events += 1;
        if t.name == PIPELINE || t.op == PIPELINE {
            m.cycles += 1;
            if is_failure(&t.status) {
                m.failed += 1;
            }
            m.sketch
                .get_or_insert_with(DDSketch::new)
                .add(t.duration_ms.max(0.0));
        }
    }
    for e in &batch.events {
        if let Some(agent) = tag(&e.tags, "agent_id")
            && matches!(e.level.as_str(), "error" | "fatal")
            && let Some(s) = agents.get_mut(&(e.project_id, agent.to_owned()))
        {
            s.last_error = Some(s.last_error.unwrap_or(0).max(e.timestamp_ms));
        }
    }
    // The agent a session belongs to, as the sessions table resolved it (its events' tag,
    // else its distinct id), also for an update that names neither.
    let mut agent_of_session = tx.prepare_cached(
        "SELECT agent FROM sessions WHERE project_id = ?1 AND sid = ?2 AND agent IS NOT NULL",
    )?;
    for s in &batch.sessions {
        let Some(agent) = agent_of_session
            .query_row(params![s.project_id, s.sid], |r| r.get::<_, String>(0))
            .optional()?
        else {
            continue;
        };
        let agent = agent.as_str();
        let entry = agents.entry((s.project_id, agent.to_owned())).or_default();
        entry.touch(s.timestamp_ms);
        entry.release = Some(s.release.clone());
        entry.environment = Some(s.environment.clone());
        if entry
            .session
            .as_ref()
            .is_none_or(|(at, _)| s.timestamp_ms >= *at)
        {
            entry.session = Some((s.timestamp_ms, s.status.clone()));
        }
    }
    for c in &batch.check_ins {
        if let Some(agent) = agent_of_monitor(&c.monitor_slug) {
            let entry = agents.entry((c.project_id, agent.to_owned())).or_default();
            entry.touch(c.received_ms);
            if c.release.is_some() {
                entry.release.clone_from(&c.release);
            }
        }
    }
    if agents.is_empty() {
        return Ok(());
    }
    let mut upsert = tx.prepare_cached(
            "INSERT INTO agents (project_id, agent_id, strategy, release, environment, first_seen, last_seen, last_error, session_status, session_updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT DO UPDATE SET
               strategy = CASE WHEN excluded.last_seen >= last_seen THEN COALESCE(excluded.strategy, strategy) ELSE strategy END,
               release = CASE WHEN excluded.last_seen >= last_seen THEN COALESCE(excluded.release, release) ELSE release END,
               environment = CASE WHEN excluded.last_seen >= last_seen THEN COALESCE(excluded.environment, environment) ELSE environment END,
               first_seen = MIN(first_seen, excluded.first_seen),
               last_seen = MAX(last_seen, excluded.last_seen),
               last_error = MAX(COALESCE(last_error, 0), COALESCE(excluded.last_error, 0)),
               session_status = CASE WHEN excluded.session_updated IS NOT NULL AND excluded.session_updated >= COALESCE(session_updated, 0)
                                     THEN excluded.session_status ELSE session_status END,
               session_updated = MAX(COALESCE(session_updated, 0), COALESCE(excluded.session_updated, 0))",
        )?;
    for ((project, agent), s) in &agents {
        let (session_at, session_status) = match &s.session {
            Some((at, st)) => (Some(*at), Some(st.as_str())),
            None => (None, None),
        };
        upsert.execute(params![
            project,
            agent,
            s.strategy,
            s.release,
            s.environment,
            s.first,
            s.last,
            s.last_error,
            session_status,
            session_at
        ])?;
    }
    let mut read_sketch = tx.prepare_cached(
        "SELECT sketch FROM agent_minutes WHERE project_id = ?1 AND agent_id = ?2 AND minute = ?3",
    )?;
    let mut upsert_minute = tx.prepare_cached(
            "INSERT INTO agent_minutes (project_id, agent_id, minute, events, errors, cycles, failed_cycles, sketch)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT DO UPDATE SET events = events + excluded.events, errors = errors + excluded.errors,
               cycles = cycles + excluded.cycles, failed_cycles = failed_cycles + excluded.failed_cycles,
               sketch = COALESCE(excluded.sketch, sketch)",
        )?;
    for ((project, agent, minute), m) in minutes {
        let sketch = match m.sketch {
            Some(mut sk) => {
                let old: Option<Option<Vec<u8>>> = read_sketch
                    .query_row(params![project, agent, minute], |r| r.get(0))
                    .optional()?;
                if let Some(Some(bytes)) = old
                    && let Ok(prev) = DDSketch::from_bytes(&bytes)
                {
                    sk.merge(&prev);
                }
                Some(sk.to_bytes())
            }
            None => None,
        };
        upsert_minute.execute(params![
            project, agent, minute, m.events, m.errors, m.cycles, m.failed, sketch
        ])?;
    }
    Ok(())
}

/// What the overview shows of one agent.
#[derive(Debug, Clone)]
pub struct AgentRow {
    /// The project it belongs to.
    pub project_id: i64,
    /// Its project's slug.
    pub project_slug: String,
    /// Agent id.
    pub agent_id: String,
    /// Strategy tag of its latest event.
    pub strategy: Option<String>,
    /// Release of its latest event or session.
    pub release: Option<String>,
    /// The environment its events name, if any.
    pub environment: Option<String>,
    /// When its first event happened (ms since the epoch).
    pub first_seen: i64,
    /// ms: last event, session update or heartbeat.
    pub last_seen: i64,
    /// Status of its latest session update.
    pub session_status: Option<String>,
    /// When its latest session last reported (ms since the epoch).
    pub session_updated: Option<i64>,
    /// Heartbeat monitor status (`ok`, `error`, `missed`, `timeout`…), if it has one.
    pub heartbeat_status: Option<String>,
    /// ms of the last heartbeat.
    pub last_heartbeat: Option<i64>,
    /// `healthy`, `hung`, `crashed`, `silent`, or `stopped` (its session ended cleanly).
    pub status: &'static str,
    /// Crash-free sessions over the last 24 h, % (None without sessions).
    pub crash_free: Option<f64>,
    /// Error events over the last hour.
    pub errors_1h: i64,
    /// Events over the last hour.
    pub events_1h: i64,
    /// `order.pipeline` runs over the last hour.
    pub cycles_1h: i64,
    /// Failed `order.pipeline` runs over the last hour.
    pub failed_cycles_1h: i64,
    /// p99 of `order.pipeline` over the last hour, ms.
    pub p99_ms: Option<f64>,
    /// Unresolved issues with this agent's tag.
    pub open_issues: i64,
}

impl AgentRow {
    /// Error events per hundred events over the last hour.
    pub fn error_rate(&self) -> Option<f64> {
        (self.events_1h > 0).then(|| self.errors_1h as f64 * 100.0 / self.events_1h as f64)
    }
}

/// The status the overview gives an agent at `now`: `crashed` when its latest session
/// crashed, `hung` when it ended abnormally (the watchdog) or its heartbeat is missed or
/// timed out while its session is still open, `stopped` when its latest session ended
/// cleanly, `silent` when nothing was heard for [`SILENT_AFTER_MS`], else `healthy`.
pub fn status_of(
    session_status: Option<&str>,
    heartbeat: Option<&str>,
    last_seen: i64,
    now: i64,
) -> &'static str {
    match session_status {
        Some("crashed") => return "crashed",
        Some("abnormal") => return "hung",
        // Ended its session cleanly: stopped on purpose, whatever its heartbeat says.
        Some("exited") => return "stopped",
        _ => {}
    }
    match heartbeat {
        Some("missed_checkin" | "missed" | "timeout" | "error") if session_status == Some("ok") => {
            "hung"
        }
        Some("missed_checkin" | "missed" | "timeout" | "error") => "silent",
        _ if now - last_seen > SILENT_AFTER_MS => "silent",
        _ => "healthy",
    }
}

/// The agents repository.
#[derive(Debug, Clone)]
pub struct Agents {
    db: std::sync::Arc<super::db::Db>,
}

impl Agents {
    pub(crate) fn new(db: std::sync::Arc<super::db::Db>) -> Agents {
        Agents { db }
    }

    /// Every agent of organisation `org` as of `now`, worst status first, then by id.
    pub fn list(&self, org: &str, now: i64) -> Result<Vec<AgentRow>> {
        list(&*self.db.reader()?, org, now)
    }
}

/// Every agent of organisation `org`, worst status first, then by id.
fn list(conn: &Connection, org: &str, now: i64) -> Result<Vec<AgentRow>> {
    let hour_ago = now - 60 * MINUTE_MS;
    let day_ago = now - 24 * 60 * MINUTE_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT a.project_id, p.slug, a.agent_id, a.strategy, a.release, a.environment, a.first_seen, a.last_seen,
                a.session_status, a.session_updated
         FROM agents a JOIN projects p ON p.id = a.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 ORDER BY a.agent_id LIMIT 500",
    )?;
    let base: Vec<AgentRow> = stmt
        .query_map([org], |r| {
            Ok(AgentRow {
                project_id: r.get(0)?,
                project_slug: r.get(1)?,
                agent_id: r.get(2)?,
                strategy: r.get(3)?,
                release: r.get(4)?,
                environment: r.get(5)?,
                first_seen: r.get(6)?,
                last_seen: r.get(7)?,
                session_status: r.get(8)?,
                session_updated: r.get(9)?,
                heartbeat_status: None,
                last_heartbeat: None,
                status: "healthy",
                crash_free: None,
                errors_1h: 0,
                events_1h: 0,
                cycles_1h: 0,
                failed_cycles_1h: 0,
                p99_ms: None,
                open_issues: 0,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut heartbeat = conn.prepare_cached(
        "SELECT me.status, me.last_checkin FROM monitors m JOIN monitor_environments me ON me.monitor_id = m.id
         WHERE m.project_id = ?1 AND m.slug = ?2 ORDER BY me.last_checkin DESC LIMIT 1",
    )?;
    let mut minutes = conn.prepare_cached(
        "SELECT events, errors, cycles, failed_cycles, sketch FROM agent_minutes
         WHERE project_id = ?1 AND agent_id = ?2 AND minute >= ?3",
    )?;
    let mut sessions = conn.prepare_cached(
        "SELECT COUNT(*), COALESCE(SUM(status = 'crashed'), 0) FROM sessions
         WHERE project_id = ?1 AND agent = ?2 AND started >= ?3",
    )?;
    let mut open = conn.prepare_cached(
        "SELECT COUNT(*) FROM issue_tags t JOIN issues i ON i.id = t.issue_id
         WHERE t.key = 'agent_id' AND t.value = ?2 AND i.project_id = ?1 AND i.status = 'unresolved'",
    )?;
    let mut out = Vec::with_capacity(base.len());
    for mut a in base {
        let slug = format!("agent-{}-heartbeat", a.agent_id);
        if let Some((status, last)) = heartbeat
            .query_row(params![a.project_id, slug], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()?
        {
            a.heartbeat_status = Some(status);
            a.last_heartbeat = last;
        }
        let mut sketch = DDSketch::new();
        let rows = minutes.query_map(
            params![
                a.project_id,
                a.agent_id,
                hour_ago - hour_ago.rem_euclid(MINUTE_MS)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            },
        )?;
        for row in rows {
            let (events, errors, cycles, failed, bytes) = row?;
            a.events_1h += events;
            a.errors_1h += errors;
            a.cycles_1h += cycles;
            a.failed_cycles_1h += failed;
            if let Some(bytes) = bytes
                && let Ok(s) = DDSketch::from_bytes(&bytes)
            {
                sketch.merge(&s);
            }
        }
        a.p99_ms = sketch.quantile(0.99);
        let (total, crashed): (i64, i64) = sessions
            .query_row(params![a.project_id, a.agent_id, day_ago], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if total > 0 {
            a.crash_free = Some((total - crashed) as f64 * 100.0 / total as f64);
        }
        a.open_issues = open.query_row(params![a.project_id, a.agent_id], |r| r.get(0))?;
        a.status = status_of(
            a.session_status.as_deref(),
            a.heartbeat_status.as_deref(),
            a.last_seen,
            now,
        );
        out.push(a);
    }
    let rank = |s: &str| match s {
        "crashed" => 0,
        "hung" => 1,
        "silent" => 2,
        "stopped" => 4,
        _ => 3,
    };
    out.sort_by(|a, b| {
        rank(a.status)
            .cmp(&rank(b.status))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let now = 1_000_000_000;
        assert_eq!(status_of(Some("crashed"), Some("ok"), now, now), "crashed");
        assert_eq!(status_of(Some("abnormal"), None, now, now), "hung");
        assert_eq!(
            status_of(Some("ok"), Some("missed_checkin"), now, now),
            "hung"
        );
        // A clean end is a stop, whatever the heartbeat says after it.
        assert_eq!(
            status_of(Some("exited"), Some("missed"), now, now),
            "stopped"
        );
        assert_eq!(
            status_of(Some("exited"), None, now - SILENT_AFTER_MS - 1, now),
            "stopped"
        );
        assert_eq!(
            status_of(None, None, now - SILENT_AFTER_MS - 1, now),
            "silent"
        );
        assert_eq!(
            status_of(Some("ok"), Some("ok"), now - 1000, now),
            "healthy"
        );
    }

    #[test]
    fn monitor_slugs() {
        assert_eq!(agent_of_monitor("agent-btc-1-heartbeat"), Some("btc-1"));
        assert_eq!(agent_of_monitor("agent--heartbeat"), None);
        assert_eq!(agent_of_monitor("recalibrate"), None);
    }
}
