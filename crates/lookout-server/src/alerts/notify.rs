//! Channels and delivery: what each channel receives, and the notifier that delivers the
//! outbox with retries and exponential backoff, one request per row, channels in parallel
//! (a dead channel never holds up the others), every attempt recorded.
//!
//! # Verifying a Lookout webhook
//!
//! A `webhook` channel with a `secret` receives `POST <url>` with a JSON body and:
//!
//! * `Lookout-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! * `Lookout-Delivery: <outbox id>` (the same on every retry of one notification: an
//!   idempotency key)
//!
//! Recompute the HMAC over the timestamp, a dot and the raw body bytes, compare in constant
//! time, and refuse timestamps older than a few minutes. An agent can then pause trading on
//! `{"action": "triggered", ...}` and resume on `"resolved"`.

use crate::store::outbox::{Attempt, Due, Outbox};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

mod email;

/// Trigger or resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// A new or escalated alert.
    Trigger,
    /// The alert recovered.
    Resolve,
}

/// A notification, before it is shaped for a channel.
#[derive(Debug, Clone)]
pub struct Message {
    /// `issue` or `metric`.
    pub kind: &'static str,
    /// Trigger or resolve.
    pub action: Act,
    /// The rule that opened it.
    pub rule_id: i64,
    /// The name of that rule.
    pub rule_name: String,
    /// The project it belongs to.
    pub project: String,
    /// The incident it is about.
    pub incident_id: i64,
    /// critical, error, warning, info, resolved.
    pub severity: String,
    /// Title as shown in lists.
    pub title: String,
    /// One line for chat channels.
    pub text: String,
    /// Culprit (issue alerts).
    pub culprit: String,
    /// The metric's value.
    pub value: Option<f64>,
    /// Link to the UI.
    pub url: String,
    /// Stable key across trigger and resolve (PagerDuty `dedup_key`).
    pub dedup_key: String,
    /// The issue (issue alerts).
    pub issue: Option<Value>,
    /// The event (issue alerts).
    pub event: Option<Value>,
    /// The agent the alert is about, when it is about one (Telegram's Pause button).
    pub agent: Option<String>,
    /// When it happened (ms since the epoch).
    pub at: i64,
}

/// A configured channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Integration id.
    pub id: i64,
    /// slack, pagerduty, webhook, telegram.
    pub provider: String,
    /// The name the operator gave it.
    pub name: String,
    /// Provider config.
    pub config: Value,
}

/// Providers Lookout delivers to.
pub const PROVIDERS: &[&str] = &["slack", "pagerduty", "webhook", "telegram", "email"];

/// Check a channel's config; the message says which key is wrong.
pub fn validate_config(provider: &str, config: &Value) -> std::result::Result<(), String> {
    let has = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let url_ok = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .is_none_or(|u| u.starts_with("http://") || u.starts_with("https://"))
    };
    match provider {
        "slack" | "webhook" if !has("url") => Err("config.url is required".into()),
        "slack" | "webhook" if !url_ok("url") => Err("config.url must be an http(s) URL".into()),
        "pagerduty" if !has("routing_key") => Err("config.routing_key is required".into()),
        "pagerduty" if !url_ok("url") => Err("config.url must be an http(s) URL".into()),
        "telegram" if !has("bot_token") => Err("config.bot_token is required".into()),
        "telegram" if config.get("chat_id").is_none() => Err("config.chat_id is required".into()),
        "telegram" if !url_ok("api_base") => Err("config.api_base must be an http(s) URL".into()),
        "telegram" => crate::alerts::telegram_bot::validate(config),
        "slack" | "webhook" | "pagerduty" => Ok(()),
        "email" => email::validate(config),
        other => Err(format!(
            "unknown provider {other:?}; use one of slack, pagerduty, webhook, telegram, email"
        )),
    }
}

