//! The client, its builder, and the one function every call goes through (auth, timeout,
//! span, breadcrumb, retries, decoding).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use sentry_core::protocol::SpanStatus;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;
use tracing::field::Empty;

use crate::casino::Casino;
use crate::domains::Domains;
use crate::error::{CallContext, Error, Failure, Op};
use crate::escrow::Escrow;
use crate::faucet::Faucet;
use crate::retry::{RateLimitInfo, RetryPolicy, Sleeper};
use crate::service::Service;
use crate::trading::Trading;
use crate::wallet::Wallet;

/// The default timeout of one HTTP attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `User-Agent`.
pub const DEFAULT_USER_AGENT: &str = concat!("purpleflea-client/", env!("CARGO_PKG_VERSION"));

/// An API key; `Debug` shows only its prefix.
#[derive(Clone, PartialEq, Eq)]
struct Key(String);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.0.split_inclusive('_').take(2).collect::<String>();
        write!(f, "\"{prefix}…\"")
    }
}

/// The API keys of a client, one per keyed service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Keys {
    casino: Option<Key>,
    trading: Option<Key>,
    wallet: Option<Key>,
    domains: Option<Key>,
}

impl Keys {
    fn for_service(&self, service: Service) -> Option<&Key> {
        match service {
            Service::Casino | Service::Escrow => self.casino.as_ref(),
            Service::Trading => self.trading.as_ref(),
            Service::Wallet => self.wallet.as_ref(),
            Service::Domains => self.domains.as_ref(),
            Service::Faucet => None,
        }
    }

    fn slot(&mut self, service: Service) -> Option<&mut Option<Key>> {
        match service {
            Service::Casino | Service::Escrow => Some(&mut self.casino),
            Service::Trading => Some(&mut self.trading),
            Service::Wallet => Some(&mut self.wallet),
            Service::Domains => Some(&mut self.domains),
            Service::Faucet => None,
        }
    }
}

/// Checks a key's prefix and that it can travel in a header.
fn check_key(service: Service, key: &str) -> Result<Key, Error> {
    let Some(prefix) = service.key_prefix() else {
        return Err(Error::config(format!(
            "the {service} service takes no API key"
        )));
    };
    if !key.starts_with(prefix) || key.len() == prefix.len() {
        return Err(Error::config(format!(
            "a {service} API key starts with '{prefix}' followed by hex characters"
        )));
    }
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::config(format!(
            "the {service} API key contains characters other than letters, digits and '_'"
        )));
    }
    Ok(Key(key.to_owned()))
}

/// Builds a [`Client`]. Start from [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct ClientBuilder {
    bases: [String; 6],
    keys: Keys,
    key_errors: Vec<String>,
    timeout: Duration,
    connect_timeout: Option<Duration>,
    user_agent: String,
    retry: RetryPolicy,
    sleeper: Sleeper,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            bases: Service::ALL.map(|s| s.production_base_url().to_owned()),
            keys: Keys::default(),
            key_errors: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            retry: RetryPolicy::default(),
            sleeper: Sleeper::default(),
        }
    }
}

