//! The demo's agents and its fault schedule (the table in the [module docs](super)).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use lookout_examples::{
    AgentConfig, Controls, ExampleError, Monitoring, RunSummary, SandboxAdmin, Shutdown,
    ShutdownTrigger,
};
use purpleflea_sandbox::{FaultConfig, FaultRule, Latency, Sandbox, Service};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::api::Api;
use super::{Printer, base_faults, stamp, until_stopped};

/// Which example agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VolArb,
    Casino,
    Escrow,
}

/// A running agent: its task, its shutdown trigger and its switches.
struct Running {
    task: JoinHandle<Result<RunSummary, ExampleError>>,
    stop: ShutdownTrigger,
    controls: Controls,
}

/// The example agents running now, by id.
pub(crate) struct Agents {
    dsn: String,
    sandbox: String,
    seed: u64,
    running: BTreeMap<&'static str, Running>,
}

impl Agents {
    pub(crate) fn new(dsn: &str, sandbox: &str, seed: u64) -> Self {
        Self {
            dsn: dsn.to_owned(),
            sandbox: sandbox.to_owned(),
            seed,
            running: BTreeMap::new(),
        }
    }

    fn config(&self, id: &str, release: &str, funding: f64, controls: &Controls) -> AgentConfig {
        AgentConfig::new(id, &self.sandbox)
            .dsn(self.dsn.clone())
            .release(release)
            .environment("paper")
            .monitoring(Monitoring::Isolated)
            .cycle(Duration::from_secs(1))
            .heartbeat_interval(Duration::from_secs(30))
            .recalibrate_every_minutes(1)
            .funding_usd(funding)
            .controls(controls.clone())
            .seed(self.seed)
    }

    fn spawn(&mut self, id: &'static str, kind: Kind, release: &str, funding: f64) {
        let controls = Controls::new();
        let config = self.config(id, release, funding, &controls);
        let (stop, shutdown) = Shutdown::new();
        let task = match kind {
            Kind::VolArb => spawn_agent(lookout_examples::vol_arb::run(config, shutdown)),
            Kind::Casino => spawn_agent(lookout_examples::casino_kelly::run(config, shutdown)),
            Kind::Escrow => spawn_agent(lookout_examples::escrow_domains::run(config, shutdown)),
        };
        self.running.insert(
            id,
            Running {
                task,
                stop,
                controls,
            },
        );
    }

    fn controls(&self, id: &str) -> Option<Controls> {
        self.running.get(id).map(|r| r.controls.clone())
    }

    /// Make `id` panic at its next cycle and wait until its task ended.
    async fn crash(&mut self, id: &str) -> bool {
        let Some(r) = self.running.remove(id) else {
            return false;
        };
        r.controls.crash_next_cycle();
        matches!(
            tokio::time::timeout(Duration::from_secs(30), r.task).await,
            Ok(Err(e)) if e.is_panic()
        )
    }

    /// Stop `id` cleanly (its session ends `exited`).
    async fn stop(&mut self, id: &str) {
        if let Some(r) = self.running.remove(id) {
            r.stop.trigger();
            let _ = tokio::time::timeout(Duration::from_secs(30), r.task).await;
        }
    }

    async fn stop_all(&mut self) {
        let ids: Vec<&'static str> = self.running.keys().copied().collect();
        for r in self.running.values() {
            r.stop.trigger();
        }
        for id in ids {
            self.stop(id).await;
        }
    }
}

fn spawn_agent<F>(agent: F) -> JoinHandle<Result<RunSummary, ExampleError>>
where
    F: Future<Output = Result<RunSummary, ExampleError>> + Send + 'static,
{
    tokio::spawn(agent)
}

const VOL_ARB: &str = "ag_vol_arb";
/// Two trading agents that join for the venue outage, with margin enough for any order.
const MOMENTUM: &str = "ag_momentum";
const MEAN_REVERT: &str = "ag_mean_revert";
/// A BTC order needs $25–100 of margin, an ETH order $125–500 (`vol_arb::default_books`).
const VOL_ARB_MARGIN_USD: f64 = 110.0;
const CASINO: &str = "ag_casino_kelly";
const ESCROW: &str = "ag_escrow_domains";

