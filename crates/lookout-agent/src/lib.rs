//! Lookout's agent library: the Sentry integration of a Purple Flea trading agent.
//!
//! Built on the official `sentry` crate and `tracing`; works unchanged against sentry.io and
//! against a Lookout server.

pub mod error;

pub use error::{Phase, Service, TradingError, TradingErrorKind};
