//! A faithful local imitation of the six Purple Flea services, with fault injection.
//!
//! The sandbox serves Casino, Faucet, Escrow, Trading, Wallet and Domains on one port, with
//! in-memory state, deterministic under a seed, answering with the services' own JSON and
//! flat error bodies (`{"error": "<snake_code>", "message"?, ...}`, plus the `_info` object
//! every JSON object response carries). Behaviour follows `shared/docs/purpleflea-api.md`,
//! i.e. the services' code where their websites disagree. `lookout sandbox` and
//! `lookout demo` run it; tests (ours and `purpleflea-client`'s) start it on port 0.
//!
//! # Paths
//!
//! Each service is mounted under a prefix standing in for its host, and keeps its real paths
//! below it. A client whose base URL for a service is the "sandbox base" below sends exactly
//! the requests it sends to production:
//!
//! | service | production base URL | sandbox base | example |
//! |---|---|---|---|
//! | casino | `https://casino.purpleflea.com/api/v1` | `http://HOST:PORT/casino/api/v1` | `POST /casino/api/v1/games/dice` |
//! | faucet | `https://faucet.purpleflea.com` | `http://HOST:PORT/faucet` | `POST /faucet/faucet/claim` |
//! | escrow | `https://escrow.purpleflea.com` | `http://HOST:PORT/escrow` | `POST /escrow/escrow/create` |
//! | trading | `https://trading.purpleflea.com/v1` | `http://HOST:PORT/trading/v1` | `POST /trading/v1/trade/open` |
//! | wallet | `https://wallet.purpleflea.com/v1` | `http://HOST:PORT/wallet/v1` | `POST /wallet/v1/wallet/send` |
//! | domains | `https://domains.purpleflea.com/v1` | `http://HOST:PORT/domains/v1` | `POST /domains/v1/auctions/{id}/bid` |
//!
//! Every service also answers `GET /<service>/health` (at the stand-in host root, as in
//! production); unknown routes are 404 `not_found`. [`SandboxHandle::base_url`] builds the
//! base URLs, [`SandboxHandle::service_url`] the host stand-ins. `GET /` lists them.
//!
//! # Admin API
//!
//! Under `/_admin`, without auth (the sandbox is a local tool); errors are flat like the
//! services' (`{"error": "invalid_faults" | "invalid_request" | "agent_not_found", ...}`).
//!
//! | method and path | body | effect |
//! |---|---|---|
//! | `GET /_admin/faults` | | the live [`FaultConfig`] as JSON (outage windows resolved to absolute times) |
//! | `PUT /_admin/faults` | JSON, or TOML when `Content-Type` contains `toml` | replaces the fault config (format: [`faults`]) |
//! | `DELETE /_admin/faults` | | no faults and no latency ([`FaultConfig::none`]) |
//! | `GET /_admin/clock` | | `{now, manual, timestamp_ms}` |
//! | `POST /_admin/clock/advance` | `{"seconds": 90}` | moves the clock forward; due sweeps and monitor passes run |
//! | `POST /_admin/clock/set` | `{"now": "2026-01-02T00:00:00Z"}` | moves the clock to a later time |
//! | `POST /_admin/reset` | `{"seed"?: 7}` | forgets all service state (faults and clock stay) |
//! | `POST /_admin/deposit` | `{"service": "casino" \| "trading" \| "domains", "agent_id", "amount_usd"}` | credits a USD balance as a deposit would (casino: counts as a deposit, so the faucet answers `has_deposits`) |
//! | `POST /_admin/deposit` | `{"service": "wallet", "chain", "address", "amount": "0.5", "token"?: "USDC"}` | credits an address on a simulated chain |
//! | `PUT /_admin/trading/markets/{coin}` | `{"price"?, "half_spread_bps"?, "depth_usd"?, "gap_probability"?}` | sets a market's mid (the walk continues from it) and its book |
//!
//! The same controls exist in Rust: [`Sandbox::advance`], [`Sandbox::clock`],
//! [`Sandbox::set_faults`], [`Sandbox::reset`], [`Sandbox::deposit`],
//! [`Sandbox::fund_address`].
//!
//! # Architecture
//!
//! ```text
//! request ─► /<service> prefix ─► _info stamp ─► fault layer ─► handler ─► World (one lock)
//!                                  (outermost)    latency, outage,          casino, faucet, escrow,
//!                                                 hang, 429 burst, errors   trading, wallet, domains
//!                                                                           + rate limiters
//! Clock ─► every handler first catches up the scheduled jobs that fell due:
//!          escrow timeout sweep (every 5 min), trading limit/stop monitor (every 30 s)
//! ```
//!
//! * `clock`: [`Clock`], real or manual; tests advance it instead of sleeping.
//! * `faults`: [`FaultConfig`] (TOML or Rust; changed at runtime via `PUT /_admin/faults`).
//! * `state`: the world behind one mutex, ids from a seeded generator, the per-IP limiters.
//! * one module per service: `casino` (with `games` and `fairness`), `faucet`, `escrow`,
//!   `trading`, `wallet`, `domains`.
//!
//! # Behaviour worth knowing
//!
//! * Keys: casino `sk_live_`, trading `sk_trade_`, wallet `pk_live_`, domains `sk_domains_`,
//!   each followed by 48 hex characters; escrow takes the casino key; the faucet none.
//!   Missing or malformed `Authorization: Bearer` is 401 `unauthorized`; an unknown key is
//!   401 `unauthorized` (casino, escrow, wallet) or `{"error":"invalid_key"}` (trading,
//!   domains).
//! * Casino registration fires the $1 faucet claim, so an explicit claim right after
//!   registering gets 409 `already_claimed` (turn it off with
//!   [`SandboxConfig::auto_faucet_claim()`] to exercise a successful claim).
//! * Provably fair: `result_hash` = hex HMAC-SHA256(key = server seed hex text, message =
//!   `"<client_seed>:<nonce>"`), roll = (first 8 hex chars mod 10000) / 100; nonces start at
//!   0 and the seed rotates (and is revealed) after 1,000 bets or on `POST /fairness/rotate`.
//! * Escrow debits the creator at create (402 `insufficient_balance` when short); the sweep
//!   runs every 5 minutes of sandbox time from start and refunds amount − commission to the
//!   creator of any funded or completed escrow past `auto_release_at`; disputed escrows are
//!   never swept.
//! * Trading mids follow a seeded random walk stepping every 30 s; fills are IoC at mid ±0.5%
//!   against a simple book, else `trade_failed` "Order not filled (may have been placed as
//!   resting)"; fees 3.5 bps + builder fee (2 bps free tier) at open and at close; leverage
//!   silently capped at the account maximum; PnL = size × (exit − entry) / entry (negated
//!   for shorts). New agents have no margin: fund them with [`Sandbox::deposit`] or
//!   `POST /_admin/deposit`, or set [`SandboxConfig::trading_starting_balance_usd()`].
//! * Wallet keys are derived with a documented SHA-256 stand-in (see the `wallet` module);
//!   `POST /wallet/create` adds `sandbox_private_keys` so sends can be signed.
//! * Rate limits are enforced as in production (fixed 60 s windows per path and client IP,
//!   read from `X-Forwarded-For`, `X-Real-IP`, then the peer), on the sandbox clock; turn
//!   them off with [`SandboxConfig::rate_limits()`].
//!
//! # Example
//!
//! ```no_run
//! use purpleflea_sandbox::{Sandbox, SandboxConfig, Service};
//!
//! # async fn demo() -> Result<(), purpleflea_sandbox::Error> {
//! let handle = Sandbox::spawn(SandboxConfig::for_tests(42)).await?;
//! let casino = handle.base_url(Service::Casino); // http://127.0.0.1:PORT/casino/api/v1
//! // ... point a client at `casino`, register, play ...
//! handle.sandbox().advance(std::time::Duration::from_secs(25 * 3600)); // escrows time out
//! handle.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod casino;
mod clock;
mod config;
mod domains;
mod error;
mod escrow;
mod faucet;
pub mod faults;
mod http;
mod sandbox;
mod service;
mod state;
mod trading;
mod wallet;

pub use clock::Clock;
pub use config::{ClockMode, SandboxConfig};
pub use error::Error;
pub use faults::{
    Burst, FaultConfig, FaultRule, Hang, Latency, Outage, RateLimitStyle, ServiceFaults,
};
pub use sandbox::{Sandbox, SandboxHandle};
pub use service::Service;
