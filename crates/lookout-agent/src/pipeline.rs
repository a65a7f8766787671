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
//! While a stage runs, its span is the current span of the hub, so `#[instrument]` spans and
//! `tracing` events inside it become its children (with [`crate::tracing_layer`]).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use sentry::protocol::{SpanStatus, Value};
use sentry::{Hub, SentryFutureExt, TransactionContext, TransactionOrSpan};

use crate::capture::capture_on;
use crate::error::{Phase, TradingError};

/// The transaction op of an order pipeline.
pub const PIPELINE_OP: &str = "order.pipeline";

/// The side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy / go long.
    Buy,
    /// Sell / go short.
    Sell,
}

impl Side {
    /// `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an order attempt ended (the `outcome` tag of its transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The signal did not validate.
    RejectedValidation,
    /// A risk check (or sizing) refused the order.
    RejectedRisk,
    /// The service answered with an error, or the fill was not confirmed.
    ApiError,
    /// The order filled completely.
    Filled,
    /// The order filled in part.
    Partial,
    /// The pipeline was dropped before it finished, with no stage failing.
    Abandoned,
    /// Any other outcome.
    Other(String),
}

impl Outcome {
    /// The tag value: `rejected_validation`, `rejected_risk`, `api_error`, `filled`,
    /// `partial`, `abandoned` or the custom text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RejectedValidation => "rejected_validation",
            Self::RejectedRisk => "rejected_risk",
            Self::ApiError => "api_error",
            Self::Filled => "filled",
            Self::Partial => "partial",
            Self::Abandoned => "abandoned",
            Self::Other(other) => other,
        }
    }

    fn status(&self) -> SpanStatus {
        match self {
            Self::Filled | Self::Partial => SpanStatus::Ok,
            Self::RejectedValidation | Self::RejectedRisk => SpanStatus::FailedPrecondition,
            Self::ApiError => SpanStatus::InternalError,
            Self::Abandoned => SpanStatus::Cancelled,
            Self::Other(_) => SpanStatus::UnknownError,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage of the order pipeline: its span op and description, the phase its errors are
/// captured with, and the outcome when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// `signal.validate`: is the signal good enough to trade?
    SignalValidate,
    /// `risk.check`: do the risk limits allow the order?
    RiskCheck,
    /// `order.size`: how large an order?
    OrderSize,
    /// `http.client`: the call that places the order (description `METHOD path`).
    Http {
        /// HTTP method, e.g. `POST`.
        method: String,
        /// Path, e.g. `/v1/trade/open`.
        path: String,
    },
    /// `order.confirm`: was the order filled?
    OrderConfirm,
    /// Any other stage.
    Custom {
        /// Span op.
        op: String,
        /// Span description.
        description: String,
        /// Phase its errors are captured with.
        phase: Phase,
    },
}

impl Stage {
    /// The `http.client` stage for this request.
    pub fn http(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self::Http {
            method: method.into(),
            path: path.into(),
        }
    }

    /// The span op.
    pub fn op(&self) -> &str {
        match self {
            Self::SignalValidate => "signal.validate",
            Self::RiskCheck => "risk.check",
            Self::OrderSize => "order.size",
            Self::Http { .. } => "http.client",
            Self::OrderConfirm => "order.confirm",
            Self::Custom { op, .. } => op,
        }
    }

    /// The span description.
    pub fn description(&self) -> Cow<'_, str> {
        match self {
            Self::SignalValidate => Cow::Borrowed("Validate signal"),
            Self::RiskCheck => Cow::Borrowed("Check risk limits"),
            Self::OrderSize => Cow::Borrowed("Size order"),
            Self::Http { method, path } => Cow::Owned(format!("{method} {path}")),
            Self::OrderConfirm => Cow::Borrowed("Confirm fill"),
            Self::Custom { description, .. } => Cow::Borrowed(description),
        }
    }

    /// The phase errors of this stage are captured with (unless they name their own).
    pub fn phase(&self) -> Phase {
        match self {
            Self::SignalValidate => Phase::Signal,
            Self::RiskCheck => Phase::RiskCheck,
            Self::OrderSize => Phase::Sizing,
            Self::Http { .. } => Phase::OrderPlacement,
            Self::OrderConfirm => Phase::Confirmation,
            Self::Custom { phase, .. } => phase.clone(),
        }
    }

    /// The outcome of a pipeline whose stage failed.
    pub fn failure_outcome(&self) -> Outcome {
        match self {
            Self::SignalValidate => Outcome::RejectedValidation,
            Self::RiskCheck | Self::OrderSize => Outcome::RejectedRisk,
            Self::Http { .. } | Self::OrderConfirm | Self::Custom { .. } => Outcome::ApiError,
        }
    }
}

/// The span of a running stage: record its data with the typed setters or [`StageSpan::set`].
/// Cheap to clone; it is a handle.
#[derive(Debug, Clone)]
pub struct StageSpan {
    span: TransactionOrSpan,
}

impl StageSpan {
    /// Set any data field.
    pub fn set(&self, key: &str, value: impl Into<Value>) {
        self.span.set_data(key, value.into());
    }

