//! Wallet (`/wallet/v1/...`): HD wallet creation, balances, sends and cross-chain swaps on
//! simulated chains.
//!
//! The sandbox cannot derive real BIP-39/BIP-32 keys (no such crates in the workspace), so it
//! uses a documented stand-in: a chain family's private key is the hex SHA-256 of
//! `"purpleflea-sandbox:<mnemonic>:<family>"` and an address is derived from a private key
//! by hashing it again. `POST /wallet/create` therefore also returns `sandbox_private_keys`
//! (a field production does not send) so a client can sign sends. `POST /wallet/send` accepts
//! any well-formed private key and sends from the address derived from it.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{
    ApiError, ApiResult, BadJson, ClientIp, bearer, created, iso, key_hash, ok, parse_body, reply,
    round2, text, unknown_key,
};
use crate::service::Service;
use crate::state::{AppState, World};

/// Chains the wallet supports: (name, native symbol, native decimals, base-unit name).
const CHAINS: [(&str, &str, u32, &str); 6] = [
    ("ethereum", "ETH", 18, "wei"),
    ("base", "ETH", 18, "wei"),
    ("solana", "SOL", 9, "lamports"),
    ("bitcoin", "BTC", 8, "satoshis"),
    ("tron", "TRX", 6, "sun"),
    ("monero", "XMR", 12, "piconero"),
];

/// Tokens per chain besides the native one (all 6 decimals).
fn chain_tokens(chain: &str) -> &'static [&'static str] {
    match chain {
        "ethereum" => &["USDC", "USDT"],
        "base" | "solana" => &["USDC"],
        "tron" => &["USDT"],
        _ => &[],
    }
}

fn chain(name: &str) -> Option<(&'static str, &'static str, u32, &'static str)> {
    CHAINS.iter().copied().find(|c| c.0 == name)
}

fn decimals(chain_name: &str, token: &str) -> Option<u32> {
    let (_, native, dec, _) = chain(chain_name)?;
    if token.eq_ignore_ascii_case(native) {
        Some(dec)
    } else if chain_tokens(chain_name)
        .iter()
        .any(|t| t.eq_ignore_ascii_case(token))
    {
        Some(6)
    } else {
        None
    }
}

const WORDS: [&str; 128] = [
    "amber", "anchor", "apple", "arrow", "atlas", "autumn", "badge", "bamboo", "banner", "basket",
    "beacon", "berry", "blanket", "bloom", "bottle", "breeze", "bridge", "bronze", "bubble",
    "cabin", "cactus", "candle", "canyon", "carbon", "castle", "cedar", "chalk", "cherry",
    "circle", "citrus", "clover", "cobalt", "comet", "copper", "coral", "cotton", "crane",
    "crystal", "dawn", "delta", "desert", "dolphin", "dragon", "drift", "eagle", "echo", "ember",
    "falcon", "feather", "fern", "fiber", "flame", "forest", "fossil", "galaxy", "garden",
    "ginger", "glacier", "globe", "granite", "gravel", "harbor", "hazel", "helmet", "honey",
    "horizon", "island", "ivory", "jasmine", "jungle", "kernel", "kettle", "ladder", "lagoon",
    "lantern", "lemon", "linen", "lotus", "magnet", "maple", "marble", "meadow", "meteor",
    "mirror", "mosaic", "nectar", "nickel", "oasis", "ocean", "olive", "orbit", "orchid", "paddle",
    "panther", "pebble", "pepper", "pillow", "planet", "pocket", "prism", "quartz", "rabbit",
    "raven", "ribbon", "river", "rocket", "saddle", "salmon", "canvas", "shadow", "silver",
    "spiral", "spruce", "summit", "thunder", "timber", "topaz", "tulip", "tunnel", "velvet",
    "violet", "walnut", "willow", "winter", "yellow", "zebra", "zenith", "zephyr",
];

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn sha(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// `len` characters of `alphabet` drawn from a hash stream seeded by `seed`.
fn encode_from(seed: &str, alphabet: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut block = sha(seed);
    let mut i = 0usize;
    while out.len() < len {
        if i == block.len() {
            block = Sha256::digest(&block).to_vec();
            i = 0;
        }
        out.push(char::from(alphabet[usize::from(block[i]) % alphabet.len()]));
        i += 1;
    }
    out
}

fn family(chain_name: &str) -> &'static str {
    match chain_name {
        "ethereum" | "base" | "bsc" | "arbitrum" => "evm",
        "solana" => "solana",
        "bitcoin" => "bitcoin",
        "tron" => "tron",
        _ => "monero",
    }
}