/// The URL and JSON body `channel` receives for `m`.
pub fn render(
    channel: &Channel,
    target: Option<&str>,
    m: &Message,
) -> std::result::Result<(String, Value), String> {
    validate_config(&channel.provider, &channel.config)?;
    let cfg = |k: &str| {
        channel
            .config
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let resolved = m.action == Act::Resolve;
    Ok(match channel.provider.as_str() {
        "slack" => {
            let emoji = if resolved {
                ":white_check_mark:"
            } else if m.severity == "warning" {
                ":warning:"
            } else {
                ":rotating_light:"
            };
            let mut body = json!({
                "text": format!("{emoji} {} <{}|open in Lookout>", m.text, m.url),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": format!("{emoji} *{}*\n{}", slack_escape(&m.rule_name), slack_escape(&m.text))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("project {} · <{}|open in Lookout>", slack_escape(&m.project), m.url)}]}
                ]
            });
            if let Some(channel_name) = target.or(cfg("channel").as_deref()) {
                body["channel"] = json!(channel_name);
            }
            (cfg("url").unwrap_or_default(), body)
        }
        "pagerduty" => {
            let url =
                cfg("url").unwrap_or_else(|| "https://events.pagerduty.com/v2/enqueue".into());
            let severity = match target.unwrap_or(m.severity.as_str()) {
                "critical" | "fatal" => "critical",
                "error" => "error",
                "warning" => "warning",
                _ => "info",
            };
            let body = if resolved {
                json!({"routing_key": cfg("routing_key"), "event_action": "resolve", "dedup_key": m.dedup_key})
            } else {
                json!({
                    "routing_key": cfg("routing_key"),
                    "event_action": "trigger",
                    "dedup_key": m.dedup_key,
                    "payload": {
                        "summary": truncate(&m.text, 1024),
                        "source": if m.culprit.is_empty() { m.project.clone() } else { truncate(&m.culprit, 255) },
                        "severity": severity,
                        "component": m.project,
                        "group": m.rule_name,
                        "class": m.kind,
                        "timestamp": crate::time::iso(m.at),
                        "custom_details": {"rule_id": m.rule_id, "incident_id": m.incident_id, "value": m.value, "issue": m.issue}
                    },
                    "links": [{"href": m.url, "text": "Open in Lookout"}]
                })
            };
            (url, body)
        }
        "telegram" => {
            let base = cfg("api_base").unwrap_or_else(|| "https://api.telegram.org".into());
            let token = cfg("bot_token").unwrap_or_default();
            let chat = channel
                .config
                .get("chat_id")
                .cloned()
                .unwrap_or(Value::Null);
            let mark = if resolved {
                "✅"
            } else if m.severity == "warning" {
                "⚠️"
            } else {
                "🚨"
            };
            let mut body = json!({"chat_id": chat, "text": truncate(&format!("{mark} {}\n{}", m.text, m.url), 4000), "disable_web_page_preview": true});
            if !resolved {
                body["reply_markup"] = crate::alerts::telegram_bot::alert_buttons(m);
            }
            (
                format!("{}/bot{token}/sendMessage", base.trim_end_matches('/')),
                body,
            )
        }
        "email" => email::render(&channel.config, target, m),
        _ => (
            cfg("url").unwrap_or_default(),
            json!({
                "action": if resolved { "resolved" } else { "triggered" },
                "kind": m.kind,
                "rule": {"id": m.rule_id.to_string(), "name": m.rule_name},
                "project": m.project,
                "incident": {"id": m.incident_id.to_string(), "severity": m.severity, "title": m.title, "value": m.value, "url": m.url},
                "issue": m.issue,
                "event": m.event,
                "text": m.text,
                "timestamp": crate::time::iso(m.at),
            }),
        ),
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Slack mrkdwn control characters, escaped as Slack asks.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `t=<unix>,v1=<hex>` for `body` signed with `secret` at `unix`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Backoff before attempt `n+1` after `n` failures: 1 s, 2 s, 4 s … capped at 5 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    1000i64
        .saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(300_000)
}

/// Attempts before a notification is marked failed.
pub const MAX_ATTEMPTS: i64 = 12;

/// Delivers the outbox.
#[derive(Debug)]
pub struct Notifier {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn config_of(outbox: &Outbox, integration: i64) -> Option<Value> {
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || outbox.channel_config(integration))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
}

async fn deliver(client: &reqwest::Client, outbox: &Outbox, d: Due) {
    let start = Instant::now();
    if d.provider == "email" {
        let result = match config_of(outbox, d.integration_id).await {
            Some(config) => email::send(&config, &d.body).await,
            None => Err("the email channel no longer exists".to_owned()),
        };
        let (status, error) = match result {
            Ok(code) => (Some(code), None),
            Err(e) => {
                tracing::warn!(outbox = d.id, error = %e, "email delivery failed; will retry");
                (None, Some(e))
            }
        };
        finish(outbox, d, status, error, start).await;
        return;
    }
    let mut req = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Lookout-Delivery", d.id.to_string());
    if d.provider == "webhook" {
        let secret = config_of(outbox, d.integration_id)
            .await
            .and_then(|c| c.get("secret").and_then(Value::as_str).map(str::to_owned));
        if let Some(secret) = secret {
            let now = chrono::Utc::now().timestamp();
            req = req.header(
                "Lookout-Signature",
                signature(&secret, now, d.body.as_bytes()),
            );
        }
    }
    let retry = req.try_clone();
    let mut result = req.body(d.body.clone()).send().await;
    // A pooled connection the receiver had already closed fails before anything was sent:
    // try once more at once on a fresh connection instead of waiting for the back-off.
    if let (Err(e), Some(again)) = (&result, retry)
        && (e.is_connect() || e.is_request())
        && !e.is_timeout()
    {
        result = again.body(d.body.clone()).send().await;
    }
    let (status, error) = match result {
        Ok(r) => (Some(r.status().as_u16()), None),
        Err(e) => {
            tracing::warn!(outbox = d.id, provider = %d.provider, error = %e, "notification delivery failed; will retry");
            (None, Some(format!("{e:#}")))
        }
    };
    finish(outbox, d, status, error, start).await;
}

/// Record one attempt: its status (HTTP, or the SMTP reply code), error and duration.
async fn finish(
    outbox: &Outbox,
    d: Due,
    status: Option<u16>,
    error: Option<String>,
    start: Instant,
) {
    let now = chrono::Utc::now().timestamp_millis();
    let attempts = d.attempts + 1;
    // 4xx other than 408/429 will not get better by retrying.
    let permanent = status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
    let attempt = Attempt {
        at: now,
        delivered: status.is_some_and(|s| (200..300).contains(&s)),
        gave_up: permanent || attempts >= MAX_ATTEMPTS,
        next_attempt_at: now + backoff_ms(attempts - 1),
        status,
        error,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    };
    let outbox = outbox.clone();
    let outcome = tokio::task::spawn_blocking(move || outbox.record(&d, &attempt)).await;
    if let Ok(Err(e)) | Err(e) =
        outcome.map_err(|e| crate::store::StoreError::Invalid(e.to_string()))
    {
        tracing::warn!(error = %e, "could not record a delivery attempt");
    }
}

impl Notifier {
    /// Deliver `outbox` until stopped; `wake` after each commit that wrote to it. Only while
    /// `role` leads: one node at a time delivers.
    pub fn start(outbox: Outbox, wake: Arc<Notify>, role: crate::cluster::Role) -> Notifier {
        let (stop, mut stopped) = watch::channel(false);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let task = tokio::spawn(async move {
            loop {
                let now = chrono::Utc::now().timestamp_millis();
                let reader = outbox.clone();
                let leads = role.is_leader();
                let rows = tokio::task::spawn_blocking(move || {
                    if leads {
                        reader.due(now, 64)
                    } else {
                        Ok(Vec::new())
                    }
                })
                .await
                .ok()
                .and_then(|r| {
                    r.map_err(|e| tracing::warn!(error = %e, "outbox read failed"))
                        .ok()
                })
                .unwrap_or_default();
                let busy = !rows.is_empty();
                // Every row in parallel: a slow or dead channel costs only its own rows.
                let mut set = tokio::task::JoinSet::new();
                for d in rows {
                    let (client, outbox) = (client.clone(), outbox.clone());
                    set.spawn(async move { deliver(&client, &outbox, d).await });
                }
                while set.join_next().await.is_some() {}
                if *stopped.borrow() {
                    return;
                }
                if !busy {
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
        });
        Notifier { stop, task }
    }

    /// Stop after the deliveries in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Independent check: HMAC-SHA256("secret", "1700000000.{}") computed by hand above.
        let sig = signature("secret", 1_700_000_000, b"{}");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"secret").unwrap();
        mac.update(b"1700000000.{}");
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={want}"));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(40), 300_000);
    }

    #[test]
    fn configs_are_checked() {
        assert!(validate_config("slack", &json!({"url": "http://x"})).is_ok());
        assert_eq!(
            validate_config("slack", &json!({})).unwrap_err(),
            "config.url is required"
        );
        assert!(validate_config("telegram", &json!({"bot_token": "1:a"})).is_err());
        assert!(
            validate_config("email", &json!({}))
                .unwrap_err()
                .contains("config.host")
        );
        assert!(validate_config("webhook", &json!({"url": "ftp://x"})).is_err());
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
        let ch = Channel {
            id: 1,
            provider: "pagerduty".into(),
            name: "pd".into(),
            config: json!({"routing_key": "R", "url": "http://pd"}),
        };
        let mut m = Message {
            kind: "metric",
            action: Act::Trigger,
            rule_id: 1,
            rule_name: "r".into(),
            project: "p".into(),
            incident_id: 9,
            severity: "critical".into(),
            title: "t".into(),
            text: "x".into(),
            culprit: String::new(),
            value: Some(1.0),
            url: "http://ui".into(),
            dedup_key: "lookout-incident-9".into(),
            issue: None,
            event: None,
            agent: None,
            at: 0,
        };
        let (url, t) = render(&ch, None, &m).unwrap();
        assert_eq!(url, "http://pd");
        assert_eq!(
            (
                t["event_action"].as_str(),
                t["payload"]["severity"].as_str()
            ),
            (Some("trigger"), Some("critical"))
        );
        m.action = Act::Resolve;
        let (_, r) = render(&ch, None, &m).unwrap();
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], t["dedup_key"]);
    }
}
