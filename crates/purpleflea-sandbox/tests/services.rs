//! Faucet, escrow (with the timeout sweep on the controllable clock), wallet and domains.

mod common;

use common::{Env, close, prefixed_hex};
use purpleflea_sandbox::{SandboxConfig, Service};
use reqwest::Method;
use serde_json::json;

const F: Service = Service::Faucet;
const E: Service = Service::Escrow;
const W: Service = Service::Wallet;
const D: Service = Service::Domains;

#[tokio::test]
async fn faucet_checks_in_documented_order() {
    let env = Env::new().await;
    env.post(F, "/faucet/claim", None, json!({}))
        .await
        .expect_err(400, "invalid_request");
    env.post_raw(F, "/faucet/claim", None, "{oops")
        .await
        .expect_err(400, "invalid_request");
    env.post(
        F,
        "/faucet/claim",
        None,
        json!({"agent_casino_id": "ag_000000000000"}),
    )
    .await
    .expect_err(404, "agent_not_found");
    // Registration auto-claims, so an explicit claim is already_claimed.
    let (id, _) = env.casino_agent().await;
    env.post(F, "/faucet/claim", None, json!({"agent_casino_id": id}))
        .await
        .expect_err(409, "already_claimed");
    assert_eq!(
        env.get(F, "/faucet/stats", None).await.expect_ok(200).body["total_claims"],
        1
    );
}

#[tokio::test]
async fn faucet_claim_credits_once_per_agent_and_per_ip() {
    let env = Env::with(SandboxConfig::for_tests(3).auto_faucet_claim(false)).await;
    let (a, key_a) = env.casino_agent().await;
    let (b, _) = env.casino_agent().await;
    let (c, _) = env.casino_agent().await;
    let claim = |agent: &str, ip: &str| {
        env.http
            .post(env.url(F, "/faucet/claim"))
            .header("x-forwarded-for", ip)
            .json(&json!({"agent_casino_id": agent}))
            .send()
    };
    let r = claim(&a, "10.0.0.1").await.expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["credited"], 1.0);
    assert!(body["claim_id"].is_string());
    assert_eq!(body["agent_id"], a.as_str());
    let bal = env
        .get(Service::Casino, "/auth/balance", Some(&key_a))
        .await;
    assert_eq!(bal.body["balance_usd"], 1.0);

    let r = claim(&a, "10.0.0.2").await.expect("sent");
    assert_eq!(r.status().as_u16(), 409, "one claim per agent");
    let r = claim(&b, "10.0.0.1").await.expect("sent");
    assert_eq!(r.status().as_u16(), 429, "one claim per IP per 24 h");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "ip_rate_limited");
    env.deposit(Service::Casino, &c, 5.0).await;
    let r = claim(&c, "10.0.0.3").await.expect("sent");
    assert_eq!(r.status().as_u16(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "has_deposits");
    // After 24 h the IP may claim again.
    env.advance(24.0 * 3600.0).await;
    assert_eq!(
        claim(&b, "10.0.0.1").await.expect("sent").status().as_u16(),
        200
    );
}

async fn escrow_pair(env: &Env, fund: f64) -> ((String, String), (String, String)) {
    let creator = env.casino_agent().await;
    let counterparty = env.casino_agent().await;
    if fund > 0.0 {
        env.deposit(Service::Casino, &creator.0, fund).await;
    }
    (creator, counterparty)
}

