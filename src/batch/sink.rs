//! [`BatchSink`]: a [`Batcher`] as a `futures_sink::Sink` (feature `sink`),
//! so that `stream.map(Ok).forward(batcher.sink())` feeds it.
//!
//! The sink's three waits map onto the batcher's own: `poll_ready` on its
//! room (`push`'s backpressure), `poll_flush` on [`Batcher::flush`]'s, and
//! `poll_close` on [`Batcher::shutdown`]'s. Each waits in a future of its
//! own, boxed once per wait, never per item: a sink with room costs one lock
//! in `poll_ready` and one in `start_send`.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_sink::Sink;

use super::batcher::Batcher;
use super::error::{PushError, Refused};
use super::report::BatchReport;
use super::state::BatcherState;

type Wait<O> = Pin<Box<dyn Future<Output = O> + Send + Sync>>;

impl<T: Send + 'static> Batcher<T> {
    /// This batcher as a [`Sink`]: an owned handle (a clone of this one)
    /// whose `poll_ready` waits for room as [`push`](Self::push) does,
    /// whose `poll_flush` resolves once every item sent so far has been
    /// through a flush, and whose `poll_close` shuts the batcher down and
    /// keeps the [`BatchReport`] for [`BatchSink::into_report`].
    ///
    /// Closing waits for every flush, as [`flush`](Self::flush) does; bound
    /// it with [`BatchSink::shutdown_grace`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let batcher = Batcher::builder()
    ///         .max_items(100)
    ///         .build(|offsets: Vec<u64>| async move {
    ///             println!("committing {} offsets", offsets.len());
    ///             Ok::<(), FlushError<u64, String>>(())
    ///         })
    ///         .unwrap();
    ///     let mut sink = batcher.sink().shutdown_grace(Duration::from_secs(5));
    ///     futures::stream::iter(0..250u64).map(Ok).forward(&mut sink).await.unwrap();
    ///
    ///     // The stream ended: the sink was closed, which shut the batcher down.
    ///     let report = sink.into_report().unwrap();
    ///     assert!(report.is_complete(), "{report}");
    ///     assert_eq!((report.flushed_batches(), report.flushed_items()), (3, 250));
    ///     assert!(batcher.is_closed());
    /// }
    /// ```
    pub fn sink(&self) -> BatchSink<T> {
        BatchSink {
            batcher: self.clone(),
            grace: Duration::MAX,
            room: None,
            flushing: None,
            closing: None,
            report: None,
        }
    }
}

/// A [`Batcher`] as a [`Sink`], made by [`Batcher::sink`].
///
/// - `poll_ready` waits while `capacity` items are pending, as
///   [`push`](Batcher::push) does; it is ready at once when the batcher is
///   closed, and `start_send` then hands the item back in its
///   [`PushError`].
/// - `start_send` accepts the item. An item sent after `poll_ready` was
///   ready is always accepted while the batcher is open, even if another
///   producer took the room in between, so the batcher may hold `capacity`
///   items plus one per sink that raced for the last room: nothing is held
///   in the sink, and nothing is lost if it is dropped.
/// - `poll_flush` resolves once every item sent so far has been through a
///   flush (flushed, or handed to the failure hook), like
///   [`Batcher::flush`]; it does not close the batcher.
/// - `poll_close` shuts the batcher down with the
///   [`shutdown_grace`](Self::shutdown_grace) (no limit by default) and keeps
///   the report for [`report`](Self::report) and
///   [`into_report`](Self::into_report).
///
/// The sink is a handle like a clone of the batcher: dropping it without
/// closing it leaves the batcher open for the other handles.
///
/// # Cancel safety
///
/// Each wait is kept in the sink: dropping a future that drives it (a
/// `send` or `flush` from `SinkExt`) loses nothing sent, and the next call
/// goes on waiting where it left off.
///
/// # Examples
///
/// ```
/// use futures::SinkExt as _;
/// use hangfree::batch::{Batcher, FlushError};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let (flushed, mut flushes) = tokio::sync::mpsc::unbounded_channel();
///     let batcher = Batcher::builder()
///         .build(move |acks: Vec<&'static str>| {
///             flushed.send(acks).unwrap();
///             async { Ok::<(), FlushError<&'static str, String>>(()) }
///         })
///         .unwrap();
///     let mut sink = batcher.sink();
///     sink.feed("ack-1").await.unwrap();
///     sink.feed("ack-2").await.unwrap();
///     sink.flush().await.unwrap(); // both have been through a flush
///     assert_eq!(flushes.try_recv().unwrap(), ["ack-1", "ack-2"]);
/// }
/// ```
#[must_use = "sinks do nothing unless polled"]
pub struct BatchSink<T: Send + 'static> {
    batcher: Batcher<T>,
    grace: Duration,
    /// Waiting for room, in `poll_ready`.
    room: Option<Wait<()>>,
    /// Waiting for the batches sealed by `poll_flush`; dropped when an item
    /// is sent, so that the next flush covers it too.
    flushing: Option<Wait<()>>,
    /// Waiting for the shutdown started by `poll_close`.
    closing: Option<Wait<BatchReport<T>>>,
    report: Option<BatchReport<T>>,
}

