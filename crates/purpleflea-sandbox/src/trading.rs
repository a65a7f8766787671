//! Trading (`/trading/v1/...`): perpetuals through a simulated Hyperliquid.
//!
//! Each market's mid follows a seeded geometric random walk that steps every 30 s of sandbox
//! time (production caches HL mids for 30 s). Orders are IoC limits at mid ±0.5%: a simple
//! linear book (half-spread plus `depth_usd` of liquidity per 1% of price) fills what lies
//! inside the band; when the book's best price is already outside it ("gapped", a seeded
//! rare event, or forced through `PUT /_admin/trading/markets/{coin}`), the order fails with
//! "Order not filled (may have been placed as resting)". The limit/stop/take-profit monitor
//! runs every 30 s of sandbox time and on `POST /trade/check-limits`.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Days, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::http::{
    ApiError, ApiResult, BadJson, ClientIp, bearer, created, iso, key_hash, num, ok, parse_body,
    present, round2, round6, text, unknown_key,
};
use crate::service::Service;
use crate::state::{AppState, MONITOR_EVERY, World};

/// Hyperliquid's taker fee in basis points.
const HL_FEE_BPS: f64 = 3.5;
/// The IoC band around mid.
const BAND: f64 = 0.005;
/// Smallest order Hyperliquid accepts, in USD notional.
const MIN_ORDER_USD: f64 = 10.0;
/// Pending limit orders per agent.
const MAX_PENDING_LIMITS: usize = 10;

/// A market: (coin, category, start price, max leverage, daily volatility, half-spread bps,
/// depth in USD per 1% of price, probability that the book is gapped past the band).
struct Market {
    coin: &'static str,
    category: &'static str,
    start: f64,
    max_leverage: u32,
    daily_vol: f64,
    half_spread_bps: f64,
    depth_usd: f64,
    gap_probability: f64,
}

// One row of the market table; a constructor keeps the table readable.
#[allow(clippy::too_many_arguments)]
const fn m(
    coin: &'static str,
    category: &'static str,
    start: f64,
    max_leverage: u32,
    daily_vol: f64,
    half_spread_bps: f64,
    depth_usd: f64,
    gap_probability: f64,
) -> Market {
    Market {
        coin,
        category,
        start,
        max_leverage,
        daily_vol,
        half_spread_bps,
        depth_usd,
        gap_probability,
    }
}

const MARKETS: &[Market] = &[
    m("BTC", "crypto", 87_000.0, 40, 0.03, 0.5, 25_000_000.0, 0.0),
    m("ETH", "crypto", 3_100.0, 25, 0.04, 0.5, 10_000_000.0, 0.0),
    m("SOL", "crypto", 140.0, 20, 0.05, 1.0, 3_000_000.0, 0.001),
    m("XRP", "crypto", 2.1, 20, 0.05, 1.0, 2_000_000.0, 0.001),
    m("DOGE", "crypto", 0.17, 10, 0.06, 1.5, 1_000_000.0, 0.002),
    m("HYPE", "crypto", 25.0, 10, 0.07, 2.0, 800_000.0, 0.003),
    m("AVAX", "crypto", 22.0, 10, 0.06, 2.0, 600_000.0, 0.003),
    m("LINK", "crypto", 14.0, 10, 0.06, 2.0, 500_000.0, 0.003),
    m("xyz:TSLA", "stocks", 250.0, 10, 0.035, 3.0, 400_000.0, 0.01),
    m("xyz:NVDA", "stocks", 130.0, 10, 0.03, 3.0, 400_000.0, 0.01),
    m("xyz:AAPL", "stocks", 220.0, 10, 0.015, 3.0, 300_000.0, 0.01),
    m("xyz:MSFT", "stocks", 420.0, 10, 0.015, 3.0, 300_000.0, 0.01),
    m("xyz:GOOGL", "stocks", 170.0, 10, 0.02, 3.0, 250_000.0, 0.01),
    m("xyz:AMZN", "stocks", 200.0, 10, 0.02, 3.0, 250_000.0, 0.01),
    m("xyz:META", "stocks", 600.0, 10, 0.025, 3.0, 250_000.0, 0.01),
    m("xyz:COIN", "stocks", 250.0, 5, 0.05, 4.0, 150_000.0, 0.015),
    m(
        "xyz:GOLD",
        "commodities",
        2_900.0,
        20,
        0.01,
        2.0,
        600_000.0,
        0.005,
    ),
    m(
        "xyz:SILVER",
        "commodities",
        32.0,
        20,
        0.02,
        3.0,
        200_000.0,
        0.01,
    ),
    m(
        "xyz:CL",
        "commodities",
        70.0,
        20,
        0.025,
        3.0,
        300_000.0,
        0.01,
    ),
    m(
        "xyz:XYZ100",
        "indices",
        20_000.0,
        20,
        0.012,
        2.0,
        800_000.0,
        0.005,
    ),
    m("xyz:EUR", "forex", 1.08, 20, 0.005, 1.0, 1_000_000.0, 0.005),
    m(
        "xyz:JPY",
        "forex",
        0.0067,
        20,
        0.006,
        1.0,
        1_000_000.0,
        0.005,
    ),
];

fn market(coin: &str) -> Option<&'static Market> {
    MARKETS.iter().find(|mk| mk.coin == coin)
}

fn ticker(coin: &str) -> &str {
    coin.strip_prefix("xyz:").unwrap_or(coin)
}

fn dex(coin: &str) -> &'static str {
    if coin.starts_with("xyz:") { "xyz" } else { "" }
}

