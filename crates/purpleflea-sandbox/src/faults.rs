//! Fault injection: latency, error rates, 429 bursts, hangs and outage windows, per service
//! and per endpoint, configurable from TOML or Rust and changeable at runtime.
//!
//! # TOML format
//!
//! ```toml
//! seed = 7                  # optional; otherwise derived from the sandbox seed
//! rate_limit_style = "code" # "code" (default) or "website": 429 body and headers
//!
//! [default]                 # applies to every service and endpoint
//! latency = { median_ms = 40, sigma = 0.9, max_ms = 10000 }   # log-normal, heavy tail
//!
//! [services.trading]
//! errors = { "500" = 0.02, "503" = 0.01 }          # probability per request, by status
//! rate_limit_burst = { probability = 0.01, duration_secs = 10, limit = 30 }
//! hang = { probability = 0.001, duration_ms = 120000 }
//!
//! [[services.trading.outages]]
//! start_in_secs = 300       # relative to when the config is applied
//! duration_secs = 60        # or absolute: start = "2026-01-01T00:05:00Z", end = "..."
//! status = 503
//!
//! [services.casino.endpoints."POST /games/*"]      # METHOD optional; `*` matches anything
//! errors = { "429" = 0.05 }
//! retry_after_secs = 2
//! ```
//!
//! Resolution: for each field, the most specific level that sets it wins (endpoint, then
//! service, then `[default]`); `outages` from all three levels apply together. An endpoint
//! pattern is matched against the real path after the service prefix, with or without the
//! service's API base (`POST /api/v1/games/dice` and `POST /games/dice` both match casino's
//! dice game); when several patterns match, the longest wins. When no level sets `latency`,
//! requests get the realistic default (median 40 ms, sigma 0.9, so p99 ≈ 330 ms); use
//! [`FaultConfig::none`] or `latency = { median_ms = 0 }` for none.
//!
//! # Evaluation order per request
//!
//! 1. The latency sample is drawn and slept (wall clock) unless a hang replaces it.
//! 2. An active outage window answers with its status.
//! 3. A hang (probability) sleeps `duration_ms` and then lets the request through.
//! 4. An active 429 burst answers 429; otherwise a new burst may start (probability).
//! 5. `errors` is rolled once: a hit answers with that status and the service's real error
//!    body for it (below).
//!
//! # Injected bodies
//!
//! An injected status answers with the body the service itself sends for it: 400
//! `invalid_request`; 401 `unauthorized` (casino, faucet, escrow, wallet) or `invalid_key`
//! (trading, domains); 402 `insufficient_balance`; 403 `forbidden`; 404 `not_found`; 409
//! `conflict`; 429 in the configured [`RateLimitStyle`], always with `Retry-After` and
//! `X-RateLimit-Limit/Remaining/Reset`; 500 `internal_error`; 502 `rpc_error` on wallet and
//! an HTML proxy page elsewhere; 503 and 504 HTML proxy pages (what the reverse proxy in
//! front of a Hono service answers when it is down); any other status
//! `{"error":"http_<status>"}`. JSON bodies carry `_info` like every other response.
//!
//! Outages and bursts run on the sandbox clock, so tests end them by advancing it. Decisions
//! come from a seeded generator, so a sequential run is reproducible.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Error;
use crate::http::ApiError;
use crate::service::Service;
use crate::state::AppState;

/// Which 429 the sandbox sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStyle {
    /// What the services' code sends: `{"error":"rate_limited","message":"Too many
    /// requests. Limit: N per 60s"}` and, from the real limiters, no headers.
    #[default]
    Code,
    /// What purpleflea.com/rate-limits describes: `{"error":"rate_limit_exceeded",limit,
    /// window,retry_after_seconds,reset_at,tier,upgrade_url}` with `X-RateLimit-*` and
    /// `Retry-After` headers, from the real limiters too.
    Website,
}

/// The whole fault configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed for fault decisions; `None` derives one from the sandbox seed.
    pub seed: Option<u64>,
    /// Shape of 429 responses (injected and from the real per-IP limiters).
    pub rate_limit_style: RateLimitStyle,
    /// Faults for every service and endpoint.
    pub default: FaultRule,
    /// Faults per service, keyed by [`Service::name`].
    pub services: BTreeMap<String, ServiceFaults>,
}

