//! `batched` and `batched_by`: the flush rule for a consumer that pulls
//! batches. Items come through a channel the test feeds, so each arrives at
//! an exact instant of the paused clock.

use std::pin::pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hangfree::batch::{BuildError, StreamExt as _};
use tokio::sync::mpsc;
use tokio::time::{Instant, advance};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_test::{assert_pending, assert_ready, assert_ready_eq, task};

use super::{MS, SECOND};

/// A source the test feeds, and its sender.
fn source<T>() -> (mpsc::UnboundedSender<T>, UnboundedReceiverStream<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, UnboundedReceiverStream::new(rx))
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_yielded_at_once() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(3, 5 * SECOND));
    for n in 0..7 {
        tx.send(n).unwrap();
    }
    assert_ready_eq!(batches.poll_next(), Some(vec![0, 1, 2]));
    assert_ready_eq!(batches.poll_next(), Some(vec![3, 4, 5]));
    assert_pending!(batches.poll_next());
    assert_eq!(batches.enter(|_, batches| batches.pending()), 1);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_yielded_when_its_oldest_item_has_waited_max_delay() {
    let (tx, items) = source();
    let mut batches = pin!(items.batched(100, 5 * SECOND));
    let start = Instant::now();
    tx.send(1).unwrap();
    let later = tokio::spawn(async move {
        tokio::time::sleep(3 * SECOND).await;
        tx.send(2).unwrap(); // joins the batch: does not extend it
        tokio::time::sleep(3 * SECOND).await;
        tx.send(3).unwrap(); // opens the next one at 6 s
        tx
    });
    assert_eq!(batches.next().await, Some(vec![1, 2]));
    assert_eq!(start.elapsed(), 5 * SECOND);
    assert_eq!(batches.next().await, Some(vec![3]));
    assert_eq!(start.elapsed(), 11 * SECOND);
    drop(later);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_not_yielded_a_moment_before_it_is_due() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(100, 5 * SECOND));
    tx.send(1).unwrap();
    assert_pending!(batches.poll_next());
    advance(5 * SECOND - MS).await;
    assert!(!batches.is_woken(), "woken before the batch was due");
    assert_pending!(batches.poll_next());
    advance(MS).await;
    assert!(batches.is_woken(), "the timer did not wake the consumer");
    assert_ready_eq!(batches.poll_next(), Some(vec![1]));
}

#[tokio::test(start_paused = true)]
async fn the_remainder_is_yielded_as_soon_as_the_source_ends_and_then_nothing() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(10, 60 * SECOND));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_pending!(batches.poll_next());
    drop(tx);
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2]));
    assert_ready_eq!(batches.poll_next(), None);
    assert_ready_eq!(batches.poll_next(), None);
}

#[tokio::test(start_paused = true)]
async fn no_empty_batch_is_ever_yielded() {
    let (tx, items) = source::<u32>();
    let mut batches = task::spawn(items.batched(10, SECOND));
    assert_pending!(batches.poll_next());
    // Nothing gathered: no timer is set, so time passing yields nothing.
    advance(60 * SECOND).await;
    assert!(!batches.is_woken());
    assert_pending!(batches.poll_next());
    // A source that ends with nothing gathered ends the stream at once.
    drop(tx);
    assert!(batches.is_woken());
    assert_ready_eq!(batches.poll_next(), None);

    // Batches of exactly `max_items` leave nothing behind for the end.
    let full = futures::stream::iter(0..6).batched(3, SECOND);
    assert_eq!(
        full.collect::<Vec<_>>().await,
        [vec![0, 1, 2], vec![3, 4, 5]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_due_while_the_consumer_was_away_takes_what_is_ready() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(3, SECOND));
    tx.send(1).unwrap();
    assert_pending!(batches.poll_next());
    advance(2 * SECOND).await; // due, but the consumer is busy elsewhere
    for n in 2..6 {
        tx.send(n).unwrap();
    }
    // Up to max_items: what was ready joins, the rest starts the next batch.
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2, 3]));
    assert_pending!(batches.poll_next());
    assert_eq!(batches.enter(|_, batches| batches.pending()), 2);
}

#[tokio::test(start_paused = true)]
async fn with_max_delay_max_a_batch_waits_to_be_full_or_for_the_end() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(3, Duration::MAX));
    tx.send(1).unwrap();
    assert_pending!(batches.poll_next());
    advance(Duration::from_secs(100 * 365 * 24 * 3600)).await;
    assert_pending!(batches.poll_next());
    tx.send(2).unwrap();
    tx.send(3).unwrap();
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2, 3]));
}

#[tokio::test(start_paused = true)]
async fn with_max_delay_zero_each_poll_yields_what_is_ready() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched(10, Duration::ZERO));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2]));
    assert_pending!(batches.poll_next());
    tx.send(3).unwrap();
    assert_ready_eq!(batches.poll_next(), Some(vec![3]));
}