/// Resolves user input (upper-cased; `TSLA` finds `xyz:TSLA`) to a market.
fn resolve(input: &str) -> Option<&'static Market> {
    let upper = input.trim().to_uppercase();
    if let Some(rest) = upper.strip_prefix("XYZ:") {
        return market(&format!("xyz:{rest}"));
    }
    market(&upper).or_else(|| market(&format!("xyz:{upper}")))
}

/// Market conditions that the admin endpoint can override.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conditions {
    half_spread_bps: f64,
    depth_usd: f64,
    gap_probability: f64,
}

#[derive(Debug)]
struct Walk {
    rng: StdRng,
    step: i64,
    price: f64,
    vol: f64,
}

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    referral_code: String,
    tier: &'static str,
    tier_max_leverage: f64,
    tier_max_position: f64,
    max_leverage: f64,
    max_position_usd: f64,
    max_daily_loss_usd: Option<f64>,
    balance: f64,
    total_volume: f64,
    total_fees: f64,
    total_pnl: f64,
    hl_wallet: String,
    hl_generated: bool,
    signing_key: bool,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Long,
    Short,
}

impl Side {
    fn parse(s: &str) -> Option<Side> {
        match s {
            "long" => Some(Side::Long),
            "short" => Some(Side::Short),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Side::Long => "long",
            Side::Short => "short",
        }
    }
    fn open_side(self) -> &'static str {
        match self {
            Side::Long => "buy",
            Side::Short => "sell",
        }
    }
    fn close_side(self) -> &'static str {
        match self {
            Side::Long => "sell",
            Side::Short => "buy",
        }
    }
}

#[derive(Debug, Clone)]
struct Position {
    id: String,
    agent: String,
    coin: String,
    side: Side,
    size_usd: f64,
    entry: f64,
    leverage: f64,
    margin: f64,
    liquidation: f64,
    open: bool,
    pnl: Option<f64>,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    hl_order_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderKind {
    Limit,
    StopLoss,
    TakeProfit,
}

impl OrderKind {
    fn name(self) -> &'static str {
        match self {
            OrderKind::Limit => "limit",
            OrderKind::StopLoss => "stop_loss",
            OrderKind::TakeProfit => "take_profit",
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    id: String,
    agent: String,
    kind: OrderKind,
    coin: String,
    side: Side,
    size_usd: f64,
    price: f64,
    leverage: f64,
    status: &'static str,
    position_id: Option<String>,
    created_at: DateTime<Utc>,
    filled_at: Option<DateTime<Utc>>,
    fill_price: Option<f64>,
    error: Option<String>,
    simulated: bool,
}

impl Order {
    fn view(&self) -> Value {
        let mut v = json!({
            "order_id": self.id,
            "order_type": self.kind.name(),
            "coin": self.coin,
            "ticker": ticker(&self.coin),
            "side": match self.kind {
                OrderKind::Limit => self.side.name(),
                _ => self.side.close_side(),
            },
            "size_usd": self.size_usd,
            "leverage": self.leverage,
            "status": self.status,
            "position_id": self.position_id,
            "created_at": iso(self.created_at),
            "filled_at": self.filled_at.map(iso),
            "fill_price": self.fill_price,
            "error": self.error,
        });
        if self.simulated {
            v["execution"] = json!("simulated");
        }
        let key = if self.kind == OrderKind::Limit {
            "limit_price"
        } else {
            "trigger_price"
        };
        v[key] = json!(self.price);
        v
    }
}

#[derive(Debug, Clone)]
struct Trade {
    id: String,
    agent: String,
    order_id: String,
    coin: String,
    side: &'static str,
    size_usd: f64,
    price: f64,
    fee: f64,
    realized_pnl: Option<f64>,
    created_at: DateTime<Utc>,
}

/// The trading service's data.
#[derive(Debug)]
pub(crate) struct TradingState {
    seed: u64,
    walks: HashMap<String, Walk>,
    conditions: HashMap<String, Conditions>,
    agents: HashMap<String, Agent>,
    keys: HashMap<String, String>,
    positions: BTreeMap<String, Position>,
    orders: BTreeMap<String, Order>,
    trades: Vec<Trade>,
    hl_order_seq: u64,
}

impl TradingState {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            walks: HashMap::new(),
            conditions: HashMap::new(),
            agents: HashMap::new(),
            keys: HashMap::new(),
            positions: BTreeMap::new(),
            orders: BTreeMap::new(),
            trades: Vec::new(),
            hl_order_seq: 40_000_000_000,
        }
    }

    /// Whether the monitor has anything to check.
    pub(crate) fn has_pending(&self) -> bool {
        self.orders.values().any(|o| o.status == "pending")
    }

    /// Adds margin to an agent's simulated Hyperliquid account.
    pub(crate) fn deposit(&mut self, agent_id: &str, amount: f64) -> Option<f64> {
        let a = self.agents.get_mut(agent_id)?;
        a.balance = round6(a.balance + amount);
        Some(a.balance)
    }

