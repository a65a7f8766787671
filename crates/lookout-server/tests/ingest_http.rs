//! Hand-made envelopes against the real server: every auth form, every encoding, framing
//! variants, limits, hostile input, rate limits, overload and CORS.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

fn envelope_with_event(event_id: &str) -> Vec<u8> {
    let payload = "{\"message\":\"hello\nworld\",\"level\":\"error\"}";
    format!(
        "{{\"event_id\":\"{event_id}\",\"sent_at\":\"2026-11-24T01:00:00.000Z\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    )
    .into_bytes()
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

fn auth(key: &str) -> (&'static str, String) {
    (
        "x-sentry-auth",
        format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1.0"),
    )
}

fn detail(r: &Reply) -> String {
    r.body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_auth_form_is_accepted_and_stored() {
    let s = TestServer::start().await;
    let key = s.key();
    let url = s.envelope_url();
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    };
    type Case<'a> = (String, Vec<(&'a str, String)>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (url.clone(), vec![auth(&key)], envelope_with_event(EVENT_ID)),
        (
            url.clone(),
            vec![("authorization", format!("Sentry sentry_key={key}, sentry_version=7"))],
            envelope_with_event(EVENT_ID),
        ),
        (url.clone(), vec![("authorization", format!("Basic {basic}"))], envelope_with_event(EVENT_ID)),
        (
            format!("{url}?sentry_version=7&sentry_key={key}&sentry_client=sentry.javascript.node%2F11.12.0"),
            vec![],
            envelope_with_event(EVENT_ID),
        ),
        (
            url.clone(),
            vec![],
            format!(
                "{{\"event_id\":\"{EVENT_ID}\",\"dsn\":\"{}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"x\"}}\n",
                s.dsn()
            )
            .into_bytes(),
        ),
    ];
    for (i, (url, headers, body)) in cases.into_iter().enumerate() {
        let r = post(&url, &headers, body).await;
        assert_eq!(r.status, StatusCode::OK, "case {i}: {:?}", r.body);
        assert_eq!(r.body, json!({ "id": EVENT_ID }), "case {i}");
    }
    let rows = s.inbox();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r.event_id.as_deref() == Some(EVENT_ID) && r.item_types == "event")
    );
}

