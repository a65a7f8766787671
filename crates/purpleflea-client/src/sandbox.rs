//! Getting started against a local `purpleflea-sandbox` (`lookout sandbox`): register an
//! agent and fund it in one call. The real services are funded by a real deposit; the
//! sandbox credits one through its admin API (`POST /_admin/deposit`), which this module
//! calls so an agent's author does not hand-make the request.
//!
//! ```no_run
//! # async fn run() -> Result<(), purpleflea_client::Error> {
//! use purpleflea_client::sandbox;
//! use purpleflea_client::trading::{OpenPosition, Side};
//!
//! // A sandbox listening on 127.0.0.1:9100 (`lookout sandbox`).
//! let trader = sandbox::register_and_fund_trading("http://127.0.0.1:9100", 10_000.0).await?;
//! let position = trader
//!     .client
//!     .trading()
//!     .open(&OpenPosition::new("BTC", Side::Long, 500.0))
//!     .await?;
//! # let _ = position;
//! # Ok(())
//! # }
//! ```

use std::fmt;

use serde_json::json;

use crate::client::Client;
use crate::error::{Error, Failure};
use crate::service::Service;

/// The sandbox's admin route that credits a deposit.
const DEPOSIT_PATH: &str = "/_admin/deposit";

/// A trading agent registered on a sandbox, with margin.
#[derive(Clone)]
#[non_exhaustive]
pub struct FundedTrader {
    /// A client pointed at the sandbox, holding the agent's trading key.
    pub client: Client,
    /// The agent's trading key (`sk_trade_…`); not shown by `Debug`.
    pub api_key: String,
    /// The agent id the sandbox assigned.
    pub agent_id: String,
}

impl fmt::Debug for FundedTrader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FundedTrader")
            .field("agent_id", &self.agent_id)
            .field("api_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Register a trading agent on the sandbox at `root_url` (e.g. `http://127.0.0.1:9100`) and
/// credit its margin with `amount_usd` (none when it is 0). Fails with the registration's error, or with an
/// [`Error`] for the deposit call (its HTTP status and body, or the transport failure).
pub async fn register_and_fund_trading(
    root_url: &str,
    amount_usd: f64,
) -> Result<FundedTrader, Error> {
    let root = root_url.trim_end_matches('/');
    let anonymous = Client::builder().sandbox(root).build()?;
    let registration = anonymous.trading().register(&Default::default()).await?;
    if amount_usd != 0.0 {
        deposit(root, Service::Trading, &registration.agent_id, amount_usd).await?;
    }
    let client = Client::builder()
        .sandbox(root)
        .trading_key(&registration.api_key)
        .build()?;
    Ok(FundedTrader {
        client,
        api_key: registration.api_key,
        agent_id: registration.agent_id,
    })
}

/// Credit `amount_usd` to an agent's balance on a service (casino, trading or domains)
/// through the sandbox's admin API at `root_url`.
pub async fn deposit(
    root_url: &str,
    service: Service,
    agent_id: &str,
    amount_usd: f64,
) -> Result<(), Error> {
    let url = format!("{}{DEPOSIT_PATH}", root_url.trim_end_matches('/'));
    let transport = |e: reqwest::Error| {
        let failure = if e.is_timeout() {
            Failure::Timeout(e)
        } else if e.is_connect() {
            Failure::Connect(e)
        } else {
            Failure::Transport(e)
        };
        Error::new(Some(service), "POST", DEPOSIT_PATH, failure)
    };
    let response = reqwest::Client::new()
        .post(url)
        .json(&json!({
            "service": service.as_str(),
            "agent_id": agent_id,
            "amount_usd": amount_usd,
        }))
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(transport)?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Error::api(service, "POST", DEPOSIT_PATH, status, &bytes))
    }
}
