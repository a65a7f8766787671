//! Decision breadcrumbs: the trail of what the agent saw and decided before an error.
//!
//! ```
//! use std::time::Duration;
//! use lookout_agent::breadcrumbs::{ApiResponse, PositionChange, RiskCheck, Signal};
//! use lookout_agent::Side;
//!
//! Signal::new("BTC", 2.31).iv(0.62).rv(0.48).action("buy").record();
//! RiskCheck::new("max_position_usd", true, 1_200.0, 5_000.0).record();
//! ApiResponse::new("POST /v1/trade/open", 200, Duration::from_millis(84))
//!     .order_id("ord_42")
//!     .record();
//! PositionChange::new("BTC", Side::Buy, 0.01, 64_000.0)
//!     .rationale("z-score above 2 with IV > RV")
//!     .record();
//! ```
//!
//! Each helper adds one breadcrumb to the current hub (nothing is kept when no client is
//! bound). Categories: `trade.signal`, `trade.risk`, `trade.api` (type `http`),
//! `trade.position`.
//!
//! A decision is an ordinary breadcrumb of the hub's current scope, so it follows `sentry`'s
//! scope rules: one recorded under `sentry::with_scope` is on the events captured in that
//! scope and gone when the scope ends, `Scope::clear_breadcrumbs` clears it, the client's
//! `before_breadcrumb` sees it, and the scope keeps the newest `max_breadcrumbs` (100 by
//! default).

use std::collections::BTreeMap;
use std::time::Duration;

use sentry::Hub;
use sentry::protocol::{Breadcrumb, Level, Value};

use crate::order::Side;

/// Record a decision on the current hub, as a breadcrumb of its current scope.
fn record(breadcrumb: Breadcrumb) {
    Hub::with_active(|hub| hub.add_breadcrumb(breadcrumb));
}

fn crumb(
    category: &'static str,
    ty: &'static str,
    level: Level,
    message: String,
    data: Data,
) -> Breadcrumb {
    Breadcrumb {
        ty: ty.to_owned(),
        category: Some(category.to_owned()),
        level,
        message: Some(message),
        data: data.0,
        ..Default::default()
    }
}

struct Data(BTreeMap<String, Value>);

impl Data {
    fn new() -> Self {
        Self(BTreeMap::new())
    }

    fn put(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    fn put_opt(self, key: &str, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(value) => self.put(key, value),
            None => self,
        }
    }
}

/// A trading signal: asset, z-score, implied and realised volatility, the action taken.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "call .record() to add the breadcrumb"]
pub struct Signal {
    asset: String,
    z: f64,
    iv: Option<f64>,
    rv: Option<f64>,
    action: Option<String>,
}

impl Signal {
    /// A signal on this asset with this z-score.
    pub fn new(asset: impl Into<String>, z: f64) -> Self {
        Self {
            asset: asset.into(),
            z,
            iv: None,
            rv: None,
            action: None,
        }
    }

    /// Implied volatility.
    pub fn iv(mut self, iv: f64) -> Self {
        self.iv = Some(iv);
        self
    }

    /// Realised volatility.
    pub fn rv(mut self, rv: f64) -> Self {
        self.rv = Some(rv);
        self
    }

    /// The action taken (`buy`, `sell`, `hold`, …).
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Add the breadcrumb to the current hub (category `trade.signal`, level info).
    pub fn record(self) {
        record(self.into_breadcrumb());
    }

    /// The breadcrumb (category `trade.signal`, level info).
    pub fn into_breadcrumb(self) -> Breadcrumb {
        // Numbers stay in `data`: formatting floats into the message would cost the loop.
        let action = self.action.as_deref().unwrap_or("none");
        let message = format!("{} signal -> {action}", self.asset);
        let data = Data::new()
            .put("asset", self.asset)
            .put("z_score", self.z)
            .put_opt("iv", self.iv)
            .put_opt("rv", self.rv)
            .put_opt("action", self.action);
        crumb("trade.signal", "default", Level::Info, message, data)
    }
}

