//! The flush rule: a batch is flushed when it is full, when its oldest item
//! has waited `max_delay`, or at the earliest deadline minus the margin,
//! whichever comes first; items keep push order and batches start in order.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, advance};

use super::{MS, SECOND, builder, recording, settle};

#[tokio::test(start_paused = true)]
async fn one_push_is_flushed_exactly_max_delay_later() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(100)
        .max_delay(5 * SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();

    advance(5 * SECOND - MS).await;
    settle().await;
    assert!(flushed.try_recv().is_err(), "flushed before max_delay");

    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!(at - start, 5 * SECOND);
    assert_eq!(items, [1]);
    assert!(flushed.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn age_counts_from_the_oldest_item_of_each_batch() {
    let (flush, mut flushed) = recording();
    let batcher = builder().max_delay(5 * SECOND).build(flush).unwrap();
    let start = Instant::now();
    batcher.push(1).await.unwrap();
    advance(3 * SECOND).await;
    batcher.push(2).await.unwrap(); // joins the batch: does not extend it
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (5 * SECOND, vec![1, 2]));

    advance(SECOND).await;
    batcher.push(3).await.unwrap(); // opens the next batch at 6 s
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (11 * SECOND, vec![3]));
}

#[tokio::test(start_paused = true)]
async fn burst_of_250_flushes_100_and_100_at_once_and_50_after_max_delay() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(100)
        .max_delay(5 * SECOND)
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
    assert_eq!(batches[2], (5 * SECOND, (200..250).collect::<Vec<_>>()));
}

#[tokio::test(start_paused = true)]
async fn push_by_flushes_the_batch_at_deadline_minus_margin() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SECOND)
        .deadline_margin(SECOND)
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
        .max_delay(5 * SECOND)
        .deadline_margin(SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 60 * SECOND).await.unwrap();
    let (at, _) = flushed.recv().await.unwrap();
    assert_eq!(at - start, 5 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_inside_the_margin_flushes_at_once() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(5 * SECOND)
        .deadline_margin(2 * SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + SECOND).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (Duration::ZERO, vec![1]));
}

#[tokio::test(start_paused = true)]
async fn the_earliest_of_several_deadlines_wins() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_delay(10 * SECOND)
        .deadline_margin(SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    batcher.push_by(1, start + 8 * SECOND).await.unwrap();
    batcher.push_by(2, start + 4 * SECOND).await.unwrap();
    batcher.push_by(3, start + 6 * SECOND).await.unwrap();
    let (at, items) = flushed.recv().await.unwrap();
    assert_eq!((at - start, items), (3 * SECOND, vec![1, 2, 3]));
}

#[tokio::test(start_paused = true)]
async fn items_keep_push_order_and_batches_start_in_order() {
    let (tx, mut flushed) = mpsc::unbounded_channel();
    let batcher = builder()
        .max_items(7)
        .max_delay(3 * MS)
        .max_in_flight(3)
        .capacity(20)
        .build(move |items: Vec<u32>| {
            let latency = (items[0] % 5) * MS;
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
            tokio::time::sleep((n % 4) * MS).await;
        }
    }
    let report = batcher.shutdown(SECOND).await;
    assert!(report.is_complete(), "{report}");
    let mut all = Vec::new();
    while let Ok(items) = flushed.try_recv() {
        assert!(items.len() <= 7);
        all.extend(items);
    }
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
}
