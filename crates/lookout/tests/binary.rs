//! The `lookout` binary as a user runs it: first start prints a DSN, the CLI manages
//! projects and tokens beside a running server, SIGTERM drains, and no envelope that was
//! answered 200 is lost to `kill -9`.

#[path = "../../lookout-server/tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    base: String,
    dsn: String,
}

fn lookout() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
    cmd.env_remove("LOOKOUT_LISTEN")
        .env_remove("LOOKOUT_DATA_DIR")
        .env_remove("LOOKOUT_CONFIG")
        .env("LOOKOUT_LOG", "warn")
        // Keep digested envelopes, so the test can find every acknowledged one in the inbox.
        .env("LOOKOUT_INGEST__INBOX_RETENTION_SECS", "3600");
    cmd
}

/// Start `lookout serve` and read its address and DSN from what it prints.
async fn serve(data: &Path) -> (Running, Vec<String>) {
    let mut child = lookout()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("lookout starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut base, mut dsn) = (None, None);
    while base.is_none() || dsn.is_none() {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("server printed its address in time")
            .expect("read stdout")
            .expect("server exited before printing its address");
        if let Some(b) = line.strip_prefix("lookout listening on ") {
            base = Some(b.to_owned());
        }
        if let Some((_, d)) = line.split_once("DSN for default/default: ") {
            dsn = Some(d.to_owned());
        }
        seen.push(line);
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (
        Running {
            child,
            base: base.unwrap_or_default(),
            dsn: dsn.unwrap_or_default(),
        },
        seen,
    )
}

fn key_of(dsn: &str) -> String {
    dsn.split("://")
        .nth(1)
        .and_then(|r| r.split('@').next())
        .unwrap_or_default()
        .to_owned()
}

fn project_of(dsn: &str) -> String {
    dsn.rsplit('/').next().unwrap_or_default().to_owned()
}

async fn send(
    client: &reqwest::Client,
    r: &(String, String, String),
    event_id: &str,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let (base, project, key) = r;
    let payload = format!(
        "{{\"event_id\":\"{event_id}\",\"message\":\"load\",\"extra\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(2000)
    );
    let body = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    );
    client
        .post(format!("{base}/api/{project}/envelope/"))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(body)
        .send()
        .await
        .map(|r| r.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_envelopes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, first_lines) = serve(dir.path()).await;
    assert!(
        first_lines
            .iter()
            .any(|l| l.contains("created organisation \"default\" and project \"default\"")),
        "{first_lines:?}"
    );
    let target = Arc::new((
        running.base.clone(),
        project_of(&running.dsn),
        key_of(&running.dsn),
    ));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // 32 concurrent senders until the server dies under them.
    let mut tasks = Vec::new();
    for worker in 0..32u64 {
        let (target, acked, client) = (Arc::clone(&target), Arc::clone(&acked), client.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..100_000u64 {
                let id = format!("{worker:08x}{n:024x}");
                match send(&client, &target, &id).await {
                    Ok(s) if s.is_success() => {
                        acked.lock().unwrap().insert(id);
                    }
                    Ok(s) => panic!("unexpected status {s} under load"),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    // Kill it mid-stream once a good number of envelopes has been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 3000 {
        assert!(
            Instant::now() < deadline,
            "the server acknowledged too little in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.child.start_kill().expect("SIGKILL");
    running.child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().clone();

    // Restart on the same data: it recovers, and every acknowledged envelope is there.
    let (mut again, lines) = serve(dir.path()).await;
    assert!(
        !lines.iter().any(|l| l.contains("created organisation")),
        "{lines:?}"
    );
    let stored: HashSet<String> = common::read_inbox(&dir.path().join("inbox.db"))
        .into_iter()
        .filter_map(|r| r.event_id)
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged envelopes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );

    // The digest was killed mid-batch too: it resumes where it stopped, and every stored
    // envelope becomes exactly one event, counted once on its issue.
    // Read through the store's repositories, as a second process on the data directory.
    let store = lookout_server::store::Store::open(dir.path()).unwrap();
    let reader = store.reader();
    let project = reader.project("default", "default").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let issues = loop {
        let issues = reader.issues(project.id, &[], None, 100_000, 0).unwrap();
        let seen: i64 = issues.iter().map(|i| i.times_seen).sum();
        if seen as usize >= stored.len() || Instant::now() > deadline {
            break issues;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let times_seen: i64 = issues.iter().map(|i| i.times_seen).sum();
    let mut events = Vec::new();
    for issue in &issues {
        events.extend(
            reader
                .issue_events(issue.id, 100_000, 0)
                .unwrap()
                .into_iter()
                .map(|e| e.event_id),
        );
    }
    let distinct: std::collections::HashSet<&String> = events.iter().collect();
    assert_eq!(
        events.len(),
        stored.len(),
        "every stored envelope digested once"
    );
    assert_eq!(
        (distinct.len(), times_seen as usize),
        (stored.len(), stored.len()),
        "no duplicate event, no double count"
    );

    // The restarted server accepts more, and SIGTERM stops it cleanly.
    let target = (
        again.base.clone(),
        project_of(&again.dsn),
        key_of(&again.dsn),
    );
    assert!(
        send(&client, &target, "ffffffffffffffffffffffffffffffff")
            .await
            .unwrap()
            .is_success()
    );
    let pid = again.child.id().expect("pid");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), again.child.wait())
        .await
        .expect("server stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "graceful stop exits 0, got {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_projects_and_tokens_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, _) = serve(dir.path()).await;
    let base = running.base.clone();

    let out = lookout()
        .args([
            "projects",
            "create",
            "btc-bot",
            "--org",
            "desk",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dsn = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(dsn.starts_with("http://") && dsn.contains('@'), "{dsn}");

    // The running server accepts the new project's key at once.
    let client = reqwest::Client::new();
    let target = (base.clone(), project_of(&dsn), key_of(&dsn));
    assert_eq!(
        send(&client, &target, "abababababababababababababababab")
            .await
            .unwrap(),
        reqwest::StatusCode::OK
    );

    let dup = lookout()
        .args([
            "projects",
            "create",
            "btc-bot",
            "--org",
            "desk",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let list = lookout()
        .args(["projects", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("desk/btc-bot") && list.contains("default/default"),
        "{list}"
    );
    assert!(list.contains(&key_of(&dsn)));
    // The DSNs name the address the server was started at (an ephemeral port here), not
    // the default one: the server records its base URL when it starts.
    let authority = base.trim_start_matches("http://").to_owned();
    assert!(
        list.lines()
            .filter(|l| l.contains("http://"))
            .all(|l| l.contains(&format!("@{authority}/"))),
        "DSNs at {authority}: {list}"
    );

    let tok = lookout()
        .args([
            "tokens",
            "create",
            "--scope",
            "project:releases,org:read",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(tok.status.success());
    let token = String::from_utf8(tok.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    let bad = lookout()
        .args(["tokens", "create", "--scope", "root", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope"));

    running.child.start_kill().unwrap();
    running.child.wait().await.unwrap();
}

#[tokio::test]
async fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = lookout()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("LOOKOUT_INGEST__MAX_BATCH", "many")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ingest.max_batch") && err.contains("LOOKOUT_INGEST__MAX_BATCH"),
        "{err}"
    );
}

/// `lookout sandbox --faults FILE` serves the six services on one port with the file's
/// faults, changeable at runtime through the admin API, and stops on SIGTERM.
#[tokio::test]
async fn sandbox_serves_the_six_services_with_faults_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.toml");
    std::fs::write(
        &faults,
        "[default]\nlatency = { median_ms = 0.0, sigma = 0.0, max_ms = 0.0 }\n\n\
         [services.trading]\nerrors = { \"500\" = 1.0 }\n",
    )
    .unwrap();
    let mut child = lookout()
        .args(["sandbox", "--listen", "127.0.0.1:0", "--faults"])
        .arg(&faults)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("lookout sandbox starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut bases = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bases.contains_key("admin") {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("sandbox printed its services in time")
            .expect("read stdout")
            .expect("sandbox exited before printing its services");
        let mut words = line.split_whitespace();
        if let (Some(name), Some(url), None) = (words.next(), words.next(), words.next()) {
            bases.insert(name.to_owned(), url.to_owned());
        }
    }
    for service in ["casino", "faucet", "escrow", "trading", "wallet", "domains"] {
        assert!(
            bases.contains_key(service),
            "{service} missing in {bases:?}"
        );
    }
    let http = reqwest::Client::new();
    // Every market request fails with the configured 500, in the service's flat error body.
    let markets = http
        .get(format!("{}/markets", bases["trading"]))
        .send()
        .await
        .unwrap();
    assert_eq!(markets.status(), 500);
    let body: serde_json::Value = markets.json().await.unwrap();
    assert_eq!(body["error"], "internal_error", "{body}");
    // Registration at the casino is unaffected.
    let reg = http
        .post(format!("{}/auth/register", bases["casino"]))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201, "{:?}", reg.text().await);
    // Clearing the faults at runtime brings the markets back.
    let cleared = http.delete(&bases["admin"]).send().await.unwrap();
    assert!(cleared.status().is_success());
    let markets = http
        .get(format!("{}/markets", bases["trading"]))
        .send()
        .await
        .unwrap();
    assert_eq!(markets.status(), 200);

    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("sandbox stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A fault file that does not parse stops `lookout sandbox` with a message naming the file.
#[tokio::test]
async fn sandbox_rejects_a_bad_fault_file() {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults.toml");
    std::fs::write(&faults, "[services.trading]\nerrors = { \"503\" = 7.0 }\n").unwrap();
    let out = lookout()
        .args(["sandbox", "--listen", "127.0.0.1:0", "--faults"])
        .arg(&faults)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("faults.toml"), "{err}");
}

/// `url` with a password in it when it has none (PostgreSQL's trust authentication ignores
/// it), so that the test can see it is never printed; `None` when it has one already.
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (user, host) = rest.split_once('@')?;
    (!user.contains(':')).then(|| format!("{scheme}://{user}:{password}@{host}"))
}

/// The number on a table's line of `lookout migrate`'s output (`  <table>   <rows>`).
fn rows_of(out: &str, table: &str) -> Option<u64> {
    out.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some(table))
            .then(|| words.last()?.parse().ok())
            .flatten()
    })
}

/// `lookout migrate` copies the data directory a server ran on into an empty PostgreSQL
/// database, printing each table's rows and a final line, and refuses (exit 1, naming what
/// is there) a database that holds data; the password never shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_data_directory_into_postgres_and_refuses_a_used_database() {
    let dir = tempfile::tempdir().unwrap();
    let (mut running, _) = serve(dir.path()).await;
    let target = (
        running.base.clone(),
        project_of(&running.dsn),
        key_of(&running.dsn),
    );
    let client = reqwest::Client::new();
    assert_eq!(
        send(&client, &target, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd")
            .await
            .unwrap(),
        reqwest::StatusCode::OK
    );
    let pid = running.child.id().expect("pid");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), running.child.wait())
        .await
        .expect("server stops after SIGTERM")
        .unwrap();
    assert!(exit.success());

    let db = common::TestDb::create_required();
    const SECRET: &str = "hunter2-not-shown";
    let url = with_password(&db.url, SECRET).unwrap_or_else(|| db.url.clone());
    let out = lookout()
        .env_remove("LOOKOUT_DATABASE_URL")
        .args(["migrate", "--from"])
        .arg(dir.path())
        .args(["--to", &url])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(rows_of(&stdout, "projects"), Some(1), "{stdout}");
    assert_eq!(rows_of(&stdout, "project_keys"), Some(1), "{stdout}");
    // The event is in the events, or still in the inbox when the server stopped before
    // digesting it.
    assert_eq!(
        rows_of(&stdout, "events").unwrap_or_default()
            + rows_of(&stdout, "inbox").unwrap_or_default(),
        1,
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("copied ") && last.contains("every count verified"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));

    // Again, the database named by LOOKOUT_DATABASE_URL this time: refused.
    let again = lookout()
        .env("LOOKOUT_DATABASE_URL", &url)
        .args(["migrate", "--from"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the target database is not empty") && err.contains("projects (1 row)"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");

    // A directory no server ran in is not a store.
    let empty = tempfile::tempdir().unwrap();
    let none = lookout()
        .args(["migrate", "--from"])
        .arg(empty.path())
        .args(["--to", &url])
        .output()
        .await
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("lookout.db is not there"));
}
