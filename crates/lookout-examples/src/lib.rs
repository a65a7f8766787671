//! Example Purple Flea agents instrumented with `lookout-agent`, each worth copying:
//!
//! | agent | what it does | Lookout features it shows |
//! |---|---|---|
//! | [`vol_arb`] | volatility-arbitrage perpetuals on BTC and ETH | `OrderPipeline` stages, signal / risk / position breadcrumbs, trading state on every error |
//! | [`casino_kelly`] | dice inside the Kelly limit, provably fair results recomputed | typed casino errors, risk-check breadcrumbs, a fairness violation as a trading error |
//! | [`escrow_domains`] | pays a contractor through escrow, trades domains at auction | escrow and domain tags on errors |
//!
//! Every agent runs an `AgentSession` (release-health session, heartbeats to
//! `agent-<id>-heartbeat`, watchdog) and a scheduled recalibration job under a
//! `CronMonitor`. Each exposes `run(config, shutdown)`, so `lookout demo` runs all three
//! in one process, each on a hub of its own ([`Monitoring::Isolated`]); the example
//! binaries run one each, standalone:
//!
//! ```text
//! cargo run -p lookout-examples --example vol_arb -- --dsn DSN --sandbox http://127.0.0.1:9100
//! ```
//!
//! [`Controls`] are the demo's switches for what no sandbox fault can produce (a panic in
//! the main loop, a wedged scheduler); everything else the demo provokes through the
//! sandbox (latency, margin, market shocks).

pub mod casino_kelly;
pub mod cli;
mod common;
pub mod escrow_domains;
pub mod vol_arb;

pub use common::{
    AgentConfig, Controls, ExampleError, Monitoring, RunSummary, SandboxAdmin, Shutdown,
    ShutdownTrigger,
};
