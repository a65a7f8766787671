//! Which frames of a stack trace are the application's own ("in-app"), per platform, and
//! which Rust panic frames are dropped, as Sentry's server-side rules decide.
//!
//! [`apply_in_app`] rewrites every stack trace of an event (exceptions, the event's own
//! `stacktrace`, threads) in place, before grouping, so the grouping, the culprit, the API
//! and the UI all see the same flags:
//!
//! * **Project prefixes** ([`InAppRules`]) come first: a frame whose function, module, file
//!   name or path starts with an `include` prefix is in-app, one matching an `exclude`
//!   prefix is not (include wins).
//! * **Python and Node**: the SDK's own `in_app` flag counts. A frame it left unflagged is
//!   in-app unless its path is under `site-packages`, `dist-packages` or `node_modules`, or
//!   is the runtime's own (`node:internal`, a Python `lib/pythonX.Y/` directory).
//! * **Rust**: the Rust SDK marks every frame it cannot classify as in-app, so the server
//!   only trusts an SDK `false`. Frames of `std`, `core`, `alloc`, `backtrace`, `sentry*`,
//!   `tokio*`, `futures*`, `tracing*`, `hyper*`, `axum*`, `tower*`, of crates under cargo's
//!   registry or git checkouts, of the toolchain's `library/` tree, and libc / thread
//!   start-up (`clone3`, `start_thread`, `__libc_start_*`, `_start`, C `main`) are not
//!   in-app. Builds with `debug = "line-tables-only"` report inlined functions by their
//!   short name (`current_stacktrace`, not `sentry_backtrace::current_stacktrace`), so a
//!   frame is judged by its path as well as its name. The panic machinery (the frames from
//!   the panic entry point — `rust_begin_unwind`, `panic_fmt`, `begin_panic`, `__rustc::*`
//!   — up to the SDK's panic hook) is removed from the trace: it is the same for every
//!   panic and says nothing about where the bug is.
//! * Other platforms keep the SDK's flags.
//!
//! When the server changes a frame's flag, the SDK's value is kept in the frame's
//! `data.orig_in_app` (as Sentry does), `null` if the SDK sent none.

use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// Most frames looked at per stack trace; frames past this are left as the SDK sent them.
pub const MAX_FRAMES: usize = 1024;
/// Most stack traces looked at per event (exceptions + threads + the event's own).
pub const MAX_STACKTRACES: usize = 256;
/// Longest project prefix kept, in bytes, and most prefixes per list.
pub const MAX_PREFIX_LEN: usize = 256;
/// Most prefixes per list in [`InAppRules`].
pub const MAX_PREFIXES: usize = 64;

/// A project's own in-app prefixes, applied before the built-in rules.
///
/// A prefix is matched against a frame's `function`, `module`, `filename` and `abs_path`:
/// `my_agent::` or `agent.strategies` or `/srv/agent/`. Empty prefixes are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InAppRules {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl InAppRules {
    /// Rules from include and exclude prefixes; empty prefixes are dropped, each list is
    /// capped at [`MAX_PREFIXES`] prefixes of at most [`MAX_PREFIX_LEN`] bytes.
    pub fn new<I, E>(include: I, exclude: E) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        E: IntoIterator,
        E::Item: AsRef<str>,
    {
        fn clean<T: AsRef<str>>(it: impl IntoIterator<Item = T>) -> Vec<String> {
            it.into_iter()
                .map(|p| p.as_ref().trim().to_owned())
                .filter(|p| !p.is_empty() && p.len() <= MAX_PREFIX_LEN)
                .take(MAX_PREFIXES)
                .collect()
        }
        InAppRules {
            include: clean(include),
            exclude: clean(exclude),
        }
    }

    /// The include prefixes.
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// The exclude prefixes.
    pub fn exclude(&self) -> &[String] {
        &self.exclude
    }

    /// `Some(true)` / `Some(false)` when a project prefix decides the frame.
    fn decide(&self, frame: &Map<String, Value>) -> Option<bool> {
        let fields = ["function", "module", "filename", "abs_path"];
        let hits = |prefixes: &[String]| {
            prefixes.iter().any(|p| {
                fields
                    .iter()
                    .any(|f| text(frame, f).is_some_and(|v| v.starts_with(p.as_str())))
            })
        };
        if hits(&self.include) {
            Some(true)
        } else if hits(&self.exclude) {
            Some(false)
        } else {
            None
        }
    }
}

