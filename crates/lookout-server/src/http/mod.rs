//! The HTTP layer: the shared state ([`state`]), the one error type of every refusal
//! ([`error`]), and the router that puts ingest, the API and the UI together ([`router`]).
//! Handlers depend on `state` and `error`; only `router` depends on the handlers.

pub mod error;
pub mod router;
pub mod state;
