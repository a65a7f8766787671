//! CPU profiles of order pipelines (the `profiling` cargo feature, off by default).
//!
//! With [`Options::profiles_sample_rate`](crate::Options::profiles_sample_rate) above 0, a
//! share of the sampled order pipelines is profiled: [`OrderPipeline::start`] decides, the
//! pipeline starts `pprof`'s in-process sampling profiler (SIGPROF at
//! [`Options::profiling_frequency`](crate::Options::profiling_frequency) per second of CPU
//! time, every thread of the process), and when the pipeline finishes its transaction is sent
//! with a `profile` item in Sentry's transaction-bound sampled profile format (version `1`,
//! platform `rust`) in the same envelope, and carries `contexts.profile.profile_id`.
//!
//! # Where the samples' timestamps come from
//!
//! `pprof` keeps no per-sample record: its report is a count per distinct stack (with the
//! time that stack was first seen). So the pipeline takes a report snapshot at its
//! boundaries: when it starts, before and after each stage, and when it finishes. The
//! difference of two consecutive snapshots is exactly the samples taken between them, so
//! every sample is placed inside the time window in which it was really taken: a sample
//! taken while `risk.check` ran lies inside the `risk.check` span, never in another stage.
//! Inside its window the order of the samples is not known; they are spread evenly over the
//! window (the profiler samples at a steady rate of CPU time), in the order their stacks
//! were first seen. A boundary less than half a sampling period after the previous snapshot
//! takes none (it could hold at most a sample or so, and a snapshot costs ~0.2 ms): the two
//! windows merge. So a pipeline of fast stages pays for two snapshots, and a slow stage gets
//! windows of its own.
//!
//! # Cost
//!
//! On the decision loop, a profiled pipeline pays for starting the profiler, the snapshots
//! and the samples themselves (an unwind per sample); finishing it wakes the transport's
//! worker thread, which stops the profiler, symbolicates the stacks (file and line need debug info, e.g.
//! `debug = "line-tables-only"`) and builds the item. Pipelines that are not profiled pay
//! nothing: the profiler is not running. [`init`](crate::init) starts and stops the profiler
//! once, so the first profiled pipeline does not pay for loading the binary's debug info.
//! Figures are in BENCHMARKS.md.
//!
//! # One at a time
//!
//! The profiler is process-wide: one pipeline is profiled at a time. A pipeline chosen for
//! profiling while another one is profiled (or until the worker has stopped the previous
//! profile), or while something else in the process runs `pprof`, goes unprofiled and is
//! counted ([`CounterSnapshot::profiles_busy`](crate::CounterSnapshot::profiles_busy)). A
//! profile with fewer than two samples (a pipeline much shorter than a sampling period) is
//! not sent ([`CounterSnapshot::profiles_empty`](crate::CounterSnapshot::profiles_empty)).
//!
//! # Frames
//!
//! Frames are the agent's own code: a frame is `in_app` unless it is the standard library,
//! a crate from a registry or git checkout, native code without Rust source, or this
//! library (`lookout_agent`, whose stage runner sits on every stack). Function names,
//! modules (the crate), file names (shortened to the crate's own path, so no home directory
//! leaves the process) and thread names go through the same scrubber as everything else.
//!
//! [`OrderPipeline::start`]: crate::OrderPipeline::start

use std::collections::HashMap;
use std::hash::Hash;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use pprof::{ProfilerGuard, ProfilerGuardBuilder};
use sentry::protocol::{Context, Envelope, EnvelopeItem, Transaction};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::scrub::{scrub_envelope, scrub_str};
use crate::transport::Counters;

/// The default sampling frequency, per second of CPU time: 101, not 100, so that sampling
/// does not run in lockstep with work scheduled every 10 ms.
pub const DEFAULT_FREQUENCY_HZ: u32 = 101;

/// Samples later than this after the profile's start are not sent (Sentry refuses longer
/// transaction-bound profiles).
pub const MAX_PROFILE_DURATION: Duration = Duration::from_secs(30);

