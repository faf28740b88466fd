//! `scope`: hooks, entered scopes and shields leave the heap where it was. Live heap bytes
//! are counted by a global allocator around a million hooks registered and dropped on
//! one long-lived scope, a million polls of an entered scope, and the paths around them.
//! One test per binary, so that nothing else allocates while it counts.

use std::time::Duration;

use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio::task::yield_now;
use tokio_test::{assert_pending, assert_ready, task};

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const MILLION: usize = 1_000_000;
const ROUNDS: usize = 100_000;
const PEAK_ALLOWANCE: isize = 64 * 1024;

/// Runs `body` 1,000 times to warm up, then `rounds` times, and checks that the live
/// heap is where it was and never rose far.
fn measure(name: &str, rounds: usize, mut body: impl FnMut()) {
    for _ in 0..1_000 {
        body();
    }
    let before = alloc::live();
    alloc::reset_peak();
    for _ in 0..rounds {
        body();
    }
    let after = alloc::live();
    let peak = alloc::peak() - before;
    println!("{name}: before {before} B, after {after} B, peak +{peak} B");
    assert_eq!(after, before, "{name}: {} B left behind", after - before);
    assert!(peak <= PEAK_ALLOWANCE, "{name}: peak +{peak} B");
}

#[test]
fn hooks_entered_scopes_and_shields_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _enter = rt.enter();
    // One long-lived scope with a far deadline, never cancelled.
    let scope = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));

    // Each hook owns something, as a real one does, so that it is boxed on the heap.
    let table = String::from("t1");
    measure("a hook registered and dropped", MILLION, || {
        let table = table.clone();
        let hook = scope.on_interrupt(move |_| unreachable!("{table}: never interrupted"));
        drop(hook);
    });
    measure("a hook registered and disarmed", ROUNDS, || {
        let table = table.clone();
        assert!(scope.on_interrupt(move |_| drop(table)).disarm());
    });
    measure(
        "an entered scope, polled twice, looked up each time",
        MILLION,
        || {
            let mut entered = task::spawn(scope.enter(async {
                assert!(CancelScope::current().is_some());
                yield_now().await;
                assert!(CancelScope::current().is_some());
            }));
            assert_pending!(entered.poll());
            assert_ready!(entered.poll());
        },
    );
    measure("within_current in an entered scope", ROUNDS, || {
        let mut entered = task::spawn(scope.enter(yield_now().within_current()));
        assert_pending!(entered.poll());
        assert_ready!(entered.poll()).unwrap();
    });
    measure(
        "a hook that runs, on a child cancelled with a reason",
        ROUNDS,
        || {
            let child = scope.child().with_name("table t1");
            let _hook = child.on_interrupt(|why| assert_eq!(why.reason(), Some("stop")));
            child.cancel_with("stop");
        },
    );
    measure("a shield made and dropped", ROUNDS, || {
        let shield = scope.shield(Duration::from_secs(5));
        let mut guarded = task::spawn(yield_now().within(&shield));
        assert_pending!(guarded.poll());
        assert_ready!(guarded.poll()).unwrap();
    });
    measure("a shield whose grace ran out", ROUNDS, || {
        let parent = scope.child();
        parent.cancel();
        let shield = parent.shield(Duration::ZERO);
        assert!(shield.check().is_err());
    });
    assert!(!scope.is_cancelled());
}