    fn conditions(&self, mk: &Market) -> Conditions {
        self.conditions.get(mk.coin).copied().unwrap_or(Conditions {
            half_spread_bps: mk.half_spread_bps,
            depth_usd: mk.depth_usd,
            gap_probability: mk.gap_probability,
        })
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The mid of `coin` at time `t` (walk step = 30 s of sandbox time since start).
fn mid(w: &mut World, mk: &Market, t: DateTime<Utc>) -> f64 {
    let step = (t - w.started).num_milliseconds().max(0) / MONITOR_EVERY.num_milliseconds();
    let seed = w.trading.seed;
    let walk = w
        .trading
        .walks
        .entry(mk.coin.to_owned())
        .or_insert_with(|| Walk {
            rng: StdRng::seed_from_u64(seed ^ fnv(mk.coin)),
            step: 0,
            price: mk.start,
            vol: mk.daily_vol / (2880.0_f64).sqrt(),
        });
    // Over very long clock jumps, collapse the bulk of the steps into one draw (the sum of
    // k step log-returns is normal with k times the variance) so catching up stays cheap.
    const MAX_STEPS: i64 = 200_000;
    if step - walk.step > MAX_STEPS {
        let k = (step - walk.step - MAX_STEPS) as f64;
        let u1: f64 = walk.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = walk.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let sd = walk.vol * k.sqrt();
        walk.price *= (sd * z - sd * sd / 2.0).exp();
        walk.step = step - MAX_STEPS;
    }
    while walk.step < step {
        walk.step += 1;
        let u1: f64 = walk.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = walk.rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        walk.price *= (walk.vol * z - walk.vol * walk.vol / 2.0).exp();
    }
    sig(walk.price, 6)
}

/// Rounds to `digits` significant digits (HL prices have 5–6).
fn sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits - 1 - magnitude);
    (x * factor).round() / factor
}

/// Sets the mid of a market now (admin), keeping the walk going from there.
pub(crate) fn set_market(
    w: &mut World,
    coin: &str,
    price: Option<f64>,
    half_spread_bps: Option<f64>,
    depth_usd: Option<f64>,
    gap_probability: Option<f64>,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let mk = resolve(coin).ok_or_else(|| ApiError::new(404, "market_not_found"))?;
    mid(w, mk, now);
    if let Some(p) = price
        && let Some(walk) = w.trading.walks.get_mut(mk.coin)
    {
        walk.price = p;
    }
    let mut c = w.trading.conditions(mk);
    if let Some(v) = half_spread_bps {
        c.half_spread_bps = v;
    }
    if let Some(v) = depth_usd {
        c.depth_usd = v;
    }
    if let Some(v) = gap_probability {
        c.gap_probability = v;
    }
    w.trading.conditions.insert(mk.coin.to_owned(), c);
    Ok(json!({
        "coin": mk.coin,
        "price": mid(w, mk, now),
        "half_spread_bps": c.half_spread_bps,
        "depth_usd": c.depth_usd,
        "gap_probability": c.gap_probability,
    }))
}

struct Fill {
    price: f64,
    size_usd: f64,
    hl_order_id: u64,
}

const NOT_FILLED: &str = "Order not filled (may have been placed as resting)";

/// An IoC at mid ±0.5% against the simulated book. `reduce_only` closes fill in full.
fn execute(
    w: &mut World,
    mk: &Market,
    buy: bool,
    size_usd: f64,
    reduce_only: bool,
    t: DateTime<Utc>,
) -> Result<Fill, String> {
    let mid = mid(w, mk, t);
    let c = w.trading.conditions(mk);
    let mut half_spread = c.half_spread_bps / 10_000.0;
    if c.gap_probability > 0.0 && w.unit() < c.gap_probability {
        half_spread = 0.006 + w.unit() * 0.014;
    }
    if half_spread >= BAND {
        return Err(NOT_FILLED.to_owned());
    }
    let depth = c.depth_usd.max(1.0);
    let room = depth * (BAND - half_spread) / 0.01;
    let filled = if reduce_only {
        size_usd
    } else {
        size_usd.min(room)
    };
    let end = (half_spread + filled / depth * 0.01).min(BAND);
    let distance = (half_spread + end) / 2.0;
    let price = if buy {
        mid * (1.0 + distance)
    } else {
        mid * (1.0 - distance)
    };
    w.trading.hl_order_seq += 1 + (w.unit() * 1000.0) as u64;
    Ok(Fill {
        price: sig(price, 6),
        size_usd: round2(filled),
        hl_order_id: w.trading.hl_order_seq,
    })
}

fn fee_parts(size_usd: f64, tier: &str) -> (f64, f64) {
    let builder_bps = match tier {
        "pro" => 1.0,
        "whale" => 0.0,
        _ => 2.0,
    };
    (
        round6(size_usd * HL_FEE_BPS / 10_000.0),
        round6(size_usd * builder_bps / 10_000.0),
    )
}

fn liquidation(entry: f64, lev: f64, side: Side) -> f64 {
    let p = match side {
        Side::Long => entry * (1.0 - 1.0 / lev + 0.005),
        Side::Short => entry * (1.0 + 1.0 / lev - 0.005),
    };
    sig(p, 6)
}

fn pnl(p: &Position, price: f64) -> f64 {
    let change = (price - p.entry) / p.entry;
    match p.side {
        Side::Long => round2(p.size_usd * change),
        Side::Short => round2(-p.size_usd * change),
    }
}