/// Shared objects whose samples are not taken: unwinding from inside them can deadlock in a
/// signal handler (pprof's own recommendation).
const BLOCKLIST: [&str; 4] = ["libc", "libgcc", "pthread", "vdso"];

/// Whether a profile holds the process's profiler (from its start until the transport's
/// worker stops it).
static BUSY: AtomicBool = AtomicBool::new(false);

/// The profiler builder with the blocklist resolved (it walks the loaded objects once).
fn builder() -> &'static ProfilerGuardBuilder {
    static BUILDER: OnceLock<ProfilerGuardBuilder> = OnceLock::new();
    BUILDER.get_or_init(|| ProfilerGuardBuilder::default().blocklist(&BLOCKLIST))
}

/// The process's profiler while a profile holds it; dropping it stops the profiler, then
/// frees it for the next profile.
struct Slot {
    guard: Option<ProfilerGuard<'static>>,
}

impl Slot {
    /// Take the profiler and start it at `frequency` Hz, if no one else holds it.
    fn start(frequency: u32) -> Option<Self> {
        if BUSY
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let frequency = i32::try_from(frequency).unwrap_or(i32::MAX);
        match builder().clone().frequency(frequency).build() {
            Ok(guard) => Some(Self { guard: Some(guard) }),
            Err(error) => {
                // e.g. the process runs `pprof` itself
                tracing::debug!(%error, "the profiler did not start");
                BUSY.store(false, Ordering::Release);
                None
            }
        }
    }

    fn guard(&self) -> Option<&ProfilerGuard<'static>> {
        self.guard.as_ref()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.guard.take().is_some() {
            BUSY.store(false, Ordering::Release);
        }
    }
}

/// An agent's profiling settings ([`crate::Options::profiles_sample_rate`]).
#[derive(Debug, Clone)]
pub(crate) struct Profiling {
    rate: f32,
    frequency: u32,
    counters: Counters,
}

impl Profiling {
    /// The settings of an agent; with a rate above 0, the profiler is started and stopped
    /// once (the first time in the process) so that the first profiled pipeline does not pay
    /// for loading the binary's debug info.
    pub(crate) fn new(rate: f32, frequency: u32, counters: Counters) -> Self {
        let settings = Self {
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
            frequency: frequency.clamp(1, 1000),
            counters,
        };
        if settings.rate > 0.0 {
            static WARMED: std::sync::Once = std::sync::Once::new();
            WARMED.call_once(|| drop(Slot::start(settings.frequency)));
        }
        settings
    }

    /// Decide whether a sampled pipeline starting now is profiled, and start its profile.
    pub(crate) fn start(&self) -> Option<ActiveProfile> {
        if self.rate <= 0.0 || (self.rate < 1.0 && rand::random::<f32>() >= self.rate) {
            return None;
        }
        let Some(slot) = Slot::start(self.frequency) else {
            self.counters.add_profile_busy();
            return None;
        };
        let started = Instant::now();
        let period = Duration::from_secs(1) / self.frequency;
        Some(ActiveProfile {
            slot,
            id: Uuid::new_v4(),
            thread_id: nix::sys::pthread::pthread_self() as u64,
            started,
            last: started,
            min_window: period / 2,
            windows: Vec::with_capacity(8),
            counters: self.counters.clone(),
        })
    }
}

/// A snapshot of the profiler's counts per stack, taken at the end of a window.
struct Window {
    /// When the window ended.
    end: Instant,
    report: pprof::UnresolvedReport,
}

/// The profile of a running pipeline: the profiler and the snapshots taken so far.
pub(crate) struct ActiveProfile {
    slot: Slot,
    id: Uuid,
    /// The `pthread_self` of the thread that started the pipeline (the profiler names threads
    /// so).
    thread_id: u64,
    started: Instant,
    /// The end of the last window.
    last: Instant,
    min_window: Duration,
    windows: Vec<Window>,
    counters: Counters,
}

