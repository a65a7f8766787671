//! The types the order pipeline, its finishing ([`crate::deferred`]) and the agent's
//! transport share: a leaf module, so none of those imports its caller. The pipeline records
//! [`StageRecord`]s and hands a [`FinishedPipeline`] to a [`PipelineQueue`] (the transport
//! implements it), whose worker builds the transaction.
//!
//! [`Side`], [`Outcome`] and [`Stage`] are public, re-exported from [`crate::pipeline`] and
//! the crate root.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use sentry::protocol::{SpanId, SpanStatus, Value};
use sentry::{Hub, Scope};

use crate::error::Phase;

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

    /// The transaction status of a pipeline that ended so.
    pub(crate) fn status(&self) -> SpanStatus {
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

    /// The data key of the stage's own timing, in milliseconds: `duration_ms` for
    /// `risk.check`, `latency_ms` for `http.client`; other stages record none.
    pub(crate) fn timing_key(&self) -> Option<&'static str> {
        match self {
            Self::RiskCheck => Some("duration_ms"),
            Self::Http { .. } => Some("latency_ms"),
            _ => None,
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

/// The tags and status a pipeline's transaction gets when it is built.
#[derive(Debug)]
pub(crate) struct PipelineTags {
    pub(crate) asset: String,
    pub(crate) side: Side,
    pub(crate) outcome: Outcome,
}

impl PipelineTags {
    /// Tag the transaction `trade.asset`, `trade.side` and `outcome`; set its status.
    pub(crate) fn apply(self, transaction: &sentry::Transaction) {
        transaction.set_tag("trade.asset", self.asset);
        transaction.set_tag("trade.side", self.side.as_str());
        transaction.set_tag("outcome", self.outcome.as_str());
        transaction.set_status(self.outcome.status());
    }
}

/// A synchronous stage as recorded on the decision loop.
#[derive(Debug)]
pub(crate) struct StageRecord {
    pub(crate) stage: Stage,
    pub(crate) span_id: SpanId,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) status: SpanStatus,
    /// Where this stage's data ends in [`FinishedPipeline::data`] (it starts where the
    /// previous stage's ends).
    pub(crate) data_end: usize,
}

/// A finished, sampled pipeline waiting to become a transaction.
pub(crate) struct FinishedPipeline {
    pub(crate) transaction: sentry::Transaction,
    pub(crate) stages: Vec<StageRecord>,
    /// The data of all stages, in stage order.
    pub(crate) data: Vec<(Cow<'static, str>, Value)>,
    pub(crate) tags: PipelineTags,
    /// The hub's scope when the pipeline finished (tags, user, contexts for the transaction).
    pub(crate) scope: Scope,
    pub(crate) end: SystemTime,
    pub(crate) private: Arc<Hub>,
    /// The pipeline's CPU profile, if it was profiled (the `profiling` feature).
    #[cfg(feature = "profiling")]
    pub(crate) profile: Option<crate::profiling::FinishedProfile>,
}

/// Where a finished pipeline goes to be built and sent off the decision loop: the agent
/// transport's queue.
pub(crate) trait PipelineQueue: Send + Sync {
    /// Queue a finished pipeline for the worker to build and send; never waits.
    fn push_pipeline(&self, pipeline: FinishedPipeline);
}
