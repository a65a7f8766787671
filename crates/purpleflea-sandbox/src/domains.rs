//! Domains (`/domains/v1/...`): search, registration, DNS records and auctions.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Months, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::http::{
    ApiError, ApiResult, BadJson, bearer, created, iso, key_hash, num, ok, parse_body, reply,
    round2, text, unknown_key,
};
use crate::service::Service;
use crate::state::{AppState, World};

/// Markup on the registrar price.
const MARKUP: f64 = 0.20;
/// Fixed EUR → USD rate.
const EUR_USD: f64 = 1.08;
/// Minimum raise over the current bid.
const BID_STEP: f64 = 0.05;

/// Registrar prices in EUR per year by TLD.
const TLDS: [(&str, f64); 10] = [
    ("com", 9.99),
    ("net", 12.99),
    ("org", 11.99),
    ("io", 39.99),
    ("ai", 69.99),
    ("xyz", 1.99),
    ("dev", 14.99),
    ("app", 16.99),
    ("co", 24.99),
    ("me", 7.99),
];

fn tld_price(domain: &str) -> Option<f64> {
    let tld = domain.rsplit_once('.')?.1;
    TLDS.iter().find(|(t, _)| *t == tld).map(|(_, p)| *p)
}

fn charge_usd(eur: f64) -> f64 {
    round2(eur * (1.0 + MARKUP) * EUR_USD)
}

fn valid_domain(d: &str) -> bool {
    let Some((label, tld)) = d.rsplit_once('.') else {
        return false;
    };
    let label_ok = !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    label_ok && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_lowercase())
}

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    referral_code: String,
    balance: f64,
    created_at: DateTime<Utc>,
    deposit_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Record {
    id: String,
    kind: String,
    name: String,
    content: String,
    ttl: u64,
}

#[derive(Debug, Clone)]
struct Domain {
    id: String,
    name: String,
    owner: String,
    registered_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    records: Vec<Record>,
}

#[derive(Debug, Clone)]
struct Bid {
    id: String,
    bidder: String,
    amount: f64,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Auction {
    id: String,
    domain_id: String,
    domain: String,
    seller: String,
    min_bid: f64,
    status: &'static str,
    created_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    bids: Vec<Bid>,
}

impl Auction {
    fn current(&self) -> Option<&Bid> {
        self.bids.last()
    }

    fn next_min(&self) -> f64 {
        self.current()
            .map_or(self.min_bid, |b| round2(b.amount * (1.0 + BID_STEP)))
    }

    fn view(&self, with_bids: bool) -> Value {
        let mut v = json!({
            "auction_id": self.id,
            "domain_id": self.domain_id,
            "domain": self.domain,
            "seller_id": self.seller,
            "min_bid_usd": self.min_bid,
            "current_bid_usd": self.current().map(|b| b.amount),
            "current_bidder_id": self.current().map(|b| b.bidder.clone()),
            "next_min_bid_usd": self.next_min(),
            "bid_count": self.bids.len(),
            "status": self.status,
            "created_at": iso(self.created_at),
            "ends_at": iso(self.ends_at),
        });
        if with_bids {
            v["bids"] = self
                .bids
                .iter()
                .map(|b| json!({"bid_id": b.id, "bidder_id": b.bidder, "bid_usd": b.amount, "created_at": iso(b.at)}))
                .collect();
        }
        v
    }
}

/// The domains service's data.
#[derive(Debug, Default)]
pub(crate) struct DomainsState {
    agents: HashMap<String, Agent>,
    keys: HashMap<String, String>,
    domains: BTreeMap<String, Domain>,
    by_name: HashMap<String, String>,
    auctions: BTreeMap<String, Auction>,
}

impl DomainsState {
    /// Credits an agent's USD balance (what a crypto deposit does in production).
    pub(crate) fn deposit(&mut self, agent_id: &str, amount: f64) -> Option<f64> {
        let a = self.agents.get_mut(agent_id)?;
        a.balance = round2(a.balance + amount);
        Some(a.balance)
    }
}

/// Whether a name is taken "on the internet" (deterministic under the seed) or here.
fn taken(w: &World, domain: &str) -> bool {
    if w.domains.by_name.contains_key(domain) {
        return true;
    }
    let label = domain.split('.').next().unwrap_or("");
    if label.len() <= 3
        || [
            "google",
            "purpleflea",
            "openai",
            "amazon",
            "bitcoin",
            "example",
        ]
        .contains(&label)
    {
        return true;
    }
    let h = crate::http::key_hash(&format!("{}:{domain}", w.seed));
    u8::from_str_radix(&h[..2], 16).is_ok_and(|b| b < 64)
}

/// The domains router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/account", get(account))
        .route("/v1/auth/deposit-address", post(deposit_address))
        .route("/v1/domains/search", get(search))
        .route("/v1/domains/register", post(register_domain))
        .route("/v1/domains", get(list_domains))
        .route("/v1/dns/records", post(add_record).get(list_records))
        .route("/v1/dns/records/{id}", delete(delete_record))
        .route("/v1/auctions", post(create_auction).get(list_auctions))
        .route("/v1/auctions/{id}", get(get_auction))
        .route("/v1/auctions/{id}/bid", post(bid))
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "agent-domains"}))
}

