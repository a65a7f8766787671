//! The alert engine: trading alert rules evaluated as events arrive.
//!
//! * Issue alerts run on every stored event, inside the digest's transaction
//!   ([`BatchHook`]): conditions (first seen, regression, frequency, users, percent of
//!   sessions, new issue after a deploy), filters, then the action interval per rule and
//!   issue.
//! * Metric alerts are recomputed for the projects a batch touched (at most every
//!   [`BATCH_EVAL_INTERVAL_MS`] per rule) and for every project on each clock tick
//!   ([`TickJob`]), which is how what is *absent* is noticed: a window that emptied, an
//!   agent that crashed and did not come back, a missed heartbeat. A rule whose
//!   measurement reads its whole window (counts, unique users, tag ratios, and error rates
//!   with a query; the latency, plain error-rate and session aggregates read per-minute
//!   rollups) costs more as the window fills: once one evaluation takes [`COSTLY_EVAL`] or more, the rule waits
//!   [`COST_SHARE`] times that long before the next, so that it takes a bounded share of
//!   the digest's time however busy the window.
//! * A state change (ok → warning/critical → resolved) opens or updates an incident and
//!   writes one outbox row per channel **in the same transaction**; the [`notify::Notifier`]
//!   delivers them. State lives in the database, so a restart (even `kill -9`) neither
//!   repeats a notification nor loses a trigger.

pub mod notify;
pub mod rules;

use crate::clock::TickJob;
use crate::config::Synchronous;
use crate::store::digest::{Batch, BatchHook, EventRecord, Outcome};
use crate::store::read::Term;
use crate::store::{Result, StoreError, connect};
use lookout_protocol::sketch::DDSketch;
use rules::{
    Action, Aggregate, Condition, Duration as Dur, Filter, IssueRule, MetricRule, ThresholdType,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A metric rule is recomputed after a batch at most this often (the tick catches the rest).
pub const BATCH_EVAL_INTERVAL_MS: i64 = 100;

/// A metric rule's evaluation this long or longer paces the next one.
pub const COSTLY_EVAL: Duration = Duration::from_millis(5);

/// A costly rule waits this many times its last evaluation's time before the next (it then
/// takes at most a twentieth of the time).
pub const COST_SHARE: u32 = 20;

/// What the last evaluation of each metric rule cost, by rule id.
#[derive(Debug, Default)]
struct EvalCosts(Mutex<HashMap<i64, (Instant, Duration)>>);

impl EvalCosts {
    /// Whether `rule` was costly last time and has not yet waited its share.
    fn paced(&self, rule: i64) -> bool {
        self.lock().get(&rule).is_some_and(|(ended, took)| {
            *took >= COSTLY_EVAL && ended.elapsed() < took.saturating_mul(COST_SHARE)
        })
    }

    /// Measure one evaluation of `rule`.
    fn measure<T>(&self, rule: i64, evaluate: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = evaluate();
        self.lock()
            .insert(rule, (Instant::now(), started.elapsed()));
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (Instant, Duration)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stored rule.
#[derive(Debug, Clone)]
pub struct RuleRow {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: i64,
    /// Project slug.
    pub project_slug: String,
    /// Organisation.
    pub org_id: i64,
    /// `issue` or `metric`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// The Sentry-shaped body.
    pub spec: Value,
}

/// Severity of a metric rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Level {
        match s {
            "warning" => Level::Warning,
            "critical" => Level::Critical,
            _ => Level::Ok,
        }
    }
}

/// The alert engine: a digest hook and a tick job.
#[derive(Debug)]
pub struct AlertEngine {
    db: PathBuf,
    public_url: String,
    /// Last batch-time evaluation per metric rule (ms).
    last_eval: Mutex<HashMap<i64, i64>>,
    /// What each metric rule's last evaluation cost, on batches and ticks alike.
    costs: EvalCosts,
    /// Wakes the notifier after a commit that wrote to the outbox.
    wake: Arc<Notify>,
    clock: crate::clock::Clock,
}

impl AlertEngine {
    /// An engine over the main database of `data_dir`.
    pub fn new(
        data_dir: &Path,
        public_url: String,
        wake: Arc<Notify>,
        clock: crate::clock::Clock,
    ) -> AlertEngine {
        AlertEngine {
            db: data_dir.join("lookout.db"),
            public_url,
            last_eval: Mutex::default(),
            costs: EvalCosts::default(),
            wake,
            clock,
        }
    }

    /// Whether a costly metric rule must wait before its next evaluation. Never on a manual
    /// clock: there, time moves only when a test says, and each tick evaluates every rule.
    fn paced(&self, rule: i64) -> bool {
        !self.clock.is_manual() && self.costs.paced(rule)
    }
}

impl BatchHook for AlertEngine {
    fn on_batch(
        &self,
        tx: &rusqlite::Transaction<'_>,
        batch: &Batch,
        outcome: &Outcome,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut projects: HashSet<i64> = batch.events.iter().map(|e| e.project_id).collect();
        projects.extend(batch.transactions.iter().map(|t| t.project_id));
        projects.extend(batch.sessions.iter().map(|s| s.project_id));
        projects.extend(batch.session_aggregates.iter().map(|s| s.project_id));
        if projects.is_empty() {
            return Ok(());
        }
        let rules = load_rules(tx, Some(&projects))?;
        if rules.is_empty() {
            return Ok(());
        }
        let ctx = Ctx {
            conn: tx,
            now,
            public_url: &self.public_url,
        };
        let issue_rules: Vec<(RuleRow, IssueRule)> = rules
            .iter()
            .filter(|r| r.kind == "issue")
            .filter_map(|r| {
                let ids = integration_ids(tx, r.org_id).ok()?;
                rules::parse_issue_rule(&r.spec, &ids)
                    .ok()
                    .map(|p| (r.clone(), p))
            })
            .collect();
        if !issue_rules.is_empty() {
            for fact in &outcome.facts {
                let Some(event) = batch.events.get(fact.index) else {
                    continue;
                };
                for (row, rule) in issue_rules
                    .iter()
                    .filter(|(r, _)| r.project_id == event.project_id)
                {
                    evaluate_issue_rule(&ctx, row, rule, event, fact)?;
                }
            }
        }
        let mut due = Vec::new();
        {
            let mut last = self
                .last_eval
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in rules.iter().filter(|r| r.kind == "metric") {
                let at = last.entry(r.id).or_insert(i64::MIN);
                if now.saturating_sub(*at) >= BATCH_EVAL_INTERVAL_MS && !self.paced(r.id) {
                    *at = now;
                    due.push(r.clone());
                }
            }
        }
        for r in &due {
            self.costs.measure(r.id, || evaluate_metric_rule(&ctx, r))?;
        }
        Ok(())
    }

    fn committed(&self) {
        self.wake.notify_one();
    }
}

impl TickJob for AlertEngine {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn tick(&self, now_ms: i64) -> Result<()> {
        let mut conn = connect(&self.db, Synchronous::Full)?;
        // Measure without the write lock (the digest keeps writing meanwhile)…
        let snapshot = state_snapshot(&conn)?;
        let measured: Vec<Measured> = {
            let ctx = Ctx {
                conn: &conn,
                now: now_ms,
                public_url: &self.public_url,
            };
            let mut out = Vec::new();
            for r in load_rules(&conn, None)?
                .into_iter()
                .filter(|r| r.kind == "metric" && !self.paced(r.id))
            {
                if let Some(rule) = parse_metric(&conn, &r)? {
                    let values = self
                        .costs
                        .measure(r.id, || metric_values(&ctx, &r, &rule))?;
                    out.push((r, rule, values));
                }
            }
            out
        };
        // …then take it only to record the state changes.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        ensure_presets(&tx)?;
        let ctx = Ctx {
            conn: &tx,
            now: now_ms,
            public_url: &self.public_url,
        };
        for (row, rule, values) in &measured {
            apply_values(&ctx, row, rule, values, Some(&snapshot))?;
        }
        tx.commit()?;
        self.wake.notify_one();
        Ok(())
    }
}

/// A metric rule and its values per key, measured before the write lock is taken.
type Measured = (RuleRow, MetricRule, Vec<(String, Option<f64>)>);

struct Ctx<'a> {
    conn: &'a Connection,
    now: i64,
    public_url: &'a str,
}

