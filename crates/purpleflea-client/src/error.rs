//! The client's one error type, its taxonomy ([`ErrorKind`]) and the call context it carries.
//!
//! # How server answers map onto kinds
//!
//! [`Error::kind`] follows `purpleflea-api.md` §8, checked in this order:
//!
//! | signal | kind |
//! |---|---|
//! | no API key configured for the service (no request sent) | [`ErrorKind::Unauthorized`] |
//! | timeout, connect or other transport failure | [`ErrorKind::Network`] |
//! | any 401 (`unauthorized`, `invalid_key`) | [`ErrorKind::Unauthorized`] |
//! | 429, `rate_limited`, `rate_limit_exceeded`, faucet `ip_rate_limited` | [`ErrorKind::RateLimited`] |
//! | `insufficient_balance` (400 casino/domains/bids, 402 escrow), `kelly_limit_exceeded` | [`ErrorKind::InsufficientBalance`] |
//! | faucet `already_claimed`, `has_deposits` | [`ErrorKind::AlreadyClaimed`] |
//! | escrow `invalid_status` with `status: "refunded"` | [`ErrorKind::EscrowTimeout`] |
//! | escrow `invalid_status` (any other status), escrow 403 `forbidden` | [`ErrorKind::Dispute`] |
//! | trading `trade_failed`/`close_failed` whose message starts with "Order not filled" | [`ErrorKind::SlippageLimit`] |
//! | trading `trade_failed` whose message reports "Insufficient margin" | [`ErrorKind::InsufficientMargin`] |
//! | trading 403 `daily_loss_limit_reached` | [`ErrorKind::RiskLimitBreach`] |
//! | other `trade_failed`, `close_failed`, `position_too_large`, `invalid_leverage`, `limit_reached`, `unknown_coin`, `too_large`, `wallet_not_configured`, `invalid_size`, `invalid_side`, `invalid_price`, `invalid_trigger_price`, `position_not_open`, `not_pending`, `provide position_id` | [`ErrorKind::OrderRejected`] |
//! | wallet `send_failed`/`broadcast_failed`/`swap_failed`/`quote_failed` whose message reports insufficient funds | [`ErrorKind::InsufficientFunds`] |
//! | domains `auction_expired`; `auction_closed` with `status: "expired"` | [`ErrorKind::AuctionExpired`] |
//! | domains `bid_too_low`, `cannot_self_bid`, `invalid_bid`, other `auction_closed` | [`ErrorKind::BidRejected`] |
//! | domains `invalid_domain`, `domain_unavailable`; any non-401/429/5xx failure of an `/auth/register` call | [`ErrorKind::Registration`] |
//! | casino game and batch calls: `invalid_amount`, `minimum_bet`, `invalid_<param>`, `game_not_found`, `invalid_game`, `too_many_bets`, `invalid_request`, `invalid_json` | [`ErrorKind::Game`] |
//! | casino 403 `forbidden` (someone else's bet) | [`ErrorKind::Unauthorized`] |
//! | any 5xx except 501 (JSON or an HTML proxy page) | [`ErrorKind::Network`] |
//! | a 2xx body that does not decode | [`ErrorKind::Decode`] |
//! | anything else (`not_found`, `unsupported_chain`, `already_listed`, 501 `not_implemented`, …) | [`ErrorKind::Api`] |
//!
//! The raw `error` code, the message and the raw body are kept in every case
//! ([`Error::code`], [`Error::message`], [`Error::body`]).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::service::Service;

