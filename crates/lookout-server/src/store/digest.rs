//! The digest's writes: one batch of inbox rows becomes one transaction that also moves
//! the digest cursor, so every row is digested exactly once, even across `kill -9`.

use super::agents::SessionAgents;
use super::alerting::FedEvent;
use super::db::Db;
use super::rollups::{Rollups, Seen};
use super::sql::{Backend, Bulk, Conn, OptionalExtension, insert_returning_ids, params};
use super::{Result, StoreError};
use lookout_protocol::sketch::DDSketch;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub use super::records::{
    Batch, CheckInRecord, EventFact, EventRecord, LogRecord, Outcome, Rejection,
    SessionAggregateRecord, SessionRecord, SpanRecord, TransactionRecord, is_failure,
};

/// A check run inside each batch's transaction after its rows are written: an error rolls
/// the batch back, cursor included (tests inject write failures with it).
pub trait BatchHook: Send + Sync + std::fmt::Debug {
    /// Called after the batch's rows are written, before the commit.
    fn on_batch(&self, batch: &Batch, outcome: &Outcome) -> Result<()>;
}

/// The digest's side of the store: writes a batch, its rollups, the agents it saw and the
/// alert feed, with the cursor, in one transaction of the store's writer.
#[derive(Debug)]
pub struct DigestStore {
    db: Arc<Db>,
    /// This node's name: on a shared database, the rows it may mark digested are those it
    /// claimed under it.
    node: String,
    hooks: Vec<Arc<dyn BatchHook>>,
}

const MINUTE_MS: i64 = 60_000;

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

impl DigestStore {
    pub(crate) fn new(db: Arc<Db>, node: String) -> DigestStore {
        DigestStore {
            db,
            node,
            hooks: Vec::new(),
        }
    }

    /// Run `hook` inside every batch's transaction from now on.
    pub fn add_hook(&mut self, hook: Arc<dyn BatchHook>) {
        self.hooks.push(hook);
    }

    /// The last inbox row digested.
    pub fn cursor(&self) -> Result<i64> {
        self.db.reader()?.query_row(
            "SELECT last_inbox_id FROM digest_cursor WHERE id = 1",
            [],
            |r| r.get(0),
        )
    }