/// The fault schedule. Every step prints what it does; the agents run until `stopped`.
pub(crate) async fn schedule(
    mut agents: Agents,
    api: Api,
    sandbox_url: String,
    sandbox: Sandbox,
    print: Printer,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let say = |s: String| print(&format!("{} {s}", stamp(started)));
    agents.spawn(VOL_ARB, Kind::VolArb, "vol-arb@1.0.0", VOL_ARB_MARGIN_USD);
    agents.spawn(CASINO, Kind::Casino, "casino-kelly@1.0.0", 200.0);
    agents.spawn(ESCROW, Kind::Escrow, "escrow-domains@1.0.0", 10_000.0);
    if let Some(controls) = agents.controls(VOL_ARB) {
        tokio::spawn(kill_switch(
            api.clone(),
            controls,
            std::sync::Arc::clone(&print),
            started,
            stopped.clone(),
        ));
    }
    say(format!(
        "fault: ag_vol_arb holds ${VOL_ARB_MARGIN_USD:.0} of margin: enough for a BTC order (at most $100), never for an ETH order (at least $125): ETH orders fail (InsufficientMargin)"
    ));

    let admin = SandboxAdmin::new(&sandbox_url);
    let prices = purpleflea_client::Client::builder()
        .sandbox(&sandbox_url)
        .build()
        .ok();
    // The live fault configuration: each step adds or removes its own part.
    let mut faults = base_faults();
    let t0 = tokio::time::Instant::now();
    // (second, step)
    let mut steps: Vec<(u64, Step)> = vec![
        (10, Step::WedgeScheduler),
        (20, Step::CrashAndRestart),
        (28, Step::CrashForGood),
        (40, Step::LatencyOn),
        (55, Step::Deploy),
        (90, Step::LatencyOff),
        (95, Step::EscrowFixed),
        (92, Step::VenueAgents),
        (100, Step::VenueDown),
        (130, Step::VenueBack),
    ];
    steps.extend((0..9).map(|i| (12 + 3 * i, Step::Shock(i))));
    steps.sort_by_key(|(at, _)| *at);
    for (at, step) in steps {
        let due = t0 + Duration::from_secs(at);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            () = until_stopped(&mut stopped) => {
                agents.stop_all().await;
                return;
            }
        }
        match step {
            Step::WedgeScheduler => {
                if let Some(c) = agents.controls(VOL_ARB) {
                    c.stall_scheduler(true);
                }
                say("fault: vol-arb's scheduler is wedged: the recalibration job stops checking in (the cron monitor misses in about two minutes)".into());
            }
            Step::Shock(i) => {
                let sign = if i % 2 == 0 { 1.03 } else { 1.0 / 1.03 };
                for coin in ["BTC", "ETH"] {
                    let mid = match &prices {
                        Some(c) => c.trading().price(coin).await.ok().and_then(|p| p.price),
                        None => None,
                    };
                    let Some(mid) = mid else {
                        say(format!("could not read the {coin} price"));
                        continue;
                    };
                    let price = (mid * sign * 100.0).round() / 100.0;
                    if let Err(e) = admin.set_market(coin, json!({"price": price})).await {
                        say(format!("could not move the {coin} market: {e}"));
                    }
                }
                if i == 0 {
                    say("fault: BTC and ETH jump ±3 % every 3 s for 25 s: the volatility circuit breaker rejects orders (risk.check)".into());
                }
            }
            Step::CrashAndRestart => {
                say(
                    "fault: ag_escrow_domains panics; its supervisor restarts it within seconds"
                        .into(),
                );
                let crashed = agents.crash(ESCROW).await;
                if !crashed {
                    say("ag_escrow_domains did not crash as planned".into());
                }
                agents.spawn(ESCROW, Kind::Escrow, "escrow-domains@1.0.0", 10_000.0);
                say(
                    "ag_escrow_domains restarted: a new session within the 60 s grace, so no alert"
                        .into(),
                );
            }
            Step::CrashForGood => {
                say("fault: ag_casino_kelly panics and stays down (the crash alert fires after 60 s of grace)".into());
                if !agents.crash(CASINO).await {
                    say("ag_casino_kelly did not crash as planned".into());
                }
            }
            Step::LatencyOn => {
                faults = faults.with_endpoint(
                    Service::Trading,
                    TRADE_OPEN,
                    FaultRule {
                        latency: Some(Latency::fixed(2_500.0)),
                        ..FaultRule::default()
                    },
                );
                match sandbox.set_faults(faults.clone()) {
                    Ok(()) => say("fault: POST /trade/open takes 2.5 s for 50 s (order pipelines breach the 2 s p99)".into()),
                    Err(e) => say(format!("could not set the latency fault: {e}")),
                }
            }
            Step::LatencyOff => {
                without_endpoint(&mut faults, Service::Trading, TRADE_OPEN);
                let _ = sandbox.set_faults(faults.clone());
                say("latency back to normal".into());
            }
            Step::Deploy => {
                let version = "escrow-domains@1.1.0";
                match api.deploy(version, "paper").await {
                    Ok(()) => say(format!(
                        "deploy: release {version} created and deployed to paper through the REST API"
                    )),
                    Err(e) => say(format!("deploy failed: {e}")),
                }
                agents.stop(ESCROW).await;
                faults = faults.with_endpoint(
                    Service::Escrow,
                    ESCROW_CREATE,
                    FaultRule {
                        errors: Some(BTreeMap::from([("402".to_owned(), 1.0)])),
                        ..FaultRule::default()
                    },
                );
                if let Err(e) = sandbox.set_faults(faults.clone()) {
                    say(format!("could not set the escrow fault: {e}"));
                }
                agents.spawn(ESCROW, Kind::Escrow, version, 10_000.0);
                say(format!(
                    "fault: ag_escrow_domains restarted on {version}, whose escrows are refused (402 insufficient_balance): a new issue right after the deploy"
                ));
            }
            Step::VenueAgents => {
                agents.spawn(MOMENTUM, Kind::VolArb, "momentum@1.0.0", 10_000.0);
                agents.spawn(MEAN_REVERT, Kind::VolArb, "mean-revert@1.0.0", 10_000.0);
                // They run vol-arb's code, whose recalibration job checks in to the one
                // `vol-arb-recalibrate` monitor: theirs stays off, or their check-ins would
                // hide that ag_vol_arb's scheduler is wedged.
                for id in [MOMENTUM, MEAN_REVERT] {
                    if let Some(c) = agents.controls(id) {
                        c.stall_scheduler(true);
                    }
                }
                say(format!(
                    "{MOMENTUM} and {MEAN_REVERT} start trading beside {VOL_ARB}"
                ));
            }
            Step::VenueDown => {
                // Prices still answer, so every agent keeps deciding and each order fails:
                // order placement is a protected phase, so its 5xx are reported, not dropped
                // as transient noise.
                faults = faults.with_endpoint(
                    Service::Trading,
                    TRADE_OPEN,
                    FaultRule {
                        errors: Some(BTreeMap::from([("503".to_owned(), 1.0)])),
                        ..FaultRule::default()
                    },
                );
                match sandbox.set_faults(faults.clone()) {
                    Ok(()) => say(format!(
                        "fault: the trading venue refuses every order (POST /trade/open answers 503) for 30 s: {VOL_ARB}, {MOMENTUM} and {MEAN_REVERT} all fail on one service (one venue incident, not one alert per agent)"
                    )),
                    Err(e) => say(format!("could not set the venue outage: {e}")),
                }
            }
            Step::VenueBack => {
                without_endpoint(&mut faults, Service::Trading, TRADE_OPEN);
                let _ = sandbox.set_faults(faults.clone());
                say("the trading venue takes orders again".into());
            }
            Step::EscrowFixed => {
                without_endpoint(&mut faults, Service::Escrow, ESCROW_CREATE);
                let _ = sandbox.set_faults(faults.clone());
                say("escrow creation works again".into());
            }
        }
    }
    until_stopped(&mut stopped).await;
    agents.stop_all().await;
}