// The items are only ever moved, never pinned.
impl<T: Send + 'static> Unpin for BatchSink<T> {}

impl<T: Send + 'static> BatchSink<T> {
    /// How long `poll_close` lets running flushes finish before it gives up
    /// on them, as [`Batcher::shutdown`]'s `grace`. Without it, closing
    /// waits for every flush.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::SinkExt as _;
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let batcher = Batcher::builder()
    ///         .max_items(1)
    ///         // A sink that hangs: closing must still end.
    ///         .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
    ///         .unwrap();
    ///     let mut sink = batcher.sink().shutdown_grace(Duration::from_secs(2));
    ///     sink.feed(1).await.unwrap();
    ///     sink.close().await.unwrap(); // gives up on the hung flush after 2 s
    ///     let report = sink.into_report().unwrap();
    ///     assert_eq!(report.elapsed(), Duration::from_secs(2));
    ///     assert_eq!(report.abandoned_items(), 1);
    /// }
    /// ```
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The report of the shutdown `poll_close` made, once it is done.
    pub fn report(&self) -> Option<&BatchReport<T>> {
        self.report.as_ref()
    }

    /// The report of the shutdown `poll_close` made, once it is done; `None`
    /// before.
    pub fn into_report(self) -> Option<BatchReport<T>> {
        self.report
    }

    fn state(&self) -> &Arc<BatcherState<T>> {
        self.batcher.state()
    }
}

impl<T: Send + 'static> Sink<T> for BatchSink<T> {
    type Error = PushError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.room.is_none() {
            if this.state().has_room() {
                return Poll::Ready(Ok(()));
            }
            let state = Arc::clone(this.state());
            this.room = Some(Box::pin(async move {
                loop {
                    // Registered before looking again: room made in between
                    // is not missed.
                    let mut room = pin!(state.room.notified());
                    room.as_mut().enable();
                    if state.has_room() {
                        return;
                    }
                    room.await;
                }
            }));
        }
        if let Some(room) = this.room.as_mut() {
            ready!(room.as_mut().poll(cx));
            this.room = None;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), Self::Error> {
        let this = self.get_mut();
        match this.state().insert_up_to(usize::MAX, item, None) {
            Ok(()) => {
                this.flushing = None;
                Ok(())
            }
            Err(Refused::Closed(item) | Refused::Full(item)) => Err(PushError::new(item)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let flushing = this.flushing.get_or_insert_with(|| {
            let state = Arc::clone(this.batcher.state());
            Box::pin(async move { state.flush_sealed().await })
        });
        ready!(flushing.as_mut().poll(cx));
        this.flushing = None;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        if this.report.is_some() {
            return Poll::Ready(Ok(()));
        }
        let grace = this.grace;
        let closing = this.closing.get_or_insert_with(|| {
            let state = Arc::clone(this.batcher.state());
            Box::pin(async move { state.shutdown_within(grace).await })
        });
        let report = ready!(closing.as_mut().poll(cx));
        this.closing = None;
        this.flushing = None;
        this.report = Some(report);
        Poll::Ready(Ok(()))
    }
}

impl<T: Send + 'static> fmt::Debug for BatchSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSink")
            .field("batcher", &self.batcher)
            .field("shutdown_grace", &self.grace)
            .field("waiting_for_room", &self.room.is_some())
            .field("flushing", &self.flushing.is_some())
            .field("closing", &self.closing.is_some())
            .field("closed", &self.report.is_some())
            .finish()
    }
}