#[tokio::test(start_paused = true)]
async fn dropping_a_next_future_loses_no_gathered_item() {
    let (tx, items) = source();
    let mut batches = pin!(items.batched(10, 5 * SECOND));
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let start = Instant::now();
    // A select that gives up on the batch after a second.
    let next = tokio::time::timeout(SECOND, batches.next()).await;
    assert!(next.is_err());
    assert_eq!(batches.pending(), 2);
    // Still due at 5 s from the oldest item, not from the second wait.
    assert_eq!(batches.next().await, Some(vec![1, 2]));
    assert_eq!(start.elapsed(), 5 * SECOND);

    tx.send(3).unwrap();
    let next = tokio::time::timeout(SECOND, batches.next()).await;
    assert!(next.is_err());
    assert_eq!(batches.as_mut().take_pending(), [3]);
    assert_eq!(batches.pending(), 0);
}

#[test]
#[should_panic(expected = "StreamExt::batched max_items must be at least 1")]
fn max_items_zero_panics_at_the_call() {
    drop(futures::stream::iter([1]).batched(0, SECOND));
}

#[test]
fn max_items_zero_is_an_error_from_the_fallible_forms() {
    let err = futures::stream::iter([1])
        .try_batched(0, SECOND)
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroStreamMaxItems);
    let err = futures::stream::iter([(1, Instant::now())])
        .try_batched_by(0, SECOND, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroStreamMaxItems);
    assert!(futures::stream::iter([1]).try_batched(1, SECOND).is_ok());
}

#[tokio::test(start_paused = true)]
async fn size_hint_counts_full_batches_and_the_gathered_one() {
    let batches = futures::stream::iter(0..10).batched(4, SECOND);
    assert_eq!(batches.size_hint(), (3, Some(10)));
    let (tx, items) = source::<u32>();
    let mut batches = task::spawn(items.batched(4, SECOND));
    tx.send(1).unwrap();
    assert_pending!(batches.poll_next());
    // One gathered item: at least one batch is coming; the channel's size is unknown.
    assert_eq!(batches.size_hint(), (1, None));
    drop(tx);
    assert_ready_eq!(batches.poll_next(), Some(vec![1]));
    assert_ready_eq!(batches.poll_next(), None);
    assert_eq!(batches.size_hint(), (0, Some(0)));
}

#[tokio::test(start_paused = true)]
async fn batched_by_yields_at_the_earliest_deadline_minus_the_margin() {
    let (tx, items) = source();
    let mut batches = pin!(items.batched_by(100, 10 * SECOND, SECOND));
    let start = Instant::now();
    tx.send((1, start + 8 * SECOND)).unwrap();
    tx.send((2, start + 4 * SECOND)).unwrap(); // pulls the whole batch forward
    tx.send((3, start + 6 * SECOND)).unwrap();
    assert_eq!(batches.next().await, Some(vec![1, 2, 3]));
    assert_eq!(start.elapsed(), 3 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn batched_by_a_later_deadline_does_not_delay_past_max_delay() {
    let (tx, items) = source();
    let mut batches = pin!(items.batched_by(100, 5 * SECOND, SECOND));
    let start = Instant::now();
    tx.send((1, start + 60 * SECOND)).unwrap();
    assert_eq!(batches.next().await, Some(vec![1]));
    assert_eq!(start.elapsed(), 5 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn batched_by_a_deadline_inside_the_margin_yields_at_once() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched_by(100, 5 * SECOND, 2 * SECOND));
    let start = Instant::now();
    tx.send((1, start + 30 * SECOND)).unwrap();
    assert_pending!(batches.poll_next());
    tx.send((2, start + SECOND)).unwrap();
    assert!(batches.is_woken());
    assert_ready_eq!(batches.poll_next(), Some(vec![1, 2]));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn batched_by_a_margin_longer_than_any_instant_means_due_now() {
    let (tx, items) = source();
    let mut batches = task::spawn(items.batched_by(100, Duration::MAX, Duration::MAX));
    tx.send(("a", Instant::now() + 200 * MS)).unwrap();
    let batch = assert_ready!(batches.poll_next());
    assert_eq!(batch, Some(vec!["a"]));
}

#[tokio::test(start_paused = true)]
async fn batched_by_yields_full_batches_and_the_remainder_like_batched() {
    let start = Instant::now();
    let deadline = start + 60 * SECOND;
    let items = futures::stream::iter((0..5).map(|n| (n, deadline)));
    let batches: Vec<Vec<u32>> = items.batched_by(2, 10 * SECOND, SECOND).collect().await;
    assert_eq!(batches, [vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}