impl ClientBuilder {
    /// Sets one service's base URL (default: its production URL, [`Service::production_base_url`]).
    pub fn base_url(mut self, service: Service, url: impl Into<String>) -> Self {
        self.bases[service.index()] = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Points all six services at a `purpleflea-sandbox` root URL (`http://127.0.0.1:PORT`),
    /// using the sandbox's prefixes ([`Service::sandbox_base_path`]).
    pub fn sandbox(mut self, root_url: impl AsRef<str>) -> Self {
        let root = root_url.as_ref().trim_end_matches('/');
        for service in Service::ALL {
            self.bases[service.index()] = format!("{root}{}", service.sandbox_base_path());
        }
        self
    }

    /// Sets the API key of a service: casino `sk_live_…` (also used by escrow), trading
    /// `sk_trade_…`, wallet `pk_live_…`, domains `sk_domains_…`. A key with the wrong prefix
    /// makes [`ClientBuilder::build`] fail.
    pub fn api_key(mut self, service: Service, key: impl AsRef<str>) -> Self {
        match check_key(service, key.as_ref()) {
            Ok(key) => {
                if let Some(slot) = self.keys.slot(service) {
                    *slot = Some(key);
                }
            }
            Err(e) => self.key_errors.push(e.to_string()),
        }
        self
    }

    /// The casino key (`sk_live_…`), also used for escrow.
    pub fn casino_key(self, key: impl AsRef<str>) -> Self {
        self.api_key(Service::Casino, key)
    }

    /// The trading key (`sk_trade_…`).
    pub fn trading_key(self, key: impl AsRef<str>) -> Self {
        self.api_key(Service::Trading, key)
    }

    /// The wallet key (`pk_live_…`).
    pub fn wallet_key(self, key: impl AsRef<str>) -> Self {
        self.api_key(Service::Wallet, key)
    }

    /// The domains key (`sk_domains_…`).
    pub fn domains_key(self, key: impl AsRef<str>) -> Self {
        self.api_key(Service::Domains, key)
    }

    /// The timeout of one HTTP attempt, from sending to the end of the body (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A separate bound on establishing a connection (default: none beyond [`ClientBuilder::timeout`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The `User-Agent` header (default `purpleflea-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The retry policy (see [`crate::retry`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How to wait between attempts (default `tokio::time::sleep`). A simulation running
    /// the sandbox's manual clock can advance that clock here instead of waiting.
    pub fn sleeper(mut self, sleeper: Sleeper) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// A [`crate::ErrorKind::Config`] error for a key with the wrong prefix, a base URL that
    /// is not `http(s)://…`, or when the HTTP client cannot be built (TLS backend).
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.key_errors.first() {
            return Err(Error::config(e.clone()));
        }
        for (service, base) in Service::ALL.iter().zip(&self.bases) {
            let parsed = reqwest::Url::parse(base)
                .map_err(|e| Error::config(format!("{service} base URL '{base}': {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(Error::config(format!(
                    "{service} base URL '{base}' is not http(s)"
                )));
            }
        }
        let mut http = reqwest::Client::builder()
            .user_agent(self.user_agent)
            .timeout(self.timeout);
        if let Some(t) = self.connect_timeout {
            http = http.connect_timeout(t);
        }
        let http = http
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            shared: Arc::new(Shared {
                http,
                bases: self.bases,
                retry: self.retry,
                sleeper: self.sleeper,
                rate_limits: Mutex::new(Default::default()),
            }),
            keys: Arc::new(self.keys),
            timeout: self.timeout,
        })
    }
}

struct Shared {
    http: reqwest::Client,
    bases: [String; 6],
    retry: RetryPolicy,
    sleeper: Sleeper,
    rate_limits: Mutex<[Option<RateLimitInfo>; 6]>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("bases", &self.bases)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// An async client for the six Purple Flea services. Cheap to clone (clones share the
/// connection pool and the rate-limit state).
///
/// Reach each service through its sub-client: [`Client::casino`], [`Client::faucet`],
/// [`Client::escrow`], [`Client::trading`], [`Client::wallet`], [`Client::domains`].
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    keys: Arc<Keys>,
    timeout: Duration,
}

impl Client {
    /// A builder with production URLs, no keys, a 10 s timeout and the default retry policy.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for production without keys (public endpoints and registration only).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A copy of this client with another API key for `service` (e.g. the key a
    /// registration just returned). The copy shares the connection pool.
    ///
    /// # Errors
    ///
    /// A [`crate::ErrorKind::Config`] error when the key does not carry the service's prefix.
    pub fn with_api_key(&self, service: Service, key: impl AsRef<str>) -> Result<Self, Error> {
        let key = check_key(service, key.as_ref())?;
        let mut keys = (*self.keys).clone();
        if let Some(slot) = keys.slot(service) {
            *slot = Some(key);
        }
        Ok(Self {
            shared: Arc::clone(&self.shared),
            keys: Arc::new(keys),
            timeout: self.timeout,
        })
    }

