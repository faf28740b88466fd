//! Cost of watching a stream or a reader, against the bare source and
//! tokio-stream's `timeout`, the closest tool in the tokio ecosystem.
//!
//! Every variant is one function of its own (`#[inline(never)]`, one runtime
//! `block_on` around the whole source), so each has its own consumer loop and
//! the three modes measure the same code:
//!
//! - criterion: `cargo bench --bench watchdog -- --warm-up-time 1 --measurement-time 3`;
//! - interleaved (each variant its own timed loop, in turn, round after round;
//!   medians compared, see `support/interleave.rs`):
//!   `WATCHDOG_ROUNDS=21 cargo bench --bench watchdog`;
//! - instruction counts: `WATCHDOG_CALLGRIND=<runs>` runs every variant `<runs>`
//!   times and times nothing; run the bench binary under
//!   `valgrind --tool=callgrind` and read each `variant_*` function's inclusive
//!   count (`callgrind_annotate --inclusive=yes`), which the machine's load
//!   does not move.
//!
//! `WATCHDOG_ONLY=<text>` keeps, in the interleaved mode, the groups whose
//! name contains it, and in the instruction-count mode the variants whose
//! `group/name` does (to profile one with `perf record`).

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits, Stalled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio_stream::StreamExt as _;

#[path = "support/interleave.rs"]
mod support;

use support::{Variant, interleave, per_op};

