//! Secret scrubbing: API keys, bearer tokens, private keys, seed phrases and values under
//! sensitive keys are replaced with [`FILTERED`] before anything leaves the process.
//!
//! The rules are `lookout_protocol::scrub`'s, the ones the Lookout server applies on ingest:
//! this module only walks the `sentry` protocol structs and hands each string or JSON value,
//! with the key it sits under, to them. What counts as a secret has one definition.
//!
//! [`init`](crate::init) installs the scrubber twice: in `before_send` for error events
//! (message, exception values, frame vars, extra, contexts, tags, request, user data,
//! breadcrumbs), and in the transport for every other envelope item (transactions with their
//! spans' data, tags and descriptions). The transport runs on its own thread, so scrubbing a
//! transaction costs the decision loop nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use lookout_protocol::scrub::{is_secret_key, scrub_str_under, scrub_value_under};
use sentry::protocol::{Breadcrumb, Context, Envelope, EnvelopeItem, Event, Request, Transaction};
use serde_json::Value;

/// The replacement for every secret.
pub use lookout_protocol::scrub::FILTERED;

/// Whether a value stored under this key is a secret (`password`, `api_key`, `X-Api-Key`,
/// `mnemonic`, `seed_phrase`, `authorization`, `access_token`, …).
pub fn is_sensitive_key(key: &str) -> bool {
    is_secret_key(key)
}

/// Scrub secrets out of a free-form string. Returns the input unchanged (borrowed) when it
/// holds no secret.
pub fn scrub_str(input: &str) -> Cow<'_, str> {
    scrub_str_under(None, input)
}

/// Scrub a string found under `key`; a sensitive key replaces it whole.
fn scrub_string_in_place(key: Option<&str>, value: &mut String) {
    if let Cow::Owned(scrubbed) = scrub_str_under(key, value) {
        *value = scrubbed;
    }
}

fn scrub_opt_string(key: Option<&str>, value: &mut Option<String>) {
    if let Some(v) = value {
        scrub_string_in_place(key, v);
    }
}

/// Scrub a JSON value found under `key` in place: values under sensitive keys become
/// [`FILTERED`], strings are scrubbed of secrets, arrays and objects are walked.
pub fn scrub_json(key: Option<&str>, value: &mut Value) {
    scrub_value_under(key, value);
}

fn scrub_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a mut Value)>) {
    for (key, value) in map {
        scrub_json(Some(key), value);
    }
}

fn scrub_string_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a mut String)>) {
    for (key, value) in map {
        scrub_string_in_place(Some(key), value);
    }
}

fn scrub_contexts(contexts: &mut BTreeMap<String, Context>) {
    for (key, context) in contexts.iter_mut() {
        if is_sensitive_key(key) {
            *context = Context::Other(BTreeMap::from([(
                "value".to_owned(),
                Value::String(FILTERED.to_owned()),
            )]));
            continue;
        }
        match context {
            Context::Other(map) => scrub_map(map.iter_mut()),
            Context::Trace(trace) => scrub_map(trace.data.iter_mut()),
            _ => {}
        }
    }
}

