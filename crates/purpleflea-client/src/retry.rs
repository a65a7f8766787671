//! Retries: which calls may be retried, how long to wait, and the rate-limit state the
//! services report.
//!
//! # Policy
//!
//! A call is retried only when a second attempt cannot move money twice:
//!
//! * **429** (`rate_limited`, `rate_limit_exceeded`, website `rate_limit_exceeded`): the
//!   services' limiters run before the handler (`purpleflea-api.md` §1), so a 429 means the
//!   request was not processed. Every call is retried, writes included (turn that off with
//!   [`RetryPolicy::retry_rate_limited_writes`]), after the wait the service asked for, as
//!   long as that wait is at most [`RetryPolicy::max_rate_limit_wait`]. The faucet's
//!   `ip_rate_limited` (one claim per IP per 24 h) is never retried.
//! * **Connect errors**: the request never left, so every call is retried.
//! * **5xx, timeouts and other transport errors**: only for *idempotent* calls: every GET,
//!   plus the reads and setters that are safe to repeat (`POST /fairness/verify`,
//!   `PUT /kelly/config`, `POST /auth/deposit-address`, `POST /trade/risk-settings`).
//!   A timed-out or 5xx order open/close, bet, batch, withdrawal, send, swap, escrow
//!   create/complete/release/dispute, faucet claim, registration, domain registration,
//!   auction listing, bid, limit/stop order or DNS change is **never** retried: the service
//!   may have executed it, and a retry could open a second position or pay twice. The error
//!   goes back to the caller, who can check state (positions, balances) before acting.
//!
//! The wait before a retry is, in order: `Retry-After` (seconds or HTTP date);
//! `retry_after_seconds` in the body (website variant); `X-RateLimit-Reset` when
//! `X-RateLimit-Remaining` is 0 (epoch seconds, or seconds from now when small); `reset_at`
//! / `retry_after` timestamps in the body; otherwise exponential backoff with jitter
//! (`base × 2^(attempt−1)`, capped at [`RetryPolicy::max_delay`], then uniformly drawn from
//! its upper half). Attempts are bounded by [`RetryPolicy::max_attempts`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A boxed future returned by a [`Sleeper`].
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// How the client waits between attempts. The default is `tokio::time::sleep`; a simulation
/// can substitute one that advances its own clock instead (see
/// [`crate::ClientBuilder::sleeper`]).
#[derive(Clone)]
pub struct Sleeper(Arc<dyn Fn(Duration) -> SleepFuture + Send + Sync>);

impl Sleeper {
    /// A sleeper from a function returning a future.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |d| Box::pin(f(d))))
    }

    /// `tokio::time::sleep`.
    #[must_use]
    pub fn tokio() -> Self {
        Self::new(tokio::time::sleep)
    }

    pub(crate) fn sleep(&self, d: Duration) -> SleepFuture {
        (self.0)(d)
    }
}

impl fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sleeper")
    }
}

impl Default for Sleeper {
    fn default() -> Self {
        Self::tokio()
    }
}

/// Bounds on retries; see the module docs for which calls are retried.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_rate_limit_wait: Duration,
    retry_rate_limited_writes: bool,
}

impl Default for RetryPolicy {
    /// 3 attempts, backoff from 200 ms up to 5 s, honour a rate-limit wait of up to 60 s,
    /// retry rate-limited writes.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(60),
            retry_rate_limited_writes: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all: one attempt per call.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Total attempts per call, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The first backoff delay.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The largest backoff delay.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The longest wait a 429 may ask for and still be retried; longer waits return the
    /// [`crate::ErrorKind::RateLimited`] error at once (with [`crate::Error::retry_after`]).
    pub fn max_rate_limit_wait(mut self, wait: Duration) -> Self {
        self.max_rate_limit_wait = wait;
        self
    }

    /// Whether a 429 answer to a non-idempotent call (order, bet, send…) is retried. On by
    /// default: the services reject over-limit requests before processing them.
    pub fn retry_rate_limited_writes(mut self, on: bool) -> Self {
        self.retry_rate_limited_writes = on;
        self
    }

    /// The configured attempt bound.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    pub(crate) fn rate_limit_wait_cap(&self) -> Duration {
        self.max_rate_limit_wait
    }

    pub(crate) fn retries_rate_limited_writes(&self) -> bool {
        self.retry_rate_limited_writes
    }

    /// Exponential backoff with jitter before attempt `attempt + 1`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let cap = exp.min(self.max_delay);
        let half = cap / 2;
        let jitter = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }
}