/// Opens a position at market; the error is the `trade_failed` message.
fn open_position(
    w: &mut World,
    agent_id: &str,
    mk: &Market,
    side: Side,
    size_usd: f64,
    lev: f64,
    t: DateTime<Utc>,
) -> Result<Value, String> {
    let Some(agent) = w.trading.agents.get(agent_id).cloned() else {
        return Err("Agent not found".to_owned());
    };
    if lev > f64::from(mk.max_leverage) {
        return Err(format!(
            "Max leverage for {} is {}x",
            ticker(mk.coin),
            mk.max_leverage
        ));
    }
    if size_usd < MIN_ORDER_USD {
        return Err("Position size too small".to_owned());
    }
    let (hl_fee, builder) = fee_parts(size_usd, agent.tier);
    let locked: f64 = w
        .trading
        .positions
        .values()
        .filter(|p| p.open && p.agent == agent_id)
        .map(|p| p.margin)
        .sum();
    if agent.balance - locked < size_usd / lev + hl_fee + builder - 1e-9 {
        return Err("Order error: Insufficient margin to place order.".to_owned());
    }
    let fill = execute(w, mk, side == Side::Long, size_usd, false, t)?;
    let (hl_fee, builder) = fee_parts(fill.size_usd, agent.tier);
    let fee = round6(hl_fee + builder);
    let margin = round2(fill.size_usd / lev);
    let liq = liquidation(fill.price, lev, side);
    let order_id = format!("ord_{}", w.uuid());
    let position_id = format!("pos_{}", w.uuid());
    let trade_id = format!("trd_{}", w.uuid());
    w.trading.positions.insert(
        position_id.clone(),
        Position {
            id: position_id.clone(),
            agent: agent_id.to_owned(),
            coin: mk.coin.to_owned(),
            side,
            size_usd: fill.size_usd,
            entry: fill.price,
            leverage: lev,
            margin,
            liquidation: liq,
            open: true,
            pnl: None,
            opened_at: t,
            closed_at: None,
            hl_order_id: fill.hl_order_id,
        },
    );
    w.trading.trades.push(Trade {
        id: trade_id,
        agent: agent_id.to_owned(),
        order_id: order_id.clone(),
        coin: mk.coin.to_owned(),
        side: side.open_side(),
        size_usd: fill.size_usd,
        price: fill.price,
        fee,
        realized_pnl: None,
        created_at: t,
    });
    if let Some(a) = w.trading.agents.get_mut(agent_id) {
        a.balance = round6(a.balance - fee);
        a.total_volume += fill.size_usd;
        a.total_fees += fee;
    }
    Ok(json!({
        "position_id": position_id,
        "order_id": order_id,
        "coin": mk.coin,
        "ticker": ticker(mk.coin),
        "category": mk.category,
        "dex": dex(mk.coin),
        "side": side.name(),
        "size_usd": fill.size_usd,
        "requested_size_usd": size_usd,
        "entry_price": fill.price,
        "leverage": lev,
        "max_leverage": mk.max_leverage,
        "margin_used": margin,
        "liquidation_price": liq,
        "fee": fee,
        "fee_breakdown": {"hyperliquid": hl_fee, "purple_flea_builder": builder},
        "hl_order_id": fill.hl_order_id,
        "execution": "real",
        "status": "open",
    }))
}

/// Closes a whole position at market; the error is the `close_failed` message.
fn close_position(w: &mut World, position_id: &str, t: DateTime<Utc>) -> Result<Value, String> {
    let Some(p) = w.trading.positions.get(position_id).cloned() else {
        return Err("Position not found".to_owned());
    };
    let mk = market(&p.coin).ok_or_else(|| "Market not found".to_owned())?;
    let tier = w.trading.agents.get(&p.agent).map_or("free", |a| a.tier);
    let fill = execute(w, mk, p.side == Side::Short, p.size_usd, true, t)?;
    let realized = pnl(&p, fill.price);
    let change = (fill.price - p.entry) / p.entry;
    let (hl_fee, builder) = fee_parts(p.size_usd, tier);
    let fee = round6(hl_fee + builder);
    let order_id = format!("ord_{}", w.uuid());
    let trade_id = format!("trd_{}", w.uuid());
    if let Some(pos) = w.trading.positions.get_mut(position_id) {
        pos.open = false;
        pos.pnl = Some(realized);
        pos.closed_at = Some(t);
    }
    w.trading.trades.push(Trade {
        id: trade_id,
        agent: p.agent.clone(),
        order_id,
        coin: p.coin.clone(),
        side: p.side.close_side(),
        size_usd: p.size_usd,
        price: fill.price,
        fee,
        realized_pnl: Some(realized),
        created_at: t,
    });
    if let Some(a) = w.trading.agents.get_mut(&p.agent) {
        a.balance = round6(a.balance + realized - fee);
        a.total_volume += p.size_usd;
        a.total_fees += fee;
        a.total_pnl += realized;
    }
    // Exit orders die with their position.
    for o in w.trading.orders.values_mut() {
        if o.position_id.as_deref() == Some(position_id)
            && o.status == "pending"
            && o.kind != OrderKind::Limit
        {
            o.status = "cancelled";
        }
    }
    Ok(json!({
        "position_id": p.id,
        "coin": p.coin,
        "ticker": ticker(&p.coin),
        "side": p.side.name(),
        "entry_price": p.entry,
        "exit_price": fill.price,
        "size_usd": p.size_usd,
        "leverage": p.leverage,
        "pnl": realized,
        "pnl_percent": round2(change * 100.0 * if p.side == Side::Long { 1.0 } else { -1.0 }),
        "fee": fee,
        "hl_order_id": fill.hl_order_id,
        "execution": "real",
        "status": "closed",
    }))
}

