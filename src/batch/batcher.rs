//! [`Batcher`]: the handle producers push into, and what it asks of the
//! shared state. `Batcher::builder` is in `builder.rs`, which builds the
//! batcher; this file knows nothing of the builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::TryPushError;
use super::push::Push;
use super::report::BatchReport;
use super::state::BatcherState;

/// Collects items into batches and hands each batch to a flush function: when
/// the batch is full, when its oldest item has waited `max_delay`, or at the
/// earliest item deadline minus the margin — whichever comes first.
///
/// A `Batcher` is a cheap handle: clone it for every producer. Dropping the
/// last handle without [`shutdown`](Self::shutdown) closes the batcher and
/// flushes what is pending in the background (with nobody to report to).
///
/// See the [module documentation](super) for the flush rule in a picture and
/// for message completions with a lock duration.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::batch::{Batcher, FlushError};
/// use tokio::time::Instant;
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let (flushed, mut flushes) = tokio::sync::mpsc::unbounded_channel();
///     let batcher = Batcher::builder()
///         .max_items(100)
///         .max_delay(Duration::from_secs(5))
///         .build(move |tokens: Vec<&'static str>| {
///             flushed.send((Instant::now(), tokens)).unwrap();
///             async { Ok::<(), FlushError<_, String>>(()) }
///         })
///         .unwrap();
///     let start = Instant::now();
///     batcher.push("lock-token-1").await.unwrap();
///
///     // One message under low load: flushed 5 s later, not after 99 more.
///     let (at, tokens) = flushes.recv().await.unwrap();
///     assert_eq!(at - start, Duration::from_secs(5));
///     assert_eq!(tokens, ["lock-token-1"]);
/// }
/// ```
pub struct Batcher<T: Send + 'static> {
    state: Arc<BatcherState<T>>,
}

