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
//!
//! On PostgreSQL the inbox is a table of the shared database, so that an envelope answered
//! 200 survives the loss of the node that took it: the writer thread appends a batch in one
//! statement (one commit for the whole batch, as above). Digesting nodes claim rows for
//! [`CLAIM_MS`] and mark them digested in the transaction that writes what they held, so
//! each row is digested once whichever node takes it, and rows a dead node had claimed are
//! taken by another once the claim lapses.
//!
//! The WAL is checkpointed mostly off the writer's path. SQLite's automatic checkpoint copied
//! 1,000 pages and synced the database file inside every thousandth page's commit, and every
//! request queued behind that commit waited: the ingest p99 was that stall. Now a second
//! thread, `inbox-checkpoint`, copies the WAL into the database file in small passive passes
//! while the writer goes on. Once a pass finds [`WAL_RESTART_FRAMES`] pages in the WAL, the
//! writer, between two commits, checkpoints the little that is left itself, so that its next
//! commit writes the WAL from the start again: the file stays bounded. The writer's automatic
//! checkpoint, at [`WRITER_CHECKPOINT_FRAMES`], remains as a safety net.

use super::db::{Db, Location, connect_pg};
use super::sql::{Conn, params};
use super::{Result, StoreError, connect, schema};
use crate::config::Synchronous;
use crate::metrics::Metrics;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
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
pub(crate) fn open(
    data_dir: &std::path::Path,
    synchronous: Synchronous,
) -> Result<rusqlite::Connection> {
    let mut conn = connect(&path(data_dir), synchronous)?;
    // Raw envelopes hold unscrubbed secrets: overwrite them when they are deleted.
    conn.pragma_update(None, "secure_delete", "ON")?;
    schema::migrate_with(&mut conn, MIGRATIONS)?;
    Ok(conn)
}

/// One raw inbox row, as the digest reads it.
#[derive(Debug, Clone)]
pub struct InboxRow {
    /// Row id: the inbox's order, and the digest's cursor.
    pub id: i64,
    /// The project whose key sent it.
    pub project_id: i64,
    /// Arrival (ms since epoch).
    pub received_at: i64,
    /// How `envelope` is encoded (`identity`, `gzip`, `deflate`, `br`, `zstd`).
    pub encoding: String,
    /// The stored envelope bytes.
    pub envelope: Vec<u8>,
}

/// How long a node's claim on inbox rows lasts: rows a node claimed and did not digest
/// (it died) are taken by another node after this.
pub const CLAIM_MS: i64 = 10_000;

/// The digest's reading connection to the inbox.
#[derive(Debug)]
pub struct InboxReader {
    kind: ReaderKind,
}

#[derive(Debug)]
enum ReaderKind {
    /// The inbox file's own connection; the digest's cursor says what is done.
    Lite(Conn),
    /// The shared database, where this node claims rows as `node`.
    Pg { db: Arc<Db>, node: String },
}

fn inbox_row(r: &super::sql::Row<'_>) -> Result<InboxRow> {
    Ok(InboxRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        received_at: r.get(2)?,
        encoding: r.get(3)?,
        envelope: r.get(4)?,
    })
}

