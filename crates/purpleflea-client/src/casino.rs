//! Casino (`https://casino.purpleflea.com/api/v1`, key `sk_live_…`): account, games,
//! batches, history, the Kelly gate and the provably-fair endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::client::{Auth, Call, Client, body};
use crate::error::{CallContext, Error, Op};
use crate::service::Service;
use crate::types::{DepositAddress, DepositAddressRequest, RegisterRequest, Registration};

const S: Service = Service::Casino;

/// The casino sub-client; get one from [`Client::casino`].
#[derive(Debug, Clone, Copy)]
pub struct Casino<'a> {
    client: &'a Client,
}

impl<'a> Casino<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /auth/register` (no auth): a new agent with `balance: 0`. The casino fires the
    /// $1 faucet claim on registration, so the balance becomes $1 shortly after.
    ///
    /// # Errors
    ///
    /// [`Error`]; a refused registration is [`crate::ErrorKind::Registration`], the 10/min
    /// per-IP limit [`crate::ErrorKind::RateLimited`].
    pub async fn register(&self, request: &RegisterRequest) -> Result<Registration, Error> {
        let call = Call::post(S, "/auth/register")
            .auth(Auth::None)
            .op(Op::Register)
            .json(body(request));
        self.client.call(call).await
    }

    /// `GET /auth/balance`: balance, lifetime totals and recent activity.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn balance(&self) -> Result<CasinoBalance, Error> {
        let call = Call::get(S, "/auth/balance").op(Op::BalanceRead);
        self.client.call(call).await
    }

    /// `POST /auth/deposit-address {chain?}` (default `base`); returns the existing address
    /// when there is one, so it is retried like a read.
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `unsupported_chain`, 502/503 `wallet_service_*`).
    pub async fn deposit_address(&self, chain: Option<&str>) -> Result<DepositAddress, Error> {
        let call = Call::post(S, "/auth/deposit-address")
            .idempotent()
            .op(Op::Other)
            .json(body(&DepositAddressRequest { chain }));
        self.client.call(call).await
    }

    /// `POST /auth/withdraw {amount, address}`: USDC on Base, $0.50 fee. Never retried.
    ///
    /// # Errors
    ///
    /// [`Error`] (`invalid_amount`, `minimum_withdrawal`, `maximum_withdrawal`,
    /// `invalid_address`, `insufficient_balance`, 500 `withdrawal_failed`).
    pub async fn withdraw(&self, amount: f64, address: &str) -> Result<Withdrawal, Error> {
        let call = Call::post(S, "/auth/withdraw")
            .json(json!({"amount": amount, "address": address}))
            .context(CallContext {
                amount: Some(amount),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /games` (public): the game catalogue.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn games(&self) -> Result<GameList, Error> {
        self.client
            .call(Call::get(S, "/games").auth(Auth::None))
            .await
    }

    /// `POST /games/<slug>`: one bet. Never retried on 5xx or timeout (a 429 is retried: it
    /// was not processed).
    ///
    /// # Errors
    ///
    /// [`Error`]: [`crate::ErrorKind::Game`] for bad parameters,
    /// [`crate::ErrorKind::InsufficientBalance`] for `insufficient_balance` and
    /// `kelly_limit_exceeded`, [`crate::ErrorKind::RateLimited`] for the per-agent bucket.
    pub async fn play(&self, bet: &Bet) -> Result<BetResult, Error> {
        let slug = bet.game.slug();
        let call = Call::post(S, format!("/games/{slug}"))
            .op(Op::Bet)
            .json(bet.body(false))
            .context(bet.context());
        self.client.call(call).await
    }

    /// `POST /bets/batch`: up to 20 bets in one call (10 calls/min). Each entry succeeds or
    /// fails on its own. Never retried on 5xx or timeout.
    ///
    /// # Errors
    ///
    /// [`Error`] for the call as a whole (`invalid_request`, `too_many_bets`, 429).
    pub async fn batch(&self, bets: &[Bet]) -> Result<BatchResult, Error> {
        let list: Vec<Value> = bets.iter().map(|b| b.body(true)).collect();
        let total: f64 = bets.iter().map(|b| b.amount).sum();
        let call = Call::post(S, "/bets/batch")
            .op(Op::Bet)
            .json(json!({ "bets": list }))
            .context(CallContext {
                game: Some("batch".to_owned()),
                bet_size: Some(total),
                ..CallContext::default()
            });
        self.client.call(call).await
    }

    /// `GET /bets/history?limit=` (at most 200; the service defaults to 50).
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn history(&self, limit: Option<u32>) -> Result<BetHistory, Error> {
        let mut call = Call::get(S, "/bets/history");
        if let Some(limit) = limit {
            call = call.query("limit", limit);
        }
        self.client.call(call).await
    }

    /// `PUT /kelly/config {risk_factor}` (0.1–1.0).
    ///
    /// # Errors
    ///
    /// [`Error`] (400 `invalid_risk_factor`).
    pub async fn set_risk_factor(&self, risk_factor: f64) -> Result<KellyConfig, Error> {
        let call = Call::put(S, "/kelly/config")
            .idempotent()
            .op(Op::Other)
            .json(json!({ "risk_factor": risk_factor }));
        self.client.call(call).await
    }

    /// `GET /kelly/limits`: the largest bet per game at the current bankroll.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn kelly_limits(&self) -> Result<KellyLimits, Error> {
        self.client.call(Call::get(S, "/kelly/limits")).await
    }

    /// `GET /fairness/seed-hash`: the hash of the active server seed and its next nonce.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn seed_hash(&self) -> Result<SeedHash, Error> {
        self.client.call(Call::get(S, "/fairness/seed-hash")).await
    }

    /// `GET /fairness/seeds`: every server seed of the agent, revealed ones with their text.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn seeds(&self) -> Result<SeedList, Error> {
        self.client.call(Call::get(S, "/fairness/seeds")).await
    }

    /// `POST /fairness/rotate`: reveals the active seed and starts a new one.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn rotate_seed(&self) -> Result<SeedRotation, Error> {
        self.client
            .call(Call::post(S, "/fairness/rotate").op(Op::Other))
            .await
    }

    /// `POST /fairness/verify {bet_id}`: `status: "seed_not_yet_revealed"` until the seed
    /// rotates, then the proof.
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `bet_not_found`, 403 `forbidden`).
    pub async fn verify_bet(&self, bet_id: &str) -> Result<Verification, Error> {
        let call = Call::post(S, "/fairness/verify")
            .idempotent()
            .op(Op::Other)
            .json(json!({ "bet_id": bet_id }));
        self.client.call(call).await
    }

    /// `POST /fairness/verify {server_seed, server_seed_hash, client_seed, nonce}`: the
    /// service recomputes a roll from a revealed seed.
    ///
    /// # Errors
    ///
    /// [`Error`].
    pub async fn verify_manual(&self, input: &ManualVerification) -> Result<Verification, Error> {
        let call = Call::post(S, "/fairness/verify")
            .idempotent()
            .op(Op::Other)
            .json(body(input));
        self.client.call(call).await
    }

    /// `GET /fairness/audit/:betId`: a bet with its proof (the seed once revealed).
    ///
    /// # Errors
    ///
    /// [`Error`] (404 `bet_not_found`, 403 `forbidden`).
    pub async fn audit(&self, bet_id: &str) -> Result<BetAudit, Error> {
        let call = Call::get(S, "/fairness/audit/{bet_id}").param("bet_id", bet_id);
        self.client.call(call).await
    }
}

/// `GET /auth/balance`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CasinoBalance {
    /// The agent id.
    pub agent_id: String,
    /// Balance in USD.
    pub balance_usd: f64,
    /// Tier (`free`).
    #[serde(default)]
    pub tier: Option<String>,
    /// Kelly risk factor.
    #[serde(default)]
    pub risk_factor: Option<f64>,
    /// Lifetime totals.
    #[serde(default)]
    pub lifetime: Option<Lifetime>,
    /// Latest balance movements, newest first.
    #[serde(default)]
    pub recent_activity: Vec<Activity>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Lifetime totals of a casino agent.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Lifetime {
    /// Deposited in USD.
    #[serde(default)]
    pub total_deposited: Option<f64>,
    /// Withdrawn in USD.
    #[serde(default)]
    pub total_withdrawn: Option<f64>,
    /// Wagered in USD.
    #[serde(default)]
    pub total_wagered: Option<f64>,
    /// Won in USD (gross).
    #[serde(default)]
    pub total_won: Option<f64>,
    /// Bets placed.
    #[serde(default)]
    pub total_bets: Option<u64>,
    /// Won − wagered.
    #[serde(default)]
    pub net_pnl: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One balance movement.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Activity {
    /// `credit` or `debit`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Amount in USD.
    #[serde(default)]
    pub amount: Option<f64>,
    /// Balance afterwards.
    #[serde(default)]
    pub balance_after: Option<f64>,
    /// Why (`bet:dice`, `faucet_claim`, `escrow_lock:esc_…`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Which service moved it.
    #[serde(default)]
    pub service: Option<String>,
    /// When.
    #[serde(default)]
    pub at: Option<String>,
}

/// `POST /auth/withdraw`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Withdrawal {
    /// `completed` or `pending_review` (over $1,000).
    pub status: String,
    /// The withdrawal id.
    #[serde(default)]
    pub withdrawal_id: Option<String>,
    /// Amount in USD.
    #[serde(default)]
    pub amount: Option<f64>,
    /// Fee in USD.
    #[serde(default)]
    pub fee: Option<f64>,
    /// Transaction hash (completed only).
    #[serde(default)]
    pub tx_hash: Option<String>,
    /// Casino balance afterwards.
    #[serde(default)]
    pub new_balance: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /games`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GameList {
    /// The games.
    #[serde(default)]
    pub games: Vec<GameInfo>,
    /// How many.
    #[serde(default)]
    pub count: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One game of the catalogue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GameInfo {
    /// Snake id (used in batches): `coin_flip`.
    #[serde(default)]
    pub id: Option<String>,
    /// URL slug: `coin-flip`.
    #[serde(default)]
    pub slug: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `POST /api/v1/games/<slug>`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Parameter descriptions.
    #[serde(default)]
    pub params: Option<Value>,
    /// Advertised multiplier (the list says 1.96 for coin-flip; a win pays 1.99).
    #[serde(default)]
    pub payout_multiplier: Option<f64>,
    /// Other fields (`house_edge`, `payout`, `multipliers`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Coin side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoinSide {
    /// Heads (roll < 50).
    Heads,
    /// Tails.
    Tails,
}

/// Dice direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Win when the value is above the threshold.
    Over,
    /// Win when the value is below the threshold.
    Under,
}

/// Plinko risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlinkoRisk {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// A game and its parameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Game {
    /// `coin-flip {side}`: pays 1.99.
    CoinFlip {
        /// The side bet on.
        side: CoinSide,
    },
    /// `dice {direction, threshold 1–99}`.
    Dice {
        /// Over or under.
        direction: Direction,
        /// The threshold.
        threshold: f64,
    },
    /// `multiplier {target_multiplier 1.01–1000}`.
    Multiplier {
        /// The target.
        target_multiplier: f64,
    },
    /// `crash {cash_out_at 1.01–100}`.
    Crash {
        /// Cash-out multiplier.
        cash_out_at: f64,
    },
    /// `roulette {bet_type, bet_value?}`.
    Roulette {
        /// `number`, `red`, `black`, `odd`, `even`, `high`, `low`, `dozen_1..3`, `column_1..3`.
        bet_type: String,
        /// The number for `number` bets (0–36).
        bet_value: Option<u8>,
    },
    /// `custom {win_probability 1–99}`.
    Custom {
        /// Win probability in percent.
        win_probability: f64,
    },
    /// `plinko {rows 8|12|16, risk}`.
    Plinko {
        /// Rows.
        rows: u8,
        /// Risk.
        risk: PlinkoRisk,
    },
    /// Any other game (`blackjack`, `slots`, `keno`, …) with its raw parameters.
    Other {
        /// URL slug.
        slug: String,
        /// Parameters merged into the body.
        params: Map<String, Value>,
    },
}

impl Game {
    /// The URL slug (`coin-flip`).
    #[must_use]
    pub fn slug(&self) -> &str {
        match self {
            Game::CoinFlip { .. } => "coin-flip",
            Game::Dice { .. } => "dice",
            Game::Multiplier { .. } => "multiplier",
            Game::Crash { .. } => "crash",
            Game::Roulette { .. } => "roulette",
            Game::Custom { .. } => "custom",
            Game::Plinko { .. } => "plinko",
            Game::Other { slug, .. } => slug,
        }
    }

    fn params(&self) -> Map<String, Value> {
        let v = match self {
            Game::CoinFlip { side } => json!({ "side": side }),
            Game::Dice {
                direction,
                threshold,
            } => json!({ "direction": direction, "threshold": threshold }),
            Game::Multiplier { target_multiplier } => {
                json!({ "target_multiplier": target_multiplier })
            }
            Game::Crash { cash_out_at } => json!({ "cash_out_at": cash_out_at }),
            Game::Roulette {
                bet_type,
                bet_value,
            } => match bet_value {
                Some(n) => json!({ "bet_type": bet_type, "bet_value": n }),
                None => json!({ "bet_type": bet_type }),
            },
            Game::Custom { win_probability } => json!({ "win_probability": win_probability }),
            Game::Plinko { rows, risk } => json!({ "rows": rows, "risk": risk }),
            Game::Other { params, .. } => Value::Object(params.clone()),
        };
        match v {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// One bet: an amount (USD, ≥ 0.01), a game and an optional client seed (the service
/// defaults to `auto_<epoch_ms>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Bet {
    /// Stake in USD.
    pub amount: f64,
    /// The game and its parameters.
    pub game: Game,
    /// Client seed for the provably-fair roll.
    pub client_seed: Option<String>,
}

impl Bet {
    /// A bet on any game.
    #[must_use]
    pub fn new(amount: f64, game: Game) -> Self {
        Self {
            amount,
            game,
            client_seed: None,
        }
    }

    /// A coin flip.
    #[must_use]
    pub fn coin_flip(amount: f64, side: CoinSide) -> Self {
        Self::new(amount, Game::CoinFlip { side })
    }

    /// A dice roll.
    #[must_use]
    pub fn dice(amount: f64, direction: Direction, threshold: f64) -> Self {
        Self::new(
            amount,
            Game::Dice {
                direction,
                threshold,
            },
        )
    }

    /// Sets the client seed.
    #[must_use]
    pub fn with_client_seed(mut self, seed: impl Into<String>) -> Self {
        self.client_seed = Some(seed.into());
        self
    }

    /// The JSON body: `{amount, client_seed?, …params}`, plus `game` (snake id) in a batch.
    fn body(&self, with_game: bool) -> Value {
        let mut map = self.game.params();
        map.insert("amount".into(), json!(self.amount));
        if let Some(seed) = &self.client_seed {
            map.insert("client_seed".into(), json!(seed));
        }
        if with_game {
            map.insert("game".into(), json!(self.game.slug().replace('-', "_")));
        }
        Value::Object(map)
    }

    fn context(&self) -> CallContext {
        CallContext {
            game: Some(self.game.slug().to_owned()),
            bet_size: Some(self.amount),
            ..CallContext::default()
        }
    }
}

/// The answer to a bet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BetResult {
    /// `bet_<uuid>`.
    pub bet_id: String,
    /// The game slug.
    #[serde(default)]
    pub game: Option<String>,
    /// Stake in USD.
    #[serde(default)]
    pub amount_bet: Option<f64>,
    /// The game's outcome (`roll` plus game-specific fields).
    #[serde(default)]
    pub result: GameOutcome,
    /// Whether the bet won.
    #[serde(default)]
    pub won: bool,
    /// Gross multiplier: a win pays `amount × payout_multiplier`.
    #[serde(default)]
    pub payout_multiplier: Option<f64>,
    /// Paid out in USD (0 on a loss).
    #[serde(default)]
    pub amount_won: Option<f64>,
    /// Casino balance afterwards.
    #[serde(default)]
    pub new_balance: Option<f64>,
    /// The provably-fair proof.
    #[serde(default)]
    pub proof: Option<BetProof>,
    /// Kelly figures after the bet.
    #[serde(default)]
    pub kelly: Option<Value>,
    /// Position in a batch.
    #[serde(default)]
    pub index: Option<usize>,
    /// Other fields (`net`, `created_at`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A game's outcome.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GameOutcome {
    /// The provably-fair roll in 0.00–99.99.
    #[serde(default)]
    pub roll: Option<f64>,
    /// Game-specific fields (`outcome`, `value`, `crash_point`, `number`, `slot`, …).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// The provably-fair proof of a bet.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BetProof {
    /// SHA-256 of the server seed's hex text.
    pub server_seed_hash: String,
    /// The client seed.
    pub client_seed: String,
    /// The nonce (from 0 per seed).
    pub nonce: u64,
    /// Hex HMAC-SHA256(key = seed hex text, msg = `"<client_seed>:<nonce>"`).
    pub result_hash: String,
}

/// `POST /bets/batch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResult {
    /// One entry per bet, in order.
    #[serde(default)]
    pub results: Vec<BatchEntry>,
    /// Totals.
    #[serde(default)]
    pub summary: Option<BatchSummary>,
    /// Casino balance afterwards.
    #[serde(default)]
    pub balance_after: Option<f64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of a batch: a placed bet or a refused one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum BatchEntry {
    /// The bet was placed.
    Placed(Box<BetResult>),
    /// The bet was refused with a flat error.
    Failed(BatchFailure),
}

/// A refused bet inside a batch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchFailure {
    /// The error code.
    pub error: String,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
    /// The HTTP status a single bet would have got.
    #[serde(default)]
    pub status: Option<u16>,
    /// Position in the batch.
    #[serde(default)]
    pub index: Option<usize>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BatchFailure {
    /// The kind this failure would have as a single bet.
    #[must_use]
    pub fn kind(&self) -> crate::ErrorKind {
        crate::error::classify(
            Some(S),
            Op::Bet,
            self.status.unwrap_or(400),
            Some(&self.error),
            self.message.as_deref(),
            None,
        )
    }
}

/// Totals of a batch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct BatchSummary {
    /// Bets sent.
    #[serde(default)]
    pub total_bets: Option<u32>,
    /// Bets placed.
    #[serde(default)]
    pub successful: Option<u32>,
    /// Bets refused.
    #[serde(default)]
    pub failed: Option<u32>,
    /// Wins.
    #[serde(default)]
    pub wins: Option<u32>,
    /// Losses.
    #[serde(default)]
    pub losses: Option<u32>,
    /// Wagered in USD.
    #[serde(default)]
    pub total_wagered: Option<f64>,
    /// Won in USD.
    #[serde(default)]
    pub total_won: Option<f64>,
    /// Won − wagered.
    #[serde(default)]
    pub net_pnl: Option<f64>,
}

/// `GET /bets/history`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BetHistory {
    /// Bets, newest first.
    #[serde(default)]
    pub bets: Vec<HistoricBet>,
    /// How many.
    #[serde(default)]
    pub count: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A bet in the history.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoricBet {
    /// `bet_<uuid>`.
    pub bet_id: String,
    /// Game slug.
    #[serde(default)]
    pub game: Option<String>,
    /// Stake.
    #[serde(default, alias = "amount_bet")]
    pub amount: Option<f64>,
    /// Won.
    #[serde(default)]
    pub won: Option<bool>,
    /// Multiplier.
    #[serde(default)]
    pub payout_multiplier: Option<f64>,
    /// Paid out.
    #[serde(default)]
    pub amount_won: Option<f64>,
    /// Outcome.
    #[serde(default)]
    pub result: Option<GameOutcome>,
    /// Seed hash.
    #[serde(default)]
    pub server_seed_hash: Option<String>,
    /// Client seed.
    #[serde(default)]
    pub client_seed: Option<String>,
    /// Nonce.
    #[serde(default)]
    pub nonce: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `PUT /kelly/config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KellyConfig {
    /// The new risk factor.
    pub risk_factor: f64,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /kelly/limits`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KellyLimits {
    /// Balance used as bankroll.
    #[serde(default)]
    pub bankroll: Option<f64>,
    /// Risk factor.
    #[serde(default)]
    pub risk_factor: Option<f64>,
    /// Limits by game slug.
    #[serde(default)]
    pub limits: BTreeMap<String, KellyLimit>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The Kelly limit of one game.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KellyLimit {
    /// Largest accepted bet in USD.
    pub max_bet: f64,
    /// Win probability (0–1).
    #[serde(default)]
    pub win_probability: Option<f64>,
    /// Gross payout multiplier.
    #[serde(default)]
    pub payout_multiplier: Option<f64>,
    /// Other fields (`assumes`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /fairness/seed-hash`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeedHash {
    /// SHA-256 of the active seed's hex text.
    pub server_seed_hash: String,
    /// The next nonce.
    #[serde(default)]
    pub nonce: Option<u64>,
    /// Bets left before the seed rotates by itself.
    #[serde(default)]
    pub bets_until_rotation: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /fairness/seeds`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeedList {
    /// Seeds, newest first.
    #[serde(default)]
    pub seeds: Vec<SeedInfo>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One server seed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeedInfo {
    /// Its hash.
    pub server_seed_hash: String,
    /// The seed's hex text, once revealed.
    #[serde(default)]
    pub server_seed: Option<String>,
    /// `active` or `revealed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Bets made with it.
    #[serde(default)]
    pub bets: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /fairness/rotate`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeedRotation {
    /// The seed just revealed.
    pub previous_seed: RevealedSeed,
    /// The hash of the new active seed.
    #[serde(default)]
    pub new_server_seed_hash: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A revealed server seed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RevealedSeed {
    /// The seed's hex text (the HMAC key).
    pub server_seed: String,
    /// Its hash.
    pub server_seed_hash: String,
    /// Bets made with it.
    #[serde(default)]
    pub bets: Option<u64>,
    /// When it was revealed.
    #[serde(default)]
    pub revealed_at: Option<String>,
}

/// The body of a manual `POST /fairness/verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManualVerification {
    /// The revealed seed's hex text.
    pub server_seed: String,
    /// Its published hash (checked against the seed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_seed_hash: Option<String>,
    /// The client seed.
    pub client_seed: String,
    /// The nonce.
    pub nonce: u64,
}

/// `POST /fairness/verify`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Verification {
    /// Whether the proof checks out (false while the seed is unrevealed).
    #[serde(default)]
    pub verified: bool,
    /// `seed_not_yet_revealed` or `verified` (bet form).
    #[serde(default)]
    pub status: Option<String>,
    /// The bet (bet form).
    #[serde(default)]
    pub bet_id: Option<String>,
    /// The proof, once the seed is revealed.
    #[serde(default)]
    pub proof: Option<VerificationProof>,
    /// Other fields (`server_seed_hash`, `message` while unrevealed).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Verification {
    /// Whether the service says the seed is still active.
    #[must_use]
    pub fn seed_not_yet_revealed(&self) -> bool {
        self.status.as_deref() == Some("seed_not_yet_revealed")
    }
}

/// The proof returned by a verification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VerificationProof {
    /// The seed's hex text.
    #[serde(default)]
    pub server_seed: Option<String>,
    /// Its hash.
    #[serde(default)]
    pub server_seed_hash: Option<String>,
    /// Client seed.
    #[serde(default)]
    pub client_seed: Option<String>,
    /// Nonce.
    #[serde(default)]
    pub nonce: Option<u64>,
    /// HMAC result hash.
    #[serde(default)]
    pub result_hash: Option<String>,
    /// The roll recomputed by the service.
    #[serde(default)]
    pub computed_result: Option<f64>,
    /// The roll recorded with the bet.
    #[serde(default)]
    pub recorded_result: Option<f64>,
    /// Whether the seed matches its hash (and the result hash matches).
    #[serde(default)]
    pub hash_matches: Option<bool>,
}

/// `GET /fairness/audit/:betId`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BetAudit {
    /// The bet.
    pub bet_id: String,
    /// Game slug.
    #[serde(default)]
    pub game: Option<String>,
    /// `active` or `revealed`.
    #[serde(default)]
    pub seed_status: Option<String>,
    /// The proof (seed text once revealed).
    #[serde(default)]
    pub proof: Option<VerificationProof>,
    /// Outcome.
    #[serde(default)]
    pub result: Option<GameOutcome>,
    /// Other fields (`formula`, `won`, `amount`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
