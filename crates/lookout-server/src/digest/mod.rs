//! The digest: reads the inbox in order, in batches, and turns raw envelopes into issues,
//! events, transactions, spans, sessions, check-ins and rollups.
//!
//! Exactly once: a batch's output and the new cursor (last inbox row digested) are written in
//! one transaction of the main database. A restart, even after `kill -9`, resumes after the
//! cursor: nothing twice, nothing lost. Bad items are refused one by one with a recorded
//! reason and never stop the batch.

pub mod process;
mod profiles;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::digest::{Batch, DigestStore, Outcome};
use crate::store::inbox::{Command, InboxReader};
use crate::store::settings::Settings;
use crate::store::{Result, Store, StoreError};
use lookout_protocol::stacktrace::InAppRules;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

/// Rows read from the inbox per batch.
const BATCH_ROWS: i64 = 512;

pub use crate::store::inbox::InboxRow;

struct Worker {
    store: DigestStore,
    inbox: InboxReader,
    /// Where each project's in-app prefixes are read from (before each batch).
    settings: Settings,
    /// Last inbox row whose output is committed (the store's cursor).
    cursor: i64,
    /// A batch processed but not yet applied; its rows follow `cursor`.
    pending: Option<Processed>,
    /// Threads that decode, normalise, scrub and group a batch's rows.
    threads: usize,
}

/// A batch of rows turned into records, waiting for its store transaction.
struct Processed {
    rows: usize,
    oldest_received: i64,
    batch: Batch,
}

/// What one step did.
enum Step {
    /// Nothing to read and nothing in hand.
    Idle,
    /// A batch was processed; the next step, which follows at once, writes it.
    Processed,
    /// A batch was committed.
    Applied(Applied),
}

/// A committed batch.
struct Applied {
    rows: usize,
    oldest_received: i64,
    /// The last inbox row it covered: the cursor now.
    last_inbox_id: i64,
    outcome: Outcome,
}

/// Each project's in-app rules (projects without prefixes are absent).
type InAppByProject = HashMap<i64, InAppRules>;

/// Rows below which a batch is processed on one thread (a thread costs more than it saves).
const PARALLEL_MIN_ROWS: usize = 32;

/// Turn `rows` into one batch, in inbox order. Processing a row touches nothing shared, so
/// the rows are split into contiguous runs processed on `threads` threads and the results
/// appended in order; only the store writes that follow are serial.
fn process_rows(rows: &[InboxRow], threads: usize, in_app: &InAppByProject) -> Batch {
    let threads = threads.clamp(1, rows.len().div_ceil(PARALLEL_MIN_ROWS).max(1));
    let none = InAppRules::default();
    let run = |chunk: &[InboxRow]| {
        let mut batch = Batch::default();
        for row in chunk {
            let rules = in_app.get(&row.project_id).unwrap_or(&none);
            process::process_row_with(row, rules, &mut batch);
        }
        batch
    };
    if threads == 1 {
        return run(rows);
    }
    let chunk_len = rows.len().div_ceil(threads);
    let mut chunks = rows.chunks(chunk_len);
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || run(c))).collect();
        let mut batch = run(first);
        for handle in others {
            match handle.join() {
                Ok(later) => batch.append(later),
                // A panic while processing is a bug; re-raise it on the digest thread,
                // whose task reports it and retries the batch.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        batch
    })
}

impl Processed {
    fn new(rows: &[InboxRow], threads: usize, in_app: &InAppByProject) -> Option<Processed> {
        let last = rows.last()?;
        let mut batch = process_rows(rows, threads, in_app);
        batch.last_inbox_id = last.id;
        batch.inbox_ids = rows.iter().map(|r| r.id).collect();
        Some(Processed {
            rows: rows.len(),
            oldest_received: rows.iter().map(|r| r.received_at).min().unwrap_or_default(),
            batch,
        })
    }
}

impl Worker {
    /// The next rows after those already committed or processed.
    fn read(&self) -> Result<Vec<InboxRow>> {
        let after = self
            .pending
            .as_ref()
            .map_or(self.cursor, |p| p.batch.last_inbox_id);
        self.inbox.after(after, BATCH_ROWS)
    }

