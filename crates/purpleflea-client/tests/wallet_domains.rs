//! Wallet and domains through the client against the sandbox: every method, and every
//! documented error code mapped to its kind.

mod common;

use std::time::Duration;

use common::{client, expect_kind, keyed, sandbox};
use purpleflea_client::domains::{CreateAuction, DnsRecordRequest, DnsType};
use purpleflea_client::wallet::{SendRequest, SwapQuoteRequest, SwapRequest};
use purpleflea_client::{ErrorKind, RegisterRequest, Service};
use purpleflea_sandbox::SandboxConfig;

#[tokio::test]
async fn wallet_flow_and_error_kinds() {
    let handle = sandbox(SandboxConfig::for_tests(31)).await;
    let anon = client(&handle);
    let reg = anon
        .wallet()
        .register(&RegisterRequest::new())
        .await
        .expect("register");
    assert!(reg.api_key.starts_with("pk_live_"));
    let c = keyed(&anon, Service::Wallet, &reg.api_key);
    let w = c.wallet();

    let alice = w.create().await.expect("create");
    assert_eq!(alice.mnemonic.split_whitespace().count(), 24);
    assert!(
        !format!("{alice:?}").contains(&alice.mnemonic),
        "Debug leaks the mnemonic"
    );
    let bob = w.create().await.expect("create");
    let key = alice.extra["sandbox_private_keys"]["base"]
        .as_str()
        .expect("sandbox key")
        .to_owned();
    let from = alice.addresses["base"].clone();
    let to = bob.addresses["base"].clone();
    handle
        .sandbox()
        .fund_address("base", &from, "1", None)
        .expect("fund");

    let balance = w.balance(&from, Some("base")).await.expect("balance");
    assert_eq!(balance.balance.native.amount.as_deref(), Some("1.0"));
    assert!(balance.balance.tokens.contains_key("USDC"));

    let send = |amount: &str, chain: &str, to: &str| SendRequest {
        chain: chain.into(),
        to: to.into(),
        amount: amount.into(),
        private_key: key.clone(),
        token: None,
    };
    assert!(
        !format!("{:?}", send("1", "base", &to)).contains(&key),
        "Debug leaks the key"
    );
    let tx = w.send(&send("0.25", "base", &to)).await.expect("send");
    assert!(tx.tx_hash.starts_with("0x"));
    let bob_balance = w.balance(&to, None).await.expect("balance");
    assert_eq!(bob_balance.balance.native.amount.as_deref(), Some("0.25"));

    let e = expect_kind(
        w.send(&send("5", "base", &to)).await,
        ErrorKind::InsufficientFunds,
        Some("send_failed"),
    );
    assert_eq!(e.context().network.as_deref(), Some("base"));
    expect_kind(
        w.send(&send("0.1", "base", "nowhere")).await,
        ErrorKind::Api,
        Some("send_failed"),
    );
    expect_kind(
        w.send(&send("0.1", "bitcoin", &to)).await,
        ErrorKind::Api,
        Some("not_implemented"),
    );
    expect_kind(
        w.send(&send("0.1", "dogecoin", &to)).await,
        ErrorKind::Api,
        Some("unsupported_chain"),
    );
    expect_kind(
        w.balance(&from, Some("dogecoin")).await,
        ErrorKind::Api,
        Some("unsupported_chain"),
    );

    // Swap base ETH → solana USDC: quote, order, pay the deposit, completed.
    let quote_req = SwapQuoteRequest {
        from_chain: "base".into(),
        to_chain: "solana".into(),
        from_token: "ETH".into(),
        to_token: "USDC".into(),
        amount: "100000000000000000".into(),
    };
    let quote = w.swap_quote(&quote_req).await.expect("quote");
    assert!(quote.to_amount().is_some_and(|a| a != "0"), "{quote:?}");
    let order = w
        .swap(&SwapRequest {
            quote: quote_req.clone(),
            to_address: alice.addresses["solana"].clone(),
        })
        .await
        .expect("swap");
    assert_eq!(order.status.as_deref(), Some("awaiting_deposit"));
    let deposit = order.deposit.clone().expect("deposit instructions");
    w.send(&send(
        deposit.amount.as_deref().unwrap_or("0"),
        "base",
        &deposit.address,
    ))
    .await
    .expect("pay the swap");
    let status = w.swap_status(&order.order_id).await.expect("status");
    assert_eq!(status.status.as_deref(), Some("completed"));

    let tiny = SwapQuoteRequest {
        amount: "1".into(),
        ..quote_req.clone()
    };
    expect_kind(
        w.swap_quote(&tiny).await,
        ErrorKind::Api,
        Some("quote_failed"),
    );
    expect_kind(
        w.swap(&SwapRequest {
            quote: quote_req,
            to_address: "nowhere".into(),
        })
        .await,
        ErrorKind::Api,
        Some("swap_failed"),
    );
    expect_kind(
        w.swap_status("wg_missing").await,
        ErrorKind::Api,
        Some("status_check_failed"),
    );
    let wrong = keyed(
        &anon,
        Service::Wallet,
        &format!("pk_live_{}", "0".repeat(48)),
    );
    expect_kind(
        wrong.wallet().create().await,
        ErrorKind::Unauthorized,
        Some("unauthorized"),
    );
}

