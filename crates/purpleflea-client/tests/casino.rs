//! Casino and faucet through the client against the sandbox: every method, provably-fair
//! results recomputed here, and every documented error code mapped to its kind.

mod common;

use common::{casino_agent, client, expect_kind, keyed, sandbox};
use hmac::{Hmac, Mac};
use purpleflea_client::casino::{
    BatchEntry, Bet, CoinSide, Direction, Game, ManualVerification, PlinkoRisk,
};
use purpleflea_client::faucet::ClaimRequest;
use purpleflea_client::{ErrorKind, RegisterRequest, Service};
use purpleflea_sandbox::SandboxConfig;
use sha2::{Digest, Sha256};

/// The provably-fair roll, computed independently of client and sandbox.
fn roll(seed_hex: &str, client_seed: &str, nonce: u64) -> (String, f64) {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed_hex.as_bytes()).expect("any key length");
    mac.update(format!("{client_seed}:{nonce}").as_bytes());
    let hash = hex::encode(mac.finalize().into_bytes());
    let n = u64::from_str_radix(&hash[..8], 16).expect("hex");
    (hash, (n % 10_000) as f64 / 100.0)
}

#[tokio::test]
async fn casino_flow_with_provably_fair_results_recomputed() {
    let handle = sandbox(SandboxConfig::for_tests(11)).await;
    let anon = client(&handle);

    let games = anon.casino().games().await.expect("games");
    assert!(
        games
            .games
            .iter()
            .any(|g| g.slug.as_deref() == Some("coin-flip"))
    );

    let reg = anon
        .casino()
        .register(&RegisterRequest::new())
        .await
        .expect("register");
    assert!(reg.api_key.starts_with("sk_live_"), "{reg:?}");
    assert!(
        !format!("{reg:?}").contains(&reg.api_key),
        "Debug leaks the key"
    );
    let c = keyed(&anon, Service::Casino, &reg.api_key);

    let balance = c.casino().balance().await.expect("balance");
    assert_eq!(balance.agent_id, reg.agent_id);
    assert!(
        (balance.balance_usd - 1.0).abs() < 1e-9,
        "faucet auto-claim"
    );
    handle
        .sandbox()
        .deposit(purpleflea_sandbox::Service::Casino, &reg.agent_id, 1_000.0)
        .expect("deposit");

    let addr = c.casino().deposit_address(None).await.expect("address");
    assert_eq!(addr.chain, "base");
    let again = c
        .casino()
        .deposit_address(Some("base"))
        .await
        .expect("again");
    assert_eq!(again.address, addr.address);

    let kelly = c.casino().set_risk_factor(1.0).await.expect("kelly config");
    assert!((kelly.risk_factor - 1.0).abs() < 1e-9);
    let limits = c.casino().kelly_limits().await.expect("limits");
    assert!(limits.limits["dice"].max_bet > 100.0, "{limits:?}");

    let active = c.casino().seed_hash().await.expect("seed hash");
    assert_eq!(active.nonce, Some(0));

    let bets = [
        Bet::coin_flip(1.0, CoinSide::Heads),
        Bet::dice(1.0, Direction::Over, 50.0),
        Bet::new(
            1.0,
            Game::Multiplier {
                target_multiplier: 2.0,
            },
        ),
        Bet::new(1.0, Game::Crash { cash_out_at: 1.5 }),
        Bet::new(
            1.0,
            Game::Roulette {
                bet_type: "red".into(),
                bet_value: None,
            },
        ),
        Bet::new(
            0.5,
            Game::Roulette {
                bet_type: "number".into(),
                bet_value: Some(17),
            },
        ),
        Bet::new(
            1.0,
            Game::Custom {
                win_probability: 30.0,
            },
        ),
        Bet::new(
            1.0,
            Game::Plinko {
                rows: 8,
                risk: PlinkoRisk::Low,
            },
        ),
    ];
    let mut placed = Vec::new();
    for (i, bet) in bets.into_iter().enumerate() {
        let bet = bet.with_client_seed(format!("lookout-{i}"));
        let result = c.casino().play(&bet).await.expect("bet placed");
        let proof = result.proof.clone().expect("proof");
        assert_eq!(proof.server_seed_hash, active.server_seed_hash);
        assert_eq!(proof.nonce, i as u64);
        placed.push((bet, result));
    }

    let batch = c
        .casino()
        .batch(&[
            Bet::dice(0.5, Direction::Under, 40.0),
            Bet::new(
                0.5,
                Game::Other {
                    slug: "no-such-game".into(),
                    params: Default::default(),
                },
            ),
        ])
        .await
        .expect("batch");
    assert_eq!(batch.results.len(), 2);
    assert!(matches!(batch.results[0], BatchEntry::Placed(_)));
    match &batch.results[1] {
        BatchEntry::Failed(f) => assert_eq!(
            (f.error.as_str(), f.kind()),
            ("invalid_game", ErrorKind::Game)
        ),
        other => panic!("expected a failed entry, got {other:?}"),
    }
    assert_eq!(batch.summary.as_ref().and_then(|s| s.failed), Some(1));

    let history = c.casino().history(Some(5)).await.expect("history");
    assert_eq!(history.bets.len(), 5);

    let first = &placed[0].1.bet_id;
    let pending = c.casino().verify_bet(first).await.expect("verify");
    assert!(pending.seed_not_yet_revealed() && !pending.verified);
    let audit = c.casino().audit(first).await.expect("audit");
    assert_eq!(audit.seed_status.as_deref(), Some("active"));

    let rotation = c.casino().rotate_seed().await.expect("rotate");
    let seed = rotation.previous_seed.server_seed.clone();
    assert_eq!(
        hex::encode(Sha256::digest(seed.as_bytes())),
        active.server_seed_hash
    );
    assert_ne!(
        rotation.new_server_seed_hash.as_deref(),
        Some(active.server_seed_hash.as_str())
    );

    // Every single bet, recomputed here from the revealed seed.
    for (bet, result) in &placed {
        let proof = result.proof.as_ref().expect("proof");
        let (hash, r) = roll(&seed, bet.client_seed.as_deref().unwrap_or(""), proof.nonce);
        assert_eq!(hash, proof.result_hash, "{}", result.bet_id);
        assert_eq!(result.result.roll, Some(r), "{}", result.bet_id);
        match &bet.game {
            Game::CoinFlip { .. } => assert_eq!(result.won, r < 50.0),
            Game::Dice { threshold, .. } => {
                let value = r.floor() + 1.0;
                assert_eq!(result.result.fields["value"].as_f64(), Some(value));
                assert_eq!(result.won, value > *threshold);
            }
            Game::Custom { win_probability } => assert_eq!(result.won, r < *win_probability),
            _ => {}
        }
    }

    let verified = c.casino().verify_bet(first).await.expect("verify");
    assert!(verified.verified, "{verified:?}");
    let proof = verified.proof.expect("proof");
    assert_eq!(proof.computed_result, placed[0].1.result.roll);
    let manual = c
        .casino()
        .verify_manual(&ManualVerification {
            server_seed: seed.clone(),
            server_seed_hash: Some(active.server_seed_hash.clone()),
            client_seed: "lookout-1".into(),
            nonce: 1,
        })
        .await
        .expect("manual verify");
    assert!(manual.verified);
    assert_eq!(
        manual.proof.and_then(|p| p.computed_result),
        placed[1].1.result.roll
    );
    let seeds = c.casino().seeds().await.expect("seeds");
    assert!(
        seeds
            .seeds
            .iter()
            .any(|s| s.server_seed.as_deref() == Some(seed.as_str()))
    );

    let withdrawal = c
        .casino()
        .withdraw(5.0, "0x1111111111111111111111111111111111111111")
        .await
        .expect("withdraw");
    assert_eq!(withdrawal.status, "completed");
    assert!(withdrawal.tx_hash.is_some());
}

