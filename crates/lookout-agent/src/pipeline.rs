//! Order pipeline tracing: one transaction per order attempt, one span per stage.
//!
//! ```
//! use lookout_agent::{OrderPipeline, Outcome, Side, Stage, TradingError};
//!
//! fn place(z: f64) -> Result<(), TradingError> {
//!     let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
//!     pipeline.stage(Stage::SignalValidate, |s| {
//!         s.z_score(z);
//!         s.valid(true);
//!         Ok(())
//!     })?;
//!     pipeline.stage(Stage::RiskCheck, |s| {
//!         s.risk_pass(true);
//!         Ok(())
//!     })?;
//!     let size = pipeline.stage(Stage::OrderSize, |s| {
//!         s.size_usd(250.0);
//!         Ok(250.0)
//!     })?;
//!     let order_id = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
//!         // the HTTP call; `latency_ms` is recorded for you
//!         let _ = size;
//!         s.order_id("ord_1");
//!         Ok("ord_1".to_owned())
//!     })?;
//!     pipeline.stage(Stage::OrderConfirm, |s| {
//!         s.order_id(&order_id);
//!         s.fill_price(64_000.5);
//!         s.fill_confirmed(true);
//!         Ok(())
//!     })?;
//!     pipeline.finish(Outcome::Filled);
//!     Ok(())
//! }
//! # place(2.3).unwrap();
//! ```
//!
//! The transaction has op `order.pipeline` and is named `Order Pipeline: <asset> <side>`; its
//! stages are child spans (`signal.validate`, `risk.check`, `order.size`, `http.client`,
//! `order.confirm`) carrying their data; `risk.check` gets its `duration_ms` and
//! `http.client` its `latency_ms` by themselves (every span has its start and end time). The transaction is tagged
//! `trade.asset`, `trade.side` and `outcome`.
//!
//! A stage that returns an error marks its span with the error's status, captures the error
//! once (with the stage's phase and the pipeline's asset, linked to the trace) and returns it
//! with [`TradingError::event_id`] set, so capturing it again later sends nothing. A pipeline
//! dropped without [`OrderPipeline::finish`] (e.g. by `?`) finishes with the outcome of the
//! stage that failed (`rejected_validation`, `rejected_risk`, `api_error`), or `abandoned`.
//!
//! While the pipeline runs, its transaction is the current span of the hub, so `#[instrument]`
//! spans (with [`crate::tracing_layer`]) and errors captured meanwhile belong to its trace. An
//! asynchronous stage ([`OrderPipeline::stage_async`], where the network calls are) is the
//! current span of its future, so the client's spans nest under it. A synchronous stage is
//! recorded (its times, status and data) and not made current: spans opened inside it are
//! children of the transaction.
//!
//! # What it costs the decision loop
//!
//! On an agent's client ([`crate::init`], [`crate::Options::hub`]) the loop records and the
//! transport's worker builds: the transaction is started on the agent's private client (same
//! options, no integrations, a transport that hands the envelope back); a synchronous stage is
//! two `Instant` reads and its data pushed into the pipeline's buffer; [`OrderPipeline::finish`]
//! queues the pipeline (its stages, data, tags and a copy of the scope) for the worker, which
//! adds the stage spans, finishes the transaction, scrubs and sends it. A finished pipeline
//! that does not fit in the queue is counted and reported like a dropped envelope. On any other
//! hub the stages are `sentry` spans finished on the loop, with the same result.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use sentry::protocol::{SpanId, SpanStatus, TraceContext, Value};
use sentry::{Hub, SentryFutureExt, TransactionContext, TransactionOrSpan};

use crate::capture::capture_on;
use crate::deferred::{self, Shared};
use crate::error::TradingError;
use crate::order::{FinishedPipeline, PipelineTags, StageRecord};
pub use crate::order::{Outcome, Side, Stage};

/// The transaction op of an order pipeline.
pub const PIPELINE_OP: &str = "order.pipeline";

/// The span of a running stage: record its data with the typed setters or [`StageSpan::set`].
/// Cheap to clone; it is a handle, valid while its stage runs.
#[derive(Debug, Clone)]
pub struct StageSpan {
    inner: SpanHandle,
}

