//! The web UI in a real browser: Debian's headless Chromium driven by Playwright (both
//! installed by `scripts/setup-test-env`), against a real server fed by the real agent
//! library. Screenshots land in `target/ui-artifacts/`.

mod common;

use std::time::Duration;

use common::TestServer;
use lookout_agent::breadcrumbs::{RiskCheck, Signal};
use lookout_agent::cron::CronMonitor;
use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::state::TradingSnapshot;
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
    capture_trading_error,
};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-test-password";

/// Run a mode of `tests/ui/driver.py`; its screenshots go to `target/ui-artifacts/<mode>`.
async fn drive(s: &TestServer, mode: &str, env: &[(&str, String)]) -> Value {
    common::drive_browser(
        s,
        common::BrowserRun {
            script: "driver",
            args: &[mode],
            password: PASSWORD,
            artifacts: mode,
            env,
        },
    )
    .await
}

fn rejected(asset: &str, order_id: &str) -> TradingError {
    TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
        .with_trading(asset, "buy", order_id, None)
        .with_phase(Phase::Confirmation)
        .with_http_status(400)
}

/// A trading agent's morning: pipelines through every stage, decision breadcrumbs, order
/// rejections on two assets, a cron job, a second agent that crashes.
async fn feed(s: &TestServer) {
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_ui")
            .dsn(dsn.clone())
            .strategy("vol-arb")
            .release("vol-arb@2.0.0")
            .environment("paper")
            .traces_sample_rate(1.0)
            .state_provider(|| {
                TradingSnapshot::new()
                    .asset("BTC")
                    .open_positions(2)
                    .portfolio_value_usd(10_250.5)
            })
            .hub();
        sentry::Hub::run(hub.clone(), || {
            let session = AgentSession::start("ag_ui", HealthOptions::new());
            session.tick();
            for i in 0..6u32 {
                Signal::new("BTC", 2.1 + f64::from(i) / 10.0)
                    .action("buy")
                    .record();
                let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
                pipeline
                    .stage(Stage::SignalValidate, |_| Ok(()))
                    .expect("signal");
                pipeline
                    .stage(Stage::RiskCheck, |s| {
                        s.risk_pass(true);
                        RiskCheck::new("max_leverage", true, 3.0, 5.0).record();
                        Ok(())
                    })
                    .expect("risk");
                pipeline
                    .stage(Stage::OrderSize, |s| {
                        s.size_usd(500.0);
                        Ok(())
                    })
                    .expect("size");
                let placed = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
                    std::thread::sleep(Duration::from_millis(2 + u64::from(i)));
                    s.order_id(&format!("ord_{i}"));
                    if i == 5 {
                        Err(rejected("BTC", &format!("ord_{i}")))
                    } else {
                        Ok(())
                    }
                });
                if placed.is_ok() {
                    pipeline
                        .stage(Stage::OrderConfirm, |s| {
                            s.fill_price(97_000.0);
                            Ok(())
                        })
                        .expect("confirm");
                    pipeline.finish(Outcome::Filled);
                } else {
                    pipeline.finish(Outcome::ApiError);
                }
            }
            capture_trading_error(&rejected("BTC", "ord_a"));
            capture_trading_error(&rejected("ETH", "ord_b"));
            let monitor = CronMonitor::interval(
                "recalibrate",
                1,
                sentry::protocol::MonitorIntervalUnit::Minute,
            )
            .expect("monitor");
            let done: Result<(), std::io::Error> = monitor.run(|| Ok(()));
            done.expect("job");
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
        drop(client);

        let hub = Options::new("ag_crash")
            .dsn(dsn)
            .strategy("casino-kelly")
            .release("kelly@0.3.1")
            .environment("paper")
            .hub();
        sentry::Hub::run(hub.clone(), || {
            let session = AgentSession::start("ag_crash", HealthOptions::new().heartbeats(false));
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
            sentry::capture_event(event);
            drop(session);
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
    })
    .await
    .expect("agents ran");
}

/// What the store holds so far, through its repositories.
struct Stored {
    agents: usize,
    crashed_agents: usize,
    issue_ids: Vec<i64>,
    events: i64,
    transactions: usize,
    incident_ids: Vec<i64>,
}

