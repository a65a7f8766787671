//! Wallet (`https://wallet.purpleflea.com/v1`, key `pk_live_…`): non-custodial HD wallets on
//! real chains, balances, sends and cross-chain swaps.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{Auth, Call, Client, body};
use crate::error::{CallContext, Error, Op};
use crate::service::Service;
use crate::types::{RegisterRequest, Registration};

const S: Service = Service::Wallet;

/// The wallet sub-client; get one from [`Client::wallet`].
#[derive(Debug, Clone, Copy)]
pub struct Wallet<'a> {
    client: &'a Client,
}

/// `POST /wallet/create`: a 24-word mnemonic and one address per chain.
///
/// `Debug` shows the addresses only: the mnemonic and any keys never reach logs.
#[derive(Clone, PartialEq, Deserialize)]
pub struct CreatedWallet {
    /// The 24-word mnemonic, shown once.
    pub mnemonic: String,
    /// Address by chain (`ethereum`, `base`, `solana`, `bitcoin`, `tron`, `monero`).
    #[serde(default)]
    pub addresses: BTreeMap<String, String>,
    /// Derivation paths by chain.
    #[serde(default)]
    pub derivation_paths: BTreeMap<String, String>,
    /// Other fields (`monero_keys`, `warning`; the sandbox adds `sandbox_private_keys`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for CreatedWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedWallet")
            .field("mnemonic", &"<redacted>")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

/// `GET /wallet/balance/:address?chain=`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WalletBalance {
    /// The address.
    #[serde(default)]
    pub address: Option<String>,
    /// The chain.
    #[serde(default)]
    pub chain: Option<String>,
    /// Balances.
    pub balance: BalanceDetail,
    /// Other fields (`explorer`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Native and token balances of an address.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BalanceDetail {
    /// The native coin.
    pub native: TokenAmount,
    /// Tokens by symbol.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenAmount>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An amount of a coin or token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenAmount {
    /// Symbol.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Decimal amount as a string (`"0.5"`).
    #[serde(default, deserialize_with = "crate::de::opt_string")]
    pub amount: Option<String>,
    /// Smallest units (`wei`, `lamports`, …, `raw`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body of `POST /wallet/send`. `Debug` hides the private key.
#[derive(Clone, PartialEq, Serialize)]
pub struct SendRequest {
    /// Chain (`base`, `ethereum`, `solana`, `tron`, `monero`; bitcoin answers 501).
    pub chain: String,
    /// Recipient address.
    pub to: String,
    /// Decimal amount as a string.
    pub amount: String,
    /// The sender's private key (the wallet is non-custodial).
    pub private_key: String,
    /// Token symbol or contract; native coin when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRequest")
            .field("chain", &self.chain)
            .field("to", &self.to)
            .field("amount", &self.amount)
            .field("private_key", &"<redacted>")
            .field("token", &self.token)
            .finish()
    }
}

/// `POST /wallet/send`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SentTransaction {
    /// Transaction hash.
    pub tx_hash: String,
    /// Sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Recipient.
    #[serde(default)]
    pub to: Option<String>,
    /// Amount.
    #[serde(default, deserialize_with = "crate::de::opt_string")]
    pub amount: Option<String>,
    /// Explorer link.
    #[serde(default)]
    pub explorer: Option<String>,
    /// Other fields (`chain`, `token`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The query of `GET /wallet/swap/quote`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapQuoteRequest {
    /// Source chain.
    pub from_chain: String,
    /// Target chain.
    pub to_chain: String,
    /// Source token (`ETH`, `USDC`, …).
    pub from_token: String,
    /// Target token.
    pub to_token: String,
    /// Amount in the source token's smallest unit, as an integer string.
    pub amount: String,
}

/// The body of `POST /wallet/swap`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapRequest {
    /// The quote parameters.
    #[serde(flatten)]
    pub quote: SwapQuoteRequest,
    /// Where the output goes.
    pub to_address: String,
}

/// `GET /wallet/swap/quote`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwapQuote {
    /// The quote (camelCase fields such as `toAmount`, `fromAmountUsd`).
    #[serde(default)]
    pub quote: Map<String, Value>,
    /// The 0.5% integrator fee.
    #[serde(default)]
    pub integrator_fee: Option<Value>,
    /// Other fields (`next_step`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SwapQuote {
    /// The output amount in the target token's smallest unit (`toAmount`).
    #[must_use]
    pub fn to_amount(&self) -> Option<&str> {
        self.quote.get("toAmount").and_then(Value::as_str)
    }
}