#[derive(Debug, Clone)]
enum SpanHandle {
    /// A synchronous stage of a sampled pipeline: data kept in the pipeline's buffer, the span
    /// built when the transaction is (see [`crate::deferred`]).
    Recorded(Arc<Mutex<Pending>>),
    /// An asynchronous stage, or a pipeline not on an agent's client: a `sentry` span.
    Span(TransactionOrSpan),
    /// A pipeline that is not sampled: nothing to record.
    Off,
}

/// What a synchronous stage records while it runs.
#[derive(Debug, Default)]
struct Pending {
    data: Vec<(Cow<'static, str>, Value)>,
    status: Option<SpanStatus>,
}

impl StageSpan {
    fn put(&self, key: Cow<'static, str>, value: Value) {
        match &self.inner {
            SpanHandle::Recorded(pending) => {
                if let Ok(mut pending) = pending.lock() {
                    pending.data.push((key, value));
                }
            }
            SpanHandle::Span(span) => span.set_data(&key, value),
            SpanHandle::Off => {}
        }
    }

    /// Set any data field.
    pub fn set(&self, key: &str, value: impl Into<Value>) {
        if !matches!(self.inner, SpanHandle::Off) {
            self.put(Cow::Owned(key.to_owned()), value.into());
        }
    }

    /// `z_score`: the signal's z-score.
    pub fn z_score(&self, z: f64) {
        self.put(Cow::Borrowed("z_score"), z.into());
    }

    /// `valid`: whether the signal validated.
    pub fn valid(&self, valid: bool) {
        self.put(Cow::Borrowed("valid"), valid.into());
    }

    /// `risk_pass`: whether the risk checks passed.
    pub fn risk_pass(&self, pass: bool) {
        self.put(Cow::Borrowed("risk_pass"), pass.into());
    }

    /// `size_usd`: the order's size in USD.
    pub fn size_usd(&self, usd: f64) {
        self.put(Cow::Borrowed("size_usd"), usd.into());
    }

    /// `order_id`: the order id the service assigned.
    pub fn order_id(&self, id: &str) {
        self.put(Cow::Borrowed("order_id"), id.into());
    }

    /// `fill_price`: the price the order filled at.
    pub fn fill_price(&self, price: f64) {
        self.put(Cow::Borrowed("fill_price"), price.into());
    }

    /// `fill_confirmed`: whether the fill was confirmed.
    pub fn fill_confirmed(&self, confirmed: bool) {
        self.put(Cow::Borrowed("fill_confirmed"), confirmed.into());
    }

