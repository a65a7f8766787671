//! Casino (`/casino/api/v1/...`): registration, balances, deposits and withdrawals, games
//! with the provably-fair scheme, the Kelly gate, batches, history and fairness endpoints.

mod fairness;
mod games;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::http::{
    ApiError, ApiResult, BadJson, ClientIp, bearer, created, iso, key_hash, nonempty, num, ok,
    parse_body, reply, round2, text, unknown_key,
};
use crate::service::Service;
use crate::state::{AppState, Cx, World};

use fairness::seed_hash;
use games::Game;

const BASE: &str = "/api/v1";

/// One casino agent.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) referral_code: String,
    pub(crate) referred_by: Option<String>,
    pub(crate) balance: f64,
    risk_factor: f64,
    created_at: DateTime<Utc>,
    ledger: Vec<Value>,
    pub(crate) total_deposited: f64,
    total_withdrawn: f64,
    total_wagered: f64,
    total_won: f64,
    total_bets: u64,
    seeds: Vec<Seed>,
    bets: Vec<String>,
    deposit_addresses: HashMap<String, String>,
}

#[derive(Debug, Clone)]
struct Seed {
    seed_hex: String,
    hash: String,
    nonce: u64,
    created_at: DateTime<Utc>,
    revealed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Bet {
    id: String,
    agent_id: String,
    game: String,
    amount: f64,
    won: bool,
    multiplier: f64,
    amount_won: f64,
    result: Value,
    client_seed: String,
    nonce: u64,
    seed_index: usize,
    result_hash: String,
    balance_after: f64,
    created_at: DateTime<Utc>,
}

/// The casino's data.
#[derive(Debug, Default)]
pub(crate) struct CasinoState {
    agents: HashMap<String, Agent>,
    keys: HashMap<String, String>,
    referral_codes: HashMap<String, String>,
    bets: HashMap<String, Bet>,
}

impl CasinoState {
    /// Whether an agent exists.
    pub(crate) fn exists(&self, agent_id: &str) -> bool {
        self.agents.contains_key(agent_id)
    }

    /// An agent by id.
    pub(crate) fn agent(&self, agent_id: &str) -> Option<&Agent> {
        self.agents.get(agent_id)
    }

    /// The agent whose referral code this is.
    pub(crate) fn agent_by_referral(&self, code: &str) -> Option<&str> {
        self.referral_codes.get(code).map(String::as_str)
    }

    /// The agent id of a casino API key (escrow authenticates with casino keys).
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        service: Service,
    ) -> Result<String, ApiError> {
        let key = bearer(headers)?;
        self.keys
            .get(&key_hash(key))
            .cloned()
            .ok_or_else(|| unknown_key(service))
    }

    /// Credits (positive) or debits (negative) an agent and records the movement.
    pub(crate) fn adjust(
        &mut self,
        agent_id: &str,
        amount: f64,
        reason: &str,
        service: &str,
        now: DateTime<Utc>,
    ) -> Option<f64> {
        let agent = self.agents.get_mut(agent_id)?;
        agent.balance = round2_6(agent.balance + amount);
        agent.ledger.push(json!({
            "type": if amount >= 0.0 { "credit" } else { "debit" },
            "amount": round2_6(amount.abs()),
            "balance_after": agent.balance,
            "reason": reason,
            "service": service,
            "at": iso(now),
        }));
        Some(agent.balance)
    }

    /// Records an external deposit (what on-chain funding does in production).
    pub(crate) fn deposit(
        &mut self,
        agent_id: &str,
        amount: f64,
        now: DateTime<Utc>,
    ) -> Option<f64> {
        let balance = self.adjust(agent_id, amount, "deposit", "casino", now)?;
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.total_deposited += amount;
        }
        Some(balance)
    }
}

/// Balances keep cents for casino use but escrow moves 6-dp amounts; keep 6 dp internally.
fn round2_6(x: f64) -> f64 {
    crate::http::round6(x)
}

