//! Trading against a live sandbox: markets, fills within ±0.5%, slippage errors, fees,
//! leverage caps, PnL, limit/stop/take-profit triggers on the clock, daily loss limit.

mod common;

use common::{Env, close, prefixed_hex};
use purpleflea_sandbox::{SandboxConfig, Service};
use reqwest::Method;
use serde_json::{Value, json};

const T: Service = Service::Trading;

async fn funded(env: &Env, usd: f64) -> String {
    let (id, key) = env.agent(T).await;
    if usd > 0.0 {
        env.deposit(T, &id, usd).await;
    }
    key
}

async fn mid(env: &Env, coin: &str) -> f64 {
    env.get(T, &format!("/markets/{coin}/price"), None)
        .await
        .body["price"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

async fn set_market(env: &Env, coin: &str, body: Value) {
    env.admin(Method::PUT, &format!("/trading/markets/{coin}"), Some(body))
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn register_account_and_markets() {
    let env = Env::new().await;
    let r = env
        .post(T, "/auth/register", None, json!({}))
        .await
        .expect_ok(201);
    let key = r.body["api_key"].as_str().unwrap_or_default().to_owned();
    assert!(prefixed_hex(&key, "sk_trade_", 48));
    assert!(r.body["hl_wallet"]["address"].is_string());
    assert!(r.body["deposit_address"].is_string());
    let acct = env.get(T, "/auth/account", Some(&key)).await.expect_ok(200);
    assert_eq!(acct.body["max_leverage"], 10.0);
    assert_eq!(acct.body["max_position_usd"], 10_000.0);
    assert_eq!(acct.body["tier"], "free");
    env.get(
        T,
        "/auth/account",
        Some(&format!("sk_trade_{}", "9".repeat(48))),
    )
    .await
    .expect_err(401, "invalid_key");
    env.get(T, "/auth/account", None)
        .await
        .expect_err(401, "unauthorized");

    let markets = env.get(T, "/markets", None).await.expect_ok(200);
    assert!(
        markets.body["total_markets"]
            .as_u64()
            .is_some_and(|n| n >= 20)
    );
    for cat in ["crypto", "stocks", "commodities", "indices", "forex"] {
        assert!(
            markets.body["categories"][cat]["markets"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{cat}"
        );
    }
    let tsla = env.get(T, "/markets/tsla", None).await.expect_ok(200);
    assert_eq!(tsla.body["coin"], "xyz:TSLA");
    assert_eq!(tsla.body["dex"], "xyz");
    let p = env.get(T, "/markets/BTC/price", None).await.expect_ok(200);
    assert_eq!(p.body["ticker"], "BTC");
    env.get(T, "/markets/NOPE", None)
        .await
        .expect_err(404, "market_not_found");
}

#[tokio::test]
async fn prices_walk_deterministically_every_30_seconds() {
    let a = Env::new().await;
    let b = Env::new().await;
    let c = Env::with(SandboxConfig::for_tests(8)).await;
    let start = mid(&a, "ETH").await;
    a.advance(29.0).await;
    assert_eq!(mid(&a, "ETH").await, start, "mids are cached for 30 s");
    a.advance(3600.0).await;
    b.advance(3629.0).await;
    c.advance(3629.0).await;
    let (pa, pb, pc) = (
        mid(&a, "ETH").await,
        mid(&b, "ETH").await,
        mid(&c, "ETH").await,
    );
    assert_eq!(pa, pb, "same seed, same walk");
    assert_ne!(pa, start);
    assert_ne!(pa, pc, "another seed walks elsewhere");
}

#[tokio::test]
async fn open_close_fees_leverage_and_pnl() {
    let env = Env::new().await;
    let key = funded(&env, 0.0).await;
    let k = Some(key.as_str());
    let open = |body: Value| env.post(T, "/trade/open", k, body);
    let r = open(json!({"coin": "BTC", "side": "long", "size_usd": 100}))
        .await
        .expect_err(400, "trade_failed");
    assert!(
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Order error: Insufficient margin")),
        "{}",
        r.text
    );

    let key = funded(&env, 1_000.0).await;
    let k = Some(key.as_str());
    let open = |body: Value| env.post(T, "/trade/open", k, body);
    open(json!({"side": "long", "size_usd": 100}))
        .await
        .expect_err(400, "invalid_request");
    open(json!({"coin": "BTC", "side": "long", "size_usd": "100"}))
        .await
        .expect_err(400, "invalid_size");
    open(json!({"coin": "BTC", "side": "up", "size_usd": 100}))
        .await
        .expect_err(400, "invalid_side");
    open(json!({"coin": "BTC", "side": "long", "size_usd": 100, "leverage": 0.5}))
        .await
        .expect_err(400, "invalid_leverage");
    let r = open(json!({"coin": "BTC", "side": "long", "size_usd": 20_000}))
        .await
        .expect_err(400, "position_too_large");
    assert_eq!(r.body["max_position_usd"], 10_000.0);
    let r = open(json!({"coin": "DOGEDOGE", "side": "long", "size_usd": 100}))
        .await
        .expect_err(400, "trade_failed");
    assert_eq!(r.body["message"], "Market not found");
    let r = open(json!({"coin": "COIN", "side": "long", "size_usd": 100, "leverage": 8}))
        .await
        .expect_err(400, "trade_failed");
    assert_eq!(r.body["message"], "Max leverage for COIN is 5x");
    let r = open(json!({"coin": "ETH", "side": "long", "size_usd": 5}))
        .await
        .expect_err(400, "trade_failed");
    assert_eq!(r.body["message"], "Position size too small");
    env.post_raw(T, "/trade/open", k, "{")
        .await
        .expect_err(400, "invalid_json");

    let m = mid(&env, "BTC").await;
    let pos = open(json!({"coin": "btc", "side": "long", "size_usd": 1000, "leverage": 20}))
        .await
        .expect_ok(200);
    let b = &pos.body;
    assert!(
        b["position_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("pos_"))
    );
    assert!(
        b["order_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("ord_"))
    );
    assert_eq!(b["leverage"], 10.0, "silently capped at the account max");
    assert_eq!(b["size_usd"], 1000.0);
    assert_eq!(b["status"], "open");
    let entry = b["entry_price"].as_f64().unwrap_or(0.0);
    assert!(
        entry >= m && entry <= m * 1.005,
        "a buy fills within mid..mid+0.5%: {entry} vs {m}"
    );
    close(b["margin_used"].as_f64().unwrap_or(0.0), 100.0, 1e-9);
    close(
        b["fee"].as_f64().unwrap_or(0.0),
        1000.0 * 5.5 / 10_000.0,
        1e-9,
    );
    close(
        b["fee_breakdown"]["hyperliquid"].as_f64().unwrap_or(0.0),
        0.35,
        1e-9,
    );
    close(
        b["fee_breakdown"]["purple_flea_builder"]
            .as_f64()
            .unwrap_or(0.0),
        0.2,
        1e-9,
    );
    close(
        b["liquidation_price"].as_f64().unwrap_or(0.0),
        entry * (1.0 - 0.1 + 0.005),
        entry * 1e-5,
    );

    let positions = env.get(T, "/trade/positions", k).await.expect_ok(200);
    assert_eq!(
        positions.body["positions"][0]["position_id"],
        b["position_id"]
    );
    assert_eq!(positions.body["source"], "hyperliquid");

    // Move the market up 2% and close: PnL = size × (exit − entry) / entry, no leverage.
    set_market(&env, "BTC", json!({"price": m * 1.02})).await;
    env.post(T, "/trade/close", k, json!({}))
        .await
        .expect_err(400, "provide position_id");
    env.post(T, "/trade/close", k, json!({"position_id": "pos_nope"}))
        .await
        .expect_err(404, "position_not_found");
    let closed = env
        .post(
            T,
            "/trade/close",
            k,
            json!({"position_id": b["position_id"]}),
        )
        .await
        .expect_ok(200);
    let exit = closed.body["exit_price"].as_f64().unwrap_or(0.0);
    assert!(exit <= m * 1.02 && exit >= m * 1.02 * 0.995);
    let expected = ((1000.0 * (exit - entry) / entry) * 100.0_f64).round() / 100.0;
    close(closed.body["pnl"].as_f64().unwrap_or(0.0), expected, 1e-9);
    assert!(expected > 15.0);
    close(closed.body["fee"].as_f64().unwrap_or(0.0), 0.55, 1e-9);
    env.post(
        T,
        "/trade/close",
        k,
        json!({"position_id": b["position_id"]}),
    )
    .await
    .expect_err(404, "position_not_found");

    let hist = env.get(T, "/trade/history", k).await.expect_ok(200);
    assert_eq!(hist.body["count"], 2);
    let last = &hist.body["trades"][0];
    assert_eq!(last["side"], "sell");
    assert_eq!(last["realizedPnl"], closed.body["pnl"]);
    assert!(last["createdAt"].is_i64());
    let all = env
        .get(T, "/trade/positions?status=all", k)
        .await
        .expect_ok(200);
    assert_eq!(all.body["positions"][0]["status"], "closed");
    let acct = env.get(T, "/auth/account", k).await.expect_ok(200);
    close(
        acct.body["total_fees_paid"].as_f64().unwrap_or(0.0),
        1.1,
        1e-9,
    );

    // Shorts lose when the price rises.
    let short = open(json!({"coin": "ETH", "side": "short", "size_usd": 500, "leverage": 2}))
        .await
        .expect_ok(200);
    let e = mid(&env, "ETH").await;
    set_market(&env, "ETH", json!({"price": e * 1.01})).await;
    let c = env
        .post(
            T,
            "/trade/close",
            k,
            json!({"position_id": short.body["position_id"]}),
        )
        .await
        .expect_ok(200);
    assert!(c.body["pnl"].as_f64().unwrap_or(0.0) < 0.0);
}

#[tokio::test]
async fn no_fill_inside_the_band_is_a_slippage_error() {
    let env = Env::new().await;
    let key = funded(&env, 1_000.0).await;
    let pos = env
        .post(
            T,
            "/trade/open",
            Some(&key),
            json!({"coin": "BTC", "side": "short", "size_usd": 100}),
        )
        .await
        .expect_ok(200);
    set_market(&env, "BTC", json!({"half_spread_bps": 80})).await;
    // The reduce-only close meets the same empty band.
    let r = env
        .post(
            T,
            "/trade/close",
            Some(&key),
            json!({"position_id": pos.body["position_id"]}),
        )
        .await
        .expect_err(400, "close_failed");
    assert_eq!(
        r.body["message"],
        "Order not filled (may have been placed as resting)"
    );
    let r = env
        .post(
            T,
            "/trade/open",
            Some(&key),
            json!({"coin": "BTC", "side": "long", "size_usd": 100}),
        )
        .await
        .expect_err(400, "trade_failed");
    assert_eq!(
        r.body["message"],
        "Order not filled (may have been placed as resting)"
    );
    // A thin book fills only what lies inside the band (IOC): a partial fill.
    set_market(
        &env,
        "BTC",
        json!({"half_spread_bps": 1, "depth_usd": 2_000}),
    )
    .await;
    let r = env
        .post(
            T,
            "/trade/open",
            Some(&key),
            json!({"coin": "BTC", "side": "long", "size_usd": 5_000, "leverage": 10}),
        )
        .await
        .expect_ok(200);
    let filled = r.body["size_usd"].as_f64().unwrap_or(0.0);
    assert!(filled < 5_000.0 && filled > 0.0, "filled {filled}");
}

#[tokio::test]
async fn limit_orders_trigger_on_the_monitor() {
    let env = Env::new().await;
    let key = funded(&env, 5_000.0).await;
    let k = Some(key.as_str());
    let m = mid(&env, "SOL").await;
    let limit = |body: Value| env.post(T, "/trade/limit", k, body);
    limit(json!({"coin": "SOL", "side": "long", "size_usd": 100}))
        .await
        .expect_err(400, "invalid_request");
    limit(json!({"coin": "SOL", "side": "long", "size_usd": 100, "limit_price": -1}))
        .await
        .expect_err(400, "invalid_price");
    limit(json!({"coin": "SOL", "side": "long", "size_usd": 50_000, "limit_price": 1}))
        .await
        .expect_err(400, "too_large");
    limit(json!({"coin": "NOPE", "side": "long", "size_usd": 100, "limit_price": 1}))
        .await
        .expect_err(400, "unknown_coin");

    let target = m * 0.97;
    let order = limit(json!({"coin": "SOL", "side": "long", "size_usd": 200, "limit_price": target, "leverage": 4}))
        .await
        .expect_ok(201);
    assert_eq!(order.body["status"], "pending");
    assert_eq!(order.body["current_price"], m);
    let order_id = order.body["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let chk = env
        .post(T, "/trade/check-limits", k, json!({}))
        .await
        .expect_ok(200);
    assert_eq!(chk.body["count"], 0, "not at the limit yet");

    // The price drops below the limit; the 30 s monitor fills at market.
    set_market(&env, "SOL", json!({"price": m * 0.96})).await;
    env.advance(30.0).await;
    let orders = env.get(T, "/trade/limit-orders", k).await.expect_ok(200);
    let filled = &orders.body["filled"][0];
    assert_eq!(filled["order_id"], order_id.as_str());
    let fill = filled["fill_price"].as_f64().unwrap_or(0.0);
    assert!(
        fill < target,
        "fills at market, not at the limit: {fill} vs {target}"
    );
    let positions = env.get(T, "/trade/positions", k).await.expect_ok(200);
    assert_eq!(
        positions.body["positions"][0]["position_id"],
        filled["position_id"]
    );
    assert_eq!(positions.body["positions"][0]["leverage"], 4.0);

    // At most 10 pending; cancel; not_pending; 404.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = limit(json!({"coin": "ETH", "side": "long", "size_usd": 50, "limit_price": 1}))
            .await
            .expect_ok(201);
        ids.push(r.body["order_id"].as_str().unwrap_or_default().to_owned());
    }
    limit(json!({"coin": "ETH", "side": "long", "size_usd": 50, "limit_price": 1}))
        .await
        .expect_err(400, "limit_reached");
    let env_ref = &env;
    let del = |id: String| async move {
        env_ref
            .call(
                Method::DELETE,
                T,
                &format!("/trade/limit-orders/{id}"),
                k,
                None,
            )
            .await
    };
    assert_eq!(
        del(ids[0].clone()).await.expect_ok(200).body["status"],
        "cancelled"
    );
    del(ids[0].clone()).await.expect_err(400, "not_pending");
    del(order_id).await.expect_err(400, "not_pending");
    del("ord_missing".into())
        .await
        .expect_err(404, "order_not_found");
}

#[tokio::test]
async fn stop_loss_and_take_profit() {
    let env = Env::new().await;
    let key = funded(&env, 5_000.0).await;
    let k = Some(key.as_str());
    let m = mid(&env, "ETH").await;
    let pos = env
        .post(
            T,
            "/trade/open",
            k,
            json!({"coin": "ETH", "side": "long", "size_usd": 1000, "leverage": 5}),
        )
        .await
        .expect_ok(200);
    let pid = pos.body["position_id"].clone();
    env.post(
        T,
        "/trade/stop-loss",
        k,
        json!({"position_id": "pos_x", "trigger_price": 1}),
    )
    .await
    .expect_err(404, "position_not_found");
    env.post(
        T,
        "/trade/stop-loss",
        k,
        json!({"position_id": pid, "trigger_price": "low"}),
    )
    .await
    .expect_err(400, "invalid_trigger_price");
    let sl = env
        .post(
            T,
            "/trade/stop-loss",
            k,
            json!({"position_id": pid, "trigger_price": m * 0.98}),
        )
        .await
        .expect_ok(201);
    assert_eq!(sl.body["type"], "stop_loss");
    assert_eq!(sl.body["side"], "sell", "the close side of a long");
    let tp = env
        .post(
            T,
            "/trade/take-profit",
            k,
            json!({"position_id": pid, "trigger_price": m * 1.05}),
        )
        .await
        .expect_ok(201);
    assert_eq!(tp.body["type"], "take_profit");

    set_market(&env, "ETH", json!({"price": m * 0.975})).await;
    let chk = env
        .post(T, "/trade/check-limits", k, json!({}))
        .await
        .expect_ok(200);
    assert_eq!(chk.body["count"], 1, "{}", chk.text);
    let orders = env.get(T, "/trade/limit-orders", k).await.expect_ok(200);
    assert_eq!(orders.body["filled"][0]["order_type"], "stop_loss");
    assert_eq!(
        orders.body["cancelled"][0]["order_type"], "take_profit",
        "exit orders die with the position"
    );
    assert_eq!(env.get(T, "/trade/positions", k).await.body["count"], 0);
    env.post(
        T,
        "/trade/take-profit",
        k,
        json!({"position_id": pid, "trigger_price": m}),
    )
    .await
    .expect_err(400, "position_not_open");

    // A short's take-profit fires when the price falls to it.
    let short = env
        .post(
            T,
            "/trade/open",
            k,
            json!({"coin": "ETH", "side": "short", "size_usd": 500}),
        )
        .await
        .expect_ok(200);
    let now = mid(&env, "ETH").await;
    env.post(
        T,
        "/trade/take-profit",
        k,
        json!({"position_id": short.body["position_id"], "trigger_price": now * 0.99}),
    )
    .await
    .expect_ok(201);
    set_market(&env, "ETH", json!({"price": now * 0.985})).await;
    env.advance(30.0).await;
    let all = env
        .get(T, "/trade/positions?status=all", k)
        .await
        .expect_ok(200);
    let closed = all.body["positions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"] == "closed")
        .count();
    assert_eq!(closed, 2);
}

#[tokio::test]
async fn daily_loss_limit_blocks_until_midnight() {
    let env = Env::new().await;
    let key = funded(&env, 5_000.0).await;
    let k = Some(key.as_str());
    let rs = env
        .post(
            T,
            "/trade/risk-settings",
            k,
            json!({"max_daily_loss_usd": 5, "max_leverage": 50}),
        )
        .await
        .expect_ok(200);
    assert_eq!(
        rs.body["risk_settings"]["max_leverage"], 10.0,
        "capped at the tier"
    );
    env.post(T, "/trade/risk-settings", k, json!({"max_leverage": -2}))
        .await
        .expect_err(400, "invalid_request");
    let m = mid(&env, "BTC").await;
    let pos = env
        .post(
            T,
            "/trade/open",
            k,
            json!({"coin": "BTC", "side": "long", "size_usd": 1000}),
        )
        .await
        .expect_ok(200);
    set_market(&env, "BTC", json!({"price": m * 0.98})).await;
    let c = env
        .post(
            T,
            "/trade/close",
            k,
            json!({"position_id": pos.body["position_id"]}),
        )
        .await
        .expect_ok(200);
    assert!(c.body["pnl"].as_f64().unwrap_or(0.0) < -5.0);
    let r = env
        .post(
            T,
            "/trade/open",
            k,
            json!({"coin": "BTC", "side": "long", "size_usd": 100}),
        )
        .await
        .expect_err(403, "daily_loss_limit_reached");
    assert_eq!(r.body["resets_at"], "2026-01-02T00:00:00.000Z");
    env.advance(24.0 * 3600.0).await;
    env.post(
        T,
        "/trade/open",
        k,
        json!({"coin": "BTC", "side": "long", "size_usd": 100}),
    )
    .await
    .expect_ok(200);
}
