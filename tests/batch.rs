//! `Batcher` under tokio's paused clock: every timing below is exact.

use std::future::{Future, Ready, pending, ready};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::batch::{
    BatchReport, Batcher, BatcherBuilder, BuildError, FlushError, PushError, TryPushError,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

type Flushed = mpsc::UnboundedReceiver<(Instant, Vec<u32>)>;
type FlushResult = Result<(), FlushError<u32, String>>;

/// A flush that succeeds at once and reports when it was called, with what.
fn recording() -> (
    impl Fn(Vec<u32>) -> Ready<FlushResult> + Send + Sync + 'static,
    Flushed,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let flush = move |items: Vec<u32>| {
        tx.send((Instant::now(), items)).unwrap();
        ready(Ok(()))
    };
    (flush, rx)
}

/// A flush that waits until the test releases it: each call sends its items
/// and a gate; sending `Ok`/`Err` through the gate finishes the flush.
type Gate = oneshot::Sender<Result<(), String>>;
type GatedFlush = std::pin::Pin<Box<dyn Future<Output = FlushResult> + Send>>;
type Started = mpsc::UnboundedReceiver<(Vec<u32>, Gate)>;
fn gated() -> (
    impl Fn(Vec<u32>) -> GatedFlush + Send + Sync + 'static,
    Started,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let flush = move |items: Vec<u32>| {
        let (gate, opened) = oneshot::channel();
        tx.send((items.clone(), gate)).unwrap();
        Box::pin(async move {
            match opened.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(FlushError::new(items, error)),
                Err(_) => pending().await,
            }
        }) as GatedFlush
    };
    (flush, rx)
}

/// Lets every spawned task run until it waits, without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn builder() -> BatcherBuilder<u32, String> {
    Batcher::builder()
}

// 1. Low load.
#[tokio::test(start_paused = true)]
async fn one_push_is_flushed_exactly_max_delay_later() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(100)
        .max_delay(5 * SEC)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();

    advance(5 * SEC - MS).await;
    settle().await;
    assert!(flushed.try_recv().is_err(), "flushed before max_delay");

    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!(at - start, 5 * SEC);
    assert_eq!(items, [1]);
    assert!(flushed.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn age_counts_from_the_oldest_item_of_each_batch() {
    let (flush, mut flushed) = recording();
    let batcher = builder().max_delay(5 * SEC).build(flush).unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    advance(3 * SEC).await;
    batcher.push(2).await.unwrap(); // joins the batch: does not extend it
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (5 * SEC, vec![1, 2]));

    advance(SEC).await;
    batcher.push(3).await.unwrap(); // opens the next batch at 6 s
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (11 * SEC, vec![3]));
}

// 2. High load.
#[tokio::test(start_paused = true)]
async fn burst_of_250_flushes_100_and_100_at_once_and_50_after_max_delay() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(100)
        .max_delay(5 * SEC)
        .capacity(1000)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    for n in 0..250 {
        batcher.push(n).await.unwrap();
    }
    let mut batches = Vec::new();
    for _ in 0..3 {
        let (at, items) = flushed.recv().await.unwrap();
        batches.push((at - start, items));
    }
    assert_eq!(batches[0], (Duration::ZERO, (0..100).collect::<Vec<_>>()));
    assert_eq!(batches[1], (Duration::ZERO, (100..200).collect::<Vec<_>>()));
    assert_eq!(batches[2], (5 * SEC, (200..250).collect::<Vec<_>>()));
}

// 3. Deadlines.
#[tokio::test(start_paused = true)]
async fn push_by_flushes_the_batch_at_deadline_minus_margin() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SEC)
        .deadline_margin(SEC)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap(); // due at 5 s by age
    advance(500 * MS).await;
    // A lock expiring at 2.5 s pulls the whole batch forward to 1.5 s.
    batcher.push_by(2, start + 2500 * MS).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (1500 * MS, vec![1, 2]));
}

#[tokio::test(start_paused = true)]
async fn a_later_deadline_does_not_delay_past_max_delay() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SEC)
        .deadline_margin(SEC)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 60 * SEC).await.unwrap();
    let (at, _) = flushed.recv().await.unwrap();
    assert_eq!(at - start, 5 * SEC);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_inside_the_margin_flushes_at_once() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SEC)
        .deadline_margin(2 * SEC)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + SEC).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (Duration::ZERO, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn the_earliest_of_several_deadlines_wins() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(10 * SEC)
        .deadline_margin(SEC)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 8 * SEC).await.unwrap();
    batcher.push_by(2, start + 4 * SEC).await.unwrap();
    batcher.push_by(3, start + 6 * SEC).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (3 * SEC, vec![1, 2, 3]));
}

