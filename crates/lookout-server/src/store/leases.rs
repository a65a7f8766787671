//! Leases of the singleton jobs on a shared database: the node holding `leader` runs the
//! alert stage, the periodic ticks, retention and the notifier. A lease is a row with its
//! holder and an expiry by the database's clock (so nodes' clocks need not agree); the
//! holder renews it well before it lapses, and any node takes a lapsed one. The embedded
//! store has one node, which always holds every lease.

use super::Result;
use super::db::Db;
use super::sql::{Backend, OptionalExtension, params};
use std::sync::Arc;

/// The leases repository.
#[derive(Debug, Clone)]
pub struct Leases {
    db: Arc<Db>,
    node: String,
}

impl Leases {
    pub(crate) fn new(db: Arc<Db>, node: String) -> Leases {
        Leases { db, node }
    }

    /// Take or renew lease `name` for `ttl_ms` from now; whether this node holds it.
    pub fn try_hold(&self, name: &str, ttl_ms: i64) -> Result<bool> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(true);
        }
        let held: Option<String> = self
            .db
            .reader()?
            .query_row(
                "INSERT INTO leases (name, holder, expires_at)
                 VALUES (?1, ?2, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder
                    OR leases.expires_at < CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)
                 RETURNING holder",
                params![name, self.node, ttl_ms],
                |r| r.get(0),
            )
            .optional()?;
        Ok(held.is_some())
    }

    /// Give lease `name` up if this node holds it (a clean stop: another node takes over at
    /// once instead of after the lease lapses).
    pub fn release(&self, name: &str) -> Result<()> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(());
        }
        self.db.reader()?.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, self.node],
        )?;
        Ok(())
    }

    /// Who holds lease `name` and until when (ms since the epoch), if anyone took it.
    pub fn holder(&self, name: &str) -> Result<Option<(String, i64)>> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(Some((self.node.clone(), i64::MAX)));
        }
        self.db
            .reader()?
            .query_row(
                "SELECT holder, expires_at FROM leases WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }
}

impl super::Store {
    /// Leases of the singleton jobs, held as this node.
    pub fn leases(&self) -> Leases {
        Leases::new(Arc::clone(&self.db), self.node.clone())
    }

    /// Whether the database answers (a trivial query on a pooled connection).
    pub fn ping(&self) -> Result<()> {
        self.db
            .reader()?
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}
