//! The email channel end to end: an error from the Rust agent library, just after its
//! release was deployed, fires the critical-trade-failure and new-issue-after-deploy presets
//! and a Sentry-shaped email rule; the notifier delivers them over SMTP to a local receiver
//! standing in for the mail server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use lookout_agent::{Options, Phase, TradingError, TradingErrorKind, capture_trading_error};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server (RFC 5321 without extensions) recording every message.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 receiver.test ESMTP\r\n").await;
                let mut mail = Mail::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-receiver.test\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("HELO")
                        || upper.starts_with("RSET")
                        || upper.starts_with("NOOP")
                    {
                        b"250 OK\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        mail = Mail {
                            from: line[10..].trim().to_owned(),
                            ..Mail::default()
                        };
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        mail.to.push(line[8..].trim().to_owned());
                        b"250 OK\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            mail.data.push_str(data.strip_prefix('.').unwrap_or(&data));
                            mail.data.push('\n');
                        }
                        store.lock().unwrap().push(std::mem::take(&mut mail));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_failures_are_mailed_over_smtp() {
    let s = TestServer::start().await;
    let token = s.token();
    let (port, mails) = smtp_receiver().await;
    let api = s.api_client(&token);
    let channels = "/api/0/organizations/default/integrations/";

    // A bad config is refused with the key named.
    let refused = api
        .post(
            channels,
            &json!({"provider": "email", "name": "ops mail", "config": {"host": "127.0.0.1", "to": "ops@example.com"}}),
        )
        .await
        .expect(400);
    assert!(refused.to_string().contains("config.from"), "{refused}");

    api.post(
        channels,
        &json!({"provider": "email", "name": "ops mail", "config": {
            "host": "127.0.0.1", "port": port, "tls": "none",
            "from": "Lookout <alerts@lookout.test>", "to": ["ops@example.com"]}}),
    )
    .await
    .expect(201);

    // Sentry's email action, aimed at one address.
    api.post(
        "/api/0/projects/default/default/rules/",
        &json!({"name": "Mail on-call on new issues", "actionMatch": "all", "frequency": 5,
            "conditions": [{"id": "sentry.rules.conditions.first_seen_event.FirstSeenEventCondition"}],
            "actions": [{"id": "sentry.mail.actions.NotifyEmailAction", "targetType": "Member",
                         "targetIdentifier": "oncall@example.com"}]}),
    )
    .await
    .expect(201);

    // The agent's release was just deployed (as sentry-cli does it): its new issue also fires
    // the new-issue-after-deploy preset.
    api.post(
        "/api/0/organizations/default/releases/",
        &json!({"version": "mail-bot@1.0.0", "projects": ["default"]}),
    )
    .await
    .expect(201);
    api.post(
        "/api/0/organizations/default/releases/mail-bot@1.0.0/deploys/",
        &json!({"environment": "production"}),
    )
    .await
    .expect(201);

    let dsn = s.dsn();
    tokio::task::spawn_blocking(move || {
        let hub = Options::new("ag_mail")
            .dsn(dsn)
            .release("mail-bot@1.0.0")
            .hub();
        sentry::Hub::run(hub.clone(), || {
            capture_trading_error(
                &TradingError::new(TradingErrorKind::OrderRejected, "leverage above the cap")
                    .with_trading("BTC", "buy", "ord_9", None)
                    .with_phase(Phase::OrderPlacement),
            );
        });
        assert!(hub.client().unwrap().flush(Some(Duration::from_secs(10))));
    })
    .await
    .unwrap();

    let got = s
        .eventually("the on-call and preset mails", || async {
            let got = mails.lock().unwrap().clone();
            let has = |needle: &str| got.iter().any(|m| m.data.contains(needle));
            (has("Mail on-call on new issues")
                && has("Critical trade failure")
                && has("New issue after deploy"))
            .then_some(got)
        })
        .await;
    let to = |address: &str| {
        got.iter()
            .filter(|m| m.to.iter().any(|t| t.contains(address)))
            .cloned()
            .collect::<Vec<_>>()
    };
    let oncall = to("oncall@example.com");
    assert_eq!(oncall.len(), 1, "{got:#?}");
    assert!(oncall[0].from.contains("alerts@lookout.test"));
    assert!(
        oncall[0].data.contains("Subject: [Lookout]"),
        "{}",
        oncall[0].data
    );
    assert!(oncall[0].data.contains("Mail on-call on new issues"));
    assert!(oncall[0].data.contains("OrderRejected"));
    // The preset notifies every channel, the email channel's own recipients included, once.
    let critical: Vec<_> = to("ops@example.com")
        .into_iter()
        .filter(|m| {
            m.data
                .contains("Subject: [Lookout] CRITICAL: Critical trade failure")
        })
        .collect();
    assert_eq!(critical.len(), 1, "{got:#?}");
    // The title names the error type and what the trading fingerprint split on (the body is
    // quoted-printable: long lines are folded, so the message is checked up to the fold).
    assert!(
        critical[0]
            .data
            .contains("OrderRejected (BTC, order_placement): lev"),
        "{}",
        critical[0].data
    );

    let deliveries = s
        .eventually("email deliveries recorded", || async {
            let (_, d) = s
                .api(
                    &token,
                    "/api/0/organizations/default/notification-deliveries/?limit=100",
                )
                .await;
            let list: Vec<Value> = d
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|x| x["provider"] == "email")
                .collect();
            (list.len() >= 2 && list.iter().all(|x| x["status"] == "delivered")).then_some(list)
        })
        .await;
    assert!(deliveries.len() >= 2, "{deliveries:#?}");
}
