//! What monitoring adds to one decision cycle.
//!
//! A cycle computes a z-score over a price window and, instrumented, also runs one order
//! pipeline (five stage spans with their data, sample rate 1.0, the transaction sent), records
//! four decision breadcrumbs and sets the cycle's tags. Three cases, one run:
//!
//! - `uninstrumented`: the cycle alone;
//! - `instrumented/http_sink`: the `sentry` HTTP transport to a local HTTP sink that answers
//!   200 at once;
//! - `instrumented/closed_port`: the DSN points at a port where nothing listens.
//!
//! `instrumented/*` runs cycles back to back (hundreds of thousands a second: the send queue
//! overflows and the transport threads compete with the loop for the cores);
//! `instrumented_paced/*` times the loop's thread alone and lets the transport threads catch
//! up outside the timed section every 16 cycles, as they do between the cycles of a real
//! agent.
//!
//! With the `profiling` feature, three more cases (the agent's `profiles_sample_rate`):
//!
//! - `profiled_paced/http_sink`: every pipeline profiled; the loop's thread alone is timed
//!   (starting the profiler, its snapshots, the samples' unwinding), and the transport
//!   catches up (stops the profiler, builds and sends) after every cycle, outside the timed
//!   section, so that the next pipeline finds the profiler free;
//! - `profiled_with_worker/http_sink`: the same cycle and the worker's catching up, both
//!   timed: what a profiled cycle costs the process;
//! - `profiled_10pct_paced/http_sink`: `profiles_sample_rate(0.1)`, paced as
//!   `instrumented_paced`: the average cycle of an agent profiling a tenth of its pipelines.
//!
//! - `heavy/unprofiled`, `heavy/profiled`: a pipeline whose risk stage hashes for ~40 ms of
//!   CPU, with the transport's catching up, all timed, without and with its profile: the
//!   cost of a profile with samples to symbolicate and send.
//!
//! With the feature, `instrumented*` run on an agent whose rate is 0 (the default): the
//! unprofiled cycle, to compare with a build without the feature.
//!
//! Run: `cargo bench -p lookout-agent --bench cycle [--features profiling]`. The figure is the
//! difference of the instrumented cases from `uninstrumented`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lookout_agent::breadcrumbs::{ApiResponse, PositionChange, RiskCheck, Signal};
use lookout_agent::{NoiseFilter, Options, OrderPipeline, Outcome, Side, Stage};
use sentry::Hub;

/// The trading work of a cycle: a z-score of the last price over a 64-price window.
fn decide(prices: &[f64]) -> f64 {
    let n = prices.len() as f64;
    let mean = prices.iter().sum::<f64>() / n;
    let var = prices.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / n;
    let last = prices.last().copied().unwrap_or(mean);
    (last - mean) / var.sqrt().max(f64::EPSILON)
}

fn instrumented_cycle(prices: &[f64], cycle: u64) -> f64 {
    let z = decide(prices);
    sentry::configure_scope(|scope| {
        scope.set_tag("cycle.asset", "BTC");
        scope.set_tag("cycle.regime", if z > 0.0 { "up" } else { "down" });
    });
    Signal::new("BTC", z)
        .iv(0.61)
        .rv(0.47)
        .action("buy")
        .record();
    let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
    let _ = pipeline.stage(Stage::SignalValidate, |s| {
        s.z_score(z);
        s.valid(true);
        Ok(())
    });
    let _ = pipeline.stage(Stage::RiskCheck, |s| {
        s.risk_pass(true);
        Ok(())
    });
    RiskCheck::new("max_position_usd", true, 250.0, 5_000.0).record();
    let _ = pipeline.stage(Stage::OrderSize, |s| {
        s.size_usd(250.0);
        Ok(())
    });
    let _ = pipeline.stage(Stage::http("POST", "/v1/trade/open"), |s| {
        s.order_id("ord_bench");
        Ok(())
    });
    ApiResponse::new("POST /v1/trade/open", 200, Duration::from_millis(42))
        .order_id("ord_bench")
        .record();
    let _ = pipeline.stage(Stage::OrderConfirm, |s| {
        s.fill_price(64_000.0);
        s.fill_confirmed(true);
        Ok(())
    });
    PositionChange::new("BTC", Side::Buy, 0.004, 64_000.0)
        .rationale(if cycle.is_multiple_of(2) {
            "z above 2"
        } else {
            "trend"
        })
        .record();
    pipeline.finish(Outcome::Filled);
    z
}