/// An address of `family` format derived from `seed` material.
fn address_for(family: &str, seed: &str) -> String {
    match family {
        "evm" => format!("0x{}", &hex::encode(sha(&format!("addr:{seed}")))[..40]),
        "solana" => encode_from(&format!("addr:{seed}"), BASE58, 44),
        "bitcoin" => format!("bc1q{}", encode_from(&format!("addr:{seed}"), BECH32, 38)),
        "tron" => format!("T{}", encode_from(&format!("addr:{seed}"), BASE58, 33)),
        _ => format!("4{}", encode_from(&format!("addr:{seed}"), BASE58, 94)),
    }
}

/// A random address on `chain` (deposit addresses of other services use this too).
pub(crate) fn fake_address(w: &mut World, chain_name: &str) -> String {
    let seed = w.hex(32);
    address_for(family(chain_name), &seed)
}

fn valid_address(chain_name: &str, a: &str) -> bool {
    let b58 = |s: &str| s.bytes().all(|c| BASE58.contains(&c));
    match family(chain_name) {
        "evm" => {
            a.len() == 42 && a.starts_with("0x") && a[2..].chars().all(|c| c.is_ascii_hexdigit())
        }
        "solana" => (32..=44).contains(&a.len()) && b58(a),
        "bitcoin" => a.starts_with("bc1") || a.starts_with('1') || a.starts_with('3'),
        "tron" => a.len() == 34 && a.starts_with('T') && b58(a),
        _ => a.len() == 95 && (a.starts_with('4') || a.starts_with('8')) && b58(a),
    }
}

/// The sandbox's private key for a mnemonic and chain family.
fn private_key(mnemonic: &str, family: &str) -> String {
    let h = hex::encode(sha(&format!("purpleflea-sandbox:{mnemonic}:{family}")));
    match family {
        "evm" => format!("0x{h}"),
        "solana" => encode_from(&h, BASE58, 88),
        _ => h,
    }
}

/// The address a private key controls, or `None` when the key is malformed.
fn address_of_key(family: &str, key: &str) -> Option<String> {
    let k = key.trim();
    let ok = match family {
        "evm" => {
            let h = k.strip_prefix("0x").unwrap_or(k);
            h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())
        }
        "solana" => (64..=88).contains(&k.len()) && k.bytes().all(|c| BASE58.contains(&c)),
        _ => k.len() == 64 && k.chars().all(|c| c.is_ascii_hexdigit()),
    };
    let normalized = if family == "evm" {
        format!("0x{}", k.strip_prefix("0x").unwrap_or(k).to_lowercase())
    } else {
        k.to_owned()
    };
    ok.then(|| address_for(family, &format!("key:{normalized}")))
}

/// Parses a decimal amount into base units.
fn parse_units(amount: &str, decimals: u32) -> Option<u128> {
    let amount = amount.trim();
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > decimals as usize {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_units: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<width$}", width = decimals as usize)
            .parse()
            .ok()?
    };
    int.checked_mul(10u128.checked_pow(decimals)?)?
        .checked_add(frac_units)
}

/// Formats base units as a decimal string the way ethers' `formatUnits` does (`"0.0"`).
fn format_units(units: u128, decimals: u32) -> String {
    let scale = 10u128.pow(decimals);
    let int = units / scale;
    let frac = units % scale;
    let mut frac_s = format!("{frac:0>width$}", width = decimals as usize);
    while frac_s.len() > 1 && frac_s.ends_with('0') {
        frac_s.pop();
    }
    if frac_s.is_empty() {
        frac_s.push('0');
    }
    format!("{int}.{frac_s}")
}

