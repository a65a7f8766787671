//! The README's "Instrumenting a Rust agent in five minutes", verbatim: `tests/readme.rs`
//! checks that the README's `main.rs` is this file. Run with a sandbox
//! (`lookout sandbox`) and, to send, `LOOKOUT_DSN=…`:
//! `cargo run -p lookout-examples --example five_minutes`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{Options, OrderPipeline, Outcome, Side, Stage, TradingError, TradingSnapshot};
use purpleflea_client::sandbox;
use purpleflea_client::trading::OpenPosition;

#[tokio::main]
async fn main() -> Result<(), TradingError> {
    // What the agent is doing now: each event carries it as its `trading` context.
    let state = Arc::new(Mutex::new(TradingSnapshot::new()));
    let live = Arc::clone(&state);
    let _guard = lookout_agent::init(
        Options::new("ag_7f3a9c") // agent id: tag, user, session, heartbeat monitor
            .strategy("momentum") // DSN from LOOKOUT_DSN / SENTRY_DSN, or .dsn("…")
            .release_from_git("momentum-bot") // momentum-bot@<short sha>, else …
            .release_fallback(lookout_agent::crate_release!()) // … this crate's name@version
            .state_provider(move || live.lock().map(|s| s.clone()).unwrap_or_default())
            .install_default_subscriber(true), // logs, and client spans under their stage
    );
    let session = AgentSession::begin(HealthOptions::new());

    let trader = sandbox::register_and_fund_trading("http://127.0.0.1:9100", 10_000.0).await?;
    let client = &trader.client;
    for (cycle, asset) in ["BTC", "ETH", "SOL"]
        .into_iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        session.tick();
        if let Ok(mut now) = state.lock() {
            *now = TradingSnapshot::new()
                .asset(asset)
                .open_positions(cycle as u64);
        }
        let mut pipeline = OrderPipeline::start(asset, Side::Buy);
        let opened = pipeline
            .stage_async(Stage::http("POST", "/v1/trade/open"), |s| async move {
                let order = OpenPosition::new(asset, Side::Buy, 100.0);
                let position = client.trading().open(&order).await?;
                s.order_id(&position.position_id);
                Ok(position)
            })
            .await;
        match opened {
            Ok(_) => pipeline.finish(Outcome::Filled),
            // Already captured by its stage, with asset and phase.
            Err(error) => tracing::warn!(%error, asset, "order failed"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    session.end();
    Ok(())
}