const TRADE_OPEN: &str = "POST /trade/open";
const ESCROW_CREATE: &str = "POST /escrow/create";

/// Remove the fault rule of one endpoint pattern.
/// The kill switch in action: a rule (`Api::ensure_pause_rule`) pauses `ag_vol_arb` on its
/// first `InsufficientMargin`; its order count stops rising within 2 s (printed twice, 2 s
/// and 7 s after the pause is seen); a resume through the REST API lets it trade again.
async fn kill_switch(
    api: Api,
    controls: Controls,
    print: Printer,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) {
    let say = |s: String| print(&format!("{} {s}", stamp(started)));
    let nap = |d: Duration| tokio::time::sleep(d);
    let waited = Instant::now();
    let paused = loop {
        if let Ok(Some(a)) = api.agent_trading(VOL_ARB).await
            && a["trading"] == "paused"
        {
            break a;
        }
        if waited.elapsed() > Duration::from_secs(90) {
            say(format!(
                "kill switch: {VOL_ARB} was not paused (its rule fires on a new issue: run with --temp to see it)"
            ));
            return;
        }
        tokio::select! {
            () = nap(Duration::from_millis(200)) => {}
            () = until_stopped(&mut stopped) => return,
        }
    };
    let at_pause = controls.orders();
    say(format!(
        "KILL SWITCH: {VOL_ARB} paused by {}: {} ({at_pause} orders so far)",
        paused["pausedBy"]["text"].as_str().unwrap_or("?"),
        paused["pausedReason"].as_str().unwrap_or("")
    ));
    tokio::select! {
        () = nap(Duration::from_secs(2)) => {}
        () = until_stopped(&mut stopped) => return,
    }
    let after_2s = controls.orders();
    tokio::select! {
        () = nap(Duration::from_secs(5)) => {}
        () = until_stopped(&mut stopped) => return,
    }
    let after_7s = controls.orders();
    say(format!(
        "KILL SWITCH: {VOL_ARB} orders {at_pause} at the pause, {after_2s} 2 s later, {after_7s} 7 s later: {}",
        if after_7s == after_2s {
            "orders stopped"
        } else {
            "orders did NOT stop"
        }
    ));
    match api.resume_agent(VOL_ARB).await {
        Ok(()) => say(format!(
            "KILL SWITCH: {VOL_ARB} resumed through the REST API"
        )),
        Err(e) => {
            say(format!("kill switch: resuming {VOL_ARB} failed: {e}"));
            return;
        }
    }
    let resumed = Instant::now();
    while controls.orders() <= after_7s {
        if resumed.elapsed() > Duration::from_secs(150) {
            say(format!(
                "kill switch: {VOL_ARB} placed no order after the resume"
            ));
            return;
        }
        tokio::select! {
            () = nap(Duration::from_millis(250)) => {}
            () = until_stopped(&mut stopped) => return,
        }
    }
    say(format!(
        "KILL SWITCH: {VOL_ARB} trades again ({} orders)",
        controls.orders()
    ));
}

fn without_endpoint(faults: &mut FaultConfig, service: Service, pattern: &str) {
    if let Some(s) = faults.services.get_mut(service.name()) {
        s.endpoints.remove(pattern);
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    WedgeScheduler,
    Shock(u64),
    CrashAndRestart,
    CrashForGood,
    LatencyOn,
    LatencyOff,
    Deploy,
    EscrowFixed,
    VenueAgents,
    VenueDown,
    VenueBack,
}
