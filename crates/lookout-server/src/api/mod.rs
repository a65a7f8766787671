//! The REST API under `/api/0/`, in Sentry's response shapes where Sentry has the endpoint.
//! Every request carries `Authorization: Bearer <token>` (from `lookout tokens create`) with
//! the scope the endpoint needs.

mod agents;
pub(crate) mod alerts;
mod issues;
mod monitors;
mod performance;
mod profiling;
mod projects;
mod releases;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(agents::routes())
        .merge(alerts::routes())
        .merge(issues::routes())
        .merge(monitors::routes())
        .merge(performance::routes())
        .merge(profiling::routes())
        .merge(projects::routes())
        .merge(releases::routes())
}

/// A caller authenticated by an API token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// The token's id (what audit trails name).
    pub token_id: i64,
    /// The token's name.
    pub token_name: String,
}

impl Caller {
    /// 403 unless the token has `scope` (or a `:write`/`:admin` form of the same resource).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        let resource = scope.split(':').next().unwrap_or(scope);
        let ok = self.scopes.iter().any(|s| {
            s == scope
                || (scope.ends_with(":read")
                    && (s == &format!("{resource}:write") || s == &format!("{resource}:admin")))
        });
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token lacks the {scope} scope"
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::Unauthorized("authentication credentials were not provided: send Authorization: Bearer <token>".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("Authorization must be Bearer <token>".into()))?
            .to_owned();
        let store = state.store.clone();
        let info = tokio::task::spawn_blocking(move || store.find_token(&token))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??
            .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))?;
        Ok(Caller {
            scopes: info.scopes.split_whitespace().map(str::to_owned).collect(),
            token_id: info.id,
            token_name: info.name,
        })
    }
}

pub(crate) use crate::services::blocking;
pub(crate) use crate::time::{iso, parse_period};

/// A numeric id from the path; anything else names no `what` (a 404, as for an unknown id).
pub(crate) fn parse_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("{what} {id:?} not found")))
}
