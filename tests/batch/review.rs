//! Adversarial review of `batch`: each test here states a promise of the
//! module; the ones that fail show a defect (see the review report).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::batch::{Batcher, FlushError, TryPushError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready, task};

const SEC: Duration = Duration::from_secs(1);

use super::settle;

/// A multi-thread runtime with `workers` threads, for the races below.
fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A flush abandoned by shutdown whose future completes with an error in the
/// same poll that sees the abandonment: the worker polls the flush before the
/// abandon token, so the items it hands back are pushed into `State::failed`
/// after `finalize` took that list. The first report counts them as abandoned
/// (outcome unknown); a second `shutdown`, documented as having "nothing left
/// to hand back", reports the same items again as failed (and until then they
/// sit in the batcher, or are dropped with it unreported).
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
    let mut shutdown = task::spawn(batcher.shutdown(SEC));
    assert_pending!(shutdown.poll());
    advance(SEC).await;
    let first = assert_ready!(shutdown.poll());
    drop(shutdown);
    assert_eq!(first.abandoned_items(), 2);
    assert!(first.failed.is_empty());
    // The sink answers just as the grace period ran out: the flush fails
    // and hands both items back, after the report was taken.
    gate.send(()).unwrap();
    settle().await;
    let second = batcher.shutdown(SEC).await;
    let failed_again: Vec<u32> = second.failed.iter().flat_map(|f| f.items.clone()).collect();
    assert!(
        failed_again.is_empty(),
        "items reported abandoned were later reported failed too: {failed_again:?}"
    );
}

/// `FlushError::items` is trusted: a flush that hands back more items than it
/// was given makes `failed_items` exceed what the batch held, and the report no
/// longer adds up to `accepted`.
#[tokio::test(start_paused = true)]
async fn report_adds_up_when_a_flush_hands_back_more_items_than_it_got() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|mut items: Vec<u32>| async move {
            items.push(99); // a sink that returns a stale item too
            Err(FlushError::new(items, "sink down".to_string()))
        })
        .unwrap();
    batcher.push(1).await.unwrap();
    batcher.push(2).await.unwrap();
    let report = batcher.shutdown(SEC).await;
    let accounted = report.flushed_items
        + report.failed_items
        + report.unflushed.len() as u64
        + report.abandoned_items()
        + report.panicked_items;
    assert_eq!(report.accepted, 2);
    assert_eq!(accounted, report.accepted, "{report:?}");
}

/// `is_complete` says "nothing failed", yet a failed flush that hands back no
/// items (it could not tell which) leaves it `true`.
#[tokio::test(start_paused = true)]
async fn a_report_with_a_failed_flush_is_not_complete() {
    let batcher = Batcher::builder()
        .max_items(1)
        .build(
            |_: Vec<u32>| async move { Err(FlushError::new(Vec::new(), "sink down".to_string())) },
        )
        .unwrap();
    batcher.push(1).await.unwrap();
    let report = batcher.shutdown(SEC).await;
    assert_eq!(report.failed_batches, 1);
    assert!(!report.is_complete(), "{report:?}");
}

/// "Batches are started in order": on a multi-thread runtime the flush
/// function of a later batch can be called before that of an earlier one,
/// because a worker takes its batch under the lock but calls the flush
/// function after releasing it.
#[test]
fn batches_are_started_in_order_on_a_multi_thread_runtime() {
    let runtime = multi_thread(4);
    runtime.block_on(async {
        for _round in 0..50 {
            let started = Arc::new(Mutex::new(Vec::new()));
            let batcher = Batcher::builder()
                .max_items(1)
                .max_delay(Duration::ZERO)
                .max_in_flight(4)
                .capacity(10_000)
                .build({
                    let started = started.clone();
                    move |items: Vec<u32>| {
                        started.lock().unwrap().push(items[0]);
                        async move {
                            tokio::task::yield_now().await;
                            Ok::<(), FlushError<u32, String>>(())
                        }
                    }
                })
                .unwrap();
            for n in 0..2_000 {
                batcher.push(n).await.unwrap();
            }
            let report = batcher.shutdown(Duration::from_secs(30)).await;
            assert!(report.is_complete(), "{report:?}");
            let started = started.lock().unwrap();
            let out_of_order = started.windows(2).filter(|w| w[0] > w[1]).count();
            assert_eq!(out_of_order, 0, "batches started out of order");
        }
    });
}

