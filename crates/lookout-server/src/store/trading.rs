//! The kill switch's state: whether each agent may trade (`active`) or is `paused` (with a
//! reason, who paused it, since when, and until when), and the audit trail of every change.
//!
//! One row per agent that was ever paused (`agent_trading`); an agent without a row is
//! active at version 0. Every pause or resume moves the row's `version` by 2 and appends a
//! row to `agent_trading_changes`. A pause whose `until` has passed reads as active at
//! `version + 1` without any write (so the control channel sees the change at once, and a
//! later write, at `version + 2`, is again a change).
//!
//! Nodes sharing a database learn of each other's changes through [`Bus`]: a change written
//! by this process bumps it at once, and a poller thread (started by the first subscriber)
//! reads a fingerprint of the table every [`POLL_EVERY`] and bumps it when it moved.

use super::db::Db;
use super::sql::{Conn, OptionalExtension, params};
use super::{Result, StoreError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the bus's poller reads the table's fingerprint (changes made by another node).
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// Who changed an agent's trading state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An alert rule's `pause_agent` action.
    Rule {
        /// The rule's id.
        id: i64,
        /// The rule's name.
        name: String,
    },
    /// A web UI user (their login name).
    User(String),
    /// An API token.
    Token {
        /// The token's id.
        id: i64,
        /// The token's name.
        name: String,
    },
    /// A Telegram user (allow-listed).
    Telegram {
        /// Telegram's numeric user id.
        user_id: i64,
        /// Their username or display name.
        name: String,
    },
}

impl Actor {
    /// `rule`, `user`, `token` or `telegram`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Rule { .. } => "rule",
            Actor::User(_) => "user",
            Actor::Token { .. } => "token",
            Actor::Telegram { .. } => "telegram",
        }
    }

    /// The actor's id, when it has one apart from its name.
    pub fn id(&self) -> Option<String> {
        match self {
            Actor::Rule { id, .. } | Actor::Token { id, .. } => Some(id.to_string()),
            Actor::Telegram { user_id, .. } => Some(user_id.to_string()),
            Actor::User(_) => None,
        }
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        match self {
            Actor::Rule { name, .. }
            | Actor::Token { name, .. }
            | Actor::Telegram { name, .. }
            | Actor::User(name) => name,
        }
    }

    /// In words, as pages and the control channel show it: `rule "Trade failed" (#4)`.
    pub fn describe(&self) -> String {
        match self {
            Actor::Rule { id, name } => format!("rule {name:?} (#{id})"),
            Actor::User(name) => format!("user {name}"),
            Actor::Token { id, name } => format!("API token {name:?} (#{id})"),
            Actor::Telegram { user_id, name } => format!("Telegram user {name} ({user_id})"),
        }
    }

    fn from_columns(kind: &str, id: Option<String>, name: String) -> Actor {
        let num = id.as_deref().and_then(|i| i.parse().ok()).unwrap_or(0);
        match kind {
            "rule" => Actor::Rule { id: num, name },
            "token" => Actor::Token { id: num, name },
            "telegram" => Actor::Telegram { user_id: num, name },
            _ => Actor::User(name),
        }
    }
}

/// An agent's trading state as it holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingState {
    /// The project.
    pub project_id: i64,
    /// The agent.
    pub agent_id: String,
    /// Whether the agent is paused (an expired pause reads as not paused).
    pub paused: bool,
    /// Why (while paused).
    pub reason: Option<String>,
    /// Who paused it (while paused).
    pub by: Option<Actor>,
    /// Since when it is in this state (ms), if it ever changed.
    pub since: Option<i64>,
    /// When the pause lifts itself (ms), if it does.
    pub until: Option<i64>,
    /// Moves with every change (including an expiry): what the control channel compares.
    pub version: i64,
}

impl TradingState {
    /// `active` or `paused`.
    pub fn trading(&self) -> &'static str {
        if self.paused { "paused" } else { "active" }
    }

    fn active(project_id: i64, agent_id: &str) -> TradingState {
        TradingState {
            project_id,
            agent_id: agent_id.to_owned(),
            paused: false,
            reason: None,
            by: None,
            since: None,
            until: None,
            version: 0,
        }
    }
}