impl ActiveProfile {
    /// A window boundary: a snapshot, unless the last one is less than half a sampling
    /// period old. `at` is the boundary's time if the caller read it (the end of a stage);
    /// otherwise the boundary is the end of the snapshot (the start of a stage).
    pub(crate) fn mark(&mut self, at: Option<Instant>) {
        let now = at.unwrap_or_else(Instant::now);
        if now.saturating_duration_since(self.last) < self.min_window {
            return;
        }
        self.snapshot(at);
    }

    fn snapshot(&mut self, at: Option<Instant>) {
        let Some(report) = self
            .slot
            .guard()
            .and_then(|guard| guard.report().build_unresolved().ok())
        else {
            return;
        };
        let end = at.unwrap_or_else(Instant::now);
        self.windows.push(Window { end, report });
        self.last = end;
    }

    /// The last snapshot, when the pipeline finishes at `end` (`end_wall` on the wall clock,
    /// the transaction's end). The profiler keeps running until the worker drops the
    /// profile.
    pub(crate) fn finish(mut self, end: Instant, end_wall: SystemTime) -> FinishedProfile {
        self.snapshot(Some(end));
        let duration = end.saturating_duration_since(self.started);
        FinishedProfile {
            slot: self.slot,
            id: self.id,
            thread_id: self.thread_id,
            started: self.started,
            start_wall: end_wall.checked_sub(duration).unwrap_or(end_wall),
            duration,
            windows: self.windows,
            counters: self.counters,
        }
    }
}

/// A finished pipeline's profile, on its way to the transport's worker.
pub(crate) struct FinishedProfile {
    slot: Slot,
    id: Uuid,
    thread_id: u64,
    started: Instant,
    start_wall: SystemTime,
    duration: Duration,
    windows: Vec<Window>,
    counters: Counters,
}

/// Add the profile to the transaction's envelope (built on the worker): the transaction gets
/// `contexts.profile.profile_id`, the envelope a `profile` item after it. Both are scrubbed
/// here, since the envelope leaves as raw bytes (the `sentry` crate has no profile item).
/// Without a profile, or with one too short to send, the envelope is returned as it is.
pub(crate) fn attach(
    envelope: Option<Envelope>,
    profile: Option<FinishedProfile>,
) -> Option<Envelope> {
    let Some(profile) = profile else {
        return envelope;
    };
    let envelope = envelope?;
    let headers = envelope.headers().clone();
    let mut items: Vec<EnvelopeItem> = envelope.into_items().collect();
    let rebuild = |items: Vec<EnvelopeItem>| {
        let mut envelope = Envelope::new().with_headers(headers.clone());
        for item in items {
            envelope.add_item(item);
        }
        envelope
    };
    let Some(transaction) = items.iter_mut().find_map(|item| match item {
        EnvelopeItem::Transaction(transaction) => Some(transaction),
        _ => None,
    }) else {
        return Some(rebuild(items));
    };
    let id = profile.id;
    let counters = profile.counters.clone();
    let Some(payload) = profile.build(transaction) else {
        counters.add_profile_empty();
        return Some(rebuild(items));
    };
    transaction.contexts.insert(
        "profile".to_owned(),
        Context::Other(
            [(
                "profile_id".to_owned(),
                Value::String(id.simple().to_string()),
            )]
            .into_iter()
            .collect(),
        ),
    );
    let envelope = scrub_envelope(rebuild(items));
    let mut bytes = Vec::with_capacity(payload.len() + 4096);
    let written = envelope.to_writer(&mut bytes).and_then(|()| {
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        writeln!(bytes, r#"{{"type":"profile","length":{}}}"#, payload.len())?;
        bytes.extend_from_slice(&payload);
        bytes.push(b'\n');
        Ok(())
    });
    match written
        .ok()
        .and_then(|()| Envelope::from_bytes_raw(bytes).ok())
    {
        Some(raw) => {
            counters.add_profile_sent();
            Some(raw)
        }
        None => {
            counters.add_profile_empty();
            Some(envelope)
        }
    }
}

/// One frame of the profile (Sentry's sample format).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
struct Frame {
    function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineno: Option<u32>,
    in_app: bool,
}

#[derive(Debug, Serialize)]
struct Sample {
    stack_id: usize,
    thread_id: String,
    elapsed_since_start_ns: String,
}

#[derive(Debug, Serialize)]
struct ThreadMetadata {
    name: String,
}

#[derive(Debug, Serialize)]
struct SampledProfile {
    samples: Vec<Sample>,
    stacks: Vec<Vec<usize>>,
    frames: Vec<Frame>,
    thread_metadata: HashMap<String, ThreadMetadata>,
}

#[derive(Debug, Serialize)]
struct TransactionMetadata {
    id: String,
    name: String,
    trace_id: String,
    active_thread_id: String,
    relative_start_ns: String,
    relative_end_ns: String,
}

#[derive(Debug, Serialize)]
struct ProfileItem<'a> {
    event_id: String,
    version: &'static str,
    platform: &'static str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'a str>,
    device: Value,
    os: Value,
    runtime: Value,
    transaction: TransactionMetadata,
    profile: SampledProfile,
}

