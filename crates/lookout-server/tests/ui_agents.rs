//! The agents overview's statuses on a manual clock: healthy, hung (heartbeat missed while
//! the session is open, or the watchdog's abnormal end), crashed, silent; read from the page
//! as an operator's browser gets it (the browser walk is in `ui_browser.rs`).

mod common;

use common::TestServer;
use lookout_agent::cron::CronMonitor;
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
    capture_trading_error,
};
use serde_json::{Value, json};
use std::time::Duration;

const PASSWORD: &str = "agents-page-password";

fn envelope(items: &[(&str, Value)]) -> Vec<u8> {
    let mut out = b"{}\n".to_vec();
    for (ty, payload) in items {
        let body = serde_json::to_vec(payload).expect("json");
        out.extend_from_slice(
            format!("{{\"type\":\"{ty}\",\"length\":{}}}\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(&body);
        out.push(b'\n');
    }
    out
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn session(did: &str, sid: &str, status: &str, init: bool, at: i64) -> (&'static str, Value) {
    (
        "session",
        json!({"sid": sid, "did": did, "status": status, "init": init, "errors": 0,
               "started": iso(at), "timestamp": iso(at),
               "attrs": {"release": "bot@1.0.0", "environment": "paper"}}),
    )
}

fn heartbeat(agent: &str) -> (&'static str, Value) {
    (
        "check_in",
        json!({"check_in_id": uuid::Uuid::new_v4().simple().to_string(), "monitor_slug": format!("agent-{agent}-heartbeat"), "status": "ok",
               "environment": "paper",
               "monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "minute"},
                                  "checkin_margin": 1, "max_runtime": 1}}),
    )
}

fn event(agent: &str, n: u32, at: i64) -> (&'static str, Value) {
    (
        "event",
        json!({"event_id": format!("{:032x}", n), "level": "error", "message": "boom",
               "timestamp": at as f64 / 1000.0, "release": "bot@1.0.0",
               "tags": {"agent_id": agent, "strategy": "grid"}}),
    )
}

/// `(agent, status)` of every row of the agents table, from the page's HTML.
async fn statuses(s: &TestServer, cookie: &str) -> Vec<(String, String)> {
    let html = reqwest::Client::new()
        .get(format!("{}/", s.server.base_url()))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    rows(&html)
        .into_iter()
        .map(|r| (r.agent, r.status))
        .collect()
}

/// One row of the agents table as the page shows it.
#[derive(Debug)]
struct Row {
    agent: String,
    status: String,
    /// The reasons listed under its status, as text.
    reasons: Vec<String>,
    /// The row's HTML.
    html: String,
}

fn unescape(s: &str) -> String {
    s.replace("&gt;", ">")
        .replace("&lt;", "<")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(out.trim())
}

/// The rows of the agents table, in page order.
fn rows(html: &str) -> Vec<Row> {
    html.split("<tr class=\"agent status-")
        .skip(1)
        .filter_map(|chunk| {
            let (status, rest) = chunk.split_once('"')?;
            let agent = rest.split("data-agent=\"").nth(1)?.split('"').next()?;
            let row = rest.split("</tr>").next()?;
            let reasons = row
                .split("<li class=\"reason")
                .skip(1)
                .filter_map(|li| {
                    let inner = li.split_once('>')?.1.split("</li>").next()?;
                    Some(strip_tags(inner))
                })
                .collect();
            Some(Row {
                agent: unescape(agent),
                status: status.to_owned(),
                reasons,
                html: row.to_owned(),
            })
        })
        .collect()
}

async fn page(s: &TestServer, cookie: &str, path: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", s.server.base_url()))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("page");
    let status = res.status().as_u16();
    (status, res.text().await.expect("html"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_tells_healthy_hung_crashed_and_silent_agents_apart() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let client = reqwest::Client::new();
    let cookie = common::ui_login(&s, PASSWORD).await;
    let t0 = s.server.clock.now_ms();
    // ag_beat: an open session and a heartbeat; ag_watch: the watchdog ended its session
    // abnormally; ag_crash: its session crashed; ag_quiet: only an event, long ago.
    s.post_envelope(
        &client,
        envelope(&[
            session("ag_beat", "a1", "ok", true, t0),
            heartbeat("ag_beat"),
        ]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_watch", "b1", "ok", true, t0)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_watch", "b1", "abnormal", false, t0 + 1)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_crash", "d1", "ok", true, t0)]),
    )
    .await;
    s.post_envelope(
        &client,
        envelope(&[session("ag_crash", "d1", "crashed", false, t0 + 1)]),
    )
    .await;
    s.post_envelope(&client, envelope(&[event("ag_quiet", 1, t0)]))
        .await;
    let want_now = [
        ("ag_beat", "healthy"),
        ("ag_crash", "crashed"),
        ("ag_quiet", "healthy"),
        ("ag_watch", "hung"),
    ];
    let mut seen = s
        .eventually("four agents on the page", || async {
            let rows = statuses(&s, &cookie).await;
            (rows.len() == 4).then_some(rows)
        })
        .await;
    seen.sort();
    let want: Vec<(String, String)> = want_now
        .iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect();
    assert_eq!(seen, want);

    // Eleven minutes on: ag_beat's heartbeat is missed while its session is open (hung), and
    // nothing was heard from ag_quiet (silent). A crash stays a crash.
    s.server.clock.advance(11 * 60_000);
    s.server.tick().await;
    let mut seen = statuses(&s, &cookie).await;
    seen.sort();
    let want: Vec<(String, String)> = [
        ("ag_beat", "hung"),
        ("ag_crash", "crashed"),
        ("ag_quiet", "silent"),
        ("ag_watch", "hung"),
    ]
    .iter()
    .map(|(a, b)| ((*a).into(), (*b).into()))
    .collect();
    assert_eq!(seen, want);

    // ag_beat beats again and ends its session cleanly: it is stopped, not in trouble (issue
    // 25: a clean end raises no alarm); the worst come first, the stopped last.
    let t1 = s.server.clock.now_ms();
    s.post_envelope(
        &client,
        envelope(&[
            heartbeat("ag_beat"),
            session("ag_beat", "a1", "exited", false, t1),
        ]),
    )
    .await;
    let rows = s
        .eventually("ag_beat stopped", || async {
            let rows = statuses(&s, &cookie).await;
            rows.iter()
                .any(|(a, st)| a == "ag_beat" && st == "stopped")
                .then_some(rows)
        })
        .await;
    let order: Vec<&str> = rows.iter().map(|(_, st)| st.as_str()).collect();
    assert_eq!(order, ["crashed", "hung", "silent", "stopped"], "{rows:?}");
}

fn rejected(asset: &str) -> TradingError {
    TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
        .with_trading(asset, "buy", "ord_x", None)
        .with_phase(Phase::Confirmation)
        .with_http_status(400)
}

/// `n` order pipelines on the current hub: each fails at the order call when `fail`, and
/// the call takes `call_ms`.
fn pipelines(n: u32, fail: bool, call_ms: u64) {
    for i in 0..n {
        let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
        pipeline
            .stage(Stage::RiskCheck, |s| {
                s.risk_pass(true);
                Ok(())
            })
            .expect("risk");
        let placed = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
            std::thread::sleep(Duration::from_millis(call_ms));
            s.order_id(&format!("ord_{i}"));
            if fail { Err(rejected("BTC")) } else { Ok(()) }
        });
        pipeline.finish(if placed.is_ok() {
            Outcome::Filled
        } else {
            Outcome::ApiError
        });
    }
}

/// Run `work` as agent `agent` through the real agent library, and flush.
fn as_agent(dsn: &str, agent: &str, work: impl FnOnce()) {
    let hub = Options::new(agent)
        .dsn(dsn.to_owned())
        .strategy(format!("{agent}-strategy"))
        .release(format!("{agent}@1.0.0"))
        .environment("paper")
        .traces_sample_rate(1.0)
        .hub();
    sentry::Hub::run(hub.clone(), work);
    let client = hub.client().expect("client");
    assert!(client.flush(Some(Duration::from_secs(10))), "flushed");
}

/// Issue 22: five agents fed by the real agent library. One fails every order (100 %
/// error rate), one is slow (p99 above the threshold of the project's p99 rule, not the
/// 2 s default), one missed its cron, one is healthy, one sends only errors (no
/// transactions: no error rate rather than 100 %). The page says who is in trouble and
/// why, troubled agents first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_says_who_is_degraded_and_why() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let cookie = common::ui_login(&s, PASSWORD).await;
    let token = s.token();
    // The project's own p99 rule on order.pipeline: 40 ms (the preset says 2 s).
    let rule = json!({"name": "Pipelines over 40 ms", "aggregate": "p99(transaction.duration)",
        "query": "transaction.op:order.pipeline", "timeWindow": 5, "thresholdType": 0,
        "projects": ["default"],
        "triggers": [{"label": "critical", "alertThreshold": 40, "actions": []}]});
    s.api_client(&token)
        .post("/api/0/organizations/default/alert-rules/", &rule)
        .await
        .expect(201);

    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        as_agent(&dsn, "ag_fail", || pipelines(6, true, 1));
        as_agent(&dsn, "ag_slow", || pipelines(6, false, 90));
        as_agent(&dsn, "ag_cron", || {
            pipelines(3, false, 1);
            let monitor = CronMonitor::interval(
                "ag_cron-rebalance",
                1,
                sentry::protocol::MonitorIntervalUnit::Minute,
            )
            .expect("monitor")
            .checkin_margin(1)
            .max_runtime(1);
            let done: Result<(), std::io::Error> = monitor.run(|| Ok(()));
            done.expect("job");
        });
        as_agent(&dsn, "ag_ok", || pipelines(6, false, 1));
        as_agent(&dsn, "ag_no_tx", || {
            for _ in 0..3 {
                capture_trading_error(&rejected("ETH"));
            }
        });
    })
    .await
    .expect("agents ran");
    s.eventually(
        "five agents, their pipelines and the cron digested",
        || async {
            let agents = s.agents();
            let tx = |id: &str| {
                agents
                    .iter()
                    .find(|a| a.agent_id == id)
                    .map_or(0, |a| a.transactions_1h)
            };
            (agents.len() == 5
                && tx("ag_fail") == 6
                && tx("ag_slow") == 6
                && tx("ag_ok") == 6
                && tx("ag_cron") == 3
                && agents
                    .iter()
                    .any(|a| a.agent_id == "ag_no_tx" && a.errors_1h == 3)
                && agents
                    .iter()
                    .any(|a| a.agent_id == "ag_cron" && !a.monitors.is_empty()))
            .then_some(())
        },
    )
    .await;
    // Three minutes on, the cron (every minute, one minute of margin) is missed.
    s.server.clock.advance(3 * 60_000);
    s.server.tick().await;

    let (status, html) = page(&s, &cookie, "/").await;
    assert_eq!(status, 200);
    let rows = rows(&html);
    let by = |id: &str| {
        rows.iter()
            .find(|r| r.agent == id)
            .unwrap_or_else(|| panic!("{id} on the page: {rows:?}"))
    };
    let fail = by("ag_fail");
    assert_eq!(fail.status, "degraded", "{fail:?}");
    assert_eq!(
        fail.reasons,
        ["error rate 100 % over 1 h > 5 %"],
        "{fail:?}"
    );
    assert!(fail.html.contains("class=\"num over\""), "{}", fail.html);
    assert!(
        fail.html.contains("over 5 %"),
        "the figure says it is over, in words"
    );
    assert!(
        fail.html.contains("OrderRejected"),
        "its top open issue: {}",
        fail.html
    );

    let slow = by("ag_slow");
    assert_eq!(slow.status, "degraded", "{slow:?}");
    assert_eq!(slow.reasons.len(), 1, "{slow:?}");
    assert!(
        slow.reasons[0].starts_with("p99 ") && slow.reasons[0].ends_with(" > 40 ms"),
        "the rule's threshold, not the 2 s default: {slow:?}"
    );
    assert!(
        slow.html.contains("Pipelines over 40 ms"),
        "where the threshold comes from"
    );

    let cron = by("ag_cron");
    assert_eq!(cron.status, "degraded", "{cron:?}");
    assert_eq!(cron.reasons, ["cron ag_cron-rebalance missed"], "{cron:?}");

    let ok = by("ag_ok");
    assert_eq!(
        (ok.status.as_str(), ok.reasons.len()),
        ("healthy", 0),
        "{ok:?}"
    );

    // Errors but no transaction: no error rate, and not degraded for it.
    let no_tx = by("ag_no_tx");
    assert_eq!(no_tx.status, "healthy", "{no_tx:?}");
    assert!(
        no_tx
            .html
            .contains("0 of 0 transactions failed, 3 error events")
            && no_tx.html.contains(">–</td>"),
        "{}",
        no_tx.html
    );
    assert!(!no_tx.html.contains("100"), "{}", no_tx.html);

    // Troubled first (most reasons, then by id), then the healthy.
    let order: Vec<&str> = rows.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(
        order,
        ["ag_cron", "ag_fail", "ag_slow", "ag_no_tx", "ag_ok"]
    );

    // Each agent has a page, linked from the overview; an unknown one is a 404 inside the
    // app, with the id escaped.
    assert!(fail.html.contains("href=\"/agents/ag_fail\""));
    let (status, agent_page) = page(&s, &cookie, "/agents/ag_fail").await;
    assert_eq!(status, 200);
    assert!(agent_page.contains("error rate 100 % over 1 h &gt; 5 %"));
    assert!(
        agent_page.contains("id=\"agent-stages\""),
        "its pipeline stages"
    );
    let (status, missing) = page(&s, &cookie, "/agents/%3Cb%3Enope").await;
    assert_eq!(status, 404);
    assert!(missing.contains("<nav"), "inside the app's layout");
    assert!(missing.contains("&lt;b&gt;nope") && !missing.contains("<b>nope"));
    let (status, _) = page(&s, &cookie, "/agents/ag_fail?period=forever").await;
    assert_eq!(status, 400);
}