    /// Set the span's status (a stage's status is `ok` unless it fails or this is called).
    pub fn set_status(&self, status: SpanStatus) {
        match &self.inner {
            SpanHandle::Recorded(pending) => {
                if let Ok(mut pending) = pending.lock() {
                    pending.status = Some(status);
                }
            }
            SpanHandle::Span(span) => span.set_status(status),
            SpanHandle::Off => {}
        }
    }
}

/// Where a pipeline's transaction is finished.
enum Finisher {
    /// On an agent's client: the transaction was started on its private client and is built
    /// by the agent's transport worker.
    Agent {
        shared: Arc<Shared>,
        private: Arc<Hub>,
    },
    /// On any other client: `sentry`'s spans, finished here.
    Plain,
}

/// One order attempt, traced as a transaction (see the [module docs](self)).
#[must_use = "a pipeline records its stages until it is finished or dropped"]
pub struct OrderPipeline {
    hub: Arc<Hub>,
    transaction: sentry::Transaction,
    finisher: Finisher,
    sampled: bool,
    /// The hub's current span before the pipeline made its transaction current.
    previous: Option<TransactionOrSpan>,
    /// The data of every recorded stage, in order (a stage's record marks where its ends).
    pending: Arc<Mutex<Pending>>,
    stages: Vec<StageRecord>,
    span_base: u64,
    span_count: u64,
    clock: Clock,
    finished: bool,
    asset: String,
    side: Side,
    failed: Option<Outcome>,
    /// The pipeline's CPU profile while it runs (the `profiling` feature).
    #[cfg(feature = "profiling")]
    profile: Option<crate::profiling::ActiveProfile>,
    /// The kill switch refused this order (message and the `Paused` event's id): every
    /// stage returns that error and nothing is sent.
    refused: Option<(String, Option<uuid::Uuid>)>,
}

/// Wall-clock times from the monotonic clock: one `SystemTime` read per pipeline, then
/// `Instant`s (a stage's span needs both its start and end time, and its duration).
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now() -> Self {
        Self {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    fn wall(&self, at: Instant) -> SystemTime {
        self.wall + at.saturating_duration_since(self.mono)
    }
}

impl fmt::Debug for OrderPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderPipeline")
            .field("asset", &self.asset)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl OrderPipeline {
    /// Start the pipeline of an order on the current hub.
    pub fn start(asset: impl Into<String>, side: Side) -> Self {
        Self::start_on(Hub::current(), asset, side)
    }

    /// Start the pipeline of an order on this hub. While the agent is paused (the kill
    /// switch, [`crate::control`]) the pipeline is refused: each stage returns a
    /// [`TradingErrorKind::Paused`](crate::TradingErrorKind::Paused) error without running,
    /// and no transaction is sent.
    pub fn start_on(hub: Arc<Hub>, asset: impl Into<String>, side: Side) -> Self {
        let asset = asset.into();
        let refused = crate::control::refusal(&hub, &asset);
        let mut pipeline = Self::open(hub, asset, side);
        pipeline.refused = refused.map(|e| (e.message().to_owned(), e.event_id()));
        pipeline
    }

    /// Start an order on the current hub, or return the kill switch's
    /// [`TradingErrorKind::Paused`](crate::TradingErrorKind::Paused) error (captured once per
    /// pause) while the agent is paused.
    pub fn try_start(asset: impl Into<String>, side: Side) -> Result<Self, TradingError> {
        let hub = Hub::current();
        let asset = asset.into();
        match crate::control::refusal(&hub, &asset) {
            Some(error) => Err(error),
            None => Ok(Self::open(hub, asset, side)),
        }
    }

    /// Start a reduce-only order (closing or shrinking a position) on the current hub: never
    /// refused by the kill switch. The caller is responsible for the order being
    /// reduce-only at the venue.
    pub fn start_reduce_only(asset: impl Into<String>, side: Side) -> Self {
        Self::open(Hub::current(), asset.into(), side)
    }

    /// Whether the kill switch refused this order.
    pub fn is_refused(&self) -> bool {
        self.refused.is_some()
    }

    /// The kill switch's error for a refused pipeline.
    fn refusal(&self) -> Option<TradingError> {
        self.refused.as_ref().map(|(message, id)| {
            let mut e = TradingError::new(crate::TradingErrorKind::Paused, message.clone())
                .with_asset(self.asset.clone());
            if let Some(id) = id {
                e.set_event_id(*id);
            }
            e
        })
    }

    fn open(hub: Arc<Hub>, asset: String, side: Side) -> Self {
        let name = format!("Order Pipeline: {asset} {side}");
        let context = TransactionContext::new(&name, PIPELINE_OP);
        let agent = deferred::shared_of(&hub).and_then(|shared| {
            let client = hub.client()?;
            let private = shared.private_hub(&client);
            Some((shared, private))
        });
        let (transaction, finisher) = match agent {
            Some((shared, private)) => (
                private.start_transaction(context),
                Finisher::Agent { shared, private },
            ),
            None => (hub.start_transaction(context), Finisher::Plain),
        };
        #[allow(deprecated)] // `false` also when tracing is off: nothing to record either way
        let sampled = transaction.is_sampled();
        #[cfg(feature = "profiling")]
        let profile = match &finisher {
            Finisher::Agent { shared, .. } if sampled => shared.start_profile(),
            _ => None,
        };
        let current = TransactionOrSpan::Transaction(transaction.clone());
        let previous = hub.configure_scope(|scope| {
            let previous = scope.get_span();
            scope.set_span(Some(current));
            previous
        });
        Self {
            hub,
            transaction,
            finisher,
            sampled,
            previous,
            pending: Arc::new(Mutex::new(Pending {
                data: Vec::with_capacity(16),
                status: None,
            })),
            stages: Vec::with_capacity(6),
            span_base: rand::random(),
            span_count: 0,
            clock: Clock::now(),
            finished: false,
            asset,
            side,
            failed: None,
            #[cfg(feature = "profiling")]
            profile,
            refused: None,
        }
    }

    /// A boundary of the profile's windows, if the pipeline is profiled: `at` the end of a
    /// stage, `None` at its start ([`crate::profiling`]).
    #[inline]
    fn profile_mark(&mut self, at: Option<Instant>) {
        #[cfg(feature = "profiling")]
        if let Some(profile) = self.profile.as_mut() {
            profile.mark(at);
        }
        #[cfg(not(feature = "profiling"))]
        let _ = at;
    }

    /// The asset of this order.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// A new span id, unique within the pipeline's trace: the pipeline's random base mixed
    /// with a counter (one random draw per pipeline, not one per stage).
    fn next_span_id(&mut self) -> SpanId {
        self.span_count += 1;
        let id = self.span_base ^ self.span_count.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        SpanId::from(id.to_be_bytes())
    }

    /// The trace context of a stage's span, for an error captured in it.
    fn stage_trace(&self, stage: &Stage, span_id: SpanId) -> TraceContext {
        let transaction = self.transaction.get_trace_context();
        TraceContext {
            trace_id: transaction.trace_id,
            span_id,
            parent_span_id: Some(transaction.span_id),
            op: Some(stage.op().to_owned()),
            ..Default::default()
        }
    }

    /// Capture a stage's error (once) and note the pipeline's failure; the span's status.
    fn fail(
        &mut self,
        stage: &Stage,
        error: &mut TradingError,
        hub: &Hub,
        trace: Option<TraceContext>,
    ) -> SpanStatus {
        if error.event_id().is_none() {
            error.fill_defaults(stage.phase(), &self.asset);
            let id = capture_on(hub, error, None, trace);
            error.set_event_id(id);
        }
        self.failed.get_or_insert_with(|| stage.failure_outcome());
        error.span_status()
    }

    /// Run a synchronous stage: its span gets its start and end time, its data and status.
    ///
    /// The stage is recorded, not made the hub's current span (that would cost the decision
    /// loop more than the rest of the stage): spans opened inside it (e.g. `#[instrument]`)
    /// and errors captured inside it belong to the pipeline's transaction. An error the stage
    /// returns is captured with the stage's own span as its trace context.
    pub fn stage<T>(
        &mut self,
        stage: Stage,
        f: impl FnOnce(StageSpan) -> Result<T, TradingError>,
    ) -> Result<T, TradingError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        if let Finisher::Plain = self.finisher {
            return self.stage_plain(stage, f);
        }
        let span_id = self.next_span_id();
        let handle = StageSpan {
            inner: if self.sampled {
                SpanHandle::Recorded(Arc::clone(&self.pending))
            } else {
                SpanHandle::Off
            },
        };
        self.profile_mark(None);
        let started = Instant::now();
        let result = f(handle);
        let ended = Instant::now();
        self.profile_mark(Some(ended));
        let millis = ended.saturating_duration_since(started).as_secs_f64() * 1000.0;
        let (status, data_end) = match self.pending.lock() {
            Ok(mut pending) => {
                if self.sampled
                    && let Some(key) = stage.timing_key()
                {
                    pending.data.push((Cow::Borrowed(key), millis.into()));
                }
                (pending.status.take(), pending.data.len())
            }
            Err(_) => (None, 0),
        };
        let (result, status) = match result {
            Ok(value) => (Ok(value), status.unwrap_or(SpanStatus::Ok)),
            Err(mut error) => {
                let trace = self.stage_trace(&stage, span_id);
                let hub = Arc::clone(&self.hub);
                let status = self.fail(&stage, &mut error, &hub, Some(trace));
                (Err(error), status)
            }
        };
        if self.sampled {
            self.stages.push(StageRecord {
                stage,
                span_id,
                start: self.clock.wall(started),
                end: self.clock.wall(ended),
                status,
                data_end,
            });
        }
        result
    }

    /// A `sentry` span for a stage, a child of the pipeline's transaction.
    fn open_span(&self, stage: &Stage) -> TransactionOrSpan {
        TransactionOrSpan::Span(
            self.transaction
                .start_child(stage.op(), &stage.description()),
        )
    }

    /// A synchronous stage on a hub that is not an agent's: a `sentry` span, current while
    /// the stage runs.
    fn stage_plain<T>(
        &mut self,
        stage: Stage,
        f: impl FnOnce(StageSpan) -> Result<T, TradingError>,
    ) -> Result<T, TradingError> {
        let span = self.open_span(&stage);
        let previous = self.hub.configure_scope(|scope| {
            let previous = scope.get_span();
            scope.set_span(Some(span.clone()));
            previous
        });
        let started = Instant::now();
        let result = f(StageSpan {
            inner: SpanHandle::Span(span.clone()),
        });
        let hub = Arc::clone(&self.hub);
        let result = self.close_span(&stage, span, &hub, started, result);
        hub.configure_scope(|scope| scope.set_span(previous));
        result
    }

    fn close_span<T>(
        &mut self,
        stage: &Stage,
        span: TransactionOrSpan,
        hub: &Hub,
        started: Instant,
        result: Result<T, TradingError>,
    ) -> Result<T, TradingError> {
        if let Some(key) = stage.timing_key() {
            let millis = started.elapsed().as_secs_f64() * 1000.0;
            span.set_data(key, millis.into());
        }
        let result = match result {
            Ok(value) => {
                if span.get_status().is_none() {
                    span.set_status(SpanStatus::Ok);
                }
                Ok(value)
            }
            Err(mut error) => {
                // Captured while the stage's span is current: the event links to it.
                let status = self.fail(stage, &mut error, hub, None);
                span.set_status(status);
                Err(error)
            }
        };
        span.finish();
        result
    }

    /// Run an asynchronous stage. The future runs bound to a hub of its own whose current
    /// span is the stage's, so it may move between threads of a multi-threaded runtime, and
    /// spans opened inside it (the client's HTTP call, `#[instrument]`) nest under the stage.
    pub async fn stage_async<T, F, Fut>(&mut self, stage: Stage, f: F) -> Result<T, TradingError>
    where
        F: FnOnce(StageSpan) -> Fut,
        Fut: Future<Output = Result<T, TradingError>>,
    {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let span = self.open_span(&stage);
        let hub = Arc::new(Hub::new_from_top(&self.hub));
        hub.configure_scope(|scope| scope.set_span(Some(span.clone())));
        self.profile_mark(None);
        let started = Instant::now();
        let handle = StageSpan {
            inner: SpanHandle::Span(span.clone()),
        };
        let result = f(handle).bind_hub(Arc::clone(&hub)).await;
        self.profile_mark(Some(Instant::now()));
        self.close_span(&stage, span, &hub, started, result)
    }

    /// Record a stage that failed without an error value (e.g. the signal did not validate):
    /// the pipeline's outcome becomes the stage's failure outcome unless another was set.
    pub fn reject(&mut self, stage: &Stage) {
        self.failed.get_or_insert_with(|| stage.failure_outcome());
    }

    /// Finish the pipeline with this outcome and send the transaction.
    pub fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        let previous = self.previous.take();
        if self.refused.is_some() {
            // A refused order sends nothing: its transaction is dropped unfinished.
            self.hub.configure_scope(|scope| scope.set_span(previous));
            return;
        }
        let now = Instant::now();
        let end = self.clock.wall(now);
        let tags = PipelineTags {
            asset: std::mem::take(&mut self.asset),
            side: self.side,
            outcome,
        };
        match &self.finisher {
            Finisher::Agent { shared, private } if self.sampled => {
                let scope = self.hub.configure_scope(|scope| {
                    scope.set_span(previous);
                    // A transaction carries no breadcrumbs; holding the hub's would make its
                    // next breadcrumb copy all of them.
                    let mut snapshot = scope.clone();
                    snapshot.clear_breadcrumbs();
                    snapshot
                });
                let data = match self.pending.lock() {
                    Ok(mut pending) => std::mem::take(&mut pending.data),
                    Err(_) => Vec::new(),
                };
                let pipeline = FinishedPipeline {
                    transaction: self.transaction.clone(),
                    stages: std::mem::take(&mut self.stages),
                    data,
                    tags,
                    scope,
                    end,
                    private: Arc::clone(private),
                    #[cfg(feature = "profiling")]
                    profile: self.profile.take().map(|profile| profile.finish(now, end)),
                };
                deferred::dispatch(shared, &self.hub, pipeline);
            }
            _ => {
                self.hub.configure_scope(|scope| scope.set_span(previous));
                tags.apply(&self.transaction);
                self.transaction.clone().finish_with_timestamp(end);
            }
        }
    }
}

impl Drop for OrderPipeline {
    fn drop(&mut self) {
        let outcome = self.failed.take().unwrap_or(Outcome::Abandoned);
        self.end(outcome);
    }
}
