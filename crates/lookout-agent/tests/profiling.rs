//! Order pipeline profiles (the `profiling` feature), on the envelopes the client produces:
//! a CPU-bound stage shows in the profile, inside its own span, linked to its transaction.
//!
//! The profiler is process-wide, so the tests of this file take turns (`PROFILER`).

mod common;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use common::{Agent, options};
use lookout_agent::{OrderPipeline, Outcome, Side, Stage};
use sentry::Envelope;
use serde_json::Value;

static PROFILER: Mutex<()> = Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    PROFILER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This thread's CPU time (user and system), from `/proc/thread-self/stat` (clock ticks of
/// 10 ms).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
    let after_name = stat.rsplit_once(')').expect("stat fields").1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// The CPU-bound work of the risk stage: hashing for `millis` ms of this thread's CPU time
/// (the profiler samples CPU time, so the sample count does not depend on the machine's load).
#[inline(never)]
fn risk_model(millis: u64) -> u64 {
    let until = thread_cpu_time() + Duration::from_millis(millis);
    let mut hasher = DefaultHasher::new();
    let mut rounds = 0u64;
    while millis > 0 && thread_cpu_time() < until {
        for i in 0..10_000u64 {
            (i ^ rounds).hash(&mut hasher);
        }
        rounds += 1;
    }
    hasher.finish()
}

fn cycle(risk_millis: u64) {
    let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
    pipeline
        .stage(Stage::SignalValidate, |s| {
            s.valid(true);
            Ok(())
        })
        .expect("valid");
    pipeline
        .stage(Stage::RiskCheck, |s| {
            s.risk_pass(risk_model(risk_millis) != 0);
            Ok(())
        })
        .expect("risk");
    pipeline
        .stage(Stage::OrderSize, |s| {
            s.size_usd(250.0);
            Ok(())
        })
        .expect("size");
    pipeline.finish(Outcome::Filled);
}

/// The items of an envelope as they go on the wire: (type, JSON payload).
fn wire_items(envelope: &Envelope) -> Vec<(String, Value)> {
    let mut bytes = Vec::new();
    envelope.to_writer(&mut bytes).expect("serialize envelope");
    let mut rest = &bytes[..];
    let header_end = rest.iter().position(|&b| b == b'\n').expect("header line");
    rest = &rest[header_end + 1..];
    let mut items = Vec::new();
    while !rest.is_empty() {
        let line_end = rest.iter().position(|&b| b == b'\n').expect("item header");
        let header: Value = serde_json::from_slice(&rest[..line_end]).expect("item header JSON");
        rest = &rest[line_end + 1..];
        let length =
            usize::try_from(header["length"].as_u64().expect("item length")).expect("length fits");
        let payload: Value = serde_json::from_slice(&rest[..length]).expect("item JSON");
        items.push((
            header["type"].as_str().expect("item type").to_owned(),
            payload,
        ));
        rest = &rest[length..];
        if rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
    }
    items
}

fn all_items(envelopes: &[Envelope]) -> Vec<Vec<(String, Value)>> {
    envelopes.iter().map(wire_items).collect()
}

fn has_transaction(envelopes: &[Envelope]) -> bool {
    all_items(envelopes)
        .iter()
        .flatten()
        .any(|(ty, _)| ty == "transaction")
}

/// A protocol timestamp (RFC 3339, or seconds since the epoch) in seconds.
fn seconds(value: &Value) -> f64 {
    match value {
        Value::String(_) => rfc3339_seconds(value),
        _ => value.as_f64().expect("a timestamp"),
    }
}

fn number(value: &Value) -> u64 {
    value
        .as_str()
        .expect("a number as a string")
        .parse()
        .expect("a number")
}

fn rfc3339_seconds(value: &Value) -> f64 {
    let text = value.as_str().expect("an RFC 3339 timestamp");
    let time = chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
    let since = SystemTime::from(time)
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    since.as_secs_f64()
}

