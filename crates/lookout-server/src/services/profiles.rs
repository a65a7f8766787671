//! Profiles as the API and the UI read them: an aggregated flame graph over a window (from
//! the per-profile summaries the digest stored, never the profiles themselves), one
//! transaction's profile with the part of it inside any span ([`ProfileView::window`]), and
//! the functions that took the most self time, with their change against the window before.

use super::{ServiceError, blocking};
use crate::store::Store;
use crate::store::profiles::{ProfileSummary, StoredProfile};
use lookout_protocol::profile::{self, ProfileKind};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Most functions [`top_functions`] returns.
pub const TOP_FUNCTIONS: i64 = 100;

/// One frame of a flame graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlameFrame {
    /// Function name.
    pub name: String,
    /// Module, else file.
    pub module_or_file: String,
    /// The application's own code.
    pub in_app: bool,
}

/// One distinct stack and the time spent in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlameStack {
    /// Indices into [`Flamegraph::frames`], root first.
    pub frames: Vec<u32>,
    /// Nanoseconds sampled in this stack.
    pub weight_ns: u64,
    /// Samples taken in this stack.
    pub samples: u64,
}

/// A flame graph: distinct frames, and stacks with their weights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flamegraph {
    /// Distinct frames.
    pub frames: Vec<FlameFrame>,
    /// Distinct stacks, heaviest first.
    pub stacks: Vec<FlameStack>,
    /// Profiles merged into it.
    pub profiles: u64,
}

/// Builds a [`Flamegraph`] by adding stacks of frames from any number of profiles.
#[derive(Debug, Default)]
struct Builder {
    frames: Vec<FlameFrame>,
    frame_index: HashMap<FlameFrame, u32>,
    stacks: HashMap<Vec<u32>, (u64, u64)>,
    profiles: u64,
}

impl Builder {
    fn frame(&mut self, f: FlameFrame) -> u32 {
        if let Some(&i) = self.frame_index.get(&f) {
            return i;
        }
        self.frames.push(f.clone());
        let i = (self.frames.len() - 1) as u32;
        self.frame_index.insert(f, i);
        i
    }

    /// Add a profile's summary (only its samples in spans of `span_op` when given); whether
    /// it had any.
    fn add_summary(&mut self, s: &ProfileSummary, span_op: Option<&str>) -> bool {
        let op = match span_op {
            Some(op) => match s.ops.iter().position(|o| o == op) {
                Some(i) => Some(i as u32),
                None => return false,
            },
            None => None,
        };
        let map: Vec<u32> = s
            .frames
            .iter()
            .map(|f| {
                self.frame(FlameFrame {
                    name: f.name.clone(),
                    module_or_file: f.module_or_file.clone(),
                    in_app: f.in_app,
                })
            })
            .collect();
        let mut added = false;
        for &(stack, o, weight, n) in &s.weights {
            if op.is_some_and(|op| op != o) {
                continue;
            }
            let Some(frames) = s.stacks.get(stack as usize) else {
                continue;
            };
            let key: Vec<u32> = frames
                .iter()
                .filter_map(|&f| map.get(f as usize).copied())
                .collect();
            let e = self.stacks.entry(key).or_default();
            e.0 += weight;
            e.1 += u64::from(n);
            added = true;
        }
        added
    }

    fn finish(self) -> Flamegraph {
        let mut stacks: Vec<FlameStack> = self
            .stacks
            .into_iter()
            .map(|(frames, (weight_ns, samples))| FlameStack {
                frames,
                weight_ns,
                samples,
            })
            .collect();
        stacks.sort_by(|a, b| {
            b.weight_ns
                .cmp(&a.weight_ns)
                .then_with(|| a.frames.cmp(&b.frames))
        });
        Flamegraph {
            frames: self.frames,
            stacks,
            profiles: self.profiles,
        }
    }
}

impl Flamegraph {
    /// Total sampled time (ns).
    pub fn total_ns(&self) -> u64 {
        self.stacks.iter().map(|s| s.weight_ns).sum()
    }

