//! `escrow_domains`: pays a contractor through escrow and trades domains at auction.
//!
//! The agent holds a casino account (escrow debits it) and hires a contractor agent (a
//! second account it registers, standing in for the agent on the other side). Each cycle:
//!
//! - **Escrow**: create an escrow for the contractor, the contractor marks it complete, the
//!   agent releases it (`create` → `complete` → `release`).
//! - **Domains** (every third cycle): search for a name, register an available one with the
//!   seller account and list it at auction; the buyer account bids the next minimum on open
//!   auctions it does not lead, within its budget.
//!
//! Every failure becomes a typed trading error with the escrow or domain tags. The scheduled
//! job (cron monitor `escrow-domains-recalibrate`) reads the escrow statistics and the
//! auction board and resets the bidding budget.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lookout_agent::breadcrumbs::RiskCheck;
use lookout_agent::{Options, TradingError, TradingSnapshot};
use purpleflea_client::domains::CreateAuction;
use purpleflea_client::escrow::CreateEscrow;
use purpleflea_client::{Client, RegisterRequest, Service};

use crate::common::{AgentConfig, ExampleError, Monitor, RunSummary, Shutdown, capture, on_hub};

/// The strategy name (tag `strategy`).
pub const STRATEGY: &str = "escrow-domains";
/// USD deposited by default in the sandbox on each funded account.
pub const DEFAULT_FUNDING_USD: f64 = 150.0;
/// Escrow per job in USD.
const JOB_USD: f64 = 1.0;
/// Default bidding budget per auction in USD.
const BUDGET_USD: f64 = 20.0;

#[derive(Debug, Default)]
struct Shared {
    escrows_released: u64,
    bids: u64,
    last_escrow: Option<String>,
    budget_usd: f64,
}

/// The agent's accounts.
#[derive(Debug)]
struct Accounts {
    payer: Client,
    contractor: Client,
    contractor_id: String,
    seller: Client,
    buyer: Client,
}

/// Run the agent until `shutdown`. See the [module docs](self).
pub async fn run(config: AgentConfig, shutdown: Shutdown) -> Result<RunSummary, ExampleError> {
    let shared = Arc::new(Mutex::new(Shared {
        budget_usd: BUDGET_USD,
        ..Shared::default()
    }));
    let provider = Arc::clone(&shared);
    let options = Options::new(config.agent_id.clone())
        .strategy(STRATEGY)
        .state_provider(move || {
            let s = provider
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut snap = TradingSnapshot::new()
                .asset("USD")
                .field("escrows_released", s.escrows_released)
                .field("bids", s.bids)
                .field("budget_usd", s.budget_usd);
            if let Some(e) = &s.last_escrow {
                snap = snap.last_order_id(e.clone());
            }
            snap
        });
    let monitor = Monitor::start(&config, options);
    let hub = Arc::clone(&monitor.hub);
    on_hub(&hub, work(config, shutdown, monitor, shared)).await
}

async fn register(config: &AgentConfig, anon: &Client) -> Result<Accounts, ExampleError> {
    let funding = config.funding_usd.unwrap_or(DEFAULT_FUNDING_USD);
    let admin = config.admin();
    let payer = anon.casino().register(&RegisterRequest::new()).await?;
    let contractor = anon.casino().register(&RegisterRequest::new()).await?;
    let seller = anon.domains().register(&RegisterRequest::new()).await?;
    let buyer = anon.domains().register(&RegisterRequest::new()).await?;
    config.controls.publish_account("casino", &payer.agent_id);
    config.controls.publish_account("domains", &buyer.agent_id);
    if funding > 0.0 {
        admin.deposit("casino", &payer.agent_id, funding).await?;
        admin.deposit("domains", &seller.agent_id, funding).await?;
        admin.deposit("domains", &buyer.agent_id, funding).await?;
    }
    Ok(Accounts {
        payer: anon.with_api_key(Service::Casino, &payer.api_key)?,
        contractor: anon.with_api_key(Service::Casino, &contractor.api_key)?,
        contractor_id: contractor.agent_id,
        seller: anon.with_api_key(Service::Domains, &seller.api_key)?,
        buyer: anon.with_api_key(Service::Domains, &buyer.api_key)?,
    })
}

