//! Casino against a live sandbox: accounts, games, provably fair (recomputed here), Kelly,
//! batch, history, withdrawals, rate limits.

mod common;

use common::{Env, close, prefixed_hex};
use hmac::{Hmac, Mac};
use purpleflea_sandbox::{SandboxConfig, Service};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const C: Service = Service::Casino;

/// Our own computation of the scheme: HMAC-SHA256 keyed by the seed's hex text.
fn hmac_hex(seed_hex: &str, client_seed: &str, nonce: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed_hex.as_bytes()).expect("any key length");
    mac.update(format!("{client_seed}:{nonce}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn roll_of(hash: &str) -> f64 {
    (u64::from_str_radix(&hash[..8], 16).expect("hex") % 10_000) as f64 / 100.0
}

#[tokio::test]
async fn register_returns_documented_account_and_faucet_credits_one_dollar() {
    let env = Env::new().await;
    let r = env
        .post(C, "/auth/register", None, json!({}))
        .await
        .expect_ok(201);
    let b = &r.body;
    assert!(
        prefixed_hex(b["api_key"].as_str().unwrap_or(""), "sk_live_", 48),
        "{b}"
    );
    assert!(
        prefixed_hex(b["agent_id"].as_str().unwrap_or(""), "ag_", 12),
        "{b}"
    );
    assert!(
        prefixed_hex(b["referral_code"].as_str().unwrap_or(""), "ref_", 8),
        "{b}"
    );
    assert_eq!(b["balance"], 0.0);
    assert_eq!(b["tier"], "free");
    assert_eq!(b["risk_factor"], 0.25);
    assert_eq!(b["_info"]["service"], "agent-casino");

    let key = b["api_key"].as_str().unwrap_or_default();
    let bal = env.get(C, "/auth/balance", Some(key)).await.expect_ok(200);
    assert_eq!(
        bal.body["balance_usd"], 1.0,
        "the registration fired the $1 faucet claim"
    );
    assert_eq!(bal.body["recent_activity"][0]["service"], "faucet");
    assert!(bal.body["lifetime"].is_object());
}

#[tokio::test]
async fn auth_errors_are_flat_401s() {
    let env = Env::new().await;
    env.get(C, "/auth/balance", None)
        .await
        .expect_err(401, "unauthorized");
    env.get(
        C,
        "/auth/balance",
        Some(&format!("sk_live_{}", "0".repeat(48))),
    )
    .await
    .expect_err(401, "unauthorized");
    let r = env
        .http
        .get(env.url(C, "/auth/balance"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    // X-API-Key is not read by any service.
    let (_, key) = env.casino_agent().await;
    let r = env
        .http
        .get(env.url(C, "/auth/balance"))
        .header("x-api-key", key)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn bad_json_is_a_400_never_a_500() {
    let env = Env::new().await;
    let (_, key) = env.casino_agent().await;
    let r = env
        .post_raw(C, "/games/coin-flip", Some(&key), "{\"amount\": ")
        .await;
    r.expect_err(400, "invalid_json");
    env.post_raw(C, "/auth/register", None, "not json")
        .await
        .expect_err(400, "invalid_json");
    // Wrong types are validation errors, not crashes.
    env.post(
        C,
        "/games/dice",
        Some(&key),
        json!({"amount": "1", "direction": "over", "threshold": 50}),
    )
    .await
    .expect_err(400, "invalid_amount");
    env.post(C, "/games/dice", Some(&key), json!([1, 2, 3]))
        .await
        .expect_err(400, "invalid_amount");
    env.get(C, "/no/such/route", None)
        .await
        .expect_err(404, "not_found");
}

#[tokio::test]
async fn every_documented_bet_error() {
    let env = Env::new().await;
    let (_, key) = env.casino_agent().await; // balance $1
    let k = Some(key.as_str());
    env.post(
        C,
        "/games/coin-flip",
        k,
        json!({"amount": -1, "side": "heads"}),
    )
    .await
    .expect_err(400, "invalid_amount");
    env.post(
        C,
        "/games/coin-flip",
        k,
        json!({"amount": 0.001, "side": "heads"}),
    )
    .await
    .expect_err(400, "minimum_bet");
    env.post(
        C,
        "/games/coin-flip",
        k,
        json!({"amount": 0.1, "side": "edge"}),
    )
    .await
    .expect_err(400, "invalid_side");
    env.post(
        C,
        "/games/dice",
        k,
        json!({"amount": 0.1, "direction": "over", "threshold": 100}),
    )
    .await
    .expect_err(400, "invalid_threshold");
    env.post(
        C,
        "/games/dice",
        k,
        json!({"amount": 0.1, "direction": "sideways", "threshold": 50}),
    )
    .await
    .expect_err(400, "invalid_direction");
    env.post(
        C,
        "/games/multiplier",
        k,
        json!({"amount": 0.1, "target_multiplier": 1.0}),
    )
    .await
    .expect_err(400, "invalid_target_multiplier");
    env.post(
        C,
        "/games/crash",
        k,
        json!({"amount": 0.1, "cash_out_at": 101}),
    )
    .await
    .expect_err(400, "invalid_cash_out_at");
    env.post(
        C,
        "/games/roulette",
        k,
        json!({"amount": 0.1, "bet_type": "number", "bet_value": 37}),
    )
    .await
    .expect_err(400, "invalid_bet_value");
    env.post(
        C,
        "/games/roulette",
        k,
        json!({"amount": 0.1, "bet_type": "green"}),
    )
    .await
    .expect_err(400, "invalid_bet_type");
    env.post(
        C,
        "/games/custom",
        k,
        json!({"amount": 0.1, "win_probability": 0.5}),
    )
    .await
    .expect_err(400, "invalid_win_probability");
    env.post(C, "/games/plinko", k, json!({"amount": 0.1, "rows": 10}))
        .await
        .expect_err(400, "invalid_rows");
    let r = env
        .post(
            C,
            "/games/coin-flip",
            k,
            json!({"amount": 5, "side": "heads"}),
        )
        .await
        .expect_err(400, "insufficient_balance");
    assert_eq!(r.body["required"], 5.0);
    // Kelly: balance 1 × risk 0.25 × p 0.5 = 0.125 → max 0.13
    let r = env
        .post(
            C,
            "/games/coin-flip",
            k,
            json!({"amount": 0.5, "side": "heads"}),
        )
        .await
        .expect_err(400, "kelly_limit_exceeded");
    close(r.body["max_bet"].as_f64().unwrap_or(0.0), 0.13, 1e-9);
    assert!(r.body["kelly"].is_object());
    env.post(C, "/games/blackjack-deluxe", k, json!({"amount": 0.1}))
        .await
        .expect_err(404, "game_not_found");
}

#[tokio::test]
async fn bets_are_provably_fair_and_verifiable_after_rotation() {
    let env = Env::new().await;
    let (id, key) = env.casino_agent().await;
    env.deposit(C, &id, 1_000.0).await;
    let k = Some(key.as_str());

    let active = env.get(C, "/fairness/seed-hash", k).await.expect_ok(200);
    let committed_hash = active.body["server_seed_hash"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(active.body["nonce"], 0);

    let games = [
        (
            "dice",
            json!({"amount": 1, "direction": "over", "threshold": 50, "client_seed": "alpha"}),
        ),
        (
            "coin-flip",
            json!({"amount": 1, "side": "tails", "client_seed": "beta"}),
        ),
        (
            "custom",
            json!({"amount": 1, "win_probability": 30, "client_seed": "gamma"}),
        ),
        (
            "crash",
            json!({"amount": 1, "cash_out_at": 1.5, "client_seed": "delta"}),
        ),
        (
            "roulette",
            json!({"amount": 1, "bet_type": "red", "client_seed": "eps"}),
        ),
        (
            "plinko",
            json!({"amount": 1, "rows": 8, "risk": "low", "client_seed": "zeta"}),
        ),
        (
            "multiplier",
            json!({"amount": 1, "target_multiplier": 3, "client_seed": "eta"}),
        ),
    ];
    let mut bets = Vec::new();
    for (i, (slug, body)) in games.iter().enumerate() {
        let r = env
            .post(C, &format!("/games/{slug}"), k, body.clone())
            .await
            .expect_ok(200);
        let proof = &r.body["proof"];
        assert_eq!(proof["server_seed_hash"], committed_hash.as_str());
        assert_eq!(
            proof["nonce"], i as u64,
            "nonces start at 0 and increment per bet"
        );
        assert_eq!(proof["client_seed"], body["client_seed"]);
        bets.push(r.body);
    }
    // An unrevealed seed cannot be verified yet.
    let first_id = bets[0]["bet_id"].as_str().unwrap_or_default().to_owned();
    assert!(first_id.starts_with("bet_"));
    let v = env
        .post(C, "/fairness/verify", k, json!({"bet_id": first_id}))
        .await
        .expect_ok(200);
    assert_eq!(v.body["status"], "seed_not_yet_revealed");

    let rot = env
        .post(C, "/fairness/rotate", k, json!({}))
        .await
        .expect_ok(200);
    let seed = rot.body["previous_seed"]["server_seed"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(seed.len(), 64);
    assert_eq!(
        hex::encode(Sha256::digest(seed.as_bytes())),
        committed_hash,
        "hash of the seed's hex text"
    );
    assert_ne!(rot.body["new_server_seed_hash"], committed_hash.as_str());

    for bet in &bets {
        let proof = &bet["proof"];
        let client_seed = proof["client_seed"].as_str().unwrap_or_default();
        let nonce = proof["nonce"].as_u64().unwrap_or(u64::MAX);
        let hash = hmac_hex(&seed, client_seed, nonce);
        assert_eq!(proof["result_hash"], hash.as_str());
        let roll = roll_of(&hash);
        close(bet["result"]["roll"].as_f64().unwrap_or(-1.0), roll, 1e-9);
        let amount = bet["amount_bet"].as_f64().unwrap_or(0.0);
        let won = bet["won"].as_bool().unwrap_or(false);
        let mult = bet["payout_multiplier"].as_f64().unwrap_or(0.0);
        // Outcome rules recomputed from the roll.
        match bet["game"].as_str().unwrap_or_default() {
            "dice" => {
                assert_eq!(won, roll.floor() + 1.0 > 50.0);
                close(mult, 1.99, 1e-9);
            }
            "coin-flip" => {
                assert_eq!(won, roll >= 50.0, "tails when roll >= 50");
                close(mult, 1.99, 1e-9);
            }
            "custom" => {
                assert_eq!(won, roll < 30.0);
                close(
                    mult,
                    ((100.0 / 30.0 * 0.995) * 10_000.0_f64).round() / 10_000.0,
                    1e-9,
                );
            }
            "crash" | "multiplier" => {
                let crash = if roll >= 99.99 {
                    10_000.0
                } else {
                    ((0.995 / (1.0 - roll / 100.0)) * 100.0_f64).round() / 100.0
                };
                close(
                    bet["result"]["crash_point"].as_f64().unwrap_or(-1.0),
                    crash,
                    1e-9,
                );
                let target = if bet["game"] == "crash" { 1.5 } else { 3.0 };
                assert_eq!(won, crash >= target);
            }
            "roulette" => {
                let n = (roll * 37.0 / 100.0).floor() as u64;
                assert_eq!(bet["result"]["number"], n);
                close(mult, 1.99, 1e-9);
            }
            "plinko" => {
                let rights = (0..8)
                    .filter(|i| {
                        roll_of(&hmac_hex(&seed, &format!("{client_seed}_row{i}"), nonce)) < 50.0
                    })
                    .count();
                assert_eq!(bet["result"]["slot"], rights);
                let table = [5.6, 2.1, 1.1, 1.0, 0.5, 1.0, 1.1, 2.1, 5.6];
                close(mult, table[rights], 1e-9);
                assert!(won, "plinko always reports won");
            }
            other => panic!("unexpected game {other}"),
        }
        let paid = if won {
            ((amount * mult) * 100.0_f64).round() / 100.0
        } else {
            0.0
        };
        close(bet["amount_won"].as_f64().unwrap_or(-1.0), paid, 1e-9);

        let v = env
            .post(C, "/fairness/verify", k, json!({"bet_id": bet["bet_id"]}))
            .await
            .expect_ok(200);
        assert_eq!(v.body["verified"], true, "{}", v.text);
        assert_eq!(v.body["proof"]["hash_matches"], true);
        close(
            v.body["proof"]["computed_result"].as_f64().unwrap_or(-1.0),
            roll,
            1e-9,
        );
    }

    // Manual verification form.
    let p = &bets[1]["proof"];
    let v = env
        .post(
            C,
            "/fairness/verify",
            k,
            json!({
                "server_seed": seed, "server_seed_hash": committed_hash,
                "client_seed": p["client_seed"], "nonce": p["nonce"],
            }),
        )
        .await
        .expect_ok(200);
    assert_eq!(v.body["verified"], true);
    assert_eq!(v.body["proof"]["result_hash"], p["result_hash"]);

    // Seeds list and audit.
    let seeds = env.get(C, "/fairness/seeds", k).await.expect_ok(200);
    assert_eq!(seeds.body["seeds"][1]["server_seed"], seed.as_str());
    assert_eq!(seeds.body["seeds"][0]["status"], "active");
    let audit = env
        .get(C, &format!("/fairness/audit/{first_id}"), k)
        .await
        .expect_ok(200);
    assert_eq!(audit.body["proof"]["server_seed"], seed.as_str());

    // Another agent cannot see these bets; unknown bets are 404.
    let (_, other) = env.casino_agent().await;
    env.post(
        C,
        "/fairness/verify",
        Some(&other),
        json!({"bet_id": first_id}),
    )
    .await
    .expect_err(403, "forbidden");
    env.get(C, &format!("/fairness/audit/{first_id}"), Some(&other))
        .await
        .expect_err(403, "forbidden");
    env.post(C, "/fairness/verify", k, json!({"bet_id": "bet_nope"}))
        .await
        .expect_err(404, "bet_not_found");
}

#[tokio::test]
async fn seed_rotates_by_itself_after_1000_bets() {
    let env = Env::with(SandboxConfig::for_tests(11).rate_limits(false)).await;
    let (id, key) = env.casino_agent().await;
    env.deposit(C, &id, 100_000.0).await;
    let k = Some(key.as_str());
    let first_hash = env.get(C, "/fairness/seed-hash", k).await.body["server_seed_hash"].clone();
    let bet = json!({"game": "coin_flip", "amount": 0.01, "side": "heads", "client_seed": "bulk"});
    let mut first_bet = Value::Null;
    for _ in 0..50 {
        let r = env
            .post(C, "/bets/batch", k, json!({"bets": vec![bet.clone(); 20]}))
            .await
            .expect_ok(200);
        assert_eq!(r.body["summary"]["successful"], 20, "{}", r.text);
        if first_bet.is_null() {
            first_bet = r.body["results"][0].clone();
        }
    }
    let now = env.get(C, "/fairness/seed-hash", k).await.expect_ok(200);
    assert_ne!(now.body["server_seed_hash"], first_hash);
    assert_eq!(now.body["nonce"], 0);
    // The first seed is revealed: its bets verify without a manual rotation.
    let v = env
        .post(
            C,
            "/fairness/verify",
            k,
            json!({"bet_id": first_bet["bet_id"]}),
        )
        .await
        .expect_ok(200);
    assert_eq!(v.body["verified"], true, "{}", v.text);
    let seed = v.body["proof"]["server_seed"].as_str().unwrap_or_default();
    assert_eq!(
        hmac_hex(seed, "bulk", 0),
        first_bet["proof"]["result_hash"]
            .as_str()
            .unwrap_or_default()
    );
    let history = env
        .get(C, "/bets/history?limit=500", k)
        .await
        .expect_ok(200);
    assert_eq!(history.body["count"], 200, "history is capped at 200");
}

#[tokio::test]
async fn kelly_batch_and_history() {
    let env = Env::new().await;
    let (id, key) = env.casino_agent().await;
    env.deposit(C, &id, 100.0).await;
    let k = Some(key.as_str());
    let put = |rf: f64| {
        env.call(
            Method::PUT,
            C,
            "/kelly/config",
            k,
            Some(json!({"risk_factor": rf})),
        )
    };
    put(0.05).await.expect_err(400, "invalid_risk_factor");
    put(1.5).await.expect_err(400, "invalid_risk_factor");
    put(0.5).await.expect_ok(200);
    let limits = env.get(C, "/kelly/limits", k).await.expect_ok(200);
    // 101 × 0.5 × 0.5
    close(
        limits.body["limits"]["coin-flip"]["max_bet"]
            .as_f64()
            .unwrap_or(0.0),
        25.25,
        1e-9,
    );

    let too_many = json!({"bets": vec![json!({"game": "dice", "amount": 0.1}); 21]});
    env.post(C, "/bets/batch", k, too_many)
        .await
        .expect_err(400, "too_many_bets");
    env.post(C, "/bets/batch", k, json!({}))
        .await
        .expect_err(400, "invalid_request");
    let r = env
        .post(
            C,
            "/bets/batch",
            k,
            json!({"bets": [
                {"game": "coin_flip", "amount": 1, "side": "heads"},
                {"game": "dice", "amount": 1, "direction": "under", "threshold": 40},
                {"game": "no_such_game", "amount": 1},
                {"game": "custom", "amount": 1000, "win_probability": 50}
            ]}),
        )
        .await
        .expect_ok(200);
    let s = &r.body["summary"];
    assert_eq!(s["total_bets"], 4);
    assert_eq!(s["failed"], 2);
    assert_eq!(r.body["results"][2]["error"], "invalid_game");
    assert_eq!(r.body["results"][3]["error"], "insufficient_balance");
    let net = s["total_won"].as_f64().unwrap_or(0.0) - s["total_wagered"].as_f64().unwrap_or(0.0);
    close(s["net_pnl"].as_f64().unwrap_or(99.0), net, 1e-6);
    close(
        r.body["balance_after"].as_f64().unwrap_or(0.0),
        101.0 + net,
        1e-6,
    );

    let h = env.get(C, "/bets/history?limit=1", k).await.expect_ok(200);
    assert_eq!(h.body["count"], 1);
    assert_eq!(h.body["bets"][0]["game"], "dice", "newest first");
    let games = env.get(C, "/games", None).await.expect_ok(200);
    assert_eq!(
        games.body["games"][0]["payout_multiplier"], 1.96,
        "the list says 1.96, a win pays 1.99"
    );
}

#[tokio::test]
async fn deposit_address_and_withdrawals() {
    let env = Env::new().await;
    let (id, key) = env.casino_agent().await;
    let k = Some(key.as_str());
    let first = env
        .post(C, "/auth/deposit-address", k, json!({}))
        .await
        .expect_ok(201);
    assert_eq!(first.body["chain"], "base");
    let again = env
        .post(C, "/auth/deposit-address", k, json!({"chain": "base"}))
        .await
        .expect_ok(200);
    assert_eq!(first.body["address"], again.body["address"]);
    env.post(C, "/auth/deposit-address", k, json!({"chain": "dogecoin"}))
        .await
        .expect_err(400, "unsupported_chain");

    let addr = format!("0x{}", "ab".repeat(20));
    let w = |body: Value| env.post(C, "/auth/withdraw", k, body);
    w(json!({"amount": "5", "address": addr}))
        .await
        .expect_err(400, "invalid_amount");
    w(json!({"amount": 0.5, "address": addr}))
        .await
        .expect_err(400, "minimum_withdrawal");
    w(json!({"amount": 100_001, "address": addr}))
        .await
        .expect_err(400, "maximum_withdrawal");
    w(json!({"amount": 5, "address": "0x123"}))
        .await
        .expect_err(400, "invalid_address");
    let r = w(json!({"amount": 5, "address": addr}))
        .await
        .expect_err(400, "insufficient_balance");
    assert_eq!(r.body["total_needed"], 5.5);
    assert_eq!(r.body["available"], 1.0);
    // Five withdrawal calls per minute per IP, failed ones included.
    w(json!({"amount": 10, "address": addr}))
        .await
        .expect_err(429, "rate_limited");
    env.advance(60.0).await;
    env.deposit(C, &id, 2_000.0).await;
    let done = w(json!({"amount": 10, "address": addr}))
        .await
        .expect_ok(200);
    assert_eq!(done.body["status"], "completed");
    close(
        done.body["new_balance"].as_f64().unwrap_or(0.0),
        2001.0 - 10.5,
        1e-9,
    );
    let review = w(json!({"amount": 1500, "address": addr}))
        .await
        .expect_ok(200);
    assert_eq!(review.body["status"], "pending_review");
}

#[tokio::test]
async fn rate_limits_follow_the_code() {
    let env = Env::new().await;
    for _ in 0..10 {
        env.post(C, "/auth/register", None, json!({}))
            .await
            .expect_ok(201);
    }
    let r = env
        .post(C, "/auth/register", None, json!({}))
        .await
        .expect_err(429, "rate_limited");
    assert_eq!(r.body["message"], "Too many requests. Limit: 10 per 60s");
    assert!(
        r.header("retry-after").is_none(),
        "the code sends no Retry-After"
    );
    assert!(r.header("x-ratelimit-limit").is_none());
    // Another client IP has its own window; the window resets after 60 s of sandbox time.
    let other = env
        .http
        .post(env.url(C, "/auth/register"))
        .header("x-forwarded-for", "10.9.8.7")
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(other.status().as_u16(), 201);
    env.advance(60.0).await;
    env.post(C, "/auth/register", None, json!({}))
        .await
        .expect_ok(201);

    // The per-agent game bucket: 60 per minute whatever the IP.
    let (id, key) = env.casino_agent().await;
    env.deposit(C, &id, 10_000.0).await;
    for i in 0..60 {
        let r = env
            .http
            .post(env.url(C, "/games/coin-flip"))
            .bearer_auth(&key)
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .json(&json!({"amount": 0.01, "side": "heads"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = env
        .post(
            C,
            "/games/coin-flip",
            Some(&key),
            json!({"amount": 0.01, "side": "heads"}),
        )
        .await
        .expect_err(429, "rate_limit_exceeded");
    assert!(
        r.body["reset_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

#[tokio::test]
async fn same_seed_same_world() {
    let a = Env::new().await;
    let b = Env::new().await;
    let (_, ka) = a.casino_agent().await;
    let (_, kb) = b.casino_agent().await;
    assert_eq!(ka, kb, "keys come from the seeded generator");
    let ra = a
        .post(
            C,
            "/games/coin-flip",
            Some(&ka),
            json!({"amount": 0.1, "side": "heads", "client_seed": "x"}),
        )
        .await;
    let rb = b
        .post(
            C,
            "/games/coin-flip",
            Some(&kb),
            json!({"amount": 0.1, "side": "heads", "client_seed": "x"}),
        )
        .await;
    assert_eq!(ra.body["proof"], rb.body["proof"]);
    assert_eq!(ra.body["won"], rb.body["won"]);
}