impl Default for FaultConfig {
    /// No injected errors, realistic latency (the [`Latency`] default).
    fn default() -> Self {
        Self {
            seed: None,
            rate_limit_style: RateLimitStyle::Code,
            default: FaultRule::default(),
            services: BTreeMap::new(),
        }
    }
}

/// Faults for one service: its own rule plus rules per endpoint pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceFaults {
    /// See [`FaultRule::latency`].
    pub latency: Option<Latency>,
    /// See [`FaultRule::errors`].
    pub errors: Option<BTreeMap<String, f64>>,
    /// See [`FaultRule::retry_after_secs`].
    pub retry_after_secs: Option<u64>,
    /// See [`FaultRule::rate_limit_burst`].
    pub rate_limit_burst: Option<Burst>,
    /// See [`FaultRule::hang`].
    pub hang: Option<Hang>,
    /// See [`FaultRule::outages`].
    pub outages: Vec<Outage>,
    /// Rules per endpoint pattern: `"[METHOD ]/path"`, `*` matching any characters.
    pub endpoints: BTreeMap<String, FaultRule>,
}

impl ServiceFaults {
    /// The service-level rule (without the endpoint rules).
    #[must_use]
    pub fn rule(&self) -> FaultRule {
        FaultRule {
            latency: self.latency,
            errors: self.errors.clone(),
            retry_after_secs: self.retry_after_secs,
            rate_limit_burst: self.rate_limit_burst,
            hang: self.hang,
            outages: self.outages.clone(),
        }
    }

    /// A service entry with just this rule.
    #[must_use]
    pub fn from_rule(rule: FaultRule) -> Self {
        Self {
            latency: rule.latency,
            errors: rule.errors,
            retry_after_secs: rule.retry_after_secs,
            rate_limit_burst: rule.rate_limit_burst,
            hang: rule.hang,
            outages: rule.outages,
            endpoints: BTreeMap::new(),
        }
    }
}

/// One level of fault settings; unset fields inherit from the less specific level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Response latency distribution.
    pub latency: Option<Latency>,
    /// Probability per request of answering with an HTTP status, keyed by the status as a
    /// string (`"429"`, `"500"`, ...); the probabilities must add up to at most 1.
    pub errors: Option<BTreeMap<String, f64>>,
    /// `Retry-After` for a 429 injected through `errors` (default 1 s).
    pub retry_after_secs: Option<u64>,
    /// Bursts of 429s.
    pub rate_limit_burst: Option<Burst>,
    /// Hangs: a long sleep before the request is handled.
    pub hang: Option<Hang>,
    /// Outage windows on the sandbox clock.
    pub outages: Vec<Outage>,
}

/// A log-normal latency: `median_ms × e^(sigma × z)`, capped at `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    /// The median in milliseconds; 0 disables latency.
    pub median_ms: f64,
    /// Spread of the log-normal; 0 makes every request take `median_ms`.
    pub sigma: f64,
    /// Upper bound in milliseconds.
    pub max_ms: f64,
}

impl Default for Latency {
    /// Median 40 ms, sigma 0.9 (p99 ≈ 330 ms), capped at 10 s.
    fn default() -> Self {
        Self {
            median_ms: 40.0,
            sigma: 0.9,
            max_ms: 10_000.0,
        }
    }
}

impl Latency {
    /// No latency at all.
    #[must_use]
    pub fn zero() -> Self {
        Self {
            median_ms: 0.0,
            sigma: 0.0,
            max_ms: 0.0,
        }
    }

    /// Exactly `ms` on every request.
    #[must_use]
    pub fn fixed(ms: f64) -> Self {
        Self {
            median_ms: ms,
            sigma: 0.0,
            max_ms: ms,
        }
    }

    fn sample(&self, rng: &mut StdRng) -> Duration {
        if self.median_ms <= 0.0 {
            return Duration::ZERO;
        }
        // Box-Muller: one standard normal from two uniforms.
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let ms = (self.median_ms * (self.sigma * z).exp()).min(self.max_ms.max(0.0));
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// Bursts of 429s: each request outside a burst starts one with `probability`; during a
/// burst every request gets 429 with `Retry-After` = the seconds left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Burst {
    /// Probability per request of starting a burst.
    pub probability: f64,
    /// Length of a burst on the sandbox clock.
    pub duration_secs: f64,
    /// The limit reported in `X-RateLimit-Limit` and the body.
    pub limit: u32,
}

impl Default for Burst {
    fn default() -> Self {
        Self {
            probability: 0.0,
            duration_secs: 10.0,
            limit: 60,
        }
    }
}

/// Hangs: with `probability` the request sleeps `duration_ms` (wall clock) before it is
/// handled, long enough to trip a client timeout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hang {
    /// Probability per request.
    pub probability: f64,
    /// How long the request hangs.
    pub duration_ms: u64,
}