/// `query_row` through the connection's statement cache: the rules run the same few
/// queries for every event of every batch, and parsing them each time was a quarter of the
/// digest's store time.
fn cached_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}

/// `execute` through the connection's statement cache.
fn cached_execute(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Install the six presets for every project that has not had them yet.
pub fn ensure_presets(conn: &Connection) -> Result<()> {
    let missing: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM projects WHERE id NOT IN (SELECT project_id FROM alert_presets_installed)",
        )?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let now = chrono::Utc::now().timestamp_millis();
    for project in missing {
        for (preset, kind, body) in rules::presets() {
            let name = body["name"].as_str().unwrap_or(preset).to_owned();
            cached_execute(
                conn,
                "INSERT INTO alert_rules (project_id, kind, name, spec, preset, date_created, date_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![project, kind, name, body.to_string(), preset, now],
            )?;
        }
        cached_execute(
            conn,
            "INSERT INTO alert_presets_installed (project_id) VALUES (?1)",
            [project],
        )?;
    }
    Ok(())
}

/// Active rules, of some projects or all.
pub fn load_rules(conn: &Connection, projects: Option<&HashSet<i64>>) -> Result<Vec<RuleRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.project_id, p.slug, p.org_id, r.kind, r.name, r.spec FROM alert_rules r
         JOIN projects p ON p.id = r.project_id WHERE r.status = 'active' ORDER BY r.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(RuleRow {
            id: r.get(0)?,
            project_id: r.get(1)?,
            project_slug: r.get(2)?,
            org_id: r.get(3)?,
            kind: r.get(4)?,
            name: r.get(5)?,
            spec: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or(Value::Null),
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if projects.is_none_or(|p| p.contains(&row.project_id)) {
            out.push(row);
        }
    }
    Ok(out)
}