impl InboxReader {
    /// Up to `limit` rows after row `after`, in order. On PostgreSQL the rows are claimed
    /// for this node: undigested rows nobody holds, the oldest first, and this node's own
    /// claims after `after` (taken again after a failed write).
    pub fn after(&self, after: i64, limit: i64) -> Result<Vec<InboxRow>> {
        match &self.kind {
            ReaderKind::Lite(conn) => conn
                .prepare_cached(
                    "SELECT id, project_id, received_at, encoding, envelope FROM inbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![after, limit], inbox_row)?
                .collect(),
            ReaderKind::Pg { db, node } => {
                let now = chrono::Utc::now().timestamp_millis();
                let mut rows: Vec<InboxRow> = db
                    .reader()?
                    .prepare_cached(
                        "UPDATE inbox SET claimed_by = ?1, claimed_until = ?2 + ?3
                         WHERE id IN (SELECT id FROM inbox
                                      WHERE digested_at IS NULL
                                        AND (claimed_until < ?2 OR (claimed_by = ?1 AND id > ?4))
                                      ORDER BY id LIMIT ?5 FOR UPDATE SKIP LOCKED)
                         RETURNING id, project_id, received_at, encoding, envelope",
                    )?
                    .query_map(params![node, now, CLAIM_MS, after, limit], inbox_row)?
                    .collect::<Result<_>>()?;
                rows.sort_by_key(|r| r.id);
                Ok(rows)
            }
        }
    }

    /// How many rows follow row `after` (on PostgreSQL: how many wait, on every node).
    pub fn count_after(&self, after: i64) -> Result<i64> {
        match &self.kind {
            ReaderKind::Lite(conn) => {
                conn.query_row("SELECT COUNT(*) FROM inbox WHERE id > ?1", [after], |r| {
                    r.get(0)
                })
            }
            ReaderKind::Pg { db, .. } => db.reader()?.query_row(
                "SELECT COUNT(*) FROM inbox WHERE digested_at IS NULL",
                [],
                |r| r.get(0),
            ),
        }
    }

    /// Every row still in the inbox, digested or not, in order (tests and inspection).
    pub fn all(&self) -> Result<Vec<StoredRow>> {
        let sql = "SELECT id, project_id, event_id, item_types, encoding, envelope FROM inbox ORDER BY id";
        let read = |c: &Conn| -> Result<Vec<StoredRow>> {
            c.prepare(sql)?
                .query_map([], |r| {
                    Ok(StoredRow {
                        id: r.get(0)?,
                        project_id: r.get(1)?,
                        event_id: r.get(2)?,
                        item_types: r.get(3)?,
                        encoding: r.get(4)?,
                        envelope: r.get(5)?,
                    })
                })?
                .collect()
        };
        match &self.kind {
            ReaderKind::Lite(conn) => read(conn),
            ReaderKind::Pg { db, .. } => read(&*db.reader()?),
        }
    }

    /// Append a plain (`identity`) envelope directly, bypassing the writer thread (tests).
    #[cfg(test)]
    pub(crate) fn append_for_test(
        &self,
        project_id: i64,
        received_at: i64,
        envelope: &[u8],
    ) -> Result<i64> {
        let sql = "INSERT INTO inbox (project_id, key_id, received_at, item_types, encoding, envelope) VALUES (?1, 1, ?2, 'event', 'identity', ?3) RETURNING id";
        let args = params![project_id, received_at, envelope];
        match &self.kind {
            ReaderKind::Lite(conn) => conn.query_row(sql, args, |r| r.get(0)),
            ReaderKind::Pg { db, .. } => db.writer()?.query_row(sql, args, |r| r.get(0)),
        }
    }
}

/// An inbox row as stored, for inspection.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Row id.
    pub id: i64,
    /// The project whose key sent it.
    pub project_id: i64,
    /// The envelope's event id, if any.
    pub event_id: Option<String>,
    /// Item types, comma-separated.
    pub item_types: String,
    /// How `envelope` is encoded.
    pub encoding: String,
    /// The stored bytes.
    pub envelope: Vec<u8>,
}

