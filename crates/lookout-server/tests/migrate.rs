//! Moving up to PostgreSQL (`lookout migrate`) at the store level: an embedded store filled
//! by a real server (the Python SDK's errors, a transaction, a session and a check-in; a
//! release with a deploy, an alert rule, channels, a token and a UI account through the API),
//! copied into a fresh PostgreSQL database and served from there: the same issues, events,
//! releases, deploys, rules and channels, the same token and password, ids that go on after
//! the copied ones, and the envelope the embedded server had accepted but not digested,
//! digested. A second copy into the same database is refused; a copy that fails leaves the
//! target empty, and it can run again.
//!
//! These tests need PostgreSQL whatever the suite runs on: `LOOKOUT_TEST_DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1/postgres`. The source is always the embedded store.

mod common;

use common::{ApiClient, TestDb, TestServer, run_python};
use lookout_server::Server;
use lookout_server::config::Config;
use lookout_server::store::copy::{CopyReport, copy_store};
use lookout_server::store::{Store, StoreError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "migrate-horse-battery";

const SCRIPT: &str = r#"
import os, sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.crons.consts import MonitorStatus

sentry_sdk.init(dsn=os.environ["DSN"], release="vol-arb@1.0.0", environment="paper", traces_sample_rate=1.0)
scope = sentry_sdk.get_isolation_scope()
scope.start_session()

class InsufficientMargin(Exception):
    pass

for asset, amount in [("BTC", 12.5), ("BTC", 99.1), ("ETH", 3.2)]:
    with sentry_sdk.new_scope() as s:
        s.fingerprint = ["{{ default }}", "InsufficientMargin", asset]
        s.set_tag("trade.asset", asset)
        s.set_user({"id": f"agent-{asset}"})
        try:
            raise InsufficientMargin(f"margin {amount} below maintenance on {asset}")
        except InsufficientMargin:
            sentry_sdk.capture_exception()

sentry_sdk.capture_message("order 1234 failed")
with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy"):
    for op in ["signal.validate", "risk.check", "order.confirm"]:
        with sentry_sdk.start_span(op=op, name=op):
            pass
capture_checkin(monitor_slug="rebalance", status=MonitorStatus.OK, duration=2.0,
                monitor_config={"schedule": {"type": "interval", "value": 1, "unit": "hour"}, "checkin_margin": 5})
scope.end_session()
sentry_sdk.flush(timeout=10)
print("sent")
"#;

/// A server on the embedded store whatever the suite runs on, with an `admin` account.
async fn start_embedded() -> TestServer {
    common::init_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::test_config(dir.path(), None);
    config.admin_password = Some(PASSWORD.into());
    config.ingest.inbox_retention_secs = 3600;
    let server = Server::builder(config)
        .start()
        .await
        .expect("server starts");
    TestServer {
        server,
        dir,
        db: None,
    }
}

/// A server on the PostgreSQL database at `url`, with no `admin_password`: only accounts
/// the database holds can log in.
async fn start_on(url: &str, dir: &Path) -> lookout_server::RunningServer {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        database_url: Some(url.to_owned()),
        ..Config::default()
    };
    Server::builder(config)
        .start()
        .await
        .expect("server starts on PostgreSQL")
}

fn sorted_by_id(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x["id"].as_str().and_then(|s| s.parse::<i64>().ok()));
    v
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
}

