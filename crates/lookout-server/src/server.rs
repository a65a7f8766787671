//! The server's lifecycle: [`Server::builder`] opens the store, binds the socket, starts the
//! long-lived parts (inbox writer, digest, notifier, retention, ticker) and serves HTTP;
//! [`RunningServer::stop`] (or [`RunningServer::shutdown_on`] a signal) drains them in order,
//! so every envelope answered 200 is committed before it returns.
//!
//! ```no_run
//! # async fn run() -> Result<(), lookout_server::ServerError> {
//! use lookout_server::Server;
//! use lookout_server::config::Config;
//!
//! let server = Server::builder(Config::default()).start().await?;
//! println!("DSN: {}", server.dsn()?);
//! server.shutdown_on(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

use crate::clock::{Clock, Ticks};
use crate::config::Config;
use crate::store::Store;
use crate::store::inbox::InboxWriter;
use crate::{alerts, clock, cluster, digest, http, metrics, store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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
    digest: Option<digest::Digest>,
    retention: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    ticker: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
    alert_stage: alerts::AlertRunner,
    notifier: alerts::notify::Notifier,
    /// Telegram commands (leader only).
    telegram: alerts::telegram_bot::Poller,
    /// The task holding this node's leader lease (shared database only).
    leadership: Option<cluster::Leadership>,
}

/// How often the server runs its [`clock::TickJob`]s on the system clock.
const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The periodic jobs of a server on `data_dir` (missed check-ins, absent-traffic alerts).
fn tick_jobs(store: &Store, engine: &Engine) -> Result<Ticks, ServerError> {
    let mut ticks = Ticks::default();
    // Monitors first: the alert engine reads the states they set.
    ticks.push(Arc::new(MonitorTick {
        monitors: store.monitors(),
    }));
    ticks.push(Arc::clone(&engine.alerts) as Arc<dyn clock::TickJob>);
    Ok(ticks)
}

/// Missed and timed-out check-ins, on every tick.
#[derive(Debug)]
struct MonitorTick {
    monitors: store::monitors::Monitors,
}

impl clock::TickJob for MonitorTick {
    fn name(&self) -> &'static str {
        "monitors"
    }

    fn tick(&self, now_ms: i64) -> Result<(), store::StoreError> {
        self.monitors.tick(now_ms)
    }
}

/// The alert engine and the notifier's wake-up, shared by the digest and the ticks.
#[derive(Debug, Clone)]
struct Engine {
    alerts: Arc<alerts::AlertEngine>,
    wake: Arc<tokio::sync::Notify>,
}

fn engine(config: &Config, store: &Store, clock: &Clock) -> Engine {
    let wake = Arc::new(tokio::sync::Notify::new());
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned();
    Engine {
        alerts: Arc::new(alerts::AlertEngine::new(
            store.alert_stage(),
            public_url,
            Arc::clone(&wake),
            clock.clone(),
        )),
        wake,
    }
}

/// Run `ticks` every [`TICK_INTERVAL`] on the system clock until told to stop.
fn start_ticker(
    ticks: Ticks,
    clock: Clock,
    role: cluster::Role,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => if role.is_leader() {
                    ticks.run(clock.now_ms()).await;
                },
                _ = stopped.changed() => return,
            }
        }
    });
    (stop, task)
}

