//! Per-minute rollups of tags and users, for the metric aggregates that filter on a query
//! (`count()`, `count_unique(user)`, `error_rate()` with a query, `tag_ratio()`): one row
//! per project, minute, kind, environment, transaction op, level and tag value, plus a
//! total row (empty key) per combination, and the distinct users per minute. A window of
//! N minutes reads at most N rows per combination, whatever the event rate.
//!
//! Only the tag keys some active metric rule needs are rolled up (`rollup_keys`, kept in
//! step with the rules by the alert stage): tags are attacker-controlled, and a tag with a
//! new value on every event must not grow a rollup as fast as the events themselves.

use super::Result;
use super::sql::{Conn, OptionalExtension, Params, Stmt, params};
use lookout_protocol::sketch::DDSketch;
use std::collections::{HashMap, HashSet};

const MINUTE_MS: i64 = 60_000;

/// One event or transaction, as the rollups see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen<'a> {
    pub project_id: i64,
    pub timestamp_ms: i64,
    /// `error`, `default` or `transaction`.
    pub kind: &'a str,
    pub environment: Option<&'a str>,
    /// The transaction's op (`""` for events).
    pub op: &'a str,
    /// The event's level (`""` for transactions).
    pub level: &'a str,
    pub release: Option<&'a str>,
    /// The transaction name, if any.
    pub transaction: Option<&'a str>,
    pub user_key: Option<&'a str>,
    pub tags: &'a [(String, String)],
}

/// (project, minute, kind, environment, op, level, key, value)
type TagKey = (i64, i64, String, String, String, String, String, String);
/// (project, minute, kind, environment, user)
type UserKey = (i64, i64, String, String, String);

/// One batch's tag and user rollups, summed in memory and written once.
#[derive(Debug, Default)]
pub(super) struct Rollups {
    /// The tag keys to roll up, per project.
    keys: HashMap<i64, Vec<String>>,
    tags: HashMap<TagKey, i64>,
    users: HashSet<UserKey>,
}

impl Rollups {
    /// Start a batch: the tag keys to roll up, per project.
    pub(super) fn load(tx: &Conn) -> Result<Rollups> {
        let mut keys: HashMap<i64, Vec<String>> = HashMap::new();
        let mut stmt = tx.prepare_cached("SELECT project_id, key FROM rollup_keys")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (project, key) = row?;
            keys.entry(project).or_default().push(key);
        }
        Ok(Rollups {
            keys,
            ..Rollups::default()
        })
    }

    /// Count one stored event or transaction.
    pub(super) fn add(&mut self, s: Seen<'_>) {
        let minute = s.timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let env = s.environment.unwrap_or_default();
        let mut bump = |key: &str, value: &str| {
            *self
                .tags
                .entry((
                    s.project_id,
                    minute,
                    s.kind.to_owned(),
                    env.to_owned(),
                    s.op.to_owned(),
                    s.level.to_owned(),
                    key.to_owned(),
                    value.to_owned(),
                ))
                .or_default() += 1;
        };
        bump("", "");
        for key in self.keys.get(&s.project_id).into_iter().flatten() {
            let value = match key.as_str() {
                "release" => s.release,
                "transaction" => s.transaction,
                k => s
                    .tags
                    .iter()
                    .find(|(tk, _)| tk == k)
                    .map(|(_, v)| v.as_str()),
            };
            if let Some(v) = value {
                bump(key, v);
            }
        }
        if let Some(user) = s.user_key {
            self.users.insert((
                s.project_id,
                minute,
                s.kind.to_owned(),
                env.to_owned(),
                user.to_owned(),
            ));
        }
    }

    /// Write the batch's sums.
    pub(super) fn write(self, tx: &Conn) -> Result<()> {
        let mut tags = tx.prepare_cached(
            "INSERT INTO rollup_tags (project_id, minute, kind, environment, op, level, key, value, count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (project_id, key, minute, kind, environment, op, level, value) DO UPDATE SET count = rollup_tags.count + excluded.count",
        )?;
        for ((project, minute, kind, env, op, level, key, value), n) in &self.tags {
            tags.execute(params![
                project, minute, kind, env, op, level, key, value, n
            ])?;
        }
        let mut users = tx.prepare_cached(
            "INSERT INTO rollup_users (project_id, minute, kind, environment, user_key) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?;
        for (project, minute, kind, env, user) in &self.users {
            users.execute(params![project, minute, kind, env, user])?;
        }
        Ok(())
    }
}

/// `sketch` merged with the sketch a latency rollup row already holds, as the bytes to write
/// back: `read` selects that row's sketch column by `key`. A row without a sketch, or one
/// that no longer decodes, leaves `sketch` as it is.
pub(super) fn merge_stored_sketch<P: Params>(
    read: &mut Stmt<'_>,
    key: P,
    mut sketch: DDSketch,
) -> Result<Vec<u8>> {
    let stored: Option<Option<Vec<u8>>> = read.query_row(key, |r| r.get(0)).optional()?;
    if let Some(Some(bytes)) = stored
        && let Ok(prev) = DDSketch::from_bytes(&bytes)
    {
        sketch.merge(&prev);
    }
    Ok(sketch.to_bytes())
}
