//! The durable inbox: raw envelopes appended with group commit.
//!
//! The inbox is its own SQLite file (`inbox.db`), so that appends never wait for the
//! digest's larger transactions on the main database. The digest records how far it has
//! read in the main database, in the same transaction as what it produced, and tells the
//! writer which rows it may delete.
//!
//! One writer thread owns a SQLite connection. Requests queue an [`Append`] on a bounded
//! channel; the writer takes everything queued (up to `max_batch`), writes it in one
//! transaction, commits (one fsync for the whole batch), and only then answers each request.
//! A request is answered 200 only after its row is committed, so an acknowledged envelope
//! survives `kill -9`.

use super::{Result, StoreError, connect, schema};
use crate::config::Synchronous;
use crate::metrics::Metrics;
use rusqlite::params;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// One envelope to append.
#[derive(Debug)]
pub struct Append {
    /// The project it was sent to.
    pub project_id: i64,
    /// The client key that authenticated it.
    pub key_id: i64,
    /// The envelope's event id (32 hex), if any.
    pub event_id: Option<String>,
    /// Item types, comma-separated (for inspection and metrics).
    pub item_types: String,
    /// The envelope bytes, encoded as `encoding` says.
    pub envelope: bytes::Bytes,
    /// `identity`, `gzip`, `deflate`, `br` or `zstd`.
    pub encoding: &'static str,
    /// Milliseconds since the epoch at arrival.
    pub received_at: i64,
    /// Memory reserved for this request; released once the row is committed.
    pub permit: Option<OwnedSemaphorePermit>,
    /// Answered with the inbox row id once committed.
    pub done: oneshot::Sender<Result<i64>>,
}

/// The inbox's own schema migrations.
const MIGRATIONS: &[&str] = &["
    -- Raw envelopes as accepted, in arrival order.
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        event_id TEXT,
        item_types TEXT NOT NULL,
        -- The body as received (gzip, deflate, br, zstd) or, for plain bodies, zstd level 1
        -- when that is smaller; `encoding` says which. The digest decodes it.
        encoding TEXT NOT NULL DEFAULT 'identity',
        envelope BLOB NOT NULL
    );
"];

/// The inbox file in a data directory.
pub fn path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("inbox.db")
}

/// Open the inbox file, creating and migrating it as needed.
pub fn open(data_dir: &std::path::Path, synchronous: Synchronous) -> Result<rusqlite::Connection> {
    let mut conn = connect(&path(data_dir), synchronous)?;
    // Raw envelopes hold unscrubbed secrets: overwrite them when they are deleted.
    conn.pragma_update(None, "secure_delete", "ON")?;
    schema::migrate_with(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// A message to the writer thread.
#[derive(Debug)]
pub enum Command {
    /// Append an envelope.
    Append(Append),
    /// The digest has committed everything up to this row: delete what of it is older than
    /// the retention (milliseconds since the epoch).
    Trim {
        /// Last digested row.
        upto: i64,
        /// Keep rows received at or after this time.
        keep_after_ms: i64,
    },
}

/// Handle to the writer thread.
#[derive(Debug)]
pub struct InboxWriter {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why an append was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is full: the writer is behind.
    Full,
    /// The writer has stopped.
    Closed,
}

impl InboxWriter {
    /// Start the writer thread on the inbox in `data_dir`. `appended` is notified after
    /// every commit (the digest waits on it).
    pub fn start(
        data_dir: &std::path::Path,
        synchronous: Synchronous,
        queue_capacity: usize,
        max_batch: usize,
        metrics: Arc<Metrics>,
        appended: Arc<tokio::sync::Notify>,
    ) -> Result<InboxWriter> {
        let conn = open(data_dir, synchronous)?;
        let (tx, rx) = mpsc::channel(queue_capacity);
        let thread = std::thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || run(conn, rx, max_batch, &metrics, &appended))
            .map_err(|e| StoreError::Invalid(format!("cannot start the inbox writer: {e}")))?;
        Ok(InboxWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A sender for request handlers and the digest.
    pub fn sender(&self) -> Option<mpsc::Sender<Command>> {
        self.tx.clone()
    }

    /// Stop accepting, write everything queued, and wait for the thread. Handlers holding a
    /// sender keep the queue open until they drop it.
    pub fn shutdown(mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("inbox writer thread panicked");
        }
    }
}

/// Queue an append without waiting; full or closed queues give the append back.
pub fn try_queue(
    tx: &mpsc::Sender<Command>,
    append: Append,
) -> std::result::Result<(), QueueError> {
    tx.try_send(Command::Append(append)).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => QueueError::Full,
        mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
    })
}

fn run(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<Command>,
    max_batch: usize,
    metrics: &Metrics,
    appended: &tokio::sync::Notify,
) {
    let mut batch: Vec<Append> = Vec::with_capacity(max_batch);
    let mut trim: Option<(i64, i64)> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Append(a) => batch.push(a),
                Command::Trim {
                    upto,
                    keep_after_ms,
                } => trim = Some((upto, keep_after_ms)),
            }
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if let Some((upto, keep_after)) = trim.take()
            && let Err(e) = conn.execute(
                "DELETE FROM inbox WHERE id <= ?1 AND received_at < ?2",
                [upto, keep_after],
            )
        {
            tracing::warn!(error = %e, "inbox trim failed");
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = write_batch(&mut conn, &batch);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_batch_size.observe(batch.len() as f64);
        match result {
            Ok(ids) => {
                metrics.inbox_depth.inc_by(ids.len() as i64);
                appended.notify_one();
                for (append, id) in batch.drain(..).zip(ids) {
                    // The request may have gone away; the row is stored either way.
                    let _ = append.done.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = batch.len(), "inbox commit failed");
                for append in batch.drain(..) {
                    let _ = append.done.send(Err(StoreError::Invalid(format!(
                        "inbox commit failed: {e}"
                    ))));
                }
            }
        }
    }
    // Channel closed: everything queued has been written. Checkpoint the WAL for a tidy stop.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "wal checkpoint at shutdown failed");
    }
}

fn write_batch(conn: &mut rusqlite::Connection, batch: &[Append]) -> Result<Vec<i64>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(batch.len());
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO inbox (project_id, key_id, received_at, event_id, item_types, encoding, envelope)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for a in batch {
            stmt.execute(params![
                a.project_id,
                a.key_id,
                a.received_at,
                a.event_id,
                a.item_types,
                a.encoding,
                &a.envelope[..]
            ])?;
            ids.push(tx.last_insert_rowid());
        }
    }
    tx.commit()?;
    Ok(ids)
}
