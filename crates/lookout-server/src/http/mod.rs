//! The HTTP application: shared state, the router, and the self-observation endpoints.

pub mod error;

use crate::config::Config;
use crate::ingest::{self, KeyCache, ratelimit::RateLimiter};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::inbox::Command;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// State shared by every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<Store>,
    /// The inbox writer's queue; `None` once shutting down.
    pub inbox: Option<mpsc::Sender<Command>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Memory budget for request bodies, in KiB permits.
    pub memory: Arc<Semaphore>,
    /// Client key cache.
    pub keys: Arc<KeyCache>,
    /// Event quotas.
    pub limiter: Arc<RateLimiter>,
    /// The read side of the store.
    pub reader: crate::store::read::Reader,
    /// The server's clock (manual in tests).
    pub clock: crate::clock::Clock,
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ingest::routes())
        .merge(crate::api::routes())
        .merge(crate::ui::routes())
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let writer_up = state.inbox.as_ref().is_some_and(|tx| !tx.is_closed());
    let status = if writer_up {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "status": if writer_up { "ok" } else { "unavailable" },
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