fn auth(w: &World, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = bearer(headers)?;
    w.domains
        .keys
        .get(&key_hash(key))
        .cloned()
        .ok_or_else(|| unknown_key(Service::Domains))
}

async fn register(State(st): State<AppState>, body: Bytes) -> Response {
    st.run(|w, cx| {
        parse_body(&body, BadJson::InvalidJson)?;
        let id = format!("ag_{}", w.hex(12));
        let api_key = format!("sk_domains_{}", w.hex(48));
        let referral_code = format!("ref_{}", w.hex(8));
        w.domains.keys.insert(key_hash(&api_key), id.clone());
        w.domains.agents.insert(
            id.clone(),
            Agent {
                id: id.clone(),
                referral_code: referral_code.clone(),
                balance: 0.0,
                created_at: cx.now,
                deposit_addresses: BTreeMap::new(),
            },
        );
        created(json!({
            "agent_id": id,
            "api_key": api_key,
            "referral_code": referral_code,
            "balance_usd": 0.0,
            "message": "Store your API key: it is shown once.",
        }))
    })
}

async fn account(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let a = w
            .domains
            .agents
            .get(&id)
            .ok_or_else(|| unknown_key(Service::Domains))?;
        let owned = w.domains.domains.values().filter(|d| d.owner == id).count();
        ok(json!({
            "agent_id": a.id,
            "balance_usd": a.balance,
            "referral_code": a.referral_code,
            "domains_count": owned,
            "created_at": iso(a.created_at),
        }))
    })
}

async fn deposit_address(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let chain = text(&body, "chain").unwrap_or("base").to_lowercase();
        let supported = ["base", "ethereum", "arbitrum", "solana", "bitcoin", "tron", "monero"];
        if !supported.contains(&chain.as_str()) {
            return Err(ApiError::new(400, "unsupported_chain").with("supported", supported.to_vec()));
        }
        let existing = w
            .domains
            .agents
            .get(&id)
            .and_then(|a| a.deposit_addresses.get(&chain).cloned());
        let (address, status) = match existing {
            Some(a) => (a, 200),
            None => {
                let a = crate::wallet::fake_address(w, &chain);
                if let Some(agent) = w.domains.agents.get_mut(&id) {
                    agent.deposit_addresses.insert(chain.clone(), a.clone());
                }
                (a, 201)
            }
        };
        reply(status, json!({"chain": chain, "address": address, "message": "Deposits are credited in USD after confirmation"}))
    })
}

type QueryMap = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

async fn search(State(st): State<AppState>, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, _cx| {
        let q = query.get("q").map(|q| q.trim().to_lowercase()).unwrap_or_default();
        if q.is_empty() {
            return Err(ApiError::new(400, "invalid_query").msg("Provide ?q=<name or domain>"));
        }
        let candidates: Vec<String> = if q.contains('.') {
            vec![q.clone()]
        } else {
            TLDS.iter().map(|(t, _)| format!("{q}.{t}")).collect()
        };
        let results: Vec<Value> = candidates
            .iter()
            .map(|d| match tld_price(d).filter(|_| valid_domain(d)) {
                Some(eur) => json!({
                    "domain": d,
                    "available": !taken(w, d),
                    "price_eur": eur,
                    "currency": "EUR",
                    "price_usd": charge_usd(eur),
                    "period_years": 1,
                }),
                None => json!({"domain": d, "available": false, "reason": "unsupported or invalid domain"}),
            })
            .collect();
        ok(json!({"query": q, "results": results, "currency": "EUR"}))
    })
}