    /// Write a batch and move the cursor, atomically.
    pub fn apply(&mut self, batch: &Batch) -> Result<Outcome> {
        let conn = self.db.writer()?;
        let tx = conn.begin()?;
        let mut outcome = Outcome::default();
        let mut tag_rollups = Rollups::load(&tx)?;
        apply_events(&tx, &batch.events, &mut outcome, &mut tag_rollups)?;
        apply_transactions(&tx, &batch.transactions, &mut outcome, &mut tag_rollups)?;
        tag_rollups.write(&tx)?;
        let session_agents = apply_sessions(&tx, &batch.sessions, &batch.session_aggregates)?;
        apply_check_ins(&tx, &batch.check_ins)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO client_reports (project_id, minute, reason, category, quantity) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (project_id, minute, reason, category) DO UPDATE SET quantity = client_reports.quantity + excluded.quantity",
            )?;
            for ((project, minute, reason, category), q) in &batch.client_reports {
                stmt.execute(params![project, minute, reason, category, q])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO logs (project_id, timestamp, level, body, trace_id, attributes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for l in &batch.logs {
                stmt.execute(params![
                    l.project_id,
                    l.timestamp_ms,
                    l.level,
                    l.body,
                    l.trace_id,
                    l.attributes
                ])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO digest_rejections (inbox_id, project_id, item_type, reason, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let now = chrono::Utc::now().timestamp_millis();
            for r in &batch.rejections {
                stmt.execute(params![
                    r.inbox_id,
                    r.project_id,
                    r.item_type,
                    r.reason,
                    r.detail,
                    now
                ])?;
            }
        }
        outcome.profiles += super::profiles::apply(&tx, &batch.profiles)?;
        super::agents::apply(&tx, batch, &session_agents)?;
        create_seen_releases(&tx, batch)?;
        append_feed(&tx, batch, &outcome)?;
        for hook in &self.hooks {
            hook.on_batch(batch, &outcome)?;
        }
        match tx.backend() {
            Backend::Sqlite => {
                tx.execute(
                    "UPDATE digest_cursor SET last_inbox_id = ?1 WHERE id = 1 AND last_inbox_id < ?1",
                    [batch.last_inbox_id],
                )?;
            }
            Backend::Postgres => {
                // The rows this node claimed, still undigested and still its own: if a claim
                // lapsed and another node took a row, this batch is not written at all (the
                // other node digests it), so no row is digested twice.
                let marked = tx.execute(
                    "UPDATE inbox SET digested_at = ?1
                     WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each(?2)) AND claimed_by = ?3 AND digested_at IS NULL",
                    params![
                        chrono::Utc::now().timestamp_millis(),
                        serde_json::to_string(&batch.inbox_ids).unwrap_or_default(),
                        self.node
                    ],
                )?;
                if marked != batch.inbox_ids.len() {
                    return Err(StoreError::ClaimLost {
                        expected: batch.inbox_ids.len(),
                        held: marked,
                    });
                }
            }
        }
        tx.commit()?;
        Ok(outcome)
    }
}

/// Create each release the batch names that the store does not know yet, linked to its
/// project, as Sentry does when the first event names a release: the releases API and
/// `sentry-cli releases list` then show it. Existing releases are left as they are.
fn create_seen_releases(tx: &Conn, batch: &Batch) -> Result<()> {
    let seen: BTreeSet<(i64, &str)> = batch
        .events
        .iter()
        .filter_map(|e| Some((e.project_id, e.release.as_deref()?)))
        .chain(
            batch
                .transactions
                .iter()
                .filter_map(|t| Some((t.project_id, t.release.as_deref()?))),
        )
        .chain(
            batch
                .sessions
                .iter()
                .map(|s| (s.project_id, s.release.as_str())),
        )
        .chain(
            batch
                .session_aggregates
                .iter()
                .map(|s| (s.project_id, s.release.as_str())),
        )
        .chain(
            batch
                .check_ins
                .iter()
                .filter_map(|c| Some((c.project_id, c.release.as_deref()?))),
        )
        .filter(|(_, r)| !r.trim().is_empty() && r.len() <= 250 && !r.contains(['\n', '/']))
        .collect();
    if seen.is_empty() {
        return Ok(());
    }
    let mut release = tx.prepare_cached(
        "INSERT INTO releases (org_id, version, date_created)
         SELECT org_id, ?2, ?3 FROM projects WHERE id = ?1
         ON CONFLICT (org_id, version) DO NOTHING",
    )?;
    let mut link = tx.prepare_cached(
        "INSERT INTO release_projects (release_id, project_id)
         SELECT r.id, p.id FROM releases r JOIN projects p ON p.org_id = r.org_id
         WHERE p.id = ?1 AND r.version = ?2 ON CONFLICT DO NOTHING",
    )?;
    let now = chrono::Utc::now().timestamp_millis();
    for (project, version) in seen {
        release.execute(params![project, version, now])?;
        link.execute(params![project, version])?;
    }
    Ok(())
}

/// Append what the alert stage reads: each stored event with what it did to its issue, and
/// each project whose transactions or sessions the batch carried.
fn append_feed(tx: &Conn, batch: &Batch, outcome: &Outcome) -> Result<()> {
    let mut insert = Bulk::new(
        tx,
        "INSERT INTO alert_feed (project_id, event) VALUES",
        2,
        "",
    )?;
    for fact in &outcome.facts {
        let Some(e) = batch.events.get(fact.index) else {
            continue;
        };
        let fed = FedEvent {
            event_id: e.event_id.clone(),
            issue_id: fact.issue_id,
            new_issue: fact.new_issue,
            regression: fact.regression,
            level: e.level.clone(),
            environment: e.environment.clone(),
            release: e.release.clone(),
            transaction: e.transaction.clone(),
            title: e.title.clone(),
            culprit: e.culprit.clone(),
            metadata: e.metadata.clone(),
            tags: e.tags.clone(),
            received_ms: e.received_ms,
        };
        let body = serde_json::to_vec(&fed)
            .map_err(|e| super::StoreError::Invalid(format!("alert feed row: {e}")))?;
        insert.push(params![e.project_id, body])?;
    }
    let touched: BTreeSet<i64> = batch
        .transactions
        .iter()
        .map(|t| t.project_id)
        .chain(batch.sessions.iter().map(|s| s.project_id))
        .chain(batch.session_aggregates.iter().map(|s| s.project_id))
        .collect();
    for project in touched {
        insert.push(params![project, None::<Vec<u8>>])?;
    }
    insert.finish()
}

struct IssueState {
    id: i64,
    status: String,
    /// Created by this batch and its first event not yet stored.
    fresh: bool,
}

/// Events and transactions, one row each (`events`), keyed by project and event id.
const INSERT_EVENTS: &str = "INSERT INTO events (project_id, event_id, issue_id, kind, timestamp, received_at, level, release, environment, transaction_name, trace_id, user_key, title, payload) VALUES";
const EVENTS_CONFLICT: &str = "ON CONFLICT (project_id, event_id) DO NOTHING";
const EVENTS_KEY: &str = "project_id, event_id";

fn apply_events(
    tx: &Conn,
    events: &[EventRecord],
    outcome: &mut Outcome,
    tag_rollups: &mut Rollups,
) -> Result<()> {
    let mut find_issue =
        tx.prepare_cached("SELECT id, status FROM issues WHERE project_id = ?1 AND hash = ?2")?;
    let mut next_seq = tx.prepare_cached(
        "SELECT COALESCE(MAX(short_seq), 0) + 1 FROM issues WHERE project_id = ?1",
    )?;
    let mut insert_issue = tx.prepare_cached(
        "INSERT INTO issues (project_id, short_seq, hash, title, culprit, level, kind, metadata, status, first_seen, last_seen, times_seen, first_release)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'unresolved', ?9, ?9, 0, ?10) RETURNING id",
    )?;
    let mut insert_tag = Bulk::new(
        tx,
        "INSERT INTO event_tags (key, value, event_row) VALUES",
        3,
        "ON CONFLICT DO NOTHING",
    )?;
    let mut insert_user = tx.prepare_cached(
        "INSERT INTO issue_users (issue_id, user_key) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;

    // Per-issue and per-rollup sums, written once per batch: an error storm of 1,000
    // identical events costs one issue update, not 1,000.
    struct IssueDelta {
        times: i64,
        users: i64,
        last_seen: i64,
        reopen_at: Option<i64>,
    }
    let mut deltas: HashMap<i64, IssueDelta> = HashMap::new();
    let mut tag_counts: HashMap<(i64, String, String), (i64, i64, i64)> = HashMap::new();
    let mut rollups: HashMap<(i64, i64, i64, String, String, String), i64> = HashMap::new();
    let mut issues: HashMap<(i64, String), IssueState> = HashMap::new();

    // First the issue of every event (creating the new ones), then the events in one go,
    // then what each stored event adds up to.
    let mut issue_of: Vec<i64> = Vec::with_capacity(events.len());
    for e in events {
        let key = (e.project_id, e.hash.clone());
        if !issues.contains_key(&key) {
            let found = find_issue
                .query_row(params![e.project_id, e.hash], |r| {
                    Ok(IssueState {
                        id: r.get(0)?,
                        status: r.get(1)?,
                        fresh: false,
                    })
                })
                .optional()?;
            let state = match found {
                Some(s) => s,
                None => {
                    let seq: i64 = next_seq.query_row([e.project_id], |r| r.get(0))?;
                    let id: i64 = insert_issue.query_row(
                        params![
                            e.project_id,
                            seq,
                            e.hash,
                            e.title,
                            e.culprit,
                            e.level,
                            e.kind,
                            e.metadata,
                            e.timestamp_ms.min(e.received_ms),
                            e.release,
                        ],
                        |r| r.get(0),
                    )?;
                    outcome.new_issues.push(id);
                    IssueState {
                        id,
                        status: "unresolved".into(),
                        fresh: true,
                    }
                }
            };
            issues.insert(key.clone(), state);
        }
        issue_of.push(issues.get(&key).map_or(0, |i| i.id));
    }
    let rows = insert_returning_ids(
        tx,
        INSERT_EVENTS,
        14,
        EVENTS_CONFLICT,
        EVENTS_KEY,
        events.len(),
        |i| {
            let e = &events[i];
            vec![
                &e.project_id,
                &e.event_id,
                &issue_of[i],
                &e.kind,
                &e.timestamp_ms,
                &e.received_ms,
                &e.level,
                &e.release,
                &e.environment,
                &e.transaction,
                &e.trace_id,
                &e.user_key,
                &e.title,
                &e.payload,
            ]
        },
    )?;
    for (index, (e, inserted)) in events.iter().zip(rows).enumerate() {
        let key = (e.project_id, e.hash.clone());
        let Some(issue) = issues.get_mut(&key) else {
            continue;
        };
        let Some(row) = inserted else {
            outcome.duplicates += 1;
            continue;
        };
        tag_rollups.add(Seen {
            project_id: e.project_id,
            timestamp_ms: e.timestamp_ms,
            kind: e.kind,
            environment: e.environment.as_deref(),
            op: "",
            level: &e.level,
            release: e.release.as_deref(),
            transaction: e.transaction.as_deref(),
            user_key: e.user_key.as_deref(),
            tags: &e.tags,
        });
        outcome.events += 1;
        let delta = deltas.entry(issue.id).or_insert(IssueDelta {
            times: 0,
            users: 0,
            last_seen: e.timestamp_ms,
            reopen_at: None,
        });
        let mut regression = false;
        if issue.status == "resolved" {
            // A new event on a resolved issue is a regression.
            issue.status = "unresolved".into();
            delta.reopen_at = Some(e.received_ms);
            outcome.regressions.push(issue.id);
            regression = true;
        }
        outcome.facts.push(EventFact {
            index,
            issue_id: issue.id,
            new_issue: std::mem::take(&mut issue.fresh),
            regression,
        });
        delta.times += 1;
        delta.last_seen = delta.last_seen.max(e.timestamp_ms);
        if let Some(user) = &e.user_key
            && insert_user.execute(params![issue.id, user])? > 0
        {
            delta.users += 1;
        }
        for (k, v) in &e.tags {
            insert_tag.push(params![k, v, row])?;
            let c = tag_counts
                .entry((issue.id, k.clone(), v.clone()))
                .or_insert((0, e.timestamp_ms, e.timestamp_ms));
            c.0 += 1;
            c.1 = c.1.min(e.timestamp_ms);
            c.2 = c.2.max(e.timestamp_ms);
        }
        *rollups
            .entry((
                e.project_id,
                minute_of(e.timestamp_ms),
                issue.id,
                e.release.clone().unwrap_or_default(),
                e.environment.clone().unwrap_or_default(),
                e.level.clone(),
            ))
            .or_default() += 1;
    }
    insert_tag.finish()?;

    let mut update_issue = tx.prepare_cached(
        "UPDATE issues SET times_seen = times_seen + ?2, user_count = user_count + ?3,
             last_seen = MAX(last_seen, ?4),
             status = CASE WHEN ?5 IS NOT NULL THEN 'unresolved' ELSE status END,
             regressed_at = COALESCE(?5, regressed_at),
             resolved_at = CASE WHEN ?5 IS NOT NULL THEN NULL ELSE resolved_at END
         WHERE id = ?1",
    )?;
    for (id, d) in &deltas {
        update_issue.execute(params![id, d.times, d.users, d.last_seen, d.reopen_at])?;
    }
    let mut upsert_tag = tx.prepare_cached(
        "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (issue_id, key, value) DO UPDATE SET times_seen = issue_tags.times_seen + excluded.times_seen,
             first_seen = MIN(issue_tags.first_seen, excluded.first_seen), last_seen = MAX(issue_tags.last_seen, excluded.last_seen)",
    )?;
    for ((issue, k, v), (n, first, last)) in &tag_counts {
        upsert_tag.execute(params![issue, k, v, n, first, last])?;
    }
    let mut upsert_rollup = tx.prepare_cached(
        "INSERT INTO rollup_events (project_id, minute, issue_id, release, environment, level, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (project_id, minute, issue_id, release, environment, level) DO UPDATE SET count = rollup_events.count + excluded.count",
    )?;
    for ((p, m, i, r, env, l), n) in &rollups {
        upsert_rollup.execute(params![p, m, i, r, env, l, n])?;
    }
    Ok(())
}

fn apply_transactions(
    tx: &Conn,
    txs: &[TransactionRecord],
    outcome: &mut Outcome,
    tag_rollups: &mut Rollups,
) -> Result<()> {
    let mut insert_span = Bulk::new(
        tx,
        "INSERT INTO spans (event_row, trace_id, span_id, parent_span_id, op, description, status, start_ms, duration_ms, data) VALUES",
        10,
        "ON CONFLICT DO NOTHING",
    )?;
    let mut insert_tag = Bulk::new(
        tx,
        "INSERT INTO event_tags (key, value, event_row) VALUES",
        3,
        "ON CONFLICT DO NOTHING",
    )?;
    // (project, kind, name, op, minute) → (count, errors, sketch)
    type Key = (i64, &'static str, String, String, i64);
    let mut latency: HashMap<Key, (i64, i64, DDSketch)> = HashMap::new();
    let rows = insert_returning_ids(
        tx,
        INSERT_EVENTS,
        14,
        EVENTS_CONFLICT,
        EVENTS_KEY,
        txs.len(),
        |i| {
            let t = &txs[i];
            vec![
                &t.project_id,
                &t.event_id,
                &None::<i64>,
                &"transaction",
                &t.timestamp_ms,
                &t.received_ms,
                &"info",
                &t.release,
                &t.environment,
                &t.name,
                &t.trace_id,
                &t.user_key,
                &t.name,
                &t.payload,
            ]
        },
    )?;
    for (t, inserted) in txs.iter().zip(rows) {
        let Some(row) = inserted else {
            outcome.duplicates += 1;
            continue;
        };
        outcome.transactions += 1;
        tag_rollups.add(Seen {
            project_id: t.project_id,
            timestamp_ms: t.timestamp_ms,
            kind: "transaction",
            environment: t.environment.as_deref(),
            op: &t.op,
            level: "",
            release: t.release.as_deref(),
            transaction: Some(&t.name),
            user_key: t.user_key.as_deref(),
            tags: &t.tags,
        });
        // The root span is stored like the others, so a trace reads from one table.
        insert_span.push(params![
            row,
            t.trace_id,
            t.span_id,
            Option::<String>::None,
            t.op,
            t.name,
            t.status,
            t.start_ms,
            t.duration_ms,
            Option::<String>::None
        ])?;
        for s in &t.spans {
            insert_span.push(params![
                row,
                t.trace_id,
                s.span_id,
                s.parent_span_id,
                s.op,
                s.description,
                s.status,
                s.start_ms,
                s.duration_ms,
                s.data
            ])?;
        }
        for (k, v) in &t.tags {
            insert_tag.push(params![k, v, row])?;
        }
        let minute = minute_of(t.timestamp_ms);
        let failed = is_failure(&t.status);
        let entry = latency
            .entry((
                t.project_id,
                "transaction",
                t.name.clone(),
                t.op.clone(),
                minute,
            ))
            .or_insert_with(|| (0, 0, DDSketch::new()));
        entry.0 += 1;
        entry.1 += i64::from(failed);
        entry.2.add(t.duration_ms);
        for s in &t.spans {
            let entry = latency
                .entry((t.project_id, "span", s.op.clone(), s.op.clone(), minute))
                .or_insert_with(|| (0, 0, DDSketch::new()));
            entry.0 += 1;
            entry.1 += i64::from(s.status.as_deref().is_some_and(is_failure));
            entry.2.add(s.duration_ms);
        }
    }
    insert_span.finish()?;
    insert_tag.finish()?;
    let mut select = tx.prepare_cached(
        "SELECT sketch FROM rollup_latency WHERE project_id = ?1 AND kind = ?2 AND name = ?3 AND op = ?4 AND minute = ?5",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT INTO rollup_latency (project_id, minute, kind, name, op, count, errors, sketch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (project_id, kind, name, op, minute) DO UPDATE SET count = rollup_latency.count + excluded.count, errors = rollup_latency.errors + excluded.errors, sketch = excluded.sketch",
    )?;
    for ((project, kind, name, op, minute), (count, errors, sketch)) in latency {
        let sketch = super::rollups::merge_stored_sketch(
            &mut select,
            params![project, kind, name, op, minute],
            sketch,
        )?;
        upsert.execute(params![
            project, minute, kind, name, op, count, errors, sketch
        ])?;
    }
    Ok(())
}

/// Store session updates and aggregates. Returns the agent each updated session belongs to
/// once the batch is written, by (project, session id): the `agent_id` tag of the events an
/// update travelled with, else the agent already stored for the session, else the agent its
/// distinct id names (sessions naming none are left out).
fn apply_sessions(
    tx: &Conn,
    sessions: &[SessionRecord],
    aggregates: &[SessionAggregateRecord],
) -> Result<SessionAgents> {
    let mut agents = SessionAgents::new();
    let mut get = tx.prepare_cached(
        "SELECT status, counted_errored, agent FROM sessions WHERE project_id = ?1 AND sid = ?2",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT INTO sessions (project_id, sid, did, release, environment, status, errors, started, updated, duration, counted_errored, agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, COALESCE(?12, ?13))
         ON CONFLICT (project_id, sid) DO UPDATE SET status = excluded.status, errors = MAX(sessions.errors, excluded.errors),
             agent = COALESCE(?12, sessions.agent, ?13),
             updated = excluded.updated, duration = COALESCE(excluded.duration, sessions.duration),
             counted_errored = MAX(sessions.counted_errored, excluded.counted_errored)",
    )?;
    let mut rollup = tx.prepare_cached(
        "INSERT INTO rollup_sessions (project_id, minute, release, environment, init, exited, errored, abnormal, crashed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (project_id, release, environment, minute) DO UPDATE SET init = rollup_sessions.init + excluded.init, exited = rollup_sessions.exited + excluded.exited,
             errored = rollup_sessions.errored + excluded.errored, abnormal = rollup_sessions.abnormal + excluded.abnormal, crashed = rollup_sessions.crashed + excluded.crashed",
    )?;
    let mut user = tx.prepare_cached(
        "INSERT INTO session_users (project_id, release, environment, did, errored, crashed, abnormal, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (project_id, release, environment, did) DO UPDATE SET errored = MAX(session_users.errored, excluded.errored), crashed = MAX(session_users.crashed, excluded.crashed),
             abnormal = MAX(session_users.abnormal, excluded.abnormal), last_seen = MAX(session_users.last_seen, excluded.last_seen)",
    )?;
    for s in sessions {
        let previous: Option<(String, i64, Option<String>)> = get
            .query_row(params![s.project_id, s.sid], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let stored_agent = previous.as_ref().and_then(|p| p.2.clone());
        // Terminal sessions take no more updates (only `ok` is non-terminal).
        if let Some((status, _, _)) = &previous
            && status != "ok"
        {
            if let Some(agent) = stored_agent {
                agents.insert((s.project_id, s.sid.clone()), agent);
            }
            continue;
        }
        let init = i64::from(s.init && previous.is_none());
        let errored_now =
            s.errors > 0 || matches!(s.status.as_str(), "crashed" | "abnormal" | "errored");
        let already_errored = previous.as_ref().is_some_and(|(_, c, _)| *c > 0);
        let count_errored = errored_now && !already_errored;
        let status = s.status.as_str();
        put.execute(params![
            s.project_id,
            s.sid,
            s.did,
            s.release,
            s.environment,
            status,
            s.errors,
            s.started_ms,
            s.timestamp_ms,
            s.duration,
            i64::from(errored_now),
            s.agent,
            s.did.as_deref().map(super::agents::agent_of_did),
        ])?;
        // What the statement stored: COALESCE(tag, stored, distinct id's agent).
        if let Some(agent) = s.agent.clone().or(stored_agent).or_else(|| {
            s.did
                .as_deref()
                .map(|d| super::agents::agent_of_did(d).to_owned())
        }) {
            agents.insert((s.project_id, s.sid.clone()), agent);
        }
        rollup.execute(params![
            s.project_id,
            minute_of(s.started_ms),
            s.release,
            s.environment,
            init,
            i64::from(status == "exited"),
            i64::from(count_errored),
            i64::from(status == "abnormal"),
            i64::from(status == "crashed"),
        ])?;
        if let Some(did) = &s.did {
            user.execute(params![
                s.project_id,
                s.release,
                s.environment,
                did,
                i64::from(errored_now),
                i64::from(status == "crashed"),
                i64::from(status == "abnormal"),
                s.timestamp_ms
            ])?;
        }
    }
    for a in aggregates {
        let total = a.exited + a.errored + a.abnormal + a.crashed;
        rollup.execute(params![
            a.project_id,
            minute_of(a.started_ms),
            a.release,
            a.environment,
            total,
            a.exited,
            a.errored + a.abnormal + a.crashed,
            a.abnormal,
            a.crashed
        ])?;
        if let Some(did) = &a.did {
            user.execute(params![
                a.project_id,
                a.release,
                a.environment,
                did,
                i64::from(a.errored + a.abnormal + a.crashed > 0),
                i64::from(a.crashed > 0),
                i64::from(a.abnormal > 0),
                a.started_ms
            ])?;
        }
    }
    Ok(agents)
}

fn apply_check_ins(tx: &Conn, check_ins: &[CheckInRecord]) -> Result<()> {
    let mut update = tx.prepare_cached(
        "UPDATE check_ins SET status = ?4, duration_ms = COALESCE(?5, duration_ms), updated_at = ?6
         WHERE project_id = ?1 AND check_in_id = ?2 AND environment = ?3 AND status = 'in_progress'",
    )?;
    let mut exists = tx.prepare_cached(
        "SELECT 1 FROM check_ins WHERE project_id = ?1 AND check_in_id = ?2 AND environment = ?3",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO check_ins (project_id, check_in_id, monitor_slug, environment, status, duration_ms, release, monitor_config, received_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    for c in check_ins {
        let known = exists
            .query_row(params![c.project_id, c.check_in_id, c.environment], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if known {
            // A closed check-in is final; a late in_progress changes nothing.
            if c.status != "in_progress" {
                update.execute(params![
                    c.project_id,
                    c.check_in_id,
                    c.environment,
                    c.status,
                    c.duration_ms,
                    c.received_ms
                ])?;
            }
            continue;
        }
        insert.execute(params![
            c.project_id,
            c.check_in_id,
            c.monitor_slug,
            c.environment,
            c.status,
            c.duration_ms,
            c.release,
            c.monitor_config,
            c.received_ms
        ])?;
    }
    for c in check_ins {
        super::monitors::apply_check_in(
            tx,
            &super::monitors::CheckIn {
                project_id: c.project_id,
                check_in_id: &c.check_in_id,
                slug: &c.monitor_slug,
                environment: &c.environment,
                status: &c.status,
                config: c.monitor_config.as_deref(),
                at: c.received_ms,
            },
        )?;
    }
    Ok(())
}