impl super::Store {
    /// A reading connection to the inbox: the file beside the SQLite database, or the
    /// shared table on PostgreSQL (claiming as this node).
    pub fn inbox_reader(&self) -> Result<InboxReader> {
        let kind = match self.data_dir() {
            Some(dir) => ReaderKind::Lite(Conn::Lite(open(dir, self.db.synchronous())?)),
            None => ReaderKind::Pg {
                db: Arc::clone(&self.db),
                node: self.node.clone(),
            },
        };
        Ok(InboxReader { kind })
    }
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

/// WAL pages (4 MiB with 4 KiB pages) after which the writer finishes a checkpoint itself
/// so that the WAL starts over. The passive passes before it have copied nearly everything,
/// so that checkpoint is short.
pub const WAL_RESTART_FRAMES: i64 = 1024;

/// The writer's own automatic checkpoint: a safety net that only acts if the checkpointer
/// has stopped (64 MiB of WAL).
pub const WRITER_CHECKPOINT_FRAMES: i64 = 16 * 1024;

/// Bytes appended between two wake-ups of the checkpointer (16 pages of 4 KiB): each pass
/// syncs the WAL and the database file, and the writer's commits need the disk more.
const CHECKPOINT_EVERY_BYTES: usize = 64 * 1024;

/// Least time between two checkpoint passes, for the same reason.
const CHECKPOINT_PACE: Duration = Duration::from_millis(10);

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
    /// Start the writer thread on the inbox of `store`: the file beside its SQLite database
    /// (with `synchronous`), or its PostgreSQL table. `appended` is notified after every
    /// commit (the digest waits on it).
    pub fn start_for(
        store: &super::Store,
        synchronous: Synchronous,
        queue_capacity: usize,
        max_batch: usize,
        metrics: Arc<Metrics>,
        appended: Arc<tokio::sync::Notify>,
    ) -> Result<InboxWriter> {
        match (store.data_dir(), store.db.location()) {
            (Some(dir), _) => Self::start(
                dir,
                synchronous,
                queue_capacity,
                max_batch,
                metrics,
                appended,
            ),
            (None, Location::Postgres { config }) => {
                let config = config.clone();
                // Connect now, so that a database that cannot be reached fails the start.
                let conn = connect_pg(&config)?;
                let (tx, rx) = mpsc::channel(queue_capacity);
                let thread = std::thread::Builder::new()
                    .name("inbox-writer".into())
                    .spawn(move || run_pg(conn, &config, rx, max_batch, &metrics, &appended))
                    .map_err(|e| {
                        StoreError::Invalid(format!("cannot start the inbox writer: {e}"))
                    })?;
                Ok(InboxWriter {
                    tx: Some(tx),
                    thread: Some(thread),
                })
            }
            (None, Location::Sqlite { .. }) => {
                unreachable!("a SQLite store has a data directory")
            }
        }
    }

    /// Start the writer thread on the inbox file in `data_dir`. `appended` is notified after
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
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES)?;
        let checkpoint_conn = connect(&path(data_dir), synchronous)?;
        // Capacity one: wake-ups sent while a pass runs fold into one.
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let checkpoint = Checkpoint {
            wake,
            wal_frames: Arc::new(AtomicI64::new(0)),
            unsignalled_bytes: 0,
        };
        let wal_frames = Arc::clone(&checkpoint.wal_frames);
        let checkpoint_metrics = Arc::clone(&metrics);
        let checkpoint_thread = std::thread::Builder::new()
            .name("inbox-checkpoint".into())
            .spawn(move || {
                checkpointer(&checkpoint_conn, &woken, &wal_frames, &checkpoint_metrics);
            })
            .map_err(|e| {
                StoreError::Invalid(format!("cannot start the inbox checkpointer: {e}"))
            })?;
        let (tx, rx) = mpsc::channel(queue_capacity);
        let thread = std::thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || {
                run(conn, rx, max_batch, &metrics, &appended, checkpoint);
                // `run` dropped the wake-up sender: the checkpointer ends after its pass.
                if checkpoint_thread.join().is_err() {
                    tracing::error!("inbox checkpointer thread panicked");
                }
            })
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
    mut checkpoint: Checkpoint,
) {
    let mut batch: Vec<Append> = Vec::with_capacity(max_batch);
    while let Some(trim) = next_batch(&mut rx, max_batch, &mut batch) {
        if let Some((upto, keep_after)) = trim
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
        let appended_bytes: usize = batch.iter().map(|a| a.envelope.len()).sum();
        let result = write_batch(&mut conn, &batch);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_batch_size.observe(batch.len() as f64);
        if answer(result, &mut batch, metrics, appended) {
            // Answered first: a checkpoint here delays the next batch, not this one.
            checkpoint.after_commit(&conn, appended_bytes);
        }
    }
    // Channel closed: everything queued has been written. Stop the checkpointer, then
    // checkpoint the WAL for a tidy stop (waiting, by the busy timeout, for a pass still
    // running).
    drop(checkpoint);
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "wal checkpoint at shutdown failed");
    }
}

/// Take the next commands: the first (waiting for it), then whatever is queued, up to
/// `max_batch` appends; the last trim asked for. `None` once the channel is closed.
fn next_batch(
    rx: &mut mpsc::Receiver<Command>,
    max_batch: usize,
    batch: &mut Vec<Append>,
) -> Option<Option<(i64, i64)>> {
    let mut trim = None;
    let mut next = Some(rx.blocking_recv()?);
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
    Some(trim)
}

