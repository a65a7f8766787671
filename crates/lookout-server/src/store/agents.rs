//! Agents as the digest sees them: one row per agent (from the `agent_id` tag of its events
//! and transactions, the distinct id of its sessions, and its `agent-<id>-heartbeat`
//! monitor), with per-minute counts and `order.pipeline` latency, so the agents overview
//! reads a few rows per agent whatever the number of events stored.

use super::Result;
use super::records::{Batch, is_failure};
use super::rollups::merge_stored_sketch;
use super::sql::{Conn, params};
use lookout_protocol::sketch::DDSketch;
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
    transactions: i64,
    failed_transactions: i64,
    risk_rejected: i64,
    sketch: Option<DDSketch>,
}

/// One stage (span op) of an agent's order pipelines in one minute.
#[derive(Default)]
struct StageMinute {
    count: i64,
    failed: i64,
    sketch: DDSketch,
}

/// The outcome tag value of an order pipeline a risk check rejected.
pub const RISK_REJECTED: &str = "rejected_risk";

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

/// The agent each session of a batch belongs to once the batch is written, by (project,
/// session id), as the digest's session writer resolved it.
pub(super) type SessionAgents = HashMap<(i64, String), String>;

/// Keep `agents` and `agent_minutes` up to date with what `batch` says, inside the batch's
/// transaction. `session_agents` names the agent of each session update.
pub(super) fn apply(tx: &Conn, batch: &Batch, session_agents: &SessionAgents) -> Result<()> {
    let mut agents: HashMap<(i64, String), Seen> = HashMap::new();
    let mut minutes: HashMap<(i64, String, i64), Minute> = HashMap::new();
    let mut stages: HashMap<(i64, String, String, i64), StageMinute> = HashMap::new();
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
        m.transactions += 1;
        if is_failure(&t.status) {
            m.failed_transactions += 1;
        }
        if t.name == PIPELINE || t.op == PIPELINE {
            m.cycles += 1;
            if is_failure(&t.status) {
                m.failed += 1;
            }
            if tag(&t.tags, "outcome") == Some(RISK_REJECTED) {
                m.risk_rejected += 1;
            }
            m.sketch
                .get_or_insert_with(DDSketch::new)
                .add(t.duration_ms.max(0.0));
            let minute = t.timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
            let whole = stages
                .entry((t.project_id, agent.to_owned(), PIPELINE.to_owned(), minute))
                .or_default();
            whole.count += 1;
            whole.failed += i64::from(is_failure(&t.status));
            whole.sketch.add(t.duration_ms.max(0.0));
            for span in &t.spans {
                if span.op.is_empty() || span.op == PIPELINE || span.op.len() > 100 {
                    continue;
                }
                let st = stages
                    .entry((t.project_id, agent.to_owned(), span.op.clone(), minute))
                    .or_default();
                st.count += 1;
                st.failed += i64::from(span.status.as_deref().is_some_and(is_failure));
                st.sketch.add(span.duration_ms.max(0.0));
            }
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
    // The agent a session belongs to (its events' tag, else its distinct id), also for an
    // update that names neither.
    for s in &batch.sessions {
        let Some(agent) = session_agents.get(&(s.project_id, s.sid.clone())) else {
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
             ON CONFLICT (project_id, agent_id) DO UPDATE SET
               strategy = CASE WHEN excluded.last_seen >= agents.last_seen THEN COALESCE(excluded.strategy, agents.strategy) ELSE agents.strategy END,
               release = CASE WHEN excluded.last_seen >= agents.last_seen THEN COALESCE(excluded.release, agents.release) ELSE agents.release END,
               environment = CASE WHEN excluded.last_seen >= agents.last_seen THEN COALESCE(excluded.environment, agents.environment) ELSE agents.environment END,
               first_seen = MIN(agents.first_seen, excluded.first_seen),
               last_seen = MAX(agents.last_seen, excluded.last_seen),
               last_error = MAX(COALESCE(agents.last_error, 0), COALESCE(excluded.last_error, 0)),
               session_status = CASE WHEN excluded.session_updated IS NOT NULL AND excluded.session_updated >= COALESCE(agents.session_updated, 0)
                                     THEN excluded.session_status ELSE agents.session_status END,
               session_updated = MAX(COALESCE(agents.session_updated, 0), COALESCE(excluded.session_updated, 0))",
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
            "INSERT INTO agent_minutes (project_id, agent_id, minute, events, errors, cycles, failed_cycles, sketch,
                                        transactions, failed_transactions, risk_rejected)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (project_id, agent_id, minute) DO UPDATE SET events = agent_minutes.events + excluded.events, errors = agent_minutes.errors + excluded.errors,
               cycles = agent_minutes.cycles + excluded.cycles, failed_cycles = agent_minutes.failed_cycles + excluded.failed_cycles,
               sketch = COALESCE(excluded.sketch, agent_minutes.sketch),
               transactions = agent_minutes.transactions + excluded.transactions,
               failed_transactions = agent_minutes.failed_transactions + excluded.failed_transactions,
               risk_rejected = agent_minutes.risk_rejected + excluded.risk_rejected",
        )?;
    for ((project, agent, minute), m) in minutes {
        let sketch = match m.sketch {
            Some(sk) => Some(merge_stored_sketch(
                &mut read_sketch,
                params![project, agent, minute],
                sk,
            )?),
            None => None,
        };
        upsert_minute.execute(params![
            project,
            agent,
            minute,
            m.events,
            m.errors,
            m.cycles,
            m.failed,
            sketch,
            m.transactions,
            m.failed_transactions,
            m.risk_rejected
        ])?;
    }
    if stages.is_empty() {
        return Ok(());
    }
    let mut read_stage = tx.prepare_cached(
        "SELECT sketch FROM agent_stage_minutes WHERE project_id = ?1 AND agent_id = ?2 AND op = ?3 AND minute = ?4",
    )?;
    let mut upsert_stage = tx.prepare_cached(
        "INSERT INTO agent_stage_minutes (project_id, agent_id, op, minute, count, failed, sketch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (project_id, agent_id, op, minute) DO UPDATE SET count = agent_stage_minutes.count + excluded.count, failed = agent_stage_minutes.failed + excluded.failed,
           sketch = excluded.sketch",
    )?;
    for ((project, agent, op, minute), st) in stages {
        let sketch = merge_stored_sketch(
            &mut read_stage,
            params![project, agent, op, minute],
            st.sketch,
        )?;
        upsert_stage.execute(params![
            project, agent, op, minute, st.count, st.failed, sketch
        ])?;
    }
    Ok(())
}

/// The window the overview's figures cover.
pub const WINDOW_MS: i64 = 60 * MINUTE_MS;

/// What the store knows of one agent: facts only. Its status and the reasons for it are
/// derived from these by `services::agents`.
#[derive(Debug, Clone, Default)]
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
    /// Heartbeat monitor status (`ok`, `error`, `missed_checkin`, `timeout`…), if it has one.
    pub heartbeat_status: Option<String>,
    /// ms of the last heartbeat.
    pub last_heartbeat: Option<i64>,
    /// Crash-free sessions over the last 24 h, % (None without sessions).
    pub crash_free: Option<f64>,
    /// Error and fatal events over the last hour.
    pub errors_1h: i64,
    /// Events and transactions over the last hour.
    pub events_1h: i64,
    /// Transactions over the last hour.
    pub transactions_1h: i64,
    /// Failed transactions (a status other than ok, cancelled or unknown) over the last hour.
    pub failed_transactions_1h: i64,
    /// `order.pipeline` runs over the last hour.
    pub cycles_1h: i64,
    /// Failed `order.pipeline` runs over the last hour.
    pub failed_cycles_1h: i64,
    /// `order.pipeline` runs a risk check rejected (outcome `rejected_risk`) over the last hour.
    pub risk_rejected_1h: i64,
    /// p99 of `order.pipeline` over the last hour, ms.
    pub p99_ms: Option<f64>,
    /// Unresolved issues with this agent's tag.
    pub open_issues: i64,
    /// Its unresolved issue with the most events of this agent.
    pub top_issue: Option<TopIssue>,
    /// Its kill-switch state when it was ever paused (`None`: never paused, so active).
    pub trading: Option<super::trading::TradingState>,
}