    /// `z_score`: the signal's z-score.
    pub fn z_score(&self, z: f64) {
        self.set("z_score", z);
    }

    /// `valid`: whether the signal validated.
    pub fn valid(&self, valid: bool) {
        self.set("valid", valid);
    }

    /// `risk_pass`: whether the risk checks passed.
    pub fn risk_pass(&self, pass: bool) {
        self.set("risk_pass", pass);
    }

    /// `size_usd`: the order's size in USD.
    pub fn size_usd(&self, usd: f64) {
        self.set("size_usd", usd);
    }

    /// `order_id`: the order id the service assigned.
    pub fn order_id(&self, id: &str) {
        self.set("order_id", id);
    }

    /// `fill_price`: the price the order filled at.
    pub fn fill_price(&self, price: f64) {
        self.set("fill_price", price);
    }

    /// `fill_confirmed`: whether the fill was confirmed.
    pub fn fill_confirmed(&self, confirmed: bool) {
        self.set("fill_confirmed", confirmed);
    }

    /// Set the span's status (a stage's status is `ok` unless it fails or this is called).
    pub fn set_status(&self, status: SpanStatus) {
        self.span.set_status(status);
    }
}

/// One order attempt, traced as a transaction (see the [module docs](self)).
#[must_use = "a pipeline records its stages until it is finished or dropped"]
pub struct OrderPipeline {
    hub: Arc<Hub>,
    transaction: sentry::Transaction,
    finished: bool,
    asset: String,
    failed: Option<Outcome>,
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

    /// Start the pipeline of an order on this hub.
    pub fn start_on(hub: Arc<Hub>, asset: impl Into<String>, side: Side) -> Self {
        let asset = asset.into();
        let name = format!("Order Pipeline: {asset} {side}");
        let transaction = hub.start_transaction(TransactionContext::new(&name, PIPELINE_OP));
        transaction.set_tag("trade.asset", &asset);
        transaction.set_tag("trade.side", side.as_str());
        Self {
            hub,
            transaction,
            finished: false,
            asset,
            failed: None,
        }
    }

    /// The asset of this order.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    fn open_span(&self, stage: &Stage) -> StageSpan {
        let span = self
            .transaction
            .start_child(stage.op(), &stage.description());
        StageSpan {
            span: TransactionOrSpan::Span(span),
        }
    }

    fn close_span<T>(
        &mut self,
        stage: &Stage,
        span: StageSpan,
        hub: &Hub,
        started: Instant,
        result: Result<T, TradingError>,
    ) -> Result<T, TradingError> {
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        match stage {
            Stage::RiskCheck => span.set("duration_ms", millis),
            Stage::Http { .. } => span.set("latency_ms", millis),
            _ => {}
        }
        let result = match result {
            Ok(value) => {
                if span.span.get_status().is_none() {
                    span.set_status(SpanStatus::Ok);
                }
                Ok(value)
            }
            Err(mut error) => {
                span.set_status(error.span_status());
                if error.event_id().is_none() {
                    error.fill_defaults(stage.phase(), &self.asset);
                    let id = capture_on(hub, &error, None);
                    error.set_event_id(id);
                }
                self.failed.get_or_insert_with(|| stage.failure_outcome());
                Err(error)
            }
        };
        span.span.finish();
        result
    }

    /// Run a synchronous stage. While it runs, its span is the hub's current span.
    pub fn stage<T>(
        &mut self,
        stage: Stage,
        f: impl FnOnce(StageSpan) -> Result<T, TradingError>,
    ) -> Result<T, TradingError> {
        let span = self.open_span(&stage);
        let previous = self.hub.configure_scope(|scope| {
            let previous = scope.get_span();
            scope.set_span(Some(span.span.clone()));
            previous
        });
        let started = Instant::now();
        let result = f(span.clone());
        let hub = Arc::clone(&self.hub);
        // The error (if any) is captured while the stage's span is still current.
        let result = self.close_span(&stage, span, &hub, started, result);
        hub.configure_scope(|scope| scope.set_span(previous));
        result
    }

    /// Run an asynchronous stage. The future runs bound to a hub of its own whose current
    /// span is the stage's, so it may move between threads of a multi-threaded runtime.
    pub async fn stage_async<T, F, Fut>(&mut self, stage: Stage, f: F) -> Result<T, TradingError>
    where
        F: FnOnce(StageSpan) -> Fut,
        Fut: Future<Output = Result<T, TradingError>>,
    {
        let span = self.open_span(&stage);
        let hub = Arc::new(Hub::new_from_top(&self.hub));
        hub.configure_scope(|scope| scope.set_span(Some(span.span.clone())));
        let started = Instant::now();
        let result = f(span.clone()).bind_hub(Arc::clone(&hub)).await;
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
        if !self.finished {
            self.finished = true;
            self.transaction.set_tag("outcome", outcome.as_str());
            self.transaction.set_status(outcome.status());
            self.transaction.clone().finish();
        }
    }
}

impl Drop for OrderPipeline {
    fn drop(&mut self) {
        let outcome = self.failed.take().unwrap_or(Outcome::Abandoned);
        self.end(outcome);
    }
}