/// The rule set a stack trace is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rust,
    Python,
    Node,
    Other,
}

fn text<'a>(frame: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    frame
        .get(key)
        .and_then(Value::as_str)
        // The Rust SDK names an unsymbolicated frame `<unknown>`.
        .filter(|s| !s.is_empty() && *s != "<unknown>")
}

fn family(event: &Value) -> Family {
    let platform = event.get("platform").and_then(Value::as_str).unwrap_or("");
    let sdk = event
        .get("sdk")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if sdk.starts_with("sentry.rust") || platform == "rust" {
        return Family::Rust;
    }
    match platform {
        "python" => Family::Python,
        "node" | "javascript" => Family::Node,
        // A native event from an SDK that does not say which: Rust when its frames are.
        "native" if any_rust_frame(event) => Family::Rust,
        _ => Family::Other,
    }
}

fn any_rust_frame(event: &Value) -> bool {
    let mut found = false;
    visit_stacktraces(event, &mut |frames| {
        found = found
            || frames.iter().take(MAX_FRAMES).any(|f| {
                ["abs_path", "filename"].iter().any(|k| {
                    f.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|p| p.ends_with(".rs"))
                })
            });
    });
    found
}

fn visit_stacktraces(event: &Value, visit: &mut impl FnMut(&[Value])) {
    let mut seen = 0;
    let mut one = |st: Option<&Value>| {
        if seen < MAX_STACKTRACES
            && let Some(frames) = st.and_then(|s| s.get("frames")).and_then(Value::as_array)
        {
            seen += 1;
            visit(frames);
        }
    };
    for key in ["exception", "threads"] {
        for v in event
            .get(key)
            .and_then(|c| c.get("values"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            one(v.get("stacktrace"));
        }
    }
    one(event.get("stacktrace"));
}

fn stacktraces_mut(event: &mut Value) -> Vec<&mut Map<String, Value>> {
    let Value::Object(e) = event else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, v) in e.iter_mut() {
        match key.as_str() {
            "exception" | "threads" => {
                if let Some(values) = v.get_mut("values").and_then(Value::as_array_mut) {
                    out.extend(
                        values
                            .iter_mut()
                            .filter_map(|x| x.get_mut("stacktrace"))
                            .filter_map(Value::as_object_mut),
                    );
                }
            }
            "stacktrace" => out.extend(v.as_object_mut()),
            _ => {}
        }
    }
    out.truncate(MAX_STACKTRACES);
    out
}

/// Classify the frames of every stack trace of `event` in place (see the module docs) and
/// drop the Rust panic machinery. Never panics, whatever the payload holds.
pub fn apply_in_app(event: &mut Value, rules: &InAppRules) {
    let fam = family(event);
    let mut dropped = 0usize;
    for st in stacktraces_mut(event) {
        let Some(frames) = st.get_mut("frames").and_then(Value::as_array_mut) else {
            continue;
        };
        if fam == Family::Rust {
            dropped += drop_panic_machinery(frames);
        }
        for frame in frames.iter_mut().take(MAX_FRAMES) {
            let Value::Object(f) = frame else { continue };
            let sdk = f.get("in_app").and_then(Value::as_bool);
            let decided = match (rules.decide(f), fam) {
                (Some(by_project), _) => by_project,
                (None, Family::Rust) => sdk != Some(false) && rust_in_app(f),
                (None, Family::Python | Family::Node) => sdk.unwrap_or_else(|| !library_path(f)),
                // Nothing to go by: the frame stays as sent.
                (None, Family::Other) => continue,
            };
            if sdk != Some(decided) {
                let data = f.entry("data").or_insert_with(|| json!({}));
                if let Value::Object(d) = data {
                    d.entry("orig_in_app")
                        .or_insert(sdk.map_or(Value::Null, Value::Bool));
                } else {
                    *data = json!({ "orig_in_app": sdk });
                }
                f.insert("in_app".into(), Value::Bool(decided));
            }
        }
    }
    if dropped > 0
        && let Value::Object(e) = event
        && let Value::Object(meta) = e.entry("_meta").or_insert_with(|| json!({}))
    {
        meta.insert("panic_frames_dropped".into(), json!(dropped));
    }
}