/// The casino router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("{BASE}/auth/register"), post(register))
        .route(&format!("{BASE}/auth/balance"), get(balance))
        .route(
            &format!("{BASE}/auth/deposit-address"),
            post(deposit_address),
        )
        .route(&format!("{BASE}/auth/withdraw"), post(withdraw))
        .route(&format!("{BASE}/games"), get(list_games))
        .route(&format!("{BASE}/games/{{slug}}"), post(play))
        .route(&format!("{BASE}/bets/batch"), post(batch))
        .route(&format!("{BASE}/bets/history"), get(history))
        .route(&format!("{BASE}/kelly/config"), put(kelly_config))
        .route(&format!("{BASE}/kelly/limits"), get(kelly_limits))
        .route(&format!("{BASE}/fairness/seed-hash"), get(seed_hash_route))
        .route(&format!("{BASE}/fairness/seeds"), get(seeds))
        .route(&format!("{BASE}/fairness/rotate"), post(rotate))
        .route(&format!("{BASE}/fairness/verify"), post(verify))
        .route(&format!("{BASE}/fairness/audit/{{bet_id}}"), get(audit))
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "agent-casino"}))
}

fn new_seed(w: &mut World, now: DateTime<Utc>) -> Seed {
    let seed_hex = w.hex(64);
    Seed {
        hash: seed_hash(&seed_hex),
        seed_hex,
        nonce: 0,
        created_at: now,
        revealed_at: None,
    }
}

/// Creates a casino agent; used by the route and by nothing else.
fn create_agent(w: &mut World, referral: Option<&str>, now: DateTime<Utc>) -> (Agent, String) {
    let id = format!("ag_{}", w.hex(12));
    let api_key = format!("sk_live_{}", w.hex(48));
    let referral_code = format!("ref_{}", w.hex(8));
    let referred_by = referral.and_then(|c| w.casino.referral_codes.get(c).cloned());
    let seed = new_seed(w, now);
    let agent = Agent {
        id: id.clone(),
        referral_code: referral_code.clone(),
        referred_by,
        balance: 0.0,
        risk_factor: 0.25,
        created_at: now,
        ledger: Vec::new(),
        total_deposited: 0.0,
        total_withdrawn: 0.0,
        total_wagered: 0.0,
        total_won: 0.0,
        total_bets: 0,
        seeds: vec![seed],
        bets: Vec::new(),
        deposit_addresses: HashMap::new(),
    };
    w.casino.keys.insert(key_hash(&api_key), id.clone());
    w.casino.referral_codes.insert(referral_code, id.clone());
    w.casino.agents.insert(id, agent.clone());
    (agent, api_key)
}

async fn register(State(st): State<AppState>, ClientIp(ip): ClientIp, body: Bytes) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        w.limit(cx, "/api/v1/auth/register", &ip, 10)?;
        let (agent, api_key) = create_agent(w, text(&body, "referral_code"), cx.now);
        let response = json!({
            "agent_id": agent.id,
            "api_key": api_key,
            "referral_code": agent.referral_code,
            "balance": 0.0,
            "tier": "free",
            "risk_factor": agent.risk_factor,
            "message": "Account created. Store your API key: it is shown once.",
        });
        // The real casino fires the faucet claim without waiting; the response still says 0.
        if w.auto_faucet_claim {
            crate::faucet::auto_claim(w, &agent.id, cx.now);
        }
        created(response)
    })
}

fn auth(w: &World, headers: &HeaderMap) -> Result<String, ApiError> {
    w.casino.authenticate(headers, Service::Casino)
}

fn agent_mut<'a>(w: &'a mut World, id: &str) -> Result<&'a mut Agent, ApiError> {
    w.casino
        .agents
        .get_mut(id)
        .ok_or_else(|| ApiError::new(401, "unauthorized").msg("Invalid API key"))
}

async fn balance(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let a = agent_mut(w, &id)?;
        let recent: Vec<Value> = a.ledger.iter().rev().take(10).cloned().collect();
        ok(json!({
            "agent_id": a.id,
            "balance_usd": round2(a.balance),
            "tier": "free",
            "risk_factor": a.risk_factor,
            "lifetime": {
                "total_deposited": round2(a.total_deposited),
                "total_withdrawn": round2(a.total_withdrawn),
                "total_wagered": round2(a.total_wagered),
                "total_won": round2(a.total_won),
                "total_bets": a.total_bets,
                "net_pnl": round2(a.total_won - a.total_wagered),
            },
            "recent_activity": recent,
            "created_at": iso(a.created_at),
        }))
    })
}

