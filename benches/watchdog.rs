//! Cost of watching a stream or a reader, against the bare source and
//! tokio-stream's `timeout`, the closest tool in the tokio ecosystem.
//!
//! Run: `cargo bench --bench watchdog -- --warm-up-time 1 --measurement-time 3`
//! Paired ratios (alternating runs, median): `WATCHDOG_PAIRED=1 cargo bench --bench watchdog`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits, Stalled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_stream::StreamExt as _;

const ITEMS: u64 = 200_000;
const CHANNEL_CAPACITY: usize = 64;
const IO_BYTES: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sum<S: futures::Stream<Item = u64> + Unpin>(mut items: S) -> u64 {
    let mut total = 0;
    while let Some(item) = futures::StreamExt::next(&mut items).await {
        // black_box keeps the bare loop from being folded away entirely.
        total += black_box(item);
    }
    total
}

async fn sum_ok<E, S: futures::Stream<Item = Result<u64, E>> + Unpin>(mut items: S) -> u64 {
    let mut total = 0;
    while let Some(item) = futures::StreamExt::next(&mut items).await {
        total += black_box(item.ok().unwrap());
    }
    total
}

fn ready_source(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watchdog/ready_source_200k");
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sum(futures::stream::iter(0..ITEMS)).await) })
    });
    // The floor for any adapter that wraps items in `Result`: the same
    // consumer loop, with `unwrap` on every item, and no watching at all.
    group.bench_function("bare_wrapped_in_ok", |b| {
        b.to_async(&rt).iter(|| async {
            let items =
                futures::StreamExt::map(futures::stream::iter(0..ITEMS), Ok::<u64, Stalled>);
            black_box(sum_ok(items).await)
        })
    });
    group.bench_function("tokio_stream_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let items = Box::pin(futures::stream::iter(0..ITEMS).timeout(LIMIT));
            black_box(sum_ok(items).await)
        })
    });
    group.bench_function("idle_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let items = futures::stream::iter(0..ITEMS).idle_timeout(LIMIT);
            black_box(sum_ok(items).await)
        })
    });
    group.bench_function("watchdog_all_limits", |b| {
        b.to_async(&rt).iter(|| async {
            let limits = Limits::new()
                .first_item(LIMIT)
                .idle(LIMIT)
                .total(10 * LIMIT)
                .min_rate(1, LIMIT);
            let items = futures::stream::iter(0..ITEMS).watchdog(limits);
            black_box(sum_ok(items).await)
        })
    });
    group.finish();
}

/// A bounded channel fed by another task: the consumer really goes `Pending`.
fn channel(rt: &Runtime) -> tokio_stream::wrappers::ReceiverStream<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
    rt.spawn(async move {
        for item in 0..ITEMS {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn channel_source(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watchdog/channel_source_200k");
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(sum(channel(&rt)).await) })
    });
    group.bench_function("tokio_stream_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let items = Box::pin(channel(&rt).timeout(LIMIT));
            black_box(sum_ok(items).await)
        })
    });
    group.bench_function("idle_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let items = channel(&rt).idle_timeout(LIMIT);
            black_box(sum_ok(items).await)
        })
    });
    group.finish();
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(
    rt: &Runtime,
    mut writer: tokio::io::DuplexStream,
    mut reader: R,
) -> usize {
    let feeder = rt.spawn(async move {
        let chunk = vec![7u8; CHUNK];
        for _ in 0..IO_BYTES / CHUNK {
            writer.write_all(&chunk).await.unwrap();
        }
    });
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    feeder.await.unwrap();
    total
}

fn duplex_reader(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watchdog/duplex_read_64MiB");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async {
            let (reader, writer) = tokio::io::duplex(CHUNK);
            black_box(pump(&rt, writer, reader).await)
        })
    });
    group.bench_function("io_watchdog", |b| {
        b.to_async(&rt).iter(|| async {
            let (reader, writer) = tokio::io::duplex(CHUNK);
            let reader = IoWatchdog::new(reader, Limits::new().idle(LIMIT));
            black_box(pump(&rt, writer, reader).await)
        })
    });
    group.finish();
}

/// Noise-resistant ratios for a shared machine: bare and watched runs
/// alternate (order flipped each round) and the median of the per-round
/// ratios is printed. Run with `WATCHDOG_PAIRED=1`.
fn paired() {
    fn time<F: std::future::Future>(rt: &Runtime, run: impl Fn() -> F) -> Duration {
        let started = std::time::Instant::now();
        rt.block_on(async {
            black_box(run().await);
        });
        started.elapsed()
    }
    fn report<A, B, FA, FB>(name: &str, rt: &Runtime, bare: A, watched: B)
    where
        A: Fn() -> FA,
        B: Fn() -> FB,
        FA: std::future::Future,
        FB: std::future::Future,
    {
        const ROUNDS: usize = 41;
        // Warm up both.
        time(rt, &bare);
        time(rt, &watched);
        let mut ratios = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let (b, w) = if round % 2 == 0 {
                let b = time(rt, &bare);
                (b, time(rt, &watched))
            } else {
                let w = time(rt, &watched);
                (time(rt, &bare), w)
            };
            ratios.push(w.as_secs_f64() / b.as_secs_f64());
        }
        ratios.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name}: median {:.2}x (quartiles {:.2}x..{:.2}x) over {ROUNDS} alternating rounds",
            ratios[ROUNDS / 2],
            ratios[ROUNDS / 4],
            ratios[3 * ROUNDS / 4],
        );
    }

    let rt = runtime();
    report(
        "ready source, idle_timeout / bare",
        &rt,
        || sum(futures::stream::iter(0..ITEMS)),
        || sum_ok(futures::stream::iter(0..ITEMS).idle_timeout(LIMIT)),
    );
    report(
        "ready source, tokio-stream timeout / bare",
        &rt,
        || sum(futures::stream::iter(0..ITEMS)),
        || sum_ok(Box::pin(futures::stream::iter(0..ITEMS).timeout(LIMIT))),
    );
    report(
        "channel source, idle_timeout / bare",
        &rt,
        || sum(channel(&rt)),
        || sum_ok(channel(&rt).idle_timeout(LIMIT)),
    );
    report(
        "channel source, tokio-stream timeout / bare",
        &rt,
        || sum(channel(&rt)),
        || sum_ok(Box::pin(channel(&rt).timeout(LIMIT))),
    );
    report(
        "duplex 64 MiB, IoWatchdog / bare",
        &rt,
        || {
            let (reader, writer) = tokio::io::duplex(CHUNK);
            pump(&rt, writer, reader)
        },
        || {
            let (reader, writer) = tokio::io::duplex(CHUNK);
            let reader = IoWatchdog::new(reader, Limits::new().idle(LIMIT));
            pump(&rt, writer, reader)
        },
    );
}

criterion_group!(benches, ready_source, channel_source, duplex_reader);

fn main() {
    if std::env::var_os("WATCHDOG_PAIRED").is_some() {
        paired();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