impl<T: Send + 'static> Batcher<T> {
    pub(super) fn from_state(state: Arc<BatcherState<T>>) -> Self {
        Batcher { state }
    }

    #[cfg(feature = "sink")]
    pub(super) fn state(&self) -> &Arc<BatcherState<T>> {
        &self.state
    }

    /// Adds `item` to the open batch, waiting while `capacity` items are
    /// pending. Returns the item in the error if the batcher is shut down
    /// (also while waiting).
    ///
    /// When room is available this does not yield and costs one lock; it
    /// reads the clock only for the first item of a batch.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the item was not
    /// accepted and is dropped with the future; nothing else changes. A push
    /// polled through `&mut` (in a `select!`) gives the item back with
    /// [`Push::into_item`].
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
    ///     batcher.push(1).await.unwrap();
    ///     assert_eq!(batcher.pending(), 1);
    ///     let report = batcher.shutdown(Duration::from_secs(1)).await;
    ///     assert_eq!(report.flushed_items(), 1);
    /// }
    /// ```
    pub fn push(&self, item: T) -> Push<'_, T> {
        Push::new(&self.state, item, None)
    }

    /// Like [`push`](Self::push), and the item's batch is flushed no later
    /// than `deadline - margin` (the builder's
    /// [`deadline_margin`](super::BatcherBuilder::deadline_margin)), if a flush
    /// slot is free then. Use it for items that expire: a message lock that
    /// must be completed before it runs out. A deadline that has already
    /// passed (after the margin) flushes the batch at once.
    ///
    /// # Cancel safety
    ///
    /// As for [`push`](Self::push).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{Batcher, FlushError};
    /// use tokio::time::Instant;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (flushed, mut flushes) = tokio::sync::mpsc::unbounded_channel();
    ///     let batcher = Batcher::builder()
    ///         .max_delay(Duration::from_secs(5))
    ///         .deadline_margin(Duration::from_secs(1))
    ///         .build(move |tokens: Vec<u32>| {
    ///             flushed.send((Instant::now(), tokens)).unwrap();
    ///             async { Ok::<(), FlushError<u32, String>>(()) }
    ///         })
    ///         .unwrap();
    ///     let start = Instant::now();
    ///     // This lock expires in 3 s: complete it by 2 s, not after max_delay.
    ///     batcher.push_by(7, start + Duration::from_secs(3)).await.unwrap();
    ///     let (at, tokens) = flushes.recv().await.unwrap();
    ///     assert_eq!((at - start, tokens), (Duration::from_secs(2), vec![7]));
    /// }
    /// ```
    pub fn push_by(&self, item: T, deadline: Instant) -> Push<'_, T> {
        Push::new(&self.state, item, Some(deadline))
    }

    /// Adds `item` without waiting: hands it back in
    /// a [`TryPushError`] that [`is_full`](TryPushError::is_full) when
    /// `capacity` items are pending, or
    /// [`is_closed`](TryPushError::is_closed) after shutdown. Works from any
    /// thread, also
    /// outside the runtime.
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
    ///     batcher.try_push(1).unwrap();
    ///     batcher.shutdown(Duration::from_secs(1)).await;
    ///     let refused = batcher.try_push(2).unwrap_err();
    ///     assert!(refused.is_closed());
    ///     assert_eq!(refused.into_inner(), 2);
    /// }
    /// ```
    pub fn try_push(&self, item: T) -> Result<(), TryPushError<T>> {
        self.try_push_inner(item, None)
    }

    /// [`try_push`](Self::try_push) with a deadline, as in
    /// [`push_by`](Self::push_by).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{Batcher, FlushError};
    /// use tokio::time::Instant;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let batcher = Batcher::builder()
    ///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
    ///         .unwrap();
    ///     batcher.try_push_by(1, Instant::now() + Duration::from_millis(300)).unwrap();
    /// }
    /// ```
    pub fn try_push_by(&self, item: T, deadline: Instant) -> Result<(), TryPushError<T>> {
        self.try_push_inner(item, Some(deadline))
    }

    fn try_push_inner(&self, item: T, deadline: Option<Instant>) -> Result<(), TryPushError<T>> {
        self.state
            .insert(item, deadline.as_ref())
            .map_err(TryPushError::new)
    }

    /// Closes the open batch now, without waiting for it to fill or become
    /// due, and waits until every batch closed so far has finished flushing
    /// (successfully or not: failures go to the failure hook as usual).
    ///
    /// It waits for the flush function however long it takes; to bound the
    /// wait, put a timeout around it, or use [`shutdown`](Self::shutdown).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future only stops the waiting: the batch was already
    /// closed and its flush goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let sink = Arc::new(Mutex::new(Vec::new()));
    ///     let batcher = Batcher::builder()
    ///         .build({
    ///             let sink = Arc::clone(&sink);
    ///             move |items: Vec<u32>| {
    ///                 let sink = Arc::clone(&sink);
    ///                 async move {
    ///                     sink.lock().unwrap().extend(items);
    ///                     Ok::<(), FlushError<u32, String>>(())
    ///                 }
    ///             }
    ///         })
    ///         .unwrap();
    ///     batcher.push(1).await.unwrap();
    ///     batcher.push(2).await.unwrap();
    ///     batcher.flush().await;
    ///     assert_eq!(*sink.lock().unwrap(), [1, 2]);
    /// }
    /// ```
    pub async fn flush(&self) {
        self.state.flush_sealed().await;
    }

    /// Stops accepting items and flushes everything pending; waits up to
    /// `grace` for the flushes; then gives up on the rest and reports.
    ///
    /// At once: every later `push` hands its item back (also pushes waiting
    /// for room), and the open batch is closed. Batches then start as flush
    /// slots allow. When everything has finished, or when `grace` runs out,
    /// it returns a [`BatchReport`]: counts of flushed, failed and panicked
    /// items; batches that never started, **handed back** in
    /// [`unflushed`](BatchReport::unflushed); and flushes still running,
    /// which are aborted and listed in
    /// [`abandoned`](BatchReport::abandoned) with their item counts, because
    /// their items were moved into the flush function and whether the sink
    /// applied them is unknown.
    ///
    /// It returns within about `grace`, even if a flush never completes or
    /// blocks its thread: past `grace` it only has to be woken and take the
    /// account (one lock, no user code), a few milliseconds unless the
    /// machine is overloaded. On a multi-thread runtime tokio's timers are
    /// driven by the worker threads, so when flushes that block (a
    /// synchronous call inside the flush) pin every worker, no timer fires;
    /// a shutdown that has to wait therefore also sets an alarm on hangfree's
    /// one process-wide alarm thread (parked while nothing is due), which
    /// wakes it at `grace` in real time. The grace period is still read from
    /// tokio's clock, so under a paused clock the timings are exactly
    /// tokio's. An abandoned flush that blocks its thread keeps it until it
    /// returns; what it returns is not counted again.
    ///
    /// The one limit: the shutdown future must be polled. Awaited from
    /// `block_on`, another runtime or a free worker, it returns on time;
    /// awaited inside a task of a runtime whose every worker is pinned, it
    /// cannot run until a worker frees.
    ///
    /// A `grace` too long to add to the current instant (such as
    /// `Duration::MAX`) is no limit, not clamped: `shutdown` then waits for
    /// every flush, however long, as [`flush`](Self::flush) does, and
    /// abandons nothing.
    ///
    /// Call it once; a second call returns the counts again but has nothing
    /// left to hand back.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the batcher stays closed and its flushes go
    /// on; nothing is handed back or aborted, and a later `shutdown` call
    /// takes the account.
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
    ///         .max_items(2)
    ///         // A sink that hangs: shutdown must still return.
    ///         .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
    ///         .unwrap();
    ///     for n in 0..5 {
    ///         batcher.push(n).await.unwrap();
    ///     }
    ///     let report = batcher.shutdown(Duration::from_secs(3)).await;
    ///     assert_eq!(report.elapsed(), Duration::from_secs(3));
    ///     assert_eq!(report.abandoned_items(), 2); // [0, 1]: outcome unknown
    ///     assert_eq!(report.unflushed(), [2, 3, 4]); // never started: handed back
    ///     assert!(batcher.push(5).await.is_err());
    /// }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> BatchReport<T> {
        self.state.shutdown_within(grace).await
    }

    /// Items accepted but not yet handed to a flush.
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
    ///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
    ///         .unwrap();
    ///     batcher.push(1).await.unwrap();
    ///     assert_eq!(batcher.pending(), 1);
    /// }
    /// ```
    pub fn pending(&self) -> usize {
        self.state.pending()
    }

    /// Flushes running now.
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
    ///         .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
    ///         .unwrap();
    ///     batcher.push(1).await.unwrap();
    ///     tokio::task::yield_now().await;
    ///     assert_eq!(batcher.in_flight(), 1);
    /// }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.state.in_flight()
    }

    /// `true` once [`shutdown`](Self::shutdown) has begun (or every handle
    /// was dropped).
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
    ///     assert!(!batcher.is_closed());
    ///     batcher.shutdown(Duration::from_secs(1)).await;
    ///     assert!(batcher.is_closed());
    /// }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state.is_closed()
    }
}

impl<T: Send + 'static> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        self.state.add_handle();
        Batcher {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T: Send + 'static> Drop for Batcher<T> {
    fn drop(&mut self) {
        self.state.drop_handle();
    }
}

impl<T: Send + 'static> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("config", &self.state.config)
            .field("pending", &self.pending())
            .field("in_flight", &self.in_flight())
            .field("closed", &self.is_closed())
            .finish()
    }
}
