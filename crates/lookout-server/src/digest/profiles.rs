//! A validated profile becomes a [`ProfileRecord`]: the scrubbed profile compressed, and
//! what aggregation reads precomputed once here (the main thread's stacks with their time
//! per span op, each function's self time per span op), so reads never decompress profiles.
//!
//! A sample belongs to the innermost span of the profile's transaction that contains its
//! time on the profile's active thread (spans that name another thread in `data.thread.id`
//! are left out); samples inside no span belong to op `""` (the transaction itself).

use crate::store::digest::{SpanRecord, TransactionRecord};
use crate::store::profiles::{FunctionRecord, ProfileRecord, ProfileSummary, SummaryFrame};
use lookout_protocol::profile::{Profile, ProfileKind};
use serde_json::Value;
use std::collections::HashMap;

/// The profile, ready to store. `transaction` is the profile's transaction when the same
/// envelope carried it (its spans give the span ops).
pub(super) fn record(
    project_id: i64,
    received_ms: i64,
    profile: &Profile,
    transaction: Option<&TransactionRecord>,
) -> ProfileRecord {
    let thread = profile.main_thread().unwrap_or_default().to_owned();
    let samples = profile.weighted_samples(&thread);
    let start_ms = profile.start.timestamp_micros() as f64 / 1000.0;
    let spans: Vec<&SpanRecord> = transaction
        .map(|t| t.spans.iter().filter(|s| on_thread(s, &thread)).collect())
        .unwrap_or_default();

    // Frames deduplicated by what is shown; stacks root first.
    let mut frames: Vec<SummaryFrame> = Vec::new();
    let mut frame_index: HashMap<SummaryFrame, u32> = HashMap::new();
    let mut frame_map: HashMap<u32, u32> = HashMap::new();
    let mut stack_map: HashMap<u32, u32> = HashMap::new();
    let mut stacks: Vec<Vec<u32>> = Vec::new();
    let mut ops: Vec<String> = vec![String::new()];
    let mut weights: HashMap<(u32, u32), (u64, u32)> = HashMap::new();
    let mut functions: HashMap<(u32, u32), (u64, u32)> = HashMap::new();
    for &(elapsed, stack_id, weight) in &samples {
        let stack = match stack_map.get(&stack_id) {
            Some(&s) => s,
            None => {
                let ids = profile
                    .stacks
                    .get(stack_id as usize)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut root_first = Vec::with_capacity(ids.len());
                for &f in ids.iter().rev() {
                    let idx = *frame_map.entry(f).or_insert_with(|| {
                        let frame = profile.frames.get(f as usize).cloned().unwrap_or_default();
                        let key = SummaryFrame {
                            name: frame.name().to_owned(),
                            module_or_file: frame.module_or_file().to_owned(),
                            in_app: frame.in_app.unwrap_or(false),
                        };
                        *frame_index.entry(key.clone()).or_insert_with(|| {
                            frames.push(key);
                            (frames.len() - 1) as u32
                        })
                    });
                    root_first.push(idx);
                }
                stacks.push(root_first);
                let s = (stacks.len() - 1) as u32;
                stack_map.insert(stack_id, s);
                s
            }
        };
        let at_ms = start_ms + elapsed as f64 / 1e6;
        let op = innermost(&spans, at_ms).map_or(0, |op| {
            ops.iter().position(|o| o == op).unwrap_or_else(|| {
                ops.push(op.to_owned());
                ops.len() - 1
            }) as u32
        });
        let w = weights.entry((stack, op)).or_default();
        w.0 += weight;
        w.1 += 1;
        if let Some(&leaf) = stacks[stack as usize].last() {
            let f = functions.entry((op, leaf)).or_default();
            f.0 += weight;
            f.1 += 1;
        }
    }
    let mut weights: Vec<(u32, u32, u64, u32)> = weights
        .into_iter()
        .map(|((s, o), (w, n))| (s, o, w, n))
        .collect();
    weights.sort_unstable();
    let functions = if profile.kind == ProfileKind::Transaction {
        functions
            .into_iter()
            .map(|((op, leaf), (self_ns, n))| {
                let f = &frames[leaf as usize];
                FunctionRecord {
                    span_op: ops[op as usize].clone(),
                    function: f.name.clone(),
                    module: f.module_or_file.clone(),
                    in_app: f.in_app,
                    self_ns: i64::try_from(self_ns).unwrap_or(i64::MAX),
                    samples: i64::from(n),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let summary = ProfileSummary {
        frames,
        stacks,
        ops,
        weights,
    };
    let duration_ns = samples
        .last()
        .map_or(0, |(e, _, w)| e.saturating_add(*w))
        .saturating_sub(samples.first().map_or(0, |s| s.0));
    let t = profile.transaction.as_ref();
    ProfileRecord {
        project_id,
        profile_id: profile.profile_id.clone(),
        kind: match profile.kind {
            ProfileKind::Transaction => "transaction",
            ProfileKind::Chunk => "chunk",
        },
        event_id: t.map(|t| t.id.clone()),
        trace_id: t.and_then(|t| t.trace_id.clone()).or_else(|| {
            transaction
                .map(|t| t.trace_id.clone())
                .filter(|t| !t.is_empty())
        }),
        profiler_id: profile.profiler_id.clone(),
        transaction: t
            .map(|t| t.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| transaction.map(|t| t.name.clone())),
        platform: profile.platform.clone(),
        release: profile.release.clone(),
        environment: profile.environment.clone(),
        start_ms: profile.start.timestamp_millis(),
        duration_ns: i64::try_from(duration_ns).unwrap_or(i64::MAX),
        received_ms,
        payload: compress(&profile.raw),
        summary: summary.to_bytes(),
        functions,
    }
}

/// Whether span `s` ran on `thread` (spans that do not say are taken to).
fn on_thread(s: &SpanRecord, thread: &str) -> bool {
    let Some(data) = s.data.as_deref() else {
        return true;
    };
    let Ok(data) = serde_json::from_str::<Value>(data) else {
        return true;
    };
    match data.get("thread.id") {
        Some(Value::String(t)) => t == thread,
        Some(Value::Number(n)) => n.to_string() == thread,
        _ => true,
    }
}

/// The op of the innermost span containing `at_ms`: the latest started, the shortest on a tie.
fn innermost<'a>(spans: &[&'a SpanRecord], at_ms: f64) -> Option<&'a str> {
    spans
        .iter()
        .filter(|s| s.start_ms <= at_ms && at_ms < s.start_ms + s.duration_ms)
        .min_by(|a, b| {
            b.start_ms
                .total_cmp(&a.start_ms)
                .then(a.duration_ms.total_cmp(&b.duration_ms))
        })
        .map(|s| s.op.as_str())
}

fn compress(v: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(v).unwrap_or_default();
    zstd::bulk::compress(&json, 3).unwrap_or(json)
}
