//! The service layer: what the REST API (`api/`) and the web UI (`ui/`) both do, in one
//! place. Handlers extract the request, call a service, and map its answer; neither
//! front-end imports the other.
//!
//! * [`rule_book`]: alert rules: validate, merge, store.
//! * [`health`]: release health per release, environment and strategy.
//! * [`agents`]: the agents overview.
//! * [`issues`]: issue search, a page at a time.
//! * [`trading`]: the kill switch: pause and resume agents, their trading state.
//! * [`profiles`]: flame graphs (aggregated, or one transaction's within a span) and the
//!   functions with the most self time.

pub mod agents;
pub mod health;
pub mod issues;
pub mod profiles;
pub mod rule_book;
pub mod trading;

use crate::store::StoreError;

/// Why a service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store said no (not found, exists, invalid) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Field errors in Django REST framework's shape: `{"field": ["message"]}`.
    #[error("invalid fields: {0}")]
    Fields(serde_json::Value),
    /// The request is not what the service takes.
    #[error("{0}")]
    Invalid(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Run store work on the blocking pool (SQLite calls block).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??)
}
