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
    /// The kill switch: the server paused this agent's trading, so the library refused to
    /// start an order (reduce-only orders still go through). Captured once per pause.
    Paused,
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
            Self::Paused => "Paused",
            Self::Other(name) => name,
        }
    }

    /// Every named kind (without [`TradingErrorKind::Other`]), in declaration order.
    pub const ALL: [TradingErrorKind; 17] = [
        Self::InsufficientMargin,
        Self::OrderRejected,
        Self::RiskLimitBreach,
        Self::SlippageLimit,
        Self::InsufficientBalance,
        Self::AlreadyClaimed,
        Self::EscrowTimeout,
        Self::Dispute,
        Self::InsufficientFunds,
        Self::Network,
        Self::BidRejected,
        Self::AuctionExpired,
        Self::RateLimited,
        Self::Unauthorized,
        Self::Game,
        Self::Registration,
        Self::Paused,
    ];

    /// The kind with this name ([`TradingErrorKind::as_str`]); unknown names become
    /// [`TradingErrorKind::Other`].
    pub fn from_name(name: &str) -> Self {
        Self::ALL
            .iter()
            .find(|kind| kind.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Self::Other(name.to_owned()))
    }

    /// Whether errors of this kind are transient by nature (transport failures, rate limits).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Network | Self::RateLimited)
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

    /// The service with this lowercase name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Casino,
            Self::Faucet,
            Self::Escrow,
            Self::Trading,
            Self::Wallet,
            Self::Domains,
        ]
        .into_iter()
        .find(|service| service.as_str() == name)
    }

    /// The tags this service's errors carry (set with [`TradingError::with_tag`] or the
    /// `with_<service>` helpers), e.g. `game`, `bet_size`, `outcome` for the casino.
    pub fn tag_keys(self) -> &'static [&'static str] {
        match self {
            Self::Casino => &["game", "bet_size", "outcome"],
            Self::Faucet => &["claim_id", "agent_id"],
            Self::Escrow => &["escrow_id", "counterparty", "amount"],
            Self::Trading => &["asset", "side", "order_id", "fill_price"],
            Self::Wallet => &["wallet_type", "network", "tx_hash"],
            Self::Domains => &["domain_name", "tld", "auction_id"],
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

    /// The phase with this snake_case name; unknown names become [`Phase::Other`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "signal" => Self::Signal,
            "risk_check" => Self::RiskCheck,
            "sizing" => Self::Sizing,
            "order_placement" => Self::OrderPlacement,
            "confirmation" => Self::Confirmation,
            "balance_poll" => Self::BalancePoll,
            other => Self::Other(other.to_owned()),
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
#[derive(Debug)]
pub struct TradingError(Box<Inner>);

/// The fields of a [`TradingError`], boxed so a `Result<T, TradingError>` stays small.
#[derive(Debug)]
struct Inner {
    kind: TradingErrorKind,
    message: String,
    service: Option<Service>,
    phase: Option<Phase>,
    asset: Option<String>,
    order_id: Option<String>,
    http_status: Option<u16>,
    service_tags: BTreeMap<String, String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    event_id: Option<uuid::Uuid>,
}

impl fmt::Display for TradingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)
    }
}

impl std::error::Error for TradingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl TradingError {
    /// What went wrong.
    pub fn kind(&self) -> &TradingErrorKind {
        &self.0.kind
    }

    /// The human-readable description.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The service involved, if any.
    pub fn service(&self) -> Option<Service> {
        self.0.service
    }

    /// The phase of the decision cycle, if known.
    pub fn phase(&self) -> Option<&Phase> {
        self.0.phase.as_ref()
    }

    /// The asset traded (e.g. `BTC`), if known.
    pub fn asset(&self) -> Option<&str> {
        self.0.asset.as_deref()
    }

    /// The order id, if one was assigned.
    pub fn order_id(&self) -> Option<&str> {
        self.0.order_id.as_deref()
    }

    /// The HTTP status the service answered, if any.
    pub fn http_status(&self) -> Option<u16> {
        self.0.http_status
    }

    /// Service-specific tags (casino: game, bet_size, outcome; escrow: escrow_id, …).
    pub fn service_tags(&self) -> &BTreeMap<String, String> {
        &self.0.service_tags
    }

    /// The id of the Sentry event this error was already captured as, if any.
    ///
    /// Set by [`crate::OrderPipeline`] stages, which capture the errors they return; the
    /// capture functions skip an error that carries one, so an error is reported once.
    pub fn event_id(&self) -> Option<uuid::Uuid> {
        self.0.event_id
    }

    /// Record that this error was captured as this event.
    pub fn set_event_id(&mut self, id: uuid::Uuid) {
        self.0.event_id = Some(id);
    }

    /// Fill in the phase and asset if the error does not name them.
    pub(crate) fn fill_defaults(&mut self, phase: Phase, asset: &str) {
        if self.0.phase.is_none() {
            self.0.phase = Some(phase);
        }
        if self.0.asset.is_none() {
            self.0.asset = Some(asset.to_owned());
        }
    }