/// Run retention passes every `interval_secs` until told to stop.
fn start_retention(
    config: &Config,
    store: &Store,
    role: cluster::Role,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let store = store.clone();
    let retention = config.retention.clone();
    let task = tokio::spawn(async move {
        let every = std::time::Duration::from_secs(retention.interval_secs.max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            if !role.is_leader() {
                continue;
            }
            let (store, retention) = (store.clone(), retention.clone());
            let now = chrono::Utc::now().timestamp_millis();
            match tokio::task::spawn_blocking(move || store.sweep(&retention, now)).await {
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
    clock: Clock,
    ticks: Ticks,
    engine: Engine,
    role: cluster::Role,
) -> Result<(http::state::AppState, Services), ServerError> {
    engine.alerts.ensure_presets()?;
    let users = store.users();
    match &config.admin_password {
        Some(password) if users.ensure_admin("admin", password, clock.now_ms())? => {
            tracing::info!("created the web UI account \"admin\" from admin_password");
        }
        Some(_) => {}
        None if !users.any()? => tracing::warn!(
            "no web UI account yet: set LOOKOUT_ADMIN_PASSWORD or run `lookout users set-password`"
        ),
        None => {}
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let appended = Arc::new(tokio::sync::Notify::new());
    let writer = InboxWriter::start_for(
        &store,
        config.ingest.synchronous,
        config.ingest.queue_capacity,
        config.ingest.max_batch,
        Arc::clone(&metrics),
        Arc::clone(&appended),
    )?;
    let inbox = writer
        .sender()
        .ok_or_else(|| store::StoreError::WriterGone)?;
    // The digest wakes the alert stage after each batch it commits.
    let digested = Arc::new(tokio::sync::Notify::new());
    let alert_stage = engine.alerts.start(Arc::clone(&digested), role.clone());
    let digest = if config.digest_paused {
        tracing::warn!("the digest is paused: envelopes stay in the inbox");
        None
    } else {
        Some(digest::Digest::start(
            &config,
            &store,
            Arc::clone(&metrics),
            appended,
            inbox.clone(),
            Arc::clone(&digested),
        )?)
    };
    let notifier =
        alerts::notify::Notifier::start(store.outbox(), Arc::clone(&engine.wake), role.clone());
    let telegram =
        alerts::telegram_bot::Poller::start(Arc::clone(&store), role.clone(), Arc::clone(&metrics));
    let retention = start_retention(&config, &store, role.clone());
    // A manual clock moves only in tests, which run the jobs themselves.
    let ticker = (!clock.is_manual()).then(|| start_ticker(ticks, clock.clone(), role.clone()));
    Ok((
        state_with(config, store, metrics, inbox, clock).with_role(role),
        Services {
            writer,
            digest,
            retention,
            ticker,
            alert_stage,
            notifier,
            telegram,
            leadership: None,
        },
    ))
}

fn state_with(
    config: Config,
    store: Arc<Store>,
    metrics: Arc<metrics::Metrics>,
    inbox: tokio::sync::mpsc::Sender<store::inbox::Command>,
    clock: Clock,
) -> http::state::AppState {
    http::state::AppState::new(config, store, clock)
        .with_metrics(metrics)
        .with_inbox(inbox)
}

/// Serve on `listener` until `shutdown` completes, then drain: in-flight requests finish,
/// and every envelope already queued is committed before this returns.
async fn serve_until(
    config: Config,
    store: Arc<Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Clock,
    ticks: Ticks,
    engine: Engine,
) -> Result<(), ServerError> {
    let (role, leadership) = cluster::start(&store).await;
    let (state, mut services) = start_state(config, store, clock, ticks, engine, role)?;
    services.leadership = leadership;
    let app = http::router::app(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    // Every handler is gone once serve returns; the digest holds the last inbox sender.
    let _ = services.retention.0.send(true);
    let _ = services.retention.1.await;
    if let Some((stop, task)) = services.ticker {
        let _ = stop.send(true);
        let _ = task.await;
    }
    if let Some(digest) = services.digest {
        digest.stop().await;
    }
    // After the digest: what it wrote last is evaluated before the stop.
    services.alert_stage.stop().await;
    services.notifier.stop().await;
    services.telegram.stop().await;
    if let Some(leadership) = services.leadership {
        leadership.stop().await;
    }
    let writer = services.writer;
    tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .map_err(|e| std::io::Error::other(format!("inbox writer shutdown failed: {e}")))?;
    tracing::info!("server stopped");
    Ok(())
}

/// The entry point of the server library: `Server::builder(config).start().await` returns a
/// [`RunningServer`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Server;

impl Server {
    /// A builder for a server with `config`, on the system clock, listening on
    /// `config.listen` (port 0 picks an ephemeral port) over `config.data_dir`.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            clock: Clock::System,
            store: None,
            listener: None,
        }
    }
}

/// How to start a server; see [`Server::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until .start() is awaited"]
pub struct ServerBuilder {
    config: Config,
    clock: Clock,
    store: Option<Arc<Store>>,
    listener: Option<TcpListener>,
}

impl ServerBuilder {
    /// Run on `clock`. With a [`Clock::manual`] clock nothing moves time but the caller, and
    /// the periodic jobs run only when [`RunningServer::tick`] is called.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Use a store the caller already opened on `config.data_dir` (default: open it).
    pub fn store(mut self, store: Arc<Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serve on a socket the caller already bound (default: bind `config.listen`), e.g.
    /// to report a bind failure in its own words.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Open the store, create the default project on an empty data directory, bind, start
    /// every service and serve in the background. A missing `public_url` becomes the
    /// bound address, so DSNs and alert links name the real port.
    ///
    /// # Errors
    ///
    /// When the store cannot be opened or migrated, the socket cannot be bound, or a
    /// service cannot start.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        let ServerBuilder {
            mut config,
            clock,
            store,
            listener,
        } = self;
        let store = match store {
            Some(store) => store,
            None => {
                let (dir, url, sync) = (
                    config.data_dir.clone(),
                    config.database_url.clone(),
                    config.ingest.synchronous,
                );
                let opened = tokio::task::spawn_blocking(move || {
                    Store::open_config(&dir, url.as_deref(), sync)
                })
                .await
                .map_err(|e| {
                    store::StoreError::Invalid(format!("opening the store failed: {e}"))
                })?;
                Arc::new(opened?)
            }
        };
        store.ensure_default_project()?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(config.listen_addr()).await?,
        };
        let addr = listener.local_addr()?;
        if config.public_url.is_none() {
            config.public_url = Some(config.base_url(Some(addr)));
        }
        store.set_last_base_url(&config.base_url(Some(addr)))?;
        let engine = engine(&config, &store, &clock);
        let ticks = tick_jobs(&store, &engine)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_until(
            config,
            Arc::clone(&store),
            listener,
            async move {
                let _ = stopped.await;
            },
            clock.clone(),
            ticks.clone(),
            engine,
        ));
        Ok(RunningServer {
            addr,
            store,
            clock,
            ticks,
            stop: Some(stop),
            task,
        })
    }
}

/// A server serving in the background (`lookout serve`, the demo, tests, benchmarks).
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The store (shared with the server).
    pub store: Arc<Store>,
    /// The server's clock.
    pub clock: Clock,
    ticks: Ticks,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Run every periodic job once at the clock's current time, and wait for them.
    pub async fn tick(&self) {
        self.ticks.run(self.clock.now_ms()).await;
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The DSN of the first project.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or has no project.
    pub fn dsn(&self) -> Result<String, ServerError> {
        let projects = self.store.list_projects()?;
        let first = projects
            .first()
            .ok_or_else(|| store::StoreError::NotFound("project".into()))?;
        Ok(first.dsn(&self.base_url()))
    }

    /// Stop gracefully: refuse new connections, let in-flight requests finish, stop the
    /// services and wait until everything queued is committed.
    ///
    /// # Errors
    ///
    /// When serving failed, or a service did not stop cleanly.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServerError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// Serve until `signal` completes (e.g. Ctrl-C or SIGTERM), then [`stop`](Self::stop).
    /// Returns early with the server's error if serving fails first.
    ///
    /// # Errors
    ///
    /// As [`RunningServer::stop`].
    pub async fn shutdown_on(
        mut self,
        signal: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        tokio::select! {
            () = signal => self.stop().await,
            ended = &mut self.task => match ended {
                Ok(r) => r,
                Err(e) => Err(ServerError::Io(std::io::Error::other(e.to_string()))),
            },
        }
    }
}
