//! The storage boundary. Everything that speaks SQL lives below this module; the rest of
//! the server calls these methods and does not know which database runs.
//!
//! The embedded default is one SQLite file in the data directory, in WAL mode: a single
//! writer (the inbox writer thread, with group commit) and short-lived reader connections.

pub mod agents;
pub mod alerting;
pub mod alerts;
pub mod copy;
mod db;
pub mod digest;
pub mod health;
pub mod inbox;
pub mod leases;
pub mod monitors;
pub mod outbox;
pub mod profiles;
pub mod read;
pub mod records;
pub mod releases;
pub mod retention;
mod rollups;
mod schema;
mod schema_pg;
pub mod settings;
pub mod sql;
pub mod trading;
pub mod users;

use rand::RngCore;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use sql::{Conn, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use db::{Db, Location};

use crate::config::Synchronous;

/// A storage error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no, or could not be reached.
    #[error("database error: {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
    /// A query that must return a row returned none.
    #[error("no such row")]
    NoRows,
    /// A column could not be read as the type asked for.
    #[error("column {index}: {why}")]
    Column {
        /// The column's position.
        index: usize,
        /// What was found instead.
        why: String,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database was written by a newer Lookout.
    #[error(
        "database schema version {found} is newer than this build knows ({known}); upgrade lookout"
    )]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A name is already taken.
    #[error("{0} already exists")]
    Exists(String),
    /// A name is not known.
    #[error("{0} not found")]
    NotFound(String),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// Another node took some of the inbox rows this node had claimed (its claim lapsed):
    /// the batch is not written, and the other node digests them.
    #[error("inbox claim lost: {held} of {expected} rows still held")]
    ClaimLost {
        /// Rows in the batch.
        expected: usize,
        /// Rows still claimed by this node.
        held: usize,
    },
    /// The database cannot be reached; try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The inbox writer has stopped (shutdown or a fatal error).
    #[error("the inbox writer is not running")]
    WriterGone,
}

/// What PostgreSQL said, with its detail when it gave one (the bare error only says "db error").
pub(crate) fn postgres_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            // The client's own message is generic ("error connecting to server"); the
            // cause (refused, unknown host, timed out) is in its source.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing a statement): the
    /// caller answers 503 and tries again later rather than treating the data as bad.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Postgres(e) => {
                let io = std::error::Error::source(e)
                    .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
                // Class 08 is connection exceptions; 57P0x the server shutting down.
                let refused = e.as_db_error().is_some_and(|db| {
                    let code = db.code().code();
                    code.starts_with("08") || code.starts_with("57P")
                });
                e.is_closed() || io || refused
            }
            StoreError::WriterGone | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// Whether the failure came from another node writing the same rows at the same time
    /// (a unique key both inserted, a deadlock, a lost claim): the work is simply done
    /// again, at once.
    pub fn is_conflict(&self) -> bool {
        match self {
            StoreError::ClaimLost { .. } => true,
            StoreError::Postgres(e) => e
                .as_db_error()
                .is_some_and(|db| matches!(db.code().code(), "23505" | "40P01" | "40001")),
            _ => false,
        }
    }
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A project with its client key, as printed by `lookout projects list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    /// Numeric id (the last part of the DSN).
    pub id: i64,
    /// Its organisation's slug.
    pub org_slug: String,
    /// The URL-safe name.
    pub slug: String,
    /// The first active public key.
    pub public_key: String,
    /// `active` or `disabled`.
    pub status: String,
}

impl ProjectInfo {
    /// The DSN for SDKs, given the server's base URL (`http://host:port`).
    pub fn dsn(&self, base_url: &str) -> String {
        let (scheme, rest) = base_url.split_once("://").unwrap_or(("http", base_url));
        format!(
            "{scheme}://{}@{}/{}",
            self.public_key,
            rest.trim_end_matches('/'),
            self.id
        )
    }
}

/// What ingest needs to know about a client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's row id.
    pub key_id: i64,
    /// The project it belongs to.
    pub project_id: i64,
    /// Key and project both active.
    pub active: bool,
    /// The key's own events-per-minute limit, if set.
    pub rate_limit_per_minute: Option<u32>,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Row id.
    pub id: i64,
    /// Name given at creation.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
}

/// Every scope Lookout knows; a token created without `--scope` gets them all.
pub const ALL_SCOPES: &[&str] = &[
    "org:read",
    "org:write",
    "project:read",
    "project:write",
    "project:releases",
    "event:read",
    "event:write",
    "alerts:read",
    "alerts:write",
    "agents:write",
];

