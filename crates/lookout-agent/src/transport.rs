//! The agent's transport: a bounded queue in front of the HTTP transport, so capturing never
//! waits on the network, with counters of what was dropped.
//!
//! `sentry`'s own HTTP transport already queues (30 envelopes) and drops when full, but it does
//! not say how many it dropped. [`QueuedTransport`] owns the queue instead: the decision loop's
//! `send_envelope` is a push onto a bounded queue; a worker thread takes the queued envelopes
//! in batches, builds the transactions of finished order pipelines queued the same way
//! ([`crate::deferred`]), scrubs each envelope ([`crate::scrub::scrub_envelope`]) and hands
//! it to the inner transport. An envelope that does not fit is counted in [`Counters`] and
//! recorded as a `queue_overflow` loss in the client report `sentry` attaches to the next
//! envelope it sends.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sentry::client_report::{Reason, Recorder};
use sentry::protocol::Transaction;
use sentry::{Envelope, Transport, TransportFactory, TransportOptions};

use crate::deferred::{Shared, complete};
use crate::order::{FinishedPipeline, PipelineQueue};
use crate::scrub::scrub_envelope;

/// How long the worker waits for the inner transport to deliver one envelope before it takes
/// the next one (the inner transport keeps trying in the background).
const DELIVERY_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct CounterCells {
    dropped_by_filter: AtomicU64,
    dropped_queue_full: AtomicU64,
    escalated: AtomicU64,
    enqueued: AtomicU64,
    profiles_sent: AtomicU64,
    profiles_busy: AtomicU64,
    profiles_empty: AtomicU64,
}

/// Counters of what the agent library did with events; cheap to clone (shared).
///
/// Get them from [`Options::counters`](crate::Options::counters) or
/// [`Guard::counters`](crate::Guard::counters).
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<CounterCells>);

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CounterSnapshot {
    /// Events dropped by the noise filter (transient errors outside order placement).
    pub dropped_by_filter: u64,
    /// Envelopes dropped because the send queue was full (server slow or unreachable).
    pub dropped_queue_full: u64,
    /// Events escalated to level `fatal` (errors during order placement).
    pub escalated: u64,
    /// Envelopes accepted into the send queue.
    pub enqueued: u64,
    /// Order pipeline profiles sent with their transaction (the `profiling` feature;
    /// always 0 without it).
    pub profiles_sent: u64,
    /// Pipelines chosen for profiling that went unprofiled because the process's profiler was
    /// busy (another pipeline's profile, or something else running `pprof`).
    pub profiles_busy: u64,
    /// Profiles not sent because they held fewer than two samples (a pipeline much shorter
    /// than the sampling period).
    pub profiles_empty: u64,
}

impl Counters {
    /// A copy of the current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            dropped_by_filter: self.0.dropped_by_filter.load(Ordering::Relaxed),
            dropped_queue_full: self.0.dropped_queue_full.load(Ordering::Relaxed),
            escalated: self.0.escalated.load(Ordering::Relaxed),
            enqueued: self.0.enqueued.load(Ordering::Relaxed),
            profiles_sent: self.0.profiles_sent.load(Ordering::Relaxed),
            profiles_busy: self.0.profiles_busy.load(Ordering::Relaxed),
            profiles_empty: self.0.profiles_empty.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add_filtered(&self) {
        self.0.dropped_by_filter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_escalated(&self) {
        self.0.escalated.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "profiling")]
    pub(crate) fn add_profile_sent(&self) {
        self.0.profiles_sent.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "profiling")]
    pub(crate) fn add_profile_busy(&self) {
        self.0.profiles_busy.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(feature = "profiling")]
    pub(crate) fn add_profile_empty(&self) {
        self.0.profiles_empty.fetch_add(1, Ordering::Relaxed);
    }

    fn add_queue_full(&self) {
        self.0.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    fn add_enqueued(&self) {
        self.0.enqueued.fetch_add(1, Ordering::Relaxed);
    }
}

/// Wraps another transport factory (by default `sentry`'s HTTP transport) in a
/// [`QueuedTransport`].
pub(crate) struct QueuedTransportFactory {
    pub(crate) inner: Arc<dyn TransportFactory>,
    pub(crate) counters: Counters,
    pub(crate) capacity: usize,
    /// Where the transport registers its queue, for pipelines finished on its worker.
    pub(crate) shared: Arc<Shared>,
}

impl TransportFactory for QueuedTransportFactory {
    fn create_transport_with_options(&self, mut options: TransportOptions) -> Arc<dyn Transport> {
        let recorder = options.client_report_recorder.clone();
        // The worker hands over one envelope at a time; leave the inner queue room to keep
        // retrying in the background rather than dropping without counting.
        options.transport_channel_capacity = NonZeroUsize::new(self.capacity.max(1) * 2);
        let inner = self.inner.create_transport_with_options(options);
        let transport =
            QueuedTransport::spawn(inner, recorder, self.counters.clone(), self.capacity);
        let queue: Arc<dyn PipelineQueue> = transport.sender.clone();
        self.shared.set_queue(&queue);
        Arc::new(transport)
    }
}

/// What the worker takes from the queue.
// Envelopes are most of the traffic and were queued unboxed before pipelines were; a slot is
// the size of an envelope either way.
#[allow(clippy::large_enum_variant)]
enum Job {
    /// An envelope to scrub and send.
    Envelope(Envelope),
    /// A finished order pipeline to build into a transaction, then scrub and send.
    Pipeline(Box<FinishedPipeline>),
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    flush_waiters: Vec<SyncSender<bool>>,
    shutdown: bool,
}

struct Queue {
    state: Mutex<State>,
    wake: Condvar,
}

