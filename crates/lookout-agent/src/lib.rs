//! Lookout's agent library: the Sentry integration of a Purple Flea trading agent.
//!
//! Built on the official `sentry` crate and `tracing`; works unchanged against sentry.io and
//! against a Lookout server. One call sets it up:
//!
//! ```no_run
//! use std::time::Duration;
//! use lookout_agent::breadcrumbs::{RiskCheck, Signal};
//! use lookout_agent::health::{AgentSession, HealthOptions};
//! use lookout_agent::{
//!     Options, OrderPipeline, Outcome, Side, Stage, TradingError, TradingErrorKind,
//!     TradingSnapshot,
//! };
//!
//! fn main() {
//!     // DSN from LOOKOUT_DSN / SENTRY_DSN unless given; release from git as
//!     // `momentum-bot@<short sha>`, else LOOKOUT_RELEASE / SENTRY_RELEASE, else this
//!     // crate's `name@version`.
//!     let _guard = lookout_agent::init(
//!         Options::new("ag_7f3a9c")
//!             .strategy("momentum")
//!             .release_from_git("momentum-bot")
//!             .release_fallback(lookout_agent::crate_release!())
//!             .environment("paper")
//!             .state_provider(|| TradingSnapshot::new().asset("BTC").open_positions(1))
//!             .install_default_subscriber(true),
//!     );
//!     // The session of the agent given to `Options::new`.
//!     let session = AgentSession::begin(HealthOptions::new());
//!     loop {
//!         session.tick();
//!         let z = 2.4;
//!         Signal::new("BTC", z).action("buy").record();
//!         if let Err(error) = place_order(z) {
//!             tracing::warn!(%error, "order failed"); // already captured by its stage
//!         }
//!         std::thread::sleep(Duration::from_secs(1));
//!     }
//! }
//!
//! fn place_order(z: f64) -> Result<(), TradingError> {
//!     let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
//!     pipeline.stage(Stage::SignalValidate, |s| {
//!         s.z_score(z);
//!         s.valid(true);
//!         Ok(())
//!     })?;
//!     pipeline.stage(Stage::RiskCheck, |s| {
//!         RiskCheck::new("max_position_usd", true, 1_000.0, 5_000.0).record();
//!         s.risk_pass(true);
//!         Ok(())
//!     })?;
//!     pipeline.stage(Stage::http("POST", "/v1/trade/open"), |_| {
//!         Err(TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap"))
//!     })?;
//!     pipeline.finish(Outcome::Filled);
//!     Ok(())
//! }
//! ```
//!
//! What it gives the agent:
//!
//! - [`init`] / [`Options`]: DSN, agent id, strategy, environment, release (explicit, git or
//!   an environment variable, with a fallback such as [`crate_release!`]), sample rate; tags `agent_id`, `strategy`,
//!   `platform=purple_flea` and the user on every event; the panic integration; a `tracing`
//!   layer ([`tracing_layer`]). The [`Guard`] flushes on drop.
//! - [`TradingSnapshot`] / [`StateProvider`]: the agent's state as a `trading` context on
//!   each event sent, computed only then.
//! - [`TradingError`]: the error taxonomy; [`capture_trading_error`] fingerprints by kind,
//!   asset and phase and tags the service's fields, in a scope of its own.
//! - [`NoiseFilter`]: drops transient errors outside order placement (counted), escalates
//!   order-placement errors to `fatal`.
//! - [`scrub`]: API keys, bearer tokens, private keys and seed phrases never leave the
//!   process.
//! - [`OrderPipeline`]: one `order.pipeline` transaction per order with its stage spans.
//! - [`breadcrumbs`]: signal, risk check, API response and position change breadcrumbs, on
//!   the current scope.
//! - [`health`]: session, heartbeats to `agent-<id>-heartbeat`, watchdog.
//! - [`cron`]: check-ins around scheduled jobs, with their monitor config.
//! - `profiling` (the `profiling` cargo feature, off by default): CPU profiles of a share of
//!   the order pipelines (`Options::profiles_sample_rate`), sent in Sentry's profile format
//!   with their transaction.
//! - [`control`]: the kill switch: a control channel to the DSN's server; while the server
//!   has the agent paused, [`is_trading_allowed`] is `false` and [`OrderPipeline`] refuses
//!   new orders (reduce-only ones pass), with a `Paused` error captured once per pause.
//! - Sending never blocks the loop: a bounded queue in front of the HTTP transport, drops
//!   counted in [`Counters`] and reported as client reports.
//!
//! See `examples/agent.rs` for a complete agent.

pub mod breadcrumbs;
pub mod capture;
pub mod control;
pub mod cron;
mod deferred;
pub mod error;
pub mod filter;
pub mod health;
mod init;
mod order;
pub mod pipeline;
#[cfg(feature = "profiling")]
pub mod profiling;
pub mod scrub;
pub mod state;
mod transport;

pub use capture::{capture_trading_error, capture_trading_error_with};
pub use control::{Unreachable, is_trading_allowed};
pub use cron::CronMonitor;
pub use error::{Phase, Service, TradingError, TradingErrorKind};
pub use filter::{Decision, NoiseFilter};
pub use health::{AgentSession, HealthOptions};
pub use init::{
    DSN_ENV, ENVIRONMENT_ENV, Guard, Options, PLATFORM, RELEASE_ENV, ReleaseSource, init,
    tracing_layer,
};
pub use pipeline::{OrderPipeline, Outcome, Side, Stage, StageSpan};
pub use state::{StateProvider, TradingSnapshot};
pub use transport::{CounterSnapshot, Counters};