/// The PostgreSQL writer: each batch is one `INSERT` (one commit); a lost connection is
/// opened again before the next batch, and the batch it failed is answered with the error
/// (the clients get 503 and retry).
fn run_pg(
    conn: Conn,
    config: &postgres::Config,
    mut rx: mpsc::Receiver<Command>,
    max_batch: usize,
    metrics: &Metrics,
    appended: &tokio::sync::Notify,
) {
    let mut conn = Some(conn);
    let mut batch: Vec<Append> = Vec::with_capacity(max_batch);
    while let Some(trim) = next_batch(&mut rx, max_batch, &mut batch) {
        if conn
            .as_ref()
            .is_none_or(|c| c.postgres().is_none_or(super::sql::PgConn::is_closed))
        {
            conn = match connect_pg(config) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "inbox: cannot reach the database");
                    None
                }
            };
        }
        let Some(c) = conn.as_ref() else {
            for append in batch.drain(..) {
                let _ = append.done.send(Err(StoreError::Unavailable(
                    "the database cannot be reached".into(),
                )));
            }
            continue;
        };
        if let Some((_, keep_after)) = trim
            && let Err(e) = c.execute(
                "DELETE FROM inbox WHERE digested_at IS NOT NULL AND received_at < ?1",
                [keep_after],
            )
        {
            tracing::warn!(error = %e, "inbox trim failed");
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = write_batch_pg(c, &batch);
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_batch_size.observe(batch.len() as f64);
        answer(result, &mut batch, metrics, appended);
    }
}

/// Answer every append of `batch` with its row id, or with the commit's error.
fn answer(
    result: Result<Vec<i64>>,
    batch: &mut Vec<Append>,
    metrics: &Metrics,
    appended: &tokio::sync::Notify,
) -> bool {
    match result {
        Ok(ids) => {
            metrics.inbox_depth.inc_by(ids.len() as i64);
            appended.notify_one();
            for (append, id) in batch.drain(..).zip(ids) {
                // The request may have gone away; the row is stored either way.
                let _ = append.done.send(Ok(id));
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, size = batch.len(), "inbox commit failed");
            for append in batch.drain(..) {
                let _ = append.done.send(Err(StoreError::Invalid(format!(
                    "inbox commit failed: {e}"
                ))));
            }
            false
        }
    }
}

/// One multi-row `INSERT … SELECT FROM unnest(…)`: one statement, one commit, the ids in the
/// batch's order.
fn write_batch_pg(conn: &Conn, batch: &[Append]) -> Result<Vec<i64>> {
    let Some(pg) = conn.postgres() else {
        return Err(StoreError::Invalid("not a PostgreSQL connection".into()));
    };
    let project: Vec<i64> = batch.iter().map(|a| a.project_id).collect();
    let key: Vec<i64> = batch.iter().map(|a| a.key_id).collect();
    let received: Vec<i64> = batch.iter().map(|a| a.received_at).collect();
    let event: Vec<Option<&str>> = batch.iter().map(|a| a.event_id.as_deref()).collect();
    let types: Vec<&str> = batch.iter().map(|a| a.item_types.as_str()).collect();
    let encoding: Vec<&str> = batch.iter().map(|a| a.encoding).collect();
    let body: Vec<&[u8]> = batch.iter().map(|a| &a.envelope[..]).collect();
    let mut client = pg.client();
    let client = &mut *client;
    let rows = super::sql::off_runtime(|| {
        client.query(
        "INSERT INTO inbox (project_id, key_id, received_at, event_id, item_types, encoding, envelope)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bytea[])
         RETURNING id",
        &[&project, &key, &received, &event, &types, &encoding, &body],
    )
    })?;
    let mut ids: Vec<i64> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    // Identity values are drawn in insertion order, which is the arrays' order.
    ids.sort_unstable();
    Ok(ids)
}

/// The writer's side of checkpointing.
struct Checkpoint {
    /// Wakes the checkpointer; dropping it stops the checkpointer.
    wake: std::sync::mpsc::SyncSender<()>,
    /// Pages in the WAL at the checkpointer's last pass.
    wal_frames: Arc<AtomicI64>,
    /// Bytes committed since the checkpointer was last woken.
    unsignalled_bytes: usize,
}

