//! A node whose PostgreSQL goes away: ingest answers 503 with `Retry-After` (never 200 for
//! what was not stored), `/health` says the database is unreachable, and once the database
//! is back the node takes envelopes and digests them again by itself.

mod common;

use common::{TestDb, TestServer, test_config};
use lookout_server::Server;
use std::time::{Duration, Instant};

fn admin(db: &TestDb, sql: String) {
    let admin = std::env::var("LOOKOUT_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("LOOKOUT_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let _ = db;
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("admin connection");
        c.batch_execute(&sql).expect("admin statement");
    })
    .join()
    .expect("admin thread");
}

fn event(id: &str) -> Vec<u8> {
    let p = format!("{{\"event_id\":\"{id}\",\"message\":\"db down {id}\",\"level\":\"error\"}}");
    format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_503_while_the_database_is_down_and_recovers_by_itself() {
    let db = TestDb::create_required();
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::builder(test_config(dir.path(), Some(&db)))
        .start()
        .await
        .expect("server starts");
    let s = TestServer {
        server,
        dir,
        db: None,
    };
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let client = reqwest::Client::new();
    let (url, auth) = (
        s.envelope_url(),
        format!("Sentry sentry_key={}, sentry_version=7", s.key()),
    );
    let post = |id: &str| {
        client
            .post(&url)
            .header("x-sentry-auth", &auth)
            .body(event(id))
            .send()
    };
    let up = "a".repeat(32);
    assert_eq!(post(&up).await.expect("post").status(), 200);
    // Read before the cut: a pooled reader the cut closed fails its next query once (then
    // it is replaced), which is not what this test is about.
    let project = s.project_id();

    // The database refuses this node: new connections are closed to it, the open ones cut.
    admin(
        &db,
        format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ),
    );
    let down = "b".repeat(32);
    let r = post(&down).await.expect("post");
    assert_eq!(r.status(), 503, "nothing stored, so never 200");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 0);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("retry")),
        "{body}"
    );
    let h = client
        .get(format!("{}/health", s.server.base_url()))
        .send()
        .await
        .expect("health");
    assert_eq!(h.status(), 503);
    let h: serde_json::Value = h.json().await.expect("json");
    assert_eq!(h["status"], "unavailable");
    assert_eq!(h["database"], "postgres");
    assert!(
        h["detail"].as_str().is_some_and(|d| d.contains("database")),
        "{h}"
    );

    // Back: the node reconnects by itself, takes envelopes and digests them.
    admin(&db, format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let again = "c".repeat(32);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = post(&again).await.expect("post").status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering");
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = |id: &str| {
        let (store, id) = (s.server.store.clone(), id.to_owned());
        std::thread::spawn(move || store.reader().event(project, &id).is_ok())
            .join()
            .expect("reader thread")
    };
    s.eventually("the events before and after digested", || async {
        (stored(&up) && stored(&again)).then_some(())
    })
    .await;
    assert!(!stored(&down), "the envelope answered 503 was not stored");
    let h: serde_json::Value = client
        .get(format!("{}/health", s.server.base_url()))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(h["status"], "ok");
    s.server.stop().await.expect("stop");
    drop(db);
}
