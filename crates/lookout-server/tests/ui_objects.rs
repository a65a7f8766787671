//! Every object has a page and a link, and the issue page shows the cause first: a real
//! server fed by the official Python `sentry-sdk` (an error with library and application
//! frames, 100+ breadcrumbs with a failing HTTP call, inside a traced order pipeline, check-ins,
//! a session) and by the real agent library (trading errors split by asset), a deploy through
//! the REST API, then Debian's headless Chromium driven by Playwright
//! (`tests/ui/objects.py`). Screenshots land in `target/ui-artifacts/objects/`.

mod common;

use std::time::Duration;

use common::TestServer;
use lookout_agent::{Options, Phase, TradingError, TradingErrorKind, capture_trading_error};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-test-password";
const RELEASE: &str = "py-agent@3.1.0";
const MONITOR: &str = "rebalance";

/// The agent's own code: a package the SDK is told is in-app, calling into the standard
/// library (`json`), whose frames are not.
const AGENT_PIPELINE: &str = r#"
import json


def parse_fill(body):
    return json.loads(body)


def place_order(body):
    fill = parse_fill(body)
    return fill["price"]
"#;

const SCRIPT: &str = r#"
import os, time, sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.crons.consts import MonitorStatus
from agent_app import pipeline

sentry_sdk.init(
    dsn=os.environ["DSN"],
    release=os.environ["RELEASE"],
    environment="production",
    traces_sample_rate=1.0,
    max_breadcrumbs=200,
    in_app_include=["agent_app"],
)
scope = sentry_sdk.get_isolation_scope()
scope.start_session()

categories = ["trade.signal", "trade.risk", "http", "trade.position"]
for i in range(110):
    cat = categories[i % len(categories)]
    data = {"method": "GET", "url": "https://api.example.test/v1/markets", "status_code": 200} if cat == "http" else {"i": i}
    sentry_sdk.add_breadcrumb(category=cat, type="http" if cat == "http" else "default", message="crumb %d" % i, data=data)
sentry_sdk.add_breadcrumb(
    category="http", type="http", level="error", message="POST /v1/trade/open -> 400",
    data={"method": "POST", "url": "https://api.example.test/v1/trade/open", "status_code": 400},
)
sentry_sdk.add_breadcrumb(category="trade.signal", message="crumb last", data={"z": 2.5})

sentry_sdk.set_context("trading", {
    "asset": "BTC",
    "last_price": 97123.456789123,
    "portfolio_value_usd": 10250.123456789,
    "drawdown_pct": 3.14159265,
    "open_positions": 2,
    "signal_z": 0.000123456789,
})
sentry_sdk.set_tag("http.status_code", "400")
with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy"):
    for op in ["signal.validate", "risk.check", "order.size"]:
        with sentry_sdk.start_span(op=op, name=op):
            time.sleep(0.003)
    with sentry_sdk.start_span(op="http.client", name="POST /v1/trade/open") as span:
        time.sleep(0.003)
        span.set_status("invalid_argument")
        try:
            pipeline.place_order("{not json")
        except ValueError:
            sentry_sdk.capture_exception()

for status, duration in [(MonitorStatus.OK, 2.0), (MonitorStatus.OK, 2.5), (MonitorStatus.ERROR, 1.5)]:
    capture_checkin(
        monitor_slug=os.environ["MONITOR"], status=status, duration=duration,
        monitor_config={"schedule": {"type": "interval", "value": 5, "unit": "minute"}, "checkin_margin": 2, "max_runtime": 10},
    )
    time.sleep(0.02)
scope.end_session()
sentry_sdk.flush(timeout=10)
print("sent")
"#;

