//! Profiles: each stored once, compressed, beside what aggregation reads so that a flame
//! graph or a top-functions list over a window never decompresses the profiles themselves.
//!
//! * `profiles`: one row per profile (v1 transaction profile or v2 chunk), keyed by project
//!   and profile id, linked to its transaction (`event_id`) and trace; `payload` is the
//!   scrubbed profile in Sentry's shape (zstd JSON), `summary` a small zstd JSON
//!   [`ProfileSummary`]: the distinct frames and root-first stacks of the transaction's
//!   thread, with the time each stack took per span op.
//! * `profile_functions`: per project, transaction, span op, minute and function, the self
//!   time and sample count, added to by every stored profile: the top-functions list reads
//!   only this table.

use super::Result;
use super::db::Db;
use super::sql::{Conn, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

const MINUTE_MS: i64 = 60_000;

/// How long before a transaction's start a chunk linked to it may have started (ms).
pub const MAX_CHUNK_MS: i64 = 10 * MINUTE_MS;

/// Most chunks linked to one transaction.
pub const MAX_LINKED_CHUNKS: i64 = 32;

/// One frame of a [`ProfileSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SummaryFrame {
    /// Function name.
    #[serde(rename = "n")]
    pub name: String,
    /// Module, else file.
    #[serde(rename = "m")]
    pub module_or_file: String,
    /// The application's own code.
    #[serde(rename = "a")]
    pub in_app: bool,
}

/// What aggregation needs of one profile: its main thread's distinct frames, its stacks
/// root first, and per (stack, span op) the time and samples taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// Distinct frames.
    #[serde(rename = "f")]
    pub frames: Vec<SummaryFrame>,
    /// Stacks as indices into `frames`, root first.
    #[serde(rename = "s")]
    pub stacks: Vec<Vec<u32>>,
    /// Span ops; `""` is time inside no span (the transaction itself).
    #[serde(rename = "o")]
    pub ops: Vec<String>,
    /// `(stack, op, weight_ns, samples)`.
    #[serde(rename = "w")]
    pub weights: Vec<(u32, u32, u64, u32)>,
}

impl ProfileSummary {
    /// Zstd-compressed JSON, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        zstd::bulk::compress(&json, 1).unwrap_or(json)
    }

    /// Read a stored summary; `None` when it does not decode.
    pub fn from_bytes(bytes: &[u8]) -> Option<ProfileSummary> {
        let json = zstd::bulk::decompress(bytes, 64 << 20).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// Self time of one function in one span op of one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRecord {
    /// Innermost span op around the samples (`""`: none).
    pub span_op: String,
    /// Function name.
    pub function: String,
    /// Module, else file.
    pub module: String,
    /// The application's own code.
    pub in_app: bool,
    /// Nanoseconds the function was the leaf.
    pub self_ns: i64,
    /// Samples where it was the leaf.
    pub samples: i64,
}

/// One profile ready to store.
#[derive(Debug, Clone)]
pub struct ProfileRecord {
    /// The project.
    pub project_id: i64,
    /// The profile's id (32 hex digits): v1 `event_id`, v2 `chunk_id`.
    pub profile_id: String,
    /// `transaction` (v1) or `chunk` (v2).
    pub kind: &'static str,
    /// The transaction's event id (v1).
    pub event_id: Option<String>,
    /// The trace id (v1).
    pub trace_id: Option<String>,
    /// The continuous profiler session (v2).
    pub profiler_id: Option<String>,
    /// The transaction's name (v1).
    pub transaction: Option<String>,
    /// `python`, `rust`, …
    pub platform: String,
    /// Release.
    pub release: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// When sampling started (ms since the epoch).
    pub start_ms: i64,
    /// From the first sample to the last (ns).
    pub duration_ns: i64,
    /// When the server received it (ms since the epoch).
    pub received_ms: i64,
    /// The scrubbed profile in Sentry's shape, zstd JSON.
    pub payload: Vec<u8>,
    /// [`ProfileSummary::to_bytes`].
    pub summary: Vec<u8>,
    /// Self time per span op and function (v1 only).
    pub functions: Vec<FunctionRecord>,
}

