//! [`BatchedBy`]: the stream returned by
//! [`StreamExt::batched_by`](super::StreamExt::batched_by).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::gather::Gather;

pin_project! {
    /// Stream for [`batched_by`](super::StreamExt::batched_by): the items
    /// of a stream of `(item, deadline)` pairs in `Vec` batches, each yielded
    /// when it holds `max_items` items, when its oldest item has waited
    /// `max_delay`, at the earliest deadline in it minus the margin, or when
    /// the source ends.
    ///
    /// It never yields an empty batch, and after the source ends it yields
    /// the remainder (if any), then `None`, and never polls the source again.
    ///
    /// # Cancel safety
    ///
    /// Polling it is cancel safe: items gathered for the next batch stay in
    /// the adapter between polls, so dropping a `next()` future loses
    /// nothing. Dropping the adapter drops the items it holds; take them
    /// first with [`take_pending`](Self::take_pending).
    ///
    /// # Examples
    ///
    /// See [`StreamExt::batched_by`](super::StreamExt::batched_by).
    #[must_use = "streams do nothing unless polled"]
    pub struct BatchedBy<S, T> {
        #[pin]
        gather: Gather<S, T>,
        margin: Duration,
    }
}

impl<S, T> BatchedBy<S, T>
where
    S: Stream<Item = (T, Instant)>,
{
    #[track_caller]
    pub(super) fn new(source: S, max_items: usize, max_delay: Duration, margin: Duration) -> Self {
        BatchedBy {
            gather: Gather::new(source, max_items, max_delay),
            margin,
        }
    }

    /// The source.
    pub fn get_ref(&self) -> &S {
        self.gather.source()
    }

    /// The source, to change. Items it yields still go through the
    /// batching.
    pub fn get_mut(&mut self) -> &mut S {
        self.gather.source_mut()
    }

    /// The source, pinned.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().gather.source_pin_mut()
    }

    /// How many items are gathered for the next batch.
    pub fn pending(&self) -> usize {
        self.gather.pending()
    }

    /// Takes the items gathered for the next batch out of the adapter, in
    /// order (their deadlines are not kept): before dropping it, so that
    /// nothing it holds is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::batch::StreamExt as _;
    /// use tokio::time::Instant;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let lock = Instant::now() + Duration::from_secs(30);
    ///     let source = futures::stream::iter([("a", lock)]).chain(futures::stream::pending());
    ///     let mut batches = std::pin::pin!(source.batched_by(
    ///         10,
    ///         Duration::from_secs(5),
    ///         Duration::from_secs(1),
    ///     ));
    ///     let next = tokio::time::timeout(Duration::from_secs(1), batches.next()).await;
    ///     assert!(next.is_err());
    ///     assert_eq!(batches.as_mut().take_pending(), ["a"]);
    /// }
    /// ```
    pub fn take_pending(self: Pin<&mut Self>) -> Vec<T> {
        self.project().gather.take_pending()
    }
}

impl<S, T> Stream for BatchedBy<S, T>
where
    S: Stream<Item = (T, Instant)>,
{
    type Item = Vec<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let margin = *this.margin;
        this.gather.poll_batch(cx, |(item, deadline)| {
            // As for `Batcher::push_by`: a margin reaching back past the
            // earliest instant the clock can express reaches past now too.
            let yield_by = deadline.checked_sub(margin).unwrap_or_else(Instant::now);
            (item, Some(yield_by))
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.gather.size_hint()
    }
}

impl<S, T> fmt::Debug for BatchedBy<S, T>
where
    S: Stream<Item = (T, Instant)> + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchedBy")
            .field("source", self.get_ref())
            .field("pending", &self.pending())
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}