/// Builds the deduplicated frames and stacks of a profile.
#[derive(Default)]
struct Interner {
    frames: Vec<Frame>,
    frame_ids: HashMap<Frame, usize>,
    stacks: Vec<Vec<usize>>,
    stack_ids: HashMap<Vec<usize>, usize>,
}

impl Interner {
    fn frame(&mut self, frame: Frame) -> usize {
        if let Some(&id) = self.frame_ids.get(&frame) {
            return id;
        }
        let id = self.frames.len();
        self.frames.push(frame.clone());
        self.frame_ids.insert(frame, id);
        id
    }

    fn stack(&mut self, stack: Vec<usize>) -> usize {
        if let Some(&id) = self.stack_ids.get(&stack) {
            return id;
        }
        let id = self.stacks.len();
        self.stacks.push(stack.clone());
        self.stack_ids.insert(stack, id);
        id
    }
}

/// The samples of one stack in one window.
struct Delta {
    /// Index of the stack in the list of distinct raw stacks.
    stack: usize,
    count: u64,
    first_seen: SystemTime,
}

/// The count of each stack taken in each window: the differences of consecutive snapshots,
/// and the distinct raw stacks they refer to (in order of appearance).
fn window_deltas<K>(
    windows: impl IntoIterator<Item = (Instant, std::collections::HashMap<K, isize>)>,
    first_seen: impl Fn(&K) -> SystemTime,
) -> (Vec<K>, Vec<(Instant, Vec<Delta>)>)
where
    K: Hash + Eq + Clone,
{
    let mut keys: Vec<K> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut previous: HashMap<usize, isize> = HashMap::new();
    let mut out = Vec::new();
    for (end, counts) in windows {
        let mut deltas = Vec::new();
        for (key, count) in counts {
            let stack = match index.get(&key) {
                Some(&stack) => stack,
                None => {
                    let stack = keys.len();
                    keys.push(key.clone());
                    index.insert(key.clone(), stack);
                    stack
                }
            };
            let before = previous.insert(stack, count).unwrap_or(0);
            if count > before {
                deltas.push(Delta {
                    stack,
                    count: (count - before).unsigned_abs() as u64,
                    first_seen: first_seen(&key),
                });
            }
        }
        deltas.sort_by_key(|delta| (delta.first_seen, delta.stack));
        out.push((end, deltas));
    }
    (keys, out)
}

/// The offsets (from the window's start) of `count` samples spread evenly over a window of
/// length `window`: the middle of each of `count` equal parts.
fn spread(window: Duration, count: u64) -> impl Iterator<Item = Duration> {
    let nanos = window.as_nanos();
    let count_wide = u128::from(count.max(1));
    (0..count).map(move |i| {
        let offset = nanos * (2 * u128::from(i) + 1) / (2 * count_wide);
        Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    })
}

