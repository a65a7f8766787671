//! Telegram both ways, against a local stand-in for the Bot API (`api_base`): it serves
//! `getUpdates` with scripted updates (commands, button presses, a refused chat and user)
//! and records `sendMessage` and `answerCallbackQuery`. The effects are read back through
//! the REST API: incident acknowledged, rule muted (and nothing sent while muted), issue
//! resolved; usage replies; a refused chat changes nothing and is counted.

mod common;

use axum::extract::{Path as AxPath, State};
use axum::routing::post;
use common::{ApiClient, TestServer};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Bot {
    /// Updates to serve (each served while its id >= the offset asked for).
    updates: Vec<Value>,
    /// (method, body) of every call.
    calls: Vec<(String, Value)>,
}

#[derive(Clone)]
struct StandIn {
    url: String,
    bot: Arc<Mutex<Bot>>,
}

async fn bot_api(
    State(bot): State<Arc<Mutex<Bot>>>,
    AxPath((token, method)): AxPath<(String, String)>,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut b = bot.lock().unwrap();
    assert_eq!(token, "bot123:ABC");
    b.calls.push((method.clone(), body.clone()));
    if method == "getUpdates" {
        let offset = body["offset"].as_i64().unwrap_or(0);
        let due: Vec<Value> = b
            .updates
            .iter()
            .filter(|u| u["update_id"].as_i64().unwrap() >= offset)
            .cloned()
            .collect();
        return axum::Json(json!({"ok": true, "result": due}));
    }
    axum::Json(json!({"ok": true, "result": true}))
}

impl StandIn {
    async fn start() -> StandIn {
        let bot = Arc::new(Mutex::new(Bot::default()));
        let app = axum::Router::new()
            .route("/{token}/{method}", post(bot_api))
            .with_state(Arc::clone(&bot));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        StandIn { url, bot }
    }

    fn push(&self, update: Value) {
        self.bot.lock().unwrap().updates.push(update);
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        self.bot
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Replies to message `id`.
    fn replies_to(&self, id: i64) -> Vec<String> {
        self.calls("sendMessage")
            .into_iter()
            .filter(|b| b["reply_to_message_id"] == id)
            .map(|b| b["text"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Alert notifications (not replies).
    fn alerts(&self) -> Vec<Value> {
        self.calls("sendMessage")
            .into_iter()
            .filter(|b| b.get("reply_to_message_id").is_none() && b.get("reply_markup").is_some())
            .collect()
    }
}

fn command(update_id: i64, chat: i64, user: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id * 10, "date": 0, "text": text,
        "chat": {"id": chat, "type": "group"},
        "from": {"id": user, "is_bot": false, "first_name": "A", "username": "alice"}}})
}

fn button(update_id: i64, chat: i64, user: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("q{update_id}"), "data": data, "chat_instance": "x",
        "from": {"id": user, "is_bot": false, "first_name": "A", "username": "alice"},
        "message": {"message_id": 5, "date": 0, "chat": {"id": chat, "type": "group"}}}})
}

fn envelope(payload: &Value) -> Vec<u8> {
    let p = payload.to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n", p.len()).into_bytes()
}

fn error_event(kind: &str, n: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "timestamp": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
        "platform": "rust", "level": "error",
        "exception": {"values": [{"type": kind, "value": format!("{kind} order {n}")}]},
        "tags": {"trade.error_type": kind, "agent_id": "ag_1"},
        "fingerprint": [kind],
    })
}

/// Agent `id` as the agents API lists it.
async fn agent(s: &TestServer, token: &str, id: &str) -> Value {
    let (_, list) = s
        .api(token, "/api/0/projects/default/default/agents/")
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("agent {id} listed: {list}"))
}