/// Pushers racing shutdown on a multi-thread runtime: every item accepted is
/// flushed exactly once or handed back; every rejected item comes back.
#[test]
fn pushes_racing_shutdown_lose_nothing_and_flush_nothing_twice() {
    let runtime = multi_thread(3);
    runtime.block_on(async {
        for round in 0..200u32 {
            let flushed = Arc::new(Mutex::new(Vec::new()));
            let batcher = Batcher::builder()
                .max_items(7)
                .max_delay(Duration::from_millis(1))
                .max_in_flight(2)
                .capacity(20)
                .build({
                    let flushed = flushed.clone();
                    move |items: Vec<u32>| {
                        flushed.lock().unwrap().extend(items);
                        async { Ok::<(), FlushError<u32, String>>(()) }
                    }
                })
                .unwrap();
            let accepted = Arc::new(AtomicUsize::new(0));
            let mut pushers = Vec::new();
            for p in 0..3u32 {
                let batcher = batcher.clone();
                let accepted = accepted.clone();
                pushers.push(tokio::spawn(async move {
                    let mut back = Vec::new();
                    for i in 0..200u32 {
                        let item = p * 1000 + i;
                        let result = if i % 2 == 0 {
                            batcher.push(item).await.map_err(|e| e.into_inner())
                        } else {
                            batcher.try_push(item).map_err(|e| match e {
                                TryPushError::Full(item) | TryPushError::Closed(item) => item,
                            })
                        };
                        match result {
                            Ok(()) => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(item) => back.push(item),
                        }
                    }
                    back
                }));
            }
            tokio::time::sleep(Duration::from_micros(u64::from(round % 7) * 50)).await;
            let report = batcher.shutdown(Duration::from_secs(10)).await;
            let mut back = Vec::new();
            for pusher in pushers {
                back.extend(pusher.await.unwrap());
            }
            let flushed = flushed.lock().unwrap();
            let mut seen = HashSet::new();
            for item in flushed
                .iter()
                .chain(report.unflushed.iter())
                .chain(back.iter())
            {
                assert!(seen.insert(*item), "item {item} seen twice");
            }
            assert_eq!(seen.len(), 600, "items lost");
            assert_eq!(report.accepted as usize, accepted.load(Ordering::SeqCst));
            assert_eq!(report.flushed_items as usize, flushed.len());
        }
    });
}

/// A push waiting for room, while the only flush slot is busy, is woken when
/// the batch ahead of it starts, and is handed its item back at shutdown.
#[tokio::test(start_paused = true)]
async fn a_push_waiting_for_room_gets_its_item_back_at_shutdown() {
    let batcher = Batcher::builder()
        .max_items(2)
        .capacity(2)
        .max_in_flight(1)
        .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
        .unwrap();
    for n in 0..4 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    let mut waiting = task::spawn(batcher.push(4));
    assert_pending!(waiting.poll());
    assert!(matches!(batcher.try_push(5), Err(TryPushError::Full(5))));
    let mut shutdown = task::spawn(batcher.shutdown(SEC));
    assert_pending!(shutdown.poll());
    assert!(waiting.is_woken());
    assert_eq!(assert_ready!(waiting.poll()).unwrap_err().into_inner(), 4);
    advance(SEC).await;
    let report = assert_ready!(shutdown.poll());
    assert_eq!(report.unflushed, [2, 3]);
    assert_eq!(report.abandoned_items(), 2);
    assert_eq!(report.accepted, 4);
}

/// Bad input gets an error, never a panic: `max_items(usize::MAX)` builds,
/// then the first push panics in `insert_slow`'s
/// `open.reserve_exact(max_items)` ("capacity overflow").
#[tokio::test(start_paused = true)]
async fn a_huge_max_items_is_rejected_or_works_but_never_panics() {
    let built = Batcher::builder()
        .max_items(usize::MAX)
        .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) });
    if let Ok(batcher) = built {
        let pushed = tokio::spawn(async move {
            batcher.push(1).await.unwrap();
            batcher.shutdown(SEC).await.flushed_items
        })
        .await;
        assert_eq!(pushed.expect("push panicked in library code"), 1);
    }
}