/// One change of an agent's trading state, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingChange {
    /// When (ms).
    pub at: i64,
    /// `pause` or `resume`.
    pub action: String,
    /// The reason given (pauses).
    pub reason: Option<String>,
    /// Who.
    pub by: Actor,
    /// Until when (pauses with an end).
    pub until: Option<i64>,
    /// The version it produced.
    pub version: i64,
}

/// A pause to write.
#[derive(Debug, Clone)]
pub struct Pause<'a> {
    /// Why.
    pub reason: &'a str,
    /// Who.
    pub by: &'a Actor,
    /// When it lifts itself (ms), if it does.
    pub until: Option<i64>,
    /// What made it, for a later conditional resume (`incident:<id>` for an alert action).
    pub origin: Option<&'a str>,
}

/// Wakes the control channel's long polls when a trading state changed (here or, through
/// the poller, on another node sharing the database).
#[derive(Debug)]
pub struct Bus {
    tx: tokio::sync::watch::Sender<u64>,
    poller: Mutex<bool>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            tx: tokio::sync::watch::Sender::new(0),
            poller: Mutex::new(false),
        }
    }
}

impl Bus {
    /// Tell every subscriber that some trading state changed.
    pub fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// Read the current state of `agent_id` on `conn` (expired pauses read as active).
pub(crate) fn get_in(
    conn: &Conn,
    project_id: i64,
    agent_id: &str,
    now: i64,
) -> Result<TradingState> {
    let row = conn
        .prepare_cached(
            "SELECT state, reason, actor_kind, actor_id, actor_name, since, until, version
             FROM agent_trading WHERE project_id = ?1 AND agent_id = ?2",
        )?
        .query_row(params![project_id, agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .optional()?;
    Ok(match row {
        None => TradingState::active(project_id, agent_id),
        Some(row) => effective(project_id, agent_id, row, now),
    })
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    i64,
);

fn effective(project_id: i64, agent_id: &str, row: Row, now: i64) -> TradingState {
    let (state, reason, kind, id, name, since, until, version) = row;
    let paused = state == "paused";
    if paused && until.is_some_and(|u| u <= now) {
        return TradingState {
            since: until,
            version: version + 1,
            ..TradingState::active(project_id, agent_id)
        };
    }
    TradingState {
        project_id,
        agent_id: agent_id.to_owned(),
        paused,
        reason: reason.filter(|_| paused),
        by: kind
            .filter(|_| paused)
            .map(|k| Actor::from_columns(&k, id, name.unwrap_or_default())),
        since: Some(since),
        until: until.filter(|_| paused),
        version,
    }
}

/// Whether the digest has seen agent `agent_id` in project `project_id`.
pub(crate) fn known_in(conn: &Conn, project_id: i64, agent_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM agents WHERE project_id = ?1 AND agent_id = ?2")?
        .query_row(params![project_id, agent_id], |r| r.get::<_, i64>(0))
        .optional()?
        .is_some())
}

fn audit(
    conn: &Conn,
    project_id: i64,
    agent_id: &str,
    action: &str,
    reason: Option<&str>,
    by: &Actor,
    until: Option<i64>,
    version: i64,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO agent_trading_changes
             (project_id, agent_id, at, action, reason, actor_kind, actor_id, actor_name, until, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        project_id,
        agent_id,
        now,
        action,
        reason,
        by.kind(),
        by.id(),
        by.name(),
        until,
        version
    ])?;
    Ok(())
}

/// Pause agent `agent_id` of `project_id` inside the caller's transaction (the alert stage
/// pauses in the transaction that opens the incident). Refused with
/// [`StoreError::NotFound`] naming the agent when the digest never saw it in that project.
pub(crate) fn pause_in(
    conn: &Conn,
    project_id: i64,
    agent_id: &str,
    pause: &Pause<'_>,
    now: i64,
) -> Result<TradingState> {
    if !known_in(conn, project_id, agent_id)? {
        return Err(StoreError::NotFound(format!("agent {agent_id:?}")));
    }
    let by = pause.by;
    let version: i64 = conn
        .prepare_cached(
            "INSERT INTO agent_trading
                 (project_id, agent_id, state, reason, actor_kind, actor_id, actor_name, since, until, origin, version)
             VALUES (?1, ?2, 'paused', ?3, ?4, ?5, ?6, ?7, ?8, ?9, 2)
             ON CONFLICT (project_id, agent_id) DO UPDATE SET
                 state = 'paused', reason = excluded.reason, actor_kind = excluded.actor_kind,
                 actor_id = excluded.actor_id, actor_name = excluded.actor_name,
                 since = excluded.since, until = excluded.until, origin = excluded.origin,
                 version = agent_trading.version + 2
             RETURNING version",
        )?
        .query_row(
            params![
                project_id,
                agent_id,
                pause.reason,
                by.kind(),
                by.id(),
                by.name(),
                now,
                pause.until,
                pause.origin
            ],
            |r| r.get(0),
        )?;
    audit(
        conn,
        project_id,
        agent_id,
        "pause",
        Some(pause.reason),
        by,
        pause.until,
        version,
        now,
    )?;
    Ok(TradingState {
        project_id,
        agent_id: agent_id.to_owned(),
        paused: true,
        reason: Some(pause.reason.to_owned()),
        by: Some(by.clone()),
        since: Some(now),
        until: pause.until,
        version,
    })
}

/// Resume agent `agent_id` inside the caller's transaction. With `only_origin`, only when
/// the current pause is the one that origin made (an alert resolving lifts its own pause,
/// never one a person made since). An agent not paused is left as it is (no audit row).
/// Returns the state after, and whether anything changed.
pub(crate) fn resume_in(
    conn: &Conn,
    project_id: i64,
    agent_id: &str,
    by: &Actor,
    only_origin: Option<&str>,
    now: i64,
) -> Result<(TradingState, bool)> {
    let current = get_in(conn, project_id, agent_id, now)?;
    if !current.paused {
        if current.version == 0 && !known_in(conn, project_id, agent_id)? {
            return Err(StoreError::NotFound(format!("agent {agent_id:?}")));
        }
        return Ok((current, false));
    }
    let version: Option<i64> = conn
        .prepare_cached(
            "UPDATE agent_trading SET state = 'active', reason = NULL, actor_kind = ?3, actor_id = ?4,
                 actor_name = ?5, since = ?6, until = NULL, origin = NULL, version = agent_trading.version + 2
             WHERE project_id = ?1 AND agent_id = ?2 AND state = 'paused'
               AND (?7 IS NULL OR origin = ?7)
             RETURNING version",
        )?
        .query_row(
            params![
                project_id,
                agent_id,
                by.kind(),
                by.id(),
                by.name(),
                now,
                only_origin
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(version) = version else {
        return Ok((current, false));
    };
    audit(
        conn, project_id, agent_id, "resume", None, by, None, version, now,
    )?;
    Ok((
        TradingState {
            since: Some(now),
            version,
            ..TradingState::active(project_id, agent_id)
        },
        true,
    ))
}

/// The trading repository.
#[derive(Debug, Clone)]
pub struct Trading {
    db: Arc<Db>,
}

impl Trading {
    pub(crate) fn new(db: Arc<Db>) -> Trading {
        Trading { db }
    }

    /// The state of agent `agent_id` of `project_id` at `now` (ms); active at version 0 for
    /// an agent never paused (known or not: see [`Trading::is_known`]).
    pub fn get(&self, project_id: i64, agent_id: &str, now: i64) -> Result<TradingState> {
        get_in(&*self.db.reader()?, project_id, agent_id, now)
    }

    /// Whether the digest has seen agent `agent_id` in `project_id`.
    pub fn is_known(&self, project_id: i64, agent_id: &str) -> Result<bool> {
        known_in(&*self.db.reader()?, project_id, agent_id)
    }

    /// The state of every agent of `project_id` that was ever paused, by agent id.
    pub fn list(&self, project_id: i64, now: i64) -> Result<Vec<TradingState>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT agent_id, state, reason, actor_kind, actor_id, actor_name, since, until, version
             FROM agent_trading WHERE project_id = ?1 ORDER BY agent_id LIMIT 10000",
        )?;
        let rows = stmt.query_map([project_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, i64>(8)?,
                ),
            ))
        })?;
        rows.map(|row| row.map(|(agent, row)| effective(project_id, &agent, row, now)))
            .collect()
    }

    /// Pause an agent (see [`pause_in`]); audited; wakes the control channel.
    pub fn pause(
        &self,
        project_id: i64,
        agent_id: &str,
        pause: &Pause<'_>,
        now: i64,
    ) -> Result<TradingState> {
        let state = self
            .db
            .write(|tx| pause_in(tx, project_id, agent_id, pause, now))?;
        self.db.trading_bus.bump();
        Ok(state)
    }

    /// Resume an agent (see [`resume_in`]); audited when it changed anything; wakes the
    /// control channel.
    pub fn resume(
        &self,
        project_id: i64,
        agent_id: &str,
        by: &Actor,
        now: i64,
    ) -> Result<TradingState> {
        let (state, changed) = self
            .db
            .write(|tx| resume_in(tx, project_id, agent_id, by, None, now))?;
        if changed {
            self.db.trading_bus.bump();
        }
        Ok(state)
    }

    /// The audited changes of agent `agent_id` of `project_id` since `since` (ms), newest
    /// first, at most `limit`.
    pub fn changes(
        &self,
        project_id: i64,
        agent_id: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<TradingChange>> {
        changes_in(&*self.db.reader()?, project_id, agent_id, since, limit)
    }

    /// A receiver that changes whenever some agent's trading state may have changed (on this
    /// node at once, on another within [`POLL_EVERY`]). The first subscriber starts the
    /// poller thread; it stops by itself once nobody subscribes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        let rx = self.db.trading_bus.tx.subscribe();
        let mut running = self
            .db
            .trading_bus
            .poller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*running {
            *running = true;
            let weak = Arc::downgrade(&self.db);
            let spawned = std::thread::Builder::new()
                .name("trading-poller".into())
                .spawn(move || poll(&weak));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the trading poller");
                *running = false;
            }
        }
        rx
    }
}