/// One pass of the limit/stop monitor at time `t`; returns the orders it triggered.
pub(crate) fn monitor_pass(w: &mut World, t: DateTime<Utc>) -> Vec<Value> {
    let pending: Vec<Order> = w
        .trading
        .orders
        .values()
        .filter(|o| o.status == "pending")
        .cloned()
        .collect();
    let mut triggered = Vec::new();
    for order in pending {
        // An earlier order of this pass may have closed the position.
        if w.trading
            .orders
            .get(&order.id)
            .is_none_or(|o| o.status != "pending")
        {
            continue;
        }
        let Some(mk) = market(&order.coin) else {
            continue;
        };
        let price = mid(w, mk, t);
        let fire = match (order.kind, order.side) {
            (OrderKind::Limit, Side::Long) => price <= order.price,
            (OrderKind::Limit, Side::Short) => price >= order.price,
            (OrderKind::StopLoss, Side::Long) | (OrderKind::TakeProfit, Side::Short) => {
                price <= order.price
            }
            (OrderKind::StopLoss, Side::Short) | (OrderKind::TakeProfit, Side::Long) => {
                price >= order.price
            }
        };
        if !fire {
            continue;
        }
        let can_execute = w
            .trading
            .agents
            .get(&order.agent)
            .is_some_and(|a| a.signing_key);
        if order.kind == OrderKind::Limit && !can_execute {
            // Without an HL key the service marks the order filled ("simulated"), no position.
            if let Some(o) = w.trading.orders.get_mut(&order.id) {
                o.status = "filled";
                o.filled_at = Some(t);
                o.fill_price = Some(price);
                o.simulated = true;
                triggered.push(json!({"order": o.view(), "simulated": true}));
            }
            continue;
        }
        let result = match order.kind {
            OrderKind::Limit => open_position(
                w,
                &order.agent,
                mk,
                order.side,
                order.size_usd,
                order.leverage,
                t,
            ),
            _ => match order.position_id.as_deref() {
                Some(pid) => close_position(w, pid, t),
                None => Err("Position not found".to_owned()),
            },
        };
        let Some(o) = w.trading.orders.get_mut(&order.id) else {
            continue;
        };
        match result {
            Ok(v) => {
                o.status = "filled";
                o.filled_at = Some(t);
                o.fill_price = v
                    .get("entry_price")
                    .or_else(|| v.get("exit_price"))
                    .and_then(Value::as_f64);
                if o.kind == OrderKind::Limit {
                    o.position_id = v
                        .get("position_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                }
                triggered.push(json!({"order": o.view(), "result": v}));
            }
            Err(message) => {
                o.status = "failed";
                o.error = Some(message.clone());
                triggered.push(json!({"order": o.view(), "error": message}));
            }
        }
    }
    triggered
}

/// The trading router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/account", get(account))
        .route("/v1/markets", get(markets))
        .route("/v1/markets/{coin}", get(market_route))
        .route("/v1/markets/{coin}/price", get(price_route))
        .route("/v1/trade/open", post(open))
        .route("/v1/trade/close", post(close))
        .route("/v1/trade/positions", get(positions))
        .route("/v1/trade/history", get(history))
        .route("/v1/trade/limit", post(limit))
        .route("/v1/trade/limit-orders", get(limit_orders))
        .route("/v1/trade/limit-orders/{id}", delete(cancel_order))
        .route("/v1/trade/check-limits", post(check_limits))
        .route("/v1/trade/stop-loss", post(stop_loss))
        .route("/v1/trade/take-profit", post(take_profit))
        .route(
            "/v1/trade/risk-settings",
            post(risk_settings).get(get_risk_settings),
        )
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "agent-trading"}))
}

fn wallet_not_configured() -> ApiError {
    ApiError::new(400, "wallet_not_configured").msg(
        "Hyperliquid wallet not configured. Register with hl_wallet_address and hl_signing_key for real execution.",
    )
}

fn auth(w: &World, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = bearer(headers)?;
    w.trading
        .keys
        .get(&key_hash(key))
        .cloned()
        .ok_or_else(|| unknown_key(Service::Trading))
}

fn agent<'a>(w: &'a World, id: &str) -> Result<&'a Agent, ApiError> {
    w.trading
        .agents
        .get(id)
        .ok_or_else(|| unknown_key(Service::Trading))
}

async fn register(State(st): State<AppState>, ClientIp(ip): ClientIp, body: Bytes) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        w.limit(cx, "/v1/auth/register", &ip, 10)?;
        let id = format!("ag_{}", w.hex(12));
        let api_key = format!("sk_trade_{}", w.hex(48));
        let referral_code = format!("ref_{}", w.hex(8));
        // A given wallet is used as is; without its signing key the agent cannot execute.
        let given = text(&body, "hl_wallet_address")
            .filter(|a| a.len() == 42 && a.starts_with("0x"))
            .map(str::to_owned);
        let hl_generated = given.is_none();
        let signing_key = hl_generated || present(&body, "hl_signing_key");
        let hl_wallet = match given {
            Some(a) => a,
            None => format!("0x{}", w.hex(40)),
        };
        let agent = Agent {
            id: id.clone(),
            referral_code: referral_code.clone(),
            tier: "free",
            tier_max_leverage: 10.0,
            tier_max_position: 10_000.0,
            max_leverage: 10.0,
            max_position_usd: 10_000.0,
            max_daily_loss_usd: None,
            balance: w.trading_starting_balance_usd,
            total_volume: 0.0,
            total_fees: 0.0,
            total_pnl: 0.0,
            hl_wallet: hl_wallet.clone(),
            hl_generated,
            signing_key,
            created_at: cx.now,
        };
        w.trading.keys.insert(key_hash(&api_key), id.clone());
        w.trading.agents.insert(id.clone(), agent);
        created(json!({
            "agent_id": id,
            "api_key": api_key,
            "referral_code": referral_code,
            "tier": "free",
            "max_leverage": 10,
            "max_position_usd": 10_000,
            "deposit_address": hl_wallet,
            "hl_wallet": {
                "address": hl_wallet,
                "generated": hl_generated,
                "network": "hyperliquid",
                "deposit_instructions": "Deposit USDC to this address on Hyperliquid (via Arbitrum bridge) to fund margin",
            },
            "message": "Store your API key: it is shown once.",
        }))
    })
}

fn account_balance(w: &World, a: &Agent) -> (f64, f64) {
    let locked: f64 = w
        .trading
        .positions
        .values()
        .filter(|p| p.open && p.agent == a.id)
        .map(|p| p.margin)
        .sum();
    (round2(a.balance), round2(a.balance - locked))
}