// 4. Concurrency and capacity.
#[tokio::test(start_paused = true)]
async fn max_in_flight_bounds_concurrent_flushes_and_batches_wait_in_order() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(2)
        .max_in_flight(2)
        .build(flush)
        .unwrap();
    for n in 0..8 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    let (first, first_gate) = started.try_recv().unwrap();
    let (second, second_gate) = started.try_recv().unwrap();
    assert_eq!((first, second), (vec![0, 1], vec![2, 3]));
    assert!(started.try_recv().is_err(), "a third flush ran");
    assert_eq!((batcher.in_flight(), batcher.pending()), (2, 4));

    // Whichever slot frees first takes the oldest waiting batch.
    second_gate.send(Ok(())).unwrap();
    settle().await;
    let (third, third_gate) = started.try_recv().unwrap();
    assert_eq!(third, [4, 5]);
    assert!(started.try_recv().is_err());

    first_gate.send(Ok(())).unwrap();
    settle().await;
    let (fourth, fourth_gate) = started.try_recv().unwrap();
    assert_eq!(fourth, [6, 7]);
    assert_eq!((batcher.in_flight(), batcher.pending()), (2, 0));
    third_gate.send(Ok(())).unwrap();
    fourth_gate.send(Ok(())).unwrap();
    let report = batcher.shutdown(SEC).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.flushed_batches, 4);
}

#[tokio::test(start_paused = true)]
async fn a_batch_due_while_all_slots_are_busy_keeps_filling_and_goes_next() {
    let (flush, mut started) = gated();
    let batcher = builder().max_items(3).max_delay(SEC).build(flush).unwrap();
    let start = Instant::now();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    let (_, gate) = started.try_recv().unwrap();
    batcher.push(3).await.unwrap();
    advance(2 * SEC).await; // [3] is due, but the only slot is busy
    settle().await;
    assert!(started.try_recv().is_err());
    batcher.push(4).await.unwrap(); // still joins [3]
    gate.send(Ok(())).unwrap();
    settle().await;
    let (items, gate) = started.try_recv().unwrap();
    assert_eq!(items, [3, 4]);
    assert_eq!(Instant::now() - start, 2 * SEC);
    gate.send(Ok(())).unwrap();
    assert!(batcher.shutdown(SEC).await.is_complete());
}

#[tokio::test(start_paused = true)]
async fn capacity_makes_push_wait_and_try_push_hand_the_item_back() {
    let (flush, mut started) = gated();
    let batcher = builder().max_items(2).capacity(4).build(flush).unwrap();
    for n in 0..2 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    let (_, gate) = started.try_recv().unwrap(); // [0, 1] is flushing
    for n in 2..6 {
        batcher.try_push(n).unwrap(); // [2, 3] and [4, 5] wait: 4 pending
    }
    assert_eq!(batcher.pending(), 4);
    match batcher.try_push(6) {
        Err(TryPushError::Full(item)) => assert_eq!(item, 6),
        other => panic!("expected Full(6), got {other:?}"),
    }
    let mut push = task::spawn(batcher.push(6));
    assert_pending!(push.poll());

    gate.send(Ok(())).unwrap(); // [2, 3] starts: room for 2
    settle().await;
    assert!(push.is_woken());
    assert_ready!(push.poll()).unwrap();
    assert_eq!(batcher.pending(), 3);
    drop(push);

    let mut wanting = task::spawn(batcher.push(7));
    assert_ready!(wanting.poll()).unwrap(); // pending was 3 < 4
    let mut blocked = task::spawn(batcher.push(8));
    assert_pending!(blocked.poll());
    // Shutdown hands a waiting push its item back.
    let mut shutdown = task::spawn(batcher.shutdown(Duration::ZERO));
    let report = assert_ready!(shutdown.poll());
    assert!(blocked.is_woken());
    assert_eq!(assert_ready!(blocked.poll()), Err(PushError(8)));
    assert_eq!(report.abandoned_items(), 2); // [2, 3] was running
    assert_eq!(report.unflushed, [4, 5, 6, 7]);
    drop(started);
}

// 5. Failures.
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
    let report = batcher.shutdown(SEC).await;
    assert_eq!(
        *failures.lock().unwrap(),
        [(vec![2, 3], "server said no".to_string())]
    );
    assert_eq!((report.failed_batches, report.failed_items), (1, 2));
    assert_eq!((report.flushed_batches, report.flushed_items), (2, 4));
    assert!(report.failed.is_empty(), "the hook took them");
    assert_eq!(report.accepted, 6);
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
    let report = batcher.shutdown(SEC).await;
    assert_eq!(report.failed.len(), 2);
    assert_eq!(report.failed[0].items, [0, 1]);
    assert_eq!(report.failed[1].items, [2]);
    assert_eq!(report.failed[1].batch, 1);
    assert_eq!(report.failed[0].error, "connection reset");
    assert_eq!(report.failed_items, 3);
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
    let report = batcher.shutdown(SEC).await;
    assert_eq!((report.flushed_items, report.failed_items), (3, 1));
    assert_eq!(report.failed[0].items, [3]);
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
    let report = batcher.shutdown(SEC).await;
    assert_eq!(flushed.recv().await.unwrap(), [0, 1]);
    assert_eq!(flushed.recv().await.unwrap(), [2, 3]);
    assert_eq!((report.panicked_batches, report.panicked_items), (1, 2));
    assert_eq!(report.flushed_items, 2);
    assert_eq!(report.unknown_items(), 2);
}

