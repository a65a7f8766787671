//! `lookout demo`: the whole loop (agent → monitoring → alert → notification) on one machine
//! with nothing to configure.
//!
//! [`Demo::start`] runs, in this process:
//!
//! * the Lookout server on the data directory it is given (`./lookout-data`, or a temporary
//!   directory with `lookout demo --temp`), with a web UI account `admin`;
//! * the Purple Flea sandbox on an ephemeral port;
//! * a local notification receiver, registered through the REST API as a signed webhook
//!   channel and a Slack channel; it verifies every `Lookout-Signature` and prints one line
//!   per alert (the UI's alerts page shows the same deliveries);
//! * the three example agents of `lookout-examples`, each on a hub of its own, reporting to
//!   the server by DSN exactly as a separate process would;
//! * a fault schedule that provokes each of the six alert presets within about two minutes:
//!
//! | after | fault | preset it provokes |
//! |---|---|---|
//! | 0 s | `ag_vol_arb` holds $110 of margin: a BTC order needs at most $100, an ETH order at least $125 | `critical_trade_failure`, `error_rate_spike` |
//! | 10 s | `vol-arb`'s scheduler wedges: the recalibration job stops checking in | the cron monitor goes `missed` (~2 min) |
//! | 12–36 s | BTC and ETH jump ±3 % every 3 s: the volatility circuit breaker rejects orders | `risk_check_failure_rate` |
//! | 20 s | `ag_escrow_domains` panics; its supervisor restarts it | none: back within the 60 s grace |
//! | 28 s | `ag_casino_kelly` panics and stays down | `session_crash` (60 s later) |
//! | 40–90 s | `POST /trade/open` takes 2.5 s (once the circuit breaker lets orders through again, from ~60 s) | `p99_latency_breach` |
//! | 55 s | release `escrow-domains@1.1.0` deployed (REST, as `sentry-cli` does), the agent restarted on it, and escrow creation refused (402) | `new_issue_after_deploy` |
//!
//! Alerts that fire on a *new* issue fire once per data directory: run with `--temp` (or a
//! fresh `--data-dir`) to see all six again.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use lookout_examples::{
    AgentConfig, Controls, ExampleError, Monitoring, RunSummary, SandboxAdmin, Shutdown,
    ShutdownTrigger,
};
use purpleflea_sandbox::{
    FaultConfig, FaultRule, Latency, Sandbox, SandboxConfig, SandboxHandle, Service,
};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::store::Store;
use crate::store::users::Users;
use crate::{RunningServer, Server, ServerError};

/// The six presets, in the order the schedule usually fires them.
pub const PRESETS: [&str; 6] = [
    "critical_trade_failure",
    "error_rate_spike",
    "risk_check_failure_rate",
    "p99_latency_breach",
    "new_issue_after_deploy",
    "session_crash",
];

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The data directory could not be opened.
    #[error("data directory: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The sandbox could not start.
    #[error("sandbox: {0}")]
    Sandbox(#[from] purpleflea_sandbox::Error),
    /// A socket could not be bound.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A setup call to the server's own API failed.
    #[error("setting up the demo through the API: {0}")]
    Setup(String),
}

/// What [`Demo::start`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// The server's configuration (listen address, data directory, ...).
    pub config: Config,
    /// Seed of the sandbox and the agents.
    pub seed: u64,
}

impl DemoOptions {
    /// Options for `config`, seed 1.
    pub fn new(config: Config) -> Self {
        Self { config, seed: 1 }
    }
}

/// Where the demo's lines go (stdout in `lookout demo`).
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// How to log in to the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Login {
    /// The account `admin` with this password (created by the demo, or given by
    /// `LOOKOUT_ADMIN_PASSWORD`).
    Admin {
        /// The password.
        password: String,
        /// Whether the demo generated it.
        generated: bool,
    },
    /// The data directory already has accounts; their passwords stay as they are.
    Existing,
}

