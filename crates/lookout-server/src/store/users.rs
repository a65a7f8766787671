//! Web UI accounts and login sessions. Passwords are kept as Argon2id hashes; a session is
//! a random token in an HttpOnly cookie, stored hashed, with its own CSRF token.

use super::db::Db;
use super::sql::{OptionalExtension, params};
use super::{Result, StoreError, hash_token};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use std::sync::Arc;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct UiSession {
    /// User id.
    pub user_id: i64,
    /// User name.
    pub username: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// Failed logins a subject gets before each further one locks it.
pub const FREE_LOGIN_FAILURES: i64 = 5;
/// The longest a subject is locked after a failed login.
pub const MAX_LOGIN_DELAY_MS: i64 = 15 * 60_000;

/// The throttling subject of an account.
pub fn login_subject_user(username: &str) -> String {
    format!("user:{}", username.trim().to_lowercase())
}

/// The throttling subject of a client address.
pub fn login_subject_ip(ip: std::net::IpAddr) -> String {
    format!("ip:{ip}")
}

/// Accounts and sessions of a data directory.
#[derive(Debug, Clone)]
pub struct Users {
    db: Arc<Db>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Invalid(format!("cannot make a salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

impl Users {
    pub(crate) fn new(db: Arc<Db>) -> Users {
        Users { db }
    }

    /// Whether any account exists.
    pub fn any(&self) -> Result<bool> {
        self.db
            .reader()?
            .query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))
    }

    /// How long logins for any of `subjects` (`user:<name>`, `ip:<address>`) must still wait
    /// at `now`, in ms; `None` when they may try.
    pub fn login_locked(&self, subjects: &[String], now: i64) -> Result<Option<i64>> {
        let conn = self.db.reader()?;
        let mut stmt =
            conn.prepare_cached("SELECT locked_until FROM login_failures WHERE subject = ?1")?;
        let mut wait = None;
        for s in subjects {
            let until: Option<i64> = stmt.query_row([s], |r| r.get(0)).optional()?;
            if let Some(until) = until.filter(|u| *u > now) {
                wait = Some(wait.unwrap_or(0).max(until - now));
            }
        }
        Ok(wait)
    }

    /// Count a failed login for each of `subjects` at `now`. From the
    /// [`FREE_LOGIN_FAILURES`]th failure on, each locks its subject for twice as long as the
    /// last (1 s, 2 s, 4 s … at most 15 minutes). Returns the most failures of any subject.
    pub fn login_failed(&self, subjects: &[String], now: i64) -> Result<i64> {
        let conn = self.db.writer()?;
        let mut most = 0;
        for s in subjects {
            let failures: i64 = conn.query_row(
                "INSERT INTO login_failures (subject, failures, locked_until) VALUES (?1, 1, 0)
                 ON CONFLICT (subject) DO UPDATE SET failures = login_failures.failures + 1
                 RETURNING failures",
                [s],
                |r| r.get(0),
            )?;
            if failures >= FREE_LOGIN_FAILURES {
                let exp = u32::try_from(failures - FREE_LOGIN_FAILURES)
                    .unwrap_or(u32::MAX)
                    .min(20);
                let delay = 1_000i64.saturating_mul(1 << exp).min(MAX_LOGIN_DELAY_MS);
                conn.execute(
                    "UPDATE login_failures SET locked_until = ?2 WHERE subject = ?1",
                    params![s, now + delay],
                )?;
            }
            most = most.max(failures);
        }
        Ok(most)
    }

    /// Forget the failed logins of `subjects` (after a successful login).
    pub fn login_succeeded(&self, subjects: &[String]) -> Result<()> {
        let conn = self.db.writer()?;
        for s in subjects {
            conn.execute("DELETE FROM login_failures WHERE subject = ?1", [s])?;
        }
        Ok(())
    }

    /// Create `username` or change its password. Ends the user's sessions.
    pub fn set_password(&self, username: &str, password: &str, now: i64) -> Result<()> {
        let username = username.trim();
        if username.is_empty() || username.len() > 64 {
            return Err(StoreError::Invalid(
                "a user name has 1 to 64 characters".into(),
            ));
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(StoreError::Invalid(format!(
                "the password must have at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        let hash = hash_password(password)?;
        let conn = self.db.writer()?;
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
            params![username, hash, now],
        )?;
        conn.execute(
            "DELETE FROM ui_sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [username],
        )?;
        // A new password (an operator's act) lifts the lock on the account and on every
        // client address.
        conn.execute(
            "DELETE FROM login_failures WHERE subject = ?1 OR subject LIKE 'ip:%'",
            [login_subject_user(username)],
        )?;
        Ok(())
    }

    /// Create `username` with `password` unless an account exists already. Returns whether
    /// it was created.
    pub fn ensure_admin(&self, username: &str, password: &str, now: i64) -> Result<bool> {
        if self.any()? {
            return Ok(false);
        }
        self.set_password(username, password, now)?;
        Ok(true)
    }

    /// Check a login; on success start a session that lasts `ttl_ms` and return its token.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<String>> {
        let conn = self.db.reader()?;
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, password_hash FROM users WHERE username = ?1",
                [username.trim()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((user_id, stored)) = row else {
            // Same work as a wrong password, so timing does not tell which names exist.
            let _ = hash_password(password);
            return Ok(None);
        };
        let ok = PasswordHash::new(&stored)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if !ok {
            return Ok(None);
        }
        drop(conn);
        let token = random_token();
        self.db.writer()?.execute(
            "INSERT INTO ui_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash_token(&token), user_id, random_token(), now, now + ttl_ms],
        )?;
        Ok(Some(token))
    }

    /// The live session of `token`, if any.
    pub fn session(&self, token: &str, now: i64) -> Result<Option<UiSession>> {
        self
            .db
            .reader()?
            .query_row(
                "SELECT s.user_id, u.username, s.csrf FROM ui_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![hash_token(token), now],
                |r| {
                    Ok(UiSession {
                        user_id: r.get(0)?,
                        username: r.get(1)?,
                        csrf: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    /// End the session of `token`.
    pub fn logout(&self, token: &str) -> Result<()> {
        self.db.writer()?.execute(
            "DELETE FROM ui_sessions WHERE token_hash = ?1",
            [hash_token(token)],
        )?;
        Ok(())
    }
}

/// An API token as the settings page lists it (never the token itself).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The token's id (what revoking it takes).
    pub id: i64,
    /// The name given when it was created.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// When it was queued (ms since the epoch).
    pub created_at: i64,
    /// When it was last used (ms since the epoch), if ever.
    pub last_used_at: Option<i64>,
}

impl Users {
    /// Every API token, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, scopes, created_at, last_used_at FROM api_tokens ORDER BY id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenRow {
                id: r.get(0)?,
                name: r.get(1)?,
                scopes: r.get(2)?,
                created_at: r.get(3)?,
                last_used_at: r.get(4)?,
            })
        })?;
        rows.collect::<Result<_>>()
    }

    /// Revoke a token.
    pub fn delete_token(&self, id: i64) -> Result<()> {
        let n = self
            .db
            .writer()?
            .execute("DELETE FROM api_tokens WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        Ok(())
    }
}