async fn work(
    config: AgentConfig,
    mut shutdown: Shutdown,
    monitor: Monitor,
    shared: Arc<Mutex<Shared>>,
) -> Result<RunSummary, ExampleError> {
    let anon = config.client()?;
    let accounts = register(&config, &anon).await?;

    let session = monitor.session(&config).await;
    let recalibration = {
        let anon = anon.clone();
        let shared = Arc::clone(&shared);
        monitor.schedule(
            &config,
            "escrow-domains-recalibrate",
            move || recalibrate(anon.clone(), Arc::clone(&shared)),
            shutdown.clone(),
        )?
    };

    let mut summary = RunSummary::default();
    let mut listed: BTreeSet<String> = BTreeSet::new();
    loop {
        session.tick();
        if config.controls.take_crash() {
            panic!("escrow_domains: escrow ledger out of sync (simulated crash)");
        }
        summary.cycles += 1;
        match escrow_job(&accounts, summary.cycles, &shared).await {
            Ok(()) => summary.actions += 1,
            Err(error) => {
                summary.errors += 1;
                tracing::warn!(agent = %config.agent_id, %error, "escrow failed");
            }
        }
        if summary.cycles % 3 == 1 {
            match domains(
                &accounts,
                &config.agent_id,
                summary.cycles,
                &mut listed,
                &shared,
            )
            .await
            {
                Ok(bids) => summary.actions += bids,
                Err(error) => {
                    summary.errors += 1;
                    tracing::warn!(agent = %config.agent_id, %error, "domains failed");
                }
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

/// Hire the contractor for one job: create, complete (their side), release.
async fn escrow_job(a: &Accounts, n: u64, shared: &Arc<Mutex<Shared>>) -> Result<(), TradingError> {
    let escrow = a
        .payer
        .escrow()
        .create(
            &CreateEscrow::new(
                JOB_USD,
                format!("job {n}: summarise the order book"),
                &a.contractor_id,
            )
            .timeout_hours(1.0),
        )
        .await
        .map_err(capture)?;
    if let Ok(mut s) = shared.lock() {
        s.last_escrow = Some(escrow.escrow_id.clone());
    }
    a.contractor
        .escrow()
        .complete(&escrow.escrow_id)
        .await
        .map_err(capture)?;
    a.payer
        .escrow()
        .release(&escrow.escrow_id)
        .await
        .map_err(capture)?;
    if let Ok(mut s) = shared.lock() {
        s.escrows_released += 1;
    }
    Ok(())
}

/// Search and list a domain now and then; bid on open auctions. Returns the bids placed.
async fn domains(
    a: &Accounts,
    agent_id: &str,
    n: u64,
    listed: &mut BTreeSet<String>,
    shared: &Arc<Mutex<Shared>>,
) -> Result<u64, TradingError> {
    if listed.len() < 3 {
        let query = format!(
            "{}{n}",
            agent_id.replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        let search = a.seller.domains().search(&query).await.map_err(capture)?;
        if let Some(offer) = search
            .results
            .iter()
            .filter(|o| o.available && o.price_usd.unwrap_or(f64::MAX) <= 40.0)
            .min_by(|x, y| {
                x.price_usd
                    .unwrap_or(0.0)
                    .total_cmp(&y.price_usd.unwrap_or(0.0))
            })
        {
            let registered = a
                .seller
                .domains()
                .register_domain(&offer.domain)
                .await
                .map_err(capture)?;
            a.seller
                .domains()
                .create_auction(&CreateAuction {
                    domain_id: registered.domain_id.clone(),
                    min_bid_usd: 2.0,
                    duration_hours: 1.0,
                })
                .await
                .map_err(capture)?;
            listed.insert(offer.domain.clone());
        }
    }
    let budget = shared.lock().map(|s| s.budget_usd).unwrap_or(BUDGET_USD);
    let board = a.buyer.domains().auctions(None).await.map_err(capture)?;
    let mut bids = 0;
    for auction in board
        .auctions
        .iter()
        .filter(|x| x.status.as_deref() == Some("open"))
    {
        let next = auction
            .next_min_bid_usd
            .or(auction.min_bid_usd)
            .unwrap_or(f64::MAX);
        let within = next <= budget;
        RiskCheck::new("auction_budget_usd", within, next, budget).record();
        if !within {
            continue;
        }
        // Round up to the cent so the 5 % step is met.
        let bid = (next * 100.0).ceil() / 100.0;
        match a
            .buyer
            .domains()
            .bid(&auction.auction_id, bid, auction.domain.as_deref())
            .await
        {
            Ok(_) => bids += 1,
            // Outbid or leading already: the board moved on; not worth an alert.
            Err(e) if e.kind() == purpleflea_client::ErrorKind::BidRejected => {}
            Err(e) => return Err(capture(e)),
        }
    }
    if let Ok(mut s) = shared.lock() {
        s.bids += bids;
    }
    Ok(bids)
}

/// The scheduled job: escrow statistics and the auction board set the bidding budget.
async fn recalibrate(anon: Client, shared: Arc<Mutex<Shared>>) -> Result<(), TradingError> {
    anon.escrow().stats().await.map_err(capture)?;
    let board = anon.domains().auctions(None).await.map_err(capture)?;
    let open = board
        .auctions
        .iter()
        .filter(|x| x.status.as_deref() == Some("open"))
        .count();
    // A crowded board means cheaper names: bid less per auction.
    let budget = if open > 5 {
        BUDGET_USD / 2.0
    } else {
        BUDGET_USD
    };
    if let Ok(mut s) = shared.lock() {
        s.budget_usd = budget;
    }
    Ok(())
}
