//! Secret scrubbing: API keys, bearer tokens, private keys, seed phrases and values under
//! sensitive keys are replaced with [`FILTERED`] before anything leaves the process.
//!
//! [`init`](crate::init) installs the scrubber twice: in `before_send` for error events
//! (message, exception values, frame vars, extra, contexts, tags, request, user data,
//! breadcrumbs), and in the transport for every other envelope item (transactions with their
//! spans' data, tags and descriptions). The transport runs on its own thread, so scrubbing a
//! transaction costs the decision loop nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use regex::{Captures, Regex};
use sentry::protocol::{Breadcrumb, Context, Envelope, EnvelopeItem, Event, Request, Transaction};
use serde_json::Value;

/// The replacement for every secret.
pub const FILTERED: &str = "[Filtered]";

static BIP39_WORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/bip39-english.txt")
        .lines()
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .collect()
});

/// Key-name fragments (lowercase, without `_`, `-`, `.` and spaces) whose values are secrets.
const SENSITIVE_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "apikey",
    "privatekey",
    "mnemonic",
    "seedphrase",
    "token",
    "authorization",
    "cookie",
    "credential",
];

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    Patterns {
    key_value: Regex::new(
        r#"(?i)\b(password|passwd|secret|api[_-]?key|private[_-]?key|mnemonic|seed[_-]?phrase|access[_-]?token|token|authorization)(\s*"?\s*[=:]\s*)(?:(?:bearer|basic)\s+)?("[^"]*"|'[^']*'|[^\s,;&"']+)"#,
    )
    .expect("key-value pattern"),
    bearer: Regex::new(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}").expect("bearer pattern"),
    api_key: Regex::new(r"\b(?:sk|pk|pf|rk)_[a-z]+_[A-Za-z0-9]{16,}").expect("api key pattern"),
    private_key: Regex::new(r"\b0x[0-9a-fA-F]{64}\b").expect("private key pattern"),
    word: Regex::new(r"[A-Za-z]+").expect("word pattern"),
}
});

struct Patterns {
    key_value: Regex,
    bearer: Regex,
    api_key: Regex,
    private_key: Regex,
    word: Regex,
}

/// Whether a value stored under this key is a secret (`password`, `api_key`, `X-Api-Key`,
/// `mnemonic`, `seed_phrase`, `authorization`, `*token*`, …).
pub fn is_sensitive_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    SENSITIVE_KEY_PARTS
        .iter()
        .any(|part| normalized.contains(part))
}

/// Keys whose `0x` + 64 hex values are public hashes, not private keys.
fn is_hash_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("hash") || key == "tx" || key.ends_with("_tx")
}

/// Scrub secrets out of a free-form string. Returns the input unchanged (borrowed) when it
/// holds no secret.
pub fn scrub_str(input: &str) -> Cow<'_, str> {
    scrub_str_in(None, input)
}

fn scrub_str_in<'a>(key: Option<&str>, input: &'a str) -> Cow<'a, str> {
    let p = &*PATTERNS;
    let mut out = Cow::Borrowed(input);
    if p.bearer.is_match(&out) {
        out = Cow::Owned(
            p.bearer
                .replace_all(&out, |c: &Captures<'_>| format!("{} {FILTERED}", &c[1]))
                .into_owned(),
        );
    }
    if p.key_value.is_match(&out) {
        out = Cow::Owned(
            p.key_value
                .replace_all(&out, |c: &Captures<'_>| {
                    format!("{}{}{FILTERED}", &c[1], &c[2])
                })
                .into_owned(),
        );
    }
    if p.api_key.is_match(&out) {
        out = Cow::Owned(p.api_key.replace_all(&out, FILTERED).into_owned());
    }
    if !key.is_some_and(is_hash_key) && p.private_key.is_match(&out) {
        out = Cow::Owned(p.private_key.replace_all(&out, FILTERED).into_owned());
    }
    if let Some(scrubbed) = scrub_seed_phrases(&out) {
        out = Cow::Owned(scrubbed);
    }
    out
}

/// Replace every run of 12 or more consecutive BIP-39 words (separated by whitespace, commas
/// or hyphens only) with [`FILTERED`].
fn scrub_seed_phrases(input: &str) -> Option<String> {
    let words = &*BIP39_WORDS;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut run_start = 0;
    let mut run_end = 0;
    let mut run_len = 0;
    let mut last_end = 0;
    for m in PATTERNS.word.find_iter(input) {
        let gap_ok = input[last_end..m.start()]
            .chars()
            .all(|c| c.is_whitespace() || c == ',' || c == '-');
        let is_word = m.as_str().len() >= 3 && words.contains(m.as_str().to_lowercase().as_str());
        if is_word && (run_len == 0 || gap_ok) {
            if run_len == 0 {
                run_start = m.start();
            }
            run_len += 1;
            run_end = m.end();
        } else {
            if run_len >= 12 {
                runs.push((run_start, run_end));
            }
            run_len = 0;
            if is_word {
                run_start = m.start();
                run_end = m.end();
                run_len = 1;
            }
        }
        last_end = m.end();
    }
    if run_len >= 12 {
        runs.push((run_start, run_end));
    }
    if runs.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(input.len());
    let mut pos = 0;
    for (start, end) in runs {
        out.push_str(&input[pos..start]);
        out.push_str(FILTERED);
        pos = end;
    }
    out.push_str(&input[pos..]);
    Some(out)
}

