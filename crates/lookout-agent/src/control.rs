//! The kill switch, agent side: a control channel to the server of the agent's DSN.
//!
//! The agent's client (from [`crate::init`] or [`crate::Options::hub`]) starts one background
//! thread when it is built (no extra configuration: the DSN says where
//! and with which key) that long-polls
//! `GET {scheme}://{host}/api/{project_id}/agents/{agent_id}/control/?since=<version>&wait=25`
//! authenticated with the DSN's public key, reconnecting with backoff (0.5 s doubling to
//! 30 s) when the server cannot be reached. The server answers at once when the agent's
//! trading state changed, so a pause reaches the agent within about a second.
//!
//! While the agent is paused:
//! * [`is_trading_allowed`] is `false`, and callbacks registered with
//!   [`Options::on_trading_change`](crate::Options::on_trading_change) are called on each
//!   change;
//! * [`crate::OrderPipeline::start`] returns a refused pipeline: each stage returns a
//!   [`TradingError`] of kind [`TradingErrorKind::Paused`] without running, and nothing is
//!   sent; [`crate::OrderPipeline::try_start`] returns that error at once. The error is
//!   captured once per pause, not per attempt;
//! * [`crate::OrderPipeline::start_reduce_only`] still goes through: closing or reducing a
//!   position is what a paused agent may need to do.
//!
//! The library has no way to lift a pause: only the server (its API, its UI, an alert
//! resolving, Telegram) can, and the control endpoint is read-only for DSN keys.
//!
//! When the server cannot be reached, [`Unreachable`] decides: by default the agent keeps
//! trading as the last answer said and records the outage (a breadcrumb, a `tracing`
//! warning and [`failures`]); with [`Unreachable::PauseAfter`], it pauses itself after that
//! long without contact, until the server answers again. An agent without a DSN, or whose
//! server has no control endpoint (sentry.io answers 404), keeps trading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sentry::Hub;

use crate::error::{Phase, TradingError, TradingErrorKind};

/// How long the server may hold a control request before answering unchanged (seconds).
pub const WAIT_SECS: u64 = 25;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// What an agent id keeps unencoded in the control URL's path.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'-')
    .remove(b'.');
/// The version of a pause the agent made itself for [`Unreachable::PauseAfter`].
const LOCAL_PAUSE: i64 = -1;

/// What the agent does when its server cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unreachable {
    /// Keep trading as the server's last answer said, and record the outage (the default:
    /// a monitoring outage should not stop a healthy agent).
    #[default]
    KeepTrading,
    /// Pause after this long without an answer from the server, until it answers again.
    PauseAfter(Duration),
}

/// The agent's trading state as the server last said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingState {
    /// Whether trading is paused.
    pub paused: bool,
    /// Why (while paused).
    pub reason: Option<String>,
    /// Who paused it, in words (`rule "Trade failed" (#4)`, `API token "ops" (#2)`, …).
    pub paused_by: Option<String>,
    /// When the pause lifts itself (RFC 3339), if it does.
    pub until: Option<String>,
    /// The server's version of this state (`-1`: a pause the agent made itself because the
    /// server was unreachable too long).
    pub version: i64,
}

impl TradingState {
    fn active() -> Self {
        TradingState {
            paused: false,
            reason: None,
            paused_by: None,
            until: None,
            version: 0,
        }
    }
}

/// A callback told of every change of the trading state.
pub type Callback = Arc<dyn Fn(&TradingState) + Send + Sync>;

/// The control channel of one initialised agent.
pub(crate) struct Control {
    state: RwLock<TradingState>,
    allowed: AtomicBool,
    /// The version whose `Paused` error was captured, and that event's id.
    captured: Mutex<Option<(i64, uuid::Uuid)>>,
    callbacks: Vec<Callback>,
    stop: AtomicBool,
    failures: AtomicU64,
}

static CURRENT: RwLock<Option<Arc<Control>>> = RwLock::new(None);