/// Network fee of a send, in native base units.
fn network_fee(chain_name: &str) -> u128 {
    match chain_name {
        "ethereum" => 400_000_000_000_000, // 0.0004 ETH
        "base" => 5_000_000_000_000,       // 0.000005 ETH
        "solana" => 5_000,                 // 0.000005 SOL
        "tron" => 1_100_000,               // 1.1 TRX
        "monero" => 30_000_000,            // 0.00003 XMR
        _ => 0,
    }
}

#[derive(Debug, Clone)]
struct SwapOrder {
    swap_id: String,
    order_id: String,
    from_chain: String,
    to_chain: String,
    from_token: String,
    to_token: String,
    from_units: u128,
    to_units: u128,
    deposit_address: String,
    to_address: String,
    status: &'static str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    deposit_tx: Option<String>,
}

/// The wallet service's data: keys, swap orders and simulated chain balances.
#[derive(Debug, Default)]
pub(crate) struct WalletState {
    keys: HashMap<String, String>,
    balances: HashMap<(String, String, String), u128>,
    swaps: BTreeMap<String, SwapOrder>,
}

impl WalletState {
    fn balance(&self, chain_name: &str, address: &str, token: &str) -> u128 {
        self.balances
            .get(&(
                chain_name.to_owned(),
                address.to_owned(),
                token.to_uppercase(),
            ))
            .copied()
            .unwrap_or(0)
    }

    fn credit(&mut self, chain_name: &str, address: &str, token: &str, units: u128) {
        let entry = self
            .balances
            .entry((
                chain_name.to_owned(),
                address.to_owned(),
                token.to_uppercase(),
            ))
            .or_default();
        *entry = entry.saturating_add(units);
    }

    fn debit(&mut self, chain_name: &str, address: &str, token: &str, units: u128) {
        let entry = self
            .balances
            .entry((
                chain_name.to_owned(),
                address.to_owned(),
                token.to_uppercase(),
            ))
            .or_default();
        *entry = entry.saturating_sub(units);
    }
}

/// Funds an address on a simulated chain (admin). `token` defaults to the native coin.
pub(crate) fn fund(
    w: &mut World,
    chain_name: &str,
    address: &str,
    token: Option<&str>,
    amount: &str,
) -> Result<Value, ApiError> {
    let (_, native, _, _) = chain(chain_name)
        .ok_or_else(|| ApiError::new(400, "unsupported_chain").with("supported", supported()))?;
    let token = token.unwrap_or(native).to_uppercase();
    let dec = decimals(chain_name, &token).ok_or_else(|| {
        ApiError::new(400, "unsupported_token").msg(format!("{token} is not on {chain_name}"))
    })?;
    let units = parse_units(amount, dec).ok_or_else(|| {
        ApiError::new(400, "invalid_amount").msg("amount must be a decimal string")
    })?;
    w.wallet.credit(chain_name, address, &token, units);
    Ok(json!({
        "chain": chain_name,
        "address": address,
        "token": token,
        "balance": format_units(w.wallet.balance(chain_name, address, &token), dec),
    }))
}

fn supported() -> Vec<&'static str> {
    CHAINS.iter().map(|c| c.0).collect()
}

/// The wallet router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/wallet/create", post(create))
        .route("/v1/wallet/balance/{address}", get(balance))
        .route("/v1/wallet/send", post(send))
        .route("/v1/wallet/swap/quote", get(quote))
        .route("/v1/wallet/swap", post(swap))
        .route("/v1/wallet/swap/status/{order_id}", get(swap_status))
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "public-wallet"}))
}

fn auth(w: &World, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = bearer(headers)?;
    w.wallet
        .keys
        .get(&key_hash(key))
        .cloned()
        .ok_or_else(|| unknown_key(Service::Wallet))
}