/// The Python agent: its package written beside the script, run with the venv's Python.
async fn run_python_agent(s: &TestServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pkg = dir.path().join("agent_app");
    std::fs::create_dir(&pkg).expect("package dir");
    std::fs::write(pkg.join("__init__.py"), "").expect("init");
    std::fs::write(pkg.join("pipeline.py"), AGENT_PIPELINE).expect("pipeline");
    let script = dir.path().join("agent.py");
    std::fs::write(&script, SCRIPT).expect("script");
    let out = tokio::process::Command::new(common::python())
        .arg(&script)
        .current_dir(dir.path())
        .env("PYTHONPATH", dir.path())
        .env("DSN", s.dsn())
        .env("RELEASE", RELEASE)
        .env("MONITOR", MONITOR)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("sent"),
        "python agent failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Rust agent: the same rejection on two assets, which its fingerprint keeps apart.
async fn run_rust_agent(s: &TestServer) {
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_chips")
            .dsn(dsn)
            .strategy("vol-arb")
            .release("vol-arb@2.0.0")
            .environment("paper")
            .hub();
        sentry::Hub::run(hub.clone(), || {
            for (asset, order) in [("BTC", "ord_a"), ("ETH", "ord_b")] {
                capture_trading_error(
                    &TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
                        .with_trading(asset, "buy", order, None)
                        .with_phase(Phase::Confirmation)
                        .with_http_status(400),
                );
            }
        });
        let client = hub.client().expect("client");
        assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
    })
    .await
    .expect("agent ran");
}

