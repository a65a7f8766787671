//! The read side: queries for the API and the UI, on the store's pool of read-only
//! connections (WAL readers never block the writer), so reads never stall ingest or the
//! digest.

use super::db::Db;
use super::sql::{Backend, OptionalExtension, Value as SqlValue, params, params_from_iter};
use super::{Result, StoreError};
use lookout_protocol::sketch::DDSketch;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A project as the API names it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRef {
    /// Numeric id.
    pub id: i64,
    /// The URL-safe name.
    pub slug: String,
    /// Its organisation's slug.
    pub org_slug: String,
}

/// An issue row.
#[derive(Debug, Clone)]
pub struct IssueRow {
    /// The issue's id (its page is `/issues/{id}`).
    pub id: i64,
    /// The project it belongs to.
    pub project: ProjectRef,
    /// Per-project sequence number (short id suffix).
    pub short_seq: i64,
    /// Title as shown in lists.
    pub title: String,
    /// Where it happened: the culprit Sentry shows under the title.
    pub culprit: String,
    /// Severity: `fatal`, `error`, `warning`, `info` or `debug`.
    pub level: String,
    /// `error` or `default`.
    pub kind: String,
    /// Grouping metadata JSON.
    pub metadata: String,
    /// unresolved, resolved, ignored.
    pub status: String,
    /// When its first event happened (ms since the epoch).
    pub first_seen: i64,
    /// When its latest event happened (ms since the epoch).
    pub last_seen: i64,
    /// How many events it has.
    pub times_seen: i64,
    /// How many distinct users its events affected.
    pub user_count: i64,
    /// Release of the first event.
    pub first_release: Option<String>,
}

impl IssueRow {
    /// `DEFAULT-1A`: the project slug in capitals and the sequence in base 36.
    pub fn short_id(&self) -> String {
        format!(
            "{}-{}",
            self.project.slug.to_ascii_uppercase(),
            base36(self.short_seq)
        )
    }
}

pub(crate) fn base36(mut n: i64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if n <= 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// One parsed search term of an issue query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `is:unresolved` and the like.
    Status(String),
    /// `level:error`.
    Level(String),
    /// `release:1.0`.
    Release(String),
    /// `environment:prod`.
    Environment(String),
    /// `key:value` on the issue's tags (negated with `!key:value`).
    Tag {
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
        /// `!key:value`.
        negated: bool,
    },
    /// Free text, matched against title and culprit.
    Text(String),
}

/// Parse Sentry's search syntax (the part issues need): `is:`, `level:`, `release:`,
/// `environment:`, `key:value` tags (values may be quoted), `!key:value`, free text.
pub fn parse_query(q: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut chars = q.chars().peekable();
    let mut tokens = Vec::new();
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut tok = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = !quoted;
                chars.next();
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            tok.push(c);
            chars.next();
        }
        if !tok.is_empty() {
            tokens.push(tok);
        }
    }
    let mut text = Vec::new();
    for tok in tokens {
        let (negated, body) = match tok.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, tok.as_str()),
        };
        match body.split_once(':') {
            Some((k, v))
                if !k.is_empty() && !v.is_empty() && !k.contains('/') && !v.starts_with("//") =>
            {
                let v = v.to_owned();
                match (k, negated) {
                    ("is", false) => terms.push(Term::Status(v)),
                    ("level", false) => terms.push(Term::Level(v)),
                    ("release", false) => terms.push(Term::Release(v)),
                    ("environment", false) => terms.push(Term::Environment(v)),
                    _ => terms.push(Term::Tag {
                        key: k.to_owned(),
                        value: v,
                        negated,
                    }),
                }
            }
            _ => text.push(tok),
        }
    }
    // Each bare word (or quoted phrase) must appear: "order failed" finds "order 1234 failed".
    terms.extend(text.into_iter().map(Term::Text));
    terms
}

/// Why a search query does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based column (in characters) of the fault.
    pub column: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

impl std::error::Error for QueryError {}

