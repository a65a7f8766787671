//! What the three agents share: their configuration, the shutdown signal, the demo's fault
//! switches, monitoring setup (hub, session, cron scheduler) and the sandbox admin calls.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{CronMonitor, Options, TradingError};
use purpleflea_client::Client;
use sentry::protocol::MonitorIntervalUnit;
use sentry::{Hub, SentryFutureExt};
use tokio::sync::watch;

/// Why an agent could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExampleError {
    /// The Purple Flea client could not be built or a setup call failed.
    #[error("purple flea: {0}")]
    Client(#[from] purpleflea_client::Error),
    /// A sandbox admin call (funding, market shaping) failed.
    #[error("sandbox admin: {0}")]
    Admin(String),
    /// A monitor's configuration is invalid.
    #[error(transparent)]
    Monitor(#[from] lookout_agent::cron::MonitorError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A shutdown signal shared by an agent's tasks: cheap to clone, triggered once.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending half of a [`Shutdown`].
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx: Arc::new(tx) }, Shutdown { rx })
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Wait until shutdown is requested (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means every trigger is gone: nobody can ask any more, so stop too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// Sleep `duration`, or less if shutdown is requested; `true` when it was.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => self.is_triggered(),
            () = self.wait() => true,
        }
    }
}

impl ShutdownTrigger {
    /// Ask every holder of the signal to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

/// Switches for what no sandbox fault can produce: a bug that panics the main loop, a
/// wedged scheduler. `lookout demo` flips them on its schedule; a real agent never does.
/// Cheap to clone: clones share the switches.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    inner: Arc<ControlsInner>,
}

#[derive(Debug, Default)]
struct ControlsInner {
    crash: AtomicBool,
    stall_scheduler: AtomicBool,
    orders: std::sync::atomic::AtomicU64,
    accounts: Mutex<BTreeMap<String, String>>,
}

impl Controls {
    /// Fresh switches, all off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the agent's main loop panic at its next cycle (as an `unwrap` on a bad
    /// response would).
    pub fn crash_next_cycle(&self) {
        self.inner.crash.store(true, Ordering::SeqCst);
    }

    /// Consume a requested crash (the agent calls this once per cycle).
    pub fn take_crash(&self) -> bool {
        self.inner.crash.swap(false, Ordering::SeqCst)
    }

    /// Wedge (or unwedge) the scheduler of the recalibration job: while wedged it runs no
    /// job and sends no check-in, so the server marks the cron monitor missed.
    pub fn stall_scheduler(&self, stalled: bool) {
        self.inner.stall_scheduler.store(stalled, Ordering::SeqCst);
    }

    /// Count an order that went through (the demo watches the count stop while paused).
    pub fn count_order(&self) {
        self.inner.orders.fetch_add(1, Ordering::SeqCst);
    }

    /// Orders that went through so far.
    pub fn orders(&self) -> u64 {
        self.inner.orders.load(Ordering::SeqCst)
    }

    /// Whether the scheduler is wedged.
    pub fn scheduler_stalled(&self) -> bool {
        self.inner.stall_scheduler.load(Ordering::SeqCst)
    }

    /// Record a Purple Flea account the agent registered (`"trading"` → its agent id), so
    /// an operator (or the demo) can fund it.
    pub fn publish_account(&self, name: &str, account_id: &str) {
        if let Ok(mut accounts) = self.inner.accounts.lock() {
            accounts.insert(name.to_owned(), account_id.to_owned());
        }
    }

    /// The account registered under `name`, if any.
    pub fn account(&self, name: &str) -> Option<String> {
        self.inner
            .accounts
            .lock()
            .ok()
            .and_then(|a| a.get(name).cloned())
    }
}

/// How an agent reports to Lookout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Monitoring {
    /// `lookout_agent::init`: the process-wide client with the panic hook, as a standalone
    /// agent does. The guard lives as long as [`crate::vol_arb::run`] (or its siblings).
    Global,
    /// A hub of its own (with the panic integration), so several agents share a process
    /// and each reports as itself: how `lookout demo` runs them.
    Isolated,
}

