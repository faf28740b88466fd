//! 200,000 items from a bounded mpsc channel, in batches of 100:
//!
//! - `ready_chunks` (bare): `futures::StreamExt::ready_chunks(100)` on the
//!   receiver, each chunk dropped by the consumer.
//! - `chunks_timeout`: tokio-stream's `chunks_timeout(100, 5 s)`.
//! - `Batcher`: the consumer pushes every item; each batch is handed to a
//!   flush function (on a flush task) that drops it; the run ends when
//!   `shutdown` reports all 200,000 flushed, so the hand-off is included.
//!
//! Three groups: a current-thread runtime timed by the wall clock; the same
//! timed by the bench thread's CPU time (on Linux, from
//! `/proc/thread-self/schedstat`; everything runs on that thread, so this
//! leaves out only the time other processes held the CPU, which on a shared
//! machine is most of the noise); and a 2-worker multi-thread runtime.
//!
//! Run: `cargo bench --bench batch -- --warm-up-time 1 --measurement-time 3`.
//!
//! `BATCH_INTERLEAVED=<rounds> cargo bench --bench batch` runs each variant in its own
//! timed loop, in turn, round after round, and prints median ratios (wall and thread CPU
//! time on the current-thread runtime, wall on the multi-thread one): steadier on a shared
//! machine. `BATCH_ONLY=<variant>` runs one variant 20 times on the current-thread
//! runtime and nothing else, for a profiler.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use hangfree::batch::{Batcher, FlushError};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

#[path = "support/interleave.rs"]
mod support;

use support::{Variant, interleave, per_op};

const ITEMS: u64 = 200_000;
const BATCH: usize = 100;
const CHANNEL: usize = 1024;

fn source() -> mpsc::Receiver<u64> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        for n in 0..ITEMS {
            tx.send(n).await.unwrap();
        }
    });
    rx
}

async fn bare() {
    let mut chunks = futures::StreamExt::ready_chunks(ReceiverStream::new(source()), BATCH);
    let mut seen = 0;
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        seen += black_box(chunk).len();
    }
    assert_eq!(seen as u64, ITEMS);
}

async fn chunks_timeout() {
    let chunks = ReceiverStream::new(source()).chunks_timeout(BATCH, Duration::from_secs(5));
    let mut chunks = std::pin::pin!(chunks);
    let mut seen = 0;
    while let Some(chunk) = tokio_stream::StreamExt::next(&mut chunks).await {
        seen += black_box(chunk).len();
    }
    assert_eq!(seen as u64, ITEMS);
}

async fn batcher() {
    let batcher = Batcher::builder()
        .max_items(BATCH)
        .max_delay(Duration::from_secs(5))
        .build(|items: Vec<u64>| {
            black_box(items);
            ready(Ok::<(), FlushError<u64, Infallible>>(()))
        })
        .unwrap();
    let mut rx = source();
    while let Some(n) = rx.recv().await {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.flushed_items(), ITEMS);
}

/// The floor of any batcher whose producers share the open batch through a
/// `std::sync::Mutex`, as `Batcher`'s do (with `forbid(unsafe_code)` there is no cheaper
/// lock): per item the consumer's `recv`, one lock and a push into the open batch; a full
/// batch is taken and dropped. No flush task, no due time, no shutdown: a `Batcher` does
/// all of this and more.
async fn mutex_floor() {
    let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(BATCH)));
    let mut rx = source();
    let mut seen = 0;
    while let Some(n) = rx.recv().await {
        let mut batch = open.lock().unwrap();
        batch.push(n);
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut *batch, Vec::with_capacity(BATCH));
            drop(batch);
            seen += black_box(full).len();
        }
    }
    assert_eq!(seen as u64, ITEMS);
}

fn group(c: &mut Criterion, name: &str, runtime: &Runtime) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    group.bench_function("ready_chunks (bare)", |b| b.to_async(runtime).iter(bare));
    group.bench_function("chunks_timeout", |b| {
        b.to_async(runtime).iter(chunks_timeout)
    });
    group.bench_function("Batcher", |b| b.to_async(runtime).iter(batcher));
    group.bench_function("mutex_floor", |b| b.to_async(runtime).iter(mutex_floor));
    group.finish();
}

