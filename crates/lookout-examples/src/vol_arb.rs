//! `vol_arb`: a volatility-arbitrage perpetuals trader on BTC and ETH.
//!
//! Each cycle, per asset:
//!
//! 1. **Signal**: the mid from `GET /market/{coin}/price` joins a rolling window; realised
//!    volatility (annualised, from the window's log returns) is compared with the implied
//!    volatility. The sandbox has no options market, so implied vol is a stand-in feed: a
//!    per-asset level with seeded noise, recalibrated by the scheduled job. The z-score of
//!    the realised − implied spread against its own history is the signal: above the
//!    entry threshold go long (vol is expanding), below minus it go short.
//! 2. **Order pipeline** (`order.pipeline` transaction): `signal.validate` (|z| above the
//!    entry threshold), `risk.check` (a volatility circuit breaker — no new risk within the
//!    window after a move above 2 % between two samples — and the position cap),
//!    `order.size` (notional scaled by |z|), `http.client` (`POST /trade/open`), then
//!    `order.confirm` (a fill price and a position id came back).
//! 3. The previous position of the asset is closed first (one position per asset).
//!
//! Decision breadcrumbs (signal, risk checks, position changes) go with every event, and
//! the trading state (open positions, last signal, last order) is attached to every error.
//! A recalibration job runs under the cron monitor `vol-arb-recalibrate`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_agent::breadcrumbs::{PositionChange, RiskCheck, Signal};
use lookout_agent::{
    Options, OrderPipeline, Outcome, Phase, Side, Stage, TradingError, TradingErrorKind,
    TradingSnapshot,
};
use purpleflea_client::trading::{OpenPosition, Side as PfSide};
use purpleflea_client::{Client, Service};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{AgentConfig, ExampleError, Monitor, RunSummary, Shutdown, capture, on_hub};

/// The strategy name (tag `strategy`).
pub const STRATEGY: &str = "vol-arb";

/// One traded asset and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Book {
    /// The coin (`BTC`).
    pub coin: &'static str,
    /// Notional of a full-size order in USD.
    pub notional_usd: f64,
    /// Leverage.
    pub leverage: f64,
    /// The implied-vol level the stand-in feed moves around (annualised, 0.55 = 55 %).
    pub implied_vol: f64,
}

/// The books traded by default: BTC small, ETH large (its order needs ~$500 of margin).
pub fn default_books() -> Vec<Book> {
    vec![
        Book {
            coin: "BTC",
            notional_usd: 500.0,
            leverage: 5.0,
            implied_vol: 0.55,
        },
        Book {
            coin: "ETH",
            notional_usd: 2_500.0,
            leverage: 5.0,
            implied_vol: 0.70,
        },
    ]
}

/// The margin deposited by default in the sandbox (enough for both books).
pub const DEFAULT_FUNDING_USD: f64 = 5_000.0;
/// Samples in the rolling window.
const WINDOW: usize = 20;
/// |z| needed to trade.
const ENTRY_Z: f64 = 0.5;
/// The circuit breaker: largest move between two samples in the window.
const MAX_MOVE: f64 = 0.02;
/// Most open positions at once.
const MAX_POSITIONS: usize = 2;

/// Per-asset state.
#[derive(Debug, Default)]
struct AssetState {
    mids: VecDeque<f64>,
    spreads: VecDeque<f64>,
    position: Option<(String, Side)>,
}

/// What the state provider reports.
#[derive(Debug, Default)]
struct Shared {
    open_positions: u64,
    last_z: Option<f64>,
    last_order: Option<String>,
    last_asset: Option<String>,
    equity_usd: Option<f64>,
}

/// Run the trader until `shutdown`. See the [module docs](self).
pub async fn run(config: AgentConfig, shutdown: Shutdown) -> Result<RunSummary, ExampleError> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let provider = Arc::clone(&shared);
    let options = Options::new(config.agent_id.clone())
        .strategy(STRATEGY)
        .state_provider(move || {
            let s = provider
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut snap = TradingSnapshot::new().open_positions(s.open_positions);
            if let Some(asset) = &s.last_asset {
                snap = snap.asset(asset.clone());
            }
            if let Some(z) = s.last_z {
                snap = snap.last_signal_z(z);
            }
            if let Some(order) = &s.last_order {
                snap = snap.last_order_id(order.clone());
            }
            if let Some(equity) = s.equity_usd {
                snap = snap.portfolio_value_usd(equity);
            }
            snap
        });
    let monitor = Monitor::start(&config, options);
    let hub = Arc::clone(&monitor.hub);
    on_hub(&hub, trade(config, shutdown, monitor, shared)).await
}