async fn account(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let a = agent(w, &id)?;
        let (value, available) = account_balance(w, a);
        ok(json!({
            "agent_id": a.id,
            "tier": a.tier,
            "max_leverage": a.max_leverage,
            "max_position_usd": a.max_position_usd,
            "max_daily_loss_usd": a.max_daily_loss_usd,
            "total_volume": round2(a.total_volume),
            "total_fees_paid": round6(a.total_fees),
            "total_pnl": round2(a.total_pnl),
            "referral_code": a.referral_code,
            "hl_wallet_address": a.hl_wallet,
            "hl_wallet_generated": a.hl_generated,
            "hl_account": {"account_value": value, "withdrawable": available},
            "created_at": iso(a.created_at),
        }))
    })
}

fn market_view(w: &mut World, mk: &'static Market, now: DateTime<Utc>) -> Value {
    json!({
        "coin": mk.coin,
        "display_name": ticker(mk.coin),
        "ticker": ticker(mk.coin),
        "price": mid(w, mk, now),
        "max_leverage": mk.max_leverage,
        "category": mk.category,
        "dex": dex(mk.coin),
    })
}

async fn markets(State(st): State<AppState>) -> Response {
    st.run(|w, cx| {
        let mut categories = serde_json::Map::new();
        for mk in MARKETS {
            let view = market_view(w, mk, cx.now);
            let entry = categories
                .entry(mk.category.to_owned())
                .or_insert_with(|| json!({"count": 0, "markets": []}));
            if let Some(list) = entry["markets"].as_array_mut() {
                list.push(view);
                let n = list.len();
                entry["count"] = json!(n);
            }
        }
        ok(json!({
            "total_markets": MARKETS.len(),
            "categories": categories,
            "updated_at": iso(cx.now),
        }))
    })
}

fn market_not_found(coin: &str) -> ApiError {
    ApiError::new(404, "market_not_found").msg(format!("Market '{coin}' not found"))
}

async fn market_route(State(st): State<AppState>, Path(coin): Path<String>) -> Response {
    st.run(|w, cx| {
        let mk = resolve(&coin).ok_or_else(|| market_not_found(&coin))?;
        let mut v = market_view(w, mk, cx.now);
        v["min_order_usd"] = json!(MIN_ORDER_USD);
        ok(v)
    })
}

async fn price_route(State(st): State<AppState>, Path(coin): Path<String>) -> Response {
    st.run(|w, cx| {
        let mk = resolve(&coin).ok_or_else(|| market_not_found(&coin))?;
        ok(json!({
            "coin": mk.coin,
            "ticker": ticker(mk.coin),
            "price": mid(w, mk, cx.now),
            "timestamp": cx.now.timestamp_millis(),
        }))
    })
}

/// The start of the next UTC day.
fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    now.date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now + TimeDelta::days(1), |d| d.and_utc())
}

fn daily_loss_gate(w: &World, a: &Agent, now: DateTime<Utc>) -> Result<(), ApiError> {
    let Some(limit) = a.max_daily_loss_usd else {
        return Ok(());
    };
    let midnight = next_midnight(now) - TimeDelta::days(1);
    let today: f64 = w
        .trading
        .trades
        .iter()
        .filter(|t| t.agent == a.id && t.created_at >= midnight)
        .filter_map(|t| t.realized_pnl)
        .sum();
    if -today >= limit {
        return Err(ApiError::new(403, "daily_loss_limit_reached")
            .msg(format!(
                "Daily loss limit of ${limit} reached; trading resumes at midnight UTC"
            ))
            .with("daily_pnl", round2(today))
            .with("max_daily_loss_usd", limit)
            .with("resets_at", iso(next_midnight(now))));
    }
    Ok(())
}

async fn open(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        w.limit(cx, "/v1/trade/open", &ip, 30)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let truthy = |k: &str| match body.get(k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
            Some(_) => true,
        };
        if !truthy("coin") || !truthy("side") || !truthy("size_usd") {
            return Err(ApiError::new(400, "invalid_request")
                .msg("Provide coin, side (long/short), size_usd")
                .with(
                    "examples",
                    json!({
                        "crypto": {"coin": "BTC", "side": "long", "size_usd": 5000, "leverage": 3},
                        "stock": {"coin": "TSLA", "side": "long", "size_usd": 1000, "leverage": 5},
                    }),
                ));
        }
        let size_usd = num(&body, "size_usd").filter(|s| *s > 0.0).ok_or_else(|| {
            ApiError::new(400, "invalid_size").msg("size_usd must be a positive number")
        })?;
        let side = text(&body, "side").and_then(Side::parse).ok_or_else(|| {
            ApiError::new(400, "invalid_side").msg("side must be 'long' or 'short'")
        })?;
        let leverage = match body.get("leverage") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|l| l.is_finite() && *l >= 1.0)
                    .ok_or_else(|| {
                        ApiError::new(400, "invalid_leverage").msg("leverage must be a number >= 1")
                    })?,
            ),
        };
        let a = agent(w, &id)?.clone();
        let lev = leverage.unwrap_or(5.0).min(a.max_leverage);
        if size_usd > a.max_position_usd {
            return Err(ApiError::new(400, "position_too_large")
                .msg(format!(
                    "Max position size is ${}. Upgrade tier for higher limits.",
                    a.max_position_usd
                ))
                .with("max_position_usd", a.max_position_usd));
        }
        if !a.signing_key {
            return Err(wallet_not_configured());
        }
        daily_loss_gate(w, &a, cx.now)?;
        let coin = text(&body, "coin").unwrap_or("");
        let Some(mk) = resolve(coin) else {
            return Err(ApiError::new(400, "trade_failed").msg("Market not found"));
        };
        open_position(w, &id, mk, side, size_usd, lev, cx.now)
            .map_err(|m| ApiError::new(400, "trade_failed").msg(m))
            .and_then(ok)
    })
}

