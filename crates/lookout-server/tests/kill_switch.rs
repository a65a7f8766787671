//! The kill switch, server side (issue 24): the REST API and its safety rules, the DSN-key
//! control channel (long poll, expiry, a change made on another node), the `pause_agent`
//! alert action, the audit trail and the timeline. On SQLite, and on PostgreSQL with
//! `LOOKOUT_TEST_DATABASE_URL` (the cross-node test always runs on PostgreSQL).

mod common;

use common::{TestDb, TestServer, test_config};
use lookout_server::Server;
use lookout_server::services::trading::{self, Actor};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn event_envelope(agent: &str, level: &str, n: u32) -> Vec<u8> {
    let id = format!(
        "{:032x}",
        u128::from(n) + (u128::from(agent.len() as u32) << 64)
    );
    // Warnings (an agent saying it started) group apart from its trade failures.
    let kind = if level == "warning" {
        "AgentStarted"
    } else {
        "OrderRejected"
    };
    let event = json!({
        "event_id": id, "level": level, "platform": "rust",
        "exception": {"values": [{"type": kind, "value": format!("trade failed {n}")}]},
        "tags": {"agent_id": agent, "strategy": "vol_arb"},
    });
    format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{event}\n").into_bytes()
}

async fn agent_seen(s: &TestServer, agent: &str) {
    let client = reqwest::Client::new();
    s.post_envelope(&client, event_envelope(agent, "warning", 1))
        .await;
    s.eventually("the digest to see the agent", || async {
        s.agents().iter().any(|a| a.agent_id == agent).then_some(())
    })
    .await;
}

fn control_url(s: &TestServer, agent: &str, query: &str) -> String {
    format!(
        "{}/api/{}/agents/{agent}/control/?{query}",
        s.server.base_url(),
        s.project_id()
    )
}