fn current() -> Option<Arc<Control>> {
    CURRENT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Whether the agent may start an order now: `false` while the server has it paused (or, with
/// [`Unreachable::PauseAfter`], while the server has been unreachable too long). `true`
/// without a control channel (no DSN, not initialised). With several agents in one process,
/// this is the one whose client was built last; see [`is_trading_allowed_on`].
pub fn is_trading_allowed() -> bool {
    current().is_none_or(|c| c.allowed.load(Ordering::Acquire))
}

/// The trading state as the server last said it; `None` without a control channel.
pub fn trading_state() -> Option<TradingState> {
    current().map(|c| {
        c.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    })
}

/// Requests to the server that failed since the control channel started (unreachable,
/// refused, unreadable answers).
pub fn failures() -> u64 {
    current().map_or(0, |c| c.failures.load(Ordering::Relaxed))
}

/// The refusal of an order while paused: a [`TradingErrorKind::Paused`] error, captured on
/// `hub` the first time for each pause (later refusals carry the same event id). `None`
/// while trading is allowed.
pub(crate) fn refusal(hub: &Hub, asset: &str) -> Option<TradingError> {
    let control = control_of(hub)?;
    if control.allowed.load(Ordering::Acquire) {
        return None;
    }
    let state = control
        .state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    // A stable message, so every refusal of an asset groups into one issue (the reason,
    // which may name earlier events, goes in tags): a pause rule on new issues does not
    // fire again on its own refusals.
    let clip = |s: &str| s.chars().take(200).collect::<String>();
    let mut error = TradingError::new(
        TradingErrorKind::Paused,
        "order refused: trading is paused by the kill switch",
    )
    .with_phase(Phase::Other("kill_switch".into()))
    .with_asset(asset)
    .with_tag(
        "kill_switch.paused_by",
        clip(state.paused_by.as_deref().unwrap_or("the server")),
    )
    .with_tag(
        "kill_switch.reason",
        clip(state.reason.as_deref().unwrap_or("no reason given")),
    );
    let mut captured = control
        .captured
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match *captured {
        Some((version, id)) if version == state.version => error.set_event_id(id),
        _ => {
            let id = crate::capture::capture_on(hub, &error, None, None);
            error.set_event_id(id);
            *captured = Some((state.version, id));
        }
    }
    Some(error)
}

/// Where and how to ask: the control URL (without `since`) and the auth header.
struct Endpoint {
    url: String,
    auth: String,
}

fn endpoint(dsn: &str, agent_id: &str) -> Option<Endpoint> {
    let dsn: sentry::types::Dsn = dsn.parse().ok()?;
    let port = dsn.port();
    let default_port = match dsn.scheme() {
        sentry::types::Scheme::Https => 443,
        sentry::types::Scheme::Http => 80,
    };
    let host = if port == default_port {
        dsn.host().to_owned()
    } else {
        format!("{}:{port}", dsn.host())
    };
    let agent = percent_encoding::utf8_percent_encode(agent_id, PATH_SEGMENT);
    Some(Endpoint {
        url: format!(
            "{}://{host}{}api/{}/agents/{agent}/control/",
            dsn.scheme(),
            dsn.path(),
            dsn.project_id()
        ),
        auth: format!(
            "Sentry sentry_version=7, sentry_client=lookout-agent/{}, sentry_key={}",
            env!("CARGO_PKG_VERSION"),
            dsn.public_key()
        ),
    })
}

/// What a control channel needs, kept by the agent's client until it is built.
pub(crate) struct Plan {
    pub(crate) dsn: String,
    pub(crate) agent_id: String,
    pub(crate) policy: Unreachable,
    pub(crate) callbacks: Vec<Callback>,
}

/// Start the control channel of `plan`'s agent on the server of its DSN; it becomes the
/// process's current one ([`is_trading_allowed`]). Returns the handle that stops it.
pub(crate) fn start(plan: Plan) -> Option<ControlHandle> {
    let Plan {
        dsn,
        agent_id,
        policy,
        callbacks,
    } = plan;
    let endpoint = endpoint(&dsn, &agent_id)?;
    let control = Arc::new(Control {
        state: RwLock::new(TradingState::active()),
        allowed: AtomicBool::new(true),
        captured: Mutex::new(None),
        callbacks,
        stop: AtomicBool::new(false),
        failures: AtomicU64::new(0),
    });
    *CURRENT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(&control));
    let worker = Arc::clone(&control);
    let spawned = std::thread::Builder::new()
        .name("lookout-control".into())
        .spawn(move || run(&worker, &endpoint, policy));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the kill switch's control channel");
    }
    Some(ControlHandle(Arc::new(Stopper(control))))
}

