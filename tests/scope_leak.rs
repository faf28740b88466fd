//! `scope` is leak-free, measured: live heap bytes are counted by a global allocator
//! around a million guarded awaits on one long-lived scope, a million children with their
//! own timeout, and the paths that end a wait early (a guarded future or a `cancelled()`
//! dropped while pending, a child cancelled while waited on, a child whose deadline has
//! already passed). One test per binary, so that nothing else allocates while it counts.

use std::future::pending;
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio::task::yield_now;
use tokio_test::{assert_pending, assert_ready, task};

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const AWAITS: usize = 1_000_000;
const ROUNDS: usize = 200_000;

#[test]
fn guarded_awaits_and_waits_ended_early_leave_the_heap_where_it_was() {
    let rt = alloc::counted_current_thread();
    let _enter = rt.enter();
    // One long-lived scope with a far deadline, never cancelled.
    let scope = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));

    // yield_now pends once, so every await registers and deregisters a waiter.
    alloc::measure("a guarded await", AWAITS, || {
        rt.block_on(async { yield_now().within(&scope).await.unwrap() })
    });
    // Each child creates a node, its internal token and a timer entry, and must take all
    // of them back.
    alloc::measure("a child with its own timeout per call", AWAITS, || {
        rt.block_on(async {
            let child = scope.child().with_timeout(Duration::from_secs(3600));
            yield_now().within(&child).await.unwrap();
        })
    });
    alloc::measure("a guarded future dropped while pending", ROUNDS, || {
        let mut guarded = task::spawn(pending::<()>().within(&scope));
        assert_pending!(guarded.poll());
    });
    alloc::measure("cancelled() dropped while pending", ROUNDS, || {
        let mut waiting = task::spawn(scope.cancelled());
        assert_pending!(waiting.poll());
    });
    alloc::measure("a child cancelled while waited on", ROUNDS, || {
        let child = scope.child().with_timeout(Duration::from_secs(60));
        let mut guarded = task::spawn(pending::<()>().within(&child));
        assert_pending!(guarded.poll());
        child.cancel();
        assert!(guarded.is_woken());
        assert!(assert_ready!(guarded.poll()).is_err());
    });
    alloc::measure("a child whose deadline has passed", ROUNDS, || {
        let child = scope.child().with_timeout(Duration::ZERO);
        let mut guarded = task::spawn(pending::<()>().within(&child));
        assert!(assert_ready!(guarded.poll()).unwrap_err().is_deadline());
    });
    assert!(!scope.is_cancelled());
}
