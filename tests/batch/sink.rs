//! `Batcher::sink()`: `poll_ready` is the batcher's backpressure,
//! `poll_flush` waits until everything sent has been through a flush,
//! `poll_close` shuts the batcher down and keeps its report.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures::{Sink, SinkExt as _, StreamExt as _};
use hangfree::batch::{BatchSink, PushError};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready_ok, task};

use super::{SECOND, builder, gated, recording, settle};

fn poll_ready(sink: &mut BatchSink<u32>) -> impl Future<Output = Result<(), PushError<u32>>> {
    poll_fn(move |cx| Pin::new(&mut *sink).poll_ready(cx))
}

#[tokio::test(start_paused = true)]
async fn a_stream_forwarded_into_the_sink_is_flushed_and_the_batcher_shut_down() {
    let (flush, mut flushed) = recording();
    let batcher = builder()
        .max_items(100)
        .max_delay(60 * SECOND)
        .build(flush)
        .unwrap();
    let start = Instant::now();
    futures::stream::iter(0..250)
        .map(Ok)
        .forward(batcher.sink())
        .await
        .unwrap();
    // The stream's end closed the sink: everything flushed at once, not
    // after max_delay, and the batcher is shut down.
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(batcher.is_closed());
    let mut batches = Vec::new();
    while let Ok((_, items)) = flushed.try_recv() {
        batches.push(items);
    }
    assert_eq!(
        batches,
        [
            (0..100).collect::<Vec<_>>(),
            (100..200).collect(),
            (200..250).collect()
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_is_handed_out_after_close() {
    let (flush, _flushed) = recording();
    let batcher = builder().max_items(2).build(flush).unwrap();
    let mut sink = batcher.sink();
    futures::stream::iter(0..5)
        .map(Ok)
        .forward(&mut sink)
        .await
        .unwrap();
    let report = sink.report().expect("the sink was closed");
    assert!(report.is_complete(), "{report}");
    assert_eq!((report.accepted(), report.flushed_batches()), (5, 3));
    // Closing again changes nothing.
    sink.close().await.unwrap();
    assert_eq!(sink.into_report().unwrap().accepted(), 5);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_waits_while_capacity_items_are_pending() {
    let (flush, mut started) = gated();
    let batcher = builder().max_items(2).capacity(2).build(flush).unwrap();
    let mut sink = batcher.sink();
    for n in 0..4 {
        sink.feed(n).await.unwrap(); // [0, 1] flushing, [2, 3] pending
    }
    settle().await;
    let (_, gate) = started.try_recv().unwrap();
    assert_eq!(batcher.pending(), 2);
    {
        let mut ready = task::spawn(poll_ready(&mut sink));
        assert_pending!(ready.poll());
        gate.send(Ok(())).unwrap(); // [2, 3] starts: room
        settle().await;
        assert!(ready.is_woken(), "room did not wake poll_ready");
        assert_ready_ok!(ready.poll());
    }
    sink.feed(4).await.unwrap();
    assert_eq!(batcher.pending(), 1);
    drop(started);
}

#[tokio::test(start_paused = true)]
async fn poll_flush_resolves_once_every_item_sent_has_been_through_a_flush() {
    let (flush, mut started) = gated();
    let batcher = builder()
        .max_items(10)
        .max_delay(60 * SECOND)
        .build(flush)
        .unwrap();
    let mut sink = batcher.sink();
    for n in 0..3 {
        sink.feed(n).await.unwrap();
    }
    let start = Instant::now();
    let mut flush = task::spawn(sink.flush());
    assert_pending!(flush.poll());
    settle().await;
    // Sealed at once, not after max_delay; the flush is running.
    let (items, gate) = started.try_recv().unwrap();
    assert_eq!(items, [0, 1, 2]);
    assert_pending!(flush.poll());
    gate.send(Err("broker down".to_string())).unwrap();
    settle().await;
    // A failed flush has been through a flush too (its items went to the report).
    assert!(flush.is_woken());
    assert_ready_ok!(flush.poll());
    assert_eq!(start.elapsed(), Duration::ZERO);
    drop(flush);
    assert!(!batcher.is_closed(), "flushing does not close the batcher");
}

#[tokio::test(start_paused = true)]
async fn poll_flush_covers_an_item_sent_after_an_earlier_flush_began() {
    let (flush, mut started) = gated();
    let batcher = builder().max_delay(60 * SECOND).build(flush).unwrap();
    let mut sink = batcher.sink();
    sink.feed(1).await.unwrap();
    {
        let mut flushing = task::spawn(poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx)));
        assert_pending!(flushing.poll());
    }
    settle().await;
    let (items, gate) = started.try_recv().unwrap();
    assert_eq!(items, [1]);
    // Sent after that flush began: the next `poll_flush` must wait for it too.
    sink.feed(2).await.unwrap();
    gate.send(Ok(())).unwrap();
    settle().await;
    let mut flushing = task::spawn(poll_fn(|cx| Pin::new(&mut sink).poll_flush(cx)));
    assert_pending!(flushing.poll());
    settle().await;
    let (items, gate) = started.try_recv().unwrap();
    assert_eq!(items, [2]);
    gate.send(Ok(())).unwrap();
    settle().await;
    assert_ready_ok!(flushing.poll());
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_on_a_hung_flush_at_the_shutdown_grace() {
    let (flush, mut started) = gated();
    let batcher = builder().max_items(2).build(flush).unwrap();
    let mut sink = batcher.sink().shutdown_grace(3 * SECOND);
    for n in 0..5 {
        sink.feed(n).await.unwrap();
    }
    let start = Instant::now();
    sink.close().await.unwrap();
    assert_eq!(start.elapsed(), 3 * SECOND);
    let report = sink.into_report().unwrap();
    assert_eq!(report.abandoned_items(), 2, "{report}");
    assert_eq!(report.unflushed(), [2, 3, 4]);
    drop(started.try_recv().unwrap()); // [0, 1] was the one that hung
}

#[tokio::test(start_paused = true)]
async fn an_item_sent_after_the_batcher_was_shut_down_comes_back_in_the_error() {
    let (flush, _flushed) = recording();
    let batcher = builder().build(flush).unwrap();
    let mut sink = batcher.sink();
    batcher.shutdown(SECOND).await;
    let mut ready = task::spawn(poll_ready(&mut sink));
    assert_ready_ok!(ready.poll()); // closed: the send will say so
    drop(ready);
    let refused = Pin::new(&mut sink).start_send(7).unwrap_err();
    assert_eq!(refused.into_inner(), 7);
    // Forwarding into it ends with the first item handed back.
    let err = futures::stream::iter([8, 9])
        .map(Ok)
        .forward(batcher.sink())
        .await
        .unwrap_err();
    assert_eq!(err.into_inner(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_sink_leaves_the_batcher_open_and_its_items_accepted() {
    let (flush, mut flushed) = recording();
    let batcher = builder().max_delay(SECOND).build(flush).unwrap();
    let mut sink = batcher.sink();
    sink.feed(1).await.unwrap();
    drop(sink);
    assert!(!batcher.is_closed());
    let (_, items) = flushed.recv().await.unwrap();
    assert_eq!(items, [1]);
    let report = batcher.shutdown(SECOND).await;
    assert!(report.is_complete(), "{report}");
}
