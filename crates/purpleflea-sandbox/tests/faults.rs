//! Fault injection through the admin API and the Rust API: 429s with Retry-After, bursts,
//! latency, hangs, outage windows, real error bodies, runtime changes, determinism.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use purpleflea_sandbox::{FaultConfig, FaultRule, Latency, Outage, SandboxConfig, Service};
use reqwest::Method;
use serde_json::{Value, json};

async fn put_faults(env: &Env, config: Value) -> Value {
    env.admin(Method::PUT, "/faults", Some(config))
        .await
        .expect_ok(200)
        .body
}

#[tokio::test]
async fn injected_429_carries_retry_after_and_rate_limit_headers() {
    let env = Env::new().await;
    put_faults(&env, json!({
        "services": {"casino": {"endpoints": {"GET /games": {"errors": {"429": 1.0}, "retry_after_secs": 7}}}}
    }))
    .await;
    let r = env
        .get(Service::Casino, "/games", None)
        .await
        .expect_err(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("7"));
    assert!(r.header("x-ratelimit-limit").is_some());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(
        r.header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some()
    );
    // Only that endpoint: the rest of the casino answers normally.
    env.get_root(Service::Casino, "/health")
        .await
        .expect_ok(200);
    // Website style: the website's body shape.
    put_faults(
        &env,
        json!({
            "rate_limit_style": "website",
            "services": {"casino": {"errors": {"429": 1.0}}}
        }),
    )
    .await;
    let r = env
        .get(Service::Casino, "/games", None)
        .await
        .expect_err(429, "rate_limit_exceeded");
    assert_eq!(r.body["retry_after_seconds"], 1);
    assert!(r.body["reset_at"].is_string());
    // Cleared at runtime.
    env.admin(Method::DELETE, "/faults", None)
        .await
        .expect_ok(200);
    env.get(Service::Casino, "/games", None)
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn bursts_last_on_the_sandbox_clock() {
    let env = Env::new().await;
    put_faults(&env, json!({
        "services": {"trading": {"rate_limit_burst": {"probability": 1.0, "duration_secs": 30, "limit": 20}}}
    }))
    .await;
    let r = env
        .get(Service::Trading, "/markets", None)
        .await
        .expect_err(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("30"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("20"));
    assert_eq!(r.body["message"], "Too many requests. Limit: 20 per 60s");
    env.advance(12.0).await;
    let r = env
        .get(Service::Trading, "/markets", None)
        .await
        .expect_err(429, "rate_limited");
    assert_eq!(
        r.header("retry-after"),
        Some("18"),
        "the same burst, 18 s left"
    );
    env.get(Service::Domains, "/domains/search?q=x", None)
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn real_error_bodies_per_service_and_status() {
    let env = Env::new().await;
    put_faults(
        &env,
        json!({
            "services": {
                "trading": {"errors": {"401": 1.0}},
                "wallet": {"errors": {"502": 1.0}},
                "escrow": {"errors": {"500": 1.0}},
                "faucet": {"errors": {"503": 1.0}},
                "domains": {"endpoints": {"POST /auctions/*/bid": {"errors": {"409": 1.0}}}}
            }
        }),
    )
    .await;
    env.get(Service::Trading, "/markets", None)
        .await
        .expect_err(401, "invalid_key");
    env.get(Service::Wallet, "/wallet/balance/0x00", None)
        .await
        .expect_err(502, "rpc_error");
    env.get(Service::Escrow, "/escrow/stats", None)
        .await
        .expect_err(500, "internal_error");
    let r = env.get(Service::Faucet, "/faucet/stats", None).await;
    assert_eq!(r.status, 503);
    assert!(
        r.text.contains("503 Service Temporarily Unavailable"),
        "a proxy page: {}",
        r.text
    );
    assert_eq!(r.header("content-type"), Some("text/html"));
    env.post(Service::Domains, "/auctions/auc_1/bid", None, json!({}))
        .await
        .expect_err(409, "conflict");
    env.get(Service::Domains, "/auctions", None)
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn latency_and_hangs_are_real_delays() {
    let env = Env::new().await;
    put_faults(
        &env,
        json!({
            "services": {
                "faucet": {"latency": {"median_ms": 250, "sigma": 0, "max_ms": 250}},
                "trading": {"hang": {"probability": 1.0, "duration_ms": 30000}}
            }
        }),
    )
    .await;
    let started = Instant::now();
    env.get(Service::Faucet, "/faucet/stats", None)
        .await
        .expect_ok(200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = client
        .get(env.url(Service::Trading, "/markets"))
        .send()
        .await
        .expect_err("the request hangs past the client timeout");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The hang does not block other services, nor shutting the sandbox down.
    env.get_root(Service::Casino, "/health")
        .await
        .expect_ok(200);
    let Env { handle, .. } = env;
    handle.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn outage_window_from_toml_and_runtime_change() {
    let env = Env::new().await;
    let toml = r#"
        [[services.escrow.outages]]
        start_in_secs = 0
        duration_secs = 60
        status = 503
    "#;
    let r = env
        .http
        .put(format!("{}/_admin/faults", env.handle.url()))
        .header("content-type", "application/toml")
        .body(toml)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let shown: Value = r.json().await.expect("json");
    let outage = &shown["services"]["escrow"]["outages"][0];
    assert_eq!(
        outage["start"], "2026-01-01T00:00:00Z",
        "relative windows resolve to absolute times"
    );
    assert_eq!(outage["end"], "2026-01-01T00:01:00Z");

    assert_eq!(env.get_root(Service::Escrow, "/health").await.status, 503);
    env.get_root(Service::Casino, "/health")
        .await
        .expect_ok(200);
    env.advance(59.0).await;
    assert_eq!(
        env.get(Service::Escrow, "/escrow/stats", None).await.status,
        503
    );
    env.advance(1.0).await;
    env.get(Service::Escrow, "/escrow/stats", None)
        .await
        .expect_ok(200);

    // A later outage set from Rust, starting 10 s from now, for every service.
    env.sandbox()
        .set_faults(FaultConfig::none().with_service(
            Service::Domains,
            FaultRule {
                outages: vec![Outage {
                    start_in_secs: Some(10.0),
                    duration_secs: Some(5.0),
                    status: Some(502),
                    ..Outage::default()
                }],
                ..FaultRule::default()
            },
        ))
        .expect("valid");
    env.get_root(Service::Domains, "/health")
        .await
        .expect_ok(200);
    env.advance(10.0).await;
    assert_eq!(env.get_root(Service::Domains, "/health").await.status, 502);
    env.advance(5.0).await;
    env.get_root(Service::Domains, "/health")
        .await
        .expect_ok(200);
}

#[tokio::test]
async fn invalid_fault_configs_are_rejected_with_the_key() {
    let env = Env::new().await;
    let r = env
        .admin(
            Method::PUT,
            "/faults",
            Some(json!({"services": {"bank": {}}})),
        )
        .await
        .expect_err_admin(400, "invalid_faults");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("services.bank"))
    );
    let r = env
        .admin(
            Method::PUT,
            "/faults",
            Some(json!({"default": {"errors": {"500": 2.0}}})),
        )
        .await
        .expect_err_admin(400, "invalid_faults");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("default.errors"))
    );
    assert!(FaultConfig::from_toml_str("[default]\nhang = { probability = 3 }").is_err());
    // The config from a file, as `lookout sandbox --faults FILE` loads it.
    let path = std::env::temp_dir().join(format!("pf-faults-{}.toml", std::process::id()));
    std::fs::write(&path, "[services.wallet]\nerrors = { \"500\" = 1.0 }\n").expect("write");
    let config = FaultConfig::load(&path).expect("loads");
    let _ = std::fs::remove_file(&path);
    let env = Env::with(SandboxConfig::for_tests(1).faults(config)).await;
    env.get_root(Service::Wallet, "/health")
        .await
        .expect_err(500, "internal_error");
    assert!(FaultConfig::load("/nonexistent/faults.toml").is_err());
}

#[tokio::test]
async fn fault_decisions_are_deterministic_under_the_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let mut faults = FaultConfig::none();
        faults.default.errors = Some([("500".to_owned(), 0.5)].into_iter().collect());
        faults.default.latency = Some(Latency::zero());
        let env = Env::with(SandboxConfig::for_tests(seed).faults(faults)).await;
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(env.get_root(Service::Casino, "/health").await.status);
        }
        out
    }
    let a = statuses(5).await;
    assert_eq!(a, statuses(5).await);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
    assert_ne!(a, statuses(6).await);
}

trait AdminErr {
    fn expect_err_admin(self, status: u16, code: &str) -> Value;
}

impl AdminErr for common::Resp {
    #[track_caller]
    fn expect_err_admin(self, status: u16, code: &str) -> Value {
        assert_eq!((self.status, self.code()), (status, code), "{}", self.text);
        self.body
    }
}
