//! Faucet (`https://faucet.purpleflea.com`, no auth): the one-time $1 claim for a new casino
//! agent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Call, Client, body};
use crate::error::{CallContext, Error};
use crate::service::Service;

const S: Service = Service::Faucet;

/// The faucet sub-client; get one from [`Client::faucet`].
#[derive(Debug, Clone, Copy)]
pub struct Faucet<'a> {
    client: &'a Client,
}

/// The body of `POST /faucet/claim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimRequest {
    /// The casino agent id (`ag_…`).
    pub agent_casino_id: String,
    /// A referral code to credit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<String>,
}

impl ClaimRequest {
    /// A claim for a casino agent.
    #[must_use]
    pub fn new(agent_casino_id: impl Into<String>) -> Self {
        Self {
            agent_casino_id: agent_casino_id.into(),
            referral_code: None,
        }
    }
}

/// `POST /faucet/claim`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Claim {
    /// USD credited to the casino balance (1.0).
    pub credited: f64,
    /// The claim id.
    #[serde(default)]
    pub claim_id: Option<String>,
    /// The casino agent credited.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Whether the referral was recorded.
    #[serde(default)]
    pub referral_tracked: Option<bool>,
    /// The service's message.
    #[serde(default)]
    pub message: Option<String>,
    /// Other fields (`casino_url`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /faucet/stats`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FaucetStats {
    /// Claims so far.
    #[serde(default)]
    pub total_claims: Option<u64>,
    /// USD credited so far.
    #[serde(default)]
    pub total_credited_usd: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'a> Faucet<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /faucet/claim {agent_casino_id, referral_code?}`. Never retried (not even on a
    /// 429: the faucet's `ip_rate_limited` lasts 24 h).
    ///
    /// # Errors
    ///
    /// [`Error`]: 409 `already_claimed` and 403 `has_deposits` are
    /// [`crate::ErrorKind::AlreadyClaimed`]; 429 `ip_rate_limited` is
    /// [`crate::ErrorKind::RateLimited`]; 404 `agent_not_found`, 400 `invalid_request`
    /// [`crate::ErrorKind::Api`].
    pub async fn claim(&self, request: &ClaimRequest) -> Result<Claim, Error> {
        let call = Call::post(S, "/faucet/claim")
            .json(body(request))
            .context(CallContext {
                agent_id: Some(request.agent_casino_id.clone()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /faucet/stats`.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn stats(&self) -> Result<FaucetStats, Error> {
        self.client.call(Call::get(S, "/faucet/stats")).await
    }
}
