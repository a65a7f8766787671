//! Escrow (`https://escrow.purpleflea.com`, Bearer **casino** key): agent-to-agent escrow
//! on casino balances, refunded to the creator when it times out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Auth, Call, Client, body};
use crate::error::{CallContext, Error};
use crate::service::Service;

const S: Service = Service::Escrow;

/// The escrow sub-client; get one from [`Client::escrow`].
#[derive(Debug, Clone, Copy)]
pub struct Escrow<'a> {
    client: &'a Client,
}

/// The body of `POST /escrow/create`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateEscrow {
    /// Amount in USD (≥ 0.10), debited from the creator's casino balance at once.
    pub amount_usd: f64,
    /// What the counterparty does (≥ 3 characters).
    pub description: String,
    /// The counterparty's casino agent id (`ag_…`, not yourself).
    pub counterparty_agent_id: String,
    /// Hours until the escrow times out (default 24, clamped to 1–720).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_hours: Option<f64>,
    /// A referral code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<String>,
}

impl CreateEscrow {
    /// An escrow of `amount_usd` for `counterparty` with the default 24 h timeout.
    #[must_use]
    pub fn new(
        amount_usd: f64,
        description: impl Into<String>,
        counterparty: impl Into<String>,
    ) -> Self {
        Self {
            amount_usd,
            description: description.into(),
            counterparty_agent_id: counterparty.into(),
            timeout_hours: None,
            referral_code: None,
        }
    }

    /// Sets the timeout in hours.
    #[must_use]
    pub fn timeout_hours(mut self, hours: f64) -> Self {
        self.timeout_hours = Some(hours);
        self
    }
}

/// The status of an escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscrowStatus {
    /// Funded by the creator.
    Funded,
    /// Marked complete by the counterparty.
    Completed,
    /// Released to the counterparty.
    Released,
    /// Disputed; resolution is manual and it is never swept.
    Disputed,
    /// Timed out and refunded to the creator.
    Refunded,
    /// A status this client does not know.
    #[serde(other)]
    Unknown,
}

/// An escrow (`POST /escrow/create`, `GET /escrow/:id`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EscrowInfo {
    /// `esc_…`.
    pub escrow_id: String,
    /// Status.
    pub status: EscrowStatus,
    /// Amount in USD.
    #[serde(default)]
    pub amount_usd: Option<f64>,
    /// Commission (1%).
    #[serde(default)]
    pub commission_usd: Option<f64>,
    /// What the counterparty receives on release.
    #[serde(default)]
    pub net_to_counterparty: Option<f64>,
    /// Creator agent id.
    #[serde(default)]
    pub creator_id: Option<String>,
    /// Counterparty agent id.
    #[serde(default)]
    pub counterparty_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Timeout in hours.
    #[serde(default)]
    pub timeout_hours: Option<f64>,
    /// When the escrow times out (refund to the creator, up to 5 min later).
    #[serde(default, deserialize_with = "crate::de::opt_datetime")]
    pub auto_release_at: Option<DateTime<Utc>>,
    /// Creation time.
    #[serde(default, deserialize_with = "crate::de::opt_datetime")]
    pub created_at: Option<DateTime<Utc>>,
    /// Completion time.
    #[serde(default, deserialize_with = "crate::de::opt_datetime")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Release time.
    #[serde(default, deserialize_with = "crate::de::opt_datetime")]
    pub released_at: Option<DateTime<Utc>>,
    /// Dispute time.
    #[serde(default, deserialize_with = "crate::de::opt_datetime")]
    pub disputed_at: Option<DateTime<Utc>>,
    /// Events (participants only).
    #[serde(default)]
    pub events: Vec<Value>,
    /// Other fields (`refunded_at`, `dispute_reason`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EscrowInfo {
    /// Whether the escrow timed out: refunded, or still funded/completed past
    /// `auto_release_at` at `now` (the sweep may lag by up to 5 minutes).
    #[must_use]
    pub fn is_timed_out(&self, now: DateTime<Utc>) -> bool {
        self.status == EscrowStatus::Refunded
            || (matches!(self.status, EscrowStatus::Funded | EscrowStatus::Completed)
                && self.auto_release_at.is_some_and(|t| now > t))
    }
}