#[tokio::test]
async fn auth_refusals_store_nothing() {
    let s = TestServer::start().await;
    let key = s.key();
    let other = s
        .server
        .store
        .create_project("default", "other", None)
        .unwrap();
    let disabled = s
        .server
        .store
        .create_project("default", "off", None)
        .unwrap();
    s.server
        .store
        .set_project_status("default", "off", false)
        .unwrap();
    let url = s.envelope_url();

    let two = post(
        &format!("{url}?sentry_key={key}"),
        &[auth(&key)],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(two.status, StatusCode::UNAUTHORIZED);
    assert!(
        detail(&two).contains("multiple authorization"),
        "{}",
        detail(&two)
    );

    let unknown = post(
        &url,
        &[auth("0123456789abcdef0123456789abcdef")],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(detail(&unknown).contains("unknown public key"));

    let none = post(&url, &[], envelope_with_event(EVENT_ID)).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    let wrong_project = post(
        &url,
        &[auth(&other.public_key)],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(wrong_project.status, StatusCode::FORBIDDEN);

    let off_url = format!("{}/api/{}/envelope/", s.server.base_url(), disabled.id);
    let off = post(
        &off_url,
        &[auth(&disabled.public_key)],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(off.status, StatusCode::FORBIDDEN);
    assert!(detail(&off).contains("disabled"));

    let v8 = post(
        &url,
        &[(
            "x-sentry-auth",
            format!("Sentry sentry_key={key}, sentry_version=8"),
        )],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(v8.status, StatusCode::BAD_REQUEST);
    assert!(detail(&v8).contains("sentry_version 8"));

    let bad_pid = post(
        &format!("{}/api/abc/envelope/", s.server.base_url()),
        &[auth(&key)],
        envelope_with_event(EVENT_ID),
    )
    .await;
    assert_eq!(bad_pid.status, StatusCode::BAD_REQUEST);

    assert!(s.inbox().is_empty());
    let m = s.metrics().await;
    assert!(
        m.contains("lookout_envelopes_rejected_total{reason=\"unauthorized\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("lookout_envelopes_rejected_total{reason=\"forbidden\"} 2"),
        "{m}"
    );
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        _ => data.to_vec(),
    }
}

#[tokio::test]
async fn every_encoding_is_decoded_before_storing() {
    let s = TestServer::start().await;
    let key = s.key();
    let original = envelope_with_event(EVENT_ID);
    for enc in ["gzip", "deflate", "br", "zstd", ""] {
        let mut headers = vec![auth(&key)];
        if !enc.is_empty() {
            headers.push(("content-encoding", enc.to_owned()));
        }
        let r = post(&s.envelope_url(), &headers, compress(enc, &original)).await;
        assert_eq!(r.status, StatusCode::OK, "{enc}: {:?}", r.body);
    }
    let rows = s.inbox();
    assert_eq!(rows.len(), 5);
    for row in rows {
        assert_eq!(row.envelope, original);
    }
    let r = post(
        &s.envelope_url(),
        &[auth(&key), ("content-encoding", "lzma".into())],
        original.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(detail(&r).contains("lzma"));
    let r = post(
        &s.envelope_url(),
        &[auth(&key), ("content-encoding", "gzip".into())],
        original,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(detail(&r).contains("not valid gzip"), "{}", detail(&r));
}

#[tokio::test]
async fn framing_variants_and_unknown_items() {
    let s = TestServer::start().await;
    let key = s.key();
    let bodies: Vec<&[u8]> = vec![
        // No lengths, no final newline (Node style).
        b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\"}\n{\"message\":\"a\"}\n{\"type\":\"attachment\",\"length\":4,\"filename\":\"f.txt\"}\n\n\n\n\n\n{\"type\":\"session\"}\n{\"sid\":\"x\"}",
        // Unknown item types are skipped, not refused.
        b"{}\n{\"type\":\"future_thing\",\"length\":2}\n{}\n{\"type\":\"session\",\"length\":2}\n{}\n",
        // Header only.
        b"{}",
    ];
    let mut replies = Vec::new();
    for b in bodies {
        let r = post(&s.envelope_url(), &[auth(&key)], b.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        replies.push(r.body);
    }
    assert_eq!(replies, vec![json!({"id": EVENT_ID}), json!({}), json!({})]);
    let rows = s.inbox();
    assert_eq!(rows[0].item_types, "event,attachment,session");
    assert_eq!(rows[1].item_types, "future_thing,session");
    let m = s.metrics().await;
    assert!(
        m.contains("lookout_items_skipped_total{item_type=\"future_thing\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("lookout_items_accepted_total{item_type=\"session\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn hostile_input_gets_clear_errors_and_costs_nothing() {
    let s = TestServer::start_with(|c| c.ingest.max_body_bytes = 2 * 1024 * 1024).await;
    let key = s.key();
    // One good envelope first: it must survive everything below.
    assert_eq!(
        post(
            &s.envelope_url(),
            &[auth(&key)],
            envelope_with_event(EVENT_ID)
        )
        .await
        .status,
        StatusCode::OK
    );

    let mut huge_header = b"{\"pad\":\"".to_vec();
    huge_header.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    huge_header.extend_from_slice(b"\"}\n");
    let mut big_event =
        b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\"}\n{\"m\":\""
            .to_vec();
    big_event.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 10));
    big_event.extend_from_slice(b"\"}\n");
    let bomb = compress("gzip", &vec![b'{'; 200 * 1024 * 1024]);

    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated item",
            b"{}\n{\"type\":\"event\",\"length\":100}\n{\"a\":1}".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "item 1 declares length 100",
        ),
        (
            "wrong length",
            b"{}\n{\"type\":\"event\",\"length\":3}\n{\"a\":1}\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "instead of a newline",
        ),
        (
            "bad JSON header",
            b"{}\n{type:event}\n{}\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "item 1 header is not a JSON object",
        ),
        (
            "bad envelope header",
            b"not json\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "envelope header is not a JSON object",
        ),
        (
            "invalid UTF-8",
            b"{\"a\":\"\xff\xfe\"}\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "not valid UTF-8",
        ),
        (
            "missing type",
            b"{}\n{\"length\":2}\n{}\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "has no \"type\"",
        ),
        (
            "empty body",
            Vec::new(),
            None,
            StatusCode::BAD_REQUEST,
            "empty envelope",
        ),
        (
            "10 MB header",
            huge_header,
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds the limit",
        ),
        (
            "event over 1 MiB",
            big_event,
            None,
            StatusCode::BAD_REQUEST,
            "size limits for type 'event'",
        ),
        (
            "gzip bomb",
            bomb,
            Some("gzip"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "decompressed body exceeds",
        ),
        (
            "bad event id",
            b"{\"event_id\":\"zzz\"}\n".to_vec(),
            None,
            StatusCode::BAD_REQUEST,
            "event_id",
        ),
    ];
    for (name, body, enc, status, needle) in cases {
        let mut headers = vec![auth(&key)];
        if let Some(e) = enc {
            headers.push(("content-encoding", e.to_owned()));
        }
        let r = post(&s.envelope_url(), &headers, body).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert!(
            detail(&r).contains(needle),
            "{name}: detail {:?} lacks {needle:?}",
            detail(&r)
        );
    }
    let rows = s.inbox();
    assert_eq!(rows.len(), 1, "only the good envelope is stored");
    let health = reqwest::get(format!("{}/health", s.server.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn header_longer_than_64k_is_a_framing_error() {
    let s = TestServer::start().await;
    let mut body = b"{\"pad\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    body.extend_from_slice(b"\"}\n");
    let r = post(&s.envelope_url(), &[auth(&s.key())], body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        detail(&r).contains("envelope header is longer than 65536 bytes"),
        "{}",
        detail(&r)
    );
}

#[tokio::test]
async fn store_endpoint_wraps_the_event() {
    let s = TestServer::start().await;
    let url = format!("{}/api/{}/store/", s.server.base_url(), s.project_id());
    let r = post(
        &url,
        &[auth(&s.key())],
        json!({"event_id": EVENT_ID, "message": "legacy"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({ "id": EVENT_ID }));
    let rows = s.inbox();
    assert_eq!(rows.len(), 1);
    let items = rows[0].items();
    assert_eq!(items[0].0, "event");
    assert_eq!(items[0].1["message"], "legacy");
    let r = post(&url, &[auth(&s.key())], b"[]".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rate_limited_keys_get_429_with_sentry_headers_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let p = s
        .server
        .store
        .create_project("default", "limited", Some(2))
        .unwrap();
    let url = format!("{}/api/{}/envelope/", s.server.base_url(), p.id);
    for _ in 0..2 {
        assert_eq!(
            post(&url, &[auth(&p.public_key)], envelope_with_event(EVENT_ID))
                .await
                .status,
            StatusCode::OK
        );
    }
    let r = post(&url, &[auth(&p.public_key)], envelope_with_event(EVENT_ID)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let limits = r.headers["x-sentry-rate-limits"].to_str().unwrap();
    assert_eq!(
        limits,
        format!("{retry}:default;error;transaction;security:key")
    );
    // Sessions and check-ins are not events: an agent's health still gets through.
    let health = post(
        &url,
        &[auth(&p.public_key)],
        b"{}\n{\"type\":\"check_in\"}\n{\"monitor_slug\":\"x\",\"status\":\"ok\"}\n".to_vec(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    let rows = s.inbox();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r.item_types == "event").count(), 2);
}

#[tokio::test]
async fn memory_budget_answers_503_instead_of_queueing() {
    let s = TestServer::start_with(|c| {
        c.ingest.max_body_bytes = 96 * 1024;
        c.ingest.max_inflight_bytes = 100 * 1024;
    })
    .await;
    let key = s.key();
    let url = s.envelope_url();
    // A slow client holds 90 KiB of the 100 KiB budget with a body it has not finished.
    let start_slow = || {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let mut first = b"{}\n{\"type\":\"attachment\",\"filename\":\"a\"}\n".to_vec();
        first.extend(std::iter::repeat_n(b'a', 90 * 1024));
        tx.try_send(Ok(first)).expect("room for the first chunk");
        let stream = tokio_stream_from(rx);
        let (url, key) = (url.clone(), key.clone());
        let slow = tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header(
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                )
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .unwrap()
                .status()
        });
        (tx, slow)
    };
    let (mut tx, mut slow) = start_slow();
    // Until the server has read the slow body, others still fit; poll until the budget bites.
    // If the slow body arrived while one of these held its 20 KiB, the slow request itself
    // was the one refused (it answers before its body ends): start it again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let refused = loop {
        if slow.is_finished() {
            let status = (&mut slow).await.unwrap();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            (tx, slow) = start_slow();
        }
        let mut body = b"{}\n{\"type\":\"attachment\",\"filename\":\"b\"}\n".to_vec();
        body.extend(std::iter::repeat_n(b'b', 20 * 1024));
        let r = post(&url, &[auth(&key)], body).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "budget never refused a request"
        );
    };
    assert!(refused.headers.contains_key("retry-after"));
    assert!(detail(&refused).contains("overloaded"));
    // The slow client finishes and is accepted: the budget delays nobody already admitted.
    tx.send(Ok(b"\n".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    let m = s.metrics().await;
    assert!(
        m.contains("lookout_envelopes_rejected_total{reason=\"overloaded\"}"),
        "{m}"
    );
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn cors_preflight_for_browser_sdks() {
    let s = TestServer::start().await;
    let resp = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, s.envelope_url())
        .header("origin", "https://agent.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-sentry-auth",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let r = reqwest::Client::new()
        .post(format!(
            "{}?sentry_key={}&sentry_version=7",
            s.envelope_url(),
            s.key()
        ))
        .header("origin", "https://agent.example")
        .body(envelope_with_event(EVENT_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-sentry-rate-limits") && exposed.contains("retry-after"));
}

#[tokio::test]
async fn concurrent_requests_share_commits() {
    let s = TestServer::start().await;
    let key = s.key();
    let url = s.envelope_url();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let (url, key) = (url.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("{:032x}", i + 1);
            let r = post(&url, &[auth(&key)], envelope_with_event(&id)).await;
            assert_eq!(r.status, StatusCode::OK);
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let mut stored: Vec<String> = s.inbox().into_iter().filter_map(|r| r.event_id).collect();
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids);
    let m = s.metrics().await;
    let commits: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("lookout_inbox_commit_batch_size_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1.0..200.0).contains(&commits),
        "200 concurrent requests took {commits} commits"
    );
    assert!(m.contains("lookout_envelopes_accepted_total 200"), "{m}");
}
