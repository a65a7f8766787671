//! Time, and the periodic jobs that act on what is *absent* (a missed check-in, a silent
//! agent, a window that closed without events).
//!
//! Everything that asks "what time is it" for such decisions goes through a [`Clock`], so a
//! test can run the server on a [`Clock::manual`] clock, move it forward and call
//! [`crate::RunningServer::tick`] to run every [`TickJob`] once, deterministically. In
//! production the server runs the jobs every `tick_interval_ms` on the system clock.

use crate::store::Result;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The server's notion of now, in milliseconds since the Unix epoch.
#[derive(Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to (tests).
    Manual(Arc<AtomicI64>),
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Clock::System => f.write_str("Clock::System"),
            Clock::Manual(t) => write!(f, "Clock::Manual({})", t.load(Ordering::SeqCst)),
        }
    }
}

impl Clock {
    /// A manual clock starting at `start_ms`.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Now, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Move a manual clock forward by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Set a manual clock to `ms` (no effect on the system clock).
    pub fn set(&self, ms: i64) {
        if let Clock::Manual(t) = self {
            t.store(ms, Ordering::SeqCst);
        }
    }

    /// Whether this clock only moves when told to.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

/// A periodic job run on every tick with the clock's time. Runs on a blocking thread.
pub trait TickJob: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Do the job for time `now_ms`.
    fn tick(&self, now_ms: i64) -> Result<()>;
}

/// The jobs run on every tick, in order.
#[derive(Debug, Clone, Default)]
pub struct Ticks {
    jobs: Vec<Arc<dyn TickJob>>,
}

impl Ticks {
    /// Add a job.
    pub fn push(&mut self, job: Arc<dyn TickJob>) {
        self.jobs.push(job);
    }

    /// Run every job once for `now_ms`, on a blocking thread; a failing job is logged and
    /// does not stop the others.
    pub async fn run(&self, now_ms: i64) {
        for job in &self.jobs {
            let job = Arc::clone(job);
            let name = job.name();
            match tokio::task::spawn_blocking(move || job.tick(now_ms)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(job = name, error = %e, "tick job failed"),
                Err(e) => tracing::warn!(job = name, error = %e, "tick job panicked"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(500);
        assert_eq!(c.now_ms(), 1_500);
        c.set(10);
        assert_eq!(c.now_ms(), 10);
        let system = Clock::System;
        system.advance(1_000_000);
        assert!((system.now_ms() - chrono::Utc::now().timestamp_millis()).abs() < 60_000);
    }
}