const CHAINS: [(&str, &str); 8] = [
    ("base", "USDC"),
    ("ethereum", "USDC"),
    ("bsc", "USDT"),
    ("arbitrum", "USDC"),
    ("solana", "USDC"),
    ("bitcoin", "BTC"),
    ("tron", "USDT"),
    ("monero", "XMR"),
];

async fn deposit_address(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        let chain = text(&body, "chain").unwrap_or("base").to_lowercase();
        let Some((_, token)) = CHAINS.iter().find(|(c, _)| *c == chain) else {
            return Err(ApiError::new(400, "unsupported_chain")
                .msg(format!("Chain '{chain}' is not supported"))
                .with("supported", CHAINS.iter().map(|(c, _)| *c).collect::<Vec<_>>()));
        };
        let existing = agent_mut(w, &id)?.deposit_addresses.get(&chain).cloned();
        let (address, status) = match existing {
            Some(a) => (a, 200),
            None => {
                let a = crate::wallet::fake_address(w, &chain);
                agent_mut(w, &id)?
                    .deposit_addresses
                    .insert(chain.clone(), a.clone());
                (a, 201)
            }
        };
        reply(
            status,
            json!({
                "chain": chain,
                "address": address,
                "send_token": token,
                "minimum_deposit_usd": 1.0,
                "message": format!("Send {token} on {chain} to this address; it is credited after confirmation."),
            }),
        )
    })
}

fn is_evm_address(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

async fn withdraw(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        w.limit(cx, "/api/v1/auth/withdraw", &ip, 5)?;
        let amount = num(&body, "amount").filter(|a| *a > 0.0).ok_or_else(|| {
            ApiError::new(400, "invalid_amount").msg("amount must be a positive number")
        })?;
        if amount < 1.0 {
            return Err(ApiError::new(400, "minimum_withdrawal").msg("Minimum withdrawal is $1.00"));
        }
        if amount > 100_000.0 {
            return Err(
                ApiError::new(400, "maximum_withdrawal").msg("Maximum withdrawal is $100,000")
            );
        }
        let address = text(&body, "address").unwrap_or("");
        if !is_evm_address(address) {
            return Err(ApiError::new(400, "invalid_address")
                .msg("address must be a Base address: 0x followed by 40 hex characters"));
        }
        let fee = 0.5;
        let available = round2(agent_mut(w, &id)?.balance);
        if amount + fee > available + 1e-9 {
            return Err(ApiError::new(400, "insufficient_balance")
                .with("requested", amount)
                .with("fee", fee)
                .with("total_needed", round2(amount + fee))
                .with("available", available));
        }
        let withdrawal_id = format!("wd_{}", w.hex(16));
        let new_balance = w
            .casino
            .adjust(&id, -(amount + fee), "withdrawal", "casino", cx.now)
            .unwrap_or(0.0);
        agent_mut(w, &id)?.total_withdrawn += amount;
        if amount > 1_000.0 {
            return ok(json!({
                "status": "pending_review",
                "withdrawal_id": withdrawal_id,
                "amount": amount,
                "fee": fee,
                "address": address,
                "chain": "base",
                "token": "USDC",
                "new_balance": round2(new_balance),
                "message": "Withdrawals over $1,000 are reviewed manually.",
            }));
        }
        let tx_hash = format!("0x{}", w.hex(64));
        ok(json!({
            "status": "completed",
            "withdrawal_id": withdrawal_id,
            "amount": amount,
            "fee": fee,
            "net_sent": amount,
            "address": address,
            "chain": "base",
            "token": "USDC",
            "tx_hash": tx_hash,
            "new_balance": round2(new_balance),
        }))
    })
}

async fn list_games() -> ApiResult {
    let games = games::catalogue();
    let count = games.as_array().map_or(0, Vec::len);
    ok(json!({"games": games, "count": count}))
}

/// The Kelly numbers for one game at a bankroll.
fn kelly(game: &Game, bankroll: f64, risk_factor: f64, amount: Option<f64>) -> (f64, Value) {
    let p = game.win_probability();
    let q = 1.0 - p;
    let b = game.payout() - 1.0;
    let f_star = if b > 0.0 { (b * p - q) / b } else { -1.0 };
    let max_bet = if f_star <= 0.0 {
        bankroll * risk_factor * p
    } else {
        bankroll * risk_factor * f_star
    };
    let max_bet = round2(max_bet);
    let bets_until_ruin = amount.filter(|a| *a > 0.0).map(|a| (bankroll / a).floor());
    (
        max_bet,
        json!({
            "bankroll": round2(bankroll),
            "risk_factor": risk_factor,
            "max_bet_this_game": max_bet,
            "bets_until_ruin": bets_until_ruin,
            "suggested_bet": round2(max_bet / 2.0),
            "edge": round2(f_star * 10_000.0) / 10_000.0,
        }),
    )
}

