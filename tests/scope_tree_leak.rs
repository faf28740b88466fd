//! `scope`: the paths through the scope tree leave the heap where it was: a token handed
//! out by a scope dropped under a long-lived parent, a child of a scope built from a
//! token, a dropped scope that relays its token's cancel to a child until the child is
//! dropped too. One test per binary: the global allocator counts every thread.

use std::future::pending;

use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio_test::{assert_pending, assert_ready, task};
use tokio_util::sync::CancellationToken;

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const ROUNDS: usize = 100_000;
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
fn tree_paths_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let root = CancelScope::new();
    let shutdown = CancellationToken::new();

    measure(
        "a token handed out by a dropped child, then dropped",
        || {
            let token = root.child().child().token();
            assert!(!token.is_cancelled());
        },
    );
    measure(
        "a guarded wait in a child of a dropped from_token scope",
        || {
            let child = CancelScope::from_token(&shutdown).child();
            let mut guarded = task::spawn(pending::<()>().within(&child));
            assert_pending!(guarded.poll());
        },
    );
    measure(
        "a relay: a dropped scope's token cancelled, then its child dropped",
        || {
            let middle = root.child();
            let token = middle.token();
            let below = middle.child();
            drop(middle);
            let mut guarded = task::spawn(pending::<()>().within(&below));
            assert_pending!(guarded.poll());
            token.cancel();
            assert!(assert_ready!(guarded.poll()).is_err());
        },
    );
    measure("a relay never used: its child dropped first", || {
        let middle = root.child();
        let _token = middle.token();
        let below = middle.child();
        drop(middle);
        drop(below);
    });
    assert!(!root.is_cancelled() && !shutdown.is_cancelled());
}
