//! `scope`: the paths through the scope tree leave the heap where it was: a token handed
//! out by a scope dropped under a long-lived parent, a child of a scope built from a
//! token, a dropped scope that relays its token's cancel to a child until the child is
//! dropped too, and a scope re-bound to its child in a loop. One test per binary: the
//! global allocator counts every thread.

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
/// Re-binds of `scope = scope.child()`, kept below the depth a recursive drop would
/// overflow the stack at, so that a leak shows here as growth, not as a crash.
const REBINDS: usize = 5_000;

#[test]
fn tree_paths_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let root = CancelScope::new();
    let shutdown = CancellationToken::new();

    alloc::measure(
        "a token handed out by a dropped child, then dropped",
        ROUNDS,
        || {
            let token = root.child().child().token();
            assert!(!token.is_cancelled());
        },
    );
    alloc::measure(
        "a guarded wait in a child of a dropped from_token scope",
        ROUNDS,
        || {
            let child = CancelScope::from_token(&shutdown).child();
            let mut guarded = task::spawn(pending::<()>().within(&child));
            assert_pending!(guarded.poll());
        },
    );
    alloc::measure(
        "a relay: a dropped scope's token cancelled, then its child dropped",
        ROUNDS,
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
    alloc::measure(
        "a relay never used: its child dropped first",
        ROUNDS,
        || {
            let middle = root.child();
            let _token = middle.token();
            let below = middle.child();
            drop(middle);
            drop(below);
        },
    );
    assert!(!root.is_cancelled() && !shutdown.is_cancelled());

    // `token = token.child_token()` stays flat in tokio-util (a token without handles is
    // unlinked, its children re-parented); a re-bound scope must too, although each
    // level has a node, a signal and an internal token.
    let mut token = CancellationToken::new();
    let before = alloc::live();
    for _ in 0..REBINDS {
        token = token.child_token();
    }
    let token_growth = alloc::live() - before;
    drop(token);
    let mut scope = CancelScope::new();
    let before = alloc::live();
    for _ in 0..REBINDS {
        scope = scope.child();
    }
    let scope_growth = alloc::live() - before;
    drop(scope);
    println!("{REBINDS} re-binds: tokens +{token_growth} B, scopes +{scope_growth} B");
    assert!(
        token_growth <= alloc::PEAK_ALLOWANCE,
        "tokio-util grew {token_growth} B"
    );
    assert!(
        scope_growth <= alloc::PEAK_ALLOWANCE,
        "{REBINDS} re-bound child scopes hold {scope_growth} B ({} B per dropped level)",
        scope_growth / REBINDS as isize
    );
}
