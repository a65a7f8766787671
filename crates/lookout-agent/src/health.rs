//! Agent session health: a release-health session, heartbeats and a watchdog.
//!
//! ```no_run
//! use std::time::Duration;
//! use lookout_agent::health::{AgentSession, HealthOptions};
//!
//! let _guard = lookout_agent::init(lookout_agent::Options::new("ag_7f3a").release("bot@1.0.0"));
//! let session = AgentSession::start(
//!     "ag_7f3a",
//!     HealthOptions::new()
//!         .heartbeat_interval(Duration::from_secs(60))
//!         .watchdog_timeout(Duration::from_secs(300)),
//! );
//! loop {
//!     session.tick(); // one atomic store: the loop is alive
//!     // … one decision cycle …
//! #   break;
//! }
//! session.end(); // the session ends `exited`
//! ```
//!
//! - **Session**: [`AgentSession::start`] starts a release-health session on the hub (it
//!   needs a release). It ends `exited` by [`AgentSession::end`] or drop, `crashed` when a
//!   panic is captured (the panic integration marks the event unhandled), `abnormal` when the
//!   watchdog fires.
//! - **Heartbeats**: a background thread sends an `ok` check-in to the monitor
//!   `agent-<agent id>-heartbeat` every interval, with a `monitor_config` (interval schedule
//!   in minutes, check-in margin) so the server creates the monitor by itself. It sends one
//!   only while the loop ticks: a hung or crashed agent stops checking in and the server
//!   marks the monitor missed.
//! - **Watchdog**: when the loop has not ticked for the watchdog timeout, the thread sends an
//!   `error` check-in and an error event (`AgentStalled`), once per stall, and ends the
//!   session `abnormal`. When the loop ticks again, a new session starts and heartbeats resume.
//!
//! Nothing here runs on the agent's loop but [`AgentSession::tick`], so heartbeats never delay
//! it, under tokio or not.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sentry::Hub;
use sentry::protocol::{
    Event, Exception, Level, MonitorCheckIn, MonitorCheckInStatus, MonitorConfig,
    MonitorIntervalUnit, MonitorSchedule, SessionStatus,
};
use uuid::Uuid;

use crate::cron::send_check_in;

/// The slug of an agent's heartbeat monitor: `agent-<agent id>-heartbeat`.
pub fn heartbeat_slug(agent_id: &str) -> String {
    format!("agent-{agent_id}-heartbeat")
}

/// Settings of an [`AgentSession`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HealthOptions {
    heartbeat_interval: Duration,
    checkin_margin_minutes: u64,
    watchdog_timeout: Duration,
    heartbeats: bool,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(60),
            checkin_margin_minutes: 1,
            watchdog_timeout: Duration::from_secs(300),
            heartbeats: true,
        }
    }
}

impl HealthOptions {
    /// Heartbeat every 60 s with a 1 minute margin; watchdog after 5 minutes without a tick.
    pub fn new() -> Self {
        Self::default()
    }

    /// How often to send a heartbeat (at least 10 ms). The monitor's schedule is this
    /// interval rounded up to whole minutes.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Minutes after a heartbeat was due before the server counts it missed.
    pub fn checkin_margin_minutes(mut self, minutes: u64) -> Self {
        self.checkin_margin_minutes = minutes;
        self
    }

    /// How long the loop may go without [`AgentSession::tick`] before the watchdog fires.
    pub fn watchdog_timeout(mut self, timeout: Duration) -> Self {
        self.watchdog_timeout = timeout;
        self
    }

    /// Whether to send heartbeat check-ins at all (the watchdog still runs).
    pub fn heartbeats(mut self, yes: bool) -> Self {
        self.heartbeats = yes;
        self
    }

    /// The `monitor_config` sent with each heartbeat.
    pub fn monitor_config(&self) -> MonitorConfig {
        let minutes = self.heartbeat_interval.as_secs().div_ceil(60).max(1);
        MonitorConfig {
            schedule: MonitorSchedule::Interval {
                value: minutes,
                unit: MonitorIntervalUnit::Minute,
            },
            checkin_margin: Some(self.checkin_margin_minutes),
            max_runtime: None,
            timezone: None,
            failure_issue_threshold: None,
            recovery_threshold: None,
        }
    }
}

struct Shared {
    hub: Arc<Hub>,
    slug: String,
    agent_id: String,
    options: HealthOptions,
    origin: Instant,
    /// Milliseconds since `origin` of the last tick.
    last_tick_ms: AtomicU64,
    stalls: AtomicU64,
}

impl Shared {
    fn since_origin_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn heartbeat(&self, status: MonitorCheckInStatus) {
        send_check_in(
            &self.hub,
            MonitorCheckIn {
                check_in_id: Uuid::new_v4(),
                monitor_slug: self.slug.clone(),
                status,
                environment: None,
                duration: None,
                monitor_config: Some(self.options.monitor_config()),
            },
        );
    }