/// One alert notification received by the demo's webhook receiver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Delivery {
    /// `triggered` or `resolved`.
    pub action: String,
    /// The rule's name.
    pub rule: String,
    /// The preset the rule came from, if any.
    pub preset: Option<String>,
    /// The incident's title.
    pub title: String,
    /// Whether the `Lookout-Signature` verified against the channel's secret.
    pub signature_ok: bool,
}

/// A running demo; [`Demo::stop`] ends it.
pub struct Demo {
    server: RunningServer,
    sandbox: SandboxHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    receiver: JoinHandle<()>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    login: Login,
    started: Instant,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("server", &self.server.addr)
            .field("sandbox", &self.sandbox.addr())
            .finish_non_exhaustive()
    }
}

/// The secret of the demo's webhook channel (a local receiver; nothing leaves the machine).
fn webhook_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("whsec_{}", hex::encode(bytes))
}

fn generated_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..16)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

impl Demo {
    /// Start everything and the fault schedule. Lines (setup, faults, alerts as they
    /// arrive, missed monitors) go to `print`.
    ///
    /// # Errors
    ///
    /// When the server, the sandbox or the receiver cannot start, or the server's API
    /// refuses a setup call.
    pub async fn start(options: DemoOptions, print: Printer) -> Result<Demo, DemoError> {
        let started = Instant::now();
        let mut config = options.config;
        // The account: an explicit password wins; a fresh data directory gets a generated
        // one; an existing account is left alone.
        let store = Store::open(&config.data_dir)?;
        let users = Users::new(&config.data_dir);
        let has_users = users.any()?;
        let login = match (&config.admin_password, has_users) {
            (Some(p), false) => Login::Admin {
                password: p.clone(),
                generated: false,
            },
            (None, false) => {
                let password = generated_password();
                config.admin_password = Some(password.clone());
                Login::Admin {
                    password,
                    generated: true,
                }
            }
            (_, true) => Login::Existing,
        };
        let had_issues = store.with_conn(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM issues", [], |r| r.get::<_, i64>(0))?)
        })? > 0;
        // Old demo tokens are revoked: each run makes its own.
        for t in users.tokens()? {
            if t.name == DEMO_TOKEN {
                users.delete_token(t.id)?;
            }
        }
        drop(store);

        let server = Server::builder(config).start().await?;
        let (_, token) = server.store.create_token(DEMO_TOKEN, &[])?;
        let dsn = server.dsn()?;
        let api = Api {
            http: reqwest::Client::new(),
            base: server.base_url(),
            token,
        };

        let sandbox = Sandbox::spawn(
            SandboxConfig::default()
                .seed(options.seed)
                .rate_limits(false)
                .faults(base_faults()),
        )
        .await?;

