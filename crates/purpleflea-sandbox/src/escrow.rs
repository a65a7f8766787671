//! Escrow (`/escrow/escrow/...`): agent-to-agent escrow on casino balances, authenticated
//! with the **casino** key, with the 5-minute timeout sweep that refunds the creator.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use crate::http::{
    ApiError, ApiResult, BadJson, ClientIp, created, iso, num, ok, parse_body, round6, text,
};
use crate::service::Service;
use crate::state::{AppState, World};

/// Commission on every escrow.
const COMMISSION: f64 = 0.01;
/// Share of the commission paid to a referrer on release.
const REFERRER_SHARE: f64 = 0.15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Funded,
    Completed,
    Released,
    Disputed,
    Refunded,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Funded => "funded",
            Status::Completed => "completed",
            Status::Released => "released",
            Status::Disputed => "disputed",
            Status::Refunded => "refunded",
        }
    }

    /// Whether the sweep refunds it once past its deadline.
    fn sweepable(self) -> bool {
        matches!(self, Status::Funded | Status::Completed)
    }
}

#[derive(Debug, Clone)]
struct Escrow {
    id: String,
    creator: String,
    counterparty: String,
    amount: f64,
    commission: f64,
    description: String,
    status: Status,
    timeout_hours: f64,
    referrer: Option<String>,
    created_at: DateTime<Utc>,
    auto_release_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
    disputed_at: Option<DateTime<Utc>>,
    refunded_at: Option<DateTime<Utc>>,
    dispute_reason: Option<String>,
    events: Vec<Value>,
}

impl Escrow {
    fn net(&self) -> f64 {
        round6(self.amount - self.commission)
    }

    fn event(&mut self, kind: &str, actor: &str, at: DateTime<Utc>) {
        self.events
            .push(json!({"type": kind, "actor": actor, "at": iso(at)}));
    }

    fn view(&self, with_events: bool) -> Value {
        let mut v = json!({
            "escrow_id": self.id,
            "amount_usd": self.amount,
            "commission_usd": self.commission,
            "net_to_counterparty": self.net(),
            "creator_id": self.creator,
            "counterparty_id": self.counterparty,
            "description": self.description,
            "status": self.status.name(),
            "timeout_hours": self.timeout_hours,
            "created_at": iso(self.created_at),
            "auto_release_at": iso(self.auto_release_at),
            "completed_at": self.completed_at.map(iso),
            "released_at": self.released_at.map(iso),
            "disputed_at": self.disputed_at.map(iso),
            "refunded_at": self.refunded_at.map(iso),
            "dispute_reason": self.dispute_reason,
        });
        if with_events {
            v["events"] = json!(self.events);
        }
        v
    }
}

/// The escrow service's data.
#[derive(Debug, Default)]
pub(crate) struct EscrowState {
    escrows: BTreeMap<String, Escrow>,
}

impl EscrowState {
    /// The earliest deadline of an escrow the sweep could refund.
    pub(crate) fn earliest_deadline(&self) -> Option<DateTime<Utc>> {
        self.escrows
            .values()
            .filter(|e| e.status.sweepable())
            .map(|e| e.auto_release_at)
            .min()
    }
}

/// The timeout sweep at time `at`: funded or completed escrows past `auto_release_at` become
/// `refunded` and the creator gets amount − commission back; disputed ones are never touched.
pub(crate) fn sweep(w: &mut World, at: DateTime<Utc>) {
    let due: Vec<String> = w
        .escrow
        .escrows
        .values()
        .filter(|e| e.status.sweepable() && e.auto_release_at <= at)
        .map(|e| e.id.clone())
        .collect();
    for id in due {
        let Some(e) = w.escrow.escrows.get_mut(&id) else {
            continue;
        };
        e.status = Status::Refunded;
        e.refunded_at = Some(at);
        e.event("refunded", "system", at);
        let (creator, refund) = (e.creator.clone(), e.net());
        w.casino.adjust(
            &creator,
            refund,
            &format!("escrow_refund:{id}"),
            "escrow",
            at,
        );
        tracing::debug!(escrow = %id, "escrow refunded by timeout sweep");
    }
}