async fn register_domain(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let domain = text(&body, "domain").unwrap_or("").trim().to_lowercase();
        let Some(eur) = tld_price(&domain).filter(|_| valid_domain(&domain)) else {
            return Err(ApiError::new(400, "invalid_domain")
                .msg("domain must look like name.tld with a supported TLD")
                .with(
                    "supported_tlds",
                    TLDS.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
                ));
        };
        if taken(w, &domain) {
            return Err(
                ApiError::new(400, "domain_unavailable").msg(format!("{domain} is not available"))
            );
        }
        let total = charge_usd(eur);
        let balance = w.domains.agents.get(&id).map_or(0.0, |a| a.balance);
        if balance + 1e-9 < total {
            return Err(ApiError::new(400, "insufficient_balance")
                .msg(format!("Registering {domain} costs ${total}"))
                .with("required_usd", total)
                .with("balance_usd", balance)
                .with("shortfall_usd", round2(total - balance)));
        }
        let new_balance = w.domains.deposit(&id, -total).unwrap_or(0.0);
        let domain_id = format!("dom_{}", w.hex(16));
        let expires = cx
            .now
            .checked_add_months(Months::new(12))
            .unwrap_or(cx.now + TimeDelta::days(365));
        w.domains.by_name.insert(domain.clone(), domain_id.clone());
        w.domains.domains.insert(
            domain_id.clone(),
            Domain {
                id: domain_id.clone(),
                name: domain.clone(),
                owner: id,
                registered_at: cx.now,
                expires_at: expires,
                records: Vec::new(),
            },
        );
        created(json!({
            "domain_id": domain_id,
            "domain": domain,
            "status": "active",
            "registered_at": iso(cx.now),
            "expires_at": iso(expires),
            "cost": {
                "registrar_eur": eur,
                "markup_percent": MARKUP * 100.0,
                "eur_usd_rate": EUR_USD,
                "total_charged_usd": total,
            },
            "balance_usd": new_balance,
        }))
    })
}

fn domain_view(d: &Domain) -> Value {
    json!({
        "domain_id": d.id,
        "domain": d.name,
        "status": "active",
        "registered_at": iso(d.registered_at),
        "expires_at": iso(d.expires_at),
        "records_count": d.records.len(),
    })
}

async fn list_domains(State(st): State<AppState>, headers: HeaderMap) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let list: Vec<Value> = w
            .domains
            .domains
            .values()
            .filter(|d| d.owner == id)
            .map(domain_view)
            .collect();
        ok(json!({"count": list.len(), "domains": list}))
    })
}

fn my_domain<'a>(
    w: &'a mut World,
    owner: &str,
    domain_id: &str,
) -> Result<&'a mut Domain, ApiError> {
    w.domains
        .domains
        .get_mut(domain_id)
        .filter(|d| d.owner == owner)
        .ok_or_else(|| {
            ApiError::new(404, "domain_not_found")
                .msg(format!("No domain '{domain_id}' in your account"))
        })
}

fn record_view(d: &Domain, r: &Record) -> Value {
    json!({
        "record_id": r.id, "domain_id": d.id, "domain": d.name,
        "type": r.kind, "name": r.name, "content": r.content, "ttl": r.ttl,
    })
}

async fn add_record(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let (Some(domain_id), Some(kind), Some(content)) = (
            text(&body, "domain_id"),
            text(&body, "type"),
            text(&body, "content").filter(|c| !c.is_empty()),
        ) else {
            return Err(ApiError::new(400, "invalid_request")
                .msg("Provide domain_id, type, name, content, ttl"));
        };
        let kind = kind.to_uppercase();
        if !["A", "AAAA", "CNAME", "MX", "TXT"].contains(&kind.as_str()) {
            return Err(
                ApiError::new(400, "invalid_type").msg("type must be A, AAAA, CNAME, MX or TXT")
            );
        }
        let content_ok = match kind.as_str() {
            "A" => content.parse::<std::net::Ipv4Addr>().is_ok(),
            "AAAA" => content.parse::<std::net::Ipv6Addr>().is_ok(),
            _ => true,
        };
        if !content_ok {
            return Err(ApiError::new(400, "invalid_content")
                .msg(format!("content is not a valid {kind} value")));
        }
        let ttl = match body.get("ttl") {
            None | Some(Value::Null) => 3600,
            Some(v) => v
                .as_u64()
                .filter(|t| (60..=86_400).contains(t))
                .ok_or_else(|| {
                    ApiError::new(400, "invalid_ttl").msg("ttl must be 60 to 86400 seconds")
                })?,
        };
        let name = text(&body, "name")
            .filter(|n| !n.is_empty())
            .unwrap_or("@")
            .to_owned();
        let record_id = format!("rec_{}", w.hex(16));
        let d = my_domain(w, &id, domain_id)?;
        let record = Record {
            id: record_id,
            kind,
            name,
            content: content.to_owned(),
            ttl,
        };
        let v = record_view(d, &record);
        d.records.push(record);
        created(v)
    })
}

async fn list_records(State(st): State<AppState>, headers: HeaderMap, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        let domain_id = query.get("domain_id").cloned().unwrap_or_default();
        let d = my_domain(w, &id, &domain_id)?;
        let records: Vec<Value> = d.records.iter().map(|r| record_view(d, r)).collect();
        ok(json!({"domain_id": d.id, "domain": d.name, "records": records, "count": records.len()}))
    })
}

