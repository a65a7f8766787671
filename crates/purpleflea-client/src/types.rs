//! Types shared by several services.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of an agent registration (`POST /auth/register` on casino, wallet, domains).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegisterRequest {
    /// Another agent's referral code (`ref_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<String>,
}

impl RegisterRequest {
    /// A registration without a referral.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A registration with a referral code.
    #[must_use]
    pub fn referred_by(code: impl Into<String>) -> Self {
        Self {
            referral_code: Some(code.into()),
        }
    }
}

/// A new agent account: its id and its API key (shown once).
///
/// `Debug` does not show the key.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Registration {
    /// The agent id (`ag_…`).
    pub agent_id: String,
    /// The API key, with the service's prefix. Store it: it is shown once.
    pub api_key: String,
    /// This agent's own referral code.
    #[serde(default)]
    pub referral_code: Option<String>,
    /// Starting balance (casino `balance`, domains `balance_usd`).
    #[serde(
        default,
        alias = "balance_usd",
        deserialize_with = "crate::de::opt_f64"
    )]
    pub balance: Option<f64>,
    /// Account tier (`free`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Casino Kelly risk factor (0.25 for new agents).
    #[serde(default)]
    pub risk_factor: Option<f64>,
    /// The service's message.
    #[serde(default)]
    pub message: Option<String>,
    /// Other fields (`_info`, trading's `hl_wallet`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("agent_id", &self.agent_id)
            .field("api_key", &"<redacted>")
            .field("referral_code", &self.referral_code)
            .field("balance", &self.balance)
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

/// A deposit address for a chain (casino and domains `POST /auth/deposit-address`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DepositAddress {
    /// The chain (`base`, `ethereum`, `solana`, …).
    pub chain: String,
    /// Where to send funds.
    pub address: String,
    /// The token to send (casino: `USDC`, `USDT`, `BTC`, `XMR`).
    #[serde(default)]
    pub send_token: Option<String>,
    /// Smallest credited deposit in USD.
    #[serde(default)]
    pub minimum_deposit_usd: Option<f64>,
    /// The service's instructions.
    #[serde(default)]
    pub message: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /auth/deposit-address`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DepositAddressRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<&'a str>,
}
