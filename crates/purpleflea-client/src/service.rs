//! The six Purple Flea services and where they live.

use std::fmt;

/// One of the six Purple Flea services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Casino games and the agent account: `https://casino.purpleflea.com/api/v1`.
    Casino,
    /// The one-time $1 faucet: `https://faucet.purpleflea.com` (no auth).
    Faucet,
    /// Escrow between agents on casino balances: `https://escrow.purpleflea.com` (casino key).
    Escrow,
    /// Perpetuals through a Hyperliquid proxy: `https://trading.purpleflea.com/v1`.
    Trading,
    /// Non-custodial multi-chain wallet: `https://wallet.purpleflea.com/v1`.
    Wallet,
    /// Domain search, registration, DNS and auctions: `https://domains.purpleflea.com/v1`.
    Domains,
}

impl Service {
    /// All six services, in documentation order.
    pub const ALL: [Service; 6] = [
        Service::Casino,
        Service::Faucet,
        Service::Escrow,
        Service::Trading,
        Service::Wallet,
        Service::Domains,
    ];

    /// Lowercase name, as used in span fields and the `service` tag.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Casino => "casino",
            Service::Faucet => "faucet",
            Service::Escrow => "escrow",
            Service::Trading => "trading",
            Service::Wallet => "wallet",
            Service::Domains => "domains",
        }
    }

    /// The production base URL (the services' code, `purpleflea-api.md` §2–§7).
    #[must_use]
    pub fn production_base_url(self) -> &'static str {
        match self {
            Service::Casino => "https://casino.purpleflea.com/api/v1",
            Service::Faucet => "https://faucet.purpleflea.com",
            Service::Escrow => "https://escrow.purpleflea.com",
            Service::Trading => "https://trading.purpleflea.com/v1",
            Service::Wallet => "https://wallet.purpleflea.com/v1",
            Service::Domains => "https://domains.purpleflea.com/v1",
        }
    }

    /// The API base path on the service's host: `/api/v1`, `/v1` or empty.
    #[must_use]
    pub fn api_base_path(self) -> &'static str {
        match self {
            Service::Casino => "/api/v1",
            Service::Trading | Service::Wallet | Service::Domains => "/v1",
            Service::Faucet | Service::Escrow => "",
        }
    }

    /// The path below a `purpleflea-sandbox` root URL that stands in for this service's
    /// production base URL: `/casino/api/v1`, `/faucet`, `/escrow`, `/trading/v1`,
    /// `/wallet/v1`, `/domains/v1`.
    #[must_use]
    pub fn sandbox_base_path(self) -> &'static str {
        match self {
            Service::Casino => "/casino/api/v1",
            Service::Faucet => "/faucet",
            Service::Escrow => "/escrow",
            Service::Trading => "/trading/v1",
            Service::Wallet => "/wallet/v1",
            Service::Domains => "/domains/v1",
        }
    }

    /// The prefix the service's API keys carry (then 48 hex characters); `None` for the
    /// faucet (no auth). Escrow takes the casino key.
    #[must_use]
    pub fn key_prefix(self) -> Option<&'static str> {
        match self {
            Service::Casino | Service::Escrow => Some("sk_live_"),
            Service::Trading => Some("sk_trade_"),
            Service::Wallet => Some("pk_live_"),
            Service::Domains => Some("sk_domains_"),
            Service::Faucet => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Service::Casino => 0,
            Service::Faucet => 1,
            Service::Escrow => 2,
            Service::Trading => 3,
            Service::Wallet => 4,
            Service::Domains => 5,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
