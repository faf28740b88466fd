//! A failed flush hands its items and error to the failure hook, or without
//! one to the report; a panicking flush is counted and the batcher goes on;
//! either way the report adds up to what was accepted.

use std::sync::{Arc, Mutex};

use hangfree::batch::{Batcher, FlushError};
use tokio::sync::mpsc;

use super::{SECOND, builder};

#[tokio::test(start_paused = true)]
async fn a_failed_flush_hands_its_items_and_error_to_the_hook() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let batcher = builder()
        .max_items(2)
        .on_failure({
            let failures = Arc::clone(&failures);
            move |failed: FlushError<u32, String>| {
                failures.lock().unwrap().push((failed.items, failed.error));
            }
        })
        .build(|items: Vec<u32>| async move {
            if items.contains(&3) {
                Err(FlushError::new(items, "server said no".to_string()))
            } else {
                Ok(())
            }
        })
        .unwrap();
    for n in 0..6 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(
        *failures.lock().unwrap(),
        [(vec![2, 3], "server said no".to_string())]
    );
    assert_eq!((report.failed_batches(), report.failed_items()), (1, 2));
    assert_eq!((report.flushed_batches(), report.flushed_items()), (2, 4));
    assert!(report.failed().is_empty(), "the hook took them");
    assert_eq!(report.accepted(), 6);
    assert!(!report.is_complete());
}

#[tokio::test(start_paused = true)]
async fn without_a_hook_failed_items_are_kept_for_the_report() {
    let batcher = builder()
        .max_items(2)
        .build(|items: Vec<u32>| async move {
            Err(FlushError::new(items, "connection reset".to_string()))
        })
        .unwrap();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(report.failed().len(), 2);
    assert_eq!(report.failed()[0].items(), [0, 1]);
    assert_eq!(report.failed()[1].items(), [2]);
    assert_eq!(report.failed()[1].batch(), 1);
    assert_eq!(report.failed()[0].error(), "connection reset");
    assert_eq!(report.failed_items(), 3);
    assert!(report.to_string().contains("3 items in 2 failed flushes"));
}

#[tokio::test(start_paused = true)]
async fn a_partial_failure_counts_the_rest_as_flushed() {
    let batcher = builder()
        .max_items(4)
        .build(|mut items: Vec<u32>| async move {
            let rejected = items.split_off(3);
            Err(FlushError::new(rejected, "1 of 4 rejected".to_string()))
        })
        .unwrap();
    for n in 0..4 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(SECOND).await;
    assert_eq!((report.flushed_items(), report.failed_items()), (3, 1));
    assert_eq!(report.failed()[0].items(), [3]);
}

/// The account counts only the batch's own items: a flush that hands back
/// more than it was given (a stale item, a duplicate) cannot make the report
/// add up to more than was accepted.
#[tokio::test(start_paused = true)]
async fn the_report_adds_up_when_a_flush_hands_back_more_items_than_it_got() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|mut items: Vec<u32>| async move {
            items.push(99); // a sink that returns a stale item too
            Err(FlushError::new(items, "sink down".to_string()))
        })
        .unwrap();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    let report = batcher.shutdown(SECOND).await;
    let accounted = report.flushed_items()
        + report.failed_items()
        + report.unflushed().len() as u64
        + report.abandoned_items()
        + report.panicked_items();
    assert_eq!(report.accepted(), 2);
    assert_eq!(accounted, report.accepted(), "{report:?}");
}

/// A failed flush makes the report incomplete even when it hands back no
/// items (it could not tell which).
#[tokio::test(start_paused = true)]
async fn a_failed_flush_that_hands_back_nothing_still_makes_the_report_incomplete() {
    let batcher = Batcher::builder()
        .max_items(1)
        .build(
            |_: Vec<u32>| async move { Err(FlushError::new(Vec::new(), "sink down".to_string())) },
        )
        .unwrap();
    batcher.push(1).await.unwrap();
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(report.failed_batches(), 1);
    assert!(!report.is_complete(), "{report:?}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_flush_is_counted_and_the_batcher_goes_on() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_items(2)
        .build(move |items: Vec<u32>| {
            tx.send(items.clone()).unwrap();
            async move {
                if items[0] == 0 {
                    panic!("flush bug");
                }
                Ok(())
            }
        })
        .unwrap();
    for n in 0..4 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(flushed.recv().await.unwrap(), [0, 1]);
    assert_eq!(flushed.recv().await.unwrap(), [2, 3]);
    assert_eq!((report.panicked_batches(), report.panicked_items()), (1, 2));
    assert_eq!(report.flushed_items(), 2);
    assert_eq!(report.unknown_items(), 2);
}

/// A failure hook can pass the failed flush on with `?` into `anyhow`, for
/// the error types the builder's docs name: `String` and `anyhow::Error`.
#[tokio::test(start_paused = true)]
async fn a_failed_flush_goes_into_anyhow_with_question_mark() {
    fn requeue<E>(failed: FlushError<u32, E>) -> anyhow::Result<()>
    where
        FlushError<u32, E>: std::error::Error + Send + Sync + 'static,
    {
        Err(failed)?
    }
    let messages = Arc::new(Mutex::new(Vec::new()));
    let batcher = Batcher::builder()
        .max_items(2)
        .on_failure({
            let messages = Arc::clone(&messages);
            move |failed: FlushError<u32, anyhow::Error>| {
                let err = requeue(failed).unwrap_err();
                messages.lock().unwrap().push(format!("{err:#}"));
            }
        })
        .build(|items: Vec<u32>| async move {
            Err(FlushError::new(items, anyhow::anyhow!("broker down")))
        })
        .unwrap();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    batcher.shutdown(SECOND).await;
    assert_eq!(
        *messages.lock().unwrap(),
        ["flush failed, 2 items not flushed: broker down"]
    );

    let failed = FlushError::new(vec![3], "connection reset".to_string());
    let err = requeue(failed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flush failed, 1 items not flushed: connection reset"
    );
    // The typed error is still there, behind anyhow.
    let failed = err.downcast::<FlushError<u32, String>>().unwrap();
    assert_eq!(
        (failed.items, failed.error.as_str()),
        (vec![3], "connection reset")
    );
}