async fn drive(s: &TestServer, env: &[(&str, String)]) -> Value {
    common::drive_browser(
        s,
        common::BrowserRun {
            script: "objects",
            args: &[],
            password: PASSWORD,
            artifacts: "objects",
            env,
        },
    )
    .await
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_page_shows_the_cause_first_and_every_object_has_a_page() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    // The release and its deploy, as sentry-cli records them, through the REST API.
    let api = s.api_client(&s.token());
    api.post(
        "/api/0/organizations/default/releases/",
        &json!({"version": RELEASE, "projects": ["default"]}),
    )
    .await
    .expect(201);
    api.post(
        &format!("/api/0/organizations/default/releases/{RELEASE}/deploys/"),
        &json!({"environment": "production", "name": "deploy-42"}),
    )
    .await
    .expect(201);
    run_python_agent(&s).await;
    run_rust_agent(&s).await;

    let store = s.server.store.clone();
    let (issue_id, trace_id) = s
        .eventually(
            "the error, its trace, the check-ins and the trading errors digested",
            || {
                let store = store.clone();
                async move {
                    let reader = store.reader();
                    let project = reader.project("default", "default").ok()?;
                    let issues = reader.issues(project.id, &[], None, 100, 0).ok()?;
                    let py = issues
                        .iter()
                        .find(|i| i.title.contains("JSONDecodeError"))?;
                    let rejected = issues
                        .iter()
                        .filter(|i| i.title.contains("leverage above the cap"))
                        .count();
                    let event = reader.issue_events(py.id, 1, 0).ok()?.into_iter().next()?;
                    let trace = event.payload["contexts"]["trace"]["trace_id"]
                        .as_str()?
                        .to_owned();
                    let spans = reader.trace(project.id, &trace).ok()?;
                    let checks = store.monitors().check_ins("default", MONITOR, 10).ok()?;
                    (rejected == 2 && spans.len() >= 5 && checks.len() == 3)
                        .then_some((py.id, trace))
                }
            },
        )
        .await;

    let seen = drive(
        &s,
        &[
            ("LOOKOUT_ISSUE", format!("/issues/{issue_id}")),
            ("LOOKOUT_RELEASE", RELEASE.into()),
            ("LOOKOUT_MONITOR", MONITOR.into()),
        ],
    )
    .await;
    let show = serde_json::to_string_pretty(&seen).unwrap_or_default();

    // The exception with its frames: the agent's own shown, the standard library's folded.
    assert!(
        seen["exception"]
            .as_str()
            .unwrap_or("")
            .contains("JSONDecodeError"),
        "{show}"
    );
    let app = strings(&seen["app_frames"]);
    assert!(app.len() >= 2, "{show}");
    // Newest first: the frame that called into json comes before its caller.
    assert!(
        app[0].contains("parse_fill") && app.iter().any(|f| f.contains("place_order")),
        "{show}"
    );
    assert_eq!(seen["app_frames_visible"], true, "{show}");
    assert!(seen["lib_runs"].as_u64().unwrap_or(0) >= 1, "{show}");
    assert!(
        seen["lib_open"]
            .as_array()
            .is_some_and(|a| a.iter().all(|o| o == false)),
        "{show}"
    );
    assert_eq!(seen["lib_frames_visible_before"], 0, "{show}");
    assert!(
        seen["lib_frames_visible_after"].as_u64().unwrap_or(0) >= 1,
        "{show}"
    );
    // The cause is above the fold at 1400x900.
    for key in [
        "exception_bottom",
        "first_app_frame_bottom",
        "failing_summary_bottom",
    ] {
        let y = seen["fold"][key].as_f64().unwrap_or(f64::MAX);
        assert!(y <= 900.0, "{key} at {y} px, below the fold: {show}");
    }
    // Breadcrumbs: newest first, 20 shown, the other 92 behind one click.
    assert_eq!(seen["crumbs_shown"], 20, "{show}");
    assert!(
        seen["first_crumb"]
            .as_str()
            .unwrap_or("")
            .contains("crumb last"),
        "{show}"
    );
    assert!(
        seen["second_crumb"]
            .as_str()
            .unwrap_or("")
            .contains("POST /v1/trade/open -> 400"),
        "{show}"
    );
    assert_eq!(seen["older_total"], 112 - 20, "{show}");
    assert_eq!(seen["older_visible_before"], 0, "{show}");
    assert_eq!(seen["older_visible_after"], 92, "{show}");
    assert!(
        seen["last_crumb"]
            .as_str()
            .unwrap_or("")
            .contains("crumb 0"),
        "{show}"
    );
    // The failing HTTP call is marked, once, and summarised with the cause.
    assert_eq!(seen["failing_calls"], 1, "{show}");
    assert!(
        seen["failing_call"]
            .as_str()
            .unwrap_or("")
            .contains("failed call"),
        "{show}"
    );
    assert!(
        seen["failing_summary"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP 400"),
        "{show}"
    );
    // The category filter.
    assert_eq!(
        strings(&seen["filtered_categories"]),
        vec!["http".to_owned()],
        "{show}"
    );
    assert_eq!(seen["filtered_visible"], 20, "{show}");
    assert_eq!(seen["filtered_failing"], 1, "{show}");
    // Trading numbers for reading.
    let t = &seen["trading"];
    assert_eq!(t["last_price"], "97,123.46", "{show}");
    assert_eq!(t["portfolio_value_usd"], "10,250.12", "{show}");
    assert_eq!(t["drawdown_pct"], "3.14 %", "{show}");
    assert_eq!(t["open_positions"], "2", "{show}");
    assert_eq!(t["signal_z"], "0.000123457", "{show}");
    assert_eq!(seen["issue_768_overflow"], false, "{show}");

    // The trace: the spans in order on the ruler, statuses in their column, the error linked.
    let ops = strings(&seen["waterfall_ops"]);
    assert_eq!(
        ops,
        [
            "order.pipeline",
            "signal.validate",
            "risk.check",
            "order.size",
            "http.client"
        ],
        "{show}"
    );
    let lefts: Vec<f64> = seen["waterfall_lefts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    assert!(
        lefts.windows(2).all(|w| w[0] <= w[1] + 0.5),
        "bars start in order: {show}"
    );
    assert!(
        lefts.last() > lefts.get(1),
        "later stages start further right: {show}"
    );
    let statuses = strings(&seen["waterfall_status"]);
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("invalid_argument"),
        "{show}"
    );
    assert_eq!(statuses[1], "ok", "{show}");
    assert!(strings(&seen["ruler_ticks"]).len() >= 3, "{show}");
    assert!(
        strings(&seen["trace_errors"])
            .iter()
            .any(|e| e.contains("JSONDecodeError")),
        "{show}"
    );
    assert!(seen["error_marks"].as_u64().unwrap_or(0) >= 1, "{show}");
    assert!(
        seen["error_link_lands_on"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/issues/{issue_id}")),
        "{show}"
    );
    assert_eq!(seen["trace_768_overflow"], false, "{show}");
    let _ = trace_id;

    // The issues list tells the two rejections apart by asset and phase.
    let list = seen["list"].as_array().cloned().unwrap_or_default();
    let chips_of = |asset: &str| -> Vec<String> {
        list.iter()
            .filter(|r| {
                r["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("leverage above the cap"))
            })
            .map(|r| strings(&r["chips"]))
            .find(|c| c.iter().any(|x| x == &format!("asset {asset}")))
            .unwrap_or_default()
    };
    for asset in ["BTC", "ETH"] {
        let chips = chips_of(asset);
        assert!(
            chips.iter().any(|c| c == "phase confirmation"),
            "{asset}: {chips:?} {show}"
        );
    }

    // Performance → a transaction's latest runs → its trace.
    assert_eq!(
        seen["perf_transaction"], "Order Pipeline: BTC buy",
        "{show}"
    );
    assert!(
        strings(&seen["perf_recent_names"])
            .iter()
            .all(|n| n == "Order Pipeline: BTC buy"),
        "{show}"
    );
    assert_eq!(
        strings(&seen["perf_trace_ops"]).first().map(String::as_str),
        Some("order.pipeline"),
        "{show}"
    );

    // The release page: its deploy, its health, its new issue; linked from the issue.
    assert!(
        seen["release_url"]
            .as_str()
            .unwrap_or("")
            .contains("/releases/py-agent%403.1.0"),
        "{show}"
    );
    let deploys = strings(&seen["deploys"]);
    assert!(
        deploys.len() == 1 && deploys[0].contains("production") && deploys[0].contains("deploy-42"),
        "{show}"
    );
    assert!(
        strings(&seen["new_issues"])
            .iter()
            .any(|t| t.contains("JSONDecodeError")),
        "{show}"
    );
    assert_eq!(seen["crash_free"], "100.0 %", "{show}");
    // The list shows the same health: 1 session, 100 % crash free, 1 deploy, 1 new issue.
    let row = strings(&seen["release_row"]);
    assert_eq!(row.len(), 8, "{show}");
    assert_eq!(
        (
            row[3].as_str(),
            row[4].as_str(),
            row[5].as_str(),
            row[7].as_str()
        ),
        ("1", "1", "100.0 %", "1"),
        "{show}"
    );
    assert!(
        seen["adoption"]
            .as_str()
            .unwrap_or("")
            .starts_with("100.0 %"),
        "{show}"
    );
    assert_eq!(seen["release_from_issue"], seen["release_url"], "{show}");
    assert_eq!(seen["release_768_overflow"], false, "{show}");

    // The monitor page: schedule and check-ins newest first with durations and status.
    assert!(
        seen["monitor_url"]
            .as_str()
            .unwrap_or("")
            .ends_with("/crons/rebalance"),
        "{show}"
    );
    assert_eq!(seen["monitor_schedule"], "every 5 minutes", "{show}");
    let checks = seen["check_ins"].as_array().cloned().unwrap_or_default();
    assert_eq!(checks.len(), 3, "{show}");
    let cell = |r: usize, c: usize| checks[r][c].as_str().unwrap_or("").to_owned();
    assert_eq!(
        (cell(0, 1), cell(0, 2)),
        ("error".into(), "1.50 s".into()),
        "{show}"
    );
    assert_eq!(
        (cell(1, 1), cell(1, 2)),
        ("ok".into(), "2.50 s".into()),
        "{show}"
    );
    assert_eq!(
        (cell(2, 1), cell(2, 2)),
        ("ok".into(), "2.00 s".into()),
        "{show}"
    );
    assert_eq!(seen["monitor_768_overflow"], false, "{show}");

    // A release the agent library named (no deploy) has its page, with its two new issues.
    let sr = &seen["seen_release"];
    assert_eq!(sr["status"], 200, "{show}");
    assert_eq!(sr["title"], "Release vol-arb@2.0.0", "{show}");
    assert_eq!(sr["new_issues"], 2, "{show}");
    assert_eq!(sr["deploys"], 0, "{show}");

    // Unknown objects: a 404 inside the app, its navigation kept.
    for (path, page) in seen["missing"].as_object().cloned().unwrap_or_default() {
        assert_eq!(page["status"], 404, "{path}: {show}");
        assert_eq!(page["heading"], "Page not found", "{path}: {show}");
        assert!(page["nav"].as_u64().unwrap_or(0) >= 5, "{path}: {show}");
    }
    assert_eq!(
        seen["missing"].as_object().map(|m| m.len()),
        Some(5),
        "{show}"
    );
    assert_eq!(seen["page_errors"], json!([]), "{show}");
}