async fn casino_balance(env: &Env, key: &str) -> f64 {
    env.get(Service::Casino, "/auth/balance", Some(key))
        .await
        .body["balance_usd"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn escrow_lifecycle_and_errors() {
    let env = Env::new().await;
    let ((creator, ck), (cp, pk)) = escrow_pair(&env, 99.0).await; // balances 100 and 1
    let body =
        json!({"amount_usd": 50, "description": "label 100 images", "counterparty_agent_id": cp});
    env.post(E, "/escrow/create", None, body.clone())
        .await
        .expect_err(401, "unauthorized");
    env.post(
        E,
        "/escrow/create",
        Some(&format!("sk_live_{}", "1".repeat(48))),
        body.clone(),
    )
    .await
    .expect_err(401, "unauthorized");
    let k = Some(ck.as_str());
    let with = |patch: serde_json::Value| {
        let mut b = body.clone();
        for (key, v) in patch.as_object().into_iter().flatten() {
            b[key] = v.clone();
        }
        env.post(E, "/escrow/create", k, b)
    };
    with(json!({"amount_usd": 0.05}))
        .await
        .expect_err(400, "invalid_amount");
    with(json!({"description": "ab"}))
        .await
        .expect_err(400, "invalid_description");
    with(json!({"counterparty_agent_id": "bob"}))
        .await
        .expect_err(400, "invalid_counterparty");
    with(json!({"counterparty_agent_id": creator}))
        .await
        .expect_err(400, "self_escrow");
    with(json!({"counterparty_agent_id": "ag_ffffffffffff"}))
        .await
        .expect_err(404, "counterparty_not_found");
    let r = with(json!({"amount_usd": 500}))
        .await
        .expect_err(402, "insufficient_balance");
    assert_eq!(r.body["balance"], 100.0);
    env.post_raw(E, "/escrow/create", k, "{]")
        .await
        .expect_err(400, "invalid_json");

    let r = env
        .post(E, "/escrow/create", k, body.clone())
        .await
        .expect_ok(201);
    let id = r.body["escrow_id"].as_str().unwrap_or_default().to_owned();
    assert!(prefixed_hex(&id, "esc_", 16));
    assert_eq!(r.body["status"], "funded");
    assert_eq!(r.body["commission_usd"], 0.5);
    assert_eq!(r.body["net_to_counterparty"], 49.5);
    assert_eq!(r.body["timeout_hours"], 24.0);
    close(casino_balance(&env, &ck).await, 50.0, 1e-9);

    env.post(E, &format!("/escrow/complete/{id}"), k, json!({}))
        .await
        .expect_err(403, "forbidden");
    env.post(
        E,
        "/escrow/complete/esc_0000000000000000",
        Some(&pk),
        json!({}),
    )
    .await
    .expect_err(404, "not_found");
    let done = env
        .post(E, &format!("/escrow/complete/{id}"), Some(&pk), json!({}))
        .await
        .expect_ok(200);
    assert_eq!(done.body["status"], "completed");
    env.post(E, &format!("/escrow/complete/{id}"), Some(&pk), json!({}))
        .await
        .expect_err(409, "invalid_status");
    env.post(E, &format!("/escrow/release/{id}"), Some(&pk), json!({}))
        .await
        .expect_err(403, "forbidden");
    let rel = env
        .post(E, &format!("/escrow/release/{id}"), k, json!({}))
        .await
        .expect_ok(200);
    assert_eq!(rel.body["status"], "released");
    assert_eq!(rel.body["amount_released"], 49.5);
    assert_eq!(rel.body["commission"], 0.5);
    close(casino_balance(&env, &pk).await, 50.5, 1e-9);
    let again = env
        .post(E, &format!("/escrow/release/{id}"), k, json!({}))
        .await
        .expect_err(409, "invalid_status");
    assert_eq!(again.body["status"], "released");
    env.post(E, &format!("/escrow/dispute/{id}"), k, json!({}))
        .await
        .expect_err(409, "invalid_status");

    // GET: public view, participants also see events.
    let public = env
        .get(E, &format!("/escrow/{id}"), None)
        .await
        .expect_ok(200);
    assert!(public.body.get("events").is_none());
    assert!(public.body["released_at"].is_string());
    let mine = env
        .get(E, &format!("/escrow/{id}"), Some(&pk))
        .await
        .expect_ok(200);
    assert!(mine.body["events"].as_array().is_some_and(|e| e.len() >= 4));
    env.get(E, "/escrow/esc_nope", None)
        .await
        .expect_err(404, "not_found");
    assert_eq!(
        env.get(E, "/escrow/stats", None).await.expect_ok(200).body["total_escrows"],
        1
    );
}

#[tokio::test]
async fn escrow_timeout_sweep_refunds_the_creator_but_never_a_dispute() {
    let env = Env::new().await;
    let ((_, ck), (cp, pk)) = escrow_pair(&env, 99.0).await;
    let k = Some(ck.as_str());
    // Start 2 minutes after the sandbox so the deadline falls between two 5-minute sweeps.
    env.advance(120.0).await;
    let create = |desc: &str| {
        env.post(E, "/escrow/create", k, json!({
            "amount_usd": 10, "description": desc, "counterparty_agent_id": cp, "timeout_hours": 1
        }))
    };
    let swept = create("will time out").await.expect_ok(201).body["escrow_id"].clone();
    let disputed = create("will be disputed").await.expect_ok(201).body["escrow_id"].clone();
    let (swept, disputed) = (
        swept.as_str().unwrap_or_default().to_owned(),
        disputed.as_str().unwrap_or_default().to_owned(),
    );
    assert_eq!(env.post(E, "/escrow/create", k, json!({
        "amount_usd": 1, "description": "clamped", "counterparty_agent_id": cp, "timeout_hours": 5000
    })).await.expect_ok(201).body["timeout_hours"], 720.0);
    close(casino_balance(&env, &ck).await, 100.0 - 21.0, 1e-9);
    // The counterparty marks the first done: the creator still gets the refund.
    env.post(
        E,
        &format!("/escrow/complete/{swept}"),
        Some(&pk),
        json!({}),
    )
    .await
    .expect_ok(200);
    env.post(
        E,
        &format!("/escrow/dispute/{disputed}"),
        Some(&pk),
        json!({"reason": "no delivery"}),
    )
    .await
    .expect_ok(200);

    // At the deadline (start + 62 min) the next sweep (start + 65 min) has not run yet.
    env.advance(3600.0).await;
    let e = env
        .get(E, &format!("/escrow/{swept}"), None)
        .await
        .expect_ok(200);
    assert_eq!(
        e.body["status"], "completed",
        "the refund lags the deadline until the next sweep"
    );
    env.advance(180.0).await;
    let e = env
        .get(E, &format!("/escrow/{swept}"), Some(&ck))
        .await
        .expect_ok(200);
    assert_eq!(e.body["status"], "refunded");
    assert!(
        e.body["refunded_at"]
            .as_str()
            .is_some_and(|t| t.contains("T01:05:00")),
        "{}",
        e.text
    );
    // amount − commission back to the creator; nothing to the counterparty.
    close(casino_balance(&env, &ck).await, 79.0 + 9.9, 1e-9);
    close(casino_balance(&env, &pk).await, 1.0, 1e-9);
    env.post(E, &format!("/escrow/release/{swept}"), k, json!({}))
        .await
        .expect_err(409, "invalid_status");

    env.advance(30.0 * 24.0 * 3600.0).await;
    let d = env
        .get(E, &format!("/escrow/{disputed}"), None)
        .await
        .expect_ok(200);
    assert_eq!(d.body["status"], "disputed", "disputes are never swept");
}

#[tokio::test]
async fn wallet_create_balance_send_and_swap() {
    let env = Env::new().await;
    let (_, key) = env.agent(W).await;
    assert!(prefixed_hex(&key, "pk_live_", 48));
    let k = Some(key.as_str());
    env.post(
        W,
        "/wallet/create",
        Some(&format!("pk_live_{}", "2".repeat(48))),
        json!({}),
    )
    .await
    .expect_err(401, "unauthorized");
    let wallet = env
        .post(W, "/wallet/create", k, json!({}))
        .await
        .expect_ok(201);
    let words = wallet.body["mnemonic"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .count();
    assert_eq!(words, 24);
    for chain in ["ethereum", "base", "solana", "bitcoin", "tron", "monero"] {
        assert!(wallet.body["addresses"][chain].is_string(), "{chain}");
    }
    let from = wallet.body["addresses"]["base"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pkey = wallet.body["sandbox_private_keys"]["base"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let bal = env
        .get(W, &format!("/wallet/balance/{from}?chain=base"), k)
        .await
        .expect_ok(200);
    assert_eq!(bal.body["balance"]["native"]["amount"], "0.0");
    assert_eq!(bal.body["balance"]["native"]["wei"], "0");
    env.get(W, &format!("/wallet/balance/{from}?chain=dogecoin"), k)
        .await
        .expect_err(400, "unsupported_chain");

    let to = format!("0x{}", "cd".repeat(20));
    let send = |body: serde_json::Value| env.post(W, "/wallet/send", k, body);
    send(json!({"chain": "base", "to": to}))
        .await
        .expect_err(400, "invalid_request");
    send(json!({"chain": "dogecoin", "to": to, "amount": "1", "private_key": pkey}))
        .await
        .expect_err(400, "unsupported_chain");
    send(json!({"chain": "bitcoin", "to": to, "amount": "1", "private_key": pkey}))
        .await
        .expect_err(501, "not_implemented");
    send(json!({"chain": "base", "to": to, "amount": "1", "private_key": "nope"}))
        .await
        .expect_err(400, "send_failed");
    let r = send(json!({"chain": "base", "to": to, "amount": "0.1", "private_key": pkey}))
        .await
        .expect_err(400, "send_failed");
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("insufficient funds")),
        "{}",
        r.text
    );

    env.admin(
        Method::POST,
        "/deposit",
        Some(json!({"service": "wallet", "chain": "base", "address": from, "amount": "1.0"})),
    )
    .await
    .expect_ok(200);
    let sent = send(json!({"chain": "base", "to": to, "amount": "0.25", "private_key": pkey}))
        .await
        .expect_ok(200);
    assert_eq!(sent.body["from"], from.as_str());
    assert!(sent.body["tx_hash"].as_str().is_some_and(|h| h.len() == 66));
    let bal = env
        .get(W, &format!("/wallet/balance/{to}?chain=base"), k)
        .await
        .expect_ok(200);
    assert_eq!(bal.body["balance"]["native"]["amount"], "0.25");
    let bal = env
        .get(W, &format!("/wallet/balance/{from}?chain=base"), k)
        .await
        .expect_ok(200);
    assert_eq!(
        bal.body["balance"]["native"]["amount"], "0.749995",
        "0.25 sent plus the network fee"
    );

    // Swap: quote, order, deposit by send, completion.
    let q = env
        .get(W, "/wallet/swap/quote?from_chain=base&to_chain=solana&from_token=ETH&to_token=USDC&amount=100000000000000000", k)
        .await
        .expect_ok(200);
    assert_eq!(q.body["integrator_fee"]["rate"], "0.5%");
    env.get(W, "/wallet/swap/quote?from_chain=base", k)
        .await
        .expect_err(400, "invalid_request");
    env.get(
        W,
        "/wallet/swap/quote?from_chain=base&to_chain=solana&from_token=DOGE&to_token=USDC&amount=1",
        k,
    )
    .await
    .expect_err(400, "quote_failed");
    let sol_to = wallet.body["addresses"]["solana"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let order = env
        .post(
            W,
            "/wallet/swap",
            k,
            json!({
                "from_chain": "base", "to_chain": "solana", "from_token": "ETH", "to_token": "USDC",
                "amount": "100000000000000000", "to_address": sol_to,
            }),
        )
        .await
        .expect_ok(200);
    let order_id = order.body["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    env.post(
        W,
        "/wallet/swap",
        k,
        json!({
            "from_chain": "base", "to_chain": "solana", "from_token": "ETH", "to_token": "USDC",
            "amount": "1", "to_address": sol_to,
        }),
    )
    .await
    .expect_err(400, "swap_failed");
    let status = env
        .get(W, &format!("/wallet/swap/status/{order_id}"), k)
        .await
        .expect_ok(200);
    assert_eq!(status.body["status"], "awaiting_deposit");
    let deposit = &order.body["deposit"];
    send(json!({"chain": "base", "to": deposit["address"], "amount": deposit["amount"], "private_key": pkey}))
        .await
        .expect_ok(200);
    let status = env
        .get(W, &format!("/wallet/swap/status/{order_id}"), k)
        .await
        .expect_ok(200);
    assert_eq!(status.body["status"], "completed");
    let usdc = env
        .get(W, &format!("/wallet/balance/{sol_to}?chain=solana"), k)
        .await
        .expect_ok(200);
    assert_eq!(
        usdc.body["balance"]["tokens"]["USDC"]["amount"],
        order.body["output"]["expected_amount"]
    );
}

#[tokio::test]
async fn domains_register_dns_and_auctions() {
    let env = Env::new().await;
    let (seller, sk) = env.agent(D).await;
    let (bidder, bk) = env.agent(D).await;
    assert!(prefixed_hex(&sk, "sk_domains_", 48));
    env.get(
        D,
        "/auth/account",
        Some(&format!("sk_domains_{}", "3".repeat(48))),
    )
    .await
    .expect_err(401, "invalid_key");
    env.get(D, "/auth/account", None)
        .await
        .expect_err(401, "unauthorized");

    let search = env
        .get(D, "/domains/search?q=agentflea", None)
        .await
        .expect_ok(200);
    let results = search.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pick = results
        .iter()
        .find(|r| {
            r["available"] == true && r["domain"].as_str().is_some_and(|d| d.ends_with(".com"))
        })
        .or_else(|| results.iter().find(|r| r["available"] == true))
        .cloned()
        .expect("some TLD is free");
    let domain = pick["domain"].as_str().unwrap_or_default().to_owned();
    let eur = pick["price_eur"].as_f64().unwrap_or(0.0);
    let usd = ((eur * 1.2 * 1.08) * 100.0_f64).round() / 100.0;

    let k = Some(sk.as_str());
    env.post(D, "/domains/register", k, json!({"domain": "not a domain"}))
        .await
        .expect_err(400, "invalid_domain");
    let r = env
        .post(D, "/domains/register", k, json!({"domain": domain}))
        .await
        .expect_err(400, "insufficient_balance");
    close(r.body["required_usd"].as_f64().unwrap_or(0.0), usd, 1e-9);
    close(r.body["shortfall_usd"].as_f64().unwrap_or(0.0), usd, 1e-9);
    env.deposit(D, &seller, 100.0).await;
    let reg = env
        .post(D, "/domains/register", k, json!({"domain": domain}))
        .await
        .expect_ok(201);
    assert_eq!(reg.body["status"], "active");
    close(
        reg.body["cost"]["total_charged_usd"]
            .as_f64()
            .unwrap_or(0.0),
        usd,
        1e-9,
    );
    close(
        reg.body["balance_usd"].as_f64().unwrap_or(0.0),
        100.0 - usd,
        1e-9,
    );
    assert!(
        reg.body["expires_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2027-01-01"))
    );
    let domain_id = reg.body["domain_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(prefixed_hex(&domain_id, "dom_", 16));
    env.post(D, "/domains/register", k, json!({"domain": domain}))
        .await
        .expect_err(400, "domain_unavailable");

    let rec = env
        .post(D, "/dns/records", k, json!({"domain_id": domain_id, "type": "A", "name": "@", "content": "192.0.2.1", "ttl": 300}))
        .await
        .expect_ok(201);
    assert_eq!(rec.body["type"], "A");
    env.post(
        D,
        "/dns/records",
        k,
        json!({"domain_id": domain_id, "type": "SRV", "name": "@", "content": "x"}),
    )
    .await
    .expect_err(400, "invalid_type");
    env.post(
        D,
        "/dns/records",
        Some(&bk),
        json!({"domain_id": domain_id, "type": "A", "name": "@", "content": "192.0.2.1"}),
    )
    .await
    .expect_err(404, "domain_not_found");

    // Auctions.
    let auc = env
        .post(
            D,
            "/auctions",
            k,
            json!({"domain_id": domain_id, "min_bid_usd": 10, "duration_hours": 2}),
        )
        .await
        .expect_ok(201);
    let auction = auc.body["auction_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(prefixed_hex(&auction, "auc_", 16));
    env.post(
        D,
        "/auctions",
        k,
        json!({"domain_id": domain_id, "min_bid_usd": 10, "duration_hours": 2}),
    )
    .await
    .expect_err(409, "already_listed");
    let bid_path = format!("/auctions/{auction}/bid");
    env.post(D, &bid_path, Some(&bk), json!({"bid_usd": "ten"}))
        .await
        .expect_err(400, "invalid_bid");
    env.post(D, &bid_path, k, json!({"bid_usd": 20}))
        .await
        .expect_err(400, "cannot_self_bid");
    let low = env
        .post(D, &bid_path, Some(&bk), json!({"bid_usd": 9}))
        .await
        .expect_err(400, "bid_too_low");
    assert_eq!(low.body["min_bid_usd"], 10.0);
    env.post(D, &bid_path, Some(&bk), json!({"bid_usd": 10}))
        .await
        .expect_err(400, "insufficient_balance");
    env.deposit(D, &bidder, 50.0).await;
    let ok = env
        .post(D, &bid_path, Some(&bk), json!({"bid_usd": 10}))
        .await
        .expect_ok(201);
    assert!(prefixed_hex(
        ok.body["bid_id"].as_str().unwrap_or_default(),
        "bid_",
        16
    ));
    // The next bid must be 5% above the current one.
    let low = env
        .post(D, &bid_path, Some(&bk), json!({"bid_usd": 10.4}))
        .await
        .expect_err(400, "bid_too_low");
    assert_eq!(low.body["min_bid_usd"], 10.5);
    env.post(D, &bid_path, Some(&bk), json!({"bid_usd": 10.5}))
        .await
        .expect_ok(201);
    env.post(
        D,
        "/auctions/auc_0000000000000000/bid",
        Some(&bk),
        json!({"bid_usd": 1}),
    )
    .await
    .expect_err(404, "auction_not_found");

    // Expiry: a bid after ends_at is auction_expired; once GET /auctions has marked it, it is
    // auction_closed with status expired.
    env.advance(2.0 * 3600.0).await;
    env.post(D, &bid_path, Some(&bk), json!({"bid_usd": 20}))
        .await
        .expect_err(409, "auction_expired");
    let list = env
        .get(D, "/auctions?status=all", None)
        .await
        .expect_ok(200);
    assert_eq!(list.body["auctions"][0]["status"], "expired");
    let closed = env
        .post(D, &bid_path, Some(&bk), json!({"bid_usd": 20}))
        .await
        .expect_err(409, "auction_closed");
    assert_eq!(closed.body["status"], "expired");
}

#[tokio::test]
async fn framework_rejections_are_flat_too() {
    let env = Env::new().await;
    // Invalid UTF-8 in a path parameter.
    let r = env.get(E, "/escrow/%FF%FE", None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "invalid_request");
    assert!(r.body["_info"].is_object());
    // A wrong method is a 404 as on the real services.
    env.call(Method::DELETE, E, "/escrow/create", None, None)
        .await
        .expect_err(404, "not_found");
    // A body over the size limit.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let r = env
        .post_raw(Service::Casino, "/auth/register", None, &big)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (413, "payload_too_large"),
        "{}",
        &r.text[..r.text.len().min(200)]
    );
}

#[tokio::test]
async fn trading_without_a_signing_key_is_not_configured() {
    let env = Env::new().await;
    let r = env
        .post(
            Service::Trading,
            "/auth/register",
            None,
            json!({"hl_wallet_address": format!("0x{}", "ab".repeat(20))}),
        )
        .await
        .expect_ok(201);
    let key = r.body["api_key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(r.body["hl_wallet"]["generated"], false);
    env.post(
        Service::Trading,
        "/trade/open",
        Some(&key),
        json!({"coin": "BTC", "side": "long", "size_usd": 100}),
    )
    .await
    .expect_err(400, "wallet_not_configured");
    // A limit order still triggers, as a simulated fill without a position.
    env.post(
        Service::Trading,
        "/trade/limit",
        Some(&key),
        json!({"coin": "BTC", "side": "long", "size_usd": 100, "limit_price": 1_000_000}),
    )
    .await
    .expect_ok(201);
    env.advance(30.0).await;
    let orders = env
        .get(Service::Trading, "/trade/limit-orders", Some(&key))
        .await
        .expect_ok(200);
    assert_eq!(orders.body["filled"][0]["execution"], "simulated");
    assert_eq!(
        env.get(Service::Trading, "/trade/positions", Some(&key))
            .await
            .body["count"],
        0
    );
}