#[tokio::test]
async fn casino_error_codes_map_to_kinds() {
    let handle = sandbox(SandboxConfig::for_tests(12)).await;
    let anon = client(&handle);
    let (c, _) = casino_agent(&handle, &anon, 100.0).await;
    let casino = c.casino();

    let e = expect_kind(
        casino.play(&Bet::dice(0.001, Direction::Over, 50.0)).await,
        ErrorKind::Game,
        Some("minimum_bet"),
    );
    assert_eq!(e.context().game.as_deref(), Some("dice"));
    expect_kind(
        casino.play(&Bet::dice(0.0, Direction::Over, 50.0)).await,
        ErrorKind::Game,
        Some("invalid_amount"),
    );
    expect_kind(
        casino.play(&Bet::dice(1.0, Direction::Over, 150.0)).await,
        ErrorKind::Game,
        Some("invalid_threshold"),
    );
    expect_kind(
        casino
            .play(&Bet::new(
                1.0,
                Game::Other {
                    slug: "nope".into(),
                    params: Default::default(),
                },
            ))
            .await,
        ErrorKind::Game,
        Some("game_not_found"),
    );
    expect_kind(
        casino.play(&Bet::coin_flip(5_000.0, CoinSide::Tails)).await,
        ErrorKind::InsufficientBalance,
        Some("insufficient_balance"),
    );
    let e = expect_kind(
        casino.play(&Bet::coin_flip(90.0, CoinSide::Tails)).await,
        ErrorKind::InsufficientBalance,
        Some("kelly_limit_exceeded"),
    );
    assert!(e.body_json().and_then(|b| b.get("max_bet")).is_some());
    expect_kind(
        casino.set_risk_factor(5.0).await,
        ErrorKind::Api,
        Some("invalid_risk_factor"),
    );
    expect_kind(
        casino.deposit_address(Some("dogecoin")).await,
        ErrorKind::Api,
        Some("unsupported_chain"),
    );
    expect_kind(
        casino.verify_bet("bet_missing").await,
        ErrorKind::Api,
        Some("bet_not_found"),
    );
    expect_kind(
        casino
            .withdraw(0.5, "0x1111111111111111111111111111111111111111")
            .await,
        ErrorKind::Api,
        Some("minimum_withdrawal"),
    );
    expect_kind(
        casino
            .withdraw(200_000.0, "0x1111111111111111111111111111111111111111")
            .await,
        ErrorKind::Api,
        Some("maximum_withdrawal"),
    );
    expect_kind(
        casino
            .withdraw(-1.0, "0x1111111111111111111111111111111111111111")
            .await,
        ErrorKind::Api,
        Some("invalid_amount"),
    );
    expect_kind(
        casino.withdraw(2.0, "not-an-address").await,
        ErrorKind::Api,
        Some("invalid_address"),
    );
    expect_kind(
        casino
            .withdraw(500.0, "0x1111111111111111111111111111111111111111")
            .await,
        ErrorKind::InsufficientBalance,
        Some("insufficient_balance"),
    );

    // Someone else's bet.
    let (other, _) = casino_agent(&handle, &anon, 10.0).await;
    let bet = other
        .casino()
        .play(&Bet::coin_flip(0.5, CoinSide::Heads))
        .await
        .expect("bet");
    expect_kind(
        casino.audit(&bet.bet_id).await,
        ErrorKind::Unauthorized,
        Some("forbidden"),
    );

    // Unknown key, and no key at all (nothing sent).
    let wrong = keyed(
        &anon,
        Service::Casino,
        &format!("sk_live_{}", "0".repeat(48)),
    );
    let e = expect_kind(
        wrong.casino().balance().await,
        ErrorKind::Unauthorized,
        Some("unauthorized"),
    );
    assert_eq!(e.status(), Some(401));
    let e = expect_kind(anon.casino().balance().await, ErrorKind::Unauthorized, None);
    assert_eq!(e.attempts(), 0);
}