async fn register(State(st): State<AppState>, body: Bytes) -> Response {
    st.run(|w, _cx| {
        parse_body(&body, BadJson::InvalidJson)?;
        let id = format!("ag_{}", w.hex(12));
        let api_key = format!("pk_live_{}", w.hex(48));
        let referral_code = format!("ref_{}", w.hex(8));
        w.wallet.keys.insert(key_hash(&api_key), id.clone());
        created(json!({
            "agent_id": id,
            "api_key": api_key,
            "referral_code": referral_code,
            "message": "Store your API key: it is shown once.",
        }))
    })
}

async fn create(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        auth(w, &headers)?;
        let words: Vec<&str> = (0..24)
            .map(|_| WORDS[(w.unit() * WORDS.len() as f64) as usize % WORDS.len()])
            .collect();
        let mnemonic = words.join(" ");
        let mut addresses = serde_json::Map::new();
        let mut keys = serde_json::Map::new();
        for (name, ..) in CHAINS {
            let fam = family(name);
            let key = private_key(&mnemonic, fam);
            let address = address_of_key(fam, &key).unwrap_or_default();
            addresses.insert(name.to_owned(), json!(address));
            keys.insert(name.to_owned(), json!(key));
        }
        let view_key = hex::encode(sha(&format!("purpleflea-sandbox:{mnemonic}:xmr-view")));
        let spend_key = hex::encode(sha(&format!("purpleflea-sandbox:{mnemonic}:xmr-spend")));
        created(json!({
            "mnemonic": mnemonic,
            "addresses": addresses,
            "monero_keys": {"private_view_key": view_key, "private_spend_key": spend_key},
            "derivation_paths": {
                "ethereum": "m/44'/60'/0'/0/0",
                "base": "m/44'/60'/0'/0/0 (same as ethereum)",
                "solana": "m/44'/501'/0'/0'",
                "bitcoin": "m/84'/0'/0'/0/0 (native segwit)",
                "tron": "m/44'/195'/0'/0/0",
                "monero": "monero seed from the same entropy",
            },
            "warning": "This mnemonic is shown ONCE and never stored. Save it securely. Loss = loss of funds.",
            "sandbox_private_keys": keys,
            "sandbox_note": "Sandbox only: keys are derived with SHA-256, not BIP-32; use sandbox_private_keys with /wallet/send.",
        }))
    })
}

type QueryMap = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

fn explorer(chain_name: &str) -> &'static str {
    match chain_name {
        "ethereum" => "https://etherscan.io",
        "base" => "https://basescan.org",
        "solana" => "https://solscan.io",
        "bitcoin" => "https://mempool.space",
        "tron" => "https://tronscan.org/#",
        _ => "https://xmrchain.net",
    }
}

async fn balance(
    State(st): State<AppState>,
    Path(address): Path<String>,
    headers: HeaderMap,
    query: QueryMap,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, _cx| {
        auth(w, &headers)?;
        let chain_name = query.get("chain").map_or("base", String::as_str);
        let Some((name, symbol, dec, unit)) = chain(chain_name) else {
            return Err(ApiError::new(400, "unsupported_chain").with("supported", supported()));
        };
        let units = w.wallet.balance(name, &address, symbol);
        let mut native = json!({"symbol": symbol, "amount": format_units(units, dec)});
        native[unit] = json!(units.to_string());
        let tokens: serde_json::Map<String, Value> = chain_tokens(name)
            .iter()
            .map(|t| {
                let u = w.wallet.balance(name, &address, t);
                (
                    (*t).to_owned(),
                    json!({"symbol": t, "amount": format_units(u, 6), "raw": u.to_string()}),
                )
            })
            .collect();
        ok(json!({
            "address": address,
            "chain": name,
            "balance": {"native": native, "tokens": tokens},
            "explorer": format!("{}/address/{address}", explorer(name)),
        }))
    })
}

fn send_failed(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "send_failed").msg(message)
}