/// The store: the one handle on the database a process opens. Cheap to clone; every clone
/// shares one writer and one pool of readers. Repositories ([`Store::releases`],
/// [`Store::alerts`], [`Store::users`], [`Store::reader`], …) speak the domain; nothing above
/// this module sees SQL, a connection or the database's path.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Db>,
    /// This process's name among the nodes sharing a database (claims and leases).
    node: String,
}

/// Open a connection with Lookout's settings.
pub(crate) fn connect(path: &Path, synchronous: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The digest's transaction alone runs some fifty distinct statements (batch writes,
    // alert rules, agent rollups); rusqlite's default cache of 16 would parse most of them
    // again for every batch.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// A name for this process among the nodes: host, process id and a random suffix (a
/// restarted node is a new node; its old claims lapse).
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".into());
    format!("{host}-{}-{}", std::process::id(), random_hex(3))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of an API token, hex-encoded: what the database keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 50
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

impl Store {
    /// Open (creating if needed) the database in `data_dir` and bring its schema up to date,
    /// with every commit synced (`synchronous = FULL`).
    pub fn open(data_dir: &Path) -> Result<Store> {
        Self::open_with(data_dir, Synchronous::Full)
    }

    /// [`Store::open`] with the writer's `synchronous` setting.
    pub fn open_with(data_dir: &Path, synchronous: Synchronous) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("lookout.db");
        let db = Db::open(Location::Sqlite { path, synchronous })?;
        match &mut *db.writer()? {
            Conn::Lite(c) => schema::migrate(c)?,
            Conn::Pg(_) => unreachable!("a SQLite location opens a SQLite connection"),
        }
        Ok(Store {
            db: Arc::new(db),
            node: node_name(),
        })
    }

    /// Connect to the PostgreSQL database at `url` (`postgres://user@host:port/db`) and bring
    /// its schema up to date, under an advisory lock so that nodes starting together migrate
    /// once. Errors name the cause (bad URL, unreachable server, refused login).
    pub fn open_postgres(url: &str) -> Result<Store> {
        let config = db::pg_config(url)?;
        let db = Db::open(Location::Postgres {
            config: Box::new(config),
        })
        .map_err(|e| match e {
            StoreError::Unavailable(why) => StoreError::Unavailable(format!("database_url: {why}")),
            other => other,
        })?;
        schema_pg::migrate(&*db.writer()?)?;
        Ok(Store {
            db: Arc::new(db),
            node: node_name(),
        })
    }

    /// Open the store a configuration names: PostgreSQL when `database_url` is set, else the
    /// embedded SQLite file in `data_dir`.
    pub fn open_config(
        data_dir: &Path,
        database_url: Option<&str>,
        synchronous: Synchronous,
    ) -> Result<Store> {
        match database_url {
            Some(url) => Self::open_postgres(url),
            None => Self::open_with(data_dir, synchronous),
        }
    }

    /// This node's name (claims and leases on a shared database).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> sql::Backend {
        self.db.backend()
    }

    /// The SQLite database file, or `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        self.db.path()
    }

    /// The directory the SQLite database lives in (the inbox file sits beside it).
    pub(crate) fn data_dir(&self) -> Option<&Path> {
        self.db
            .path()
            .map(|p| p.parent().unwrap_or_else(|| Path::new(".")))
    }

    /// Run `f` on the writer (organisation, project, key and token changes).
    fn with_conn<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        f(&*self.db.writer()?)
    }

    /// Run `f` on a pooled reader connection.
    fn with_reader<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        f(&*self.db.reader()?)
    }

    /// Releases, deploys, repositories and commits.
    pub fn releases(&self) -> releases::Releases {
        releases::Releases::new(Arc::clone(&self.db))
    }

    /// Alert rules, channels, incidents and deliveries.
    pub fn alerts(&self) -> alerts::Alerts {
        alerts::Alerts::new(Arc::clone(&self.db))
    }

    /// Web UI accounts, their sessions, and the API tokens' list.
    pub fn users(&self) -> users::Users {
        users::Users::new(Arc::clone(&self.db))
    }

    /// Cron and heartbeat monitors and their check-ins.
    pub fn monitors(&self) -> monitors::Monitors {
        monitors::Monitors::new(Arc::clone(&self.db))
    }

    /// Release health: sessions, crashes and users per release.
    pub fn health(&self) -> health::Health {
        health::Health::new(Arc::clone(&self.db))
    }

    /// The alert stage: its feed and cursor, the windows it measures, what it writes.
    pub fn alert_stage(&self) -> alerting::AlertStage {
        alerting::AlertStage::new(Arc::clone(&self.db))
    }

    /// The digest's writer: batches, rollups, agents and the alert feed.
    pub fn digest_writer(&self) -> digest::DigestStore {
        digest::DigestStore::new(Arc::clone(&self.db), self.node.clone())
    }

    /// Notifications waiting for delivery, and their attempts.
    pub fn outbox(&self) -> outbox::Outbox {
        outbox::Outbox::new(Arc::clone(&self.db))
    }

    /// Per-project settings (in-app prefixes).
    pub fn settings(&self) -> settings::Settings {
        settings::Settings::new(Arc::clone(&self.db))
    }

    /// Agents: every agent seen, with its health.
    pub fn agents(&self) -> agents::Agents {
        agents::Agents::new(Arc::clone(&self.db))
    }

    /// The kill switch: each agent's trading state, its audit, the control channel's bus.
    pub fn trading(&self) -> trading::Trading {
        trading::Trading::new(Arc::clone(&self.db))
    }

    /// The read side: issues, events, latency, traces.
    pub fn reader(&self) -> read::Reader {
        read::Reader::new(Arc::clone(&self.db))
    }

    /// On a new database, create organisation `default` and project `default`; returns the
    /// project when it was created now.
    pub fn ensure_default_project(&self) -> Result<Option<ProjectInfo>> {
        let any: i64 =
            self.with_reader(|c| c.query_row("SELECT COUNT(*) FROM projects", [], |r| r.get(0)))?;
        if any > 0 {
            return Ok(None);
        }
        match self.create_project("default", "default", None) {
            Ok(p) => Ok(Some(p)),
            // Another node sharing the database created it at the same moment.
            Err(e) if self.list_projects()?.iter().any(|p| p.slug == "default") => {
                tracing::debug!(error = %e, "the default project was created by another node");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Create a project (and its organisation if new) with one client key.
    pub fn create_project(
        &self,
        org_slug: &str,
        slug: &str,
        rate_limit_per_minute: Option<u32>,
    ) -> Result<ProjectInfo> {
        for (what, s) in [("organisation slug", org_slug), ("project slug", slug)] {
            if !valid_slug(s) {
                return Err(StoreError::Invalid(format!(
                    "{what} {s:?} must be 1-50 characters of a-z, 0-9, - and _, starting with a letter or digit"
                )));
            }
        }
        self.db.write(|tx| {
            let now = now_ms();
            tx.execute(
                "INSERT INTO organizations (slug, name, created_at) VALUES (?1, ?1, ?2) ON CONFLICT DO NOTHING",
                params![org_slug, now],
            )?;
            let org_id: i64 = tx.query_row(
                "SELECT id FROM organizations WHERE slug = ?1",
                [org_slug],
                |r| r.get(0),
            )?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT id FROM projects WHERE org_id = ?1 AND slug = ?2",
                    params![org_id, slug],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Exists(format!("project {org_slug}/{slug}")));
            }
            let project_id: i64 = tx.query_row(
                "INSERT INTO projects (org_id, slug, name, status, created_at) VALUES (?1, ?2, ?2, 'active', ?3) RETURNING id",
                params![org_id, slug, now],
                |r| r.get(0),
            )?;
            let public_key = random_hex(16);
            tx.execute(
                "INSERT INTO project_keys (project_id, public_key, secret_key, status, rate_limit_per_minute, created_at)
                 VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
                params![project_id, public_key, random_hex(16), rate_limit_per_minute, now],
            )?;
            Ok(ProjectInfo {
                id: project_id,
                org_slug: org_slug.to_owned(),
                slug: slug.to_owned(),
                public_key,
                status: "active".into(),
            })
        })
    }

    /// All projects with their first key.
    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare(
                "SELECT p.id, o.slug, p.slug, k.public_key, p.status
                 FROM projects p JOIN organizations o ON o.id = p.org_id
                 JOIN project_keys k ON k.id = (SELECT MIN(id) FROM project_keys WHERE project_id = p.id)
                 ORDER BY p.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(ProjectInfo {
                    id: r.get(0)?,
                    org_slug: r.get(1)?,
                    slug: r.get(2)?,
                    public_key: r.get(3)?,
                    status: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>>>()
        })
    }

    /// Enable or disable a project (a disabled project's keys get 403).
    pub fn set_project_status(&self, org_slug: &str, slug: &str, active: bool) -> Result<()> {
        let n = self.with_conn(|c| {
            c.execute(
                "UPDATE projects SET status = ?3 WHERE slug = ?2
                 AND org_id = (SELECT id FROM organizations WHERE slug = ?1)",
                params![org_slug, slug, if active { "active" } else { "disabled" }],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("project {org_slug}/{slug}")));
        }
        Ok(())
    }

    /// Look a client key up.
    pub fn find_key(&self, public_key: &str) -> Result<Option<KeyInfo>> {
        self.with_reader(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT k.id, k.project_id, k.status = 'active' AND p.status = 'active', k.rate_limit_per_minute
                 FROM project_keys k JOIN projects p ON p.id = k.project_id WHERE k.public_key = ?1",
            )?;
            stmt
                .query_row([public_key], |r| {
                    Ok(KeyInfo {
                        key_id: r.get(0)?,
                        project_id: r.get(1)?,
                        active: r.get(2)?,
                        rate_limit_per_minute: r.get(3)?,
                    })
                })
                .optional()
        })
    }

    /// Create an API token; returns the token, which is shown once and stored only hashed.
    pub fn create_token(&self, name: &str, scopes: &[String]) -> Result<(TokenInfo, String)> {
        for s in scopes {
            if !ALL_SCOPES.contains(&s.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "unknown scope {s:?}; known scopes: {}",
                    ALL_SCOPES.join(", ")
                )));
            }
        }
        let scopes = if scopes.is_empty() {
            ALL_SCOPES.join(" ")
        } else {
            scopes.join(" ")
        };
        let token = random_hex(32);
        let id = self.with_conn(|c| {
            c.query_row(
                "INSERT INTO api_tokens (name, token_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
                params![name, hash_token(&token), scopes, now_ms()],
                |r| r.get(0),
            )
        })?;
        Ok((
            TokenInfo {
                id,
                name: name.to_owned(),
                scopes,
            },
            token,
        ))
    }

    /// Look up a token by its plaintext; returns its scopes.
    pub fn find_token(&self, token: &str) -> Result<Option<TokenInfo>> {
        self.with_reader(|c| {
            c.query_row(
                "SELECT id, name, scopes FROM api_tokens WHERE token_hash = ?1",
                [hash_token(token)],
                |r| {
                    Ok(TokenInfo {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        scopes: r.get(2)?,
                    })
                },
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_project_once_and_dsn() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let p = store.ensure_default_project().unwrap().unwrap();
        assert_eq!(
            (p.org_slug.as_str(), p.slug.as_str()),
            ("default", "default")
        );
        assert!(store.ensure_default_project().unwrap().is_none());
        assert_eq!(
            p.dsn("http://127.0.0.1:9000"),
            format!("http://{}@127.0.0.1:9000/{}", p.public_key, p.id)
        );
        // Reopening keeps everything.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.list_projects().unwrap(), vec![p]);
    }

    #[test]
    fn project_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_project("acme", "bots", Some(5)).unwrap();
        assert!(matches!(
            store.create_project("acme", "bots", None),
            Err(StoreError::Exists(_))
        ));
        assert!(matches!(
            store.create_project("acme", "Bad Slug", None),
            Err(StoreError::Invalid(_))
        ));
        let p = &store.list_projects().unwrap()[0];
        let k = store.find_key(&p.public_key).unwrap().unwrap();
        assert!(k.active);
        assert_eq!(k.rate_limit_per_minute, Some(5));
        store.set_project_status("acme", "bots", false).unwrap();
        assert!(!store.find_key(&p.public_key).unwrap().unwrap().active);
    }

    #[test]
    fn tokens_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (info, token) = store
            .create_token("ci", &["project:releases".into()])
            .unwrap();
        assert_eq!(info.scopes, "project:releases");
        assert_eq!(store.find_token(&token).unwrap().unwrap().id, info.id);
        assert!(store.find_token("nope").unwrap().is_none());
        assert!(store.create_token("x", &["root".into()]).is_err());
        drop(store);
        let bytes = std::fs::read(dir.path().join("lookout.db")).unwrap();
        let wal = std::fs::read(dir.path().join("lookout.db-wal")).unwrap_or_default();
        let needle = token.as_bytes();
        for file in [bytes, wal] {
            assert!(
                !file.windows(needle.len()).any(|w| w == needle),
                "token stored in clear"
            );
        }
    }
}
