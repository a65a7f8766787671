//! Cost of the pure digest core per event: normalise + scrub + classify frames + group a
//! realistic ~8 KB Python-SDK error event (15 frames with context lines and vars, 20
//! breadcrumbs), and normalise + scrub a transaction with five spans.
#![allow(missing_docs)]

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use lookout_protocol::normalize::{ItemKind, NormalizeContext, normalize_event};
use lookout_protocol::{grouping, scrub, stacktrace};
use serde_json::{Value, json};
use std::hint::black_box;

fn received() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_003_260, 0).unwrap_or_default()
}

fn python_error() -> Value {
    let frames: Vec<Value> = (0..15)
        .map(|i| {
            json!({
                "filename": format!("agent/strategies/module_{i}.py"),
                "abs_path": format!("/srv/agent/strategies/module_{i}.py"),
                "module": format!("agent.strategies.module_{i}"),
                "function": format!("step_{i}"),
                "lineno": 40 + i,
                "in_app": i >= 5,
                "pre_context": ["    qty = order.qty", "    price = book.best_bid()"],
                "context_line": format!("    result = venue.place(order, attempt={i})"),
                "post_context": ["    log.info('placed %s', result)", "    return result"],
                "vars": {"order": "{'id': 1234, 'asset': 'BTC', 'qty': 0.5}", "attempt": i.to_string(), "self": "<Strategy object at 0x7f00>"}
            })
        })
        .collect();
    let crumbs: Vec<Value> = (0..20)
        .map(|i| {
            json!({
                "timestamp": 1_795_003_200.0 + f64::from(i),
                "type": "http", "category": "httplib", "level": "info",
                "message": format!("GET https://api.purpleflea.com/v1/markets/BTC/book?depth={i}"),
                "data": {"method": "GET", "status_code": 200, "url": "https://api.purpleflea.com/v1/markets/BTC/book"}
            })
        })
        .collect();
    json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": "2026-11-19T09:00:00.123456Z",
        "platform": "python", "level": "error", "logger": "agent",
        "server_name": "trader-1", "release": "agent@1.4.2", "environment": "production",
        "transaction": "order_loop",
        "sdk": {"name": "sentry.python", "version": "2.40.0"},
        "user": {"id": "agent-7", "ip_address": "10.0.0.7"},
        "tags": {"asset": "BTC", "phase": "order_placement", "strategy": "mean_reversion"},
        "extra": {"sys.argv": ["agent.py", "--live"], "attempts": 3},
        "contexts": {"trading": {"asset": "BTC", "side": "buy", "qty": 0.5}, "runtime": {"name": "CPython", "version": "3.12.3"}},
        "exception": {"values": [{"type": "InsufficientMargin", "value": "order 1234 needs 512.25 USDC, have 100.00",
            "module": "agent.errors", "mechanism": {"type": "generic", "handled": true},
            "stacktrace": {"frames": frames}}]},
        "breadcrumbs": {"values": crumbs}
    })
}

/// A Rust SDK panic as sentry 0.49 sends it from a tokio worker: 80 frames, most of them
/// thread start-up, tokio, std and the SDK's hook, with long generic names.
fn rust_panic() -> Value {
    let lib = "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library";
    let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
    let mut frames = vec![
        json!({"function": "clone3", "abs_path": "./misc/../sysdeps/unix/sysv/linux/x86_64/clone3.S", "in_app": true}),
        json!({"function": "start_thread", "abs_path": "./nptl/pthread_create.c", "in_app": true}),
    ];
    for i in 0..60 {
        frames.push(json!({
            "function": format!("poll<tokio::runtime::blocking::task::BlockingTask<tokio::runtime::scheduler::multi_thread::worker::{{impl#0}}::launch::{{closure_env#{i}}}>>"),
            "abs_path": format!("{reg}/tokio-1.54.1/src/runtime/task/harness.rs"),
            "filename": "harness.rs", "lineno": 100 + i, "in_app": true,
        }));
    }
    for f in [
        "agent::main",
        "agent::casino_kelly::run::{{closure}}",
        "agent::casino_kelly::bet_once",
    ] {
        frames.push(json!({"function": f, "abs_path": "/srv/agent/src/casino_kelly.rs", "filename": "casino_kelly.rs", "lineno": 158, "in_app": true}));
    }
    frames.push(json!({"function": "core::panicking::panic_fmt", "abs_path": format!("{lib}/core/src/panicking.rs"), "in_app": false}));
    frames.push(json!({"function": "__rustc::rust_begin_unwind", "abs_path": format!("{lib}/std/src/panicking.rs"), "in_app": true}));
    while frames.len() < 80 {
        frames.push(json!({"function": "panic_handler", "abs_path": format!("{reg}/sentry-panic-0.49.5/src/lib.rs"), "in_app": true}));
    }
    json!({"platform": "native", "sdk": {"name": "sentry.rust", "version": "0.49.5"},
        "exception": {"values": [{"type": "panic", "value": "casino_kelly: bankroll went negative (simulated crash)",
            "mechanism": {"type": "panic", "handled": false}, "stacktrace": {"frames": frames}}]}})
}

