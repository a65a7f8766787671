//! Shared state: the in-memory world of all six services behind one lock, the clock, the
//! fault engine, the rate limiters and the lazily run scheduled jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::clock::Clock;
use crate::config::SandboxConfig;
use crate::faults::{FaultEngine, RateLimitStyle, rate_limit_error};
use crate::http::{ApiError, ApiResult};
use crate::{casino, domains, escrow, faucet, trading, wallet};

/// How often the escrow timeout sweep runs (and it runs at startup).
pub(crate) const ESCROW_SWEEP_EVERY: TimeDelta = TimeDelta::minutes(5);
/// How often the limit/stop monitor runs; also the price step.
pub(crate) const MONITOR_EVERY: TimeDelta = TimeDelta::seconds(30);

/// Handle to the sandbox state, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    config: SandboxConfig,
    clock: Clock,
    world: Mutex<World>,
    faults: Mutex<FaultEngine>,
}

/// What a handler knows besides the world.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx {
    /// The clock's time for this request.
    pub(crate) now: DateTime<Utc>,
    /// 429 style of the real limiters.
    pub(crate) style: RateLimitStyle,
}

impl AppState {
    pub(crate) fn new(config: SandboxConfig, clock: Clock) -> Self {
        let now = clock.now();
        let world = World::new(&config, now);
        let faults = FaultEngine::new(config.faults.clone(), config.seed, now);
        Self(Arc::new(Shared {
            config,
            clock,
            world: Mutex::new(world),
            faults: Mutex::new(faults),
        }))
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub(crate) fn with_faults<T>(&self, f: impl FnOnce(&mut FaultEngine) -> T) -> T {
        let mut engine = self.0.faults.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut engine)
    }

    /// Runs `f` on the world after catching up the scheduled jobs; no await inside.
    pub(crate) fn with_world<T>(&self, f: impl FnOnce(&mut World, Cx) -> T) -> T {
        let style = self.with_faults(|e| e.style());
        let mut world = self.0.world.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.0.clock.now().max(world.last_seen);
        world.last_seen = now;
        world.catch_up(now);
        f(&mut world, Cx { now, style })
    }

    /// Runs a handler body and turns its result into a response.
    pub(crate) fn run(&self, f: impl FnOnce(&mut World, Cx) -> ApiResult) -> Response {
        match self.with_world(f) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    /// Throws the world away and starts again from the config (optionally a new seed).
    pub(crate) fn reset(&self, seed: Option<u64>) {
        let mut config = self.0.config.clone();
        if let Some(seed) = seed {
            config.seed = seed;
        }
        let now = self.0.clock.now();
        let fresh = World::new(&config, now);
        *self.0.world.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    pub(crate) fn seed(&self) -> u64 {
        self.with_world(|w, _| w.seed)
    }
}

/// Everything the six services keep, in memory.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) seed: u64,
    pub(crate) rng: StdRng,
    pub(crate) started: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    pub(crate) rate_limits: bool,
    pub(crate) auto_faucet_claim: bool,
    pub(crate) trading_starting_balance_usd: f64,
    limiter: HashMap<(String, String), (DateTime<Utc>, u32)>,
    /// Last monitor pass of the trading limit/stop orders.
    pub(crate) last_monitor: DateTime<Utc>,
    pub(crate) casino: casino::CasinoState,
    pub(crate) faucet: faucet::FaucetState,
    pub(crate) escrow: escrow::EscrowState,
    pub(crate) trading: trading::TradingState,
    pub(crate) wallet: wallet::WalletState,
    pub(crate) domains: domains::DomainsState,
}

impl World {
    pub(crate) fn new(config: &SandboxConfig, now: DateTime<Utc>) -> Self {
        Self {
            seed: config.seed,
            rng: StdRng::seed_from_u64(config.seed),
            started: now,
            last_seen: now,
            rate_limits: config.rate_limits,
            auto_faucet_claim: config.auto_faucet_claim,
            trading_starting_balance_usd: config.trading_starting_balance_usd,
            limiter: HashMap::new(),
            last_monitor: now,
            casino: casino::CasinoState::default(),
            faucet: faucet::FaucetState::default(),
            escrow: escrow::EscrowState::default(),
            trading: trading::TradingState::new(config.seed),
            wallet: wallet::WalletState::default(),
            domains: domains::DomainsState::default(),
        }
    }

