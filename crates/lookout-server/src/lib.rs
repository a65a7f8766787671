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

pub mod api;
pub mod config;
pub mod digest;
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

/// The long-lived parts of a running server.
struct Services {
    writer: InboxWriter,
    digest: digest::Digest,
    retention: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
}

/// Run retention passes every `interval_secs` until told to stop.
fn start_retention(
    config: &Config,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let dir = config.data_dir.clone();
    let retention = config.retention.clone();
    let task = tokio::spawn(async move {
        let every = std::time::Duration::from_secs(retention.interval_secs.max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            let (dir, retention) = (dir.clone(), retention.clone());
            let now = chrono::Utc::now().timestamp_millis();
            match tokio::task::spawn_blocking(move || {
                store::retention::sweep(&dir, &retention, now)
            })
            .await
            {
                Ok(Ok(swept)) if swept.expired + swept.capped > 0 => {
                    tracing::info!(
                        expired = swept.expired,
                        capped = swept.capped,
                        "retention pass"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed"),
                Err(e) => tracing::warn!(error = %e, "retention task failed"),
            }
        }
    });
    (stop, task)
}

/// Build the shared state and start the inbox writer and the digest.
fn start_state(
    config: Config,
    store: Arc<Store>,
) -> Result<(http::AppState, Services), ServerError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let appended = Arc::new(tokio::sync::Notify::new());
    let writer = InboxWriter::start(
        &config.data_dir,
        config.ingest.synchronous,
        config.ingest.queue_capacity,
        config.ingest.max_batch,
        Arc::clone(&metrics),
        Arc::clone(&appended),
    )?;
    let inbox = writer
        .sender()
        .ok_or_else(|| store::StoreError::WriterGone)?;
    let digest =
        digest::Digest::start(&config, Arc::clone(&metrics), appended, inbox.clone(), None)?;
    let retention = start_retention(&config);
    Ok((
        state_with(config, store, metrics, inbox),
        Services {
            writer,
            digest,
            retention,
        },
    ))
}

fn state_with(
    config: Config,
    store: Arc<Store>,
    metrics: Arc<metrics::Metrics>,
    inbox: tokio::sync::mpsc::Sender<store::inbox::Command>,
) -> http::AppState {
    let permits = (config.ingest.max_inflight_bytes / 1024).min(Semaphore::MAX_PERMITS);
    http::AppState {
        inbox: Some(inbox),
        reader: store::read::Reader::new(&config.data_dir),
        config: Arc::new(config),
        store,
        metrics,
        memory: Arc::new(Semaphore::new(permits)),
        keys: Arc::default(),
        limiter: Arc::default(),
    }
}

/// Serve on `listener` until `shutdown` completes, then drain: in-flight requests finish,
/// and every envelope already queued is committed before this returns.
pub async fn serve(
    config: Config,
    store: Arc<Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (state, services) = start_state(config, store)?;
    let app = http::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // Every handler is gone once serve returns; the digest holds the last inbox sender.
    let _ = services.retention.0.send(true);
    let _ = services.retention.1.await;
    services.digest.stop().await;
    let writer = services.writer;
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
