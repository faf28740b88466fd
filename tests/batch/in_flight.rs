//! `max_in_flight` bounds the flushes running at once, and batches wait for
//! a slot in order; `capacity` bounds the items waiting, beyond which `push`
//! waits and `try_push` hands the item back.

use std::time::Duration;

use hangfree::batch::{Batcher, FlushError};
use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};

use super::{SECOND, builder, gated, recording, settle};

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
    let report = batcher.shutdown(SECOND).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.flushed_batches(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_batch_due_while_all_slots_are_busy_keeps_filling_and_goes_next() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(3)
        .max_delay(SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    for n in 0..3 {
        batcher.push(n).await.unwrap();
    }
    settle().await;
    let (_, gate) = started.try_recv().unwrap();
    batcher.push(3).await.unwrap();
    advance(2 * SECOND).await; // [3] is due, but the only slot is busy
    settle().await;
    assert!(started.try_recv().is_err());
    batcher.push(4).await.unwrap(); // still joins [3]
    gate.send(Ok(())).unwrap();
    settle().await;
    let (items, gate) = started.try_recv().unwrap();
    assert_eq!(items, [3, 4]);
    assert_eq!(Instant::now() - start, 2 * SECOND);
    gate.send(Ok(())).unwrap();
    assert!(batcher.shutdown(SECOND).await.is_complete());
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
    let refused = batcher.try_push(6).unwrap_err();
    assert!(refused.is_full(), "{refused:?}");
    assert_eq!(refused.into_inner(), 6);
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
    assert_eq!(assert_ready!(blocked.poll()).unwrap_err().into_inner(), 8);
    assert_eq!(report.abandoned_items(), 2); // [2, 3] was running
    assert_eq!(report.unflushed(), [4, 5, 6, 7]);
    drop(started);
}

/// A push waiting for room behind a flush that never ends is woken by
/// shutdown, at once, and hands its item back; the batches already accepted
/// are handed back or reported abandoned.
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
    let refused = batcher.try_push(5).unwrap_err();
    assert!(refused.is_full(), "{refused:?}");
    assert_eq!(refused.into_inner(), 5);
    let mut shutdown = task::spawn(batcher.shutdown(SECOND));
    assert_pending!(shutdown.poll());
    assert!(waiting.is_woken());
    assert_eq!(assert_ready!(waiting.poll()).unwrap_err().into_inner(), 4);
    advance(SECOND).await;
    let report = assert_ready!(shutdown.poll());
    assert_eq!(report.unflushed(), [2, 3]);
    assert_eq!(report.abandoned_items(), 2);
    assert_eq!(report.accepted(), 4);
}

/// A push given up on while it waits for room (polled through `&mut`, as in a
/// `select!`) gives its item back, and the batcher never counts it; a push that
/// completed, accepted or refused, has nothing left to give back.
#[tokio::test(start_paused = true)]
async fn a_push_given_up_on_while_waiting_for_room_gives_its_item_back() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(1)
        .capacity(1)
        .max_in_flight(1)
        .build(flush)
        .unwrap();
    let mut accepted = batcher.push(0);
    (&mut accepted).await.unwrap();
    assert_eq!(accepted.into_item(), None, "accepted: nothing to give back");
    batcher.push(1).await.unwrap();
    settle().await;
    let (_, first) = started.try_recv().unwrap(); // [0] flushing, [1] waiting: no room
    let mut waiting = batcher.push(2);
    let mut polled = task::spawn(&mut waiting);
    assert_pending!(polled.poll());
    drop(polled);
    assert_eq!(waiting.into_item(), Some(2));
    assert_eq!(batcher.pending(), 1);

    first.send(Ok(())).unwrap();
    settle().await;
    let (_, second) = started.try_recv().unwrap();
    second.send(Ok(())).unwrap();
    let report = batcher.shutdown(SECOND).await;
    assert_eq!(report.accepted(), 2);
    assert_eq!(report.flushed_items(), 2);
    let mut refused = batcher.push(3);
    let error = (&mut refused).await.unwrap_err();
    assert_eq!(
        refused.into_item(),
        None,
        "refused: the item is in the error"
    );
    assert_eq!(error.into_inner(), 3);
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