/// The sending side of the queue: a push under an uncontended mutex, never a wait.
pub(crate) struct Sender {
    queue: Arc<Queue>,
    counters: Counters,
    recorder: Recorder,
    capacity: usize,
}

impl Sender {
    /// Queue a job. One that does not fit (queue full, or shut down) is dropped, counted,
    /// and its loss recorded for the next client report.
    fn push(&self, job: Job) {
        let reason = match self.queue.state.lock() {
            Ok(mut state) if !state.shutdown && state.jobs.len() < self.capacity => {
                state.jobs.push_back(job);
                drop(state);
                self.counters.add_enqueued();
                return;
            }
            Ok(state) if state.shutdown => Reason::InternalError,
            Ok(_) => Reason::QueueOverflow,
            Err(_) => Reason::InternalError,
        };
        if matches!(reason, Reason::QueueOverflow) {
            self.counters.add_queue_full();
        }
        match job {
            Job::Envelope(envelope) => self.recorder.record_lost_data(&envelope, reason),
            Job::Pipeline(_) => self
                .recorder
                .record_lost_data(&Transaction::default(), reason),
        }
    }
}

impl PipelineQueue for Sender {
    fn push_pipeline(&self, pipeline: FinishedPipeline) {
        // A profiled pipeline holds the process's profiler until the worker stops it: wake
        // the worker (rare, and small beside the profile's own cost) so that the profiler
        // stops sampling and is free for the next profiled pipeline.
        #[cfg(feature = "profiling")]
        let wake = pipeline.profile.is_some();
        self.push(Job::Pipeline(Box::new(pipeline)));
        #[cfg(feature = "profiling")]
        if wake {
            self.queue.wake.notify_one();
        }
    }
}

/// A bounded, never-blocking queue with a worker thread in front of another transport.
///
/// Sending is a push under an uncontended mutex: the worker is not woken per envelope (a
/// futex wake-up per decision cycle would cost the loop more than the rest of its
/// instrumentation). It wakes on its own every [`LINGER_MIN`] while envelopes arrive, backing
/// off to [`LINGER_MAX`] when idle, and at once for a flush or shutdown.
pub(crate) struct QueuedTransport {
    sender: Arc<Sender>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// How long the worker sleeps between batches while envelopes keep arriving.
const LINGER_MIN: Duration = Duration::from_millis(25);
/// How long it sleeps at most when idle.
const LINGER_MAX: Duration = Duration::from_millis(500);

impl QueuedTransport {
    pub(crate) fn spawn(
        inner: Arc<dyn Transport>,
        recorder: Recorder,
        counters: Counters,
        capacity: usize,
    ) -> Self {
        let queue = Arc::new(Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker_queue = Arc::clone(&queue);
        let worker = std::thread::Builder::new()
            .name("lookout-transport".into())
            .spawn(move || run_worker(&worker_queue, inner.as_ref()))
            .ok();
        Self {
            sender: Arc::new(Sender {
                queue,
                counters,
                recorder,
                capacity: capacity.max(1),
            }),
            worker: Mutex::new(worker),
        }
    }

    fn request_flush(&self, shutdown: bool) -> Option<Receiver<bool>> {
        let (done, wait) = sync_channel(1);
        let queue = &self.sender.queue;
        let mut state = queue.state.lock().ok()?;
        state.flush_waiters.push(done);
        state.shutdown |= shutdown;
        drop(state);
        queue.wake.notify_one();
        Some(wait)
    }
}

fn run_worker(queue: &Queue, inner: &dyn Transport) {
    let mut linger = LINGER_MIN;
    loop {
        let Ok(guard) = queue.state.lock() else {
            return;
        };
        let idle = guard.jobs.is_empty() && guard.flush_waiters.is_empty() && !guard.shutdown;
        let mut state = if idle {
            match queue.wake.wait_timeout(guard, linger) {
                Ok((state, _)) => state,
                Err(_) => return,
            }
        } else {
            guard
        };
        let batch: Vec<Job> = state.jobs.drain(..).collect();
        let waiters = std::mem::take(&mut state.flush_waiters);
        let shutdown = state.shutdown;
        drop(state);

        linger = if batch.is_empty() {
            (linger * 2).min(LINGER_MAX)
        } else {
            LINGER_MIN
        };
        let sent = !batch.is_empty();
        for job in batch {
            let envelope = match job {
                Job::Envelope(envelope) => Some(envelope),
                Job::Pipeline(pipeline) => complete(*pipeline),
            };
            if let Some(envelope) = envelope {
                inner.send_envelope(scrub_envelope(envelope));
            }
        }
        if shutdown {
            let ok = inner.shutdown(DELIVERY_WAIT);
            for waiter in waiters {
                let _ = waiter.send(ok);
            }
            return;
        }
        if sent || !waiters.is_empty() {
            let ok = inner.flush(DELIVERY_WAIT);
            for waiter in waiters {
                let _ = waiter.send(ok);
            }
        }
    }
}

impl Transport for QueuedTransport {
    fn send_envelope(&self, envelope: Envelope) {
        self.sender.push(Job::Envelope(envelope));
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.request_flush(false)
            .is_some_and(|wait| wait.recv_timeout(timeout).unwrap_or(false))
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        let flushed = self
            .request_flush(true)
            .is_some_and(|wait| wait.recv_timeout(timeout).unwrap_or(false));
        if flushed {
            // The worker has sent everything and returned; joining is quick.
            if let Ok(mut worker) = self.worker.lock()
                && let Some(handle) = worker.take()
            {
                let _ = handle.join();
            }
        }
        flushed
    }
}

impl Drop for QueuedTransport {
    fn drop(&mut self) {
        if let Ok(mut state) = self.sender.queue.state.lock() {
            state.shutdown = true;
        }
        self.sender.queue.wake.notify_one();
    }
}
