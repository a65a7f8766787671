//! Trading (`https://trading.purpleflea.com/v1`, key `sk_trade_…`): perpetuals through a
//! Hyperliquid proxy: markets, positions, limit orders, stop-loss/take-profit, risk settings.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Auth, Call, Client, body};
use crate::error::{CallContext, Error, Op};
use crate::service::Service;
use crate::types::RegisterRequest;

const S: Service = Service::Trading;

/// The trading sub-client; get one from [`Client::trading`].
#[derive(Debug, Clone, Copy)]
pub struct Trading<'a> {
    client: &'a Client,
}

/// Position side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Long (buy to open).
    Long,
    /// Short (sell to open).
    Short,
}

impl Side {
    /// `long` or `short`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Long => "long",
            Side::Short => "short",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /auth/register` on trading. `Debug` hides the signing key.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct TradingRegisterRequest {
    /// A referral code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<String>,
    /// An existing Hyperliquid wallet (the server generates one when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hl_wallet_address: Option<String>,
    /// That wallet's signing key; without it the agent cannot execute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hl_signing_key: Option<String>,
}

impl fmt::Debug for TradingRegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TradingRegisterRequest")
            .field("referral_code", &self.referral_code)
            .field("hl_wallet_address", &self.hl_wallet_address)
            .field(
                "hl_signing_key",
                &self.hl_signing_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl From<RegisterRequest> for TradingRegisterRequest {
    fn from(r: RegisterRequest) -> Self {
        Self {
            referral_code: r.referral_code,
            ..Self::default()
        }
    }
}

/// A new trading agent. `Debug` hides the key.
#[derive(Clone, PartialEq, Deserialize)]
pub struct TradingRegistration {
    /// `ag_…`.
    pub agent_id: String,
    /// `sk_trade_…`, shown once.
    pub api_key: String,
    /// Own referral code.
    #[serde(default)]
    pub referral_code: Option<String>,
    /// Tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// Where to deposit USDC (the Hyperliquid wallet).
    #[serde(default)]
    pub deposit_address: Option<String>,
    /// The Hyperliquid wallet.
    #[serde(default)]
    pub hl_wallet: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for TradingRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TradingRegistration")
            .field("agent_id", &self.agent_id)
            .field("api_key", &"<redacted>")
            .field("tier", &self.tier)
            .field("deposit_address", &self.deposit_address)
            .finish_non_exhaustive()
    }
}

/// `GET /auth/account`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TradingAccount {
    /// Tier (`free`, `pro`, `whale`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Effective leverage cap.
    #[serde(default)]
    pub max_leverage: Option<f64>,
    /// Effective position cap in USD.
    #[serde(default)]
    pub max_position_usd: Option<f64>,
    /// Volume traded in USD.
    #[serde(default)]
    pub total_volume: Option<f64>,
    /// Fees paid in USD.
    #[serde(default)]
    pub total_fees_paid: Option<f64>,
    /// Realised PnL in USD.
    #[serde(default)]
    pub total_pnl: Option<f64>,
    /// Other fields (`hl_account`, `agent_id`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /markets`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Markets {
    /// Number of markets.
    #[serde(default)]
    pub total_markets: Option<u64>,
    /// Markets by category (`crypto`, `stocks`, `commodities`, `indices`, `forex`).
    #[serde(default)]
    pub categories: BTreeMap<String, MarketCategory>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Markets {
    /// Every market of every category.
    pub fn iter(&self) -> impl Iterator<Item = &Market> {
        self.categories.values().flat_map(|c| c.markets.iter())
    }
}

/// One category of markets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarketCategory {
    /// Its markets.
    #[serde(default)]
    pub markets: Vec<Market>,
    /// Other fields (`count`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A market (`GET /markets/:coin` and the entries of `GET /markets`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Market {
    /// Hyperliquid name: `BTC`, `xyz:TSLA`.
    pub coin: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Mid price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub price: Option<f64>,
    /// Leverage cap of the market.
    #[serde(default)]
    pub max_leverage: Option<f64>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Dex (`main`, `xyz`).
    #[serde(default)]
    pub dex: Option<String>,
    /// Other fields (`ticker`, `min_order_usd`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /markets/:coin/price`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Price {
    /// Coin.
    pub coin: String,
    /// Ticker.
    #[serde(default)]
    pub ticker: Option<String>,
    /// Mid price.
    #[serde(deserialize_with = "crate::de::opt_f64", default)]
    pub price: Option<f64>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// The body of `POST /trade/open`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenPosition {
    /// Coin (`BTC`, `TSLA`; upper-cased by the service).
    pub coin: String,
    /// Side.
    pub side: Side,
    /// Notional in USD.
    pub size_usd: f64,
    /// Leverage (default 5; silently capped at the account maximum).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leverage: Option<f64>,
}

impl OpenPosition {
    /// A market order for `size_usd` notional. The side is a [`Side`], or (feature
    /// `lookout`) a `lookout_agent::Side`: `Buy` opens a long, `Sell` a short.
    #[must_use]
    pub fn new(coin: impl Into<String>, side: impl Into<Side>, size_usd: f64) -> Self {
        Self {
            coin: coin.into(),
            side: side.into(),
            size_usd,
            leverage: None,
        }
    }

