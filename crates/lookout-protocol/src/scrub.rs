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
//!   BIP-39 mnemonics (a run of 12 or more words of the English BIP-39 list, separated by
//!   any Unicode whitespace) are replaced,
//!   leaving the rest of the text.
//!
//! Every rule is a linear-time regex or a single pass over words, so a 1 MB string costs
//! linear time. Most strings and keys match no rule, so cheap prefilters that only skip what
//! cannot match (one pass over a string's bytes, a letter-set test on a key) come first; the
//! unit tests check each against the rules run unfiltered.

use regex::Regex;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
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

/// The keywords of [`KV_SECRET`], as `(stem, last word)`: a non-empty stem is followed by an
/// optional `_` or `-` (`api[_-]?key` is `("api", "key")`). The regex is built from this list
/// and the `key_value` prefilter ([`kv_keyword_before`]) reads it, so the two cannot drift.
const KV_KEYWORDS: &[(&str, &str)] = &[
    ("", "password"),
    ("", "passwd"),
    ("", "pwd"),
    ("", "passphrase"),
    ("", "secret"),
    ("api", "key"),
    ("private", "key"),
    ("access", "token"),
    ("auth", "token"),
    ("", "mnemonic"),
    ("seed", "phrase"),
];

/// `password=…`, `api_key: …` and the like inside free text (log lines, exception values),
/// also with the keyword quoted as JSON text quotes it (`{"api_key": "…"}` in a logged body).
static KV_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    let keywords: Vec<String> = KV_KEYWORDS
        .iter()
        .map(|(stem, last)| match *stem {
            "" => (*last).to_owned(),
            stem => format!("{stem}[_-]?{last}"),
        })
        .collect();
    Regex::new(&format!(
        r#"(?i)(?-u:\b)((?:{})"?\s*[=:]\s*)"?[^\s"',;&]+"?"#,
        keywords.join("|")
    ))
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

/// The first bytes of `parts`, as a table: a key byte that starts no part is skipped with one
/// load instead of a comparison per part.
const fn first_bytes(parts: &[&str]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < parts.len() {
        let part = parts[i].as_bytes();
        if !part.is_empty() {
            table[part[0] as usize] = true;
        }
        i += 1;
    }
    table
}

static SECRET_PART_STARTS: [bool; 256] = first_bytes(SECRET_KEY_PARTS);

/// The set of a word's bytes modulo 32, as bits. ASCII letters keep their low five bits when
/// lowercased, so the set of an ASCII key holds the set of its normalised form, and hence of
/// every part or suffix that form holds.
const fn letter_set(word: &[u8]) -> u32 {
    let mut set = 0;
    let mut i = 0;
    while i < word.len() {
        set |= 1 << (word[i] & 31);
        i += 1;
    }
    set
}

const SECRET_WORD_COUNT: usize = SECRET_KEY_PARTS.len() + SECRET_KEY_SUFFIXES.len();

/// The letter sets of [`SECRET_KEY_PARTS`] and [`SECRET_KEY_SUFFIXES`].
static SECRET_LETTER_SETS: [u32; SECRET_WORD_COUNT] = {
    let mut sets = [0; SECRET_WORD_COUNT];
    let mut i = 0;
    while i < SECRET_WORD_COUNT {
        let word = if i < SECRET_KEY_PARTS.len() {
            SECRET_KEY_PARTS[i]
        } else {
            SECRET_KEY_SUFFIXES[i - SECRET_KEY_PARTS.len()]
        };
        sets[i] = letter_set(word.as_bytes());
        i += 1;
    }
    sets
};

fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-' && *c != ' ')
        .flat_map(char::to_lowercase)
        .collect()
}

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

/// Whether `haystack` holds one of `parts`, whose first bytes are `starts`. Keys are short
/// (a dozen bytes), so a plain scan beats any searcher's setup.
fn contains_any(haystack: &[u8], parts: &[&str], starts: &[bool; 256]) -> bool {
    let mut rest = haystack;
    while let [first, tail @ ..] = rest {
        if starts[usize::from(*first)] && parts.iter().any(|p| rest.starts_with(p.as_bytes())) {
            return true;
        }
        rest = tail;
    }
    false
}

/// The key rules on a normalised key: it holds one of [`SECRET_KEY_PARTS`], or it is or ends
/// with one of [`SECRET_KEY_SUFFIXES`].
fn is_secret_normalised_key(k: &[u8]) -> bool {
    !k.is_empty()
        && (SECRET_KEY_SUFFIXES
            .iter()
            .any(|s| k.ends_with(s.as_bytes()))
            || contains_any(k, SECRET_KEY_PARTS, &SECRET_PART_STARTS))
}

