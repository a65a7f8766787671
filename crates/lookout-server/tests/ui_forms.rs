//! Forms that guide and pages for everyone, in a real browser (Debian's Chromium through
//! Playwright) against a real server fed by the real agent library:
//!
//! - a channel, a metric rule, an issue rule and an API token made through the forms, wrong
//!   input first: the error beside its field, the input kept, nothing saved (`p99 > -5`,
//!   `trade.asset:` with its column); a reload after each creation repeats nothing (one
//!   token, counted in the store);
//! - the issue rule built with the form fires exactly as its JSON twin made through the API;
//!   its incident's page names the rule in words and the channel by name;
//! - unknown addresses are in-app 404 pages with the navigation; the API keeps JSON;
//! - axe-core on every page at 1400x900 and 768 px: no serious or critical violation, no
//!   header or badge broken inside a word, no page scrolling sideways.
//!
//! Screenshots land in `target/ui-artifacts/forms/` and `target/ui-artifacts/a11y/`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::TestServer;
use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
    capture_trading_error,
};
use serde_json::{Value, json};

const PASSWORD: &str = "forms-test-password";

/// Run `tests/ui/<script>.py <args>`; its screenshots go to `target/ui-artifacts/<script>`.
async fn drive(s: &TestServer, script: &str, args: &[&str], env: &[(&str, String)]) -> Value {
    common::drive_browser(
        s,
        common::BrowserRun {
            script,
            args,
            password: PASSWORD,
            artifacts: script,
            env,
        },
    )
    .await
}

/// A webhook receiver on an ephemeral port: answers 200 and counts the notifications.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("receiver");
    });
    (format!("http://{addr}/hook"), hits)
}

fn margin(asset: &str) -> TradingError {
    TradingError::new(
        TradingErrorKind::InsufficientMargin,
        "margin below maintenance",
    )
    .with_trading(asset, "buy", format!("ord_m_{asset}"), None)
    .with_phase(Phase::Sizing)
}

/// An agent's morning through the agent library: pipelines, an order rejection, a session.
async fn feed(s: &TestServer) {
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_forms")
            .dsn(dsn)
            .strategy("vol-arb")
            .release("vol-arb@2.0.0")
            .environment("paper")
            .traces_sample_rate(1.0)
            .hub();
        sentry::Hub::run(hub.clone(), || {
            let session = AgentSession::start("ag_forms", HealthOptions::new().heartbeats(false));
            for i in 0..4u32 {
                let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
                pipeline
                    .stage(Stage::SignalValidate, |_| Ok(()))
                    .expect("signal");
                pipeline
                    .stage(Stage::RiskCheck, |s| {
                        s.risk_pass(true);
                        Ok(())
                    })
                    .expect("risk");
                pipeline
                    .stage(Stage::http("POST", "/v1/trade/open"), |s| {
                        s.order_id(&format!("ord_{i}"));
                        Ok(())
                    })
                    .expect("open");
                pipeline.finish(Outcome::Filled);
            }
            capture_trading_error(
                &TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
                    .with_trading("ETH", "buy", "ord_x", None)
                    .with_phase(Phase::Confirmation),
            );
            // A cron job, so the monitor pages have one to show.
            let monitor = lookout_agent::cron::CronMonitor::interval(
                "forms-recalibrate",
                5,
                sentry::protocol::MonitorIntervalUnit::Minute,
            )
            .expect("monitor");
            let ran: Result<(), std::io::Error> = monitor.run(|| Ok(()));
            ran.expect("cron job");
            drop(session);
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
    })
    .await
    .expect("agent ran");
}