impl AgentRow {
    /// The share of its transactions over the last hour that failed, %; `None` when it sent
    /// none (an agent that only reports its errors has no denominator: not 100 %).
    pub fn error_rate(&self) -> Option<f64> {
        (self.transactions_1h > 0)
            .then(|| self.failed_transactions_1h as f64 * 100.0 / self.transactions_1h as f64)
    }

    /// The share of its order pipelines over the last hour that a risk check rejected, %.
    pub fn risk_rejected_rate(&self) -> Option<f64> {
        (self.cycles_1h > 0).then(|| self.risk_rejected_1h as f64 * 100.0 / self.cycles_1h as f64)
    }
}

/// An unresolved issue of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct TopIssue {
    /// Issue id (its page is `/issues/{id}`).
    pub id: i64,
    /// Short id (`DEFAULT-1A`).
    pub short_id: String,
    /// Title.
    pub title: String,
    /// Events of this agent in the issue.
    pub events: i64,
    /// When this agent last hit it (ms).
    pub last_seen: i64,
}

/// A cron or heartbeat monitor's state in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorState {
    /// Its project.
    pub project_id: i64,
    /// Slug.
    pub slug: String,
    /// Environment.
    pub environment: String,
    /// `new`, `ok`, `error`, `missed_checkin`, `timeout`.
    pub status: String,
    /// Last check-in (ms).
    pub last_checkin: Option<i64>,
}

