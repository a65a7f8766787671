//! Grouping: which events are the same issue, as Sentry decides it.
//!
//! Order: the SDK's `fingerprint` (with `{{ default }}` splicing the default components and
//! the other variables resolved) → stack trace → exception → message.
//!
//! * A **frame** contributes `module` (else the lowercased basename of `filename`),
//!   `function`, and `context_line` (whitespace-collapsed, only for python, javascript/node,
//!   ruby and php, dropped past 120 characters). In-app frames only, unless none is in-app;
//!   a frame repeated back to back (recursion) counts once.
//! * An **exception** contributes its stack trace and its `type` (not when its mechanism is
//!   synthetic); its normalised `value` only when it has no stack trace. Every chained
//!   exception contributes. So Rust `capture_error` events (type and value, no frames) group
//!   by type + parameterised value.
//! * A **message** contributes `logentry.message` (the raw template) or else the formatted
//!   message, parameterised (`order 1234 failed` → `order <int> failed`).
//!
//! * A **Rust panic** (an exception whose mechanism is `panic`) with an in-app frame groups
//!   by its site and its message: the top in-app frame, the type and the parameterised
//!   value. The frames below the site (the main thread, a spawned thread, a tokio worker)
//!   do not count, so the same panic reached from anywhere is one issue (variant `panic`).
//!
//! The hash is the MD5 of the component values joined by NUL bytes, hex-encoded.
//!
//! Which frames are in-app is decided before grouping, by
//! [`crate::stacktrace::apply_in_app`]; [`compute_grouping`] reads the frames' `in_app`
//! flags as they are. [`GROUPING_CONFIG`] names these rules; the digest stores it with each
//! event's hash, so an event says which rules grouped it.
//!
//! **Title and culprit.** The title is `Type: value` (or the message). When a custom
//! fingerprint grouped the event, the fingerprint's values that the title does not already
//! show are added after the type (`InsufficientMargin (ETH, order_placement): margin …`),
//! so two issues split by the fingerprint can be told apart; `metadata.fingerprint` lists
//! them all. The culprit is the top in-app frame of the last exception (`module::function`
//! for Rust, `module in function` elsewhere), else the transaction, else the top frame.

use md5::{Digest, Md5};
use regex::Regex;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The name of the grouping rules of this module, stored with each event's hash. Bump it
/// when a change makes the same event hash differently.
pub const GROUPING_CONFIG: &str = "lookout:2026-12";

/// Most fingerprint values shown in a title.
const MAX_TITLE_PARTS: usize = 6;
/// Longest fingerprint value shown in a title, in characters.
const MAX_TITLE_PART_CHARS: usize = 64;

/// The grouping of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// 32 hex.
    pub hash: String,
    /// Which rule decided: `fingerprint`, `panic`, `stacktrace`, `exception`, `message`,
    /// `fallback`.
    pub variant: &'static str,
    /// The component values hashed, in order.
    pub components: Vec<String>,
    /// Issue title (`Type: value`, or the message, or the transaction), with what a custom
    /// fingerprint sets apart.
    pub title: String,
    /// Where: the top in-app frame (`module::function` for Rust, `module in function`
    /// elsewhere), else the transaction, else the top frame.
    pub culprit: String,
    /// `{type, value, function, filename}` or `{title}`; with `title` and `fingerprint` (the
    /// custom fingerprint's values) when a custom fingerprint grouped the event.
    pub metadata: Value,
}

const CONTEXT_LINE_PLATFORMS: &[&str] = &["python", "javascript", "node", "ruby", "php"];

static WHITESPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+").expect("constant pattern"));

/// The parameterisation patterns, in order; each replaces a match with `<name>`.
static PARAMS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,})",
        r"|(?P<url>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s)>\]]+)",
        r"|(?P<hostname>\b(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?\.)+(?:com|net|org|io|dev|app|co|ai|xyz|info|biz|cloud|local|internal|localdomain)\b)",
        r"|(?P<ip>\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b)",
        r"|(?P<traceparent>\b[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b)",
        r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
        r"|(?P<sha1>\b[0-9a-fA-F]{40}\b)",
        r"|(?P<md5>\b[0-9a-fA-F]{32}\b)",
        r"|(?P<date>\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+\-]\d{2}:?\d{2})?)?\b)",
        r"|(?P<duration>\b\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds|minutes|min|h|hours)\b)",
        r"|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b)",
        r"|(?P<git_sha>\b[0-9a-fA-F]{7}\b)",
        r"|(?P<float>\b\d+\.\d+\b)",
        r"|(?P<int>\b\d{1,7}\b)",
        r#"|(?P<quoted_str>=\s*(?:'[^']*'|"[^"]*"))"#,
        r"|(?P<bool>=\s*(?:true|false|True|False)\b)",
    ))
    .expect("constant pattern")
});

