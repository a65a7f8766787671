//! The `email` channel: notifications over SMTP.
//!
//! Config: `host` (required), `port` (default 587 with `starttls`, 465 with `tls`, 25 with
//! `none`), `tls`: `starttls` (default) | `tls` | `none`, `username` and `password` (both or
//! neither), `from` (a mailbox, e.g. `Lookout <alerts@example.com>`), `to` (one address or a
//! list). The outbox row holds only the message (from, to, subject, text); the server and
//! credentials are read from the channel when it is delivered.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Mail, Tokio1Executor};
use serde_json::{Value, json};

use super::{Act, Message};

fn text<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn recipients(config: &Value) -> Vec<String> {
    match config.get("to") {
        Some(Value::String(one)) => one
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn tls_mode(config: &Value) -> &str {
    text(config, "tls").unwrap_or("starttls")
}

/// Check an email channel's config; the message names the key.
pub(super) fn validate(config: &Value) -> Result<(), String> {
    if text(config, "host").is_none() {
        return Err("config.host is required (the SMTP server)".into());
    }
    if !matches!(tls_mode(config), "starttls" | "tls" | "none") {
        return Err("config.tls must be starttls, tls or none".into());
    }
    if let Some(port) = config.get("port")
        && !port
            .as_u64()
            .is_some_and(|p| (1..=u64::from(u16::MAX)).contains(&p))
    {
        return Err("config.port must be a port number".into());
    }
    if text(config, "username").is_some() != text(config, "password").is_some() {
        return Err("config.username and config.password go together".into());
    }
    let from = text(config, "from").ok_or("config.from is required")?;
    from.parse::<Mailbox>()
        .map_err(|_| format!("config.from is not an email address: {from:?}"))?;
    let to = recipients(config);
    if to.is_empty() {
        return Err("config.to is required (an address or a list)".into());
    }
    for address in &to {
        address
            .parse::<Mailbox>()
            .map_err(|_| format!("config.to has an invalid address: {address:?}"))?;
    }
    Ok(())
}

fn port(config: &Value) -> u16 {
    config
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(match tls_mode(config) {
            "tls" => 465,
            "none" => 25,
            _ => 587,
        })
}

/// The outbox row of an email: `smtp://host:port` and the message.
pub(super) fn render(config: &Value, target: Option<&str>, m: &Message) -> (String, Value) {
    let host = text(config, "host").unwrap_or_default();
    let to = match target {
        Some(address) => vec![address.to_owned()],
        None => recipients(config),
    };
    let state = if m.action == Act::Resolve {
        "RESOLVED".to_owned()
    } else {
        m.severity.to_uppercase()
    };
    let subject = format!("[Lookout] {state}: {} ({})", m.rule_name, m.project);
    let mut body = format!(
        "{}\n\nRule: {}\nProject: {}\n",
        m.text, m.rule_name, m.project
    );
    if !m.culprit.is_empty() {
        body.push_str(&format!("Culprit: {}\n", m.culprit));
    }
    if let Some(value) = m.value {
        body.push_str(&format!("Value: {value}\n"));
    }
    body.push_str(&format!(
        "When: {}\n\nOpen in Lookout: {}\n",
        crate::time::iso(m.at),
        m.url
    ));
    (
        format!("smtp://{host}:{}", port(config)),
        json!({
            "from": text(config, "from"),
            "to": to,
            "subject": subject,
            "text": body,
        }),
    )
}

/// Send the outbox row `body` through the channel's SMTP server; the SMTP reply code on
/// success.
pub(super) async fn send(config: &Value, body: &str) -> Result<u16, String> {
    validate(config)?;
    let row: Value = serde_json::from_str(body).map_err(|e| format!("bad outbox row: {e}"))?;
    let field = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
    let from: Mailbox = field("from")
        .parse()
        .map_err(|e| format!("from address: {e}"))?;
    let mut mail = Mail::builder()
        .from(from)
        .subject(field("subject"))
        .header(ContentType::TEXT_PLAIN);
    for address in row
        .get("to")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let mailbox: Mailbox = address
            .parse()
            .map_err(|e| format!("to address {address:?}: {e}"))?;
        mail = mail.to(mailbox);
    }
    let mail = mail
        .body(field("text").to_owned())
        .map_err(|e| format!("building the message: {e}"))?;

    let host = text(config, "host").unwrap_or_default();
    let builder = match tls_mode(config) {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(|e| format!("TLS setup for {host}: {e}"))?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| format!("STARTTLS setup for {host}: {e}"))?,
    };
    let mut builder = builder
        .port(port(config))
        .timeout(Some(Duration::from_secs(10)));
    if let (Some(user), Some(password)) = (text(config, "username"), text(config, "password")) {
        builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
    }
    let response = builder
        .build()
        .send(mail)
        .await
        .map_err(|e| format!("SMTP {host}: {e}"))?;
    Ok(response.code().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_key() {
        let ok = json!({"host": "smtp.example.com", "from": "Lookout <a@example.com>", "to": ["ops@example.com"]});
        assert_eq!(validate(&ok), Ok(()));
        let without = |key: &str| {
            let mut c = ok.clone();
            c.as_object_mut().map(|o| o.remove(key));
            validate(&c).unwrap_err()
        };
        assert!(without("host").contains("config.host"));
        assert!(without("from").contains("config.from"));
        assert!(without("to").contains("config.to"));
        let mut bad = ok.clone();
        bad["to"] = json!("not an address");
        assert!(validate(&bad).unwrap_err().contains("config.to"));
        bad = ok.clone();
        bad["tls"] = json!("ssl3");
        assert!(validate(&bad).unwrap_err().contains("config.tls"));
        bad = ok.clone();
        bad["username"] = json!("u");
        assert!(validate(&bad).unwrap_err().contains("password"));
        bad = ok;
        bad["port"] = json!(70000);
        assert!(validate(&bad).unwrap_err().contains("config.port"));
    }
}
