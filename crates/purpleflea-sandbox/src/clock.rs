//! The sandbox's clock: real time (optionally shifted) or a manual clock that only moves when
//! told to.
//!
//! Everything time-dependent in the sandbox (escrow timeouts and their 5-minute sweep, auction
//! expiry, the 30-second limit/stop monitor, the price random walk, rate-limit windows, fault
//! outage windows and 429 bursts) reads this clock, never the system time directly. Scheduled
//! jobs catch up lazily: the next request after the clock moved runs every sweep and monitor
//! pass that fell due in between, at the times they were due. Tests therefore advance the
//! clock (from Rust or through `POST /_admin/clock/advance`) instead of sleeping.
//!
//! Injected latency and hangs are real (wall-clock) delays: they imitate the network.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::Error;

/// A cloneable handle to the sandbox clock; all clones share the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Mutex<Mode>>,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Wall-clock time plus an offset that [`Clock::advance`] grows.
    System { offset: TimeDelta },
    /// A frozen time that moves only through [`Clock::advance`] and [`Clock::set`].
    Manual { now: DateTime<Utc> },
}

impl Clock {
    /// A clock that follows the system time; [`Clock::advance`] shifts it forward.
    #[must_use]
    pub fn system() -> Self {
        Self::from_mode(Mode::System {
            offset: TimeDelta::zero(),
        })
    }

    /// A clock frozen at `start` that moves only when advanced or set.
    #[must_use]
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self::from_mode(Mode::Manual { now: start })
    }

    fn from_mode(mode: Mode) -> Self {
        Self {
            inner: Arc::new(Mutex::new(mode)),
        }
    }

    /// The current time of this clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        match *self.lock() {
            Mode::System { offset } => Utc::now() + offset,
            Mode::Manual { now } => now,
        }
    }

    /// Whether this is a manual clock (frozen between advances).
    #[must_use]
    pub fn is_manual(&self) -> bool {
        matches!(*self.lock(), Mode::Manual { .. })
    }

    /// Moves the clock forward by `by` and returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let delta = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut mode = self.lock();
        match &mut *mode {
            Mode::System { offset } => {
                *offset = offset.checked_add(&delta).unwrap_or(*offset);
                Utc::now() + *offset
            }
            Mode::Manual { now } => {
                *now = now.checked_add_signed(delta).unwrap_or(*now);
                *now
            }
        }
    }

    /// Moves the clock to `to`.
    ///
    /// # Errors
    ///
    /// [`Error::ClockBackwards`] when `to` is earlier than the current time: the sandbox's
    /// scheduled jobs only run forward.
    pub fn set(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        let mut mode = self.lock();
        let current = match *mode {
            Mode::System { offset } => Utc::now() + offset,
            Mode::Manual { now } => now,
        };
        if to < current {
            return Err(Error::ClockBackwards {
                now: current,
                requested: to,
            });
        }
        match &mut *mode {
            Mode::System { offset } => *offset += to - current,
            Mode::Manual { now } => *now = to,
        }
        Ok(to)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mode> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let clock = Clock::manual(start);
        assert_eq!(clock.now(), start);
        let later = clock.advance(Duration::from_secs(90));
        assert_eq!(later - start, TimeDelta::seconds(90));
        assert!(clock.set(start).is_err());
        let shared = clock.clone();
        shared.advance(Duration::from_secs(10));
        assert_eq!(clock.now() - start, TimeDelta::seconds(100));
    }

    #[test]
    fn system_clock_advances_by_offset() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() - before >= TimeDelta::seconds(3600));
    }
}