/// An open metric incident (a firing alert).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenIncident {
    /// Id (its page is `/alerts/incidents/{id}`).
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// The key it fires for: an agent id for per-agent rules, `""` for a whole project.
    pub key: String,
    /// Title.
    pub title: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// When it opened (ms).
    pub opened_at: i64,
    /// The query of the rule that opened it (`agent_id:ag_1 …`), if any.
    pub rule_query: Option<String>,
}

/// An active metric rule, as stored (Sentry-shaped JSON).
#[derive(Debug, Clone)]
pub struct ActiveRule {
    /// Id.
    pub id: i64,
    /// Its project.
    pub project_id: i64,
    /// Name.
    pub name: String,
    /// The body it was created with.
    pub spec: serde_json::Value,
}

/// Everything the agents overview is derived from, read with one query per kind of fact
/// whatever the number of agents.
#[derive(Debug, Clone, Default)]
pub struct OverviewFacts {
    /// The agents (at most 500), by id.
    pub agents: Vec<AgentRow>,
    /// Every monitor of the organisation in every environment.
    pub monitors: Vec<MonitorState>,
    /// Open metric incidents of the organisation.
    pub incidents: Vec<OpenIncident>,
    /// Active metric rules of the organisation.
    pub rules: Vec<ActiveRule>,
    /// The organisation's channel ids (what rules' actions name).
    pub channel_ids: Vec<i64>,
}

/// Whether monitor `slug` is one of the agent's: its heartbeat `agent-<id>-heartbeat`, or a
/// cron named after the agent (`<id>-…`) or after its strategy (`<strategy>-…`, as
/// `vol-arb-recalibrate` of strategy `vol-arb`). Check-ins carry no agent id, so the name
/// is the link.
pub fn monitor_belongs(slug: &str, agent_id: &str, strategy: Option<&str>) -> bool {
    if agent_of_monitor(slug) == Some(agent_id) {
        return true;
    }
    let prefixed = |p: &str| {
        !p.is_empty()
            && slug.len() > p.len() + 1
            && slug.starts_with(p)
            && slug.as_bytes()[p.len()] == b'-'
    };
    prefixed(agent_id) || strategy.is_some_and(prefixed)
}

/// One session of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Session id.
    pub sid: String,
    /// `ok`, `exited`, `crashed`, `abnormal`, `errored`.
    pub status: String,
    /// Start (ms).
    pub started: i64,
    /// Last update (ms).
    pub updated: i64,
    /// Release it ran.
    pub release: String,
    /// Errors it counted.
    pub errors: i64,
}

/// A deploy of one of the agent's releases.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRow {
    /// Release version.
    pub release: String,
    /// Environment deployed to.
    pub environment: String,
    /// Its name, if given.
    pub name: Option<String>,
    /// When it finished (ms).
    pub finished: i64,
}

/// An incident about the agent (opened and maybe resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// `critical`, `warning` or `error` (issue alerts).
    pub severity: String,
    /// `open`, `closed` or `fired`.
    pub status: String,
    /// Opened (ms).
    pub opened_at: i64,
    /// Closed (ms).
    pub closed_at: Option<i64>,
}

/// A check-in of one of the agent's monitors.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInRow {
    /// Monitor slug.
    pub slug: String,
    /// `ok`, `error`, `in_progress`, `missed`, `timeout`.
    pub status: String,
    /// Duration (ms), if known.
    pub duration_ms: Option<f64>,
    /// Received (ms).
    pub at: i64,
}

