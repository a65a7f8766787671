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
    /// Whether this node runs the singleton jobs (`/health` says it).
    pub role: crate::cluster::Role,
}

impl AppState {
    /// State over `store` with fresh metrics and no inbox writer: the router answers every
    /// read (API, UI, `/metrics`), while ingest answers 503 and `/health` says
    /// `unavailable` until [`AppState::with_inbox`] connects a writer. The server adds the
    /// writer it started; in-process tests (`app(state).oneshot(request)`) need no threads.
    pub fn new(config: Config, store: Arc<Store>, clock: crate::clock::Clock) -> AppState {
        let permits = (config.ingest.max_inflight_bytes / 1024).min(Semaphore::MAX_PERMITS);
        AppState {
            inbox: None,
            reader: store.reader(),
            config: Arc::new(config),
            store,
            metrics: Arc::new(Metrics::new()),
            memory: Arc::new(Semaphore::new(permits)),
            keys: Arc::default(),
            limiter: Arc::default(),
            clock,
            role: crate::cluster::Role::single(),
        }
    }

    /// This node's role among the nodes sharing the database.
    #[must_use]
    pub fn with_role(mut self, role: crate::cluster::Role) -> AppState {
        self.role = role;
        self
    }

    /// Send accepted envelopes to `inbox` (the inbox writer's queue).
    #[must_use]
    pub fn with_inbox(mut self, inbox: mpsc::Sender<Command>) -> AppState {
        self.inbox = Some(inbox);
        self
    }

    /// Count into `metrics` (shared with the inbox writer and the digest).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> AppState {
        self.metrics = metrics;
        self
    }
}
