//! What [`Batcher::shutdown`](super::Batcher::shutdown) hands back: the
//! [`BatchReport`], its [`FailedBatch`]es and [`AbandonedFlush`]es, and the
//! [`Counts`] the batcher keeps for it while it runs.

use std::fmt;
use std::time::Duration;

use crate::fmt::Elapsed;

/// The counters behind a [`BatchReport`], kept under the batcher's lock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) accepted: u64,
    pub(super) flushed_batches: u64,
    pub(super) flushed_items: u64,
    pub(super) failed_batches: u64,
    pub(super) failed_items: u64,
    pub(super) panicked_batches: u64,
    pub(super) panicked_items: u64,
}

/// The account of a batcher's life, returned by
/// [`Batcher::shutdown`](super::Batcher::shutdown).
///
/// Every accepted item ends up in exactly one place:
///
/// | where | meaning |
/// |---|---|
/// | [`flushed_items`](Self::flushed_items) | a flush returned `Ok` (or failed but did not hand the item back) |
/// | [`failed_items`](Self::failed_items) | a flush failed and handed the item back: to the `on_failure` hook, or in [`failed`](Self::failed) when there is no hook |
/// | [`unflushed`](Self::unflushed) | never handed to a flush: the grace period ran out first. Handed back, in push order |
/// | [`abandoned`](Self::abandoned) | in a flush that was still running when the grace period ran out. The flush was aborted; whether the sink applied it is **unknown** |
/// | [`panicked_items`](Self::panicked_items) | in a flush that panicked; outcome unknown |
///
/// so `accepted == flushed_items + failed_items + unflushed.len() +
/// abandoned_items + panicked_items` (see [`is_complete`](Self::is_complete)).
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
///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
///         .unwrap();
///     for n in 0..5 {
///         batcher.push(n).await.unwrap();
///     }
///     let report = batcher.shutdown(Duration::from_secs(5)).await;
///     assert!(report.is_complete());
///     assert_eq!((report.flushed_batches(), report.flushed_items()), (3, 5));
///     println!("{report}");
/// }
/// ```
#[derive(Debug)]
pub struct BatchReport<T> {
    counts: Counts,
    failed: Vec<FailedBatch<T>>,
    unflushed: Vec<T>,
    abandoned: Vec<AbandonedFlush>,
    elapsed: Duration,
}

impl<T> BatchReport<T> {
    pub(super) fn new(
        counts: Counts,
        failed: Vec<FailedBatch<T>>,
        unflushed: Vec<T>,
        abandoned: Vec<AbandonedFlush>,
        elapsed: Duration,
    ) -> Self {
        BatchReport {
            counts,
            failed,
            unflushed,
            abandoned,
            elapsed,
        }
    }

    /// Items the batcher accepted over its life.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted
    }

    /// Flushes that returned `Ok`.
    pub fn flushed_batches(&self) -> u64 {
        self.counts.flushed_batches
    }

    /// Items that were flushed.
    pub fn flushed_items(&self) -> u64 {
        self.counts.flushed_items
    }

    /// Flushes that returned an error.
    pub fn failed_batches(&self) -> u64 {
        self.counts.failed_batches
    }

    /// Items that failed flushes handed back (to the hook, or in
    /// [`failed`](Self::failed)).
    pub fn failed_items(&self) -> u64 {
        self.counts.failed_items
    }

    /// Flushes that panicked (the flush function, its future, or the failure
    /// hook).
    pub fn panicked_batches(&self) -> u64 {
        self.counts.panicked_batches
    }

    /// Items in flushes that panicked: they were moved into the flush and are
    /// gone; whether the sink applied them is unknown.
    pub fn panicked_items(&self) -> u64 {
        self.counts.panicked_items
    }

    /// Failed flushes whose items were kept because no
    /// [`on_failure`](super::BatcherBuilder::on_failure) hook was set.
    pub fn failed(&self) -> &[FailedBatch<T>] {
        &self.failed
    }

    /// Items that were never handed to a flush, because the grace period ran
    /// out before a flush slot was free, in push order; nothing was done with
    /// them. [`into_handed_back`](Self::into_handed_back) hands them over.
    pub fn unflushed(&self) -> &[T] {
        &self.unflushed
    }

    /// Flushes still running when the grace period ran out. They were
    /// aborted; their items had been moved into the flush function, so they
    /// cannot be handed back, and whether the sink applied them is unknown.
    pub fn abandoned(&self) -> &[AbandonedFlush] {
        &self.abandoned
    }

    /// How long the shutdown took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Items in [`abandoned`](Self::abandoned) flushes.
    pub fn abandoned_items(&self) -> u64 {
        self.abandoned.iter().map(|flush| flush.items as u64).sum()
    }

    /// Items whose outcome is unknown: in abandoned or panicked flushes.
    pub fn unknown_items(&self) -> u64 {
        self.abandoned_items() + self.counts.panicked_items
    }

    /// `true` if every accepted item was flushed: nothing failed, panicked,
    /// was abandoned or handed back.
    pub fn is_complete(&self) -> bool {
        self.counts.flushed_items == self.counts.accepted
            && self.counts.failed_items == 0
            && self.counts.failed_batches == 0
            && self.unknown_items() == 0
            && self.unflushed.is_empty()
    }

    /// Every item the report hands back, taken out of it: those never
    /// flushed ([`unflushed`](Self::unflushed), in push order) and the failed
    /// batches kept without a hook ([`failed`](Self::failed)), to retry or
    /// release elsewhere.
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
    ///     .max_items(1)
    ///     .build(|items: Vec<u32>| async move {
    ///         Err(FlushError::new(items, "broker down".to_string()))
    ///     })
    ///     .unwrap();
    /// batcher.push(7).await.unwrap();
    /// let report = batcher.shutdown(Duration::from_secs(1)).await;
    /// let (unflushed, failed) = report.into_handed_back();
    /// assert!(unflushed.is_empty());
    /// assert_eq!(failed[0].items(), [7]);
    /// # }
    /// ```
    pub fn into_handed_back(self) -> (Vec<T>, Vec<FailedBatch<T>>) {
        (self.unflushed, self.failed)
    }
}

