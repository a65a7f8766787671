//! What the digest's processing makes of inbox rows, ready to store: events, transactions
//! and their spans, sessions, check-ins, logs, refusals, gathered per batch. A leaf module:
//! the digest writes these, the agents rollup and the alert feed read them.

use std::collections::HashMap;

/// One error or message event, ready to store.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// The event id the SDK chose (32 hex digits).
    pub event_id: String,
    /// Event time (ms since epoch).
    pub timestamp_ms: i64,
    /// Arrival time (ms since epoch).
    pub received_ms: i64,
    /// fatal, error, warning, info, debug.
    pub level: String,
    /// `error` (has an exception) or `default` (a message).
    pub kind: &'static str,
    /// Release, if any.
    pub release: Option<String>,
    /// Environment, if any.
    pub environment: Option<String>,
    /// Transaction name, if any.
    pub transaction: Option<String>,
    /// Trace id, if any.
    pub trace_id: Option<String>,
    /// Who was affected (user id, email, username or IP), for distinct-user counts.
    pub user_key: Option<String>,
    /// The group hash that decides its issue.
    pub hash: String,
    /// Title as shown in lists.
    pub title: String,
    /// Where it happened: the culprit Sentry shows under the title.
    pub culprit: String,
    /// Grouping metadata (type, value, …) as JSON.
    pub metadata: String,
    /// Tags (key, value).
    pub tags: Vec<(String, String)>,
    /// The normalised, scrubbed payload, zstd-compressed.
    pub payload: Vec<u8>,
}

/// One span of a transaction.
#[derive(Debug, Clone)]
pub struct SpanRecord {
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
    /// Start (ms since epoch, fractional).
    pub start_ms: f64,
    /// Duration in ms.
    pub duration_ms: f64,
    /// Span data as JSON.
    pub data: Option<String>,
}

/// One transaction with its spans.
#[derive(Debug, Clone)]
pub struct TransactionRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// The event id the SDK chose (32 hex digits).
    pub event_id: String,
    /// End time (ms since epoch).
    pub timestamp_ms: i64,
    /// When the server received it (ms since the epoch).
    pub received_ms: i64,
    /// Transaction name.
    pub name: String,
    /// The operation (`http.client`, `order.pipeline`, …).
    pub op: String,
    /// Root status (`ok` unless failed).
    pub status: String,
    /// Root span id.
    pub span_id: String,
    /// The trace it belongs to (32 hex digits).
    pub trace_id: String,
    /// Duration in ms.
    pub duration_ms: f64,
    /// Start (ms since epoch).
    pub start_ms: f64,
    /// The release it ran, if named.
    pub release: Option<String>,
    /// The environment, if named.
    pub environment: Option<String>,
    /// Who was affected (user id, email, username or IP), for distinct-user counts.
    pub user_key: Option<String>,
    /// Its tags (key, value), in the order sent.
    pub tags: Vec<(String, String)>,
    /// Its child spans.
    pub spans: Vec<SpanRecord>,
    /// The normalised, scrubbed payload, zstd-compressed.
    pub payload: Vec<u8>,
}

/// A session update (from a `session` item).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// The session id the SDK chose.
    pub sid: String,
    /// Distinct id (user), if any.
    pub did: Option<String>,
    /// The `agent_id` tag of an event or transaction that travelled in the same envelope
    /// (the SDKs send a crash's session update with the crash event), if any. Takes
    /// precedence over the agent the distinct id names.
    pub agent: Option<String>,
    /// First update of this session.
    pub init: bool,
    /// ok, exited, crashed, abnormal, errored.
    pub status: String,
    /// Errors seen in the session.
    pub errors: i64,
    /// Start (ms since epoch).
    pub started_ms: i64,
    /// Update time (ms).
    pub timestamp_ms: i64,
    /// Duration in seconds.
    pub duration: Option<f64>,
    /// The release the session ran (sessions always name one).
    pub release: String,
    /// The environment (empty when none).
    pub environment: String,
}

/// One bucket of a `sessions` aggregate item.
#[derive(Debug, Clone)]
pub struct SessionAggregateRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// Minute start (ms).
    pub started_ms: i64,
    /// Distinct id, if the bucket is per user.
    pub did: Option<String>,
    /// Sessions that ended normally.
    pub exited: i64,
    /// Sessions with errors.
    pub errored: i64,
    /// Sessions that ended abnormally (hung or killed).
    pub abnormal: i64,
    /// Sessions that ended in a crash.
    pub crashed: i64,
    /// The release the sessions ran.
    pub release: String,
    /// The environment (empty when none).
    pub environment: String,
}

