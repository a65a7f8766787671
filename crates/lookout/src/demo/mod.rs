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
//! * a fault schedule that provokes each of the seven alert presets within about two minutes:
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
//! | 100–130 s | two more trading agents start (`ag_momentum`, `ag_mean_revert`, at 92 s) and the trading venue refuses every order (`POST /trade/open` answers 503): three agents fail on one service | `venue_outage` (one incident naming the service, its endpoints, the status and the agents, not one per agent) |
//!
//!
//! The kill switch: a rule pauses `ag_vol_arb` on its first `InsufficientMargin` (within
//! seconds of the start); the demo prints its order count at the pause, 2 s and 7 s later
//! (it stops rising), resumes it through the REST API and prints when it trades again.
//!
//! Alerts that fire on a *new* issue fire once per data directory: run with `--temp` (or a
//! fresh `--data-dir`) to see all seven again.

mod api;
mod receiver;
mod schedule;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_server::config::Config;
use lookout_server::store::Store;
use lookout_server::{RunningServer, Server, ServerError};
use purpleflea_sandbox::{FaultConfig, FaultRule, Latency, Sandbox, SandboxConfig, SandboxHandle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use api::Api;
use schedule::{Agents, schedule};

/// The seven presets, in the order the schedule usually fires them.
pub(crate) const PRESETS: [&str; 7] = [
    "critical_trade_failure",
    "error_rate_spike",
    "risk_check_failure_rate",
    "p99_latency_breach",
    "new_issue_after_deploy",
    "session_crash",
    "venue_outage",
];

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DemoError {
    /// The server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The data directory could not be opened.
    #[error("data directory: {0}")]
    Store(#[from] lookout_server::store::StoreError),
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
pub(crate) struct DemoOptions {
    /// The server's configuration (listen address, data directory, ...).
    pub(crate) config: Config,
    /// Seed of the sandbox and the agents.
    pub(crate) seed: u64,
}

impl DemoOptions {
    /// Options for `config`, seed 1.
    pub(crate) fn new(config: Config) -> Self {
        Self { config, seed: 1 }
    }
}

/// Where the demo's lines go (stdout in `lookout demo`).
pub(crate) type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// How to log in to the web UI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Login {
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
pub(crate) struct Delivery {
    /// `triggered` or `resolved`.
    pub(crate) action: String,
    /// The rule's name.
    pub(crate) rule: String,
    /// The preset the rule came from, if any.
    pub(crate) preset: Option<String>,
    /// The incident's title.
    pub(crate) title: String,
    /// Whether the `Lookout-Signature` verified against the channel's secret.
    pub(crate) signature_ok: bool,
}

/// A running demo; [`Demo::stop`] ends it.
pub(crate) struct Demo {
    server: RunningServer,
    sandbox: SandboxHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    receiver: JoinHandle<()>,
    login: Login,
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
    pub(crate) async fn start(options: DemoOptions, print: Printer) -> Result<Demo, DemoError> {
        quiet_planned_panics();
        let started = Instant::now();
        let mut config = options.config;
        // The account: an explicit password wins; a fresh data directory gets a generated
        // one; an existing account is left alone.
        let store = Store::open(&config.data_dir)?;
        let users = store.users();
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
        let had_issues = store.reader().any_issue()?;
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
        let api = Api::new(server.base_url(), token);

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
        let (receiver_url, receiver) = receiver::start(
            secret.clone(),
            api.clone(),
            deliveries,
            Arc::clone(&print),
            started,
        )
        .await?;
        api.replace_channels(&receiver_url, &secret).await?;
        api.ensure_pause_rule("ag_vol_arb").await?;

        let (stop, stopped) = watch::channel(false);
        let mut demo = Demo {
            server,
            sandbox,
            stop,
            tasks: Vec::new(),
            receiver,
            login,
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
            "  the fault schedule provokes the seven alert presets within about two minutes; Ctrl-C stops the demo",
        );
    }

    /// Stop the agents (their sessions end `exited`), the schedule, the receiver, the
    /// sandbox and the server (which commits everything it acknowledged).
    ///
    /// # Errors
    ///
    /// When the server or the sandbox fails to stop cleanly.
    pub(crate) async fn stop(self) -> Result<(), DemoError> {
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

/// Print a line when a monitor (a cron job or an agent's heartbeat) fails or recovers.
async fn watch_monitors(
    api: Api,
    print: Printer,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let mut failing: BTreeSet<String> = BTreeSet::new();
    loop {
        if let Ok(monitors) = api.monitors().await {
            for m in &monitors {
                let slug = m.slug.clone();
                let status = m.failing_status();
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

fn stamp(started: Instant) -> String {
    format!("[+{:>4}s]", started.elapsed().as_secs())
}

/// Wait until the demo is told to stop (or its stop sender is gone).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// What the example agents' planned crashes say (`lookout_examples`' crash control).
const PLANNED_CRASH: &str = "(simulated crash)";

/// The demo's planned crashes print one line, whatever `RUST_BACKTRACE` says; any other
/// panic goes to the default hook as before. Installed before the agents start, so the
/// Sentry SDK's panic integration, which wraps the hook it finds, still reports every panic
/// with its stack trace.
fn quiet_planned_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if message.contains(PLANNED_CRASH) {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("lookout demo: planned panic: {message}");
                }
            } else {
                default(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generated_password(), generated_password());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