/// The calling thread's CPU time, if the platform says.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Runs `iters` iterations on a current-thread runtime and returns the CPU
/// time they took on this thread (wall time where that is not available).
fn cpu_timed<F: Future<Output = ()>>(runtime: &Runtime, iters: u64, run: fn() -> F) -> Duration {
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    for _ in 0..iters {
        runtime.block_on(run());
    }
    match (cpu, thread_cpu_time()) {
        (Some(before), Some(after)) => after - before,
        _ => wall.elapsed(),
    }
}

fn cpu_group(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("batch_200k_by_100/current_thread_cpu_time");
    group.throughput(Throughput::Elements(ITEMS));
    group.sample_size(20);
    group.bench_function("ready_chunks (bare)", |b| {
        b.iter_custom(|iters| cpu_timed(runtime, iters, bare))
    });
    group.bench_function("chunks_timeout", |b| {
        b.iter_custom(|iters| cpu_timed(runtime, iters, chunks_timeout))
    });
    group.bench_function("Batcher", |b| {
        b.iter_custom(|iters| cpu_timed(runtime, iters, batcher))
    });
    group.bench_function("mutex_floor", |b| {
        b.iter_custom(|iters| cpu_timed(runtime, iters, mutex_floor))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    group(c, "batch_200k_by_100/current_thread", &current_thread);
    cpu_group(c, &current_thread);
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    group(c, "batch_200k_by_100/multi_thread_2", &multi_thread);
}

criterion_group!(batch, benches);

/// One run of a variant: 200,000 items through it.
type Run = fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// The variants, each a function of its own with its own consumer loop.
const VARIANTS: [(&str, Run); 4] = [
    ("ready_chunks (bare)", || Box::pin(bare())),
    ("chunks_timeout", || Box::pin(chunks_timeout())),
    ("Batcher", || Box::pin(batcher())),
    ("mutex_floor", || Box::pin(mutex_floor())),
];

/// Runs per timed loop: each variant's loop takes 200,000 items through it `RUNS` times.
const RUNS: u64 = 5;

/// Each variant timed by the wall clock on `rt`, in ns per item.
fn wall_timed(rt: &Runtime) -> Vec<Variant<'_>> {
    VARIANTS
        .iter()
        .map(|&(name, run)| {
            Variant::new(name, move || {
                let started = Instant::now();
                for _ in 0..RUNS {
                    rt.block_on(run());
                }
                per_op(started.elapsed(), RUNS * ITEMS)
            })
        })
        .collect()
}

/// Each variant timed by this thread's CPU time on the current-thread `rt`, in ns per
/// item.
fn cpu_timed_variants(rt: &Runtime) -> Vec<Variant<'_>> {
    VARIANTS
        .iter()
        .map(|&(name, run)| {
            Variant::new(name, move || per_op(cpu_timed(rt, RUNS, run), RUNS * ITEMS))
        })
        .collect()
}

fn interleaved(rounds: usize) {
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (title, mut variants) in [
        (
            "batch_200k_by_100/current_thread, wall (per item)",
            wall_timed(&current_thread),
        ),
        (
            "batch_200k_by_100/current_thread, thread CPU time (per item)",
            cpu_timed_variants(&current_thread),
        ),
        (
            "batch_200k_by_100/multi_thread_2, wall (per item)",
            wall_timed(&multi_thread),
        ),
    ] {
        // Warm up every variant (the timer wheel, the allocator's pools).
        for variant in &mut variants {
            (variant.run)();
        }
        interleave(title, rounds, Some(1), &mut variants);
    }
}

fn only(variant: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(&(_, run)) = VARIANTS.iter().find(|(name, _)| name.starts_with(variant)) else {
        panic!("no variant {variant:?}");
    };
    for _ in 0..20 {
        rt.block_on(run());
    }
}

fn main() {
    if let Ok(variant) = std::env::var("BATCH_ONLY") {
        only(&variant);
        return;
    }
    if let Some(rounds) = support::rounds("BATCH_INTERLEAVED") {
        interleaved(rounds);
        return;
    }
    batch();
    Criterion::default().configure_from_args().final_summary();
}
