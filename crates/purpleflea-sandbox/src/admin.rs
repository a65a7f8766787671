//! The admin API under `/_admin`: fault config, clock, reset, deposits and market control.
//! The crate docs hold the table of endpoints; there is no auth (the sandbox is a local tool).

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::faults::FaultConfig;
use crate::http::{ApiError, ApiResult, BadJson, iso, num, ok, parse_body, text};
use crate::service::Service;
use crate::state::AppState;

/// The admin router (mounted at `/_admin`).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/clock/set", post(set_clock))
        .route("/reset", post(reset))
        .route("/deposit", post(deposit))
        .route("/trading/markets/{coin}", put(market))
        .with_state(state)
}

async fn index() -> ApiResult {
    ok(json!({
        "endpoints": [
            "GET /_admin/faults", "PUT /_admin/faults", "DELETE /_admin/faults",
            "GET /_admin/clock", "POST /_admin/clock/advance", "POST /_admin/clock/set",
            "POST /_admin/reset", "POST /_admin/deposit", "PUT /_admin/trading/markets/{coin}",
        ]
    }))
}

fn faults_json(state: &AppState) -> ApiResult {
    let config = state.with_faults(|e| e.config().clone());
    let value = serde_json::to_value(&config)
        .map_err(|e| ApiError::new(500, "internal_error").msg(e.to_string()))?;
    ok(value)
}

async fn get_faults(State(st): State<AppState>) -> ApiResult {
    faults_json(&st)
}

async fn put_faults(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let is_toml = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let invalid = |m: String| ApiError::new(400, "invalid_faults").msg(m);
    let config: FaultConfig = if is_toml {
        let text = std::str::from_utf8(&body).map_err(|e| invalid(e.to_string()))?;
        FaultConfig::from_toml_str(text).map_err(|e| invalid(e.to_string()))?
    } else {
        let config: FaultConfig =
            serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(|e| invalid(e.to_string()))?;
        config
    };
    let now = st.clock().now();
    st.with_faults(|e| e.replace(config, now));
    faults_json(&st)
}

async fn clear_faults(State(st): State<AppState>) -> ApiResult {
    let now = st.clock().now();
    st.with_faults(|e| e.replace(FaultConfig::none(), now));
    faults_json(&st)
}

fn clock_view(st: &AppState) -> Value {
    // Run due jobs so the caller sees their effects immediately.
    let now = st.with_world(|_, cx| cx.now);
    json!({"now": iso(now), "manual": st.clock().is_manual(), "timestamp_ms": now.timestamp_millis()})
}

async fn clock(State(st): State<AppState>) -> ApiResult {
    ok(clock_view(&st))
}

async fn advance(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let body = parse_body(&body, BadJson::InvalidJson)?;
    let seconds = num(&body, "seconds")
        .filter(|s| *s >= 0.0 && *s < 1e10)
        .ok_or_else(|| {
            ApiError::new(400, "invalid_request").msg("seconds must be a non-negative number")
        })?;
    st.clock().advance(Duration::from_secs_f64(seconds));
    ok(clock_view(&st))
}

async fn set_clock(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let body = parse_body(&body, BadJson::InvalidJson)?;
    let to = text(&body, "now")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| ApiError::new(400, "invalid_request").msg("now must be an RFC 3339 time"))?;
    st.clock()
        .set(to)
        .map_err(|e| ApiError::new(400, "invalid_request").msg(e.to_string()))?;
    ok(clock_view(&st))
}

async fn reset(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let body = parse_body(&body, BadJson::InvalidJson)?;
    let seed = body.get("seed").and_then(Value::as_u64);
    st.reset(seed);
    ok(json!({"reset": true, "seed": st.seed()}))
}

async fn deposit(State(st): State<AppState>, body: Bytes) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let service = text(&body, "service").and_then(Service::from_name);
        if service == Some(Service::Wallet) {
            let amount = match body.get("amount") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            let (Some(chain), Some(address)) = (text(&body, "chain"), text(&body, "address"))
            else {
                return Err(ApiError::new(400, "invalid_request")
                    .msg("wallet deposits need chain, address, amount"));
            };
            return ok(crate::wallet::fund(
                w,
                chain,
                address,
                text(&body, "token"),
                &amount,
            )?);
        }
        let agent_id = text(&body, "agent_id").unwrap_or("").to_owned();
        let amount = num(&body, "amount_usd")
            .filter(|a| *a > 0.0)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_request").msg("amount_usd must be a positive number")
            })?;
        let balance = match service {
            Some(Service::Casino) => w.casino.deposit(&agent_id, amount, cx.now),
            Some(Service::Trading) => w.trading.deposit(&agent_id, amount),
            Some(Service::Domains) => w.domains.deposit(&agent_id, amount),
            _ => {
                return Err(ApiError::new(400, "invalid_request")
                    .msg("service must be casino, trading, domains or wallet"));
            }
        };
        let balance = balance.ok_or_else(|| {
            ApiError::new(404, "agent_not_found")
                .msg(format!("No agent '{agent_id}' on that service"))
        })?;
        ok(json!({"agent_id": agent_id, "balance_usd": balance}))
    })
}

async fn market(State(st): State<AppState>, Path(coin): Path<String>, body: Bytes) -> Response {
    st.run(|w, cx| {
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let price = num(&body, "price");
        if price.is_some_and(|p| p <= 0.0) {
            return Err(ApiError::new(400, "invalid_request").msg("price must be positive"));
        }
        ok(crate::trading::set_market(
            w,
            &coin,
            price,
            num(&body, "half_spread_bps"),
            num(&body, "depth_usd"),
            num(&body, "gap_probability"),
            cx.now,
        )?)
    })
}