impl Default for Hang {
    fn default() -> Self {
        Self {
            probability: 0.0,
            duration_ms: 120_000,
        }
    }
}

/// An outage window on the sandbox clock: every request inside it gets `status`.
///
/// Give either absolute `start`/`end` or `start_in_secs`/`duration_secs` relative to when the
/// config is applied; applying resolves the relative form to absolute times (which is what
/// `GET /_admin/faults` then shows). A window without an end lasts until the config changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outage {
    /// Absolute start.
    pub start: Option<DateTime<Utc>>,
    /// Absolute end (exclusive).
    pub end: Option<DateTime<Utc>>,
    /// Start relative to when the config is applied, in seconds (default 0).
    pub start_in_secs: Option<f64>,
    /// Length in seconds.
    pub duration_secs: Option<f64>,
    /// Status answered during the outage (default 503).
    pub status: Option<u16>,
}

impl Outage {
    /// An outage starting now (when applied) lasting `duration_secs`.
    #[must_use]
    pub fn starting_now(duration_secs: f64) -> Self {
        Self {
            duration_secs: Some(duration_secs),
            ..Self::default()
        }
    }

    fn resolve(&mut self, now: DateTime<Utc>) {
        if self.start.is_none() {
            let offset = self.start_in_secs.unwrap_or(0.0);
            self.start = now.checked_add_signed(secs_delta(offset)).or(Some(now));
        }
        if self.end.is_none()
            && let (Some(start), Some(d)) = (self.start, self.duration_secs)
        {
            self.end = start.checked_add_signed(secs_delta(d));
        }
        self.start_in_secs = None;
        self.duration_secs = None;
    }

    fn active(&self, now: DateTime<Utc>) -> bool {
        self.start.is_none_or(|s| now >= s) && self.end.is_none_or(|e| now < e)
    }
}

/// Seconds as a time delta; config validation keeps them within [`MAX_SECS`].
fn secs_delta(secs: f64) -> TimeDelta {
    let secs = if secs.is_finite() {
        secs.clamp(-MAX_SECS, MAX_SECS)
    } else {
        0.0
    };
    TimeDelta::try_milliseconds((secs * 1000.0).round() as i64).unwrap_or_default()
}

/// Largest duration or offset a fault config may use: about 31 years.
const MAX_SECS: f64 = 1e9;

impl FaultConfig {
    /// No faults and no latency: what tests usually want.
    #[must_use]
    pub fn none() -> Self {
        Self {
            default: FaultRule {
                latency: Some(Latency::zero()),
                ..FaultRule::default()
            },
            ..Self::default()
        }
    }

    /// Parses the TOML format described in the module docs and validates it.
    ///
    /// # Errors
    ///
    /// [`Error::FaultToml`] for syntax or unknown keys, [`Error::InvalidFaults`] for values
    /// out of range.
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        let config: FaultConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML fault file.
    ///
    /// # Errors
    ///
    /// [`Error::ReadFaults`] when the file cannot be read, otherwise as
    /// [`FaultConfig::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFaults {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Sets the rule of one service (replacing its service-level fields, keeping endpoints).
    #[must_use]
    pub fn with_service(mut self, service: Service, rule: FaultRule) -> Self {
        let entry = self.services.entry(service.name().to_owned()).or_default();
        let endpoints = std::mem::take(&mut entry.endpoints);
        *entry = ServiceFaults::from_rule(rule);
        entry.endpoints = endpoints;
        self
    }

    /// Sets the rule of one endpoint pattern of a service.
    #[must_use]
    pub fn with_endpoint(mut self, service: Service, pattern: &str, rule: FaultRule) -> Self {
        self.services
            .entry(service.name().to_owned())
            .or_default()
            .endpoints
            .insert(pattern.to_owned(), rule);
        self
    }