const PARAM_NAMES: &[&str] = &[
    "email",
    "url",
    "hostname",
    "ip",
    "traceparent",
    "uuid",
    "sha1",
    "md5",
    "date",
    "duration",
    "hex",
    "git_sha",
    "float",
    "int",
    "quoted_str",
    "bool",
];

/// Replace variable parts of a message with placeholders (`order #1231` → `order #<int>`).
pub fn parameterize(message: &str) -> String {
    PARAMS
        .replace_all(message, |caps: &regex::Captures<'_>| {
            for name in PARAM_NAMES {
                if caps.name(name).is_some() {
                    return match *name {
                        "quoted_str" => "=<quoted_str>".to_owned(),
                        "bool" => "=<bool>".to_owned(),
                        // Seven hex characters: a short git sha only when it mixes digits
                        // and letters; seven digits are an int, seven letters a word.
                        "git_sha" => {
                            let m = &caps[0];
                            if m.bytes().all(|b| b.is_ascii_digit()) {
                                "<int>".to_owned()
                            } else if m.bytes().any(|b| b.is_ascii_digit()) {
                                "<git_sha>".to_owned()
                            } else {
                                m.to_owned()
                            }
                        }
                        n => format!("<{n}>"),
                    };
                }
            }
            caps[0].to_owned()
        })
        .into_owned()
}

fn frames(exc: &Value) -> Vec<&Value> {
    exc.get("stacktrace")
        .and_then(|s| s.get("frames"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter(|f| f.is_object()).collect())
        .unwrap_or_default()
}

fn in_app_or_all(frames: Vec<&Value>) -> Vec<&Value> {
    let app: Vec<&Value> = frames
        .iter()
        .copied()
        .filter(|f| f.get("in_app") == Some(&Value::Bool(true)))
        .collect();
    if app.is_empty() { frames } else { app }
}

fn frame_components(frame: &Value, platform: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = frame
        .get("module")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        out.push(m.to_owned());
    } else if let Some(f) = frame
        .get("filename")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
    {
        let base = f.rsplit(['/', '\\']).next().unwrap_or(f);
        out.push(base.to_lowercase());
    }
    if let Some(func) = frame
        .get("function")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
    {
        out.push(func.to_owned());
    }
    if CONTEXT_LINE_PLATFORMS.contains(&platform)
        && let Some(line) = frame.get("context_line").and_then(Value::as_str)
    {
        let collapsed = WHITESPACE.replace_all(line.trim(), " ").into_owned();
        if !collapsed.is_empty() && collapsed.chars().count() <= 120 {
            out.push(collapsed);
        }
    }
    out
}

fn stack_components(frames: Vec<&Value>, platform: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous: Option<Vec<String>> = None;
    for f in in_app_or_all(frames) {
        let c = frame_components(f, platform);
        if c.is_empty() || previous.as_ref() == Some(&c) {
            continue;
        }
        out.extend(c.iter().cloned());
        previous = Some(c);
    }
    out
}

fn exceptions(event: &Value) -> Vec<&Value> {
    event
        .get("exception")
        .and_then(|e| e.get("values"))
        .and_then(Value::as_array)
        .map(|v| v.iter().filter(|e| e.is_object()).collect())
        .unwrap_or_default()
}

fn message_of(event: &Value) -> Option<(String, String)> {
    let formatted = event
        .get("logentry")
        .and_then(|l| l.get("formatted"))
        .and_then(Value::as_str)
        .or_else(|| event.get("message").and_then(Value::as_str))?;
    let raw = event
        .get("logentry")
        .and_then(|l| l.get("message"))
        .and_then(Value::as_str)
        .unwrap_or(formatted);
    Some((raw.to_owned(), formatted.to_owned()))
}

