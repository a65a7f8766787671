//! Venue incidents: agents on the official Rust `sentry` crate (one client per agent, with
//! the tags purpleflea-client's errors carry: `agent_id`, `service`, `http.status_code`, and
//! its message naming the endpoint) failing on one Purple Flea service. Two agents open
//! nothing; a third opens ONE incident of the venue preset naming the service, its endpoints,
//! status codes and the agents, notified once; it resolves when the errors stop.

mod common;

use axum::extract::State;
use axum::routing::post;
use common::{ApiClient, TestServer};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A local webhook receiver recording every body.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    async fn record(State(got): State<Arc<Mutex<Vec<Value>>>>, body: axum::Json<Value>) {
        got.lock().unwrap().push(body.0);
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/hook", post(record))
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Agent `agent` hits `status` on `endpoint` of the trading service, as the client reports
/// it: a `TradingError` whose message names the service, method and path.
async fn agent_error(dsn: String, agent: &'static str, endpoint: &'static str, status: u16) {
    tokio::task::spawn_blocking(move || {
        let options = sentry::apply_defaults(sentry::ClientOptions::new().dsn(&dsn));
        let client = Arc::new(sentry::Client::from(options));
        let hub = sentry::Hub::new(
            Some(Arc::clone(&client)),
            Arc::new(sentry::Scope::default()),
        );
        hub.configure_scope(|s| s.set_tag("agent_id", agent));
        hub.with_scope(
            |s| {
                s.set_tag("service", "trading");
                s.set_tag("http.status_code", status);
                s.set_tag("trade.error_type", "Network");
            },
            || {
                hub.capture_event(sentry::protocol::Event {
                    level: sentry::Level::Error,
                    exception: vec![sentry::protocol::Exception {
                        ty: "TradingError".into(),
                        value: Some(format!("trading {endpoint}: HTTP {status}")),
                        ..Default::default()
                    }]
                    .into(),
                    ..Default::default()
                })
            },
        );
        assert!(client.flush(Some(Duration::from_secs(10))));
    })
    .await
    .unwrap();
}

/// The venue incidents (of the preset) the API lists.
async fn venue_incidents(s: &TestServer, token: &str) -> Vec<Value> {
    let (_, list) = s
        .api(token, "/api/0/organizations/default/incidents/")
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["alertRule"]["name"]
                .as_str()
                .unwrap()
                .starts_with("Venue outage")
        })
        .cloned()
        .collect()
}

/// Wait until the digest stored `n` error events.
async fn stored(s: &TestServer, token: &str, n: i64) {
    s.eventually("the events stored", || async {
        let (_, issues) = s
            .api(token, "/api/0/projects/default/default/issues/?query=")
            .await;
        let total: i64 = issues
            .as_array()?
            .iter()
            .map(|i| {
                i["count"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .or(i["count"].as_i64())
                    .unwrap_or(0)
            })
            .sum();
        (total >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_failing_on_one_service_open_one_venue_incident() {
    let s = TestServer::start_manual().await;
    let token = s.token();
    let api = ApiClient::new(s.server.base_url(), &token);
    let (url, got) = receiver().await;
    api.post(
        "/api/0/organizations/default/integrations/",
        &json!({"provider": "webhook", "name": "hook", "config": {"url": url}}),
    )
    .await
    .expect(201);
    // The preset is installed like the six others, and edited like them.
    let (_, rules) = s
        .api(&token, "/api/0/organizations/default/alert-rules/")
        .await;
    let venue = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["preset"] == "venue_outage")
        .cloned()
        .expect("the venue preset");
    assert_eq!(venue["aggregate"], "count_unique_per(agent_id, service)");
    assert_eq!(venue["triggers"][0]["alertThreshold"], 2);

    // Two agents failing: not a venue incident.
    agent_error(s.dsn(), "ag_1", "POST /v1/orders", 503).await;
    agent_error(s.dsn(), "ag_2", "GET /v1/positions", 502).await;
    stored(&s, &token, 2).await;
    s.server.tick().await;
    assert!(venue_incidents(&s, &token).await.is_empty());

    // A third: one incident for the service, naming endpoints, codes and agents.
    agent_error(s.dsn(), "ag_3", "POST /v1/orders", 503).await;
    stored(&s, &token, 3).await;
    s.server.tick().await;
    let list = venue_incidents(&s, &token).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let incident = &list[0];
    assert_eq!(incident["key"], "trading");
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["value"], 3.0);
    let id = incident["id"].as_str().unwrap().to_owned();
    let (_, detail) = s
        .api(
            &token,
            &format!("/api/0/organizations/default/incidents/{id}/"),
        )
        .await;
    let opened = detail["activities"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    for needle in [
        "service trading",
        "ag_1, ag_2, ag_3",
        "POST /v1/orders",
        "GET /v1/positions",
        "503",
        "502",
    ] {
        assert!(opened.contains(needle), "{needle:?} in {opened:?}");
    }
    // Notified once, with the same words.
    let sent = s
        .eventually("the venue notification", || async {
            let got = got.lock().unwrap();
            let venue: Vec<Value> = got
                .iter()
                .filter(|b| {
                    b["rule"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("Venue outage"))
                })
                .cloned()
                .collect();
            (!venue.is_empty()).then_some(venue)
        })
        .await;
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["text"]
            .as_str()
            .unwrap()
            .contains("POST /v1/orders"),
        "{}",
        sent[0]
    );
    // Another tick, more errors from the same agents: still one incident, no new message.
    agent_error(s.dsn(), "ag_1", "POST /v1/orders", 503).await;
    stored(&s, &token, 4).await;
    s.server.tick().await;
    assert_eq!(venue_incidents(&s, &token).await.len(), 1);

    // The errors stop: once the 5-minute window has emptied, the incident resolves.
    s.server.clock.advance(6 * 60_000);
    s.server.tick().await;
    let list = venue_incidents(&s, &token).await;
    assert_eq!(list[0]["status"], "closed", "{list:#?}");
    s.eventually("the resolve notification", || async {
        let got = got.lock().unwrap();
        got.iter()
            .any(|b| {
                b["action"] == "resolved"
                    && b["rule"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("Venue outage"))
            })
            .then_some(())
    })
    .await;
}
