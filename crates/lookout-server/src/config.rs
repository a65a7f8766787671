//! Configuration: defaults, then a TOML file, then `LOOKOUT_*` environment variables, then
//! command-line flags. Validated once at start, with errors that name the key to fix.
//!
//! Environment variables map onto keys by lowercasing and reading `__` as a dot:
//! `LOOKOUT_INGEST__MAX_BODY_BYTES=1048576` sets `ingest.max_body_bytes`. Top-level keys
//! need no prefix beyond `LOOKOUT_` (`LOOKOUT_LISTEN`, `LOOKOUT_DATA_DIR`). `LOOKOUT_CONFIG`
//! names the file itself and is not a key.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Environment variables that are not configuration keys.
const NOT_KEYS: &[&str] = &["LOOKOUT_CONFIG", "LOOKOUT_LOG"];

/// Top-level keys. `LOOKOUT_*` variables naming anything else belong to other programs
/// (the agent library reads `LOOKOUT_DSN`, for one) and are left alone; inside a known
/// section an unknown key is an error.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "public_url",
    "ingest",
    "rate_limits",
    "retention",
    "admin_password",
];

/// The whole server configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds (`127.0.0.1:9000`).
    pub listen: String,
    /// Directory of the SQLite database (`./lookout-data`).
    pub data_dir: PathBuf,
    /// PostgreSQL to store everything in (`postgres://user:password@host:5432/lookout`),
    /// shared by every node pointed at it; absent, the embedded SQLite file in `data_dir`.
    #[serde(skip_serializing)]
    pub database_url: Option<String>,
    /// URL the SDKs reach this server at, used in printed DSNs (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Ingest limits and durability.
    pub ingest: IngestConfig,
    /// Rate limits.
    pub rate_limits: RateLimitConfig,
    /// How long data is kept.
    pub retention: RetentionConfig,
    /// Password of the web UI's `admin` account, created with it at the first start when
    /// no account exists (`LOOKOUT_ADMIN_PASSWORD`). There is no default password: without
    /// it, create the account with `lookout users set-password`.
    #[serde(skip_serializing)]
    pub admin_password: Option<String>,
    /// Accept envelopes into the inbox without digesting them (not a configuration key:
    /// the ingest benchmark sets it to measure ingest alone). What is accepted stays in the
    /// inbox and is digested by the next server started without it.
    #[serde(skip)]
    pub digest_paused: bool,
}

/// How long data is kept; enforced by a background task in small transactions, so ingest
/// and the digest never wait long for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days events, transactions, logs, check-ins and rollups are kept.
    pub days: u32,
    /// Most events kept per project (oldest dropped first); 0 = no cap.
    pub max_events_per_project: u64,
    /// Seconds between retention passes.
    pub interval_secs: u64,
    /// Days profiles (and their per-minute function times) are kept; Sentry keeps them 30.
    pub profiles_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 90,
            max_events_per_project: 1_000_000,
            interval_secs: 600,
            profiles_days: 30,
        }
    }
}

/// Ingest limits and durability.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted as sent (compressed), in bytes.
    pub max_body_bytes: usize,
    /// Largest envelope accepted after decompression, in bytes.
    pub max_envelope_bytes: usize,
    /// Bytes of request bodies held in memory at once (reading, decoding and waiting for
    /// the inbox commit). Past it, requests get 503 with `Retry-After`.
    pub max_inflight_bytes: usize,
    /// Envelopes waiting for the inbox writer at once. Past it, 503.
    pub queue_capacity: usize,
    /// Most envelopes written in one inbox commit.
    pub max_batch: usize,
    /// SQLite `synchronous` for the inbox: `full` (survives power loss) or `normal`
    /// (survives a killed process).
    pub synchronous: Synchronous,
    /// Seconds raw envelopes stay in the inbox after their digest (for inspection and
    /// replay). They hold unscrubbed data, so the default is 0: deleted once digested.
    pub inbox_retention_secs: u64,
}

/// SQLite durability level.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit.
    Full,
    /// fsync at checkpoints only (WAL): a killed process loses nothing, a power cut may.
    Normal,
}

impl Synchronous {
    /// The `PRAGMA synchronous` value.
    pub fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Rate limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Events (errors and transactions) per minute per project key; 0 = unlimited. A key's
    /// own limit (`lookout projects create --rate-limit`) overrides it.
    pub events_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9000".into(),
            data_dir: PathBuf::from("./lookout-data"),
            database_url: None,
            public_url: None,
            ingest: IngestConfig::default(),
            rate_limits: RateLimitConfig::default(),
            retention: RetentionConfig::default(),
            admin_password: None,
            digest_paused: false,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 * 1024 * 1024,
            max_envelope_bytes: 50 * 1024 * 1024,
            max_inflight_bytes: 512 * 1024 * 1024,
            queue_capacity: 8192,
            max_batch: 1024,
            synchronous: Synchronous::Full,
            inbox_retention_secs: 0,
        }
    }
}

