//! The Lookout server: a Sentry-protocol compatible monitoring server for autonomous trading
//! agents, in one process on an embedded SQLite file.
//!
//! ```text
//! SDK --HTTP--> ingest --group commit--> inbox --digest--> store --alert feed--> alert stage --outbox--> notifier
//!                  |                                         ^
//!               200 {id} only after the append is committed  API, UI (through services)
//! ```
//!
//! * [`server`]: the lifecycle: [`Server::builder`] starts a [`RunningServer`], which stops
//!   gracefully.
//! * [`config`]: defaults → TOML file → `LOOKOUT_*` environment → flags.
//! * [`ingest`]: the `/api/{project_id}/envelope/` and `/store/` endpoints, key cache, rate
//!   limits.
//! * [`digest`]: inbox rows → issues, events, transactions, sessions, check-ins, rollups.
//! * [`alerts`]: the alert stage (rules evaluated behind the digest), rule parsing,
//!   notification channels and the notifier.
//! * [`store`]: the only module that speaks SQL: one handle per process, one repository per
//!   concept; the inbox writer thread.
//! * [`services`]: what the REST API and the web UI both do (alert rule book, release
//!   health, agents overview, issue search).
//! * [`api`]: the REST API under `/api/0/`, in Sentry's shapes.
//! * [`ui`]: the web UI (server-rendered pages).
//! * [`http`]: the shared state, the router, one error type for every refusal.
//! * [`clock`]: the system or a manual clock, and the periodic jobs it drives.
//! * [`time`]: dates and `statsPeriod` windows as the API writes and reads them.
//! * [`metrics`]: Prometheus metrics at `/metrics`.
//!
//! The binary (`lookout`, crate `lookout`) is a thin shell over [`Server`] and the
//! [`store::Store`] methods; `lookout demo` lives there too.

pub mod alerts;
pub mod api;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod digest;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod server;
pub mod services;
pub mod store;
pub mod time;
pub mod ui;

pub use server::{RunningServer, Server, ServerBuilder, ServerError};
