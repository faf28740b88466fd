//! Review of `scope` (issue 2): memory of a re-bound child chain, counted by a global
//! allocator (one test per binary, so nothing else allocates while it counts).

use hangfree::CancelScope;
use tokio_util::sync::CancellationToken;

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

// Below the depth at which dropping the chain overflows the stack (see review_scope_chain).
const REBINDS: usize = 5_000;
const ALLOWANCE: isize = 64 * 1024;

// F7, memory: `scope = scope.child()` in a loop keeps every intermediate level alive
// (node, signal, token, bridge), although no handle to them remains. tokio-util's
// `token = token.child_token()` stays flat: a token node without handles is unlinked and
// its children re-parented.
#[test]
fn review_rebinding_a_scope_to_its_child_does_not_grow_memory() {
    alloc::count_this_thread();
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
    assert!(token_growth <= ALLOWANCE, "anchor grew {token_growth} B");
    assert!(
        scope_growth <= ALLOWANCE,
        "{REBINDS} re-bound child scopes hold {scope_growth} B ({} B per dropped level)",
        scope_growth / REBINDS as isize
    );
}