async fn close(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let Some(position_id) = text(&body, "position_id").filter(|p| !p.is_empty()) else {
            return Err(ApiError::new(400, "provide position_id"));
        };
        let found = w
            .trading
            .positions
            .get(position_id)
            .is_some_and(|p| p.agent == id && p.open);
        if !found {
            return Err(ApiError::new(404, "position_not_found"));
        }
        if !agent(w, &id)?.signing_key {
            return Err(wallet_not_configured());
        }
        close_position(w, position_id, cx.now)
            .map_err(|m| ApiError::new(400, "close_failed").msg(m))
            .and_then(ok)
    })
}

type QueryMap = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

async fn positions(State(st): State<AppState>, headers: HeaderMap, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let all = query.get("status").is_some_and(|s| s == "all");
        let mut mine: Vec<Position> = w
            .trading
            .positions
            .values()
            .filter(|p| p.agent == id && (all || p.open))
            .cloned()
            .collect();
        mine.sort_by_key(|p| std::cmp::Reverse(p.opened_at));
        let mut out = Vec::new();
        for p in mine.iter().take(if all { 50 } else { usize::MAX }) {
            let Some(mk) = market(&p.coin) else { continue };
            let price = mid(w, mk, cx.now);
            let unrealized = if p.open { pnl(p, price) } else { p.pnl.unwrap_or(0.0) };
            if all {
                // Database rows (camelCase, as the service spreads them) plus live fields.
                out.push(json!({
                    "id": p.id, "agentId": p.agent, "coin": p.coin, "side": p.side.name(),
                    "sizeUsd": p.size_usd, "entryPrice": p.entry, "leverage": p.leverage,
                    "marginUsed": p.margin, "liquidationPrice": p.liquidation,
                    "status": if p.open { "open" } else { "closed" },
                    "unrealizedPnl": p.pnl, "hlOrderId": p.hl_order_id.to_string(),
                    "openedAt": p.opened_at.timestamp(), "closedAt": p.closed_at.map(|c| c.timestamp()),
                    "ticker": ticker(&p.coin), "current_price": price, "unrealized_pnl": unrealized,
                }));
            } else {
                out.push(json!({
                    "position_id": p.id,
                    "coin": p.coin,
                    "ticker": ticker(&p.coin),
                    "side": p.side.name(),
                    "size": round6(p.size_usd / p.entry),
                    "size_usd": p.size_usd,
                    "entry_price": p.entry,
                    "current_price": price,
                    "leverage": p.leverage,
                    "margin_used": p.margin,
                    "liquidation_price": p.liquidation,
                    "unrealized_pnl": unrealized,
                    "return_on_equity": round6(unrealized / p.margin.max(1e-9)),
                    "source": "hyperliquid",
                }));
            }
        }
        ok(json!({
            "count": out.len(),
            "positions": out,
            "source": if all { "database" } else { "hyperliquid" },
        }))
    })
}

async fn history(State(st): State<AppState>, headers: HeaderMap, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(50)
            .min(200);
        let trades: Vec<Value> = w
            .trading
            .trades
            .iter()
            .rev()
            .filter(|t| t.agent == id)
            .take(limit)
            .map(|t| {
                json!({
                    "id": t.id, "agentId": t.agent, "orderId": t.order_id, "coin": t.coin,
                    "side": t.side, "sizeUsd": t.size_usd, "price": t.price, "fee": t.fee,
                    "realizedPnl": t.realized_pnl, "createdAt": t.created_at.timestamp(),
                })
            })
            .collect();
        ok(json!({"count": trades.len(), "trades": trades}))
    })
}

async fn limit(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        for k in ["coin", "side", "size_usd", "limit_price"] {
            if !present(&body, k) {
                return Err(ApiError::new(400, "invalid_request")
                    .msg("Provide coin, side (long/short), size_usd, limit_price"));
            }
        }
        let side = text(&body, "side").and_then(Side::parse).ok_or_else(|| {
            ApiError::new(400, "invalid_side").msg("side must be 'long' or 'short'")
        })?;
        let size_usd = num(&body, "size_usd").filter(|s| *s > 0.0).ok_or_else(|| {
            ApiError::new(400, "invalid_size").msg("size_usd must be a positive number")
        })?;
        let limit_price = num(&body, "limit_price")
            .filter(|p| *p > 0.0)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_price").msg("limit_price must be a positive number")
            })?;
        let a = agent(w, &id)?.clone();
        if size_usd > a.max_position_usd {
            return Err(ApiError::new(400, "too_large")
                .msg(format!("Max position size is ${}", a.max_position_usd))
                .with("max_position_usd", a.max_position_usd));
        }
        let coin = text(&body, "coin").unwrap_or("");
        let mk = resolve(coin).ok_or_else(|| {
            ApiError::new(400, "unknown_coin").msg(format!("Unknown coin '{coin}'"))
        })?;
        let pending = w
            .trading
            .orders
            .values()
            .filter(|o| o.agent == id && o.kind == OrderKind::Limit && o.status == "pending")
            .count();
        if pending >= MAX_PENDING_LIMITS {
            return Err(ApiError::new(400, "limit_reached")
                .msg(format!("At most {MAX_PENDING_LIMITS} pending limit orders")));
        }
        let lev = num(&body, "leverage")
            .filter(|l| *l >= 1.0)
            .unwrap_or(5.0)
            .min(a.max_leverage);
        let order = Order {
            id: format!("ord_{}", w.uuid()),
            agent: id,
            kind: OrderKind::Limit,
            coin: mk.coin.to_owned(),
            side,
            size_usd,
            price: limit_price,
            leverage: lev,
            status: "pending",
            position_id: None,
            created_at: cx.now,
            filled_at: None,
            fill_price: None,
            error: None,
            simulated: false,
        };
        let mut v = order.view();
        v["current_price"] = json!(mid(w, mk, cx.now));
        v["trigger_condition"] = json!(match side {
            Side::Long => format!("price <= {limit_price}"),
            Side::Short => format!("price >= {limit_price}"),
        });
        v["message"] = json!("Limit order placed; it fills at market once the trigger is reached");
        w.trading.orders.insert(order.id.clone(), order);
        created(v)
    })
}

