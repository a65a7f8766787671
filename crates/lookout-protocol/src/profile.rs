//! Sentry's sampled profiles, as the server reads them: the transaction-bound profile
//! (`profile` item, `version: "1"`, what sentry-python sends with `profiles_sample_rate`) and
//! the continuous profiling chunk (`profile_chunk` item, `version: "2"`).
//!
//! Both share the sample format: `profile.frames` (one entry per distinct frame),
//! `profile.stacks` (each a list of frame indices, **leaf first**), `profile.samples` (each
//! naming a stack and a thread, with the time it was taken) and `profile.thread_metadata`.
//! A v1 sample carries `elapsed_since_start_ns` from the profile's `timestamp`; a v2 sample
//! carries an absolute `timestamp` in seconds.
//!
//! [`parse`] validates a payload and refuses it with a [`ProfileError`] whose
//! [`reason`](ProfileError::reason) is a stable label: wrong or missing version, no samples,
//! a sample naming a stack past `stacks`, a stack naming a frame past `frames`, too many of
//! anything, too big. Frames and thread names are untrusted: their strings are bounded and
//! scrubbed with the event rules ([`crate::scrub`]), and the JSON kept
//! ([`Profile::raw`]) is the scrubbed one.

use crate::envelope::normalize_uuid;
use crate::normalize::parse_timestamp;
use crate::scrub;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest profile payload read, in bytes (the ingest refuses larger items before).
pub const MAX_PROFILE_BYTES: usize = 10 * 1024 * 1024;
/// Most samples in one profile (30 s at 101 Hz over 30 threads is about 90,000).
pub const MAX_SAMPLES: usize = 200_000;
/// Most distinct stacks in one profile.
pub const MAX_STACKS: usize = 100_000;
/// Most distinct frames in one profile.
pub const MAX_FRAMES: usize = 50_000;
/// Deepest stack kept (sentry-python stops at 128).
pub const MAX_STACK_DEPTH: usize = 1024;
/// Most threads described in `thread_metadata`.
pub const MAX_THREADS: usize = 1024;
/// Longest function, module, file or path name kept, in characters.
pub const MAX_NAME_CHARS: usize = 512;
/// Longest thread name kept, in characters.
pub const MAX_THREAD_NAME_CHARS: usize = 200;

/// Which of Sentry's two profile formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// `profile` item, `version: "1"`: one transaction's profile.
    Transaction,
    /// `profile_chunk` item, `version: "2"`: a chunk of a continuous profiling session.
    Chunk,
}

impl ProfileKind {
    /// The kind an envelope item type carries, if it is a profile.
    pub fn from_item_type(item_type: &str) -> Option<ProfileKind> {
        match item_type {
            "profile" => Some(ProfileKind::Transaction),
            "profile_chunk" => Some(ProfileKind::Chunk),
            _ => None,
        }
    }

    /// The `version` field this kind carries.
    pub fn version(self) -> &'static str {
        match self {
            ProfileKind::Transaction => "1",
            ProfileKind::Chunk => "2",
        }
    }
}

/// Why a profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Larger than [`MAX_PROFILE_BYTES`].
    #[error("profile has {size} bytes, the limit is {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JSON object.
    #[error("profile is not a JSON object: {0}")]
    InvalidJson(String),
    /// `version` is missing or not the item type's.
    #[error("profile version {found:?} is not supported for this item: expected {expected:?}")]
    InvalidVersion {
        /// What the payload said (`None` when absent).
        found: Option<String>,
        /// The version the item type carries.
        expected: &'static str,
    },
    /// A required field is missing or malformed.
    #[error("profile field {field} is missing or invalid")]
    MissingField {
        /// The field's path.
        field: &'static str,
    },
    /// No samples at all.
    #[error("profile has no samples")]
    NoSamples,
    /// A sample is malformed or names a stack past `stacks`.
    #[error("sample {sample} is truncated or names stack {stack} of {stacks}")]
    TruncatedSample {
        /// The sample's index.
        sample: usize,
        /// The stack it names (or `u64::MAX` when it names none).
        stack: u64,
        /// How many stacks there are.
        stacks: usize,
    },
    /// A stack names a frame past `frames`.
    #[error("stack {stack} names frame {frame} of {frames}")]
    FrameOutOfRange {
        /// The stack's index.
        stack: usize,
        /// The frame index it names.
        frame: u64,
        /// How many frames there are.
        frames: usize,
    },
    /// More of something than a profile may hold.
    #[error("profile has {count} {what}, the limit is {max}")]
    TooMany {
        /// What: `samples`, `stacks`, `frames`, `threads`, `frames in a stack`.
        what: &'static str,
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl ProfileError {
    /// A stable snake_case label for metrics and stored refusals.
    pub fn reason(&self) -> &'static str {
        match self {
            ProfileError::TooLarge { .. } => "too_large",
            ProfileError::InvalidJson(_) => "invalid_json",
            ProfileError::InvalidVersion { .. } => "invalid_version",
            ProfileError::MissingField { .. } => "missing_field",
            ProfileError::NoSamples => "no_samples",
            ProfileError::TruncatedSample { .. } => "truncated_samples",
            ProfileError::FrameOutOfRange { .. } => "frame_out_of_range",
            ProfileError::TooMany { .. } => "too_many",
        }
    }
}

