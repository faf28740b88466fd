//! Ending batches on request: `shutdown` flushes what is pending within its
//! grace, hands back what never started and reports what it abandoned;
//! `flush` waits for what was sealed; the last handle closes the batcher; and
//! no task outlives it.

use std::future::pending;
use std::time::Duration;

use hangfree::batch::{BatchReport, Batcher, FlushError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};

use super::{FlushResult, SECOND, builder, gated, recording, settle};

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_everything_pending_and_waits_for_running_flushes() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_items(10)
        .max_delay(60 * SECOND)
        .max_in_flight(2)
        .build(move |items: Vec<u32>| {
            tx.send(items).unwrap();
            async {
                tokio::time::sleep(2 * SECOND).await;
                Ok(())
            }
        })
        .unwrap();
    for n in 0..25 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(10 * SECOND).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!((report.accepted(), report.flushed_items()), (25, 25));
    assert_eq!(report.flushed_batches(), 3);
    // Two batches at once, then the third: 2 s + 2 s, not 60 s.
    assert_eq!(report.elapsed(), 4 * SECOND);
    let mut all = Vec::new();
    while let Ok(items) = flushed.try_recv() {
        all.extend(items);
    }
    assert_eq!(all, (0..25).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_at_grace_with_running_flushes_abandoned_and_the_rest_handed_back() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(2)
        .max_in_flight(1)
        .build(flush)
        .unwrap();
    for n in 0..5 {
        batcher.push(n).await.unwrap();
    }
    let start = Instant::now();
    let report = batcher.shutdown(3 * SECOND).await;
    assert_eq!(Instant::now() - start, 3 * SECOND);
    assert_eq!(report.elapsed(), 3 * SECOND);
    assert_eq!(report.abandoned().len(), 1);
    assert_eq!(report.abandoned()[0].batch(), 0);
    assert_eq!(report.abandoned()[0].items(), 2);
    assert_eq!(report.abandoned()[0].running_for(), 3 * SECOND);
    assert_eq!(report.unflushed(), [2, 3, 4]);
    assert_eq!(report.accepted(), 5);
    assert_eq!(report.unknown_items(), 2);
    let text = report.to_string();
    assert!(
        text.contains("3 items never flushed (handed back)"),
        "{text}"
    );
    assert!(text.contains("outcome unknown"), "{text}");

    // The abandoned flush was dropped: its gate's receiver is gone.
    let (_, gate) = started.try_recv().unwrap();
    settle().await;
    assert!(gate.is_closed());
    assert!(
        started.try_recv().is_err(),
        "a batch started after shutdown"
    );

    assert_eq!(batcher.push(9).await.unwrap_err().into_inner(), 9);
    assert_eq!(batcher.push_by(9, start).await.unwrap_err().into_inner(), 9);
    let refused = batcher.try_push(9).unwrap_err();
    assert!(refused.is_closed(), "{refused:?}");
    assert_eq!(refused.into_inner(), 9);
    assert!(batcher.is_closed());
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_pending_returns_at_once() {
    let (flush, _flushed) = recording();
    let batcher = builder().build(flush).unwrap();
    let report: BatchReport<u32> = batcher.shutdown(10 * SECOND).await;
    assert_eq!(report.elapsed(), Duration::ZERO);
    assert!(report.is_complete());
    assert_eq!(report.accepted(), 0);
}

/// A flush that shutdown gave up on is reported once, as abandoned (outcome
/// unknown), even if it fails just after: a second `shutdown` has nothing
/// left to hand back, and does not report its items again as failed.
#[tokio::test(start_paused = true)]
async fn a_flush_reported_abandoned_is_not_later_reported_failed_too() {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let batcher = Batcher::builder()
        .max_items(2)
        .build(move |items: Vec<u32>| {
            let (gate, opened) = oneshot::channel::<()>();
            tx.send(gate).unwrap();
            async move {
                let _ = opened.await;
                Err(FlushError::new(items, "sink down".to_string()))
            }
        })
        .unwrap();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    let gate = rx.recv().await.unwrap();
    settle().await;
    let mut shutdown = task::spawn(batcher.shutdown(SECOND));
    assert_pending!(shutdown.poll());
    advance(SECOND).await;
    let first = assert_ready!(shutdown.poll());
    drop(shutdown);
    assert_eq!(first.abandoned_items(), 2);
    assert!(first.failed().is_empty());
    // The sink answers just as the grace period ran out: the flush fails
    // and hands both items back, after the report was taken.
    gate.send(()).unwrap();
    settle().await;
    let second = batcher.shutdown(SECOND).await;
    let failed_again: Vec<u32> = second
        .failed()
        .iter()
        .flat_map(|f| f.items().to_vec())
        .collect();
    assert!(
        failed_again.is_empty(),
        "items reported abandoned were later reported failed too: {failed_again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn flush_closes_the_open_batch_and_waits_for_it() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_delay(60 * SECOND)
        .build(move |items: Vec<u32>| {
            tx.send(items).unwrap();
            async {
                tokio::time::sleep(SECOND).await;
                Ok(())
            }
        })
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    // Bounded, so that a lost wake-up fails the test instead of hanging it.
    tokio::time::timeout(60 * SECOND, batcher.flush())
        .await
        .expect("flush() was never woken");
    assert_eq!(Instant::now() - start, SECOND);
    assert_eq!(flushed.try_recv().unwrap(), [1, 2]);
    assert_eq!(batcher.pending(), 0);
    batcher.flush().await; // nothing pending: returns at once
    assert_eq!(Instant::now() - start, SECOND);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_flushes_what_is_pending() {
    let (flush, mut flushed) = recording();
    let batcher = builder().max_delay(60 * SECOND).build(flush).unwrap();
    let other = batcher.clone();
    batcher.push(1).await.unwrap();
    other.push(2).await.unwrap();
    let start = Instant::now();
    drop(batcher);
    settle().await;
    assert!(flushed.try_recv().is_err(), "one handle is still alive");
    drop(other);
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (Duration::ZERO, vec![1, 2]));
}

/// No task outlives the batcher: the timer driver and the parked flush
/// workers exit on shutdown (here), when the last handle is dropped, and
/// after abandoned flushes are dropped (below).
#[tokio::test(start_paused = true)]
async fn no_task_outlives_a_shut_down_batcher() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (flush, _flushed) = recording();
    let batcher = builder()
        .max_items(2)
        .max_in_flight(3)
        .build(flush)
        .unwrap();
    for n in 0..7 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    // The driver, and the workers parked after flushing [0, 1] .. [4, 5].
    assert_eq!(metrics.num_alive_tasks(), 4);
    let report = batcher.shutdown(SECOND).await;
    assert!(report.is_complete(), "{report}");
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_task_outlives_the_last_handle() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (flush, mut flushed) = recording();
    let batcher = builder().max_items(2).build(flush).unwrap();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    drop(batcher);
    settle().await;
    assert_eq!(flushed.recv().await.unwrap().1, [0, 1]);
    assert_eq!(flushed.recv().await.unwrap().1, [2]);
    assert_eq!(metrics.num_alive_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn no_task_outlives_abandoned_flushes() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let batcher = builder()
        .max_items(1)
        .max_in_flight(2)
        .build(|_: Vec<u32>| pending::<FlushResult>())
        .unwrap();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    assert_eq!(batcher.in_flight(), 2);
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(report.abandoned_items(), 2);
    assert_eq!(report.unflushed(), [2]);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), 0);
}

#[test]
fn a_batcher_outliving_its_runtime_drops_without_panicking() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let batcher = runtime.block_on(async {
        let batcher = builder()
            .max_items(1)
            .build(|_: Vec<u32>| pending::<FlushResult>())
            .unwrap();
        batcher.push(1).await.unwrap(); // will be flushing when the runtime goes
        batcher.push(2).await.unwrap();
        settle().await;
        assert_eq!(batcher.in_flight(), 1);
        batcher
    });
    drop(runtime); // drops the driver and the worker mid-flush
    assert_eq!(
        batcher.in_flight(),
        0,
        "the dropped worker gave its slot back"
    );
    // The slot is free again, so this push claims a worker: spawning it on
    // the dead runtime must not panic.
    batcher.try_push(3).unwrap();
    drop(batcher); // closes; spawning on the dead runtime must not panic
}