fn scrub_string_in_place(key: Option<&str>, value: &mut String) {
    if let Cow::Owned(scrubbed) = scrub_str_in(key, value) {
        *value = scrubbed;
    }
}

fn scrub_opt_string(key: Option<&str>, value: &mut Option<String>) {
    if let Some(v) = value {
        scrub_string_in_place(key, v);
    }
}

/// Scrub a JSON value in place: values under sensitive keys become [`FILTERED`], strings are
/// scrubbed of secrets, arrays and objects are walked.
pub fn scrub_json(key: Option<&str>, value: &mut Value) {
    if key.is_some_and(is_sensitive_key) && !value.is_null() {
        *value = Value::String(FILTERED.to_owned());
        return;
    }
    match value {
        Value::String(s) => scrub_string_in_place(key, s),
        Value::Array(items) => items.iter_mut().for_each(|item| scrub_json(key, item)),
        Value::Object(map) => map
            .iter_mut()
            .for_each(|(k, v)| scrub_json(Some(k.as_str()), v)),
        _ => {}
    }
}

fn scrub_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a mut Value)>) {
    for (key, value) in map {
        scrub_json(Some(key), value);
    }
}

fn scrub_string_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a mut String)>) {
    for (key, value) in map {
        if is_sensitive_key(key) {
            *value = FILTERED.to_owned();
        } else {
            scrub_string_in_place(Some(key), value);
        }
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
    use super::*;

    const SEED12: &str =
        "abandon ability able about above absent absorb abstract absurd abuse access accident";

    #[test]
    fn api_keys_of_every_purple_flea_prefix_are_filtered() {
        for prefix in [
            "sk_live_",
            "sk_trade_",
            "pk_live_",
            "sk_domains_",
            "pf_live_",
        ] {
            let key = format!("{prefix}0123456789abcdef0123456789abcdef0123456789abcdef");
            let input = format!("request failed with key {key} at 12:00");
            let out = scrub_str(&input);
            assert_eq!(out, format!("request failed with key {FILTERED} at 12:00"));
        }
    }

    #[test]
    fn order_ids_and_short_identifiers_are_kept() {
        let text = "order ord_9f2c1a2b3c4d5e6f filled; agent ag_0123456789ab; sk_live_ short";
        assert_eq!(scrub_str(text), text);
        assert!(matches!(scrub_str(text), Cow::Borrowed(_)));
    }

    #[test]
    fn bearer_tokens_and_authorization_headers_are_filtered() {
        assert_eq!(
            scrub_str("Authorization: Bearer abcdef0123456789xyz"),
            format!("Authorization: {FILTERED}")
        );
        assert_eq!(
            scrub_str("sent bearer abcdef0123456789xyz to host"),
            format!("sent bearer {FILTERED} to host")
        );
    }

    #[test]
    fn key_value_pairs_in_text_keep_the_key() {
        assert_eq!(
            scrub_str("login password=hunter2 user=bob"),
            format!("login password={FILTERED} user=bob")
        );
        assert_eq!(
            scrub_str(r#"{"api_key": "abc"}"#),
            format!(r#"{{"api_key": {FILTERED}}}"#)
        );
    }

    #[test]
    fn private_keys_are_filtered_but_tx_hashes_under_hash_keys_are_kept() {
        let hex = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        assert_eq!(scrub_str(&format!("key {hex}")), format!("key {FILTERED}"));
        let mut v = serde_json::json!({ "tx_hash": hex, "note": hex });
        scrub_json(None, &mut v);
        assert_eq!(v["tx_hash"], hex);
        assert_eq!(v["note"], FILTERED);
    }

    #[test]
    fn seed_phrases_of_12_and_24_words_are_filtered() {
        assert_eq!(
            scrub_str(&format!("seed: {SEED12}!")),
            format!("seed: {FILTERED}!")
        );
        let seed24 = format!("{SEED12} {SEED12}");
        assert_eq!(scrub_str(&seed24), FILTERED);
        // Eleven words are not a seed phrase; ordinary prose is left alone.
        let eleven = SEED12.rsplit_once(' ').map(|(a, _)| a).unwrap_or_default();
        assert_eq!(scrub_str(eleven), eleven);
        let prose = "the risk check failed because the daily loss limit was breached";
        assert_eq!(scrub_str(prose), prose);
    }

    #[test]
    fn sensitive_keys_are_recognised_in_any_spelling() {
        for key in [
            "password",
            "API_KEY",
            "x-api-key",
            "privateKey",
            "mnemonic",
            "seed_phrase",
            "access_token",
            "Authorization",
            "client_secret",
        ] {
            assert!(is_sensitive_key(key), "{key}");
        }
        for key in ["asset", "order_id", "z_score", "side"] {
            assert!(!is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn nested_json_values_under_sensitive_keys_are_replaced_whole() {
        let mut v = serde_json::json!({
            "wallet": { "mnemonic": ["a", "b"], "network": "base" },
            "list": [{ "token": 42 }],
        });
        scrub_json(None, &mut v);
        assert_eq!(v["wallet"]["mnemonic"], FILTERED);
        assert_eq!(v["wallet"]["network"], "base");
        assert_eq!(v["list"][0]["token"], FILTERED);
    }
}
