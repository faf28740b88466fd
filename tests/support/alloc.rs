#![allow(dead_code)] // each leak test uses the part it needs
//! A counting global allocator for the leak tests: live heap bytes and their peak,
//! counted only on the threads a test marks with [`count_this_thread`] (the test's own
//! thread, and a runtime's workers through `on_thread_start`). Allocations by the test
//! harness's threads are left out, so they cannot be mistaken for a leak.
//!
//! Use it with `#[path = "support/alloc.rs"] mod alloc;` and
//! `#[global_allocator] static ALLOC: alloc::Counting = alloc::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    // Const-initialized and without a destructor: safe to read inside the allocator.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

/// Counts this thread's allocations and frees from now on.
pub fn count_this_thread() {
    COUNTED.with(|counted| counted.set(true));
}

/// Counts this thread from now on, and builds the current-thread runtime (with timers) a
/// leak test runs on this thread.
pub fn counted_current_thread() -> tokio::runtime::Runtime {
    count_this_thread();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Live bytes allocated (minus freed) by the counted threads.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Starts a new peak measurement at the current live bytes.
pub fn reset_peak() -> isize {
    let live = live();
    PEAK.store(live, Ordering::SeqCst);
    live
}

/// The highest live bytes since `reset_peak`.
pub fn peak() -> isize {
    PEAK.load(Ordering::SeqCst)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && counted() {
            let size = layout.size() as isize;
            let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if counted() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
    }
}

/// The most the live heap may rise while a `measure`d body runs: bookkeeping that comes
/// and goes (a slab's growth, a timer wheel's level), never a leak.
pub const PEAK_ALLOWANCE: isize = 64 * 1024;

/// Runs `body` 1,000 times to warm up, then `rounds` times, and checks that the live heap
/// is where it was and never rose more than [`PEAK_ALLOWANCE`].
pub fn measure(name: &str, rounds: usize, mut body: impl FnMut()) {
    for _ in 0..1_000 {
        body();
    }
    let before = live();
    reset_peak();
    for _ in 0..rounds {
        body();
    }
    let after = live();
    let peak = peak() - before;
    println!("{name}: before {before} B, after {after} B, peak +{peak} B");
    assert_eq!(after, before, "{name}: {} B left behind", after - before);
    assert!(peak <= PEAK_ALLOWANCE, "{name}: peak +{peak} B");
}