/// The control of `hub`'s agent while it runs, else the process's current one (a thread
/// whose hub still holds a client an earlier `init` replaced follows the new one).
fn control_of(hub: &Hub) -> Option<Arc<Control>> {
    crate::deferred::shared_of(hub)
        .and_then(|shared| shared.control.get().map(|h| Arc::clone(&(h.0).0)))
        .filter(|c| !c.stop.load(Ordering::Acquire))
        .or_else(current)
}

/// [`is_trading_allowed`] for the agent of `hub` (several agents in one process, each on a
/// hub of its own from [`crate::Options::hub`]).
pub fn is_trading_allowed_on(hub: &Hub) -> bool {
    control_of(hub).is_none_or(|c| c.allowed.load(Ordering::Acquire))
}

/// Stops the control channel when the last clone is dropped (held by the agent's client and
/// by the [`crate::Guard`]).
#[derive(Clone)]
pub(crate) struct ControlHandle(Arc<Stopper>);

/// Stops its control channel when dropped.
struct Stopper(Arc<Control>);

/// Stops a control channel when dropped, whoever else holds it (the [`crate::Guard`]).
pub(crate) struct StopOnDrop(pub(crate) ControlHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        (self.0).0.halt();
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Stopper {
    fn halt(&self) {
        self.0.stop.store(true, Ordering::Release);
        let mut current = CURRENT
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.0)) {
            *current = None;
        }
    }
}

impl Control {
    fn set(&self, new: TradingState) {
        let changed = {
            let mut state = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = state.paused != new.paused || state.version != new.version;
            *state = new.clone();
            changed
        };
        self.allowed.store(!new.paused, Ordering::Release);
        if changed {
            let (level, message) = if new.paused {
                (
                    sentry::Level::Warning,
                    format!(
                        "trading paused by {}: {}",
                        new.paused_by.as_deref().unwrap_or("the server"),
                        new.reason.as_deref().unwrap_or("no reason given")
                    ),
                )
            } else {
                (sentry::Level::Info, "trading resumed".to_owned())
            };
            tracing::warn!(paused = new.paused, version = new.version, "{message}");
            sentry::add_breadcrumb(sentry::Breadcrumb {
                category: Some("kill_switch".into()),
                message: Some(message),
                level,
                ..Default::default()
            });
            for callback in &self.callbacks {
                callback(&new);
            }
        }
    }
}