/// A configuration error; the message names the key or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key has a value of the wrong type, or is unknown.
    #[error("config key `{key}` (from {origin}): {message}")]
    Key {
        /// The dotted key.
        key: String,
        /// Where its value came from (file, environment variable or flag).
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Overrides given on the command line. `None` = not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

/// Load the configuration from an optional file, the process environment, and flags.
pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(file, &env, overrides)
}

/// [`load`] with an explicit environment (for tests).
pub fn load_from(
    file: Option<&Path>,
    env: &[(String, String)],
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut table = toml::Table::new();
    let mut origins: Vec<(String, String)> = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        table = text.parse::<toml::Table>().map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut keys = Vec::new();
        collect_keys(&table, "", &mut keys);
        for k in keys {
            origins.push((k, format!("file {}", path.display())));
        }
    }
    let mut env: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("LOOKOUT_") && !NOT_KEYS.contains(&k.as_str()))
        .collect();
    env.sort();
    for (name, value) in env {
        let key = name["LOOKOUT_".len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        let top = key.split('.').next().unwrap_or_default();
        if !TOP_LEVEL_KEYS.contains(&top) {
            continue;
        }
        // Secrets are text whatever they look like (a password may be all digits).
        let parsed = if key == "admin_password" || key == "database_url" {
            toml::Value::String(value.clone())
        } else {
            parse_scalar(value)
        };
        set_path(&mut table, &key, parsed);
        origins.push((key, format!("environment variable {name}")));
    }
    if let Some(listen) = &overrides.listen {
        set_path(&mut table, "listen", toml::Value::String(listen.clone()));
        origins.push(("listen".into(), "flag --listen".into()));
    }
    if let Some(dir) = &overrides.data_dir {
        set_path(
            &mut table,
            "data_dir",
            toml::Value::String(dir.display().to_string()),
        );
        origins.push(("data_dir".into(), "flag --data-dir".into()));
    }
    if let Some(url) = &overrides.database_url {
        set_path(&mut table, "database_url", toml::Value::String(url.clone()));
        origins.push(("database_url".into(), "flag --database-url".into()));
    }
    let origin_of = |key: &str| {
        origins
            .iter()
            .rev()
            .find(|(k, _)| k == key || key.starts_with(&format!("{k}.")))
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| "defaults".into())
    };
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let mut key = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.to_string();
            // Unknown fields are reported at the parent path; name the field itself.
            if let Some(rest) = message.strip_prefix("unknown field `")
                && let Some((field, _)) = rest.split_once('`')
            {
                if !(key == field || key.ends_with(&format!(".{field}"))) {
                    key = if key == "." || key.is_empty() {
                        field.to_owned()
                    } else {
                        format!("{key}.{field}")
                    };
                }
                message = "unknown key".into();
            }
            ConfigError::Key {
                origin: origin_of(&key),
                key,
                message,
            }
        })?;
    config.validate(&origin_of)?;
    Ok(config)
}

impl Config {
    fn validate(&self, origin_of: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError::Key {
            key: key.into(),
            origin: origin_of(key),
            message,
        };
        self.listen.parse::<SocketAddr>().map_err(|e| {
            err(
                "listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:9000 ({e})",
                    self.listen
                ),
            )
        })?;
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(err(
                "database_url",
                "must be a PostgreSQL URL (postgres://user:password@host:5432/database); leave it unset for the embedded SQLite store".into(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(err("data_dir", "must not be empty".into()));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(err(
                "public_url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        let positive = [
            ("ingest.max_body_bytes", self.ingest.max_body_bytes),
            ("ingest.max_envelope_bytes", self.ingest.max_envelope_bytes),
            ("ingest.max_inflight_bytes", self.ingest.max_inflight_bytes),
            ("ingest.queue_capacity", self.ingest.queue_capacity),
            ("ingest.max_batch", self.ingest.max_batch),
            ("retention.days", self.retention.days as usize),
            (
                "retention.profiles_days",
                self.retention.profiles_days as usize,
            ),
            (
                "retention.interval_secs",
                self.retention.interval_secs as usize,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(err(key, "must be greater than 0".into()));
            }
        }
        if self.ingest.max_inflight_bytes < self.ingest.max_body_bytes {
            return Err(err(
                "ingest.max_inflight_bytes",
                "must be at least ingest.max_body_bytes".into(),
            ));
        }
        Ok(())
    }

    /// The address to bind.
    pub fn listen_addr(&self) -> SocketAddr {
        // Validated in `load`; the default is a valid address.
        self.listen
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9000)))
    }

