//! End to end: the Rust agent library (`lookout-agent`) with the `sentry` crate's real HTTP
//! transport, into a real server, read back through the REST API.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use lookout_agent::cron::CronMonitor;
use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
    capture_trading_error,
};

fn rejected(asset: &str, order_id: &str) -> TradingError {
    TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
        .with_trading(asset, "buy", order_id, None)
        .with_phase(Phase::Confirmation)
        .with_http_status(400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_library_reports_errors_pipelines_monitors_and_sessions() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let options = Options::new("ag_e2e")
            .dsn(dsn.clone())
            .strategy("momentum")
            .release("e2e-bot@1.2.3")
            .environment("paper");
        let hub = options.hub();
        sentry::Hub::run(hub.clone(), || {
            let session = AgentSession::start("ag_e2e", HealthOptions::new());
            session.tick();
            capture_trading_error(&rejected("BTC", "ord_1"));
            capture_trading_error(&rejected("BTC", "ord_2"));
            capture_trading_error(&rejected("ETH", "ord_3"));
            let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
            pipeline
                .stage(Stage::http("POST", "/v1/trade/open"), |s| {
                    s.order_id("ord_4");
                    Ok(())
                })
                .expect("stage");
            pipeline.finish(Outcome::Filled);
            let monitor = CronMonitor::crontab("settle-escrows", "*/10 * * * *")
                .expect("crontab")
                .checkin_margin(1)
                .max_runtime(5);
            let done: Result<(), std::io::Error> = monitor.run(|| Ok(()));
            done.expect("job");
            session.end();
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");

        // Two more agents of the same release: one crashes (an unhandled panic event, as the
        // panic integration sends it), one exits cleanly.
        for (agent, crash) in [("ag_e2e_b", true), ("ag_e2e_c", false)] {
            let hub = Options::new(agent)
                .dsn(dsn.clone())
                .strategy("momentum")
                .release("e2e-bot@1.2.3")
                .environment("paper")
                .hub();
            sentry::Hub::run(hub.clone(), || {
                let session = AgentSession::start(agent, HealthOptions::new().heartbeats(false));
                if crash {
                    let mut event = sentry::protocol::Event {
                        level: sentry::Level::Fatal,
                        ..Default::default()
                    };
                    event.exception.values.push(sentry::protocol::Exception {
                        ty: "panic".into(),
                        value: Some("index out of bounds".into()),
                        mechanism: Some(sentry::protocol::Mechanism {
                            ty: "panic".into(),
                            handled: Some(false),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    sentry::capture_event(event);
                }
                session.end();
            });
            let client = hub.client().expect("client");
            assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
        }
    })
    .await
    .expect("agent thread");

    let issues = |q: &'static str| {
        let (s, token) = (&s, &token);
        async move {
            let (_, body) = s
                .api(
                    token,
                    &format!("/api/0/projects/default/default/issues/?query={q}"),
                )
                .await;
            body.as_array().cloned().unwrap_or_default()
        }
    };
    let btc = s
        .eventually("BTC issue with both events", || async {
            let list = issues("trade.asset:BTC").await;
            (list.len() == 1 && list[0]["count"] == "2").then_some(list)
        })
        .await;
    let eth = issues("trade.asset:ETH").await;
    assert_eq!(eth.len(), 1, "a different asset is a different fingerprint");
    assert_ne!(btc[0]["id"], eth[0]["id"]);

    let id = btc[0]["id"].as_str().expect("id");
    let (_, latest) = s
        .api(&token, &format!("/api/0/issues/{id}/events/latest/"))
        .await;
    let tags: Vec<(String, String)> = latest["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default().to_owned(),
                t["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (key, value) in [
        ("trade.error_type", "OrderRejected"),
        ("trade.phase", "confirmation"),
        ("service", "trading"),
        ("agent_id", "ag_e2e"),
        ("platform", "purple_flea"),
        ("strategy", "momentum"),
    ] {
        assert!(
            tags.contains(&(key.to_owned(), value.to_owned())),
            "{key}={value} missing from {tags:?}"
        );
    }

    let txs = s
        .eventually("the order pipeline transaction", || async {
            let (_, body) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/transactions/?statsPeriod=1h",
                )
                .await;
            let rows = body["data"].as_array().cloned().unwrap_or_default();
            (!rows.is_empty()).then_some(rows)
        })
        .await;
    assert_eq!(txs[0]["name"], "Order Pipeline: BTC buy");
    assert_eq!(txs[0]["op"], "order.pipeline");

    let monitor = |slug: &'static str| {
        let (s, token) = (&s, &token);
        async move {
            let (status, m) = s
                .api(
                    token,
                    &format!("/api/0/organizations/default/monitors/{slug}/"),
                )
                .await;
            (status == 200 && m["environments"][0]["status"] == "ok").then_some(m)
        }
    };
    let heartbeat = s
        .eventually("heartbeat monitor", || monitor("agent-ag_e2e-heartbeat"))
        .await;
    assert_eq!(heartbeat["config"]["schedule_type"], "interval");
    let cron = s
        .eventually("cron monitor", || monitor("settle-escrows"))
        .await;
    assert_eq!(cron["config"]["schedule_type"], "crontab");
    assert_eq!(cron["config"]["schedule"], "*/10 * * * *");

    let health = s
        .eventually("the agents' sessions", || async {
            let (_, h) = s
                .api(
                    &token,
                    "/api/0/projects/default/default/releases/health/?statsPeriod=1h",
                )
                .await;
            let rows = h["data"].as_array().cloned().unwrap_or_default();
            rows.into_iter()
                .find(|r| r["release"] == "e2e-bot@1.2.3" && r["sessions"] == 3)
        })
        .await;
    // By hand: three sessions of three agents, one crashed.
    assert_eq!(health["environment"], "paper");
    assert_eq!(health["sessionsCrashed"], 1);
    assert_eq!(health["users"], 3);
    let crash_free = health["crashFreeSessions"].as_f64().expect("rate");
    assert!((crash_free - 200.0 / 3.0).abs() < 1e-9, "{crash_free}");
    let crash_free_users = health["crashFreeUsers"].as_f64().expect("rate");
    assert!(
        (crash_free_users - 200.0 / 3.0).abs() < 1e-9,
        "{crash_free_users}"
    );
}

/// A webhook channel `kill-switch` on `s`, delivering to a local receiver: every
/// notification body, in order.
async fn kill_switch_webhook(
    s: &TestServer,
) -> std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> {
    let (url, hooks) = webhook_receiver().await;
    s.api_client(&s.token())
        .post(
            "/api/0/organizations/default/integrations/",
            &serde_json::json!({"provider": "webhook", "name": "kill-switch", "config": {"url": url}}),
        )
        .await
        .expect(201);
    hooks
}

/// A local HTTP receiver standing in for a webhook consumer: every POST body, in order.
async fn webhook_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                store.lock().unwrap().push(value);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Run `f` on a fresh agent hub of this release against the server, then flush.
async fn as_agent(dsn: String, agent: &'static str, f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(move || {
        let hub = Options::new(agent)
            .dsn(dsn)
            .release("crashy-bot@2.0.0")
            .environment("paper")
            .hub();
        sentry::Hub::run(hub.clone(), f);
        assert!(
            hub.client()
                .expect("client")
                .flush(Some(Duration::from_secs(10)))
        );
    })
    .await
    .expect("agent thread");
}

fn panic_event() -> sentry::protocol::Event<'static> {
    let mut event = sentry::protocol::Event {
        level: sentry::Level::Fatal,
        ..Default::default()
    };
    event.exception.values.push(sentry::protocol::Exception {
        ty: "panic".into(),
        value: Some("called `Option::unwrap()` on a `None` value".into()),
        mechanism: Some(sentry::protocol::Mechanism {
            ty: "panic".into(),
            handled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    });
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_down_preset_fires_for_a_crashed_rust_agent_and_a_restart_resolves_it() {
    let s = TestServer::start_manual().await;
    let hooks = kill_switch_webhook(&s).await;

    // The agent crashes (its session ends crashed); another agent exits cleanly.
    as_agent(s.dsn(), "ag_crashy", || {
        let session = AgentSession::start("ag_crashy", HealthOptions::new().heartbeats(false));
        sentry::capture_event(panic_event());
        session.end();
    })
    .await;
    as_agent(s.dsn(), "ag_calm", || {
        AgentSession::start("ag_calm", HealthOptions::new().heartbeats(false)).end();
    })
    .await;
    s.eventually("both sessions digested", || async {
        let agents = s.agents();
        let ended = agents
            .iter()
            .filter(|a| matches!(a.session_status.as_deref(), Some("crashed" | "exited")))
            .count();
        (ended == 2).then_some(())
    })
    .await;
    let down = |needle: &'static str| {
        let hooks = Arc::clone(&hooks);
        move || {
            hooks
                .lock()
                .unwrap()
                .iter()
                .filter(|h| h.to_string().contains(needle))
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    let crashy = down("(agent ag_crashy)");
    // Inside the grace period nothing fires; 65 s after the crash with no restart, it does.
    s.server.clock.advance(30_000);
    s.server.tick().await;
    s.server.clock.advance(35_000);
    s.server.tick().await;
    let fired = s
        .eventually("agent-down notification", || async {
            let got = crashy();
            (!got.is_empty()).then_some(got)
        })
        .await;
    assert_eq!(fired[0]["action"], "triggered");
    assert_eq!(fired.len(), 1);
    assert!(
        down("(agent ag_calm)")().is_empty(),
        "a clean exit never alerts"
    );

    // The agent restarts: its new session resolves the alert.
    as_agent(s.dsn(), "ag_crashy", || {
        // The restarted agent's session is still running when the server sees it: its
        // first update travels with the first event.
        sentry::start_session();
        sentry::capture_message("back online", sentry::Level::Info);
    })
    .await;
    s.eventually("resolve notification", || async {
        s.server.tick().await;
        crashy()
            .iter()
            .any(|h| h["action"] == "resolved")
            .then_some(())
    })
    .await;
}

/// An agent is the same agent on every path: one whose session carries no user id, and one
/// whose author set a user id of their own, are both known by their `agent_id` tag, so a
/// crash reaches `agent_down` under that id (as their events and heartbeat monitor name it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_down_names_the_agent_whatever_its_user_id() {
    let s = TestServer::start_manual().await;
    let hooks = kill_switch_webhook(&s).await;

    as_agent(s.dsn(), "ag_nouser", || {
        // The session starts with no user on the scope: its updates carry no distinct id.
        sentry::configure_scope(|scope| scope.set_user(None));
        let session = AgentSession::start("ag_nouser", HealthOptions::new().heartbeats(false));
        sentry::capture_event(panic_event());
        session.end();
    })
    .await;
    as_agent(s.dsn(), "ag_ownuser", || {
        sentry::configure_scope(|scope| {
            scope.set_user(Some(sentry::User {
                id: Some("operator-7".into()),
                ..Default::default()
            }))
        });
        let session = AgentSession::start("ag_ownuser", HealthOptions::new().heartbeats(false));
        sentry::capture_event(panic_event());
        session.end();
    })
    .await;
    s.eventually("both agents' crashed sessions digested", || async {
        let agents = s.agents();
        let crashed = |id: &str| {
            agents
                .iter()
                .any(|a| a.agent_id == id && a.session_status.as_deref() == Some("crashed"))
        };
        (crashed("ag_nouser") && crashed("ag_ownuser")).then_some(())
    })
    .await;
    assert!(
        !s.agents().iter().any(|a| a.agent_id == "operator-7"),
        "a user id is not an agent"
    );

    s.server.clock.advance(65_000);
    s.server.tick().await;
    let fired = s
        .eventually("agent-down notifications for both agents", || async {
            let got: Vec<String> = hooks
                .lock()
                .unwrap()
                .iter()
                .map(|h| h.to_string())
                .collect();
            let has = |needle: &str| got.iter().any(|h| h.contains(needle));
            (has("(agent ag_nouser)") && has("(agent ag_ownuser)")).then_some(got)
        })
        .await;
    assert!(
        !fired.iter().any(|h| h.contains("operator-7")),
        "no alert names the user id: {fired:?}"
    );
}