async fn delete_record(
    State(st): State<AppState>,
    Path(record_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, _cx| {
        let id = auth(w, &headers)?;
        for d in w.domains.domains.values_mut().filter(|d| d.owner == id) {
            if let Some(pos) = d.records.iter().position(|r| r.id == record_id) {
                d.records.remove(pos);
                return ok(json!({"deleted": true, "record_id": record_id}));
            }
        }
        Err(ApiError::new(404, "record_not_found"))
    })
}

async fn create_auction(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let domain_id = text(&body, "domain_id").unwrap_or("").to_owned();
        let domain = my_domain(w, &id, &domain_id)?.name.clone();
        let min_bid = num(&body, "min_bid_usd")
            .filter(|m| *m >= 0.5)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_min_bid").msg("min_bid_usd must be at least 0.50")
            })?;
        let hours = num(&body, "duration_hours")
            .filter(|h| (1.0..=168.0).contains(h))
            .ok_or_else(|| {
                ApiError::new(400, "invalid_duration").msg("duration_hours must be 1 to 168")
            })?;
        if w.domains
            .auctions
            .values()
            .any(|a| a.domain_id == domain_id && a.status == "open")
        {
            return Err(ApiError::new(409, "already_listed")
                .msg(format!("{domain} already has an open auction")));
        }
        let auction = Auction {
            id: format!("auc_{}", w.hex(16)),
            domain_id,
            domain,
            seller: id,
            min_bid: round2(min_bid),
            status: "open",
            created_at: cx.now,
            ends_at: cx.now + TimeDelta::milliseconds((hours * 3_600_000.0).round() as i64),
            bids: Vec::new(),
        };
        let v = auction.view(false);
        w.domains.auctions.insert(auction.id.clone(), auction);
        created(v)
    })
}

async fn list_auctions(State(st): State<AppState>, query: QueryMap) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    st.run(|w, cx| {
        for a in w.domains.auctions.values_mut() {
            if a.status == "open" && cx.now >= a.ends_at {
                a.status = "expired";
            }
        }
        let want = query.get("status").map_or("open", String::as_str);
        let list: Vec<Value> = w
            .domains
            .auctions
            .values()
            .filter(|a| want == "all" || a.status == want)
            .map(|a| a.view(false))
            .collect();
        ok(json!({"count": list.len(), "auctions": list}))
    })
}

async fn get_auction(State(st): State<AppState>, Path(auction_id): Path<String>) -> Response {
    st.run(|w, _cx| {
        let a = w
            .domains
            .auctions
            .get(&auction_id)
            .ok_or_else(|| ApiError::new(404, "auction_not_found"))?;
        ok(a.view(true))
    })
}

async fn bid(
    State(st): State<AppState>,
    Path(auction_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let id = auth(w, &headers)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let amount = num(&body, "bid_usd").filter(|b| *b > 0.0).ok_or_else(|| {
            ApiError::new(400, "invalid_bid").msg("bid_usd must be a positive number")
        })?;
        let balance = w.domains.agents.get(&id).map_or(0.0, |a| a.balance);
        let bid_id = format!("bid_{}", w.hex(16));
        let a = w
            .domains
            .auctions
            .get_mut(&auction_id)
            .ok_or_else(|| ApiError::new(404, "auction_not_found"))?;
        if a.status != "open" {
            return Err(ApiError::new(409, "auction_closed")
                .msg(format!("Auction is {}", a.status))
                .with("status", a.status));
        }
        if cx.now >= a.ends_at {
            return Err(ApiError::new(409, "auction_expired")
                .msg("Auction has ended")
                .with("ends_at", iso(a.ends_at)));
        }
        if a.seller == id {
            return Err(
                ApiError::new(400, "cannot_self_bid").msg("You cannot bid on your own auction")
            );
        }
        let min = a.next_min();
        if amount + 1e-9 < min {
            return Err(ApiError::new(400, "bid_too_low")
                .msg(format!("Minimum bid is ${min:.2}"))
                .with("min_bid_usd", min)
                .with("current_bid_usd", a.current().map(|b| b.amount)));
        }
        if balance + 1e-9 < amount {
            return Err(ApiError::new(400, "insufficient_balance")
                .msg("Your balance does not cover this bid")
                .with("balance_usd", balance)
                .with("required_usd", amount));
        }
        a.bids.push(Bid {
            id: bid_id.clone(),
            bidder: id,
            amount: round2(amount),
            at: cx.now,
        });
        created(json!({
            "bid_id": bid_id,
            "auction_id": a.id,
            "domain": a.domain,
            "bid_usd": round2(amount),
            "current_bid_usd": round2(amount),
            "next_min_bid_usd": a.next_min(),
            "ends_at": iso(a.ends_at),
            "status": "open",
        }))
    })
}
