//! Per-project settings: the in-app include and exclude prefixes that decide, with the
//! built-in rules of each platform, which stack frames are the agent's own.

use super::db::Db;
use super::sql::{OptionalExtension, params};
use super::{Result, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

/// Most prefixes in each list.
pub const MAX_PREFIXES: usize = 64;
/// Longest prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 256;

/// A project's in-app prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InAppPrefixes {
    /// Frames whose module, function, file name or path starts with one of these are the
    /// agent's own (this wins over `exclude` and over the built-in rules).
    pub include: Vec<String>,
    /// Frames that start with one of these are not.
    pub exclude: Vec<String>,
}

impl InAppPrefixes {
    /// Check the lists: at most [`MAX_PREFIXES`] non-empty prefixes of at most
    /// [`MAX_PREFIX_LEN`] bytes each, without control characters.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, list) in [
            ("inAppInclude", &self.include),
            ("inAppExclude", &self.exclude),
        ] {
            if list.len() > MAX_PREFIXES {
                return Err(format!("{name}: at most {MAX_PREFIXES} prefixes"));
            }
            for p in list {
                if p.trim().is_empty() {
                    return Err(format!("{name}: a prefix cannot be empty"));
                }
                if p.len() > MAX_PREFIX_LEN {
                    return Err(format!(
                        "{name}: a prefix has at most {MAX_PREFIX_LEN} bytes"
                    ));
                }
                if p.chars().any(char::is_control) {
                    return Err(format!("{name}: a prefix cannot hold control characters"));
                }
            }
        }
        Ok(())
    }
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The project settings repository.
#[derive(Debug, Clone)]
pub struct Settings {
    db: Arc<Db>,
}

impl Settings {
    pub(crate) fn new(db: Arc<Db>) -> Settings {
        Settings { db }
    }

    /// The in-app prefixes of project `project_id` (empty lists when never set).
    pub fn in_app(&self, project_id: i64) -> Result<InAppPrefixes> {
        let row: Option<(String, String)> = self
            .db
            .reader()?
            .prepare_cached(
                "SELECT in_app_include, in_app_exclude FROM project_settings WHERE project_id = ?1",
            )?
            .query_row([project_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row
            .map(|(i, e)| InAppPrefixes {
                include: list(&i),
                exclude: list(&e),
            })
            .unwrap_or_default())
    }

    /// The in-app prefixes of every project that has set some.
    pub fn in_app_all(&self) -> Result<HashMap<i64, InAppPrefixes>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT project_id, in_app_include, in_app_exclude FROM project_settings",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let (project, i, e) = row?;
            out.insert(
                project,
                InAppPrefixes {
                    include: list(&i),
                    exclude: list(&e),
                },
            );
        }
        Ok(out)
    }

    /// Replace the in-app prefixes of project `project_id`.
    pub fn set_in_app(&self, project_id: i64, prefixes: &InAppPrefixes) -> Result<()> {
        prefixes.validate().map_err(StoreError::Invalid)?;
        let json = |l: &Vec<String>| serde_json::to_string(l).unwrap_or_else(|_| "[]".into());
        self.db.writer()?.execute(
            "INSERT INTO project_settings (project_id, in_app_include, in_app_exclude) VALUES (?1, ?2, ?3)
             ON CONFLICT (project_id) DO UPDATE SET in_app_include = excluded.in_app_include, in_app_exclude = excluded.in_app_exclude",
            params![project_id, json(&prefixes.include), json(&prefixes.exclude)],
        )?;
        Ok(())
    }
}

impl super::Store {
    /// Remember the base URL the server answered at when it last started (`public_url`, or
    /// the address it bound), so `lookout projects` prints DSNs that reach it.
    pub fn set_last_base_url(&self, url: &str) -> Result<()> {
        self.db.writer()?.execute(
            "INSERT INTO server_meta (key, value) VALUES ('base_url', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [url],
        )?;
        Ok(())
    }

    /// The base URL of the server's last start on this store, if it ever started.
    pub fn last_base_url(&self) -> Result<Option<String>> {
        self.db
            .reader()?
            .query_row(
                "SELECT value FROM server_meta WHERE key = 'base_url'",
                [],
                |r| r.get(0),
            )
            .optional()
    }
}
