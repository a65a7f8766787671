//! The alert stage's side of the store: the feed of digested events it consumes, its
//! cursor, the windows its metric rules measure, and the incidents, states and outbox rows
//! it writes.
//!
//! The digest appends one feed row per stored error event (with what the event did to its
//! issue) and one per project a batch touched, in the batch's own transaction. The alert
//! stage reads the rows after its cursor and writes everything an evaluation decides, the
//! new cursor included, in one transaction ([`AlertStage::run`]): a crash between the two
//! stages neither loses nor repeats a notification.

use super::alerts::{Integration, StoredRule};
use super::db::Db;
use super::sql::{Backend, Conn, OptionalExtension, Value as SqlValue, params};
use super::{Result, StoreError};
use lookout_protocol::sketch::DDSketch;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// A stored error or message event as issue alert rules see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FedEvent {
    /// The event's id.
    pub event_id: String,
    /// The issue it was grouped into.
    pub issue_id: i64,
    /// This event created the issue.
    pub new_issue: bool,
    /// This event reopened a resolved issue.
    pub regression: bool,
    /// Level (`error`, `fatal`, …).
    pub level: String,
    /// Environment, if the SDK sent one.
    pub environment: Option<String>,
    /// Release, if any.
    pub release: Option<String>,
    /// Transaction name, if any.
    pub transaction: Option<String>,
    /// Title as grouped.
    pub title: String,
    /// Where it happened: the culprit Sentry shows under the title.
    pub culprit: String,
    /// Grouping metadata (JSON text: exception type and value).
    pub metadata: String,
    /// Tags, in the order the event carried them.
    pub tags: Vec<(String, String)>,
    /// When the server received it (ms).
    pub received_ms: i64,
}

/// One row of the feed: an event, or a project a batch touched (transactions, sessions).
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// Position in the feed.
    pub seq: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// The event, for an event row.
    pub event: Option<FedEvent>,
}

/// The issue an event was grouped into, as issue alerts read it.
#[derive(Debug, Clone)]
pub struct IssueSnapshot {
    /// First event (ms).
    pub first_seen: i64,
    /// Events so far.
    pub times_seen: i64,
    /// Per-project sequence number (the short id's suffix).
    pub short_seq: i64,
    /// Title as shown in lists.
    pub title: String,
    /// Where it happened: the culprit Sentry shows under the title.
    pub culprit: String,
    /// Severity: `fatal`, `error`, `warning`, `info` or `debug`.
    pub level: String,
}

/// The state of one key of a metric rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// `ok`, `warning` or `critical`.
    pub state: String,
    /// The open incident, when not ok.
    pub incident_id: Option<i64>,
    /// Since when (ms).
    pub since: i64,
}

/// A new incident.
#[derive(Debug, Clone)]
pub struct NewIncident<'a> {
    /// The rule that opened it.
    pub rule_id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// The agent id, issue short id or `""` the incident is about.
    pub key: &'a str,
    /// The issue, for issue alerts.
    pub issue_id: Option<i64>,
    /// `open` (metric alerts, until resolved) or `fired` (one firing of an issue alert).
    pub status: &'a str,
    /// `critical`, `warning`, `error`, `info`.
    pub severity: &'a str,
    /// Title as shown in lists.
    pub title: &'a str,
    /// The measured value, if any.
    pub value: Option<f64>,
    /// When it happened (ms since the epoch).
    pub at: i64,
}

/// A rendered notification for one channel.
#[derive(Debug, Clone)]
pub struct Notification<'a> {
    /// The incident it is about.
    pub incident_id: i64,
    /// The channel it goes to.
    pub integration_id: i64,
    /// The channel's provider.
    pub provider: &'a str,
    /// Where it goes.
    pub url: &'a str,
    /// What it says.
    pub body: &'a str,
    /// When it was written (ms).
    pub at: i64,
}

/// Which tag rows a rollup count reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSel<'a> {
    /// Every event (the total rows).
    Total,
    /// Events that carry tag `key`, whatever its value.
    Key(&'a str),
    /// Events whose tag `key` is `value`.
    Value(&'a str, &'a str),
}

