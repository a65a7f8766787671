//! The [`Sandbox`] itself: building the router, serving it, and driving it from Rust.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{ClockMode, SandboxConfig};
use crate::faults::{FaultConfig, FaultCtx};
use crate::http::{not_found, ok, stamp_info};
use crate::service::Service;
use crate::state::AppState;
use crate::{Error, admin, casino, domains, escrow, faucet, trading, wallet};

/// A running-or-not imitation of the six Purple Flea services. Cheap to clone; clones share
/// state, clock and faults.
#[derive(Debug, Clone)]
pub struct Sandbox {
    state: AppState,
}

impl Sandbox {
    /// Builds a sandbox from a config.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFaults`] when the fault config does not validate.
    pub fn new(config: SandboxConfig) -> Result<Self, Error> {
        config.faults.validate()?;
        let clock = match config.clock {
            ClockMode::System => Clock::system(),
            ClockMode::Manual { start } => Clock::manual(start),
        };
        Ok(Self {
            state: AppState::new(config, clock),
        })
    }

    /// The router serving all six services under their prefixes (see [`Service::prefix`]),
    /// the admin API under `/_admin` and an index at `/`.
    ///
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so per-IP limits
    /// can fall back to the peer address when no `X-Forwarded-For`/`X-Real-IP` is sent.
    pub fn router(&self) -> Router {
        let mut app = Router::new()
            .route("/", get(index))
            .nest("/_admin", admin::router(self.state.clone()));
        for service in Service::ALL {
            let routes = match service {
                Service::Casino => casino::router(self.state.clone()),
                Service::Faucet => faucet::router(self.state.clone()),
                Service::Escrow => escrow::router(self.state.clone()),
                Service::Trading => trading::router(self.state.clone()),
                Service::Wallet => wallet::router(self.state.clone()),
                Service::Domains => domains::router(self.state.clone()),
            };
            let ctx = FaultCtx {
                state: self.state.clone(),
                service,
            };
            let routes = routes
                .fallback(not_found)
                .method_not_allowed_fallback(not_found)
                .layer(from_fn_with_state(ctx, crate::faults::inject))
                .layer(from_fn_with_state(service, stamp_info));
            app = app.nest(service.prefix(), routes);
        }
        app.fallback(not_found)
    }

    /// The sandbox clock (clones share time with the sandbox).
    #[must_use]
    pub fn clock(&self) -> Clock {
        self.state.clock().clone()
    }

    /// Advances the clock; sweeps and monitor passes that fall due run at their due times
    /// (before the next request is handled).
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let now = self.state.clock().advance(by);
        self.state.with_world(|_, _| ());
        now
    }

    /// The live fault config.
    #[must_use]
    pub fn faults(&self) -> FaultConfig {
        self.state.with_faults(|e| e.config().clone())
    }

    /// Replaces the fault config (relative outage windows start from the current clock).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidFaults`] when it does not validate; the old config stays.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), Error> {
        faults.validate()?;
        let now = self.state.clock().now();
        self.state.with_faults(|e| e.replace(faults, now));
        Ok(())
    }

    /// Forgets all service state; `seed` replaces the configured seed.
    pub fn reset(&self, seed: Option<u64>) {
        self.state.reset(seed);
    }

    /// Funds an agent as an on-chain deposit would: casino balance, trading margin or
    /// domains balance. Returns the new balance.
    ///
    /// # Errors
    ///
    /// [`Error::Deposit`] when the agent does not exist on that service, the service keeps no
    /// USD balance (faucet, escrow, wallet: use [`Sandbox::fund_address`]), or the amount is
    /// not positive.
    pub fn deposit(&self, service: Service, agent_id: &str, amount_usd: f64) -> Result<f64, Error> {
        if !(amount_usd > 0.0 && amount_usd.is_finite()) {
            return Err(Error::Deposit("amount_usd must be positive".into()));
        }
        self.state.with_world(|w, cx| {
            let balance = match service {
                Service::Casino => w.casino.deposit(agent_id, amount_usd, cx.now),
                Service::Trading => w.trading.deposit(agent_id, amount_usd),
                Service::Domains => w.domains.deposit(agent_id, amount_usd),
                other => return Err(Error::Deposit(format!("{other} keeps no USD balance"))),
            };
            balance.ok_or_else(|| Error::Deposit(format!("no {service} agent '{agent_id}'")))
        })
    }

    /// Credits `amount` (a decimal string, e.g. `"0.5"`) of `token` (default: the native
    /// coin) to `address` on a simulated chain.
    ///
    /// # Errors
    ///
    /// [`Error::Deposit`] for an unknown chain or token or a malformed amount.
    pub fn fund_address(
        &self,
        chain: &str,
        address: &str,
        amount: &str,
        token: Option<&str>,
    ) -> Result<(), Error> {
        self.state.with_world(|w, _| {
            wallet::fund(w, chain, address, token, amount)
                .map(|_| ())
                .map_err(|e| Error::Deposit(e.body_value().to_string()))
        })
    }

    /// Binds `addr` (port 0 picks a free port) and serves the sandbox on a background task.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be bound.
    pub async fn serve(&self, addr: SocketAddr) -> Result<SandboxHandle, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(addr = %local, "purple flea sandbox listening");
        Ok(SandboxHandle {
            addr: local,
            shutdown: Some(tx),
            task: Some(task),
            sandbox: self.clone(),
        })
    }

    /// Builds a sandbox and serves it on `127.0.0.1:0`.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::new`] and [`Sandbox::serve`].
    pub async fn spawn(config: SandboxConfig) -> Result<SandboxHandle, Error> {
        let sandbox = Sandbox::new(config)?;
        sandbox.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }
}

async fn index() -> crate::http::ApiResult {
    let services: Vec<_> = Service::ALL
        .iter()
        .map(|s| {
            json!({
                "service": s.name(),
                "base_path": format!("{}{}", s.prefix(), s.api_base()),
                "stands_in_for": s.production_base_url(),
            })
        })
        .collect();
    ok(json!({
        "name": "purpleflea-sandbox",
        "services": services,
        "admin": "/_admin",
    }))
}

/// A served sandbox. Dropping it stops the server; [`SandboxHandle::shutdown`] stops it
/// gracefully (in-flight requests get one second, so a hung request does not block it).
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    sandbox: Sandbox,
}

impl SandboxHandle {
    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The sandbox root of a service, standing in for its host: `http://<addr>/<service>`.
    #[must_use]
    pub fn service_url(&self, service: Service) -> String {
        format!("{}{}", self.url(), service.prefix())
    }

    /// The API base URL of a service, standing in for its production base URL:
    /// `http://<addr>/casino/api/v1`, `http://<addr>/faucet`, `http://<addr>/escrow`,
    /// `http://<addr>/trading/v1`, `http://<addr>/wallet/v1`, `http://<addr>/domains/v1`.
    #[must_use]
    pub fn base_url(&self, service: Service) -> String {
        format!("{}{}", self.service_url(service), service.api_base())
    }

    /// The served sandbox (for the clock, faults, deposits).
    #[must_use]
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Stops the server: new connections are refused at once, in-flight requests get one
    /// second.
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] when the server had stopped with an I/O error.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(1), &mut task).await {
            Ok(Ok(result)) => result.map_err(Error::Serve),
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
