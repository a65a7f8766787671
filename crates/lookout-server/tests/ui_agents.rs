//! The agents overview's statuses on a manual clock: healthy, hung (heartbeat missed while
//! the session is open, or the watchdog's abnormal end), crashed, silent; read from the page
//! as an operator's browser gets it (the browser walk is in `ui_browser.rs`).

mod common;

use common::TestServer;
use serde_json::{Value, json};

const PASSWORD: &str = "agents-page-password";

fn envelope(items: &[(&str, Value)]) -> Vec<u8> {
    let mut out = b"{}\n".to_vec();
    for (ty, payload) in items {
        let body = serde_json::to_vec(payload).expect("json");
        out.extend_from_slice(
            format!("{{\"type\":\"{ty}\",\"length\":{}}}\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(&body);
        out.push(b'\n');
    }
    out
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn session(did: &str, sid: &str, status: &str, init: bool, at: i64) -> (&'static str, Value) {
    (
        "session",
        json!({"sid": sid, "did": did, "status": status, "init": init, "errors": 0,
               "started": iso(at), "timestamp": iso(at),
               "attrs": {"release": "bot@1.0.0", "environment": "paper"}}),
    )
}

fn heartbeat(agent: &str) -> (&'static str, Value) {
    (
        "check_in",
        json!({"check_in_id": uuid::Uuid::new_v4().simple().to_string(), "monitor_slug": format!("agent-{agent}-heartbeat"), "status": "ok",
               "environment": "paper",
               "monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "minute"},
                                  "checkin_margin": 1, "max_runtime": 1}}),
    )
}

fn event(agent: &str, n: u32, at: i64) -> (&'static str, Value) {
    (
        "event",
        json!({"event_id": format!("{:032x}", n), "level": "error", "message": "boom",
               "timestamp": at as f64 / 1000.0, "release": "bot@1.0.0",
               "tags": {"agent_id": agent, "strategy": "grid"}}),
    )
}

/// `(agent, status)` of every row of the agents table, from the page's HTML.
async fn statuses(s: &TestServer, cookie: &str) -> Vec<(String, String)> {
    let html = reqwest::Client::new()
        .get(format!("{}/", s.server.base_url()))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    html.split("<tr class=\"agent status-")
        .skip(1)
        .filter_map(|row| {
            let (status, rest) = row.split_once('"')?;
            let agent = rest.split("\">").nth(1)?.split('<').next()?;
            Some((agent.to_owned(), status.to_owned()))
        })
        .collect()
}

async fn login(s: &TestServer) -> String {
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
        .body(format!("username=admin&password={PASSWORD}&next=/"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_tells_healthy_hung_crashed_and_silent_agents_apart() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let client = reqwest::Client::new();
    let cookie = login(&s).await;
    let t0 = s.server.clock.now_ms();
    // ag_beat: an open session and a heartbeat; ag_watch: the watchdog ended its session
    // abnormally; ag_crash: its session crashed; ag_quiet: only an event, long ago.
    s.post_envelope(
        &client,
        envelope(&[
            session("ag_beat", "a1", "ok", true, t0),
            heartbeat("ag_beat"),
        ]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_watch", "b1", "ok", true, t0)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_watch", "b1", "abnormal", false, t0 + 1)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_crash", "d1", "ok", true, t0)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_crash", "d1", "crashed", false, t0 + 1)]),
    )
    .await;
    s.post_envelope(&client, envelope(&[event("ag_quiet", 1, t0)]))
        .await;
    let want_now = [
        ("ag_beat", "healthy"),
        ("ag_crash", "crashed"),
        ("ag_quiet", "healthy"),
        ("ag_watch", "hung"),
    ];
    let mut seen = s
        .eventually("four agents on the page", || async {
            let rows = statuses(&s, &cookie).await;
            (rows.len() == 4).then_some(rows)
        })
        .await;
    seen.sort();
    let want: Vec<(String, String)> = want_now
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(seen, want);

    // Eleven minutes on: ag_beat's heartbeat is missed while its session is open (hung), and
    // nothing was heard from ag_quiet (silent). A crash stays a crash.
    s.server.clock.advance(11 * 60_000);
    s.server.tick().await;
    let mut seen = statuses(&s, &cookie).await;
    seen.sort();
    let want: Vec<(String, String)> = [
        ("ag_beat", "hung"),
        ("ag_crash", "crashed"),
        ("ag_quiet", "silent"),
        ("ag_watch", "hung"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into()))
    .collect();
    assert_eq!(seen, want);

    // ag_beat beats again and ends its session cleanly: it is stopped, not in trouble (issue
    // 25: a clean end raises no alarm); the worst come first, the stopped last.
    let t1 = s.server.clock.now_ms();
    s.post_envelope(
        &client,
        envelope(&[
            heartbeat("ag_beat"),
            session("ag_beat", "a1", "exited", false, t1),
        ]),
    )
    .await;
    let rows = s
        .eventually("ag_beat stopped", || async {
            let rows = statuses(&s, &cookie).await;
            rows.iter()
                .any(|(a, st)| a == "ag_beat" && st == "stopped")
                .then_some(rows)
        })
        .await;
    let order: Vec<&str> = rows.iter().map(|(_, st)| st.as_str()).collect();
    assert_eq!(order, ["crashed", "hung", "silent", "stopped"], "{rows:?}");
}