/// The escrow router, relative to the service prefix.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/escrow/create", post(create))
        .route("/escrow/complete/{id}", post(complete))
        .route("/escrow/release/{id}", post(release))
        .route("/escrow/dispute/{id}", post(dispute))
        .route("/escrow/stats", get(stats))
        .route("/escrow/{id}", get(get_escrow))
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok", "service": "agent-escrow"}))
}

async fn create(
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let me = w.casino.authenticate(&headers, Service::Escrow)?;
        w.limit(cx, "/escrow/create", &ip, 20)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let amount = num(&body, "amount_usd")
            .filter(|a| *a >= 0.10)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_amount").msg("amount_usd must be a number >= 0.10")
            })?;
        let amount = round6(amount);
        let description = text(&body, "description")
            .map(str::trim)
            .filter(|d| d.chars().count() >= 3)
            .ok_or_else(|| {
                ApiError::new(400, "invalid_description")
                    .msg("description must be at least 3 characters")
            })?
            .to_owned();
        let counterparty = text(&body, "counterparty_agent_id")
            .filter(|c| c.starts_with("ag_"))
            .ok_or_else(|| {
                ApiError::new(400, "invalid_counterparty")
                    .msg("counterparty_agent_id must be a casino agent id (ag_...)")
            })?
            .to_owned();
        if counterparty == me {
            return Err(
                ApiError::new(400, "self_escrow").msg("You cannot create an escrow with yourself")
            );
        }
        if !w.casino.exists(&counterparty) {
            return Err(ApiError::new(404, "counterparty_not_found")
                .msg(format!("No casino agent '{counterparty}'")));
        }
        let balance = w.casino.agent(&me).map_or(0.0, |a| a.balance);
        if balance + 1e-9 < amount {
            return Err(ApiError::new(402, "insufficient_balance")
                .msg(format!(
                    "Escrow needs ${amount}; your casino balance is ${balance}"
                ))
                .with("balance", round6(balance))
                .with("required", amount));
        }
        let timeout_hours = num(&body, "timeout_hours")
            .unwrap_or(24.0)
            .clamp(1.0, 720.0);
        let referrer = text(&body, "referral_code")
            .and_then(|c| w.casino.agent_by_referral(c))
            .map(str::to_owned)
            .or_else(|| w.casino.agent(&me).and_then(|a| a.referred_by.clone()))
            .filter(|r| *r != me);
        let id = format!("esc_{}", w.hex(16));
        w.casino
            .adjust(&me, -amount, &format!("escrow_lock:{id}"), "escrow", cx.now);
        let deadline =
            cx.now + TimeDelta::milliseconds((timeout_hours * 3_600_000.0).round() as i64);
        let mut escrow = Escrow {
            id: id.clone(),
            creator: me.clone(),
            counterparty,
            amount,
            commission: round6(amount * COMMISSION),
            description,
            status: Status::Funded,
            timeout_hours,
            referrer,
            created_at: cx.now,
            auto_release_at: deadline,
            completed_at: None,
            released_at: None,
            disputed_at: None,
            refunded_at: None,
            dispute_reason: None,
            events: Vec::new(),
        };
        escrow.event("created", &me, cx.now);
        escrow.event("funded", &me, cx.now);
        let view = escrow.view(false);
        w.escrow.escrows.insert(id, escrow);
        created(view)
    })
}

/// Loads an escrow for a state change by `me`, checking existence and party.
fn for_action<'a>(
    w: &'a mut World,
    id: &str,
    allowed: impl Fn(&Escrow) -> bool,
    who: &str,
) -> Result<&'a mut Escrow, ApiError> {
    let escrow = w
        .escrow
        .escrows
        .get_mut(id)
        .ok_or_else(|| ApiError::new(404, "not_found").msg(format!("No escrow '{id}'")))?;
    if !allowed(escrow) {
        return Err(ApiError::new(403, "forbidden").msg(format!("Only the {who} can do this")));
    }
    Ok(escrow)
}