/// An unresolved issue of the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentIssue {
    /// Issue id.
    pub id: i64,
    /// Short id.
    pub short_id: String,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Level.
    pub level: String,
    /// Events of this agent in it.
    pub events: i64,
    /// When this agent last hit it (ms).
    pub last_seen: i64,
}

/// One minute of one stage (span op) of the agent's order pipelines; the op
/// `order.pipeline` is the whole pipeline.
#[derive(Debug, Clone)]
pub struct StageMinuteRow {
    /// Span op.
    pub op: String,
    /// Minute (ms).
    pub minute: i64,
    /// Runs.
    pub count: i64,
    /// Failed runs.
    pub failed: i64,
    /// Latency sketch.
    pub sketch: DDSketch,
}

/// One minute of the agent's pipeline outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeMinuteRow {
    /// Minute (ms).
    pub minute: i64,
    /// Pipeline runs.
    pub cycles: i64,
    /// Failed runs.
    pub failed: i64,
    /// Runs a risk check rejected.
    pub risk_rejected: i64,
    /// Error events.
    pub errors: i64,
}

/// A recent error event of the agent with its breadcrumbs.
#[derive(Debug, Clone)]
pub struct EventCrumbs {
    /// Event id.
    pub event_id: String,
    /// Its issue.
    pub issue_id: Option<i64>,
    /// Title.
    pub title: String,
    /// Event time (ms).
    pub timestamp: i64,
    /// `breadcrumbs.values` of its payload (or `breadcrumbs` when a plain list).
    pub breadcrumbs: Vec<serde_json::Value>,
}

/// Everything the agent page shows, read from the store.
#[derive(Debug, Clone)]
pub struct AgentDetail {
    /// The agent's overview facts (figures over the last hour).
    pub facts: OverviewFacts,
    /// Its latest sessions, newest first.
    pub sessions: Vec<SessionRow>,
    /// Deploys of its releases, newest first.
    pub deploys: Vec<DeployRow>,
    /// Incidents about it, newest first.
    pub incidents: Vec<IncidentRow>,
    /// Check-ins of its monitors, newest first: every failure, and successes of its crons
    /// (not of its heartbeat, one a minute).
    pub check_ins: Vec<CheckInRow>,
    /// Its unresolved issues, last seen first.
    pub issues: Vec<AgentIssue>,
    /// Its pipelines' stages per minute since `since`.
    pub stages: Vec<StageMinuteRow>,
    /// Its pipelines' outcomes per minute since `since`.
    pub outcomes: Vec<OutcomeMinuteRow>,
    /// Its latest error events with their breadcrumbs, newest first.
    pub events: Vec<EventCrumbs>,
    /// Its kill-switch changes since `since` (pauses and resumes, audited), newest first.
    pub trading_changes: Vec<super::trading::TradingChange>,
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

    /// What the overview of organisation `org` is derived from, as of `now`: every agent
    /// (by id), the organisation's monitors, open incidents, active metric rules, channels.
    pub fn overview(&self, org: &str, now: i64) -> Result<OverviewFacts> {
        overview(&*self.db.reader()?, org, None, now)
    }

    /// The agent page's facts: agent `agent_id` of organisation `org` (its most recently
    /// seen one when several projects have an agent of that id), its timeline since
    /// `since` (ms), and its pipelines per minute since `since`. `None` for an unknown
    /// agent.
    pub fn detail(
        &self,
        org: &str,
        agent_id: &str,
        since: i64,
        now: i64,
    ) -> Result<Option<AgentDetail>> {
        detail(&*self.db.reader()?, org, agent_id, since, now)
    }
}

