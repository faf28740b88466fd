//! Review of `scope` (issue 2): a long parent chain. Its own binary, because the failure
//! is a stack overflow, which aborts the whole test process.

use hangfree::CancelScope;
use tokio_util::sync::CancellationToken;

const DEPTH: usize = 100_000;

// Anchor (passes): tokio-util drops a chain of child tokens of the same depth.
#[test]
fn review_anchor_a_deep_chain_of_child_tokens_drops_fine() {
    let mut token = CancellationToken::new();
    for _ in 0..DEPTH {
        token = token.child_token();
    }
    drop(token);
}

// F7. Every `child()` keeps its parent alive through `Node::parent`, and dropping the
// deepest scope drops the chain recursively (`Arc<Node>` -> `Node` -> `Arc<Node>` ...).
// A loop that re-binds `scope = scope.child()` (a child per message or retry) grows
// without bound and overflows the stack when dropped (here: ~10,000 levels in debug).
#[test]
fn review_dropping_a_deep_chain_of_child_scopes_does_not_overflow_the_stack() {
    let mut scope = CancelScope::new();
    for _ in 0..DEPTH {
        scope = scope.child();
    }
    drop(scope);
}