#[test]
fn a_profiled_pipeline_sends_its_profile_in_the_transactions_envelope() {
    let _turn = take_turn();
    let opts = options("ag_prof").profiles_sample_rate(1.0);
    let counters = opts.counters();
    let agent = Agent::new(opts);
    agent.run(|| cycle(200));
    let envelopes = agent.envelopes_until(has_transaction);

    let items = all_items(&envelopes);
    let envelope = items
        .iter()
        .find(|items| items.iter().any(|(ty, _)| ty == "transaction"))
        .expect("the transaction's envelope");
    let tx = &envelope
        .iter()
        .find(|(ty, _)| ty == "transaction")
        .expect("tx")
        .1;
    let profile = &envelope
        .iter()
        .find(|(ty, _)| ty == "profile")
        .expect("a profile item in the transaction's envelope")
        .1;

    // Linked both ways.
    assert_eq!(tx["contexts"]["profile"]["profile_id"], profile["event_id"]);
    assert_eq!(profile["transaction"]["id"], tx["event_id"]);
    assert_eq!(
        profile["transaction"]["trace_id"],
        tx["contexts"]["trace"]["trace_id"]
    );
    assert_eq!(profile["transaction"]["name"], "Order Pipeline: BTC buy");
    assert_eq!(profile["version"], "1");
    assert_eq!(profile["platform"], "rust");
    assert_eq!(profile["release"], "test-bot@1.0.0");
    assert_eq!(profile["environment"], "test");
    assert!(profile["device"]["architecture"].is_string());
    assert!(profile["os"]["name"].is_string());
    assert_eq!(profile["runtime"]["name"], "rustc");

    // The risk model is in the frames, the agent's own code; the library's frames are not.
    let body = &profile["profile"];
    let frames = body["frames"].as_array().expect("frames");
    let is_risk = |frame: &Value| {
        frame["function"]
            .as_str()
            .is_some_and(|f| f.contains("risk_model"))
    };
    let risk: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, frame)| is_risk(frame))
        .map(|(i, _)| i)
        .collect();
    assert!(!risk.is_empty(), "risk_model in the frames: {frames:#?}");
    for &i in &risk {
        assert_eq!(frames[i]["in_app"], true, "{}", frames[i]);
        assert_eq!(frames[i]["module"], "profiling");
        assert_eq!(frames[i]["filename"], "lookout-agent/tests/profiling.rs");
        assert!(frames[i]["lineno"].as_u64().is_some_and(|line| line > 0));
    }
    for frame in frames {
        let function = frame["function"].as_str().unwrap_or("");
        if function.starts_with("lookout_agent::") || function.starts_with("std::") {
            assert_eq!(frame["in_app"], false, "{frame}");
        }
        let filename = frame["filename"].as_str().unwrap_or("");
        assert!(
            !filename.starts_with('/'),
            "no machine's directories in {filename}"
        );
    }

    // Stacks are leaf first: a stack with the risk model has it before the stage runner.
    let stacks = body["stacks"].as_array().expect("stacks");
    let stage_runner = |i: &Value| {
        frames[usize::try_from(i.as_u64().expect("frame index")).expect("index")]["function"]
            .as_str()
            .is_some_and(|f| f.starts_with("lookout_agent::pipeline::OrderPipeline::stage"))
    };
    let risk_stacks: Vec<usize> = stacks
        .iter()
        .enumerate()
        .filter(|(_, stack)| {
            stack
                .as_array()
                .expect("stack")
                .iter()
                .any(|i| risk.contains(&usize::try_from(i.as_u64().expect("idx")).expect("i")))
        })
        .map(|(i, _)| i)
        .collect();
    for &s in &risk_stacks {
        let stack = stacks[s].as_array().expect("stack");
        let risk_at = stack
            .iter()
            .position(|i| risk.contains(&usize::try_from(i.as_u64().expect("idx")).expect("i")))
            .expect("risk frame");
        let runner_at = stack.iter().position(stage_runner).expect("stage runner");
        assert!(risk_at < runner_at, "leaf first: {stack:?}");
    }

    // Samples: real times inside the transaction, the risk model's inside risk.check's span.
    let tx_start = seconds(&tx["start_timestamp"]);
    let tx_end = seconds(&tx["timestamp"]);
    let profile_start = rfc3339_seconds(&profile["timestamp"]);
    let relative_end = number(&profile["transaction"]["relative_end_ns"]);
    let spans = tx["spans"].as_array().expect("spans");
    let risk_span = spans
        .iter()
        .find(|span| span["op"] == "risk.check")
        .expect("risk.check span");
    let (risk_start, risk_end) = (
        seconds(&risk_span["start_timestamp"]),
        seconds(&risk_span["timestamp"]),
    );
    let samples = body["samples"].as_array().expect("samples");
    let active = profile["transaction"]["active_thread_id"]
        .as_str()
        .expect("active thread");
    assert!(body["thread_metadata"][active]["name"].is_string());
    let mut risk_samples = 0;
    let mut previous = 0;
    let slack = 2e-6; // the JSON timestamps' microsecond rounding
    for sample in samples {
        let elapsed = number(&sample["elapsed_since_start_ns"]);
        assert!(elapsed >= previous, "samples in time order");
        previous = elapsed;
        assert!(elapsed <= relative_end);
        let at = profile_start + elapsed as f64 / 1e9;
        assert!(
            at >= tx_start - slack && at <= tx_end + slack,
            "sample at {at} outside the transaction [{tx_start}, {tx_end}]"
        );
        assert!(
            body["thread_metadata"][sample["thread_id"].as_str().expect("thread id")].is_object()
        );
        let stack_id = usize::try_from(sample["stack_id"].as_u64().expect("stack id")).expect("id");
        if risk_stacks.contains(&stack_id) {
            risk_samples += 1;
            assert_eq!(sample["thread_id"], active);
            assert!(
                at >= risk_start - slack && at <= risk_end + slack,
                "risk_model sample at {at} outside risk.check [{risk_start}, {risk_end}]"
            );
        }
    }
    assert!(
        risk_samples >= 10,
        "200 ms of CPU hashing at 101 Hz gives ~20 samples, got {risk_samples}"
    );
    let counts = counters.snapshot();
    assert_eq!(counts.profiles_sent, 1);
    assert_eq!(counts.profiles_busy, 0);
}