fn transaction() -> Value {
    let spans: Vec<Value> = (0..5)
        .map(|i| {
            let op = ["risk.check", "db.query", "http.client", "venue.place", "ledger.write"][i];
            json!({
                "span_id": format!("{:016x}", 0xabc0 + i), "parent_span_id": "b0e6f15b45c36b12",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "op": op,
                "description": "SELECT * FROM positions WHERE asset = %s", "status": "ok",
                "start_timestamp": 1_795_003_200.0 + i as f64 * 0.01, "timestamp": 1_795_003_200.0 + i as f64 * 0.01 + 0.008,
                "data": {"db.system": "sqlite", "thread.id": 1}
            })
        })
        .collect();
    json!({
        "event_id": "0ec79c33ec9942ab8353589fcb2e04dc", "transaction": "order.pipeline", "platform": "python",
        "start_timestamp": 1_795_003_200.0, "timestamp": 1_795_003_200.06, "release": "agent@1.4.2",
        "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "b0e6f15b45c36b12", "op": "order.pipeline", "status": "ok"}},
        "spans": spans
    })
}

fn bench(c: &mut Criterion) {
    let ev = python_error();
    let tx = transaction();
    let ctx = |item| NormalizeContext {
        item,
        received: received(),
        sent_at: None,
        header_event_id: None,
    };
    let ev_ctx = ctx(ItemKind::Event);
    let tx_ctx = ctx(ItemKind::Transaction);
    c.bench_function("error_event_8k/normalize_scrub_group", |b| {
        // The input clone (the server parses a fresh value instead) is setup, not measured.
        b.iter_batched(
            || ev.clone(),
            |ev| {
                let Ok(mut n) = normalize_event(ev, &ev_ctx) else {
                    return;
                };
                let report = scrub::scrub_event(&mut n.payload);
                stacktrace::apply_in_app(&mut n.payload, &stacktrace::InAppRules::default());
                black_box((report, grouping::compute_grouping(&n.payload)));
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("transaction_5_spans/normalize_scrub", |b| {
        b.iter_batched(
            || tx.clone(),
            |tx| {
                let Ok(mut n) = normalize_event(tx, &tx_ctx) else {
                    return;
                };
                black_box(scrub::scrub_event(&mut n.payload));
            },
            BatchSize::SmallInput,
        )
    });
    let normalized = normalize_event(ev.clone(), &ev_ctx)
        .map(|n| n.payload)
        .unwrap_or_default();
    c.bench_function("error_event_8k/scrub_only", |b| {
        b.iter_batched(
            || normalized.clone(),
            |mut p| black_box(scrub::scrub_event(&mut p)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("error_event_8k/group_only", |b| {
        b.iter(|| black_box(grouping::compute_grouping(black_box(&normalized))))
    });
    let panic = rust_panic();
    c.bench_function("rust_panic_80_frames/group_only", |b| {
        b.iter(|| black_box(grouping::compute_grouping(black_box(&panic))))
    });
    c.bench_function("rust_panic_80_frames/classify_group", |b| {
        b.iter_batched(
            || panic.clone(),
            |mut p| {
                stacktrace::apply_in_app(&mut p, &stacktrace::InAppRules::default());
                black_box(grouping::compute_grouping(&p))
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("error_event_8k/clone_only", |b| {
        b.iter(|| black_box(ev.clone()))
    });
    c.bench_function("error_event_8k/serialized_bytes", |b| {
        b.iter(|| black_box(serde_json::to_vec(&ev).map(|v| v.len())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