    /// Checks names and ranges; the error names the offending key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFaults`] naming the first bad key.
    pub fn validate(&self) -> Result<(), Error> {
        validate_rule("default", &self.default)?;
        for (name, svc) in &self.services {
            if Service::from_name(name).is_none() {
                return Err(Error::InvalidFaults(format!(
                    "services.{name}: unknown service (expected casino, faucet, escrow, trading, wallet or domains)"
                )));
            }
            validate_rule(&format!("services.{name}"), &svc.rule())?;
            for (pattern, rule) in &svc.endpoints {
                validate_rule(&format!("services.{name}.endpoints.\"{pattern}\""), rule)?;
            }
        }
        Ok(())
    }

    fn resolve(&mut self, now: DateTime<Utc>) {
        self.default.outages.iter_mut().for_each(|o| o.resolve(now));
        for svc in self.services.values_mut() {
            svc.outages.iter_mut().for_each(|o| o.resolve(now));
            for rule in svc.endpoints.values_mut() {
                rule.outages.iter_mut().for_each(|o| o.resolve(now));
            }
        }
    }
}

fn bad(at: &str, what: &str) -> Error {
    Error::InvalidFaults(format!("{at}.{what}"))
}

fn validate_probability(at: &str, key: &str, p: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(bad(
            at,
            &format!("{key}: probability {p} is not within 0..=1"),
        ))
    }
}

fn finite_within(at: &str, key: &str, x: f64, max: f64) -> Result<(), Error> {
    if x.is_finite() && (0.0..=max).contains(&x) {
        Ok(())
    } else {
        Err(bad(at, &format!("{key}: {x} is not within 0..={max}")))
    }
}

fn validate_rule(at: &str, rule: &FaultRule) -> Result<(), Error> {
    if let Some(l) = rule.latency {
        finite_within(at, "latency.median_ms", l.median_ms, MAX_SECS)?;
        finite_within(at, "latency.sigma", l.sigma, 10.0)?;
        finite_within(at, "latency.max_ms", l.max_ms, MAX_SECS)?;
    }
    if let Some(b) = rule.rate_limit_burst {
        finite_within(
            at,
            "rate_limit_burst.duration_secs",
            b.duration_secs,
            MAX_SECS,
        )?;
    }
    for (i, o) in rule.outages.iter().enumerate() {
        if let Some(x) = o.start_in_secs {
            finite_within(at, &format!("outages[{i}].start_in_secs"), x, MAX_SECS)?;
        }
        if let Some(x) = o.duration_secs {
            finite_within(at, &format!("outages[{i}].duration_secs"), x, MAX_SECS)?;
        }
    }
    if let Some(l) = rule.latency
        && [l.median_ms, l.sigma, l.max_ms]
            .iter()
            .any(|x| x.is_nan() || *x < 0.0)
    {
        return Err(bad(at, "latency: median_ms, sigma and max_ms must be >= 0"));
    }
    if let Some(errors) = &rule.errors {
        let mut total = 0.0;
        for (status, p) in errors {
            match status.parse::<u16>() {
                Ok(s) if (400..=599).contains(&s) => {}
                _ => {
                    return Err(bad(
                        at,
                        &format!("errors: \"{status}\" is not an HTTP status in 400..=599"),
                    ));
                }
            }
            validate_probability(at, &format!("errors.\"{status}\""), *p)?;
            total += p;
        }
        if total > 1.0 + 1e-9 {
            return Err(bad(at, "errors: probabilities add up to more than 1"));
        }
    }
    if let Some(b) = rule.rate_limit_burst {
        validate_probability(at, "rate_limit_burst.probability", b.probability)?;
        if b.duration_secs.is_nan() || b.duration_secs <= 0.0 {
            return Err(bad(at, "rate_limit_burst.duration_secs must be > 0"));
        }
    }
    if let Some(h) = rule.hang {
        validate_probability(at, "hang.probability", h.probability)?;
    }
    for (i, o) in rule.outages.iter().enumerate() {
        if let Some(s) = o.status
            && !(400..=599).contains(&s)
        {
            return Err(bad(
                at,
                &format!("outages[{i}].status {s} is not in 400..=599"),
            ));
        }
        if let (Some(s), Some(e)) = (o.start, o.end)
            && e <= s
        {
            return Err(bad(at, &format!("outages[{i}]: end is not after start")));
        }
    }
    Ok(())
}

