//! Per-key event quotas: a fixed one-minute window per client key.
//!
//! Only events count (error/default events and transactions); sessions, check-ins, logs
//! and client reports are never limited, as a monitoring agent's heartbeat must get through
//! an error storm. A refused request is refused whole: nothing of it is stored.

use std::collections::HashMap;
use std::sync::Mutex;

/// Categories named in `X-Sentry-Rate-Limits` when a key's event quota is spent.
pub const LIMITED_CATEGORIES: &str = "default;error;transaction;security";

/// Fixed-window counters per key.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<i64, (i64, u64)>>,
}

/// A refusal: when the window resets, and the header for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Whole seconds until the window resets (at least 1).
    pub retry_after: u64,
    /// The `X-Sentry-Rate-Limits` header value.
    pub header: String,
}

impl RateLimiter {
    /// Admit `events` more events for `key_id` at `now_secs` under `limit` per minute
    /// (0 = unlimited). Admitted events are counted; refused ones are not.
    pub fn admit(
        &self,
        key_id: i64,
        limit: u32,
        events: u64,
        now_secs: i64,
    ) -> Result<(), Refusal> {
        if limit == 0 || events == 0 {
            return Ok(());
        }
        let minute = now_secs.div_euclid(60);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > 100_000 {
            windows.retain(|_, (m, _)| *m == minute);
        }
        let entry = windows.entry(key_id).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 + events > u64::from(limit) {
            let retry_after = u64::try_from(60 - now_secs.rem_euclid(60))
                .unwrap_or(60)
                .max(1);
            return Err(Refusal {
                retry_after,
                header: format!("{retry_after}:{LIMITED_CATEGORIES}:key"),
            });
        }
        entry.1 += events;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_and_resets() {
        let rl = RateLimiter::default();
        let t = 1_700_000_020; // 40 s into a minute
        assert!(rl.admit(1, 3, 2, t).is_ok());
        assert!(rl.admit(1, 3, 1, t + 1).is_ok());
        let r = rl.admit(1, 3, 1, t + 2).unwrap_err();
        assert_eq!(r.retry_after, 18);
        assert_eq!(r.header, "18:default;error;transaction;security:key");
        // Other keys are independent; unlimited keys are never refused.
        assert!(rl.admit(2, 3, 3, t).is_ok());
        assert!(rl.admit(1, 0, 1000, t).is_ok());
        // Next minute.
        assert!(rl.admit(1, 3, 3, t + 20).is_ok());
    }
}
