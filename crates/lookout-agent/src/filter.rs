//! The noise filter and escalation rules applied in `before_send`.
//!
//! - **Drop**: transient errors (timeouts, connection resets, 5xx and 429 answers from a
//!   service, rate limits) outside the protected phases (default: `order_placement`). Each
//!   drop is counted ([`CounterSnapshot::dropped_by_filter`](crate::CounterSnapshot)).
//! - **Escalate**: any error in an escalated phase (default: `order_placement`) is sent at
//!   level `fatal`.
//!
//! Errors captured as [`TradingError`](crate::TradingError) carry a `trade.error_type` tag;
//! those are judged by their kind and HTTP status only, so an `EscrowTimeout` whose message
//! says "timed out" is not mistaken for a transport timeout. Other errors (from `tracing` or
//! `sentry::capture_error`) are judged by the short name of their exception types, by their
//! exception values and message, and by an `http.status_code` tag.

use regex::Regex;
use sentry::protocol::{Event, Level};

use crate::error::TradingErrorKind;

/// Tag names the filter reads (and [`crate::capture_trading_error`] writes).
pub mod tags {
    /// The error kind ([`crate::TradingErrorKind::as_str`]).
    pub const ERROR_TYPE: &str = "trade.error_type";
    /// The phase ([`crate::Phase::as_str`]).
    pub const PHASE: &str = "trade.phase";
    /// The asset.
    pub const ASSET: &str = "trade.asset";
    /// The order id.
    pub const ORDER_ID: &str = "trade.order_id";
    /// The HTTP status a service answered.
    pub const HTTP_STATUS: &str = "http.status_code";
    /// The Purple Flea service.
    pub const SERVICE: &str = "service";
    /// Set to `true` on escalated events.
    pub const ESCALATED: &str = "trade.escalated";
}

/// What the filter decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Send the event unchanged.
    Keep,
    /// Send the event at level `fatal`.
    Escalate,
    /// Drop the event; the reason names the rule that fired.
    Drop(&'static str),
}

/// Configuration of the noise filter and escalation (see the [module docs](self)).
#[derive(Debug, Clone)]
#[must_use]
pub struct NoiseFilter {
    enabled: bool,
    transient_kinds: Vec<String>,
    transient_types: Vec<String>,
    transient_message: Option<Regex>,
    transient_statuses: Vec<u16>,
    transient_5xx: bool,
    protected_phases: Vec<String>,
    escalate_phases: Vec<String>,
}

/// Exception type names (short, without module path) that are transport failures.
const DEFAULT_TRANSIENT_TYPES: &[&str] = &[
    "TimedOut",
    "Timeout",
    "TimeoutError",
    "Elapsed",
    "ConnectionReset",
    "ConnectionAborted",
    "ConnectionRefused",
    "BrokenPipe",
];

const DEFAULT_TRANSIENT_MESSAGE: &str = r"(?i)\b(timed out|time ?out|deadline has elapsed|connection (reset|aborted|refused|closed)|reset by peer|broken pipe|error sending request|too many requests)\b";

impl Default for NoiseFilter {
    fn default() -> Self {
        Self {
            enabled: true,
            transient_kinds: ["Network", "RateLimited"].map(String::from).to_vec(),
            transient_types: DEFAULT_TRANSIENT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            transient_message: Regex::new(DEFAULT_TRANSIENT_MESSAGE).ok(),
            transient_statuses: vec![429],
            transient_5xx: true,
            protected_phases: vec!["order_placement".to_owned()],
            escalate_phases: vec!["order_placement".to_owned()],
        }
    }
}

/// The short name of a type: `reqwest::error::Error` → `Error`, `Foo<Bar>` → `Foo`.
pub fn short_type_name(name: &str) -> &str {
    let without_generics = name.split('<').next().unwrap_or(name);
    without_generics
        .rsplit("::")
        .next()
        .unwrap_or(without_generics)
        .trim()
}

impl NoiseFilter {
    /// The default rules: drop `Network` and `RateLimited` errors, 5xx and 429 answers and
    /// timeouts/connection resets outside `order_placement`; escalate errors in
    /// `order_placement` to fatal.
    pub fn new() -> Self {
        Self::default()
    }

    /// A filter that neither drops nor escalates anything.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Turn the filter on or off.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Trading error kinds that are transient (default `Network`, `RateLimited`).
    pub fn transient_kinds<I: IntoIterator<Item = TradingErrorKind>>(mut self, kinds: I) -> Self {
        self.transient_kinds = kinds.into_iter().map(|k| k.as_str().to_owned()).collect();
        self
    }