fn scrub_request(request: &mut Request) {
    if let Some(url) = request.url.as_mut() {
        if let Cow::Owned(scrubbed) = scrub_str(url.as_str())
            && let Ok(parsed) = scrubbed.parse()
        {
            *url = parsed;
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_sensitive_key(&k) {
                        FILTERED.to_owned()
                    } else {
                        scrub_str(&v).into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    scrub_opt_string(None, &mut request.query_string);
    if let Some(query) = request.query_string.as_mut() {
        let scrubbed: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_sensitive_key(k) => format!("{k}={FILTERED}"),
                _ => pair.to_owned(),
            })
            .collect();
        *query = scrubbed.join("&");
    }
    scrub_opt_string(None, &mut request.data);
    if request.cookies.is_some() {
        request.cookies = Some(FILTERED.to_owned());
    }
    scrub_string_map(request.headers.iter_mut());
    scrub_string_map(request.env.iter_mut());
}

fn scrub_breadcrumb(crumb: &mut Breadcrumb) {
    scrub_opt_string(None, &mut crumb.message);
    scrub_map(crumb.data.iter_mut());
}

/// Scrub an error event in place (message, log entry, exception values and frame variables,
/// extra, contexts, tags, request, user data, breadcrumbs).
pub fn scrub_event(event: &mut Event<'static>) {
    scrub_opt_string(None, &mut event.message);
    if let Some(entry) = event.logentry.as_mut() {
        scrub_string_in_place(None, &mut entry.message);
        for param in entry.params.iter_mut() {
            scrub_json(None, param);
        }
    }
    for exception in event.exception.values.iter_mut() {
        scrub_opt_string(None, &mut exception.value);
        if let Some(stacktrace) = exception.stacktrace.as_mut() {
            for frame in stacktrace.frames.iter_mut() {
                scrub_map(frame.vars.iter_mut());
            }
        }
    }
    for thread in event.threads.values.iter_mut() {
        if let Some(stacktrace) = thread.stacktrace.as_mut() {
            for frame in stacktrace.frames.iter_mut() {
                scrub_map(frame.vars.iter_mut());
            }
        }
    }
    scrub_map(event.extra.iter_mut());
    scrub_string_map(event.tags.iter_mut());
    scrub_contexts(&mut event.contexts);
    if let Some(request) = event.request.as_mut() {
        scrub_request(request);
    }
    if let Some(user) = event.user.as_mut() {
        scrub_map(user.other.iter_mut());
    }
    for crumb in event.breadcrumbs.values.iter_mut() {
        scrub_breadcrumb(crumb);
    }
}

/// Scrub a transaction in place: its tags, extra, contexts, request, and every span's
/// description, tags and data.
pub fn scrub_transaction(transaction: &mut Transaction<'static>) {
    scrub_string_map(transaction.tags.iter_mut());
    scrub_map(transaction.extra.iter_mut());
    scrub_contexts(&mut transaction.contexts);
    if let Some(request) = transaction.request.as_mut() {
        scrub_request(request);
    }
    for span in transaction.spans.iter_mut() {
        scrub_opt_string(None, &mut span.description);
        scrub_string_map(span.tags.iter_mut());
        scrub_map(span.data.iter_mut());
    }
}

/// Scrub every event and transaction item of an envelope; other items are kept as they are.
pub fn scrub_envelope(envelope: Envelope) -> Envelope {
    let needs_work = envelope
        .items()
        .any(|item| matches!(item, EnvelopeItem::Event(_) | EnvelopeItem::Transaction(_)));
    if !needs_work {
        return envelope;
    }
    let headers = envelope.headers().clone();
    let mut out = Envelope::new().with_headers(headers);
    for item in envelope.into_items() {
        let item = match item {
            EnvelopeItem::Event(mut event) => {
                scrub_event(&mut event);
                EnvelopeItem::Event(event)
            }
            EnvelopeItem::Transaction(mut transaction) => {
                scrub_transaction(&mut transaction);
                EnvelopeItem::Transaction(transaction)
            }
            other => other,
        };
        out.add_item(item);
    }
    out
}

#[cfg(test)]
mod tests {
    //! The rules themselves are tested in `lookout_protocol::scrub`; these check that every
    //! field of the `sentry` structs reaches them with its key.
    use super::*;
    use sentry::protocol::{Exception, Span};

    const HEX: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

    #[test]
    fn event_fields_are_scrubbed_by_the_shared_rules() {
        let mut event = Event {
            message: Some(r#"body {"api_key": "abc"}"#.to_owned()),
            ..Default::default()
        };
        event.exception.values.push(Exception {
            ty: "E".to_owned(),
            value: Some("Authorization: Bearer abcdef0123456789xyz".to_owned()),
            ..Default::default()
        });
        event.tags.insert("x-api-key".to_owned(), "k".to_owned());
        event.tags.insert("asset".to_owned(), "BTC".to_owned());
        event.extra.insert(
            "wallet".to_owned(),
            serde_json::json!({ "mnemonic": ["a"] }),
        );
        event.breadcrumbs.values.push(Breadcrumb {
            data: BTreeMap::from([("tx_hash".to_owned(), Value::from(HEX))]),
            message: Some(format!("key {HEX}")),
            ..Default::default()
        });
        scrub_event(&mut event);
        assert_eq!(
            event.message.as_deref(),
            Some(r#"body {"api_key": [Filtered]}"#)
        );
        assert_eq!(
            event.exception.values[0].value.as_deref(),
            Some("Authorization: Bearer [Filtered]")
        );
        assert_eq!(event.tags["x-api-key"], FILTERED);
        assert_eq!(event.tags["asset"], "BTC");
        assert_eq!(event.extra["wallet"]["mnemonic"], FILTERED);
        let crumb = &event.breadcrumbs.values[0];
        assert_eq!(crumb.data["tx_hash"], HEX);
        assert_eq!(crumb.message.as_deref(), Some("key [Filtered]"));
    }

    #[test]
    fn span_fields_are_scrubbed_by_the_shared_rules() {
        let mut transaction = Transaction::default();
        transaction.spans.push(Span {
            description: Some("POST /v1/trade/open password=hunter2".to_owned()),
            tags: BTreeMap::from([("auth_token".to_owned(), "t".to_owned())]),
            data: BTreeMap::from([
                ("private_key".to_owned(), Value::from("k")),
                ("tx_hash".to_owned(), Value::from(HEX)),
            ]),
            ..Default::default()
        });
        scrub_transaction(&mut transaction);
        let span = &transaction.spans[0];
        assert_eq!(
            span.description.as_deref(),
            Some("POST /v1/trade/open password=[Filtered]")
        );
        assert_eq!(span.tags["auth_token"], FILTERED);
        assert_eq!(span.data["private_key"], FILTERED);
        assert_eq!(span.data["tx_hash"], HEX);
    }
}
