//! One error type for every HTTP answer that is not a success. It decides the status, the
//! `{"detail": …, "causes": […]}` body Sentry's clients read, and the rate-limit headers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed. `reason` is a stable label for metrics.
    #[error("{detail}")]
    BadRequest {
        /// Metrics label.
        reason: &'static str,
        /// What is wrong and where.
        detail: String,
    },
    /// 400 with field errors in Django REST framework's shape: `{"field": ["message"]}`.
    #[error("invalid fields: {0}")]
    Fields(serde_json::Value),
    /// 401: no usable credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: credentials refused for this resource.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body or its decompressed form is too large.
    #[error("{detail}")]
    TooLarge {
        /// Metrics label.
        reason: &'static str,
        /// Which limit.
        detail: String,
    },
    /// 429 with `X-Sentry-Rate-Limits` and `Retry-After`.
    #[error("{detail}")]
    RateLimited {
        /// Whole seconds until the limit resets.
        retry_after: u64,
        /// The `X-Sentry-Rate-Limits` value.
        limits: String,
        /// Human-readable reason.
        detail: String,
    },
    /// 503 with `Retry-After`: the server is overloaded or shutting down.
    #[error("{detail}")]
    Unavailable {
        /// Metrics label.
        reason: &'static str,
        /// Seconds to wait.
        retry_after: u64,
        /// Human-readable reason.
        detail: String,
    },
    /// 500: a bug or an unexpected failure; logged, never echoed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a metrics label.
    pub fn bad_request(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            reason,
            detail: detail.into(),
        }
    }

    /// The stable label used in `lookout_envelopes_rejected_total{reason=…}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest { reason, .. } | Self::TooLarge { reason, .. } => reason,
            Self::Unavailable { reason, .. } => reason,
            Self::Fields(_) => "invalid_fields",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } | Self::Fields(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Fields(body) = &self {
            return (status, axum::Json(body.clone())).into_response();
        }
        let detail = match &self {
            Self::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                "internal server error".to_owned()
            }
            other => {
                tracing::debug!(status = status.as_u16(), error = %other, "request refused");
                other.to_string()
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "detail": detail, "causes": [] }).to_string(),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited {
                retry_after,
                limits,
                ..
            } => {
                if let Ok(v) = HeaderValue::from_str(limits) {
                    headers.insert("x-sentry-rate-limits", v);
                }
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Unavailable { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Invalid(msg) => ApiError::bad_request("invalid", msg),
            StoreError::Exists(what) => {
                ApiError::bad_request("exists", format!("{what} already exists"))
            }
            other if other.is_unavailable() => ApiError::Unavailable {
                reason: "database_unavailable",
                retry_after: 5,
                detail: format!("{other}; retry later"),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::services::ServiceError> for ApiError {
    fn from(e: crate::services::ServiceError) -> Self {
        use crate::services::ServiceError;
        match e {
            ServiceError::Store(e) => e.into(),
            ServiceError::Fields(v) => ApiError::Fields(v),
            ServiceError::Invalid(msg) => ApiError::bad_request("invalid", msg),
            ServiceError::Task(msg) => ApiError::Internal(msg),
        }
    }
}

impl From<crate::time::BadPeriod> for ApiError {
    fn from(e: crate::time::BadPeriod) -> Self {
        ApiError::bad_request("invalid", e.to_string())
    }
}
