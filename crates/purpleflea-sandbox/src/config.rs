//! The sandbox configuration.

use chrono::{DateTime, TimeZone, Utc};

use crate::faults::FaultConfig;

/// How the sandbox clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockMode {
    /// Follow the system time (advances shift it forward).
    System,
    /// A manual clock frozen at `start`.
    Manual {
        /// The clock's initial time.
        start: DateTime<Utc>,
    },
}

/// Configuration of a [`crate::Sandbox`]. Build it from [`SandboxConfig::default`] (what
/// `lookout sandbox` runs: system clock, realistic latency) or [`SandboxConfig::for_tests`]
/// (manual clock, no latency), then adjust with the builder methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a config does nothing until a Sandbox is built from it"]
pub struct SandboxConfig {
    /// Seed for everything random: keys, ids, provably-fair server seeds, prices, fills,
    /// and (unless the fault config has its own) fault decisions.
    pub seed: u64,
    /// How the clock starts.
    pub clock: ClockMode,
    /// Fault injection, changeable later at runtime.
    pub faults: FaultConfig,
    /// Enforce the services' per-IP limits (the fixed 60-second windows, the casino's
    /// per-agent game bucket and the faucet's one claim per IP per 24 h). On by default, as
    /// in production.
    pub rate_limits: bool,
    /// Casino registration fires the $1 faucet claim (as the real casino does).
    pub auto_faucet_claim: bool,
    /// Margin (USDC on the simulated Hyperliquid account) a new trading agent starts with.
    /// Production starts at 0 until the agent deposits.
    pub trading_starting_balance_usd: f64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            clock: ClockMode::System,
            faults: FaultConfig::default(),
            rate_limits: true,
            auto_faucet_claim: true,
            trading_starting_balance_usd: 0.0,
        }
    }
}

impl SandboxConfig {
    /// The start of the manual clock used by [`SandboxConfig::for_tests`]:
    /// 2026-01-01T00:00:00Z.
    #[must_use]
    pub fn test_epoch() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    /// A deterministic config for tests: `seed`, a manual clock at
    /// [`SandboxConfig::test_epoch`], no faults and no latency; limits as in production.
    pub fn for_tests(seed: u64) -> Self {
        Self {
            seed,
            clock: ClockMode::Manual {
                start: Self::test_epoch(),
            },
            faults: FaultConfig::none(),
            ..Self::default()
        }
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the clock mode.
    pub fn clock(mut self, clock: ClockMode) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the fault config.
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.faults = faults;
        self
    }

    /// Turns the per-IP and per-agent rate limits on or off.
    pub fn rate_limits(mut self, on: bool) -> Self {
        self.rate_limits = on;
        self
    }

    /// Turns the faucet claim on casino registration on or off.
    pub fn auto_faucet_claim(mut self, on: bool) -> Self {
        self.auto_faucet_claim = on;
        self
    }

    /// Sets the starting margin of new trading agents.
    pub fn trading_starting_balance_usd(mut self, usd: f64) -> Self {
        self.trading_starting_balance_usd = usd;
        self
    }
}