/// The answer to complete, release or dispute.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EscrowTransition {
    /// `esc_…`.
    pub escrow_id: String,
    /// The new status.
    pub status: EscrowStatus,
    /// Released to the counterparty (release).
    #[serde(default)]
    pub amount_released: Option<f64>,
    /// Commission (release).
    #[serde(default)]
    pub commission: Option<f64>,
    /// The dispute reason (dispute).
    #[serde(default)]
    pub reason: Option<String>,
    /// The service's message.
    #[serde(default)]
    pub message: Option<String>,
    /// Other fields (timestamps, `counterparty_id`, `referral_commission`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /escrow/stats`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EscrowStats {
    /// Escrows so far.
    #[serde(default)]
    pub total_escrows: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'a> Escrow<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    fn ctx(id: &str) -> CallContext {
        CallContext {
            escrow_id: Some(id.to_owned()),
            ..CallContext::default()
        }
    }

    /// `POST /escrow/create`: debits the creator's casino balance. Never retried on 5xx or
    /// timeout.
    ///
    /// # Errors
    ///
    /// [`Error`]: 402 `insufficient_balance` is [`crate::ErrorKind::InsufficientBalance`];
    /// `invalid_amount`, `invalid_description`, `invalid_counterparty`, `self_escrow`,
    /// `counterparty_not_found` are [`crate::ErrorKind::Api`].
    pub async fn create(&self, request: &CreateEscrow) -> Result<EscrowInfo, Error> {
        let call = Call::post(S, "/escrow/create")
            .json(body(request))
            .context(CallContext {
                counterparty: Some(request.counterparty_agent_id.clone()),
                amount: Some(request.amount_usd),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `POST /escrow/complete/:id` (counterparty only).
    ///
    /// # Errors
    ///
    /// [`Error`]: 409 `invalid_status` is [`crate::ErrorKind::EscrowTimeout`] on a refunded
    /// escrow, [`crate::ErrorKind::Dispute`] otherwise; 403 `forbidden` is
    /// [`crate::ErrorKind::Dispute`].
    pub async fn complete(&self, escrow_id: &str) -> Result<EscrowTransition, Error> {
        let call = Call::post(S, "/escrow/complete/{id}")
            .param("id", escrow_id)
            .context(Self::ctx(escrow_id));
        self.client.call(call).await
    }

    /// `POST /escrow/release/:id` (creator only): pays the counterparty. Never retried on
    /// 5xx or timeout.
    ///
    /// # Errors
    ///
    /// As [`Escrow::complete`].
    pub async fn release(&self, escrow_id: &str) -> Result<EscrowTransition, Error> {
        let call = Call::post(S, "/escrow/release/{id}")
            .param("id", escrow_id)
            .context(Self::ctx(escrow_id));
        self.client.call(call).await
    }

    /// `POST /escrow/dispute/:id {reason?}` (either party).
    ///
    /// # Errors
    ///
    /// As [`Escrow::complete`].
    pub async fn dispute(
        &self,
        escrow_id: &str,
        reason: Option<&str>,
    ) -> Result<EscrowTransition, Error> {
        let body = match reason {
            Some(r) => json!({ "reason": r }),
            None => json!({}),
        };
        let call = Call::post(S, "/escrow/dispute/{id}")
            .param("id", escrow_id)
            .json(body)
            .context(Self::ctx(escrow_id));
        self.client.call(call).await
    }

    /// `GET /escrow/:id` (the key is sent when configured; participants also see `events`).
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `not_found`).
    pub async fn get(&self, escrow_id: &str) -> Result<EscrowInfo, Error> {
        let call = Call::get(S, "/escrow/{id}")
            .param("id", escrow_id)
            .auth(Auth::Optional)
            .context(Self::ctx(escrow_id));
        self.client.call(call).await
    }

    /// `GET /escrow/stats` (public).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn stats(&self) -> Result<EscrowStats, Error> {
        self.client
            .call(Call::get(S, "/escrow/stats").auth(Auth::None))
            .await
    }
}
