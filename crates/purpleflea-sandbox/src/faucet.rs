//! Faucet (`/faucet/faucet/...`): one $1 claim per casino agent, no auth.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use crate::http::{ApiError, ApiResult, BadJson, ClientIp, iso, ok, parse_body, text};
use crate::state::{AppState, World};

/// What the faucet credits.
pub(crate) const CLAIM_USD: f64 = 1.0;

#[derive(Debug, Clone)]
struct Claim {
    id: String,
    at: DateTime<Utc>,
}

/// The faucet's data.
#[derive(Debug, Default)]
pub(crate) struct FaucetState {
    claims: HashMap<String, Claim>,
    ip_claims: HashMap<String, DateTime<Utc>>,
    referrals_tracked: u64,
}

/// The faucet router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/faucet/claim", post(claim))
        .route("/faucet/stats", get(stats))
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "agent-faucet"}))
}

/// The claim the casino fires on registration (it does not wait for it, and a failure is
/// silent); it is not counted against any client IP.
pub(crate) fn auto_claim(w: &mut World, agent_id: &str, now: DateTime<Utc>) {
    if w.faucet.claims.contains_key(agent_id) {
        return;
    }
    let id = format!("claim_{}", w.hex(16));
    if w.casino
        .adjust(agent_id, CLAIM_USD, "faucet_claim", "faucet", now)
        .is_some()
    {
        w.faucet
            .claims
            .insert(agent_id.to_owned(), Claim { id, at: now });
    }
}

async fn claim(State(st): State<AppState>, ClientIp(ip): ClientIp, body: Bytes) -> Response {
    st.run(|w, cx| {
        w.limit(cx, "/faucet/claim", &ip, 5)?;
        let body = parse_body(&body, BadJson::InvalidRequest)?;
        let agent_id = text(&body, "agent_casino_id")
            .filter(|a| a.starts_with("ag_"))
            .ok_or_else(|| {
                ApiError::new(400, "invalid_request")
                    .msg("agent_casino_id is required (your casino agent id, ag_...)")
                    .suggest("Register at the casino first: POST /api/v1/auth/register")
            })?
            .to_owned();
        if w.rate_limits
            && let Some(at) = w.faucet.ip_claims.get(&ip)
            && cx.now - *at < TimeDelta::hours(24)
        {
            let retry = *at + TimeDelta::hours(24);
            return Err(ApiError::new(429, "ip_rate_limited")
                .msg("One faucet claim per IP address every 24 hours")
                .with("retry_after", iso(retry)));
        }
        if !w.casino.exists(&agent_id) {
            return Err(ApiError::new(404, "agent_not_found")
                .msg(format!("No casino agent '{agent_id}'"))
                .suggest("Register at the casino first: POST /api/v1/auth/register"));
        }
        if let Some(previous) = w.faucet.claims.get(&agent_id) {
            return Err(ApiError::new(409, "already_claimed")
                .msg("This agent has already claimed the faucet")
                .with("claimed_at", iso(previous.at))
                .with("claim_id", previous.id.clone()));
        }
        if w.casino
            .agent(&agent_id)
            .is_some_and(|a| a.total_deposited > 0.0)
        {
            return Err(ApiError::new(403, "has_deposits")
                .msg("The faucet is for new agents without deposits"));
        }
        let referral_tracked = text(&body, "referral_code")
            .and_then(|code| w.casino.agent_by_referral(code))
            .is_some_and(|referrer| referrer != agent_id);
        if referral_tracked {
            w.faucet.referrals_tracked += 1;
        }
        let claim_id = format!("claim_{}", w.hex(16));
        w.casino
            .adjust(&agent_id, CLAIM_USD, "faucet_claim", "faucet", cx.now);
        w.faucet.claims.insert(
            agent_id.clone(),
            Claim {
                id: claim_id.clone(),
                at: cx.now,
            },
        );
        w.faucet.ip_claims.insert(ip.clone(), cx.now);
        ok(json!({
            "credited": CLAIM_USD,
            "message": "$1.00 credited to your casino balance",
            "casino_url": "/casino/api/v1",
            "claim_id": claim_id,
            "agent_id": agent_id,
            "referral_tracked": referral_tracked,
        }))
    })
}

async fn stats(State(st): State<AppState>) -> Response {
    st.run(|w, _cx| {
        let total = w.faucet.claims.len();
        ok(json!({
            "total_claims": total,
            "total_credited_usd": total as f64 * CLAIM_USD,
            "claim_amount_usd": CLAIM_USD,
            "referrals_tracked": w.faucet.referrals_tracked,
        }))
    })
}