/// Whether a value under `key` is a secret as a whole.
pub fn is_secret_key(key: &str) -> bool {
    // Quick reject, most keys: an ASCII key lacking a letter of every part and suffix holds
    // none of them (see `letter_set`). Non-ASCII keys can lowercase into ASCII (the Kelvin
    // sign is `k`), so they always take the full check.
    if key.is_ascii() {
        let set = letter_set(key.as_bytes());
        if !SECRET_LETTER_SETS.iter().any(|&word| word & !set == 0) {
            return false;
        }
    }
    with_normalised_key(key, is_secret_normalised_key)
}

/// Whether `key` names a hash (`tx_hash`, `blockHash`, `tx`, `txid`, …): a normalised key
/// holding `hash`, equal to `tx`, or ending with `txid`.
fn is_hash_key(key: &str) -> bool {
    with_normalised_key(key, |k| {
        k == b"tx" || k.ends_with(b"txid") || k.windows(4).any(|w| w == b"hash")
    })
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

/// Scrub `value`, found under `key` (`None` for a value under no key), in place: the same
/// rules [`scrub_value`] applies to a value under that key inside an event. This is the entry
/// point for callers that hold a typed event rather than its JSON (the agent library scrubs
/// `sentry` protocol structs field by field with it), so both scrub by one set of rules.
pub fn scrub_value_under(key: Option<&str>, value: &mut Value) -> ScrubReport {
    let mut report = ScrubReport::default();
    let mut path = key.unwrap_or_default().to_owned();
    walk(value, key, &mut path, &mut report, 0);
    report
}

/// Scrub a string found under `key` (`None` for free text): [`FILTERED`] when the key names a
/// secret, else the text with every secret in it replaced (a `0x` + 64 hex value is kept under
/// a key that names a hash). Borrowed exactly when nothing was found.
pub fn scrub_str_under<'a>(key: Option<&str>, s: &'a str) -> Cow<'a, str> {
    if s != FILTERED && key.is_some_and(is_secret_key) {
        return Cow::Owned(FILTERED.to_owned());
    }
    let a = anchors(s.as_bytes());
    let keep_hex = a.hex && key.is_some_and(is_hash_key);
    match scrub_text_with(s, &a, keep_hex) {
        Some((clean, _)) => Cow::Owned(clean),
        None => Cow::Borrowed(s),
    }
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
    // The cheap value checks come before the key rules, which then run only where they matter.
    if let Some(k) = key
        && !matches!(value, Value::Null | Value::Bool(_))
        && value.as_str() != Some(FILTERED)
        && is_secret_key(k)
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
            if let [first, second] = items.as_mut_slice()
                && let Some(k) = first.as_str()
            {
                let len = path.len();
                push_index(path, 1);
                walk(second, Some(k), path, report, depth + 1);
                path.truncate(len);
                push_index(path, 0);
                walk(first, None, path, report, depth + 1);
                path.truncate(len);
                return;
            }
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
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

/// [`push_path`] for an array index, formatted into the path (no `to_string` allocation per
/// item).
fn push_index(path: &mut String, index: usize) {
    if !path.is_empty() {
        path.push('.');
    }
    // Writing into a `String` cannot fail.
    let _ = write!(path, "{index}");
}

/// Scrub secrets out of free text. `None` when nothing was found.
pub fn scrub_text(s: &str, keep_hex: bool) -> Option<(String, Vec<&'static str>)> {
    scrub_text_with(s, &anchors(s.as_bytes()), keep_hex)
}

fn scrub_text_with(s: &str, a: &Anchors, keep_hex: bool) -> Option<(String, Vec<&'static str>)> {
    if !a.any() {
        return None;
    }
    let mut rules = Vec::new();
    let mut out: Option<String> = None;
    // Cheap prefilters: most strings hold none of the anchors a rule needs, and skipping the
    // regex for them is most of the scrubber's speed.
    //
    // The anchors are taken from `s`, while each rule runs on the text the rules before it
    // left. A replacement (`[Filtered]`, `Bearer [Filtered]`) adds no anchor a later rule
    // needs (`sk_`, `0x`, a keyword before `=` or `:`), and as it starts with `[` or `B` and
    // ends with `]`, it completes none with the text around it.
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
    apply(&PEM, "pem_private_key", FILTERED, &mut out, a.pem);
    apply(&BEARER, "bearer", "Bearer [Filtered]", &mut out, a.bearer);
    apply(&PF_KEY, "purple_flea_key", FILTERED, &mut out, a.pf);
    apply(
        &HEX_KEY,
        "hex_private_key",
        FILTERED,
        &mut out,
        a.hex && !keep_hex,
    );
    apply(&KV_SECRET, "key_value", "${1}[Filtered]", &mut out, a.kv);
    let current = out.as_deref().unwrap_or(s);
    if a.separators >= 11
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
    /// A `KV_SECRET` keyword, then optional whitespace, then `=` or `:` (or, in non-ASCII
    /// text, any `=` or `:`; see [`anchors`]).
    kv: bool,
    /// Bytes that may be or start a whitespace character: ASCII whitespace, and the lead bytes
    /// of every non-ASCII one (`0xC2` for U+0085 and U+00A0, `0xE1`, `0xE2` and `0xE3` for the
    /// rest). Each whitespace character has exactly one, so this is at least their number, and
    /// a 12-word mnemonic needs 11.
    separators: usize,
}