    /// The underlying error, with its thread-safety bounds.
    pub(crate) fn source_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.0.source.as_deref()
    }

    /// A new error of this kind with a message.
    pub fn new(kind: TradingErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            service: None,
            phase: None,
            asset: None,
            order_id: None,
            http_status: None,
            service_tags: BTreeMap::new(),
            source: None,
            event_id: None,
        }))
    }

    /// Set the service.
    #[must_use]
    pub fn with_service(mut self, service: Service) -> Self {
        self.0.service = Some(service);
        self
    }

    /// Set the phase.
    #[must_use]
    pub fn with_phase(mut self, phase: Phase) -> Self {
        self.0.phase = Some(phase);
        self
    }

    /// Set the asset.
    #[must_use]
    pub fn with_asset(mut self, asset: impl Into<String>) -> Self {
        self.0.asset = Some(asset.into());
        self
    }

    /// Set the order id.
    #[must_use]
    pub fn with_order_id(mut self, order_id: impl Into<String>) -> Self {
        self.0.order_id = Some(order_id.into());
        self
    }

    /// Set the HTTP status the service answered.
    #[must_use]
    pub fn with_http_status(mut self, status: u16) -> Self {
        self.0.http_status = Some(status);
        self
    }

    /// Add a service-specific tag.
    #[must_use]
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.service_tags.insert(key.into(), value.into());
        self
    }

    /// Set the casino service and its tags (`game`, `bet_size`, `outcome`).
    #[must_use]
    pub fn with_casino(
        self,
        game: impl Into<String>,
        bet_size: impl fmt::Display,
        outcome: impl Into<String>,
    ) -> Self {
        self.with_service(Service::Casino)
            .with_tag("game", game)
            .with_tag("bet_size", bet_size.to_string())
            .with_tag("outcome", outcome)
    }

    /// Set the faucet service and its tags (`claim_id`, `agent_id`).
    #[must_use]
    pub fn with_faucet(self, claim_id: impl Into<String>, agent_id: impl Into<String>) -> Self {
        self.with_service(Service::Faucet)
            .with_tag("claim_id", claim_id)
            .with_tag("agent_id", agent_id)
    }

    /// Set the escrow service and its tags (`escrow_id`, `counterparty`, `amount`).
    #[must_use]
    pub fn with_escrow(
        self,
        escrow_id: impl Into<String>,
        counterparty: impl Into<String>,
        amount: impl fmt::Display,
    ) -> Self {
        self.with_service(Service::Escrow)
            .with_tag("escrow_id", escrow_id)
            .with_tag("counterparty", counterparty)
            .with_tag("amount", amount.to_string())
    }

    /// Set the trading service and its tags (`asset`, `side`, `order_id`, `fill_price`); also
    /// sets the asset and order id of the error.
    #[must_use]
    pub fn with_trading(
        self,
        asset: impl Into<String>,
        side: impl fmt::Display,
        order_id: impl Into<String>,
        fill_price: Option<f64>,
    ) -> Self {
        let asset = asset.into();
        let order_id = order_id.into();
        let mut err = self
            .with_service(Service::Trading)
            .with_asset(asset.clone())
            .with_order_id(order_id.clone())
            .with_tag("asset", asset)
            .with_tag("side", side.to_string())
            .with_tag("order_id", order_id);
        if let Some(price) = fill_price {
            err = err.with_tag("fill_price", price.to_string());
        }
        err
    }

    /// Set the wallet service and its tags (`wallet_type`, `network`, `tx_hash`).
    #[must_use]
    pub fn with_wallet(
        self,
        wallet_type: impl Into<String>,
        network: impl Into<String>,
        tx_hash: Option<String>,
    ) -> Self {
        let mut err = self
            .with_service(Service::Wallet)
            .with_tag("wallet_type", wallet_type)
            .with_tag("network", network);
        if let Some(hash) = tx_hash {
            err = err.with_tag("tx_hash", hash);
        }
        err
    }

    /// Set the domains service and its tags (`domain_name`, `tld`, `auction_id`).
    #[must_use]
    pub fn with_domains(
        self,
        domain_name: impl Into<String>,
        tld: impl Into<String>,
        auction_id: Option<String>,
    ) -> Self {
        let mut err = self
            .with_service(Service::Domains)
            .with_tag("domain_name", domain_name)
            .with_tag("tld", tld);
        if let Some(id) = auction_id {
            err = err.with_tag("auction_id", id);
        }
        err
    }

    /// Whether this error is transient: a transport failure, a rate limit, or a 5xx or 429
    /// answer from the service. The noise filter drops transient errors outside order
    /// placement.
    pub fn is_transient(&self) -> bool {
        self.0.kind.is_transient()
            || self
                .0
                .http_status
                .is_some_and(|status| status == 429 || status >= 500)
    }

    /// The span status that describes this error (used by [`crate::OrderPipeline`] stages).
    pub fn span_status(&self) -> sentry::protocol::SpanStatus {
        use sentry::protocol::SpanStatus;
        match &self.0.kind {
            TradingErrorKind::Unauthorized => SpanStatus::Unauthenticated,
            TradingErrorKind::RateLimited => SpanStatus::ResourceExhausted,
            TradingErrorKind::Network => match self.0.http_status {
                Some(504) => SpanStatus::DeadlineExceeded,
                _ => SpanStatus::Unavailable,
            },
            TradingErrorKind::EscrowTimeout | TradingErrorKind::AuctionExpired => {
                SpanStatus::DeadlineExceeded
            }
            TradingErrorKind::AlreadyClaimed => SpanStatus::AlreadyExists,
            TradingErrorKind::Paused => SpanStatus::PermissionDenied,
            TradingErrorKind::SlippageLimit => SpanStatus::Aborted,
            TradingErrorKind::InsufficientMargin
            | TradingErrorKind::InsufficientBalance
            | TradingErrorKind::InsufficientFunds
            | TradingErrorKind::RiskLimitBreach
            | TradingErrorKind::OrderRejected
            | TradingErrorKind::BidRejected
            | TradingErrorKind::Dispute => SpanStatus::FailedPrecondition,
            TradingErrorKind::Game
            | TradingErrorKind::Registration
            | TradingErrorKind::Other(_) => SpanStatus::InternalError,
        }
    }

    /// Set the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Box::new(source));
        self
    }
}
