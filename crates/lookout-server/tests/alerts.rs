//! Trading alerts end to end: real SDK traffic (and raw envelopes where a storm or a precise
//! latency is needed) into a server whose notifications go to a local receiver standing in
//! for Slack, PagerDuty, Telegram and a signed webhook.

mod common;

use axum::extract::{Path as AxPath, State};
use axum::http::HeaderMap;
use axum::routing::post;
use common::{ApiClient, TestServer, run_python};
use hmac::{Hmac, Mac};
use lookout_server::Server;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    raw: Vec<u8>,
    body: Value,
}

/// A local HTTP server recording every POST.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

async fn record(
    State(got): State<Arc<Mutex<Vec<Received>>>>,
    AxPath(path): AxPath<String>,
    headers: HeaderMap,
    raw: axum::body::Bytes,
) -> (axum::http::StatusCode, &'static str) {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    got.lock().unwrap().push(Received {
        path: format!("/{path}"),
        headers,
        raw: raw.to_vec(),
        body,
    });
    if path.starts_with("pagerduty") {
        (axum::http::StatusCode::ACCEPTED, "{\"status\":\"success\"}")
    } else {
        (axum::http::StatusCode::OK, "ok")
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/{*path}", post(record))
            .with_state(Arc::clone(&got));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got }
    }

    fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests on `path` whose body mentions `needle`.
    fn matching(&self, path: &str, needle: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.path == path && r.body.to_string().contains(needle))
            .collect()
    }
}

const SECRET: &str = "whsec-test-secret";

/// Point every channel kind at the receiver; returns their ids.
async fn channels(s: &TestServer, token: &str, rx: &Receiver) -> Vec<String> {
    let api = ApiClient::new(s.server.base_url(), token);
    let mut ids = Vec::new();
    for body in [
        json!({"provider": "slack", "name": "ops", "config": {"url": format!("{}/slack", rx.url)}}),
        json!({"provider": "pagerduty", "name": "pd", "config": {"routing_key": "R0UTINGKEY0000000000000000000000", "url": format!("{}/pagerduty", rx.url)}}),
        json!({"provider": "webhook", "name": "agent-kill-switch", "config": {"url": format!("{}/webhook", rx.url), "secret": SECRET}}),
        json!({"provider": "telegram", "name": "tg", "config": {"bot_token": "123:ABC", "chat_id": 42, "api_base": format!("{}/telegram", rx.url)}}),
    ] {
        let v = api
            .post("/api/0/organizations/default/integrations/", &body)
            .await
            .expect(201);
        assert!(
            !v.to_string().contains(SECRET),
            "secrets are never echoed: {v}"
        );
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    ids
}

fn envelope(item_type: &str, payload: &Value) -> Vec<u8> {
    let p = payload.to_string();
    format!(
        "{{}}\n{{\"type\":\"{item_type}\",\"length\":{}}}\n{p}\n",
        p.len()
    )
    .into_bytes()
}

fn now_s() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn error_event(kind: &str, asset: &str, n: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "timestamp": now_s(), "platform": "rust", "level": "error",
        "exception": {"values": [{"type": kind, "value": format!("{kind} on {asset} order {n}")}]},
        "tags": {"trade.asset": asset, "trade.error_type": kind, "trade.phase": "order_placement"},
        "fingerprint": ["{{ default }}", kind, asset, "order_placement"],
        "user": {"id": "agent-1"}
    })
}

fn transaction(duration_ms: f64, outcome: &str) -> Value {
    let end = now_s();
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(), "type": "transaction",
        "transaction": "Order Pipeline: BTC buy", "start_timestamp": end - duration_ms / 1000.0, "timestamp": end,
        "contexts": {"trace": {"trace_id": uuid::Uuid::new_v4().simple().to_string(), "span_id": "aaaaaaaaaaaaaaaa", "op": "order.pipeline", "status": "ok"}},
        "tags": {"outcome": outcome}, "spans": [], "platform": "rust"
    })
}