/// Crates (first path segment of a function) whose frames are never the application's.
const RUST_SYSTEM_CRATES: &[&str] = &[
    "std",
    "core",
    "alloc",
    "backtrace",
    "hyper",
    "axum",
    "tower",
];
/// Crate-name prefixes (`sentry_panic`, `tokio_util`, `futures_util`, `tracing_core`, …).
const RUST_SYSTEM_CRATE_PREFIXES: &[&str] = &[
    "sentry", "tokio", "futures", "tracing", "hyper_", "axum_", "tower_", "__rustc",
];
/// libc, the dynamic loader and thread start-up, by exact function name.
const NATIVE_START: &[&str] = &[
    "clone",
    "clone3",
    "start_thread",
    "__clone",
    "__clone3",
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "__libc_start_main_impl",
    "__rust_try",
    "__rust_begin_short_backtrace",
    "__rust_end_short_backtrace",
    "rust_begin_unwind",
    "__rust_start_panic",
];
/// The toolchain's own crates under its `library/` tree (which release toolchains remap to
/// `/rustc/<hash>/library/`).
const TOOLCHAIN_LIBRARIES: &[&str] = &[
    "std/",
    "core/",
    "alloc/",
    "panic_unwind/",
    "panic_abort/",
    "backtrace/",
    "std_detect/",
    "proc_macro/",
    "test/",
];
/// Paths of libc and thread start-up sources as glibc's debug info names them.
const LIBC_PATHS: &[&str] = &["/nptl/", "/sysdeps/", "/csu/"];

/// The crate a Rust function name belongs to: its first path segment, looking through
/// `<T as Trait>::f` to `T`, and `&`, `&mut `, `dyn ` before it.
fn rust_crate(function: &str) -> &str {
    let mut f = function.trim_start();
    loop {
        let before = f;
        f = f.trim_start_matches('<');
        f = f.trim_start_matches('&');
        for p in ["mut ", "dyn ", "impl "] {
            if let Some(rest) = f.strip_prefix(p) {
                f = rest;
            }
        }
        if f == before {
            break;
        }
    }
    let end = f
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(f.len());
    &f[..end]
}

/// The function's name without its path, generics and closure suffixes:
/// `std::panicking::begin_panic::{{closure}}` → `begin_panic`.
fn short_name(function: &str) -> &str {
    let f = function
        .split("::{{closure}}")
        .next()
        .unwrap_or(function)
        .split("::{closure")
        .next()
        .unwrap_or(function);
    let f = f.split('<').next().unwrap_or(f);
    f.rsplit("::").next().unwrap_or(f)
}

fn path_of(f: &Map<String, Value>) -> Option<&str> {
    text(f, "abs_path").or_else(|| text(f, "filename"))
}

/// A path with forward slashes (Windows builds report backslashes); no copy when it has
/// none.
fn slashes(path: &str) -> Cow<'_, str> {
    if path.contains('\\') {
        Cow::Owned(path.replace('\\', "/"))
    } else {
        Cow::Borrowed(path)
    }
}

/// Code that is not the application's, by path: cargo's registry and git checkouts, rustup
/// toolchains, the toolchain's `library/` tree, glibc's sources.
fn system_path(path: &str) -> bool {
    let p = slashes(path);
    let p = p.as_ref();
    if p.starts_with("/rustc/") && p.contains("/library/") {
        return true;
    }
    let library = p
        .find("/library/")
        .and_then(|i| p.get(i + "/library/".len()..))
        .or_else(|| p.strip_prefix("library/"));
    if library.is_some_and(|rest| TOOLCHAIN_LIBRARIES.iter().any(|l| rest.starts_with(l))) {
        return true;
    }
    if (p.contains("/.cargo/") || p.contains("/cargo/"))
        && (p.contains("/registry/src/") || p.contains("/git/checkouts/"))
    {
        return true;
    }
    p.contains("/.rustup/toolchains/")
        || LIBC_PATHS
            .iter()
            .any(|s| p.contains(s) || p.starts_with(s.trim_start_matches('/')))
}