    /// Sentry's flame graph response (`GET …/profiling/flamegraph/`): one speedscope-like
    /// sampled profile whose samples are root-first frame indices into `shared.frames`, with
    /// their weights (ns) and sample counts, and per frame its total and self time
    /// (`shared.frame_infos`).
    pub fn to_sentry_json(
        &self,
        project_id: i64,
        transaction: Option<&str>,
        platform: &str,
        profiles: &[StoredProfile],
    ) -> Value {
        let mut infos = vec![(0u64, 0u64, 0u64); self.frames.len()];
        for s in &self.stacks {
            let mut seen: Vec<u32> = Vec::with_capacity(s.frames.len());
            for &f in &s.frames {
                if !seen.contains(&f) {
                    seen.push(f);
                    if let Some(i) = infos.get_mut(f as usize) {
                        i.0 += s.samples;
                        i.1 += s.weight_ns;
                    }
                }
            }
            if let Some(i) = s.frames.last().and_then(|&f| infos.get_mut(f as usize)) {
                i.2 += s.weight_ns;
            }
        }
        let frames: Vec<Value> = self
            .frames
            .iter()
            .map(|f| {
                json!({"name": f.name, "file": f.module_or_file, "path": f.module_or_file,
                       "module": f.module_or_file, "is_application": f.in_app, "line": 0,
                       "fingerprint": fingerprint(f)})
            })
            .collect();
        let frame_infos: Vec<Value> = infos
            .iter()
            .map(|(count, weight, self_ns)| {
                json!({"count": count, "weight": weight, "sumDuration": weight,
                       "sumSelfTime": self_ns})
            })
            .collect();
        let shared_profiles: Vec<Value> = profiles
            .iter()
            .map(|p| {
                json!({"project_id": project_id, "profile_id": p.profile_id,
                       "transaction_id": p.event_id,
                       "start": p.start_ms as f64 / 1000.0,
                       "end": (p.start_ms as f64 + p.duration_ns as f64 / 1e6) / 1000.0})
            })
            .collect();
        let total = self.total_ns();
        json!({
            "activeProfileIndex": 0,
            "platform": platform,
            "projectID": project_id,
            "transactionName": transaction.unwrap_or(""),
            "metadata": {"profiles": self.profiles},
            "profiles": [{
                "name": transaction.unwrap_or("all transactions"),
                "threadID": 0,
                "isMainThread": true,
                "type": "sampled",
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": total,
                "samples": self.stacks.iter().map(|s| &s.frames).collect::<Vec<_>>(),
                "weights": self.stacks.iter().map(|s| s.weight_ns).collect::<Vec<_>>(),
                "sample_durations_ns": self.stacks.iter().map(|s| s.weight_ns).collect::<Vec<_>>(),
                "sample_counts": self.stacks.iter().map(|s| s.samples).collect::<Vec<_>>(),
            }],
            "shared": {"frames": frames, "frame_infos": frame_infos, "profiles": shared_profiles},
        })
    }
}