/// [`parse_query`], refusing what it would silently read as free text: `key:` without a
/// value (`trade.asset:`), `:value` without a key, a lone `!`, and a quote never closed.
/// The error says where (for forms that store a query: alert rules).
pub fn parse_query_checked(q: &str) -> std::result::Result<Vec<Term>, QueryError> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let mut quoted_at = None;
        let mut colon = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '"' {
                quoted_at = if quoted_at.is_some() { None } else { Some(i) };
            } else if c.is_whitespace() && quoted_at.is_none() {
                break;
            } else if c == ':' && colon.is_none() && quoted_at.is_none() {
                colon = Some(i);
            }
            i += 1;
        }
        if let Some(at) = quoted_at {
            return Err(QueryError {
                column: at + 1,
                message: "the quote opened here is never closed".into(),
            });
        }
        let token: String = chars[start..i].iter().collect();
        let key_start = if chars[start] == '!' {
            start + 1
        } else {
            start
        };
        if key_start == i {
            return Err(QueryError {
                column: start + 1,
                message: "expected a search term after `!`".into(),
            });
        }
        if let Some(c) = colon {
            let value: String = chars[c + 1..i].iter().filter(|ch| **ch != '"').collect();
            if c == key_start {
                return Err(QueryError {
                    column: c + 1,
                    message: format!("expected a key before `{token}`"),
                });
            }
            if value.is_empty() {
                return Err(QueryError {
                    column: c + 1,
                    message: format!("expected a value after `{token}`"),
                });
            }
        }
    }
    Ok(parse_query(q))
}

/// A tag key and its values with their counts, most frequent first.
pub type TagValues = (String, Vec<(String, i64)>);

/// A stored event, decoded.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The event's row in the store.
    pub row: i64,
    /// The event id the SDK chose (32 hex digits).
    pub event_id: String,
    /// Issue, for errors.
    pub issue_id: Option<i64>,
    /// When it happened (ms since the epoch).
    pub timestamp: i64,
    /// The normalised payload.
    pub payload: serde_json::Value,
}

/// Latency summary of a transaction name or span op over a window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySummary {
    /// Transaction name (or span op).
    pub name: String,
    /// The operation (`http.client`, `order.pipeline`, …).
    pub op: String,
    /// How many transactions (or spans) in the window.
    pub count: i64,
    /// Failures.
    pub errors: i64,
    /// errors / count.
    pub failure_rate: f64,
    /// Median duration (ms).
    pub p50: Option<f64>,
    /// 75th percentile of the duration (ms).
    pub p75: Option<f64>,
    /// 95th percentile of the duration (ms).
    pub p95: Option<f64>,
    /// 99th percentile of the duration (ms).
    pub p99: Option<f64>,
    /// Mean duration (ms).
    pub avg: Option<f64>,
}