    /// A copy of this client whose calls time out after `timeout` (per attempt).
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// Whether a key is configured for `service` (escrow uses the casino key; the faucet
    /// needs none and always answers `true`).
    #[must_use]
    pub fn has_key(&self, service: Service) -> bool {
        service == Service::Faucet || self.keys.for_service(service).is_some()
    }

    /// The base URL used for `service`.
    #[must_use]
    pub fn base_url(&self, service: Service) -> &str {
        &self.shared.bases[service.index()]
    }

    /// The rate-limit state `service` last reported, if it ever did (headers or a 429).
    #[must_use]
    pub fn rate_limit(&self, service: Service) -> Option<RateLimitInfo> {
        self.shared
            .rate_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[service.index()]
        .clone()
    }

    /// Casino: account, games, batches, history, Kelly limits and provably-fair checks.
    #[must_use]
    pub fn casino(&self) -> Casino<'_> {
        Casino::new(self)
    }

    /// Faucet: the one-time $1 claim.
    #[must_use]
    pub fn faucet(&self) -> Faucet<'_> {
        Faucet::new(self)
    }

    /// Escrow between agents (authenticated with the casino key).
    #[must_use]
    pub fn escrow(&self) -> Escrow<'_> {
        Escrow::new(self)
    }

    /// Trading: markets, positions, limit and exit orders, risk settings.
    #[must_use]
    pub fn trading(&self) -> Trading<'_> {
        Trading::new(self)
    }

    /// Wallet: HD wallets, balances, sends and cross-chain swaps.
    #[must_use]
    pub fn wallet(&self) -> Wallet<'_> {
        Wallet::new(self)
    }

    /// Domains: search, registration, DNS records and auctions.
    #[must_use]
    pub fn domains(&self) -> Domains<'_> {
        Domains::new(self)
    }

    fn record_rate_limit(&self, service: Service, info: RateLimitInfo) {
        self.shared
            .rate_limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[service.index()] = Some(info);
    }

    /// Sends a call (with retries) and decodes its JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Call) -> Result<T, Error> {
        let (status, bytes, attempts) = self.send(&req).await?;
        let path = self.url_path(&req);
        serde_json::from_slice::<T>(&bytes).map_err(|e| {
            Error::decode(req.service, req.method.as_str(), &path, status, &bytes, e).with_call(
                req.op,
                &req.context,
                attempts,
            )
        })
    }

    fn url_path(&self, req: &Call) -> String {
        let base = &self.shared.bases[req.service.index()];
        let base_path = reqwest::Url::parse(base)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{base_path}{}", req.path)
    }

    /// The retry loop; returns the status, the body and the number of attempts.
    async fn send(&self, req: &Call) -> Result<(u16, Vec<u8>, u32), Error> {
        let policy = &self.shared.retry;
        let path = self.url_path(req);
        let method = req.method.as_str();
        let key = match req.auth {
            Auth::None => None,
            Auth::Optional => self.keys.for_service(req.service),
            Auth::Required => match self.keys.for_service(req.service) {
                Some(key) => Some(key),
                None => {
                    return Err(Error::new(
                        Some(req.service),
                        method,
                        &path,
                        Failure::MissingKey(req.service),
                    )
                    .with_call(req.op, &req.context, 0));
                }
            },
        };
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(req, &path, key, attempt).await;
            let (wait, err) = match outcome {
                Ok((status, headers, bytes)) => {
                    let json = (!(200..300).contains(&status))
                        .then(|| serde_json::from_slice::<Value>(&bytes).ok())
                        .flatten();
                    let now = Utc::now();
                    let limit = RateLimitInfo::parse(status, &headers, json.as_ref(), now);
                    if let Some(info) = &limit {
                        self.record_rate_limit(req.service, info.clone());
                    }
                    if (200..300).contains(&status) {
                        return Ok((status, bytes, attempt));
                    }
                    let asked = limit.as_ref().and_then(|l| l.wait(now));
                    let code = json
                        .as_ref()
                        .and_then(|j| j.get("error"))
                        .and_then(Value::as_str);
                    let err = Error::api(req.service, method, &path, status, &bytes)
                        .with_call(req.op, &req.context, attempt)
                        .with_retry_after(asked);
                    let wait = if status == 429 {
                        let allowed = code != Some("ip_rate_limited")
                            && (req.idempotent || policy.retries_rate_limited_writes());
                        let wait = asked.unwrap_or_else(|| policy.backoff(attempt));
                        (allowed && wait <= policy.rate_limit_wait_cap()).then_some(wait)
                    } else if status >= 500 && status != 501 && req.idempotent {
                        Some(
                            asked
                                .filter(|w| *w <= policy.rate_limit_wait_cap())
                                .unwrap_or_else(|| policy.backoff(attempt)),
                        )
                    } else {
                        None
                    };
                    (wait, err)
                }
                Err(e) => {
                    let retry = if e.is_connect() { true } else { req.idempotent };
                    let failure = if e.is_timeout() {
                        Failure::Timeout(e)
                    } else if e.is_connect() {
                        Failure::Connect(e)
                    } else {
                        Failure::Transport(e)
                    };
                    let err = Error::new(Some(req.service), method, &path, failure).with_call(
                        req.op,
                        &req.context,
                        attempt,
                    );
                    (retry.then(|| policy.backoff(attempt)), err)
                }
            };
            match wait {
                Some(wait) if attempt < policy.attempts() => {
                    tracing::debug!(
                        service = %req.service,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying purple flea call"
                    );
                    self.shared.sleeper.sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    /// One HTTP attempt inside its `http.client` span, with its breadcrumb.
    async fn attempt(
        &self,
        req: &Call,
        path: &str,
        key: Option<&Key>,
        attempt: u32,
    ) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
        let method = req.method.as_str();
        let name = format!("{method} {}{}", req.service.api_base_path(), req.route);
        let span = tracing::info_span!(
            "http.client",
            sentry.op = "http.client",
            sentry.name = %name,
            http.method = method,
            http.status_code = Empty,
            latency_ms = Empty,
            service = req.service.as_str(),
            url.path = %path,
            attempt,
        );
        let started = Instant::now();
        let exchange = async {
            let url = format!("{}{}", self.shared.bases[req.service.index()], req.path);
            let mut builder = self
                .shared
                .http
                .request(req.method.clone(), url)
                .timeout(self.timeout);
            if !req.query.is_empty() {
                builder = builder.query(&req.query);
            }
            if let Some(key) = key
                && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.0))
            {
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            }
            if let Some(body) = &req.body {
                builder = builder.json(body);
            }
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes.to_vec()))
        };
        let result = exchange.instrument(span.clone()).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        span.record("latency_ms", latency_ms);
        if let Ok((status, _, _)) = &result {
            span.record("http.status_code", *status);
        }
        set_sentry_status(&span, attempt_status(&result));
        drop(span);
        // The breadcrumb is emitted after the span closed: `sentry-tracing` forks the hub
        // while a span is entered, so a breadcrumb added inside it would not reach the
        // caller's scope (and the next error event).
        let service = req.service.as_str();
        match &result {
            Ok((status, _, _)) if (200..400).contains(status) => {
                tracing::info!(
                    target: "http",
                    method,
                    url = path,
                    status_code = *status,
                    latency_ms,
                    service,
                    "{method} {path} {status}"
                );
            }
            Ok((status, _, _)) => {
                tracing::warn!(
                    target: "http",
                    method,
                    url = path,
                    status_code = *status,
                    latency_ms,
                    service,
                    "{method} {path} {status}"
                );
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                tracing::warn!(
                    target: "http",
                    method,
                    url = path,
                    latency_ms,
                    service,
                    error,
                    "{method} {path} failed: {error}"
                );
            }
        }
        result
    }
}