fn invalid_status(e: &Escrow, action: &str) -> ApiError {
    ApiError::new(409, "invalid_status")
        .msg(format!(
            "Cannot {action} an escrow in status '{}'",
            e.status.name()
        ))
        .with("status", e.status.name())
}

async fn complete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, cx| {
        let me = w.casino.authenticate(&headers, Service::Escrow)?;
        let e = for_action(w, &id, |e| e.counterparty == me, "counterparty")?;
        if e.status != Status::Funded {
            return Err(invalid_status(e, "complete"));
        }
        e.status = Status::Completed;
        e.completed_at = Some(cx.now);
        e.event("completed", &me, cx.now);
        ok(json!({
            "escrow_id": e.id,
            "status": "completed",
            "completed_at": iso(cx.now),
            "auto_release_at": iso(e.auto_release_at),
            "message": "Marked complete; waiting for the creator to release",
        }))
    })
}

async fn release(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, cx| {
        let me = w.casino.authenticate(&headers, Service::Escrow)?;
        let e = for_action(w, &id, |e| e.creator == me, "creator")?;
        if !e.status.sweepable() {
            return Err(invalid_status(e, "release"));
        }
        e.status = Status::Released;
        e.released_at = Some(cx.now);
        e.event("released", &me, cx.now);
        let (counterparty, net, commission, referrer) = (
            e.counterparty.clone(),
            e.net(),
            e.commission,
            e.referrer.clone(),
        );
        w.casino.adjust(
            &counterparty,
            net,
            &format!("escrow_release:{id}"),
            "escrow",
            cx.now,
        );
        let referral_paid = referrer.map(|r| {
            let share = round6(commission * REFERRER_SHARE);
            w.casino.adjust(
                &r,
                share,
                &format!("escrow_referral:{id}"),
                "escrow",
                cx.now,
            );
            share
        });
        ok(json!({
            "escrow_id": id,
            "status": "released",
            "amount_released": net,
            "commission": commission,
            "counterparty_id": counterparty,
            "referral_commission": referral_paid,
            "released_at": iso(cx.now),
        }))
    })
}

async fn dispute(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.run(|w, cx| {
        let me = w.casino.authenticate(&headers, Service::Escrow)?;
        let body = parse_body(&body, BadJson::InvalidJson)?;
        let reason = text(&body, "reason").map(str::to_owned);
        let e = for_action(
            w,
            &id,
            |e| e.creator == me || e.counterparty == me,
            "creator or the counterparty",
        )?;
        if !e.status.sweepable() {
            return Err(invalid_status(e, "dispute"));
        }
        e.status = Status::Disputed;
        e.disputed_at = Some(cx.now);
        e.dispute_reason.clone_from(&reason);
        e.event("disputed", &me, cx.now);
        ok(json!({
            "escrow_id": id,
            "status": "disputed",
            "disputed_at": iso(cx.now),
            "reason": reason,
            "message": "Dispute opened; funds stay locked until it is resolved manually",
        }))
    })
}

async fn get_escrow(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    st.run(|w, _cx| {
        let viewer = w.casino.authenticate(&headers, Service::Escrow).ok();
        let e = w
            .escrow
            .escrows
            .get(&id)
            .ok_or_else(|| ApiError::new(404, "not_found").msg(format!("No escrow '{id}'")))?;
        let participant = viewer.is_some_and(|v| v == e.creator || v == e.counterparty);
        ok(e.view(participant))
    })
}

async fn stats(State(st): State<AppState>) -> Response {
    st.run(|w, _cx| {
        let mut by_status = BTreeMap::<&str, u64>::new();
        let mut volume = 0.0;
        for e in w.escrow.escrows.values() {
            *by_status.entry(e.status.name()).or_default() += 1;
            volume += e.amount;
        }
        ok(json!({
            "total_escrows": w.escrow.escrows.len(),
            "by_status": by_status,
            "total_volume_usd": round6(volume),
            "commission_rate": COMMISSION,
        }))
    })
}