/// Depth-first order: each span right after its parent, siblings by start time; spans
/// whose parent is not in the trace (the roots) start the walk, earliest first.
fn tree_order(rows: Vec<SpanRow>) -> Vec<SpanRow> {
    let ids: HashSet<&str> = rows.iter().map(|r| r.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        match r.parent_span_id.as_deref() {
            Some(p) if ids.contains(p) && p != r.span_id => children.entry(p).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let mut order = Vec::with_capacity(rows.len());
    let mut seen = vec![false; rows.len()];
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push(i);
        if let Some(kids) = children.get(rows[i].span_id.as_str()) {
            stack.extend(kids.iter().rev());
        }
    }
    // Cycles (attacker-controlled ids) leave spans unvisited: append them in start order.
    order.extend((0..rows.len()).filter(|i| !seen[*i]));
    let mut slots: Vec<Option<SpanRow>> = rows.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// A span of a trace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRow {
    /// 32 hex of the transaction it was sent in.
    pub event_id: String,
    /// The span id (16 hex digits).
    pub span_id: String,
    /// The parent span, absent for a root span.
    pub parent_span_id: Option<String>,
    /// The operation (`http.client`, `order.pipeline`, …).
    pub op: String,
    /// What the span did, in the SDK's words.
    pub description: Option<String>,
    /// The span's status (`ok`, `internal_error`, …), if set.
    pub status: Option<String>,
    /// Start (seconds since epoch, fractional).
    pub start_timestamp: f64,
    /// End (seconds).
    pub timestamp: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Extra data the SDK attached to the span.
    pub data: Option<serde_json::Value>,
}

/// Read-side handle.
#[derive(Debug, Clone)]
pub struct Reader {
    db: Arc<Db>,
}

const ISSUE_COLUMNS: &str = "i.id, i.project_id, p.slug, o.slug, i.short_seq, i.title, i.culprit, i.level, i.kind, i.metadata, i.status, i.first_seen, i.last_seen, i.times_seen, i.user_count, i.first_release";

fn issue_from_row(r: &super::sql::Row<'_>) -> Result<IssueRow> {
    Ok(IssueRow {
        id: r.get(0)?,
        project: ProjectRef {
            id: r.get(1)?,
            slug: r.get(2)?,
            org_slug: r.get(3)?,
        },
        short_seq: r.get(4)?,
        title: r.get(5)?,
        culprit: r.get(6)?,
        level: r.get(7)?,
        kind: r.get(8)?,
        metadata: r.get(9)?,
        status: r.get(10)?,
        first_seen: r.get(11)?,
        last_seen: r.get(12)?,
        times_seen: r.get(13)?,
        user_count: r.get(14)?,
        first_release: r.get(15)?,
    })
}

/// Decode a stored (zstd) payload.
pub fn decode_payload(bytes: &[u8]) -> serde_json::Value {
    zstd::decode_all(bytes)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

impl Reader {
    pub(crate) fn new(db: Arc<Db>) -> Reader {
        Reader { db }
    }

    /// Find a project by organisation and slug.
    pub fn project(&self, org: &str, slug: &str) -> Result<ProjectRef> {
        self.db.reader()?
            .query_row(
                "SELECT p.id, p.slug, o.slug FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.slug = ?1 AND p.slug = ?2",
                [org, slug],
                |r| {
                    Ok(ProjectRef {
                        id: r.get(0)?,
                        slug: r.get(1)?,
                        org_slug: r.get(2)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("project {org}/{slug}")))
    }

    /// Issues of a project matching `query`, most recently seen first.
    pub fn issues(
        &self,
        project_id: i64,
        terms: &[Term],
        since_ms: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<IssueRow>> {
        let backend = self.db.backend();
        let mut sql = format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id JOIN organizations o ON o.id = p.org_id WHERE i.project_id = ?"
        );
        let mut args: Vec<SqlValue> = vec![SqlValue::Integer(project_id)];
        if let Some(since) = since_ms {
            sql.push_str(" AND i.last_seen >= ?");
            args.push(SqlValue::Integer(since));
        }
        for term in terms {
            match term {
                Term::Status(s) => {
                    let status = match s.as_str() {
                        "unresolved" | "resolved" | "ignored" => s.clone(),
                        "muted" | "archived" => "ignored".into(),
                        _ => continue,
                    };
                    sql.push_str(" AND i.status = ?");
                    args.push(SqlValue::Text(status));
                }
                Term::Level(l) => {
                    sql.push_str(" AND i.level = ?");
                    args.push(SqlValue::Text(l.clone()));
                }
                Term::Release(r) => {
                    sql.push_str(" AND EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = 'release' AND t.value = ?)");
                    args.push(SqlValue::Text(r.clone()));
                }
                Term::Environment(e) => {
                    sql.push_str(" AND EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = 'environment' AND t.value = ?)");
                    args.push(SqlValue::Text(e.clone()));
                }
                Term::Tag {
                    key,
                    value,
                    negated,
                } => {
                    sql.push_str(if *negated {
                        " AND NOT EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = ? AND t.value = ?)"
                    } else {
                        " AND EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = ? AND t.value = ?)"
                    });
                    args.push(SqlValue::Text(key.clone()));
                    args.push(SqlValue::Text(value.clone()));
                }
                Term::Text(t) => {
                    // Case-insensitive on both: SQLite's LIKE is, PostgreSQL's ILIKE is.
                    sql.push_str(match backend {
                        Backend::Sqlite => {
                            " AND (i.title LIKE ? ESCAPE '\\' OR i.culprit LIKE ? ESCAPE '\\')"
                        }
                        Backend::Postgres => {
                            " AND (i.title ILIKE ? ESCAPE '\\' OR i.culprit ILIKE ? ESCAPE '\\')"
                        }
                    });
                    let pattern = format!(
                        "%{}%",
                        t.replace('\\', "\\\\")
                            .replace('%', "\\%")
                            .replace('_', "\\_")
                    );
                    args.push(SqlValue::Text(pattern.clone()));
                    args.push(SqlValue::Text(pattern));
                }
            }
        }
        sql.push_str(" ORDER BY i.last_seen DESC, i.id DESC LIMIT ? OFFSET ?");
        args.push(SqlValue::Integer(limit));
        args.push(SqlValue::Integer(offset));
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), issue_from_row)?;
        rows.collect::<Result<Vec<_>>>()
    }

    /// One issue.
    pub fn issue(&self, id: i64) -> Result<IssueRow> {
        self.db.reader()?
            .query_row(
                &format!("SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id JOIN organizations o ON o.id = p.org_id WHERE i.id = ?1"),
                [id],
                issue_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("issue {id}")))
    }

    /// An issue by its short id (`DEFAULT-1A`) within a project.
    pub fn issue_id_by_short(&self, project_id: i64, seq: i64) -> Result<Option<i64>> {
        self.db
            .reader()?
            .query_row(
                "SELECT id FROM issues WHERE project_id = ?1 AND short_seq = ?2",
                [project_id, seq],
                |r| r.get(0),
            )
            .optional()
    }

    /// Tag value counts of an issue: key → [(value, count)], most frequent first.
    pub fn issue_tags(&self, id: i64) -> Result<Vec<TagValues>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT key, value, times_seen FROM issue_tags WHERE issue_id = ?1 ORDER BY key, times_seen DESC, value",
        )?;
        let mut out: Vec<TagValues> = Vec::new();
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (k, v, n) = row?;
            match out.last_mut() {
                Some((key, values)) if *key == k => values.push((v, n)),
                _ => out.push((k, vec![(v, n)])),
            }
        }
        Ok(out)
    }

    /// Events of an issue, newest first.
    pub fn issue_events(&self, issue_id: i64, limit: i64, offset: i64) -> Result<Vec<EventRow>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT id, event_id, issue_id, timestamp, payload FROM events WHERE issue_id = ?1 ORDER BY timestamp DESC, id DESC LIMIT ?2 OFFSET ?3",
        )?;
        let rows = stmt.query_map([issue_id, limit, offset], |r| {
            let payload: Vec<u8> = r.get(4)?;
            Ok(EventRow {
                row: r.get(0)?,
                event_id: r.get(1)?,
                issue_id: r.get(2)?,
                timestamp: r.get(3)?,
                payload: decode_payload(&payload),
            })
        })?;
        rows.collect::<Result<Vec<_>>>()
    }

    /// One event of a project by its id.
    pub fn event(&self, project_id: i64, event_id: &str) -> Result<EventRow> {
        self.db.reader()?
            .query_row(
                "SELECT id, event_id, issue_id, timestamp, payload FROM events WHERE project_id = ?1 AND event_id = ?2",
                params![project_id, event_id],
                |r| {
                    let payload: Vec<u8> = r.get(4)?;
                    Ok(EventRow {
                        row: r.get(0)?,
                        event_id: r.get(1)?,
                        issue_id: r.get(2)?,
                        timestamp: r.get(3)?,
                        payload: decode_payload(&payload),
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("event {event_id}")))
    }

    /// Latency summaries over `[since, until)` per transaction (`kind = "transaction"`) or
    /// per span op (`kind = "span"`), merged from per-minute sketches.
    pub fn latency(
        &self,
        project_id: i64,
        kind: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<LatencySummary>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT name, op, count, errors, sketch FROM rollup_latency WHERE project_id = ?1 AND kind = ?2 AND minute >= ?3 AND minute < ?4",
        )?;
        let mut merged: HashMap<(String, String), (i64, i64, DDSketch)> = HashMap::new();
        let rows = stmt.query_map(
            params![
                project_id,
                kind,
                since_ms - since_ms.rem_euclid(60_000),
                until_ms
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            },
        )?;
        for row in rows {
            let (name, op, count, errors, bytes) = row?;
            let entry = merged
                .entry((name, op))
                .or_insert_with(|| (0, 0, DDSketch::new()));
            entry.0 += count;
            entry.1 += errors;
            if let Ok(s) = DDSketch::from_bytes(&bytes) {
                entry.2.merge(&s);
            }
        }
        let mut out: Vec<LatencySummary> = merged
            .into_iter()
            .map(|((name, op), (count, errors, sketch))| LatencySummary {
                name,
                op,
                count,
                errors,
                failure_rate: if count > 0 {
                    errors as f64 / count as f64
                } else {
                    0.0
                },
                p50: sketch.quantile(0.50),
                p75: sketch.quantile(0.75),
                p95: sketch.quantile(0.95),
                p99: sketch.quantile(0.99),
                avg: (sketch.count() > 0).then(|| sketch.sum() / sketch.count() as f64),
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Every span of a trace (the root span of each transaction included), by start time.
    pub fn trace(&self, project_id: i64, trace_id: &str) -> Result<Vec<SpanRow>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT e.event_id, s.span_id, s.parent_span_id, s.op, s.description, s.status, s.start_ms, s.duration_ms, s.data
             FROM spans s JOIN events e ON e.id = s.event_row
             WHERE s.trace_id = ?1 AND e.project_id = ?2 ORDER BY s.start_ms, s.span_id",
        )?;
        let rows = stmt.query_map(params![trace_id, project_id], |r| {
            let start_ms: f64 = r.get(6)?;
            let duration_ms: f64 = r.get(7)?;
            let data: Option<String> = r.get(8)?;
            Ok(SpanRow {
                event_id: r.get(0)?,
                span_id: r.get(1)?,
                parent_span_id: r.get(2)?,
                op: r.get(3)?,
                description: r.get(4)?,
                status: r.get(5)?,
                start_timestamp: start_ms / 1000.0,
                timestamp: (start_ms + duration_ms) / 1000.0,
                duration_ms,
                data: data.and_then(|d| serde_json::from_str(&d).ok()),
            })
        })?;
        let rows = rows.collect::<Result<Vec<_>>>()?;
        Ok(tree_order(rows))
    }

    /// Count of items the digest refused, by reason (for tests and the UI).
    pub fn rejections(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.db.reader()?;
        let mut stmt =
            conn.prepare("SELECT item_type, reason, detail FROM digest_rejections ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<Vec<_>>>()
    }

    /// The digest cursor (last inbox row digested).
    pub fn digest_cursor(&self) -> Result<i64> {
        self.db.reader()?.query_row(
            "SELECT last_inbox_id FROM digest_cursor WHERE id = 1",
            [],
            |r| r.get(0),
        )
    }
}

/// A recent transaction as the Performance page lists it.
#[derive(Debug, Clone)]
pub struct RecentTransaction {
    /// The event id the SDK chose (32 hex digits).
    pub event_id: String,
    /// Transaction name.
    pub name: String,
    /// The trace it belongs to (32 hex digits).
    pub trace_id: Option<String>,
    /// End time (ms).
    pub timestamp: i64,
    /// Duration (ms), when the payload has both ends.
    pub duration_ms: Option<f64>,
    /// The trace context's status (`ok` when absent).
    pub status: String,
}

/// What [`Reader::transactions`] filters on; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    /// The transaction's name, exactly.
    pub name: Option<String>,
    /// The root span's op (`order.pipeline`).
    pub op: Option<String>,
    /// The root span's status (`ok`, `internal_error`, …).
    pub status: Option<String>,
    /// The agent: its `agent_id` tag, or the user it reported as.
    pub agent: Option<String>,
    /// Only transactions that ended at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
}

/// A stored transaction, as the API lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionRow {
    /// Its event id.
    pub event_id: String,
    /// Its name.
    pub transaction: String,
    /// The root span's op.
    pub op: String,
    /// Its trace (the waterfall's key).
    pub trace_id: Option<String>,
    /// The root span's status.
    pub status: String,
    /// How long it took (ms).
    pub duration_ms: f64,
    /// When it ended (ms since the epoch).
    pub timestamp: i64,
    /// The agent that ran it, when known.
    pub agent: Option<String>,
    /// Its release, if named.
    pub release: Option<String>,
    /// Its environment, if named.
    pub environment: Option<String>,
}