// 6. Shutdown.
#[tokio::test(start_paused = true)]
async fn shutdown_flushes_everything_pending_and_waits_for_running_flushes() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_items(10)
        .max_delay(60 * SEC)
        .max_in_flight(2)
        .build(move |items: Vec<u32>| {
            tx.send(items).unwrap();
            async {
                tokio::time::sleep(2 * SEC).await;
                Ok(())
            }
        })
        .unwrap();
    for n in 0..25 {
        batcher.push(n).await.unwrap();
    }
    let report = batcher.shutdown(10 * SEC).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!((report.accepted, report.flushed_items), (25, 25));
    assert_eq!(report.flushed_batches, 3);
    // Two batches at once, then the third: 2 s + 2 s, not 60 s.
    assert_eq!(report.elapsed, 4 * SEC);
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
    let report = batcher.shutdown(3 * SEC).await;
    assert_eq!(Instant::now() - start, 3 * SEC);
    assert_eq!(report.elapsed, 3 * SEC);
    assert_eq!(report.abandoned.len(), 1);
    assert_eq!(report.abandoned[0].batch, 0);
    assert_eq!(report.abandoned[0].items, 2);
    assert_eq!(report.abandoned[0].running_for, 3 * SEC);
    assert_eq!(report.unflushed, [2, 3, 4]);
    assert_eq!(report.accepted, 5);
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

    assert_eq!(batcher.push(9).await, Err(PushError(9)));
    assert_eq!(batcher.push_by(9, start).await, Err(PushError(9)));
    assert!(matches!(batcher.try_push(9), Err(TryPushError::Closed(9))));
    assert!(batcher.is_closed());
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_pending_returns_at_once() {
    let (flush, _flushed) = recording();
    let batcher = builder().build(flush).unwrap();
    let report: BatchReport<u32> = batcher.shutdown(10 * SEC).await;
    assert_eq!(report.elapsed, Duration::ZERO);
    assert!(report.is_complete());
    assert_eq!(report.accepted, 0);
}

#[tokio::test(start_paused = true)]
async fn flush_closes_the_open_batch_and_waits_for_it() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_delay(60 * SEC)
        .build(move |items: Vec<u32>| {
            tx.send(items).unwrap();
            async {
                tokio::time::sleep(SEC).await;
                Ok(())
            }
        })
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    // Bounded, so that a lost wake-up fails the test instead of hanging it.
    tokio::time::timeout(60 * SEC, batcher.flush())
        .await
        .expect("flush() was never woken");
    assert_eq!(Instant::now() - start, SEC);
    assert_eq!(flushed.try_recv().unwrap(), [1, 2]);
    assert_eq!(batcher.pending(), 0);
    batcher.flush().await; // nothing pending: returns at once
    assert_eq!(Instant::now() - start, SEC);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_flushes_what_is_pending() {
    let (flush, mut flushed) = recording();
    let batcher = builder().max_delay(60 * SEC).build(flush).unwrap();
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

// 7. Order.
#[tokio::test(start_paused = true)]
async fn items_keep_push_order_and_batches_start_in_order() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_items(7)
        .max_delay(3 * MS)
        .max_in_flight(3)
        .capacity(20)
        .build(move |items: Vec<u32>| {
            let latency = Duration::from_millis(u64::from(items[0] % 5));
            tx.send(items).unwrap();
            async move {
                tokio::time::sleep(latency).await;
                Ok(())
            }
        })
        .unwrap();
    for n in 0..1000 {
        batcher.push(n).await.unwrap();
        if n % 13 == 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(n % 4))).await;
        }
    }
    let report = batcher.shutdown(SEC).await;
    assert!(report.is_complete(), "{report}");
    let mut all = Vec::new();
    while let Ok(items) = flushed.try_recv() {
        assert!(items.len() <= 7);
        all.extend(items);
    }
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}