async fn send(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        auth(w, &headers)?;
        w.limit(cx, "/v1/wallet/send", &ip, 20)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let amount = match body.get("amount") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (Some(chain_name), Some(to), Some(amount), Some(key)) = (
            text(&body, "chain").filter(|s| !s.is_empty()),
            text(&body, "to").filter(|s| !s.is_empty()),
            amount,
            text(&body, "private_key").filter(|s| !s.is_empty()),
        ) else {
            return Err(ApiError::new(400, "invalid_request").msg("Provide chain, to, amount, and private_key"));
        };
        let Some((name, native, native_dec, _)) = chain(chain_name) else {
            return Err(ApiError::new(400, "unsupported_chain").with("supported", supported()));
        };
        if name == "bitcoin" {
            return Err(ApiError::new(501, "not_implemented")
                .msg("Bitcoin send requires UTXO management. Use a dedicated Bitcoin library."));
        }
        let fam = family(name);
        let from = address_of_key(fam, key).ok_or_else(|| send_failed("invalid private key"))?;
        if !valid_address(name, to) {
            return Err(send_failed(format!("invalid address: {to}")));
        }
        let token = text(&body, "token").map(|t| {
            if t.starts_with("0x") || t.len() > 10 {
                chain_tokens(name).first().copied().unwrap_or("USDC").to_owned()
            } else {
                t.to_uppercase()
            }
        });
        let asset = token.clone().unwrap_or_else(|| native.to_owned());
        let dec = decimals(name, &asset).ok_or_else(|| send_failed(format!("unsupported token {asset} on {name}")))?;
        let units = parse_units(&amount, dec)
            .filter(|u| *u > 0)
            .ok_or_else(|| send_failed(format!("invalid amount: {amount}")))?;
        let fee = network_fee(name);
        let native_needed = if token.is_some() { fee } else { units.saturating_add(fee) };
        if w.wallet.balance(name, &from, native) < native_needed {
            return Err(send_failed(format!(
                "insufficient funds for intrinsic transaction cost (balance {} {native}, need {} {native})",
                format_units(w.wallet.balance(name, &from, native), native_dec),
                format_units(native_needed, native_dec),
            )));
        }
        if token.is_some() && w.wallet.balance(name, &from, &asset) < units {
            return Err(send_failed(format!("execution reverted: transfer amount exceeds balance (insufficient funds in {asset})")));
        }
        w.wallet.debit(name, &from, native, fee);
        w.wallet.debit(name, &from, &asset, units);
        w.wallet.credit(name, to, &asset, units);
        let tx_hash = match fam {
            "solana" => encode_from(&w.hex(32), BASE58, 88),
            "evm" => format!("0x{}", w.hex(64)),
            _ => w.hex(64),
        };
        settle_swap_deposit(w, name, to, &asset, units, &tx_hash, cx.now);
        let mut v = json!({
            "tx_hash": tx_hash,
            "chain": name,
            "from": from,
            "to": to,
            "amount": amount,
            "explorer": format!("{}/tx/{tx_hash}", explorer(name)),
        });
        if let Some(t) = token {
            v["token"] = json!(t);
        }
        ok(v)
    })
}

/// A send to a swap's deposit address completes the swap and pays out on the target chain.
fn settle_swap_deposit(
    w: &mut World,
    chain_name: &str,
    to: &str,
    asset: &str,
    units: u128,
    tx: &str,
    now: DateTime<Utc>,
) {
    let matched = w.wallet.swaps.values_mut().find(|s| {
        s.status == "awaiting_deposit"
            && s.deposit_address == to
            && s.from_chain == chain_name
            && s.from_token.eq_ignore_ascii_case(asset)
            && units >= s.from_units
            && now <= s.expires_at
    });
    if let Some(s) = matched {
        s.status = "completed";
        s.completed_at = Some(now);
        s.deposit_tx = Some(tx.to_owned());
        let (chain_to, address, token, out) = (
            s.to_chain.clone(),
            s.to_address.clone(),
            s.to_token.clone(),
            s.to_units,
        );
        w.wallet.credit(&chain_to, &address, &token, out);
    }
}

/// USD price of a token (ETH, BTC, SOL follow the trading mids).
fn usd_price(w: &mut World, token: &str, now: DateTime<Utc>) -> Option<f64> {
    match token.to_uppercase().as_str() {
        "USDC" | "USDT" => Some(1.0),
        "TRX" => Some(0.25),
        "XMR" => Some(160.0),
        t @ ("ETH" | "BTC" | "SOL") => Some(crate::trading::mid_of(w, t, now)),
        _ => None,
    }
}

