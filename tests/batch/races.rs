//! Pushes, flushes and shutdowns racing on multi-thread runtimes, for enough
//! rounds that a lost item, a double count or a lost wake shows. Real
//! threads by nature: these are races.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::batch::{Batcher, FlushError};

use super::{MS, SECOND, multi_thread};

/// With several flush slots on a multi-thread runtime, the flush function is
/// still called in batch order: workers take their batches under the lock
/// but call the function outside it, each in its turn.
#[test]
fn the_flush_function_is_called_in_batch_order_on_a_multi_thread_runtime() {
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
            let report = batcher.shutdown(30 * SECOND).await;
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
                .max_delay(MS)
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
                            batcher.try_push(item).map_err(|e| e.into_inner())
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
            let report = batcher.shutdown(10 * SECOND).await;
            let mut back = Vec::new();
            for pusher in pushers {
                back.extend(pusher.await.unwrap());
            }
            let flushed = flushed.lock().unwrap();
            let mut seen = HashSet::new();
            for item in flushed
                .iter()
                .chain(report.unflushed().iter())
                .chain(back.iter())
            {
                assert!(seen.insert(*item), "item {item} seen twice");
            }
            assert_eq!(seen.len(), 600, "items lost");
            assert_eq!(report.accepted() as usize, accepted.load(Ordering::SeqCst));
            assert_eq!(report.flushed_items() as usize, flushed.len());
        }
    });
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
                .max_delay(MS)
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
            let bound = 5 * SECOND;
            let first = tokio::time::timeout(bound, batcher.shutdown(SECOND))
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
                .chain(first.unflushed())
                .chain(second.unflushed())
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
            // Each item seen is one of the 300 pushed, once (checked above).
            assert!(
                300 - seen <= abandoned,
                "items lost: {seen} seen, {abandoned} abandoned"
            );
        }
    });
}

/// A shutdown whose last flush ends on another thread is woken by it, and
/// returns long before its grace. On real threads, because the race between
/// that wake and the shutdown's look at the state needs them; many rounds,
/// because it is a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_as_soon_as_the_last_flush_ends_on_real_threads() {
    for round in 0..100u32 {
        let batcher = Batcher::builder()
            .max_items(10)
            .max_delay(200 * MS)
            .build(|items: Vec<u32>| async move {
                tokio::task::yield_now().await;
                drop(items);
                Ok::<(), FlushError<u32, String>>(())
            })
            .unwrap();
        batcher.push(round).await.unwrap();
        let started = std::time::Instant::now();
        let report = batcher.shutdown(5 * SECOND).await;
        let took = started.elapsed();
        assert!(report.is_complete(), "round {round}: {report}");
        assert!(took < SECOND, "round {round}: shutdown took {took:?}");
    }
}

/// Shutdown returns at its grace on a multi-thread runtime while every flush
/// slot is stuck in a flush that blocks its thread (never yields) and a
/// runtime worker is still free. The flush blocks for real: that is the
/// point, so `std::thread::sleep` is used.
#[test]
fn shutdown_returns_in_time_while_flushes_block_their_threads() {
    let runtime = multi_thread(3);
    let grace = 100 * MS;
    let elapsed = runtime.block_on(async {
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let batcher = Batcher::builder()
            .max_items(1)
            .max_delay(Duration::ZERO)
            .max_in_flight(2)
            .build(move |_: Vec<u32>| {
                let started = started.clone();
                async move {
                    // The test may have stopped listening (it failed).
                    let _ = started.send(());
                    // Real blocking is the point: a flush that holds its worker
                    // thread (2 s, far past the grace) must not keep shutdown
                    // from returning.
                    std::thread::sleep(2 * SECOND);
                    Ok::<(), FlushError<u32, String>>(())
                }
            })
            .unwrap();
        for n in 0..4 {
            batcher.push(n).await.unwrap();
        }
        for _ in 0..2 {
            starts.recv().await.unwrap();
        }
        let start = std::time::Instant::now();
        let report = batcher.shutdown(grace).await;
        assert_eq!(report.abandoned_items(), 2, "{report:?}");
        assert_eq!(report.unflushed(), [2, 3]);
        start.elapsed()
    });
    assert!(
        elapsed >= grace && elapsed < grace + 900 * MS,
        "shutdown({grace:?}) took {elapsed:?}"
    );
    runtime.shutdown_background();
}