impl<T> fmt::Display for BatchReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = &self.counts;
        write!(
            f,
            "batcher shut down in {}: {} of {} items flushed in {} batches",
            Elapsed(self.elapsed),
            counts.flushed_items,
            counts.accepted,
            counts.flushed_batches
        )?;
        if counts.failed_batches > 0 {
            write!(
                f,
                "; {} items in {} failed flushes handed back",
                counts.failed_items, counts.failed_batches
            )?;
        }
        if !self.unflushed.is_empty() {
            write!(
                f,
                "; {} items never flushed (handed back)",
                self.unflushed.len()
            )?;
        }
        if !self.abandoned.is_empty() {
            write!(
                f,
                "; {} items in {} flushes still running when the grace period ran out, \
                 aborted (outcome unknown)",
                self.abandoned_items(),
                self.abandoned.len()
            )?;
        }
        if counts.panicked_batches > 0 {
            write!(
                f,
                "; {} items in {} flushes that panicked (outcome unknown)",
                counts.panicked_items, counts.panicked_batches
            )?;
        }
        Ok(())
    }
}

/// A failed flush kept for the [`BatchReport`] because no failure hook was
/// set.
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
///     .max_items(2)
///     .build(|items: Vec<u32>| async move {
///         Err(FlushError::new(items, "connection reset".to_string()))
///     })
///     .unwrap();
/// batcher.push(1).await.unwrap();
/// batcher.push(2).await.unwrap();
/// let report = batcher.shutdown(Duration::from_secs(1)).await;
/// let failed = &report.failed()[0];
/// assert_eq!((failed.batch(), failed.items(), failed.error()), (0, &[1, 2][..], "connection reset"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBatch<T> {
    batch: u64,
    items: Vec<T>,
    error: String,
}

impl<T> FailedBatch<T> {
    pub(super) fn new(batch: u64, items: Vec<T>, error: String) -> Self {
        FailedBatch {
            batch,
            items,
            error,
        }
    }

    /// The batch's number: batches are numbered from 0 in the order they were
    /// closed.
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The items the flush handed back.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The items the flush handed back, taken out.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }

    /// The flush's error, as its `Display` wrote it.
    pub fn error(&self) -> &str {
        &self.error
    }
}

/// A flush still running when [`Batcher::shutdown`](super::Batcher::shutdown)'s
/// grace period ran out: it was aborted, and the outcome of its items is
/// unknown.
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
///     .max_items(3)
///     .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
///     .unwrap();
/// for n in 0..3 {
///     batcher.push(n).await.unwrap();
/// }
/// let report = batcher.shutdown(Duration::from_secs(2)).await;
/// let hung = &report.abandoned()[0];
/// assert_eq!((hung.batch(), hung.items()), (0, 3));
/// assert_eq!(hung.running_for(), Duration::from_secs(2));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbandonedFlush {
    batch: u64,
    items: usize,
    running_for: Duration,
}

impl AbandonedFlush {
    pub(super) fn new(batch: u64, items: usize, running_for: Duration) -> Self {
        AbandonedFlush {
            batch,
            items,
            running_for,
        }
    }

    /// The batch's number (batches are numbered from 0 in the order they were
    /// closed).
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// How many items it held.
    pub fn items(&self) -> usize {
        self.items
    }

    /// How long it had been running.
    pub fn running_for(&self) -> Duration {
        self.running_for
    }
}