struct Quote {
    from_chain: String,
    to_chain: String,
    from_token: String,
    to_token: String,
    from_units: u128,
    to_units: u128,
    from_usd: f64,
    fee_usd: f64,
}

fn make_quote(
    w: &mut World,
    q: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Quote, String> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let (from_chain, to_chain) = (
        get("from_chain").to_lowercase(),
        get("to_chain").to_lowercase(),
    );
    let (from_token, to_token) = (
        get("from_token").to_uppercase(),
        get("to_token").to_uppercase(),
    );
    let from_dec = decimals(&from_chain, &from_token)
        .ok_or_else(|| format!("unsupported asset {from_token} on {from_chain}"))?;
    let to_dec = decimals(&to_chain, &to_token)
        .ok_or_else(|| format!("unsupported asset {to_token} on {to_chain}"))?;
    let from_units: u128 = get("amount")
        .parse()
        .ok()
        .filter(|u| *u > 0)
        .ok_or_else(|| {
            "amount must be a positive integer in the token's smallest unit".to_owned()
        })?;
    let from_price = usd_price(w, &from_token, now).ok_or("no price")?;
    let to_price = usd_price(w, &to_token, now).ok_or("no price")?;
    let from_amount = from_units as f64 / 10f64.powi(from_dec as i32);
    let from_usd = from_amount * from_price;
    if from_usd < 1.0 {
        return Err("amount too small: minimum swap is $1".to_owned());
    }
    let fee_usd = from_usd * 0.005;
    let to_amount = (from_usd - fee_usd) / to_price;
    let to_units = (to_amount * 10f64.powi(to_dec as i32)).floor() as u128;
    Ok(Quote {
        from_chain,
        to_chain,
        from_token,
        to_token,
        from_units,
        to_units,
        from_usd,
        fee_usd,
    })
}

fn quote_view(q: &Quote) -> Value {
    let to_dec = decimals(&q.to_chain, &q.to_token).unwrap_or(6);
    let from_dec = decimals(&q.from_chain, &q.from_token).unwrap_or(6);
    json!({
        "fromChain": q.from_chain, "toChain": q.to_chain,
        "fromToken": q.from_token, "toToken": q.to_token,
        "fromAmount": q.from_units.to_string(),
        "fromAmountFormatted": format_units(q.from_units, from_dec),
        "toAmount": q.to_units.to_string(),
        "toAmountFormatted": format_units(q.to_units, to_dec),
        "fromAmountUsd": format!("{:.2}", q.from_usd),
        "estimatedTimeSeconds": 120,
    })
}

async fn quote(State(st): State<AppState>, headers: HeaderMap, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, cx| {
        auth(w, &headers)?;
        if ["from_chain", "to_chain", "from_token", "to_token", "amount"]
            .iter()
            .any(|k| query.get(*k).is_none_or(String::is_empty))
        {
            return Err(ApiError::new(400, "invalid_request").msg(
                "Provide from_chain, to_chain, from_token, to_token, amount as query params",
            ));
        }
        let q =
            make_quote(w, &query, cx.now).map_err(|m| ApiError::new(400, "quote_failed").msg(m))?;
        ok(json!({
            "quote": quote_view(&q),
            "integrator_fee": {
                "rate": "0.5%",
                "estimated_fee_usd": round2(q.fee_usd),
                "note": "Fee is included in the quote",
            },
            "next_step": "POST /v1/wallet/swap with same parameters + to_address",
        }))
    })
}