    /// One step of a two-stage pipeline: the batch processed by the previous step is written
    /// to the store while the next rows are processed, so the store's single writer and the
    /// processing threads work at the same time. When `stopping`, no new rows are read: the
    /// step only writes the batch in hand.
    fn step(&mut self, metrics: &Metrics, stopping: bool) -> Result<Step> {
        let rows = if stopping { Vec::new() } else { self.read()? };
        let in_app: InAppByProject = if rows.is_empty() {
            HashMap::new()
        } else {
            self.settings
                .in_app_all()?
                .into_iter()
                .map(|(project, p)| (project, InAppRules::new(&p.include, &p.exclude)))
                .collect()
        };
        let Some(pending) = self.pending.take() else {
            // Nothing to write: process, and write at the next step.
            self.pending = Processed::new(&rows, self.threads, &in_app);
            return Ok(match self.pending {
                Some(_) => Step::Processed,
                None => Step::Idle,
            });
        };
        let threads = self.threads;
        let store = &mut self.store;
        let (applied, next) = std::thread::scope(|scope| {
            let writer = scope.spawn(|| store.apply(&pending.batch));
            let next = Processed::new(&rows, threads, &in_app);
            let applied = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (applied, next)
        });
        // If the write failed, what was processed after it is dropped too: the next step
        // reads again from the committed cursor.
        let outcome = applied?;
        self.cursor = pending.batch.last_inbox_id;
        self.pending = next;
        for r in &pending.batch.rejections {
            metrics.digest_rejected(&r.item_type, &r.reason);
        }
        Ok(Step::Applied(Applied {
            rows: pending.rows,
            oldest_received: pending.oldest_received,
            last_inbox_id: self.cursor,
            outcome,
        }))
    }
}

