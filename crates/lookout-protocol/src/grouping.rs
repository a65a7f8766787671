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
//! The hash is the MD5 of the component values joined by NUL bytes, hex-encoded.

use md5::{Digest, Md5};
use regex::Regex;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// The grouping of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// 32 hex.
    pub hash: String,
    /// Which rule decided: `fingerprint`, `stacktrace`, `exception`, `message`, `fallback`.
    pub variant: &'static str,
    /// The component values hashed, in order.
    pub components: Vec<String>,
    /// Issue title (`Type: value`, or the message, or the transaction).
    pub title: String,
    /// Where: the transaction, else the crashing frame (`module in function`).
    pub culprit: String,
    /// `{type, value, function, filename}` or `{title}`.
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

/// Group a normalised event (transactions are not grouped into issues; their title is the
/// transaction name).
pub fn compute_grouping(event: &Value) -> Grouping {
    let (defaults, default_variant) = default_components(event);
    let (components, variant) = match event.get("fingerprint").and_then(Value::as_array) {
        Some(fp) if !fp.is_empty() => {
            let mut out = Vec::new();
            for entry in fp {
                let Some(s) = entry.as_str() else { continue };
                match variable(s) {
                    Some("default") => out.extend(defaults.iter().cloned()),
                    Some(name) => out.push(resolve_variable(event, name)),
                    None => out.push(s.to_owned()),
                }
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
    let (title, metadata) = match last_exc {
        Some(exc) => {
            let t = exc.get("type").and_then(Value::as_str).unwrap_or("Error");
            let v = exc.get("value").and_then(Value::as_str).unwrap_or("");
            let title = if v.is_empty() {
                t.to_owned()
            } else {
                format!("{t}: {}", truncate(first_line(v), 200))
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
            let title = message_of(event)
                .map(|(_, f)| truncate(first_line(&f), 200))
                .filter(|t| !t.is_empty())
                .or_else(|| {
                    event
                        .get("transaction")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "<unlabeled event>".into());
            (title.clone(), json!({ "title": title }))
        }
    };
    let culprit = event
        .get("transaction")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let f = frame?;
            let place = f
                .get("module")
                .and_then(Value::as_str)
                .or_else(|| f.get("filename").and_then(Value::as_str))?;
            Some(match f.get("function").and_then(Value::as_str) {
                Some(func) => format!("{place} in {func}"),
                None => place.to_owned(),
            })
        })
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
        assert_eq!(g.title, "InsufficientMargin: margin 12.5");
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

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parameterize(&s);
            let _ = compute_grouping(&json!({"message": s, "exception": {"values": [{"type": s, "stacktrace": {"frames": [{"function": s}]}}]}, "fingerprint": ["{{ tags.x }}", s]}));
        }
    }
}
