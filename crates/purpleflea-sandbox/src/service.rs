//! The six services and where each one is mounted.

use serde::{Deserialize, Serialize};

/// One of the six Purple Flea services the sandbox imitates.
///
/// Each service is mounted under `/<name>` and keeps its real paths below that prefix, so a
/// client whose base URL for a service is `http://host:port/<name>` followed by the real base
/// path (see [`Service::api_base`]) sends exactly the requests it would send to production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// `https://casino.purpleflea.com/api/v1`: accounts, games, provably fair, Kelly.
    Casino,
    /// `https://faucet.purpleflea.com`: the $1 claim for new casino agents.
    Faucet,
    /// `https://escrow.purpleflea.com`: agent-to-agent escrow on casino balances.
    Escrow,
    /// `https://trading.purpleflea.com/v1`: perpetuals through a Hyperliquid proxy.
    Trading,
    /// `https://wallet.purpleflea.com/v1`: non-custodial HD wallets, sends, swaps.
    Wallet,
    /// `https://domains.purpleflea.com/v1`: domain search, registration, DNS, auctions.
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

    /// The lower-case name, also used in fault configs (`[services.<name>]`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Service::Casino => "casino",
            Service::Faucet => "faucet",
            Service::Escrow => "escrow",
            Service::Trading => "trading",
            Service::Wallet => "wallet",
            Service::Domains => "domains",
        }
    }

    /// The sandbox path prefix that stands in for the service's host, e.g. `/casino`.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            Service::Casino => "/casino",
            Service::Faucet => "/faucet",
            Service::Escrow => "/escrow",
            Service::Trading => "/trading",
            Service::Wallet => "/wallet",
            Service::Domains => "/domains",
        }
    }

    /// The real API base path on the service's host: `/api/v1` (casino), `/v1` (trading,
    /// wallet, domains) or empty (faucet, escrow, whose routes start at the host root).
    #[must_use]
    pub fn api_base(self) -> &'static str {
        match self {
            Service::Casino => "/api/v1",
            Service::Trading | Service::Wallet | Service::Domains => "/v1",
            Service::Faucet | Service::Escrow => "",
        }
    }

    /// The production base URL this service stands in for.
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

    /// Parses a lower-case service name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The name the service reports in `_info.service`.
    pub(crate) fn info_name(self) -> &'static str {
        match self {
            Service::Casino => "agent-casino",
            Service::Faucet => "agent-faucet",
            Service::Escrow => "agent-escrow",
            Service::Trading => "agent-trading",
            Service::Wallet => "public-wallet",
            Service::Domains => "agent-domains",
        }
    }

    /// Whether an unknown API key is answered with `{"error":"invalid_key"}` (trading,
    /// domains) rather than `unauthorized` (casino, escrow, wallet).
    pub(crate) fn unknown_key_is_invalid_key(self) -> bool {
        matches!(self, Service::Trading | Service::Domains)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
