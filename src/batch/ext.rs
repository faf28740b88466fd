//! [`StreamExt`]: the batcher's flush rule for streams the consumer pulls.

use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;

use super::{Batched, BatchedBy, BuildError};

/// Batching methods for every [`Stream`]: the [`Batcher`](super::Batcher)'s
/// flush rule for a consumer that pulls batches instead of pushing items.
/// Import them with `use hangfree::batch::StreamExt as _;`.
pub trait StreamExt: Stream {
    /// Gathers the stream's items into `Vec` batches: each is yielded when it
    /// holds `max_items` items, or when its oldest item has waited
    /// `max_delay`, whichever comes first. When the source ends, what is
    /// gathered is yielded at once, then the stream ends. It never yields an
    /// empty batch.
    ///
    /// The rule is tokio-stream's `chunks_timeout`'s and the `Batcher`'s:
    /// the age counts from the oldest item of the batch (the clock is read
    /// once per batch), a batch that fell due while the consumer was away
    /// takes what the source has ready (up to `max_items`) before it is
    /// yielded, a `max_delay` too long to add to an instant
    /// (`Duration::MAX`) is no age limit, and `max_delay` zero yields
    /// whatever is ready at each poll, as `ready_chunks` does.
    ///
    /// # Panics
    ///
    /// If `max_items` is zero.
    ///
    /// # Cancel safety
    ///
    /// Polling the returned stream is cancel safe; see [`Batched`].
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
    ///     let start = Instant::now();
    ///     // A burst of five offsets, then one more 10 s later.
    ///     let offsets = futures::stream::iter(1..=5).chain(
    ///         futures::stream::once(async {
    ///             tokio::time::sleep(Duration::from_secs(10)).await;
    ///             6
    ///         }),
    ///     );
    ///     let mut commits = std::pin::pin!(offsets.batched(3, Duration::from_secs(2)));
    ///
    ///     assert_eq!(commits.next().await, Some(vec![1, 2, 3])); // full
    ///     assert_eq!(commits.next().await, Some(vec![4, 5])); // 4 waited 2 s
    ///     assert_eq!(start.elapsed(), Duration::from_secs(2));
    ///     assert_eq!(commits.next().await, Some(vec![6])); // the source ended
    ///     assert_eq!(commits.next().await, None);
    /// }
    /// ```
    #[track_caller]
    fn batched(self, max_items: usize, max_delay: Duration) -> Batched<Self>
    where
        Self: Sized,
    {
        Batched::new(self, max_items, max_delay)
    }

    /// [`batched`](Self::batched) for a `max_items` read from configuration: an error
    /// instead of a panic when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{BuildError, StreamExt as _};
    ///
    /// let items = futures::stream::iter([1, 2, 3]);
    /// let err = items.try_batched(0, Duration::from_secs(1)).unwrap_err();
    /// assert_eq!(err, BuildError::ZeroStreamMaxItems);
    /// ```
    fn try_batched(self, max_items: usize, max_delay: Duration) -> Result<Batched<Self>, BuildError>
    where
        Self: Sized,
    {
        if max_items == 0 {
            return Err(BuildError::ZeroStreamMaxItems);
        }
        Ok(Batched::new(self, max_items, max_delay))
    }

    /// Like [`batched`](Self::batched), for a stream of `(item, deadline)`
    /// pairs: a batch is also yielded at the earliest deadline in it minus
    /// `margin`, and holds the items without their deadlines. The rules are
    /// [`Batcher::push_by`](super::Batcher::push_by)'s: a deadline pulls the
    /// whole batch forward, and one already inside the margin (or a margin
    /// reaching back past any instant, such as `Duration::MAX`) makes the
    /// batch due at once.
    ///
    /// Use it where each item expires, in the place of `chunks_timeout`: a
    /// message's lock token with its expiry, so that its completion is sent
    /// `margin` before the lock runs out.
    ///
    /// # Panics
    ///
    /// If `max_items` is zero.
    ///
    /// # Cancel safety
    ///
    /// Polling the returned stream is cancel safe; see [`BatchedBy`].
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
    ///     let start = Instant::now();
    ///     // Lock tokens with their expiry; the second lock runs out in 3 s.
    ///     let tokens = futures::stream::iter([
    ///         ("token-1", start + Duration::from_secs(30)),
    ///         ("token-2", start + Duration::from_secs(3)),
    ///     ])
    ///     .chain(futures::stream::pending());
    ///     let mut completions = std::pin::pin!(tokens.batched_by(
    ///         100,
    ///         Duration::from_secs(5),
    ///         Duration::from_secs(1), // a completion call's worst case
    ///     ));
    ///
    ///     // Due 1 s before token-2's lock expires, not after max_delay.
    ///     assert_eq!(completions.next().await, Some(vec!["token-1", "token-2"]));
    ///     assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// }
    /// ```
    #[track_caller]
    fn batched_by<T>(
        self,
        max_items: usize,
        max_delay: Duration,
        margin: Duration,
    ) -> BatchedBy<Self, T>
    where
        Self: Stream<Item = (T, Instant)> + Sized,
    {
        BatchedBy::new(self, max_items, max_delay, margin)
    }

    /// [`batched_by`](Self::batched_by) for a `max_items` read from configuration: an
    /// error instead of a panic when it is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{BuildError, StreamExt as _};
    /// use tokio::time::Instant;
    ///
    /// let items = futures::stream::iter([(1, Instant::now())]);
    /// let err = items
    ///     .try_batched_by(0, Duration::from_secs(1), Duration::ZERO)
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroStreamMaxItems);
    /// ```
    fn try_batched_by<T>(
        self,
        max_items: usize,
        max_delay: Duration,
        margin: Duration,
    ) -> Result<BatchedBy<Self, T>, BuildError>
    where
        Self: Stream<Item = (T, Instant)> + Sized,
    {
        if max_items == 0 {
            return Err(BuildError::ZeroStreamMaxItems);
        }
        Ok(BatchedBy::new(self, max_items, max_delay, margin))
    }
}

impl<S: ?Sized + Stream> StreamExt for S {}
