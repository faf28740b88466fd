//! [`Batched`]: the stream returned by
//! [`StreamExt::batched`](super::StreamExt::batched).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::gather::Gather;

pin_project! {
    /// Stream for [`batched`](super::StreamExt::batched): the source's items
    /// in `Vec` batches, each yielded when it holds `max_items` items, when
    /// its oldest item has waited `max_delay`, or when the source ends.
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
    /// See [`StreamExt::batched`](super::StreamExt::batched).
    #[must_use = "streams do nothing unless polled"]
    pub struct Batched<S: Stream> {
        #[pin]
        gather: Gather<S, S::Item>,
    }
}

impl<S: Stream> Batched<S> {
    #[track_caller]
    pub(super) fn new(source: S, max_items: usize, max_delay: Duration) -> Self {
        Batched {
            gather: Gather::new(source, max_items, max_delay),
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
    /// order: before dropping it, so that nothing it holds is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::batch::StreamExt as _;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let source = futures::stream::iter([1, 2]).chain(futures::stream::pending());
    ///     let mut batches = std::pin::pin!(source.batched(10, Duration::from_secs(60)));
    ///     // Stop waiting after a second: the two items are gathered, not yet due.
    ///     let next = tokio::time::timeout(Duration::from_secs(1), batches.next()).await;
    ///     assert!(next.is_err());
    ///     assert_eq!(batches.as_mut().take_pending(), [1, 2]);
    /// }
    /// ```
    pub fn take_pending(self: Pin<&mut Self>) -> Vec<S::Item> {
        self.project().gather.take_pending()
    }
}

impl<S: Stream> Stream for Batched<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().gather.poll_batch(cx, |item| (item, None))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.gather.size_hint()
    }
}

impl<S: Stream + fmt::Debug> fmt::Debug for Batched<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batched")
            .field("source", self.get_ref())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}
