//! `scope`: dropping a scope takes it out of the tree without cutting anything off. A
//! scope's children and the tokens it handed out still follow every cancel that would
//! have reached them through it.

use std::future::{Future, pending};
use std::task::{Context, Poll, Waker};

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio_test::{assert_pending, assert_ready, task};
use tokio_util::sync::CancellationToken;

#[test]
fn a_token_handed_out_by_a_dropped_child_is_cancelled_with_the_parent() {
    let parent = CancelScope::new();
    let token = parent.child().child().token();
    assert!(!token.is_cancelled());
    parent.cancel();
    assert!(token.is_cancelled());
}

#[test]
fn a_child_of_a_dropped_scope_built_from_a_token_follows_the_token() {
    let shutdown = CancellationToken::new();
    let child = CancelScope::from_token(&shutdown).child();
    let token = CancelScope::from_token(&shutdown).child().token();
    let mut guarded = task::spawn(pending::<()>().within(&child));
    assert_pending!(guarded.poll());

    shutdown.cancel();
    assert!(guarded.is_woken());
    assert_eq!(
        assert_ready!(guarded.poll()).unwrap_err().cause(),
        Cause::Cancelled
    );
    assert!(child.is_cancelled());
    assert!(token.is_cancelled());
}

#[test]
fn cancelling_the_token_of_a_dropped_scope_still_interrupts_its_children() {
    let root = CancelScope::new();
    let middle = root.child();
    let token = middle.token();
    let below = middle.child();
    let sibling = root.child();
    drop(middle);
    let mut guarded = task::spawn(pending::<()>().within(&below));
    assert_pending!(guarded.poll());

    token.cancel();
    assert!(guarded.is_woken());
    assert!(assert_ready!(guarded.poll()).is_err());
    assert!(below.is_cancelled());
    assert!(!root.is_cancelled() && !sibling.is_cancelled());
}

#[test]
fn children_of_a_dropped_middle_scope_are_cancelled_with_the_root() {
    let root = CancelScope::new();
    let middle = root.child();
    let below = middle.child();
    let deeper = below.child();
    drop(middle);
    root.cancel();
    assert!(below.is_cancelled() && deeper.is_cancelled());
    assert_eq!(deeper.check().unwrap_err().cause(), Cause::Cancelled);
}

#[test]
fn a_child_made_of_an_interrupted_scope_is_born_interrupted_with_its_cause() {
    let root = CancelScope::new();
    root.cancel();
    let child = root.child();
    assert!(child.is_cancelled());
    assert!(child.token().is_cancelled());
    let mut never = task::spawn(async { "ran" }.within(&child));
    assert_eq!(
        assert_ready!(never.poll()).unwrap_err().cause(),
        Cause::Cancelled
    );
}

const DEPTH: usize = 10_000;

fn chain() -> Vec<CancelScope> {
    let mut scopes = vec![CancelScope::new()];
    for _ in 1..DEPTH {
        let next = scopes.last().unwrap().child();
        scopes.push(next);
    }
    scopes
}

#[test]
fn a_deep_chain_of_live_scopes_is_cancelled_whole_and_drops_in_any_order() {
    let scopes = chain();
    let token = scopes[DEPTH - 1].token();
    let mut waiting = Box::pin(pending::<()>().within(&scopes[DEPTH - 1]));
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    scopes[0].cancel();
    assert!(token.is_cancelled());
    assert!(matches!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Err(_))
    ));
    drop(waiting);
    drop(scopes); // root first

    let mut scopes = chain();
    while scopes.pop().is_some() {} // deepest first

    let scopes = chain();
    let deepest = scopes[DEPTH - 1].clone();
    drop(scopes);
    assert!(!deepest.is_cancelled());
}

#[test]
fn a_deep_chain_of_dropped_scopes_whose_tokens_were_handed_out_relays_a_cancel_and_drops() {
    let root = CancelScope::new();
    let mut tokens = Vec::new();
    let mut scope = root.child();
    for _ in 0..DEPTH {
        tokens.push(scope.token());
        scope = scope.child();
    }
    // Every level but the last is dropped; each relays its token's cancel downwards.
    tokens[0].cancel();
    assert!(scope.is_cancelled());
    assert!(tokens.iter().all(CancellationToken::is_cancelled));
    assert!(!root.is_cancelled());
    drop(scope);
    drop(tokens);
}

const REBINDS: usize = 100_000;

// Every level of a re-bound chain (a child per message or retry) leaves the tree when
// its scope is dropped, so the chain never grows, and dropping the last one unwinds
// nothing recursively (a stack overflow would abort this whole test binary).
#[test]
fn dropping_a_scope_rebound_to_its_child_100_000_times_does_not_overflow_the_stack() {
    let mut scope = CancelScope::new();
    for _ in 0..REBINDS {
        scope = scope.child();
    }
    assert!(!scope.is_cancelled());
    drop(scope);
}

/// Each re-bound level asked for a deadline of its own, so each remembers it and the chain
/// stays alive (see the module docs): reading it, guarding by it and dropping it walk the
/// chain in loops, not recursion, whatever its length.
#[tokio::test(start_paused = true)]
async fn a_long_chain_of_scopes_each_with_its_own_deadline_is_read_guarded_and_dropped() {
    let first = CancelScope::new().with_timeout(std::time::Duration::from_secs(3600));
    let mut scope = first.clone();
    for _ in 0..200_000 {
        scope = scope
            .child()
            .with_timeout(std::time::Duration::from_secs(7200));
    }
    assert_eq!(
        scope.deadline(),
        first.deadline(),
        "never more than the first level"
    );
    assert_eq!(async { 7 }.within(&scope).await, Ok(7));
    first.cancel();
    assert!(scope.is_cancelled());
    drop(first);
    drop(scope);
}
