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
        .merge(crate::ui::routes(state.clone()))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /health`: 200 with `status: ok` when this node can take envelopes (its inbox writer
/// runs and the database answers within 2 s), else 503 `unavailable` with the reason; with
/// the database it runs on and its role (`leader` runs the singleton jobs).
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let writer_up = state.inbox.as_ref().is_some_and(|tx| !tx.is_closed());
    let store = std::sync::Arc::clone(&state.store);
    let database_up = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::task::spawn_blocking(move || store.ping()),
    )
    .await;
    let database_error = match database_up {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e.to_string()),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the database did not answer within 2 s".to_owned()),
    };
    let ok = writer_up && database_error.is_none();
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": state.store.backend().name(),
        "role": state.role.name(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(e) = database_error {
        body["detail"] = serde_json::Value::String(format!("database unreachable: {e}"));
    } else if !writer_up {
        body["detail"] = serde_json::Value::String("the inbox writer is not running".into());
    }
    (status, axum::Json(body))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .set_node(state.store.backend().name(), state.role.is_leader());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// A router over a fresh data directory with the default project and no threads, for
/// in-process tests of handlers (`tower::ServiceExt::oneshot`).
#[cfg(test)]
pub(crate) fn app_on(dir: &tempfile::TempDir) -> (Router, std::sync::Arc<crate::store::Store>) {
    let config = crate::config::Config {
        data_dir: dir.path().to_owned(),
        ..crate::config::Config::default()
    };
    let store = std::sync::Arc::new(crate::store::Store::open(dir.path()).unwrap());
    store.ensure_default_project().unwrap();
    let state = AppState::new(
        config,
        std::sync::Arc::clone(&store),
        crate::clock::Clock::System,
    );
    (app(state), store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;
    use tower::ServiceExt;

    async fn call(app: Router, path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
        let mut req = Request::get(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    const MONITORS: &str = "/api/0/organizations/default/monitors/";

    #[tokio::test]
    async fn the_api_answers_401_without_a_valid_token() {
        let dir = tempfile::tempdir().unwrap();
        let (app, _) = app_on(&dir);
        let (status, body) = call(app.clone(), MONITORS, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer <token>"),
            "{body}"
        );
        assert_eq!(body["causes"], serde_json::json!([]));
        let (status, body) = call(app, MONITORS, Some("not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["detail"], "invalid token");
    }

    #[tokio::test]
    async fn the_api_answers_403_when_the_token_lacks_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app_on(&dir);
        let (_, token) = store
            .create_token("narrow", &["project:read".to_owned()])
            .unwrap();
        let (status, body) = call(app, MONITORS, Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["detail"], "this token lacks the org:read scope");
    }

    #[tokio::test]
    async fn a_missing_monitor_is_a_404_with_a_detail() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app_on(&dir);
        let (_, token) = store.create_token("all", &[]).unwrap();
        let (status, body) = call(app.clone(), MONITORS, Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!([]));
        let (status, body) = call(app, &format!("{MONITORS}nope/"), Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["detail"], "monitor not found");
    }

    #[tokio::test]
    async fn health_follows_the_inbox_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app_on(&dir);
        let (status, body) = call(app, "/health", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");

        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel(1);
        let app =
            super::app(AppState::new(config, store, crate::clock::Clock::System).with_inbox(tx));
        let (status, body) = call(app.clone(), "/health", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        drop(rx);
        let (status, _) = call(app, "/health", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