/// A Rust frame is in-app unless its crate, name or path says it is library code.
fn rust_in_app(f: &Map<String, Value>) -> bool {
    let function = text(f, "function");
    let path = path_of(f);
    if function.is_none() && path.is_none() {
        // An unsymbolicated address: nothing says it is the application's.
        return false;
    }
    if let Some(func) = function {
        let krate = rust_crate(func);
        if RUST_SYSTEM_CRATES.contains(&krate)
            || RUST_SYSTEM_CRATE_PREFIXES
                .iter()
                .any(|p| krate.starts_with(p))
        {
            return false;
        }
        if NATIVE_START.contains(&func) {
            return false;
        }
        // C `main`: a `main` with no Rust source behind it.
        if func == "main" && !path.is_some_and(|p| p.ends_with(".rs")) {
            return false;
        }
    }
    !path.is_some_and(system_path)
}

/// Python and Node library code, judged by path.
fn library_path(f: &Map<String, Value>) -> bool {
    let Some(p) = path_of(f) else { return false };
    let p = slashes(p);
    p.contains("/site-packages/")
        || p.contains("/dist-packages/")
        || p.contains("/node_modules/")
        || p.starts_with("node:")
        || p.starts_with("internal/")
        || is_python_stdlib(&p)
}

/// `…/lib/python3.12/…` outside site-packages: the interpreter's standard library.
fn is_python_stdlib(p: &str) -> bool {
    p.split('/').collect::<Vec<_>>().windows(2).any(|w| {
        w[0] == "lib"
            && w[1].strip_prefix("python").is_some_and(|v| {
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            })
    })
}

/// Is this frame part of the panic machinery: the panic entry points, the runtime's panic
/// plumbing, and the SDK's hook?
fn panic_machinery(f: &Map<String, Value>) -> bool {
    let Some(func) = text(f, "function") else {
        return false;
    };
    let krate = rust_crate(func);
    if krate.starts_with("__rustc")
        || krate.starts_with("sentry_panic")
        || krate.starts_with("sentry_backtrace")
        || func == "rust_begin_unwind"
        || func == "__rust_start_panic"
    {
        return true;
    }
    let path = path_of(f).map(slashes);
    if path
        .as_deref()
        .is_some_and(|p| p.contains("/sentry-panic-") || p.contains("/sentry-backtrace-"))
    {
        return true;
    }
    let name = short_name(func);
    let entry = matches!(
        name,
        "rust_begin_unwind"
            | "panic_fmt"
            | "begin_panic"
            | "begin_panic_handler"
            | "rust_panic_with_hook"
            | "rust_panic"
            | "__rust_end_short_backtrace"
            | "default_hook"
    );
    // A short name only counts when nothing says it is the application's own function.
    entry
        && (matches!(krate, "std" | "core")
            || path.as_deref().is_some_and(system_path)
            || (krate == name && path.is_none()))
}