    /// `n` random lower-case hex characters.
    pub(crate) fn hex(&mut self, n: usize) -> String {
        let mut bytes = vec![0u8; n.div_ceil(2)];
        self.rng.fill_bytes(&mut bytes);
        let mut s = hex::encode(bytes);
        s.truncate(n);
        s
    }

    /// A random (v4) UUID from the seeded generator.
    pub(crate) fn uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A uniform number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.rng.random()
    }

    /// The services' fixed 60-second window limiter keyed by (path, client IP).
    pub(crate) fn limit(
        &mut self,
        cx: Cx,
        path: &str,
        ip: &str,
        limit: u32,
    ) -> Result<(), ApiError> {
        self.window(cx, format!("ip:{path}"), ip, limit, TimeDelta::seconds(60))
            .map_err(|retry| rate_limit_error(cx.style, limit, retry, cx.now, false))
    }

    /// A fixed window; `Err(seconds until the window resets)` when over the limit.
    pub(crate) fn window(
        &mut self,
        cx: Cx,
        bucket: String,
        who: &str,
        limit: u32,
        window: TimeDelta,
    ) -> Result<(), u64> {
        if !self.rate_limits {
            return Ok(());
        }
        let entry = self
            .limiter
            .entry((bucket, who.to_owned()))
            .or_insert((cx.now, 0));
        if cx.now - entry.0 >= window {
            *entry = (cx.now, 0);
        }
        if entry.1 >= limit {
            let left = (entry.0 + window - cx.now).num_seconds().max(1);
            return Err(u64::try_from(left).unwrap_or(1));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Runs every scheduled job that fell due up to `now`, each at the time it was due: the
    /// escrow sweep (every 5 minutes from start) and the trading monitor (every 30 s).
    fn catch_up(&mut self, now: DateTime<Utc>) {
        // Escrow: jump from one due sweep to the next, skipping empty ones.
        while let Some(deadline) = self.escrow.earliest_deadline() {
            let tick = next_tick(self.started, ESCROW_SWEEP_EVERY, deadline);
            if tick > now {
                break;
            }
            escrow::sweep(self, tick);
        }
        // Trading: one pass per 30-second tick while anything is pending. A gap of more than
        // MAX_PASSES ticks (about 69 days) is collapsed: its older ticks are skipped.
        const MAX_PASSES: i64 = 200_000;
        let behind = (now - self.last_monitor).num_seconds() / MONITOR_EVERY.num_seconds();
        if behind > MAX_PASSES && self.trading.has_pending() {
            let skip = i32::try_from(behind - MAX_PASSES).unwrap_or(i32::MAX);
            self.last_monitor += MONITOR_EVERY * skip;
        }
        loop {
            let tick = self.last_monitor + MONITOR_EVERY;
            if tick > now {
                break;
            }
            if !self.trading.has_pending() {
                let ticks = (now - self.last_monitor).num_seconds() / MONITOR_EVERY.num_seconds();
                self.last_monitor += MONITOR_EVERY * i32::try_from(ticks).unwrap_or(i32::MAX);
                break;
            }
            self.last_monitor = tick;
            trading::monitor_pass(self, tick);
        }
    }
}

/// The first time `start + k × every` (k ≥ 0) at or after `at`.
pub(crate) fn next_tick(
    start: DateTime<Utc>,
    every: TimeDelta,
    at: DateTime<Utc>,
) -> DateTime<Utc> {
    if at <= start {
        return start;
    }
    let every_ms = every.num_milliseconds().max(1);
    let elapsed = (at - start).num_milliseconds();
    let k = (elapsed + every_ms - 1) / every_ms;
    start + TimeDelta::milliseconds(k * every_ms)
}
