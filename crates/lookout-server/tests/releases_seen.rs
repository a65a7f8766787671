//! Releases named only by events, transactions and sessions are created once, during the
//! digest, and linked to their project, as Sentry does: the releases API and
//! `sentry-cli releases list` show them.

mod common;

use common::{TestServer, sentry_cli};
use serde_json::{Value, json};

fn envelope(item_type: &str, payload: &Value) -> Vec<u8> {
    let p = payload.to_string();
    format!(
        "{{}}\n{{\"type\":\"{item_type}\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_seen_only_in_events_and_sessions_are_created_once() {
    let s = TestServer::start().await;
    let token = s.token();
    let client = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for n in 0..3 {
        s.post_envelope(
            &client,
            envelope(
                "event",
                &json!({"event_id": format!("{:032x}", n + 1), "timestamp": now, "level": "error",
                        "message": "margin call", "release": "vol-arb@2.0.0"}),
            ),
        )
        .await;
    }
    s.post_envelope(
        &client,
        envelope(
            "session",
            &json!({"sid": uuid::Uuid::new_v4().to_string(), "status": "ok", "init": true,
                    "started": chrono::Utc::now().to_rfc3339(), "attrs": {"release": "vol-arb@2.0.1"}}),
        ),
    )
    .await;
    let releases = s
        .eventually("both releases created", || async {
            let (_, list) = s
                .api(&token, "/api/0/organizations/default/releases/")
                .await;
            let versions: Vec<String> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["version"].as_str().map(str::to_owned))
                .collect();
            (versions.contains(&"vol-arb@2.0.0".to_owned())
                && versions.contains(&"vol-arb@2.0.1".to_owned()))
            .then_some(list)
        })
        .await;
    let created: Vec<&Value> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["version"] == "vol-arb@2.0.0")
        .collect();
    assert_eq!(created.len(), 1, "created once: {releases:#}");
    assert_eq!(created[0]["projects"][0]["slug"], "default", "{releases:#}");

    // sentry-cli lists them too, for the project.
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(sentry_cli())
        .args(["releases", "list", "-p", "default"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("SENTRY_URL", s.server.base_url())
        .env("SENTRY_AUTH_TOKEN", &token)
        .env("SENTRY_ORG", "default")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .output()
        .await
        .expect("sentry-cli runs");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    assert!(
        listed.contains("vol-arb@2.0.0") && listed.contains("vol-arb@2.0.1"),
        "{listed}"
    );
}
