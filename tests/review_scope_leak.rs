//! Review of `scope` (issue 2), checked correct: the paths `tests/scope_leak.rs` does not
//! measure (a guarded future dropped while pending, a `cancelled()` future dropped while
//! pending, a child scope cancelled while something waits in it, a child whose deadline
//! has already passed) leave the heap where it was. One test per binary: the global
//! allocator counts every thread.

use std::future::pending;
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio_test::{assert_pending, assert_ready, task};

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const ROUNDS: usize = 200_000;
const PEAK_ALLOWANCE: isize = 64 * 1024;

fn measure(name: &str, mut body: impl FnMut()) {
    for _ in 0..1_000 {
        body();
    }
    let before = alloc::live();
    alloc::reset_peak();
    for _ in 0..ROUNDS {
        body();
    }
    let after = alloc::live();
    let peak = alloc::peak() - before;
    println!("{name}: before {before} B, after {after} B, peak +{peak} B");
    assert_eq!(after, before, "{name}: {} B left behind", after - before);
    assert!(peak <= PEAK_ALLOWANCE, "{name}: peak +{peak} B");
}

#[test]
fn review_checked_correct_other_paths_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _enter = rt.enter();
    let scope = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));

    measure("guarded dropped while pending", || {
        let mut guarded = task::spawn(pending::<()>().within(&scope));
        assert_pending!(guarded.poll());
    });
    measure("cancelled() dropped while pending", || {
        let mut waiting = task::spawn(scope.cancelled());
        assert_pending!(waiting.poll());
    });
    measure("child cancelled while waited on", || {
        let child = scope.child().with_timeout(Duration::from_secs(60));
        let mut guarded = task::spawn(pending::<()>().within(&child));
        assert_pending!(guarded.poll());
        child.cancel();
        assert!(guarded.is_woken());
        assert!(assert_ready!(guarded.poll()).is_err());
    });
    measure("child with a passed deadline", || {
        let child = scope.child().with_timeout(Duration::ZERO);
        let mut guarded = task::spawn(pending::<()>().within(&child));
        assert!(assert_ready!(guarded.poll()).unwrap_err().is_deadline());
    });
    assert!(!scope.is_cancelled());
}
