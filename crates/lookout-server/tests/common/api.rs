//! A typed client of the REST API for tests: a base URL and a bearer token, one call per
//! method, answers as status + JSON, and assertions that print the body when they fail.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The REST API as a token holder sees it.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One answer of the API.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body; `Null` when the body is empty (a 204) or not JSON.
    pub body: Value,
}

impl ApiResponse {
    /// Assert the status (showing the body if it differs) and return the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status}, got {} with {}",
            self.status,
            self.body
        );
        self.body
    }
}

impl ApiClient {
    /// A client of the server at `base` (`http://127.0.0.1:PORT`) with `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
            token: token.into(),
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.into(),
        }
    }

    /// `GET path` (a path under the base, e.g. `/api/0/...`).
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> ApiResponse {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> ApiResponse {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> ApiResponse {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> ApiResponse {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        ApiResponse { status, body }
    }
}