/// What went wrong, in the terms of the trading taxonomy (`purpleflea-api.md` §8).
///
/// Mirrors `lookout_agent::TradingErrorKind` so the mapping works without the `lookout`
/// feature; with it, `From<ErrorKind>` converts one into the other ([`ErrorKind::Api`],
/// [`ErrorKind::Decode`] and [`ErrorKind::Config`] become `Other("api_error" | …)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not enough margin to open the position (trading "Order error: Insufficient margin").
    InsufficientMargin,
    /// The venue refused the order (`trade_failed`, `close_failed`, `position_too_large`, …).
    OrderRejected,
    /// A risk limit was breached (`daily_loss_limit_reached`).
    RiskLimitBreach,
    /// The order found no fill inside the ±0.5% IoC band ("Order not filled …").
    SlippageLimit,
    /// An account balance is too low (`insufficient_balance`, `kelly_limit_exceeded`).
    InsufficientBalance,
    /// The faucet was already claimed (`already_claimed`, `has_deposits`).
    AlreadyClaimed,
    /// The escrow timed out and was refunded to its creator.
    EscrowTimeout,
    /// The escrow is disputed, in the wrong state for the action, or the caller is the wrong
    /// party (`invalid_status`, 403 `forbidden`).
    Dispute,
    /// A wallet holds too little to send or swap.
    InsufficientFunds,
    /// Transport failure (timeout, connect, reset) or a 5xx answer.
    Network,
    /// An auction bid was refused (`bid_too_low`, `cannot_self_bid`, `invalid_bid`, `auction_closed`).
    BidRejected,
    /// The auction ended before the bid (`auction_expired`).
    AuctionExpired,
    /// The service rate-limited the caller (429).
    RateLimited,
    /// Missing, malformed or unknown API key (401), or no key configured.
    Unauthorized,
    /// A casino game refused the bet (bad parameters, unknown game).
    Game,
    /// Registration of an agent or a domain failed.
    Registration,
    /// A service error with no more specific kind; see [`Error::code`].
    Api,
    /// A successful answer whose body did not decode into the expected type.
    Decode,
    /// The client was misconfigured (bad base URL, key with the wrong prefix).
    Config,
}

impl ErrorKind {
    /// The name, equal to `TradingErrorKind::as_str` for the shared kinds.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientMargin => "InsufficientMargin",
            Self::OrderRejected => "OrderRejected",
            Self::RiskLimitBreach => "RiskLimitBreach",
            Self::SlippageLimit => "SlippageLimit",
            Self::InsufficientBalance => "InsufficientBalance",
            Self::AlreadyClaimed => "AlreadyClaimed",
            Self::EscrowTimeout => "EscrowTimeout",
            Self::Dispute => "Dispute",
            Self::InsufficientFunds => "InsufficientFunds",
            Self::Network => "Network",
            Self::BidRejected => "BidRejected",
            Self::AuctionExpired => "AuctionExpired",
            Self::RateLimited => "RateLimited",
            Self::Unauthorized => "Unauthorized",
            Self::Game => "Game",
            Self::Registration => "Registration",
            Self::Api => "api_error",
            Self::Decode => "decode_error",
            Self::Config => "client_config",
        }
    }

    /// Whether errors of this kind are transient by nature (transport, 5xx, rate limits).
    #[must_use]
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Network | Self::RateLimited)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a call was about, so an error can carry the service's tags (casino game and bet
/// size, trading asset/side/order id, escrow id, domain name, …). Filled by the client from
/// the request (and, where a call refers to an earlier answer, from its arguments).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CallContext {
    /// Casino game slug (`dice`, `coin-flip`, …; `batch` for a batch).
    pub game: Option<String>,
    /// Casino bet size in USD.
    pub bet_size: Option<f64>,
    /// Casino agent id (faucet claims).
    pub agent_id: Option<String>,
    /// Faucet claim id.
    pub claim_id: Option<String>,
    /// Escrow id.
    pub escrow_id: Option<String>,
    /// Escrow counterparty agent id.
    pub counterparty: Option<String>,
    /// Escrow amount in USD.
    pub amount: Option<f64>,
    /// Trading coin (`BTC`, `xyz:TSLA`).
    pub asset: Option<String>,
    /// Trading side (`long`/`short`).
    pub side: Option<String>,
    /// Trading order id.
    pub order_id: Option<String>,
    /// Trading position id.
    pub position_id: Option<String>,
    /// Wallet kind (`hd`) for wallet calls.
    pub wallet_type: Option<String>,
    /// Wallet chain (`base`, `solana`, …).
    pub network: Option<String>,
    /// Domain name (`example.com`).
    pub domain_name: Option<String>,
    /// Domain id (`dom_…`).
    pub domain_id: Option<String>,
    /// Auction id (`auc_…`).
    pub auction_id: Option<String>,
}

impl CallContext {
    /// The top-level domain of [`CallContext::domain_name`], if any.
    #[must_use]
    pub fn tld(&self) -> Option<&str> {
        self.domain_name
            .as_deref()
            .and_then(|d| d.rsplit_once('.'))
            .map(|(_, tld)| tld)
    }
}