#[tokio::test]
async fn casino_rate_limits_map_to_rate_limited() {
    let handle = sandbox(SandboxConfig::for_tests(13)).await;
    let anon = client(&handle);
    let (c, _) = casino_agent(&handle, &anon, 100.0).await;
    // 60 bets per agent per minute, across games (each game path has its own 60/IP).
    for i in 0..60 {
        let bet = if i % 2 == 0 {
            Bet::coin_flip(0.01, CoinSide::Heads)
        } else {
            Bet::dice(0.01, Direction::Over, 50.0)
        };
        c.casino().play(&bet).await.expect("within the limit");
    }
    let e = expect_kind(
        c.casino()
            .play(&Bet::new(
                0.01,
                Game::Custom {
                    win_probability: 50.0,
                },
            ))
            .await,
        ErrorKind::RateLimited,
        Some("rate_limit_exceeded"),
    );
    assert_eq!(e.attempts(), 1);
    // Registration: 10 per minute per IP (code style: no headers).
    for _ in 0..9 {
        anon.casino()
            .register(&RegisterRequest::new())
            .await
            .expect("register");
    }
    let e = expect_kind(
        anon.casino().register(&RegisterRequest::new()).await,
        ErrorKind::RateLimited,
        Some("rate_limited"),
    );
    assert_eq!(e.status(), Some(429));
    let state = anon
        .rate_limit(Service::Casino)
        .expect("rate-limit state recorded");
    assert!(state.limited);
}

