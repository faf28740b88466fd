//! A batcher's memory is O(pending + in flight), not O(items ever pushed):
//! a million pushes through a long-lived batcher leave the heap where it was
//! after the first few thousand. Its own test binary, because the counting
//! allocator is global.

use std::future::ready;
use std::time::Duration;

use hangfree::batch::{Batcher, FlushError};

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn live() -> isize {
    alloc::live()
}

#[tokio::test(start_paused = true)]
async fn a_million_pushes_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    let batcher = Batcher::builder()
        .max_items(100)
        .max_delay(Duration::from_millis(5))
        .deadline_margin(Duration::from_millis(1))
        .max_in_flight(4)
        .on_failure(|_: FlushError<u64, String>| {})
        .build(|items: Vec<u64>| {
            // Every seventh batch fails, so the failure path runs too.
            let fail = items[0] % 7 == 0;
            ready(if fail {
                Err(FlushError::new(items, "refused".to_string()))
            } else {
                Ok(())
            })
        })
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);

    let push = |n: u64| {
        let batcher = &batcher;
        async move {
            if n % 3 == 0 {
                batcher.push_by(n, deadline).await.unwrap();
            } else {
                batcher.push(n).await.unwrap();
            }
            if n % 250 == 0 {
                // Let the workers and the driver run, and the clock move.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    for n in 0..20_000 {
        push(n).await;
    }
    batcher.flush().await;
    let warm = live();
    for n in 20_000..1_000_000 {
        push(n).await;
    }
    batcher.flush().await;
    let after = live();
    assert!(
        (after - warm).abs() < 16 * 1024,
        "heap grew by {} bytes over 980,000 pushes",
        after - warm
    );
    let report = batcher.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.accepted(), 1_000_000);
    assert_eq!(report.flushed_items() + report.failed_items(), 1_000_000);
    assert!(report.failed_batches() > 1_000);
}