fn stored(s: &TestServer) -> Stored {
    let store = &s.server.store;
    let agents = s.agents();
    let reader = store.reader();
    let project = reader.project("default", "default").expect("project");
    let mut issues = reader
        .issues(project.id, &[], None, 10_000, 0)
        .expect("issues");
    issues.sort_by_key(|i| i.id);
    let alerts = store.alerts();
    let org = alerts.org_id("default").expect("org");
    let mut incident_ids: Vec<i64> = alerts
        .incidents(org, None, 10_000)
        .expect("incidents")
        .iter()
        .map(|i| i.id)
        .collect();
    incident_ids.sort_unstable();
    Stored {
        agents: agents.len(),
        crashed_agents: agents.iter().filter(|a| a.status == "crashed").count(),
        events: issues.iter().map(|i| i.times_seen).sum(),
        issue_ids: issues.iter().map(|i| i.id).collect(),
        transactions: reader
            .recent_transactions(project.id, 10_000)
            .expect("transactions")
            .len(),
        incident_ids,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_walks_every_page_in_a_real_browser() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    feed(&s).await;
    s.eventually("agents, issues, traces and the crash digested", || async {
        let now = stored(&s);
        (now.agents >= 2
            && now.issue_ids.len() >= 3
            && now.transactions >= 6
            && now.crashed_agents == 1)
            .then_some(())
    })
    .await;

    let seen = drive(&s, "walk", &[]).await;

    let agents = seen["agents"].as_object().expect("agents");
    assert!(
        // Its session ended cleanly: stopped, not in trouble.
        agents["ag_ui"]
            .as_str()
            .unwrap_or("")
            .starts_with("stopped"),
        "{agents:?}"
    );
    assert!(
        agents["ag_crash"]
            .as_str()
            .unwrap_or("")
            .starts_with("crashed"),
        "{agents:?}"
    );
    let btc = seen["btc_titles"].as_array().expect("btc titles");
    assert!(!btc.is_empty(), "{seen}");
    assert!(
        btc.len() < seen["issue_titles"].as_array().map_or(0, Vec::len),
        "the asset filter narrows the list: {seen}"
    );
    assert!(
        seen["detail_title"]
            .as_str()
            .unwrap_or("")
            .contains("OrderRejected"),
        "{seen}"
    );
    let trading = seen["trading_context"].as_str().unwrap_or("");
    assert!(
        // Numbers for reading: grouped thousands (the sent value stays in the tooltip).
        trading.contains("portfolio_value_usd") && trading.contains("10,250.5"),
        "{trading}"
    );
    let marks: Vec<String> = seen["breadcrumb_marks"]
        .as_array()
        .expect("marks")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_lowercase)
        .collect();
    for kind in ["signal", "risk"] {
        assert!(
            marks.iter().any(|m| m == kind),
            "a {kind} mark on the timeline: {marks:?}"
        );
    }
    let tag_keys = seen["tag_keys"].to_string();
    for key in ["trade.asset", "trade.phase", "agent_id"] {
        assert!(
            tag_keys.contains(key),
            "{key} distribution shown: {tag_keys}"
        );
    }
    // Resolved in the browser = resolved in the store.
    let issue_id: i64 = seen["resolved_url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .expect("issue id in the URL");
    assert_eq!(
        s.server
            .store
            .reader()
            .issue(issue_id)
            .expect("issue")
            .status,
        "resolved"
    );
    // The charts: uPlot drew the pipeline and its stages at the page's full width; the
    // legend names them and shows values under the cursor; a drag zooms; a legend click
    // hides a series; a summary and a data table stand in for the canvas.
    let chart = &seen["chart"];
    let (width, main_width) = (
        chart["width"].as_f64().unwrap_or(0.0),
        chart["main_width"].as_f64().unwrap_or(1.0),
    );
    assert!(width > 0.85 * main_width, "full width: {chart}");
    let legend = chart["legend"].to_string();
    for op in ["order.pipeline", "risk.check", "http.client"] {
        assert!(legend.contains(op), "{op} in the legend: {legend}");
    }
    let values: Vec<String> = serde_json::from_value(chart["hover_values"].clone()).unwrap();
    assert!(
        values
            .iter()
            .any(|v| v.ends_with(" ms") || v.ends_with(" s")),
        "hover values with units: {values:?}"
    );
    assert!(
        values.iter().any(|v| v.ends_with("UTC")),
        "the hovered time, in UTC: {values:?}"
    );
    let span = |k: &str| {
        let v = &chart[k];
        v[1].as_f64().unwrap_or(0.0) - v[0].as_f64().unwrap_or(0.0)
    };
    assert!(
        span("x_zoomed") > 0.0 && span("x_zoomed") < 0.6 * span("x_before"),
        "a drag zooms in: {chart}"
    );
    assert_eq!(
        chart["risk_off"], true,
        "a legend click hides its series: {chart}"
    );
    assert!(
        chart["aria"]
            .as_str()
            .is_some_and(|a| a.contains("highest") && a.contains("series")),
        "{chart}"
    );
    assert!(chart["table_rows"].as_i64().unwrap_or(0) >= 1, "{chart}");
    assert_eq!(
        chart["others"],
        serde_json::json!([1, 1]),
        "throughput and error-rate charts: {chart}"
    );
    assert!(seen["transactions"].to_string().contains("order.pipeline"));
    // The waterfall: the pipeline and its stages, bars of visible width.
    let ops = seen["waterfall_ops"].to_string();
    for op in [
        "order.pipeline",
        "signal.validate",
        "risk.check",
        "http.client",
    ] {
        assert!(ops.contains(op), "{op} in the waterfall: {ops}");
    }
    assert!(
        seen["waterfall_bar_widths"]
            .as_array()
            .expect("bars")
            .iter()
            .all(|w| w.as_f64().unwrap_or(0.0) > 0.0)
    );
    assert!(seen["releases"].to_string().contains("vol-arb@2.0.0"));
    assert!(seen["releases"].to_string().contains("kelly@0.3.1"));
    let monitors = seen["monitors"].to_string();
    assert!(monitors.contains("recalibrate"), "{monitors}");
    assert!(monitors.contains("agent-ag_ui-heartbeat"), "{monitors}");
    assert!(seen["check_in_dots"].as_i64().unwrap_or(0) >= 2);
    // The seven presets are listed; the rule made in the page is stored and evaluated.
    assert_eq!(
        seen["rules_before"].as_array().map_or(0, Vec::len),
        7,
        "{seen}"
    );
    assert!(
        seen["rules_after"]
            .to_string()
            .contains("BTC pipeline p95 over 1.5 s")
    );
    let token = s.token();
    let (status, rules) = s
        .api(&token, "/api/0/organizations/default/alert-rules/")
        .await;
    assert_eq!(status, 200);
    let made = rules
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["name"] == "BTC pipeline p95 over 1.5 s")
        .cloned()
        .expect("the rule made in the browser is served by the API");
    assert_eq!(made["aggregate"], "p95(transaction.duration)");
    assert_eq!(made["timeWindow"], 10);
    assert_eq!(
        seen["edit_prefilled"],
        json!({"name": "BTC pipeline p95 over 1.5 s", "aggregate": "p95(transaction.duration)", "threshold": "1500"})
    );
    assert_eq!(
        made["triggers"][0]["alertThreshold"].as_f64(),
        Some(1800.0),
        "the edit made in the page is stored: {made}"
    );
    assert_eq!(seen["preset_aggregate"], "error_rate()");
    assert!(
        seen["form_error"]
            .as_str()
            .unwrap_or("")
            .contains("aggregate"),
        "{seen}"
    );
    // The token created in the page works against the API.
    let created = seen["token"].as_str().expect("token").trim().to_owned();
    let (status, _) = s
        .api(&created, "/api/0/projects/default/default/issues/")
        .await;
    assert_eq!(status, 200);
    assert!(
        seen["after_logout"]
            .as_str()
            .unwrap_or("")
            .contains("/login")
    );
    assert_eq!(
        seen["page_errors"],
        json!([]),
        "no script error on any page"
    );
}