/// The configuration every example agent takes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// The agent id (tag `agent_id`, heartbeat monitor `agent-<id>-heartbeat`).
    pub agent_id: String,
    /// The Lookout (or Sentry) DSN; `None` reads `LOOKOUT_DSN` / `SENTRY_DSN`, and without
    /// either the agent runs unmonitored.
    pub dsn: Option<String>,
    /// The sandbox root URL (`http://127.0.0.1:9100`); every service is mounted below it.
    pub sandbox_url: String,
    /// The release, e.g. `vol-arb@1.0.0`.
    pub release: String,
    /// The environment, e.g. `paper`.
    pub environment: String,
    /// Time between two decision cycles.
    pub cycle: Duration,
    /// Minutes between two recalibration runs (the cron monitor's interval).
    pub recalibrate_every_minutes: u64,
    /// Heartbeat interval of the agent session.
    pub heartbeat_interval: Duration,
    /// Fund the agent's sandbox accounts through `POST /_admin/deposit` with this many USD
    /// (`None`: the agent's default; `Some(0.0)`: no funding).
    pub funding_usd: Option<f64>,
    /// How the agent reports.
    pub monitoring: Monitoring,
    /// Fault switches (see [`Controls`]).
    pub controls: Controls,
    /// Seed of the agent's own randomness (client seeds, the implied-vol stand-in).
    pub seed: u64,
}

impl AgentConfig {
    /// A config for `agent_id` against the sandbox at `sandbox_url`: release
    /// `<agent_id>@1.0.0`, environment `paper`, a 2 s cycle, recalibration every minute,
    /// heartbeats every 60 s, standalone monitoring.
    pub fn new(agent_id: impl Into<String>, sandbox_url: impl Into<String>) -> Self {
        let agent_id = agent_id.into();
        Self {
            release: format!("{agent_id}@1.0.0"),
            agent_id,
            dsn: None,
            sandbox_url: sandbox_url.into(),
            environment: "paper".to_owned(),
            cycle: Duration::from_secs(2),
            recalibrate_every_minutes: 1,
            heartbeat_interval: Duration::from_secs(60),
            funding_usd: None,
            monitoring: Monitoring::Global,
            controls: Controls::new(),
            seed: 1,
        }
    }

    /// Set the DSN.
    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// Set the release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = release.into();
        self
    }

    /// Set the environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }

    /// Set the cycle time.
    pub fn cycle(mut self, cycle: Duration) -> Self {
        self.cycle = cycle;
        self
    }

    /// Set the recalibration interval in minutes (at least 1).
    pub fn recalibrate_every_minutes(mut self, minutes: u64) -> Self {
        self.recalibrate_every_minutes = minutes.max(1);
        self
    }

    /// Set the heartbeat interval.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// Set the sandbox funding.
    pub fn funding_usd(mut self, usd: f64) -> Self {
        self.funding_usd = Some(usd);
        self
    }

    /// Set how the agent reports.
    pub fn monitoring(mut self, monitoring: Monitoring) -> Self {
        self.monitoring = monitoring;
        self
    }

    /// Share these fault switches.
    pub fn controls(mut self, controls: Controls) -> Self {
        self.controls = controls;
        self
    }

    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The Purple Flea client for the sandbox (no key yet).
    pub(crate) fn client(&self) -> Result<Client, ExampleError> {
        Ok(Client::builder()
            .sandbox(&self.sandbox_url)
            .timeout(Duration::from_secs(10))
            .build()?)
    }

    pub(crate) fn admin(&self) -> SandboxAdmin {
        SandboxAdmin::new(&self.sandbox_url)
    }
}

/// The sandbox's admin API (`/_admin`), for what a real deployment does by hand: funding.
#[derive(Debug, Clone)]
pub struct SandboxAdmin {
    root: String,
    http: reqwest::Client,
}