fn parse(body: &serde_json::Value) -> Option<TradingState> {
    let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(TradingState {
        paused: match body.get("trading")?.as_str()? {
            "paused" => true,
            "active" => false,
            _ => return None,
        },
        reason: text("reason"),
        paused_by: body
            .get("pausedBy")
            .and_then(|b| b.get("text"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        until: text("until"),
        version: body.get("version")?.as_i64()?,
    })
}

/// Sleep `d` in small steps, returning early when asked to stop; `true` when stopped.
fn nap(control: &Control, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if control.stop.load(Ordering::Acquire) {
            return true;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    control.stop.load(Ordering::Acquire)
}

fn run(control: &Control, endpoint: &Endpoint, policy: Unreachable) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(WAIT_SECS + 10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut backoff = FIRST_BACKOFF;
    let mut last_contact = Instant::now();
    let mut outage = false;
    let mut since: Option<i64> = None;
    while !control.stop.load(Ordering::Acquire) {
        let url = match since {
            Some(v) => format!("{}?since={v}&wait={WAIT_SECS}", endpoint.url),
            None => format!("{}?wait=0", endpoint.url),
        };
        let answer = agent
            .get(&url)
            .header("X-Sentry-Auth", &endpoint.auth)
            .call()
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                let status = r.status().as_u16();
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024)
                    .read_to_string()
                    .map_err(|e| format!("HTTP {status}: unreadable answer: {e}"))?;
                let body: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| format!("HTTP {status}: not JSON: {e}"))?;
                if status == 200 {
                    parse(&body).ok_or_else(|| format!("HTTP {status}: unexpected answer"))
                } else {
                    Err(format!(
                        "HTTP {status}: {}",
                        body.get("detail").and_then(|d| d.as_str()).unwrap_or("")
                    ))
                }
            });
        if control.stop.load(Ordering::Acquire) {
            return;
        }
        match answer {
            Ok(state) => {
                if outage {
                    outage = false;
                    tracing::info!("kill switch: the server answers again");
                }
                last_contact = Instant::now();
                backoff = FIRST_BACKOFF;
                since = Some(state.version);
                control.set(state);
            }
            Err(why) => {
                control.failures.fetch_add(1, Ordering::Relaxed);
                if !outage {
                    outage = true;
                    tracing::warn!(error = %why, "kill switch: cannot reach the server; trading as last told");
                    sentry::add_breadcrumb(sentry::Breadcrumb {
                        category: Some("kill_switch".into()),
                        message: Some(format!("control channel unreachable: {why}")),
                        level: sentry::Level::Warning,
                        ..Default::default()
                    });
                }
                if let Unreachable::PauseAfter(after) = policy
                    && last_contact.elapsed() >= after
                    && control.allowed.load(Ordering::Acquire)
                {
                    since = None;
                    control.set(TradingState {
                        paused: true,
                        reason: Some(format!(
                            "no contact with the server for {} s",
                            after.as_secs()
                        )),
                        paused_by: Some("the agent's unreachable-server policy".into()),
                        until: None,
                        version: LOCAL_PAUSE,
                    });
                }
                let jitter = Duration::from_millis(rand::random::<u64>() % 250);
                let wait = match policy {
                    // Never sleep past the moment the policy pauses.
                    Unreachable::PauseAfter(after) => backoff
                        .min(after.saturating_sub(last_contact.elapsed()))
                        .max(Duration::from_millis(100)),
                    Unreachable::KeepTrading => backoff + jitter,
                };
                if nap(control, wait) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_dsn() {
        let e = endpoint("http://abc@127.0.0.1:9000/42", "ag vol").unwrap();
        assert_eq!(
            e.url,
            "http://127.0.0.1:9000/api/42/agents/ag%20vol/control/"
        );
        assert!(e.auth.contains("sentry_key=abc"));
        let e = endpoint("https://k@o1.ingest.example.com/sub/7", "a").unwrap();
        assert_eq!(
            e.url,
            "https://o1.ingest.example.com/sub/api/7/agents/a/control/"
        );
        assert!(endpoint("not a dsn", "a").is_none());
    }

    #[test]
    fn answers_parse() {
        let s = parse(&serde_json::json!({"trading": "paused", "reason": "r",
            "pausedBy": {"text": "rule \"x\" (#1)"}, "until": null, "version": 4}))
        .unwrap();
        assert!(s.paused);
        assert_eq!(s.version, 4);
        assert_eq!(s.paused_by.as_deref(), Some("rule \"x\" (#1)"));
        assert!(parse(&serde_json::json!({"trading": "maybe", "version": 1})).is_none());
    }
}