async fn wait_digested(s: &TestServer, token: &str, errors: u64, transactions: u64) {
    s.eventually("digest caught up", || async {
        let (_, issues) = s
            .api(token, "/api/0/projects/default/default/issues/?query=")
            .await;
        let e: u64 = issues
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                i["count"]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
            .sum();
        let (_, txs) = s
            .api(
                token,
                "/api/0/projects/default/default/transactions/?statsPeriod=1h",
            )
            .await;
        let t: u64 = txs["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum();
        (e >= errors && t >= transactions).then_some(())
    })
    .await;
}

/// Every delivery written so far has been attempted and succeeded.
async fn all_delivered(s: &TestServer, token: &str) -> Vec<Value> {
    s.eventually("deliveries done", || async {
        let (_, d) = s
            .api(
                token,
                "/api/0/organizations/default/notification-deliveries/?limit=1000",
            )
            .await;
        let list = d.as_array().cloned().unwrap_or_default();
        list.iter()
            .all(|x| x["status"] == "delivered")
            .then_some(list)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_and_the_sentry_shaped_rule_api() {
    let s = TestServer::start().await;
    let token = s.token();
    let (status, rules) = s
        .api(&token, "/api/0/projects/default/default/rules/")
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Critical trade failure", "New issue after deploy"]);
    assert!(rules[0]["id"].is_string());
    let (_, metric) = s
        .api(&token, "/api/0/organizations/default/alert-rules/")
        .await;
    let names: Vec<&str> = metric
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Error rate spike",
            "P99 latency breach: order.pipeline",
            "Risk check failure rate",
            "Agent crashed or hung",
            "Venue outage: agents failing on one service"
        ]
    );
    let p99 = &metric[1];
    assert_eq!(p99["aggregate"], "p99(transaction.duration)");
    assert_eq!(p99["triggers"][0]["alertThreshold"], 2000);
    assert_eq!(p99["triggers"][0]["resolveThreshold"], 1000);
    assert!(p99["triggers"][0]["id"].is_string());

    let api = s.api_client(&token);
    let url = "/api/0/organizations/default/alert-rules/";
    // Sentry's exact validation error for a payload without an aggregate.
    let seed = json!({"name": "Slow fills", "query": "", "timeWindow": 5, "thresholdType": 0, "projects": ["default"],
        "triggers": [{"label": "critical", "alertThreshold": 1500, "actions": []}]});
    assert_eq!(
        api.post(url, &seed).await.expect(400),
        json!({"aggregate": ["This field is required."]})
    );
    let mut body = seed.clone();
    body["aggregate"] = json!("p95(transaction.duration)");
    body["projects"] = json!(["nope"]);
    assert_eq!(
        api.post(url, &body).await.expect(400),
        json!({"projects": ["Invalid project slugs"]})
    );
    body["projects"] = json!(["default"]);
    let created = api.post(url, &body).await.expect(201);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["organizationId"], "1");
    assert_eq!(created["projects"], json!(["default"]));
    assert_eq!(created["triggers"][0]["alertRuleId"], id.as_str());
    api.put(
        &format!("{url}{id}/"),
        &json!({"name": "Slower fills", "triggers": [{"label": "critical", "alertThreshold": 2500, "actions": []}]}),
    )
    .await
    .expect(200);
    let (_, got) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/alert-rules/{id}/"),
        )
        .await;
    assert_eq!(got["name"], "Slower fills");
    assert_eq!(got["triggers"][0]["alertThreshold"], 2500);
    assert_eq!(got["aggregate"], "p95(transaction.duration)");
    api.delete(&format!("{url}{id}/")).await.expect(204);
    let (status, _) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/alert-rules/{id}/"),
        )
        .await;
    assert_eq!(status, 404);

    // An issue rule with an unknown channel names the field.
    let e = api
        .post(
            "/api/0/projects/default/default/rules/",
            &json!({"name": "x", "actionMatch": "all", "frequency": 5,
                "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
                "actions": [{"id": "sentry.integrations.slack.notify_action.SlackNotifyServiceAction", "workspace": 99, "channel": "#x"}]}),
        )
        .await
        .expect(400);
    assert_eq!(e["actions"][0], "Integration 99 does not exist.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_trade_failure_from_python_notifies_every_channel_once_even_in_a_storm() {
    let s = TestServer::start().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    run_python(
        r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], release="vol-arb@1.0.0")
