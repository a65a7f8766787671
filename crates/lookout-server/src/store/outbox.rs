//! The outbox: notifications written by the alert stage, claimed and delivered by the
//! notifier, every attempt recorded.

use super::Result;
use super::db::Db;
use super::sql::{Backend, Conn, OptionalExtension, params};
use serde_json::Value;
use std::sync::Arc;

/// A notification due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    /// Outbox row (the delivery's idempotency key).
    pub id: i64,
    /// The channel it goes to.
    pub integration_id: i64,
    /// The channel's provider (`slack`, `webhook`, `email`, …).
    pub provider: String,
    /// Where it is posted.
    pub url: String,
    /// The rendered body.
    pub body: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it ended (ms).
    pub at: i64,
    /// The HTTP status (or SMTP reply code) received, if any.
    pub status: Option<u16>,
    /// What went wrong, when nothing was received.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: f64,
    /// Whether the row is delivered (`true`) or, if not, failed for good.
    pub delivered: bool,
    /// Failed for good: no more retries.
    pub gave_up: bool,
    /// When to try again, if neither.
    pub next_attempt_at: i64,
}

/// The outbox repository.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: Arc<Db>,
}

/// How long a taken notification is held for its taker: longer than a delivery attempt can
/// last (the notifier's HTTP timeout is 10 s).
pub const CLAIM_MS: i64 = 30_000;

impl Outbox {
    pub(crate) fn new(db: Arc<Db>) -> Outbox {
        Outbox { db }
    }

    /// Claim up to `limit` pending notifications due at `now`, oldest first: each is put off
    /// by [`CLAIM_MS`] as it is taken, so that no other taker (a node that became leader
    /// meanwhile) sends it while this one does; [`Outbox::record`] then moves it on. A
    /// taker that dies mid-delivery leaves the row due again once the claim lapses.
    pub fn due(&self, now: i64, limit: i64) -> Result<Vec<Due>> {
        let take = |conn: &Conn, sql: &str| -> Result<Vec<Due>> {
            let mut rows: Vec<Due> = conn
                .prepare_cached(sql)?
                .query_map(params![now, limit, CLAIM_MS], |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        integration_id: r.get(1)?,
                        provider: r.get(2)?,
                        url: r.get(3)?,
                        body: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                })?
                .collect::<Result<_>>()?;
            rows.sort_by_key(|d| d.id);
            Ok(rows)
        };
        match self.db.backend() {
            // One process: the writer serialises takers.
            Backend::Sqlite => self.db.write(|tx| {
                take(
                    tx,
                    "UPDATE outbox SET next_attempt_at = ?1 + ?3
                     WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1
                                  ORDER BY id LIMIT ?2)
                     RETURNING id, integration_id, provider, url, body, attempts",
                )
            }),
            Backend::Postgres => take(
                &*self.db.reader()?,
                "UPDATE outbox SET next_attempt_at = ?1 + ?3
                 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1
                              ORDER BY id LIMIT ?2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, integration_id, provider, url, body, attempts",
            ),
        }
    }

    /// A channel's current configuration (read at delivery, so secrets never sit in the
    /// outbox); `None` when the channel is gone.
    pub fn channel_config(&self, integration: i64) -> Result<Option<Value>> {
        let conn = self.db.reader()?;
        let config: Option<String> = OptionalExtension::optional(conn.query_row::<String>(
            "SELECT config FROM integrations WHERE id = ?1",
            [integration],
            |r| r.get(0),
        ))?;
        Ok(config.and_then(|c| serde_json::from_str::<Value>(&c).ok()))
    }

    /// Record one attempt at row `due` and move the row on (delivered, failed, or pending
    /// until `next_attempt_at`).
    pub fn record(&self, due: &Due, attempt: &Attempt) -> Result<()> {
        self.db.write(|tx| {
            tx.execute(
                "INSERT INTO delivery_attempts (outbox_id, at, status_code, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![due.id, attempt.at, attempt.status, attempt.error, attempt.duration_ms],
            )?;
            let attempts = due.attempts + 1;
            if attempt.delivered {
                tx.execute(
                    "UPDATE outbox SET status = 'delivered', attempts = ?2, delivered_at = ?3, last_error = NULL WHERE id = ?1",
                    params![due.id, attempts, attempt.at],
                )?;
            } else {
                let why = attempt.error.clone().unwrap_or_else(|| {
                    format!("HTTP {}", attempt.status.unwrap_or_default())
                });
                tx.execute(
                    "UPDATE outbox SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5 WHERE id = ?1",
                    params![
                        due.id,
                        if attempt.gave_up { "failed" } else { "pending" },
                        attempts,
                        attempt.next_attempt_at,
                        why
                    ],
                )?;
            }
            Ok(())
        })
    }
}
