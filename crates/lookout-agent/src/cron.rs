//! Cron monitors: check-ins around a scheduled job.
//!
//! The `sentry` crate has the check-in types but no API to send them; [`CronMonitor`] builds
//! the envelope and sends it through the hub's client (so it goes through the same
//! non-blocking transport as events).
//!
//! ```
//! use lookout_agent::cron::CronMonitor;
//!
//! let monitor = CronMonitor::crontab("rebalance-portfolio", "*/15 * * * *")
//!     .expect("a valid crontab")
//!     .checkin_margin(2)
//!     .max_runtime(10)
//!     .timezone("UTC")
//!     .failure_issue_threshold(2)
//!     .recovery_threshold(1);
//! let rebalanced: Result<u32, std::io::Error> = monitor.run(|| Ok(3));
//! # assert_eq!(rebalanced.unwrap(), 3);
//! ```
//!
//! [`CronMonitor::run`] sends `in_progress`, runs the job, then `ok` or `error` with the same
//! `check_in_id`, the job's duration and the monitor config (an upsert: the server creates or
//! updates the monitor). A job that panics, or an async job dropped before it completes,
//! sends `error`.

use std::future::Future;
use std::time::Instant;

use sentry::protocol::{
    Envelope, EnvelopeItem, MonitorCheckIn, MonitorCheckInStatus, MonitorConfig,
    MonitorIntervalUnit, MonitorSchedule,
};
use sentry::{Hub, SentryFutureExt};
use uuid::Uuid;

/// A monitor's configuration is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The crontab expression does not parse.
    #[error("invalid crontab {schedule:?} for monitor {slug:?}")]
    InvalidCrontab {
        /// The monitor slug.
        slug: String,
        /// The rejected expression.
        schedule: String,
    },
    /// The slug is empty or longer than 50 characters.
    #[error("invalid monitor slug {0:?}: 1 to 50 characters")]
    InvalidSlug(String),
}

/// Send a check-in through the hub's client. Returns `false` when no client is bound.
pub(crate) fn send_check_in(hub: &Hub, mut check_in: MonitorCheckIn) -> bool {
    let Some(client) = hub.client() else {
        return false;
    };
    if !client.is_enabled() {
        return false;
    }
    if check_in.environment.is_none() {
        check_in.environment = client.options().environment.as_deref().map(str::to_owned);
    }
    let mut envelope = Envelope::new();
    envelope.add_item(EnvelopeItem::MonitorCheckIn(check_in));
    client.send_envelope(envelope);
    true
}

/// A cron monitor: its slug and the config sent with every check-in.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct CronMonitor {
    slug: String,
    config: MonitorConfig,
}

impl CronMonitor {
    fn with_schedule(slug: String, schedule: MonitorSchedule) -> Result<Self, MonitorError> {
        if slug.is_empty() || slug.chars().count() > 50 {
            return Err(MonitorError::InvalidSlug(slug));
        }
        Ok(Self {
            slug,
            config: MonitorConfig {
                schedule,
                checkin_margin: None,
                max_runtime: None,
                timezone: None,
                failure_issue_threshold: None,
                recovery_threshold: None,
            },
        })
    }

    /// A monitor on a crontab schedule (validated here, e.g. `0 * * * *`).
    pub fn crontab(slug: impl Into<String>, schedule: &str) -> Result<Self, MonitorError> {
        let slug = slug.into();
        let parsed =
            MonitorSchedule::from_crontab(schedule).map_err(|_| MonitorError::InvalidCrontab {
                slug: slug.clone(),
                schedule: schedule.to_owned(),
            })?;
        Self::with_schedule(slug, parsed)
    }

    /// A monitor expecting a check-in every `value` `unit`s.
    pub fn interval(
        slug: impl Into<String>,
        value: u64,
        unit: MonitorIntervalUnit,
    ) -> Result<Self, MonitorError> {
        Self::with_schedule(
            slug.into(),
            MonitorSchedule::Interval {
                value: value.max(1),
                unit,
            },
        )
    }

    /// Minutes after the expected time before a check-in counts as missed.
    pub fn checkin_margin(mut self, minutes: u64) -> Self {
        self.config.checkin_margin = Some(minutes);
        self
    }

    /// Minutes a job may stay `in_progress` before it counts as timed out.
    pub fn max_runtime(mut self, minutes: u64) -> Self {
        self.config.max_runtime = Some(minutes);
        self
    }

    /// The tz database timezone of a crontab schedule (e.g. `Europe/Berlin`).
    pub fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.config.timezone = Some(timezone.into());
        self
    }

    /// Consecutive failures before the server opens an issue.
    pub fn failure_issue_threshold(mut self, n: u64) -> Self {
        self.config.failure_issue_threshold = Some(n);
        self
    }

    /// Consecutive successes before the server resolves it.
    pub fn recovery_threshold(mut self, n: u64) -> Self {
        self.config.recovery_threshold = Some(n);
        self
    }

    /// The slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The config sent with each check-in.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Send one check-in on the current hub and return its id. `check_in_id` ties an
    /// `in_progress` check-in to the one that completes it; `None` starts a new one.
    pub fn check_in(
        &self,
        status: MonitorCheckInStatus,
        check_in_id: Option<Uuid>,
        duration_secs: Option<f64>,
    ) -> Uuid {
        self.check_in_on(&Hub::current(), status, check_in_id, duration_secs)
    }

    fn check_in_on(
        &self,
        hub: &Hub,
        status: MonitorCheckInStatus,
        check_in_id: Option<Uuid>,
        duration_secs: Option<f64>,
    ) -> Uuid {
        let check_in_id = check_in_id.unwrap_or_else(Uuid::new_v4);
        send_check_in(
            hub,
            MonitorCheckIn {
                check_in_id,
                monitor_slug: self.slug.clone(),
                status,
                environment: None,
                duration: duration_secs,
                monitor_config: Some(self.config.clone()),
            },
        );
        check_in_id
    }

    fn begin(&self, hub: std::sync::Arc<Hub>) -> Run<'_> {
        let id = self.check_in_on(&hub, MonitorCheckInStatus::InProgress, None, None);
        Run {
            monitor: self,
            hub,
            id,
            started: Instant::now(),
            done: false,
        }
    }

    /// Run a job between an `in_progress` and an `ok` (on `Ok`) or `error` (on `Err` or a
    /// panic, which is then resumed) check-in.
    pub fn run<T, E>(&self, job: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let mut run = self.begin(Hub::current());
        let result = job();
        run.end(result.is_ok());
        result
    }

    /// Run an async job between an `in_progress` and an `ok`/`error` check-in; the future is
    /// bound to the hub current when it was called. Dropping the returned future before it
    /// completes sends `error`.
    pub async fn run_async<T, E, Fut>(&self, job: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let hub = Hub::current();
        let mut run = self.begin(hub.clone());
        let result = job.bind_hub(hub).await;
        run.end(result.is_ok());
        result
    }
}

/// A job between its `in_progress` check-in and its last; sends `error` if dropped early.
struct Run<'a> {
    monitor: &'a CronMonitor,
    hub: std::sync::Arc<Hub>,
    id: Uuid,
    started: Instant,
    done: bool,
}

impl Run<'_> {
    fn end(&mut self, ok: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let status = if ok {
            MonitorCheckInStatus::Ok
        } else {
            MonitorCheckInStatus::Error
        };
        let duration = self.started.elapsed().as_secs_f64();
        self.monitor
            .check_in_on(&self.hub, status, Some(self.id), Some(duration));
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        // Reached with `done == false` only by a panic or a cancelled future.
        self.end(false);
    }
}