impl FinishedProfile {
    /// Stop the profiler and build the profile item's JSON for this transaction; `None` when
    /// it has fewer than two samples.
    fn build(self, transaction: &Transaction<'static>) -> Option<Vec<u8>> {
        let FinishedProfile {
            slot,
            id,
            thread_id,
            started,
            start_wall,
            duration,
            windows,
            counters: _,
        } = self;
        // Stop sampling before the symbolication below (it would sample itself).
        drop(slot);

        let (keys, windows) = window_deltas(
            windows
                .into_iter()
                .map(|window| (window.end, window.report.data)),
            |key| key.sample_timestamp,
        );
        let limit = duration.min(MAX_PROFILE_DURATION);
        let mut placed: Vec<(usize, Duration)> = Vec::new();
        let mut window_start = started;
        for (end, deltas) in windows {
            let length = end.saturating_duration_since(window_start);
            let base = window_start.saturating_duration_since(started);
            let total = deltas.iter().map(|delta| delta.count).sum();
            let mut offsets = spread(length, total);
            for delta in &deltas {
                for offset in offsets.by_ref().take(delta.count as usize) {
                    let at = base + offset;
                    if at <= limit {
                        placed.push((delta.stack, at));
                    }
                }
            }
            window_start = end;
        }
        if placed.len() < 2 {
            return None;
        }

        let mut interner = Interner::default();
        let mut stack_of_key = Vec::with_capacity(keys.len());
        let mut thread_of_key = Vec::with_capacity(keys.len());
        let mut thread_metadata = HashMap::new();
        for key in keys {
            let resolved = pprof::Frames::from(key);
            let mut stack = Vec::with_capacity(resolved.frames.len());
            // Leaf first, as Sentry expects; an inlined function comes before its caller.
            for symbols in &resolved.frames {
                for symbol in symbols {
                    stack.push(interner.frame(frame_of(symbol)));
                }
            }
            stack_of_key.push(interner.stack(stack));
            let thread = resolved.thread_id.to_string();
            thread_metadata
                .entry(thread.clone())
                .or_insert_with(|| ThreadMetadata {
                    name: scrub_str(&resolved.thread_name_or_id()).into_owned(),
                });
            thread_of_key.push(thread);
        }
        placed.sort_by_key(|&(_, at)| at);
        let samples = placed
            .into_iter()
            .map(|(key, at)| Sample {
                stack_id: stack_of_key[key],
                thread_id: thread_of_key[key].clone(),
                elapsed_since_start_ns: at.as_nanos().to_string(),
            })
            .collect();

        let trace_id = match transaction.contexts.get("trace") {
            Some(Context::Trace(trace)) => trace.trace_id.to_string(),
            _ => return None,
        };
        let environment = machine();
        let item = ProfileItem {
            event_id: id.simple().to_string(),
            version: "1",
            platform: "rust",
            timestamp: chrono::DateTime::<chrono::Utc>::from(start_wall)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            release: transaction.release.as_deref(),
            environment: transaction.environment.as_deref(),
            device: environment.device.clone(),
            os: environment.os.clone(),
            runtime: environment.runtime.clone(),
            transaction: TransactionMetadata {
                id: transaction.event_id.simple().to_string(),
                name: transaction.name.clone().unwrap_or_default(),
                trace_id,
                active_thread_id: thread_id.to_string(),
                relative_start_ns: "0".to_owned(),
                relative_end_ns: duration.as_nanos().to_string(),
            },
            profile: SampledProfile {
                samples,
                stacks: interner.stacks,
                frames: interner.frames,
                thread_metadata,
            },
        };
        serde_json::to_vec(&item).ok()
    }
}

/// The `device`, `os` and `runtime` of the profile format, from `sentry`'s own contexts.
struct Machine {
    device: Value,
    os: Value,
    runtime: Value,
}

