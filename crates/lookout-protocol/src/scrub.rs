//! Secret scrubbing: everything in an event is attacker- or accident-controlled, and a
//! trading agent's events are where its keys leak. Before anything is stored, secrets are
//! replaced with `[Filtered]`, and a note of what was removed (never the secret) is kept.
//!
//! Two kinds of rule, applied to every string anywhere in the JSON tree (messages, exception
//! values, frame vars, breadcrumbs, extra, contexts, request, span data, tags, user):
//!
//! * **by key**: a value under a key that names a secret (`password`, `secret`, `api_key`,
//!   `private_key`, `mnemonic`, `seed_phrase`, `authorization`, `cookie`, `token`, …;
//!   case-, `-`- and `_`-insensitive) is replaced whole, whatever its type;
//! * **by shape**: inside any string, Purple Flea keys (`sk_live_…`, `sk_trade_…`,
//!   `pk_live_…`, `sk_domains_…`, `pf_live_…` and other `<sk|pk|pf>_<word>_<16+ chars>`),
//!   `Bearer <token>`, PEM private keys, Ethereum-style private keys (`0x` + 64 hex; kept under
//!   keys that name a hash, such as `tx_hash`, where that shape is a transaction hash), and
//!   BIP-39 mnemonics (a run of 12 or more words of the English BIP-39 list) are replaced,
//!   leaving the rest of the text.
//!
//! Every rule is a linear-time regex or a single pass over words, so a 1 MB string costs
//! linear time.

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::LazyLock;

/// What replaces a secret.
pub const FILTERED: &str = "[Filtered]";

static WORDLIST: &str = include_str!("../data/bip39-english.txt");

static BIP39: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| WORDLIST.split_whitespace().collect());

// The patterns are constants (a unit test compiles each), not input.
static PF_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:sk|pk|pf)_[a-z]{2,12}_[A-Za-z0-9]{16,}").expect("constant pattern")
});
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)bearer\s+[A-Za-z0-9\-._~+/]{8,}=*").expect("constant pattern")
});
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")
        .expect("constant pattern")
});
static HEX_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)0x[0-9a-fA-F]{64}(?-u:\b)").expect("constant pattern"));

/// `password=…`, `api_key: …` and the like inside free text (log lines, exception values).
static KV_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)(?-u:\b)((?:password|passwd|pwd|passphrase|secret|api[_-]?key|private[_-]?key|access[_-]?token|auth[_-]?token|mnemonic|seed[_-]?phrase)\s*[=:]\s*)"?[^\s"',;&]+"?"#,
    )
    .expect("constant pattern")
});

/// Keys whose values are secrets, normalised (lowercase, no `-`/`_`), matched as substrings.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "apikey",
    "privatekey",
    "mnemonic",
    "seedphrase",
    "authorization",
    "cookie",
    "credential",
    "accesskey",
    "secretkey",
    "signingkey",
];

/// Keys whose values are secrets, normalised, matched exactly or as a suffix.
const SECRET_KEY_SUFFIXES: &[&str] = &["token", "seed", "auth", "pwd", "xprv"];

fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key rules as one byte regex over the normalised key (Teddy-accelerated literal
/// alternation: much cheaper than a `contains` per part on every key of every event).
static SECRET_KEY_RE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    let parts = SECRET_KEY_PARTS.join("|");
    let suffixes = SECRET_KEY_SUFFIXES.join("|");
    regex::bytes::Regex::new(&format!("(?:{parts})|(?:{suffixes})$")).expect("constant pattern")
});
static HASH_KEY_RE: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new(r"hash|^tx$|txid$").expect("constant pattern"));

/// Run `f` on the normalised key; ASCII keys up to 64 bytes (nearly all) use a stack buffer.
fn with_normalised_key<R>(key: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    if key.len() <= 64 && key.is_ascii() {
        let mut buf = [0u8; 64];
        let mut n = 0;
        for b in key.bytes().filter(|b| !matches!(b, b'_' | b'-' | b' ')) {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
        f(&buf[..n])
    } else {
        f(normalise_key(key).as_bytes())
    }
}

/// Whether a value under `key` is a secret as a whole.
pub fn is_secret_key(key: &str) -> bool {
    with_normalised_key(key, |k| !k.is_empty() && SECRET_KEY_RE.is_match(k))
}

fn is_hash_key(key: &str) -> bool {
    with_normalised_key(key, |k| HASH_KEY_RE.is_match(k))
}

/// One removal: where, and which rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removal {
    /// JSON path, e.g. `exception.values.0.value`.
    pub path: String,
    /// Rule name: `key`, `purple_flea_key`, `bearer`, `pem_private_key`,
    /// `hex_private_key`, `mnemonic`.
    pub rule: &'static str,
}