/// Everything in an event is attacker-controlled. Events whose every field carries markup,
/// `javascript:` URLs, quote breakouts and megabyte strings are stored, then every page is
/// opened in the browser: nothing executes, no element or handler comes from the data, and
/// every page still renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_content_stays_inert_on_every_page() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let xss = [
        "<script>window.__pwned=true</script>",
        "<img src=x onerror=\"window.__pwned=true\">",
        "\"><svg onload=window.__pwned=true>",
        "'><iframe src=javascript:window.__pwned=true>",
        "javascript:window.__pwned=true",
    ];
    let all = xss.join(" ");
    let big = format!("{}{}", "A".repeat(1_000_000), xss[0]);
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let client = reqwest::Client::new();
    for (i, x) in xss.iter().enumerate() {
        let event = json!({
            "event_id": format!("{:032x}", i + 1),
            "level": "error",
            "platform": "rust",
            "release": format!("bot@1.{i}{x}"),
            "environment": "paper",
            "message": if i == 0 { big.clone() } else { format!("{x} {all}") },
            "transaction": x,
            "user": {"id": format!("agent{i}{x}")},
            "tags": {"agent_id": format!("ag{i}{x}"), "trade.asset": x, "trade.error_type": "OrderRejected",
                     "strategy": x, x.to_string(): x},
            "exception": {"values": [{
                "type": format!("OrderRejected{x}"),
                "value": all,
                "stacktrace": {"frames": [{"function": x, "module": x, "filename": x, "lineno": 7,
                                           "context_line": all, "in_app": true, "vars": {"k": x}}]}
            }]},
            "breadcrumbs": {"values": [
                {"category": x, "message": all, "data": {x.to_string(): x, "url": "javascript:window.__pwned=true"}, "level": x},
                {"category": "trade.signal", "message": if i == 1 { big.clone() } else { x.to_string() }, "type": "http"}
            ]},
            "contexts": {"trading": {"asset": x, x.to_string(): all}, x.to_string(): {"k": x}},
            "request": {"url": "javascript:window.__pwned=true", "method": x},
        });
        let payload = serde_json::to_vec(&event).expect("json");
        let mut env = format!(
            "{{\"event_id\":\"{:032x}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
            i + 1,
            payload.len()
        )
        .into_bytes();
        env.extend_from_slice(&payload);
        env.push(b'\n');
        s.post_envelope(&client, env).await;
    }
    // A transaction whose names and span descriptions are markup.
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let tx = json!({
        "event_id": "f".repeat(32), "type": "transaction", "transaction": all, "platform": "rust",
        "start_timestamp": now - 1.0, "timestamp": now,
        "release": format!("bot@9{}", xss[1]),
        "tags": {"agent_id": xss[2]},
        "contexts": {"trace": {"trace_id": trace_id, "span_id": "a".repeat(16), "op": xss[0], "status": xss[1]}},
        "spans": [{"trace_id": trace_id, "span_id": "b".repeat(16), "parent_span_id": "a".repeat(16),
                   "op": xss[2], "description": all, "start_timestamp": now - 0.9, "timestamp": now - 0.2,
                   "status": xss[3], "data": {x0(): all}}],
    });
    let payload = serde_json::to_vec(&tx).expect("json");
    let mut env = format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"transaction\",\"length\":{}}}\n",
        "f".repeat(32),
        payload.len()
    )
    .into_bytes();
    env.extend_from_slice(&payload);
    env.push(b'\n');
    s.post_envelope(&client, env).await;

    s.eventually("hostile events digested and an incident opened", || async {
        let now = stored(&s);
        (now.events >= 5 && now.transactions == 1 && !now.incident_ids.is_empty()).then_some(())
    })
    .await;
    let now = stored(&s);
    let issue_ids = now.issue_ids;
    let incident: i64 = now.incident_ids[0];
    let mut pages: Vec<String> = [
        "/",
        "/issues",
        "/issues?status=all",
        "/issues?status=all&query=%3Cscript%3Ewindow.__pwned%3Dtrue%3C%2Fscript%3E",
        "/performance?period=24h",
        "/releases",
        "/crons",
        "/alerts",
        "/settings",
        "/alerts/rules/new?kind=issue",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    pages.push(format!("/performance/traces/{trace_id}"));
    pages.push(format!("/alerts/incidents/{incident}"));
    for id in &issue_ids {
        pages.push(format!("/issues/{id}"));
    }
    let seen = drive(&s, "hostile", &[("LOOKOUT_PAGES", pages.join("\n"))]).await;

    assert_eq!(seen["_dialogs"], json!([]), "no dialog opened");
    for page in &pages {
        let r = &seen[page.as_str()];
        assert_eq!(r["status"], 200, "{page}: {r}");
        assert_eq!(r["pwned"], false, "{page}: script ran: {r}");
        assert_eq!(
            r["bad"],
            json!([]),
            "{page}: markup from the data became elements: {r}"
        );
        assert!(r["h1"].is_string(), "{page} rendered: {r}");
    }
    for id in &issue_ids {
        let r = &seen[format!("/issues/{id}").as_str()];
        assert_eq!(
            r["escaped_script_text"], true,
            "the markup shows as text on issue {id}: {r}"
        );
    }
    assert_eq!(seen["_page_errors"], json!([]));
}