const ITEMS: u64 = 200_000;
const CHANNEL_CAPACITY: usize = 64;
const IO_BYTES: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
const READS: u64 = (IO_BYTES / CHUNK) as u64;
const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn all_limits() -> Limits {
    Limits::new()
        .first_item(LIMIT)
        .idle(LIMIT)
        .total(10 * LIMIT)
        .min_rate(1, LIMIT)
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

// An always-ready source: `futures::stream::iter` over 200,000 items.

#[inline(never)]
fn variant_ready_bare(rt: &Runtime) -> u64 {
    rt.block_on(sum(futures::stream::iter(0..ITEMS)))
}

/// The floor for any adapter that wraps items in `Result`: the same consumer
/// loop, with `unwrap` on every item, and no watching at all.
#[inline(never)]
fn variant_ready_bare_wrapped_in_ok(rt: &Runtime) -> u64 {
    rt.block_on(sum_ok(futures::StreamExt::map(
        futures::stream::iter(0..ITEMS),
        Ok::<u64, Stalled>,
    )))
}

#[inline(never)]
fn variant_ready_tokio_stream_timeout(rt: &Runtime) -> u64 {
    rt.block_on(async { sum_ok(Box::pin(futures::stream::iter(0..ITEMS).timeout(LIMIT))).await })
}

#[inline(never)]
fn variant_ready_idle_timeout(rt: &Runtime) -> u64 {
    rt.block_on(sum_ok(futures::stream::iter(0..ITEMS).idle_timeout(LIMIT)))
}

#[inline(never)]
fn variant_ready_all_limits(rt: &Runtime) -> u64 {
    rt.block_on(sum_ok(
        futures::stream::iter(0..ITEMS).watchdog(all_limits()),
    ))
}

/// The floor of any budget on an always-ready source that keeps `Limits::total`'s
/// promises: the source is dropped at the stall; a consumer that never lets the timer
/// run is stopped by a clock read every so many items (here every 1,024th, the most the
/// watchdog allows itself); a timer's firing is seen at the very next item, so a word a
/// timer's waker could zero is loaded and compared with the item count on every poll;
/// and the items are counted (`idle`, `first_item` and `min_rate` judge by them). No
/// timer is registered, nothing is reported, no other limit is watched, and the source
/// is assumed never to pend: `watchdog(all_limits())` does all of this and more.
struct BudgetFloor<S> {
    inner: Option<S>,
    items: u64,
    /// The item count at which the clock is next read; a timer's waker would zero it.
    next_look: std::sync::Arc<std::sync::atomic::AtomicU64>,
    deadline: tokio::time::Instant,
}

impl<S: futures::Stream + Unpin> futures::Stream for BudgetFloor<S> {
    type Item = Result<S::Item, ()>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::sync::atomic::Ordering::Relaxed;
        use std::task::Poll;
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if this.items >= this.next_look.load(Relaxed) {
            if tokio::time::Instant::now() >= this.deadline {
                this.inner = None;
                return Poll::Ready(Some(Err(())));
            }
            this.next_look.store(this.items + 1024, Relaxed);
        }
        match std::pin::Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.items += 1;
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[inline(never)]
fn variant_ready_budget_floor(rt: &Runtime) -> u64 {
    rt.block_on(async {
        sum_ok(BudgetFloor {
            inner: Some(futures::stream::iter(0..ITEMS)),
            items: 0,
            next_look: Default::default(),
            deadline: tokio::time::Instant::now() + 10 * LIMIT,
        })
        .await
    })
}

// A source that really goes `Pending`: a bounded channel fed by another task
// on the same current-thread runtime.

fn channel() -> tokio_stream::wrappers::ReceiverStream<u64> {
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        for item in 0..ITEMS {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[inline(never)]
fn variant_channel_bare(rt: &Runtime) -> u64 {
    rt.block_on(async { sum(channel()).await })
}

#[inline(never)]
fn variant_channel_tokio_stream_timeout(rt: &Runtime) -> u64 {
    rt.block_on(async { sum_ok(Box::pin(channel().timeout(LIMIT))).await })
}

#[inline(never)]
fn variant_channel_idle_timeout(rt: &Runtime) -> u64 {
    rt.block_on(async { sum_ok(channel().idle_timeout(LIMIT)).await })
}

#[inline(never)]
fn variant_channel_all_limits(rt: &Runtime) -> u64 {
    rt.block_on(async { sum_ok(channel().watchdog(all_limits())).await })
}

// 64 MiB through a `tokio::io::duplex` pair, written by another task in
// 64 KiB writes, read in 64 KiB reads.

async fn pump<R: tokio::io::AsyncRead + Unpin>(
    mut writer: tokio::io::DuplexStream,
    mut reader: R,
) -> u64 {
    let feeder = tokio::spawn(async move {
        let chunk = vec![7u8; CHUNK];
        for _ in 0..READS {
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
        total += n as u64;
    }
    feeder.await.unwrap();
    total
}

#[inline(never)]
fn variant_duplex_bare(rt: &Runtime) -> u64 {
    rt.block_on(async {
        let (reader, writer) = tokio::io::duplex(CHUNK);
        pump(writer, reader).await
    })
}

#[inline(never)]
fn variant_duplex_io_watchdog(rt: &Runtime) -> u64 {
    rt.block_on(async {
        let (reader, writer) = tokio::io::duplex(CHUNK);
        pump(writer, IoWatchdog::new(reader, Limits::new().idle(LIMIT))).await
    })
}

/// The floor of any idle limit on a reader, as tokio-io-timeout's `TimeoutReader` keeps
/// one: when a read returns `Pending`, a wait that was not already timed reads the clock
/// and moves a timer to now plus the limit, and the timer is polled; a read that moves
/// data ends the wait. No report, no attribution of a wait to the source's wake rather
/// than the consumer's return, no other limit: `IoWatchdog` does all of this and more.
struct IdleTimerFloor<R> {
    inner: R,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    timing: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for IdleTimerFloor<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let read = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if read.is_ready() {
            this.timing = false;
            return read;
        }
        if !this.timing {
            this.timing = true;
            this.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + LIMIT);
        }
        match this.timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => {
                std::task::Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

#[inline(never)]
fn variant_duplex_idle_timer_floor(rt: &Runtime) -> u64 {
    rt.block_on(async {
        let (reader, writer) = tokio::io::duplex(CHUNK);
        let floor = IdleTimerFloor {
            inner: reader,
            timer: Box::pin(tokio::time::sleep(LIMIT)),
            timing: false,
        };
        pump(writer, floor).await
    })
}

/// One run of a variant: the whole source, through one `block_on`.
type Run = fn(&Runtime) -> u64;

/// A group: its name, what one run does (for `per_op`), and its variants.
struct Group {
    name: &'static str,
    /// Operations per run (items, or 64 KiB reads), in `unit`s.
    ops: u64,
    /// What the interleaved mode's times are per.
    unit: &'static str,
    /// Runs per timed sample, so that a sample lasts a few milliseconds.
    runs: u64,
    /// The index of the ecosystem's anchor, if the group has one.
    anchor: Option<usize>,
    variants: &'static [(&'static str, Run)],
}

const GROUPS: [Group; 3] = [
    Group {
        name: "watchdog/ready_source_200k",
        // Per 1,000 items: an item takes well under a nanosecond.
        ops: ITEMS / 1_000,
        unit: "per 1,000 items",
        runs: 10,
        anchor: Some(2),
        variants: &[
            ("bare", variant_ready_bare),
            ("bare_wrapped_in_ok", variant_ready_bare_wrapped_in_ok),
            ("tokio_stream_timeout", variant_ready_tokio_stream_timeout),
            ("idle_timeout", variant_ready_idle_timeout),
            ("watchdog_all_limits", variant_ready_all_limits),
            ("budget_floor", variant_ready_budget_floor),
        ],
    },
    Group {
        name: "watchdog/channel_source_200k",
        ops: ITEMS,
        unit: "per item",
        runs: 1,
        anchor: Some(1),
        variants: &[
            ("bare", variant_channel_bare),
            ("tokio_stream_timeout", variant_channel_tokio_stream_timeout),
            ("idle_timeout", variant_channel_idle_timeout),
            ("watchdog_all_limits", variant_channel_all_limits),
        ],
    },
    Group {
        name: "watchdog/duplex_read_64MiB",
        ops: READS,
        unit: "per 64 KiB read",
        runs: 1,
        anchor: None,
        variants: &[
            ("bare", variant_duplex_bare),
            ("io_watchdog", variant_duplex_io_watchdog),
            ("idle_timer_floor", variant_duplex_idle_timer_floor),
        ],
    },
];

fn criterion_benches(c: &mut Criterion) {
    let rt = runtime();
    for group in &GROUPS {
        let mut measured = c.benchmark_group(group.name);
        for &(name, run) in group.variants {
            measured.bench_function(name, |b| b.iter(|| black_box(run(&rt))));
        }
        measured.finish();
    }
}

criterion_group!(benches, criterion_benches);

/// The interleaved mode. Each variant is a `fn` of its own, called through a
/// pointer once per run: the call is outside the timed consumer loop, which
/// is the variant's own code.
fn interleaved(rounds: usize) {
    let only = std::env::var("WATCHDOG_ONLY").unwrap_or_default();
    let rt = runtime();
    for group in GROUPS.iter().filter(|group| group.name.contains(&only)) {
        let mut variants: Vec<Variant<'_>> = group
            .variants
            .iter()
            .map(|&(name, run)| {
                let rt = &rt;
                Variant::new(name, move || {
                    let started = Instant::now();
                    for _ in 0..group.runs {
                        black_box(run(rt));
                    }
                    per_op(started.elapsed(), group.runs * group.ops)
                })
            })
            .collect();
        // Warm up every variant (the timer wheel, the allocator's pools).
        for variant in &mut variants {
            (variant.run)();
        }
        interleave(
            &format!("{} ({})", group.name, group.unit),
            rounds,
            group.anchor,
            &mut variants,
        );
    }
}

/// The instruction-count mode: every variant `runs` times, nothing timed;
/// with `WATCHDOG_ONLY=<text>`, only the variants whose `group/name`
/// contains it (to profile one with `perf record`).
fn for_callgrind(runs: usize) {
    let only = std::env::var("WATCHDOG_ONLY").unwrap_or_default();
    let rt = runtime();
    for group in &GROUPS {
        for &(name, run) in group.variants {
            if !format!("{}/{name}", group.name).contains(&only) {
                continue;
            }
            for _ in 0..runs {
                black_box(run(&rt));
            }
        }
    }
}

fn main() {
    if let Some(runs) = support::rounds("WATCHDOG_CALLGRIND") {
        for_callgrind(runs);
        return;
    }
    if let Some(rounds) = support::rounds("WATCHDOG_ROUNDS") {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