/// Places one bet for `id`; shared by the single route and the batch.
fn place_bet(w: &mut World, cx: Cx, id: &str, slug: &str, body: &Value) -> Result<Value, ApiError> {
    let amount = num(body, "amount").filter(|a| *a > 0.0).ok_or_else(|| {
        ApiError::new(400, "invalid_amount").msg("amount must be a positive number")
    })?;
    if amount < 0.01 {
        return Err(ApiError::new(400, "minimum_bet").msg("Minimum bet is $0.01"));
    }
    let game = Game::parse(slug, body)?;
    let client_seed = nonempty(body, "client_seed")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("auto_{}", cx.now.timestamp_millis()));
    let (balance, risk_factor) = {
        let a = agent_mut(w, id)?;
        (a.balance, a.risk_factor)
    };
    if amount > balance + 1e-9 {
        return Err(ApiError::new(400, "insufficient_balance")
            .msg(format!("Balance ${:.2} is below the bet", round2(balance)))
            .with("required", amount)
            .with("balance", round2(balance)));
    }
    let (max_bet, kelly_before) = kelly(&game, balance, risk_factor, Some(amount));
    if amount > max_bet + 1e-9 {
        return Err(ApiError::new(400, "kelly_limit_exceeded")
            .msg(format!(
                "Bet exceeds the Kelly limit of ${max_bet:.2} for this game"
            ))
            .suggest("Lower the bet or raise risk_factor with PUT /api/v1/kelly/config")
            .with("max_bet", max_bet)
            .with("kelly", kelly_before));
    }
    // Provably fair roll with the active seed and the next nonce.
    let bet_id = format!("bet_{}", w.uuid());
    let agent = agent_mut(w, id)?;
    let seed_index = agent.seeds.len() - 1;
    let seed = &mut agent.seeds[seed_index];
    let nonce = seed.nonce;
    seed.nonce += 1;
    let seed_hex = seed.seed_hex.clone();
    let seed_hash_text = seed.hash.clone();
    let (hash, roll) = fairness::roll(&seed_hex, &client_seed, nonce);
    let (won, multiplier, result) = game.play(roll, |row| {
        fairness::roll(&seed_hex, &format!("{client_seed}_row{row}"), nonce).1
    });
    let amount_won = if won {
        round2(amount * multiplier)
    } else {
        0.0
    };
    w.casino
        .adjust(id, -amount, &format!("bet:{slug}"), "casino", cx.now);
    let new_balance = if amount_won > 0.0 {
        w.casino
            .adjust(id, amount_won, &format!("win:{slug}"), "casino", cx.now)
            .unwrap_or(0.0)
    } else {
        agent_mut(w, id)?.balance
    };
    let agent = agent_mut(w, id)?;
    agent.total_wagered += amount;
    agent.total_won += amount_won;
    agent.total_bets += 1;
    agent.bets.push(bet_id.clone());
    let rotate_now = agent.seeds[seed_index].nonce >= fairness::BETS_PER_SEED;
    let (_, kelly_after) = kelly(&game, new_balance, risk_factor, Some(amount));
    let bet = Bet {
        id: bet_id.clone(),
        agent_id: id.to_owned(),
        game: slug.to_owned(),
        amount,
        won,
        multiplier,
        amount_won,
        result: result.clone(),
        client_seed: client_seed.clone(),
        nonce,
        seed_index,
        result_hash: hash.clone(),
        balance_after: new_balance,
        created_at: cx.now,
    };
    w.casino.bets.insert(bet_id.clone(), bet);
    if rotate_now {
        rotate_seed(w, id, cx.now);
    }
    Ok(json!({
        "bet_id": bet_id,
        "game": slug,
        "amount_bet": amount,
        "result": result,
        "won": won,
        "payout_multiplier": multiplier,
        "amount_won": amount_won,
        "net": round2(amount_won - amount),
        "new_balance": round2(new_balance),
        "proof": {
            "server_seed_hash": seed_hash_text,
            "client_seed": client_seed,
            "nonce": nonce,
            "result_hash": hash,
        },
        "kelly": kelly_after,
        "created_at": iso(cx.now),
    }))
}