/// One frame of the profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The function's name.
    pub function: Option<String>,
    /// The module (Python) or package the function is in.
    pub module: Option<String>,
    /// The file, relative.
    pub filename: Option<String>,
    /// The absolute path of the file.
    pub abs_path: Option<String>,
    /// The line.
    pub lineno: Option<u32>,
    /// Whether the SDK counted it as the application's code.
    pub in_app: Option<bool>,
}

impl Frame {
    /// The name shown for the function (`<unknown>` when the SDK sent none).
    pub fn name(&self) -> &str {
        self.function.as_deref().unwrap_or("<unknown>")
    }

    /// Where the function lives: the module if known, else the file, else the path.
    pub fn module_or_file(&self) -> &str {
        self.module
            .as_deref()
            .or(self.filename.as_deref())
            .or(self.abs_path.as_deref())
            .unwrap_or("")
    }
}

/// One sample: a stack seen on a thread at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Index into [`Profile::stacks`].
    pub stack_id: u32,
    /// The thread, as the SDK names it.
    pub thread_id: String,
    /// Nanoseconds since [`Profile::start`].
    pub elapsed_ns: u64,
}

/// The transaction a v1 profile belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRef {
    /// The transaction's event id (32 hex digits).
    pub id: String,
    /// Its trace id (32 hex digits), if sent.
    pub trace_id: Option<String>,
    /// Its name.
    pub name: String,
    /// The thread the transaction ran on (the one its spans describe).
    pub active_thread_id: Option<String>,
}