    /// Sets the leverage.
    #[must_use]
    pub fn leverage(mut self, leverage: f64) -> Self {
        self.leverage = Some(leverage);
        self
    }
}

/// `POST /trade/open`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OpenedPosition {
    /// `pos_…`.
    pub position_id: String,
    /// `ord_…`.
    #[serde(default)]
    pub order_id: Option<String>,
    /// Coin.
    #[serde(default)]
    pub coin: Option<String>,
    /// Side.
    #[serde(default)]
    pub side: Option<Side>,
    /// Filled notional in USD.
    #[serde(default)]
    pub size_usd: Option<f64>,
    /// Fill price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub entry_price: Option<f64>,
    /// Leverage used (after capping).
    #[serde(default)]
    pub leverage: Option<f64>,
    /// Margin = size / leverage.
    #[serde(default)]
    pub margin_used: Option<f64>,
    /// Estimated liquidation price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub liquidation_price: Option<f64>,
    /// Fee in USD.
    #[serde(default)]
    pub fee: Option<f64>,
    /// Hyperliquid order id.
    #[serde(default, deserialize_with = "crate::de::opt_string")]
    pub hl_order_id: Option<String>,
    /// `open`.
    #[serde(default)]
    pub status: Option<String>,
    /// Other fields (`fee_breakdown`, `ticker`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /trade/close`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClosedPosition {
    /// `pos_…`.
    #[serde(default)]
    pub position_id: Option<String>,
    /// Exit price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub exit_price: Option<f64>,
    /// Realised PnL = size × (exit − entry) / entry (negated for shorts).
    #[serde(default)]
    pub pnl: Option<f64>,
    /// PnL in percent of notional.
    #[serde(default)]
    pub pnl_percent: Option<f64>,
    /// Fee in USD.
    #[serde(default)]
    pub fee: Option<f64>,
    /// `closed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /trade/positions`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Positions {
    /// The positions.
    #[serde(default)]
    pub positions: Vec<Position>,
    /// `hyperliquid` (open) or `database` (`status=all`).
    #[serde(default)]
    pub source: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A position. Reads both the live shape and the camelCase database rows of `status=all`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Position {
    /// `pos_…`.
    #[serde(alias = "id")]
    pub position_id: String,
    /// Coin.
    #[serde(default)]
    pub coin: Option<String>,
    /// Side.
    #[serde(default)]
    pub side: Option<Side>,
    /// Size in coins.
    #[serde(default)]
    pub size: Option<f64>,
    /// Notional in USD.
    #[serde(default, alias = "sizeUsd")]
    pub size_usd: Option<f64>,
    /// Entry price.
    #[serde(default, alias = "entryPrice", deserialize_with = "crate::de::opt_f64")]
    pub entry_price: Option<f64>,
    /// Current mid.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub current_price: Option<f64>,
    /// Leverage.
    #[serde(default)]
    pub leverage: Option<f64>,
    /// Margin.
    #[serde(default, alias = "marginUsed")]
    pub margin_used: Option<f64>,
    /// Estimated liquidation price.
    #[serde(
        default,
        alias = "liquidationPrice",
        deserialize_with = "crate::de::opt_f64"
    )]
    pub liquidation_price: Option<f64>,
    /// Unrealised PnL (realised for closed rows).
    #[serde(default)]
    pub unrealized_pnl: Option<f64>,
    /// `open` or `closed` (database rows).
    #[serde(default)]
    pub status: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /trade/history`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TradeHistory {
    /// Trades, newest first.
    #[serde(default)]
    pub trades: Vec<TradeRecord>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fill, as the raw camelCase database row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TradeRecord {
    /// `trd_…`.
    pub id: String,
    /// `ord_…`.
    #[serde(default, rename = "orderId", alias = "order_id")]
    pub order_id: Option<String>,
    /// Coin.
    #[serde(default)]
    pub coin: Option<String>,
    /// `buy` or `sell`.
    #[serde(default)]
    pub side: Option<String>,
    /// Notional in USD.
    #[serde(default, rename = "sizeUsd", alias = "size_usd")]
    pub size_usd: Option<f64>,
    /// Fill price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub price: Option<f64>,
    /// Fee.
    #[serde(default)]
    pub fee: Option<f64>,
    /// Realised PnL (closing fills).
    #[serde(default, rename = "realizedPnl", alias = "realized_pnl")]
    pub realized_pnl: Option<f64>,
    /// Other fields (`createdAt`, `agentId`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /trade/limit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitOrderRequest {
    /// Coin.
    pub coin: String,
    /// Side.
    pub side: Side,
    /// Notional in USD.
    pub size_usd: f64,
    /// Trigger: a long fires at price ≤ limit, a short at price ≥ limit (fills at market).
    pub limit_price: f64,
    /// Leverage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leverage: Option<f64>,
}

/// An order (limit, stop-loss, take-profit).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// `ord_…`.
    pub order_id: String,
    /// `limit`, `stop_loss`, `take_profit`, `market`.
    #[serde(default)]
    pub order_type: Option<String>,
    /// Coin.
    #[serde(default)]
    pub coin: Option<String>,
    /// Side (the close side for exit orders).
    #[serde(default)]
    pub side: Option<String>,
    /// Notional.
    #[serde(default)]
    pub size_usd: Option<f64>,
    /// `pending`, `filled`, `cancelled`, `failed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Limit price (limit orders).
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub limit_price: Option<f64>,
    /// Trigger price (exit orders).
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub trigger_price: Option<f64>,
    /// The position (exit orders, filled limits).
    #[serde(default)]
    pub position_id: Option<String>,
    /// Fill price.
    #[serde(default, deserialize_with = "crate::de::opt_f64")]
    pub fill_price: Option<f64>,
    /// Other fields (`type`, `current_price`, `error`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /trade/limit-orders`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LimitOrders {
    /// Pending.
    #[serde(default)]
    pub pending: Vec<Order>,
    /// Filled.
    #[serde(default)]
    pub filled: Vec<Order>,
    /// Cancelled.
    #[serde(default)]
    pub cancelled: Vec<Order>,
    /// Failed.
    #[serde(default)]
    pub failed: Vec<Order>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /trade/check-limits`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LimitCheck {
    /// Pending orders checked.
    #[serde(default)]
    pub checked: Option<u64>,
    /// Orders that fired (`{order, result | error | simulated}`).
    #[serde(default)]
    pub triggered: Vec<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /trade/risk-settings`; unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RiskSettingsUpdate {
    /// Daily realised loss after which opens answer 403 `daily_loss_limit_reached`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_daily_loss_usd: Option<f64>,
    /// Leverage cap (≤ tier cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_leverage: Option<f64>,
    /// Position cap in USD (≤ tier cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_position_usd: Option<f64>,
}