/// One minute of a latency series: runs, failed runs, and their latency sketch.
#[derive(Debug, Clone)]
pub struct LatencyMinute {
    /// The minute's start (ms since the epoch).
    pub minute: i64,
    /// Transactions or spans that ended in it.
    pub count: i64,
    /// Of those, the ones whose status is a failure.
    pub errors: i64,
    /// Their latencies, mergeable with other minutes'.
    pub sketch: DDSketch,
}

/// Which latency sketches [`Reader::latency_sketches`] reads.
#[derive(Debug, Clone, Copy)]
pub enum SketchSeries<'a> {
    /// Transactions whose op is this (e.g. `order.pipeline`), whatever their name.
    TransactionOp(&'a str),
    /// Spans of this op (stage spans are rolled up under name = op).
    SpanOp(&'a str),
}

impl Reader {
    /// Whether any issue is stored.
    pub fn any_issue(&self) -> Result<bool> {
        self.db
            .reader()?
            .query_row("SELECT EXISTS (SELECT 1 FROM issues)", [], |r| r.get(0))
    }

    /// The projects of organisation `org`: (id, slug), oldest first.
    pub fn projects(&self, org: &str) -> Result<Vec<(i64, String)>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT p.id, p.slug FROM projects p JOIN organizations o ON o.id = p.org_id WHERE o.slug = ?1 ORDER BY p.id",
        )?;
        let all = stmt
            .query_map([org], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_>>()?;
        Ok(all)
    }

    /// Events per hour over the 24 hours before `now`, per issue (oldest hour first).
    pub fn hourly_counts(&self, issue_ids: &[i64], now: i64) -> Result<Vec<[i64; 24]>> {
        let hour = 3_600_000;
        let start = (now - 24 * hour).div_euclid(hour) * hour + hour;
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT minute, SUM(count) FROM rollup_events WHERE issue_id = ?1 AND minute >= ?2 GROUP BY minute",
        )?;
        let mut out = Vec::with_capacity(issue_ids.len());
        for id in issue_ids {
            let mut buckets = [0i64; 24];
            let rows = stmt.query_map(params![id, start], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (minute, count) = row?;
                let b = ((minute - start) / hour).clamp(0, 23) as usize;
                buckets[b] += count;
            }
            out.push(buckets);
        }
        Ok(out)
    }

    /// The per-minute latency rollups of one series of `project_id` since `since_ms`: how
    /// many ran, how many failed, and their merged latency sketch, per minute.
    pub fn latency_sketches(
        &self,
        project_id: i64,
        series: SketchSeries<'_>,
        since_ms: i64,
    ) -> Result<Vec<LatencyMinute>> {
        let conn = self.db.reader()?;
        let from_minute = since_ms - since_ms.rem_euclid(60_000);
        let (sql, op) = match series {
            SketchSeries::SpanOp(op) => (
                "SELECT minute, count, errors, sketch FROM rollup_latency WHERE project_id = ?1 AND kind = 'span' AND name = ?2 AND op = ?2 AND minute >= ?3",
                op,
            ),
            SketchSeries::TransactionOp(op) => (
                "SELECT minute, count, errors, sketch FROM rollup_latency WHERE project_id = ?1 AND kind = 'transaction' AND op = ?2 AND minute >= ?3",
                op,
            ),
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![project_id, op, from_minute], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (minute, count, errors, bytes) = row?;
            if let Ok(sketch) = DDSketch::from_bytes(&bytes) {
                out.push(LatencyMinute {
                    minute,
                    count,
                    errors,
                    sketch,
                });
            }
        }
        Ok(out)
    }

    /// The latest `limit` transactions of `project_id` that match `filter`, newest first.
    pub fn transactions(
        &self,
        project_id: i64,
        filter: &TransactionFilter,
        limit: i64,
    ) -> Result<Vec<TransactionRow>> {
        let conn = self.db.reader()?;
        let mut sql = String::from(
            "SELECT e.event_id, COALESCE(e.transaction_name, ''), s.op, e.trace_id, COALESCE(s.status, 'ok'), s.duration_ms, e.timestamp,
                    COALESCE((SELECT t.value FROM event_tags t WHERE t.event_row = e.id AND t.key = 'agent_id'), e.user_key),
                    e.release, e.environment
             FROM events e JOIN spans s ON s.event_row = e.id AND s.parent_span_id IS NULL
             WHERE e.project_id = ?1 AND e.kind = 'transaction' AND e.timestamp >= ?2",
        );
        let mut args: Vec<SqlValue> = vec![
            SqlValue::Integer(project_id),
            SqlValue::Integer(filter.since_ms.unwrap_or(i64::MIN)),
        ];
        for (clause, value) in [
            (" AND e.transaction_name = ?", &filter.name),
            (" AND s.op = ?", &filter.op),
            (" AND COALESCE(s.status, 'ok') = ?", &filter.status),
            (
                " AND (EXISTS (SELECT 1 FROM event_tags t WHERE t.event_row = e.id AND t.key = 'agent_id' AND t.value = ?) OR e.user_key = ?)",
                &filter.agent,
            ),
        ] {
            if let Some(v) = value {
                sql.push_str(clause);
                for _ in 0..clause.matches('?').count() {
                    args.push(SqlValue::Text(v.clone()));
                }
            }
        }
        sql.push_str(" ORDER BY e.timestamp DESC LIMIT ?");
        args.push(SqlValue::Integer(limit));
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok(TransactionRow {
                    event_id: r.get(0)?,
                    transaction: r.get(1)?,
                    op: r.get(2)?,
                    trace_id: r.get(3)?,
                    status: r.get(4)?,
                    duration_ms: r.get(5)?,
                    timestamp: r.get(6)?,
                    agent: r.get(7)?,
                    release: r.get(8)?,
                    environment: r.get(9)?,
                })
            })?
            .collect::<Result<_>>()?;
        Ok(rows)
    }

    /// The latest `limit` transactions of `project_id`, newest first.
    pub fn recent_transactions(
        &self,
        project_id: i64,
        limit: i64,
    ) -> Result<Vec<RecentTransaction>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT event_id, transaction_name, trace_id, timestamp, payload FROM events
             WHERE project_id = ?1 AND kind = 'transaction' ORDER BY timestamp DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![project_id, limit], |r| {
                let payload: Vec<u8> = r.get(4)?;
                let p = decode_payload(&payload);
                let duration_ms = match (
                    p.get("start_timestamp").and_then(|v| v.as_f64()),
                    p.get("timestamp").and_then(|v| v.as_f64()),
                ) {
                    (Some(a), Some(b)) => Some((b - a) * 1000.0),
                    _ => None,
                };
                let status = p
                    .get("contexts")
                    .and_then(|c| c.get("trace"))
                    .and_then(|t| t.get("status"))
                    .and_then(|s| s.as_str())
                    .unwrap_or("ok")
                    .to_owned();
                Ok(RecentTransaction {
                    event_id: r.get(0)?,
                    name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    trace_id: r.get(2)?,
                    timestamp: r.get(3)?,
                    duration_ms,
                    status,
                })
            })?
            .collect::<Result<_>>()?;
        Ok(rows)
    }
}

