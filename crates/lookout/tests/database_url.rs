//! `database_url` from the command line: a bad URL, an unreachable server and a refused
//! login stop the start with an error naming the key and the cause; the admin commands work
//! on a PostgreSQL store as on the embedded one.

#[path = "../../lookout-server/tests/common/mod.rs"]
mod common;

use std::process::Output;
use tokio::process::Command;

async fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .env_remove("LOOKOUT_LISTEN")
        .env_remove("LOOKOUT_DATA_DIR")
        .env_remove("LOOKOUT_CONFIG")
        .env_remove("LOOKOUT_DATABASE_URL")
        .env("LOOKOUT_LOG", "error")
        .args(args)
        .output()
        .await
        .expect("lookout runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_bad_url_an_unreachable_server_or_a_refused_login_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().to_str().expect("utf-8 path");
    for (url, cause) in [
        ("mysql://root@127.0.0.1/lookout", "must be a PostgreSQL URL"),
        (
            "postgres://postgres@127.0.0.1:1/postgres",
            "Connection refused",
        ),
        (
            "postgres://no_such_lookout_role@127.0.0.1:5432/postgres",
            "no_such_lookout_role",
        ),
    ] {
        let out = lookout(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--database-url",
            url,
        ])
        .await;
        assert!(!out.status.success(), "{url} must not start");
        let err = stderr(&out);
        assert!(err.contains("database_url"), "{url}: {err}");
        assert!(err.contains(cause), "{url}: {err}");
    }
}

#[tokio::test]
async fn projects_and_tokens_work_on_a_postgresql_store() {
    let db = common::TestDb::create_required();
    let out = lookout(&["projects", "create", "bots", "--database-url", &db.url]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let dsn = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dsn.contains("http://"), "prints the DSN: {dsn}");
    let out = lookout(&["projects", "list", "--database-url", &db.url]).await;
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && list.contains("bots"), "{list}");
    let out = lookout(&[
        "tokens",
        "create",
        "--name",
        "ci",
        "--database-url",
        &db.url,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let url = db.url.clone();
    let found = std::thread::spawn(move || {
        let store = lookout_server::store::Store::open_postgres(&url).expect("store");
        store.find_token(&token).expect("lookup").map(|t| t.name)
    })
    .join()
    .expect("thread");
    assert_eq!(found.as_deref(), Some("ci"));
}