impl Anchors {
    /// Whether any rule can match.
    fn any(&self) -> bool {
        self.pem || self.bearer || self.pf || self.hex || self.kv || self.separators >= 11
    }

    /// Note what the byte at `i`, of class `class`, anchors.
    fn visit(&mut self, b: &[u8], i: usize, class: u8, kv_separator: &mut bool) {
        match class {
            UNDERSCORE if i >= 2 => {
                let p = [b[i - 2].to_ascii_lowercase(), b[i - 1].to_ascii_lowercase()];
                self.pf |= matches!(&p, b"sk" | b"pk" | b"pf");
            }
            LOWER_X if i >= 1 && b[i - 1] == b'0' => self.hex = true,
            DASH => self.pem |= b[i..].starts_with(b"-----BEGIN"),
            LETTER_B => {
                self.bearer |= b
                    .get(i..i + 6)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
            }
            KV_SEPARATOR => {
                *kv_separator = true;
                self.kv = self.kv || kv_keyword_before(&b[..i]);
            }
            _ => {}
        }
    }
}

/// Byte classes of the [`anchors`] pass. `PLAIN` and `SPACE` (most bytes) take the fast path.
const PLAIN: u8 = 0;
const SPACE: u8 = 1;
const UNDERSCORE: u8 = 2;
const LOWER_X: u8 = 3;
const DASH: u8 = 4;
const LETTER_B: u8 = 5;
const KV_SEPARATOR: u8 = 6;

/// `table` with each of `bytes` set to `class`.
const fn with_class(mut table: [u8; 256], bytes: &[u8], class: u8) -> [u8; 256] {
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = class;
        i += 1;
    }
    table
}

static ANCHOR_CLASS: [u8; 256] = {
    // The regex `\s` on ASCII (with the vertical tab, unlike `u8::is_ascii_whitespace`), and
    // the lead bytes of the non-ASCII whitespace characters (see `Anchors::separators`).
    let table = with_class([PLAIN; 256], b" \t\n\x0b\x0c\r", SPACE);
    let table = with_class(table, &[0xC2, 0xE1, 0xE2, 0xE3], SPACE);
    let table = with_class(table, b"_", UNDERSCORE);
    let table = with_class(table, b"x", LOWER_X);
    let table = with_class(table, b"-", DASH);
    let table = with_class(table, b"bB", LETTER_B);
    with_class(table, b"=:", KV_SEPARATOR)
};

/// The anchors of `b`, in one pass: a table load per byte, and a closer look only at the few
/// bytes that can start or end an anchor.
fn anchors(b: &[u8]) -> Anchors {
    let mut a = Anchors::default();
    let mut kv_separator = false;
    let mut separators = 0;
    for (i, &c) in b.iter().enumerate() {
        let class = ANCHOR_CLASS[usize::from(c)];
        separators += usize::from(class == SPACE);
        if class > SPACE {
            a.visit(b, i, class, &mut kv_separator);
        }
    }
    a.separators = separators;
    // In ASCII text, `KV_SECRET` can only match where a keyword, then whitespace, ends right
    // before a `=` or `:`, which is what `kv_keyword_before` looks for. Beyond ASCII, its
    // Unicode case folding (`ſ` is `s`, the Kelvin sign `K` is `k`) and Unicode `\s` match
    // more than that check sees, so any `=` or `:` lets the regex run.
    a.kv = a.kv || (kv_separator && !b.is_ascii());
    a
}

/// The regex `\s` on an ASCII byte: unlike `u8::is_ascii_whitespace`, it includes the
/// vertical tab. Read from [`ANCHOR_CLASS`], whose ASCII `SPACE` bytes are exactly these, so
/// the two cannot drift.
fn is_regex_space(c: &u8) -> bool {
    c.is_ascii() && ANCHOR_CLASS[usize::from(*c)] == SPACE
}

