//! The Lookout server: a Sentry-protocol compatible monitoring server for autonomous trading
//! agents, in one process on an embedded SQLite file.
//!
//! ```text
//! SDK --HTTP--> ingest --durable append (group commit)--> inbox --digest--> store
//!                  |
//!               200 {id} only after the append is committed
//! ```
//!
//! * [`config`]: defaults → TOML file → `LOOKOUT_*` environment → flags.
//! * [`ingest`]: the `/api/{project_id}/envelope/` and `/store/` endpoints.
//! * [`store`]: the storage boundary (SQLite today); the inbox writer thread.
//! * [`http`]: the router, shared state, one error type for every refusal.
//! * [`metrics`]: Prometheus metrics at `/metrics`.
//!
//! * [`server`]: the lifecycle: [`Server::builder`] starts a [`RunningServer`], which stops
//!   gracefully.
//!
//! The binary (`lookout`, crate `lookout`) is a thin shell over [`Server`] and the
//! [`store::Store`] methods.

pub mod alerts;
pub mod api;
pub mod clock;
pub mod config;
pub mod digest;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod server;
pub mod store;
pub mod ui;

pub use server::{RunningServer, Server, ServerBuilder, ServerError};