/// Whether and how a call authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Public endpoint (or the faucet).
    None,
    /// Sends the key when one is configured (escrow `GET /escrow/:id`).
    Optional,
    /// Needs the key; without one the call fails before sending.
    Required,
}

/// One call, as the sub-clients describe it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) service: Service,
    pub(crate) method: Method,
    /// The route template relative to the API base (`/escrow/release/{id}`), for span names.
    pub(crate) route: Cow<'static, str>,
    /// The concrete path relative to the API base (`/escrow/release/esc_…`).
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    pub(crate) auth: Auth,
    /// Safe to retry after a 5xx or a timeout.
    pub(crate) idempotent: bool,
    pub(crate) op: Op,
    pub(crate) context: CallContext,
}

impl Call {
    fn new(service: Service, method: Method, route: impl Into<Cow<'static, str>>) -> Self {
        let route = route.into();
        Self {
            service,
            path: route.to_string(),
            route,
            method: method.clone(),
            query: Vec::new(),
            body: None,
            auth: if service == Service::Faucet {
                Auth::None
            } else {
                Auth::Required
            },
            idempotent: method == Method::GET,
            op: if method == Method::GET {
                Op::Other
            } else {
                Op::Write
            },
            context: CallContext::default(),
        }
    }

    /// A GET of `route` (idempotent).
    pub(crate) fn get(service: Service, route: impl Into<Cow<'static, str>>) -> Self {
        Self::new(service, Method::GET, route)
    }