/// Whether `before` (the text before a `=` or `:`) ends with a [`KV_KEYWORDS`] keyword,
/// ASCII-case-insensitively, then an optional `"`, then optional ASCII whitespace: in ASCII
/// text, what comes before the `=` or `:` of any `KV_SECRET` match. Word boundaries are not
/// checked (a superset is sound).
fn kv_keyword_before(before: &[u8]) -> bool {
    let end = before
        .iter()
        .rposition(|c| !is_regex_space(c))
        .map_or(0, |p| p + 1);
    let text = &before[..end];
    let text = text.strip_suffix(b"\"").unwrap_or(text);
    let Some(end_byte) = text.last().map(u8::to_ascii_lowercase) else {
        return false;
    };
    KV_KEYWORDS.iter().any(|(stem, last)| {
        // Most `=` and `:` follow a digit, a quote or a letter no keyword ends with.
        if last.as_bytes().last() != Some(&end_byte) {
            return false;
        }
        let Some(rest) = strip_suffix_ignore_case(text, last) else {
            return false;
        };
        stem.is_empty()
            || strip_suffix_ignore_case(rest, stem).is_some()
            || rest
                .strip_suffix(b"_")
                .or_else(|| rest.strip_suffix(b"-"))
                .is_some_and(|r| strip_suffix_ignore_case(r, stem).is_some())
    })
}

fn strip_suffix_ignore_case<'a>(text: &'a [u8], suffix: &str) -> Option<&'a [u8]> {
    let split = text.len().checked_sub(suffix.len())?;
    let (rest, tail) = text.split_at(split);
    tail.eq_ignore_ascii_case(suffix.as_bytes()).then_some(rest)
}

/// Replace every run of 12 or more consecutive BIP-39 words (separated by any Unicode
/// whitespace, lowercase) with `[Filtered]`.
fn scrub_mnemonics(s: &str) -> Option<String> {
    if !may_hold_mnemonic(s) {
        return None;
    }
    replace_mnemonic_runs(s)
}