#[test]
fn without_a_profiles_sample_rate_no_pipeline_is_profiled() {
    let _turn = take_turn();
    let opts = options("ag_noprof");
    let counters = opts.counters();
    let agent = Agent::new(opts);
    agent.run(|| cycle(50));
    let envelopes = agent.envelopes_until(has_transaction);
    let items: Vec<(String, Value)> = all_items(&envelopes).into_iter().flatten().collect();
    assert!(items.iter().all(|(ty, _)| ty != "profile"), "{items:?}");
    let tx = &items
        .iter()
        .find(|(ty, _)| ty == "transaction")
        .expect("tx")
        .1;
    assert!(tx["contexts"].get("profile").is_none());
    assert_eq!(counters.snapshot().profiles_sent, 0);
}

#[test]
fn a_pipeline_started_while_another_is_profiled_goes_unprofiled_and_counted() {
    let _turn = take_turn();
    let opts = options("ag_busy").profiles_sample_rate(1.0);
    let counters = opts.counters();
    let agent = Agent::new(opts);
    agent.run(|| {
        let mut first = OrderPipeline::start("BTC", Side::Buy);
        first
            .stage(Stage::RiskCheck, |s| {
                s.risk_pass(risk_model(100) != 0);
                Ok(())
            })
            .expect("risk");
        let second = OrderPipeline::start("ETH", Side::Sell);
        second.finish(Outcome::Abandoned);
        first.finish(Outcome::Filled);
    });
    let envelopes = agent.envelopes_until(|envelopes| {
        all_items(envelopes)
            .iter()
            .flatten()
            .filter(|(ty, _)| ty == "transaction")
            .count()
            == 2
    });
    let items: Vec<(String, Value)> = all_items(&envelopes).into_iter().flatten().collect();
    let name = |tx: &Value| tx["transaction"].as_str().unwrap_or("").to_owned();
    for (ty, tx) in items.iter().filter(|(ty, _)| ty == "transaction") {
        assert_eq!(ty, "transaction");
        let profiled = tx["contexts"].get("profile").is_some();
        assert_eq!(profiled, name(tx) == "Order Pipeline: BTC buy", "{tx}");
    }
    assert_eq!(items.iter().filter(|(ty, _)| ty == "profile").count(), 1);
    let counts = counters.snapshot();
    assert_eq!((counts.profiles_sent, counts.profiles_busy), (1, 1));
}

#[test]
fn a_pipeline_too_short_for_two_samples_sends_no_profile() {
    let _turn = take_turn();
    let opts = options("ag_short").profiles_sample_rate(1.0);
    let counters = opts.counters();
    let agent = Agent::new(opts);
    agent.run(|| cycle(0));
    let envelopes = agent.envelopes_until(has_transaction);
    let items: Vec<(String, Value)> = all_items(&envelopes).into_iter().flatten().collect();
    assert!(items.iter().all(|(ty, _)| ty != "profile"));
    let tx = &items
        .iter()
        .find(|(ty, _)| ty == "transaction")
        .expect("tx")
        .1;
    assert!(
        tx["contexts"].get("profile").is_none(),
        "no link to a profile not sent"
    );
    let counts = counters.snapshot();
    assert_eq!((counts.profiles_sent, counts.profiles_empty), (0, 1));
}