/// An error event of a trace, as the waterfall links it.
#[derive(Debug, Clone)]
pub struct TraceError {
    /// The event id the SDK chose (32 hex digits).
    pub event_id: String,
    /// The issue it was grouped into (its page is `/issues/{id}`).
    pub issue_id: Option<i64>,
    /// The event's title.
    pub title: String,
    /// Its level (`error`, `fatal`, …).
    pub level: String,
    /// When it happened (ms since the epoch).
    pub timestamp: i64,
}

/// Most error events of one trace the waterfall lists.
const TRACE_ERRORS_MAX: i64 = 200;

impl Reader {
    /// The error and message events of a trace in `project_id` (transactions left out),
    /// oldest first, at most 200: one query.
    pub fn trace_errors(&self, project_id: i64, trace_id: &str) -> Result<Vec<TraceError>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            // By the trace index: ordering by time would tempt the planner into the
            // project's time index, a scan of every event of the project.
            "SELECT event_id, issue_id, title, level, timestamp FROM events INDEXED BY events_trace
             WHERE trace_id = ?1 AND project_id = ?2 AND kind <> 'transaction'
             ORDER BY timestamp, id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![trace_id, project_id, TRACE_ERRORS_MAX], |r| {
                Ok(TraceError {
                    event_id: r.get(0)?,
                    issue_id: r.get(1)?,
                    title: r.get(2)?,
                    level: r.get(3)?,
                    timestamp: r.get(4)?,
                })
            })?
            .collect::<Result<_>>()?;
        Ok(rows)
    }

    /// The values of tags `keys` of each issue in `issue_ids` (one query for the list):
    /// issue id → [(key, value)], by key then value. What the issues list shows beside
    /// titles that a fingerprint split (asset, phase).
    pub fn issues_tag_values(
        &self,
        issue_ids: &[i64],
        keys: &[&str],
    ) -> Result<HashMap<i64, Vec<(String, String)>>> {
        let mut out: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        if issue_ids.is_empty() || keys.is_empty() {
            return Ok(out);
        }
        let marks = |n: usize| vec!["?"; n].join(", ");
        let sql = format!(
            "SELECT issue_id, key, value FROM issue_tags WHERE issue_id IN ({}) AND key IN ({}) ORDER BY issue_id, key, value",
            marks(issue_ids.len()),
            marks(keys.len())
        );
        let args: Vec<SqlValue> = issue_ids
            .iter()
            .map(|i| SqlValue::Integer(*i))
            .chain(keys.iter().map(|k| SqlValue::Text((*k).to_owned())))
            .collect();
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (id, k, v) = row?;
            out.entry(id).or_default().push((k, v));
        }
        Ok(out)
    }

    /// Issues of organisation `org` first seen in `release`, newest first, at most
    /// `limit`: one query.
    pub fn issues_first_seen_in(
        &self,
        org: &str,
        release: &str,
        limit: i64,
    ) -> Result<Vec<IssueRow>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i JOIN projects p ON p.id = i.project_id JOIN organizations o ON o.id = p.org_id
             WHERE o.slug = ?1 AND i.first_release = ?2 ORDER BY i.first_seen DESC, i.id DESC LIMIT ?3"
        ))?;
        let rows = stmt
            .query_map(params![org, release, limit], issue_from_row)?
            .collect::<Result<_>>()?;
        Ok(rows)
    }
}