impl Checkpoint {
    /// After each commit of `bytes`: wake the checkpointer once enough has been written,
    /// and once the WAL is long, copy what its passes left so that the next commit restarts
    /// the WAL.
    fn after_commit(&mut self, conn: &rusqlite::Connection, bytes: usize) {
        self.unsignalled_bytes += bytes;
        if self.unsignalled_bytes >= CHECKPOINT_EVERY_BYTES {
            self.unsignalled_bytes = 0;
            // Full means a wake-up is already pending.
            let _ = self.wake.try_send(());
        }
        // Once per pass that found the WAL long: if a reader keeps the WAL from starting
        // over, the writer does not checkpoint after every commit, only after the next pass.
        if self.wal_frames.swap(0, Ordering::Relaxed) < WAL_RESTART_FRAMES {
            return;
        }
        // Copies what the passes left; unless a reader is still in the WAL, the next write
        // starts it over.
        if let Err(e) = passive_checkpoint(conn) {
            tracing::warn!(error = %e, "inbox checkpoint failed");
        }
    }
}

/// The checkpointer thread: a passive pass per [`CHECKPOINT_EVERY_BYTES`] committed, at
/// most one per [`CHECKPOINT_PACE`], publishing the WAL's length for the writer. Ends when
/// the writer drops its wake-up sender.
fn checkpointer(
    conn: &rusqlite::Connection,
    woken: &std::sync::mpsc::Receiver<()>,
    wal_frames: &AtomicI64,
    metrics: &Metrics,
) {
    while woken.recv().is_ok() {
        match passive_checkpoint(conn) {
            Ok(log) => {
                wal_frames.store(log, Ordering::Relaxed);
                metrics.inbox_wal_pages.set(log);
            }
            Err(e) => tracing::warn!(error = %e, "inbox checkpoint failed"),
        }
        std::thread::sleep(CHECKPOINT_PACE);
    }
}

/// Run a passive checkpoint (copy what no reader still needs, without waiting for anyone);
/// the pages in the WAL.
fn passive_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
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
            stmt.execute(rusqlite::params![
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// Appends `count` envelopes of `size` random bytes, `in_flight` at a time, as
    /// concurrent requests would.
    fn append(tx: &mpsc::Sender<Command>, count: usize, size: usize, in_flight: usize) {
        let mut body = vec![0u8; size];
        let mut sent = 0;
        while sent < count {
            let mut answers = Vec::new();
            for _ in 0..in_flight.min(count - sent) {
                rand::rng().fill_bytes(&mut body);
                let (done, answer) = oneshot::channel();
                tx.blocking_send(Command::Append(Append {
                    project_id: 1,
                    key_id: 1,
                    event_id: None,
                    item_types: "event".into(),
                    envelope: bytes::Bytes::from(body.clone()),
                    encoding: "identity",
                    received_at: 0,
                    permit: None,
                    done,
                }))
                .expect("the writer is running");
                answers.push(answer);
                sent += 1;
            }
            for answer in answers {
                answer
                    .blocking_recv()
                    .expect("answered")
                    .expect("committed");
            }
        }
    }

    #[test]
    fn the_wal_stays_bounded_while_appends_go_on_and_every_row_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = InboxWriter::start(
            dir.path(),
            Synchronous::Full,
            1024,
            1024,
            Arc::new(Metrics::new()),
            Arc::new(tokio::sync::Notify::new()),
        )
        .expect("writer");
        let tx = writer.sender().expect("sender");
        // 48 MiB through the WAL, with no pause for a checkpoint to catch up in.
        let (count, size) = (24 * 1024, 2048);
        append(&tx, count, size, 64);
        let wal = dir.path().join("inbox.db-wal");
        let wal_len = std::fs::metadata(&wal).expect("the WAL").len();
        // The WAL starts over at about 4 MiB (plus what is committed between two passes);
        // without the checkpointer, the writer's safety net would let it reach 64 MiB.
        assert!(
            wal_len < 32 * 1024 * 1024,
            "the WAL grew to {wal_len} bytes after {} MiB of appends",
            (count * size) >> 20
        );
        drop(tx);
        writer.shutdown();
        assert_eq!(
            std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
            0,
            "the WAL is checkpointed and truncated at shutdown"
        );
        let conn = open(dir.path(), Synchronous::Full).expect("reopen");
        let (rows, bytes): (usize, usize) = conn
            .query_row(
                "SELECT count(*), sum(length(envelope)) FROM inbox",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("count");
        assert_eq!((rows, bytes), (count, count * size));
    }
}