/// A minimal HTTP/1.1 sink: reads each request (with its `Content-Length` body) and
/// answers `200 {}` on the same connection.
fn http_sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let port = listener.local_addr().expect("sink addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

fn serve(stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn hub_for(port: u16) -> Arc<Hub> {
    Options::new("ag_bench")
        .dsn(format!("http://public@127.0.0.1:{port}/1"))
        .strategy("bench")
        .release("bench@1.0.0")
        .traces_sample_rate(1.0)
        .noise_filter(NoiseFilter::new())
        .hub()
}

fn bench(c: &mut Criterion) {
    let prices: Vec<f64> = (0..64)
        .map(|i| 64_000.0 + (f64::from(i) * 0.7).sin() * 120.0)
        .collect();
    let mut group = c.benchmark_group("cycle");
    group.bench_function("uninstrumented", |b| {
        b.iter(|| black_box(decide(black_box(&prices))));
    });
    for (name, port) in [("http_sink", http_sink()), ("closed_port", closed_port())] {
        let hub = hub_for(port);
        let mut cycle = 0u64;
        Hub::run(hub.clone(), || {
            group.bench_function(format!("instrumented/{name}"), |b| {
                b.iter(|| {
                    cycle += 1;
                    black_box(instrumented_cycle(black_box(&prices), cycle))
                });
            });
            // Paced: an agent cycles a few times a second, so the transport threads are done
            // before the next cycle. Time only the loop's thread, and let the background
            // threads catch up (flush) outside the timed section every 16 cycles.
            group.bench_function(format!("instrumented_paced/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for i in 0..iters {
                        cycle += 1;
                        let started = Instant::now();
                        black_box(instrumented_cycle(black_box(&prices), cycle));
                        spent += started.elapsed();
                        if i % 16 == 15
                            && let Some(client) = Hub::current().client()
                        {
                            client.flush(Some(Duration::from_secs(5)));
                        }
                    }
                    spent
                });
            });
        });
        if let Some(client) = hub.client() {
            client.close(Some(Duration::from_millis(200)));
        }
    }
    #[cfg(feature = "profiling")]
    profiled(&mut group, &prices);
    group.finish();
    #[cfg(feature = "profiling")]
    {
        let mut heavy_group = c.benchmark_group("cycle");
        heavy_group.sample_size(10);
        heavy(&mut heavy_group);
        heavy_group.finish();
    }
}

/// The profiled cases (see the module docs).
#[cfg(feature = "profiling")]
fn profiled(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    prices: &[f64],
) {
    let port = http_sink();
    let flush = || {
        if let Some(client) = Hub::current().client() {
            client.flush(Some(Duration::from_secs(5)));
        }
    };
    let mut cycle = 0u64;
    let every = profiled_hub(port, 1.0);
    Hub::run(every.0.clone(), || {
        group.bench_function("profiled_paced/http_sink", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    cycle += 1;
                    let started = Instant::now();
                    black_box(instrumented_cycle(black_box(prices), cycle));
                    spent += started.elapsed();
                    flush();
                }
                spent
            });
        });
        group.bench_function("profiled_with_worker/http_sink", |b| {
            b.iter(|| {
                cycle += 1;
                black_box(instrumented_cycle(black_box(prices), cycle));
                flush();
            });
        });
    });
    report("every pipeline profiled", &every.1);
    if let Some(client) = every.0.client() {
        client.close(Some(Duration::from_millis(200)));
    }

    let tenth = profiled_hub(port, 0.1);
    Hub::run(tenth.0.clone(), || {
        group.bench_function("profiled_10pct_paced/http_sink", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    cycle += 1;
                    let started = Instant::now();
                    black_box(instrumented_cycle(black_box(prices), cycle));
                    spent += started.elapsed();
                    if i % 16 == 15 {
                        flush();
                    }
                }
                spent
            });
        });
    });
    report("a tenth profiled", &tenth.1);
    if let Some(client) = tenth.0.client() {
        client.close(Some(Duration::from_millis(200)));
    }
}

/// What the profiled cases did with their pipelines' profiles.
#[cfg(feature = "profiling")]
#[allow(clippy::print_stderr)] // a bench reports to its runner
fn report(case: &str, counters: &lookout_agent::Counters) {
    let counts = counters.snapshot();
    eprintln!(
        "{case}: {} profiles sent, {} too short to send, {} pipelines skipped (profiler busy)",
        counts.profiles_sent, counts.profiles_empty, counts.profiles_busy,
    );
}

/// A cycle whose risk stage does ~40 ms of CPU work (a fixed amount of hashing), so that
/// its profile has samples to symbolicate and send.
#[cfg(feature = "profiling")]
fn heavy_cycle(rounds: u64) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut pipeline = OrderPipeline::start("BTC", Side::Buy);
    let risk = pipeline.stage(Stage::RiskCheck, |s| {
        let mut hasher = DefaultHasher::new();
        for i in 0..rounds {
            i.hash(&mut hasher);
        }
        s.risk_pass(true);
        Ok(hasher.finish())
    });
    pipeline.finish(Outcome::Filled);
    risk.unwrap_or(0)
}

/// The heavy cycle (see [`heavy_cycle`]) with and without its profile, each followed by the
/// transport's catching up, all timed.
#[cfg(feature = "profiling")]
fn heavy(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let port = http_sink();
    // ~40 ms of hashing on the machine the figures were taken on: ~4 samples at 101 Hz.
    let rounds = 16_000_000;
    for (name, rate) in [("heavy/unprofiled", 0.0), ("heavy/profiled", 1.0)] {
        let (hub, counters) = profiled_hub(port, rate);
        Hub::run(hub.clone(), || {
            group.bench_function(name, |b| {
                b.iter(|| {
                    black_box(heavy_cycle(black_box(rounds)));
                    if let Some(client) = Hub::current().client() {
                        client.flush(Some(Duration::from_secs(5)));
                    }
                });
            });
        });
        report(name, &counters);
        if let Some(client) = hub.client() {
            client.close(Some(Duration::from_millis(200)));
        }
    }
}

#[cfg(feature = "profiling")]
fn profiled_hub(port: u16, rate: f32) -> (Arc<Hub>, lookout_agent::Counters) {
    let options = Options::new("ag_bench")
        .dsn(format!("http://public@127.0.0.1:{port}/1"))
        .strategy("bench")
        .release("bench@1.0.0")
        .traces_sample_rate(1.0)
        .profiles_sample_rate(rate)
        .noise_filter(NoiseFilter::new());
    let counters = options.counters();
    (options.hub(), counters)
}

criterion_group!(benches, bench);
criterion_main!(benches);