/// A running digest.
#[derive(Debug)]
pub struct Digest {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Digest {
    /// Start digesting the inbox of `store`. `appended` wakes it after each inbox commit;
    /// `inbox_tx` receives trim commands; `digested` is woken after each batch commits (the
    /// alert stage waits on it).
    pub fn start(
        config: &Config,
        store: &Store,
        metrics: Arc<Metrics>,
        appended: Arc<Notify>,
        inbox_tx: mpsc::Sender<Command>,
        digested: Arc<Notify>,
    ) -> Result<Digest> {
        let inbox = store.inbox_reader()?;
        let settings = store.settings();
        let store = store.digest_writer();
        let cursor = store.cursor()?;
        let pending = inbox.count_after(cursor)?;
        metrics.inbox_depth.set(pending);
        let worker = Arc::new(Mutex::new(Worker {
            store,
            inbox,
            settings,
            cursor,
            pending: None,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }));
        let retention_ms = i64::try_from(config.ingest.inbox_retention_secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let w = Arc::clone(&worker);
                let m = Arc::clone(&metrics);
                // Once stopping, steps only write what is already processed, then end.
                let stopping = *stopped.borrow();
                let result = tokio::task::spawn_blocking(move || {
                    let mut guard = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    guard.step(&m, stopping)
                })
                .await
                .unwrap_or_else(|e| Err(StoreError::Invalid(format!("digest task failed: {e}"))));
                match result {
                    Ok(Step::Processed) => {}
                    Ok(Step::Applied(Applied {
                        rows,
                        oldest_received,
                        last_inbox_id,
                        outcome,
                    })) => {
                        let now = chrono::Utc::now().timestamp_millis();
                        metrics.inbox_depth.dec_by(rows as i64);
                        metrics.digested_rows.inc_by(rows as u64);
                        metrics.digested_events.inc_by(outcome.events as u64);
                        metrics
                            .digested_transactions
                            .inc_by(outcome.transactions as u64);
                        metrics.digest_lag_ms.set(now - oldest_received);
                        digested.notify_one();
                        let _ = inbox_tx.try_send(Command::Trim {
                            upto: last_inbox_id,
                            keep_after_ms: now - retention_ms,
                        });
                    }
                    Ok(Step::Idle) => {
                        metrics.digest_lag_ms.set(0);
                        if *stopped.borrow() {
                            break;
                        }
                        tokio::select! {
                            () = appended.notified() => {}
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                    Err(e) if e.is_conflict() => {
                        // Another node wrote the same rows (shared database): do it again
                        // now, from what is committed.
                        tracing::debug!(error = %e, "digest batch conflicted; retrying");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "digest batch failed; retrying");
                        if *stopped.borrow() {
                            break;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                }
            }
        });
        Ok(Digest { stop, task })
    }

    /// Write the batch in hand (processed, not yet written) and stop. What is left in the
    /// inbox is digested at the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "digest task ended badly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::digest::BatchHook;

    fn row(id: i64, body: String) -> InboxRow {
        InboxRow {
            id,
            project_id: 1,
            received_at: 1_764_000_000_000 + id,
            encoding: "identity".into(),
            envelope: body.into_bytes(),
        }
    }

    /// A mix of events, messages, sessions, client reports and a bad item, in inbox order.
    fn rows(n: i64) -> Vec<InboxRow> {
        (1..=n)
            .map(|i| {
                let body = match i % 4 {
                    0 => format!(
                        "{{\"event_id\":\"{i:032x}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"order {i} failed\",\"timestamp\":1764000000}}\n"
                    ),
                    1 => format!(
                        "{{}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"{i:032x}\",\"status\":\"ok\",\"started\":\"2025-11-24T16:00:00Z\",\"attrs\":{{\"release\":\"a@1\"}}}}\n"
                    ),
                    2 => "{}\n{\"type\":\"client_report\"}\n{\"discarded_events\":[{\"reason\":\"queue_overflow\",\"category\":\"error\",\"quantity\":2}]}\n".to_owned(),
                    _ => "{}\n{\"type\":\"event\"}\n[not json\n".to_owned(),
                };
                row(i, body)
            })
            .collect()
    }

    #[test]
    fn parallel_processing_keeps_inbox_order_and_loses_nothing() {
        let rows = rows(200);
        let serial = process_rows(&rows, 1, &HashMap::new());
        let parallel = process_rows(&rows, 4, &HashMap::new());
        let ids = |b: &Batch| {
            b.events
                .iter()
                .map(|e| e.event_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(serial.events.len(), 50);
        assert_eq!(ids(&parallel), ids(&serial));
        let sids = |b: &Batch| b.sessions.len();
        assert_eq!(sids(&parallel), sids(&serial));
        assert_eq!(sids(&serial), 50);
        assert_eq!(parallel.client_reports, serial.client_reports);
        assert_eq!(serial.client_reports.values().sum::<i64>(), 100);
        let rejected = |b: &Batch| b.rejections.iter().map(|r| r.inbox_id).collect::<Vec<_>>();
        assert_eq!(rejected(&parallel), rejected(&serial));
        assert_eq!(rejected(&serial).len(), 50);
    }

    /// A worker over a new data directory whose inbox holds `total` message events.
    fn worker_over_inbox(
        total: i64,
        hook: Option<Arc<dyn BatchHook>>,
    ) -> (tempfile::TempDir, Worker) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let project = store.create_project("acme", "bots", None).unwrap().id;
        let inbox = store.inbox_reader().unwrap();
        for i in 1..=total {
            let body = format!(
                "{{\"event_id\":\"{i:032x}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"order {i} failed\",\"timestamp\":1764000000}}\n"
            );
            inbox
                .append_for_test(project, 1_764_000_000_000i64 + i, body.as_bytes())
                .unwrap();
        }
        let settings = store.settings();
        let mut store = store.digest_writer();
        if let Some(hook) = hook {
            store.add_hook(hook);
        }
        let worker = Worker {
            store,
            inbox,
            settings,
            cursor: 0,
            pending: None,
            threads: 2,
        };
        (dir, worker)
    }

    /// Fails the second batch it sees, once.
    #[derive(Debug, Default)]
    struct FailSecondBatch(std::sync::atomic::AtomicUsize);

    impl BatchHook for FailSecondBatch {
        fn on_batch(&self, _batch: &Batch, _outcome: &Outcome) -> Result<()> {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                1 => Err(StoreError::Invalid("injected write failure".into())),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn a_failed_write_is_retried_from_the_committed_cursor_and_nothing_is_doubled() {
        // Two full batches and a part: the second batch's write fails while the third is
        // being processed.
        let total = BATCH_ROWS * 2 + 10;
        let (_dir, mut worker) =
            worker_over_inbox(total, Some(Arc::new(FailSecondBatch::default())));
        let metrics = Metrics::new();
        let (mut failures, mut rows, mut events, mut duplicates) = (0, 0, 0, 0);
        for _ in 0..20 {
            match worker.step(&metrics, false) {
                Ok(Step::Idle) => break,
                Ok(Step::Processed) => {}
                Ok(Step::Applied(applied)) => {
                    rows += applied.rows as i64;
                    events += applied.outcome.events as i64;
                    duplicates += applied.outcome.duplicates;
                }
                Err(_) => failures += 1,
            }
        }
        assert_eq!(failures, 1, "the injected failure happened once");
        assert_eq!(rows, total, "every row committed once");
        assert_eq!((events, duplicates), (total, 0), "no event lost or doubled");
        assert_eq!(worker.cursor, total);
        assert_eq!(worker.store.cursor().unwrap(), total);
        assert!(worker.pending.is_none());
    }

    #[test]
    fn a_stopping_step_writes_the_batch_in_hand_and_reads_nothing_more() {
        let total = BATCH_ROWS + 5;
        let (_dir, mut worker) = worker_over_inbox(total, None);
        let metrics = Metrics::new();
        assert!(matches!(worker.step(&metrics, false), Ok(Step::Processed)));
        let applied = match worker.step(&metrics, true) {
            Ok(Step::Applied(applied)) => applied,
            _ => panic!("the batch in hand was not written"),
        };
        assert_eq!(applied.rows as i64, BATCH_ROWS);
        assert_eq!(applied.last_inbox_id, BATCH_ROWS);
        assert_eq!(worker.store.cursor().unwrap(), BATCH_ROWS);
        assert!(worker.pending.is_none(), "nothing read after the stop");
        assert!(matches!(worker.step(&metrics, true), Ok(Step::Idle)));
        // The rest waits for the next start.
        assert!(matches!(worker.step(&metrics, false), Ok(Step::Processed)));
    }
}