    /// A POST of `route` (not idempotent unless marked).
    pub(crate) fn post(service: Service, route: impl Into<Cow<'static, str>>) -> Self {
        Self::new(service, Method::POST, route)
    }

    /// A PUT of `route` (not idempotent unless marked).
    pub(crate) fn put(service: Service, route: impl Into<Cow<'static, str>>) -> Self {
        Self::new(service, Method::PUT, route)
    }

    /// A DELETE of `route` (not idempotent unless marked).
    pub(crate) fn delete(service: Service, route: impl Into<Cow<'static, str>>) -> Self {
        Self::new(service, Method::DELETE, route)
    }

    /// Replaces `{name}` in the path with the percent-encoded `value`.
    pub(crate) fn param(mut self, name: &str, value: &str) -> Self {
        self.path = self
            .path
            .replace(&format!("{{{name}}}"), &encode_segment(value));
        self
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl ToString) -> Self {
        self.query.push((key, value.to_string()));
        self
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Marks a non-GET call as safe to repeat (a read or an idempotent setter).
    pub(crate) fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    pub(crate) fn op(mut self, op: Op) -> Self {
        self.op = op;
        self
    }

    pub(crate) fn context(mut self, context: CallContext) -> Self {
        self.context = context;
        self
    }
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters and `:`/`@` pass).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Serializes a request body; request types are plain data, so this cannot fail in
/// practice, and a failure becomes `null` (the service then answers with its own 400).
pub(crate) fn body<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The Sentry span status of an HTTP answer, as Sentry maps HTTP codes: `ok` below 400,
/// then 400 `invalid_argument`, 401 `unauthenticated`, 403 `permission_denied`,
/// 404 `not_found`, 409 `already_exists`, 413 `failed_precondition`, 429
/// `resource_exhausted`, 499 `cancelled`, other 4xx `invalid_argument`; 501 `unimplemented`,
/// 503 `unavailable`, 504 `deadline_exceeded`, other 5xx `internal_error`.
pub(crate) fn span_status_of(status: u16) -> SpanStatus {
    match status {
        ..400 => SpanStatus::Ok,
        401 => SpanStatus::Unauthenticated,
        403 => SpanStatus::PermissionDenied,
        404 => SpanStatus::NotFound,
        409 => SpanStatus::AlreadyExists,
        413 => SpanStatus::FailedPrecondition,
        429 => SpanStatus::ResourceExhausted,
        499 => SpanStatus::Cancelled,
        400..500 => SpanStatus::InvalidArgument,
        501 => SpanStatus::Unimplemented,
        503 => SpanStatus::Unavailable,
        504 => SpanStatus::DeadlineExceeded,
        500..600 => SpanStatus::InternalError,
        _ => SpanStatus::UnknownError,
    }
}

/// The span status of one attempt: from its HTTP code, or for a request that got no answer,
/// `deadline_exceeded` (timeout), `unavailable` (no connection) or `unknown_error`.
fn attempt_status(result: &Result<(u16, HeaderMap, Vec<u8>), reqwest::Error>) -> SpanStatus {
    match result {
        Ok((status, _, _)) => span_status_of(*status),
        Err(e) if e.is_timeout() => SpanStatus::DeadlineExceeded,
        Err(e) if e.is_connect() => SpanStatus::Unavailable,
        Err(_) => SpanStatus::UnknownError,
    }
}

/// Set the status of the Sentry span that `sentry-tracing` made of `span`. Without its span
/// layer no Sentry span is entered with `span`, and the hub's current span (the caller's,
/// e.g. an order pipeline stage) is left alone.
fn set_sentry_status(span: &tracing::Span, status: SpanStatus) {
    let current = || sentry_core::configure_scope(|scope| scope.get_span());
    let outer = current().map(|s| s.get_trace_context().span_id);
    span.in_scope(|| {
        if let Some(inner) = current()
            && Some(inner.get_trace_context().span_id) != outer
        {
            inner.set_status(status);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_codes_map_to_sentrys_span_statuses() {
        for (code, status) in [
            (200, SpanStatus::Ok),
            (201, SpanStatus::Ok),
            (302, SpanStatus::Ok),
            (400, SpanStatus::InvalidArgument),
            (401, SpanStatus::Unauthenticated),
            (402, SpanStatus::InvalidArgument),
            (403, SpanStatus::PermissionDenied),
            (404, SpanStatus::NotFound),
            (409, SpanStatus::AlreadyExists),
            (413, SpanStatus::FailedPrecondition),
            (422, SpanStatus::InvalidArgument),
            (429, SpanStatus::ResourceExhausted),
            (499, SpanStatus::Cancelled),
            (500, SpanStatus::InternalError),
            (501, SpanStatus::Unimplemented),
            (502, SpanStatus::InternalError),
            (503, SpanStatus::Unavailable),
            (504, SpanStatus::DeadlineExceeded),
            (600, SpanStatus::UnknownError),
        ] {
            assert_eq!(span_status_of(code), status, "{code}");
        }
    }

    #[test]
    fn keys_are_checked_and_redacted() {
        let ok = check_key(Service::Trading, "sk_trade_0123abcd");
        assert!(ok.is_ok());
        let shown = format!("{:?}", ok.ok());
        assert!(!shown.contains("0123abcd"), "{shown}");
        assert!(check_key(Service::Trading, "sk_live_0123").is_err());
        assert!(check_key(Service::Casino, "sk_live_").is_err());
        assert!(check_key(Service::Faucet, "anything").is_err());
        let built = Client::builder().casino_key("pf_live_abc").build();
        assert!(built.is_err());
    }

    #[test]
    fn sandbox_bases_and_segments() {
        let client = Client::builder().sandbox("http://127.0.0.1:9/").build();
        let Ok(client) = client else {
            panic!("builds");
        };
        assert_eq!(
            client.base_url(Service::Casino),
            "http://127.0.0.1:9/casino/api/v1"
        );
        assert_eq!(
            client.base_url(Service::Faucet),
            "http://127.0.0.1:9/faucet"
        );
        assert_eq!(encode_segment("xyz:TSLA"), "xyz:TSLA");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