/// What a rollup count filters on.
#[derive(Debug, Clone, Copy)]
pub struct RollupFilter<'a> {
    /// Kinds counted: `error`, `default`, `transaction`.
    pub kinds: &'a [&'a str],
    /// Only this environment.
    pub environment: Option<&'a str>,
    /// Only transactions of this op.
    pub op: Option<&'a str>,
    /// Only these levels (events); empty: any.
    pub levels: &'a [&'a str],
    /// Which tag rows.
    pub tag: TagSel<'a>,
}

/// Read access to the windows metric rules measure: rollups, sessions, events.
#[derive(Debug)]
pub struct Measurer<'c> {
    conn: &'c Conn,
}

/// The merged latency of a window: transactions or spans matching a name and an op.
#[derive(Debug, Clone, Default)]
pub struct LatencyWindow {
    /// How many.
    pub count: i64,
    /// How many failed.
    pub errors: i64,
    /// Their durations.
    pub sketch: DDSketch,
}

impl Measurer<'_> {
    /// The connection measured on, for the repositories that add measures (`triage`).
    pub(super) fn conn(&self) -> &Conn {
        self.conn
    }

    /// Merged latency of `kind` (`transaction` or `span`) rows of `project` from
    /// `minute_since`, optionally only those named `name` and of op `op`.
    pub fn latency(
        &self,
        project: i64,
        kind: &str,
        name: Option<&str>,
        op: Option<&str>,
        minute_since: i64,
    ) -> Result<LatencyWindow> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count, errors, sketch, name, op FROM rollup_latency WHERE project_id = ?1 AND kind = ?2 AND minute >= ?3",
        )?;
        let mut out = LatencyWindow::default();
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
            if name.is_some_and(|w| w != n) || op.is_some_and(|w| w != o) {
                continue;
            }
            out.count += c;
            out.errors += e;
            if let Ok(s) = DDSketch::from_bytes(&bytes) {
                out.sketch.merge(&s);
            }
        }
        Ok(out)
    }

    /// Sessions started and crashed in `project` from `minute_since`.
    pub fn sessions(
        &self,
        project: i64,
        minute_since: i64,
        environment: Option<&str>,
    ) -> Result<(i64, i64)> {
        self.conn
            .prepare_cached(
                "SELECT COALESCE(SUM(init), 0), COALESCE(SUM(crashed), 0) FROM rollup_sessions
             WHERE project_id = ?1 AND minute >= ?2 AND (?3 IS NULL OR environment = ?3)",
            )?
            .query_row(params![project, minute_since, environment], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }

    /// Users seen and users with a crashed session in `project` since `since`.
    pub fn users(&self, project: i64, since: i64, environment: Option<&str>) -> Result<(i64, i64)> {
        self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN crashed > 0 THEN 1 ELSE 0 END), 0) FROM session_users
             WHERE project_id = ?1 AND last_seen >= ?2 AND (?3 IS NULL OR environment = ?3)",
            )?
            .query_row(params![project, since, environment], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
    }

    /// Error-level events and all events of `project` from `minute_since`, from the
    /// per-minute rollups.
    pub fn event_levels(
        &self,
        project: i64,
        minute_since: i64,
        environment: Option<&str>,
    ) -> Result<(i64, i64)> {
        self.conn.prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN level IN ('fatal', 'error') THEN count END), 0), COALESCE(SUM(count), 0)
             FROM rollup_events WHERE project_id = ?1 AND minute >= ?2 AND (?3 IS NULL OR environment = ?3)",
        )?
        .query_row(params![project, minute_since, environment], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// Transactions of `project` from `minute_since`, from the latency rollups.
    pub fn transactions(&self, project: i64, minute_since: i64) -> Result<i64> {
        self.conn.prepare_cached(
            "SELECT COALESCE(SUM(count), 0) FROM rollup_latency WHERE project_id = ?1 AND kind = 'transaction' AND minute >= ?2",
        )?
        .query_row(params![project, minute_since], |r| r.get(0))
    }

    /// Events of `project` from `minute_since` matching `filter`, from the tag rollups.
    pub fn rollup_count(
        &self,
        project: i64,
        minute_since: i64,
        f: &RollupFilter<'_>,
    ) -> Result<i64> {
        if f.kinds.is_empty() {
            return Ok(0);
        }
        let mut sql = String::from(
            "SELECT COALESCE(SUM(count), 0) FROM rollup_tags WHERE project_id = ? AND minute >= ? AND key = ?",
        );
        let (key, value) = match f.tag {
            TagSel::Total => ("", Some("")),
            TagSel::Key(k) => (k, None),
            TagSel::Value(k, v) => (k, Some(v)),
        };
        let mut args = vec![
            SqlValue::Integer(project),
            SqlValue::Integer(minute_since),
            SqlValue::Text(key.to_owned()),
        ];
        if let Some(v) = value {
            sql.push_str(" AND value = ?");
            args.push(SqlValue::Text(v.to_owned()));
        }
        in_list(&mut sql, &mut args, "kind", f.kinds);
        in_list(&mut sql, &mut args, "level", f.levels);
        if let Some(env) = f.environment {
            sql.push_str(" AND environment = ?");
            args.push(SqlValue::Text(env.to_owned()));
        }
        if let Some(op) = f.op {
            sql.push_str(" AND op = ?");
            args.push(SqlValue::Text(op.to_owned()));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        stmt.query_row(super::sql::params_from_iter(args), |r| r.get(0))
    }

    /// Distinct users of `kinds` in `project` from `minute_since`, from the user rollups.
    pub fn rollup_users(
        &self,
        project: i64,
        minute_since: i64,
        kinds: &[&str],
        environment: Option<&str>,
    ) -> Result<i64> {
        if kinds.is_empty() {
            return Ok(0);
        }
        let mut sql = String::from(
            "SELECT COUNT(DISTINCT user_key) FROM rollup_users WHERE project_id = ? AND minute >= ?",
        );
        let mut args = vec![SqlValue::Integer(project), SqlValue::Integer(minute_since)];
        in_list(&mut sql, &mut args, "kind", kinds);
        if let Some(env) = environment {
            sql.push_str(" AND environment = ?");
            args.push(SqlValue::Text(env.to_owned()));
        }
        let mut stmt = self.conn.prepare_cached(&sql)?;
        stmt.query_row(super::sql::params_from_iter(args), |r| r.get(0))
    }

    /// The latest session of each agent of `project` updated since `since`: (agent id,
    /// status, last update ms). A session's agent is the `agent_id` tag of the events it
    /// travelled with, else the agent its distinct id names.
    pub fn latest_sessions(&self, project: i64, since: i64) -> Result<Vec<(String, String, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT agent, status, updated FROM sessions s
             WHERE project_id = ?1 AND agent IS NOT NULL AND updated >= ?2
               AND started = (SELECT MAX(started) FROM sessions s2 WHERE s2.project_id = s.project_id AND s2.agent = s.agent)",
        )?;
        let rows = stmt.query_map(params![project, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<Result<_>>()
    }

    /// The heartbeat monitors (`agent-<id>-heartbeat`) of `project` and the status of each
    /// of their environments.
    pub fn heartbeats(&self, project: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.slug, me.status FROM monitor_environments me JOIN monitors m ON m.id = me.monitor_id
             WHERE m.project_id = ?1 AND m.slug LIKE 'agent-%-heartbeat'",
        )?;
        let rows = stmt.query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_>>()
    }

    /// The keys of `rule` whose state is not ok.
    pub fn alerting_keys(&self, rule: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key FROM alert_state WHERE rule_id = ?1 AND state != 'ok'")?;
        let keys = stmt
            .query_map([rule], |r| r.get(0))?
            .collect::<Result<_>>()?;
        Ok(keys)
    }
}

/// `AND column IN (?, …)` when `values` is not empty.
fn in_list(sql: &mut String, args: &mut Vec<SqlValue>, column: &str, values: &[&str]) {
    if values.is_empty() {
        return;
    }
    sql.push_str(" AND ");
    sql.push_str(column);
    sql.push_str(" IN (");
    for (i, v) in values.iter().enumerate() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
        args.push(SqlValue::Text((*v).to_owned()));
    }
    sql.push(')');
}