/// Remove the panic machinery from a Rust stack trace (oldest frame first): everything from
/// the outermost panic frame up. Returns how many frames went; nothing goes when that would
/// leave no frame.
fn drop_panic_machinery(frames: &mut Vec<Value>) -> usize {
    let cut = frames
        .iter()
        .take(MAX_FRAMES)
        .position(|f| f.as_object().is_some_and(panic_machinery));
    match cut {
        Some(i) if i > 0 => {
            let n = frames.len() - i;
            frames.truncate(i);
            n
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flags(event: &Value) -> Vec<(String, bool)> {
        event["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["function"].as_str().unwrap_or("?").to_owned(),
                    f["in_app"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    fn rust_event(frames: Value) -> Value {
        json!({"platform": "native", "sdk": {"name": "sentry.rust"},
            "exception": {"values": [{"type": "panic", "value": "boom",
                "mechanism": {"type": "panic", "handled": false},
                "stacktrace": {"frames": frames}}]}})
    }

    #[test]
    fn rust_library_frames_are_not_in_app_by_name_or_path() {
        let reg = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let mut ev = rust_event(json!([
            {"function": "clone3", "in_app": true},
            {"function": "start_thread", "filename": "./nptl/pthread_create.c", "in_app": true},
            {"function": "__libc_start_main", "in_app": true},
            {"function": "main", "in_app": true},
            {"function": "std::rt::lang_start_internal", "in_app": true},
            {"function": "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once", "in_app": true},
            {"function": "tokio::runtime::task::harness::poll", "in_app": true},
            {"function": "futures_util::future::poll", "in_app": true},
            {"function": "tracing_core::dispatch::get", "in_app": true},
            {"function": "hyper::proto::h1::dispatch", "in_app": true},
            {"function": "run_inner", "abs_path": format!("{reg}/tokio-1.48.0/src/runtime/mod.rs"), "in_app": true},
            {"function": "call_once", "abs_path": "/rustc/17067e9ac6d7e98f18d4ebd3cf2a4c4b3f1e2b3a/library/core/src/ops/function.rs", "in_app": true},
            {"function": "casino_kelly::main", "abs_path": "/work/crates/lookout-examples/src/casino_kelly.rs", "in_app": true},
            {"function": "main", "abs_path": "/work/crates/x/src/main.rs", "in_app": true},
            {"function": "<casino_kelly::Agent as core::fmt::Debug>::fmt", "in_app": true},
            {"function": "bet_once", "abs_path": "/work/crates/lookout-examples/src/casino_kelly.rs", "in_app": true},
            {"function": "my_agent::helpers::load", "in_app": false},
        ]));
        apply_in_app(&mut ev, &InAppRules::default());
        let f = flags(&ev);
        let app: Vec<&str> = f
            .iter()
            .filter(|(_, a)| *a)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            app,
            vec![
                "casino_kelly::main",
                "main",
                "<casino_kelly::Agent as core::fmt::Debug>::fmt",
                "bet_once"
            ],
            "{f:?}"
        );
        // The SDK's value is kept where the server changed it.
        let first = &ev["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(first["data"]["orig_in_app"], json!(true));
        let kept = &ev["exception"]["values"][0]["stacktrace"]["frames"][12];
        assert!(kept.get("data").is_none(), "{kept}");
    }

    #[test]
    fn the_panic_machinery_is_dropped() {
        let mut ev = rust_event(json!([
            {"function": "std::rt::lang_start_internal", "in_app": true},
            {"function": "casino_kelly::run", "abs_path": "/w/src/casino_kelly.rs", "in_app": true},
            {"function": "core::option::unwrap_failed", "in_app": true},
            {"function": "core::panicking::panic_fmt", "in_app": true},
            {"function": "rust_begin_unwind", "in_app": true},
            {"function": "std::panicking::rust_panic_with_hook", "in_app": true},
            {"function": "panic_handler", "abs_path": "/h/.cargo/registry/src/x/sentry-panic-0.49.5/src/lib.rs", "in_app": true},
            {"function": "current_stacktrace", "abs_path": "/h/.cargo/registry/src/x/sentry-backtrace-0.49.5/src/lib.rs", "in_app": true},
        ]));
        apply_in_app(&mut ev, &InAppRules::default());
        assert_eq!(
            flags(&ev),
            vec![
                ("std::rt::lang_start_internal".to_owned(), false),
                ("casino_kelly::run".to_owned(), true),
                ("core::option::unwrap_failed".to_owned(), false),
            ]
        );
        assert_eq!(ev["_meta"]["panic_frames_dropped"], 5);

        // Short names from line-tables-only builds, judged by path.
        let mut short = rust_event(json!([
            {"function": "run", "abs_path": "/w/src/agent.rs", "in_app": true},
            {"function": "begin_panic<&str>", "abs_path": "/rustc/abc/library/std/src/panicking.rs", "in_app": true},
            {"function": "__rustc::rust_begin_unwind", "in_app": true},
        ]));
        apply_in_app(&mut short, &InAppRules::default());
        assert_eq!(flags(&short), vec![("run".to_owned(), true)]);

        // An application function that happens to be called `panic_fmt` stays.
        let mut own = rust_event(json!([
            {"function": "main", "abs_path": "/w/src/main.rs"},
            {"function": "agent::panic_fmt", "abs_path": "/w/src/agent.rs"},
        ]));
        apply_in_app(&mut own, &InAppRules::default());
        assert_eq!(flags(&own).len(), 2);
        assert!(own.get("_meta").is_none());
    }

    #[test]
    fn project_prefixes_come_first() {
        let mut ev = rust_event(json!([
            {"function": "tokio::spawn_inner", "in_app": true},
            {"function": "vendored_venue::client::send", "in_app": true},
            {"function": "my_agent::run", "in_app": true},
        ]));
        let rules = InAppRules::new(["tokio::spawn", ""], ["vendored_venue::"]);
        assert_eq!(rules.include(), ["tokio::spawn"]);
        apply_in_app(&mut ev, &rules);
        assert_eq!(
            flags(&ev),
            vec![
                ("tokio::spawn_inner".to_owned(), true),
                ("vendored_venue::client::send".to_owned(), false),
                ("my_agent::run".to_owned(), true),
            ]
        );
    }

    #[test]
    fn python_and_node_trust_the_sdk_and_else_the_path() {
        let mut py = json!({"platform": "python", "exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"function": "main", "abs_path": "/srv/agent/main.py"},
            {"function": "request", "abs_path": "/srv/venv/lib/python3.12/site-packages/urllib3/pool.py"},
            {"function": "loads", "abs_path": "/usr/lib/python3.12/json/__init__.py"},
            {"function": "vendored", "abs_path": "/srv/venv/lib/python3.12/site-packages/ours/x.py", "in_app": true},
            {"function": "helper", "abs_path": "/srv/agent/helper.py", "in_app": false},
        ]}}]}});
        apply_in_app(&mut py, &InAppRules::default());
        let f: Vec<bool> = flags(&py).into_iter().map(|(_, a)| a).collect();
        assert_eq!(f, vec![true, false, false, true, false]);
        let mut node = json!({"platform": "node", "exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"function": "processTicksAndRejections", "filename": "node:internal/process/task_queues"},
            {"function": "handler", "abs_path": "/app/node_modules/express/lib/router.js"},
            {"function": "trade", "abs_path": "/app/src/trade.js"},
        ]}}]}});
        apply_in_app(&mut node, &InAppRules::default());
        let f: Vec<bool> = flags(&node).into_iter().map(|(_, a)| a).collect();
        assert_eq!(f, vec![false, false, true]);
    }

    #[test]
    fn crate_and_short_names() {
        assert_eq!(rust_crate("<&mut dyn core::any::Any as x>::f"), "core");
        assert_eq!(rust_crate("<alloc::boxed::Box<F>>::new"), "alloc");
        assert_eq!(rust_crate("main"), "main");
        assert_eq!(
            short_name("std::panicking::begin_panic::{{closure}}"),
            "begin_panic"
        );
        assert_eq!(short_name("begin_panic<&str>"), "begin_panic");
    }

    proptest! {
        #[test]
        fn never_panics(f in "\\PC{0,80}", p in "\\PC{0,80}", platform in "(native|python|node|other)", n in 0usize..6) {
            let frames: Vec<Value> = (0..n).map(|i| json!({"function": f, "abs_path": p, "in_app": i % 2 == 0, "data": i})).collect();
            let mut ev = json!({"platform": platform, "sdk": {"name": "sentry.rust"},
                "exception": {"values": [{"stacktrace": {"frames": frames}}, {"stacktrace": 3}]},
                "threads": {"values": [{"stacktrace": {"frames": [1, "x", null]}}]}, "stacktrace": {"frames": {}}});
            apply_in_app(&mut ev, &InAppRules::new([f.as_str()], [p.as_str()]));
        }
    }
}