fn machine() -> &'static Machine {
    use sentry::integrations::contexts::utils::{os_context, rust_context};
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    MACHINE.get_or_init(|| {
        let (os_name, os_version) = match os_context() {
            Some(Context::Os(os)) => (os.name, os.version),
            _ => (None, None),
        };
        let runtime_version = match rust_context() {
            Context::Runtime(runtime) => runtime.version,
            _ => None,
        };
        Machine {
            device: serde_json::json!({ "architecture": std::env::consts::ARCH }),
            os: serde_json::json!({
                "name": os_name.unwrap_or_else(|| std::env::consts::OS.to_owned()),
                "version": os_version.unwrap_or_default(),
            }),
            runtime: serde_json::json!({
                "name": "rustc",
                "version": runtime_version.unwrap_or_default(),
            }),
        }
    })
}

/// A profile frame from a resolved symbol: the demangled function, its crate as the module,
/// the shortened file name, the line, and whether it is the agent's own code.
fn frame_of(symbol: &pprof::Symbol) -> Frame {
    let function = strip_hash(&symbol.name()).to_owned();
    let path = symbol
        .filename
        .as_ref()
        .map(|path| path.to_string_lossy().into_owned());
    let module = crate_of(&function).map(str::to_owned);
    let in_app = in_app(module.as_deref(), path.as_deref());
    Frame {
        function: scrub_str(&function).into_owned(),
        module: module.map(|module| scrub_str(&module).into_owned()),
        filename: path.map(|path| scrub_str(short_path(&path)).into_owned()),
        lineno: symbol.lineno,
        in_app,
    }
}