/// One transaction of the alert stage: what it reads to decide, and what it writes.
#[derive(Debug)]
pub struct AlertTx<'c> {
    conn: &'c Conn,
    /// Issues read in this transaction: every rule evaluated on an event reads its issue,
    /// and on PostgreSQL each read is a round trip.
    issues: std::cell::RefCell<std::collections::HashMap<i64, IssueSnapshot>>,
    /// A `pause_agent` action changed a trading state: wake the control channel on commit.
    trading_changed: std::cell::Cell<bool>,
}

impl AlertTx<'_> {
    /// The transaction's connection, for the repositories that add reads to it
    /// (`triage`).
    pub(super) fn conn(&self) -> &Conn {
        self.conn
    }

    /// Pause an agent in this transaction (an alert's `pause_agent` action);
    /// [`StoreError::NotFound`] when the digest never saw it in the project.
    pub fn pause_agent(
        &self,
        project_id: i64,
        agent_id: &str,
        pause: &super::trading::Pause<'_>,
        now: i64,
    ) -> Result<super::trading::TradingState> {
        let state = super::trading::pause_in(self.conn, project_id, agent_id, pause, now)?;
        self.trading_changed.set(true);
        Ok(state)
    }

    /// Resume an agent in this transaction if its current pause is the one `origin` made;
    /// returns whether it did.
    pub fn resume_agent(
        &self,
        project_id: i64,
        agent_id: &str,
        by: &super::trading::Actor,
        origin: &str,
        now: i64,
    ) -> Result<bool> {
        let (_, changed) =
            super::trading::resume_in(self.conn, project_id, agent_id, by, Some(origin), now)?;
        if changed {
            self.trading_changed.set(true);
        }
        Ok(changed)
    }

    /// The agents paused by `origin` whose pause still stands.
    pub fn paused_by_origin(&self, project_id: i64, origin: &str) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT agent_id FROM agent_trading WHERE project_id = ?1 AND state = 'paused' AND origin = ?2",
        )?;
        let rows = stmt.query_map(params![project_id, origin], |r| r.get(0))?;
        rows.collect()
    }

    /// The windows, read inside this transaction.
    pub fn measurer(&self) -> Measurer<'_> {
        Measurer { conn: self.conn }
    }

    /// Active rules, of some projects or all.
    pub fn rules(&self, projects: Option<&HashSet<i64>>) -> Result<Vec<StoredRule>> {
        active_rules(self.conn, projects)
    }

    /// The channels of organisation `org_id`.
    pub fn channels(&self, org_id: i64) -> Result<Vec<Integration>> {
        channels(self.conn, org_id)
    }

    /// The issue `id` as it stands (read once per transaction).
    pub fn issue(&self, id: i64) -> Result<IssueSnapshot> {
        if let Some(i) = self.issues.borrow().get(&id) {
            return Ok(i.clone());
        }
        let issue = self.conn.prepare_cached(
            "SELECT first_seen, times_seen, short_seq, title, culprit, level FROM issues WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(IssueSnapshot {
                first_seen: r.get(0)?,
                times_seen: r.get(1)?,
                short_seq: r.get(2)?,
                title: r.get(3)?,
                culprit: r.get(4)?,
                level: r.get(5)?,
            })
        })?;
        self.issues.borrow_mut().insert(id, issue.clone());
        Ok(issue)
    }

    /// Events of issue `issue` since `since` (ms).
    pub fn issue_events_since(&self, issue: i64, since: i64) -> Result<i64> {
        self.conn
            .prepare_cached("SELECT COUNT(*) FROM events WHERE issue_id = ?1 AND timestamp >= ?2")?
            .query_row(params![issue, since], |r| r.get(0))
    }

    /// Distinct users of issue `issue` since `since` (ms).
    pub fn issue_users_since(&self, issue: i64, since: i64) -> Result<i64> {
        self
            .conn
            .prepare_cached(
                "SELECT COUNT(DISTINCT user_key) FROM events WHERE issue_id = ?1 AND timestamp >= ?2",
            )?
            .query_row(params![issue, since], |r| r.get(0))
    }

    /// Whether a deploy of a release of `project` finished between `from` and `to` (ms).
    pub fn deployed_between(&self, project: i64, from: i64, to: i64) -> Result<bool> {
        let found: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT d.id FROM deploys d JOIN release_projects rp ON rp.release_id = d.release_id
                 WHERE rp.project_id = ?1 AND d.date_finished <= ?2 AND d.date_finished >= ?3
                 LIMIT 1",
            )?
            .query_row(params![project, to, from], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    /// When `rule` last fired for `issue` (the action interval).
    pub fn last_fired(&self, rule: i64, issue: i64) -> Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT last_fired FROM alert_issue_fires WHERE rule_id = ?1 AND issue_id = ?2",
            )?
            .query_row(params![rule, issue], |r| r.get(0))
            .optional()
    }

    /// Record that `rule` fired for `issue` at `at`.
    pub fn set_fired(&self, rule: i64, issue: i64, at: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO alert_issue_fires (rule_id, issue_id, last_fired) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rule_id, issue_id) DO UPDATE SET last_fired = excluded.last_fired",
            )?
            .execute(params![rule, issue, at])?;
        Ok(())
    }

    /// Open an incident; returns its id.
    pub fn open_incident(&self, i: &NewIncident<'_>) -> Result<i64> {
        let closed_at = (i.status == "fired").then_some(i.at);
        self.conn
            .prepare_cached(
                "INSERT INTO incidents (rule_id, project_id, key, issue_id, status, severity, title, value, opened_at, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
            )?
            .query_row(
                params![
                    i.rule_id,
                    i.project_id,
                    i.key,
                    i.issue_id,
                    i.status,
                    i.severity,
                    i.title,
                    i.value,
                    i.at,
                    closed_at
                ],
                |r| r.get(0),
            )
    }

    /// Close incident `id` at `at` with its last value.
    pub fn close_incident(&self, id: i64, at: i64, value: Option<f64>) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE incidents SET status = 'closed', closed_at = ?2, value = ?3 WHERE id = ?1",
            )?
            .execute(params![id, at, value])?;
        Ok(())
    }

    /// Change the severity and value of open incident `id`.
    pub fn escalate_incident(&self, id: i64, severity: &str, value: Option<f64>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE incidents SET severity = ?2, value = ?3 WHERE id = ?1")?
            .execute(params![id, severity, value])?;
        Ok(())
    }

    /// Add a step to incident `id`'s timeline.
    pub fn activity(&self, incident: i64, at: i64, kind: &str, detail: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO incident_activity (incident_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![incident, at, kind, detail])?;
        Ok(())
    }

    /// The state of key `key` of metric rule `rule`.
    pub fn state(&self, rule: i64, key: &str) -> Result<Option<KeyState>> {
        state(self.conn, rule, key)
    }

    /// Set the state of key `key` of metric rule `rule`.
    pub fn set_state(
        &self,
        rule: i64,
        key: &str,
        state: &str,
        value: Option<f64>,
        since: i64,
        incident: Option<i64>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO alert_state (rule_id, key, state, value, since, incident_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (rule_id, key) DO UPDATE SET state = excluded.state, value = excluded.value, since = excluded.since, incident_id = excluded.incident_id",
            )?
            .execute(params![rule, key, state, value, since, incident])?;
        Ok(())
    }

    /// Queue a notification for delivery.
    pub fn enqueue(&self, n: &Notification<'_>) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (incident_id, integration_id, provider, url, body, status, attempts, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, 0, ?6)",
            )?
            .execute(params![
                n.incident_id,
                n.integration_id,
                n.provider,
                n.url,
                n.body,
                n.at
            ])?;
        Ok(())
    }

    /// Install the preset rules (`presets`: preset id, kind, body) on every project that
    /// has not had them yet.
    pub fn ensure_presets(&self, presets: &[(&str, &str, Value)], now: i64) -> Result<()> {
        ensure_presets(self.conn, presets, now)
    }
}