/// Same for `max_in_flight(usize::MAX)`: `Shared::new` does
/// `Vec::with_capacity(max_in_flight)` for the slots.
#[tokio::test(start_paused = true)]
async fn a_huge_max_in_flight_is_rejected_or_works_but_never_panics() {
    let built = tokio::spawn(async {
        Batcher::builder()
            .max_in_flight(usize::MAX)
            .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
            .map(drop)
    })
    .await;
    assert!(built.is_ok(), "build panicked in library code");
}

/// Shutdown returns within grace plus a small bound on a multi-thread
/// runtime when every flush slot is stuck in a flush that blocks its thread
/// (never yields) and a runtime worker is still free. The flush blocks for
/// real: that is the point, so `std::thread::sleep` is used.
#[test]
fn shutdown_returns_in_time_while_flushes_block_their_threads() {
    let runtime = multi_thread(3);
    let elapsed = runtime.block_on(async {
        let batcher = Batcher::builder()
            .max_items(1)
            .max_delay(Duration::ZERO)
            .max_in_flight(2)
            .build(|_: Vec<u32>| async {
                // Real blocking is the point: a flush that holds its worker thread
                // (2 s, far past the grace) must not keep shutdown from returning.
                std::thread::sleep(Duration::from_secs(2));
                Ok::<(), FlushError<u32, String>>(())
            })
            .unwrap();
        for n in 0..4 {
            batcher.push(n).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = std::time::Instant::now();
        let report = batcher.shutdown(Duration::from_millis(100)).await;
        assert_eq!(report.abandoned_items(), 2, "{report:?}");
        assert_eq!(report.unflushed, [2, 3]);
        start.elapsed()
    });
    assert!(
        elapsed < Duration::from_millis(1_000),
        "shutdown took {elapsed:?}"
    );
    runtime.shutdown_background();
}

/// `flush()` and two `shutdown`s racing each other and the pushers on a
/// multi-thread runtime: nothing waits past the grace bound, nothing is
/// handed back twice, nothing is lost.
#[test]
fn flush_and_two_shutdowns_racing_neither_hang_nor_lose_items() {
    let runtime = multi_thread(3);
    runtime.block_on(async {
        for round in 0..200u64 {
            let flushed = Arc::new(Mutex::new(Vec::new()));
            let batcher = Batcher::builder()
                .max_items(5)
                .max_delay(Duration::from_millis(1))
                .max_in_flight(2)
                .build({
                    let flushed = flushed.clone();
                    move |items: Vec<u32>| {
                        let flushed = flushed.clone();
                        async move {
                            tokio::task::yield_now().await;
                            flushed.lock().unwrap().extend(items);
                            Ok::<(), FlushError<u32, String>>(())
                        }
                    }
                })
                .unwrap();
            let pusher = {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    let mut back = Vec::new();
                    for i in 0..300u32 {
                        if let Err(e) = batcher.push(i).await {
                            back.push(e.into_inner());
                        }
                    }
                    back
                })
            };
            let flusher = {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        batcher.flush().await;
                    }
                })
            };
            tokio::time::sleep(Duration::from_micros(round % 5 * 40)).await;
            let other = {
                let batcher = batcher.clone();
                tokio::spawn(
                    async move { batcher.shutdown(Duration::from_millis(round % 3)).await },
                )
            };
            let bound = Duration::from_secs(5);
            let first = tokio::time::timeout(bound, batcher.shutdown(Duration::from_secs(1)))
                .await
                .expect("shutdown hung");
            let second = tokio::time::timeout(bound, other)
                .await
                .expect("shutdown hung")
                .unwrap();
            tokio::time::timeout(bound, flusher)
                .await
                .expect("flush hung")
                .unwrap();
            let back = pusher.await.unwrap();
            let flushed = flushed.lock().unwrap();
            let mut seen = HashSet::new();
            for item in flushed
                .iter()
                .chain(&first.unflushed)
                .chain(&second.unflushed)
                .chain(&back)
            {
                assert!(seen.insert(*item), "item {item} seen twice");
            }
            // Every item is flushed, handed back or refused exactly once (above), or
            // sits in a flush a report gave up on. Such a flush's outcome is unknown by
            // definition: it may still have completed (its items then also appear in
            // `flushed`), so abandoned items cover the missing ones rather than add to
            // them.
            let abandoned = first.abandoned_items() + second.abandoned_items();
            let seen = seen.len() as u64;
            assert!(seen <= 300, "{seen} items seen of 300");
            assert!(
                300 - seen <= abandoned,
                "items lost: {seen} seen, {abandoned} abandoned"
            );
        }
    });
}