/// What a scrub removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Every removal.
    pub removals: Vec<Removal>,
}

impl ScrubReport {
    /// Nothing removed.
    pub fn is_empty(&self) -> bool {
        self.removals.is_empty()
    }

    /// The note stored with an event: `[{path, rule}]`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.removals).unwrap_or(Value::Null)
    }
}

/// Scrub every string of `value` in place.
pub fn scrub_value(value: &mut Value) -> ScrubReport {
    let mut report = ScrubReport::default();
    let mut path = String::new();
    walk(value, None, &mut path, &mut report, 0);
    report
}

/// Scrub an event in place and record the removals under `_meta.scrubbed`.
pub fn scrub_event(event: &mut Value) -> ScrubReport {
    let report = scrub_value(event);
    if !report.is_empty()
        && let Value::Object(map) = event
    {
        let meta = map
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.insert("scrubbed".into(), report.to_json());
        }
    }
    report
}

/// Depth past which the tree is not walked further (the value is dropped instead), so a
/// hostile, deeply nested payload cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

fn walk(
    value: &mut Value,
    key: Option<&str>,
    path: &mut String,
    report: &mut ScrubReport,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        *value = Value::String(FILTERED.into());
        report.removals.push(Removal {
            path: path.clone(),
            rule: "depth",
        });
        return;
    }
    if let Some(k) = key
        && is_secret_key(k)
        && !matches!(value, Value::Null)
        && value.as_str() != Some(FILTERED)
        && !matches!(value, Value::Bool(_))
    {
        *value = Value::String(FILTERED.into());
        report.removals.push(Removal {
            path: path.clone(),
            rule: "key",
        });
        return;
    }
    match value {
        Value::String(s) => {
            let a = anchors(s.as_bytes());
            let keep_hex = a.hex && key.is_some_and(is_hash_key);
            if let Some((clean, rules)) = scrub_text_with(s, &a, keep_hex) {
                *s = clean;
                for rule in rules {
                    report.removals.push(Removal {
                        path: path.clone(),
                        rule,
                    });
                }
            }
        }
        Value::Array(items) => {
            // A `[key, value]` pair (tags or headers as lists) is judged by its key.
            if items.len() == 2
                && let Some(k) = items[0].as_str().map(str::to_owned)
            {
                let len = path.len();
                push_path(path, "1");
                walk(&mut items[1], Some(&k), path, report, depth + 1);
                path.truncate(len);
                let len = path.len();
                push_path(path, "0");
                walk(&mut items[0], None, path, report, depth + 1);
                path.truncate(len);
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_path(path, &i.to_string());
                walk(item, None, path, report, depth + 1);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let len = path.len();
                push_path(path, k);
                walk(v, Some(k), path, report, depth + 1);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn push_path(path: &mut String, part: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(part);
}

/// Scrub secrets out of free text. `None` when nothing was found.
pub fn scrub_text(s: &str, keep_hex: bool) -> Option<(String, Vec<&'static str>)> {
    scrub_text_with(s, &anchors(s.as_bytes()), keep_hex)
}

fn scrub_text_with(s: &str, a: &Anchors, keep_hex: bool) -> Option<(String, Vec<&'static str>)> {
    let mut rules = Vec::new();
    let mut out: Option<String> = None;
    // Cheap substring prefilters: most strings hold none of the anchors a rule needs, and
    // skipping the regex for them is most of the scrubber's speed.
    let (has_pem, has_bearer, has_pf, has_0x) = (a.pem, a.bearer, a.pf, a.hex);
    let mut apply = |re: &Regex,
                     rule: &'static str,
                     replacement: &str,
                     out: &mut Option<String>,
                     wanted: bool| {
        if !wanted {
            return;
        }
        let current = out.as_deref().unwrap_or(s);
        if re.is_match(current) {
            let replaced = re.replace_all(current, replacement).into_owned();
            *out = Some(replaced);
            rules.push(rule);
        }
    };
    apply(&PEM, "pem_private_key", FILTERED, &mut out, has_pem);
    apply(&BEARER, "bearer", "Bearer [Filtered]", &mut out, has_bearer);
    apply(&PF_KEY, "purple_flea_key", FILTERED, &mut out, has_pf);
    apply(
        &HEX_KEY,
        "hex_private_key",
        FILTERED,
        &mut out,
        has_0x && !keep_hex,
    );
    apply(&KV_SECRET, "key_value", "${1}[Filtered]", &mut out, a.kv);
    let current = out.as_deref().unwrap_or(s);
    if a.spaces >= 11
        && let Some(clean) = scrub_mnemonics(current)
    {
        out = Some(clean);
        rules.push("mnemonic");
    }
    out.map(|o| (o, rules))
}

/// Which rules can possibly match, from one pass over the bytes.
#[derive(Debug, Default)]
struct Anchors {
    pem: bool,
    bearer: bool,
    pf: bool,
    hex: bool,
    /// A `=` or `:` that a `key=value` secret needs.
    kv: bool,
    /// ASCII whitespace bytes (a 12-word mnemonic needs at least 11).
    spaces: usize,
}

fn anchors(b: &[u8]) -> Anchors {
    let mut a = Anchors::default();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'_' if i >= 2 => {
                let p = [b[i - 2].to_ascii_lowercase(), b[i - 1].to_ascii_lowercase()];
                a.pf |= matches!(&p, b"sk" | b"pk" | b"pf");
            }
            b'x' if i >= 1 && b[i - 1] == b'0' => a.hex = true,
            b'-' => a.pem |= b[i..].starts_with(b"-----BEGIN"),
            b'b' | b'B' => {
                a.bearer |= b
                    .get(i..i + 6)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
            }
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => a.spaces += 1,
            b'=' | b':' => a.kv = true,
            _ => {}
        }
    }
    a
}

/// Replace every run of 12 or more consecutive BIP-39 words (separated by whitespace,
/// lowercase) with `[Filtered]`.
fn scrub_mnemonics(s: &str) -> Option<String> {
    // Quick reject: a mnemonic needs at least 11 spaces.
    if s.bytes().filter(|b| b.is_ascii_whitespace()).count() < 11 {
        return None;
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut run_start: Option<usize> = None;
    let mut run_end = 0;
    let mut run_len = 0;
    let mut pos = 0;
    for token in s.split_inclusive(|c: char| c.is_whitespace()) {
        let start = pos;
        pos += token.len();
        // The word without surrounding punctuation: "yellow," and "(legal" count.
        let trimmed_start = token.trim_start_matches(|c: char| !c.is_alphanumeric());
        let lead = token.len() - trimmed_start.len();
        let word = trimmed_start.trim_end_matches(|c: char| !c.is_alphanumeric());
        if word.is_empty() {
            continue;
        }
        // Typed or pasted phrases are sometimes capitalised ("Legal winner …").
        let lowered;
        let word = if word.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = word.to_ascii_lowercase();
            lowered.as_str()
        } else {
            word
        };
        if BIP39.contains(word) {
            if run_start.is_none() {
                run_start = Some(start + lead);
                run_len = 0;
            }
            run_len += 1;
            run_end = start + lead + word.len();
        } else {
            if let Some(rs) = run_start.take()
                && run_len >= 12
            {
                runs.push((rs, run_end));
            }
            run_len = 0;
        }
    }
    if let Some(rs) = run_start
        && run_len >= 12
    {
        runs.push((rs, run_end));
    }
    if runs.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (a, b) in runs {
        out.push_str(&s[last..a]);
        out.push_str(FILTERED);
        last = b;
    }
    out.push_str(&s[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const MNEMONIC: &str =
        "legal winner thank year wave sausage worth useful legal winner thank yellow";

    #[test]
    fn wordlist_is_the_standard_one() {
        assert_eq!(BIP39.len(), 2048);
        for w in ["abandon", "ability", "zoo", "legal", "yellow"] {
            assert!(BIP39.contains(w), "{w}");
        }
    }

    #[test]
    fn secrets_in_every_kind_of_place() {
        let mut e = json!({
            "message": "order failed with key sk_live_4f9a0c21b7e44f9a0c21b7e44f9a0c21b7e44f9a0c21b7e4 on BTC",
            "exception": {"values": [{"type": "E", "value": format!("seed is {MNEMONIC}, done")}]},
            "extra": {"wallet": {"private_key": "anything", "mnemonic": ["a"], "note": "pk 0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"}},
            "tags": [["api_key", "plain"], ["asset", "BTC"]],
            "request": {"headers": {"Authorization": "Bearer abc.def.ghi", "X-Trace": "ok"}},
            "breadcrumbs": {"values": [{"message": "GET /x Authorization: Bearer eyJhbGciOi.eyJzdWIi.sig"}]},
            "contexts": {"trace": {"data": {"tx_hash": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"}}},
            "user": {"id": "agent-1"},
            "other": "sk_trade_9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e pf_live_77aa88bb99cc00dd11ee22ff sk_domains_aa11bb22cc33dd44ee55"
        });
        let report = scrub_event(&mut e);
        let text = e.to_string();
        for secret in [
            "sk_live_4f9a",
            "legal winner",
            "anything",
            "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318\"}}, \"note\"",
            "plain",
            "abc.def.ghi",
            "eyJhbGciOi",
            "sk_trade_9b8c",
            "pf_live_77aa",
            "sk_domains_aa11",
        ] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        assert_eq!(e["message"], "order failed with key [Filtered] on BTC");
        assert_eq!(
            e["exception"]["values"][0]["value"],
            "seed is [Filtered], done"
        );
        assert_eq!(e["extra"]["wallet"]["note"], "pk [Filtered]");
        assert_eq!(e["tags"][0][1], "[Filtered]");
        assert_eq!(e["tags"][1][1], "BTC");
        assert_eq!(e["request"]["headers"]["X-Trace"], "ok");
        assert_eq!(e["user"]["id"], "agent-1");
        // A transaction hash under a hash key is kept.
        assert_eq!(
            e["contexts"]["trace"]["data"]["tx_hash"],
            "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
        );
        assert!(
            report
                .removals
                .iter()
                .any(|r| r.path == "extra.wallet.private_key" && r.rule == "key")
        );
        assert!(report.removals.iter().any(|r| r.rule == "mnemonic"));
        assert!(e["_meta"]["scrubbed"].as_array().unwrap().len() >= 8);
        assert!(!e["_meta"].to_string().contains("sk_live"));
    }

    #[test]
    fn key_value_secrets_in_free_text() {
        for (input, want) in [
            (
                "login failed password=hunter2 for agent",
                "login failed password=[Filtered] for agent",
            ),
            (
                "cfg api_key: \"abc123\", asset: BTC",
                "cfg api_key: [Filtered], asset: BTC",
            ),
            ("SECRET = s3cr3t", "SECRET = [Filtered]"),
        ] {
            let (out, rules) = scrub_text(input, false).expect("found");
            assert_eq!(out, want);
            assert_eq!(rules, vec!["key_value"]);
        }
        assert!(scrub_text("secret sauce: none; key: BTC", false).is_none());
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in [
            "order 1234 failed on BTC after 3 retries",
            "the risk check passed: exposure 0.2 below limit 0.5",
            "skip_live_trading is a flag, sk_live_short is too short",
            "address 0x742d35Cc6634C0532925a3b844Bc454e4438f44e",
            "abandon ship",
        ] {
            assert_eq!(scrub_text(s, false), None, "{s}");
        }
        assert!(!is_secret_key("asset"));
        assert!(!is_secret_key("tokens_used_by_model"));
        assert!(is_secret_key("X-Api-Key"));
        assert!(is_secret_key("csrf_token"));
        assert!(is_secret_key("seedPhrase"));
    }

    #[test]
    fn eleven_words_are_not_a_mnemonic_twelve_are() {
        let words: Vec<&str> = MNEMONIC.split(' ').collect();
        assert_eq!(scrub_text(&words[..11].join(" "), false), None);
        let (out, rules) = scrub_text(&format!("x {} y", words.join("  ")), false).unwrap();
        assert_eq!(out, "x [Filtered] y");
        assert_eq!(rules, vec!["mnemonic"]);
        // Capitalised and comma-separated, inside a sentence, 24 words.
        let long =
            format!("{}, {}", MNEMONIC.replace(' ', ", "), MNEMONIC).replacen("legal", "Legal", 1);
        let (out, _) = scrub_text(&format!("seed was: {long}."), false).unwrap();
        assert_eq!(out, "seed was: [Filtered].");
        // 13 English words that are not all on the list stay.
        let prose = "the order for the asset was placed at the venue and then it was filled";
        assert_eq!(scrub_text(prose, false), None);
    }

    #[test]
    fn big_strings_are_linear() {
        let big = "word ".repeat(200_000) + "sk_live_" + &"a".repeat(40);
        let start = std::time::Instant::now();
        let (out, _) = scrub_text(&big, false).unwrap();
        assert!(out.ends_with("[Filtered]"));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}", k in "[a-zA-Z_]{0,12}") {
            let mut v = json!({ k.clone(): s.clone(), "list": [s.clone(), 1, null], "nested": {"a": [[k, s]]} });
            let _ = scrub_event(&mut v);
        }
    }
}