/// The rate-limit state a service last reported (`X-RateLimit-*`, `Retry-After`, or a 429
/// body). The services' code sends no headers; the website variant and proxies do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// `X-RateLimit-Limit` or the body's `limit`.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining` (0 on a 429 without the header).
    pub remaining: Option<u64>,
    /// When the window resets (`X-RateLimit-Reset`, body `reset_at`/`retry_after`).
    pub reset_at: Option<DateTime<Utc>>,
    /// The wait the service asked for (`Retry-After`, `retry_after_seconds`).
    pub retry_after: Option<Duration>,
    /// Whether this state came from a 429 answer.
    pub limited: bool,
    /// When the client saw it.
    pub observed_at: DateTime<Utc>,
}

impl RateLimitInfo {
    /// Reads headers and (for a 429) the body; `None` when neither says anything.
    pub(crate) fn parse(
        status: u16,
        headers: &HeaderMap,
        body: Option<&Value>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let num = |name: &str| header(name).and_then(|v| v.parse::<f64>().ok());
        let limited = status == 429;
        let body = body.filter(|_| limited);
        let body_num = |k: &str| body.and_then(|b| b.get(k)).and_then(Value::as_f64);
        let body_time = |k: &str| {
            body.and_then(|b| b.get(k))
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let retry_after = header("retry-after")
            .and_then(|v| parse_retry_after(v, now))
            .or_else(|| body_num("retry_after_seconds").and_then(secs));
        let limit = num("x-ratelimit-limit")
            .or_else(|| body_num("limit"))
            .and_then(to_u64);
        let remaining = num("x-ratelimit-remaining")
            .and_then(to_u64)
            .or(limited.then_some(0));
        let reset_at = num("x-ratelimit-reset")
            .and_then(|r| reset_time(r, now))
            .or_else(|| body_time("reset_at"))
            .or_else(|| body_time("retry_after"));
        let said_anything = limited
            || retry_after.is_some()
            || limit.is_some()
            || header("x-ratelimit-remaining").is_some()
            || reset_at.is_some();
        said_anything.then_some(Self {
            limit,
            remaining,
            reset_at,
            retry_after,
            limited,
            observed_at: now,
        })
    }

    /// How long to wait before trying again, if the service said: `retry_after`, else the
    /// time to `reset_at` (when nothing remains). `None` when it said nothing usable.
    #[must_use]
    pub fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        if let Some(d) = self.retry_after {
            return Some(d);
        }
        if self.remaining == Some(0) {
            let reset = self.reset_at?;
            let d = (reset - now).to_std().ok()?;
            return (!d.is_zero()).then_some(d);
        }
        None
    }
}

fn secs(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(1e9)))
}

fn to_u64(x: f64) -> Option<u64> {
    (x.is_finite() && x >= 0.0).then_some(x as u64)
}

/// `Retry-After`: delta seconds or an HTTP date.
fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    if let Ok(s) = v.parse::<f64>() {
        return secs(s);
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// `X-RateLimit-Reset`: epoch seconds when large, seconds from now when small.
fn reset_time(r: f64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !r.is_finite() || r < 0.0 {
        return None;
    }
    if r > 1e9 {
        DateTime::from_timestamp(r as i64, 0)
    } else {
        now.checked_add_signed(chrono::TimeDelta::milliseconds((r * 1000.0) as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn headers_win_over_body_and_backoff_is_bounded() {
        let now = Utc::now();
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("60"));
        let body = json!({"error": "rate_limit_exceeded", "retry_after_seconds": 3});
        let info = RateLimitInfo::parse(429, &headers, Some(&body), now);
        let info = info.as_ref();
        assert_eq!(info.and_then(|i| i.wait(now)), Some(Duration::from_secs(7)));
        assert_eq!(info.and_then(|i| i.limit), Some(60));

        let info = RateLimitInfo::parse(429, &HeaderMap::new(), Some(&body), now);
        assert_eq!(info.and_then(|i| i.wait(now)), Some(Duration::from_secs(3)));

        let code_style =
            json!({"error": "rate_limited", "message": "Too many requests. Limit: 10 per 60s"});
        let info = RateLimitInfo::parse(429, &HeaderMap::new(), Some(&code_style), now);
        assert!(info.as_ref().is_some_and(|i| i.limited));
        assert_eq!(info.and_then(|i| i.wait(now)), None);

        assert!(RateLimitInfo::parse(200, &HeaderMap::new(), None, now).is_none());

        let policy = RetryPolicy::default();
        for attempt in 1..10 {
            let d = policy.backoff(attempt);
            assert!(d <= Duration::from_secs(5), "{d:?}");
            assert!(d >= Duration::from_millis(100), "{d:?}");
        }
    }
}