async fn trade(
    config: AgentConfig,
    mut shutdown: Shutdown,
    monitor: Monitor,
    shared: Arc<Mutex<Shared>>,
) -> Result<RunSummary, ExampleError> {
    let anon = config.client()?;
    let registration = anon.trading().register(&Default::default()).await?;
    config
        .controls
        .publish_account("trading", &registration.agent_id);
    let funding = config.funding_usd.unwrap_or(DEFAULT_FUNDING_USD);
    if funding > 0.0 {
        config
            .admin()
            .deposit("trading", &registration.agent_id, funding)
            .await?;
    }
    let client = anon.with_api_key(Service::Trading, &registration.api_key)?;
    let books = default_books();
    let implied: Arc<Mutex<BTreeMap<&'static str, f64>>> = Arc::new(Mutex::new(
        books.iter().map(|b| (b.coin, b.implied_vol)).collect(),
    ));

    let session = monitor.session(&config).await;
    let recalibration = {
        let client = client.clone();
        let implied = Arc::clone(&implied);
        let books = books.clone();
        monitor.schedule(
            &config,
            "vol-arb-recalibrate",
            move || recalibrate(client.clone(), books.clone(), Arc::clone(&implied)),
            shutdown.clone(),
        )?
    };

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut assets: BTreeMap<&'static str, AssetState> = BTreeMap::new();
    let mut summary = RunSummary::default();
    let per_year = (365.0 * 24.0 * 3600.0 / config.cycle.as_secs_f64().max(0.001)).sqrt();
    loop {
        session.tick();
        if config.controls.take_crash() {
            // What an `unwrap` on a surprising response does: the panic integration
            // reports it (fatal, unhandled) and the session ends crashed.
            panic!("vol_arb: position book out of sync (simulated crash)");
        }
        summary.cycles += 1;
        for book in &books {
            let state = assets.entry(book.coin).or_default();
            let iv_level = implied
                .lock()
                .map(|m| m.get(book.coin).copied().unwrap_or(book.implied_vol))
                .unwrap_or(book.implied_vol);
            match cycle(&client, book, state, iv_level, per_year, &mut rng, &shared).await {
                Ok(true) => {
                    summary.actions += 1;
                    config.controls.count_order();
                }
                Ok(false) => {}
                Err(error) => {
                    summary.errors += 1;
                    tracing::warn!(agent = %config.agent_id, coin = book.coin, %error, "order failed");
                }
            }
        }
        if shutdown.sleep(config.cycle).await {
            break;
        }
    }
    drop(recalibration);
    // Flatten the book on the way out.
    for state in assets.values_mut() {
        if let Some((position, _)) = state.position.take()
            && let Err(error) = client.trading().close(&position).await
        {
            capture(error);
        }
    }
    session.end();
    monitor.flush().await;
    Ok(summary)
}

