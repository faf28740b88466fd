//! With the `tracing` feature, a batcher dropped without `shutdown` says what
//! nobody will read in a report: items never flushed, and failed batches it
//! still holds. Its own test binary with a global subscriber: a thread-local
//! one races with other tests over tracing's per-callsite interest cache.
#![cfg(feature = "tracing")]

use std::future::{pending, ready};

use futures::future::{BoxFuture, FutureExt as _};
use hangfree::batch::{Batcher, FlushError};

mod support;

type FlushResult = Result<(), FlushError<u32, String>>;

/// The events about a dropped batcher, taken out of the collection.
fn take_drop_events(events: &support::events::Events) -> Vec<String> {
    events.take("batcher dropped")
}

/// A flush that fails, handing back every item, for batches holding an even
/// first item, and succeeds for the others.
fn fails_on_even(items: Vec<u32>) -> BoxFuture<'static, FlushResult> {
    let result = if items[0] % 2 == 0 {
        Err(FlushError::new(items, "sink refused".to_string()))
    } else {
        Ok(())
    };
    ready(result).boxed()
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Lets every spawned task run until it waits, without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn a_batcher_dropped_without_shutdown_counts_the_failed_batches_it_holds() {
    let collect = support::events::Events::install();

    // Every flush ran; three of five failed with nobody to hand them to.
    paused_runtime().block_on(async {
        let batcher = Batcher::builder()
            .max_items(2)
            .build(fails_on_even)
            .unwrap();
        for n in [0, 1, 2, 3, 5, 7, 9, 11, 4, 6] {
            batcher.push(n).await.unwrap();
        }
        drop(batcher);
        settle().await;
    });
    let events = take_drop_events(&collect);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert!(event.starts_with("ERROR"), "{event}");
    assert!(event.contains("items=0"), "{event}");
    assert!(event.contains("failed_batches=3"), "{event}");
    assert!(event.contains("failed_items=6"), "{event}");

    // Both at once: a failed batch kept, and a flush lost with its runtime.
    let runtime = paused_runtime();
    let batcher = runtime.block_on(async {
        let batcher = Batcher::builder()
            .max_items(1)
            .build(|items: Vec<u32>| match items[0] {
                0 => fails_on_even(items),
                _ => pending::<FlushResult>().boxed(),
            })
            .unwrap();
        for n in 0..3 {
            batcher.push(n).await.unwrap();
        }
        settle().await;
        assert_eq!(batcher.in_flight(), 1);
        batcher
    });
    drop(runtime); // item 1 is lost mid-flush, item 2 never started
    assert!(take_drop_events(&collect).is_empty(), "a handle is alive");
    drop(batcher);
    let events = take_drop_events(&collect);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert!(event.contains("items=2"), "{event}");
    assert!(event.contains("failed_batches=1"), "{event}");
    assert!(event.contains("failed_items=1"), "{event}");
}