/// A legacy-mangled Rust name's hash suffix (`::h0123456789abcdef`) removed.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// The crate a demangled Rust path starts with (for `<T as Trait>::f`, the crate of `T`):
/// `lookout_agent` for `lookout_agent::pipeline::OrderPipeline::stage`. A name without `::`
/// (an inlined function's short name, from debug info) has none.
fn crate_of(function: &str) -> Option<&str> {
    if !function.contains("::") {
        return None;
    }
    let mut rest = function.trim_start_matches(['<', '&', '*', '(']);
    for prefix in ["dyn ", "mut ", "const "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    (!name.is_empty() && rest[end..].starts_with("::")).then_some(name)
}

/// Crates whose frames are never the agent's own code, whatever their path: the standard
/// library (without debug info for it) and this library.
const LIBRARY_CRATES: [&str; 5] = ["std", "core", "alloc", "lookout_agent", "lookout_protocol"];

/// Whether a frame is the agent's own code (see the [module docs](self)).
fn in_app(krate: Option<&str>, path: Option<&str>) -> bool {
    if krate.is_some_and(|krate| LIBRARY_CRATES.contains(&krate)) {
        return false;
    }
    match path {
        Some(path) => {
            let path = path.replace('\\', "/");
            path.ends_with(".rs")
                && !path.starts_with("/rustc/")
                && !path.contains("/.cargo/registry/")
                && !path.contains("/.cargo/git/")
                && !path.contains("/cargo/registry/")
                && !path.contains("/rustlib/src/")
        }
        None => krate.is_some(),
    }
}

/// A source path without what identifies the machine: from the directory of the crate it
/// belongs to, the one before its last `src/` (else `tests/`, `benches/`, `examples/`):
/// `tokio-1.47.1/src/runtime/park.rs` from the cargo registry, `std/src/rt.rs` from the
/// toolchain, `momentum/src/risk.rs` from `/home/me/bots/crates/momentum/src/risk.rs`.
/// Other paths (native code) keep their file name alone.
fn short_path(path: &str) -> &str {
    let cut = ["/src/", "/tests/", "/benches/", "/examples/"]
        .iter()
        .find_map(|marker| path.rfind(marker));
    match cut {
        Some(cut) => {
            let crate_dir = path[..cut].rfind('/').map_or(0, |slash| slash + 1);
            &path[crate_dir..]
        }
        None => path.rsplit('/').next().unwrap_or(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_is_the_first_segment_of_a_path() {
        assert_eq!(
            crate_of("lookout_agent::pipeline::OrderPipeline::stage"),
            Some("lookout_agent")
        );
        assert_eq!(crate_of("profiling::risk_model"), Some("profiling"));
        assert_eq!(
            crate_of("<lookout_agent::profiling::Slot as core::ops::drop::Drop>::drop"),
            Some("lookout_agent")
        );
        assert_eq!(crate_of("<&dyn core::ops::Fn<()>>::call"), Some("core"));
        assert_eq!(crate_of("wrapping_mul"), None);
        assert_eq!(crate_of("call_once<fn(), ()>"), None);
    }

    #[test]
    fn only_the_agents_own_sources_are_in_app() {
        let local = Some("crates/momentum/src/risk.rs");
        assert!(in_app(Some("momentum"), local));
        assert!(in_app(None, local), "an inlined frame of the agent's code");
        assert!(!in_app(
            Some("lookout_agent"),
            Some("crates/lookout-agent/src/pipeline.rs")
        ));
        assert!(!in_app(
            Some("std"),
            Some("/rustc/5980/library/std/src/rt.rs")
        ));
        assert!(!in_app(
            Some("tokio"),
            Some(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.47.1/src/runtime/park.rs"
            )
        ));
        assert!(!in_app(
            None,
            Some("/home/me/.cargo/git/checkouts/venue-1a2b/3c4d5e6/src/lib.rs")
        ));
        assert!(!in_app(None, Some("./csu/../csu/libc-start.c")));
        assert!(!in_app(None, None), "native code without a name or source");
        assert!(
            in_app(Some("momentum"), None),
            "the agent's code without debug info"
        );
    }

    #[test]
    fn paths_lose_what_identifies_the_machine() {
        assert_eq!(
            short_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.47.1/src/lib.rs"
            ),
            "tokio-1.47.1/src/lib.rs"
        );
        assert_eq!(
            short_path("/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/rt.rs"),
            "std/src/rt.rs"
        );
        assert_eq!(
            short_path("/home/me/src/bots/crates/momentum/src/engine/tests/x.rs"),
            "momentum/src/engine/tests/x.rs"
        );
        assert_eq!(
            short_path("/work/lookout/crates/lookout-agent/tests/profiling.rs"),
            "lookout-agent/tests/profiling.rs"
        );
        assert_eq!(short_path("src/main.rs"), "main.rs");
        assert_eq!(short_path("./csu/../csu/libc-start.c"), "libc-start.c");
    }

    #[test]
    fn legacy_hashes_are_stripped() {
        assert_eq!(
            strip_hash("profiling::risk_model::h0123456789abcdef"),
            "profiling::risk_model"
        );
        assert_eq!(strip_hash("profiling::hash_it"), "profiling::hash_it");
    }

    #[test]
    fn samples_are_spread_inside_their_window() {
        let window = Duration::from_millis(100);
        let offsets: Vec<Duration> = spread(window, 4).collect();
        assert_eq!(
            offsets,
            [12_500, 37_500, 62_500, 87_500].map(Duration::from_micros)
        );
        assert!(spread(window, 0).next().is_none());
        assert_eq!(
            spread(window, 1).collect::<Vec<_>>(),
            [Duration::from_millis(50)]
        );
    }

    #[test]
    fn each_window_gets_the_samples_taken_in_it() {
        let t0 = Instant::now();
        let seen = SystemTime::UNIX_EPOCH;
        let at = |ms| t0 + Duration::from_millis(ms);
        let snapshots = vec![
            (at(10), HashMap::from([("a", 2isize)])),
            (at(20), HashMap::from([("a", 2), ("b", 3)])),
            (at(30), HashMap::from([("a", 5), ("b", 3)])),
        ];
        let (keys, windows) = window_deltas(snapshots, |_| seen);
        assert_eq!(keys, ["a", "b"]);
        let counts: Vec<Vec<(usize, u64)>> = windows
            .iter()
            .map(|(_, deltas)| deltas.iter().map(|d| (d.stack, d.count)).collect())
            .collect();
        assert_eq!(counts, vec![vec![(0, 2)], vec![(1, 3)], vec![(0, 3)]]);
        assert_eq!(windows[2].0, at(30));
    }
}
