//! A small mean-reversion agent instrumented with `lookout-agent`.
//!
//! ```text
//! LOOKOUT_DSN=http://<key>@127.0.0.1:9000/1 cargo run -p lookout-agent --example agent -- 20
//! ```
//!
//! It runs the given number of decision cycles (default 10) on a simulated price, with one
//! order pipeline per signal, decision breadcrumbs, a trading state on every event, session
//! health with heartbeats, and a cron-monitored rebalance every fifth cycle. Without a DSN
//! the monitoring is a no-op and the agent runs the same.
#![allow(clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_agent::breadcrumbs::{ApiResponse, PositionChange, RiskCheck, Signal};
use lookout_agent::cron::CronMonitor;
use lookout_agent::health::{AgentSession, HealthOptions};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Service, Side, Stage, TradingError, TradingErrorKind,
    TradingSnapshot, capture_trading_error,
};

const AGENT_ID: &str = "ag_example";

#[derive(Debug, Default)]
struct Book {
    position: f64,
    cash_usd: f64,
    last_order: Option<String>,
    last_z: f64,
    price: f64,
}

fn z_score(prices: &[f64]) -> f64 {
    let n = prices.len() as f64;
    let mean = prices.iter().sum::<f64>() / n;
    let sd = (prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n).sqrt();
    let last = prices.last().copied().unwrap_or(mean);
    (last - mean) / sd.max(1e-9)
}

/// One order through the pipeline; the "exchange" rejects every seventh order.
fn trade(book: &Mutex<Book>, z: f64, price: f64, n: u64) -> Result<(), TradingError> {
    let side = if z < 0.0 { Side::Buy } else { Side::Sell };
    let mut pipeline = OrderPipeline::start("BTC", side);
    pipeline.stage(Stage::SignalValidate, |s| {
        s.z_score(z);
        s.valid(true);
        Ok(())
    })?;
    let exposure = book.lock().map(|b| b.position.abs() * price).unwrap_or(0.0);
    let risk_ok = exposure < 50_000.0;
    RiskCheck::new("max_exposure_usd", risk_ok, exposure, 50_000.0).record();
    pipeline.stage(Stage::RiskCheck, |s| {
        s.risk_pass(risk_ok);
        if risk_ok {
            Ok(())
        } else {
            Err(TradingError::new(
                TradingErrorKind::RiskLimitBreach,
                "exposure above limit",
            ))
        }
    })?;
    let size_usd = 250.0;
    pipeline.stage(Stage::OrderSize, |s| {
        s.size_usd(size_usd);
        Ok(())
    })?;
    let order_id = format!("ord_{n}");
    pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
        let status = if n.is_multiple_of(7) { 400 } else { 200 };
        ApiResponse::new("POST /v1/trade/open", status, Duration::from_millis(40))
            .order_id(&order_id)
            .record();
        if status == 400 {
            return Err(TradingError::new(
                TradingErrorKind::OrderRejected,
                "leverage above the cap",
            )
            .with_trading("BTC", side, &order_id, None)
            .with_http_status(status));
        }
        s.order_id(&order_id);
        Ok(())
    })?;
    pipeline.stage(Stage::OrderConfirm, |s| {
        s.fill_price(price);
        s.fill_confirmed(true);
        Ok(())
    })?;
    if let Ok(mut b) = book.lock() {
        let qty = size_usd / price;
        b.position += if side == Side::Buy { qty } else { -qty };
        b.cash_usd -= if side == Side::Buy {
            size_usd
        } else {
            -size_usd
        };
        b.last_order = Some(order_id);
    }
    PositionChange::new("BTC", side, size_usd / price, price)
        .rationale(format!("z-score {z:.2} beyond 1.5"))
        .record();
    pipeline.finish(Outcome::Filled);
    Ok(())
}

fn main() {
    let cycles: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let book = Arc::new(Mutex::new(Book {
        cash_usd: 10_000.0,
        price: 64_000.0,
        ..Book::default()
    }));
    let state = Arc::clone(&book);
    let guard = lookout_agent::init(
        Options::new(AGENT_ID)
            .strategy("mean_reversion")
            .release("example-agent@0.1.0")
            .environment("paper")
            .state_provider(move || {
                let b = state.lock().map(|b| {
                    TradingSnapshot::new()
                        .asset("BTC")
                        .open_positions(u64::from(b.position.abs() > 0.0))
                        .portfolio_value_usd(b.cash_usd + b.position * b.price)
                        .last_signal_z(b.last_z)
                });
                b.unwrap_or_default()
            })
            .install_default_subscriber(true),
    );
    let session = AgentSession::start(
        AGENT_ID,
        HealthOptions::new()
            .heartbeat_interval(Duration::from_secs(60))
            .watchdog_timeout(Duration::from_secs(120)),
    );
    let rebalance = CronMonitor::interval(
        "example-rebalance",
        5,
        sentry::protocol::MonitorIntervalUnit::Minute,
    )
    .map(|m| m.checkin_margin(1).max_runtime(2));

    let mut prices: Vec<f64> = Vec::with_capacity(64);
    for n in 1..=cycles {
        session.tick();
        let price = 64_000.0 + (n as f64 * 0.9).sin() * 300.0;
        prices.push(price);
        if prices.len() > 32 {
            prices.remove(0);
        }
        let z = z_score(&prices);
        if let Ok(mut b) = book.lock() {
            b.last_z = z;
            b.price = price;
        }
        let action = if z.abs() > 1.5 { "trade" } else { "hold" };
        Signal::new("BTC", z).action(action).record();
        if action == "trade"
            && let Err(error) = trade(&book, z, price, n)
        {
            // Already captured inside its stage: this sends nothing twice.
            capture_trading_error(&error);
            tracing::warn!(%error, "order failed");
        }
        if n.is_multiple_of(5)
            && let Ok(monitor) = &rebalance
        {
            let result = monitor.run(|| {
                if n.is_multiple_of(10) {
                    Err(
                        TradingError::new(TradingErrorKind::Network, "wallet API timed out")
                            .with_service(Service::Wallet)
                            .with_phase(Phase::BalancePoll),
                    )
                } else {
                    Ok(())
                }
            });
            if let Err(error) = result {
                // Transient outside order placement: the noise filter drops it.
                capture_trading_error(&error);
            }
        }
    }
    session.end();
    let counters = guard.counters().snapshot();
    println!(
        "{cycles} cycles; events escalated {}, filtered {}, dropped (queue full) {}",
        counters.escalated, counters.dropped_by_filter, counters.dropped_queue_full
    );
}
