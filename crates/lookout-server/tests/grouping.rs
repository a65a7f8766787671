//! Grouping, in-app frames, culprits and titles, from the real SDKs to the REST API: Rust
//! panics from the official `sentry` crate (panic integration, HTTP transport) reached from
//! different threads and tokio workers, a Python `sentry-sdk` error raised inside a library,
//! and issues split by a custom fingerprint.

mod common;

use common::{TestServer, run_python};
use serde_json::Value;
use std::time::Duration;

async fn all_issues(s: &TestServer, token: &str) -> Vec<Value> {
    let (status, body) = s
        .api(token, "/api/0/projects/default/default/issues/")
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Wait until the issues hold `events` events in all; returns them.
async fn issues_with(s: &TestServer, token: &str, events: u64) -> Vec<Value> {
    s.eventually(&format!("{events} grouped events"), || async {
        let all = all_issues(s, token).await;
        let total: u64 = all
            .iter()
            .filter_map(|i| i["count"].as_str()?.parse::<u64>().ok())
            .sum();
        (total >= events).then_some(all)
    })
    .await
}

async fn latest_event(s: &TestServer, token: &str, issue: &Value) -> Value {
    let id = issue["id"].as_str().expect("issue id");
    let (status, event) = s
        .api(token, &format!("/api/0/issues/{id}/events/latest/"))
        .await;
    assert_eq!(status, 200, "{event}");
    event
}

fn frames(event: &Value) -> Vec<Value> {
    event["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == "exception")
        .and_then(|e| e["data"]["values"].as_array()?.last().cloned())
        .and_then(|exc| exc["stacktrace"]["frames"].as_array().cloned())
        .unwrap_or_default()
}

fn in_app(frame: &Value) -> bool {
    frame["in_app"] == Value::Bool(true)
}

/// The panic site every thread below reaches.
#[inline(never)]
fn bankroll_site(agent: u32) {
    if agent > 0 {
        panic!("casino: bankroll of agent {agent} went negative");
    }
}

/// A second, different panic site.
#[inline(never)]
fn order_book_site(depth: usize) {
    if depth == 0 {
        panic!("order book for BTC is empty");
    }
}

#[inline(never)]
fn from_this_thread() {
    // The panic hook reports it; catch_unwind keeps the test going.
    let caught = std::panic::catch_unwind(|| bankroll_site(1));
    assert!(caught.is_err());
}

#[inline(never)]
fn from_a_spawned_thread(hub: std::sync::Arc<sentry::Hub>) {
    let joined = std::thread::Builder::new()
        .name("spawned-agent".into())
        .spawn(move || sentry::Hub::run(hub, || bankroll_site(2)))
        .expect("thread starts")
        .join();
    assert!(joined.is_err());
}

#[inline(never)]
fn from_a_tokio_worker(hub: std::sync::Arc<sentry::Hub>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let joined = rt.block_on(async move {
        let task = async { bankroll_site(3) };
        tokio::spawn(sentry::SentryFutureExt::bind_hub(task, hub)).await
    });
    assert!(joined.is_err_and(|e| e.is_panic()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_panics_group_by_site_whatever_thread_reaches_them() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let guard = sentry::init(
            sentry::ClientOptions::new()
                .dsn(&dsn)
                .release("casino-agent@1.0.0"),
        );
        assert!(guard.is_enabled());
        let hub = sentry::Hub::current();
        from_this_thread();
        from_a_spawned_thread(hub.clone());
        from_a_tokio_worker(hub.clone());
        let caught = std::panic::catch_unwind(|| order_book_site(0));
        assert!(caught.is_err());
        assert!(
            hub.client()
                .is_some_and(|c| c.flush(Some(Duration::from_secs(10)))),
            "the SDK could not flush to our server"
        );
    })
    .await
    .expect("SDK thread");

    let issues = issues_with(&s, &token, 4).await;
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let bankroll = issues
        .iter()
        .find(|i| i["count"] == "3")
        .unwrap_or_else(|| panic!("one issue for the three bankroll panics: {issues:#?}"));
    let book = issues
        .iter()
        .find(|i| i["count"] == "1")
        .unwrap_or_else(|| panic!("one issue for the order book panic: {issues:#?}"));
    // The culprit names the agent's own function, not the SDK's hook.
    assert_eq!(bankroll["culprit"], "grouping::bankroll_site");
    assert_eq!(book["culprit"], "grouping::order_book_site");
    assert!(
        bankroll["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("panic: casino: bankroll of agent")),
        "{bankroll}"
    );

    let event = latest_event(&s, &token, bankroll).await;
    assert_eq!(
        event["grouping"]["variant"], "panic",
        "{}",
        event["grouping"]
    );
    assert!(
        event["grouping"]["config"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(
        event["grouping"]["hash"].as_str().map(str::len),
        Some(32),
        "{}",
        event["grouping"]
    );
    let frames = frames(&event);
    assert!(frames.len() > 3, "{frames:#?}");
    // The top frame is the panic site: the panic machinery and the SDK's hook are gone.
    let top = frames.last().expect("frames");
    assert_eq!(top["function"], "grouping::bankroll_site", "{top}");
    assert!(in_app(top));
    for f in &frames {
        let function = f["function"].as_str().unwrap_or("");
        let path = f["abs_path"].as_str().unwrap_or("");
        assert!(
            !path.contains("sentry-panic") && !path.contains("sentry-backtrace"),
            "the SDK's hook is shown: {f}"
        );
        assert!(
            !function.contains("rust_begin_unwind") && !function.contains("panic_fmt"),
            "the panic machinery is shown: {f}"
        );
        // Only this crate's functions are the application's.
        let ours = path.ends_with("tests/grouping.rs");
        assert_eq!(in_app(f), ours, "{f}");
    }
    for library in ["clone3", "start_thread"] {
        if let Some(f) = frames.iter().find(|f| f["function"] == library) {
            assert!(!in_app(f), "{f}");
        }
    }
    // Both issues are grouped on the site, so different messages and sites differ.
    let other = latest_event(&s, &token, book).await;
    assert_ne!(event["grouping"]["hash"], other["grouping"]["hash"]);
}

const PYTHON_LIBRARY_ERROR: &str = r#"
import os, sentry_sdk
from urllib3.util import parse_url
sentry_sdk.init(dsn=os.environ["DSN"], release="py-agent@1.0.0")

def load_venue(url):
    return parse_url(url)

for url in ["http://[venue-one", "http://[venue-two-b"]:
    try:
        load_venue(url)
    except Exception:
        sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_errors_raised_in_a_library_are_attributed_to_the_app() {
    let s = TestServer::start().await;
    let token = s.token();
    run_python(PYTHON_LIBRARY_ERROR, &[("DSN", s.dsn())]).await;

    let issues = issues_with(&s, &token, 2).await;
    assert_eq!(issues.len(), 1, "one bug, two messages: {issues:#?}");
    let issue = &issues[0];
    assert_eq!(issue["count"], "2");
    assert_eq!(issue["culprit"], "__main__ in load_venue", "{issue}");
    assert!(
        issue["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("LocationParseError")),
        "{issue}"
    );

    let event = latest_event(&s, &token, issue).await;
    assert_eq!(event["grouping"]["variant"], "stacktrace");
    let frames = frames(&event);
    let top = frames.last().expect("frames");
    assert!(
        top["abs_path"]
            .as_str()
            .is_some_and(|p| p.contains("site-packages/urllib3")),
        "the library frame is on top: {top}"
    );
    assert!(!in_app(top));
    let app: Vec<&str> = frames
        .iter()
        .filter(|f| in_app(f))
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(app.contains(&"load_venue"), "{frames:#?}");
    // Grouped on the app's frames: no library function among the components.
    let components = event["grouping"]["components"].to_string();
    assert!(components.contains("load_venue"), "{components}");
    assert!(!components.contains("parse_url"), "{components}");
}

const TRADING_FINGERPRINTS: &str = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["DSN"], release="vol-arb@1.0.0")

class InsufficientMargin(Exception):
    pass

def open_position(asset):
    raise InsufficientMargin("margin below maintenance on trade/open")

for asset in ["ETH", "BTC"]:
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["{{ default }}", "InsufficientMargin", asset, "order_placement"]
        scope.set_tag("trade.asset", asset)
        try:
            open_position(asset)
        except InsufficientMargin:
            sentry_sdk.capture_exception()
sentry_sdk.flush(timeout=10)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_split_by_a_fingerprint_have_titles_that_tell_them_apart() {
    let s = TestServer::start().await;
    let token = s.token();
    run_python(TRADING_FINGERPRINTS, &[("DSN", s.dsn())]).await;

    let issues = issues_with(&s, &token, 2).await;
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let titles: Vec<&str> = issues.iter().filter_map(|i| i["title"].as_str()).collect();
    assert_ne!(titles[0], titles[1], "{titles:?}");
    for asset in ["ETH", "BTC"] {
        let issue = issues
            .iter()
            .find(|i| i["title"].as_str().is_some_and(|t| t.contains(asset)))
            .unwrap_or_else(|| panic!("no title names {asset}: {titles:?}"));
        let title = issue["title"].as_str().unwrap_or("");
        assert!(title.starts_with("InsufficientMargin"), "{title}");
        assert!(title.contains("order_placement"), "{title}");
        assert!(title.contains("trade/open"), "{title}");
        assert_eq!(issue["metadata"]["title"], issue["title"]);
        assert_eq!(
            issue["metadata"]["fingerprint"],
            serde_json::json!(["InsufficientMargin", asset, "order_placement"])
        );
        assert_eq!(issue["culprit"], "__main__ in open_position");
        let event = latest_event(&s, &token, issue).await;
        assert_eq!(event["grouping"]["variant"], "fingerprint");
    }
}

/// An async fn that panics: line-tables-only builds name its body `{async_fn#0}`.
async fn settle_async(agent: u32) {
    tokio::task::yield_now().await;
    if agent > 0 {
        panic!("settlement for agent {agent} has no fills");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_fn_panic_is_attributed_to_the_fn() {
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let guard = sentry::init(sentry::ClientOptions::new().dsn(&dsn));
        assert!(guard.is_enabled());
        let hub = sentry::Hub::current();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let task = sentry::SentryFutureExt::bind_hub(settle_async(4), hub.clone());
        let joined = rt.block_on(async move { tokio::spawn(task).await });
        assert!(joined.is_err_and(|e| e.is_panic()));
        assert!(
            hub.client()
                .is_some_and(|c| c.flush(Some(Duration::from_secs(10))))
        );
    })
    .await
    .expect("SDK thread");
    let issues = issues_with(&s, &token, 1).await;
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(
        issues[0]["culprit"], "grouping::settle_async",
        "{}",
        issues[0]
    );
    let event = latest_event(&s, &token, &issues[0]).await;
    let frames = frames(&event);
    let top = frames.last().expect("frames");
    assert!(in_app(top), "{top}");
    assert!(
        top["abs_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("tests/grouping.rs")),
        "{top}"
    );
    assert_eq!(event["grouping"]["variant"], "panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_agents_trading_fingerprint_titles_name_asset_and_phase() {
    use lookout_agent::{Options, Phase, TradingError, TradingErrorKind, capture_trading_error};
    let s = TestServer::start().await;
    let token = s.token();
    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_grouping")
            .dsn(dsn)
            .release("vol-arb@1.0.0")
            .hub();
        sentry::Hub::run(hub.clone(), || {
            for asset in ["ETH", "BTC"] {
                let error = TradingError::new(
                    TradingErrorKind::InsufficientMargin,
                    "margin below maintenance on POST /v1/trade/open",
                )
                .with_asset(asset)
                .with_phase(Phase::Confirmation);
                capture_trading_error(&error);
            }
        });
        assert!(
            hub.client()
                .is_some_and(|c| c.flush(Some(Duration::from_secs(10))))
        );
    })
    .await
    .expect("agent thread");

    let issues = issues_with(&s, &token, 2).await;
    assert_eq!(issues.len(), 2, "{issues:#?}");
    let phase = Phase::Confirmation.as_str();
    let kind = TradingErrorKind::InsufficientMargin;
    for asset in ["ETH", "BTC"] {
        let issue = issues
            .iter()
            .find(|i| i["metadata"]["fingerprint"][1] == asset)
            .unwrap_or_else(|| panic!("no issue for {asset}: {issues:#?}"));
        let title = issue["title"].as_str().unwrap_or("");
        assert!(title.starts_with(kind.as_str()), "{title}");
        assert!(title.contains(asset) && title.contains(phase), "{title}");
        assert!(title.contains("trade/open"), "{title}");
        assert_eq!(
            issue["metadata"]["fingerprint"],
            serde_json::json!([kind.as_str(), asset, phase])
        );
    }
}

/// A project's in-app prefixes (API and Settings page) decide before the built-in rules:
/// an excluded module's frames are not the agent's own, so the culprit moves to the
/// agent's frame below them; bad lists are refused with a field error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_in_app_prefixes_move_the_culprit() {
    let s = TestServer::start().await;
    let token = s.token();
    let client = reqwest::Client::new();
    let url = format!("{}/api/0/projects/default/default/", s.server.base_url());
    let put = |body: Value| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let r = client
                .put(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("put");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = put(serde_json::json!({"inAppExclude": ["agent::vendor"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inAppExclude"], serde_json::json!(["agent::vendor"]));
    let (_, got) = s.api(&token, "/api/0/projects/default/default/").await;
    assert_eq!(got["inAppExclude"], serde_json::json!(["agent::vendor"]));
    assert_eq!(got["inAppInclude"], serde_json::json!([]));
    let (status, body) = put(serde_json::json!({"inAppInclude": "agent::"})).await;
    assert_eq!(status, 400);
    assert!(body["inAppInclude"].is_array(), "{body}");
    let (status, body) = put(serde_json::json!({"inAppInclude": [""]})).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap_or("").contains("empty"),
        "{body}"
    );

    // A Rust error whose top frames are a vendored feed parser inside the agent's crate.
    let payload = serde_json::json!({
    "event_id": uuid::Uuid::new_v4().simple().to_string(), "platform": "rust", "level": "error",
    "exception": {"values": [{"type": "ParseError", "value": "bad tick", "stacktrace": {"frames": [
        {"function": "agent::main", "module": "agent", "in_app": true},
        {"function": "agent::strategy::place", "module": "agent::strategy", "in_app": true},
        {"function": "agent::vendor::feed::parse", "module": "agent::vendor::feed", "in_app": true}
    ]}}]}})
    .to_string();
    let envelope = format!(
        "{{}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    );
    s.post_envelope(&client, envelope.into_bytes()).await;
    let issues = issues_with(&s, &token, 1).await;
    let culprit = issues[0]["culprit"].as_str().unwrap_or_default();
    assert!(culprit.contains("strategy"), "culprit {culprit:?}");
    let event = latest_event(&s, &token, &issues[0]).await;
    let flags: Vec<bool> = frames(&event).iter().map(in_app).collect();
    assert_eq!(flags, [true, true, false], "{event:#}");
}
