//! Issue 22, agents part, in a real browser (Debian's headless Chromium driven by
//! Playwright, `tests/ui/agents.py`) against a real server fed by the real agent library:
//! the overview says who is degraded and why, the agent page shows its timeline, open
//! issues and decisions, and both update in place: an error sent by the official Python SDK
//! while the page is open appears without a navigation, the scroll position kept.
//! Screenshots land in `target/ui-artifacts/agents/`.

mod common;

use std::time::Duration;

use common::TestServer;
use lookout_agent::breadcrumbs::{RiskCheck, Signal};
use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
};
use serde_json::Value;

const PASSWORD: &str = "agents-browser-password";

async fn drive(s: &TestServer) -> Value {
    common::drive_browser(
        s,
        common::BrowserRun {
            script: "agents",
            args: &[],
            password: PASSWORD,
            artifacts: "agents",
            env: &[("LOOKOUT_DSN", s.dsn())],
        },
    )
    .await
}

fn rejected(order_id: &str) -> TradingError {
    TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
        .with_trading("BTC", "buy", order_id, None)
        .with_phase(Phase::Confirmation)
        .with_http_status(400)
}

/// `n` order pipelines with their decision breadcrumbs; each fails at the order call when
/// `fail`.
fn pipelines(n: u32, fail: bool) {
    for i in 0..n {
        Signal::new("BTC", 2.0 + f64::from(i) / 10.0)
            .action("buy")
            .record();
        let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
        pipeline
            .stage(Stage::RiskCheck, |s| {
                s.risk_pass(true);
                RiskCheck::new("max_leverage", true, 3.0, 5.0).record();
                Ok(())
            })
            .expect("risk");
        let placed = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
            s.order_id(&format!("ord_{i}"));
            if fail {
                Err(rejected(&format!("ord_{i}")))
            } else {
                Ok(())
            }
        });
        pipeline.finish(if placed.is_ok() {
            Outcome::Filled
        } else {
            Outcome::ApiError
        });
    }
}

fn as_agent(dsn: &str, agent: &str, work: impl FnOnce()) {
    let hub = Options::new(agent)
        .dsn(dsn.to_owned())
        .strategy("vol-arb")
        .release(format!("{agent}@2.0.0"))
        .environment("paper")
        .traces_sample_rate(1.0)
        .hub();
    sentry::Hub::run(hub.clone(), work);
    let client = hub.client().expect("client");
    assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_who_is_in_trouble_and_watches_it_live() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        // ag_fail: a session that crashed, a restart, then every order fails.
        as_agent(&dsn, "ag_fail", || {
            AgentSession::start("ag_fail", HealthOptions::new().heartbeats(false))
                .end_with_status(sentry::protocol::SessionStatus::Crashed);
        });
        as_agent(&dsn, "ag_fail", || {
            let session = AgentSession::start("ag_fail", HealthOptions::new().heartbeats(false));
            pipelines(8, true);
            // Still running when the operator looks.
            std::mem::forget(session);
        });
        as_agent(&dsn, "ag_ok", || {
            let session = AgentSession::start("ag_ok", HealthOptions::new().heartbeats(false));
            pipelines(8, false);
            std::mem::forget(session);
        });
    })
    .await
    .expect("agents ran");
    s.eventually("both agents and their pipelines digested", || async {
        let agents = s.agents();
        let done = |id: &str, tx: i64| {
            agents.iter().any(|a| {
                a.agent_id == id
                    && a.transactions_1h == tx
                    && (a.open_issues > 0) == (id == "ag_fail")
            })
        };
        (agents.len() == 2 && done("ag_fail", 8) && done("ag_ok", 8)).then_some(())
    })
    .await;

    let seen = drive(&s).await;

    let overview = &seen["overview"];
    assert_eq!(
        overview["order"],
        serde_json::json!(["ag_fail", "ag_ok"]),
        "{seen}"
    );
    assert!(
        overview["ag_fail"]
            .as_str()
            .unwrap_or("")
            .contains("error rate 100 % over 1 h > 5 %"),
        "{seen}"
    );
    assert!(
        overview["ag_fail"]
            .as_str()
            .unwrap_or("")
            .starts_with("degraded"),
        "{seen}"
    );
    assert!(
        overview["ag_ok"]
            .as_str()
            .unwrap_or("")
            .starts_with("healthy")
    );
    let agent = &seen["agent_page"];
    let timeline = agent["timeline"].to_string();
    for entry in [
        "session started",
        "crashed",
        "restarted after a crash",
        "alert fired: Critical trade failure",
    ] {
        assert!(
            timeline.contains(entry),
            "{entry} on the timeline: {timeline}"
        );
    }
    // Newest first: the restart comes before the crash it followed.
    let entries: Vec<String> = agent["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let at = |needle: &str| entries.iter().position(|e| e.contains(needle));
    assert!(
        at("restarted after a crash") < at("\ncrashed"),
        "newest first: {entries:?}"
    );
    assert!(
        agent["issues"].to_string().contains("OrderRejected"),
        "{agent}"
    );
    let marks = agent["decision_marks"].to_string().to_lowercase();
    assert!(
        marks.contains("signal") && marks.contains("risk"),
        "{marks}"
    );
    assert!(
        agent["stages"].to_string().contains("http.client"),
        "{agent}"
    );
    // A zoomed chart stays zoomed when a live update redraws it.
    let zoom = &agent["zoom"];
    let span = |k: &str| zoom[k][1].as_f64().unwrap_or(0.0) - zoom[k][0].as_f64().unwrap_or(0.0);
    assert!(
        span("zoomed") < 0.6 * span("full"),
        "the drag zoomed in: {zoom}"
    );
    assert!(
        (zoom["after_live"][0].as_f64().unwrap_or(0.0) - zoom["zoomed"][0].as_f64().unwrap_or(1.0))
            .abs()
            < 1.0
            && (span("after_live") - span("zoomed")).abs() < 1.0,
        "the zoom survived the live update: {zoom}"
    );
    assert_eq!(
        zoom["same_host"], true,
        "the live update left the chart in place: {zoom}"
    );
    // Latency, throughput and error rate of the agent's stages, one series per stage.
    for chart in [
        "agent-stage-chart",
        "agent-throughput-chart",
        "agent-error-rate-chart",
    ] {
        let legend = agent["charts"][chart].to_string();
        assert!(
            legend.contains("order.pipeline") && legend.contains("http.client"),
            "{chart}: {legend}"
        );
    }
    let live = &seen["live"];
    assert_eq!(
        live["appeared"], true,
        "the new error appeared in place: {live}"
    );
    assert_eq!(live["navigations"], 1, "no navigation: {live}");
    assert_eq!(live["marker"], "still here", "{live}");
    assert_eq!(live["scroll_before"], live["scroll_after"], "{live}");
    assert!(
        live["scroll_before"].as_f64().unwrap_or(0.0) > 100.0,
        "{live}"
    );
    assert!(live["overview_appeared"] == true, "{live}");
    assert_eq!(seen["page_errors"], serde_json::json!([]));
}
