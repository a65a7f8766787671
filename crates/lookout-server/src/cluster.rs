//! Who does the singleton jobs. On the embedded store one process is the whole server and
//! always leads. On a shared database every node ingests, digests and serves, and one node
//! at a time — the holder of the `leader` lease — runs the alert stage, the periodic ticks
//! (missed check-ins, agents down), retention and the notifier.
//!
//! The leader renews its lease every [`RENEW_EVERY`] for [`LEASE_TTL`]. It counts itself
//! leader only until [`TRUST_FOR`] after the start of its last successful renewal, which is
//! shorter than the lease: a leader cut off from the database stops its jobs before another
//! node can take the lease, so two nodes never run them at once. When a leader dies, the
//! lease lapses and another node takes it within `LEASE_TTL + RENEW_EVERY` (6 s).

use crate::store::Store;
use crate::store::leases::Leases;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The lease's name.
const LEADER: &str = "leader";
/// How long a lease lasts in the database.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often nodes try to take or renew it.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a node trusts a renewal: a margin under the lease for clocks and latency.
const TRUST_FOR: Duration = Duration::from_millis(3_500);

/// This node's role, cheap to clone and ask.
#[derive(Debug, Clone)]
pub struct Role {
    inner: Arc<RoleInner>,
}

#[derive(Debug)]
struct RoleInner {
    /// The only node there is (embedded store): always leader.
    single: bool,
    /// Until when this node leads, by its monotonic clock.
    until: Mutex<Option<Instant>>,
}

impl Role {
    /// The role of the only node (embedded store, in-process tests): always leader.
    pub fn single() -> Role {
        Role {
            inner: Arc::new(RoleInner {
                single: true,
                until: Mutex::new(None),
            }),
        }
    }

    fn shared() -> Role {
        Role {
            inner: Arc::new(RoleInner {
                single: false,
                until: Mutex::new(None),
            }),
        }
    }

    /// Whether this node runs the singleton jobs now.
    pub fn is_leader(&self) -> bool {
        self.inner.single
            || self
                .inner
                .until
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some_and(|until| Instant::now() < until)
    }

    /// `leader` or `follower`, as `/health` and `/metrics` say it.
    pub fn name(&self) -> &'static str {
        if self.is_leader() {
            "leader"
        } else {
            "follower"
        }
    }

    fn set(&self, until: Option<Instant>) {
        *self
            .inner
            .until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = until;
    }
}

/// The task that keeps the lease; stop it to give the lease up.
#[derive(Debug)]
pub struct Leadership {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Stop renewing and release the lease if held, so another node takes over at once.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "leadership task ended badly");
        }
    }
}

/// This node's role on `store`, and on a shared database the task that contends for the
/// lease (its first attempt is made before this returns, so a lone node leads at once).
pub async fn start(store: &Store) -> (Role, Option<Leadership>) {
    if store.path().is_some() {
        return (Role::single(), None);
    }
    let role = Role::shared();
    let leases = store.leases();
    renew(&leases, &role).await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = {
        let role = role.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(RENEW_EVERY) => renew(&leases, &role).await,
                    _ = stopped.changed() => break,
                }
            }
            let was_leader = role.is_leader();
            role.set(None);
            if was_leader {
                let l = leases.clone();
                match tokio::task::spawn_blocking(move || l.release(LEADER)).await {
                    Ok(Ok(())) => tracing::info!("leader lease released"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "releasing the leader lease failed"),
                    Err(e) => tracing::warn!(error = %e, "releasing the leader lease failed"),
                }
            }
        })
    };
    (role, Some(Leadership { stop, task }))
}

/// One attempt to take or renew the lease.
async fn renew(leases: &Leases, role: &Role) {
    let started = Instant::now();
    let was = role.is_leader();
    let l = leases.clone();
    let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
    let held = tokio::task::spawn_blocking(move || l.try_hold(LEADER, ttl)).await;
    match held {
        Ok(Ok(true)) => {
            role.set(Some(started + TRUST_FOR));
            if !was {
                tracing::info!("this node is now the leader");
            }
        }
        Ok(Ok(false)) => {
            role.set(None);
            if was {
                tracing::warn!("another node took the leader lease");
            }
        }
        Ok(Err(e)) => {
            // Not renewed: the trust already given runs out by itself.
            tracing::warn!(error = %e, "cannot renew the leader lease");
        }
        Err(e) => tracing::warn!(error = %e, "leader lease task failed"),
    }
}