/// What the fault layer decided for one request.
#[derive(Debug)]
struct Decision {
    delay: Duration,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Pass,
    Respond {
        status: u16,
        retry_after: Option<u64>,
        limit: u32,
    },
}

/// The live fault state: the config plus its generator and the running bursts.
#[derive(Debug)]
pub(crate) struct FaultEngine {
    config: FaultConfig,
    rng: StdRng,
    bursts: HashMap<String, DateTime<Utc>>,
}

impl FaultEngine {
    pub(crate) fn new(mut config: FaultConfig, sandbox_seed: u64, now: DateTime<Utc>) -> Self {
        config.resolve(now);
        let seed = config.seed.unwrap_or(sandbox_seed ^ 0x5eed_fa17_0000_0001);
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            bursts: HashMap::new(),
        }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Replaces the config (already validated); an explicit seed restarts the generator.
    pub(crate) fn replace(&mut self, mut config: FaultConfig, now: DateTime<Utc>) {
        config.resolve(now);
        if let Some(seed) = config.seed {
            self.rng = StdRng::seed_from_u64(seed);
        }
        self.bursts.clear();
        self.config = config;
    }

    pub(crate) fn style(&self) -> RateLimitStyle {
        self.config.rate_limit_style
    }

    fn effective(&self, service: Service, method: &str, path: &str) -> (FaultRule, String) {
        let mut rule = self.config.default.clone();
        let mut key = service.name().to_owned();
        if let Some(svc) = self.config.services.get(service.name()) {
            overlay(&mut rule, &svc.rule());
            let relative = path.strip_prefix(service.api_base()).unwrap_or(path);
            let best = svc
                .endpoints
                .iter()
                .filter(|(pattern, _)| {
                    endpoint_matches(pattern, method, path)
                        || endpoint_matches(pattern, method, relative)
                })
                .max_by_key(|(pattern, _)| pattern.len());
            if let Some((pattern, endpoint_rule)) = best {
                overlay(&mut rule, endpoint_rule);
                key = format!("{}:{pattern}", service.name());
            }
        }
        (rule, key)
    }

    fn decide(
        &mut self,
        service: Service,
        method: &str,
        path: &str,
        now: DateTime<Utc>,
    ) -> Decision {
        let (rule, key) = self.effective(service, method, path);
        let latency = rule.latency.unwrap_or_default();
        let mut delay = latency.sample(&mut self.rng);
        if let Some(outage) = rule.outages.iter().find(|o| o.active(now)) {
            return Decision {
                delay,
                outcome: Outcome::Respond {
                    status: outage.status.unwrap_or(503),
                    retry_after: None,
                    limit: 0,
                },
            };
        }
        if let Some(hang) = rule.hang
            && hang.probability > 0.0
            && self.rng.random::<f64>() < hang.probability
        {
            delay = Duration::from_millis(hang.duration_ms);
        }
        if let Some(burst) = rule.rate_limit_burst {
            let running = self.bursts.get(&key).copied().filter(|end| *end > now);
            let end = match running {
                Some(end) => Some(end),
                None if burst.probability > 0.0 && self.rng.random::<f64>() < burst.probability => {
                    let end = now
                        .checked_add_signed(secs_delta(burst.duration_secs))
                        .unwrap_or(now);
                    self.bursts.insert(key.clone(), end);
                    Some(end)
                }
                None => None,
            };
            if let Some(end) = end {
                let left = (end - now).num_milliseconds().max(0);
                let retry = u64::try_from((left + 999) / 1000).unwrap_or(1).max(1);
                return Decision {
                    delay,
                    outcome: Outcome::Respond {
                        status: 429,
                        retry_after: Some(retry),
                        limit: burst.limit,
                    },
                };
            }
        }
        if let Some(errors) = &rule.errors
            && !errors.is_empty()
        {
            let roll: f64 = self.rng.random();
            let mut acc = 0.0;
            for (status, p) in errors {
                acc += p;
                if roll < acc {
                    let status = status.parse::<u16>().unwrap_or(500);
                    return Decision {
                        delay,
                        outcome: Outcome::Respond {
                            status,
                            retry_after: (status == 429)
                                .then(|| rule.retry_after_secs.unwrap_or(1)),
                            limit: 60,
                        },
                    };
                }
            }
        }
        Decision {
            delay,
            outcome: Outcome::Pass,
        }
    }
}

