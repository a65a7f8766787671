//! HTTP plumbing shared by the services: flat error bodies, lenient JSON bodies, the `_info`
//! stamp, client IPs, bearer tokens and small JSON/number helpers.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::service::Service;

/// Largest body the `_info` stamp will buffer (responses are small; this is a guard).
const MAX_STAMPED_BODY: usize = 16 * 1024 * 1024;

/// A service error: an HTTP status and a flat `{"error": "<code>", ...}` body.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `status` and `{"error": code}`.
    pub(crate) fn new(status: u16, code: &str) -> Self {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(code));
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            headers: Vec::new(),
        }
    }

    /// Adds `"message"`.
    pub(crate) fn msg(self, message: impl Into<String>) -> Self {
        self.with("message", message.into())
    }

    /// Adds `"suggestion"`.
    pub(crate) fn suggest(self, suggestion: impl Into<String>) -> Self {
        self.with("suggestion", suggestion.into())
    }

    /// Adds any extra field.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    pub(crate) fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// The flat body as a JSON value.
    pub(crate) fn body_value(&self) -> Value {
        Value::Object(self.body.clone())
    }

    /// The HTTP status as a number.
    pub(crate) fn status_code(&self) -> u16 {
        self.status.as_u16()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(Value::Object(self.body))).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The result of a handler.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// A 200 JSON response.
pub(crate) fn ok(value: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

/// A 201 JSON response.
pub(crate) fn created(value: Value) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

/// A JSON response with any status.
pub(crate) fn reply(status: u16, value: Value) -> ApiResult {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok((status, axum::Json(value)).into_response())
}

/// How a service answers a body that is not JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BadJson {
    /// 400 `invalid_json` (casino, trading, and the sandbox default).
    InvalidJson,
    /// 400 `invalid_request` (faucet, whose first check covers a missing or broken body).
    InvalidRequest,
}

/// Parses a request body leniently: an empty body reads as `{}`, a non-object JSON value
/// reads as `{}` (so the field checks report what is missing), broken JSON is a 400.
pub(crate) fn parse_body(bytes: &Bytes, bad: BadJson) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Value::Object(map)),
        Ok(_) => Ok(Value::Object(Map::new())),
        Err(e) => Err(match bad {
            BadJson::InvalidJson => ApiError::new(400, "invalid_json")
                .msg(format!("Request body is not valid JSON: {e}")),
            BadJson::InvalidRequest => ApiError::new(400, "invalid_request")
                .msg(format!("Request body is not valid JSON: {e}")),
        }),
    }
}

/// A JSON number field (JS `typeof x === "number"`); strings do not count.
pub(crate) fn num(body: &Value, key: &str) -> Option<f64> {
    body.get(key)
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite())
}

/// Whether a field is present and not null.
pub(crate) fn present(body: &Value, key: &str) -> bool {
    body.get(key).is_some_and(|v| !v.is_null())
}

/// A JSON string field.
pub(crate) fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// A non-empty JSON string field (JS truthiness for strings).
pub(crate) fn nonempty<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    text(body, key).filter(|s| !s.is_empty())
}

/// Rounds to 2 decimal places (money).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to 4 decimal places (multipliers).
pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Rounds to 6 decimal places (escrow amounts).
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

/// A timestamp as JavaScript's `toISOString` writes it.
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The bearer token of a request, or the service's 401 for a missing or malformed header.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match value.strip_prefix("Bearer ") {
        Some(token) if !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(ApiError::new(401, "unauthorized")
            .msg("Missing or invalid Authorization header")
            .suggest("Send 'Authorization: Bearer <api_key>'")),
    }
}

/// The 401 for a well-formed but unknown key, in the service's own shape.
pub(crate) fn unknown_key(service: Service) -> ApiError {
    if service.unknown_key_is_invalid_key() {
        ApiError::new(401, "invalid_key")
    } else {
        ApiError::new(401, "unauthorized").msg("Invalid API key")
    }
}

/// The hex SHA-256 of a key, which is how the services store and look keys up.
pub(crate) fn key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// The client's IP as the services key their rate limits: the first `X-Forwarded-For` entry,
/// then `X-Real-IP`, then the socket peer, then `unknown`.
#[derive(Debug, Clone)]
pub(crate) struct ClientIp(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(',').next().unwrap_or("").trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let ip = header("x-forwarded-for")
            .or_else(|| header("x-real-ip"))
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ci| ci.0.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(ClientIp(ip))
    }
}

/// The `_info` object every JSON object response carries. The real services put a referral
/// link here; the sandbox deliberately does not.
pub(crate) fn info(service: Service) -> Value {
    json!({
        "service": service.info_name(),
        "docs": "purpleflea-sandbox (offline imitation)",
        "referral": Value::Null,
        "version": concat!("sandbox-", env!("CARGO_PKG_VERSION")),
    })
}

/// Middleware: adds `_info` to every JSON object response of a service, errors included.
pub(crate) async fn stamp_info(
    State(service): State<Service>,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        // A framework rejection (bad path encoding, oversized body) still gets a flat body.
        if response.status().is_client_error() {
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), MAX_STAMPED_BODY)
                .await
                .unwrap_or_default();
            let code = match status {
                404 => "not_found",
                413 => "payload_too_large",
                _ => "invalid_request",
            };
            let mut error = ApiError::new(status, code);
            if !bytes.is_empty() {
                error = error.msg(String::from_utf8_lossy(&bytes).into_owned());
            }
            let mut body = error.body_value();
            body["_info"] = info(service);
            return (error.status, axum::Json(body)).into_response();
        }
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_STAMPED_BODY).await else {
        return ApiError::new(500, "internal_error").into_response();
    };
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut map)) => {
            map.insert("_info".into(), info(service));
            serde_json::to_vec(&Value::Object(map)).map_or(bytes, Bytes::from)
        }
        _ => bytes,
    };
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// The 404 every service sends for an unknown route.
pub(crate) async fn not_found() -> Response {
    ApiError::new(404, "not_found")
        .msg("Route not found")
        .into_response()
}
