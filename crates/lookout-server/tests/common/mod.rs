//! Shared fixtures: a real server on an ephemeral port over a temporary data directory, the
//! real clients (Python `sentry-sdk` from the test venv), a typed REST API client
//! ([`ApiClient`]) and a reader of the inbox.
//!
//! With `LOOKOUT_TEST_DATABASE_URL` set to a PostgreSQL server (`postgres://postgres@127.0.0.1/postgres`),
//! every server of the suite runs on PostgreSQL instead of the embedded SQLite file: each
//! test gets a database of its own, created for it and dropped after it ([`TestDb`]).
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use lookout_server::config::Config;
use lookout_server::{RunningServer, Server};
use std::path::{Path, PathBuf};

pub mod api;
pub use api::ApiClient;

/// A server and the directory it keeps its data in.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    /// Its PostgreSQL database, when the suite runs on PostgreSQL.
    pub db: Option<TestDb>,
}

/// A PostgreSQL database made for one test and dropped with it.
pub struct TestDb {
    admin: String,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl TestDb {
    /// A new empty database on the server `LOOKOUT_TEST_DATABASE_URL` names, or `None`
    /// when the suite runs on SQLite.
    pub fn create() -> Option<TestDb> {
        let admin = std::env::var("LOOKOUT_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        Some(Self::create_on(admin))
    }

    /// A new empty database for a test that needs PostgreSQL whatever the suite runs on
    /// (several nodes): on `LOOKOUT_TEST_DATABASE_URL`, else `LOOKOUT_TEST_POSTGRES_URL`
    /// (what `scripts/test` runs the PostgreSQL pass on), else the machine's server at
    /// `postgres://postgres@127.0.0.1:5432/postgres`. Fails, saying so, when it cannot.
    pub fn create_required() -> TestDb {
        let admin = std::env::var("LOOKOUT_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("LOOKOUT_TEST_POSTGRES_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        Self::create_on(admin)
    }

    /// A new empty database on the server `admin` (a URL ending with a database name).
    pub fn create_on(admin: String) -> TestDb {
        let name = format!("lookout_test_{}_{}", std::process::id(), uuid_like());
        let sql = format!("CREATE DATABASE {name}");
        let admin2 = admin.clone();
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&admin2, postgres::NoTls).unwrap_or_else(|e| {
                panic!(
                    "cannot connect to PostgreSQL at {admin2} (set LOOKOUT_TEST_DATABASE_URL, or start it: pg_ctlcluster 15 main start): {e}"
                )
            });
            c.batch_execute(&sql).expect("create the test database");
        })
        .join()
        .expect("create the test database");
        let url = match admin.rsplit_once('/') {
            Some((server, _db)) if server.contains("://") && !server.ends_with('/') => {
                format!("{server}/{name}")
            }
            _ => panic!("LOOKOUT_TEST_DATABASE_URL must end with a database name: {admin}"),
        };
        TestDb { admin, name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // A thread of its own: the sync client cannot run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}_{nanos}", N.fetch_add(1, Ordering::Relaxed))
}

/// The configuration of a test server over `dir` (and `db` when the suite runs on
/// PostgreSQL), listening on an ephemeral port.
pub fn test_config(dir: &Path, db: Option<&TestDb>) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        database_url: db.map(|d| d.url.clone()),
        ..Config::default()
    }
}

