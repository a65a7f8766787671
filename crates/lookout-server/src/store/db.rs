//! The database handle behind every repository: one writer connection and a pool of reader
//! connections, opened once per process, to the embedded SQLite file or to PostgreSQL.
//!
//! SQLite lets one connection write at a time whatever the code does; keeping that one
//! connection behind a mutex makes the wait explicit (no busy-timeout retries) and lets its
//! statement cache serve every writer. Readers run in WAL mode beside it and never block it.
//! On PostgreSQL the same shape holds per node (one writer, pooled readers); several nodes
//! write at once and the server's row locks order them. A PostgreSQL connection the server
//! dropped (restart, network) is replaced at its next use, so a node recovers by itself.

use super::sql::{Backend, Conn, PgConn};
use super::{Result, StoreError, connect};
use crate::config::Synchronous;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Idle read connections kept for reuse; more may be open at once under load.
const IDLE_READERS: usize = 8;

/// Where the database is.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    /// The embedded SQLite file, with the writer's `synchronous` setting.
    Sqlite {
        path: PathBuf,
        synchronous: Synchronous,
    },
    /// A PostgreSQL server.
    Postgres { config: Box<postgres::Config> },
}

/// The main database: its writer and its readers.
#[derive(Debug)]
pub(crate) struct Db {
    location: Location,
    writer: Mutex<Conn>,
    readers: Mutex<Vec<Conn>>,
    /// Wakes the kill switch's control channel (`store::trading`).
    pub(crate) trading_bus: super::trading::Bus,
}

/// Open a PostgreSQL connection with Lookout's settings. Any failure to connect (refused,
/// unknown host, bad login, database closed to connections) is
/// [`StoreError::Unavailable`]: callers answer 503 and try again later.
pub(crate) fn connect_pg(config: &postgres::Config) -> Result<Conn> {
    let client = super::sql::off_runtime(|| config.connect(postgres::NoTls)).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot connect to PostgreSQL: {}",
            super::postgres_detail(&e)
        ))
    })?;
    Ok(Conn::Pg(Box::new(PgConn::new(client))))
}

/// The PostgreSQL settings of `url`, with Lookout's timeouts: a server that does not answer
/// within 5 s counts as down, and dead peers are noticed by TCP keepalives within a minute.
pub(crate) fn pg_config(url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| StoreError::Invalid(format!("database_url: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
        .application_name("lookout")
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    Ok(config)
}

impl Db {
    /// Open the writer (the schema is migrated by the caller).
    pub(crate) fn open(location: Location) -> Result<Db> {
        let writer = Self::connect(&location, false)?;
        Ok(Db {
            location,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            trading_bus: super::trading::Bus::default(),
        })
    }

    fn connect(location: &Location, reader: bool) -> Result<Conn> {
        match location {
            Location::Sqlite { path, synchronous } => {
                let c = connect(
                    path,
                    if reader {
                        Synchronous::Normal
                    } else {
                        *synchronous
                    },
                )?;
                if reader {
                    c.pragma_update(None, "query_only", "ON")?;
                }
                Ok(Conn::Lite(c))
            }
            Location::Postgres { config } => connect_pg(config),
        }
    }

    /// Which database this is.
    pub(crate) fn backend(&self) -> Backend {
        match self.location {
            Location::Sqlite { .. } => Backend::Sqlite,
            Location::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Where the database is.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite file, or `None` on PostgreSQL.
    pub(crate) fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::Sqlite { path, .. } => Some(path),
            Location::Postgres { .. } => None,
        }
    }

    /// A reader connection from the pool, returned to it when dropped.
    pub(crate) fn reader(&self) -> Result<Reader<'_>> {
        let pooled = loop {
            match lock(&self.readers).pop() {
                Some(Conn::Pg(c)) if c.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match pooled {
            Some(c) => c,
            None => Self::connect(&self.location, true)?,
        };
        Ok(Reader {
            db: self,
            conn: Some(conn),
        })
    }

    /// The writer, held until the guard drops. Never call another repository method that
    /// writes while holding it: the mutex is not re-entrant. On PostgreSQL a connection the
    /// server closed is replaced first.
    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, Conn>> {
        let mut guard = lock(&self.writer);
        if let Conn::Pg(c) = &*guard
            && c.is_closed()
        {
            *guard = Self::connect(&self.location, false)?;
        }
        Ok(guard)
    }

    /// Run `f` inside one transaction of the writer (taking SQLite's write lock up front);
    /// commit when it returns `Ok`, roll back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        self.writer()?.transaction(f)
    }

    /// The `synchronous` setting of the SQLite writer (`Full` on PostgreSQL, whose commits
    /// are durable as its server is configured).
    pub(crate) fn synchronous(&self) -> Synchronous {
        match self.location {
            Location::Sqlite { synchronous, .. } => synchronous,
            Location::Postgres { .. } => Synchronous::Full,
        }
    }
}

/// A pooled reader connection; dereferences to the connection.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    db: &'a Db,
    conn: Option<Conn>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
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