#[tokio::test]
async fn domains_flow_and_error_kinds() {
    let handle = sandbox(SandboxConfig::for_tests(32)).await;
    let anon = client(&handle);
    let reg = anon
        .domains()
        .register(&RegisterRequest::new())
        .await
        .expect("register");
    assert!(reg.api_key.starts_with("sk_domains_"));
    assert_eq!(reg.balance, Some(0.0));
    let seller = keyed(&anon, Service::Domains, &reg.api_key);
    let d = seller.domains();
    assert_eq!(d.account().await.expect("account").balance_usd, 0.0);
    let addr = d.deposit_address(Some("base")).await.expect("address");
    assert_eq!(addr.chain, "base");
    expect_kind(
        d.deposit_address(Some("dogecoin")).await,
        ErrorKind::Api,
        Some("unsupported_chain"),
    );

    let search = anon.domains().search("lookoutagent").await.expect("search");
    let offer = search
        .results
        .iter()
        .find(|r| r.available)
        .expect("an available domain");
    let name = offer.domain.clone();
    let e = expect_kind(
        d.register_domain(&name).await,
        ErrorKind::InsufficientBalance,
        Some("insufficient_balance"),
    );
    assert_eq!(e.context().tld(), name.rsplit_once('.').map(|(_, tld)| tld));
    handle
        .sandbox()
        .deposit(purpleflea_sandbox::Service::Domains, &reg.agent_id, 100.0)
        .expect("deposit");
    let registered = d.register_domain(&name).await.expect("register domain");
    assert_eq!(registered.status.as_deref(), Some("active"));
    assert!(registered.balance_usd.unwrap_or(100.0) < 100.0);
    expect_kind(
        d.register_domain(&name).await,
        ErrorKind::Registration,
        Some("domain_unavailable"),
    );
    expect_kind(
        d.register_domain("no_tld").await,
        ErrorKind::Registration,
        Some("invalid_domain"),
    );
    assert_eq!(d.list().await.expect("list").domains.len(), 1);

    let record = d
        .add_dns_record(&DnsRecordRequest {
            domain_id: registered.domain_id.clone(),
            record_type: DnsType::A,
            name: "@".into(),
            content: "203.0.113.7".into(),
            ttl: Some(300),
        })
        .await
        .expect("dns record");
    assert_eq!(record.record_type.as_deref(), Some("A"));
    assert_eq!(
        d.dns_records(&registered.domain_id)
            .await
            .expect("records")
            .records
            .len(),
        1
    );
    let record_id = record.record_id.clone().expect("record id");
    d.delete_dns_record(&record_id).await.expect("delete");
    expect_kind(
        d.delete_dns_record(&record_id).await,
        ErrorKind::Api,
        Some("record_not_found"),
    );

    let auction = d
        .create_auction(&CreateAuction {
            domain_id: registered.domain_id.clone(),
            min_bid_usd: 5.0,
            duration_hours: 2.0,
        })
        .await
        .expect("auction");
    assert_eq!(auction.status.as_deref(), Some("open"));
    expect_kind(
        d.create_auction(&CreateAuction {
            domain_id: registered.domain_id.clone(),
            min_bid_usd: 5.0,
            duration_hours: 2.0,
        })
        .await,
        ErrorKind::Api,
        Some("already_listed"),
    );

    let breg = anon
        .domains()
        .register(&RegisterRequest::new())
        .await
        .expect("register bidder");
    let bidder = keyed(&anon, Service::Domains, &breg.api_key);
    let b = bidder.domains();
    let id = &auction.auction_id;
    let e = expect_kind(
        b.bid(id, 1.0, Some(&name)).await,
        ErrorKind::BidRejected,
        Some("bid_too_low"),
    );
    assert_eq!(e.context().auction_id.as_deref(), Some(id.as_str()));
    expect_kind(
        b.bid(id, -1.0, Some(&name)).await,
        ErrorKind::BidRejected,
        Some("invalid_bid"),
    );
    expect_kind(
        d.bid(id, 6.0, Some(&name)).await,
        ErrorKind::BidRejected,
        Some("cannot_self_bid"),
    );
    expect_kind(
        b.bid(id, 6.0, Some(&name)).await,
        ErrorKind::InsufficientBalance,
        Some("insufficient_balance"),
    );
    handle
        .sandbox()
        .deposit(purpleflea_sandbox::Service::Domains, &breg.agent_id, 50.0)
        .expect("deposit");
    let receipt = b.bid(id, 6.0, Some(&name)).await.expect("bid");
    assert_eq!(receipt.bid_usd, Some(6.0));
    let listed = anon.domains().auctions(None).await.expect("auctions");
    assert!(listed.auctions.iter().any(|a| &a.auction_id == id));
    assert_eq!(
        anon.domains()
            .auction(id)
            .await
            .expect("auction")
            .bids
            .len(),
        1
    );
    expect_kind(
        anon.domains().auction("auc_missing").await,
        ErrorKind::Api,
        Some("auction_not_found"),
    );

    // Past ends_at: auction_expired; once GET /auctions marked it, auction_closed + expired.
    handle.sandbox().advance(Duration::from_secs(3 * 3600));
    expect_kind(
        b.bid(id, 10.0, Some(&name)).await,
        ErrorKind::AuctionExpired,
        Some("auction_expired"),
    );
    let all = anon
        .domains()
        .auctions(Some("all"))
        .await
        .expect("auctions");
    assert!(
        all.auctions
            .iter()
            .any(|a| &a.auction_id == id && a.status.as_deref() == Some("expired"))
    );
    expect_kind(
        b.bid(id, 10.0, Some(&name)).await,
        ErrorKind::AuctionExpired,
        Some("auction_closed"),
    );
    let wrong = keyed(
        &anon,
        Service::Domains,
        &format!("sk_domains_{}", "0".repeat(48)),
    );
    expect_kind(
        wrong.domains().account().await,
        ErrorKind::Unauthorized,
        Some("invalid_key"),
    );
}