/// Wait until `check` holds (the poller and the notifier are asynchronous).
async fn until(s: &TestServer, what: &str, mut check: impl FnMut() -> bool) {
    s.eventually(what, || {
        let ok = check();
        async move { ok.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_commands_buttons_and_a_refused_chat() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let api = ApiClient::new(s.server.base_url(), &token);
    let tg = StandIn::start().await;

    // Bad command fields are refused field by field.
    let bad = api
        .post(
            "/api/0/organizations/default/integrations/",
            &json!({"provider": "telegram", "name": "tg", "config": {"bot_token": "123:ABC", "chat_id": 42, "commands": true}}),
        )
        .await
        .expect(400);
    assert!(
        bad["config"][0]
            .as_str()
            .unwrap()
            .contains("allowed_user_ids"),
        "{bad}"
    );
    api.post(
        "/api/0/organizations/default/integrations/",
        &json!({"provider": "telegram", "name": "tg", "config": {
            "bot_token": "123:ABC", "chat_id": 42, "api_base": tg.url,
            "commands": true, "allowed_user_ids": [9], "allowed_chat_ids": [-1001], "poll_timeout_secs": 0}}),
    )
    .await
    .expect(201);
    // The allow-list is edited through the API (checked as at creation; the bot token kept).
    let (_, list) = s
        .api(&token, "/api/0/organizations/default/integrations/")
        .await;
    let channel_url = format!(
        "/api/0/organizations/default/integrations/{}/",
        list[0]["id"].as_str().unwrap()
    );
    let bad = api
        .put(
            &channel_url,
            &json!({"config": {"allowed_user_ids": ["seven"]}}),
        )
        .await
        .expect(400);
    assert!(
        bad["config"][0].as_str().unwrap().contains("numeric"),
        "{bad}"
    );
    let edited = api
        .put(&channel_url, &json!({"config": {"allowed_user_ids": [7]}}))
        .await
        .expect(200);
    assert!(
        edited["configured"].to_string().contains("bot_token"),
        "{edited}"
    );

    // A metric rule that warns at the first error and is critical past 3: an open incident.
    let rule = api
        .post(
            "/api/0/organizations/default/alert-rules/",
            &json!({"name": "Order errors", "aggregate": "count()", "query": "", "timeWindow": 5,
                "thresholdType": 0, "projects": ["default"],
                "triggers": [{"label": "critical", "alertThreshold": 3, "actions": [{"type": "all"}]},
                             {"label": "warning", "alertThreshold": 0, "actions": [{"type": "all"}]}]}),
        )
        .await
        .expect(201);
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    s.post_envelope(&client, envelope(&error_event("OrderRejected", 1)))
        .await;
    let incident = s
        .eventually("the warning incident", || async {
            let (_, list) = s
                .api(
                    &token,
                    "/api/0/organizations/default/incidents/?status=open",
                )
                .await;
            list.as_array()?
                .iter()
                .find(|i| i["alertRule"]["id"] == rule_id.as_str())
                .map(|i| i["id"].as_str().unwrap().parse::<i64>().unwrap())
        })
        .await;
    until(&s, "the alert with its buttons", || {
        tg.alerts()
            .iter()
            .any(|b| b["text"].as_str().unwrap().contains("Order errors"))
    })
    .await;
    // The presets fire too (a first OrderRejected, a 100 % error rate): wait for them, so
    // what is sent later is counted from here.
    until(&s, "the preset alerts", || {
        let texts = tg
            .alerts()
            .iter()
            .map(|b| b.to_string())
            .collect::<String>();
        texts.contains("Critical trade failure") && texts.contains("Error rate spike")
    })
    .await;
    // The preset's alert is about agent ag_1 (its event's agent_id tag): a Pause button.
    let preset_alert = tg
        .alerts()
        .into_iter()
        .find(|b| {
            b["text"]
                .as_str()
                .unwrap()
                .contains("Critical trade failure")
        })
        .unwrap();
    assert_eq!(
        preset_alert["reply_markup"]["inline_keyboard"][0][2]["callback_data"],
        "pause:ag_1"
    );
    let alert = tg
        .alerts()
        .into_iter()
        .find(|b| b["text"].as_str().unwrap().contains("Order errors"))
        .unwrap();
    let buttons = &alert["reply_markup"]["inline_keyboard"][0];
    assert_eq!(buttons[0]["callback_data"], format!("ack:{incident}"));
    assert_eq!(buttons[1]["callback_data"], format!("mute:{rule_id}:1h"));
    let incident_path = format!("/api/0/organizations/default/incidents/{incident}/");

    // A chat not on the list, and a user not on the list in an allowed chat: nothing changes,
    // nothing is answered, both are counted.
    tg.push(command(1, 999, 7, &format!("/ack {incident}")));
    tg.push(command(2, 42, 8, &format!("/ack {incident}")));
    tg.push(button(3, 999, 7, &format!("ack:{incident}")));
    tg.push(command(4, 42, 7, "/dance"));
    until(&s, "the usage reply", || !tg.replies_to(40).is_empty()).await;
    assert!(
        tg.replies_to(40)[0].contains("Unknown command"),
        "{:?}",
        tg.replies_to(40)
    );
    assert!(tg.replies_to(10).is_empty() && tg.replies_to(20).is_empty());
    assert!(tg.calls("answerCallbackQuery").is_empty());
    let (_, i) = s.api(&token, &incident_path).await;
    assert_eq!(i["acknowledged"], false, "{i}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("lookout_telegram_commands_total{outcome=\"refused\"} 3"),
        "{metrics}"
    );

    // /ack from an allowed user in the second allowed chat.
    tg.push(command(5, -1001, 7, &format!("/ack {incident}")));
    until(&s, "the ack reply", || !tg.replies_to(50).is_empty()).await;
    assert!(tg.replies_to(50)[0].contains("acknowledged"));
    let (_, i) = s.api(&token, &incident_path).await;
    assert_eq!(i["acknowledged"], true);
    assert_eq!(i["acknowledgedBy"], "telegram:7 (@alice)");
    // Acknowledged: escalating to critical is recorded, not notified.
    let before = tg.alerts().len();
    for n in 2..=5 {
        s.post_envelope(&client, envelope(&error_event("OrderRejected", n)))
            .await;
    }
    // On the manual clock the tick evaluates metric rules again.
    s.eventually("the escalation", || async {
        s.server.tick().await;
        let (_, i) = s.api(&token, &incident_path).await;
        (i["severity"] == "critical").then_some(())
    })
    .await;
    let (_, i) = s.api(&token, &incident_path).await;
    assert!(
        i["activities"]
            .to_string()
            .contains("not notified (acknowledged by telegram:7"),
        "{i}"
    );

    // Malformed: a usage reply, nothing muted.
    tg.push(command(6, 42, 7, &format!("/mute {rule_id} forever")));
    // /mute the critical trade failure preset for 2 h; /status; /alerts; /pause.
    let (_, issue_rules) = s
        .api(&token, "/api/0/projects/default/default/rules/")
        .await;
    let preset = issue_rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["preset"] == "critical_trade_failure")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tg.push(command(7, 42, 7, &format!("/mute {preset} 2h")));
    tg.push(command(8, 42, 7, "/alerts"));
    tg.push(command(9, 42, 7, "/status"));
    tg.push(command(10, 42, 7, "/pause ag_1 too risky"));
    until(&s, "replies to 6-10", || {
        (6..=10).all(|n| !tg.replies_to(n * 10).is_empty())
    })
    .await;
    assert!(tg.replies_to(60)[0].starts_with("Usage: /mute"));
    assert!(tg.replies_to(70)[0].contains("muted for 2h"));
    assert!(
        tg.replies_to(80)[0].contains(&format!("#{incident}")),
        "{:?}",
        tg.replies_to(80)
    );
    assert!(tg.replies_to(80)[0].contains("acked by telegram:7"));
    assert!(
        tg.replies_to(90)[0].contains("ag_1"),
        "{:?}",
        tg.replies_to(90)
    );
    assert!(
        tg.replies_to(100)[0].contains("Agent ag_1 paused: too risky"),
        "{:?}",
        tg.replies_to(100)
    );
    let ag = agent(&s, &token, "ag_1").await;
    assert_eq!(ag["trading"], "paused", "{ag}");
    assert_eq!(ag["pausedReason"], "too risky");
    assert_eq!(ag["pausedBy"]["kind"], "telegram");
    assert_eq!(ag["pausedBy"]["id"], "7", "{ag}");
    let (_, r) = s
        .api(
            &token,
            &format!("/api/0/projects/default/default/rules/{preset}/"),
        )
        .await;
    assert_eq!(r["snooze"], true, "{r}");
    assert_eq!(r["snoozeCreatedBy"], "telegram:7 (@alice)");

    // Muted: a new critical trade failure is decided and recorded, and not sent.
    let fired_before = tg
        .alerts()
        .iter()
        .filter(|b| {
            b["text"]
                .as_str()
                .unwrap()
                .contains("Critical trade failure")
        })
        .count();
    s.post_envelope(&client, envelope(&error_event("InsufficientMargin", 1)))
        .await;
    let muted = s
        .eventually("the muted firing", || async {
            let (_, list) = s
                .api(&token, "/api/0/organizations/default/incidents/")
                .await;
            list.as_array()?
                .iter()
                .find(|i| {
                    i["alertRule"]["id"] == preset.as_str()
                        && i["title"].as_str().unwrap().contains("InsufficientMargin")
                })
                .map(|i| i["id"].as_str().unwrap().to_owned())
        })
        .await;
    let (_, m) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/incidents/{muted}/"),
        )
        .await;
    assert!(
        m["activities"].to_string().contains("no notification sent"),
        "{m}"
    );
    assert_eq!(m["deliveries"], json!([]));

    // /resolve by short id, and a button press acknowledging nothing new.
    let (_, issues) = s
        .api(&token, "/api/0/projects/default/default/issues/?query=")
        .await;
    let margin = issues
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains("InsufficientMargin"))
        .unwrap()
        .clone();
    let short = margin["shortId"].as_str().unwrap().to_ascii_lowercase();
    tg.push(command(11, 42, 7, &format!("/resolve {short}")));
    tg.push(button(12, 42, 7, &format!("ack:{incident}")));
    tg.push(command(13, 42, 7, "/resume ag_1"));
    tg.push(command(14, 42, 7, "/pause nobody"));
    until(&s, "the resolve reply and the button answer", || {
        !tg.replies_to(110).is_empty()
            && !tg.calls("answerCallbackQuery").is_empty()
            && !tg.replies_to(140).is_empty()
    })
    .await;
    assert!(
        tg.replies_to(130)[0].contains("may trade again"),
        "{:?}",
        tg.replies_to(130)
    );
    assert_eq!(agent(&s, &token, "ag_1").await["trading"], "active");
    assert!(
        tg.replies_to(140)[0].contains("No agent \"nobody\""),
        "{:?}",
        tg.replies_to(140)
    );
    assert!(
        tg.replies_to(110)[0].contains("resolved"),
        "{:?}",
        tg.replies_to(110)
    );
    let (_, issue) = s
        .api(
            &token,
            &format!(
                "/api/0/organizations/default/issues/{}/",
                margin["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(issue["status"], "resolved", "{issue}");
    let answer = &tg.calls("answerCallbackQuery")[0];
    assert_eq!(answer["callback_query_id"], "q12");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("already acknowledged")
    );

    // Every update was handled once: the stored offset is past the last, and no command
    // was answered twice although the stand-in serves whatever is at or past the offset.
    let triage = s.server.store.triage();
    let channel = triage.telegram_channels().unwrap()[0].id;
    assert_eq!(triage.telegram_offset(channel).unwrap(), 15);
    for n in [4, 5, 6, 7, 8, 9, 10, 11, 13, 14] {
        assert_eq!(tg.replies_to(n * 10).len(), 1, "update {n} answered once");
    }
    assert_eq!(
        tg.alerts().len(),
        before,
        "nothing was notified while acked or muted"
    );
    assert_eq!(
        tg.alerts()
            .iter()
            .filter(|b| b["text"]
                .as_str()
                .unwrap()
                .contains("Critical trade failure"))
            .count(),
        fired_before
    );

    // A restart resumes after the last handled update: the stand-in still serves every
    // update at or past the offset asked for, and none is answered again.
    let sent_before = tg.calls("sendMessage").len();
    let polls_before = tg.calls("getUpdates").len();
    let TestServer { server, dir, db } = s;
    server.stop().await.unwrap();
    let restarted = lookout_server::Server::builder(common::test_config(dir.path(), db.as_ref()))
        .start()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tg.calls("getUpdates").len() < polls_before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted server polls"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(tg.calls("getUpdates").last().unwrap()["offset"], 15);
    assert_eq!(
        tg.calls("sendMessage").len(),
        sent_before,
        "nothing answered twice"
    );
    restarted.stop().await.unwrap();
}
