//! Heap bytes per live unit, next to the anchors': a parked guarded await, a live task, a
//! pending batch item. Counted by a global allocator that tracks live bytes: each figure
//! is (live heap with N units − live heap before) / N, N = 100,000, with the containers
//! that hold the units (a `Vec` of futures, a `Vec` of join handles) subtracted.
//!
//! `cargo bench --bench memory` prints the table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use hangfree::batch::Batcher;
use hangfree::prelude::*;
use hangfree::{CancelScope, TaskSet};
use tokio::task::{JoinSet, yield_now};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live tasks that have been polled once: a static, so that counting adds nothing to a
/// task's own bytes.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The body of a live task: counts its first poll, then waits for `token`.
async fn live_task(token: CancellationToken) {
    STARTED.fetch_add(1, Ordering::Relaxed);
    token.cancelled().await
}

// SAFETY: delegates to the system allocator; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const UNITS: usize = 100_000;
const FAR: Duration = Duration::from_secs(24 * 3600);

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Bytes per future for `UNITS` futures made by `make`, each polled once (so that it
/// registers whatever it waits on), the `Vec` holding them not counted.
fn per_parked_future<F: Future>(make: impl Fn() -> F) -> f64 {
    let mut futures: Vec<Pin<Box<F>>> = Vec::with_capacity(UNITS);
    let before = live();
    for _ in 0..UNITS {
        let mut future = Box::pin(make());
        let _ = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        futures.push(future);
    }
    // The futures' own bytes are counted too: they are what a caller holds.
    let bytes = live() - before;
    drop(futures);
    bytes as f64 / UNITS as f64
}

/// Bytes per live task for `UNITS` tasks spawned by `spawn`, each pending for ever until
/// `token` is cancelled, the containers that hold handles not counted.
///
/// Each call has a runtime of its own, dropped at its end, so that no task of one call
/// ends, and frees its bytes, while the next call counts.
fn per_live_task(spawn: impl Fn(CancellationToken) -> Box<dyn FnOnce()>) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token = CancellationToken::new();
        let before = live();
        STARTED.store(0, Ordering::Relaxed);
        let cleanup = spawn(token.clone());
        // Every task polled once, and so parked: one yield lets a current-thread runtime
        // poll only 61 of them (its event interval).
        while STARTED.load(Ordering::Relaxed) < UNITS {
            yield_now().await;
        }
        let bytes = live() - before;
        token.cancel();
        cleanup();
        bytes as f64 / UNITS as f64
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("memory: heap bytes per live unit, {UNITS} units");

    println!("  a parked guarded await (the future, boxed, and what it registers):");
    let scope = rt.block_on(async { CancelScope::new().with_timeout(FAR) });
    let token = CancellationToken::new();
    rt.block_on(async {
        let bare = per_parked_future(pending::<()>);
        println!("    {:<40} {bare:>8.1}", "bare pending (the box alone)");
        let within = per_parked_future(|| pending::<()>().within(&scope));
        println!(
            "    {:<40} {within:>8.1}",
            "within(&scope), token and deadline"
        );
        let timeout = per_parked_future(|| tokio::time::timeout(FAR, pending::<()>()));
        println!("    {:<40} {timeout:>8.1}", "tokio::time::timeout");
        let until = per_parked_future(|| token.run_until_cancelled(pending::<()>()));
        println!("    {:<40} {until:>8.1}", "run_until_cancelled");
    });

    println!("  a live task (waiting for a token):");
    let handles =
        (std::mem::size_of::<tokio::task::JoinHandle<()>>() * UNITS) as f64 / UNITS as f64;
    let spawn = per_live_task(|token| {
        let handles: Vec<_> = (0..UNITS)
            .map(|_| tokio::spawn(live_task(token.clone())))
            .collect();
        Box::new(move || drop(handles))
    }) - handles;
    println!(
        "    {:<40} {spawn:>8.1}",
        "tokio::spawn (handles not counted)"
    );
    let join_set = per_live_task(|token| {
        let mut set = JoinSet::new();
        for _ in 0..UNITS {
            set.spawn(live_task(token.clone()));
        }
        Box::new(move || drop(set))
    });
    println!("    {:<40} {join_set:>8.1}", "JoinSet");
    let tracker = per_live_task(|token| {
        let tracker = TaskTracker::new();
        for _ in 0..UNITS {
            tracker.spawn(live_task(token.clone()));
        }
        Box::new(move || drop(tracker))
    });
    println!("    {:<40} {tracker:>8.1}", "TaskTracker");
    let task_set = per_live_task(|token| {
        let set = TaskSet::new();
        for _ in 0..UNITS {
            set.spawn("live", live_task(token.clone())).unwrap();
        }
        Box::new(move || drop(set))
    });
    println!(
        "    {:<40} {task_set:>8.1}",
        "TaskSet (label, age, abort handle)"
    );

    println!("  a pending batch item (u64, 8 bytes):");
    let batch = rt.block_on(async {
        let batcher = Batcher::builder()
            .max_items(UNITS * 2)
            .capacity(UNITS * 2)
            .max_delay(FAR)
            .build(|batch: Vec<u64>| async move {
                drop(batch);
                Ok::<(), hangfree::batch::FlushError<_, String>>(())
            })
            .unwrap();
        let before = live();
        for item in 0..UNITS as u64 {
            batcher.try_push(item).unwrap();
        }
        let bytes = live() - before;
        batcher.shutdown(FAR).await;
        bytes as f64 / UNITS as f64
    });
    println!("    {:<40} {batch:>8.1}", "Batcher (the open batch's Vec)");
}
