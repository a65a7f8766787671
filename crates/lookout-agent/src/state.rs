//! The trading state attached to every event that is sent.
//!
//! The agent registers a provider ([`Options::state_provider`](crate::Options::state_provider)
//! or [`Guard::set_state_provider`](crate::Guard::set_state_provider)); `before_send` calls it
//! once per event that survives the noise filter and attaches the snapshot as the `trading`
//! context. Nothing runs per decision cycle, and no lock is held while the provider runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use sentry::protocol::{Context, Event};
use serde::Serialize;
use serde_json::Value;

/// The name of the context the snapshot is attached as.
pub const TRADING_CONTEXT: &str = "trading";

/// What the agent is doing right now. Every field is optional; add any other field with
/// [`TradingSnapshot::field`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TradingSnapshot {
    /// The asset being traded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The number of open positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_positions: Option<u64>,
    /// Portfolio value in USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portfolio_value_usd: Option<f64>,
    /// The last order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_order_id: Option<String>,
    /// The z-score of the last signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_signal_z: Option<f64>,
    /// Any other fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl TradingSnapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the asset.
    #[must_use]
    pub fn asset(mut self, asset: impl Into<String>) -> Self {
        self.asset = Some(asset.into());
        self
    }

    /// Set the number of open positions.
    #[must_use]
    pub fn open_positions(mut self, n: u64) -> Self {
        self.open_positions = Some(n);
        self
    }

    /// Set the portfolio value in USD.
    #[must_use]
    pub fn portfolio_value_usd(mut self, usd: f64) -> Self {
        self.portfolio_value_usd = Some(usd);
        self
    }

    /// Set the last order id.
    #[must_use]
    pub fn last_order_id(mut self, id: impl Into<String>) -> Self {
        self.last_order_id = Some(id.into());
        self
    }

    /// Set the last signal's z-score.
    #[must_use]
    pub fn last_signal_z(mut self, z: f64) -> Self {
        self.last_signal_z = Some(z);
        self
    }

    /// Add any other field.
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// The snapshot as a Sentry context.
    pub fn to_context(&self) -> Context {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => Context::Other(map.into_iter().collect()),
            _ => Context::Other(BTreeMap::new()),
        }
    }
}

/// A source of [`TradingSnapshot`]s; implemented for every `Fn() -> TradingSnapshot`.
pub trait StateProvider: Send + Sync + 'static {
    /// The agent's state now.
    fn snapshot(&self) -> TradingSnapshot;
}

impl<F> StateProvider for F
where
    F: Fn() -> TradingSnapshot + Send + Sync + 'static,
{
    fn snapshot(&self) -> TradingSnapshot {
        self()
    }
}

/// A replaceable slot holding the provider, shared by the client's `before_send`.
#[derive(Clone, Default)]
pub(crate) struct StateSlot(Arc<RwLock<Option<Arc<dyn StateProvider>>>>);

impl fmt::Debug for StateSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.0.read().map(|p| p.is_some()).unwrap_or(false);
        f.debug_struct("StateSlot")
            .field("provider_set", &set)
            .finish()
    }
}

impl StateSlot {
    pub(crate) fn set(&self, provider: Option<Arc<dyn StateProvider>>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = provider;
        }
    }

    /// Attach a snapshot to the event (the lock is released before the provider runs).
    pub(crate) fn attach(&self, event: &mut Event<'static>) {
        let provider = self.0.read().ok().and_then(|slot| slot.clone());
        if let Some(provider) = provider {
            event
                .contexts
                .insert(TRADING_CONTEXT.to_owned(), provider.snapshot().to_context());
        }
    }
}