impl super::Store {
    /// Resolve, ignore or reopen an issue.
    pub fn set_issue_status(&self, id: i64, status: &str) -> Result<()> {
        let conn = self.db.writer()?;
        let now = chrono::Utc::now().timestamp_millis();
        let n = conn.execute(
        "UPDATE issues SET status = ?2, resolved_at = CASE WHEN ?2 = 'resolved' THEN ?3 ELSE NULL END WHERE id = ?1",
        params![id, status, now],
    )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("issue {id}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms() {
        assert_eq!(
            parse_query(
                "is:unresolved level:error trade.asset:BTC !service:casino release:\"vol arb@1.0\" margin call"
            ),
            vec![
                Term::Status("unresolved".into()),
                Term::Level("error".into()),
                Term::Tag {
                    key: "trade.asset".into(),
                    value: "BTC".into(),
                    negated: false
                },
                Term::Tag {
                    key: "service".into(),
                    value: "casino".into(),
                    negated: true
                },
                Term::Release("vol arb@1.0".into()),
                Term::Text("margin".into()),
                Term::Text("call".into()),
            ]
        );
        assert_eq!(parse_query("  "), vec![]);
        assert_eq!(parse_query("http://x"), vec![Term::Text("http://x".into())]);
        assert_eq!(
            parse_query("\"order failed\""),
            vec![Term::Text("order failed".into())]
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(base36(1), "1");
        assert_eq!(base36(46), "1A");
        assert_eq!(base36(36 * 36), "100");
    }
}