fn overview(conn: &Conn, org: &str, only: Option<&str>, now: i64) -> Result<OverviewFacts> {
    let window_start = {
        let t = now - WINDOW_MS;
        t - t.rem_euclid(MINUTE_MS)
    };
    let day_ago = now - 24 * 60 * MINUTE_MS;
    let mut stmt = conn.prepare_cached(
        "SELECT a.project_id, p.slug, a.agent_id, a.strategy, a.release, a.environment, a.first_seen, a.last_seen,
                a.session_status, a.session_updated
         FROM agents a JOIN projects p ON p.id = a.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND (?2 IS NULL OR a.agent_id = ?2)
         ORDER BY a.agent_id, a.last_seen DESC LIMIT 500",
    )?;
    let mut agents: Vec<AgentRow> = stmt
        .query_map(params![org, only], |r| {
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
                ..AgentRow::default()
            })
        })?
        .collect::<Result<_>>()?;
    let index: HashMap<(i64, String), usize> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| ((a.project_id, a.agent_id.clone()), i))
        .collect();
    let find = |project: i64, agent: &str| index.get(&(project, agent.to_owned())).copied();

    // The last hour, per agent (the join walks each agent's minutes by primary key).
    let mut minutes = conn.prepare_cached(
        "SELECT m.project_id, m.agent_id, m.events, m.errors, m.cycles, m.failed_cycles, m.transactions,
                m.failed_transactions, m.risk_rejected, m.sketch
         FROM agents a JOIN projects p ON p.id = a.project_id JOIN organizations o ON o.id = p.org_id
         JOIN agent_minutes m ON m.project_id = a.project_id AND m.agent_id = a.agent_id AND m.minute >= ?2
         WHERE o.slug = ?1 AND (?3 IS NULL OR a.agent_id = ?3)",
    )?;
    let mut sketches: HashMap<usize, DDSketch> = HashMap::new();
    minutes.for_each(params![org, window_start, only], |r| {
        let Some(i) = find(r.get(0)?, &r.get::<_, String>(1)?) else {
            return Ok(());
        };
        let a = &mut agents[i];
        a.events_1h += r.get::<_, i64>(2)?;
        a.errors_1h += r.get::<_, i64>(3)?;
        a.cycles_1h += r.get::<_, i64>(4)?;
        a.failed_cycles_1h += r.get::<_, i64>(5)?;
        a.transactions_1h += r.get::<_, i64>(6)?;
        a.failed_transactions_1h += r.get::<_, i64>(7)?;
        a.risk_rejected_1h += r.get::<_, i64>(8)?;
        if let Some(bytes) = r.get::<_, Option<Vec<u8>>>(9)?
            && let Ok(s) = DDSketch::from_bytes(&bytes)
        {
            sketches.entry(i).or_default().merge(&s);
        }
        Ok(())
    })?;
    for (i, s) in sketches {
        agents[i].p99_ms = s.quantile(0.99);
    }

    // Sessions of the last day, per agent.
    let mut sessions = conn.prepare_cached(
        "SELECT a.project_id, a.agent_id, COUNT(*), COALESCE(SUM(CASE WHEN s.status = 'crashed' THEN 1 ELSE 0 END), 0)
         FROM agents a JOIN projects p ON p.id = a.project_id JOIN organizations o ON o.id = p.org_id
         JOIN sessions s ON s.project_id = a.project_id AND s.agent = a.agent_id AND s.started >= ?2
         WHERE o.slug = ?1 AND (?3 IS NULL OR a.agent_id = ?3)
         GROUP BY a.project_id, a.agent_id",
    )?;
    sessions.for_each(params![org, day_ago, only], |r| {
        let (total, crashed): (i64, i64) = (r.get(2)?, r.get(3)?);
        if let Some(i) = find(r.get(0)?, &r.get::<_, String>(1)?)
            && total > 0
        {
            agents[i].crash_free = Some((total - crashed) as f64 * 100.0 / total as f64);
        }
        Ok(())
    })?;

    // Unresolved issues per agent, and the one it hit most.
    let mut issues = conn.prepare_cached(
        "SELECT i.project_id, t.value, i.id, p.slug, i.short_seq, i.title, t.times_seen, t.last_seen
         FROM issue_tags t JOIN issues i ON i.id = t.issue_id JOIN projects p ON p.id = i.project_id
         JOIN organizations o ON o.id = p.org_id
         WHERE t.key = 'agent_id' AND (?2 IS NULL OR t.value = ?2) AND i.status = 'unresolved' AND o.slug = ?1",
    )?;
    issues.for_each(params![org, only], |r| {
        let Some(i) = find(r.get(0)?, &r.get::<_, String>(1)?) else {
            return Ok(());
        };
        let slug: String = r.get(3)?;
        let issue = TopIssue {
            id: r.get(2)?,
            short_id: format!(
                "{}-{}",
                slug.to_ascii_uppercase(),
                super::read::base36(r.get(4)?)
            ),
            title: r.get(5)?,
            events: r.get(6)?,
            last_seen: r.get(7)?,
        };
        let a = &mut agents[i];
        a.open_issues += 1;
        if a.top_issue
            .as_ref()
            .is_none_or(|t| (issue.events, issue.last_seen) > (t.events, t.last_seen))
        {
            a.top_issue = Some(issue);
        }
        Ok(())
    })?;

    // Kill-switch states (only agents ever paused have a row).
    let mut trading = conn.prepare_cached(
        "SELECT t.project_id, t.agent_id FROM agent_trading t
         JOIN projects p ON p.id = t.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND (?2 IS NULL OR t.agent_id = ?2)",
    )?;
    let paused: Vec<(i64, String)> = trading
        .query_map(params![org, only], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    for (project, agent) in paused {
        if let Some(i) = find(project, &agent) {
            agents[i].trading = Some(super::trading::get_in(conn, project, &agent, now)?);
        }
    }

    let monitors = monitor_states(conn, org)?;
    for a in &mut agents {
        let slug = format!("agent-{}-heartbeat", a.agent_id);
        if let Some(m) = monitors
            .iter()
            .filter(|m| m.project_id == a.project_id && m.slug == slug)
            .max_by_key(|m| m.last_checkin)
        {
            a.heartbeat_status = Some(m.status.clone());
            a.last_heartbeat = m.last_checkin;
        }
    }

    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.project_id, i.key, i.title, i.severity, i.opened_at, r.spec
         FROM incidents i JOIN projects p ON p.id = i.project_id JOIN organizations o ON o.id = p.org_id
         LEFT JOIN alert_rules r ON r.id = i.rule_id
         WHERE o.slug = ?1 AND i.status = 'open' ORDER BY i.opened_at DESC LIMIT 1000",
    )?;
    let incidents = stmt
        .query_map([org], |r| {
            let spec: Option<String> = r.get(6)?;
            Ok(OpenIncident {
                id: r.get(0)?,
                project_id: r.get(1)?,
                key: r.get(2)?,
                title: r.get(3)?,
                severity: r.get(4)?,
                opened_at: r.get(5)?,
                rule_query: spec
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                    .and_then(|v| v.get("query").and_then(|q| q.as_str()).map(str::to_owned)),
            })
        })?
        .collect::<Result<_>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.project_id, r.name, r.spec
         FROM alert_rules r JOIN projects p ON p.id = r.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND r.kind = 'metric' AND r.status = 'active' ORDER BY r.id",
    )?;
    let rules = stmt
        .query_map([org], |r| {
            Ok(ActiveRule {
                id: r.get(0)?,
                project_id: r.get(1)?,
                name: r.get(2)?,
                spec: serde_json::from_str(&r.get::<_, String>(3)?)
                    .unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<Result<_>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT i.id FROM integrations i JOIN organizations o ON o.id = i.org_id WHERE o.slug = ?1",
    )?;
    let channel_ids = stmt
        .query_map([org], |r| r.get(0))?
        .collect::<Result<_>>()?;

    Ok(OverviewFacts {
        agents,
        monitors,
        incidents,
        rules,
        channel_ids,
    })
}

/// Every monitor of organisation `org`, in every environment.
fn monitor_states(conn: &Conn, org: &str) -> Result<Vec<MonitorState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.project_id, m.slug, me.environment, me.status, me.last_checkin
         FROM monitors m JOIN monitor_environments me ON me.monitor_id = m.id
         JOIN projects p ON p.id = m.project_id JOIN organizations o ON o.id = p.org_id
         WHERE o.slug = ?1 AND m.status = 'active'",
    )?;
    let rows = stmt.query_map([org], |r| {
        Ok(MonitorState {
            project_id: r.get(0)?,
            slug: r.get(1)?,
            environment: r.get(2)?,
            status: r.get(3)?,
            last_checkin: r.get(4)?,
        })
    })?;
    rows.collect::<Result<_>>()
}