fn overlay(base: &mut FaultRule, over: &FaultRule) {
    if over.latency.is_some() {
        base.latency = over.latency;
    }
    if over.errors.is_some() {
        base.errors.clone_from(&over.errors);
    }
    if over.retry_after_secs.is_some() {
        base.retry_after_secs = over.retry_after_secs;
    }
    if over.rate_limit_burst.is_some() {
        base.rate_limit_burst = over.rate_limit_burst;
    }
    if over.hang.is_some() {
        base.hang = over.hang;
    }
    base.outages.extend(over.outages.iter().cloned());
}

/// Whether `"[METHOD ]/pattern"` matches a request; `*` matches any run of characters.
fn endpoint_matches(pattern: &str, method: &str, path: &str) -> bool {
    let pattern = pattern.trim();
    let (want_method, path_pattern) = match pattern.split_once(' ') {
        Some((m, p)) => (Some(m.trim()), p.trim()),
        None => (None, pattern),
    };
    if let Some(m) = want_method
        && m != "*"
        && !m.eq_ignore_ascii_case(method)
    {
        return false;
    }
    glob(path_pattern.as_bytes(), path.as_bytes())
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tr)| t == c && glob(rest, tr)),
    }
}

/// The response a service really sends for `status`, as injected by the fault layer:
/// 400 `invalid_request`; 401 `unauthorized` or `invalid_key` (trading, domains); 402
/// `insufficient_balance`; 403 `forbidden`; 404 `not_found`; 409 `conflict`; 429 per
/// [`RateLimitStyle`], always with `Retry-After` and `X-RateLimit-*`; 500 `internal_error`;
/// 502 `rpc_error` on wallet and an HTML proxy page elsewhere; 503 and 504 HTML proxy pages
/// (what the reverse proxy in front of a Hono service answers); anything else
/// `{"error":"http_<status>"}`.
pub(crate) fn injected_response(
    service: Service,
    status: u16,
    style: RateLimitStyle,
    retry_after: Option<u64>,
    limit: u32,
    now: DateTime<Utc>,
) -> Response {
    let html = |title: &str| {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "text/html")],
            format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            ),
        )
            .into_response()
    };
    let error = match status {
        400 => ApiError::new(400, "invalid_request").msg("Invalid request"),
        401 => {
            if service.unknown_key_is_invalid_key() {
                ApiError::new(401, "invalid_key")
            } else {
                ApiError::new(401, "unauthorized").msg("Invalid API key")
            }
        }
        402 => ApiError::new(402, "insufficient_balance").with("balance", 0.0),
        403 => ApiError::new(403, "forbidden").msg("Forbidden"),
        404 => ApiError::new(404, "not_found").msg("Not found"),
        409 => ApiError::new(409, "conflict").msg("Conflict"),
        429 => {
            let retry = retry_after.unwrap_or(1);
            return rate_limit_error(style, limit.max(1), retry, now, true).into_response();
        }
        500 => ApiError::new(500, "internal_error").msg("Internal server error"),
        502 if service == Service::Wallet => {
            ApiError::new(502, "rpc_error").msg("upstream RPC request failed")
        }
        502 => return html("502 Bad Gateway"),
        503 => return html("503 Service Temporarily Unavailable"),
        504 => return html("504 Gateway Time-out"),
        other => ApiError::new(other, &format!("http_{other}")),
    };
    error.into_response()
}

/// A 429 in the given style. `headers` forces `Retry-After` and `X-RateLimit-*` even in the
/// code style (the fault layer always sends them; the real limiters only in website style).
pub(crate) fn rate_limit_error(
    style: RateLimitStyle,
    limit: u32,
    retry_after: u64,
    now: DateTime<Utc>,
    headers: bool,
) -> ApiError {
    let reset = now + TimeDelta::seconds(i64::try_from(retry_after).unwrap_or(60));
    let error = match style {
        RateLimitStyle::Code => ApiError::new(429, "rate_limited")
            .msg(format!("Too many requests. Limit: {limit} per 60s")),
        RateLimitStyle::Website => ApiError::new(429, "rate_limit_exceeded")
            .with("limit", limit)
            .with("window", "60s")
            .with("retry_after_seconds", retry_after)
            .with("reset_at", crate::http::iso(reset))
            .with("tier", "free")
            .with("upgrade_url", json!(null)),
    };
    if headers || style == RateLimitStyle::Website {
        error
            .header("retry-after", retry_after)
            .header("x-ratelimit-limit", limit)
            .header("x-ratelimit-remaining", 0)
            .header("x-ratelimit-reset", reset.timestamp())
    } else {
        error
    }
}

