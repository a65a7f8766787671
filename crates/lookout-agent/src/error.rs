//! The trading error taxonomy shared by the agent library and the Purple Flea client.

use std::collections::BTreeMap;
use std::fmt;

/// What went wrong, in trading terms.
///
/// The kind is the second component of an error's fingerprint, so two errors of the same
/// kind on the same asset and phase are one issue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TradingErrorKind {
    /// Not enough margin to open or keep a position.
    InsufficientMargin,
    /// The venue refused the order.
    OrderRejected,
    /// A risk limit (daily loss, leverage, exposure) was breached.
    RiskLimitBreach,
    /// The order could not be filled within the slippage bound.
    SlippageLimit,
    /// An account balance is too low for the operation.
    InsufficientBalance,
    /// The faucet was already claimed by this agent.
    AlreadyClaimed,
    /// An escrow ran past its deadline.
    EscrowTimeout,
    /// An escrow is in dispute.
    Dispute,
    /// A wallet holds too little to send or swap.
    InsufficientFunds,
    /// Transport failure: timeout, connection reset, DNS, TLS.
    Network,
    /// An auction bid was refused.
    BidRejected,
    /// An auction ended before the bid.
    AuctionExpired,
    /// The service rate-limited the caller.
    RateLimited,
    /// Missing, malformed or unknown API key.
    Unauthorized,
    /// A casino game failed or refused the bet.
    Game,
    /// Registration of an agent or a domain failed.
    Registration,
    /// Anything else, named by the caller (snake_case is best).
    Other(String),
}

impl TradingErrorKind {
    /// The name used in fingerprints and the `trade.error_type` tag.
    pub fn as_str(&self) -> &str {
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
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for TradingErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Purple Flea service an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Casino games and the agent account.
    Casino,
    /// The one-time faucet.
    Faucet,
    /// Escrow between agents.
    Escrow,
    /// Perpetuals trading.
    Trading,
    /// Multi-chain wallet.
    Wallet,
    /// Domain registration and auctions.
    Domains,
}

impl Service {
    /// Lowercase name, as used in the `service` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Casino => "casino",
            Self::Faucet => "faucet",
            Self::Escrow => "escrow",
            Self::Trading => "trading",
            Self::Wallet => "wallet",
            Self::Domains => "domains",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stage of the decision cycle in which an error happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Computing or validating a signal.
    Signal,
    /// Pre-trade risk checks.
    RiskCheck,
    /// Position sizing.
    Sizing,
    /// Sending an order (or bet, claim, bid) to a service.
    OrderPlacement,
    /// Confirming a fill or settlement.
    Confirmation,
    /// Polling balances.
    BalancePoll,
    /// Any other phase, named by the caller (snake_case).
    Other(String),
}

impl Phase {
    /// snake_case name, as used in fingerprints and the `trade.phase` tag.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Signal => "signal",
            Self::RiskCheck => "risk_check",
            Self::Sizing => "sizing",
            Self::OrderPlacement => "order_placement",
            Self::Confirmation => "confirmation",
            Self::BalancePoll => "balance_poll",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a trading agent, with the context that makes it actionable.
///
/// Build one with [`TradingError::new`] and the `with_*` methods; the Purple Flea client
/// converts its own errors into this type (feature `lookout` of `purpleflea-client`).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TradingError {
    /// What went wrong.
    pub kind: TradingErrorKind,
    /// Human-readable description.
    pub message: String,
    /// The service involved, if any.
    pub service: Option<Service>,
    /// The phase of the decision cycle.
    pub phase: Option<Phase>,
    /// The asset traded (e.g. `BTC`).
    pub asset: Option<String>,
    /// The order id, if one was assigned.
    pub order_id: Option<String>,
    /// The HTTP status the service answered, if any.
    pub http_status: Option<u16>,
    /// Service-specific tags (casino: game, bet_size, outcome; escrow: escrow_id, …).
    pub service_tags: BTreeMap<String, String>,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TradingError {
    /// A new error of this kind with a message.
    pub fn new(kind: TradingErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            service: None,
            phase: None,
            asset: None,
            order_id: None,
            http_status: None,
            service_tags: BTreeMap::new(),
            source: None,
        }
    }

    /// Set the service.
    #[must_use]
    pub fn with_service(mut self, service: Service) -> Self {
        self.service = Some(service);
        self
    }

    /// Set the phase.
    #[must_use]
    pub fn with_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Set the asset.
    #[must_use]
    pub fn with_asset(mut self, asset: impl Into<String>) -> Self {
        self.asset = Some(asset.into());
        self
    }

    /// Set the order id.
    #[must_use]
    pub fn with_order_id(mut self, order_id: impl Into<String>) -> Self {
        self.order_id = Some(order_id.into());
        self
    }

    /// Set the HTTP status the service answered.
    #[must_use]
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Add a service-specific tag.
    #[must_use]
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.service_tags.insert(key.into(), value.into());
        self
    }

    /// Set the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}