/// `POST /wallet/swap`: an order awaiting the deposit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwapOrder {
    /// The order id to poll.
    #[serde(alias = "orderId")]
    pub order_id: String,
    /// Swap id.
    #[serde(default)]
    pub swap_id: Option<String>,
    /// `awaiting_deposit`, `completed`, `expired`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Where to send the input (`address`, `chain`, `token`, `amount`).
    #[serde(default)]
    pub deposit: Option<SwapDeposit>,
    /// Other fields (`output`, `fee`, `expires_at`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The deposit a swap waits for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwapDeposit {
    /// Deposit address.
    pub address: String,
    /// Chain.
    #[serde(default)]
    pub chain: Option<String>,
    /// Token.
    #[serde(default)]
    pub token: Option<String>,
    /// Decimal amount.
    #[serde(default, deserialize_with = "crate::de::opt_string")]
    pub amount: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /wallet/swap/status/:orderId`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SwapStatus {
    /// The order id.
    #[serde(alias = "orderId")]
    pub order_id: String,
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
    /// Other fields (camelCase: `depositTx`, `expectedOutput`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl<'a> Wallet<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    fn ctx(chain: Option<&str>) -> CallContext {
        CallContext {
            wallet_type: Some("hd".to_owned()),
            network: chain.map(str::to_owned),
            ..CallContext::default()
        }
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

    /// `POST /wallet/create`: a new HD wallet. Not retried (a second call makes a second
    /// wallet).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn create(&self) -> Result<CreatedWallet, Error> {
        let call = Call::post(S, "/wallet/create")
            .op(Op::Other)
            .context(Self::ctx(None));
        self.client.call(call).await
    }

    /// `GET /wallet/balance/:address?chain=` (default chain `base`).
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `unsupported_chain`, 502 `rpc_error`).
    pub async fn balance(
        &self,
        address: &str,
        chain: Option<&str>,
    ) -> Result<WalletBalance, Error> {
        let mut call = Call::get(S, "/wallet/balance/{address}")
            .param("address", address)
            .op(Op::BalanceRead)
            .context(Self::ctx(chain));
        if let Some(chain) = chain {
            call = call.query("chain", chain);
        }
        self.client.call(call).await
    }

    /// `POST /wallet/send`. **Never retried** on 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`]: `send_failed` reporting insufficient funds is
    /// [`crate::ErrorKind::InsufficientFunds`]; 501 for bitcoin is [`crate::ErrorKind::Api`].
    pub async fn send(&self, request: &SendRequest) -> Result<SentTransaction, Error> {
        let call = Call::post(S, "/wallet/send")
            .json(body(request))
            .context(Self::ctx(Some(&request.chain)));
        self.client.call(call).await
    }

    /// `GET /wallet/swap/quote`.
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `quote_failed`).
    pub async fn swap_quote(&self, request: &SwapQuoteRequest) -> Result<SwapQuote, Error> {
        let call = Call::get(S, "/wallet/swap/quote")
            .query("from_chain", &request.from_chain)
            .query("to_chain", &request.to_chain)
            .query("from_token", &request.from_token)
            .query("to_token", &request.to_token)
            .query("amount", &request.amount)
            .context(Self::ctx(Some(&request.from_chain)));
        self.client.call(call).await
    }

    /// `POST /wallet/swap` (0.5% fee). **Never retried** on 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `swap_failed`).
    pub async fn swap(&self, request: &SwapRequest) -> Result<SwapOrder, Error> {
        let call = Call::post(S, "/wallet/swap")
            .json(body(request))
            .context(Self::ctx(Some(&request.quote.from_chain)));
        self.client.call(call).await
    }

    /// `GET /wallet/swap/status/:orderId`.
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `status_check_failed`).
    pub async fn swap_status(&self, order_id: &str) -> Result<SwapStatus, Error> {
        let call = Call::get(S, "/wallet/swap/status/{id}")
            .param("id", order_id)
            .context(Self::ctx(None));
        self.client.call(call).await
    }
}
