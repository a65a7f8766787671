//! The database handle behind every repository: one writer connection and a pool of
//! read-only connections to the main SQLite file, opened once per process.
//!
//! SQLite lets one connection write at a time whatever the code does; keeping that one
//! connection behind a mutex makes the wait explicit (no busy-timeout retries) and lets its
//! statement cache serve every writer. Readers run in WAL mode beside it and never block it.

use super::{Result, connect};
use crate::config::Synchronous;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Idle read connections kept for reuse; more may be open at once under load.
const IDLE_READERS: usize = 8;

/// The main database: its writer and its readers.
#[derive(Debug)]
pub(crate) struct Db {
    path: PathBuf,
    synchronous: Synchronous,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Db {
    /// Open the writer over `path` (already migrated) with `synchronous`.
    pub(crate) fn open(path: &Path, synchronous: Synchronous) -> Result<Db> {
        Ok(Db {
            path: path.to_owned(),
            synchronous,
            writer: Mutex::new(connect(path, synchronous)?),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A read-only connection from the pool, returned to it when dropped.
    pub(crate) fn reader(&self) -> Result<Reader<'_>> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = connect(&self.path, Synchronous::Normal)?;
                c.pragma_update(None, "query_only", "ON")?;
                c
            }
        };
        Ok(Reader {
            db: self,
            conn: Some(conn),
        })
    }

    /// The writer, held until the guard drops. Never call another repository method that
    /// writes while holding it: the mutex is not re-entrant.
    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// Run `f` inside one immediate transaction of the writer; commit when it returns `Ok`,
    /// roll back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The `synchronous` setting of the writer.
    pub(crate) fn synchronous(&self) -> Synchronous {
        self.synchronous
    }
}

/// A pooled read-only connection; dereferences to the connection.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    db: &'a Db,
    conn: Option<Connection>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Only `drop` takes the connection out.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("reader used after drop"))
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = lock(&self.db.readers);
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