        // The receiver, then its channels.
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let secret = webhook_secret();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver_url = format!("http://{}", listener.local_addr()?);
        let rx_state = Arc::new(ReceiverState {
            secret: secret.clone(),
            api: api.clone(),
            presets: Mutex::new(BTreeMap::new()),
            deliveries: Arc::clone(&deliveries),
            print: Arc::clone(&print),
            started,
        });
        let app = Router::new()
            .route("/webhook", post(webhook))
            .route("/slack", post(slack))
            .with_state(rx_state);
        let receiver = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "demo receiver stopped");
            }
        });
        api.replace_channels(&receiver_url, &secret).await?;

        let (stop, stopped) = watch::channel(false);
        let mut demo = Demo {
            server,
            sandbox,
            stop,
            tasks: Vec::new(),
            receiver,
            deliveries,
            login,
            started,
        };
        demo.banner(&print, &dsn, &receiver_url, had_issues);
        let agents = Agents::new(&dsn, &demo.sandbox.url(), options.seed);
        demo.tasks.push(tokio::spawn(schedule(
            agents,
            api.clone(),
            demo.sandbox.url(),
            demo.sandbox.sandbox().clone(),
            Arc::clone(&print),
            started,
            stopped.clone(),
        )));
        demo.tasks.push(tokio::spawn(watch_monitors(
            api,
            Arc::clone(&print),
            started,
            stopped,
        )));
        Ok(demo)
    }

    fn banner(&self, print: &Printer, dsn: &str, receiver: &str, had_issues: bool) {
        let ui = self.server.base_url();
        print(&format!("Lookout demo: the web UI is at {ui}/"));
        match &self.login {
            Login::Admin {
                password,
                generated: true,
            } => print(&format!(
                "  log in as admin with password {password} (generated for this data directory; change it with `lookout users set-password`)"
            )),
            Login::Admin { .. } => print("  log in as admin with LOOKOUT_ADMIN_PASSWORD"),
            Login::Existing => print(
                "  log in with your existing account (reset a password with `lookout users set-password`)",
            ),
        }
        print(&format!("  DSN for the agents: {dsn}"));
        print(&format!(
            "  Purple Flea sandbox: {} (faults: {}/_admin/faults)",
            self.sandbox.url(),
            self.sandbox.url()
        ));
        print(&format!(
            "  notification receiver: {receiver} (signed webhook and Slack channels)"
        ));
        if had_issues {
            print(
                "  note: this data directory has issues from before; alerts on a new issue fire only for issues that are new (use --temp for the full show)",
            );
        }
        print(
            "  agents: ag_vol_arb (BTC/ETH perps), ag_casino_kelly (dice), ag_escrow_domains (escrow and auctions)",
        );
        print(
            "  the fault schedule provokes the six alert presets within about two minutes; Ctrl-C stops the demo",
        );
    }

    /// The web UI's address.
    pub fn ui_url(&self) -> String {
        self.server.base_url()
    }

    /// How to log in.
    pub fn login(&self) -> &Login {
        &self.login
    }

    /// Every notification the receiver got so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The presets whose `triggered` notification arrived with a valid signature.
    pub fn presets_delivered(&self) -> BTreeSet<String> {
        presets_delivered(&self.deliveries())
    }

    /// Time since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stop the agents (their sessions end `exited`), the schedule, the receiver, the
    /// sandbox and the server (which commits everything it acknowledged).
    ///
    /// # Errors
    ///
    /// When the server or the sandbox fails to stop cleanly.
    pub async fn stop(self) -> Result<(), DemoError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.receiver.abort();
        self.sandbox.shutdown().await?;
        self.server.stop().await?;
        Ok(())
    }
}

fn presets_delivered(deliveries: &[Delivery]) -> BTreeSet<String> {
    deliveries
        .iter()
        .filter(|d| d.action == "triggered" && d.signature_ok)
        .filter_map(|d| d.preset.clone())
        .collect()
}

const DEMO_TOKEN: &str = "lookout demo";

/// Realistic, calm latency: median 25 ms.
fn base_faults() -> FaultConfig {
    FaultConfig {
        default: FaultRule {
            latency: Some(Latency {
                median_ms: 25.0,
                sigma: 0.5,
                max_ms: 1_000.0,
            }),
            ..FaultRule::default()
        },
        ..FaultConfig::default()
    }
}

