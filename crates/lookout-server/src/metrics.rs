//! The server's own metrics, served in Prometheus text format at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label: why an envelope was rejected.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Stable snake_case reason.
    pub reason: String,
}

/// Label: an envelope item type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ItemLabel {
    /// The item type as sent.
    pub item_type: String,
}

/// Label: where bytes were counted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    /// `received` (as sent, maybe compressed) or `decompressed`.
    pub stage: &'static str,
}

/// Labels: a refused digest item.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DigestRejectLabel {
    /// The item type.
    pub item_type: String,
    /// Stable snake_case reason.
    pub reason: String,
}

/// All metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Envelopes answered 200 (committed to the inbox).
    pub envelopes_accepted: Counter,
    /// Envelopes refused, by reason.
    pub envelopes_rejected: Family<ReasonLabel, Counter>,
    /// Items accepted, by type.
    pub items_accepted: Family<ItemLabel, Counter>,
    /// Items of types Lookout does not know, accepted and skipped.
    pub items_skipped: Family<ItemLabel, Counter>,
    /// Request bytes, as received and after decompression.
    pub bytes: Family<StageLabel, Counter>,
    /// Inbox rows waiting for the digest.
    pub inbox_depth: Gauge,
    /// Pages in the inbox's WAL at the checkpointer's last pass.
    pub inbox_wal_pages: Gauge,
    /// Envelopes per inbox commit.
    pub commit_batch_size: Histogram,
    /// Seconds per inbox commit (including fsync).
    pub commit_seconds: Histogram,
    /// Inbox rows digested.
    pub digested_rows: Counter,
    /// Error and message events stored by the digest.
    pub digested_events: Counter,
    /// Transactions stored by the digest.
    pub digested_transactions: Counter,
    /// Items the digest refused, by type and reason.
    pub digest_rejected_items: Family<DigestRejectLabel, Counter>,
    /// Items ingest dropped from an envelope it accepted (a profile past its size limit),
    /// by type and reason.
    pub items_refused: Family<DigestRejectLabel, Counter>,
    /// Age in ms of the oldest row of the last digested batch (0 when caught up).
    pub digest_lag_ms: Gauge,
    /// 1 for the database this node runs on (`sqlite` or `postgres`).
    pub database: Family<DatabaseLabel, Gauge>,
    /// 1 when this node runs the singleton jobs (alerts, ticks, retention, notifier).
    pub leader: Gauge,
}

/// Label: the database a node runs on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatabaseLabel {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lookout");
        let envelopes_accepted = Counter::default();
        let envelopes_rejected = Family::<ReasonLabel, Counter>::default();
        let items_accepted = Family::<ItemLabel, Counter>::default();
        let items_skipped = Family::<ItemLabel, Counter>::default();
        let bytes = Family::<StageLabel, Counter>::default();
        let inbox_depth = Gauge::default();
        let inbox_wal_pages = Gauge::default();
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let digested_rows = Counter::default();
        let digested_events = Counter::default();
        let digested_transactions = Counter::default();
        let digest_rejected_items = Family::<DigestRejectLabel, Counter>::default();
        let items_refused = Family::<DigestRejectLabel, Counter>::default();
        let digest_lag_ms = Gauge::default();
        let database = Family::<DatabaseLabel, Gauge>::default();
        let leader = Gauge::default();
        registry.register(
            "database",
            "The database this node runs on (1 for its backend)",
            database.clone(),
        );
        registry.register(
            "node_leader",
            "1 when this node runs the singleton jobs (alert stage, ticks, retention, notifier)",
            leader.clone(),
        );
        registry.register(
            "digested_rows",
            "Inbox rows digested",
            digested_rows.clone(),
        );
        registry.register(
            "digested_events",
            "Error and message events stored by the digest",
            digested_events.clone(),
        );
        registry.register(
            "digested_transactions",
            "Transactions stored by the digest",
            digested_transactions.clone(),
        );
        registry.register(
            "digest_rejected_items",
            "Items the digest refused, by item type and reason",
            digest_rejected_items.clone(),
        );
        registry.register(
            "items_refused",
            "Items ingest dropped from an accepted envelope (the rest kept), by item type and reason",
            items_refused.clone(),
        );
        registry.register(
            "digest_lag_ms",
            "Age in milliseconds of the oldest inbox row in the last digested batch (0 when caught up)",
            digest_lag_ms.clone(),
        );
        registry.register(
            "envelopes_accepted",
            "Envelopes answered 200 after their inbox commit",
            envelopes_accepted.clone(),
        );
        registry.register(
            "envelopes_rejected",
            "Envelopes refused, by reason",
            envelopes_rejected.clone(),
        );
        registry.register(
            "items_accepted",
            "Envelope items accepted, by item type",
            items_accepted.clone(),
        );
        registry.register(
            "items_skipped",
            "Envelope items of unknown types, accepted and skipped",
            items_skipped.clone(),
        );
        registry.register(
            "ingest_bytes",
            "Request body bytes, as received and decompressed",
            bytes.clone(),
        );
        registry.register(
            "inbox_depth",
            "Inbox rows waiting for the digest",
            inbox_depth.clone(),
        );
        registry.register(
            "inbox_wal_pages",
            "Pages in the inbox's write-ahead log at the last checkpoint pass",
            inbox_wal_pages.clone(),
        );
        registry.register(
            "inbox_commit_batch_size",
            "Envelopes per inbox group commit",
            commit_batch_size.clone(),
        );
        registry.register(
            "inbox_commit_seconds",
            "Duration of an inbox group commit, fsync included",
            commit_seconds.clone(),
        );
        Self {
            registry,
            envelopes_accepted,
            envelopes_rejected,
            items_accepted,
            items_skipped,
            bytes,
            inbox_depth,
            inbox_wal_pages,
            commit_batch_size,
            commit_seconds,
            digested_rows,
            digested_events,
            digested_transactions,
            digest_rejected_items,
            items_refused,
            digest_lag_ms,
            database,
            leader,
        }
    }

    /// Record the node's database and role (read when `/metrics` is served).
    pub fn set_node(&self, backend: &'static str, leader: bool) {
        self.database
            .get_or_create(&DatabaseLabel { backend })
            .set(1);
        self.leader.set(i64::from(leader));
    }

    /// Count an item the digest refused.
    pub fn digest_rejected(&self, item_type: &str, reason: &str) {
        self.digest_rejected_items
            .get_or_create(&DigestRejectLabel {
                item_type: item_type.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Count an item ingest dropped from an envelope it accepted.
    pub fn item_refused(&self, item_type: &str, reason: &str) {
        self.items_refused
            .get_or_create(&DigestRejectLabel {
                item_type: item_type.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Count a rejected envelope.
    pub fn reject(&self, reason: &str) {
        self.envelopes_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
