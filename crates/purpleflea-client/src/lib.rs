//! Typed async client for the six Purple Flea services: Casino, Faucet, Escrow, Trading,
//! Wallet and Domains.
//!
//! Built on `reqwest`, following the services' code as `purpleflea-api.md` describes it:
//! base URLs, Bearer keys with their prefixes, every endpoint's request and response (typed
//! with serde, lenient about absent fields, unknown fields kept in `extra`), flat error
//! bodies, and the error taxonomy of §8.
//!
//! # Shape
//!
//! * [`Client`], built with [`Client::builder`] ([`ClientBuilder`]): base URL per service
//!   (production by default; [`ClientBuilder::sandbox`] points all six at a
//!   `purpleflea-sandbox`), API keys per service, timeout per attempt (10 s by default),
//!   user agent, [`RetryPolicy`].
//! * One sub-client per service: [`Client::casino`], [`Client::faucet`],
//!   [`Client::escrow`], [`Client::trading`], [`Client::wallet`], [`Client::domains`].
//! * One error type, [`Error`]: service, HTTP status, raw `error` code, message and body,
//!   call context, and [`Error::kind`] in the trading taxonomy ([`ErrorKind`]; the mapping
//!   table is in the [`error`] module).
//! * Retries ([`retry`] module): 429s (not processed by the services) and connect errors are
//!   retried for every call; 5xx and timeouts only for reads and idempotent setters. An
//!   order open/close, bet, send, swap, escrow create/release, bid or domain registration
//!   is never retried after a 5xx or a timeout.
//! * Telemetry: every HTTP attempt is a `tracing` span `http.client` (with `sentry.op`,
//!   `sentry.name = "METHOD /path"`, `http.method`, `http.status_code`, `latency_ms`,
//!   `service`) and one event with target `http` (a breadcrumb of category `http` under
//!   `sentry-tracing`): info on success, warn on failure. Failures are not logged at error
//!   level, because `sentry-tracing` turns error events into Sentry events; the caller
//!   decides what is an issue (e.g. through the `lookout` conversion). Keys, bodies and
//!   query strings are never logged.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `lookout` | yes | `impl From<Error> for lookout_agent::TradingError` with kind, service, status, phase, tags and source; `Error::into_trading_error(phase)` |
//!
//! # Example
//!
//! ```no_run
//! use purpleflea_client::trading::{OpenPosition, Side};
//! use purpleflea_client::{Client, ErrorKind};
//!
//! # async fn run() -> Result<(), purpleflea_client::Error> {
//! let client = Client::builder()
//!     .trading_key("sk_trade_0123456789abcdef0123456789abcdef0123456789abcdef")
//!     .build()?;
//! match client.trading().open(&OpenPosition::new("BTC", Side::Long, 500.0).leverage(3.0)).await {
//!     Ok(position) => println!("opened {} at {:?}", position.position_id, position.entry_price),
//!     Err(e) if e.kind() == ErrorKind::SlippageLimit => println!("no fill inside the band"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Against a local sandbox:
//!
//! ```no_run
//! # async fn run() -> Result<(), purpleflea_client::Error> {
//! use purpleflea_client::{Client, RegisterRequest, Service};
//!
//! let client = Client::builder().sandbox("http://127.0.0.1:8787").build()?;
//! let agent = client.casino().register(&RegisterRequest::new()).await?;
//! let client = client.with_api_key(Service::Casino, &agent.api_key)?;
//! let balance = client.casino().balance().await?;
//! # let _ = balance;
//! # Ok(())
//! # }
//! ```

pub mod casino;
mod client;
mod de;
pub mod domains;
pub mod error;
pub mod escrow;
pub mod faucet;
#[cfg(feature = "lookout")]
mod lookout;
pub mod retry;
pub mod sandbox;
mod service;
pub mod trading;
mod types;
pub mod wallet;

pub use client::{Client, ClientBuilder, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT};
pub use error::{CallContext, Error, ErrorKind, Failure};
pub use retry::{RateLimitInfo, RetryPolicy, Sleeper};
pub use service::Service;
pub use types::{DepositAddress, RegisterRequest, Registration};