/// What kind of operation a call is; some error codes mean different things per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `POST /auth/register` on any service.
    Register,
    /// A casino bet (single or batch).
    Bet,
    /// Moves money or places an order (open, close, send, swap, escrow, bid, withdraw, …).
    Write,
    /// A balance or position read.
    BalanceRead,
    /// Anything else.
    Other,
}

/// The cause of an [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The service answered with a non-2xx status.
    #[error("HTTP {status}{}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The flat body's `error` code, when the body was JSON.
        code: Option<String>,
        /// The flat body's `message`, when present.
        message: Option<String>,
    },
    /// The call did not complete within the client timeout.
    #[error("timed out")]
    Timeout(#[source] reqwest::Error),
    /// The connection could not be established (the request was not sent).
    #[error("connection failed")]
    Connect(#[source] reqwest::Error),
    /// Any other transport failure (reset, broken body, TLS, …).
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    /// A 2xx answer whose body did not decode into the expected type.
    #[error("cannot decode the response body (HTTP {status})")]
    Decode {
        /// The HTTP status.
        status: u16,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// No API key is configured for the service; nothing was sent.
    #[error("no API key configured for {0}")]
    MissingKey(Service),
    /// The client configuration is invalid.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

/// An error from a Purple Flea call: the service, the HTTP status, the raw error code and
/// body, the call context, and the [`ErrorKind`] in the trading taxonomy.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(Box<Inner>);

#[derive(Debug, thiserror::Error)]
#[error("{}{method} {path}: {failure}", service.map(|s| format!("{s} ")).unwrap_or_default())]
struct Inner {
    service: Option<Service>,
    method: String,
    path: String,
    #[source]
    failure: Failure,
    body: Option<String>,
    json: Option<Value>,
    op: Op,
    context: CallContext,
    attempts: u32,
    retry_after: Option<Duration>,
}

/// The body kept on an error is cut at this many bytes.
const MAX_BODY: usize = 16 * 1024;

impl Error {
    pub(crate) fn new(
        service: Option<Service>,
        method: &str,
        path: &str,
        failure: Failure,
    ) -> Self {
        Self(Box::new(Inner {
            service,
            method: method.to_owned(),
            path: path.to_owned(),
            failure,
            body: None,
            json: None,
            op: Op::Other,
            context: CallContext::default(),
            attempts: 0,
            retry_after: None,
        }))
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(None, "", "", Failure::Config(message.into()))
    }

    /// An error for a non-2xx answer, parsing the flat body.
    pub(crate) fn api(
        service: Service,
        method: &str,
        path: &str,
        status: u16,
        bytes: &[u8],
    ) -> Self {
        let json = serde_json::from_slice::<Value>(bytes).ok();
        let code = json
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let message = json
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut err = Self::new(
            Some(service),
            method,
            path,
            Failure::Api {
                status,
                code,
                message,
            },
        );
        err.0.body = Some(truncate(bytes));
        err.0.json = json;
        err
    }

    pub(crate) fn decode(
        service: Service,
        method: &str,
        path: &str,
        status: u16,
        bytes: &[u8],
        source: serde_json::Error,
    ) -> Self {
        let mut err = Self::new(
            Some(service),
            method,
            path,
            Failure::Decode { status, source },
        );
        err.0.body = Some(truncate(bytes));
        err
    }

    pub(crate) fn with_call(mut self, op: Op, context: &CallContext, attempts: u32) -> Self {
        self.0.op = op;
        self.0.context = context.clone();
        self.0.attempts = attempts;
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.0.retry_after = retry_after;
        self
    }

    /// The kind of failure in the trading taxonomy (see the module docs for the table).
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match &self.0.failure {
            Failure::MissingKey(_) => ErrorKind::Unauthorized,
            Failure::Timeout(_) | Failure::Connect(_) | Failure::Transport(_) => ErrorKind::Network,
            Failure::Decode { .. } => ErrorKind::Decode,
            Failure::Config(_) => ErrorKind::Config,
            Failure::Api {
                status,
                code,
                message,
            } => classify(
                self.0.service,
                self.0.op,
                *status,
                code.as_deref(),
                message.as_deref(),
                self.0.json.as_ref(),
            ),
        }
    }

    /// The service called, if the error came from a call.
    #[must_use]
    pub fn service(&self) -> Option<Service> {
        self.0.service
    }

    /// The HTTP method of the call (empty for configuration errors).
    #[must_use]
    pub fn method(&self) -> &str {
        &self.0.method
    }

    /// The URL path of the call, without query string.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// The HTTP status the service answered, if it answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match &self.0.failure {
            Failure::Api { status, .. } | Failure::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The raw `error` code of the flat error body (`insufficient_balance`, `trade_failed`, …).
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match &self.0.failure {
            Failure::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The `message` of the flat error body.
    #[must_use]
    pub fn message(&self) -> Option<&str> {
        match &self.0.failure {
            Failure::Api { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// The raw response body (cut at 16 KiB), for API and decode errors.
    #[must_use]
    pub fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }

    /// The response body as JSON, when it was JSON (extra fields such as `max_bet`,
    /// `required`, `resets_at`, `min_bid_usd` live here).
    #[must_use]
    pub fn body_json(&self) -> Option<&Value> {
        self.0.json.as_ref()
    }

    /// The underlying failure.
    #[must_use]
    pub fn failure(&self) -> &Failure {
        &self.0.failure
    }

    /// What the call was about (game, asset, escrow id, …).
    #[must_use]
    pub fn context(&self) -> &CallContext {
        &self.0.context
    }

    /// How many HTTP attempts were made (0 when nothing was sent).
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// For a 429: how long the service asked to wait, from `Retry-After`,
    /// `retry_after_seconds`, `X-RateLimit-Reset` or `reset_at`.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// Whether the call timed out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.failure, Failure::Timeout(_))
    }

    /// Whether the connection could not be established.
    #[must_use]
    pub fn is_connect(&self) -> bool {
        matches!(self.0.failure, Failure::Connect(_))
    }

    /// What kind of operation the call was.
    #[cfg_attr(not(feature = "lookout"), allow(dead_code))]
    pub(crate) fn op(&self) -> Op {
        self.0.op
    }
}

fn truncate(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_BODY)];
    String::from_utf8_lossy(cut).into_owned()
}

/// Maps a service's error answer onto the taxonomy (the table in the module docs).
pub(crate) fn classify(
    service: Option<Service>,
    op: Op,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    body: Option<&Value>,
) -> ErrorKind {
    let code = code.unwrap_or("");
    let message = message.unwrap_or("");
    let lower = message.to_ascii_lowercase();
    let body_status = body
        .and_then(|b| b.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if status == 401 || code == "unauthorized" || code == "invalid_key" {
        return ErrorKind::Unauthorized;
    }
    if status == 429
        || matches!(
            code,
            "rate_limited" | "rate_limit_exceeded" | "ip_rate_limited"
        )
    {
        return ErrorKind::RateLimited;
    }
    if code == "insufficient_balance" || code == "kelly_limit_exceeded" {
        return ErrorKind::InsufficientBalance;
    }
    let by_service = match service {
        Some(Service::Faucet) => match code {
            "already_claimed" | "has_deposits" => Some(ErrorKind::AlreadyClaimed),
            _ => None,
        },
        Some(Service::Escrow) => match code {
            "invalid_status" if body_status == "refunded" => Some(ErrorKind::EscrowTimeout),
            "invalid_status" | "forbidden" => Some(ErrorKind::Dispute),
            _ => None,
        },
        Some(Service::Trading) => match code {
            "trade_failed" | "close_failed" if message.starts_with("Order not filled") => {
                Some(ErrorKind::SlippageLimit)
            }
            "trade_failed" if lower.contains("insufficient margin") => {
                Some(ErrorKind::InsufficientMargin)
            }
            "daily_loss_limit_reached" => Some(ErrorKind::RiskLimitBreach),
            "trade_failed"
            | "close_failed"
            | "position_too_large"
            | "invalid_leverage"
            | "limit_reached"
            | "unknown_coin"
            | "too_large"
            | "wallet_not_configured"
            | "invalid_size"
            | "invalid_side"
            | "invalid_price"
            | "invalid_trigger_price"
            | "position_not_open"
            | "not_pending"
            | "provide position_id" => Some(ErrorKind::OrderRejected),
            _ => None,
        },
        Some(Service::Wallet) => match code {
            "send_failed" | "broadcast_failed" | "swap_failed" | "quote_failed"
                if lower.contains("insufficient funds")
                    || lower.contains("insufficient balance") =>
            {
                Some(ErrorKind::InsufficientFunds)
            }
            _ => None,
        },
        Some(Service::Domains) => match code {
            "auction_expired" => Some(ErrorKind::AuctionExpired),
            "auction_closed" if body_status == "expired" => Some(ErrorKind::AuctionExpired),
            "auction_closed" | "bid_too_low" | "cannot_self_bid" | "invalid_bid" => {
                Some(ErrorKind::BidRejected)
            }
            "invalid_domain" | "domain_unavailable" => Some(ErrorKind::Registration),
            _ => None,
        },
        Some(Service::Casino) => match code {
            "forbidden" => Some(ErrorKind::Unauthorized),
            "invalid_amount" | "minimum_bet" | "game_not_found" | "invalid_game"
            | "too_many_bets" | "invalid_request" | "invalid_json"
                if op == Op::Bet =>
            {
                Some(ErrorKind::Game)
            }
            c if op == Op::Bet && c.starts_with("invalid_") => Some(ErrorKind::Game),
            _ => None,
        },
        None => None,
    };
    if let Some(kind) = by_service {
        return kind;
    }
    if status >= 500 && status != 501 {
        return ErrorKind::Network;
    }
    if op == Op::Register && status < 500 {
        return ErrorKind::Registration;
    }
    ErrorKind::Api
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(service: Service, op: Op, status: u16, code: &str, message: &str) -> ErrorKind {
        classify(Some(service), op, status, Some(code), Some(message), None)
    }

    #[test]
    fn slippage_and_margin_are_told_apart() {
        let t = Service::Trading;
        assert_eq!(
            kind(
                t,
                Op::Write,
                400,
                "trade_failed",
                "Order not filled (may have been placed as resting)"
            ),
            ErrorKind::SlippageLimit
        );
        assert_eq!(
            kind(
                t,
                Op::Write,
                400,
                "trade_failed",
                "Order error: Insufficient margin to place order."
            ),
            ErrorKind::InsufficientMargin
        );
        assert_eq!(
            kind(
                t,
                Op::Write,
                400,
                "trade_failed",
                "Max leverage for BTC is 40x"
            ),
            ErrorKind::OrderRejected
        );
    }

    #[test]
    fn status_fields_in_the_body_decide() {
        let refunded = json!({"error": "invalid_status", "status": "refunded"});
        assert_eq!(
            classify(
                Some(Service::Escrow),
                Op::Write,
                409,
                Some("invalid_status"),
                None,
                Some(&refunded)
            ),
            ErrorKind::EscrowTimeout
        );
        let closed = json!({"error": "auction_closed", "status": "expired"});
        assert_eq!(
            classify(
                Some(Service::Domains),
                Op::Write,
                409,
                Some("auction_closed"),
                None,
                Some(&closed)
            ),
            ErrorKind::AuctionExpired
        );
        assert_eq!(
            kind(Service::Domains, Op::Write, 409, "auction_closed", ""),
            ErrorKind::BidRejected
        );
    }

    #[test]
    fn transport_statuses_and_fallback() {
        assert_eq!(
            kind(Service::Wallet, Op::Other, 502, "rpc_error", ""),
            ErrorKind::Network
        );
        assert_eq!(
            classify(Some(Service::Trading), Op::Other, 503, None, None, None),
            ErrorKind::Network
        );
        assert_eq!(
            kind(Service::Wallet, Op::Write, 501, "not_implemented", ""),
            ErrorKind::Api
        );
        assert_eq!(
            kind(Service::Casino, Op::Other, 404, "not_found", ""),
            ErrorKind::Api
        );
        assert_eq!(
            kind(Service::Casino, Op::Bet, 400, "invalid_threshold", ""),
            ErrorKind::Game
        );
        assert_eq!(
            kind(Service::Casino, Op::Write, 400, "invalid_amount", ""),
            ErrorKind::Api
        );
    }
}