fn x0() -> String {
    "\"><b onmouseover=window.__pwned=true>".to_owned()
}

/// Password guessing through the login form in a real browser: five wrong guesses are
/// answered as usual, then the form answers 429 with `Retry-After` and says how long to wait
/// (even to the right password), and the owner gets in once the delay has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_in_the_browser_is_locked_out_then_the_owner_gets_in() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let seen = drive(&s, "lockout", &[]).await;
    let guesses = seen["guesses"].as_array().expect("guesses");
    for (n, g) in guesses.iter().take(5).enumerate() {
        assert_eq!(g["wrong"], true, "guess {n} is answered as usual: {g}");
        assert!(g["locked"].is_null(), "guess {n}: {g}");
    }
    let sixth = &guesses[5];
    assert_eq!(sixth["status"], 429, "{sixth}");
    assert_eq!(sixth["retry_after"], "1", "{sixth}");
    assert!(
        sixth["locked"]
            .as_str()
            .is_some_and(|t| t.contains("Too many failed logins")),
        "{sixth}"
    );
    assert_eq!(
        seen["owner_during_lock"], 429,
        "even the right password waits out the lock: {seen}"
    );
    let attempts = seen["owner_attempts"].as_array().expect("attempts");
    assert!(
        attempts.last() != Some(&Value::from(429)),
        "the owner got in: {attempts:?}"
    );
    assert_eq!(seen["logged_in"], true, "{seen}");
    assert_eq!(
        seen["final_url"].as_str().map(|u| u.trim_end_matches('/')),
        Some(s.server.base_url().trim_end_matches('/')),
        "{seen}"
    );
}
