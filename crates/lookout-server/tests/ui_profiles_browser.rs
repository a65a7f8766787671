//! Where a transaction's time goes, in the browser: the official Python `sentry-sdk` with
//! `profiles_sample_rate=1.0` runs an order pipeline whose `risk.check` stage burns CPU in the
//! agent's own `risk_model`; Debian's headless Chromium (Playwright, `tests/ui/profiles.py`)
//! then reads the transaction's aggregated flame graph and top functions, zooms into the
//! function, narrows the samples to `risk.check` spans (and to `signal.validate`, where the
//! function is absent), and opens the `risk.check` span of the trace onto its own profile.
//! Screenshots land in `target/ui-artifacts/profiles/`.

mod common;

use common::TestServer;
use serde_json::Value;

const PASSWORD: &str = "a-long-test-password";
const TRANSACTION: &str = "Order Pipeline: ETH buy";
const FUNCTION: &str = "risk_model";

/// The agent's own code: a CPU-bound risk model (hashing in a loop) and a stage that only waits.
const AGENT_RISK: &str = r#"
import hashlib
import time


def risk_model(seconds):
    end = time.perf_counter() + seconds
    h = b"seed"
    while time.perf_counter() < end:
        h = hashlib.sha256(h).digest()
    return h


def validate(seconds):
    time.sleep(seconds)
"#;

const SCRIPT: &str = r#"
import os, sentry_sdk
from agent_app import risk

sentry_sdk.init(
    dsn=os.environ["DSN"],
    traces_sample_rate=1.0,
    profiles_sample_rate=1.0,
    in_app_include=["agent_app"],
)
with sentry_sdk.start_transaction(op="order.pipeline", name=os.environ["TRANSACTION"]) as tx:
    with sentry_sdk.start_span(op="signal.validate", name="signal.validate"):
        risk.validate(0.25)
    with sentry_sdk.start_span(op="risk.check", name="risk.check"):
        risk.risk_model(0.6)
    with sentry_sdk.start_span(op="order.size", name="order.size"):
        risk.validate(0.05)
    print("trace", tx.trace_id)
sentry_sdk.flush(timeout=10)
print("sent")
"#;

/// Runs the profiled Python agent and returns its trace id.
async fn run_python_agent(s: &TestServer) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let pkg = dir.path().join("agent_app");
    std::fs::create_dir(&pkg).expect("package dir");
    std::fs::write(pkg.join("__init__.py"), "").expect("init");
    std::fs::write(pkg.join("risk.py"), AGENT_RISK).expect("risk module");
    let script = dir.path().join("agent.py");
    std::fs::write(&script, SCRIPT).expect("script");
    let out = tokio::process::Command::new(common::python())
        .arg(&script)
        .current_dir(dir.path())
        .env("PYTHONPATH", dir.path())
        .env("DSN", s.dsn())
        .env("TRANSACTION", TRANSACTION)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("sent"),
        "python agent failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace "))
        .expect("the script prints its trace id")
        .trim()
        .to_owned()
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
async fn a_profiled_stage_opens_onto_its_own_functions() {
    let s = TestServer::start_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let trace_id = run_python_agent(&s).await;

    // The profile digested and linked to its transaction.
    let store = s.server.store.clone();
    let tid = trace_id.clone();
    s.eventually("the profiled transaction digested", || {
        let store = store.clone();
        let tid = tid.clone();
        async move {
            let reader = store.reader();
            let project = reader.project("default", "default").ok()?;
            let spans = reader.trace(project.id, &tid).ok()?;
            let event = spans.first()?.event_id.clone();
            lookout_server::services::profiles::for_transaction(&store, project.id, &event)
                .await
                .ok()?
                .map(|_| ())
        }
    })
    .await;

    let seen = common::drive_browser(
        &s,
        common::BrowserRun {
            script: "profiles",
            args: &[],
            password: PASSWORD,
            artifacts: "profiles",
            env: &[
                ("LOOKOUT_TRANSACTION", TRANSACTION.into()),
                (
                    "LOOKOUT_TRACE",
                    format!("/performance/traces/{trace_id}?project=default"),
                ),
                ("LOOKOUT_FUNCTION", FUNCTION.into()),
            ],
        },
    )
    .await;
    let show = serde_json::to_string_pretty(&seen).unwrap_or_default();

    // The aggregated graph: the function is there, named with its module and its share.
    assert!(seen["frames"].as_u64().unwrap_or(0) >= 3, "{show}");
    let title = seen["hot_title"].as_str().unwrap_or("");
    assert!(
        title.contains(FUNCTION) && title.contains("agent_app") && title.contains('%'),
        "{show}"
    );
    // risk_model burns about 0.6 s of the 0.9 s: the widest part of the graph.
    let before = seen["hot_share_before"].as_f64().unwrap_or(0.0);
    assert!(before > 0.3 && before < 0.95, "{show}");
    // The top function by self time is the agent's own hashing loop (or what it calls).
    let top = strings(&seen["top_functions"]);
    assert!(top.iter().take(3).any(|f| f.contains(FUNCTION)), "{show}");
    // Zoom fills the width with the function and hides what is beside it; reset restores.
    let zoomed = seen["hot_share_zoomed"].as_f64().unwrap_or(0.0);
    assert!(zoomed > 0.99, "{show}");
    assert!(
        seen["hidden_after_zoom"].as_u64().unwrap_or(0) >= 1,
        "{show}"
    );
    let reset = seen["hot_share_reset"].as_f64().unwrap_or(0.0);
    assert!((reset - before).abs() < 0.01, "{show}");
    assert_eq!(seen["hidden_after_reset"], 0, "{show}");
    // Per stage: in risk.check, and not in signal.validate.
    assert!(
        seen["risk_frames_with_function"].as_u64().unwrap_or(0) >= 1,
        "{show}"
    );
    assert!(
        strings(&seen["risk_top_functions"])
            .iter()
            .any(|f| f.contains(FUNCTION)),
        "{show}"
    );
    assert_eq!(seen["validate_frames_with_function"], 0, "{show}");
    // The trace page: the risk.check span has its own profile, folded until asked for.
    let rows = strings(&seen["span_profiles"]);
    assert!(rows.iter().any(|r| r.contains("risk.check")), "{show}");
    assert_eq!(seen["risk_graph_visible_closed"], false, "{show}");
    assert!(
        seen["risk_span_frames_with_function"].as_u64().unwrap_or(0) >= 1,
        "{show}"
    );
    assert!(seen["whole_profile"].as_u64().unwrap_or(0) >= 1, "{show}");
}