fn detail(
    conn: &Conn,
    org: &str,
    agent_id: &str,
    since: i64,
    now: i64,
) -> Result<Option<AgentDetail>> {
    let mut facts = overview(conn, org, Some(agent_id), now)?;
    // Several projects may have an agent of this id: the most recently seen one.
    facts.agents.sort_by_key(|a| std::cmp::Reverse(a.last_seen));
    facts.agents.truncate(1);
    let Some(agent) = facts.agents.first().cloned() else {
        return Ok(None);
    };
    let project = agent.project_id;
    let since_minute = since - since.rem_euclid(MINUTE_MS);

    let mut stmt = conn.prepare_cached(
        "SELECT sid, status, started, updated, release, errors FROM sessions
         WHERE project_id = ?1 AND agent = ?2 ORDER BY started DESC LIMIT 100",
    )?;
    let sessions: Vec<SessionRow> = stmt
        .query_map(params![project, agent.agent_id], |r| {
            Ok(SessionRow {
                sid: r.get(0)?,
                status: r.get(1)?,
                started: r.get(2)?,
                updated: r.get(3)?,
                release: r.get(4)?,
                errors: r.get(5)?,
            })
        })?
        .collect::<Result<_>>()?;

    let mut releases: Vec<String> = sessions.iter().map(|s| s.release.clone()).collect();
    releases.extend(agent.release.clone());
    releases.sort();
    releases.dedup();
    let mut stmt = conn.prepare_cached(
        "SELECT r.version, d.environment, d.name, d.date_finished
         FROM deploys d JOIN releases r ON r.id = d.release_id JOIN organizations o ON o.id = r.org_id
         WHERE o.slug = ?1 AND r.version IN (SELECT value FROM json_each(?2))
         ORDER BY d.date_finished DESC LIMIT 50",
    )?;
    let deploys = stmt
        .query_map(
            params![org, serde_json::to_string(&releases).unwrap_or_default()],
            |r| {
                Ok(DeployRow {
                    release: r.get(0)?,
                    environment: r.get(1)?,
                    name: r.get(2)?,
                    finished: r.get(3)?,
                })
            },
        )?
        .collect::<Result<_>>()?;

    // Its per-agent incidents, and the issue alerts of its issues.
    let mut stmt = conn.prepare_cached(
        "SELECT id, title, severity, status, opened_at, closed_at FROM incidents
         WHERE project_id = ?1 AND (key = ?2 OR issue_id IN
               (SELECT issue_id FROM issue_tags WHERE key = 'agent_id' AND value = ?2))
         ORDER BY opened_at DESC LIMIT 100",
    )?;
    let incidents = stmt
        .query_map(params![project, agent.agent_id], |r| {
            Ok(IncidentRow {
                id: r.get(0)?,
                title: r.get(1)?,
                severity: r.get(2)?,
                status: r.get(3)?,
                opened_at: r.get(4)?,
                closed_at: r.get(5)?,
            })
        })?
        .collect::<Result<_>>()?;

    let mut slugs: Vec<String> = facts
        .monitors
        .iter()
        .filter(|m| {
            m.project_id == project
                && monitor_belongs(&m.slug, &agent.agent_id, agent.strategy.as_deref())
        })
        .map(|m| m.slug.clone())
        .collect();
    slugs.sort();
    slugs.dedup();
    let heartbeat = format!("agent-{}-heartbeat", agent.agent_id);
    let mut stmt = conn.prepare_cached(
        "SELECT monitor_slug, status, duration_ms, received_at FROM check_ins
         WHERE project_id = ?1 AND monitor_slug = ?2 AND (?3 = 0 OR status NOT IN ('ok', 'in_progress'))
         ORDER BY received_at DESC LIMIT 50",
    )?;
    let mut check_ins = Vec::new();
    for slug in &slugs {
        let only_failures = i64::from(*slug == heartbeat);
        let rows = stmt.query_map(params![project, slug, only_failures], |r| {
            Ok(CheckInRow {
                slug: r.get(0)?,
                status: r.get(1)?,
                duration_ms: r.get(2)?,
                at: r.get(3)?,
            })
        })?;
        for row in rows {
            check_ins.push(row?);
        }
    }
    check_ins.sort_by_key(|c| std::cmp::Reverse(c.at));
    check_ins.truncate(100);

    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.short_seq, i.title, i.culprit, i.level, t.times_seen, t.last_seen
         FROM issue_tags t JOIN issues i ON i.id = t.issue_id
         WHERE t.key = 'agent_id' AND t.value = ?2 AND i.project_id = ?1 AND i.status = 'unresolved'
         ORDER BY t.last_seen DESC LIMIT 50",
    )?;
    let slug = agent.project_slug.to_ascii_uppercase();
    let issues: Vec<AgentIssue> = stmt
        .query_map(params![project, agent.agent_id], |r| {
            Ok(AgentIssue {
                id: r.get(0)?,
                short_id: format!("{slug}-{}", super::read::base36(r.get(1)?)),
                title: r.get(2)?,
                culprit: r.get(3)?,
                level: r.get(4)?,
                events: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })?
        .collect::<Result<_>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT op, minute, count, failed, sketch FROM agent_stage_minutes
         WHERE project_id = ?1 AND agent_id = ?2 AND minute >= ?3 AND minute <= ?4",
    )?;
    let stages = stmt
        .query_map(params![project, agent.agent_id, since_minute, now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?
        .filter_map(|row| match row {
            Ok((op, minute, count, failed, bytes)) => {
                DDSketch::from_bytes(&bytes).ok().map(|sketch| {
                    Ok(StageMinuteRow {
                        op,
                        minute,
                        count,
                        failed,
                        sketch,
                    })
                })
            }
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT minute, cycles, failed_cycles, risk_rejected, errors FROM agent_minutes
         WHERE project_id = ?1 AND agent_id = ?2 AND minute >= ?3 AND minute <= ?4 ORDER BY minute",
    )?;
    let outcomes = stmt
        .query_map(params![project, agent.agent_id, since_minute, now], |r| {
            Ok(OutcomeMinuteRow {
                minute: r.get(0)?,
                cycles: r.get(1)?,
                failed: r.get(2)?,
                risk_rejected: r.get(3)?,
                errors: r.get(4)?,
            })
        })?
        .collect::<Result<_>>()?;

    // Its latest error events: the newest few of each of its latest issues that carry its
    // tag (bounded: at most 10 issues × 3 events, each found by index).
    let mut latest_issues = conn.prepare_cached(
        "SELECT t.issue_id FROM issue_tags t JOIN issues i ON i.id = t.issue_id
         WHERE t.key = 'agent_id' AND t.value = ?2 AND i.project_id = ?1
         ORDER BY t.last_seen DESC LIMIT 10",
    )?;
    let issue_ids: Vec<i64> = latest_issues
        .query_map(params![project, agent.agent_id], |r| r.get(0))?
        .collect::<Result<_>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT e.event_id, e.issue_id, e.title, e.timestamp, e.payload FROM events e
         WHERE e.issue_id = ?1 AND EXISTS
               (SELECT 1 FROM event_tags t WHERE t.key = 'agent_id' AND t.value = ?2 AND t.event_row = e.id)
         ORDER BY e.timestamp DESC LIMIT 3",
    )?;
    let mut events = Vec::new();
    for issue in issue_ids {
        let rows = stmt.query_map(params![issue, agent.agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        for row in rows {
            let (event_id, issue_id, title, timestamp, payload) = row?;
            let payload = super::read::decode_payload(&payload);
            let crumbs = payload.get("breadcrumbs");
            let breadcrumbs = crumbs
                .and_then(|b| b.get("values"))
                .or(crumbs)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            events.push(EventCrumbs {
                event_id,
                issue_id,
                title,
                timestamp,
                breadcrumbs,
            });
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
    events.truncate(5);
    let trading_changes = super::trading::changes_in(conn, project, &agent.agent_id, since, 100)?;

    Ok(Some(AgentDetail {
        facts,
        sessions,
        deploys,
        incidents,
        check_ins,
        issues,
        stages,
        outcomes,
        events,
        trading_changes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_slugs() {
        assert_eq!(agent_of_monitor("agent-btc-1-heartbeat"), Some("btc-1"));
        assert_eq!(agent_of_monitor("agent--heartbeat"), None);
        assert_eq!(agent_of_monitor("recalibrate"), None);
    }

    #[test]
    fn monitors_belong_by_name() {
        assert!(monitor_belongs("agent-ag_1-heartbeat", "ag_1", None));
        assert!(!monitor_belongs("agent-ag_2-heartbeat", "ag_1", None));
        assert!(monitor_belongs(
            "vol-arb-recalibrate",
            "ag_vol_arb",
            Some("vol-arb")
        ));
        assert!(monitor_belongs("ag_1-rebalance", "ag_1", None));
        // A prefix must end at a dash: `vol-arbitrage-x` is not strategy `vol-arb`'s.
        assert!(!monitor_belongs("vol-arbitrage-x", "ag", Some("vol-arb")));
        assert!(!monitor_belongs("vol-arb", "ag", Some("vol-arb")));
        assert!(!monitor_belongs("x-recalibrate", "ag", Some("")));
    }
}
