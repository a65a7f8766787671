//! The durable inbox: raw envelopes appended with group commit.
//!
//! One writer thread owns a SQLite connection. Requests queue an [`Append`] on a bounded
//! channel; the writer takes everything queued (up to `max_batch`), writes it in one
//! transaction, commits (one fsync for the whole batch), and only then answers each request.
//! A request is answered 200 only after its row is committed, so an acknowledged envelope
//! survives `kill -9`.

use super::{Result, StoreError, connect};
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

/// Handle to the writer thread.
#[derive(Debug)]
pub struct InboxWriter {
    tx: Option<mpsc::Sender<Append>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why an append was not queued.
#[derive(Debug)]
pub enum QueueError {
    /// The queue is full: the writer is behind.
    Full(Append),
    /// The writer has stopped.
    Closed(Append),
}

impl InboxWriter {
    /// Start the writer thread on the database at `path`.
    pub fn start(
        path: PathBuf,
        synchronous: Synchronous,
        queue_capacity: usize,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> Result<InboxWriter> {
        let conn = connect(&path, synchronous)?;
        let pending: i64 = conn.query_row("SELECT COUNT(*) FROM inbox WHERE state = 0", [], |r| {
            r.get(0)
        })?;
        metrics.inbox_depth.set(pending);
        let (tx, rx) = mpsc::channel(queue_capacity);
        let thread = std::thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || run(conn, rx, max_batch, &metrics))
            .map_err(|e| StoreError::Invalid(format!("cannot start the inbox writer: {e}")))?;
        Ok(InboxWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A sender for request handlers.
    pub fn sender(&self) -> Option<mpsc::Sender<Append>> {
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
pub fn try_queue(tx: &mpsc::Sender<Append>, append: Append) -> std::result::Result<(), QueueError> {
    tx.try_send(append).map_err(|e| match e {
        mpsc::error::TrySendError::Full(a) => QueueError::Full(a),
        mpsc::error::TrySendError::Closed(a) => QueueError::Closed(a),
    })
}

fn run(mut conn: rusqlite::Connection, mut rx: mpsc::Receiver<Append>, max_batch: usize, metrics: &Metrics) {
    let mut batch: Vec<Append> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = write_batch(&mut conn, &batch);
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        metrics.commit_batch_size.observe(batch.len() as f64);
        match result {
            Ok(ids) => {
                metrics.inbox_depth.inc_by(ids.len() as i64);
                for (append, id) in batch.drain(..).zip(ids) {
                    // The request may have gone away; the row is stored either way.
                    let _ = append.done.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, size = batch.len(), "inbox commit failed");
                for append in batch.drain(..) {
                    let _ = append
                        .done
                        .send(Err(StoreError::Invalid(format!("inbox commit failed: {e}"))));
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
    let tx = conn.transaction()?;
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
