//! Domains (`https://domains.purpleflea.com/v1`, key `sk_domains_…`): search, registration,
//! DNS records and auctions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Auth, Call, Client, body};
use crate::error::{CallContext, Error, Op};
use crate::service::Service;
use crate::types::{DepositAddress, DepositAddressRequest, RegisterRequest, Registration};

const S: Service = Service::Domains;

/// The domains sub-client; get one from [`Client::domains`].
#[derive(Debug, Clone, Copy)]
pub struct Domains<'a> {
    client: &'a Client,
}

/// `GET /auth/account`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainsAccount {
    /// Balance in USD.
    pub balance_usd: f64,
    /// Other fields (`agent_id`, `domains_count`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /domains/search?q=`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainSearch {
    /// Candidates.
    #[serde(default)]
    pub results: Vec<DomainOffer>,
    /// Other fields (`query`, `currency`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainOffer {
    /// The domain.
    pub domain: String,
    /// Whether it can be registered.
    #[serde(default)]
    pub available: bool,
    /// Registrar price in EUR per year.
    #[serde(default)]
    pub price_eur: Option<f64>,
    /// What registering costs in USD (20% markup, 1.08 USD per EUR).
    #[serde(default)]
    pub price_usd: Option<f64>,
    /// Other fields (`reason`, `currency`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /domains/register`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RegisteredDomain {
    /// `dom_…`.
    pub domain_id: String,
    /// The domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// `active`.
    #[serde(default)]
    pub status: Option<String>,
    /// Expiry (+1 year).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Cost breakdown (`total_charged_usd`, …).
    #[serde(default)]
    pub cost: Option<Map<String, Value>>,
    /// Balance afterwards.
    #[serde(default)]
    pub balance_usd: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /domains`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainList {
    /// Domains owned.
    #[serde(default)]
    pub domains: Vec<RegisteredDomain>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DNS record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Alias.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Text.
    Txt,
}

/// The body of `POST /dns/records`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRecordRequest {
    /// `dom_…`.
    pub domain_id: String,
    /// Type.
    #[serde(rename = "type")]
    pub record_type: DnsType,
    /// Name (`@`, `www`).
    pub name: String,
    /// Content.
    pub content: String,
    /// TTL in seconds (60–86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// A DNS record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DnsRecord {
    /// `rec_…`.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Type.
    #[serde(rename = "type", default)]
    pub record_type: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Content.
    #[serde(default)]
    pub content: Option<String>,
    /// TTL.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /dns/records?domain_id=`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DnsRecords {
    /// Records.
    #[serde(default)]
    pub records: Vec<DnsRecord>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /auctions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateAuction {
    /// The domain to sell.
    pub domain_id: String,
    /// Minimum first bid (≥ 0.50).
    pub min_bid_usd: f64,
    /// Duration (1–168 h).
    pub duration_hours: f64,
}

/// An auction.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Auction {
    /// `auc_…`.
    pub auction_id: String,
    /// The domain id.
    #[serde(default)]
    pub domain_id: Option<String>,
    /// The domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// `open`, `expired`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Minimum first bid.
    #[serde(default)]
    pub min_bid_usd: Option<f64>,
    /// Current bid.
    #[serde(default)]
    pub current_bid_usd: Option<f64>,
    /// Smallest next bid (current + 5%).
    #[serde(default)]
    pub next_min_bid_usd: Option<f64>,
    /// End time.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Bids (single-auction view).
    #[serde(default)]
    pub bids: Vec<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /auctions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AuctionList {
    /// Auctions.
    #[serde(default)]
    pub auctions: Vec<Auction>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /auctions/:id/bid`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BidReceipt {
    /// `bid_…`.
    pub bid_id: String,
    /// The auction.
    #[serde(default)]
    pub auction_id: Option<String>,
    /// The bid.
    #[serde(default)]
    pub bid_usd: Option<f64>,
    /// Smallest next bid.
    #[serde(default)]
    pub next_min_bid_usd: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'a> Domains<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /auth/register` (no auth). Never retried.
    ///
    /// # Errors
    ///
    /// [`Error`] ([`crate::ErrorKind::Registration`]).
    pub async fn register(&self, request: &RegisterRequest) -> Result<Registration, Error> {
        let call = Call::post(S, "/auth/register")
            .auth(Auth::None)
            .op(Op::Register)
            .json(body(request));
        self.client.call(call).await
    }

    /// `GET /auth/account`.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn account(&self) -> Result<DomainsAccount, Error> {
        self.client
            .call(Call::get(S, "/auth/account").op(Op::BalanceRead))
            .await
    }

    /// `POST /auth/deposit-address {chain}` (idempotent: the existing address comes back).
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `unsupported_chain`).
    pub async fn deposit_address(&self, chain: Option<&str>) -> Result<DepositAddress, Error> {
        let call = Call::post(S, "/auth/deposit-address")
            .idempotent()
            .op(Op::Other)
            .json(body(&DepositAddressRequest { chain }));
        self.client.call(call).await
    }

    /// `GET /domains/search?q=` (prices in EUR and USD).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn search(&self, query: &str) -> Result<DomainSearch, Error> {
        let call = Call::get(S, "/domains/search")
            .query("q", query)
            .auth(Auth::None);
        self.client.call(call).await
    }

    /// `POST /domains/register {domain}`: charges the balance. **Never retried** on 5xx or
    /// timeout.
    ///
    /// # Errors
    ///
    /// [`Error`]: `invalid_domain`, `domain_unavailable` are
    /// [`crate::ErrorKind::Registration`], `insufficient_balance`
    /// [`crate::ErrorKind::InsufficientBalance`].
    pub async fn register_domain(&self, domain: &str) -> Result<RegisteredDomain, Error> {
        let call = Call::post(S, "/domains/register")
            .json(json!({ "domain": domain }))
            .context(CallContext {
                domain_name: Some(domain.to_owned()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /domains`: the domains of the account.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn list(&self) -> Result<DomainList, Error> {
        self.client.call(Call::get(S, "/domains")).await
    }

    /// `POST /dns/records`. Not retried (a retry could add the record twice).
    ///
    /// # Errors
    ///
    /// [`Error`] (`invalid_type`, `invalid_content`, `invalid_ttl`, 404 `domain_not_found`).
    pub async fn add_dns_record(&self, request: &DnsRecordRequest) -> Result<DnsRecord, Error> {
        let call = Call::post(S, "/dns/records")
            .json(body(request))
            .context(CallContext {
                domain_id: Some(request.domain_id.clone()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /dns/records?domain_id=`.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `domain_not_found`).
    pub async fn dns_records(&self, domain_id: &str) -> Result<DnsRecords, Error> {
        let call = Call::get(S, "/dns/records").query("domain_id", domain_id);
        self.client.call(call).await
    }

    /// `DELETE /dns/records/:id`.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `record_not_found`).
    pub async fn delete_dns_record(&self, record_id: &str) -> Result<Map<String, Value>, Error> {
        let call = Call::delete(S, "/dns/records/{id}").param("id", record_id);
        self.client.call(call).await
    }

    /// `POST /auctions {domain_id, min_bid_usd, duration_hours}`.
    ///
    /// # Errors
    ///
    /// [`Error`] (409 `already_listed`, `invalid_min_bid`, `invalid_duration`).
    pub async fn create_auction(&self, request: &CreateAuction) -> Result<Auction, Error> {
        let call = Call::post(S, "/auctions")
            .json(body(request))
            .context(CallContext {
                domain_id: Some(request.domain_id.clone()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /auctions?status=` (public; default `open`, `all` for every status). Marks
    /// auctions past their end as `expired` first.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn auctions(&self, status: Option<&str>) -> Result<AuctionList, Error> {
        let mut call = Call::get(S, "/auctions").auth(Auth::None);
        if let Some(status) = status {
            call = call.query("status", status);
        }
        self.client.call(call).await
    }

    /// `GET /auctions/:id` (public), with its bids.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `auction_not_found`).
    pub async fn auction(&self, auction_id: &str) -> Result<Auction, Error> {
        let call = Call::get(S, "/auctions/{id}")
            .param("id", auction_id)
            .auth(Auth::None)
            .context(auction_ctx(auction_id, None));
        self.client.call(call).await
    }

    /// `POST /auctions/:id/bid {bid_usd}`. **Never retried** on 5xx or timeout. Pass the
    /// domain name when known so an error carries the `domain_name`/`tld` tags.
    ///
    /// # Errors
    ///
    /// [`Error`]: `bid_too_low`, `cannot_self_bid`, `invalid_bid`, `auction_closed` are
    /// [`crate::ErrorKind::BidRejected`]; `auction_expired` (and `auction_closed` with
    /// status `expired`) [`crate::ErrorKind::AuctionExpired`]; `insufficient_balance`
    /// [`crate::ErrorKind::InsufficientBalance`].
    pub async fn bid(
        &self,
        auction_id: &str,
        bid_usd: f64,
        domain: Option<&str>,
    ) -> Result<BidReceipt, Error> {
        let call = Call::post(S, "/auctions/{id}/bid")
            .param("id", auction_id)
            .json(json!({ "bid_usd": bid_usd }))
            .context(auction_ctx(auction_id, domain));
        self.client.call(call).await
    }
}

fn auction_ctx(auction_id: &str, domain: Option<&str>) -> CallContext {
    CallContext {
        auction_id: Some(auction_id.to_owned()),
        domain_name: domain.map(str::to_owned),
        ..CallContext::default()
    }
}