/// One asset's cycle: sample, signal, maybe trade. `Ok(true)` when an order filled.
async fn cycle(
    client: &Client,
    book: &Book,
    state: &mut AssetState,
    iv_level: f64,
    per_year: f64,
    rng: &mut StdRng,
    shared: &Arc<Mutex<Shared>>,
) -> Result<bool, TradingError> {
    let price = client
        .trading()
        .price(book.coin)
        .await
        .map_err(|e| e.into_trading_error(Some(Phase::Signal)))?;
    let Some(mid) = price.price.filter(|p| *p > 0.0) else {
        return Ok(false);
    };
    state.mids.push_back(mid);
    if state.mids.len() > WINDOW + 1 {
        state.mids.pop_front();
    }
    if state.mids.len() < 3 {
        return Ok(false);
    }
    let returns: Vec<f64> = state
        .mids
        .iter()
        .zip(state.mids.iter().skip(1))
        .map(|(a, b)| (b / a).ln())
        .collect();
    let rv = stdev(&returns) * per_year;
    let largest_move = returns.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    let iv = iv_level * (1.0 + 0.15 * standard_normal(rng));
    let spread = rv - iv;
    state.spreads.push_back(spread);
    if state.spreads.len() > 50 {
        state.spreads.pop_front();
    }
    let history: Vec<f64> = state.spreads.iter().copied().collect();
    let sd = stdev(&history).max(0.01);
    let z = (spread - mean(&history)) / sd;
    let side = if z >= 0.0 { Side::Buy } else { Side::Sell };
    let action = if z.abs() >= ENTRY_Z {
        side.as_str()
    } else {
        "hold"
    };
    Signal::new(book.coin, z)
        .iv(iv)
        .rv(rv)
        .action(action)
        .record();
    if let Ok(mut s) = shared.lock() {
        s.last_z = Some(z);
        s.last_asset = Some(book.coin.to_owned());
    }
    if z.abs() < ENTRY_Z {
        return Ok(false);
    }

    // One position per asset: close the previous one first.
    if let Some((position, old_side)) = state.position.take() {
        match client.trading().close(&position).await {
            Ok(closed) => {
                if let Ok(mut s) = shared.lock() {
                    s.open_positions = s.open_positions.saturating_sub(1);
                }
                PositionChange::new(
                    book.coin,
                    opposite(old_side),
                    0.0,
                    closed.exit_price.unwrap_or(mid),
                )
                .rationale("rebalance: close before the new signal")
                .record();
            }
            Err(error) => {
                state.position = Some((position, old_side));
                return Err(capture(error));
            }
        }
    }
    let open_positions = {
        let s = shared.lock().map(|s| s.open_positions).unwrap_or(0);
        usize::try_from(s).unwrap_or(usize::MAX)
    };

    let mut pipeline = OrderPipeline::start(book.coin, side);
    pipeline
        .stage_async(Stage::SignalValidate, |s| async move {
            s.z_score(z);
            s.valid(true);
            Ok(())
        })
        .await?;
    pipeline
        .stage_async(Stage::RiskCheck, |s| async move {
            let calm = largest_move <= MAX_MOVE;
            RiskCheck::new("max_move_in_window", calm, largest_move, MAX_MOVE).record();
            let room = open_positions < MAX_POSITIONS;
            RiskCheck::new(
                "max_open_positions",
                room,
                open_positions as f64,
                MAX_POSITIONS as f64,
            )
            .record();
            s.risk_pass(calm && room);
            if !calm {
                return Err(TradingError::new(
                    TradingErrorKind::RiskLimitBreach,
                    format!(
                        "volatility circuit breaker: {:.1} % move in the window (limit {:.1} %)",
                        largest_move * 100.0,
                        MAX_MOVE * 100.0
                    ),
                )
                .with_asset(book.coin));
            }
            if !room {
                return Err(TradingError::new(
                    TradingErrorKind::RiskLimitBreach,
                    "position cap reached",
                )
                .with_asset(book.coin));
            }
            Ok(())
        })
        .await?;
    let size = pipeline
        .stage_async(Stage::OrderSize, |s| async move {
            let size = (book.notional_usd * (z.abs() / 2.0).min(1.0)).max(book.notional_usd * 0.25);
            let size = (size * 100.0).round() / 100.0;
            s.size_usd(size);
            Ok(size)
        })
        .await?;
    let pf_side = match side {
        Side::Buy => PfSide::Long,
        Side::Sell => PfSide::Short,
    };
    let opened = pipeline
        .stage_async(Stage::http("POST", "/trade/open"), |s| async move {
            let opened = client
                .trading()
                .open(&OpenPosition::new(book.coin, pf_side, size).leverage(book.leverage))
                .await
                .map_err(|e| TradingError::from(e).with_asset(book.coin))?;
            if let Some(order) = &opened.order_id {
                s.order_id(order);
            }
            Ok(opened)
        })
        .await?;
    let position_id = opened.position_id.clone();
    pipeline
        .stage_async(Stage::OrderConfirm, |s| {
            let opened = opened.clone();
            async move {
                let price = opened.entry_price.filter(|p| *p > 0.0).ok_or_else(|| {
                    TradingError::new(
                        TradingErrorKind::OrderRejected,
                        "open answered without an entry price",
                    )
                    .with_asset(book.coin)
                })?;
                s.fill_price(price);
                s.fill_confirmed(true);
                if let Some(order) = &opened.order_id {
                    s.order_id(order);
                }
                Ok(())
            }
        })
        .await?;
    pipeline.finish(Outcome::Filled);
    PositionChange::new(book.coin, side, size, opened.entry_price.unwrap_or(mid))
        .rationale(format!("vol spread z = {z:.2}"))
        .record();
    state.position = Some((position_id, side));
    if let Ok(mut s) = shared.lock() {
        s.last_order = opened.order_id.clone();
        s.open_positions = s.open_positions.saturating_add(1).min(MAX_POSITIONS as u64);
    }
    Ok(true)
}

/// The recalibration job: re-anchor each implied-vol level on the markets' reference data.
async fn recalibrate(
    client: Client,
    books: Vec<Book>,
    implied: Arc<Mutex<BTreeMap<&'static str, f64>>>,
) -> Result<(), TradingError> {
    for book in &books {
        let market = client
            .trading()
            .market(book.coin)
            .await
            .map_err(|e| e.into_trading_error(Some(Phase::Signal)))?;
        // Higher leverage caps trade calmer markets: nudge the level by the venue's view.
        let cap = market.max_leverage.unwrap_or(20.0).max(1.0);
        let level = book.implied_vol * (1.0 + (20.0 - cap.min(40.0)) / 400.0);
        if let Ok(mut m) = implied.lock() {
            m.insert(book.coin, level);
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn stdev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(mean(&[]), 0.0);
        assert!((mean(&[1.0, 2.0, 3.0]) - 2.0).abs() < 1e-12);
        assert!((stdev(&[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert_eq!(stdev(&[5.0]), 0.0);
    }

    #[test]
    fn eth_needs_more_margin_than_btc() {
        let books = default_books();
        let margin = |b: &Book| b.notional_usd / b.leverage;
        assert!(margin(&books[1]) > 400.0 && margin(&books[0]) < 150.0);
    }
}