async fn limit_orders(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let mut groups: BTreeMap<&str, Vec<Value>> = ["pending", "filled", "cancelled", "failed"]
            .into_iter()
            .map(|k| (k, Vec::new()))
            .collect();
        let mut mine: Vec<&Order> = w
            .trading
            .orders
            .values()
            .filter(|o| o.agent == id)
            .collect();
        mine.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        for o in mine {
            groups.entry(o.status).or_default().push(o.view());
        }
        ok(json!(groups))
    })
}

async fn cancel_order(
    State(st): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let order = w
            .trading
            .orders
            .get_mut(&order_id)
            .filter(|o| o.agent == id)
            .ok_or_else(|| ApiError::new(404, "order_not_found"))?;
        if order.status != "pending" {
            return Err(ApiError::new(400, "not_pending")
                .msg(format!("Order is {}", order.status))
                .with("status", order.status));
        }
        order.status = "cancelled";
        order.filled_at = None;
        let mut v = order.view();
        v["cancelled_at"] = json!(iso(cx.now));
        ok(v)
    })
}

async fn check_limits(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, cx| {
        auth(w, &headers)?;
        let checked = w
            .trading
            .orders
            .values()
            .filter(|o| o.status == "pending")
            .count();
        let triggered = monitor_pass(w, cx.now);
        ok(json!({"checked": checked, "triggered": triggered, "count": triggered.len()}))
    })
}

fn exit_order(st: &AppState, headers: &HeaderMap, body: &Bytes, kind: OrderKind) -> Response {
    st.run(|w, cx| {
        let id = auth(w, headers)?;
        let body = parse_body(body, BadJson::InvalidJson)?;
        let position_id = text(&body, "position_id").unwrap_or("");
        let p = w
            .trading
            .positions
            .get(position_id)
            .filter(|p| p.agent == id)
            .cloned()
            .ok_or_else(|| ApiError::new(404, "position_not_found"))?;
        if !p.open {
            return Err(ApiError::new(400, "position_not_open").msg("Position is already closed"));
        }
        let trigger = num(&body, "trigger_price")
            .filter(|t| *t > 0.0)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_trigger_price")
                    .msg("trigger_price must be a positive number")
            })?;
        let order = Order {
            id: format!("ord_{}", w.uuid()),
            agent: id,
            kind,
            coin: p.coin.clone(),
            side: p.side,
            size_usd: p.size_usd,
            price: trigger,
            leverage: p.leverage,
            status: "pending",
            position_id: Some(p.id.clone()),
            created_at: cx.now,
            filled_at: None,
            fill_price: None,
            error: None,
            simulated: false,
        };
        let mut v = order.view();
        v["type"] = json!(kind.name());
        if let Some(mk) = market(&p.coin) {
            v["current_price"] = json!(mid(w, mk, cx.now));
        }
        w.trading.orders.insert(order.id.clone(), order);
        created(v)
    })
}

async fn stop_loss(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    exit_order(&st, &headers, &body, OrderKind::StopLoss)
}

async fn take_profit(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    exit_order(&st, &headers, &body, OrderKind::TakeProfit)
}

fn risk_view(a: &Agent) -> Value {
    json!({
        "max_daily_loss_usd": a.max_daily_loss_usd,
        "max_leverage": a.max_leverage,
        "max_position_usd": a.max_position_usd,
        "tier": a.tier,
        "tier_limits": {"max_leverage": a.tier_max_leverage, "max_position_usd": a.tier_max_position},
    })
}

async fn risk_settings(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let field = |k: &str| -> Result<Option<f64>, ApiError> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        ApiError::new(400, "invalid_request")
                            .msg(format!("{k} must be a positive number"))
                    }),
            }
        };
        let (loss, lev, pos) = (
            field("max_daily_loss_usd")?,
            field("max_leverage")?,
            field("max_position_usd")?,
        );
        if lev.is_some_and(|l| l < 1.0) {
            return Err(ApiError::new(400, "invalid_request").msg("max_leverage must be >= 1"));
        }
        let a = w
            .trading
            .agents
            .get_mut(&id)
            .ok_or_else(|| unknown_key(Service::Trading))?;
        if loss.is_some() {
            a.max_daily_loss_usd = loss;
        }
        if let Some(l) = lev {
            a.max_leverage = l.min(a.tier_max_leverage);
        }
        if let Some(p) = pos {
            a.max_position_usd = p.min(a.tier_max_position);
        }
        ok(json!({"risk_settings": risk_view(a), "message": "Risk settings updated"}))
    })
}

async fn get_risk_settings(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        ok(json!({"risk_settings": risk_view(agent(w, &id)?)}))
    })
}

/// The current mid of a coin by name (0 when unknown); the wallet prices swaps with it.
pub(crate) fn mid_of(w: &mut World, coin: &str, t: DateTime<Utc>) -> f64 {
    resolve(coin).map_or(0.0, |mk| mid(w, mk, t))
}
