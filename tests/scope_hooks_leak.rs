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

#[test]
fn hooks_entered_scopes_and_shields_leave_the_heap_where_it_was() {
    let rt = alloc::counted_current_thread();
    let _enter = rt.enter();
    // One long-lived scope with a far deadline, never cancelled.
    let scope = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));

    // Each hook owns something, as a real one does, so that it is boxed on the heap.
    let table = String::from("t1");
    alloc::measure("a hook registered and dropped", MILLION, || {
        let table = table.clone();
        let hook = scope.on_interrupt(move |_| unreachable!("{table}: never interrupted"));
        drop(hook);
    });
    alloc::measure("a hook registered and disarmed", ROUNDS, || {
        let table = table.clone();
        assert!(scope.on_interrupt(move |_| drop(table)).disarm());
    });
    alloc::measure(
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
    alloc::measure("within_current in an entered scope", ROUNDS, || {
        let mut entered = task::spawn(scope.enter(yield_now().within_current()));
        assert_pending!(entered.poll());
        assert_ready!(entered.poll()).unwrap();
    });
    alloc::measure(
        "a hook that runs, on a child cancelled with a reason",
        ROUNDS,
        || {
            let child = scope.child().with_name("table t1");
            let _hook = child.on_interrupt(|why| assert_eq!(why.reason(), Some("stop")));
            child.cancel_with("stop");
        },
    );
    alloc::measure("a shield made and dropped", ROUNDS, || {
        let shield = scope.shield(Duration::from_secs(5));
        let mut guarded = task::spawn(yield_now().within(&shield));
        assert_pending!(guarded.poll());
        assert_ready!(guarded.poll()).unwrap();
    });
    alloc::measure("a shield whose grace ran out", ROUNDS, || {
        let parent = scope.child();
        parent.cancel();
        let shield = parent.shield(Duration::ZERO);
        assert!(shield.check().is_err());
    });
    assert!(!scope.is_cancelled());
}
