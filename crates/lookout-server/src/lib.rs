//! The Lookout server: a Sentry-protocol compatible monitoring server for autonomous trading
//! agents, in one process on an embedded SQLite file.
//!
//! ```text
//! SDK --HTTP--> ingest --durable append (group commit)--> inbox --digest--> store
//!                  |
//!               200 {id} only after the append is committed
//! ```
//!
//! * [`config`]: defaults → TOML file → `LOOKOUT_*` environment → flags.
//! * [`ingest`]: the `/api/{project_id}/envelope/` and `/store/` endpoints.
//! * [`store`]: the storage boundary (SQLite today); the inbox writer thread.
//! * [`http`]: the router, shared state, one error type for every refusal.
//! * [`metrics`]: Prometheus metrics at `/metrics`.
//!
//! The binary (`lookout`) is a thin shell over [`serve`] and the [`store::Store`] methods.

pub mod config;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod store;

use config::Config;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use store::Store;
use store::inbox::InboxWriter;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The socket failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
}

/// Build the shared state and start the inbox writer.
fn start_state(config: Config, store: Arc<Store>) -> Result<(http::AppState, InboxWriter), ServerError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let writer = InboxWriter::start(
        store.path().to_owned(),
        config.ingest.synchronous,
        config.ingest.queue_capacity,
        config.ingest.max_batch,
        Arc::clone(&metrics),
    )?;
    let permits = (config.ingest.max_inflight_bytes / 1024).min(Semaphore::MAX_PERMITS);
    let state = http::AppState {
        inbox: writer.sender(),
        config: Arc::new(config),
        store,
        metrics,
        memory: Arc::new(Semaphore::new(permits)),
        keys: Arc::default(),
        limiter: Arc::default(),
    };
    Ok((state, writer))
}

/// Serve on `listener` until `shutdown` completes, then drain: in-flight requests finish,
/// and every envelope already queued is committed before this returns.
pub async fn serve(
    config: Config,
    store: Arc<Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (state, writer) = start_state(config, store)?;
    let app = http::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // Every handler (and its inbox sender) is gone once serve returns.
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .map_err(|e| std::io::Error::other(format!("inbox writer shutdown failed: {e}")))?;
    tracing::info!("server stopped");
    Ok(())
}

/// A server running in the background (tests, benchmarks, `lookout demo`).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The store (shared with the server).
    pub store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Start a server with `config` on `config.listen` (use port 0 for an ephemeral port).
    /// Creates the default project on an empty data directory.
    pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
        let store = Arc::new(Store::open(&config.data_dir)?);
        store.ensure_default_project()?;
        let listener = TcpListener::bind(config.listen_addr()).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(config, Arc::clone(&store), listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            store,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The DSN of the first project.
    pub fn dsn(&self) -> Result<String, ServerError> {
        let projects = self.store.list_projects()?;
        let first = projects
            .first()
            .ok_or_else(|| store::StoreError::NotFound("project".into()))?;
        Ok(first.dsn(&self.base_url()))
    }

    /// Stop gracefully and wait until everything queued is committed.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Io(std::io::Error::other(e.to_string()))),
        }
    }
}