/// New issues, one per asset, through the agent library.
async fn margin_calls(s: &TestServer, assets: &[&'static str]) {
    let dsn = s.dsn();
    let assets = assets.to_vec();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_forms")
            .dsn(dsn)
            .release("vol-arb@2.0.0")
            .hub();
        sentry::Hub::run(hub.clone(), || {
            for a in assets {
                capture_trading_error(&margin(a));
            }
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
    })
    .await
    .expect("agent ran");
}

/// (rule name, issue title) of every incident.
fn incidents(s: &TestServer) -> Vec<(String, String)> {
    let alerts = s.server.store.alerts();
    let org = alerts.org_id("default").expect("org");
    alerts
        .incidents(org, None, 1000)
        .expect("incidents")
        .into_iter()
        .map(|i| (i.rule_name, i.title))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_guide_and_every_page_is_accessible() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    feed(&s).await;
    let reader = s.server.store.reader();
    s.eventually("the morning digested", || async {
        let project = reader.project("default", "default").ok()?;
        let issues = reader.issues(project.id, &[], None, 100, 0).ok()?;
        let txs = reader.recent_transactions(project.id, 100).ok()?;
        (!issues.is_empty() && txs.len() >= 4).then_some(())
    })
    .await;
    let (hook, hits) = receiver().await;
    let rules_before = {
        let alerts = s.server.store.alerts();
        let org = alerts.org_id("default").expect("org");
        alerts.rules(org, None, "metric").expect("rules").len()
            + alerts.rules(org, None, "issue").expect("rules").len()
    };

    let seen = drive(
        &s,
        "forms",
        &["forms"],
        &[("LOOKOUT_WEBHOOK", hook.clone())],
    )
    .await;

    // Wrong input is refused beside its field and saves nothing.
    let text = |k: &str| seen[k].as_str().unwrap_or_default().to_owned();
    assert!(text("channel_url_error").contains("https://"), "{seen}");
    assert!(text("threshold_error").contains("0 ms or more"), "{seen}");
    assert!(text("threshold_error").contains("-5"), "{seen}");
    assert_eq!(text("threshold_unit"), "ms", "{seen}");
    assert!(
        text("query_error").contains("expected a value after `trade.asset:` at column 12"),
        "{seen}"
    );
    assert_eq!(seen["rules_after_refusals"], 0, "{seen}");
    assert_eq!(
        seen["rules_after_metric"], 1,
        "one rule, even after a reload: {seen}"
    );
    assert!(text("actions_error").contains("where to send"), "{seen}");
    assert!(text("token_name_error").contains("name"), "{seen}");
    // Rules and channels in words.
    assert_eq!(seen["channels"], json!(["Webhook desk-hook"]), "{seen}");
    assert_eq!(
        text("metric_words"),
        "p99 of order.pipeline > 2 s over 5 min → Webhook desk-hook",
        "{seen}"
    );
    assert_eq!(
        text("issue_words"),
        "A new issue with trade.asset = BTC → Webhook desk-hook",
        "{seen}"
    );
    // Two rules were saved in all, and one token, shown once: the reload made no second.
    {
        let alerts = s.server.store.alerts();
        let org = alerts.org_id("default").expect("org");
        let after = alerts.rules(org, None, "metric").expect("rules").len()
            + alerts.rules(org, None, "issue").expect("rules").len();
        assert_eq!(after, rules_before + 2);
    }
    let tokens = s.server.store.users().tokens().expect("tokens");
    assert_eq!(
        tokens.iter().filter(|t| t.name == "ci-forms").count(),
        1,
        "{tokens:?}"
    );
    assert!(seen["token_shown"].as_u64().unwrap_or(0) >= 20, "{seen}");
    assert_eq!(seen["token_after_reload"], 0, "shown once: {seen}");
    assert_eq!(seen["token_rows"], 1, "{seen}");
    // In-app 404s with the navigation and the user.
    for key in ["nope", "issue_abc", "incident_missing"] {
        assert_eq!(seen[key]["status"], 404, "{key}: {seen}");
        assert_eq!(seen[key]["user"], 1, "{key}: the user is shown: {seen}");
    }
    // The REST API keeps its JSON errors.
    let res = reqwest::get(format!("{}/api/0/nope/", s.server.base_url()))
        .await
        .expect("api");
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.expect("JSON 404");
    assert!(body["detail"].is_string(), "{body}");

    // The form's rule, as the API reads it, and its twin made through the API from JSON.
    let api = s.api_client(&s.token());
    let form_rule = api
        .get(&format!(
            "/api/0/projects/default/default/rules/{}/",
            seen["issue_rule_id"]
        ))
        .await
        .expect(200);
    let mut twin = seen["issue_json"].clone();
    twin["name"] = json!("BTC via JSON");
    assert_eq!(twin["conditions"], form_rule["conditions"], "{form_rule}");
    api.post("/api/0/projects/default/default/rules/", &twin)
        .await
        .expect(201);

    // A new BTC issue fires both rules, a new ETH issue neither (sent first: the alert stage
    // reads in order, so it has judged ETH once the BTC incidents exist).
    margin_calls(&s, &["ETH", "BTC"]).await;
    let fired = s
        .eventually("both rules fired on the BTC issue", || async {
            let all = incidents(&s);
            let on = |rule: &str| all.iter().any(|(r, _)| r == rule);
            (on("BTC via form") && on("BTC via JSON")).then_some(all)
        })
        .await;
    // Titles read "<rule>: <issue>": the same issue for both.
    let of = |rule: &str| -> Vec<String> {
        fired
            .iter()
            .filter(|(r, _)| r == rule)
            .map(|(_, t)| t.trim_start_matches(&format!("{rule}: ")).to_owned())
            .collect()
    };
    assert_eq!(of("BTC via form").len(), 1, "{fired:?}");
    assert_eq!(of("BTC via JSON").len(), 1, "{fired:?}");
    assert_eq!(of("BTC via form"), of("BTC via JSON"), "{fired:?}");
    assert!(of("BTC via form")[0].contains("(BTC, sizing)"), "{fired:?}");
    s.eventually("both notifications delivered", || async {
        (hits.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;

    let page = drive(&s, "forms", &["incident"], &[]).await;
    let rule = page["rule"].as_str().unwrap_or_default();
    assert!(
        rule.contains("trade.asset = BTC → Webhook desk-hook"),
        "{page}"
    );
    assert_eq!(page["channels"], json!(["Webhook desk-hook"]), "{page}");
    assert_eq!(page["outcomes"], json!(["delivered"]), "{page}");
    assert!(
        page["resolved"]
            .as_str()
            .unwrap_or_default()
            .contains("an issue alert notifies once"),
        "{page}"
    );

    // Every page, for everyone.
    let a11y = drive(&s, "a11y", &[], &[]).await;
    assert!(
        a11y["checked"].as_array().map_or(0, Vec::len) >= 30,
        "{a11y}"
    );
}
