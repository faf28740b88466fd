//! Settings that cannot work are a [`BuildError`] at `build`, never a panic;
//! settings at their extremes mean "no limit".

use std::future::ready;
use std::time::Duration;

use hangfree::batch::{BatcherBuilder, BuildError};
use tokio::time::Instant;

use super::{MS, SECOND, builder, gated, recording, settle};

#[tokio::test]
async fn bad_settings_are_rejected_with_a_clear_error() {
    let build = |b: BatcherBuilder<u32, String>| b.build(|_: Vec<u32>| ready(Ok(()))).unwrap_err();

    let err = build(builder().max_items(0));
    assert_eq!(err, BuildError::ZeroMaxItems);
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::max_items must be at least 1: ")
    );

    let err = build(builder().max_items(10).max_delay(Duration::ZERO));
    assert_eq!(err, BuildError::ZeroMaxDelay { max_items: 10 });
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::max_delay is 0 with max_items = 10: ")
    );
    // With one item per batch there is nothing to wait for: zero is fine.
    assert!(
        builder()
            .max_items(1)
            .max_delay(Duration::ZERO)
            .build(|_: Vec<u32>| ready(Ok(())))
            .is_ok()
    );

    let err = build(builder().max_delay(SECOND).deadline_margin(2 * SECOND));
    assert_eq!(
        err,
        BuildError::MarginExceedsMaxDelay {
            margin: 2 * SECOND,
            max_delay: SECOND
        }
    );
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::deadline_margin (2s) is longer than max_delay (1s): ")
    );
    // Durations are written as they are configured.
    let err = build(builder().max_delay(300 * MS).deadline_margin(1500 * MS));
    assert!(
        err.to_string().starts_with(
            "BatcherBuilder::deadline_margin (1.5s) is longer than max_delay (300ms): "
        ),
        "{err}"
    );

    let err = build(builder().max_in_flight(0));
    assert_eq!(err, BuildError::ZeroMaxInFlight);
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::max_in_flight must be at least 1: ")
    );
    let err = build(builder().max_items(10).capacity(5));
    assert_eq!(
        err,
        BuildError::CapacityBelowMaxItems {
            capacity: 5,
            max_items: 10
        }
    );
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::capacity (5) is smaller than max_items (10): ")
    );
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = builder().build(|_: Vec<u32>| ready(Ok(()))).unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    assert!(
        err.to_string()
            .starts_with("BatcherBuilder::build must be called within a tokio runtime: ")
    );
}

/// `max_items(usize::MAX)` is no size limit: a batch grows as items come
/// (nothing of that size is reserved) and is flushed by age.
#[tokio::test(start_paused = true)]
async fn a_max_items_of_usize_max_is_no_size_limit() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(usize::MAX)
        .max_delay(SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (SECOND, vec![0, 1, 2]));
}

/// `max_in_flight(usize::MAX)` is no limit on concurrent flushes (nothing of
/// that size is allocated): every batch runs at once.
#[tokio::test(start_paused = true)]
async fn a_max_in_flight_of_usize_max_is_no_limit() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(1)
        .max_in_flight(usize::MAX)
        .build(flush)
        .unwrap();
    for n in 0..5 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    assert_eq!(batcher.in_flight(), 5);
    for _ in 0..5 {
        let (_, gate) = started.try_recv().unwrap();
        gate.send(Ok(())).unwrap();
    }
    let report = batcher.shutdown(SECOND).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.flushed_batches(), 5);
}