/// Whether `s` has a run of 12 word tokens of 3 to 8 ASCII letters, which any run of 12
/// BIP-39 words is (every word on the list is 3 to 8 lowercase ASCII letters; a test checks).
/// No set lookups: most text with a dozen spaces (log lines, code) fails this.
///
/// Tokens are split at ASCII whitespace (with the vertical tab) and at every non-ASCII byte
/// and trimmed of ASCII punctuation. That is sound against [`replace_mnemonic_runs`]'s
/// Unicode tokens: a token whose word is 3 to 8 ASCII letters yields the same word here plus
/// tokens of punctuation only (skipped, as there); a token with an empty word yields only
/// punctuation tokens; so a run there is a run here. The converse can fail (`café` is
/// `caf`), which only costs a lookup pass.
fn may_hold_mnemonic(s: &str) -> bool {
    let mut run = 0;
    let separator = |c: &u8| !c.is_ascii() || is_regex_space(c);
    for token in s.as_bytes().split(separator) {
        let Some(start) = token.iter().position(u8::is_ascii_alphanumeric) else {
            continue;
        };
        let end = token
            .iter()
            .rposition(u8::is_ascii_alphanumeric)
            .map_or(start, |e| e + 1);
        let word = &token[start..end];
        if (3..=8).contains(&word.len()) && word.iter().all(u8::is_ascii_alphabetic) {
            run += 1;
            if run == 12 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// The mnemonic rule proper: replace every run of 12 or more words on the list (tokens split
/// at Unicode whitespace, trimmed of non-alphanumeric characters, ASCII-lowercased).
fn replace_mnemonic_runs(s: &str) -> Option<String> {
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

    /// The key rules as they were defined: one regex over the normalised key.
    static SECRET_KEY_ORACLE: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
        let parts = SECRET_KEY_PARTS.join("|");
        let suffixes = SECRET_KEY_SUFFIXES.join("|");
        regex::bytes::Regex::new(&format!("(?:{parts})|(?:{suffixes})$")).expect("constant pattern")
    });
    static HASH_KEY_ORACLE: LazyLock<regex::bytes::Regex> =
        LazyLock::new(|| regex::bytes::Regex::new(r"hash|^tx$|txid$").expect("constant pattern"));

    fn is_secret_key_by_regex(key: &str) -> bool {
        with_normalised_key(key, |k| !k.is_empty() && SECRET_KEY_ORACLE.is_match(k))
    }

    fn is_hash_key_by_regex(key: &str) -> bool {
        with_normalised_key(key, |k| HASH_KEY_ORACLE.is_match(k))
    }

    /// `scrub_text` without any prefilter: every rule, in order, on the text so far.
    fn scrub_text_unfiltered(s: &str, keep_hex: bool) -> Option<(String, Vec<&'static str>)> {
        let mut text = s.to_owned();
        let mut rules = Vec::new();
        let regex_rules: [(&Regex, &str, &str); 5] = [
            (&PEM, "pem_private_key", FILTERED),
            (&BEARER, "bearer", "Bearer [Filtered]"),
            (&PF_KEY, "purple_flea_key", FILTERED),
            (&HEX_KEY, "hex_private_key", FILTERED),
            (&KV_SECRET, "key_value", "${1}[Filtered]"),
        ];
        for (re, rule, replacement) in regex_rules {
            if rule == "hex_private_key" && keep_hex {
                continue;
            }
            if re.is_match(&text) {
                text = re.replace_all(&text, replacement).into_owned();
                rules.push(rule);
            }
        }
        if let Some(clean) = replace_mnemonic_runs(&text) {
            text = clean;
            rules.push("mnemonic");
        }
        (!rules.is_empty()).then_some((text, rules))
    }

    const HEX64: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

    /// Pieces of the texts the rules look for, and of the texts around them.
    const TEXT_FRAGMENTS: &[&str] = &[
        "password",
        "Passwd",
        "PWD",
        "pwd",
        "passphrase",
        "SeCrEt",
        "secret",
        "api",
        "API",
        "key",
        "Key",
        "private",
        "access",
        "token",
        "auth",
        "mnemonic",
        "seed",
        "phrase",
        "apikey",
        "api_key",
        "API-KEY",
        "private-key",
        "Access_Token",
        "authtoken",
        "seed_phrase",
        "_",
        "-",
        "__",
        "=",
        ":",
        " = ",
        ": ",
        "=\"",
        "\"",
        "'",
        ",",
        ";",
        "&",
        " ",
        "  ",
        "\t",
        "\n",
        "\x0b",
        "\x0c",
        "\r",
        "\u{a0}",
        "\u{2003}",
        "\u{85}",
        "ſ",
        "\u{212a}",
        "é",
        "“",
        "”",
        ".",
        "(",
        ")",
        "[",
        "]",
        "/",
        "?",
        "Bearer ",
        "bearer\t",
        "BEARER",
        "abc.def-ghi_jkl",
        "eyJhbGciOi",
        "0",
        "0x",
        HEX64,
        "0x4c0883a69102937d",
        "sk_live_",
        "pk_test_",
        "pf_live_",
        "sk_",
        "Sk_",
        "AbCdEf0123456789xyz",
        "0123456789abcdef",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "-----BEGIN ",
        "PRIVATE KEY-----",
        "-----",
        "legal",
        "winner",
        "Thank",
        "year,",
        "wave",
        "(sausage",
        "worth",
        "useful",
        "abandon",
        "zoo",
        "order",
        "BTC",
        "the",
        "x",
        "12",
        "[Filtered]",
    ];

    /// Words, mostly BIP-39 ones in the forms the rule accepts, so that runs of twelve come up.
    const MNEMONIC_WORDS: &[&str] = &[
        "legal",
        "winner",
        "thank",
        "Year",
        "wave,",
        "sausage",
        "worth",
        "useful",
        "yellow",
        "abandon",
        "zoo",
        "(ability)",
        "LEGAL",
        "“thank”",
        "café",
        "the",
        "fox",
        "x",
        "12",
        "pwd=",
    ];

    /// What may stand between words: whitespace of every kind, punctuation, nothing.
    const MNEMONIC_GAPS: &[&str] = &[
        " ", " ", " ", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\u{a0}", "\u{3000}", "\u{85}",
        ", ", " - ", "“", "...", " ... ", "",
    ];

    /// `KV_SECRET` keywords in the forms they come in, near misses, and look-alikes.
    const KV_WORDS: &[&str] = &[
        "password",
        "PassWord",
        "passwd",
        "pwd",
        "PWD",
        "passphrase",
        "secret",
        "api_key",
        "api-key",
        "apikey",
        "API KEY",
        "api__key",
        "private_key",
        "privateKey",
        "access-token",
        "accesstoken",
        "auth_token",
        "AuthToken",
        "mnemonic",
        "seed_phrase",
        "SeedPhrase",
        "seed phrase",
        "paſsword",
        "api_\u{212a}ey",
        "token",
        "key",
        "xsecret",
        "secrets",
        "my_password",
        "pass",
        "",
    ];
    const KV_GAPS: &[&str] = &["", " ", "  ", "\t", "\n", "\x0b", "\u{a0}", "\u{2003}"];
    const KV_SEPARATORS: &[&str] = &["=", ":", "", "=>", ";", "::", "\":", "\" =", "\"\"="];
    const KV_VALUES: &[&str] = &[
        "hunter2",
        "\"abc\"",
        "'abc'",
        "",
        "\"",
        "[Filtered]",
        "sk_live_0123456789abcdefXYZ",
        "Bearer abcdefghij",
        "x,y",
        "0x4c0883a69102937d",
    ];
    const KV_JOINERS: &[&str] = &[" ", ", ", "&", "?", "", "\n", "-", "_"];

    fn text_strategy() -> impl Strategy<Value = String> {
        use prop::sample::select;
        let soup = prop::collection::vec(select(TEXT_FRAGMENTS), 0..30).prop_map(|v| v.concat());
        let words = prop::collection::vec((select(MNEMONIC_WORDS), select(MNEMONIC_GAPS)), 0..40)
            .prop_map(|v| v.into_iter().flat_map(|(w, g)| [w, g]).collect::<String>());
        let kv = prop::collection::vec(
            (
                select(KV_WORDS),
                select(KV_GAPS),
                select(KV_SEPARATORS),
                select(KV_GAPS),
                select(KV_VALUES),
                select(KV_JOINERS),
            ),
            1..5,
        )
        .prop_map(|v| {
            v.into_iter()
                .flat_map(|(k, g1, sep, g2, value, j)| [k, g1, sep, g2, value, j])
                .collect::<String>()
        });
        prop_oneof![soup, words, kv, "\\PC{0,80}"]
    }

    /// Pieces of key names, in the cases and separators keys come in.
    const KEY_FRAGMENTS: &[&str] = &[
        "pass",
        "word",
        "wd",
        "password",
        "secret",
        "Secret",
        "api",
        "key",
        "Key",
        "private",
        "access",
        "token",
        "TOKEN",
        "seed",
        "phrase",
        "auth",
        "Auth",
        "orization",
        "cookie",
        "cred",
        "ential",
        "mnemonic",
        "signing",
        "xprv",
        "pwd",
        "hash",
        "Hash",
        "tx",
        "Tx",
        "id",
        "txid",
        "_",
        "-",
        " ",
        "x",
        "a",
        "s",
        "K",
        "\u{212a}",
        "to",
        "en",
        "ey",
        "coo",
        "ie",
        "İ",
        "ſ",
        "é",
        "csrf",
        "asset",
        "tokens",
        "used",
    ];

    fn key_strategy() -> impl Strategy<Value = String> {
        use prop::sample::select;
        let pieces = prop::collection::vec(select(KEY_FRAGMENTS), 0..6).prop_map(|v| v.concat());
        // Past 64 bytes, keys take the allocating normalisation.
        let long = (pieces.clone(), 0..80usize).prop_map(|(k, n)| format!("{}{k}", "_x".repeat(n)));
        prop_oneof![pieces, long, "[a-zA-Z_\\- ]{0,16}", "\\PC{0,12}"]
    }

    #[test]
    fn non_ascii_keys_lowercase_into_secret_ones() {
        // The Kelvin sign lowercases to `k`; the ASCII letter-set reject must not see these.
        assert!(is_secret_key("TO\u{212a}EN"));
        assert!(is_secret_key("api_\u{212a}ey"));
        assert!(is_secret_key("coo\u{212a}ie_jar"));
        assert!(!is_secret_key("\u{212a}elvin"));
    }

    #[test]
    fn bip39_words_are_3_to_8_lowercase_ascii_letters() {
        // What `may_hold_mnemonic` relies on.
        for w in WORDLIST.split_whitespace() {
            assert!((3..=8).contains(&w.len()), "{w}");
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
    }

    #[test]
    fn kv_regex_is_the_documented_one() {
        assert_eq!(
            KV_SECRET.as_str(),
            r#"(?i)(?-u:\b)((?:password|passwd|pwd|passphrase|secret|api[_-]?key|private[_-]?key|access[_-]?token|auth[_-]?token|mnemonic|seed[_-]?phrase)"?\s*[=:]\s*)"?[^\s"',;&]+"?"#
        );
    }

    #[test]
    fn key_value_prefilter_edge_cases() {
        for (input, want) in [
            // Unicode case folding: `ſ` is `s` and the Kelvin sign is `k` to the regex.
            ("paſsword=hunter2", "paſsword=[Filtered]"),
            ("api_\u{212a}ey: abc", "api_\u{212a}ey: [Filtered]"),
            // Unicode `\s` between the keyword and the `=`.
            ("password\u{a0}= hunter2", "password\u{a0}= [Filtered]"),
            // ASCII `\s` includes the vertical tab, which `is_ascii_whitespace` does not.
            ("pwd\x0b=\x0bhunter2", "pwd\x0b=\x0b[Filtered]"),
            ("Seed-Phrase:abc", "Seed-Phrase:[Filtered]"),
            (
                "x access_token = \"abc\" y",
                "x access_token = [Filtered] y",
            ),
        ] {
            let (out, rules) = scrub_text(input, false).expect(input);
            assert_eq!(out, want);
            assert_eq!(rules, vec!["key_value"]);
        }
        for input in [
            "token=abc",
            "api key=abc",
            "seed__phrase=x",
            "https://example.com:8443/x",
        ] {
            assert_eq!(scrub_text(input, false), None, "{input}");
        }
    }

    #[test]
    fn regex_space_is_the_regex_s_on_ascii() {
        let s = Regex::new(r"^\s$").expect("constant pattern");
        for b in 0..=127u8 {
            let text = char::from(b).to_string();
            assert_eq!(is_regex_space(&b), s.is_match(&text), "{b:#04x}");
        }
    }

    #[test]
    fn every_whitespace_character_is_counted_as_a_separator() {
        // What `Anchors::separators` relies on: one counted byte per whitespace character.
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
        {
            let lead = c.encode_utf8(&mut buf).as_bytes()[0];
            assert_eq!(ANCHOR_CLASS[usize::from(lead)], SPACE, "{c:?}");
        }
    }

    #[test]
    fn mnemonic_prefilter_cases() {
        assert!(may_hold_mnemonic(MNEMONIC));
        // No-break spaces and curly quotes split and trim in the rule; here too.
        let nbsp = format!("“{}”", MNEMONIC.replace(' ', "\u{a0}"));
        assert!(replace_mnemonic_runs(&nbsp).is_some());
        assert!(may_hold_mnemonic(&nbsp));
        // Through the whole scrubber, with no ASCII whitespace at all: no-break, ideographic,
        // thin and line-separator spaces and the vertical tab all separate words.
        for gap in [
            "\u{a0}", "\u{3000}", "\u{2009}", "\u{2028}", "\u{85}", "\x0b",
        ] {
            let text = format!("w42:{gap}{}.", MNEMONIC.replace(' ', gap));
            let (out, rules) = scrub_text(&text, false).expect(gap);
            assert_eq!(out, format!("w42:{gap}[Filtered]."), "{gap:?}");
            assert_eq!(rules, vec!["mnemonic"]);
        }
        assert!(!may_hold_mnemonic(
            "    File \"/srv/agent/strategies/module_1.py\", line 41, in step_1 and more text"
        ));
        let eleven: Vec<&str> = MNEMONIC.split(' ').take(11).collect();
        assert!(!may_hold_mnemonic(&format!(
            "{} x12345 {}",
            eleven.join(" "),
            eleven.join(" ")
        )));
    }

    #[test]
    fn paths_and_order_of_removals() {
        let mut v = json!({
            "a": {"api_key": "k", "note": format!("sk_live_0123456789abcdefXYZ then 0x{HEX64}, password=x")},
            "b": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "Bearer abcdefghij"],
            "c": [["token", "t"], ["x", "secret: y"], ["auth", null]]
        });
        let report = scrub_value(&mut v);
        let got: Vec<(&str, &str)> = report
            .removals
            .iter()
            .map(|r| (r.path.as_str(), r.rule))
            .collect();
        assert_eq!(
            got,
            [
                ("a.api_key", "key"),
                ("a.note", "purple_flea_key"),
                ("a.note", "hex_private_key"),
                ("a.note", "key_value"),
                ("b.12", "bearer"),
                ("c.0.1", "key"),
                ("c.1.1", "key_value"),
            ]
        );
        assert_eq!(
            v["a"]["note"],
            "[Filtered] then [Filtered], password=[Filtered]"
        );
        assert_eq!(v["c"][2][1], Value::Null);
    }

    // The agent library's scrubber used to have rules of its own; these are its cases, now
    // checked against the one set of rules both crates use.

    const SEED12: &str =
        "abandon ability able about above absent absorb abstract absurd abuse access accident";

    fn text(s: &str) -> Cow<'_, str> {
        scrub_str_under(None, s)
    }

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
            assert_eq!(
                text(&input),
                format!("request failed with key {FILTERED} at 12:00")
            );
        }
    }

    #[test]
    fn order_ids_and_short_identifiers_are_kept_and_borrowed() {
        let s = "order ord_9f2c1a2b3c4d5e6f filled; agent ag_0123456789ab; sk_live_ short";
        assert_eq!(text(s), s);
        assert!(matches!(text(s), Cow::Borrowed(_)));
    }

    #[test]
    fn bearer_tokens_in_text_are_filtered() {
        assert_eq!(
            text("Authorization: Bearer abcdef0123456789xyz"),
            "Authorization: Bearer [Filtered]"
        );
        assert_eq!(
            text("sent bearer abcdef0123456789xyz to host"),
            "sent Bearer [Filtered] to host"
        );
    }

    #[test]
    fn key_value_pairs_in_text_keep_the_key_quoted_or_not() {
        assert_eq!(
            text("login password=hunter2 user=bob"),
            "login password=[Filtered] user=bob"
        );
        // A JSON body in a log line or exception value quotes its keys.
        assert_eq!(text(r#"{"api_key": "abc"}"#), r#"{"api_key": [Filtered]}"#);
        assert_eq!(
            text(r#"body {"asset":"BTC","private_key":"k1","seed_phrase" : "w"}"#),
            r#"body {"asset":"BTC","private_key":[Filtered],"seed_phrase" : [Filtered]}"#
        );
        assert_eq!(text(r#"{"keys": "abc"}"#), r#"{"keys": "abc"}"#);
    }

    #[test]
    fn private_keys_are_filtered_but_hashes_under_hash_keys_are_kept() {
        let hex = format!("0x{HEX64}");
        assert_eq!(text(&format!("key {hex}")), format!("key {FILTERED}"));
        assert_eq!(scrub_str_under(Some("tx_hash"), &hex), hex);
        assert_eq!(scrub_str_under(Some("note"), &hex), FILTERED);
        let mut v = json!({ "tx_hash": hex, "note": hex });
        scrub_value_under(None, &mut v);
        assert_eq!(v["tx_hash"], hex);
        assert_eq!(v["note"], FILTERED);
    }

    #[test]
    fn seed_phrases_of_12_and_24_words_are_filtered() {
        // `seed` is on the list too, so the run starts there.
        assert_eq!(text(&format!("seed: {SEED12}!")), "[Filtered]!");
        assert_eq!(
            text(&format!("phrase 42: {SEED12}!")),
            "phrase 42: [Filtered]!"
        );
        assert_eq!(text(&format!("{SEED12} {SEED12}")), FILTERED);
        let eleven = SEED12.rsplit_once(' ').map(|(a, _)| a).unwrap_or_default();
        assert_eq!(text(eleven), eleven);
        let prose = "the risk check failed because the daily loss limit was breached";
        assert_eq!(text(prose), prose);
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
            assert!(is_secret_key(key), "{key}");
            assert_eq!(scrub_str_under(Some(key), "plain"), FILTERED, "{key}");
        }
        for key in ["asset", "order_id", "z_score", "side"] {
            assert!(!is_secret_key(key), "{key}");
            assert_eq!(scrub_str_under(Some(key), "plain"), "plain", "{key}");
        }
    }

    #[test]
    fn values_under_a_sensitive_key_are_replaced_whole_at_any_depth() {
        let mut v = json!({
            "wallet": { "mnemonic": ["a", "b"], "network": "base" },
            "list": [{ "token": 42 }],
        });
        scrub_value_under(None, &mut v);
        assert_eq!(v["wallet"]["mnemonic"], FILTERED);
        assert_eq!(v["wallet"]["network"], "base");
        assert_eq!(v["list"][0]["token"], FILTERED);
        let mut under = json!({ "nested": "x" });
        let report = scrub_value_under(Some("api_key"), &mut under);
        assert_eq!(under, json!(FILTERED));
        assert_eq!(report.removals[0].path, "api_key");
    }

    #[test]
    fn index_paths_are_decimal() {
        for i in [0, 7, 9, 10, 99, 100, 4096, usize::MAX] {
            let mut path = String::from("a");
            push_index(&mut path, i);
            assert_eq!(path, format!("a.{i}"));
            let mut path = String::new();
            push_index(&mut path, i);
            assert_eq!(path, i.to_string());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn key_rules_agree_with_the_regexes(k in key_strategy()) {
            prop_assert_eq!(is_secret_key(&k), is_secret_key_by_regex(&k), "{:?}", k);
            prop_assert_eq!(is_hash_key(&k), is_hash_key_by_regex(&k), "{:?}", k);
        }

        #[test]
        fn prefilters_agree_with_every_rule_run(s in text_strategy(), keep_hex: bool) {
            prop_assert_eq!(scrub_text(&s, keep_hex), scrub_text_unfiltered(&s, keep_hex));
        }

        #[test]
        fn mnemonic_prefilter_keeps_every_run(s in text_strategy()) {
            if replace_mnemonic_runs(&s).is_some() {
                prop_assert!(may_hold_mnemonic(&s), "{:?}", s);
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}", k in "[a-zA-Z_]{0,12}") {
            let mut v = json!({ k.clone(): s.clone(), "list": [s.clone(), 1, null], "nested": {"a": [[k, s]]} });
            let _ = scrub_event(&mut v);
        }
    }
}
