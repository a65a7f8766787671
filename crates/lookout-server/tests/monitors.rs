//! Cron and heartbeat monitors from real SDK check-ins, missed and timeout on a controllable
//! clock, failure issues opened and resolved; release health from real session traffic.

mod common;

use common::{TestServer, run_python};
use serde_json::{Value, json};

async fn monitor(s: &TestServer, token: &str, slug: &str) -> Value {
    let (status, m) = s
        .api(
            token,
            &format!("/api/0/organizations/default/monitors/{slug}/"),
        )
        .await;
    assert_eq!(status, 200, "{m}");
    m
}

async fn checkins(s: &TestServer, token: &str, slug: &str) -> Vec<String> {
    let (_, list) = s
        .api(
            token,
            &format!("/api/0/organizations/default/monitors/{slug}/checkins/"),
        )
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect()
}

const CRON_SCRIPT: &str = r#"
import os, sentry_sdk
from sentry_sdk.crons import monitor
sentry_sdk.init(dsn=os.environ["DSN"], environment="paper")
config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1,
          "max_runtime": 1, "failure_issue_threshold": 1, "recovery_threshold": 1, "timezone": "UTC"}
@monitor(monitor_slug="recalibrate", monitor_config=config)
def recalibrate():
    return 42
recalibrate()
sentry_sdk.flush(timeout=10)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cron_monitor_missed_opens_an_issue_and_ok_resolves_it() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    run_python(CRON_SCRIPT, &[("DSN", s.dsn())]).await;
    let m = s
        .eventually("monitor created from monitor_config", || async {
            let (status, m) = s
                .api(&token, "/api/0/organizations/default/monitors/recalibrate/")
                .await;
            (status == 200 && m["environments"][0]["status"] == "ok").then_some(m)
        })
        .await;
    assert_eq!(m["config"]["schedule_type"], "interval");
    assert_eq!(m["config"]["schedule"], json!([1, "minute"]));
    assert_eq!(m["environments"][0]["name"], "paper");
    assert!(m["environments"][0]["nextCheckIn"].is_string());
    assert_eq!(checkins(&s, &token, "recalibrate").await, ["ok"]);

    // On time: nothing. Two minutes late (past the 1-minute margin): missed.
    s.server.clock.advance(90_000);
    s.server.tick().await;
    assert_eq!(
        monitor(&s, &token, "recalibrate").await["environments"][0]["status"],
        "ok"
    );
    s.server.clock.advance(60_000);
    s.server.tick().await;
    let m = monitor(&s, &token, "recalibrate").await;
    assert_eq!(m["environments"][0]["status"], "missed_checkin");
    assert_eq!(m["health"], "missed_checkin");
    assert_eq!(checkins(&s, &token, "recalibrate").await, ["missed", "ok"]);
    // One outage is one miss per period, not one per tick.
    s.server.tick().await;
    assert_eq!(checkins(&s, &token, "recalibrate").await.len(), 2);
    let (_, issues) = s
        .api(
            &token,
            "/api/0/projects/default/default/issues/?query=Monitor",
        )
        .await;
    assert_eq!(issues.as_array().unwrap().len(), 1, "{issues}");
    assert_eq!(issues[0]["title"], "Monitor failure: recalibrate (paper)");
    let issue_id = issues[0]["id"].as_str().unwrap().to_owned();

    // The job runs again (recovery threshold 1): the issue resolves.
    run_python(CRON_SCRIPT, &[("DSN", s.dsn())]).await;
    s.eventually("recovered", || async {
        let (_, issue) = s.api(&token, &format!("/api/0/issues/{issue_id}/")).await;
        (issue["status"] == "resolved").then_some(())
    })
    .await;
    assert_eq!(
        monitor(&s, &token, "recalibrate").await["environments"][0]["status"],
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_past_max_runtime_times_out_and_unknown_monitors_need_a_config() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    // No monitor_config and no monitor: the check-in is kept but no monitor appears.
    run_python(
        r#"
import os, sentry_sdk
from sentry_sdk.crons import capture_checkin
sentry_sdk.init(dsn=os.environ["DSN"])
capture_checkin(monitor_slug="nightly-sweep", status="ok")
sentry_sdk.flush(timeout=10)
"#,
        &[("DSN", s.dsn())],
    )
    .await;
    s.eventually("check-in stored", || async {
        (checkins(&s, &token, "nightly-sweep").await == ["ok"]).then_some(())
    })
    .await;
    let (status, _) = s
        .api(
            &token,
            "/api/0/organizations/default/monitors/nightly-sweep/",
        )
        .await;
    assert_eq!(status, 404);

    // Created through the API, with Sentry's validation on a bad schedule.
    let api = s.api_client(&token);
    let url = "/api/0/organizations/default/monitors/";
    let invalid = api
        .post(
            url,
            &json!({"name": "Nightly sweep", "slug": "nightly-sweep", "project": "default",
                      "config": {"schedule_type": "crontab", "schedule": "61 * * *"}}),
        )
        .await
        .expect(400);
    assert!(
        invalid["config"][0]
            .as_str()
            .unwrap()
            .starts_with("schedule")
    );
    api.post(
        url,
        &json!({"name": "Nightly sweep", "slug": "nightly-sweep", "project": "default",
                      "config": {"schedule_type": "crontab", "schedule": "0 3 * * *", "max_runtime": 5,
                                 "timezone": "Europe/Berlin", "checkin_margin": 10}}),
    )
    .await
    .expect(201);

    // A run starts and never finishes: after max_runtime it is a timeout.
    run_python(
        r#"
import os, sentry_sdk
from sentry_sdk.crons import capture_checkin
sentry_sdk.init(dsn=os.environ["DSN"])
capture_checkin(monitor_slug="nightly-sweep", status="in_progress")
sentry_sdk.flush(timeout=10)
"#,
        &[("DSN", s.dsn())],
    )
    .await;
    s.eventually("in progress", || async {
        (checkins(&s, &token, "nightly-sweep")
            .await
            .first()
            .map(String::as_str)
            == Some("in_progress"))
        .then_some(())
    })
    .await;
    s.server.clock.advance(4 * 60_000);
    s.server.tick().await;
    assert_eq!(
        checkins(&s, &token, "nightly-sweep").await[0],
        "in_progress"
    );
    s.server.clock.advance(2 * 60_000);
    s.server.tick().await;
    assert_eq!(checkins(&s, &token, "nightly-sweep").await[0], "timeout");
    assert_eq!(
        monitor(&s, &token, "nightly-sweep").await["environments"][0]["status"],
        "timeout"
    );
    api.delete(&format!("{url}nightly-sweep/"))
        .await
        .expect(204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_free_rates_from_rust_sessions_match_the_hand_computed_figures() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    // Release 1.0.0: agents a, b, c, a again; b crashes once → 4 sessions, 1 crashed
    // (75 % crash-free sessions), 3 users of whom 1 crashed (66.7 % crash-free users).
    // Release 2.0.0: one healthy session. Adoption of 1.0.0: 4 of 5 sessions = 80 %.
    tokio::task::spawn_blocking(move || {
        for (release, runs) in [
            (
                "vol-arb@1.0.0",
                vec![("a", false), ("b", true), ("c", false), ("a", false)],
            ),
            ("vol-arb@2.0.0", vec![("d", false)]),
        ] {
            let guard = sentry::init(
                sentry::ClientOptions::new()
                    .dsn(&dsn)
                    .release(release)
                    .environment("paper"),
            );
            sentry::configure_scope(|scope| scope.set_tag("strategy", "vol-arb"));
            sentry::capture_message("agent started", sentry::Level::Info);
            for (agent, crash) in runs {
                sentry::configure_scope(|scope| {
                    scope.set_user(Some(sentry::User {
                        id: Some(agent.into()),
                        ..Default::default()
                    }))
                });
                sentry::start_session();
                if crash {
                    sentry::end_session_with_status(sentry::protocol::SessionStatus::Crashed);
                } else {
                    sentry::end_session();
                }
            }
            drop(guard);
        }
    })
    .await
    .unwrap();
    let health = s
        .eventually("sessions digested", || async {
            let (_, h) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/releases/health/?statsPeriod=1h",
                )
                .await;
            let total: i64 = h["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["sessions"].as_i64().unwrap_or(0))
                .sum();
            let tagged = h["data"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|r| r["strategy"] == "vol-arb");
            (total == 5 && tagged).then_some(h)
        })
        .await;
    let v1 = health["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == "vol-arb@1.0.0")
        .unwrap();
    assert_eq!(v1["environment"], "paper");
    assert_eq!(v1["sessionsCrashed"], 1);
    assert_eq!(v1["crashFreeSessions"], 75.0);
    assert_eq!(v1["users"], 3);
    let users = v1["crashFreeUsers"].as_f64().unwrap();
    assert!((users - 200.0 / 3.0).abs() < 1e-9, "{users}");
    assert_eq!(v1["adoption"], 80.0);
    assert_eq!(v1["strategy"], "vol-arb");
    // Both releases run the same strategy: 5 sessions, 1 crashed.
    let s = &health["strategies"][0];
    assert_eq!(
        (s["strategy"].as_str(), s["sessions"].as_i64()),
        (Some("vol-arb"), Some(5))
    );
    assert_eq!(s["crashFreeSessions"], 80.0);
    assert_eq!(s["releases"].as_array().unwrap().len(), 2);
}

const PYTHON_SESSIONS: &str = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], release="casino-bettor@3.1.0", environment="paper", auto_session_tracking=False)
scope = sentry_sdk.get_isolation_scope()
# Agents x, y, z; y crashes (an unhandled exception ends its session crashed).
for agent, crash in [("x", False), ("y", True), ("z", False)]:
    scope.set_user({"id": agent})
    scope.start_session(session_mode="application")
    if crash:
        sentry_sdk.capture_event({"level": "fatal", "exception": {"values": [
            {"type": "RuntimeError", "value": "bet loop died", "mechanism": {"type": "excepthook", "handled": False}}]}})
    scope.end_session()
sentry_sdk.flush(timeout=10)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_free_rates_from_python_sessions() {
    let s = TestServer::start().await;
    let token = s.token();
    run_python(PYTHON_SESSIONS, &[("DSN", s.dsn())]).await;
    let h = s
        .eventually("python sessions", || async {
            let (_, h) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/releases/health/?statsPeriod=1h",
                )
                .await;
            let row = h["data"].as_array()?.first()?.clone();
            (row["sessions"] == 3).then_some(row)
        })
        .await;
    assert_eq!(h["release"], "casino-bettor@3.1.0");
    assert_eq!(h["sessionsCrashed"], 1);
    // 1 − 1/3 of sessions and of users.
    for key in ["crashFreeSessions", "crashFreeUsers"] {
        let v = h[key].as_f64().unwrap();
        assert!((v - 200.0 / 3.0).abs() < 1e-9, "{key}: {v}");
    }
}