/// A check-in.
#[derive(Debug, Clone)]
pub struct CheckInRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// The check-in id the SDK chose (32 hex digits).
    pub check_in_id: String,
    /// The monitor it reports for.
    pub monitor_slug: String,
    /// Environment (default `production`).
    pub environment: String,
    /// in_progress, ok, error, unknown.
    pub status: String,
    /// Duration in ms.
    pub duration_ms: Option<f64>,
    /// The release that checked in, if named.
    pub release: Option<String>,
    /// The monitor_config as sent, JSON.
    pub monitor_config: Option<String>,
    /// When the server received it (ms since the epoch).
    pub received_ms: i64,
}

/// A log record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The project it belongs to.
    pub project_id: i64,
    /// When it happened (ms since the epoch).
    pub timestamp_ms: i64,
    /// Severity: `fatal`, `error`, `warning`, `info` or `debug`.
    pub level: String,
    /// Body (scrubbed).
    pub body: String,
    /// The trace it belongs to (32 hex digits).
    pub trace_id: Option<String>,
    /// Attributes JSON (scrubbed).
    pub attributes: Option<String>,
}

/// An item the digest refused.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The inbox row it came from.
    pub inbox_id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// The envelope item type (`event`, `transaction`, `session`, …).
    pub item_type: String,
    /// Stable reason.
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
}

/// Everything one batch of inbox rows produced.
#[derive(Debug, Default)]
pub struct Batch {
    /// Last inbox row in the batch.
    pub last_inbox_id: i64,
    /// Every inbox row in the batch (a shared database marks each digested).
    pub inbox_ids: Vec<i64>,
    /// Error and message events.
    pub events: Vec<EventRecord>,
    /// Transactions.
    pub transactions: Vec<TransactionRecord>,
    /// Session updates.
    pub sessions: Vec<SessionRecord>,
    /// Pre-aggregated session counts (server-mode SDKs).
    pub session_aggregates: Vec<SessionAggregateRecord>,
    /// Cron and heartbeat check-ins.
    pub check_ins: Vec<CheckInRecord>,
    /// Client reports: (project, minute ms, reason, category) → quantity.
    pub client_reports: HashMap<(i64, i64, String, String), i64>,
    /// Log records.
    pub logs: Vec<LogRecord>,
    /// Items refused, each with its reason.
    pub rejections: Vec<Rejection>,
    /// Profiles (v1 transaction profiles and v2 chunks).
    pub profiles: Vec<super::profiles::ProfileRecord>,
}

impl Batch {
    /// Append what `later` produced (from inbox rows after this batch's rows), keeping
    /// each kind of record in inbox order.
    pub fn append(&mut self, later: Batch) {
        self.last_inbox_id = self.last_inbox_id.max(later.last_inbox_id);
        self.inbox_ids.extend(later.inbox_ids);
        self.events.extend(later.events);
        self.transactions.extend(later.transactions);
        self.sessions.extend(later.sessions);
        self.session_aggregates.extend(later.session_aggregates);
        self.check_ins.extend(later.check_ins);
        for (key, quantity) in later.client_reports {
            *self.client_reports.entry(key).or_default() += quantity;
        }
        self.logs.extend(later.logs);
        self.rejections.extend(later.rejections);
        self.profiles.extend(later.profiles);
    }
}

/// What a committed batch did, for metrics and the alert engine.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Events stored.
    pub events: usize,
    /// Transactions stored.
    pub transactions: usize,
    /// Events dropped as duplicates (same event id).
    pub duplicates: usize,
    /// Profiles stored (a profile already stored is not counted again).
    pub profiles: usize,
    /// Issues created (ids).
    pub new_issues: Vec<i64>,
    /// Issues reopened by a new event (ids).
    pub regressions: Vec<i64>,
    /// What happened to each stored event of the batch (for issue alerts).
    pub facts: Vec<EventFact>,
}

/// One stored error or message event and what it did to its issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFact {
    /// Index into [`Batch::events`].
    pub index: usize,
    /// The issue it was grouped into.
    pub issue_id: i64,
    /// This event created the issue.
    pub new_issue: bool,
    /// This event reopened a resolved issue.
    pub regression: bool,
}

/// Sentry's failure rate counts every status but ok, cancelled and unknown.
pub fn is_failure(status: &str) -> bool {
    !matches!(status, "ok" | "cancelled" | "unknown" | "")
}