/// The default components and which rule produced them.
fn default_components(event: &Value) -> (Vec<String>, &'static str) {
    let platform = event
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or("other");
    let excs = exceptions(event);
    if let Some(site) = panic_site(&excs, platform) {
        return (site, "panic");
    }
    if !excs.is_empty() {
        let mut out = Vec::new();
        let mut any_stack = false;
        for exc in &excs {
            let fr = frames(exc);
            let synthetic = exc
                .get("mechanism")
                .and_then(|m| m.get("synthetic"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if fr.is_empty() {
                if !synthetic && let Some(t) = exc.get("type").and_then(Value::as_str) {
                    out.push(t.to_owned());
                }
                if let Some(v) = exc.get("value").and_then(Value::as_str) {
                    out.push(parameterize(v));
                }
            } else {
                any_stack = true;
                out.extend(stack_components(fr, platform));
                if !synthetic && let Some(t) = exc.get("type").and_then(Value::as_str) {
                    out.push(t.to_owned());
                }
            }
        }
        if !out.is_empty() {
            return (out, if any_stack { "stacktrace" } else { "exception" });
        }
    }
    let thread_stack = event
        .get("stacktrace")
        .or_else(|| {
            event
                .get("threads")
                .and_then(|t| t.get("values"))
                .and_then(Value::as_array)
                .and_then(|t| t.iter().find_map(|t| t.get("stacktrace")))
        })
        .map(|s| json!({ "stacktrace": s }));
    if let Some(s) = &thread_stack {
        let c = stack_components(frames(s), platform);
        if !c.is_empty() {
            return (c, "stacktrace");
        }
    }
    if let Some((raw, _)) = message_of(event) {
        return (vec![parameterize(&raw)], "message");
    }
    let fallback = event
        .get("transaction")
        .and_then(Value::as_str)
        .unwrap_or("<unlabeled event>")
        .to_owned();
    (vec![fallback], "fallback")
}

fn is_in_app(frame: &Value) -> bool {
    frame.get("in_app") == Some(&Value::Bool(true))
}

/// A Rust panic's site and message: the top in-app frame of the last exception, its type
/// and its parameterised value. `None` when the event is not a panic or has no in-app frame.
fn panic_site(excs: &[&Value], platform: &str) -> Option<Vec<String>> {
    let exc = excs.last()?;
    let mechanism = exc
        .get("mechanism")
        .and_then(|m| m.get("type"))
        .and_then(Value::as_str);
    if mechanism != Some("panic") {
        return None;
    }
    let site = frames(exc).into_iter().rev().find(|f| is_in_app(f))?;
    let mut out = frame_components(site, platform);
    if out.is_empty() {
        return None;
    }
    if let Some(t) = exc.get("type").and_then(Value::as_str) {
        out.push(t.to_owned());
    }
    if let Some(v) = exc.get("value").and_then(Value::as_str) {
        out.push(parameterize(v));
    }
    Some(out)
}

/// The crashing frame: the topmost in-app frame of the last exception (else its last frame).
fn crash_frame(event: &Value) -> Option<&Value> {
    let excs = exceptions(event);
    let last = excs.last()?;
    let fr = frames(last);
    fr.iter()
        .rev()
        .find(|f| f.get("in_app") == Some(&Value::Bool(true)))
        .or(fr.last())
        .copied()
}

fn resolve_variable(event: &Value, name: &str) -> String {
    let last_exc = exceptions(event).into_iter().last();
    let frame = crash_frame(event);
    let frame_field = |key: &str, missing: &str| {
        frame
            .and_then(|f| f.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| missing.to_owned())
    };
    match name {
        "transaction" => event
            .get("transaction")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "<no-transaction>".into()),
        "type" | "error.type" => last_exc
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "<no-type>".into()),
        "value" | "error.value" => last_exc
            .and_then(|e| e.get("value"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "<no-value>".into()),
        "function" | "stack.function" => frame_field("function", "<no-function>"),
        "module" | "stack.module" => frame_field("module", "<no-module>"),
        "path" | "stack.abs_path" => frame_field("abs_path", "<no-abs-path>"),
        "stack.filename" => frame_field("filename", "<no-filename>"),
        "package" | "stack.package" => frame_field("package", "<no-package>"),
        "level" => event
            .get("level")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned(),
        "logger" => event
            .get("logger")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "<no-logger>".into()),
        "message" => message_of(event)
            .map(|(_, f)| f)
            .or_else(|| {
                last_exc
                    .and_then(|e| e.get("value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "<no-message>".into()),
        other => match other.strip_prefix("tags.") {
            Some(tag) => event
                .get("tags")
                .and_then(|t| t.get(tag))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("<no-value-for-tag-{tag}>")),
            None => format!("<unrecognized-variable-{other}>"),
        },
    }
}

/// The variable name of a fingerprint entry (`{{ default }}` → `default`), if it is one.
fn variable(entry: &str) -> Option<&str> {
    let inner = entry.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    Some(inner.trim())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The fingerprint values a title does not already show, joined by `, `: a value is shown
/// unless it is one of the title's words (or, with spaces in it, part of the title).
fn title_parts(values: &[String], shown: &[&str]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':')))
            .map(|w| w.trim_end_matches(['.', ':']).to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let shown_words: Vec<String> = shown.iter().flat_map(|s| words(s)).collect();
    values
        .iter()
        .filter(|v| {
            let v = v.trim();
            if v.contains(char::is_whitespace) {
                !shown.iter().any(|s| s.contains(v))
            } else {
                !shown_words.iter().any(|w| w == v)
            }
        })
        .map(|v| truncate(v.trim(), MAX_TITLE_PART_CHARS))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Is this frame's code Rust (by its file), whatever the event's platform says?
fn rust_frame(frame: &Value) -> bool {
    ["filename", "abs_path"].iter().any(|k| {
        frame
            .get(*k)
            .and_then(Value::as_str)
            .is_some_and(|p| p.ends_with(".rs"))
    })
}

/// A frame as a culprit: `module::function` for Rust (the module from the file name when
/// the function has no path, as in line-tables-only builds), `module in function`
/// elsewhere.
/// The enclosing function of an anonymous Rust frame (`{async_fn#0}`, `{closure#1}`: how
/// line-tables-only builds name an async fn's or a closure's body), when another frame of
/// the same trace names its type in its generics (`…<app::casino::run::{async_fn_env#0}>`)
/// under the frame's module. Best effort, for display only: it depends on which frames the
/// trace holds, so grouping never uses it.
fn enclosing_function(func: &str, module: &str, trace: &[&Value]) -> Option<String> {
    let anon = func.split('<').next().unwrap_or(func);
    let inner = anon.strip_prefix('{')?.strip_suffix('}')?;
    let (kind, n) = inner.split_once('#')?;
    if !matches!(kind, "async_fn" | "closure" | "async_block") || n.is_empty() {
        return None;
    }
    let needle = format!("::{{{kind}_env#{n}}}");
    trace
        .iter()
        .filter_map(|f| f.get("function").and_then(Value::as_str))
        .find_map(|other| {
            let end = other.find(&needle)?;
            let head = other.get(..end)?;
            let start = head
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |i| i + 1);
            let path = head.get(start..)?;
            path.split("::")
                .any(|seg| seg == module)
                .then(|| path.to_owned())
        })
}

fn frame_culprit(f: &Value, platform: &str, exc: Option<&Value>) -> Option<String> {
    let function = f
        .get("function")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let module = f
        .get("module")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let filename = f
        .get("filename")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if platform == "rust" || (platform == "native" && rust_frame(f)) {
        // `run::{{closure}}` (an async fn's body) is `run`.
        let mut func = function?;
        while let Some(outer) = func
            .strip_suffix("::{{closure}}")
            .or_else(|| func.strip_suffix("::{closure}"))
        {
            func = outer;
        }
        if func.contains("::") {
            return Some(func.to_owned());
        }
        let module = module.map(str::to_owned).or_else(|| {
            let path = f
                .get("abs_path")
                .and_then(Value::as_str)
                .or(filename)?
                .replace('\\', "/");
            let mut segments = path.rsplit('/');
            let file = segments.next()?;
            let stem = file.strip_suffix(".rs").unwrap_or(file);
            // `src/lib.rs`, `src/main.rs` and `foo/mod.rs` are named by their directory.
            let name = if matches!(stem, "lib" | "main" | "mod") {
                segments.find(|s| !s.is_empty() && *s != "src")?
            } else {
                stem
            };
            Some(name.replace('-', "_"))
        });
        return Some(match module {
            Some(m) => exc
                .and_then(|e| enclosing_function(func, &m, &frames(e)))
                .unwrap_or_else(|| format!("{m}::{func}")),
            None => func.to_owned(),
        });
    }
    let place = module.or(filename)?;
    Some(match function {
        Some(func) => format!("{place} in {func}"),
        None => place.to_owned(),
    })
}

/// Group a normalised event (transactions are not grouped into issues; their title is the
/// transaction name). Run [`crate::stacktrace::apply_in_app`] on it first.
pub fn compute_grouping(event: &Value) -> Grouping {
    let (defaults, default_variant) = default_components(event);
    // The custom fingerprint's own values (not `{{ default }}`), for the title.
    let mut fingerprint_values: Vec<String> = Vec::new();
    let (components, variant) = match event.get("fingerprint").and_then(Value::as_array) {
        Some(fp) if !fp.is_empty() => {
            let mut out = Vec::new();
            for entry in fp {
                let Some(s) = entry.as_str() else { continue };
                let value = match variable(s) {
                    Some("default") => {
                        out.extend(defaults.iter().cloned());
                        continue;
                    }
                    Some(name) => resolve_variable(event, name),
                    None => s.to_owned(),
                };
                // Placeholders of unresolved variables (`<no-transaction>`) set nothing apart.
                let placeholder = value.starts_with('<') && value.ends_with('>');
                if fingerprint_values.len() < MAX_TITLE_PARTS
                    && !placeholder
                    && !value.trim().is_empty()
                    && !fingerprint_values.contains(&value)
                {
                    fingerprint_values.push(value.clone());
                }
                out.push(value);
            }
            (out, "fingerprint")
        }
        _ => (defaults, default_variant),
    };
    let mut hasher = Md5::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(c.as_bytes());
    }
    let hash = hex::encode(hasher.finalize());

    let last_exc = exceptions(event).into_iter().last();
    let frame = crash_frame(event);
    let (title, mut metadata) = match last_exc {
        Some(exc) => {
            let t = exc.get("type").and_then(Value::as_str).unwrap_or("Error");
            let v = exc.get("value").and_then(Value::as_str).unwrap_or("");
            let value = truncate(first_line(v), 200);
            let parts = title_parts(&fingerprint_values, &[t, &value]);
            let head = if parts.is_empty() {
                t.to_owned()
            } else {
                format!("{t} ({parts})")
            };
            let title = if v.is_empty() {
                head
            } else {
                format!("{head}: {value}")
            };
            (
                title,
                json!({
                    "type": t, "value": truncate(v, 1024),
                    "function": frame.and_then(|f| f.get("function")).cloned(),
                    "filename": frame.and_then(|f| f.get("filename")).cloned(),
                }),
            )
        }
        None => {
            let base = message_of(event)
                .map(|(_, f)| truncate(first_line(&f), 200))
                .filter(|t| !t.is_empty())
                .or_else(|| {
                    event
                        .get("transaction")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "<unlabeled event>".into());
            let parts = title_parts(&fingerprint_values, &[&base]);
            let title = if parts.is_empty() {
                base
            } else {
                format!("{base} ({parts})")
            };
            (title.clone(), json!({ "title": title }))
        }
    };
    if !fingerprint_values.is_empty()
        && let Value::Object(m) = &mut metadata
    {
        m.insert("title".into(), Value::String(title.clone()));
        let shown: Vec<String> = fingerprint_values
            .iter()
            .map(|v| truncate(v, MAX_TITLE_PART_CHARS))
            .collect();
        m.insert("fingerprint".into(), json!(shown));
    }
    let app_frame = frame.filter(|f| is_in_app(f));
    let platform = event.get("platform").and_then(Value::as_str).unwrap_or("");
    let culprit = app_frame
        .and_then(|f| frame_culprit(f, platform, last_exc))
        .or_else(|| {
            event
                .get("transaction")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| frame.and_then(|f| frame_culprit(f, platform, last_exc)))
        .unwrap_or_default();
    Grouping {
        hash,
        variant,
        components,
        title,
        culprit,
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parameterised_messages() {
        assert_eq!(parameterize("order #1231 failed"), "order #<int> failed");
        assert_eq!(
            parameterize("order 1234 failed"),
            parameterize("order 5678 failed")
        );
        assert_eq!(parameterize("id 123456789 gone"), "id <hex> gone");
        assert_eq!(parameterize("took 12.5 ms"), "took <duration>");
        assert_eq!(parameterize("price 12.50 below"), "price <float> below");
        assert_eq!(
            parameterize("user a.b@c.io at 10.0.0.1"),
            "user <email> at <ip>"
        );
        assert_eq!(
            parameterize("order 9ec79c33-ec99-42ab-8353-589fcb2e04dc"),
            "order <uuid>"
        );
        assert_eq!(
            parameterize("GET https://api.example.com/x?y=1 failed"),
            "GET <url> failed"
        );
        assert_eq!(
            parameterize("flag=true name='abc'"),
            "flag=<bool> name=<quoted_str>"
        );
        assert_eq!(parameterize("beef and cafe stay"), "beef and cafe stay");
        assert_eq!(parameterize("tx deadbeef42 failed"), "tx <hex> failed");
        assert_eq!(
            parameterize("connect to api.purpleflea.com refused"),
            "connect to <hostname> refused"
        );
        assert_eq!(parameterize("built from a1b2c3d"), "built from <git_sha>");
        assert_eq!(
            parameterize("qty 1234567 and defaced"),
            "qty <int> and defaced"
        );
        assert_eq!(parameterize("at 2026-11-24T12:00:00Z"), "at <date>");
        assert_eq!(
            parameterize("tp 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "tp <traceparent>"
        );
    }

    /// Hashes pinned from an independent md5 (coreutils `md5sum`) of the documented
    /// concatenation (component values joined by one NUL byte), so a change of the hash
    /// scheme or of the parameteriser shows up here.
    #[test]
    fn pinned_hashes() {
        // printf 'Error\0venue rejected order <int>' | md5sum
        let r = compute_grouping(
            &json!({"exception": {"values": [{"type": "Error", "value": "venue rejected order 4242"}]}}),
        );
        assert_eq!(r.hash, "f03af11d1728bbcea6341eaa6a6fc31b");
        // printf 'order <int> failed' | md5sum
        let m = compute_grouping(&json!({"message": "order 1234 failed"}));
        assert_eq!(m.hash, "9a95b8eaf21c1b4801a775bd2e5196f3");
        // printf 'm\0g\0E' | md5sum
        let s = compute_grouping(
            &json!({"platform": "native", "exception": {"values": [{"type": "E", "value": "v",
            "stacktrace": {"frames": [{"module": "m", "function": "g", "in_app": true}]}}]}}),
        );
        assert_eq!(s.hash, "9655a21b1520268841bfa82feaa1675b");
    }

    fn hash_of(parts: &[&str]) -> String {
        let mut h = Md5::new();
        h.update(parts.join("\0").as_bytes());
        hex::encode(h.finalize())
    }

    #[test]
    fn fingerprint_with_default_and_variables() {
        let ev = json!({"platform": "python", "exception": {"values": [{"type": "InsufficientMargin", "value": "margin 12.5",
            "stacktrace": {"frames": [{"module": "agent.loop", "function": "run", "in_app": true, "context_line": "  place(order)  "}]}}]},
            "fingerprint": ["{{ default }}", "InsufficientMargin", "BTC", "order_placement", "{{ tags.strategy }}", "{{transaction}}", "{{ bogus }}"]});
        let g = compute_grouping(&ev);
        assert_eq!(g.variant, "fingerprint");
        assert_eq!(
            g.components,
            vec![
                "agent.loop",
                "run",
                "place(order)",
                "InsufficientMargin",
                "InsufficientMargin",
                "BTC",
                "order_placement",
                "<no-value-for-tag-strategy>",
                "<no-transaction>",
                "<unrecognized-variable-bogus>"
            ]
        );
        assert_eq!(
            g.hash,
            hash_of(&g.components.iter().map(String::as_str).collect::<Vec<_>>())
        );
        // The fingerprint's own values that the title does not show yet set it apart.
        assert_eq!(
            g.title,
            "InsufficientMargin (BTC, order_placement): margin 12.5"
        );
        assert_eq!(
            g.metadata["fingerprint"],
            json!(["InsufficientMargin", "BTC", "order_placement"])
        );
        assert_eq!(g.metadata["title"], json!(g.title));
        assert_eq!(g.culprit, "agent.loop in run");
    }

    #[test]
    fn stack_frames_decide_and_values_do_not() {
        let mk = |value: &str, line: u32| {
            json!({"platform": "python", "exception": {"values": [{"type": "E", "value": value,
            "stacktrace": {"frames": [{"filename": "/srv/Agent.py", "function": "f", "lineno": line, "in_app": false},
                                       {"module": "m", "function": "g", "in_app": true}, {"module": "m", "function": "g", "in_app": true}]}}]}})
        };
        let a = compute_grouping(&mk("order 1 failed", 1));
        let b = compute_grouping(&mk("totally different", 99));
        assert_eq!(a.hash, b.hash);
        assert_eq!(
            a.components,
            vec!["m", "g", "E"],
            "in-app only, recursion once"
        );
        // No stack trace: type + parameterised value (Rust capture_error).
        let r1 = compute_grouping(
            &json!({"exception": {"values": [{"type": "Error", "value": "venue rejected order 77"}]}}),
        );
        let r2 = compute_grouping(
            &json!({"exception": {"values": [{"type": "Error", "value": "venue rejected order 78"}]}}),
        );
        let r3 = compute_grouping(
            &json!({"exception": {"values": [{"type": "Other", "value": "venue rejected order 78"}]}}),
        );
        assert_eq!(r1.hash, r2.hash);
        assert_ne!(r1.hash, r3.hash);
        assert_eq!(r1.variant, "exception");
        assert_eq!(r1.hash, hash_of(&["Error", "venue rejected order <int>"]));
    }

    #[test]
    fn messages_group_by_template() {
        let a = compute_grouping(
            &json!({"message": "order 1234 failed", "logentry": {"formatted": "order 1234 failed"}}),
        );
        let b = compute_grouping(&json!({"message": "order 5678 failed"}));
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.variant, "message");
        assert_eq!(a.title, "order 1234 failed");
        let t1 = compute_grouping(
            &json!({"logentry": {"message": "order %s failed", "formatted": "order 1 failed"}}),
        );
        let t2 = compute_grouping(
            &json!({"logentry": {"message": "order %s failed", "formatted": "order abc failed"}}),
        );
        assert_eq!(t1.hash, t2.hash);
    }

    #[test]
    fn context_lines_only_where_the_platform_has_them() {
        let frame =
            json!({"module": "m", "function": "f", "context_line": "x = 1", "in_app": true});
        let py = compute_grouping(
            &json!({"platform": "python", "exception": {"values": [{"type": "E", "stacktrace": {"frames": [frame.clone()]}}]}}),
        );
        let rs = compute_grouping(
            &json!({"platform": "native", "exception": {"values": [{"type": "E", "stacktrace": {"frames": [frame]}}]}}),
        );
        assert_eq!(py.components, vec!["m", "f", "x = 1", "E"]);
        assert_eq!(rs.components, vec!["m", "f", "E"]);
    }

    #[test]
    fn fingerprint_titles_tell_issues_apart() {
        let ev = |asset: &str| {
            json!({"platform": "native", "exception": {"values": [{"type": "InsufficientMargin",
                "value": "margin below maintenance on trade/open"}]},
                "fingerprint": ["{{ default }}", "InsufficientMargin", asset, "order_placement"]})
        };
        let (eth, btc) = (compute_grouping(&ev("ETH")), compute_grouping(&ev("BTC")));
        assert_ne!(eth.title, btc.title);
        assert_eq!(
            eth.title,
            "InsufficientMargin (ETH, order_placement): margin below maintenance on trade/open"
        );
        // Values the title already shows as a word are not repeated.
        let shown = compute_grouping(&json!({"message": "agent agent-7 stalled",
            "fingerprint": ["agent-stalled", "agent-7"]}));
        assert_eq!(shown.title, "agent agent-7 stalled (agent-stalled)");
        // Without a custom fingerprint the title is as before.
        let plain =
            compute_grouping(&json!({"exception": {"values": [{"type": "E", "value": "v"}]}}));
        assert_eq!(plain.title, "E: v");
        assert!(plain.metadata.get("fingerprint").is_none());
    }

    /// The frames the Rust SDK sends for a panic (shape taken from a real capture), after
    /// the server's in-app rules.
    fn rust_panic(via: &[(&str, &str)], value: &str) -> Value {
        let lib = "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library";
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let mut frames = vec![
            json!({"function": "<unknown>", "in_app": true}),
            json!({"function": "clone3", "filename": "clone3.S", "abs_path": "./misc/../sysdeps/unix/sysv/linux/x86_64/clone3.S", "in_app": true}),
            json!({"function": "start_thread", "abs_path": "./nptl/pthread_create.c", "in_app": true}),
            json!({"function": "catch_unwind<…>", "filename": "panic.rs", "abs_path": format!("{lib}/std/src/panic.rs"), "in_app": true}),
        ];
        for (function, path) in via {
            frames.push(json!({"function": function, "filename": "agent.rs", "abs_path": path, "in_app": true, "lineno": 10}));
        }
        frames.extend([
            json!({"function": "agent::risky_site", "filename": "agent.rs", "abs_path": "/w/src/agent.rs", "lineno": 8, "in_app": true}),
            json!({"function": "core::panicking::panic_fmt", "abs_path": format!("{lib}/core/src/panicking.rs"), "in_app": false}),
            json!({"function": "__rustc::rust_begin_unwind", "abs_path": format!("{lib}/std/src/panicking.rs"), "in_app": true}),
            json!({"function": "panic_handler", "filename": "lib.rs", "abs_path": format!("{reg}/sentry-panic-0.49.5/src/lib.rs"), "in_app": true}),
            json!({"function": "current_stacktrace", "filename": "lib.rs", "abs_path": format!("{reg}/sentry-backtrace-0.49.5/src/lib.rs"), "in_app": true}),
        ]);
        let mut ev = json!({"platform": "native", "sdk": {"name": "sentry.rust"},
            "exception": {"values": [{"type": "panic", "value": value,
                "mechanism": {"type": "panic", "handled": false}, "stacktrace": {"frames": frames}}]}});
        crate::stacktrace::apply_in_app(&mut ev, &crate::stacktrace::InAppRules::default());
        ev
    }

    #[test]
    fn a_panic_groups_by_its_site_and_message() {
        let main = compute_grouping(&rust_panic(
            &[("agent::main", "/w/src/main.rs")],
            "bankroll of agent 7 negative",
        ));
        let worker = compute_grouping(&rust_panic(
            &[
                (
                    "tokio::runtime::task::harness::poll",
                    "/r/tokio-1.54.1/src/x.rs",
                ),
                ("agent::worker::{{closure}}", "/w/src/worker.rs"),
            ],
            "bankroll of agent 9 negative",
        ));
        assert_eq!(main.variant, "panic");
        assert_eq!(main.hash, worker.hash);
        assert_eq!(
            main.components,
            vec![
                "agent.rs",
                "agent::risky_site",
                "panic",
                "bankroll of agent <int> negative"
            ]
        );
        assert_eq!(main.culprit, "agent::risky_site");
        let other = compute_grouping(&rust_panic(
            &[("agent::main", "/w/src/main.rs")],
            "order book empty",
        ));
        assert_ne!(main.hash, other.hash);
        // A short (line-tables-only) name gets its module from the file.
        let mut short = rust_panic(&[], "x");
        short["exception"]["values"][0]["stacktrace"]["frames"][4]["function"] =
            json!("bet_once::{{closure}}");
        short["exception"]["values"][0]["stacktrace"]["frames"][4]["abs_path"] =
            json!("/w/src/casino_kelly.rs");
        assert_eq!(compute_grouping(&short).culprit, "casino_kelly::bet_once");
        // An async fn's body (`{async_fn#0}`) is named after the fn when another frame
        // carries its type; grouping stays on what the frame itself says.
        let mut anon = rust_panic(
            &[(
                "poll<sentry_core::SentryFuture<agent::casino_kelly::run::{async_fn_env#0}>>",
                "/r/tokio-1.54.1/src/core.rs",
            )],
            "x",
        );
        anon["exception"]["values"][0]["stacktrace"]["frames"][5]["function"] =
            json!("{async_fn#0}");
        anon["exception"]["values"][0]["stacktrace"]["frames"][5]["abs_path"] =
            json!("/w/src/casino_kelly.rs");
        let g = compute_grouping(&anon);
        assert_eq!(g.culprit, "agent::casino_kelly::run");
        assert_eq!(g.components[..2], ["agent.rs", "{async_fn#0}"]);
        anon["exception"]["values"][0]["stacktrace"]["frames"][4]["function"] =
            json!("poll<other::place::{async_fn_env#0}>");
        assert_eq!(
            compute_grouping(&anon).culprit,
            "casino_kelly::{async_fn#0}"
        );
        // No in-app frame at all: the ordinary stack trace rules.
        let lib_only = json!({"platform": "native", "exception": {"values": [{"type": "panic", "value": "x",
            "mechanism": {"type": "panic"}, "stacktrace": {"frames": [{"function": "std::f", "in_app": false}]}}]}});
        assert_eq!(compute_grouping(&lib_only).variant, "stacktrace");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parameterize(&s);
            let _ = compute_grouping(&json!({"message": s, "exception": {"values": [{"type": s, "stacktrace": {"frames": [{"function": s}]}}]}, "fingerprint": ["{{ tags.x }}", s]}));
        }
    }
}