    /// Exception types of foreign errors that are transient. Names may be qualified
    /// (`std::io::Error`); they are compared by their short name, as `sentry` reports it.
    pub fn transient_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.transient_types = types
            .into_iter()
            .map(|t| short_type_name(t.as_ref()).to_owned())
            .collect();
        self
    }

    /// The pattern of exception values and messages of foreign errors that are transient;
    /// `None` disables the rule.
    pub fn transient_message(mut self, pattern: Option<Regex>) -> Self {
        self.transient_message = pattern;
        self
    }

    /// HTTP statuses that are transient besides 5xx (default `[429]`).
    pub fn transient_statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> Self {
        self.transient_statuses = statuses.into_iter().collect();
        self
    }

    /// Whether every 5xx status is transient (default `true`).
    pub fn transient_5xx(mut self, yes: bool) -> Self {
        self.transient_5xx = yes;
        self
    }

    /// Phases in which nothing is dropped (default `order_placement`).
    pub fn protected_phases<I, S>(mut self, phases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protected_phases = phases.into_iter().map(Into::into).collect();
        self
    }

    /// Phases whose errors are escalated to `fatal` (default `order_placement`).
    pub fn escalate_phases<I, S>(mut self, phases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.escalate_phases = phases.into_iter().map(Into::into).collect();
        self
    }

    fn is_transient_status(&self, status: u16) -> bool {
        (self.transient_5xx && (500..600).contains(&status))
            || self.transient_statuses.contains(&status)
    }

    /// Decide what to do with an event.
    pub fn decide(&self, event: &Event<'_>) -> Decision {
        if !self.enabled || event.level == Level::Fatal {
            return Decision::Keep;
        }
        let is_error = event.level == Level::Error || !event.exception.values.is_empty();
        if !is_error {
            return Decision::Keep;
        }
        let phase = event.tags.get(tags::PHASE).map(String::as_str);
        if phase.is_some_and(|p| self.escalate_phases.iter().any(|e| e == p)) {
            return Decision::Escalate;
        }
        if phase.is_some_and(|p| self.protected_phases.iter().any(|e| e == p)) {
            return Decision::Keep;
        }
        let status = event
            .tags
            .get(tags::HTTP_STATUS)
            .and_then(|s| s.parse::<u16>().ok());
        if status.is_some_and(|s| self.is_transient_status(s)) {
            return Decision::Drop("transient_http_status");
        }
        if let Some(kind) = event.tags.get(tags::ERROR_TYPE) {
            // A trading error: its kind decides, not the wording of its message.
            return if self.transient_kinds.iter().any(|k| k == kind) {
                Decision::Drop("transient_kind")
            } else {
                Decision::Keep
            };
        }
        let transient_type = event.exception.values.iter().any(|exc| {
            let short = short_type_name(&exc.ty);
            self.transient_types.iter().any(|t| t == short)
        });
        if transient_type {
            return Decision::Drop("transient_type");
        }
        if let Some(pattern) = &self.transient_message {
            let texts = event
                .exception
                .values
                .iter()
                .filter_map(|exc| exc.value.as_deref())
                .chain(event.message.as_deref())
                .chain(event.logentry.as_ref().map(|e| e.message.as_str()));
            for text in texts {
                if pattern.is_match(text) {
                    return Decision::Drop("transient_message");
                }
            }
        }
        Decision::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_name_strips_paths_and_generics() {
        assert_eq!(short_type_name("std::io::Error"), "Error");
        assert_eq!(short_type_name("tokio::time::error::Elapsed"), "Elapsed");
        assert_eq!(short_type_name("Foo<a::B>"), "Foo");
        assert_eq!(short_type_name("TimedOut"), "TimedOut");
    }

    #[test]
    fn qualified_type_names_in_the_config_still_match_short_exception_types() {
        let filter = NoiseFilter::new().transient_types(["tokio::time::error::Elapsed"]);
        let mut event = Event::default();
        event.exception.values.push(sentry::protocol::Exception {
            ty: "Elapsed".into(),
            value: Some("operation failed".into()),
            ..Default::default()
        });
        assert_eq!(filter.decide(&event), Decision::Drop("transient_type"));
        let filter = NoiseFilter::new().transient_types(["tokio::sync::AcquireError"]);
        assert_eq!(filter.decide(&event), Decision::Keep);
    }
}
