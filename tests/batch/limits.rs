//! Durations and instants at their edges: a margin of zero, a margin longer
//! than the time left or than any instant, a deadline already passed, and
//! `Duration::MAX` wherever the batcher takes a duration. Under the paused
//! clock, so every instant is exact.

use std::time::Duration;

use tokio::time::{Instant, advance};
use tokio_test::{assert_pending, assert_ready, task};

use super::{MS, SECOND, builder, gated, recording, settle};

/// Far past any flush the tests below could expect by age: more than the
/// 30 years tokio treats as "never".
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

#[tokio::test(start_paused = true)]
async fn a_margin_longer_than_any_instant_makes_the_batch_due_at_once() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(10)
        .max_delay(Duration::MAX)
        .deadline_margin(Duration::MAX)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 200 * MS).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (Duration::ZERO, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn a_zero_margin_flushes_at_the_deadline_itself() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SECOND)
        .deadline_margin(Duration::ZERO)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 300 * MS).await.unwrap();
    advance(300 * MS - MS).await;
    settle().await;
    assert!(flushed.try_recv().is_err(), "flushed before its deadline");
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (300 * MS, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn a_margin_longer_than_the_time_left_flushes_at_once() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SECOND)
        .deadline_margin(SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    advance(100 * MS).await;
    // 999 ms left, 1 s margin: due 1 ms ago.
    batcher.push_by(2, start + 1099 * MS).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (100 * MS, vec![1, 2]));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_passed_flushes_at_once() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SECOND)
        .deadline_margin(Duration::ZERO)
        .build(flush)
        .unwrap();
    advance(10 * SECOND).await;
    let start = Instant::now();
    batcher.push_by(1, start - 3 * SECOND).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (Duration::ZERO, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn with_max_delay_max_a_batch_waits_for_a_deadline_and_never_for_age() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(10)
        .max_delay(Duration::MAX)
        .deadline_margin(100 * MS)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    batcher.push_by(2, start + SECOND).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (900 * MS, vec![1, 2]));

    // Without a deadline, only size, `flush` or `shutdown` end a batch.
    batcher.push(3).await.unwrap();
    advance(CENTURY).await;
    settle().await;
    assert!(flushed.try_recv().is_err(), "flushed by age");
    batcher.flush().await;
    assert_eq!(flushed.try_recv().unwrap().1, [3]);
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_grace_of_duration_max_waits_for_every_flush_however_long() {
    let (flush, mut started) = gated();
    let batcher = builder().max_items(1).build(flush).unwrap();
    batcher.push(1).await.unwrap();
    let mut shutdown = task::spawn(batcher.shutdown(Duration::MAX));
    assert_pending!(shutdown.poll());
    let (items, gate) = started.recv().await.unwrap();
    assert_eq!(items, [1]);
    advance(CENTURY).await;
    assert_pending!(shutdown.poll());
    gate.send(Ok(())).unwrap();
    settle().await;
    assert!(shutdown.is_woken(), "the last flush did not wake shutdown");
    let report = assert_ready!(shutdown.poll());
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.elapsed(), CENTURY);
}