/// Reveals the active seed and starts a new one; returns (old seed, old hash, bets, new hash).
fn rotate_seed(
    w: &mut World,
    id: &str,
    now: DateTime<Utc>,
) -> Option<(String, String, u64, String)> {
    let fresh = new_seed(w, now);
    let agent = w.casino.agents.get_mut(id)?;
    let old = agent.seeds.last_mut()?;
    old.revealed_at = Some(now);
    let out = (
        old.seed_hex.clone(),
        old.hash.clone(),
        old.nonce,
        fresh.hash.clone(),
    );
    agent.seeds.push(fresh);
    Some(out)
}

async fn play(
    State(st): State<AppState>,
    Path(slug): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        if !games::SLUGS.contains(&slug.as_str()) {
            return Err(ApiError::new(404, "game_not_found")
                .msg(format!("Unknown game '{slug}'"))
                .with("games", games::SLUGS.to_vec()));
        }
        w.limit(cx, &format!("/api/v1/games/{slug}"), &ip, 60)?;
        if let Err(retry) = w.window(cx, "agent:games".into(), &id, 60, TimeDelta::seconds(60)) {
            let reset = cx.now + TimeDelta::seconds(i64::try_from(retry).unwrap_or(60));
            return Err(ApiError::new(429, "rate_limit_exceeded")
                .msg("Too many bets: 60 per minute per agent")
                .with("reset_at", iso(reset)));
        }
        ok(place_bet(w, cx, &id, &slug, &body)?)
    })
}

async fn batch(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        w.limit(cx, "/api/v1/bets/batch", &ip, 10)?;
        let Some(bets) = body
            .get("bets")
            .and_then(Value::as_array)
            .filter(|b| !b.is_empty())
        else {
            return Err(ApiError::new(400, "invalid_request")
                .msg("Provide bets: [{game, amount, ...}] (1 to 20 bets)"));
        };
        if bets.len() > 20 {
            return Err(ApiError::new(400, "too_many_bets")
                .msg("At most 20 bets per batch")
                .with("max", 20)
                .with("received", bets.len()));
        }
        let mut results = Vec::new();
        let (mut wagered, mut won_total, mut wins, mut failed) = (0.0, 0.0, 0u32, 0u32);
        for (index, bet) in bets.iter().enumerate() {
            let game = text(bet, "game").unwrap_or("").replace('_', "-");
            let outcome = if games::SLUGS.contains(&game.as_str()) {
                place_bet(w, cx, &id, &game, bet)
            } else {
                Err(ApiError::new(400, "invalid_game").msg(format!("Unknown game '{game}'")))
            };
            match outcome {
                Ok(mut r) => {
                    wagered += r["amount_bet"].as_f64().unwrap_or(0.0);
                    won_total += r["amount_won"].as_f64().unwrap_or(0.0);
                    if r["won"].as_bool() == Some(true) {
                        wins += 1;
                    }
                    r["index"] = json!(index);
                    results.push(r);
                }
                Err(e) => {
                    failed += 1;
                    let mut v = error_body(&e);
                    v["index"] = json!(index);
                    results.push(v);
                }
            }
        }
        let balance_after = round2(agent_mut(w, &id)?.balance);
        let total = u32::try_from(bets.len()).unwrap_or(u32::MAX);
        ok(json!({
            "results": results,
            "summary": {
                "total_bets": total,
                "successful": total - failed,
                "failed": failed,
                "wins": wins,
                "losses": total - failed - wins,
                "total_wagered": round2(wagered),
                "total_won": round2(won_total),
                "net_pnl": round2(won_total - wagered),
            },
            "balance_after": balance_after,
        }))
    })
}

/// The flat body of an error plus its status, for embedding in a batch result.
fn error_body(e: &ApiError) -> Value {
    let mut v = e.body_value();
    v["status"] = json!(e.status_code());
    v
}