    /// The base URL SDKs use, for DSNs: `public_url`, else `http://<listen>`.
    pub fn base_url(&self, bound: Option<SocketAddr>) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let addr = bound.unwrap_or_else(|| self.listen_addr());
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        format!("http://{host}:{}", addr.port())
    }
}

fn collect_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let toml::Value::Table(t) = v {
            collect_keys(t, &key, out);
        }
        out.push(key);
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut cur = table;
    for part in parts {
        let entry = cur
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => cur = t,
            _ => return,
        }
    }
    cur.insert(last.to_owned(), value);
}

/// Environment values are strings; read them as TOML scalars when they look like one.
fn parse_scalar(value: &str) -> toml::Value {
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = value.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(f) = value.parse::<f64>()
        && value.contains('.')
        && !value.contains(':')
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn precedence_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lookout.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\ndata_dir = \"/from/file\"\n[ingest]\nmax_batch = 7\nqueue_capacity = 9\n",
        )
        .unwrap();
        let c = load_from(
            Some(&file),
            &env(&[
                ("LOOKOUT_DATA_DIR", "/from/env"),
                ("LOOKOUT_INGEST__MAX_BATCH", "8"),
                ("LOOKOUT_LISTEN", "127.0.0.1:7100"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:7200".into()),
                data_dir: None,
                database_url: None,
            },
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:7200");
        assert_eq!(c.data_dir, PathBuf::from("/from/env"));
        assert_eq!(c.ingest.max_batch, 8);
        assert_eq!(c.ingest.queue_capacity, 9);
        assert_eq!(
            c.ingest.max_body_bytes,
            IngestConfig::default().max_body_bytes
        );
    }

    #[test]
    fn errors_name_the_key_and_its_origin() {
        let e = load_from(
            None,
            &env(&[("LOOKOUT_INGEST__MAX_BATCH", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`ingest.max_batch`"), "{e}");
        assert!(e.contains("LOOKOUT_INGEST__MAX_BATCH"), "{e}");

        // Variables of other programs are not ours to judge.
        assert!(
            load_from(
                None,
                &env(&[("LOOKOUT_DSN", "http://k@h/1")]),
                &Overrides::default()
            )
            .is_ok()
        );

        let e = load_from(
            None,
            &env(&[("LOOKOUT_INGEST__MAX_BACH", "3")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`ingest.max_bach`") && e.contains("unknown key"),
            "{e}"
        );

        let e = load_from(
            None,
            &[],
            &Overrides {
                listen: Some("nowhere".into()),
                data_dir: None,
                database_url: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`listen`") && e.contains("flag --listen"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[ingest]\nsynchronous = \"sometimes\"\n").unwrap();
        let e = load_from(Some(&file), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`ingest.synchronous`") && e.contains("bad.toml"),
            "{e}"
        );

        let e = load_from(
            None,
            &env(&[("LOOKOUT_INGEST__QUEUE_CAPACITY", "0")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`ingest.queue_capacity`") && e.contains("greater than 0"),
            "{e}"
        );
    }

    #[test]
    fn admin_password_from_the_environment_stays_text() {
        let env = vec![(
            "LOOKOUT_ADMIN_PASSWORD".to_owned(),
            "123456789012".to_owned(),
        )];
        let c = load_from(None, &env, &Overrides::default()).unwrap();
        assert_eq!(c.admin_password.as_deref(), Some("123456789012"));
    }

    #[test]
    fn top_level_keys_match_the_config() {
        let c = Config {
            public_url: Some("http://x".into()),
            ..Config::default()
        };
        let table = toml::Table::try_from(&c).unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        // Secrets are never serialised (the config is printed and logged in places).
        keys.push("admin_password");
        keys.push("database_url");
        let mut known = TOP_LEVEL_KEYS.to_vec();
        keys.sort_unstable();
        known.sort_unstable();
        assert_eq!(keys, known);
    }

    #[test]
    fn dsn_base_url() {
        let c = Config {
            listen: "0.0.0.0:9000".into(),
            ..Config::default()
        };
        assert_eq!(c.base_url(None), "http://127.0.0.1:9000");
        let c = Config {
            public_url: Some("https://lookout.example.com/".into()),
            ..Config::default()
        };
        assert_eq!(c.base_url(None), "https://lookout.example.com");
    }
}