/// What the API says of everything the embedded server was given, in fields that do not
/// depend on the time of asking.
async fn snapshot(api: &ApiClient) -> Value {
    let issues = api
        .get("/api/0/projects/default/default/issues/?query=")
        .await
        .expect(200);
    let issues = sorted_by_id(
        array(&issues)
            .iter()
            .map(|i| {
                json!({"id": i["id"], "shortId": i["shortId"], "title": i["title"], "count": i["count"],
                   "userCount": i["userCount"], "firstSeen": i["firstSeen"], "lastSeen": i["lastSeen"],
                   "status": i["status"]})
            })
            .collect(),
    );
    let mut events = BTreeMap::new();
    for issue in &issues {
        let id = issue["id"].as_str().expect("issue id");
        let list = api
            .get(&format!("/api/0/issues/{id}/events/"))
            .await
            .expect(200);
        let mut ids: Vec<String> = array(&list)
            .iter()
            .map(|e| e["eventID"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        events.insert(id.to_owned(), ids);
    }
    let pick = |v: Value, fields: &[&str]| -> Vec<Value> {
        let picked = array(&v)
            .iter()
            .map(|x| {
                Value::Object(
                    fields
                        .iter()
                        .map(|f| ((*f).to_owned(), x[*f].clone()))
                        .collect(),
                )
            })
            .collect();
        sorted_by_id(picked)
    };
    let releases = api
        .get("/api/0/organizations/default/releases/")
        .await
        .expect(200);
    let deploys = api
        .get("/api/0/organizations/default/releases/vol-arb@2.0.0/deploys/")
        .await
        .expect(200);
    let rules = api
        .get("/api/0/projects/default/default/rules/")
        .await
        .expect(200);
    let alert_rules = api
        .get("/api/0/organizations/default/alert-rules/")
        .await
        .expect(200);
    let channels = api
        .get("/api/0/organizations/default/integrations/")
        .await
        .expect(200);
    let monitors = api
        .get("/api/0/organizations/default/monitors/")
        .await
        .expect(200);
    let transactions = api
        .get("/api/0/projects/default/default/transactions/?statsPeriod=24h")
        .await
        .expect(200);
    let health = api
        .get("/api/0/projects/default/default/releases/health/?statsPeriod=24h")
        .await
        .expect(200);
    let incidents = api
        .get("/api/0/organizations/default/incidents/")
        .await
        .expect(200);
    let mut versions: Vec<Value> = array(&releases)
        .iter()
        .map(|r| json!({"version": r["version"], "dateCreated": r["dateCreated"]}))
        .collect();
    versions.sort_by_key(|r| r["version"].as_str().map(str::to_owned));
    json!({
        "issues": issues,
        "events": events,
        "releases": versions,
        "deploys": pick(deploys, &["id", "environment", "dateFinished"]),
        "rules": pick(rules, &["id", "name", "frequency"]),
        "alertRules": pick(alert_rules, &["id", "name"]),
        "channels": pick(channels, &["id", "name", "provider"]),
        "monitors": pick(monitors, &["id", "slug", "status"]),
        "incidents": pick(incidents, &["id", "title"]),
        "transactions": transactions["data"],
        "health": health["data"],
    })
}

/// `now` without the issues, their events and the incidents that `then` did not have.
fn as_of(mut now: Value, then: &Value) -> Value {
    let ids =
        |key: &str| -> Vec<Value> { array(&then[key]).iter().map(|x| x["id"].clone()).collect() };
    for key in ["issues", "incidents"] {
        let known = ids(key);
        if let Some(list) = now[key].as_array_mut() {
            list.retain(|x| known.contains(&x["id"]));
        }
    }
    if let (Some(events), Some(known)) = (now["events"].as_object_mut(), then["events"].as_object())
    {
        events.retain(|issue, _| known.contains_key(issue));
    }
    now
}

/// Fill the embedded server; returns the token used.
async fn fill(s: &TestServer) -> String {
    let token = s.token();
    let api = s.api_client(&token);
    let out = run_python(SCRIPT, &[("DSN", s.dsn())]).await;
    assert!(out.contains("sent"), "{out}");
    let mut channel_ids = Vec::new();
    for body in [
        json!({"provider": "slack", "name": "ops", "config": {"url": "http://127.0.0.1:9/slack"}}),
        json!({"provider": "webhook", "name": "kill-switch", "config": {"url": "http://127.0.0.1:9/hook", "secret": "whsec-migrate"}}),
    ] {
        let v = api
            .post("/api/0/organizations/default/integrations/", &body)
            .await
            .expect(201);
        channel_ids.push(v["id"].as_str().expect("channel id").to_owned());
    }
    api.post("/api/0/projects/default/default/rules/", &json!({
        "name": "ETH margin storm", "actionMatch": "all", "filterMatch": "all", "frequency": 30,
        "conditions": [{"id": "sentry.rules.conditions.event_frequency.EventFrequencyCondition", "value": 2, "interval": "1m"}],
        "filters": [{"id": "sentry.rules.filters.tagged_event.TaggedEventFilter", "key": "trade.asset", "match": "eq", "value": "ETH"}],
        "actions": [{"id": "sentry.integrations.slack.notify_action.SlackNotifyServiceAction", "workspace": channel_ids[0], "channel": "#trading"}]
    }))
    .await
    .expect(201);
    api.post(
        "/api/0/organizations/default/releases/",
        &json!({"version": "vol-arb@2.0.0", "projects": ["default"]}),
    )
    .await
    .expect(201);
    api.post(
        "/api/0/organizations/default/releases/vol-arb@2.0.0/deploys/",
        &json!({"environment": "paper"}),
    )
    .await
    .expect(201);
    // Everything sent is digested: four events in three issues, the transaction, the
    // session and the check-in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = snapshot(&api).await;
        let events: u64 = array(&v["issues"])
            .iter()
            .filter_map(|i| i["count"].as_str()?.parse::<u64>().ok())
            .sum();
        let has = |key: &str| v[key].as_array().is_some_and(|a| !a.is_empty());
        if events == 4 && has("transactions") && has("health") && has("monitors") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the SDK's traffic digested: {v:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    token
}

/// A plain event envelope.
fn event_envelope(message: &str) -> (String, Vec<u8>) {
    let event_id = uuid::Uuid::new_v4().simple().to_string();
    let payload = json!({
        "event_id": event_id, "platform": "python", "level": "error", "message": message,
        "timestamp": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
    })
    .to_string();
    let body = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    );
    (event_id, body.into_bytes())
}

/// Append an envelope to the embedded inbox behind the digest's back (as if the server had
/// stopped before digesting it); returns how many rows now wait after the digest cursor.
fn leave_in_inbox(dir: &Path, message: &str) -> i64 {
    let main = rusqlite::Connection::open(dir.join("lookout.db")).expect("open lookout.db");
    let cursor: i64 = main
        .query_row(
            "SELECT last_inbox_id FROM digest_cursor WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .expect("digest cursor");
    let (project, key): (i64, i64) = main
        .query_row(
            "SELECT project_id, id FROM project_keys ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a key");
    let inbox = rusqlite::Connection::open(dir.join("inbox.db")).expect("open inbox.db");
    let (event_id, body) = event_envelope(message);
    inbox
        .execute(
            "INSERT INTO inbox (project_id, key_id, received_at, event_id, item_types, encoding, envelope)
             VALUES (?1, ?2, ?3, ?4, 'event', 'identity', ?5)",
            rusqlite::params![project, key, chrono::Utc::now().timestamp_millis(), event_id, body],
        )
        .expect("append to the inbox");
    inbox
        .query_row("SELECT COUNT(*) FROM inbox WHERE id > ?1", [cursor], |r| {
            r.get(0)
        })
        .expect("pending rows")
}

/// Every table of the embedded store with its rows, read with SQLite itself.
fn sqlite_counts(dir: &Path) -> BTreeMap<String, u64> {
    let c = rusqlite::Connection::open(dir.join("lookout.db")).expect("open lookout.db");
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("table names");
    names
        .into_iter()
        .map(|t| {
            let n: i64 = c
                .query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))
                .expect("count");
            (t, n as u64)
        })
        .collect()
}

