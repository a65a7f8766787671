//! The REST API under `/api/0/`, in Sentry's response shapes where Sentry has the endpoint.
//! Every request carries `Authorization: Bearer <token>` (from `lookout tokens create`) with
//! the scope the endpoint needs.

pub(crate) mod alerts;
mod issues;
mod monitors;
mod performance;
mod releases;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::StoreError;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(alerts::routes())
        .merge(issues::routes())
        .merge(monitors::routes())
        .merge(performance::routes())
        .merge(releases::routes())
}

/// A caller authenticated by an API token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's scopes.
    pub scopes: Vec<String>,
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
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(store_error)?
            .ok_or_else(|| ApiError::Unauthorized("invalid token".into()))?;
        Ok(Caller {
            scopes: info.scopes.split_whitespace().map(str::to_owned).collect(),
        })
    }
}

/// Map store errors onto HTTP answers.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
        StoreError::Invalid(msg) => ApiError::bad_request("invalid", msg),
        StoreError::Exists(what) => {
            ApiError::bad_request("exists", format!("{what} already exists"))
        }
        other => ApiError::Internal(other.to_string()),
    }
}

/// Run a blocking read on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(store_error)
}

/// RFC 3339 in UTC with milliseconds, as Sentry writes dates.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Sentry's `statsPeriod` (`24h`, `14d`, `30m`, `1w`) in milliseconds.
pub fn parse_period(p: &str) -> Result<i64, ApiError> {
    let p = p.trim();
    let split = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
    let (n, unit) = p.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| ApiError::bad_request("invalid", format!("invalid statsPeriod {p:?}")))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" | "" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(ApiError::bad_request(
                "invalid",
                format!("invalid statsPeriod {p:?}"),
            ));
        }
    };
    Ok(n.saturating_mul(unit_ms))
}