/// With `LOOKOUT_TEST_LOG` set (a filter such as `warn`), the servers' logs go to the test's
/// output: what a failing test's server said.
pub fn init_log() {
    if let Ok(filter) = std::env::var("LOOKOUT_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var_os("LOOKOUT_TEST_DATABASE_URL").is_some()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        init_log();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::create();
        let mut config = test_config(dir.path(), db.as_ref());
        // Ingest tests read raw envelopes back from the inbox after the digest has run.
        config.ingest.inbox_retention_secs = 3600;
        tweak(&mut config);
        let server = Server::builder(config)
            .start()
            .await
            .expect("server starts");
        TestServer { server, dir, db }
    }

    /// A server on a manual clock starting at the system time: tests move it with
    /// `server.clock.advance(ms)` and run the periodic jobs with `server.tick()`.
    pub async fn start_manual() -> TestServer {
        Self::start_manual_with(|_| {}).await
    }

    /// [`TestServer::start_manual`] with a configuration tweak.
    pub async fn start_manual_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        init_log();
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::create();
        let mut config = test_config(dir.path(), db.as_ref());
        tweak(&mut config);
        let now = chrono::Utc::now().timestamp_millis();
        let server = Server::builder(config)
            .clock(lookout_server::clock::Clock::manual(now))
            .start()
            .await
            .expect("server starts");
        TestServer { server, dir, db }
    }

    /// POST an envelope with the project's key; asserts the 200.
    pub async fn post_envelope(&self, client: &reqwest::Client, body: Vec<u8>) {
        let r = client
            .post(self.envelope_url())
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={}, sentry_version=7", self.key()),
            )
            .body(body)
            .send()
            .await
            .expect("envelope request");
        assert_eq!(r.status(), 200);
    }

    pub fn dsn(&self) -> String {
        self.server.dsn().expect("dsn")
    }

    pub fn key(&self) -> String {
        self.server.store.list_projects().expect("projects")[0]
            .public_key
            .clone()
    }

    pub fn project_id(&self) -> i64 {
        self.server.store.list_projects().expect("projects")[0].id
    }

    pub fn envelope_url(&self) -> String {
        format!(
            "{}/api/{}/envelope/",
            self.server.base_url(),
            self.project_id()
        )
    }

    /// The agents overview of the default organisation, now by the server's clock.
    pub fn agents(&self) -> Vec<lookout_server::services::agents::AgentHealth> {
        lookout_server::services::agents::overview_now(
            &self.server.store,
            "default",
            self.server.clock.now_ms(),
        )
        .expect("agents overview")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("lookout.db")
    }

    /// Every envelope still in the inbox, in order, read through the store (the file
    /// beside the SQLite database, or the shared table on PostgreSQL).
    pub fn inbox(&self) -> Vec<InboxRow> {
        read_store_inbox(&self.server.store)
    }

    /// An API token with every scope.
    pub fn token(&self) -> String {
        self.server
            .store
            .create_token("test", &[])
            .expect("token")
            .1
    }

    /// A client of this server's REST API with `token`.
    pub fn api_client(&self, token: &str) -> ApiClient {
        ApiClient::new(self.server.base_url(), token)
    }

    /// GET an API path with a token; returns status and JSON.
    pub async fn api(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self.api_client(token).get(path).await;
        (r.status.as_u16(), r.body)
    }

    /// Poll `check` until it returns Some, or panic after 30 s (the digest is asynchronous).
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.server.base_url()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}

/// One inbox row.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub id: i64,
    pub project_id: i64,
    pub event_id: Option<String>,
    pub item_types: String,
    /// The plain envelope (decoded from the stored encoding).
    pub envelope: Vec<u8>,
    /// How the inbox stored it.
    pub encoding: String,
}