async fn history(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(50)
            .min(200);
        let agent = agent_mut(w, &id)?;
        let ids: Vec<String> = agent.bets.iter().rev().take(limit).cloned().collect();
        let bets: Vec<Value> = ids
            .iter()
            .filter_map(|b| w.casino.bets.get(b))
            .map(|b| {
                let seed = w
                    .casino
                    .agents
                    .get(&b.agent_id)
                    .and_then(|a| a.seeds.get(b.seed_index));
                json!({
                    "bet_id": b.id,
                    "game": b.game,
                    "amount": b.amount,
                    "won": b.won,
                    "payout_multiplier": b.multiplier,
                    "amount_won": b.amount_won,
                    "result": b.result,
                    "balance_after": round2(b.balance_after),
                    "server_seed_hash": seed.map(|s| s.hash.clone()),
                    "client_seed": b.client_seed,
                    "nonce": b.nonce,
                    "created_at": iso(b.created_at),
                })
            })
            .collect();
        ok(json!({"count": bets.len(), "bets": bets}))
    })
}

async fn kelly_config(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        let rf = num(&body, "risk_factor")
            .filter(|r| (0.1..=1.0).contains(r))
            .ok_or_else(|| {
                ApiError::new(400, "invalid_risk_factor")
                    .msg("risk_factor must be a number from 0.1 to 1.0")
            })?;
        let agent = agent_mut(w, &id)?;
        agent.risk_factor = rf;
        ok(json!({"agent_id": id, "risk_factor": rf, "message": "Kelly risk factor updated"}))
    })
}

async fn kelly_limits(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let agent = agent_mut(w, &id)?;
        let (bankroll, rf) = (agent.balance, agent.risk_factor);
        let examples = [
            ("coin-flip", json!({"side": "heads"})),
            ("dice", json!({"direction": "over", "threshold": 50})),
            ("multiplier", json!({"target_multiplier": 2})),
            ("crash", json!({"cash_out_at": 2})),
            ("roulette", json!({"bet_type": "red"})),
            ("custom", json!({"win_probability": 50})),
            ("plinko", json!({"rows": 16, "risk": "medium"})),
        ];
        let mut limits = serde_json::Map::new();
        for (slug, params) in examples {
            if let Ok(game) = Game::parse(slug, &params) {
                let (max_bet, _) = kelly(&game, bankroll, rf, None);
                limits.insert(
                    slug.to_owned(),
                    json!({
                        "max_bet": max_bet,
                        "win_probability": game.win_probability(),
                        "payout_multiplier": game.payout(),
                        "assumes": params,
                    }),
                );
            }
        }
        ok(json!({"bankroll": round2(bankroll), "risk_factor": rf, "limits": limits}))
    })
}

async fn seed_hash_route(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let agent = agent_mut(w, &id)?;
        let Some(seed) = agent.seeds.last() else {
            return Err(ApiError::new(500, "internal_error"));
        };
        ok(json!({
            "server_seed_hash": seed.hash,
            "nonce": seed.nonce,
            "bets_until_rotation": fairness::BETS_PER_SEED.saturating_sub(seed.nonce),
            "created_at": iso(seed.created_at),
        }))
    })
}

async fn seeds(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let agent = agent_mut(w, &id)?;
        let list: Vec<Value> = agent
            .seeds
            .iter()
            .rev()
            .map(|s| {
                json!({
                    "server_seed_hash": s.hash,
                    "server_seed": s.revealed_at.map(|_| s.seed_hex.clone()),
                    "status": if s.revealed_at.is_some() { "revealed" } else { "active" },
                    "bets": s.nonce,
                    "created_at": iso(s.created_at),
                    "revealed_at": s.revealed_at.map(iso),
                })
            })
            .collect();
        ok(json!({"seeds": list, "count": list.len()}))
    })
}

async fn rotate(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let Some((seed, hash, bets, new_hash)) = rotate_seed(w, &id, cx.now) else {
            return Err(ApiError::new(500, "internal_error"));
        };
        ok(json!({
            "previous_seed": {
                "server_seed": seed,
                "server_seed_hash": hash,
                "bets": bets,
                "revealed_at": iso(cx.now),
            },
            "new_server_seed_hash": new_hash,
            "message": "Server seed rotated; the previous seed is revealed and its bets can be verified.",
        }))
    })
}