async fn control(s: &TestServer, agent: &str, query: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(control_url(s, agent, query))
        .header(
            "x-sentry-auth",
            format!("Sentry sentry_key={}, sentry_version=7", s.key()),
        )
        .send()
        .await
        .expect("control request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const AGENTS: &str = "/api/0/projects/default/default/agents/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_api_with_its_safety_rules() {
    let s = TestServer::start_manual().await;
    agent_seen(&s, "ag_1").await;
    let full = s.api_client(&s.token());
    let (_, ro_token) = s
        .server
        .store
        .create_token("read-only", &["project:read".into()])
        .expect("token");
    let ro = s.api_client(&ro_token);

    // Reading needs project:read; changing needs agents:write.
    let list = ro.get(AGENTS).await.expect(200);
    let row = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == "ag_1"))
        .cloned()
        .expect("ag_1 listed");
    assert_eq!(row["trading"], "active");
    assert!(row["status"].is_string());
    let e = ro
        .post(&format!("{AGENTS}ag_1/pause/"), &json!({"reason": "x"}))
        .await
        .expect(403);
    assert!(e["detail"].as_str().unwrap_or("").contains("agents:write"));

    // Unknown agent: 404 naming it; bad input: field errors.
    let e = full
        .post(&format!("{AGENTS}ag_nope/pause/"), &json!({"reason": "x"}))
        .await
        .expect(404);
    assert!(
        e["detail"].as_str().unwrap_or("").contains("ag_nope"),
        "{e}"
    );
    let e = full
        .post(&format!("{AGENTS}ag_1/pause/"), &json!({}))
        .await
        .expect(400);
    assert!(e["reason"].is_array(), "{e}");
    for minutes in [json!(0), json!(10_081), json!("5")] {
        let e = full
            .post(
                &format!("{AGENTS}ag_1/pause/"),
                &json!({"reason": "x", "minutes": minutes}),
            )
            .await
            .expect(400);
        assert!(e["minutes"].is_array(), "{e}");
    }
    let e = full
        .post(
            &format!("{AGENTS}ag_1/pause/"),
            &json!({"reason": "r".repeat(501)}),
        )
        .await
        .expect(400);
    assert!(e["reason"].is_array(), "{e}");
    assert_eq!(control(&s, "ag_1", "wait=0").await.1["trading"], "active");

    // Pause.
    let p = full
        .post(
            &format!("{AGENTS}ag_1/pause/"),
            &json!({"reason": "drawdown above 5%"}),
        )
        .await
        .expect(200);
    assert_eq!(p["trading"], "paused");
    assert_eq!(p["pausedBy"]["kind"], "token");
    let (status, c) = control(&s, "ag_1", "wait=0").await;
    assert_eq!(status, 200);
    assert_eq!(c["trading"], "paused");
    assert_eq!(c["reason"], "drawdown above 5%");
    let version = c["version"].as_i64().expect("version");

    // The agent cannot lift it: no token, its DSN key on resume is refused, and the control
    // endpoint is read-only.
    let client = reqwest::Client::new();
    let auth = format!("Sentry sentry_key={}, sentry_version=7", s.key());
    let r = client
        .post(format!("{}{AGENTS}ag_1/resume/", s.server.base_url()))
        .header("x-sentry-auth", &auth)
        .send()
        .await
        .expect("resume with a DSN key");
    assert_eq!(r.status(), 401);
    let r = client
        .post(control_url(&s, "ag_1", ""))
        .header("x-sentry-auth", &auth)
        .body(r#"{"trading":"active"}"#)
        .send()
        .await
        .expect("post to control");
    assert_eq!(r.status(), 405);
    let r = client
        .get(control_url(&s, "ag_1", "wait=0"))
        .send()
        .await
        .expect("control without a key");
    assert_eq!(r.status(), 401);
    assert_eq!(control(&s, "ag_1", "wait=0").await.1["trading"], "paused");
    let (status, e) = control(&s, "ag_1", "wait=600").await;
    assert_eq!(status, 400, "{e}");

    // A long poll answers as soon as the state changes.
    let poll = {
        let url = control_url(&s, "ag_1", &format!("since={version}&wait=20"));
        let auth = auth.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = reqwest::Client::new()
                .get(url)
                .header("x-sentry-auth", auth)
                .send()
                .await
                .expect("long poll");
            let body: Value = r.json().await.expect("json");
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the long poll waits while nothing changes"
    );
    let r = full
        .post(&format!("{AGENTS}ag_1/resume/"), &json!({}))
        .await
        .expect(200);
    assert_eq!(r["trading"], "active");
    let (took, body) = poll.await.expect("poll task");
    assert_eq!(body["trading"], "active");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // A pause with an end lifts itself when it ends, at a new version, without any write.
    let p = full
        .post(
            &format!("{AGENTS}ag_1/pause/"),
            &json!({"reason": "cool down", "minutes": 1}),
        )
        .await
        .expect(200);
    assert!(p["pausedUntil"].is_string());
    let paused_at = p["version"].as_i64().expect("version");
    s.server.clock.advance(61_000);
    let (_, c) = control(&s, "ag_1", &format!("since={paused_at}&wait=5")).await;
    assert_eq!(c["trading"], "active");
    assert_eq!(c["version"], paused_at + 1);
    let list = full.get(AGENTS).await.expect(200);
    assert_eq!(list[0]["trading"], "active");

    // Every change is audited and on the agent's timeline.
    let changes = trading::history(&s.server.store, s.project_id(), "ag_1", 0).expect("history");
    let actions: Vec<&str> = changes.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(actions, ["pause", "resume", "pause"]);
    assert!(changes.iter().all(|c| matches!(c.by, Actor::Token { .. })));
    let now = s.server.clock.now_ms();
    let page = lookout_server::services::agents::agent(
        &s.server.store,
        "default",
        "ag_1",
        now - 3_600_000,
        now,
    )
    .await
    .expect("agent page")
    .expect("ag_1");
    let entries = lookout_server::services::agents::timeline(&page.detail, 100);
    assert!(
        entries
            .iter()
            .any(|e| e.text.contains("trading paused by API token")
                && e.text.contains("drawdown above 5%")),
        "{entries:?}"
    );
    assert!(entries.iter().any(|e| e.text.contains("trading resumed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_rule_pauses_the_agent_of_a_critical_trade_failure() {
    let s = TestServer::start().await;
    agent_seen(&s, "ag_vol_arb").await;
    agent_seen(&s, "ag_other").await;
    let api = s.api_client(&s.token());
    let e = api
        .post(
            "/api/0/projects/default/default/rules/",
            &json!({"name": "bad", "actionMatch": "all", "frequency": 5,
                "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
                "actions": [{"id": "lookout.rules.actions.PauseAgentAction", "resume_on_resolve": true}]}),
        )
        .await
        .expect(400);
    assert!(
        e["actions"][0].as_str().unwrap_or("").contains("metric"),
        "{e}"
    );
    api.post(
        "/api/0/projects/default/default/rules/",
        &json!({"name": "Critical trade failure pauses the agent", "actionMatch": "all", "filterMatch": "all", "frequency": 5,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "filters": [{"id": "sentry.rules.filters.level.LevelFilter", "match": "eq", "level": "50"}],
            "actions": [{"id": "lookout.rules.actions.PauseAgentAction"}]}),
    )
    .await
    .expect(201);
    let client = reqwest::Client::new();
    s.post_envelope(&client, event_envelope("ag_vol_arb", "fatal", 7))
        .await;
    let state = s
        .eventually("the rule to pause the agent", || async {
            let st = trading::get(
                &s.server.store,
                s.project_id(),
                "ag_vol_arb",
                s.server.clock.now_ms(),
            )
            .expect("state");
            st.paused.then_some(st)
        })
        .await;
    match &state.by {
        Some(Actor::Rule { name, .. }) => assert!(name.contains("Critical trade failure")),
        other => panic!("paused by {other:?}"),
    }
    assert!(
        state
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("OrderRejected")
    );
    let (_, c) = control(&s, "ag_vol_arb", "wait=0").await;
    assert_eq!(c["trading"], "paused");
    assert_eq!(c["pausedBy"]["kind"], "rule");
    // Only the agent the event came from.
    let other = trading::get(
        &s.server.store,
        s.project_id(),
        "ag_other",
        s.server.clock.now_ms(),
    )
    .expect("state");
    assert!(!other.paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_alert_pauses_its_agent_and_resumes_it_on_resolve_only_if_its_pause_stands() {
    let s = TestServer::start_manual().await;
    agent_seen(&s, "ag_m").await;
    let api = s.api_client(&s.token());
    let e = api
        .post(
            "/api/0/organizations/default/alert-rules/",
            &json!({"name": "x", "aggregate": "count()", "query": "agent_id:ag_m", "timeWindow": 1,
                "projects": ["default"], "thresholdType": 0,
                "triggers": [{"label": "critical", "alertThreshold": 2,
                    "actions": [{"type": "pause_agent", "resumeOnResolve": "yes"}]}]}),
        )
        .await
        .expect(400);
    assert!(e["triggers"].to_string().contains("resumeOnResolve"), "{e}");
    api.post(
        "/api/0/organizations/default/alert-rules/",
        &json!({"name": "ag_m errors", "aggregate": "count()", "query": "agent_id:ag_m", "timeWindow": 1,
            "projects": ["default"], "thresholdType": 0, "dataset": "events",
            "triggers": [{"label": "critical", "alertThreshold": 2,
                "actions": [{"type": "pause_agent", "resumeOnResolve": true}]}]}),
    )
    .await
    .expect(201);
    let client = reqwest::Client::new();
    for n in 10..14 {
        s.post_envelope(&client, event_envelope("ag_m", "error", n))
            .await;
    }
    let project = s.project_id();
    s.eventually("the metric alert to pause ag_m", || async {
        s.server.tick().await;
        trading::get(&s.server.store, project, "ag_m", s.server.clock.now_ms())
            .expect("state")
            .paused
            .then_some(())
    })
    .await;
    // The window empties: the incident resolves and lifts its own pause.
    s.server.clock.advance(3 * 60_000);
    s.eventually("the resolve to resume ag_m", || async {
        s.server.tick().await;
        (!trading::get(&s.server.store, project, "ag_m", s.server.clock.now_ms())
            .expect("state")
            .paused)
            .then_some(())
    })
    .await;
    let changes = trading::history(&s.server.store, project, "ag_m", 0).expect("history");
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| matches!(c.by, Actor::Rule { .. })));

    // Again, but a person pauses it meanwhile: the resolve leaves that pause alone.
    for n in 20..24 {
        s.post_envelope(&client, event_envelope("ag_m", "error", n))
            .await;
    }
    s.eventually("the metric alert to pause ag_m again", || async {
        s.server.tick().await;
        trading::get(&s.server.store, project, "ag_m", s.server.clock.now_ms())
            .expect("state")
            .paused
            .then_some(())
    })
    .await;
    let now = s.server.clock.now_ms();
    trading::pause(
        &s.server.store,
        project,
        "ag_m",
        "investigating",
        Actor::User("admin".into()),
        None,
        now,
    )
    .expect("pause by a user");
    s.server.clock.advance(3 * 60_000);
    s.eventually("the incident to resolve", || async {
        s.server.tick().await;
        let open = s
            .server
            .store
            .agents()
            .overview("default", s.server.clock.now_ms())
            .expect("overview")
            .incidents
            .iter()
            .any(|i| i.title == "ag_m errors");
        (!open).then_some(())
    })
    .await;
    let st =
        trading::get(&s.server.store, project, "ag_m", s.server.clock.now_ms()).expect("state");
    assert!(st.paused, "a user's pause survives the alert resolving");
    assert_eq!(st.by, Some(Actor::User("admin".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_made_on_another_node_reaches_a_long_poll_within_a_second() {
    common::init_log();
    let db = TestDb::create_required();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::builder(test_config(dir.path(), Some(&db)))
        .start()
        .await
        .expect("node a");
    let s = TestServer {
        server,
        dir,
        db: Some(db),
    };
    agent_seen(&s, "ag_x").await;
    let url = s.db.as_ref().map(|d| d.url.clone()).expect("url");
    let other = tokio::task::spawn_blocking(move || {
        lookout_server::store::Store::open_postgres(&url).expect("node b")
    })
    .await
    .expect("open");
    let (_, c) = control(&s, "ag_x", "wait=0").await;
    let version = c["version"].as_i64().expect("version");
    let mut took = Vec::new();
    for round in 0..3 {
        let url = control_url(
            &s,
            "ag_x",
            &format!("since={}&wait=20", version + 2 * round),
        );
        let auth = format!("Sentry sentry_key={}, sentry_version=7", s.key());
        let poll = tokio::spawn(async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("x-sentry-auth", auth)
                .send()
                .await
                .expect("long poll");
            (Instant::now(), r.json::<Value>().await.expect("json"))
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let store = other.clone();
        let project = s.project_id();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now().timestamp_millis();
            if round % 2 == 0 {
                trading::pause(
                    &store,
                    project,
                    "ag_x",
                    "from node b",
                    Actor::User("b".into()),
                    None,
                    now,
                )
            } else {
                trading::resume(&store, project, "ag_x", Actor::User("b".into()), now)
            }
        })
        .await
        .expect("task")
        .expect("change on node b");
        let (answered, body) = poll.await.expect("poll");
        assert_eq!(
            body["trading"],
            if round % 2 == 0 { "paused" } else { "active" }
        );
        took.push(answered.duration_since(started));
    }
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(1)),
        "node a saw node b's changes after {took:?}"
    );
    s.server.stop().await.expect("stop");
}

const PASSWORD: &str = "kill-switch-password";

/// GET (no form) or POST a form; status, `Location` and body.
async fn ui(s: &TestServer, cookie: &str, path: &str, form: Option<&str>) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = format!("{}{path}", s.server.base_url());
    let req = match form {
        Some(body) => client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.to_owned()),
        None => client.get(url),
    };
    let res = req
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("ui request");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, location, res.text().await.expect("body"))
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("csrf value").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_pauses_and_resumes_through_a_confirmation_naming_the_agent() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    agent_seen(&s, "ag_ui").await;
    let cookie = common::ui_login(&s, PASSWORD).await;
    let project = s.project_id();
    let state =
        || trading::get(&s.server.store, project, "ag_ui", s.server.clock.now_ms()).expect("state");

    let (_, _, overview) = ui(&s, &cookie, "/", None).await;
    assert!(
        overview.contains("href=\"/agents/ag_ui/pause\""),
        "{overview}"
    );
    let (status, _, confirm) = ui(&s, &cookie, "/agents/ag_ui/pause", None).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Pause trading of agent ag_ui?"));
    let csrf = csrf_of(&confirm);

    // A forged form, then a form without a reason: nothing changes.
    let (status, _, _) = ui(
        &s,
        &cookie,
        "/agents/ag_ui/pause",
        Some("csrf=forged&reason=x"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, page) = ui(
        &s,
        &cookie,
        "/agents/ag_ui/pause",
        Some(&format!("csrf={csrf}&reason=&minutes=")),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("id=\"reason-error\""), "{page}");
    assert!(!state().paused);

    // Pause, post/redirect/get; the reason stays data.
    let (status, location, _) = ui(
        &s,
        &cookie,
        "/agents/ag_ui/pause",
        Some(&format!(
            "csrf={csrf}&reason=%3Cb%3Emanual%3C%2Fb%3E&minutes=30"
        )),
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/agents/ag_ui"));
    let st = state();
    assert!(st.paused);
    assert_eq!(st.by, Some(Actor::User("admin".into())));
    assert!(st.until.is_some());
    let (_, _, agent_page) = ui(&s, &cookie, "/agents/ag_ui", None).await;
    assert!(agent_page.contains("trading paused"), "{agent_page}");
    assert!(
        agent_page.contains("&lt;b&gt;manual"),
        "escaped: {agent_page}"
    );
    assert!(!agent_page.contains("<b>manual"));
    assert!(
        agent_page.contains("trading paused by user admin"),
        "timeline"
    );
    assert!(agent_page.contains("href=\"/agents/ag_ui/resume\""));
    let (_, _, overview) = ui(&s, &cookie, "/", None).await;
    assert!(overview.contains("trading paused"));

    // Resume through its confirmation.
    let (_, _, confirm) = ui(&s, &cookie, "/agents/ag_ui/resume", None).await;
    assert!(confirm.contains("Resume trading of agent ag_ui?"));
    let (status, location, _) = ui(
        &s,
        &cookie,
        "/agents/ag_ui/resume",
        Some(&format!("csrf={}", csrf_of(&confirm))),
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/agents/ag_ui"));
    assert!(!state().paused);
    let (status, _, _) = ui(&s, &cookie, "/agents/ag_nope/pause", None).await;
    assert_eq!(status, 404);
}