impl InboxRow {
    /// Item types and payloads, parsed with the server's own framing parser.
    pub fn items(&self) -> Vec<(String, serde_json::Value)> {
        let env =
            lookout_protocol::envelope::parse(&self.envelope).expect("stored envelope parses");
        env.items
            .iter()
            .map(|i| {
                (
                    i.item_type().to_owned(),
                    serde_json::from_slice(i.payload).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect()
    }
}

/// Every row of `store`'s inbox, decoded.
pub fn read_store_inbox(store: &lookout_server::store::Store) -> Vec<InboxRow> {
    let store = store.clone();
    // A thread of its own: the store blocks, and tests call this from async code.
    std::thread::spawn(move || {
        store
            .inbox_reader()
            .expect("inbox reader")
            .all()
            .expect("inbox rows")
            .into_iter()
            .map(|r| {
                let codec = lookout_protocol::codec::Encoding::from_name(&r.encoding)
                    .expect("known encoding");
                InboxRow {
                    id: r.id,
                    project_id: r.project_id,
                    event_id: r.event_id,
                    item_types: r.item_types,
                    envelope: lookout_protocol::codec::decode(&r.envelope, codec, 1 << 30)
                        .expect("stored body decodes"),
                    encoding: r.encoding,
                }
            })
            .collect()
    })
    .join()
    .expect("reading the inbox")
}

/// Read the inbox straight from the SQLite file (a separate connection, as a reader would).
pub fn read_inbox(db: &Path) -> Vec<InboxRow> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare("SELECT id, project_id, event_id, item_types, envelope, encoding FROM inbox ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| {
        let stored: Vec<u8> = r.get(4)?;
        let encoding: String = r.get(5)?;
        let codec =
            lookout_protocol::codec::Encoding::from_name(&encoding).expect("known encoding");
        Ok(InboxRow {
            id: r.get(0)?,
            project_id: r.get(1)?,
            event_id: r.get(2)?,
            item_types: r.get(3)?,
            envelope: lookout_protocol::codec::decode(&stored, codec, 1 << 30)
                .expect("stored body decodes"),
            encoding,
        })
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

/// The Python interpreter of the test venv (`scripts/test` installs it).
pub fn python() -> PathBuf {
    let path = std::env::var_os("LOOKOUT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "the Python test venv is missing at {}: run scripts/test (or scripts/setup-test-env) to install sentry-sdk",
        path.display()
    );
    path
}

/// sentry-cli from the test venv.
pub fn sentry_cli() -> PathBuf {
    let path = std::env::var_os("LOOKOUT_TEST_SENTRY_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/sentry-cli"));
    assert!(
        path.exists(),
        "sentry-cli is missing at {}: run scripts/test (or scripts/setup-test-env) to install it",
        path.display()
    );
    path
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_owned()
}

/// Run a Python script with the venv's interpreter; panics with its output on failure.
pub async fn run_python(script: &str, env: &[(&str, String)]) -> String {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Debian's Chromium for the browser tests (`scripts/setup-test-env` installs it).
pub fn chromium() -> String {
    let path =
        std::env::var("LOOKOUT_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "Chromium is missing at {path}: run scripts/test (or scripts/setup-test-env), which installs Debian's chromium"
    );
    path
}

/// One run of a Playwright script of `tests/ui/` against a test server.
pub struct BrowserRun<'a> {
    /// The script's name, without `.py`.
    pub script: &'a str,
    /// Its arguments (a mode, for scripts that have several).
    pub args: &'a [&'a str],
    /// The `admin` password the server was started with.
    pub password: &'a str,
    /// The folder under `target/ui-artifacts/` its screenshots go to.
    pub artifacts: &'a str,
    /// Extra environment for the script.
    pub env: &'a [(&'a str, String)],
}

/// Run a Playwright script of `tests/ui/` in Chromium against `s` and return what it saw:
/// the JSON object on its last stdout line. Panics with its output when it fails (any failed
/// expectation in the script is an exit status 1), naming the fix when Playwright is missing.
pub async fn drive_browser(s: &TestServer, run: BrowserRun<'_>) -> serde_json::Value {
    let path = workspace_root()
        .join("crates/lookout-server/tests/ui")
        .join(format!("{}.py", run.script));
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path)
        .args(run.args)
        .env("LOOKOUT_URL", s.server.base_url())
        .env("LOOKOUT_PASSWORD", run.password)
        .env(
            "LOOKOUT_ARTIFACTS",
            workspace_root()
                .join("target/ui-artifacts")
                .join(run.artifacts),
        )
        .env("LOOKOUT_CHROMIUM", chromium());
    for (k, v) in run.env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), cmd.output())
        .await
        .expect("the browser run finished in time")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}.py {:?} failed ({}): {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.script,
        run.args,
        out.status,
        if stderr.contains("No module named 'playwright'") {
            "Playwright is not installed in the test venv: run scripts/setup-test-env"
        } else {
            "see stderr"
        },
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{}.py output is not JSON ({e}): {stdout}", run.script))
}

/// Log in to the web UI as `admin` with `password` and return the session cookie
/// (`name=value`) to send as `Cookie`.
pub async fn ui_login(s: &TestServer, password: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = client
        .post(format!("{}/login", s.server.base_url()))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={password}&next=/"))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303);
    res.headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned()
}
