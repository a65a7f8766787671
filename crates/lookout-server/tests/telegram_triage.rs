//! Triage without Telegram: acknowledging an incident and muting a rule through the REST API
//! (scope `alerts:write`, Sentry's snooze shape) and through the web UI's buttons
//! (post/redirect/get with the session's CSRF token), each audited with who did it; and the
//! seventh preset reaching a project that had the six before it.

mod common;

use common::{ApiClient, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-battery";

fn envelope(payload: &Value) -> Vec<u8> {
    let p = payload.to_string();
    format!("{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{p}\n", p.len()).into_bytes()
}

fn error_event(n: usize) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().simple().to_string(),
        "timestamp": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
        "level": "error", "platform": "python",
        "exception": {"values": [{"type": "Timeout", "value": format!("venue timed out {n}")}]},
    })
}

/// A UI client signed in as admin.
async fn signed_in(base: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={PASSWORD}&next=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("lookout_session="))
        .expect("session cookie");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn page(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.text().await.unwrap()
}

fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with csrf")
        + 19;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

async fn post_form(client: &reqwest::Client, url: &str, form: &str) -> reqwest::Response {
    client
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_and_mute_through_the_api_and_the_ui() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let base = s.server.base_url();
    let token = s.token();
    let api = ApiClient::new(&base, &token);
    let (_, read_only) = s
        .server
        .store
        .create_token("reader", &["alerts:read".to_owned()])
        .unwrap();
    let reader = ApiClient::new(&base, &read_only);

    let rule = api
        .post(
            "/api/0/organizations/default/alert-rules/",
            &json!({"name": "Any error", "aggregate": "count()", "query": "", "timeWindow": 5,
                "thresholdType": 0, "projects": ["default"],
                "triggers": [{"label": "critical", "alertThreshold": 0, "actions": []}]}),
        )
        .await
        .expect(201);
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    s.post_envelope(&reqwest::Client::new(), envelope(&error_event(1)))
        .await;
    let incident = s
        .eventually("the incident", || async {
            s.server.tick().await;
            let (_, list) = s
                .api(
                    &token,
                    "/api/0/organizations/default/incidents/?status=open",
                )
                .await;
            list.as_array()?
                .iter()
                .find(|i| i["alertRule"]["id"] == rule_id.as_str())
                .map(|i| i["id"].as_str().unwrap().to_owned())
        })
        .await;
    let ack_url = format!("/api/0/organizations/default/incidents/{incident}/acknowledge/");

    // API: the scope is checked; unknown incidents are 404; an ack is kept once.
    assert_eq!(reader.post(&ack_url, &json!({})).await.status, 403);
    let missing = api
        .post(
            "/api/0/organizations/default/incidents/99999/acknowledge/",
            &json!({}),
        )
        .await
        .expect(404);
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("incident 99999")
    );
    let acked = api.post(&ack_url, &json!({})).await.expect(200);
    assert_eq!(acked["acknowledged"], true);
    assert_eq!(acked["acknowledgedBy"], "token:test");
    let again = api.post(&ack_url, &json!({})).await.expect(200);
    assert_eq!(again["dateAcknowledged"], acked["dateAcknowledged"]);
    let (_, list) = s
        .api(&token, "/api/0/organizations/default/incidents/")
        .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == incident.as_str() && i["acknowledged"] == true)
    );

    // API: snooze in Sentry's shape, checked field by field.
    let snooze = format!("/api/0/organizations/default/alert-rules/{rule_id}/snooze/");
    let bad = api
        .post(&snooze, &json!({"until": "2001-01-01T00:00:00Z"}))
        .await
        .expect(400);
    assert!(bad["until"][0].as_str().unwrap().contains("past"), "{bad}");
    let bad = api
        .post(&snooze, &json!({"until": "soon"}))
        .await
        .expect(400);
    assert!(bad["until"][0].as_str().unwrap().contains("ISO 8601"));
    let bad = api
        .post(&snooze, &json!({"target": "me"}))
        .await
        .expect(400);
    assert!(bad["target"][0].as_str().unwrap().contains("everyone"));
    assert_eq!(
        reader.post(&snooze, &json!({"minutes": 60})).await.status,
        403
    );
    let made = api.post(&snooze, &json!({"minutes": 60})).await.expect(201);
    assert_eq!(made["alertRuleId"], rule_id.as_str());
    assert_eq!(made["createdBy"], "token:test");
    assert!(made["until"].is_string());
    let (_, r) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/alert-rules/{rule_id}/"),
        )
        .await;
    assert_eq!(
        (r["snooze"].clone(), r["snoozeUntil"].clone()),
        (json!(true), made["until"].clone())
    );
    assert_eq!(api.delete(&snooze).await.status, 204);
    let (_, r) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/alert-rules/{rule_id}/"),
        )
        .await;
    assert_eq!(r["snooze"], false);
    assert_eq!(
        api.post(
            "/api/0/projects/default/default/rules/424242/snooze/",
            &json!({})
        )
        .await
        .status,
        404
    );

    // UI: the rule page mutes and unmutes; the incident page acknowledges (a fresh incident).
    let ui = signed_in(&base).await;
    let rule_page = page(&ui, &format!("{base}/alerts/rules/{rule_id}")).await;
    assert!(rule_page.contains("id=\"mute-rule\""));
    let token_field = csrf(&rule_page);
    let bad = post_form(
        &ui,
        &format!("{base}/alerts/rules/{rule_id}/mute"),
        "csrf=wrong&duration=1h",
    )
    .await;
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    let bad = post_form(
        &ui,
        &format!("{base}/alerts/rules/{rule_id}/mute"),
        &format!("csrf={token_field}&duration=9y"),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let r = post_form(
        &ui,
        &format!("{base}/alerts/rules/{rule_id}/mute"),
        &format!("csrf={token_field}&duration=4h"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let rule_page = page(&ui, &format!("{base}/alerts/rules/{rule_id}")).await;
    assert!(
        rule_page.contains("Muted") && rule_page.contains("by user:admin"),
        "mute shown"
    );
    let (_, r) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/alert-rules/{rule_id}/"),
        )
        .await;
    assert_eq!(r["snoozeCreatedBy"], "user:admin");
    let r = post_form(
        &ui,
        &format!("{base}/alerts/rules/{rule_id}/unmute"),
        &format!("csrf={token_field}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        page(&ui, &format!("{base}/alerts/rules/{rule_id}"))
            .await
            .contains("id=\"mute-rule\"")
    );

    let (_, list) = s
        .api(&token, "/api/0/organizations/default/incidents/")
        .await;
    let preset_incident = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "open" && i["acknowledged"] == false)
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .expect("another open incident (the error rate preset)");
    let incident_page = page(&ui, &format!("{base}/alerts/incidents/{preset_incident}")).await;
    assert!(incident_page.contains("id=\"ack-incident\""));
    let r = post_form(
        &ui,
        &format!("{base}/alerts/incidents/{preset_incident}/ack"),
        &format!("csrf={}", csrf(&incident_page)),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let incident_page = page(&ui, &format!("{base}/alerts/incidents/{preset_incident}")).await;
    assert!(incident_page.contains("by user:admin"));
    assert!(!incident_page.contains("id=\"ack-incident\""));

    // UI: a Telegram channel's command fields are edited on its page; the bot token, left
    // blank, is kept; a bad id is refused beside its field.
    let made = api
        .post(
            "/api/0/organizations/default/integrations/",
            &json!({"provider": "telegram", "name": "tg", "config": {"bot_token": "123:SECRET", "chat_id": 42}}),
        )
        .await
        .expect(201);
    let channel = made["id"].as_str().unwrap().to_owned();
    let edit_url = format!("{base}/settings/channels/{channel}/edit");
    let form = page(&ui, &edit_url).await;
    assert!(!form.contains("123:SECRET"), "secrets are never shown");
    assert!(form.contains("id=\"channel-allowed_user_ids\""));
    let csrf_token = csrf(&form);
    let bad = post_form(
        &ui,
        &edit_url,
        &format!(
            "csrf={csrf_token}&name=tg&bot_token=&chat_id=42&commands=on&allowed_user_ids=seven"
        ),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("is not a numeric Telegram id")
    );
    let r = post_form(
        &ui,
        &edit_url,
        &format!("csrf={csrf_token}&name=tg&bot_token=&chat_id=42&commands=on&allowed_user_ids=7%2C+8&allowed_chat_ids=-100"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let org = s.server.store.alerts().org_id("default").unwrap();
    let stored = s
        .server
        .store
        .alerts()
        .integrations(org)
        .unwrap()
        .into_iter()
        .find(|c| c.id.to_string() == channel)
        .unwrap()
        .config;
    assert_eq!(stored["bot_token"], "123:SECRET");
    assert_eq!(stored["commands"], true);
    assert_eq!(stored["allowed_user_ids"], json!([7, 8]));
    assert_eq!(stored["allowed_chat_ids"], json!([-100]));

    // Everything above is in the audit, with who did it.
    let audit: Vec<(String, String)> = s
        .server
        .store
        .triage()
        .audit(org, 50)
        .unwrap()
        .into_iter()
        .map(|a| (a.actor, a.action))
        .collect();
    for want in [
        ("token:test", "acknowledge"),
        ("token:test", "mute"),
        ("token:test", "unmute"),
        ("user:admin", "mute"),
        ("user:admin", "unmute"),
        ("user:admin", "acknowledge"),
        ("user:admin", "edit_channel"),
    ] {
        assert!(
            audit.iter().any(|(a, b)| a == want.0 && b == want.1),
            "{want:?} in {audit:?}"
        );
    }
    assert_eq!(
        audit.iter().filter(|(_, b)| b == "acknowledge").count(),
        2,
        "a second ack of the same incident is not a new one"
    );
}
