//! What can go wrong around a [`Batcher`](super::Batcher): building it
//! ([`BuildError`]), pushing into it ([`PushError`], [`TryPushError`]), and
//! flushing a batch ([`FlushError`]).

use std::fmt;
use std::time::Duration;

use crate::fmt::Limit;

/// The batcher was shut down: the item was not accepted and is handed back.
///
/// Returned by [`Batcher::push`](super::Batcher::push) and
/// [`Batcher::push_by`](super::Batcher::push_by).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::batch::{Batcher, FlushError};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let batcher = Batcher::builder()
///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
///         .unwrap();
///     batcher.shutdown(Duration::from_secs(1)).await;
///
///     let err = batcher.push(7).await.unwrap_err();
///     assert_eq!(err.into_inner(), 7);
/// }
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("the batcher is shut down; the item was handed back")]
pub struct PushError<T>(T);

impl<T> PushError<T> {
    pub(super) fn new(item: T) -> Self {
        PushError(item)
    }

    /// The item that was not accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<&str>| async { Ok::<(), FlushError<&str, String>>(()) })
    ///     .unwrap();
    /// batcher.shutdown(Duration::ZERO).await;
    /// let refused = batcher.push("late ack").await.unwrap_err();
    /// assert_eq!(refused.into_inner(), "late ack"); // send it some other way
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PushError").finish_non_exhaustive()
    }
}

/// Why [`Batcher::try_push`](super::Batcher::try_push) did not accept an item,
/// with the item handed back: the batcher is full
/// ([`is_full`](Self::is_full)) or shut down ([`is_closed`](Self::is_closed)).
///
/// # Examples
///
/// ```
/// use hangfree::batch::{Batcher, FlushError};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let batcher = Batcher::builder()
///         .max_items(1)
///         .capacity(1)
///         // A flush that never finishes, so the batcher fills up.
///         .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
///         .unwrap();
///     batcher.try_push(1).unwrap();
///     tokio::task::yield_now().await; // item 1 is now in the (stuck) flush
///     batcher.try_push(2).unwrap(); // pending: the only in-flight slot is busy
///     let refused = batcher.try_push(3).unwrap_err();
///     assert!(refused.is_full());
///     assert_eq!(refused.into_inner(), 3);
/// }
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .refused.sentence())]
pub struct TryPushError<T> {
    refused: Refused<T>,
}

/// Why an item was not accepted: what the push path returns, and what
/// [`TryPushError`] wraps.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Refused<T> {
    /// `capacity` items are pending.
    Full(T),
    /// The batcher is shut down.
    Closed(T),
}

impl<T> Refused<T> {
    fn sentence(&self) -> &'static str {
        match self {
            Refused::Full(_) => "the batcher is at capacity; the item was handed back",
            Refused::Closed(_) => "the batcher is shut down; the item was handed back",
        }
    }
}

impl<T> TryPushError<T> {
    pub(super) fn new(refused: Refused<T>) -> Self {
        TryPushError { refused }
    }

    /// `true` if `capacity` items were pending: try again after a flush has
    /// started (or [`push`](super::Batcher::push), which waits).
    ///
    /// # Examples
    ///
    /// See [`TryPushError`].
    pub fn is_full(&self) -> bool {
        matches!(self.refused, Refused::Full(_))
    }

    /// `true` if the batcher was shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let batcher = Batcher::builder()
    ///     .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
    ///     .unwrap();
    /// batcher.shutdown(Duration::ZERO).await;
    /// let refused = batcher.try_push(1).unwrap_err();
    /// assert!(refused.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self.refused, Refused::Closed(_))
    }

    /// The item that was not accepted.
    ///
    /// # Examples
    ///
    /// See [`TryPushError`].
    pub fn into_inner(self) -> T {
        match self.refused {
            Refused::Full(item) | Refused::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.refused {
            Refused::Full(_) => "Full",
            Refused::Closed(_) => "Closed",
        };
        f.debug_tuple("TryPushError")
            .field(&format_args!("{name}"))
            .finish_non_exhaustive()
    }
}

impl<T> From<PushError<T>> for TryPushError<T> {
    fn from(err: PushError<T>) -> Self {
        TryPushError::new(Refused::Closed(err.0))
    }
}