fn verify_manual(body: &Value) -> ApiResult {
    let (Some(seed), Some(client_seed)) = (text(body, "server_seed"), text(body, "client_seed"))
    else {
        return Err(ApiError::new(400, "invalid_request")
            .msg("Provide bet_id, or server_seed, server_seed_hash, client_seed and nonce"));
    };
    let Some(nonce) = body.get("nonce").and_then(Value::as_u64) else {
        return Err(
            ApiError::new(400, "invalid_request").msg("nonce must be a non-negative integer")
        );
    };
    let computed_hash = seed_hash(seed);
    let hash_matches = text(body, "server_seed_hash").is_none_or(|h| h == computed_hash);
    let (result_hash, roll) = fairness::roll(seed, client_seed, nonce);
    ok(json!({
        "verified": hash_matches,
        "proof": {
            "server_seed": seed,
            "server_seed_hash": computed_hash,
            "client_seed": client_seed,
            "nonce": nonce,
            "result_hash": result_hash,
            "computed_result": roll,
            "hash_matches": hash_matches,
        },
    }))
}

async fn verify(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let id = auth(w, &headers)?;
        let Some(bet_id) = nonempty(&body, "bet_id") else {
            return verify_manual(&body);
        };
        let bet = lookup_bet(w, &id, bet_id)?;
        let seed = w
            .casino
            .agents
            .get(&bet.agent_id)
            .and_then(|a| a.seeds.get(bet.seed_index))
            .cloned()
            .ok_or_else(|| ApiError::new(500, "internal_error"))?;
        if seed.revealed_at.is_none() {
            return ok(json!({
                "bet_id": bet.id,
                "verified": false,
                "status": "seed_not_yet_revealed",
                "server_seed_hash": seed.hash,
                "message": "The server seed of this bet is still active. Rotate it (POST /api/v1/fairness/rotate) to verify.",
            }));
        }
        let (computed_hash, roll) = fairness::roll(&seed.seed_hex, &bet.client_seed, bet.nonce);
        let hash_matches = computed_hash == bet.result_hash && seed_hash(&seed.seed_hex) == seed.hash;
        let recorded_roll = bet.result.get("roll").and_then(Value::as_f64);
        let verified = hash_matches && recorded_roll == Some(roll);
        ok(json!({
            "bet_id": bet.id,
            "verified": verified,
            "status": "verified",
            "proof": {
                "server_seed": seed.seed_hex,
                "server_seed_hash": seed.hash,
                "client_seed": bet.client_seed,
                "nonce": bet.nonce,
                "result_hash": bet.result_hash,
                "computed_result": roll,
                "recorded_result": recorded_roll,
                "hash_matches": hash_matches,
            },
        }))
    })
}

fn lookup_bet(w: &World, agent_id: &str, bet_id: &str) -> Result<Bet, ApiError> {
    let bet = w
        .casino
        .bets
        .get(bet_id)
        .ok_or_else(|| ApiError::new(404, "bet_not_found").msg(format!("No bet '{bet_id}'")))?;
    if bet.agent_id != agent_id {
        return Err(ApiError::new(403, "forbidden").msg("This bet belongs to another agent"));
    }
    Ok(bet.clone())
}

async fn audit(
    State(st): State<AppState>,
    Path(bet_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let bet = lookup_bet(w, &id, &bet_id)?;
        let seed = w
            .casino
            .agents
            .get(&bet.agent_id)
            .and_then(|a| a.seeds.get(bet.seed_index))
            .cloned()
            .ok_or_else(|| ApiError::new(500, "internal_error"))?;
        ok(json!({
            "bet_id": bet.id,
            "game": bet.game,
            "amount": bet.amount,
            "won": bet.won,
            "payout_multiplier": bet.multiplier,
            "amount_won": bet.amount_won,
            "result": bet.result,
            "seed_status": if seed.revealed_at.is_some() { "revealed" } else { "active" },
            "proof": {
                "server_seed": seed.revealed_at.map(|_| seed.seed_hex.clone()),
                "server_seed_hash": seed.hash,
                "client_seed": bet.client_seed,
                "nonce": bet.nonce,
                "result_hash": bet.result_hash,
            },
            "formula": "roll = (int(HMAC_SHA256(key=server_seed, msg=client_seed:nonce)[0:8], 16) mod 10000) / 100",
            "created_at": iso(bet.created_at),
        }))
    })
}