async fn swap(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, cx| {
        auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let mut params = HashMap::new();
        for k in ["from_chain", "to_chain", "from_token", "to_token", "amount", "to_address"] {
            let v = match body.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            if v.is_empty() {
                return Err(ApiError::new(400, "invalid_request")
                    .msg("Provide from_chain, to_chain, from_token, to_token, amount, to_address"));
            }
            params.insert(k.to_owned(), v);
        }
        let q = make_quote(w, &params, cx.now).map_err(|m| ApiError::new(400, "swap_failed").msg(m))?;
        let to_address = params.get("to_address").cloned().unwrap_or_default();
        if !valid_address(&q.to_chain, &to_address) {
            return Err(ApiError::new(400, "swap_failed").msg(format!("invalid to_address for {}", q.to_chain)));
        }
        let deposit_address = fake_address(w, &q.from_chain);
        let order = SwapOrder {
            swap_id: format!("swap_{}", w.hex(12)),
            order_id: format!("wg_{}", w.hex(16)),
            from_chain: q.from_chain.clone(),
            to_chain: q.to_chain.clone(),
            from_token: q.from_token.clone(),
            to_token: q.to_token.clone(),
            from_units: q.from_units,
            to_units: q.to_units,
            deposit_address: deposit_address.clone(),
            to_address: to_address.clone(),
            status: "awaiting_deposit",
            created_at: cx.now,
            expires_at: cx.now + TimeDelta::hours(1),
            completed_at: None,
            deposit_tx: None,
        };
        let from_dec = decimals(&q.from_chain, &q.from_token).unwrap_or(6);
        let to_dec = decimals(&q.to_chain, &q.to_token).unwrap_or(6);
        let deposit_amount = format_units(q.from_units, from_dec);
        let v = json!({
            "swap_id": order.swap_id,
            "order_id": order.order_id,
            "status": order.status,
            "deposit": {
                "address": deposit_address,
                "chain": q.from_chain,
                "token": q.from_token,
                "amount": deposit_amount,
                "instruction": format!("Send exactly {deposit_amount} {} to {deposit_address} on {}", q.from_token, q.from_chain),
            },
            "output": {"address": to_address, "expected_amount": format_units(q.to_units, to_dec)},
            "fee": {"rate": "0.5%", "amount_usd": round2(q.fee_usd)},
            "expires_at": iso(order.expires_at),
            "check_status": format!("GET /v1/wallet/swap/status/{}", order.order_id),
        });
        w.wallet.swaps.insert(order.order_id.clone(), order);
        reply(200, v)
    })
}

async fn swap_status(
    State(st): State<AppState>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, cx| {
        auth(w, &headers)?;
        let s = w.wallet.swaps.get_mut(&order_id).ok_or_else(|| {
            ApiError::new(400, "status_check_failed").msg(format!("Order {order_id} not found"))
        })?;
        if s.status == "awaiting_deposit" && cx.now > s.expires_at {
            s.status = "expired";
        }
        let to_dec = decimals(&s.to_chain, &s.to_token).unwrap_or(6);
        ok(json!({
            "orderId": s.order_id,
            "swap_id": s.swap_id,
            "status": s.status,
            "fromChain": s.from_chain, "toChain": s.to_chain,
            "fromToken": s.from_token, "toToken": s.to_token,
            "depositAddress": s.deposit_address,
            "toAddress": s.to_address,
            "expectedOutput": format_units(s.to_units, to_dec),
            "depositTx": s.deposit_tx,
            "createdAt": iso(s.created_at),
            "expiresAt": iso(s.expires_at),
            "completedAt": s.completed_at.map(iso),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_trip() {
        assert_eq!(parse_units("1.5", 18), Some(1_500_000_000_000_000_000));
        assert_eq!(parse_units("0.0000001", 6), None);
        assert_eq!(parse_units("abc", 6), None);
        assert_eq!(format_units(0, 18), "0.0");
        assert_eq!(format_units(1_500_000, 6), "1.5");
    }

    #[test]
    fn derived_keys_control_their_addresses() {
        let key = private_key("amber anchor", "evm");
        let a = address_of_key("evm", &key);
        assert!(a.as_deref().is_some_and(|a| valid_address("base", a)));
        let sol = address_of_key("solana", &private_key("amber anchor", "solana"));
        assert!(sol.as_deref().is_some_and(|a| valid_address("solana", a)));
        let tron = address_of_key("tron", &private_key("amber anchor", "tron"));
        assert!(tron.as_deref().is_some_and(|a| valid_address("tron", a)));
    }
}