    fn fire_watchdog(&self, idle: Duration) {
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.heartbeat(MonitorCheckInStatus::Error);
        let mut event = Event {
            level: Level::Error,
            message: Some(format!(
                "agent {} main loop stalled: no tick for {:.1} s (watchdog {:.1} s)",
                self.agent_id,
                idle.as_secs_f64(),
                self.options.watchdog_timeout.as_secs_f64()
            )),
            fingerprint: vec!["agent-stalled".into(), self.agent_id.clone().into()].into(),
            ..Default::default()
        };
        event.exception.values.push(Exception {
            ty: "AgentStalled".to_owned(),
            value: event.message.clone(),
            ..Default::default()
        });
        event
            .tags
            .insert("watchdog".to_owned(), "stalled".to_owned());
        self.hub.capture_event(event);
        self.hub.end_session_with_status(SessionStatus::Abnormal);
    }

    /// One step of the background thread: heartbeat, fire, or recover.
    fn step(&self, fired: &mut bool) {
        let idle_ms = self
            .since_origin_ms()
            .saturating_sub(self.last_tick_ms.load(Ordering::Relaxed));
        let idle = Duration::from_millis(idle_ms);
        if idle >= self.options.watchdog_timeout {
            if !*fired {
                *fired = true;
                self.fire_watchdog(idle);
            }
            return;
        }
        if *fired {
            // The loop is ticking again: a fresh session.
            *fired = false;
            self.hub.start_session();
        }
        if self.options.heartbeats {
            self.heartbeat(MonitorCheckInStatus::Ok);
        }
    }
}

/// A running agent's health: session, heartbeats and watchdog (see the [module docs](self)).
#[must_use = "the session ends when this is dropped"]
pub struct AgentSession {
    shared: Arc<Shared>,
    stop: Mutex<Option<Sender<()>>>,
    thread: Option<JoinHandle<()>>,
    ended: bool,
}

impl fmt::Debug for AgentSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSession")
            .field("slug", &self.shared.slug)
            .field("options", &self.shared.options)
            .field("stalls", &self.stalls())
            .finish_non_exhaustive()
    }
}

impl AgentSession {
    /// Start the session of the agent the current hub's client was set up for: the agent id
    /// given to [`Options::new`](crate::Options::new), so it is not repeated. On a hub whose
    /// client is not an agent's (or has none), the id is `unknown`; name it with
    /// [`AgentSession::start`].
    pub fn begin(options: HealthOptions) -> Self {
        Self::begin_on(Hub::current(), options)
    }

    /// [`AgentSession::begin`] on this hub.
    pub fn begin_on(hub: Arc<Hub>, options: HealthOptions) -> Self {
        let agent_id = crate::deferred::shared_of(&hub)
            .map_or_else(|| "unknown".to_owned(), |shared| shared.agent_id.clone());
        Self::start_on(hub, agent_id, options)
    }

    /// Start the session of this agent on the current hub, naming the agent (overriding the
    /// id the client was set up with).
    pub fn start(agent_id: impl Into<String>, options: HealthOptions) -> Self {
        Self::start_on(Hub::current(), agent_id, options)
    }

    /// Start the session of this agent on this hub.
    pub fn start_on(hub: Arc<Hub>, agent_id: impl Into<String>, options: HealthOptions) -> Self {
        let agent_id = agent_id.into();
        hub.start_session();
        let shared = Arc::new(Shared {
            hub,
            slug: heartbeat_slug(&agent_id),
            agent_id,
            options,
            origin: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        });
        if shared.options.heartbeats {
            // The first heartbeat creates the monitor on the server.
            shared.heartbeat(MonitorCheckInStatus::Ok);
        }
        let (stop, stopped) = channel::<()>();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("lookout-heartbeat".into())
            .spawn(move || {
                let mut fired = false;
                let period = thread_shared.options.heartbeat_interval.min(
                    thread_shared
                        .options
                        .watchdog_timeout
                        .max(Duration::from_millis(10)),
                );
                loop {
                    match stopped.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => thread_shared.step(&mut fired),
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .ok();
        Self {
            shared,
            stop: Mutex::new(Some(stop)),
            thread,
            ended: false,
        }
    }

    /// Mark the loop alive. One relaxed atomic store; call it once per cycle.
    pub fn tick(&self) {
        self.shared
            .last_tick_ms
            .store(self.shared.since_origin_ms(), Ordering::Relaxed);
    }

    /// How many times the watchdog fired.
    pub fn stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::Relaxed)
    }

    /// The heartbeat monitor's slug.
    pub fn monitor_slug(&self) -> &str {
        &self.shared.slug
    }

    /// End the session `exited` (also done on drop).
    pub fn end(mut self) {
        self.shutdown(SessionStatus::Exited);
    }

    /// End the session with this status (e.g. `abnormal` after an unrecoverable error).
    pub fn end_with_status(mut self, status: SessionStatus) {
        self.shutdown(status);
    }

    fn shutdown(&mut self, status: SessionStatus) {
        if let Ok(mut stop) = self.stop.lock() {
            // Dropping the sender wakes the thread at once.
            stop.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if !self.ended {
            self.ended = true;
            self.shared.hub.end_session_with_status(status);
        }
    }
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        self.shutdown(SessionStatus::Exited);
    }
}