/// A stored profile's identity and place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    /// Profile id.
    pub profile_id: String,
    /// `transaction` or `chunk`.
    pub kind: String,
    /// The transaction's event id.
    pub event_id: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Transaction name.
    pub transaction: Option<String>,
    /// Start (ms since the epoch).
    pub start_ms: i64,
    /// Duration (ns).
    pub duration_ns: i64,
    /// Platform.
    pub platform: String,
}

/// One function over a window and the window before it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTotals {
    /// Function name.
    pub function: String,
    /// Module, else file.
    pub module: String,
    /// The application's own code.
    pub in_app: bool,
    /// Self time in the window (ns).
    pub self_ns: i64,
    /// Samples in the window.
    pub samples: i64,
    /// Self time in the previous window of equal length (ns).
    pub previous_self_ns: i64,
}

/// The profiles repository.
#[derive(Debug, Clone)]
pub struct Profiles {
    db: Arc<Db>,
}

impl super::Store {
    /// Profiles: raw by id, summaries for flame graphs, function self times.
    pub fn profiles(&self) -> Profiles {
        Profiles {
            db: Arc::clone(&self.db),
        }
    }
}

/// Store `profiles` in the digest's transaction. A profile already stored (an SDK's retry)
/// is skipped, its function times with it. Returns how many were stored.
pub(crate) fn apply(tx: &Conn, profiles: &[ProfileRecord]) -> Result<usize> {
    if profiles.is_empty() {
        return Ok(0);
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO profiles (project_id, profile_id, kind, event_id, trace_id, profiler_id, transaction_name, platform, release, environment, start_ms, duration_ns, received_at, payload, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (project_id, profile_id) DO NOTHING",
    )?;
    type Key<'a> = (i64, &'a str, &'a str, i64, &'a str, &'a str);
    let mut sums: HashMap<Key<'_>, (bool, i64, i64)> = HashMap::new();
    let mut stored = 0;
    for p in profiles {
        let n = insert.execute(params![
            p.project_id,
            p.profile_id,
            p.kind,
            p.event_id,
            p.trace_id,
            p.profiler_id,
            p.transaction,
            p.platform,
            p.release,
            p.environment,
            p.start_ms,
            p.duration_ns,
            p.received_ms,
            p.payload,
            p.summary
        ])?;
        if n == 0 {
            continue;
        }
        stored += 1;
        let minute = p.start_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let name = p.transaction.as_deref().unwrap_or("");
        for f in &p.functions {
            let e = sums
                .entry((
                    p.project_id,
                    name,
                    f.span_op.as_str(),
                    minute,
                    f.function.as_str(),
                    f.module.as_str(),
                ))
                .or_insert((false, 0, 0));
            e.0 |= f.in_app;
            e.1 += f.self_ns;
            e.2 += f.samples;
        }
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO profile_functions (project_id, transaction_name, span_op, minute, function_name, module, in_app, self_ns, samples)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (project_id, transaction_name, span_op, minute, function_name, module) DO UPDATE SET
             in_app = MAX(profile_functions.in_app, excluded.in_app),
             self_ns = profile_functions.self_ns + excluded.self_ns,
             samples = profile_functions.samples + excluded.samples",
    )?;
    for ((project, name, op, minute, function, module), (in_app, self_ns, samples)) in sums {
        upsert.execute(params![
            project,
            name,
            op,
            minute,
            function,
            module,
            i64::from(in_app),
            self_ns,
            samples
        ])?;
    }
    Ok(stored)
}

fn stored_of(r: &super::sql::Row<'_>) -> Result<StoredProfile> {
    Ok(StoredProfile {
        profile_id: r.get(0)?,
        kind: r.get(1)?,
        event_id: r.get(2)?,
        trace_id: r.get(3)?,
        transaction: r.get(4)?,
        start_ms: r.get(5)?,
        duration_ns: r.get(6)?,
        platform: r.get(7)?,
    })
}

const STORED_COLUMNS: &str =
    "profile_id, kind, event_id, trace_id, transaction_name, start_ms, duration_ns, platform";

fn decompress(bytes: &[u8]) -> Result<Vec<u8>> {
    zstd::stream::decode_all(bytes)
        .map_err(|e| super::StoreError::Invalid(format!("stored profile does not decode: {e}")))
}

impl Profiles {
    /// The stored profile `profile_id` of `project_id`: its identity and its JSON as stored
    /// (Sentry's shape, scrubbed).
    pub fn raw(
        &self,
        project_id: i64,
        profile_id: &str,
    ) -> Result<Option<(StoredProfile, Vec<u8>)>> {
        let conn = self.db.reader()?;
        let row = conn
            .query_row(
                &format!(
                    "SELECT {STORED_COLUMNS}, payload FROM profiles WHERE project_id = ?1 AND profile_id = ?2"
                ),
                params![project_id, profile_id],
                |r| Ok((stored_of(r)?, r.get::<_, Vec<u8>>(8)?)),
            )
            .optional()?;
        match row {
            Some((p, bytes)) => Ok(Some((p, decompress(&bytes)?))),
            None => Ok(None),
        }
    }

    /// The profile of the transaction `event_id`, with its JSON as stored.
    pub fn for_transaction(
        &self,
        project_id: i64,
        event_id: &str,
    ) -> Result<Option<(StoredProfile, Vec<u8>)>> {
        let conn = self.db.reader()?;
        let row = conn
            .query_row(
                &format!(
                    "SELECT {STORED_COLUMNS}, payload FROM profiles WHERE project_id = ?1 AND event_id = ?2 ORDER BY id LIMIT 1"
                ),
                params![project_id, event_id],
                |r| Ok((stored_of(r)?, r.get::<_, Vec<u8>>(8)?)),
            )
            .optional()?;
        match row {
            Some((p, bytes)) => Ok(Some((p, decompress(&bytes)?))),
            None => Ok(None),
        }
    }

    /// The continuous profiling chunks of session `profiler_id` of `project_id` whose
    /// samples overlap `[start_ms, end_ms]`, oldest first, at most [`MAX_LINKED_CHUNKS`],
    /// with their JSON as stored. A chunk is looked for at most [`MAX_CHUNK_MS`] before
    /// `start_ms` (sentry-python's chunks last 60 s).
    pub fn chunks_overlapping(
        &self,
        project_id: i64,
        profiler_id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(StoredProfile, Vec<u8>)>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {STORED_COLUMNS}, payload FROM profiles
             WHERE project_id = ?1 AND kind = 'chunk' AND profiler_id = ?2
               AND start_ms >= ?3 AND start_ms <= ?5 AND start_ms + duration_ns / 1000000 >= ?4
             ORDER BY start_ms LIMIT ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                project_id,
                profiler_id,
                start_ms - MAX_CHUNK_MS,
                start_ms,
                end_ms,
                MAX_LINKED_CHUNKS
            ],
            |r| Ok((stored_of(r)?, r.get::<_, Vec<u8>>(8)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (p, bytes) = row?;
            out.push((p, decompress(&bytes)?));
        }
        Ok(out)
    }

    /// Whether session `profiler_id` of `project_id` has a chunk overlapping
    /// `[start_ms, end_ms]` (as [`Profiles::chunks_overlapping`] finds them).
    pub fn has_chunk(
        &self,
        project_id: i64,
        profiler_id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<bool> {
        let conn = self.db.reader()?;
        let found = conn
            .query_row(
                "SELECT id FROM profiles
                 WHERE project_id = ?1 AND kind = 'chunk' AND profiler_id = ?2
                   AND start_ms >= ?3 AND start_ms <= ?5 AND start_ms + duration_ns / 1000000 >= ?4
                 LIMIT 1",
                params![
                    project_id,
                    profiler_id,
                    start_ms - MAX_CHUNK_MS,
                    start_ms,
                    end_ms
                ],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// `(transaction event id, profile id)` of every profiled transaction of a trace.
    pub fn ids_in_trace(&self, project_id: i64, trace_id: &str) -> Result<Vec<(String, String)>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT event_id, profile_id FROM profiles WHERE project_id = ?1 AND trace_id = ?2 AND event_id IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map(params![project_id, trace_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect()
    }

    /// The summaries of the transaction profiles of `project_id` started in
    /// `[start_ms, end_ms)`, of transaction `transaction` when given, with their identity.
    pub fn summaries(
        &self,
        project_id: i64,
        transaction: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        mut f: impl FnMut(StoredProfile, ProfileSummary),
    ) -> Result<()> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {STORED_COLUMNS}, summary FROM profiles
             WHERE project_id = ?1 AND kind = 'transaction' AND start_ms >= ?2 AND start_ms < ?3
               AND (?4 IS NULL OR transaction_name = ?4)
             ORDER BY start_ms"
        ))?;
        stmt.for_each(params![project_id, start_ms, end_ms, transaction], |r| {
            let p = stored_of(r)?;
            let bytes: Vec<u8> = r.get(8)?;
            if let Some(s) = ProfileSummary::from_bytes(&bytes) {
                f(p, s);
            }
            Ok(())
        })
    }

    /// Self time per function of `project_id` in `[start_ms, end_ms)` and in the window of
    /// equal length before it, for `transaction` and `span_op` when given, largest first,
    /// at most `limit`. Minutes are whole: a window edge inside a minute takes that minute.
    pub fn top_functions(
        &self,
        project_id: i64,
        transaction: Option<&str>,
        span_op: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        limit: i64,
    ) -> Result<Vec<FunctionTotals>> {
        let floor = |ms: i64| ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let start = floor(start_ms);
        let previous = floor(start_ms - (end_ms - start_ms).max(0));
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT function_name, module, MAX(in_app),
                    SUM(CASE WHEN minute >= ?3 THEN self_ns ELSE 0 END) AS cur_ns,
                    SUM(CASE WHEN minute >= ?3 THEN samples ELSE 0 END),
                    SUM(CASE WHEN minute < ?3 THEN self_ns ELSE 0 END)
             FROM profile_functions
             WHERE project_id = ?1 AND minute >= ?2 AND minute < ?4
               AND (?5 IS NULL OR transaction_name = ?5) AND (?6 IS NULL OR span_op = ?6)
             GROUP BY function_name, module
             ORDER BY cur_ns DESC, function_name
             LIMIT ?7",
        )?;
        let rows = stmt.query_map(
            params![
                project_id,
                previous,
                start,
                end_ms,
                transaction,
                span_op,
                limit
            ],
            |r| {
                Ok(FunctionTotals {
                    function: r.get(0)?,
                    module: r.get(1)?,
                    in_app: r.get::<_, i64>(2)? != 0,
                    self_ns: r.get(3)?,
                    samples: r.get(4)?,
                    previous_self_ns: r.get(5)?,
                })
            },
        )?;
        let mut out = rows.collect::<Result<Vec<_>>>()?;
        // Functions seen only in the previous window are no top function of this one.
        out.retain(|f| f.self_ns > 0 || f.samples > 0);
        Ok(out)
    }
}

/// Delete profiles started before `cutoff_ms` and function times of minutes before it, a
/// chunk per transaction.
pub(crate) fn sweep(db: &Db, cutoff_ms: i64) -> Result<u64> {
    let mut total = 0;
    loop {
        let conn = db.writer()?;
        let n = conn.execute(
            "DELETE FROM profiles WHERE id IN (SELECT id FROM profiles WHERE start_ms < ?1 ORDER BY start_ms LIMIT 500)",
            [cutoff_ms],
        )?;
        total += n as u64;
        if n < 500 {
            conn.execute(
                "DELETE FROM profile_functions WHERE minute < ?1",
                [cutoff_ms],
            )?;
            return Ok(total);
        }
    }
}
