//! What can go wrong around a [`Batcher`](super::Batcher): building it, pushing
//! into it, and flushing a batch.

use std::error::Error;
use std::fmt;
use std::time::Duration;

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
#[derive(Clone, PartialEq, Eq)]
pub struct PushError<T>(pub T);

impl<T> PushError<T> {
    /// The item that was not accepted.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PushError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the batcher is shut down; the item was handed back")
    }
}

impl<T> Error for PushError<T> {}

/// Why [`Batcher::try_push`](super::Batcher::try_push) did not accept an item,
/// with the item handed back.
///
/// # Examples
///
/// ```
/// use hangfree::batch::{Batcher, FlushError, TryPushError};
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
///     match batcher.try_push(3) {
///         Err(TryPushError::Full(item)) => assert_eq!(item, 3),
///         other => panic!("expected Full, got {other:?}"),
///     }
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum TryPushError<T> {
    /// `capacity` items are pending; try again after a flush has started.
    Full(T),
    /// The batcher was shut down.
    Closed(T),
}

impl<T> TryPushError<T> {
    /// The item that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            TryPushError::Full(item) | TryPushError::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPushError::Full(_) => f.debug_tuple("Full").finish_non_exhaustive(),
            TryPushError::Closed(_) => f.debug_tuple("Closed").finish_non_exhaustive(),
        }
    }
}

impl<T> fmt::Display for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPushError::Full(_) => {
                f.write_str("the batcher is at capacity; the item was handed back")
            }
            TryPushError::Closed(_) => {
                f.write_str("the batcher is shut down; the item was handed back")
            }
        }
    }
}

impl<T> Error for TryPushError<T> {}

impl<T> From<PushError<T>> for TryPushError<T> {
    fn from(err: PushError<T>) -> Self {
        TryPushError::Closed(err.0)
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
pub struct FlushError<T, E> {
    /// The items that were not flushed.
    pub items: Vec<T>,
    /// Why.
    pub error: E,
}

impl<T, E> FlushError<T, E> {
    /// A failed flush of `items` because of `error`.
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

impl<T, E: fmt::Display> fmt::Display for FlushError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "flush failed, {} items not flushed: {}",
            self.items.len(),
            self.error
        )
    }
}

impl<T, E: Error + 'static> Error for FlushError<T, E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.error)
    }
}

/// A [`BatcherBuilder`](super::BatcherBuilder) setting that cannot work.
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
///     println!("{err}");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_items(0)`: no batch could hold an item.
    #[error("max_items is 0: a batch must be able to hold at least one item")]
    ZeroMaxItems,
    /// `max_delay(0)` with `max_items > 1`.
    #[error(
        "max_delay is 0 with max_items = {max_items}: batches would be flushed as soon as they \
         open, so their size would depend on scheduling, not on max_items; use max_items(1) \
         for one flush per item, or give max_delay a few milliseconds"
    )]
    ZeroMaxDelay {
        /// The configured `max_items`.
        max_items: usize,
    },
    /// `max_in_flight(0)`: no flush could ever run.
    #[error("max_in_flight is 0: at least one flush must be allowed to run")]
    ZeroMaxInFlight,
    /// `capacity` below `max_items`: a batch could never fill.
    #[error(
        "capacity ({capacity}) is smaller than max_items ({max_items}): a full batch could \
         never form; capacity must be at least max_items"
    )]
    CapacityBelowMaxItems {
        /// The configured `capacity`.
        capacity: usize,
        /// The configured `max_items`.
        max_items: usize,
    },
    /// A deadline margin larger than `max_delay`.
    #[error(
        "deadline_margin ({margin:?}) is larger than max_delay ({max_delay:?}): the margin is \
         meant to cover one flush's latency, and if a flush takes longer than max_delay, \
         batches under low load fall due faster than they complete; make max_delay at least \
         the margin"
    )]
    MarginExceedsMaxDelay {
        /// The configured margin.
        margin: Duration,
        /// The configured `max_delay`.
        max_delay: Duration,
    },
    /// `build` was called outside a tokio runtime.
    #[error(
        "Batcher::build must be called within a tokio runtime: the batcher spawns its timer \
         and its flushes there"
    )]
    NoRuntime,
}