/// A validated, scrubbed profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// v1 or v2.
    pub kind: ProfileKind,
    /// The profile's id: `event_id` of a v1 profile, `chunk_id` of a chunk (32 hex digits).
    pub profile_id: String,
    /// The continuous profiler's session id (v2 only).
    pub profiler_id: Option<String>,
    /// `python`, `rust`, …
    pub platform: String,
    /// Release, if sent.
    pub release: Option<String>,
    /// Environment, if sent.
    pub environment: Option<String>,
    /// When sampling started: v1's `timestamp`, a chunk's earliest sample.
    pub start: DateTime<Utc>,
    /// The transaction (v1 only).
    pub transaction: Option<TransactionRef>,
    /// Distinct frames.
    pub frames: Vec<Frame>,
    /// Stacks, each a list of indices into `frames`, leaf first.
    pub stacks: Vec<Vec<u32>>,
    /// Samples in the order sent.
    pub samples: Vec<Sample>,
    /// Thread names by thread id.
    pub thread_names: BTreeMap<String, String>,
    /// The payload as kept: Sentry's shape, with frames and thread names bounded and
    /// scrubbed and every other string scrubbed.
    pub raw: Value,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bounded(s: &str, max: usize) -> String {
    let s = scrub::scrub_str_under(None, s);
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.into_owned(),
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Validate `payload` as a profile of `kind` and scrub it.
pub fn parse(payload: &[u8], kind: ProfileKind) -> Result<Profile, ProfileError> {
    if payload.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge {
            size: payload.len(),
            max: MAX_PROFILE_BYTES,
        });
    }
    let mut root = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(ProfileError::InvalidJson("not an object".into())),
        Err(e) => return Err(ProfileError::InvalidJson(e.to_string())),
    };
    let version = root.get("version").and_then(text);
    if version.as_deref() != Some(kind.version()) {
        return Err(ProfileError::InvalidVersion {
            found: version,
            expected: kind.version(),
        });
    }
    let mut body = match root.remove("profile") {
        Some(Value::Object(m)) => m,
        _ => return Err(ProfileError::MissingField { field: "profile" }),
    };
    // Everything but the sample data is small: scrub it whole.
    let mut rest = Value::Object(root);
    scrub::scrub_value(&mut rest);
    let Value::Object(mut root) = rest else {
        return Err(ProfileError::MissingField { field: "profile" });
    };

    let frames = parse_frames(&mut body)?;
    let stacks = parse_stacks(&body, frames.len())?;
    let (samples, start) = parse_samples(&body, kind, stacks.len(), &root)?;
    let thread_names = parse_threads(&mut body)?;

    let id_of = |root: &Map<String, Value>, key: &'static str| {
        root.get(key)
            .and_then(Value::as_str)
            .and_then(normalize_uuid)
            .ok_or(ProfileError::MissingField { field: key })
    };
    let (profile_id, profiler_id, transaction) = match kind {
        ProfileKind::Transaction => {
            let t = root
                .get("transaction")
                .filter(|t| t.is_object())
                .or_else(|| root.get("transactions").and_then(|t| t.get(0)))
                .ok_or(ProfileError::MissingField {
                    field: "transaction",
                })?;
            let id = t
                .get("id")
                .and_then(Value::as_str)
                .and_then(normalize_uuid)
                .ok_or(ProfileError::MissingField {
                    field: "transaction.id",
                })?;
            let transaction = TransactionRef {
                id,
                trace_id: t
                    .get("trace_id")
                    .and_then(Value::as_str)
                    .and_then(normalize_uuid),
                name: t
                    .get("name")
                    .and_then(Value::as_str)
                    .map(|n| bounded(n, MAX_NAME_CHARS))
                    .unwrap_or_default(),
                active_thread_id: t.get("active_thread_id").and_then(text),
            };
            (id_of(&root, "event_id")?, None, Some(transaction))
        }
        ProfileKind::Chunk => (
            id_of(&root, "chunk_id")?,
            Some(id_of(&root, "profiler_id")?),
            None,
        ),
    };
    let platform = root
        .get("platform")
        .and_then(Value::as_str)
        .map(|p| bounded(p, 64))
        .unwrap_or_else(|| "other".into());
    let str_field = |key: &str| {
        root.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| bounded(s, 200))
    };
    let release = str_field("release");
    let environment = str_field("environment");
    root.insert("profile".into(), Value::Object(body));
    Ok(Profile {
        kind,
        profile_id,
        profiler_id,
        platform,
        release,
        environment,
        start,
        transaction,
        frames,
        stacks,
        samples,
        thread_names,
        raw: Value::Object(root),
    })
}

/// Read, bound and scrub `frames`, writing the kept form back into `body`.
fn parse_frames(body: &mut Map<String, Value>) -> Result<Vec<Frame>, ProfileError> {
    let Some(Value::Array(list)) = body.get_mut("frames") else {
        return Err(ProfileError::MissingField {
            field: "profile.frames",
        });
    };
    if list.len() > MAX_FRAMES {
        return Err(ProfileError::TooMany {
            what: "frames",
            count: list.len(),
            max: MAX_FRAMES,
        });
    }
    let mut frames = Vec::with_capacity(list.len());
    for f in list.iter_mut() {
        let Value::Object(m) = f else {
            return Err(ProfileError::MissingField {
                field: "profile.frames",
            });
        };
        // Scrub what is kept, then bound the names shown.
        let mut v = Value::Object(std::mem::take(m));
        scrub::scrub_value(&mut v);
        let Value::Object(mut obj) = v else {
            continue;
        };
        let mut name = |key: &str| {
            let s = obj.get(key).and_then(Value::as_str)?;
            let b = bounded(s, MAX_NAME_CHARS);
            obj.insert(key.to_owned(), Value::String(b.clone()));
            Some(b)
        };
        let frame = Frame {
            function: name("function"),
            module: name("module").or_else(|| name("package")),
            filename: name("filename"),
            abs_path: name("abs_path"),
            lineno: obj
                .get("lineno")
                .and_then(Value::as_u64)
                .and_then(|l| u32::try_from(l).ok()),
            in_app: obj.get("in_app").and_then(Value::as_bool),
        };
        *m = obj;
        frames.push(frame);
    }
    Ok(frames)
}