/// Risk settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RiskSettings {
    /// Daily loss limit.
    #[serde(default)]
    pub max_daily_loss_usd: Option<f64>,
    /// Leverage cap.
    #[serde(default)]
    pub max_leverage: Option<f64>,
    /// Position cap.
    #[serde(default)]
    pub max_position_usd: Option<f64>,
    /// Other fields (`tier`, `tier_limits`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct RiskSettingsEnvelope {
    risk_settings: RiskSettings,
}

impl<'a> Trading<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /auth/register` (no auth). Never retried.
    ///
    /// # Errors
    ///
    /// [`Error`] ([`crate::ErrorKind::Registration`]).
    pub async fn register(
        &self,
        request: &TradingRegisterRequest,
    ) -> Result<TradingRegistration, Error> {
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
    pub async fn account(&self) -> Result<TradingAccount, Error> {
        self.client
            .call(Call::get(S, "/auth/account").op(Op::BalanceRead))
            .await
    }

    /// `GET /markets` (public).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn markets(&self) -> Result<Markets, Error> {
        self.client
            .call(Call::get(S, "/markets").auth(Auth::None))
            .await
    }

    /// `GET /markets/:coin` (public).
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `market_not_found`).
    pub async fn market(&self, coin: &str) -> Result<Market, Error> {
        let call = Call::get(S, "/markets/{coin}")
            .param("coin", coin)
            .auth(Auth::None)
            .context(asset(coin));
        self.client.call(call).await
    }

    /// `GET /markets/:coin/price` (public).
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `market_not_found`).
    pub async fn price(&self, coin: &str) -> Result<Price, Error> {
        let call = Call::get(S, "/markets/{coin}/price")
            .param("coin", coin)
            .auth(Auth::None)
            .context(asset(coin));
        self.client.call(call).await
    }

    /// `POST /trade/open`: an IoC at mid ±0.5%. **Never retried** on 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`]: "Order not filled …" is [`crate::ErrorKind::SlippageLimit`], "Insufficient
    /// margin" [`crate::ErrorKind::InsufficientMargin`], `daily_loss_limit_reached`
    /// [`crate::ErrorKind::RiskLimitBreach`], other refusals
    /// [`crate::ErrorKind::OrderRejected`].
    pub async fn open(&self, request: &OpenPosition) -> Result<OpenedPosition, Error> {
        let call = Call::post(S, "/trade/open")
            .json(body(request))
            .context(CallContext {
                asset: Some(request.coin.clone()),
                side: Some(request.side.to_string()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `POST /trade/close {position_id}`: closes the whole position. **Never retried** on
    /// 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `position_not_found`, 400 `close_failed`).
    pub async fn close(&self, position_id: &str) -> Result<ClosedPosition, Error> {
        let call = Call::post(S, "/trade/close")
            .json(json!({ "position_id": position_id }))
            .context(CallContext {
                position_id: Some(position_id.to_owned()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /trade/positions`: open positions, live.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn positions(&self) -> Result<Positions, Error> {
        self.client
            .call(Call::get(S, "/trade/positions").op(Op::BalanceRead))
            .await
    }

    /// `GET /trade/positions?status=all`: the latest positions of any status (database rows).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn all_positions(&self) -> Result<Positions, Error> {
        let call = Call::get(S, "/trade/positions")
            .query("status", "all")
            .op(Op::BalanceRead);
        self.client.call(call).await
    }

    /// `GET /trade/history?limit=`.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn history(&self, limit: Option<u32>) -> Result<TradeHistory, Error> {
        let mut call = Call::get(S, "/trade/history");
        if let Some(limit) = limit {
            call = call.query("limit", limit);
        }
        self.client.call(call).await
    }

    /// `POST /trade/limit`: a pending order that fills at market once triggered. Never
    /// retried on 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`] (`invalid_price`, `too_large`, `unknown_coin`, `limit_reached`:
    /// [`crate::ErrorKind::OrderRejected`]).
    pub async fn limit(&self, request: &LimitOrderRequest) -> Result<Order, Error> {
        let call = Call::post(S, "/trade/limit")
            .json(body(request))
            .context(CallContext {
                asset: Some(request.coin.clone()),
                side: Some(request.side.to_string()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /trade/limit-orders`: orders grouped by status.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn limit_orders(&self) -> Result<LimitOrders, Error> {
        self.client.call(Call::get(S, "/trade/limit-orders")).await
    }

    /// `DELETE /trade/limit-orders/:id`.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `order_not_found`, 400 `not_pending`).
    pub async fn cancel_limit_order(&self, order_id: &str) -> Result<Order, Error> {
        let call = Call::delete(S, "/trade/limit-orders/{id}")
            .param("id", order_id)
            .context(CallContext {
                order_id: Some(order_id.to_owned()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `POST /trade/check-limits`: runs the limit/stop monitor now.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn check_limits(&self) -> Result<LimitCheck, Error> {
        self.client.call(Call::post(S, "/trade/check-limits")).await
    }

    /// `POST /trade/stop-loss {position_id, trigger_price}`.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `position_not_found`, 400 `position_not_open`,
    /// `invalid_trigger_price`).
    pub async fn stop_loss(&self, position_id: &str, trigger_price: f64) -> Result<Order, Error> {
        self.exit_order("/trade/stop-loss", position_id, trigger_price)
            .await
    }

    /// `POST /trade/take-profit {position_id, trigger_price}`.
    ///
    /// # Errors
    ///
    /// As [`Trading::stop_loss`].
    pub async fn take_profit(&self, position_id: &str, trigger_price: f64) -> Result<Order, Error> {
        self.exit_order("/trade/take-profit", position_id, trigger_price)
            .await
    }

    async fn exit_order(
        &self,
        route: &'static str,
        position_id: &str,
        trigger_price: f64,
    ) -> Result<Order, Error> {
        let call = Call::post(S, route)
            .json(json!({ "position_id": position_id, "trigger_price": trigger_price }))
            .context(CallContext {
                position_id: Some(position_id.to_owned()),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /trade/risk-settings`.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn risk_settings(&self) -> Result<RiskSettings, Error> {
        let envelope: RiskSettingsEnvelope = self
            .client
            .call(Call::get(S, "/trade/risk-settings"))
            .await?;
        Ok(envelope.risk_settings)
    }

    /// `POST /trade/risk-settings`: an idempotent setter (retried like a read).
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `invalid_request`).
    pub async fn set_risk_settings(
        &self,
        update: &RiskSettingsUpdate,
    ) -> Result<RiskSettings, Error> {
        let call = Call::post(S, "/trade/risk-settings")
            .idempotent()
            .op(Op::Other)
            .json(body(update));
        let envelope: RiskSettingsEnvelope = self.client.call(call).await?;
        Ok(envelope.risk_settings)
    }
}

fn asset(coin: &str) -> CallContext {
    CallContext {
        asset: Some(coin.to_owned()),
        ..CallContext::default()
    }
}