/// A risk check: its name, whether it passed, the value checked and the limit.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "call .record() to add the breadcrumb"]
pub struct RiskCheck {
    name: String,
    passed: bool,
    value: f64,
    limit: f64,
}

impl RiskCheck {
    /// A risk check.
    pub fn new(name: impl Into<String>, passed: bool, value: f64, limit: f64) -> Self {
        Self {
            name: name.into(),
            passed,
            value,
            limit,
        }
    }

    /// Add the breadcrumb to the current hub (category `trade.risk`; level info, warning when it failed).
    pub fn record(self) {
        record(self.into_breadcrumb());
    }

    /// The breadcrumb (category `trade.risk`; level info, warning when it failed).
    pub fn into_breadcrumb(self) -> Breadcrumb {
        let (level, verdict) = if self.passed {
            (Level::Info, "passed")
        } else {
            (Level::Warning, "FAILED")
        };
        let message = format!("risk check {} {verdict}", self.name);
        let data = Data::new()
            .put("check", self.name)
            .put("passed", self.passed)
            .put("value", self.value)
            .put("limit", self.limit);
        crumb("trade.risk", "default", level, message, data)
    }
}

/// A service's answer: endpoint, HTTP status, latency and the order id if any.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "call .record() to add the breadcrumb"]
pub struct ApiResponse {
    endpoint: String,
    status: u16,
    latency: Duration,
    order_id: Option<String>,
}

impl ApiResponse {
    /// An answer from this endpoint (e.g. `POST /v1/trade/open`).
    pub fn new(endpoint: impl Into<String>, status: u16, latency: Duration) -> Self {
        Self {
            endpoint: endpoint.into(),
            status,
            latency,
            order_id: None,
        }
    }

    /// The order id in the answer.
    pub fn order_id(mut self, id: impl Into<String>) -> Self {
        self.order_id = Some(id.into());
        self
    }

    /// Add the breadcrumb to the current hub (category `trade.api`, type `http`; level info, error when the
    /// status is 400 or more).
    pub fn record(self) {
        record(self.into_breadcrumb());
    }

    /// The breadcrumb (category `trade.api`, type `http`; level info, error when the
    /// status is 400 or more).
    pub fn into_breadcrumb(self) -> Breadcrumb {
        let level = if self.status >= 400 {
            Level::Error
        } else {
            Level::Info
        };
        let latency_ms = self.latency.as_secs_f64() * 1000.0;
        let message = format!("{} -> {}", self.endpoint, self.status);
        let data = Data::new()
            .put("endpoint", self.endpoint)
            .put("status_code", self.status)
            .put("latency_ms", latency_ms)
            .put_opt("order_id", self.order_id);
        crumb("trade.api", "http", level, message, data)
    }
}

/// A change of position: asset, side, size, price and why.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "call .record() to add the breadcrumb"]
pub struct PositionChange {
    asset: String,
    side: Side,
    size: f64,
    price: f64,
    rationale: Option<String>,
}

impl PositionChange {
    /// A position change.
    pub fn new(asset: impl Into<String>, side: Side, size: f64, price: f64) -> Self {
        Self {
            asset: asset.into(),
            side,
            size,
            price,
            rationale: None,
        }
    }

    /// Why the agent did it.
    pub fn rationale(mut self, rationale: impl Into<String>) -> Self {
        self.rationale = Some(rationale.into());
        self
    }

    /// Add the breadcrumb to the current hub (category `trade.position`, level info).
    pub fn record(self) {
        record(self.into_breadcrumb());
    }

    /// The breadcrumb (category `trade.position`, level info).
    pub fn into_breadcrumb(self) -> Breadcrumb {
        let message = format!("{} {}", self.side, self.asset);
        let data = Data::new()
            .put("asset", self.asset)
            .put("side", self.side.as_str())
            .put("size", self.size)
            .put("price", self.price)
            .put_opt("rationale", self.rationale);
        crumb("trade.position", "default", Level::Info, message, data)
    }
}