fn parse_stacks(body: &Map<String, Value>, frames: usize) -> Result<Vec<Vec<u32>>, ProfileError> {
    let Some(Value::Array(list)) = body.get("stacks") else {
        return Err(ProfileError::MissingField {
            field: "profile.stacks",
        });
    };
    if list.len() > MAX_STACKS {
        return Err(ProfileError::TooMany {
            what: "stacks",
            count: list.len(),
            max: MAX_STACKS,
        });
    }
    let mut stacks = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let Value::Array(ids) = s else {
            return Err(ProfileError::MissingField {
                field: "profile.stacks",
            });
        };
        if ids.len() > MAX_STACK_DEPTH {
            return Err(ProfileError::TooMany {
                what: "frames in a stack",
                count: ids.len(),
                max: MAX_STACK_DEPTH,
            });
        }
        let mut stack = Vec::with_capacity(ids.len());
        for id in ids {
            let frame = id.as_u64().unwrap_or(u64::MAX);
            if frame >= frames as u64 {
                return Err(ProfileError::FrameOutOfRange {
                    stack: i,
                    frame,
                    frames,
                });
            }
            stack.push(frame as u32);
        }
        stacks.push(stack);
    }
    Ok(stacks)
}

fn parse_samples(
    body: &Map<String, Value>,
    kind: ProfileKind,
    stacks: usize,
    root: &Map<String, Value>,
) -> Result<(Vec<Sample>, DateTime<Utc>), ProfileError> {
    let Some(Value::Array(list)) = body.get("samples") else {
        return Err(ProfileError::MissingField {
            field: "profile.samples",
        });
    };
    if list.is_empty() {
        return Err(ProfileError::NoSamples);
    }
    if list.len() > MAX_SAMPLES {
        return Err(ProfileError::TooMany {
            what: "samples",
            count: list.len(),
            max: MAX_SAMPLES,
        });
    }
    // A chunk's samples carry absolute seconds; its start is the earliest.
    let chunk_start = match kind {
        ProfileKind::Transaction => None,
        ProfileKind::Chunk => Some(
            list.iter()
                .filter_map(|s| s.get("timestamp").and_then(Value::as_f64))
                .filter(|t| t.is_finite() && (0.0..1e11).contains(t))
                .fold(f64::INFINITY, f64::min),
        ),
    };
    let mut samples = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let truncated = |stack: u64| ProfileError::TruncatedSample {
            sample: i,
            stack,
            stacks,
        };
        let stack = s
            .get("stack_id")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        if stack >= stacks as u64 {
            return Err(truncated(stack));
        }
        let thread_id = s
            .get("thread_id")
            .and_then(text)
            .ok_or_else(|| truncated(stack))?;
        let elapsed_ns = match chunk_start {
            None => s.get("elapsed_since_start_ns").and_then(u64_of),
            Some(start) => s
                .get("timestamp")
                .and_then(Value::as_f64)
                .filter(|t| t.is_finite() && *t >= start && *t < 1e11)
                .map(|t| ((t - start) * 1e9).round() as u64),
        }
        .ok_or_else(|| truncated(stack))?;
        samples.push(Sample {
            stack_id: stack as u32,
            thread_id: thread_id.chars().take(64).collect(),
            elapsed_ns,
        });
    }
    let start = match chunk_start {
        None => root
            .get("timestamp")
            .and_then(parse_timestamp)
            .ok_or(ProfileError::MissingField { field: "timestamp" })?,
        Some(secs) => DateTime::from_timestamp_micros((secs * 1e6) as i64).ok_or(
            ProfileError::MissingField {
                field: "profile.samples.timestamp",
            },
        )?,
    };
    Ok((samples, start))
}