class InsufficientMargin(Exception):
    pass
with sentry_sdk.new_scope() as scope:
    scope.fingerprint = ["{{ default }}", "InsufficientMargin", "BTC", "order_placement"]
    scope.set_tag("trade.asset", "BTC")
    try:
        raise InsufficientMargin("margin 12.5 below maintenance on BTC")
    except InsufficientMargin:
        sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"#,
        &[("DSN", s.dsn())],
    )
    .await;
    wait_digested(&s, &token, 1, 0).await;
    all_delivered(&s, &token).await;
    let slack = rx.matching("/slack", "Critical trade failure");
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(
        slack[0].body["text"]
            .as_str()
            .unwrap()
            .contains("InsufficientMargin")
    );
    let pd = rx.matching("/pagerduty", "Critical trade failure");
    assert_eq!(pd.len(), 1);
    assert_eq!(pd[0].body["event_action"], "trigger");
    assert_eq!(
        pd[0].body["routing_key"],
        "R0UTINGKEY0000000000000000000000"
    );
    assert_eq!(pd[0].body["dedup_key"], "DEFAULT-1");
    assert_eq!(pd[0].body["payload"]["severity"], "error");
    let tg = rx.matching("/telegram/bot123:ABC/sendMessage", "Critical trade failure");
    assert_eq!(tg.len(), 1);
    assert_eq!(tg[0].body["chat_id"], 42);
    // The webhook is signed: HMAC-SHA256 over "<t>.<body>", recomputed here.
    let hook = rx.matching("/webhook", "Critical trade failure");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].body["action"], "triggered");
    assert_eq!(hook[0].body["issue"]["shortId"], "DEFAULT-1");
    let sig = hook[0].headers["lookout-signature"].to_str().unwrap();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|r| r.split_once(",v1="))
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hook[0].raw);
    assert_eq!(v1, hex::encode(mac.finalize().into_bytes()));
    // No deploy happened, so the deploy preset stayed quiet.
    assert!(rx.matching("/slack", "New issue after deploy").is_empty());

    // A storm: 1,000 identical errors within a second make one more issue, one notification.
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let (client, url, key) = (client.clone(), s.envelope_url(), s.key());
        tasks.spawn(async move {
            let body = envelope("event", &error_event("OrderRejected", "ETH", n));
            let r = client
                .post(url)
                .header(
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
        if tasks.len() >= 32 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    wait_digested(&s, &token, 1001, 0).await;
    all_delivered(&s, &token).await;
    let storm = rx.matching("/slack", "OrderRejected");
    assert_eq!(
        storm
            .iter()
            .filter(|r| r.body.to_string().contains("Critical trade failure"))
            .count(),
        1,
        "{storm:#?}"
    );
    // The same storm is also an error-rate spike: one notification per state change.
    assert_eq!(rx.matching("/slack", "Error rate spike").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_presets_fire_and_resolve_error_rate_latency_and_risk() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();

    // P99 latency: slow pipelines breach 2 s…
    for _ in 0..5 {
        s.post_envelope(
            &client,
            envelope("transaction", &transaction(3000.0, "filled")),
        )
        .await;
    }
    // …and risk: 3 of 10 signals rejected by the risk manager (30 % > 20 %).
    for i in 0..5 {
        let outcome = if i < 3 { "rejected_risk" } else { "filled" };
        s.post_envelope(
            &client,
            envelope("transaction", &transaction(10.0, outcome)),
        )
        .await;
    }
    // Errors: 2 of 12 events (17 % > 5 %).
    for n in 0..2 {
        s.post_envelope(
            &client,
            envelope("event", &error_event("Network", "BTC", n)),
        )
        .await;
    }
    wait_digested(&s, &token, 2, 10).await;
    s.server.tick().await;
    all_delivered(&s, &token).await;
    for rule in [
        "P99 latency breach",
        "Risk check failure rate",
        "Error rate spike",
    ] {
        let got = rx.matching("/pagerduty", rule);
        assert_eq!(got.len(), 1, "{rule}: {got:#?}");
        assert_eq!(got[0].body["event_action"], "trigger");
    }
    let (_, open) = s
        .api(
            &token,
            "/api/0/organizations/default/incidents/?status=open",
        )
        .await;
    assert_eq!(open.as_array().unwrap().len(), 3, "{open:#}");

    // Ticks while nothing changes repeat nothing.
    s.server.tick().await;
    s.server.tick().await;
    all_delivered(&s, &token).await;
    assert_eq!(rx.matching("/pagerduty", "P99 latency breach").len(), 1);

    // Healthy traffic: 1,000 fast fills bring p99 under 1 s, risk rejections to 0.3 %,
    // errors to 0.2 %. Each rule resolves once, with the trigger's dedup key.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (client, url, key) = (client.clone(), s.envelope_url(), s.key());
        tasks.spawn(async move {
            let r = client
                .post(url)
                .header(
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                )
                .body(envelope("transaction", &transaction(20.0, "filled")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
        if tasks.len() >= 32 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    wait_digested(&s, &token, 2, 1010).await;
    s.server.tick().await;
    all_delivered(&s, &token).await;

    for rule in [
        "P99 latency breach",
        "Risk check failure rate",
        "Error rate spike",
    ] {
        // PagerDuty's resolve carries only the dedup key of the trigger.
        let trigger = rx.matching("/pagerduty", rule);
        let key = trigger[0].body["dedup_key"].clone();
        let same: Vec<Received> = rx
            .all()
            .into_iter()
            .filter(|r| r.path == "/pagerduty" && r.body["dedup_key"] == key)
            .collect();
        let actions: Vec<&str> = same
            .iter()
            .map(|r| r.body["event_action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["trigger", "resolve"], "{rule}");
        assert!(rx.matching("/slack", rule).iter().any(|r| {
            r.body["text"]
                .as_str()
                .unwrap()
                .starts_with(":white_check_mark: Resolved")
        }));
    }
    let (_, open) = s
        .api(
            &token,
            "/api/0/organizations/default/incidents/?status=open",
        )
        .await;
    assert!(open.as_array().unwrap().is_empty(), "{open:#}");
    // The incident keeps its timeline and its deliveries.
    let (_, closed) = s
        .api(
            &token,
            "/api/0/organizations/default/incidents/?status=closed",
        )
        .await;
    let id = closed[0]["id"].as_str().unwrap();
    let (_, detail) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/incidents/{id}/"),
        )
        .await;
    let kinds: Vec<&str> = detail["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["critical", "resolved"]);
    assert_eq!(detail["deliveries"].as_array().unwrap().len(), 8);
}

fn session(sid: &str, agent: &str, status: &str, started: f64, init: bool) -> Value {
    json!({"sid": sid, "did": agent, "init": init, "started": started, "timestamp": now_s(),
           "status": status, "errors": if status == "crashed" { 1 } else { 0 },
           "attrs": {"release": "vol-arb@1.0.0", "environment": "paper"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_crashes_and_stays_down_for_60_s_alerts_and_a_restart_resolves() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();
    let t0 = now_s();
    let sid = uuid::Uuid::new_v4().to_string();
    s.post_envelope(
        &client,
        envelope("session", &session(&sid, "7", "ok", t0, true)),
    )
    .await;
    s.post_envelope(
        &client,
        envelope("session", &session(&sid, "7", "crashed", t0, false)),
    )
    .await;
    // A second agent that exits normally never alerts.
    let other = uuid::Uuid::new_v4().to_string();
    s.post_envelope(
        &client,
        envelope("session", &session(&other, "8", "exited", t0, true)),
    )
    .await;
    s.eventually("sessions digested", || async {
        let agents = s.agents();
        let status = |id: &str| agents.iter().find(|a| a.agent_id == id).map(|a| a.status);
        (status("7") == Some("crashed") && status("8") == Some("stopped")).then_some(())
    })
    .await;
    // Within the grace period: nothing.
    s.server.clock.advance(30_000);
    s.server.tick().await;
    all_delivered(&s, &token).await;
    assert!(rx.matching("/webhook", "Agent crashed").is_empty());
    // 65 s after the crash with no new session: the agent is down.
    s.server.clock.advance(35_000);
    s.server.tick().await;

    let hooks = s
        .eventually("agent-down notification", || async {
            let got = rx.matching("/webhook", "Agent crashed or hung (agent 7)");
            (!got.is_empty()).then_some(got)
        })
        .await;
    assert_eq!(hooks[0].body["action"], "triggered");
    assert!(rx.matching("/webhook", "(agent 8)").is_empty());

    // Restart the server in the middle of the open incident: nothing is repeated.
    let TestServer { server, dir, db } = s;
    let clock = server.clock.clone();
    server.stop().await.unwrap();
    let config = common::test_config(dir.path(), db.as_ref());
    let server = Server::builder(config).clock(clock).start().await.unwrap();
    let s = TestServer { server, dir, db };
    s.server.tick().await;
    s.server.tick().await;
    all_delivered(&s, &token).await;
    assert_eq!(
        rx.matching("/webhook", "Agent crashed or hung (agent 7)")
            .len(),
        1
    );

    // The agent comes back: a new session resolves the alert.
    let again = uuid::Uuid::new_v4().to_string();
    s.post_envelope(
        &client,
        envelope("session", &session(&again, "7", "ok", now_s(), true)),
    )
    .await;
    s.eventually("resolve notification", || async {
        s.server.tick().await;
        let got = rx.matching("/webhook", "Agent crashed or hung (agent 7)");
        got.iter()
            .any(|r| r.body["action"] == "resolved")
            .then_some(())
    })
    .await;
    all_delivered(&s, &token).await;
    assert_eq!(
        rx.matching("/webhook", "Agent crashed or hung (agent 7)")
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_issue_after_a_deploy_and_a_custom_rule_created_through_the_api() {
    let s = TestServer::start().await;
    let token = s.token();
    let rx = Receiver::start().await;
    let ids = channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();
    let api = s.api_client(&token);
    // A custom Sentry-shaped rule: more than 2 ETH events of one issue in a minute → Slack.
    let rule = api
        .post("/api/0/projects/default/default/rules/", &json!({
            "name": "ETH margin storm", "actionMatch": "all", "filterMatch": "all", "frequency": 30,
            "conditions": [{"id": "sentry.rules.conditions.event_frequency.EventFrequencyCondition", "value": 2, "interval": "1m"}],
            "filters": [{"id": "sentry.rules.filters.tagged_event.TaggedEventFilter", "key": "trade.asset", "match": "eq", "value": "ETH"}],
            "actions": [{"id": "sentry.integrations.slack.notify_action.SlackNotifyServiceAction", "workspace": ids[0], "channel": "#trading"}]
        }))
        .await
        .expect(201);
    assert!(rule["id"].is_string());
    assert_eq!(rule["frequency"], 30);
    for n in 0..2 {
        s.post_envelope(
            &client,
            envelope("event", &error_event("InsufficientMargin", "BTC", n)),
        )
        .await;
    }
    for n in 0..4 {
        s.post_envelope(
            &client,
            envelope("event", &error_event("SlippageLimit", "ETH", n)),
        )
        .await;
    }
    wait_digested(&s, &token, 6, 0).await;
    all_delivered(&s, &token).await;
    let storm = rx.matching("/slack", "ETH margin storm");
    assert_eq!(
        storm.len(),
        1,
        "fires on the third ETH event, then waits 30 min: {storm:#?}"
    );
    assert_eq!(storm[0].body["channel"], "#trading");
    assert!(
        rx.matching("/pagerduty", "ETH margin storm").is_empty(),
        "only the Slack action"
    );

    // Release deployed (as sentry-cli does it), then a brand-new issue: the deploy preset fires.
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
    assert!(rx.matching("/slack", "New issue after deploy").is_empty());
    let mut e = error_event("EscrowTimeout", "USDC", 1);
    e["release"] = json!("vol-arb@2.0.0");
    s.post_envelope(&client, envelope("event", &e)).await;
    // An event of an old issue after the deploy is not new.
    s.post_envelope(
        &client,
        envelope("event", &error_event("InsufficientMargin", "BTC", 9)),
    )
    .await;
    wait_digested(&s, &token, 8, 0).await;
    all_delivered(&s, &token).await;
    let deploy = rx.matching("/slack", "New issue after deploy");
    assert_eq!(deploy.len(), 1, "{deploy:#?}");
    assert!(
        deploy[0].body["text"]
            .as_str()
            .unwrap()
            .contains("EscrowTimeout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_agent_heartbeat_alerts_and_the_next_beat_resolves() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();
    let beat = |status: &str| {
        json!({"check_in_id": uuid::Uuid::new_v4().simple().to_string(), "monitor_slug": "agent-9-heartbeat",
               "status": status, "environment": "paper",
               "monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}})
    };
    s.post_envelope(&client, envelope("check_in", &beat("ok")))
        .await;
    s.eventually("heartbeat monitor", || async {
        let (status, m) = s
            .api(
                &token,
                "/api/0/organizations/default/monitors/agent-9-heartbeat/",
            )
            .await;
        (status == 200 && m["environments"][0]["status"] == "ok").then_some(())
    })
    .await;
    s.server.tick().await;
    all_delivered(&s, &token).await;
    assert!(rx.matching("/webhook", "(agent 9)").is_empty());
    // The agent hangs: no beat for three minutes.
    s.server.clock.advance(3 * 60_000);
    s.server.tick().await;
    let got = s
        .eventually("heartbeat alert", || async {
            let got = rx.matching("/webhook", "Agent crashed or hung (agent 9)");
            (!got.is_empty()).then_some(got)
        })
        .await;
    assert_eq!(got[0].body["action"], "triggered");
    s.post_envelope(&client, envelope("check_in", &beat("ok")))
        .await;
    s.eventually("heartbeat resolved", || async {
        s.server.tick().await;
        let got = rx.matching("/webhook", "Agent crashed or hung (agent 9)");
        got.iter()
            .any(|r| r.body["action"] == "resolved")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pipelines_breach_p99_and_the_risk_rejection_ratio() {
    let s = TestServer::start().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    run_python(
        r#"
import os, datetime, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], traces_sample_rate=1.0, release="vol-arb@1.0.0")
now = datetime.datetime.now(datetime.timezone.utc)
# Ten pipelines: five take 3 s (p99 > 2 s); three of ten rejected by the risk manager (30 %).
for i in range(10):
    start = now - datetime.timedelta(seconds=5)
    tx = sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy", start_timestamp=start)
    tx.set_tag("outcome", "rejected_risk" if i < 3 else "filled")
    span = tx.start_child(op="risk.check", description="risk limits", start_timestamp=start)
    span.set_data("risk_pass", i >= 3)
    span.finish(end_timestamp=start + datetime.timedelta(milliseconds=5))
    tx.finish(end_timestamp=start + datetime.timedelta(seconds=3.0 if i < 5 else 0.02))
sentry_sdk.flush(timeout=10)
"#,
        &[("DSN", s.dsn())],
    )
    .await;
    wait_digested(&s, &token, 0, 10).await;
    s.eventually("both alerts delivered", || async {
        let p99 = rx.matching("/slack", "P99 latency breach");
        let risk = rx.matching("/slack", "Risk check failure rate");
        (p99.len() == 1 && risk.len() == 1).then_some(())
    })
    .await;
    let p99 = rx.matching("/slack", "P99 latency breach");
    assert!(
        p99[0].body["text"].as_str().unwrap().contains("3000 ms"),
        "{:?}",
        p99[0].body
    );
    // Evaluated as pipelines arrive: it fires on the first batch over 20 % (the SDK may
    // deliver the rejected ones first), once.
    let (_, open) = s
        .api(
            &token,
            "/api/0/organizations/default/incidents/?status=open",
        )
        .await;
    let risk = open
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["alertRule"]["name"] == "Risk check failure rate")
        .unwrap();
    assert!(risk["value"].as_f64().unwrap() > 20.0, "{risk}");
}

/// `count()`, `count_unique(user)` and `tag_ratio()` with queries are answered from the
/// per-minute tag and user rollups: tags a rule filters on are counted from the moment it
/// is saved, a negated tag counts what the tag does not cover, and a query the rollups
/// cannot answer is refused when the rule is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_rules_are_answered_from_tag_and_user_rollups() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/api/0/organizations/default/alert-rules/",
        s.server.base_url()
    );
    let rule = |name: &str, aggregate: &str, query: &str, threshold: f64| {
        json!({"name": name, "aggregate": aggregate, "query": query, "timeWindow": 5,
               "thresholdType": 0, "projects": ["default"], "dataset": "events",
               "triggers": [{"label": "critical", "alertThreshold": threshold,
                             "actions": [{"type": "all", "targetType": "specific"}]}]})
    };
    for body in [
        rule("ETH errors", "count()", "trade.asset:ETH", 2.0),
        rule("Errors off ETH", "count()", "!trade.asset:ETH", 4.0),
        rule("Errors on SOL", "count()", "trade.asset:SOL", 0.0),
        rule("Agents failing", "count_unique(user)", "", 1.0),
        rule("Mostly BTC", "tag_ratio(trade.asset, BTC)", "", 50.0),
        rule("Fatal ETH", "count()", "level:fatal trade.asset:ETH", 0.0),
    ] {
        let r = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{body}");
    }
    // Two tags at once is more than the rollups know.
    let r = client
        .post(&url)
        .bearer_auth(&token)
        .json(&rule(
            "Two tags",
            "count()",
            "trade.asset:ETH service:trading",
            1.0,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["query"][0]
            .as_str()
            .unwrap()
            .contains("at most one tag"),
        "{body}"
    );

    // 3 ETH errors from agent-1, 5 BTC errors from agent-2.
    for n in 0..8 {
        let (asset, user) = if n < 3 {
            ("ETH", "agent-1")
        } else {
            ("BTC", "agent-2")
        };
        let mut e = error_event("InsufficientMargin", asset, n);
        e["user"] = json!({"id": user});
        s.post_envelope(&client, envelope("event", &e)).await;
    }
    wait_digested(&s, &token, 8, 0).await;
    s.server.tick().await;
    all_delivered(&s, &token).await;
    for (name, fired) in [
        ("ETH errors", true),     // 3 > 2
        ("Errors off ETH", true), // 5 > 4
        ("Errors on SOL", false), // 0
        ("Agents failing", true), // 2 users > 1
        ("Mostly BTC", true),     // 62.5 % > 50 %
        ("Fatal ETH", false),     // every event is an error, none fatal
    ] {
        let got = rx.matching("/slack", name);
        assert_eq!(got.len(), usize::from(fired), "{name}: {got:#?}");
    }
    let (_, open) = s
        .api(
            &token,
            "/api/0/organizations/default/incidents/?status=open",
        )
        .await;
    let titles: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"ETH errors"), "{titles:?}");
    assert!(!titles.contains(&"Errors on SOL"), "{titles:?}");
}

/// An agent that ends its session cleanly is `stopped`: its heartbeat monitor waits for
/// the next check-in instead of counting misses, and nothing fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanly_stopped_agent_raises_no_alarm() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let rx = Receiver::start().await;
    channels(&s, &token, &rx).await;
    let client = reqwest::Client::new();
    let beat = || {
        json!({"check_in_id": uuid::Uuid::new_v4().simple().to_string(), "monitor_slug": "agent-ag_calm-heartbeat",
               "status": "ok", "environment": "paper",
               "monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "minute"}, "checkin_margin": 1}})
    };
    let sid = uuid::Uuid::new_v4().to_string();
    let t0 = s.server.clock.now_ms() as f64 / 1000.0;
    s.post_envelope(
        &client,
        envelope("session", &session(&sid, "ag_calm", "ok", t0, true)),
    )
    .await;
    s.post_envelope(&client, envelope("check_in", &beat()))
        .await;
    s.post_envelope(
        &client,
        envelope("session", &session(&sid, "ag_calm", "exited", t0, false)),
    )
    .await;
    let agent_status = || async {
        let (_, a) = s
            .api(
                &token,
                "/api/0/organizations/default/monitors/agent-ag_calm-heartbeat/",
            )
            .await;
        a["environments"][0]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let overview = || {
        let agents = s.agents();
        agents
            .iter()
            .find(|a| a.agent_id == "ag_calm")
            .map(|a| a.status)
    };
    s.eventually("stopped agent and its heartbeat", || async {
        (agent_status().await == "ok" && overview() == Some("stopped")).then_some(())
    })
    .await;
    // Long after its last beat: no miss, no alert, no monitor-failure issue.
    for _ in 0..3 {
        s.server.clock.advance(2 * 60_000);
        s.server.tick().await;
    }
    all_delivered(&s, &token).await;
    assert_eq!(agent_status().await, "ok");
    assert!(
        rx.matching("/webhook", "ag_calm").is_empty(),
        "{:#?}",
        rx.all()
    );
    let (_, issues) = s
        .api(&token, "/api/0/projects/default/default/issues/?query=")
        .await;
    assert!(issues.as_array().unwrap().is_empty(), "{issues:#}");

    // The agent comes back: a new session and a beat re-arm its heartbeat monitor, and its
    // silence after that is a miss that alerts, as for any agent.
    let last_beat = || {
        s.agents()
            .iter()
            .find(|a| a.agent_id == "ag_calm")
            .and_then(|a| a.last_heartbeat)
    };
    let stopped_beat = last_beat();
    let sid = uuid::Uuid::new_v4().to_string();
    let t1 = s.server.clock.now_ms() as f64 / 1000.0;
    s.post_envelope(
        &client,
        envelope("session", &session(&sid, "ag_calm", "ok", t1, true)),
    )
    .await;
    s.post_envelope(&client, envelope("check_in", &beat()))
        .await;
    // Both digested (a fresh beat and a running session) before time moves on.
    s.eventually("the agent is back", || async {
        (last_beat() > stopped_beat && overview().is_some_and(|st| st != "stopped")).then_some(())
    })
    .await;
    s.server.clock.advance(3 * 60_000);
    s.server.tick().await;
    s.eventually("the restarted agent's silence is a miss", || async {
        (agent_status().await == "missed_checkin").then_some(())
    })
    .await;
    s.eventually("the silence alerts", || async {
        s.server.tick().await;
        (!rx.matching("/webhook", "ag_calm").is_empty()).then_some(())
    })
    .await;
}