impl SandboxAdmin {
    /// The admin API of the sandbox at `root` (`http://127.0.0.1:9100`).
    pub fn new(root: &str) -> Self {
        Self {
            root: root.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Credit `usd` to an agent's balance on `service` (`casino`, `trading` or `domains`).
    pub async fn deposit(
        &self,
        service: &str,
        account_id: &str,
        usd: f64,
    ) -> Result<(), ExampleError> {
        self.send(
            self.http.post(format!("{}/_admin/deposit", self.root)).json(
                &serde_json::json!({"service": service, "agent_id": account_id, "amount_usd": usd}),
            ),
        )
        .await
    }

    /// Shape a trading market: `{"price"?, "half_spread_bps"?, "depth_usd"?, "gap_probability"?}`.
    pub async fn set_market(
        &self,
        coin: &str,
        body: serde_json::Value,
    ) -> Result<(), ExampleError> {
        self.send(
            self.http
                .put(format!("{}/_admin/trading/markets/{coin}", self.root))
                .json(&body),
        )
        .await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(), ExampleError> {
        let response = request
            .send()
            .await
            .map_err(|e| ExampleError::Admin(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(ExampleError::Admin(format!("{status}: {body}")))
        }
    }
}

/// The agent's monitoring for the life of one `run`: its hub (and, standalone, the guard
/// of the process-wide client).
pub(crate) struct Monitor {
    pub(crate) hub: Arc<Hub>,
    _guard: Option<lookout_agent::Guard>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Set up monitoring from `options` as `config.monitoring` says.
    pub(crate) fn start(config: &AgentConfig, options: Options) -> Monitor {
        let mut options = options
            .release(config.release.clone())
            .environment(config.environment.clone())
            .traces_sample_rate(1.0);
        if let Some(dsn) = &config.dsn {
            options = options.dsn(dsn.clone());
        }
        match config.monitoring {
            Monitoring::Global => {
                let guard = lookout_agent::init(options);
                Monitor {
                    hub: Hub::main(),
                    _guard: Some(guard),
                }
            }
            Monitoring::Isolated => {
                // `Options::hub` adds no panic hook; a hub of our own with the panic
                // integration reports a panic of this agent's loop as a crash of *this*
                // agent (the hook captures on the hub current on the panicking thread).
                let client_options = options
                    .client_options()
                    .add_integration(sentry::integrations::panic::PanicIntegration::new());
                let client = Arc::new(sentry::Client::from(client_options));
                let mut scope = sentry::Scope::default();
                options.apply_to_scope(&mut scope);
                Monitor {
                    hub: Arc::new(Hub::new(Some(client), Arc::new(scope))),
                    _guard: None,
                }
            }
        }
    }

    /// Start the agent session and send its first update at once (the SDK would otherwise
    /// hold it until its next event or the minute's flush).
    pub(crate) async fn session(&self, config: &AgentConfig) -> AgentSession {
        let session = AgentSession::start_on(
            Arc::clone(&self.hub),
            config.agent_id.clone(),
            HealthOptions::new()
                .heartbeat_interval(config.heartbeat_interval)
                .watchdog_timeout(Duration::from_secs(300).max(config.cycle * 20)),
        );
        self.flush().await;
        session
    }

    /// Send everything queued (waits at most 5 s, off the async threads).
    pub(crate) async fn flush(&self) {
        if let Some(client) = self.hub.client() {
            let _ = tokio::task::spawn_blocking(move || client.flush(Some(Duration::from_secs(5))))
                .await;
        }
    }

    /// Run `job` every `config.recalibrate_every_minutes` under the cron monitor `slug`, on
    /// a task of its own, until the returned handle is dropped. While
    /// [`Controls::scheduler_stalled`], the scheduler is wedged and sends nothing.
    pub(crate) fn schedule<F, Fut>(
        &self,
        config: &AgentConfig,
        slug: &str,
        mut job: F,
        shutdown: Shutdown,
    ) -> Result<Scheduled, ExampleError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), TradingError>> + Send + 'static,
    {
        let every = config.recalibrate_every_minutes.max(1);
        let monitor = CronMonitor::interval(slug, every, MonitorIntervalUnit::Minute)?
            .checkin_margin(1)
            .max_runtime(1);
        let controls = config.controls.clone();
        let period = Duration::from_secs(every * 60);
        let mut shutdown = shutdown;
        let task = async move {
            loop {
                if controls.scheduler_stalled() {
                    // Wedged: no run, no check-in. The server notices the silence.
                    if shutdown.sleep(Duration::from_millis(200)).await {
                        return;
                    }
                    continue;
                }
                if let Err(error) = monitor.run_async(job()).await {
                    lookout_agent::capture_trading_error(&error);
                    tracing::warn!(%error, "recalibration failed");
                }
                if shutdown.sleep(period).await {
                    return;
                }
            }
        }
        .bind_hub(Arc::clone(&self.hub));
        Ok(Scheduled(tokio::spawn(task)))
    }
}

/// A scheduled job's task; dropping it stops the job (also when the agent's loop panics).
#[derive(Debug)]
pub(crate) struct Scheduled(tokio::task::JoinHandle<()>);

impl Drop for Scheduled {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run `future` with `hub` as the current hub on whichever thread polls it.
pub(crate) fn on_hub<F: Future>(hub: &Arc<Hub>, future: F) -> sentry::SentryFuture<F> {
    future.bind_hub(Arc::clone(hub))
}

/// What a finished run did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Decision cycles run.
    pub cycles: u64,
    /// Actions that went through (orders filled, bets placed, escrows released, bids).
    pub actions: u64,
    /// Errors captured.
    pub errors: u64,
}

/// Convert a client error into a `TradingError` and capture it on the current hub.
pub(crate) fn capture(error: purpleflea_client::Error) -> TradingError {
    let error: TradingError = error.into();
    lookout_agent::capture_trading_error(&error);
    error
}