/// The server's REST API, as the demo's own client.
#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .map_err(|e| DemoError::Setup(format!("{method} {path}: {e}")))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DemoError::Setup(format!(
                "{method} {path}: {status}: {text}"
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Point the demo's channels at this run's receiver (replacing an earlier run's).
    async fn replace_channels(&self, receiver: &str, secret: &str) -> Result<(), DemoError> {
        let path = "/api/0/organizations/default/integrations/";
        let existing = self.call(reqwest::Method::GET, path, None).await?;
        for channel in existing.as_array().into_iter().flatten() {
            let name = channel["name"].as_str().unwrap_or_default();
            if name.starts_with("lookout-demo")
                && let Some(id) = channel["id"].as_str()
            {
                self.call(reqwest::Method::DELETE, &format!("{path}{id}/"), None)
                    .await?;
            }
        }
        self.call(
            reqwest::Method::POST,
            path,
            Some(
                json!({"provider": "webhook", "name": "lookout-demo webhook",
                        "config": {"url": format!("{receiver}/webhook"), "secret": secret}}),
            ),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            path,
            Some(json!({"provider": "slack", "name": "lookout-demo slack",
                        "config": {"url": format!("{receiver}/slack"), "channel": "#trading-alerts"}})),
        )
        .await?;
        Ok(())
    }

    /// Rule id → preset, for every rule of the default project.
    async fn presets(&self) -> Result<BTreeMap<String, String>, DemoError> {
        let mut out = BTreeMap::new();
        for path in [
            "/api/0/projects/default/default/rules/",
            "/api/0/organizations/default/alert-rules/",
        ] {
            let rules = self.call(reqwest::Method::GET, path, None).await?;
            for rule in rules.as_array().into_iter().flatten() {
                if let (Some(id), Some(preset)) = (rule["id"].as_str(), rule["preset"].as_str()) {
                    out.insert(id.to_owned(), preset.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// Create a release and record its deploy, as `sentry-cli releases new` and
    /// `sentry-cli releases deploys new` do.
    async fn deploy(&self, version: &str, environment: &str) -> Result<(), DemoError> {
        self.call(
            reqwest::Method::POST,
            "/api/0/organizations/default/releases/",
            Some(json!({"version": version, "projects": ["default"]})),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/api/0/organizations/default/releases/{version}/deploys/"),
            Some(json!({"environment": environment})),
        )
        .await?;
        Ok(())
    }
}

struct ReceiverState {
    secret: String,
    api: Api,
    presets: Mutex<BTreeMap<String, String>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    print: Printer,
    started: Instant,
}

fn stamp(started: Instant) -> String {
    format!("[+{:>4}s]", started.elapsed().as_secs())
}

/// Check `Lookout-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn verify_signature(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else {
        return false;
    };
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(Ok(expected))) = (t, v1.map(hex::decode)) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn webhook(
    State(st): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature_ok = verify_signature(
        &st.secret,
        headers
            .get("lookout-signature")
            .and_then(|v| v.to_str().ok()),
        &body,
    );
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        (st.print)(&format!(
            "{} receiver: a webhook body that is not JSON",
            stamp(st.started)
        ));
        return StatusCode::BAD_REQUEST;
    };
    let rule_id = v["rule"]["id"].as_str().unwrap_or_default().to_owned();
    let known = st
        .presets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&rule_id)
        .cloned();
    let preset = match known {
        Some(p) => Some(p),
        None => match st.api.presets().await {
            Ok(map) => {
                let p = map.get(&rule_id).cloned();
                *st.presets.lock().unwrap_or_else(PoisonError::into_inner) = map;
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo receiver cannot list rules");
                None
            }
        },
    };
    let d = Delivery {
        action: v["action"].as_str().unwrap_or_default().to_owned(),
        rule: v["rule"]["name"].as_str().unwrap_or_default().to_owned(),
        preset,
        title: v["incident"]["title"]
            .as_str()
            .or_else(|| v["text"].as_str())
            .unwrap_or_default()
            .to_owned(),
        signature_ok,
    };
    let verdict = if signature_ok {
        "signature verified"
    } else {
        "BAD SIGNATURE"
    };
    (st.print)(&format!(
        "{} ALERT {}: {}{} · {} · webhook {}",
        stamp(st.started),
        d.action,
        d.rule,
        d.preset
            .as_deref()
            .map(|p| format!(" (preset {p})"))
            .unwrap_or_default(),
        d.title,
        verdict
    ));
    let all_six = {
        let mut deliveries = st.deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        let before = presets_delivered(&deliveries).len();
        deliveries.push(d);
        let after = presets_delivered(&deliveries).len();
        before < PRESETS.len() && after == PRESETS.len()
    };
    if all_six {
        (st.print)(&format!(
            "{} all six alert presets fired and were delivered; the demo keeps running (Ctrl-C stops it)",
            stamp(st.started)
        ));
    }
    if signature_ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn slack(body: Bytes) -> StatusCode {
    // The Slack channel shows the second format; the webhook line already said it.
    if serde_json::from_slice::<Value>(&body).is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// Print a line when a monitor (a cron job or an agent's heartbeat) fails or recovers.
async fn watch_monitors(
    api: Api,
    print: Printer,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failing: BTreeSet<String> = BTreeSet::new();
    loop {
        if let Ok(monitors) = api
            .call(
                reqwest::Method::GET,
                "/api/0/organizations/default/monitors/",
                None,
            )
            .await
        {
            for m in monitors.as_array().into_iter().flatten() {
                let slug = m["slug"].as_str().unwrap_or_default().to_owned();
                let status = m["environments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["status"].as_str())
                    .find(|s| matches!(*s, "missed_checkin" | "error" | "timeout"));
                let kind = if slug.ends_with("-heartbeat") {
                    "HEARTBEAT"
                } else {
                    "CRON"
                };
                match status {
                    Some(s) if failing.insert(slug.clone()) => print(&format!(
                        "{} {kind} {}: {slug} (monitor failure issue opened; see /crons)",
                        stamp(started),
                        if s == "missed_checkin" { "missed" } else { s }
                    )),
                    None if failing.remove(&slug) => {
                        print(&format!("{} {kind} ok again: {slug}", stamp(started)));
                    }
                    _ => {}
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = until_stopped(&mut stopped) => return,
        }
    }
}

/// Which example agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VolArb,
    Casino,
    Escrow,
}

/// A running agent: its task, its shutdown trigger and its switches.
struct Running {
    task: JoinHandle<Result<RunSummary, ExampleError>>,
    stop: ShutdownTrigger,
    controls: Controls,
}

struct Agents {
    dsn: String,
    sandbox: String,
    seed: u64,
    running: BTreeMap<&'static str, Running>,
}

impl Agents {
    fn new(dsn: &str, sandbox: &str, seed: u64) -> Self {
        Self {
            dsn: dsn.to_owned(),
            sandbox: sandbox.to_owned(),
            seed,
            running: BTreeMap::new(),
        }
    }

    fn config(&self, id: &str, release: &str, funding: f64, controls: &Controls) -> AgentConfig {
        AgentConfig::new(id, &self.sandbox)
            .dsn(self.dsn.clone())
            .release(release)
            .environment("paper")
            .monitoring(Monitoring::Isolated)
            .cycle(Duration::from_secs(1))
            .heartbeat_interval(Duration::from_secs(30))
            .recalibrate_every_minutes(1)
            .funding_usd(funding)
            .controls(controls.clone())
            .seed(self.seed)
    }

    fn spawn(&mut self, id: &'static str, kind: Kind, release: &str, funding: f64) {
        let controls = Controls::new();
        let config = self.config(id, release, funding, &controls);
        let (stop, shutdown) = Shutdown::new();
        let task = match kind {
            Kind::VolArb => spawn_agent(lookout_examples::vol_arb::run(config, shutdown)),
            Kind::Casino => spawn_agent(lookout_examples::casino_kelly::run(config, shutdown)),
            Kind::Escrow => spawn_agent(lookout_examples::escrow_domains::run(config, shutdown)),
        };
        self.running.insert(
            id,
            Running {
                task,
                stop,
                controls,
            },
        );
    }

    fn controls(&self, id: &str) -> Option<Controls> {
        self.running.get(id).map(|r| r.controls.clone())
    }

    /// Make `id` panic at its next cycle and wait until its task ended.
    async fn crash(&mut self, id: &str) -> bool {
        let Some(r) = self.running.remove(id) else {
            return false;
        };
        r.controls.crash_next_cycle();
        matches!(
            tokio::time::timeout(Duration::from_secs(30), r.task).await,
            Ok(Err(e)) if e.is_panic()
        )
    }

    /// Stop `id` cleanly (its session ends `exited`).
    async fn stop(&mut self, id: &str) {
        if let Some(r) = self.running.remove(id) {
            r.stop.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(30), r.task).await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<&'static str> = self.running.keys().copied().collect();
        for r in self.running.values() {
            r.stop.trigger();
        }
        for id in ids {
            self.stop(id).await;
        }
    }
}

fn spawn_agent<F>(agent: F) -> JoinHandle<Result<RunSummary, ExampleError>>
where
    F: Future<Output = Result<RunSummary, ExampleError>> + Send + 'static,
{
    tokio::spawn(agent)
}

const VOL_ARB: &str = "ag_vol_arb";
/// A BTC order needs $25–100 of margin, an ETH order $125–500 (`vol_arb::default_books`).
const VOL_ARB_MARGIN_USD: f64 = 110.0;
const CASINO: &str = "ag_casino_kelly";
const ESCROW: &str = "ag_escrow_domains";

/// The fault schedule. Every step prints what it does; the agents run until `stopped`.
async fn schedule(
    mut agents: Agents,
    api: Api,
    sandbox_url: String,
    sandbox: Sandbox,
    print: Printer,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let say = |s: String| print(&format!("{} {s}", stamp(started)));
    agents.spawn(VOL_ARB, Kind::VolArb, "vol-arb@1.0.0", VOL_ARB_MARGIN_USD);
    agents.spawn(CASINO, Kind::Casino, "casino-kelly@1.0.0", 200.0);
    agents.spawn(ESCROW, Kind::Escrow, "escrow-domains@1.0.0", 10_000.0);
    say(format!(
        "fault: ag_vol_arb holds ${VOL_ARB_MARGIN_USD:.0} of margin: enough for a BTC order (at most $100), never for an ETH order (at least $125): ETH orders fail (InsufficientMargin)"
    ));

    let admin = SandboxAdmin::new(&sandbox_url);
    let prices = purpleflea_client::Client::builder()
        .sandbox(&sandbox_url)
        .build()
        .ok();
    // The live fault configuration: each step adds or removes its own part.
    let mut faults = base_faults();
    let t0 = tokio::time::Instant::now();
    // (second, step)
    let mut steps: Vec<(u64, Step)> = vec![
        (10, Step::WedgeScheduler),
        (20, Step::CrashAndRestart),
        (28, Step::CrashForGood),
        (40, Step::LatencyOn),
        (55, Step::Deploy),
        (90, Step::LatencyOff),
        (95, Step::EscrowFixed),
    ];
    steps.extend((0..9).map(|i| (12 + 3 * i, Step::Shock(i))));
    steps.sort_by_key(|(at, _)| *at);
    for (at, step) in steps {
        let due = t0 + Duration::from_secs(at);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = until_stopped(&mut stopped) => {
                agents.stop_all().await;
                return;
            }
        }
        match step {
            Step::WedgeScheduler => {
                if let Some(c) = agents.controls(VOL_ARB) {
                    c.stall_scheduler(true);
                }
                say("fault: vol-arb's scheduler is wedged: the recalibration job stops checking in (the cron monitor misses in about two minutes)".into());
            }
            Step::Shock(i) => {
                let sign = if i % 2 == 0 { 1.03 } else { 1.0 / 1.03 };
                for coin in ["BTC", "ETH"] {
                    let mid = match &prices {
                        Some(c) => c.trading().price(coin).await.ok().and_then(|p| p.price),
                        None => None,
                    };
                    let Some(mid) = mid else {
                        say(format!("could not read the {coin} price"));
                        continue;
                    };
                    let price = (mid * sign * 100.0).round() / 100.0;
                    if let Err(e) = admin.set_market(coin, json!({"price": price})).await {
                        say(format!("could not move the {coin} market: {e}"));
                    }
                }
                if i == 0 {
                    say("fault: BTC and ETH jump ±3 % every 3 s for 25 s: the volatility circuit breaker rejects orders (risk.check)".into());
                }
            }
            Step::CrashAndRestart => {
                say(
                    "fault: ag_escrow_domains panics; its supervisor restarts it within seconds"
                        .into(),
                );
                let crashed = agents.crash(ESCROW).await;
                if !crashed {
                    say("ag_escrow_domains did not crash as planned".into());
                }
                agents.spawn(ESCROW, Kind::Escrow, "escrow-domains@1.0.0", 10_000.0);
                say(
                    "ag_escrow_domains restarted: a new session within the 60 s grace, so no alert"
                        .into(),
                );
            }
            Step::CrashForGood => {
                say("fault: ag_casino_kelly panics and stays down (the crash alert fires after 60 s of grace)".into());
                if !agents.crash(CASINO).await {
                    say("ag_casino_kelly did not crash as planned".into());
                }
            }
            Step::LatencyOn => {
                faults = faults.with_endpoint(
                    Service::Trading,
                    TRADE_OPEN,
                    FaultRule {
                        latency: Some(Latency::fixed(2_500.0)),
                        ..FaultRule::default()
                    },
                );
                match sandbox.set_faults(faults.clone()) {
                    Ok(()) => say("fault: POST /trade/open takes 2.5 s for 50 s (order pipelines breach the 2 s p99)".into()),
                    Err(e) => say(format!("could not set the latency fault: {e}")),
                }
            }
            Step::LatencyOff => {
                without_endpoint(&mut faults, Service::Trading, TRADE_OPEN);
                let _ = sandbox.set_faults(faults.clone());
                say("latency back to normal".into());
            }
            Step::Deploy => {
                let version = "escrow-domains@1.1.0";
                match api.deploy(version, "paper").await {
                    Ok(()) => say(format!(
                        "deploy: release {version} created and deployed to paper through the REST API"
                    )),
                    Err(e) => say(format!("deploy failed: {e}")),
                }
                agents.stop(ESCROW).await;
                faults = faults.with_endpoint(
                    Service::Escrow,
                    ESCROW_CREATE,
                    FaultRule {
                        errors: Some(BTreeMap::from([("402".to_owned(), 1.0)])),
                        ..FaultRule::default()
                    },
                );
                if let Err(e) = sandbox.set_faults(faults.clone()) {
                    say(format!("could not set the escrow fault: {e}"));
                }
                agents.spawn(ESCROW, Kind::Escrow, version, 10_000.0);
                say(format!(
                    "fault: ag_escrow_domains restarted on {version}, whose escrows are refused (402 insufficient_balance): a new issue right after the deploy"
                ));
            }
            Step::EscrowFixed => {
                without_endpoint(&mut faults, Service::Escrow, ESCROW_CREATE);
                let _ = sandbox.set_faults(faults.clone());
                say("escrow creation works again".into());
            }
        }
    }
    until_stopped(&mut stopped).await;
    agents.stop_all().await;
}

const TRADE_OPEN: &str = "POST /trade/open";
const ESCROW_CREATE: &str = "POST /escrow/create";

/// Remove the fault rule of one endpoint pattern.
fn without_endpoint(faults: &mut FaultConfig, service: Service, pattern: &str) {
    if let Some(s) = faults.services.get_mut(service.name()) {
        s.endpoints.remove(pattern);
    }
}

/// Wait until the demo is told to stop (or its stop sender is gone).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

#[derive(Debug, Clone, Copy)]
enum Step {
    WedgeScheduler,
    Shock(u64),
    CrashAndRestart,
    CrashForGood,
    LatencyOn,
    LatencyOff,
    Deploy,
    EscrowFixed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_secret_and_the_exact_body() {
        let body = br#"{"action":"triggered"}"#;
        let header = crate::alerts::notify::signature("s3cret", 1_700_000_000, body);
        assert!(verify_signature("s3cret", Some(&header), body));
        assert!(!verify_signature("other", Some(&header), body));
        assert!(!verify_signature("s3cret", Some(&header), b"{}"));
        assert!(!verify_signature("s3cret", None, body));
        assert!(!verify_signature("s3cret", Some("t=1,v1=zz"), body));
    }

    #[test]
    fn only_signed_triggers_count_as_delivered() {
        let d = |action: &str, preset: Option<&str>, ok: bool| Delivery {
            action: action.into(),
            rule: "r".into(),
            preset: preset.map(str::to_owned),
            title: "t".into(),
            signature_ok: ok,
        };
        let got = presets_delivered(&[
            d("triggered", Some("session_crash"), true),
            d("resolved", Some("error_rate_spike"), true),
            d("triggered", Some("p99_latency_breach"), false),
            d("triggered", None, true),
        ]);
        assert_eq!(got, BTreeSet::from(["session_crash".to_owned()]));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generated_password(), generated_password());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
