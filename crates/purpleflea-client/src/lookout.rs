//! Conversion into `lookout_agent::TradingError` (feature `lookout`).

use lookout_agent::{Phase, TradingError, TradingErrorKind};

use crate::trading;

use crate::error::{Error, ErrorKind, Op};
use crate::service::Service;

/// An agent's order side as a position side: [`Buy`](lookout_agent::Side::Buy) opens a
/// [`Long`](trading::Side::Long), [`Sell`](trading::Side::Sell) a
/// [`Short`](trading::Side::Short). So an agent imports one `Side`, `lookout_agent`'s, and
/// passes it to [`OpenPosition::new`](trading::OpenPosition::new), which takes
/// `impl Into<trading::Side>`.
impl From<lookout_agent::Side> for trading::Side {
    fn from(side: lookout_agent::Side) -> Self {
        match side {
            lookout_agent::Side::Buy => Self::Long,
            lookout_agent::Side::Sell => Self::Short,
        }
    }
}

/// A position side as the order side that opens it: `Long` is `Buy`, `Short` is `Sell`.
impl From<trading::Side> for lookout_agent::Side {
    fn from(side: trading::Side) -> Self {
        match side {
            trading::Side::Long => Self::Buy,
            trading::Side::Short => Self::Sell,
        }
    }
}

impl From<ErrorKind> for TradingErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InsufficientMargin => Self::InsufficientMargin,
            ErrorKind::OrderRejected => Self::OrderRejected,
            ErrorKind::RiskLimitBreach => Self::RiskLimitBreach,
            ErrorKind::SlippageLimit => Self::SlippageLimit,
            ErrorKind::InsufficientBalance => Self::InsufficientBalance,
            ErrorKind::AlreadyClaimed => Self::AlreadyClaimed,
            ErrorKind::EscrowTimeout => Self::EscrowTimeout,
            ErrorKind::Dispute => Self::Dispute,
            ErrorKind::InsufficientFunds => Self::InsufficientFunds,
            ErrorKind::Network => Self::Network,
            ErrorKind::BidRejected => Self::BidRejected,
            ErrorKind::AuctionExpired => Self::AuctionExpired,
            ErrorKind::RateLimited => Self::RateLimited,
            ErrorKind::Unauthorized => Self::Unauthorized,
            ErrorKind::Game => Self::Game,
            ErrorKind::Registration => Self::Registration,
            ErrorKind::Api | ErrorKind::Decode | ErrorKind::Config => {
                Self::Other(kind.as_str().to_owned())
            }
        }
    }
}

impl From<Service> for lookout_agent::Service {
    fn from(service: Service) -> Self {
        match service {
            Service::Casino => Self::Casino,
            Service::Faucet => Self::Faucet,
            Service::Escrow => Self::Escrow,
            Service::Trading => Self::Trading,
            Service::Wallet => Self::Wallet,
            Service::Domains => Self::Domains,
        }
    }
}

impl Error {
    /// The phase this error most likely belongs to: order placement for calls that move
    /// money or place orders (bets, opens, sends, bids, …), balance polling for balance and
    /// position reads, `None` otherwise.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        match self.op() {
            Op::Bet | Op::Write => Some(Phase::OrderPlacement),
            Op::BalanceRead => Some(Phase::BalancePoll),
            Op::Register | Op::Other => None,
        }
    }

    /// Converts into a `TradingError` in the given phase (instead of [`Error::phase`]).
    #[must_use]
    pub fn into_trading_error(self, phase: Option<Phase>) -> TradingError {
        let phase = phase.or_else(|| self.phase());
        let mut t = TradingError::new(self.kind().into(), self.to_string());
        if let Some(phase) = phase {
            t = t.with_phase(phase);
        }
        if let Some(status) = self.status() {
            t = t.with_http_status(status);
        }
        if let Some(code) = self.code() {
            t = t.with_tag("error_code", code);
        }
        let c = self.context().clone();
        let tag = |t: TradingError, k: &str, v: Option<String>| match v {
            Some(v) => t.with_tag(k, v),
            None => t,
        };
        if let Some(service) = self.service() {
            t = t.with_service(service.into());
            t = match service {
                Service::Casino => {
                    let t = tag(t, "game", c.game.clone());
                    let t = tag(t, "bet_size", c.bet_size.map(|b| b.to_string()));
                    if c.game.is_some() {
                        t.with_tag("outcome", "error")
                    } else {
                        t
                    }
                }
                Service::Faucet => {
                    let t = tag(t, "claim_id", c.claim_id.clone());
                    tag(t, "agent_id", c.agent_id.clone())
                }
                Service::Escrow => {
                    let t = tag(t, "escrow_id", c.escrow_id.clone());
                    let t = tag(t, "counterparty", c.counterparty.clone());
                    tag(t, "amount", c.amount.map(|a| a.to_string()))
                }
                Service::Trading => {
                    let mut t = t;
                    if let Some(asset) = &c.asset {
                        t = t.with_asset(asset.clone()).with_tag("asset", asset.clone());
                    }
                    if let Some(order) = &c.order_id {
                        t = t
                            .with_order_id(order.clone())
                            .with_tag("order_id", order.clone());
                    }
                    let t = tag(t, "side", c.side.clone());
                    tag(t, "position_id", c.position_id.clone())
                }
                Service::Wallet => {
                    let t = tag(t, "wallet_type", c.wallet_type.clone());
                    tag(t, "network", c.network.clone())
                }
                Service::Domains => {
                    let tld = c.tld().map(str::to_owned);
                    let t = tag(t, "domain_name", c.domain_name.clone());
                    let t = tag(t, "tld", tld);
                    let t = tag(t, "auction_id", c.auction_id.clone());
                    tag(t, "domain_id", c.domain_id.clone())
                }
            };
        }
        t.with_source(self)
    }
}

impl From<Error> for TradingError {
    /// Kind, service, HTTP status, the service's tags from the call context, the phase
    /// ([`Error::phase`]) and the client error as the source.
    fn from(error: Error) -> Self {
        error.into_trading_error(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_side_opens_the_matching_position_and_back() {
        let long = trading::OpenPosition::new("BTC", lookout_agent::Side::Buy, 100.0);
        assert_eq!(long.side, trading::Side::Long);
        let short = trading::OpenPosition::new("BTC", lookout_agent::Side::Sell, 100.0);
        assert_eq!(short.side, trading::Side::Short);
        for side in [lookout_agent::Side::Buy, lookout_agent::Side::Sell] {
            assert_eq!(lookout_agent::Side::from(trading::Side::from(side)), side);
        }
    }
}