/// A stable 32-bit id of a frame (FNV-1a of its name and module), as Sentry gives each frame.
fn fingerprint(f: &FlameFrame) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in f.name.bytes().chain([0]).chain(f.module_or_file.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One transaction's profile: the samples of its thread in time order.
#[derive(Debug, Clone)]
pub struct ProfileView {
    /// The profile's id (for continuous profiling, the first chunk's id).
    pub profile_id: String,
    /// The continuous profiler's session, when the view is built from its chunks.
    pub profiler_id: Option<String>,
    /// The transaction's event id.
    pub event_id: String,
    /// When the transaction started (ms since the epoch, fractional).
    pub transaction_start_ms: f64,
    /// Distinct frames.
    pub frames: Vec<FlameFrame>,
    /// Stacks as indices into `frames`, root first.
    pub stacks: Vec<Vec<u32>>,
    /// `(ns since the transaction's start, index into stacks)`, in time order.
    pub samples: Vec<(u64, u32)>,
    /// The time each sample stands for (ns), parallel to `samples`.
    pub weights_ns: Vec<u64>,
}

impl ProfileView {
    /// The part of the profile in `[start_ns, end_ns)` (ns since the transaction's start),
    /// e.g. the samples inside one span, as a flame graph.
    pub fn window(&self, start_ns: u64, end_ns: u64) -> Flamegraph {
        let mut b = Builder {
            profiles: 1,
            ..Builder::default()
        };
        for (i, &(at, stack)) in self.samples.iter().enumerate() {
            if at < start_ns || at >= end_ns {
                continue;
            }
            let Some(frames) = self.stacks.get(stack as usize) else {
                continue;
            };
            let key: Vec<u32> = frames
                .iter()
                .filter_map(|&f| self.frames.get(f as usize).cloned())
                .map(|f| b.frame(f))
                .collect();
            let e = b.stacks.entry(key).or_default();
            e.0 += self.weights_ns.get(i).copied().unwrap_or(0);
            e.1 += 1;
        }
        b.finish()
    }

    /// The whole profile as a flame graph.
    pub fn flamegraph(&self) -> Flamegraph {
        self.window(0, u64::MAX)
    }
}

/// The aggregated flame graph of `project_id`'s transaction profiles started in
/// `[start_ms, end_ms)`, of `transaction` and the samples inside spans of `span_op` when
/// given. Reads each profile's stored summary, not the profile.
pub async fn flamegraph(
    store: &Store,
    project_id: i64,
    transaction: Option<&str>,
    span_op: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Flamegraph, ServiceError> {
    Ok(
        flamegraph_with_profiles(store, project_id, transaction, span_op, start_ms, end_ms)
            .await?
            .0,
    )
}

/// [`flamegraph`], with the profiles it merged.
pub async fn flamegraph_with_profiles(
    store: &Store,
    project_id: i64,
    transaction: Option<&str>,
    span_op: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<(Flamegraph, Vec<StoredProfile>), ServiceError> {
    let store = store.clone();
    let transaction = transaction.map(str::to_owned);
    let span_op = span_op.map(str::to_owned);
    blocking(move || {
        let mut b = Builder::default();
        let mut merged = Vec::new();
        store.profiles().summaries(
            project_id,
            transaction.as_deref(),
            start_ms,
            end_ms,
            |p, s| {
                if b.add_summary(&s, span_op.as_deref()) {
                    b.profiles += 1;
                    merged.push(p);
                }
            },
        )?;
        Ok((b.finish(), merged))
    })
    .await
}

/// The profile of transaction `event_id` of `project_id`, if it was profiled: its v1
/// profile, else the samples of its continuous profiling chunks inside it
/// ([`chunks_for_transaction`]).
pub async fn for_transaction(
    store: &Store,
    project_id: i64,
    event_id: &str,
) -> Result<Option<ProfileView>, ServiceError> {
    let s = store.clone();
    let id = event_id.to_ascii_lowercase();
    let Some((stored, bytes)) =
        blocking(move || s.profiles().for_transaction(project_id, &id)).await?
    else {
        return chunks_for_transaction(store, project_id, event_id).await;
    };
    let p = profile::parse(&bytes, ProfileKind::Transaction)
        .map_err(|e| ServiceError::Invalid(format!("stored profile does not read: {e}")))?;
    let thread = p.main_thread().unwrap_or_default().to_owned();
    // The transaction starts `relative_start_ns` into the profile (0 for sentry-python).
    let relative_start = p
        .raw
        .get("transactions")
        .and_then(|t| t.get(0))
        .or_else(|| p.raw.get("transaction"))
        .and_then(|t| t.get("relative_start_ns"))
        .and_then(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            v => v.as_u64(),
        })
        .unwrap_or(0);
    let frames: Vec<FlameFrame> = p
        .frames
        .iter()
        .map(|f| FlameFrame {
            name: f.name().to_owned(),
            module_or_file: f.module_or_file().to_owned(),
            in_app: f.in_app.unwrap_or(false),
        })
        .collect();
    let stacks: Vec<Vec<u32>> = p
        .stacks
        .iter()
        .map(|s| s.iter().rev().copied().collect())
        .collect();
    let weighted = p.weighted_samples(&thread);
    Ok(Some(ProfileView {
        profile_id: stored.profile_id,
        profiler_id: None,
        event_id: stored.event_id.unwrap_or_default(),
        transaction_start_ms: p.start.timestamp_micros() as f64 / 1000.0
            + relative_start as f64 / 1e6,
        frames,
        stacks,
        samples: weighted
            .iter()
            .map(|&(at, s, _)| (at.saturating_sub(relative_start), s))
            .collect(),
        weights_ns: weighted.iter().map(|&(_, _, w)| w).collect(),
    }))
}

/// What links a transaction to continuous profiling: the session its SDK named
/// (`contexts.profile.profiler_id`), its time and its thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkLink {
    /// The continuous profiler's session (32 hex digits).
    pub profiler_id: String,
    /// The transaction's start (ms since the epoch, fractional).
    pub start_ms: f64,
    /// The transaction's end (ms since the epoch, fractional).
    pub end_ms: f64,
    /// The thread it ran on (`contexts.trace.data["thread.id"]`), if sent.
    pub thread_id: Option<String>,
}

impl ChunkLink {
    /// The link of a stored transaction payload, if its SDK ran the continuous profiler.
    pub fn of_transaction(payload: &Value) -> Option<ChunkLink> {
        let contexts = payload.get("contexts")?;
        let profiler_id = contexts
            .get("profile")?
            .get("profiler_id")?
            .as_str()?
            .to_ascii_lowercase()
            .replace('-', "");
        if profiler_id.len() != 32 || !profiler_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let start = payload.get("start_timestamp")?.as_f64()?;
        let end = payload.get("timestamp")?.as_f64()?;
        let thread_id = contexts
            .get("trace")
            .and_then(|t| t.get("data"))
            .and_then(|d| d.get("thread.id"))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        Some(ChunkLink {
            profiler_id,
            start_ms: start * 1000.0,
            end_ms: end.max(start) * 1000.0,
            thread_id,
        })
    }
}

/// The stored transaction `event_id`'s [`ChunkLink`], if it is stored and has one.
async fn chunk_link(
    store: &Store,
    project_id: i64,
    event_id: &str,
) -> Result<Option<ChunkLink>, ServiceError> {
    let reader = store.reader();
    let id = event_id.to_ascii_lowercase();
    let event = match blocking(move || reader.event(project_id, &id)).await {
        Ok(e) => e,
        Err(ServiceError::Store(crate::store::StoreError::NotFound(_))) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(ChunkLink::of_transaction(&event.payload))
}

/// The continuous profiler session of transaction `event_id` of `project_id`, when chunks
/// of it overlapping the transaction are stored (what the trace API names).
pub async fn linked_profiler(
    store: &Store,
    project_id: i64,
    event_id: &str,
) -> Result<Option<String>, ServiceError> {
    let Some(link) = chunk_link(store, project_id, event_id).await? else {
        return Ok(None);
    };
    let s = store.clone();
    let (id, start, end) = (
        link.profiler_id.clone(),
        link.start_ms.floor() as i64,
        link.end_ms.ceil() as i64,
    );
    let found = blocking(move || s.profiles().has_chunk(project_id, &id, start, end)).await?;
    Ok(found.then_some(link.profiler_id))
}

/// Transaction `event_id`'s profile from continuous profiling, as Sentry links them: the
/// samples of the chunks of the session the transaction names
/// (`contexts.profile.profiler_id`) taken inside `[start, end]` of the transaction, on its
/// thread (`contexts.trace.data["thread.id"]`, else each chunk's busiest thread). `None`
/// when the transaction names no session or no sample of it falls inside.
pub async fn chunks_for_transaction(
    store: &Store,
    project_id: i64,
    event_id: &str,
) -> Result<Option<ProfileView>, ServiceError> {
    let Some(link) = chunk_link(store, project_id, event_id).await? else {
        return Ok(None);
    };
    let s = store.clone();
    let (id, start, end) = (
        link.profiler_id.clone(),
        link.start_ms.floor() as i64,
        link.end_ms.ceil() as i64,
    );
    let chunks =
        blocking(move || s.profiles().chunks_overlapping(project_id, &id, start, end)).await?;
    let start_ns = (link.start_ms * 1e6) as i128;
    let end_ns = (link.end_ms * 1e6) as i128;
    let mut frames: Vec<FlameFrame> = Vec::new();
    let mut frame_index: HashMap<FlameFrame, u32> = HashMap::new();
    let mut stacks: Vec<Vec<u32>> = Vec::new();
    let mut stack_index: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut samples: Vec<(u64, u32, u64)> = Vec::new();
    let mut first_chunk: Option<String> = None;
    for (stored, bytes) in chunks {
        let p = profile::parse(&bytes, ProfileKind::Chunk)
            .map_err(|e| ServiceError::Invalid(format!("stored chunk does not read: {e}")))?;
        let thread = match &link.thread_id {
            Some(t) if p.samples.iter().any(|s| &s.thread_id == t) => t.clone(),
            _ => p.main_thread().unwrap_or_default().to_owned(),
        };
        let chunk_start_ns = i128::from(p.start.timestamp_micros()) * 1000;
        let mut local: HashMap<u32, u32> = HashMap::new();
        let mut taken = false;
        for (elapsed, stack_id, weight) in p.weighted_samples(&thread) {
            let at = chunk_start_ns + i128::from(elapsed);
            if at < start_ns || at > end_ns {
                continue;
            }
            let stack = match local.get(&stack_id) {
                Some(&s) => s,
                None => {
                    let root_first: Vec<u32> = p
                        .stacks
                        .get(stack_id as usize)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .rev()
                        .map(|&f| {
                            let frame = p.frames.get(f as usize).cloned().unwrap_or_default();
                            let key = FlameFrame {
                                name: frame.name().to_owned(),
                                module_or_file: frame.module_or_file().to_owned(),
                                in_app: frame.in_app.unwrap_or(false),
                            };
                            *frame_index.entry(key.clone()).or_insert_with(|| {
                                frames.push(key);
                                (frames.len() - 1) as u32
                            })
                        })
                        .collect();
                    let s = *stack_index.entry(root_first.clone()).or_insert_with(|| {
                        stacks.push(root_first);
                        (stacks.len() - 1) as u32
                    });
                    local.insert(stack_id, s);
                    s
                }
            };
            samples.push(((at - start_ns) as u64, stack, weight));
            taken = true;
        }
        if taken && first_chunk.is_none() {
            first_chunk = Some(stored.profile_id);
        }
    }
    let Some(profile_id) = first_chunk else {
        return Ok(None);
    };
    samples.sort_by_key(|s| s.0);
    Ok(Some(ProfileView {
        profile_id,
        profiler_id: Some(link.profiler_id),
        event_id: event_id.to_ascii_lowercase(),
        transaction_start_ms: link.start_ms,
        frames,
        stacks,
        samples: samples.iter().map(|&(at, s, _)| (at, s)).collect(),
        weights_ns: samples.iter().map(|&(_, _, w)| w).collect(),
    }))
}

/// One function's self time over a window and the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionStat {
    /// Function name.
    pub name: String,
    /// Module, else file.
    pub module_or_file: String,
    /// The application's own code.
    pub in_app: bool,
    /// Self time in the window (ns).
    pub self_ns: u64,
    /// Samples in the window where it was the leaf.
    pub samples: u64,
    /// Self time in the previous window of equal length (ns).
    pub previous_self_ns: u64,
}

impl FunctionStat {
    /// Relative change of self time against the previous window (`0.25` = 25 % more);
    /// `None` when the function took no time before.
    pub fn change(&self) -> Option<f64> {
        (self.previous_self_ns > 0)
            .then(|| self.self_ns as f64 / self.previous_self_ns as f64 - 1.0)
    }
}

/// The functions of `project_id` that took the most self time in `[start_ms, end_ms)`, of
/// `transaction` and inside spans of `span_op` when given (`""` is time inside no span),
/// largest first, with their self time in the window of equal length before. Reads the
/// per-minute function table only.
pub async fn top_functions(
    store: &Store,
    project_id: i64,
    transaction: Option<&str>,
    span_op: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<FunctionStat>, ServiceError> {
    let store = store.clone();
    let transaction = transaction.map(str::to_owned);
    let span_op = span_op.map(str::to_owned);
    let rows = blocking(move || {
        store.profiles().top_functions(
            project_id,
            transaction.as_deref(),
            span_op.as_deref(),
            start_ms,
            end_ms,
            TOP_FUNCTIONS,
        )
    })
    .await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|r| FunctionStat {
            name: r.function,
            module_or_file: r.module,
            in_app: r.in_app,
            self_ns: n(r.self_ns),
            samples: n(r.samples),
            previous_self_ns: n(r.previous_self_ns),
        })
        .collect())
}

/// The stored profile `profile_id` of `project_id` in Sentry's shape (version 1 or 2).
pub async fn raw(
    store: &Store,
    project_id: i64,
    profile_id: &str,
) -> Result<Option<Value>, ServiceError> {
    let store = store.clone();
    let id = profile_id.to_ascii_lowercase().replace('-', "");
    let Some((_, bytes)) = blocking(move || store.profiles().raw(project_id, &id)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ServiceError::Invalid(format!("stored profile does not read: {e}")))
}
