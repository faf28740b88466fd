//! What [`Batcher::shutdown`](super::Batcher::shutdown) hands back.

use std::fmt;
use std::time::Duration;

use crate::fmt::Elapsed;

/// The account of a batcher's life, returned by
/// [`Batcher::shutdown`](super::Batcher::shutdown).
///
/// Every accepted item ends up in exactly one place:
///
/// | where | meaning |
/// |---|---|
/// | `flushed_items` | a flush returned `Ok` (or failed but did not hand the item back) |
/// | `failed_items` | a flush failed and handed the item back: to the `on_failure` hook, or in [`failed`](Self::failed) when there is no hook |
/// | [`unflushed`](Self::unflushed) | never handed to a flush: the grace period ran out first. Handed back, in push order |
/// | [`abandoned`](Self::abandoned) | in a flush that was still running when the grace period ran out. The flush was aborted; whether the sink applied it is **unknown** |
/// | `panicked_items` | in a flush that panicked; outcome unknown |
///
/// so `accepted == flushed_items + failed_items + unflushed.len() +
/// abandoned_items() + panicked_items` (see [`is_complete`](Self::is_complete)).
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
///     assert_eq!((report.flushed_batches, report.flushed_items), (3, 5));
///     println!("{report}");
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchReport<T> {
    /// Items the batcher accepted over its life.
    pub accepted: u64,
    /// Flushes that returned `Ok`.
    pub flushed_batches: u64,
    /// Items that were flushed.
    pub flushed_items: u64,
    /// Flushes that returned an error.
    pub failed_batches: u64,
    /// Items that failed flushes handed back (to the hook, or in
    /// [`failed`](Self::failed)).
    pub failed_items: u64,
    /// Flushes that panicked (the flush function, its future, or the failure
    /// hook).
    pub panicked_batches: u64,
    /// Items in flushes that panicked: they were moved into the flush and are
    /// gone; whether the sink applied them is unknown.
    pub panicked_items: u64,
    /// Failed flushes whose items were kept because no
    /// [`on_failure`](super::BatcherBuilder::on_failure) hook was set.
    pub failed: Vec<FailedBatch<T>>,
    /// Items that were never handed to a flush, because the grace period ran
    /// out before a flush slot was free. They are handed back here, in push
    /// order; nothing was done with them.
    pub unflushed: Vec<T>,
    /// Flushes still running when the grace period ran out. They were
    /// aborted; their items had been moved into the flush function, so they
    /// cannot be handed back, and whether the sink applied them is unknown.
    pub abandoned: Vec<AbandonedFlush>,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl<T> BatchReport<T> {
    /// Items in [`abandoned`](Self::abandoned) flushes.
    pub fn abandoned_items(&self) -> u64 {
        self.abandoned.iter().map(|flush| flush.items as u64).sum()
    }

    /// Items whose outcome is unknown: in abandoned or panicked flushes.
    pub fn unknown_items(&self) -> u64 {
        self.abandoned_items() + self.panicked_items
    }

    /// `true` if every accepted item was flushed: nothing failed, panicked,
    /// was abandoned or handed back.
    pub fn is_complete(&self) -> bool {
        self.flushed_items == self.accepted
            && self.failed_items == 0
            && self.failed_batches == 0
            && self.unknown_items() == 0
            && self.unflushed.is_empty()
    }
}

impl<T> fmt::Display for BatchReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batcher shut down in {}: {} of {} items flushed in {} batches",
            Elapsed(self.elapsed),
            self.flushed_items,
            self.accepted,
            self.flushed_batches
        )?;
        if self.failed_batches > 0 {
            write!(
                f,
                "; {} items in {} failed flushes handed back",
                self.failed_items, self.failed_batches
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
        if self.panicked_batches > 0 {
            write!(
                f,
                "; {} items in {} flushes that panicked (outcome unknown)",
                self.panicked_items, self.panicked_batches
            )?;
        }
        Ok(())
    }
}

/// A failed flush kept for the [`BatchReport`] because no failure hook was
/// set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedBatch<T> {
    /// The batch's number: batches are numbered from 0 in the order they were
    /// closed.
    pub batch: u64,
    /// The items the flush handed back.
    pub items: Vec<T>,
    /// The flush's error, as its `Display` wrote it.
    pub error: String,
}

/// A flush still running when [`Batcher::shutdown`](super::Batcher::shutdown)'s
/// grace period ran out: it was aborted, and the outcome of its items is
/// unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AbandonedFlush {
    /// The batch's number (batches are numbered from 0 in the order they were
    /// closed).
    pub batch: u64,
    /// How many items it held.
    pub items: usize,
    /// How long it had been running.
    pub running_for: Duration,
}
