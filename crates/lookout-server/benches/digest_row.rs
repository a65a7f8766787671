//! The digest's processing stage per inbox row: decode the stored body,
//! parse the envelope, normalise, scrub and group the event, and serialise and compress what
//! is stored. The store write is not included (`benches/digest.rs` measures the whole digest).
//!
//! Rows: the ~8.8 KB Python-SDK error envelope of `fixtures/`, gzip-compressed as the inbox
//! keeps it, and a transaction with five spans, plain.
//!
//! Run: `cargo bench -p lookout-server --bench digest_row`. On a noisy machine,
//! `LOOKOUT_BENCH_ROUNDS=30` instead times that many rounds of 1,000 rows each, on one thread
//! and then on every core, and prints the fastest round: the figure least disturbed by other
//! work, for comparing builds. (On the shared VMs here, one busy core runs up to twice as fast
//! per thread as two busy cores: compare like with like.)
#![allow(missing_docs, clippy::print_stdout)]

#[path = "shared/envelopes.rs"]
mod envelopes;

use criterion::{BatchSize, Criterion, criterion_group};
use lookout_server::digest::InboxRow;
use lookout_server::digest::process::process_row;
use lookout_server::store::digest::Batch;

/// The allocator of the `lookout` binary, so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn row(encoding: &str, envelope: Vec<u8>) -> InboxRow {
    InboxRow {
        id: 1,
        project_id: 1,
        received_at: chrono::Utc::now().timestamp_millis(),
        encoding: encoding.into(),
        envelope,
    }
}

/// How many records of its kind a row must digest into.
type Records = fn(&Batch) -> usize;

/// The rows, each checked to digest into one record and no rejection: otherwise the bench
/// would measure the wrong path.
fn rows() -> [(&'static str, InboxRow); 2] {
    let rows: [(&str, InboxRow, Records); 2] = [
        (
            "python_error_gzip",
            row("gzip", envelopes::error_envelope(0)),
            |b| b.events.len(),
        ),
        (
            "transaction_5_spans",
            row("identity", envelopes::transaction_envelope(0)),
            |b| b.transactions.len(),
        ),
    ];
    rows.map(|(name, row, records)| {
        let mut once = Batch::default();
        process_row(&row, &mut once);
        assert!(
            records(&once) == 1 && once.rejections.is_empty(),
            "{name}: {:?}",
            once.rejections
        );
        (name, row)
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("digest_row");
    for (name, row) in rows() {
        // Each iteration gets a fresh batch; the batch (as the store write would) is dropped
        // outside the timing.
        group.bench_function(name, |b| {
            b.iter_batched(
                Batch::default,
                |mut batch| {
                    process_row(&row, &mut batch);
                    batch
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The fastest of `rounds` rounds of 1,000 rows, per row: on one thread, then on as many
/// threads as there are cores (each thread its share of the 1,000), as the digest runs.
fn fastest_round(rounds: u32) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, row) in rows() {
        for threads in [1, cores] {
            let mut best = std::time::Duration::MAX;
            for _ in 0..rounds {
                let start = std::time::Instant::now();
                let batches: Vec<Batch> = std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            scope.spawn(|| {
                                let mut batch = Batch::default();
                                for _ in 0..1000 / threads {
                                    process_row(&row, &mut batch);
                                }
                                batch
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().expect("a worker panicked"))
                        .collect()
                });
                best = best.min(start.elapsed());
                // Dropped after the clock stops, as the store write would.
                drop(batches);
            }
            let rows_done = (1000 / threads * threads) as f64;
            println!(
                "digest_row/{name}: {threads} thread(s), fastest of {rounds} rounds: {:.1} µs per row, {:.0} rows/s",
                best.as_secs_f64() * 1e6 / rows_done,
                rows_done / best.as_secs_f64(),
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("LOOKOUT_BENCH_ROUNDS").map(|r| r.parse::<u32>()) {
        Ok(Ok(rounds)) if rounds > 0 => fastest_round(rounds),
        _ => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