fn state(conn: &Conn, rule: i64, key: &str) -> Result<Option<KeyState>> {
    conn.prepare_cached(
        "SELECT state, incident_id, since FROM alert_state WHERE rule_id = ?1 AND key = ?2",
    )?
    .query_row(params![rule, key], |r| {
        Ok(KeyState {
            state: r.get(0)?,
            incident_id: r.get(1)?,
            since: r.get(2)?,
        })
    })
    .optional()
}

fn active_rules(conn: &Conn, projects: Option<&HashSet<i64>>) -> Result<Vec<StoredRule>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.project_id, p.slug, p.org_id, r.kind, r.name, r.spec, r.preset, r.date_created, r.date_modified
         FROM alert_rules r JOIN projects p ON p.id = r.project_id WHERE r.status = 'active' ORDER BY r.id",
    )?;
    let rows = stmt.query_map([], super::alerts::rule_of)?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        if projects.is_none_or(|p| p.contains(&row.project_id)) {
            out.push(row);
        }
    }
    Ok(out)
}

fn channels(conn: &Conn, org_id: i64) -> Result<Vec<Integration>> {
    super::alerts::integrations_of(conn, org_id)
}

fn ensure_presets(conn: &Conn, presets: &[(&str, &str, Value)], now: i64) -> Result<()> {
    // Projects that lack a record of some preset: new projects, and every project once a
    // release adds a preset.
    let missing: Vec<i64> = conn
        .prepare_cached(
            "SELECT p.id FROM projects p
             WHERE (SELECT COUNT(*) FROM alert_presets_added a WHERE a.project_id = p.id) < ?1",
        )?
        .query_map([presets.len() as i64], |r| r.get(0))?
        .collect::<Result<_>>()?;
    for project in missing {
        for (preset, kind, body) in presets {
            // Claim the (project, preset) first: a node starting at the same time waits here
            // for this transaction, then finds the claim taken and installs nothing twice. A
            // preset the operator deleted stays claimed, so it is not installed again.
            let claimed = conn
                .prepare_cached(
                    "INSERT INTO alert_presets_added (project_id, preset) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )?
                .execute(params![project, *preset])?;
            if claimed == 0 {
                continue;
            }
            let name = body["name"].as_str().unwrap_or(preset).to_owned();
            conn.prepare_cached(
                "INSERT INTO alert_rules (project_id, kind, name, spec, preset, date_created, date_modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )?
            .execute(params![project, *kind, name, body.to_string(), *preset, now])?;
        }
        conn.prepare_cached(
            "INSERT INTO alert_presets_installed (project_id) VALUES (?1) ON CONFLICT DO NOTHING",
        )?
        .execute([project])?;
    }
    Ok(())
}

/// The alert stage's repository.
#[derive(Debug, Clone)]
pub struct AlertStage {
    db: Arc<Db>,
}

impl AlertStage {
    pub(crate) fn new(db: Arc<Db>) -> AlertStage {
        AlertStage { db }
    }

    /// The last feed row the alert stage has evaluated.
    pub fn cursor(&self) -> Result<i64> {
        self.db
            .reader()?
            .query_row("SELECT last_seq FROM alert_cursor WHERE id = 1", [], |r| {
                r.get(0)
            })
    }

    /// Up to `limit` feed rows after `after`, in order. On a shared database, every row not
    /// yet evaluated, whatever `after` says: nodes digest at once and commit their feed
    /// rows in any order, so a row numbered below one already evaluated may appear later.
    pub fn feed(&self, after: i64, limit: i64) -> Result<Vec<FeedItem>> {
        let conn = self.db.reader()?;
        let after = match conn.backend() {
            Backend::Sqlite => after,
            Backend::Postgres => i64::MIN,
        };
        let mut stmt = conn.prepare_cached(
            "SELECT seq, project_id, event FROM alert_feed WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, project_id, event) = row?;
            let event = match event {
                None => None,
                Some(bytes) => match serde_json::from_slice::<FedEvent>(&bytes) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        // Written by this server: a row it cannot read is skipped, loudly.
                        tracing::error!(seq, error = %e, "unreadable alert feed row skipped");
                        None
                    }
                },
            };
            out.push(FeedItem {
                seq,
                project_id,
                event,
            });
        }
        Ok(out)
    }

    /// Run `f` in one write transaction; the feed rows `consumed` (those `f` evaluated) are
    /// dropped in the same transaction, and on SQLite the cursor moves past the last.
    pub fn run<T>(
        &self,
        consumed: Option<&[i64]>,
        f: impl FnOnce(&AlertTx<'_>) -> Result<T>,
    ) -> Result<T> {
        let upto = consumed.and_then(|seqs| seqs.iter().max().copied());
        let trading_changed = std::cell::Cell::new(false);
        let out = self.db.write(|tx| {
            let alert_tx = AlertTx {
                conn: tx,
                issues: Default::default(),
                trading_changed: std::cell::Cell::new(false),
            };
            let out = f(&alert_tx)?;
            trading_changed.set(alert_tx.trading_changed.get());
            if tx.backend() == Backend::Postgres {
                // Exactly the rows evaluated: rows other nodes commit later, numbered lower,
                // stay for the next step.
                if let Some(seqs) = consumed {
                    tx.prepare_cached(
                        "DELETE FROM alert_feed WHERE seq IN (SELECT CAST(value AS BIGINT) FROM json_each(?1))",
                    )?
                    .execute([serde_json::to_string(seqs).unwrap_or_default()])?;
                }
            } else if let Some(seq) = upto {
                let moved = tx
                    .prepare_cached(
                        "UPDATE alert_cursor SET last_seq = ?1 WHERE id = 1 AND last_seq < ?1",
                    )?
                    .execute([seq])?;
                if moved == 0 {
                    return Err(StoreError::Invalid(format!(
                        "the alert cursor is already at or past {seq}"
                    )));
                }
                tx.prepare_cached("DELETE FROM alert_feed WHERE seq <= ?1")?
                    .execute([seq])?;
            }
            Ok(out)
        })?;
        if trading_changed.get() {
            self.db.trading_bus.bump();
        }
        Ok(out)
    }

    /// Run `f` over the windows on a read connection (measurements taken without the
    /// writer, such as the clock tick's).
    pub fn measure<T>(&self, f: impl FnOnce(&Measurer<'_>) -> Result<T>) -> Result<T> {
        let conn = self.db.reader()?;
        f(&Measurer { conn: &conn })
    }

    /// Active rules, of some projects or all (read side).
    pub fn rules(&self, projects: Option<&HashSet<i64>>) -> Result<Vec<StoredRule>> {
        active_rules(&*self.db.reader()?, projects)
    }

    /// The channel ids of organisation `org_id` (read side).
    pub fn channel_ids(&self, org_id: i64) -> Result<Vec<i64>> {
        Ok(channels(&*self.db.reader()?, org_id)?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// The state of every key of every metric rule: (rule, key) → state.
    pub fn states(&self) -> Result<std::collections::HashMap<(i64, String), KeyState>> {
        let conn = self.db.reader()?;
        let mut stmt =
            conn.prepare_cached("SELECT rule_id, key, state, incident_id, since FROM alert_state")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?),
                KeyState {
                    state: r.get(2)?,
                    incident_id: r.get(3)?,
                    since: r.get(4)?,
                },
            ))
        })?;
        rows.collect::<Result<_>>()
    }

    /// Install the preset rules on every project that has not had them yet.
    pub fn ensure_presets(&self, presets: &[(&str, &str, Value)], now: i64) -> Result<()> {
        self.db.write(|tx| ensure_presets(tx, presets, now))
    }

    /// Make the tag keys the digest rolls up exactly `wanted` (project, key); returns
    /// whether anything changed.
    pub fn set_rollup_keys(
        &self,
        wanted: &std::collections::BTreeSet<(i64, String)>,
    ) -> Result<bool> {
        let current: std::collections::BTreeSet<(i64, String)> = self
            .db
            .reader()?
            .prepare_cached("SELECT project_id, key FROM rollup_keys")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_>>()?;
        if &current == wanted {
            return Ok(false);
        }
        self.db.write(|tx| {
            // Nodes starting together on one PostgreSQL may both find the keys stale: the
            // second one's DELETE sees none of the first one's uncommitted rows, so its
            // inserts meet them once they commit; the set they both want is the same.
            tx.execute("DELETE FROM rollup_keys", [])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO rollup_keys (project_id, key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for (project, key) in wanted {
                insert.execute(params![project, key])?;
            }
            Ok(true)
        })
    }
}
