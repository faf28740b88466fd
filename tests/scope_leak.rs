//! `scope` is leak-free, measured: live heap bytes are counted by a global allocator
//! around a million guarded awaits. One test per binary, so that nothing else allocates
//! while it counts.

use std::time::Duration;

use hangfree::CancelScope;
use hangfree::prelude::*;

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const AWAITS: usize = 1_000_000;
const PEAK_ALLOWANCE: isize = 64 * 1024;

/// Runs `body` once to warm up (lazily allocated runtime and scope state), then `AWAITS`
/// times, and returns (live bytes before, after, peak above before).
async fn measure<F, Fut>(mut body: F) -> (isize, isize, isize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..1_000 {
        body().await;
    }
    let before = alloc::live();
    alloc::reset_peak();
    for _ in 0..AWAITS {
        body().await;
    }
    let after = alloc::live();
    let peak = alloc::peak();
    (before, after, peak - before)
}

#[test]
fn a_million_guarded_awaits_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // One long-lived scope with a far deadline, never cancelled.
        let scope = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));
        let (before, after, peak) = measure(|| {
            let scope = &scope;
            async move {
                // yield_now pends once, so every await registers and deregisters a waiter.
                let r = tokio::task::yield_now().within(scope).await;
                assert!(r.is_ok());
            }
        })
        .await;
        println!("same scope: live before {before} B, after {after} B, peak +{peak} B");
        assert_eq!(
            after,
            before,
            "guarded awaits left {} bytes behind",
            after - before
        );
        assert!(
            peak <= PEAK_ALLOWANCE,
            "peak rose {peak} bytes above the start"
        );

        // A child scope with its own timeout per call, dropped after the call: each one
        // creates a token, a bridge and a timer entry, and must take all of them back.
        let (before, after, peak) = measure(|| {
            let scope = &scope;
            async move {
                let child = scope.child().with_timeout(Duration::from_secs(3600));
                let r = tokio::task::yield_now().within(&child).await;
                assert!(r.is_ok());
            }
        })
        .await;
        println!("child per call: live before {before} B, after {after} B, peak +{peak} B");
        assert_eq!(
            after,
            before,
            "child scopes left {} bytes behind",
            after - before
        );
        assert!(
            peak <= PEAK_ALLOWANCE,
            "peak rose {peak} bytes above the start"
        );
        assert!(!scope.is_cancelled());
    });
}