/// A failed flush: the error, and the items that were **not** flushed.
///
/// A flush function returns this to hand its items back: they go to the
/// [`on_failure`](super::BatcherBuilder::on_failure) hook, or, without a hook,
/// into [`BatchReport::failed`](super::BatchReport::failed). Return every item
/// of the batch if you cannot tell which ones were done; return only some if
/// the sink reported per-item results: the ones not returned are counted as
/// flushed.
///
/// It is a [`std::error::Error`] for every error type with `Debug` and
/// `Display`: `String`, `anyhow::Error` and every `std::error::Error`, so a
/// hook can pass it on with `?`. Its `Display` includes the error's, so it
/// names no `source()`; the typed error is in [`error`](Self::error).
///
/// # Examples
///
/// ```
/// use hangfree::batch::FlushError;
///
/// async fn complete(tokens: Vec<String>) -> Result<(), FlushError<String, std::io::Error>> {
///     match send_completions(&tokens).await {
///         Ok(()) => Ok(()),
///         Err(error) => Err(FlushError::new(tokens, error)),
///     }
/// }
/// # async fn send_completions(_: &[String]) -> std::io::Result<()> { Ok(()) }
/// # let _ = complete;
/// ```
///
/// Passed on to `anyhow` in a failure hook:
///
/// ```
/// use hangfree::batch::FlushError;
///
/// fn give_back(failed: FlushError<String, String>) -> anyhow::Result<()> {
///     if failed.items.len() > 100 {
///         Err(failed)?; // too many to requeue one by one
///     }
///     Ok(())
/// }
/// let failed = FlushError::new(vec!["lock-1".to_string(); 101], "connection reset".to_string());
/// let err = give_back(failed).unwrap_err();
/// assert_eq!(err.to_string(), "flush failed, 101 items not flushed: connection reset");
/// ```
#[derive(thiserror::Error)]
#[error("flush failed, {} items not flushed: {error}", .items.len())]
pub struct FlushError<T, E> {
    /// The items that were not flushed.
    pub items: Vec<T>,
    /// Why.
    pub error: E,
}

impl<T, E> FlushError<T, E> {
    /// A failed flush of `items` because of `error`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::batch::FlushError;
    ///
    /// let failed = FlushError::new(vec![1, 2], "refused");
    /// assert_eq!((failed.items, failed.error), (vec![1, 2], "refused"));
    /// ```
    pub fn new(items: Vec<T>, error: E) -> Self {
        FlushError { items, error }
    }
}

impl<T, E: fmt::Debug> fmt::Debug for FlushError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushError")
            .field("items", &self.items.len())
            .field("error", &self.error)
            .finish()
    }
}

/// A [`BatcherBuilder`](super::BatcherBuilder) setting that cannot work,
/// returned by [`build`](super::BatcherBuilder::build).
///
/// The settings are checked together, at `build`, because most rules relate
/// two of them (a margin against `max_delay`, `capacity` against
/// `max_items`). Its `Display` is written for whoever wrote the
/// configuration: which setting, why it cannot work, and what to write
/// instead.
///
/// # Examples
///
/// ```
/// use hangfree::batch::{Batcher, BuildError, FlushError};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let err = Batcher::builder()
///         .max_items(0)
///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
///         .unwrap_err();
///     assert_eq!(err, BuildError::ZeroMaxItems);
///     assert_eq!(
///         err.to_string(),
///         "BatcherBuilder::max_items must be at least 1: a batch that holds no item is \
///          never flushed; leave max_items unset for 100",
///     );
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `batched(0, …)` or `batched_by(0, …)` on a stream.
    #[error(
        "StreamExt::batched max_items must be at least 1: a batch that holds no item is \
         never yielded"
    )]
    ZeroStreamMaxItems,
    /// `max_items(0)`: no batch could hold an item.
    #[error(
        "BatcherBuilder::max_items must be at least 1: a batch that holds no item is never \
         flushed; leave max_items unset for 100"
    )]
    ZeroMaxItems,
    /// `max_delay(0)` with `max_items > 1`.
    #[error(
        "BatcherBuilder::max_delay is 0 with max_items = {max_items}: every batch would be \
         flushed as soon as it opens, so its size would depend on scheduling, not on \
         max_items; give max_delay a few milliseconds, or set max_items to 1 for one flush \
         per item"
    )]
    ZeroMaxDelay {
        /// The configured `max_items`.
        max_items: usize,
    },
    /// `max_in_flight(0)`: no flush could ever run.
    #[error(
        "BatcherBuilder::max_in_flight must be at least 1: with no flush slot no batch is \
         ever flushed; leave max_in_flight unset for 1"
    )]
    ZeroMaxInFlight,
    /// `capacity` below `max_items`: a batch could never fill.
    #[error(
        "BatcherBuilder::capacity ({capacity}) is smaller than max_items ({max_items}): a \
         full batch could never form; make capacity at least max_items, or leave it unset \
         for 10 × max_items"
    )]
    CapacityBelowMaxItems {
        /// The configured `capacity`.
        capacity: usize,
        /// The configured `max_items`.
        max_items: usize,
    },
    /// A deadline margin longer than `max_delay`.
    #[error(
        "BatcherBuilder::deadline_margin ({}) is longer than max_delay ({}): the margin \
         stands for one flush's latency, and flushes slower than max_delay fall behind \
         batches flushed by age; make max_delay at least the margin",
        Limit(*.margin),
        Limit(*.max_delay)
    )]
    MarginExceedsMaxDelay {
        /// The configured margin.
        margin: Duration,
        /// The configured `max_delay`.
        max_delay: Duration,
    },
    /// `build` was called outside a tokio runtime.
    #[error(
        "BatcherBuilder::build must be called within a tokio runtime: the batcher spawns its \
         timer and its flushes there; build it inside the runtime (in an async fn it runs, \
         or after Runtime::enter)"
    )]
    NoRuntime,
}
