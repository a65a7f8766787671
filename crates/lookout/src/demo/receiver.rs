//! The demo's notification receiver: a local HTTP server registered as a signed webhook
//! channel and a Slack channel. It verifies every `Lookout-Signature`, prints one line per
//! alert and keeps the deliveries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinHandle;

use super::api::Api;
use super::{Delivery, DemoError, PRESETS, Printer, stamp};

/// Start the receiver on an ephemeral port; returns its URL and its task.
pub(crate) async fn start(
    secret: String,
    api: Api,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    print: Printer,
    started: Instant,
) -> Result<(String, JoinHandle<()>), DemoError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(ReceiverState {
        secret,
        api,
        presets: Mutex::new(BTreeMap::new()),
        deliveries,
        print,
        started,
    });
    let app = Router::new()
        .route("/webhook", post(webhook))
        .route("/slack", post(slack))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "demo receiver stopped");
        }
    });
    Ok((url, task))
}

/// The presets whose `triggered` notification arrived with a valid signature.
pub(crate) fn presets_delivered(deliveries: &[Delivery]) -> BTreeSet<String> {
    deliveries
        .iter()
        .filter(|d| d.action == "triggered" && d.signature_ok)
        .filter_map(|d| d.preset.clone())
        .collect()
}

/// What the receiver's handlers share.
struct ReceiverState {
    secret: String,
    api: Api,
    presets: Mutex<BTreeMap<String, String>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    print: Printer,
    started: Instant,
}

/// Check `Lookout-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn verify_signature(secret: &str, header: Option<&str>, body: &[u8]) -> bool {
    let Some(header) = header else {
        return false;
    };
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(Ok(expected))) = (t, v1.map(hex::decode)) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn webhook(
    State(st): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature_ok = verify_signature(
        &st.secret,
        headers
            .get("lookout-signature")
            .and_then(|v| v.to_str().ok()),
        &body,
    );
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        (st.print)(&format!(
            "{} receiver: a webhook body that is not JSON",
            stamp(st.started)
        ));
        return StatusCode::BAD_REQUEST;
    };
    let rule_id = v["rule"]["id"].as_str().unwrap_or_default().to_owned();
    let known = st
        .presets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&rule_id)
        .cloned();
    let preset = match known {
        Some(p) => Some(p),
        None => match st.api.presets().await {
            Ok(map) => {
                let p = map.get(&rule_id).cloned();
                *st.presets.lock().unwrap_or_else(PoisonError::into_inner) = map;
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo receiver cannot list rules");
                None
            }
        },
    };
    let d = Delivery {
        action: v["action"].as_str().unwrap_or_default().to_owned(),
        rule: v["rule"]["name"].as_str().unwrap_or_default().to_owned(),
        preset,
        title: v["incident"]["title"]
            .as_str()
            .or_else(|| v["text"].as_str())
            .unwrap_or_default()
            .to_owned(),
        signature_ok,
    };
    let verdict = if signature_ok {
        "signature verified"
    } else {
        "BAD SIGNATURE"
    };
    (st.print)(&format!(
        "{} ALERT {}: {}{} · {} · webhook {}",
        stamp(st.started),
        d.action,
        d.rule,
        d.preset
            .as_deref()
            .map(|p| format!(" (preset {p})"))
            .unwrap_or_default(),
        d.title,
        verdict
    ));
    let all_seven = {
        let mut deliveries = st.deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        let before = presets_delivered(&deliveries).len();
        deliveries.push(d);
        let after = presets_delivered(&deliveries).len();
        before < PRESETS.len() && after == PRESETS.len()
    };
    if all_seven {
        (st.print)(&format!(
            "{} all seven alert presets fired and were delivered; the demo keeps running (Ctrl-C stops it)",
            stamp(st.started)
        ));
    }
    if signature_ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn slack(body: Bytes) -> StatusCode {
    // The Slack channel shows the second format; the webhook line already said it.
    if serde_json::from_slice::<Value>(&body).is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_secret_and_the_exact_body() {
        let body = br#"{"action":"triggered"}"#;
        let header = lookout_server::alerts::notify::signature("s3cret", 1_700_000_000, body);
        assert!(verify_signature("s3cret", Some(&header), body));
        assert!(!verify_signature("other", Some(&header), body));
        assert!(!verify_signature("s3cret", Some(&header), b"{}"));
        assert!(!verify_signature("s3cret", None, body));
        assert!(!verify_signature("s3cret", Some("t=1,v1=zz"), body));
    }

    #[test]
    fn only_signed_triggers_count_as_delivered() {
        let d = |action: &str, preset: Option<&str>, ok: bool| Delivery {
            action: action.into(),
            rule: "r".into(),
            preset: preset.map(str::to_owned),
            title: "t".into(),
            signature_ok: ok,
        };
        let got = presets_delivered(&[
            d("triggered", Some("session_crash"), true),
            d("resolved", Some("error_rate_spike"), true),
            d("triggered", Some("p99_latency_breach"), false),
            d("triggered", None, true),
        ]);
        assert_eq!(got, BTreeSet::from(["session_crash".to_owned()]));
    }
}
