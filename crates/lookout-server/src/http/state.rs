//! The state every handler shares. Handlers import this module; only the router
//! ([`super::router`]) imports the handlers.

use crate::config::Config;
use crate::ingest::keys::KeyCache;
use crate::ingest::ratelimit::RateLimiter;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::inbox::Command;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// State shared by every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<Store>,
    /// The inbox writer's queue; `None` once shutting down.
    pub inbox: Option<mpsc::Sender<Command>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Memory budget for request bodies, in KiB permits.
    pub memory: Arc<Semaphore>,
    /// Client key cache.
    pub keys: Arc<KeyCache>,
    /// Event quotas.
    pub limiter: Arc<RateLimiter>,
    /// The read side of the store.
    pub reader: crate::store::read::Reader,
    /// The server's clock (manual in tests).
    pub clock: crate::clock::Clock,
}
