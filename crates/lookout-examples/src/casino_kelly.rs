//! `casino_kelly`: a casino bettor that stays inside the Kelly limit and checks every result
//! is provably fair.
//!
//! Each cycle it reads `GET /kelly/limits`, stakes half the dice limit (never more than 2 %
//! of the bankroll; a risk-check breadcrumb records the decision), and rolls dice over 50
//! with its own client seed. Every [`VERIFY_EVERY`] bets it rotates the server seed, which
//! reveals the old one, and recomputes each bet itself: the seed must hash to the
//! `server_seed_hash` the bets were placed under, and HMAC-SHA256(seed, `client_seed:nonce`)
//! must give the recorded `result_hash` and roll. The casino's own `verify` endpoint is asked
//! too. A mismatch is captured as a `FairnessViolation` error and the bettor stops betting.
//!
//! The scheduled job (cron monitor `casino-kelly-recalibrate`) re-reads the balance and sets
//! the Kelly risk factor from the session's results.

use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use lookout_agent::breadcrumbs::RiskCheck;
use lookout_agent::{
    Options, Phase, Service as AgentService, TradingError, TradingErrorKind, TradingSnapshot,
};
use purpleflea_client::casino::{Bet, BetResult, Direction};
use purpleflea_client::{Client, RegisterRequest, Service};
use sha2::{Digest, Sha256};

use crate::common::{AgentConfig, ExampleError, Monitor, RunSummary, Shutdown, capture, on_hub};

/// The strategy name (tag `strategy`).
pub const STRATEGY: &str = "casino-kelly";
/// The bankroll deposited by default in the sandbox.
pub const DEFAULT_FUNDING_USD: f64 = 200.0;
/// Bets between two fairness audits (seed rotations).
pub const VERIFY_EVERY: usize = 10;
/// Share of the Kelly limit staked.
const KELLY_SHARE: f64 = 0.5;
/// Largest share of the bankroll on one bet.
const MAX_BANKROLL_SHARE: f64 = 0.02;

#[derive(Debug, Default)]
struct Shared {
    bankroll: Option<f64>,
    bets: u64,
    wins: u64,
    last_bet: Option<String>,
}

/// The provably-fair roll: (hex HMAC-SHA256(key = server seed, `client_seed:nonce`), roll in
/// 0.00–99.99).
pub fn fair_roll(server_seed: &str, client_seed: &str, nonce: u64) -> (String, f64) {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(server_seed.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return (String::new(), f64::NAN),
    };
    mac.update(format!("{client_seed}:{nonce}").as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());
    let roll = hash
        .get(..8)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .map_or(f64::NAN, |n| (n % 10_000) as f64 / 100.0);
    (hash, roll)
}

/// Whether a revealed seed and a bet agree: the seed hashes to the bet's `server_seed_hash`,
/// and the recomputed result hash and roll match the recorded ones.
pub fn verify_bet(server_seed: &str, client_seed: &str, result: &BetResult) -> Result<(), String> {
    let Some(proof) = &result.proof else {
        return Err(format!("bet {} came without a proof", result.bet_id));
    };
    let seed_hash = hex::encode(Sha256::digest(server_seed.as_bytes()));
    if seed_hash != proof.server_seed_hash {
        return Err(format!(
            "bet {}: revealed seed hashes to {seed_hash}, bet was placed under {}",
            result.bet_id, proof.server_seed_hash
        ));
    }
    let (hash, roll) = fair_roll(server_seed, client_seed, proof.nonce);
    if hash != proof.result_hash {
        return Err(format!(
            "bet {}: result hash {hash} != recorded {}",
            result.bet_id, proof.result_hash
        ));
    }
    if result.result.roll.is_some_and(|r| (r - roll).abs() > 1e-9) {
        return Err(format!(
            "bet {}: roll {roll} != recorded {:?}",
            result.bet_id, result.result.roll
        ));
    }
    Ok(())
}

/// Run the bettor until `shutdown`. See the [module docs](self).
pub async fn run(config: AgentConfig, shutdown: Shutdown) -> Result<RunSummary, ExampleError> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let provider = Arc::clone(&shared);
    let options = Options::new(config.agent_id.clone())
        .strategy(STRATEGY)
        .state_provider(move || {
            let s = provider
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut snap = TradingSnapshot::new()
                .asset("USD")
                .field("bets", s.bets)
                .field("wins", s.wins);
            if let Some(b) = s.bankroll {
                snap = snap.portfolio_value_usd(b);
            }
            if let Some(bet) = &s.last_bet {
                snap = snap.last_order_id(bet.clone());
            }
            snap
        });
    let monitor = Monitor::start(&config, options);
    let hub = Arc::clone(&monitor.hub);
    on_hub(&hub, play(config, shutdown, monitor, shared)).await
}

