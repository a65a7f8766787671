//! The whole application: ingest, the REST API, the web UI, and the self-observation
//! endpoints (`/health`, `/metrics`), over the shared [`AppState`].

use super::state::AppState;
use crate::ingest;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

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
