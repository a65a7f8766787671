//! Issue 22, point 6, in a real browser (Debian's headless Chromium driven by Playwright,
//! `tests/ui/live.py`) against a real server fed by the official Python SDK: the performance
//! page, the issues list and an issue's header, a release, the crons list and a monitor, the
//! alerts list and an incident each show data sent while they are open without a navigation,
//! keeping the scroll position, the focus and typed text, open `<details>`, and a chart's zoom,
//! hidden series and hover (the chart takes the new data; it is not drawn again).
//! Screenshots land in `target/ui-artifacts/live/`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::TestServer;
use serde_json::{Value, json};

const PASSWORD: &str = "live-browser-password";
const RELEASE: &str = "live-bot@1.0.0";
const MONITOR: &str = "live-rebalance";

/// What the server holds before the browser opens: three order pipelines, an error, a
/// check-in with its monitor's schedule, all from the official Python SDK.
const FEED: &str = r#"
import os, time, sentry_sdk
from sentry_sdk.crons import capture_checkin

sentry_sdk.init(dsn=os.environ["DSN"], release=os.environ["RELEASE"], environment="paper",
                traces_sample_rate=1.0, default_integrations=False)
for _ in range(3):
    with sentry_sdk.start_transaction(op="order.pipeline", name="Order Pipeline: BTC buy"):
        for op in ["signal.validate", "risk.check", "order.size", "http.client", "order.confirm"]:
            with sentry_sdk.start_span(op=op, name=op):
                time.sleep(0.003)
sentry_sdk.capture_message("Live: stale price feed", level="error")
capture_checkin(
    monitor_slug=os.environ["MONITOR"],
    status="ok",
    monitor_config={"schedule": {"type": "interval", "value": 5, "unit": "minute"},
                    "checkin_margin": 5, "max_runtime": 10},
)
sentry_sdk.flush(10)
"#;