async fn play(
    config: AgentConfig,
    mut shutdown: Shutdown,
    monitor: Monitor,
    shared: Arc<Mutex<Shared>>,
) -> Result<RunSummary, ExampleError> {
    let anon = config.client()?;
    let registration = anon.casino().register(&RegisterRequest::new()).await?;
    config
        .controls
        .publish_account("casino", &registration.agent_id);
    let funding = config.funding_usd.unwrap_or(DEFAULT_FUNDING_USD);
    if funding > 0.0 {
        config
            .admin()
            .deposit("casino", &registration.agent_id, funding)
            .await?;
    }
    let client = anon.with_api_key(Service::Casino, &registration.api_key)?;

    let session = monitor.session(&config).await;
    let recalibration = {
        let client = client.clone();
        let shared = Arc::clone(&shared);
        monitor.schedule(
            &config,
            "casino-kelly-recalibrate",
            move || recalibrate(client.clone(), Arc::clone(&shared)),
            shutdown.clone(),
        )?
    };

    let mut summary = RunSummary::default();
    let mut unverified: Vec<(String, BetResult)> = Vec::new();
    let mut halted = false;
    loop {
        session.tick();
        if config.controls.take_crash() {
            panic!("casino_kelly: bankroll went negative (simulated crash)");
        }
        summary.cycles += 1;
        if !halted {
            match bet_once(&client, &config.agent_id, summary.cycles, &shared).await {
                Ok(Some(placed)) => {
                    summary.actions += 1;
                    unverified.push(placed);
                }
                Ok(None) => {}
                Err(error) => {
                    summary.errors += 1;
                    tracing::warn!(agent = %config.agent_id, %error, "bet failed");
                }
            }
            if unverified.len() >= VERIFY_EVERY {
                if let Err(error) = audit(&client, &unverified).await {
                    summary.errors += 1;
                    lookout_agent::capture_trading_error(&error);
                    tracing::error!(agent = %config.agent_id, %error, "fairness audit failed: betting halted");
                    halted = true;
                }
                unverified.clear();
            }
        }
        if shutdown.sleep(config.cycle).await {
            break;
        }
    }
    drop(recalibration);
    session.end();
    monitor.flush().await;
    Ok(summary)
}

/// One bet inside the Kelly limit; `None` when the limit leaves nothing to stake.
async fn bet_once(
    client: &Client,
    agent_id: &str,
    n: u64,
    shared: &Arc<Mutex<Shared>>,
) -> Result<Option<(String, BetResult)>, TradingError> {
    let limits = client.casino().kelly_limits().await.map_err(capture)?;
    let bankroll = limits.bankroll.unwrap_or(0.0);
    let max_bet = limits.limits.get("dice").map_or(0.0, |l| l.max_bet);
    let stake = (max_bet * KELLY_SHARE).min(bankroll * MAX_BANKROLL_SHARE);
    let stake = (stake * 100.0).floor() / 100.0;
    let ok = stake >= 0.01 && stake <= max_bet;
    RiskCheck::new("kelly_max_bet", ok, stake, max_bet).record();
    if let Ok(mut s) = shared.lock() {
        s.bankroll = Some(bankroll);
    }
    if !ok {
        return Ok(None);
    }
    let client_seed = format!("{agent_id}-{n}");
    let bet = Bet::dice(stake, Direction::Over, 50.0).with_client_seed(client_seed.clone());
    let result = client.casino().play(&bet).await.map_err(capture)?;
    if let Ok(mut s) = shared.lock() {
        s.bets += 1;
        s.wins += u64::from(result.won);
        s.bankroll = result.new_balance.or(s.bankroll);
        s.last_bet = Some(result.bet_id.clone());
    }
    Ok(Some((client_seed, result)))
}

/// Rotate the seed (revealing the old one) and recompute every bet placed under it.
async fn audit(client: &Client, bets: &[(String, BetResult)]) -> Result<(), TradingError> {
    let rotation = client.casino().rotate_seed().await.map_err(capture)?;
    let seed = &rotation.previous_seed.server_seed;
    let violation = |message: String| {
        TradingError::new(TradingErrorKind::Other("FairnessViolation".into()), message)
            .with_service(AgentService::Casino)
            .with_phase(Phase::Confirmation)
    };
    for (client_seed, result) in bets {
        // Bets under an earlier seed were audited at the rotation before.
        if result
            .proof
            .as_ref()
            .is_some_and(|p| p.server_seed_hash != rotation.previous_seed.server_seed_hash)
        {
            continue;
        }
        verify_bet(seed, client_seed, result).map_err(violation)?;
    }
    if let Some((_, first)) = bets.first() {
        let verdict = client
            .casino()
            .verify_bet(&first.bet_id)
            .await
            .map_err(capture)?;
        if !verdict.verified {
            return Err(violation(format!(
                "the casino's verify endpoint rejects bet {} ({:?})",
                first.bet_id, verdict.status
            )));
        }
    }
    Ok(())
}

/// The scheduled job: set the Kelly risk factor from the session's win rate.
async fn recalibrate(client: Client, shared: Arc<Mutex<Shared>>) -> Result<(), TradingError> {
    let balance = client.casino().balance().await.map_err(capture)?;
    let (bets, wins) = shared.lock().map(|s| (s.bets, s.wins)).unwrap_or((0, 0));
    // Quarter Kelly by default; a cold streak (win rate under 40 %) halves it.
    let factor = if bets >= 20 && (wins as f64) < 0.4 * bets as f64 {
        0.125
    } else {
        0.25
    };
    client
        .casino()
        .set_risk_factor(factor)
        .await
        .map_err(capture)?;
    if let Ok(mut s) = shared.lock() {
        s.bankroll = Some(balance.balance_usd);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roll_is_the_first_eight_hex_digits_mod_10000() {
        let (hash, roll) = fair_roll("00ff", "seed", 3);
        assert_eq!(hash.len(), 64);
        let n = u64::from_str_radix(&hash[..8], 16).unwrap_or_default();
        assert!((roll - (n % 10_000) as f64 / 100.0).abs() < 1e-12);
        assert!((0.0..100.0).contains(&roll));
    }
}