/// Integration ids of an organisation.
pub fn integration_ids(conn: &Connection, org_id: i64) -> Result<Vec<i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM integrations WHERE org_id = ?1 ORDER BY id")?;
    let ids = stmt
        .query_map([org_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

fn tag<'a>(event: &'a EventRecord, key: &str) -> Option<&'a str> {
    event
        .tags
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn attribute(event: &EventRecord, name: &str) -> Option<String> {
    let meta = || serde_json::from_str::<Value>(&event.metadata).ok();
    match name {
        "exception.type" | "type" => meta()?.get("type")?.as_str().map(str::to_owned),
        "exception.value" | "value" => meta()?.get("value")?.as_str().map(str::to_owned),
        "message" | "title" => Some(event.title.clone()),
        "culprit" => Some(event.culprit.clone()),
        "level" => Some(event.level.clone()),
        "environment" => event.environment.clone(),
        "release" => event.release.clone(),
        "transaction" => event.transaction.clone(),
        other => tag(event, other).map(str::to_owned),
    }
}

fn evaluate_issue_rule(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &IssueRule,
    event: &EventRecord,
    fact: &crate::store::digest::EventFact,
) -> Result<()> {
    if let Some(env) = &rule.environment
        && event.environment.as_deref() != Some(env.as_str())
    {
        return Ok(());
    }
    let conn = ctx.conn;
    let issue: (i64, i64, i64, String, String, String) = cached_row(
        conn,
        "SELECT first_seen, times_seen, short_seq, title, culprit, level FROM issues WHERE id = ?1",
        [fact.issue_id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let (first_seen, times_seen, short_seq, title, culprit, level) = issue;
    let mut results = Vec::with_capacity(rule.conditions.len());
    for c in &rule.conditions {
        let passed = match c {
            Condition::FirstSeen => fact.new_issue,
            Condition::Regression => fact.regression,
            Condition::EventFrequency { value, interval_ms } => {
                let n: i64 = cached_row(
                    conn,
                    "SELECT COUNT(*) FROM events WHERE issue_id = ?1 AND timestamp >= ?2",
                    params![fact.issue_id, ctx.now - interval_ms],
                    |r| r.get(0),
                )?;
                n as f64 > *value
            }
            Condition::UniqueUsers { value, interval_ms } => {
                let n: i64 = cached_row(
                    conn,
                    "SELECT COUNT(DISTINCT user_key) FROM events WHERE issue_id = ?1 AND timestamp >= ?2",
                    params![fact.issue_id, ctx.now - interval_ms],
                    |r| r.get(0),
                )?;
                n as f64 > *value
            }
            Condition::PercentSessions { value, interval_ms } => {
                let since = ctx.now - interval_ms;
                let n: i64 = cached_row(
                    conn,
                    "SELECT COUNT(*) FROM events WHERE issue_id = ?1 AND timestamp >= ?2",
                    params![fact.issue_id, since],
                    |r| r.get(0),
                )?;
                let sessions: i64 = cached_row(
                    conn,
                    "SELECT COALESCE(SUM(init), 0) FROM rollup_sessions WHERE project_id = ?1 AND minute >= ?2",
                    params![event.project_id, since - since.rem_euclid(60_000)],
                    |r| r.get(0),
                )?;
                sessions > 0 && (n as f64 / sessions as f64) * 100.0 > *value
            }
            Condition::NewIssueAfterDeploy { minutes } => {
                fact.new_issue
                    && {
                        let at = first_seen;
                        let found: Option<i64> = cached_row(
                            conn,
                            "SELECT d.id FROM deploys d JOIN release_projects rp ON rp.release_id = d.release_id
                             WHERE rp.project_id = ?1 AND d.date_finished <= ?2 AND d.date_finished >= ?3
                             LIMIT 1",
                            params![event.project_id, at.max(event.received_ms), at - minutes * 60_000],
                            |r| r.get(0),
                        )
                        .optional()?;
                        found.is_some()
                    }
            }
        };
        results.push(passed);
    }
    if rule.conditions.is_empty() || !rule.action_match.combine(results) {
        return Ok(());
    }
    let filters_pass = rule.filters.is_empty()
        || rule
            .filter_match
            .combine(rule.filters.iter().map(|f| match f {
                Filter::Level {
                    cmp,
                    or_equal,
                    level,
                } => {
                    let n = rules::level_number(&event.level);
                    n.cmp(level) == *cmp || (*or_equal && n == *level)
                }
                Filter::Tag { key, op, value } => op.test(tag(event, key), value),
                Filter::Age { newer, age_ms } => {
                    let age = ctx.now - first_seen;
                    if *newer { age < *age_ms } else { age > *age_ms }
                }
                Filter::Occurrences { value } => times_seen.max(1) >= *value,
                Filter::Attribute {
                    attribute: a,
                    op,
                    value,
                } => op.test(attribute(event, a).as_deref(), value),
            }));
    if !filters_pass {
        return Ok(());
    }
    // The action interval: at most once per `frequency` minutes per rule and issue.
    let last: Option<i64> = cached_row(
        conn,
        "SELECT last_fired FROM alert_issue_fires WHERE rule_id = ?1 AND issue_id = ?2",
        params![row.id, fact.issue_id],
        |r| r.get(0),
    )
    .optional()?;
    if last.is_some_and(|l| ctx.now - l < rule.frequency_min * 60_000) {
        return Ok(());
    }
    cached_execute(
        conn,
        "INSERT INTO alert_issue_fires (rule_id, issue_id, last_fired) VALUES (?1, ?2, ?3)
         ON CONFLICT DO UPDATE SET last_fired = excluded.last_fired",
        params![row.id, fact.issue_id, ctx.now],
    )?;
    let short_id = format!(
        "{}-{}",
        row.project_slug.to_ascii_uppercase(),
        crate::store::read::base36(short_seq)
    );
    let severity = match level.as_str() {
        "fatal" => "critical",
        "error" => "error",
        "warning" => "warning",
        _ => "info",
    };
    cached_execute(
        conn,
        "INSERT INTO incidents (rule_id, project_id, key, issue_id, status, severity, title, value, opened_at, closed_at)
         VALUES (?1, ?2, ?3, ?4, 'fired', ?5, ?6, NULL, ?7, ?7)",
        params![row.id, row.project_id, short_id, fact.issue_id, severity, format!("{}: {title}", row.name), ctx.now],
    )?;
    let incident = conn.last_insert_rowid();
    activity(
        conn,
        incident,
        ctx.now,
        "fired",
        &format!("{short_id} {title}"),
    )?;
    let message = notify::Message {
        kind: "issue",
        action: notify::Act::Trigger,
        rule_id: row.id,
        rule_name: row.name.clone(),
        project: row.project_slug.clone(),
        incident_id: incident,
        severity: severity.to_owned(),
        title: title.clone(),
        text: format!("{}: {short_id} {title}", row.name),
        culprit: culprit.clone(),
        value: None,
        url: format!("{}/issues/{}/", ctx.public_url, fact.issue_id),
        dedup_key: short_id.clone(),
        issue: Some(json!({
            "id": fact.issue_id.to_string(), "shortId": short_id, "title": title,
            "culprit": culprit, "level": level, "firstSeen": crate::api::iso(first_seen),
            "count": times_seen.max(1),
        })),
        event: Some(json!({
            "eventId": event.event_id, "level": event.level, "release": event.release,
            "environment": event.environment,
            "tags": event.tags.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })),
        at: ctx.now,
    };
    enqueue(conn, row, &rule.actions, &message)
}

fn activity(conn: &Connection, incident: i64, at: i64, kind: &str, detail: &str) -> Result<()> {
    cached_execute(
        conn,
        "INSERT INTO incident_activity (incident_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![incident, at, kind, detail],
    )?;
    Ok(())
}

/// Write one outbox row per channel the actions reach.
fn enqueue(
    conn: &Connection,
    row: &RuleRow,
    actions: &[Action],
    message: &notify::Message,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, provider, name, config FROM integrations WHERE org_id = ?1 ORDER BY id",
    )?;
    let channels: Vec<notify::Channel> = stmt
        .query_map([row.org_id], |r| {
            Ok(notify::Channel {
                id: r.get(0)?,
                provider: r.get(1)?,
                name: r.get(2)?,
                config: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or(Value::Null),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut targets: Vec<(&notify::Channel, Option<&str>)> = Vec::new();
    for a in actions {
        match a {
            Action::AllChannels => targets.extend(channels.iter().map(|c| (c, None))),
            Action::Email { to } => {
                let emails: Vec<_> = channels.iter().filter(|c| c.provider == "email").collect();
                if emails.is_empty() {
                    targets.extend(channels.iter().map(|c| (c, None)));
                } else {
                    targets.extend(emails.into_iter().map(|c| (c, to.as_deref())));
                }
            }
            Action::Integration { id, target } => {
                targets.extend(
                    channels
                        .iter()
                        .filter(|c| c.id == *id)
                        .map(|c| (c, target.as_deref())),
                );
            }
        }
    }
    let mut seen = HashSet::new();
    let mut insert = conn.prepare_cached(
        "INSERT INTO outbox (incident_id, integration_id, provider, url, body, status, attempts, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, 0, ?6)",
    )?;
    for (channel, target) in targets {
        if !seen.insert(channel.id) {
            continue;
        }
        match notify::render(channel, target, message) {
            Ok((url, body)) => {
                insert.execute(params![
                    message.incident_id,
                    channel.id,
                    channel.provider,
                    url,
                    body.to_string(),
                    message.at
                ])?;
            }
            Err(e) => {
                tracing::warn!(channel = channel.id, error = %e, "channel misconfigured; notification skipped");
                activity(
                    conn,
                    message.incident_id,
                    message.at,
                    "channel_error",
                    &format!("{}: {e}", channel.name),
                )?;
            }
        }
    }
    Ok(())
}

/// The value of a metric rule now, per key (`""` for the rule as a whole).
fn metric_values(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &MetricRule,
) -> Result<Vec<(String, Option<f64>)>> {
    let conn = ctx.conn;
    let since = ctx.now - rule.time_window_min * 60_000;
    let minute_since = since - since.rem_euclid(60_000);
    let project = row.project_id;
    let value = match &rule.aggregate {
        Aggregate::AgentDown { grace_secs } => return agents_down(ctx, row, *grace_secs),
        Aggregate::Percentile { .. } | Aggregate::Avg { .. } | Aggregate::FailureRate => {
            let (kind, name, op) = latency_filter(rule);
            let mut stmt = conn.prepare_cached(
                "SELECT count, errors, sketch, name, op FROM rollup_latency WHERE project_id = ?1 AND kind = ?2 AND minute >= ?3",
            )?;
            let mut sketch = DDSketch::new();
            let (mut count, mut errors) = (0i64, 0i64);
            let rows = stmt.query_map(params![project, kind, minute_since], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            for r in rows {
                let (c, e, bytes, n, o) = r?;
                if name.as_ref().is_some_and(|w| *w != n) || op.as_ref().is_some_and(|w| *w != o) {
                    continue;
                }
                count += c;
                errors += e;
                if let Ok(s) = DDSketch::from_bytes(&bytes) {
                    sketch.merge(&s);
                }
            }
            match &rule.aggregate {
                Aggregate::Percentile { q, .. } => sketch.quantile(*q),
                Aggregate::Avg { .. } => {
                    (sketch.count() > 0).then(|| sketch.sum() / sketch.count() as f64)
                }
                _ => (count > 0).then(|| errors as f64 / count as f64),
            }
        }
        Aggregate::CrashFreeSessions => {
            let (init, crashed): (i64, i64) = cached_row(
                conn,
                "SELECT COALESCE(SUM(init), 0), COALESCE(SUM(crashed), 0) FROM rollup_sessions
                 WHERE project_id = ?1 AND minute >= ?2 AND (?3 IS NULL OR environment = ?3)",
                params![project, minute_since, rule.environment],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            (init > 0).then(|| (1.0 - crashed as f64 / init as f64) * 100.0)
        }
        Aggregate::CrashFreeUsers => {
            let (users, crashed): (i64, i64) = cached_row(
                conn,
                "SELECT COUNT(*), COALESCE(SUM(crashed > 0), 0) FROM session_users
                 WHERE project_id = ?1 AND last_seen >= ?2 AND (?3 IS NULL OR environment = ?3)",
                params![project, since, rule.environment],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            (users > 0).then(|| (1.0 - crashed as f64 / users as f64) * 100.0)
        }
        Aggregate::Count => Some(count_events(ctx, row, rule, since, None, None)? as f64),
        Aggregate::CountUniqueUsers => {
            Some(count_events(ctx, row, rule, since, None, Some(()))? as f64)
        }
        Aggregate::ErrorRate if rule.query.is_empty() => {
            // No filter: the per-minute rollups answer without touching events.
            let (errors, events): (i64, i64) = cached_row(
                conn,
                "SELECT COALESCE(SUM(CASE WHEN level IN ('fatal', 'error') THEN count END), 0), COALESCE(SUM(count), 0)
                 FROM rollup_events WHERE project_id = ?1 AND minute >= ?2 AND (?3 IS NULL OR environment = ?3)",
                params![project, minute_since, rule.environment],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let transactions: i64 = if rule.environment.is_some() {
                count_events(ctx, row, rule, since, Some(Dataset::Transactions), None)?
            } else {
                cached_row(
                    conn,
                    "SELECT COALESCE(SUM(count), 0) FROM rollup_latency WHERE project_id = ?1 AND kind = 'transaction' AND minute >= ?2",
                    params![project, minute_since],
                    |r| r.get(0),
                )?
            };
            let all = events + transactions;
            (all > 0).then(|| errors as f64 / all as f64 * 100.0)
        }
        Aggregate::ErrorRate => {
            let all = count_events(ctx, row, rule, since, Some(Dataset::All), None)?;
            let errors = count_events(ctx, row, rule, since, Some(Dataset::Errors), None)?;
            (all > 0).then(|| errors as f64 / all as f64 * 100.0)
        }
        Aggregate::TagRatio { key, value } => {
            let with_key = count_tagged(ctx, row, rule, since, key, None)?;
            let with_value = count_tagged(ctx, row, rule, since, key, Some(value))?;
            (with_key > 0).then(|| with_value as f64 / with_key as f64 * 100.0)
        }
    };
    Ok(vec![(String::new(), value)])
}

fn latency_filter(rule: &MetricRule) -> (&'static str, Option<String>, Option<String>) {
    let of = match rule.aggregate {
        Aggregate::Percentile { of, .. } | Aggregate::Avg { of } => of,
        _ => Dur::Transaction,
    };
    let (mut name, mut op) = (None, None);
    for t in &rule.query {
        if let Term::Tag { key, value, .. } = t {
            match key.as_str() {
                "transaction" => name = Some(value.clone()),
                "transaction.op" | "span.op" => op = Some(value.clone()),
                _ => {}
            }
        }
    }
    match of {
        Dur::Transaction => ("transaction", name, op),
        // Span rows are keyed by op in both name and op.
        Dur::Span => ("span", None, op),
    }
}

#[derive(Debug, Clone, Copy)]
enum Dataset {
    All,
    Errors,
    Transactions,
}

/// Build `WHERE` conditions of a metric rule's query over `events e`.
fn query_sql(
    rule: &MetricRule,
    dataset: Option<Dataset>,
    sql: &mut String,
    args: &mut Vec<rusqlite::types::Value>,
) {
    use rusqlite::types::Value as V;
    match dataset {
        Some(Dataset::All) => {}
        Some(Dataset::Errors) => {
            sql.push_str(" AND e.kind != 'transaction' AND e.level IN ('fatal', 'error')")
        }
        Some(Dataset::Transactions) => sql.push_str(" AND e.kind = 'transaction'"),
        None => {
            if rule.dataset == "transactions" {
                sql.push_str(" AND e.kind = 'transaction'");
            } else {
                sql.push_str(" AND e.kind != 'transaction'");
            }
        }
    }
    if let Some(env) = &rule.environment {
        sql.push_str(" AND e.environment = ?");
        args.push(V::Text(env.clone()));
    }
    for t in &rule.query {
        match t {
            Term::Level(l) => {
                sql.push_str(" AND e.level = ?");
                args.push(V::Text(l.clone()));
            }
            Term::Release(r) => {
                sql.push_str(" AND e.release = ?");
                args.push(V::Text(r.clone()));
            }
            Term::Environment(env) => {
                sql.push_str(" AND e.environment = ?");
                args.push(V::Text(env.clone()));
            }
            Term::Tag {
                key,
                value,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                match key.as_str() {
                    "event.type" => {
                        let kind = match value.as_str() {
                            "error" => "error",
                            "transaction" => "transaction",
                            _ => "default",
                        };
                        sql.push_str(&format!(" AND {not}(e.kind = ?)"));
                        args.push(V::Text(kind.into()));
                    }
                    "transaction" => {
                        sql.push_str(&format!(" AND {not}(e.transaction_name = ?)"));
                        args.push(V::Text(value.clone()));
                    }
                    "transaction.op" | "span.op" => {
                        sql.push_str(&format!(
                            " AND {not}EXISTS (SELECT 1 FROM spans s WHERE s.event_row = e.id AND s.op = ?)"
                        ));
                        args.push(V::Text(value.clone()));
                    }
                    _ => {
                        sql.push_str(&format!(
                            " AND {not}EXISTS (SELECT 1 FROM event_tags t WHERE t.event_row = e.id AND t.key = ? AND t.value = ?)"
                        ));
                        args.push(V::Text(key.clone()));
                        args.push(V::Text(value.clone()));
                    }
                }
            }
            Term::Text(text) => {
                sql.push_str(" AND e.title LIKE ?");
                args.push(V::Text(format!("%{text}%")));
            }
            Term::Status(_) => {}
        }
    }
}

fn count_events(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &MetricRule,
    since: i64,
    dataset: Option<Dataset>,
    unique_users: Option<()>,
) -> Result<i64> {
    let what = if unique_users.is_some() {
        "COUNT(DISTINCT e.user_key)"
    } else {
        "COUNT(*)"
    };
    let mut sql =
        format!("SELECT {what} FROM events e WHERE e.project_id = ? AND e.timestamp >= ?");
    let mut args = vec![
        rusqlite::types::Value::Integer(row.project_id),
        rusqlite::types::Value::Integer(since),
    ];
    query_sql(rule, dataset, &mut sql, &mut args);
    let mut stmt = ctx.conn.prepare_cached(&sql)?;
    Ok(stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0))?)
}

fn count_tagged(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &MetricRule,
    since: i64,
    key: &str,
    value: Option<&str>,
) -> Result<i64> {
    use rusqlite::types::Value as V;
    // The tag index is (key, value, event_row) and event rows grow with time: bound the
    // scan by the first row of the window.
    let first_row: Option<i64> = cached_row(
        ctx.conn,
        "SELECT MIN(id) FROM events WHERE project_id = ?1 AND timestamp >= ?2",
        params![row.project_id, since],
        |r| r.get(0),
    )?;
    let Some(first_row) = first_row else {
        return Ok(0);
    };
    let mut sql = String::from(
        "SELECT COUNT(*) FROM event_tags t JOIN events e ON e.id = t.event_row WHERE t.key = ? AND t.event_row >= ? AND e.project_id = ? AND e.timestamp >= ?",
    );
    let mut args = vec![
        V::Text(key.to_owned()),
        V::Integer(first_row),
        V::Integer(row.project_id),
        V::Integer(since),
    ];
    if let Some(v) = value {
        sql.push_str(" AND t.value = ?");
        args.push(V::Text(v.to_owned()));
    }
    query_sql(rule, None, &mut sql, &mut args);
    let mut stmt = ctx.conn.prepare_cached(&sql)?;
    Ok(stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0))?)
}

/// Per agent: 1.0 when down. An agent is a session's distinct id (the agent library sets
/// it to the agent id) or a heartbeat monitor `agent-<id>-heartbeat`.
fn agents_down(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    grace_secs: i64,
) -> Result<Vec<(String, Option<f64>)>> {
    let conn = ctx.conn;
    let grace = grace_secs * 1000;
    let mut out: HashMap<String, f64> = HashMap::new();
    // The latest session of each agent seen in the last day.
    let mut stmt = conn.prepare_cached(
        "SELECT did, status, updated, started FROM sessions s
         WHERE project_id = ?1 AND did IS NOT NULL AND updated >= ?2
           AND started = (SELECT MAX(started) FROM sessions s2 WHERE s2.project_id = s.project_id AND s2.did = s.did)",
    )?;
    let rows = stmt.query_map(params![row.project_id, ctx.now - 86_400_000], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for r in rows {
        let (did, status, updated, _started) = r?;
        let down = matches!(status.as_str(), "crashed" | "abnormal") && ctx.now - updated >= grace;
        let v = out.entry(did).or_insert(0.0);
        if down {
            *v = 1.0;
        }
    }
    // Heartbeat monitors in a failed state (when the monitors tables exist).
    let has_monitors: bool = cached_row(
        conn,
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'monitor_environments'",
        [],
        |_| Ok(()),
    )
    .optional()?
    .is_some();
    if has_monitors {
        // The monitors schema is read defensively: a mismatch skips heartbeats, loudly.
        match conn.prepare_cached(
            "SELECT m.slug, me.status FROM monitor_environments me JOIN monitors m ON m.id = me.monitor_id
             WHERE m.project_id = ?1 AND m.slug LIKE 'agent-%-heartbeat'",
        ) {
            Err(e) => tracing::warn!(error = %e, "heartbeat monitors unreadable; skipped"),
            Ok(mut stmt) => {
                let rows = stmt.query_map([row.project_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                for r in rows {
                    let (slug, status) = r?;
                    let agent = slug
                        .strip_prefix("agent-")
                        .and_then(|s| s.strip_suffix("-heartbeat"))
                        .unwrap_or(&slug)
                        .to_owned();
                    let failed = matches!(status.as_str(), "error" | "missed_checkin" | "timeout");
                    let v = out.entry(agent).or_insert(0.0);
                    if failed {
                        *v = 1.0;
                    }
                }
            }
        }
    }
    // Agents with a known state row stay evaluated so they can resolve.
    let mut stmt =
        conn.prepare_cached("SELECT key FROM alert_state WHERE rule_id = ?1 AND state != 'ok'")?;
    let known: Vec<String> = stmt
        .query_map([row.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for k in known {
        out.entry(k).or_insert(0.0);
    }
    Ok(out.into_iter().map(|(k, v)| (k, Some(v))).collect())
}

fn parse_metric(conn: &Connection, row: &RuleRow) -> Result<Option<MetricRule>> {
    let ids = integration_ids(conn, row.org_id)?;
    match rules::parse_metric_rule(&row.spec, &ids) {
        Ok(r) => Ok(Some(r)),
        Err(e) => {
            tracing::warn!(rule = row.id, errors = %e, "stored metric rule no longer valid; skipped");
            Ok(None)
        }
    }
}

fn evaluate_metric_rule(ctx: &Ctx<'_>, row: &RuleRow) -> Result<()> {
    let Some(rule) = parse_metric(ctx.conn, row)? else {
        return Ok(());
    };
    let values = metric_values(ctx, row, &rule)?;
    apply_values(ctx, row, &rule, &values, None)
}

/// Move a rule's states to where `values` put them (inside a write transaction).
/// The state rows of every rule when a measurement started: (rule, key) → (state, since).
type StateSnapshot = HashMap<(i64, String), (String, i64)>;

fn state_snapshot(conn: &Connection) -> Result<StateSnapshot> {
    let mut stmt = conn.prepare_cached("SELECT rule_id, key, state, since FROM alert_state")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Move a rule's states to where `values` put them (inside a write transaction). With a
/// `snapshot` (values measured before the lock), a state that changed since is left alone:
/// whoever changed it measured later.
fn apply_values(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &MetricRule,
    values: &[(String, Option<f64>)],
    snapshot: Option<&StateSnapshot>,
) -> Result<()> {
    let rule = rule.clone();
    for (key, value) in values.iter().cloned() {
        let mut state_stmt = ctx.conn.prepare_cached(
            "SELECT state, incident_id, since FROM alert_state WHERE rule_id = ?1 AND key = ?2",
        )?;
        let current: Option<(String, Option<i64>, i64)> = state_stmt
            .query_row(params![row.id, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some(snapshot) = snapshot {
            let then = snapshot.get(&(row.id, key.clone()));
            let now = current.as_ref().map(|(s, _, since)| (s.clone(), *since));
            if then.cloned() != now {
                continue;
            }
        }
        let (current_level, incident) = current
            .map(|(s, i, _)| (Level::parse(&s), i))
            .unwrap_or((Level::Ok, None));
        let Some(value) = value else {
            // No data in the window: an open alert on absence of data resolves.
            if current_level != Level::Ok {
                transition(
                    ctx,
                    row,
                    &rule,
                    &key,
                    current_level,
                    Level::Ok,
                    incident,
                    None,
                )?;
            }
            continue;
        };
        let next = next_level(&rule, current_level, value);
        if next != current_level {
            transition(
                ctx,
                row,
                &rule,
                &key,
                current_level,
                next,
                incident,
                Some(value),
            )?;
        }
    }
    Ok(())
}

fn breaches(t: ThresholdType, value: f64, threshold: f64) -> bool {
    match t {
        ThresholdType::Above => value > threshold,
        ThresholdType::Below => value < threshold,
    }
}

/// Where a rule goes from `current` given `value` (hysteresis via resolve thresholds).
fn next_level(rule: &MetricRule, current: Level, value: f64) -> Level {
    let t = rule.threshold_type;
    let critical = rule.triggers.iter().find(|x| x.label == "critical");
    let warning = rule.triggers.iter().find(|x| x.label == "warning");
    if critical.is_some_and(|c| breaches(t, value, c.alert_threshold)) {
        return Level::Critical;
    }
    if warning.is_some_and(|w| breaches(t, value, w.alert_threshold)) {
        return Level::Warning;
    }
    if current == Level::Ok {
        return Level::Ok;
    }
    // Not breaching any more: resolve only past the resolve threshold, if one is set.
    let active = if current == Level::Critical {
        critical
    } else {
        warning.or(critical)
    };
    let resolve = active
        .and_then(|a| a.resolve_threshold)
        .or(rule.resolve_threshold);
    match resolve {
        Some(r) => {
            let past = match t {
                ThresholdType::Above => value < r,
                ThresholdType::Below => value > r,
            };
            if past {
                Level::Ok
            } else if current == Level::Critical && warning.is_some() {
                Level::Warning
            } else {
                current
            }
        }
        None => {
            if current == Level::Critical
                && warning.is_some_and(|w| breaches(t, value, w.alert_threshold))
            {
                Level::Warning
            } else {
                Level::Ok
            }
        }
    }
}

fn format_value(rule: &MetricRule, v: f64) -> String {
    match rule.aggregate {
        Aggregate::Percentile { .. } | Aggregate::Avg { .. } => format!("{v:.0} ms"),
        Aggregate::FailureRate => format!("{:.1}%", v * 100.0),
        Aggregate::CrashFreeSessions
        | Aggregate::CrashFreeUsers
        | Aggregate::ErrorRate
        | Aggregate::TagRatio { .. } => {
            format!("{v:.1}%")
        }
        Aggregate::AgentDown { .. } => {
            if v > 0.0 {
                "down".into()
            } else {
                "up".into()
            }
        }
        _ => format!("{v}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn transition(
    ctx: &Ctx<'_>,
    row: &RuleRow,
    rule: &MetricRule,
    key: &str,
    from: Level,
    to: Level,
    incident: Option<i64>,
    value: Option<f64>,
) -> Result<()> {
    let conn = ctx.conn;
    let subject = match (&rule.aggregate, key.is_empty()) {
        (_, true) => row.name.clone(),
        (Aggregate::AgentDown { .. }, false) => format!("{} (agent {key})", row.name),
        _ => format!("{} ({key})", row.name),
    };
    let shown = value
        .map(|v| format_value(rule, v))
        .unwrap_or_else(|| "no data".into());
    let (incident, act) = if from == Level::Ok {
        cached_execute(
            conn,
            "INSERT INTO incidents (rule_id, project_id, key, status, severity, title, value, opened_at) VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7)",
            params![
                row.id,
                row.project_id,
                key,
                to.as_str(),
                subject,
                value,
                ctx.now
            ],
        )?;
        let id = conn.last_insert_rowid();
        activity(
            conn,
            id,
            ctx.now,
            to.as_str(),
            &format!("{subject}: {shown}"),
        )?;
        (id, notify::Act::Trigger)
    } else {
        let id = incident.ok_or_else(|| {
            StoreError::Invalid(format!("rule {} has state without incident", row.id))
        })?;
        if to == Level::Ok {
            cached_execute(
                conn,
                "UPDATE incidents SET status = 'closed', closed_at = ?2, value = ?3 WHERE id = ?1",
                params![id, ctx.now, value],
            )?;
            activity(
                conn,
                id,
                ctx.now,
                "resolved",
                &format!("{subject}: {shown}"),
            )?;
            (id, notify::Act::Resolve)
        } else {
            cached_execute(
                conn,
                "UPDATE incidents SET severity = ?2, value = ?3 WHERE id = ?1",
                params![id, to.as_str(), value],
            )?;
            activity(
                conn,
                id,
                ctx.now,
                to.as_str(),
                &format!("{subject}: {shown}"),
            )?;
            (id, notify::Act::Trigger)
        }
    };
    cached_execute(
        conn,
        "INSERT INTO alert_state (rule_id, key, state, value, since, incident_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO UPDATE SET state = excluded.state, value = excluded.value, since = excluded.since, incident_id = excluded.incident_id",
        params![row.id, key, to.as_str(), value, ctx.now, if to == Level::Ok { None } else { Some(incident) }],
    )?;
    // Actions: of the trigger now active, or (on resolve) of the one that was.
    let label = if to == Level::Ok { from } else { to };
    let actions: Vec<Action> = rule
        .triggers
        .iter()
        .find(|t| t.label == label.as_str())
        .or_else(|| rule.triggers.first())
        .map(|t| t.actions.clone())
        .unwrap_or_default();
    let verb = match (act, to) {
        (notify::Act::Resolve, _) => "Resolved",
        (_, Level::Warning) => "Warning",
        _ => "Critical",
    };
    let message = notify::Message {
        kind: "metric",
        action: act,
        rule_id: row.id,
        rule_name: row.name.clone(),
        project: row.project_slug.clone(),
        incident_id: incident,
        severity: if to == Level::Ok {
            "resolved".into()
        } else {
            to.as_str().into()
        },
        title: subject.clone(),
        text: format!("{verb}: {subject}: {shown}"),
        culprit: String::new(),
        value,
        url: format!("{}/alerts/incidents/{incident}/", ctx.public_url),
        dedup_key: format!("lookout-incident-{incident}"),
        issue: None,
        event: None,
        at: ctx.now,
    };
    enqueue(conn, row, &actions, &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(body: Value) -> MetricRule {
        rules::parse_metric_rule(&body, &[]).unwrap()
    }

    #[test]
    fn a_costly_rule_waits_its_share_and_a_cheap_one_never_waits() {
        let costs = EvalCosts::default();
        assert!(!costs.paced(1), "a rule never evaluated is due");
        costs.measure(1, || ());
        assert!(!costs.paced(1), "a cheap rule is never paced");
        // The time an evaluation takes is what is recorded.
        costs.measure(2, || std::thread::sleep(COSTLY_EVAL));
        let (_, took) = costs.lock()[&2];
        assert!(took >= COSTLY_EVAL, "{took:?}");
        // A costly evaluation that just ended paces the rule…
        let took = COSTLY_EVAL * 4;
        costs.lock().insert(3, (Instant::now(), took));
        assert!(costs.paced(3));
        // …until its share has passed.
        let long_ago = Instant::now()
            .checked_sub(took * COST_SHARE)
            .expect("the monotonic clock is older than that");
        costs.lock().insert(3, (long_ago, took));
        assert!(!costs.paced(3));
    }

    #[test]
    fn hysteresis_of_the_p99_preset() {
        let (_, _, body) = rules::presets()
            .into_iter()
            .find(|p| p.0 == "p99_latency_breach")
            .unwrap();
        let r = rule(body);
        assert_eq!(next_level(&r, Level::Ok, 2500.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Ok, 1500.0), Level::Ok);
        // Between the resolve (1 s) and alert (2 s) thresholds it stays critical.
        assert_eq!(next_level(&r, Level::Critical, 1500.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Critical, 900.0), Level::Ok);
    }

    #[test]
    fn warning_and_below_thresholds() {
        let r = rule(
            json!({"name": "crash", "aggregate": "percentage(sessions_crashed, sessions)", "query": "",
            "timeWindow": 60, "thresholdType": 1,
            "triggers": [{"label": "critical", "alertThreshold": 95, "actions": []},
                         {"label": "warning", "alertThreshold": 99, "actions": []}]}),
        );
        assert_eq!(next_level(&r, Level::Ok, 99.5), Level::Ok);
        assert_eq!(next_level(&r, Level::Ok, 98.0), Level::Warning);
        assert_eq!(next_level(&r, Level::Warning, 90.0), Level::Critical);
        assert_eq!(next_level(&r, Level::Critical, 98.0), Level::Warning);
        assert_eq!(next_level(&r, Level::Warning, 99.9), Level::Ok);
    }
}