// 9. Bad input.
#[tokio::test]
async fn bad_settings_are_rejected_with_a_clear_error() {
    let build = |b: BatcherBuilder<u32, String>| b.build(|_: Vec<u32>| ready(Ok(()))).unwrap_err();

    let err = build(builder().max_items(0));
    assert_eq!(err, BuildError::ZeroMaxItems);
    assert!(err.to_string().contains("max_items is 0"));

    let err = build(builder().max_items(10).max_delay(Duration::ZERO));
    assert_eq!(err, BuildError::ZeroMaxDelay { max_items: 10 });
    assert!(err.to_string().contains("max_delay is 0"));
    // With one item per batch there is nothing to wait for: zero is fine.
    assert!(
        builder()
            .max_items(1)
            .max_delay(Duration::ZERO)
            .build(|_: Vec<u32>| ready(Ok(())))
            .is_ok()
    );

    let err = build(builder().max_delay(SEC).deadline_margin(2 * SEC));
    assert_eq!(
        err,
        BuildError::MarginExceedsMaxDelay {
            margin: 2 * SEC,
            max_delay: SEC
        }
    );
    assert!(
        err.to_string()
            .contains("deadline_margin (2s) is larger than max_delay (1s)")
    );

    assert_eq!(
        build(builder().max_in_flight(0)),
        BuildError::ZeroMaxInFlight
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
            .contains("capacity (5) is smaller than max_items (10)")
    );
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let err = builder().build(|_: Vec<u32>| ready(Ok(()))).unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
    assert!(err.to_string().contains("within a tokio runtime"));
}

#[test]
fn try_push_works_from_a_thread_outside_the_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (flush, mut flushed) = runtime.block_on(async { recording() });
    let batcher = runtime.block_on(async { builder().max_items(2).build(flush).unwrap() });
    let pusher = batcher.clone();
    std::thread::spawn(move || {
        pusher.try_push(1).unwrap();
        pusher.try_push(2).unwrap();
    })
    .join()
    .unwrap();
    let (_, items) = runtime.block_on(flushed.recv()).unwrap();
    assert_eq!(items, [1, 2]);
}

#[test]
fn public_types_are_send_sync_unpin() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    send_sync_unpin::<Batcher<String>>();
    send_sync_unpin::<BatcherBuilder<String, std::io::Error>>();
    send_sync_unpin::<BatchReport<String>>();
    send_sync_unpin::<FlushError<String, std::io::Error>>();
    send_sync_unpin::<PushError<String>>();
    send_sync_unpin::<TryPushError<String>>();
    send_sync_unpin::<BuildError>();
    send_sync_unpin::<hangfree::batch::FailedBatch<String>>();
    send_sync_unpin::<hangfree::batch::AbandonedFlush>();
    send_sync_unpin::<hangfree::batch::Push<'static, String>>();
    // `Push` is `Unpin` even for an item type that is not.
    fn unpin<T: Unpin>() {}
    unpin::<hangfree::batch::Push<'static, std::marker::PhantomPinned>>();

    // The futures producers await must be Send, to be usable in spawned tasks.
    fn send<T: Send>(_: T) {}
    let batcher: Option<Batcher<String>> = None;
    if let Some(batcher) = batcher {
        send(batcher.push(String::new()));
        send(batcher.push_by(String::new(), Instant::now()));
        send(batcher.flush());
        send(batcher.shutdown(SEC));
    }
}

// No task outlives the batcher: the timer driver and the parked flush
// workers exit on shutdown, when the last handle is dropped, and after
// abandoned flushes are dropped.
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
    let report = batcher.shutdown(SEC).await;
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
    let report = batcher.shutdown(SEC).await;
    assert_eq!(report.abandoned_items(), 2);
    assert_eq!(report.unflushed, [2]);
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
    assert!(matches!(
        batcher.try_push(3),
        Ok(()) | Err(TryPushError::Full(3))
    ));
    drop(batcher); // closes; spawning on the dead runtime must not panic
}

// Regression: on a multi-thread runtime, a shutdown whose flushes had all finished could
// miss the wake-up and wait out its whole grace (about 1 shutdown in 7 in an earlier
// version). Under the paused clock that never showed, so this runs on real threads: many
// short shutdowns, each of which must return long before its 5 s grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_as_soon_as_the_last_flush_ends_on_real_threads() {
    for round in 0..100u32 {
        let batcher = Batcher::builder()
            .max_items(10)
            .max_delay(Duration::from_millis(200))
            .build(|items: Vec<u32>| async move {
                tokio::task::yield_now().await;
                drop(items);
                Ok::<(), FlushError<u32, String>>(())
            })
            .unwrap();
        batcher.push(round).await.unwrap();
        let started = std::time::Instant::now();
        let report = batcher.shutdown(Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(report.is_complete(), "round {round}: {report}");
        assert!(
            took < Duration::from_secs(1),
            "round {round}: shutdown took {took:?}"
        );
    }
}

/// Regression tests from an independent review of this module: each one not named
/// "checked" failed on the reviewed code.
#[path = "batch/review.rs"]
mod review;

/// Durations and instants at their edges.
#[path = "batch/limits.rs"]
mod limits;

/// Shutdown while flushes pin every runtime worker.
#[path = "batch/pinned.rs"]
mod pinned;
