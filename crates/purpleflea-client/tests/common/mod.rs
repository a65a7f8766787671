//! Shared helpers: a sandbox on an ephemeral port and clients pointed at it.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use purpleflea_client::{Client, ClientBuilder, Error, ErrorKind, RetryPolicy, Service, Sleeper};
use purpleflea_sandbox::{Sandbox, SandboxConfig, SandboxHandle};

/// A sandbox on 127.0.0.1:0.
pub async fn sandbox(config: SandboxConfig) -> SandboxHandle {
    Sandbox::spawn(config).await.expect("sandbox starts")
}

/// A builder pointed at the sandbox, without retries.
pub fn builder(handle: &SandboxHandle) -> ClientBuilder {
    Client::builder()
        .sandbox(handle.url())
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_secs(5))
}

/// A client pointed at the sandbox, without retries.
pub fn client(handle: &SandboxHandle) -> Client {
    builder(handle).build().expect("client builds")
}

/// The same client with a key.
pub fn keyed(client: &Client, service: Service, key: &str) -> Client {
    client
        .with_api_key(service, key)
        .expect("key has the right prefix")
}

/// Asserts an error's kind and raw code, returning the error.
#[track_caller]
pub fn expect_kind<T: std::fmt::Debug>(
    result: Result<T, Error>,
    kind: ErrorKind,
    code: Option<&str>,
) -> Error {
    let err = match result {
        Ok(v) => panic!("expected {kind} ({code:?}), got Ok({v:?})"),
        Err(e) => e,
    };
    assert_eq!(
        (err.kind(), err.code()),
        (kind, code),
        "unexpected error: {err} body={:?}",
        err.body()
    );
    err
}

/// A sleeper that records each wait and runs a hook instead of sleeping.
#[derive(Clone, Default)]
pub struct Recorder {
    pub waits: Arc<Mutex<Vec<Duration>>>,
}

impl Recorder {
    pub fn sleeper(&self, hook: impl Fn(Duration) + Send + Sync + 'static) -> Sleeper {
        let waits = Arc::clone(&self.waits);
        Sleeper::new(move |d| {
            waits.lock().expect("lock").push(d);
            hook(d);
            async {}
        })
    }

    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().expect("lock").clone()
    }
}

/// A registered casino agent with a funded balance: (client with key, agent id).
pub async fn casino_agent(handle: &SandboxHandle, client: &Client, fund: f64) -> (Client, String) {
    let reg = client
        .casino()
        .register(&purpleflea_client::RegisterRequest::new())
        .await
        .expect("casino registration");
    if fund > 0.0 {
        handle
            .sandbox()
            .deposit(purpleflea_sandbox::Service::Casino, &reg.agent_id, fund)
            .expect("deposit");
    }
    (keyed(client, Service::Casino, &reg.api_key), reg.agent_id)
}

/// A registered trading agent with margin: (API key, agent id).
pub async fn trading_registration(
    handle: &SandboxHandle,
    client: &Client,
    fund: f64,
) -> (String, String) {
    let reg = client
        .trading()
        .register(&Default::default())
        .await
        .expect("trading registration");
    assert!(reg.api_key.starts_with("sk_trade_"));
    if fund > 0.0 {
        handle
            .sandbox()
            .deposit(purpleflea_sandbox::Service::Trading, &reg.agent_id, fund)
            .expect("deposit");
    }
    (reg.api_key, reg.agent_id)
}

/// A registered trading agent with margin: (client with key, agent id).
pub async fn trading_agent(handle: &SandboxHandle, client: &Client, fund: f64) -> (Client, String) {
    let (key, agent) = trading_registration(handle, client, fund).await;
    (keyed(client, Service::Trading, &key), agent)
}

/// Sets a trading market's book through the sandbox admin API.
pub async fn set_market(handle: &SandboxHandle, coin: &str, body: serde_json::Value) {
    let status = reqwest::Client::new()
        .put(format!("{}/_admin/trading/markets/{coin}", handle.url()))
        .json(&body)
        .send()
        .await
        .expect("admin call")
        .status();
    assert!(status.is_success(), "admin market update: {status}");
}
