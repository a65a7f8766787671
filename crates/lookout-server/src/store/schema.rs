//! Schema migrations, versioned in code. `PRAGMA user_version` records the version reached;
//! each migration runs in its own transaction, so a crash mid-way leaves the previous version.

use super::{Result, StoreError};
use rusqlite::Connection;

/// The migrations in order; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[
    // 1: organisations, projects, keys, tokens and the ingest inbox.
    "
    CREATE TABLE organizations (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organizations(id),
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        created_at INTEGER NOT NULL,
        UNIQUE (org_id, slug)
    );
    CREATE TABLE project_keys (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        public_key TEXT NOT NULL UNIQUE,
        secret_key TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        rate_limit_per_minute INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    -- Raw envelopes as accepted, decompressed, in arrival order. state 0 = to digest.
    CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        key_id INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        event_id TEXT,
        item_types TEXT NOT NULL,
        -- The body as received (gzip, deflate, br, zstd) or, for plain bodies, zstd level 1
        -- when that is smaller; `encoding` says which. The digest decodes it.
        encoding TEXT NOT NULL DEFAULT 'identity',
        envelope BLOB NOT NULL,
        state INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX inbox_pending ON inbox (id) WHERE state = 0;
    ",
];

/// The newest schema version this build knows.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Bring the database to [`LATEST`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: LATEST,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut c = Connection::open(&path).unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, LATEST);
        c.pragma_update(None, "user_version", LATEST + 1).unwrap();
        assert!(matches!(migrate(&mut c), Err(StoreError::SchemaTooNew { .. })));
    }
}