/// The state the fault middleware needs.
#[derive(Debug, Clone)]
pub(crate) struct FaultCtx {
    pub(crate) state: AppState,
    pub(crate) service: Service,
}

/// Middleware: applies the fault config to a service's requests.
pub(crate) async fn inject(State(ctx): State<FaultCtx>, req: Request, next: Next) -> Response {
    let now = ctx.state.clock().now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (decision, style) = ctx.state.with_faults(|engine| {
        (
            engine.decide(ctx.service, &method, &path, now),
            engine.style(),
        )
    });
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.outcome {
        Outcome::Pass => next.run(req).await,
        Outcome::Respond {
            status,
            retry_after,
            limit,
        } => {
            tracing::debug!(service = %ctx.service, %method, %path, status, "injected fault");
            injected_response(ctx.service, status, style, retry_after, limit, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_and_methods() {
        assert!(endpoint_matches("POST /games/*", "POST", "/games/dice"));
        assert!(endpoint_matches("/games/*", "GET", "/games/dice"));
        assert!(!endpoint_matches("GET /games/*", "POST", "/games/dice"));
        assert!(endpoint_matches("* /a/*/c", "PUT", "/a/b/c"));
        assert!(!endpoint_matches("/a", "GET", "/ab"));
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let text = r#"
            seed = 3
            [default]
            latency = { median_ms = 0 }
            [services.trading]
            errors = { "500" = 0.5 }
            [[services.trading.outages]]
            start_in_secs = 10
            duration_secs = 5
            [services.casino.endpoints."POST /games/*"]
            errors = { "429" = 1.0 }
        "#;
        let config = FaultConfig::from_toml_str(text);
        assert!(config.is_ok(), "{config:?}");
        assert!(FaultConfig::from_toml_str("[services.bank]\n").is_err());
        assert!(FaultConfig::from_toml_str("[default]\nerrors = { \"200\" = 0.1 }\n").is_err());
        assert!(
            FaultConfig::from_toml_str("[default]\nerrors = { \"500\" = 0.7, \"502\" = 0.7 }\n")
                .is_err()
        );
        assert!(FaultConfig::from_toml_str("[default]\nlatncy = {}\n").is_err());
    }

    #[test]
    fn endpoint_rule_beats_service_rule() {
        let now = Utc::now();
        let config = FaultConfig::none()
            .with_service(
                Service::Casino,
                FaultRule {
                    errors: Some(BTreeMap::from([("500".to_owned(), 1.0)])),
                    ..FaultRule::default()
                },
            )
            .with_endpoint(
                Service::Casino,
                "GET /games",
                FaultRule {
                    errors: Some(BTreeMap::new()),
                    ..FaultRule::default()
                },
            );
        let mut engine = FaultEngine::new(config, 1, now);
        let d = engine.decide(Service::Casino, "GET", "/api/v1/games", now);
        assert!(matches!(d.outcome, Outcome::Pass));
        let d = engine.decide(Service::Casino, "POST", "/api/v1/games/dice", now);
        assert!(matches!(d.outcome, Outcome::Respond { status: 500, .. }));
        let d = engine.decide(Service::Faucet, "POST", "/faucet/claim", now);
        assert!(matches!(d.outcome, Outcome::Pass));
    }

    #[test]
    fn latency_median_is_about_forty_ms() {
        let mut rng = StdRng::seed_from_u64(9);
        let latency = Latency::default();
        let mut samples: Vec<Duration> = (0..2001).map(|_| latency.sample(&mut rng)).collect();
        samples.sort();
        let median = samples[1000].as_secs_f64() * 1000.0;
        assert!((30.0..55.0).contains(&median), "median {median}");
        let p99 = samples[1980].as_secs_f64() * 1000.0;
        assert!(p99 > 150.0, "p99 {p99}");
    }
}