/// A webhook receiver that answers 503 until `POST <gate>` opens it, then 200: a delivery
/// waits, pending, until the browser script lets it through.
async fn gated_receiver() -> (String, String) {
    let open = Arc::new(AtomicBool::new(false));
    let (hook, gate) = (Arc::clone(&open), Arc::clone(&open));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(move || {
                let open = Arc::clone(&hook);
                async move {
                    if open.load(Ordering::SeqCst) {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
        .route(
            "/gate",
            axum::routing::post(move || {
                gate.store(true, Ordering::SeqCst);
                async { "open" }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), format!("http://{addr}/gate"))
}

/// Asserts what every page family must keep through its update.
#[track_caller]
fn kept_in_place(what: &str, v: &Value) {
    assert_eq!(v["navigations"], 1, "{what}: no navigation: {v}");
    assert_eq!(v["marker"], "still here", "{what}: {v}");
    assert!(
        v["scroll_before"].as_f64().unwrap_or(0.0) > 0.0,
        "{what}: the page was scrolled: {v}"
    );
    assert_eq!(
        v["scroll_before"], v["scroll_after"],
        "{what}: scroll kept: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_new_data_in_place() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let (hook, gate) = gated_receiver().await;
    s.api_client(&s.token())
        .post(
            "/api/0/organizations/default/integrations/",
            &json!({"provider": "webhook", "name": "desk", "config": {"url": hook}}),
        )
        .await
        .expect(201);
    common::run_python(
        FEED,
        &[
            ("DSN", s.dsn()),
            ("RELEASE", RELEASE.into()),
            ("MONITOR", MONITOR.into()),
        ],
    )
    .await;
    let reader = s.server.store.reader();
    let pid = s.project_id();
    s.eventually("the feed digested", || async {
        let tx = reader.recent_transactions(pid, 10).ok()?.len();
        let issues = reader
            .issues_first_seen_in("default", RELEASE, 10)
            .ok()?
            .len();
        let checks = s
            .server
            .store
            .monitors()
            .check_ins("default", MONITOR, 10)
            .ok()?
            .len();
        (tx == 3 && issues == 1 && checks == 1).then_some(())
    })
    .await;

    let seen = common::drive_browser(
        &s,
        common::BrowserRun {
            script: "live",
            args: &[],
            password: PASSWORD,
            artifacts: "live",
            env: &[
                ("LOOKOUT_DSN", s.dsn()),
                ("LOOKOUT_RELEASE", RELEASE.into()),
                ("LOOKOUT_MONITOR", MONITOR.into()),
                ("LOOKOUT_GATE", gate),
            ],
        },
    )
    .await;

    // Performance: the chart took the new data (setData), as it was left.
    let perf = &seen["performance"];
    kept_in_place("performance", perf);
    assert_eq!(
        perf["count_after"].as_i64(),
        perf["count_before"].as_i64().map(|n| n + 2),
        "{perf}"
    );
    assert_eq!(
        perf["same_plot"], true,
        "the chart was not drawn again: {perf}"
    );
    assert_eq!(perf["same_canvas"], true, "{perf}");
    assert_eq!(perf["plots"], 1, "{perf}");
    let span = |v: &Value| v[1].as_f64().unwrap_or(0.0) - v[0].as_f64().unwrap_or(0.0);
    assert!(
        span(&perf["zoomed"]) < 0.8 * span(&perf["full"]),
        "the drag zoomed in: {perf}"
    );
    for i in 0..2 {
        let (a, b) = (&perf["zoomed"][i], &perf["scale"][i]);
        assert!(
            (a.as_f64().unwrap_or(0.0) - b.as_f64().unwrap_or(1e9)).abs() < 1.0,
            "the zoom survived the update: {perf}"
        );
    }
    assert_eq!(perf["hidden"], json!(["risk.check"]), "{perf}");
    assert_eq!(perf["risk_off_class"], true, "{perf}");
    assert_eq!(perf["hovering"], true, "{perf}");
    assert_eq!(perf["details_open"], true, "{perf}");
    assert_eq!(perf["focus"], "period", "{perf}");
    assert_ne!(
        perf["chosen"], "1h",
        "the keyboard changed the menu: {perf}"
    );
    assert_eq!(perf["period"], perf["chosen"], "{perf}");

    // The issues list: a new issue, the search box as typed and focused.
    let list = &seen["issues"];
    kept_in_place("issues", list);
    assert_eq!(list["typed"], "stale pri", "{list}");
    assert_eq!(list["focus"], "query", "{list}");

    // The issue's header counts the new event; the focus stays on Resolve.
    let issue = &seen["issue"];
    kept_in_place("issue", issue);
    assert!(
        issue["counts_before"]
            .as_str()
            .is_some_and(|t| t.starts_with("1 events"))
            && issue["counts_after"]
                .as_str()
                .is_some_and(|t| t.starts_with("2 events")),
        "{issue}"
    );
    assert_eq!(issue["focus"], "resolve", "{issue}");

    // The release: the new issue first seen in it, the page still scrolled.
    let release = &seen["release"];
    kept_in_place("release", release);
    assert!(
        release["new_issues"]
            .to_string()
            .contains("Live: release regression"),
        "{release}"
    );

    // Crons: one more dot in the list, one more row (the failed one, newest first) on its page.
    let crons = &seen["crons"];
    kept_in_place("crons list", &crons["list"]);
    kept_in_place("monitor", &crons["monitor"]);
    assert_eq!(
        crons["list"]["dots_after"].as_i64(),
        crons["list"]["dots_before"].as_i64().map(|n| n + 1),
        "{crons}"
    );
    assert_eq!(
        crons["monitor"]["rows_after"].as_i64(),
        crons["monitor"]["rows_before"].as_i64().map(|n| n + 1),
        "{crons}"
    );
    assert!(
        crons["monitor"]["newest"]
            .as_str()
            .is_some_and(|t| t.contains("error")),
        "{crons}"
    );

    // Alerts: the incident appears; its delivery goes from pending to delivered in place.
    let alerts = &seen["alerts"];
    kept_in_place("alerts", &alerts["list"]);
    kept_in_place("incident", &alerts["incident"]);
    assert!(
        alerts["list"]["deliveries"].as_i64().unwrap_or(0) >= 1,
        "{alerts}"
    );
    let incident = &alerts["incident"];
    assert!(
        incident["before"]
            .as_str()
            .is_some_and(|t| t.contains("pending") && !t.contains("delivered")),
        "{incident}"
    );
    assert!(
        incident["after"]
            .as_str()
            .is_some_and(|t| t.contains("delivered")),
        "{incident}"
    );
    assert_eq!(seen["page_errors"], json!([]), "{seen}");
}
