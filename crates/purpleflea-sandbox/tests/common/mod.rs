//! Shared helpers: a sandbox on an ephemeral port and a small JSON client around reqwest.
#![allow(dead_code)]

use purpleflea_sandbox::{Sandbox, SandboxConfig, SandboxHandle, Service};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A response: status, JSON body (Null when not JSON), headers, raw text.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Resp {
    /// The flat error code.
    pub(crate) fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts status and error code, returning self for more checks.
    #[track_caller]
    pub(crate) fn expect_err(self, status: u16, code: &str) -> Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected response: {}",
            self.text
        );
        assert!(
            self.body["_info"].is_object(),
            "error without _info: {}",
            self.text
        );
        self
    }

    /// Asserts a 2xx status.
    #[track_caller]
    pub(crate) fn expect_ok(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected response: {}", self.text);
        self
    }
}

/// A sandbox on 127.0.0.1:0 plus an HTTP client.
pub(crate) struct Env {
    pub(crate) handle: SandboxHandle,
    pub(crate) http: reqwest::Client,
}

impl Env {
    /// A deterministic test sandbox (seed 7, manual clock, no faults).
    pub(crate) async fn new() -> Env {
        Env::with(SandboxConfig::for_tests(7)).await
    }

    /// A sandbox with a given config.
    pub(crate) async fn with(config: SandboxConfig) -> Env {
        let handle = Sandbox::spawn(config).await.expect("sandbox starts");
        Env {
            handle,
            http: reqwest::Client::new(),
        }
    }

    /// The sandbox behind the server.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        self.handle.sandbox()
    }

    /// A full URL under a service's API base.
    pub(crate) fn url(&self, service: Service, path: &str) -> String {
        format!("{}{path}", self.handle.base_url(service))
    }

    /// Sends a request with an optional bearer key and JSON body.
    pub(crate) async fn call(
        &self,
        method: Method,
        service: Service,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(service, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        into_resp(req.send().await.expect("request reaches the sandbox")).await
    }

    /// GET a path under the service root (the stand-in host), e.g. `/health`.
    pub(crate) async fn get_root(&self, service: Service, path: &str) -> Resp {
        let url = format!("{}{path}", self.handle.service_url(service));
        into_resp(
            self.http
                .get(url)
                .send()
                .await
                .expect("request reaches the sandbox"),
        )
        .await
    }

    /// POST with JSON.
    pub(crate) async fn post(
        &self,
        service: Service,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> Resp {
        self.call(Method::POST, service, path, key, Some(body))
            .await
    }

    /// GET.
    pub(crate) async fn get(&self, service: Service, path: &str, key: Option<&str>) -> Resp {
        self.call(Method::GET, service, path, key, None).await
    }

    /// A raw body POST (for broken JSON).
    pub(crate) async fn post_raw(
        &self,
        service: Service,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> Resp {
        let mut req = self
            .http
            .post(self.url(service, path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        into_resp(req.send().await.expect("request reaches the sandbox")).await
    }

    /// A request to the admin API (`/_admin/...`).
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}/_admin{path}", self.handle.url()));
        if let Some(body) = body {
            req = req.json(&body);
        }
        into_resp(req.send().await.expect("request reaches the sandbox")).await
    }

    /// Advances the sandbox clock through the admin API.
    pub(crate) async fn advance(&self, seconds: f64) -> Resp {
        self.admin(
            Method::POST,
            "/clock/advance",
            Some(json!({"seconds": seconds})),
        )
        .await
        .expect_ok(200)
    }

    /// Registers a casino agent: (agent_id, api_key).
    pub(crate) async fn casino_agent(&self) -> (String, String) {
        let r = self
            .post(Service::Casino, "/auth/register", None, json!({}))
            .await
            .expect_ok(201);
        (
            r.body["agent_id"].as_str().unwrap_or_default().to_owned(),
            r.body["api_key"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Registers an agent on trading/wallet/domains: (agent_id, api_key).
    pub(crate) async fn agent(&self, service: Service) -> (String, String) {
        let r = self
            .post(service, "/auth/register", None, json!({}))
            .await
            .expect_ok(201);
        (
            r.body["agent_id"].as_str().unwrap_or_default().to_owned(),
            r.body["api_key"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Funds a USD account through the admin API.
    pub(crate) async fn deposit(&self, service: Service, agent_id: &str, amount: f64) {
        self.admin(
            Method::POST,
            "/deposit",
            Some(json!({"service": service.name(), "agent_id": agent_id, "amount_usd": amount})),
        )
        .await
        .expect_ok(200);
    }
}

async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        headers,
        text,
    }
}

/// Whether `s` is `prefix` followed by exactly `n` lower-case hex characters.
pub(crate) fn prefixed_hex(s: &str, prefix: &str, n: usize) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == n
            && rest
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// Float comparison to a tolerance.
#[track_caller]
pub(crate) fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} != {b} (±{tol})");
}
