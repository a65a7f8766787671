//! `lookout demo` as a newcomer runs it: the binary with `--temp`, read from its output. Within
//! a bounded time every one of the seven alert presets fires and reaches the demo's receiver
//! with a valid signature, the wedged cron job is reported missed, the web UI (logged in with
//! the printed password) lists the deliveries, and SIGTERM stops everything cleanly.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const PRESETS: [&str; 7] = [
    "critical_trade_failure",
    "error_rate_spike",
    "risk_check_failure_rate",
    "p99_latency_breach",
    "new_issue_after_deploy",
    "session_crash",
    "venue_outage",
];

/// The schedule fires the last preset at ~90 s and misses the cron at ~125 s on an idle
/// machine; CI machines are slower, so allow twice that.
const DEADLINE: Duration = Duration::from_secs(300);

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_fires_and_delivers_every_preset_and_stops_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["demo", "--temp", "--listen", "127.0.0.1:0"])
        .env("LOOKOUT_LOG", "error")
        // A user's shell may ask for backtraces; planned crashes still print one line.
        .env("RUST_BACKTRACE", "1")
        .env_remove("LOOKOUT_ADMIN_PASSWORD")
        .env_remove("LOOKOUT_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("lookout demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let errors = std::sync::Arc::clone(&errors);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                errors.lock().expect("stderr lines").push(line);
            }
        });
    }
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let (mut ui, mut password) = (None::<String>, None::<String>);
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let mut cron_missed = false;
    // The kill switch: paused by its rule, orders stopped, resumed through the API, trading.
    let (mut paused, mut stopped, mut trades_again) = (false, false, false);
    let mut transcript = Vec::new();
    let outcome = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.recv().await {
            transcript.push(line.clone());
            if let Some(rest) = after(&line, "the web UI is at ") {
                ui = Some(rest.trim().trim_end_matches('/').to_owned());
            }
            if let Some(rest) = after(&line, "log in as admin with password ") {
                password = rest.split_whitespace().next().map(str::to_owned);
            }
            if line.contains("ALERT triggered:") {
                assert!(
                    line.contains("webhook signature verified"),
                    "every delivery is signed with the channel's secret: {line}"
                );
                if let Some(preset) =
                    after(&line, "(preset ").and_then(|rest| rest.split(')').next())
                {
                    fired.insert(preset.to_owned());
                }
            }
            if line.contains("CRON missed: vol-arb-recalibrate") {
                cron_missed = true;
            }
            paused |= line.contains("KILL SWITCH: ag_vol_arb paused by rule");
            stopped |=
                line.contains("KILL SWITCH: ag_vol_arb orders") && line.contains("orders stopped");
            assert!(!line.contains("orders did NOT stop"), "{line}");
            trades_again |= line.contains("KILL SWITCH: ag_vol_arb trades again");
            if fired.len() == PRESETS.len() && cron_missed && trades_again {
                return;
            }
        }
    })
    .await;
    let missing: Vec<&str> = PRESETS
        .iter()
        .copied()
        .filter(|p| !fired.contains(*p))
        .collect();
    assert!(
        outcome.is_ok() && missing.is_empty() && cron_missed,
        "within {DEADLINE:?}: presets not delivered {missing:?}, cron missed reported: {cron_missed}\n{}",
        transcript.join("\n")
    );
    assert!(
        paused && stopped && trades_again,
        "the kill switch: paused {paused}, orders stopped {stopped}, trades again after the API's resume {trades_again}\n{}",
        transcript.join("\n")
    );
    assert!(
        transcript
            .iter()
            .any(|l| l.contains("all seven alert presets fired and were delivered")),
        "the demo says when the loop is complete"
    );
    // Both planned crashes (escrow_domains, casino_kelly) happened by now: one line each,
    // no backtrace, even with RUST_BACKTRACE=1.
    {
        let errors = errors.lock().expect("stderr lines");
        let planned = errors
            .iter()
            .filter(|l| l.contains("planned panic:"))
            .count();
        assert!(
            planned >= 2,
            "one line per planned panic:\n{}",
            errors.join("\n")
        );
        assert!(
            !errors
                .iter()
                .any(|l| l.contains("stack backtrace") || l.contains("panicked at")),
            "no backtrace for a planned panic:\n{}",
            errors.join("\n")
        );
    }

    // The web UI shows the deliveries, to both channels, delivered.
    let ui = ui.expect("the demo prints the UI address");
    let password = password.expect("the demo prints the generated password");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{ui}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={password}&next=/alerts"))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 303, "the printed password logs in");
    let cookie = login
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let page = http
        .get(format!("{ui}/alerts"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("alerts page")
        .text()
        .await
        .expect("page");
    let delivered = page.matches("pill delivered").count();
    assert!(
        delivered >= 2 * PRESETS.len(),
        "seven alerts, each to the webhook and the Slack channel: {delivered} delivered rows"
    );

    // SIGTERM: the agents end their sessions, the server drains, exit 0.
    let pid = child.id().expect("pid");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the demo stops after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "a clean stop exits 0, got {exit}");
}