fn parse_threads(body: &mut Map<String, Value>) -> Result<BTreeMap<String, String>, ProfileError> {
    let mut names = BTreeMap::new();
    let Some(Value::Object(threads)) = body.get_mut("thread_metadata") else {
        body.remove("thread_metadata");
        return Ok(names);
    };
    if threads.len() > MAX_THREADS {
        return Err(ProfileError::TooMany {
            what: "threads",
            count: threads.len(),
            max: MAX_THREADS,
        });
    }
    let mut kept = Map::new();
    for (id, meta) in std::mem::take(threads) {
        let id: String = id.chars().take(64).collect();
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .map(|n| bounded(n, MAX_THREAD_NAME_CHARS));
        let mut m = Map::new();
        if let Some(n) = &name {
            m.insert("name".into(), Value::String(n.clone()));
            names.insert(id.clone(), n.clone());
        }
        if let Some(p) = meta.get("priority").filter(|p| p.is_number()) {
            m.insert("priority".into(), p.clone());
        }
        kept.insert(id, Value::Object(m));
    }
    *threads = kept;
    Ok(names)
}

impl Profile {
    /// The thread whose samples describe the transaction: the transaction's active thread,
    /// else the thread with the most samples.
    pub fn main_thread(&self) -> Option<&str> {
        if let Some(t) = self
            .transaction
            .as_ref()
            .and_then(|t| t.active_thread_id.as_deref())
            && self.samples.iter().any(|s| s.thread_id == t)
        {
            return Some(t);
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.samples {
            *counts.entry(&s.thread_id).or_default() += 1;
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t)
    }

    /// The samples of `thread`, in time order, each with its weight: the time until the
    /// thread's next sample, bounded by four times the thread's median interval (a stalled
    /// sampler is not charged to a stack); the last sample weighs the median interval.
    /// Returns `(elapsed_ns, stack_id, weight_ns)`.
    pub fn weighted_samples(&self, thread: &str) -> Vec<(u64, u32, u64)> {
        let mut own: Vec<(u64, u32)> = self
            .samples
            .iter()
            .filter(|s| s.thread_id == thread)
            .map(|s| (s.elapsed_ns, s.stack_id))
            .collect();
        own.sort_by_key(|s| s.0);
        let mut gaps: Vec<u64> = own.windows(2).map(|w| w[1].0 - w[0].0).collect();
        gaps.sort_unstable();
        // 101 Hz, sentry-python's rate, when there is a single sample.
        let median = gaps.get(gaps.len() / 2).copied().unwrap_or(9_900_990);
        let cap = median.saturating_mul(4);
        (0..own.len())
            .map(|i| {
                let w = own
                    .get(i + 1)
                    .map_or(median, |next| (next.0 - own[i].0).min(cap));
                (own[i].0, own[i].1, w)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1() -> Value {
        json!({
            "event_id": "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
            "version": "1",
            "platform": "python",
            "release": "bot@1.0",
            "timestamp": "2026-12-06T06:00:00.000000Z",
            "transactions": [{"id": "11111111111111111111111111111111", "name": "order",
                "trace_id": "22222222222222222222222222222222", "active_thread_id": "7"}],
            "profile": {
                "frames": [
                    {"function": "risk_model", "module": "bot.risk", "lineno": 3, "in_app": true},
                    {"function": "main", "module": "bot", "filename": "bot.py",
                     "vars": {"api_key": "sk_live_abcdefghijklmnopqrstu"}},
                    {"function": "connect", "module": "net",
                     "abs_path": "/x/Bearer abcdefghijklmnopqrstuvwxyz0123456789"}
                ],
                "stacks": [[0, 1], [2, 1]],
                "samples": [
                    {"stack_id": 0, "thread_id": "7", "elapsed_since_start_ns": "0"},
                    {"stack_id": 0, "thread_id": 7, "elapsed_since_start_ns": "10000000"},
                    {"stack_id": 1, "thread_id": "7", "elapsed_since_start_ns": 20000000},
                    {"stack_id": 1, "thread_id": "8", "elapsed_since_start_ns": "20000000"}
                ],
                "thread_metadata": {"7": {"name": "MainThread"}, "8": {"name": "x".repeat(500)}}
            }
        })
    }

    fn parse_v(v: &Value, kind: ProfileKind) -> Result<Profile, ProfileError> {
        parse(&serde_json::to_vec(v).unwrap(), kind)
    }

    #[test]
    fn reads_a_python_v1_profile_and_scrubs_it() {
        let p = parse_v(&v1(), ProfileKind::Transaction).unwrap();
        assert_eq!(p.profile_id, "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5");
        let t = p.transaction.as_ref().unwrap();
        assert_eq!(t.id, "11111111111111111111111111111111");
        assert_eq!(t.active_thread_id.as_deref(), Some("7"));
        assert_eq!(p.frames[0].name(), "risk_model");
        assert_eq!(p.frames[1].module_or_file(), "bot");
        assert_eq!(p.samples.len(), 4);
        assert_eq!(p.main_thread(), Some("7"));
        let w = p.weighted_samples("7");
        assert_eq!(
            w,
            vec![
                (0, 0, 10_000_000),
                (10_000_000, 0, 10_000_000),
                (20_000_000, 1, 10_000_000)
            ]
        );
        assert_eq!(p.thread_names["8"].chars().count(), MAX_THREAD_NAME_CHARS);
        let raw = p.raw.to_string();
        assert!(!raw.contains("sk_live_abcdefghijklmnopqrstu"), "{raw}");
        assert!(
            !raw.contains("abcdefghijklmnopqrstuvwxyz0123456789"),
            "{raw}"
        );
        assert!(raw.contains("risk_model"));
    }

    #[test]
    fn refuses_each_kind_of_bad_profile_with_its_reason() {
        let reason = |f: &dyn Fn(&mut Value)| {
            let mut v = v1();
            f(&mut v);
            parse_v(&v, ProfileKind::Transaction).unwrap_err().reason()
        };
        assert_eq!(reason(&|v| v["version"] = json!("9")), "invalid_version");
        assert_eq!(
            reason(&|v| {
                v.as_object_mut().unwrap().remove("version");
            }),
            "invalid_version"
        );
        assert_eq!(
            reason(&|v| v["profile"]["samples"] = json!([])),
            "no_samples"
        );
        assert_eq!(
            reason(&|v| v["profile"]["samples"][1]["stack_id"] = json!(5)),
            "truncated_samples"
        );
        assert_eq!(
            reason(&|v| v["profile"]["samples"][1] = json!({"stack_id": 0})),
            "truncated_samples"
        );
        assert_eq!(
            reason(&|v| v["profile"]["stacks"][1] = json!([0, 3])),
            "frame_out_of_range"
        );
        assert_eq!(
            reason(&|v| {
                v.as_object_mut().unwrap().remove("transactions");
            }),
            "missing_field"
        );
        // A chunk is not a v1 profile.
        assert_eq!(
            parse_v(&v1(), ProfileKind::Chunk).unwrap_err().reason(),
            "invalid_version"
        );
        let big = vec![b' '; MAX_PROFILE_BYTES + 1];
        assert_eq!(
            parse(&big, ProfileKind::Transaction).unwrap_err().reason(),
            "too_large"
        );
    }

    #[test]
    fn reads_a_v2_chunk() {
        let v = json!({
            "version": "2", "platform": "python",
            "profiler_id": "33333333333333333333333333333333",
            "chunk_id": "44444444-4444-4444-4444-444444444444",
            "profile": {
                "frames": [{"function": "f", "module": "m"}],
                "stacks": [[0]],
                "samples": [
                    {"stack_id": 0, "thread_id": "1", "timestamp": 1_765_000_000.5},
                    {"stack_id": 0, "thread_id": "1", "timestamp": 1_765_000_000.51}
                ],
                "thread_metadata": {}
            }
        });
        let p = parse_v(&v, ProfileKind::Chunk).unwrap();
        assert_eq!(p.profile_id, "44444444444444444444444444444444");
        assert_eq!(p.start.timestamp_millis(), 1_765_000_000_500);
        assert_eq!((p.samples[1].elapsed_ns + 500_000) / 1_000_000, 10);
        assert!(p.transaction.is_none());
    }
}