/// Rows of each of `tables` in the PostgreSQL database at `url`, read with its own client.
fn postgres_counts(url: &str, tables: Vec<String>) -> BTreeMap<String, u64> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        tables
            .into_iter()
            .map(|t| {
                let n: i64 = c
                    .query_one(&format!("SELECT COUNT(*) FROM \"{t}\""), &[])
                    .expect("count")
                    .get(0);
                (t, n as u64)
            })
            .collect()
    })
    .join()
    .expect("counting in PostgreSQL")
}

/// Copy the embedded store in `dir` into `url`, on a blocking thread; the report, the
/// progress calls, and what a second copy into the same database answers.
async fn copy(
    dir: PathBuf,
    url: String,
) -> (
    CopyReport,
    Vec<(String, u64)>,
    Result<CopyReport, StoreError>,
) {
    tokio::task::spawn_blocking(move || {
        let from = Store::open(&dir).expect("open the embedded store");
        let to = Store::open_postgres(&url).expect("open PostgreSQL");
        let mut seen = Vec::new();
        let report = copy_store(&from, &to, |t, n| seen.push((t.to_owned(), n))).expect("copy");
        let again = copy_store(&from, &to, |_, _| {});
        (report, seen, again)
    })
    .await
    .expect("copy thread")
}

async fn login(base: &str, password: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={password}&next=/"))
        .send()
        .await
        .expect("login")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_moves_to_postgres_whole_and_a_second_copy_is_refused() {
    let s = start_embedded().await;
    let token = fill(&s).await;
    let before = snapshot(&s.api_client(&token)).await;
    let old_issue_ids: Vec<i64> = before["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter_map(|i| i["id"].as_str()?.parse().ok())
        .collect();
    assert_eq!(old_issue_ids.len(), 3, "{before:#}");
    let TestServer { server, dir, .. } = s;
    server.stop().await.expect("the embedded server stops");
    let pending = leave_in_inbox(dir.path(), "settlement stalled while the server was down");
    let sqlite = sqlite_counts(dir.path());

    let db = TestDb::create_required();
    let (report, seen, again) = copy(dir.path().to_owned(), db.url.clone()).await;

    // Every table of the embedded store, parents before children, with SQLite's count,
    // which PostgreSQL's own count confirms.
    let copied: BTreeMap<String, u64> = report
        .tables
        .iter()
        .map(|t| (t.table.clone(), t.rows))
        .collect();
    assert_eq!(copied.len(), report.tables.len(), "each table once");
    assert_eq!(copied, sqlite, "every table, with SQLite's counts");
    assert_eq!(
        postgres_counts(&db.url, copied.keys().cloned().collect()),
        sqlite,
        "PostgreSQL holds as many rows as SQLite"
    );
    for table in [
        "organizations",
        "projects",
        "project_keys",
        "api_tokens",
        "users",
        "issues",
        "events",
        "spans",
        "sessions",
        "monitors",
        "check_ins",
        "releases",
        "deploys",
        "alert_rules",
        "integrations",
        "rollup_events",
        "rollup_latency",
        "incidents",
    ] {
        assert!(copied[table] > 0, "{table} has rows to copy: {copied:?}");
    }
    let at = |t: &str| {
        report
            .tables
            .iter()
            .position(|x| x.table == t)
            .unwrap_or_else(|| panic!("{t} copied"))
    };
    for (parent, child) in [
        ("organizations", "projects"),
        ("projects", "project_keys"),
        ("releases", "deploys"),
        ("releases", "release_projects"),
        ("users", "ui_sessions"),
    ] {
        assert!(at(parent) < at(child), "{parent} before {child}");
    }
    for t in &report.tables {
        assert_eq!(
            seen.iter().rev().find(|(name, _)| *name == t.table),
            Some(&(t.table.clone(), t.rows)),
            "progress ends with {}'s count",
            t.table
        );
    }
    assert_eq!(report.inbox_undigested, pending as u64);
    assert!(report.inbox_undigested >= 1);
    assert!(
        report.digest_cursor > 0 && report.alert_cursor > 0,
        "{report:?}"
    );
    match again {
        Err(StoreError::Invalid(why)) => {
            assert!(
                why.contains("not empty") && why.contains("projects (1 row)"),
                "{why}"
            );
        }
        other => panic!("a second copy is refused: {other:?}"),
    }

    // Served from PostgreSQL: the same data through the same API, with the same token.
    let pg_dir = tempfile::tempdir().expect("tempdir");
    let pg = start_on(&db.url, pg_dir.path()).await;
    let api = ApiClient::new(pg.base_url(), &token);
    // The server digests the envelope left in the inbox as soon as it starts: what that adds
    // is checked below; here, everything that was there before.
    let after = as_of(snapshot(&api).await, &before);
    assert_eq!(after, before, "the API answers the same on PostgreSQL");
    // The password is the one set on the embedded store.
    let r = login(&pg.base_url(), PASSWORD).await;
    let location = r.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        r.status() == 303 && !location.contains("failed") && r.headers().contains_key("set-cookie"),
        "{} {location}",
        r.status()
    );
    assert!(
        login(&pg.base_url(), "wrong").await.headers()[reqwest::header::LOCATION]
            .to_str()
            .expect("location")
            .contains("failed=1")
    );

    // The envelope the embedded server never digested is digested now, and new data takes
    // ids after the copied ones.
    let (_, body) = event_envelope("a fresh failure after the move");
    let key = pg.store.list_projects().expect("projects")[0]
        .public_key
        .clone();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/{}/envelope/",
            pg.base_url(),
            pg.store.list_projects().expect("projects")[0].id
        ))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        )
        .body(body)
        .send()
        .await
        .expect("envelope");
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let new_issues = loop {
        let list = api
            .get("/api/0/projects/default/default/issues/?query=")
            .await
            .expect(200);
        let titles: BTreeMap<String, i64> = array(&list)
            .iter()
            .filter_map(|i| {
                Some((
                    i["title"].as_str()?.to_owned(),
                    i["id"].as_str()?.parse().ok()?,
                ))
            })
            .collect();
        let new: Vec<i64> = ["settlement stalled", "a fresh failure"]
            .iter()
            .filter_map(|t| {
                titles
                    .iter()
                    .find(|(title, _)| title.contains(t))
                    .map(|(_, id)| *id)
            })
            .collect();
        if new.len() == 2 {
            break new;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the undigested envelope and a new one digested on PostgreSQL: {titles:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let newest_old = old_issue_ids.iter().max().copied().unwrap_or_default();
    assert!(
        new_issues.iter().all(|id| *id > newest_old),
        "new issues {new_issues:?} after the copied ones (up to {newest_old})"
    );
    let rule = api
        .post("/api/0/projects/default/default/rules/", &json!({
            "name": "after the move", "actionMatch": "all", "filterMatch": "all", "frequency": 5,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "actions": [{"id": "lookout.actions.NotifyAllChannelsAction"}]
        }))
        .await
        .expect(201);
    let rule_id: i64 = rule["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("rule id");
    let newest_rule = before["alertRules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str()?.parse::<i64>().ok())
        .max()
        .unwrap_or_default();
    assert!(rule_id > newest_rule, "rule {rule_id} after {newest_rule}");
    // The alert stage reads the feed after the copied cursor: the new issues open incidents.
    let opened = before["incidents"].as_array().map_or(0, Vec::len);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list = api
            .get("/api/0/organizations/default/incidents/")
            .await
            .expect(200);
        if array(&list).iter().any(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.contains("settlement stalled"))
        }) {
            assert!(array(&list).len() > opened);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an incident for an issue digested on PostgreSQL: {list:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    pg.stop().await.expect("the PostgreSQL server stops");
}

#[test]
fn a_copy_that_fails_leaves_the_target_empty_and_can_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = Store::open(dir.path()).expect("embedded store");
    from.create_project("acme", "bots", Some(60))
        .expect("project");
    let (_, token) = from.create_token("ci", &[]).expect("token");
    from.users()
        .set_password("admin", PASSWORD, 1)
        .expect("account");
    // A value PostgreSQL's column cannot take, in a table copied after the projects.
    let raw = rusqlite::Connection::open(dir.path().join("lookout.db")).expect("open");
    raw.execute("UPDATE api_tokens SET created_at = 'yesterday'", [])
        .expect("spoil a row");
    let db = TestDb::create_required();
    let to = Store::open_postgres(&db.url).expect("open PostgreSQL");
    match copy_store(&from, &to, |_, _| {}) {
        Err(StoreError::Invalid(why)) => assert!(
            why.contains("api_tokens.created_at") && why.contains("yesterday"),
            "the error names the column and the value: {why}"
        ),
        other => panic!("the copy fails: {other:?}"),
    }
    let tables: Vec<String> = sqlite_counts(dir.path()).into_keys().collect();
    let left = postgres_counts(&db.url, tables);
    assert!(
        left.iter()
            .all(|(t, n)| *n == 0 || ["digest_cursor", "alert_cursor"].contains(&t.as_str())),
        "nothing was written: {left:?}"
    );
    assert!(to.list_projects().expect("projects").is_empty());

    // Mended, the same copy goes through into the same database.
    raw.execute("UPDATE api_tokens SET created_at = 1", [])
        .expect("mend the row");
    let report = copy_store(&from, &to, |_, _| {}).expect("the copy runs again");
    let rows = |t: &str| report.tables.iter().find(|x| x.table == t).map(|x| x.rows);
    assert_eq!(
        (rows("projects"), rows("api_tokens"), rows("users")),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        to.list_projects().expect("projects"),
        from.list_projects().expect("projects")
    );
    assert!(to.find_token(&token).expect("token lookup").is_some());
    assert_eq!(
        report.inbox_undigested, 0,
        "a store never served has no inbox"
    );
}

#[test]
fn only_an_embedded_store_copies_and_only_into_postgres() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let lite_a = Store::open(a.path()).expect("embedded store");
    let lite_b = Store::open(b.path()).expect("embedded store");
    let db = TestDb::create_required();
    let pg = Store::open_postgres(&db.url).expect("open PostgreSQL");
    for (from, to, says) in [
        (
            &lite_a,
            &lite_b,
            "target of a copy must be a PostgreSQL database",
        ),
        (
            &pg,
            &pg,
            "source of a copy must be an embedded (SQLite) store",
        ),
    ] {
        match copy_store(from, to, |_, _| {}) {
            Err(StoreError::Invalid(why)) => assert!(why.contains(says), "{why}"),
            other => panic!("refused ({says}): {other:?}"),
        }
    }
}