#[tokio::test]
async fn faucet_claims_and_their_errors() {
    // Per-IP limit on: the first claim succeeds, the next one from this IP is ip_rate_limited.
    let handle = sandbox(SandboxConfig::for_tests(14).auto_faucet_claim(false)).await;
    let anon = client(&handle);
    let (_, a) = casino_agent(&handle, &anon, 0.0).await;
    let (_, b) = casino_agent(&handle, &anon, 0.0).await;
    let claim = anon
        .faucet()
        .claim(&ClaimRequest::new(&a))
        .await
        .expect("claim");
    assert!((claim.credited - 1.0).abs() < 1e-9);
    assert_eq!(claim.agent_id.as_deref(), Some(a.as_str()));
    assert!(claim.claim_id.is_some());
    // Even with the default retry policy, a 24 h limit is not retried.
    let retrying = common::builder(&handle)
        .retry_policy(purpleflea_client::RetryPolicy::default())
        .build()
        .expect("client");
    let e = expect_kind(
        retrying.faucet().claim(&ClaimRequest::new(&b)).await,
        ErrorKind::RateLimited,
        Some("ip_rate_limited"),
    );
    assert_eq!(e.attempts(), 1);
    let state = retrying
        .rate_limit(Service::Faucet)
        .expect("rate-limit state");
    assert!(
        state.limited && state.reset_at.is_some(),
        "the body's retry_after time is read"
    );
    let stats = anon.faucet().stats().await.expect("stats");
    assert_eq!(stats.total_claims, Some(1));

    // Without the per-IP limit: already_claimed, has_deposits, agent_not_found, invalid_request.
    let handle = sandbox(
        SandboxConfig::for_tests(15)
            .auto_faucet_claim(false)
            .rate_limits(false),
    )
    .await;
    let anon = client(&handle);
    let (_, y) = casino_agent(&handle, &anon, 0.0).await;
    let (_, rich) = casino_agent(&handle, &anon, 5.0).await;
    anon.faucet()
        .claim(&ClaimRequest::new(&y))
        .await
        .expect("first claim");
    expect_kind(
        anon.faucet().claim(&ClaimRequest::new(&y)).await,
        ErrorKind::AlreadyClaimed,
        Some("already_claimed"),
    );
    expect_kind(
        anon.faucet().claim(&ClaimRequest::new(&rich)).await,
        ErrorKind::AlreadyClaimed,
        Some("has_deposits"),
    );
    expect_kind(
        anon.faucet()
            .claim(&ClaimRequest::new("ag_000000000000"))
            .await,
        ErrorKind::Api,
        Some("agent_not_found"),
    );
    expect_kind(
        anon.faucet().claim(&ClaimRequest::new("bogus")).await,
        ErrorKind::Api,
        Some("invalid_request"),
    );
}