/// A fingerprint of every trading state: moves whenever any row is written.
fn fingerprint(conn: &Conn) -> Result<(i64, i64)> {
    conn.prepare_cached(
        "SELECT COUNT(*), CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM agent_trading",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The poller: reads the fingerprint every [`POLL_EVERY`] and bumps the bus when it moved;
/// ends when the store is gone or nobody has subscribed for a while.
fn poll(weak: &Weak<Db>) {
    let mut last: Option<(i64, i64)> = None;
    let mut idle = 0u32;
    loop {
        std::thread::sleep(POLL_EVERY);
        let Some(db) = weak.upgrade() else {
            return;
        };
        let bus = &db.trading_bus;
        if bus.tx.receiver_count() == 0 {
            idle += 1;
            if idle >= 40 {
                let mut running = bus
                    .poller
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if bus.tx.receiver_count() == 0 {
                    *running = false;
                    return;
                }
            }
            continue;
        }
        idle = 0;
        let now = db.reader().and_then(|c| fingerprint(&c));
        match now {
            Ok(f) => {
                // The first read bumps too: a change between a subscriber's own read and
                // this baseline is not missed (a spurious wake-up only costs a read).
                if last != Some(f) {
                    bus.bump();
                }
                last = Some(f);
            }
            Err(e) => tracing::debug!(error = %e, "trading poller: read failed"),
        }
    }
}

pub(crate) fn changes_in(
    conn: &Conn,
    project_id: i64,
    agent_id: &str,
    since: i64,
    limit: i64,
) -> Result<Vec<TradingChange>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, action, reason, actor_kind, actor_id, actor_name, until, version
         FROM agent_trading_changes WHERE project_id = ?1 AND agent_id = ?2 AND at >= ?3
         ORDER BY at DESC, id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![project_id, agent_id, since, limit], |r| {
        Ok(TradingChange {
            at: r.get(0)?,
            action: r.get(1)?,
            reason: r.get(2)?,
            by: Actor::from_columns(&r.get::<_, String>(3)?, r.get(4)?, r.get(5)?),
            until: r.get(6)?,
            version: r.get(7)?,
        })
    })?;
    rows.collect()
}
