//! Each example agent runs for a few cycles against a real sandbox (unmonitored: no DSN),
//! does its work without errors, stops on shutdown, and panics when told to crash.

use std::time::Duration;

use lookout_examples::{AgentConfig, Controls, Monitoring, RunSummary, Shutdown};
use purpleflea_sandbox::{FaultConfig, Sandbox, SandboxConfig};

async fn sandbox() -> purpleflea_sandbox::SandboxHandle {
    Sandbox::spawn(
        SandboxConfig::default()
            .seed(3)
            .faults(FaultConfig::none())
            .rate_limits(false),
    )
    .await
    .expect("sandbox starts")
}

fn config(id: &str, url: &str) -> AgentConfig {
    AgentConfig::new(id, url)
        .monitoring(Monitoring::Isolated)
        .cycle(Duration::from_millis(100))
}

/// Run `agent` for `for_` and return its summary.
async fn run_for<F, Fut>(agent: F, config: AgentConfig, for_: Duration) -> RunSummary
where
    F: FnOnce(AgentConfig, Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<RunSummary, lookout_examples::ExampleError>>
        + Send
        + 'static,
{
    let (trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(agent(config, shutdown));
    tokio::time::sleep(for_).await;
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("stops on shutdown")
        .expect("no panic")
        .expect("runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_arb_trades_both_books() {
    let handle = sandbox().await;
    let s = run_for(
        lookout_examples::vol_arb::run,
        config("ag_test_vol", &handle.url()),
        Duration::from_secs(3),
    )
    .await;
    assert!(s.cycles >= 10, "{s:?}");
    assert!(
        s.actions >= 1,
        "some signal crossed the entry threshold: {s:?}"
    );
    assert_eq!(s.errors, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vol_arb_without_margin_for_eth_fails_only_eth_orders() {
    let handle = sandbox().await;
    let s = run_for(
        lookout_examples::vol_arb::run,
        config("ag_test_margin", &handle.url()).funding_usd(400.0),
        Duration::from_secs(3),
    )
    .await;
    assert!(s.errors >= 1, "ETH needs ~$500 of margin: {s:?}");
    assert!(s.actions >= 1, "BTC still fills: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn casino_kelly_bets_and_every_audit_passes() {
    let handle = sandbox().await;
    let s = run_for(
        lookout_examples::casino_kelly::run,
        config("ag_test_kelly", &handle.url()),
        Duration::from_millis(2_500),
    )
    .await;
    assert!(
        s.actions as usize > lookout_examples::casino_kelly::VERIFY_EVERY,
        "{s:?}"
    );
    assert_eq!(
        s.errors, 0,
        "bets inside the limit, results provably fair: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_domains_releases_escrows_and_bids() {
    let handle = sandbox().await;
    let s = run_for(
        lookout_examples::escrow_domains::run,
        config("ag_test_escrow", &handle.url()),
        Duration::from_millis(2_000),
    )
    .await;
    assert!(s.actions >= 5, "{s:?}");
    assert_eq!(s.errors, 0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_switch_panics_the_main_loop() {
    let handle = sandbox().await;
    let controls = Controls::new();
    let (_trigger, shutdown) = Shutdown::new();
    let task = tokio::spawn(lookout_examples::casino_kelly::run(
        config("ag_test_crash", &handle.url()).controls(controls.clone()),
        shutdown,
    ));
    controls.crash_next_cycle();
    let joined = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("ends");
    assert!(joined.is_err_and(|e| e.is_panic()));
}
