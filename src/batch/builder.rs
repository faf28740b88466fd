//! [`BatcherBuilder`]: the settings of a [`Batcher`], their defaults and
//! their validation, and `build`, which puts the flush function behind its
//! failure policy and starts the batcher.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::batcher::Batcher;
use super::driver::Driver;
use super::error::{BuildError, FlushError};
use super::flush::{self, FailurePolicy, Hook};
use super::runner::Runner;
use super::state::{BatcherState, Config};

impl<T: Send + 'static> Batcher<T> {
    /// Starts configuring a batcher; see [`BatcherBuilder`] for the settings
    /// and their defaults.
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
    ///         .max_items(50)
    ///         .build(|ids: Vec<u64>| async move {
    ///             println!("{ids:?}");
    ///             Ok::<(), FlushError<u64, String>>(())
    ///         })
    ///         .unwrap();
    ///     batcher.push(1).await.unwrap();
    /// }
    /// ```
    pub fn builder<E>() -> BatcherBuilder<T, E> {
        BatcherBuilder::new()
    }
}

/// Settings for a [`Batcher`], made by [`Batcher::builder`].
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`max_items`](Self::max_items) | 100 | a batch is flushed when it holds this many items |
/// | [`max_delay`](Self::max_delay) | 1 s | …or when its oldest item has waited this long |
/// | [`deadline_margin`](Self::deadline_margin) | 0 | …or this long before the earliest deadline given to [`push_by`](Batcher::push_by) |
/// | [`max_in_flight`](Self::max_in_flight) | 1 | flushes running at once; more batches wait, in order |
/// | [`capacity`](Self::capacity) | 10 × `max_items` | items accepted but not yet handed to a flush; [`push`](Batcher::push) waits beyond it |
/// | [`on_failure`](Self::on_failure) | none: failures are kept for the [`BatchReport`](super::BatchReport) | what to do with the items of a failed flush |
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
///         .max_items(100)
///         .max_delay(Duration::from_millis(200))
///         .deadline_margin(Duration::from_millis(100))
///         .max_in_flight(4)
///         .capacity(10_000)
///         .on_failure(|failed: FlushError<u64, std::io::Error>| {
///             eprintln!("{} acks not sent: {}", failed.items.len(), failed.error);
///         })
///         .build(|acks: Vec<u64>| async move {
///             println!("acknowledging {} messages", acks.len());
///             Ok(())
///         })
///         .unwrap();
///     batcher.push(1).await.unwrap();
///     batcher.shutdown(Duration::from_secs(5)).await;
/// }
/// ```
pub struct BatcherBuilder<T, E> {
    max_items: usize,
    max_delay: Duration,
    max_in_flight: usize,
    capacity: Option<usize>,
    margin: Duration,
    on_failure: Option<Hook<T, E>>,
}

impl<T, E> BatcherBuilder<T, E> {
    fn new() -> Self {
        BatcherBuilder {
            max_items: 100,
            max_delay: Duration::from_secs(1),
            max_in_flight: 1,
            capacity: None,
            margin: Duration::ZERO,
            on_failure: None,
        }
    }

    /// A batch is flushed as soon as it holds `max_items` items. At least 1.
    pub fn max_items(mut self, max_items: usize) -> Self {
        self.max_items = max_items;
        self
    }

    /// A batch is flushed at the latest when its oldest item has waited
    /// `max_delay` (if a flush slot is free). Zero only with `max_items(1)`.
    ///
    /// A delay too long to add to an instant (such as `Duration::MAX`) is no
    /// age limit, not clamped: batches are then flushed only when full, by a
    /// [`push_by`](Batcher::push_by) deadline, or by
    /// [`flush`](Batcher::flush) and [`shutdown`](Batcher::shutdown).
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
    ///         .max_delay(Duration::from_millis(200))
    ///         .build(move |items: Vec<u32>| {
    ///             flushed.send((Instant::now(), items)).unwrap();
    ///             async { Ok::<(), FlushError<u32, String>>(()) }
    ///         })
    ///         .unwrap();
    ///     let start = Instant::now();
    ///     batcher.push(1).await.unwrap();
    ///     let (at, items) = flushes.recv().await.unwrap();
    ///     assert_eq!((at - start, items), (Duration::from_millis(200), vec![1]));
    /// }
    /// ```
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// An item pushed with [`push_by(item, deadline)`](Batcher::push_by) is
    /// flushed at the latest at `deadline - margin`: set it to how long one
    /// flush may take, so it completes before the deadline. At most
    /// `max_delay`.
    ///
    /// A margin longer than the time left before a deadline makes that
    /// item's batch due at once. So does one longer than any instant can
    /// reach back (`Duration::MAX`, with `max_delay(Duration::MAX)`): the
    /// subtraction that cannot be represented means "due now", not clamped.
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
    ///         .build(move |items: Vec<u32>| {
    ///             flushed.send((Instant::now(), items)).unwrap();
    ///             async { Ok::<(), FlushError<u32, String>>(()) }
    ///         })
    ///         .unwrap();
    ///     let start = Instant::now();
    ///     batcher.push_by(1, start + Duration::from_secs(3)).await.unwrap();
    ///     // A lock that expires in 0.5 s: inside the margin, flushed at once.
    ///     batcher.push_by(2, Instant::now() + Duration::from_millis(500)).await.unwrap();
    ///     let (at, items) = flushes.recv().await.unwrap();
    ///     assert_eq!((at - start, items), (Duration::ZERO, vec![1, 2]));
    /// }
    /// ```
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How many flushes may run at once. At least 1. While all are busy,
    /// further batches wait in the order they were closed; a batch that is
    /// due meanwhile keeps accepting items up to `max_items`.
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// How many items may be accepted but not yet handed to a flush; beyond
    /// it, [`push`](Batcher::push) waits and [`try_push`](Batcher::try_push)
    /// hands the item back. At least `max_items`.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Hands the items and the error of every failed flush to `hook`.
    ///
    /// The hook runs on the flush's task, synchronously: keep it short (send
    /// the items to a channel, abandon the messages, count a metric). Without
    /// a hook, failed batches are kept until [`shutdown`](Batcher::shutdown)
    /// returns them in [`BatchReport::failed`](super::BatchReport::failed),
    /// which in a long-running service means they accumulate: set a hook
    /// there.
    pub fn on_failure<H>(mut self, hook: H) -> Self
    where
        H: Fn(FlushError<T, E>) + Send + Sync + 'static,
    {
        self.on_failure = Some(Arc::new(hook));
        self
    }

    /// Checks the settings and starts the batcher: `flush(items)` is called
    /// for every batch, items in push order.
    ///
    /// A flush returns `Ok(())`, or a [`FlushError`] with the items it did
    /// not flush and why. The error type only needs `Display` (so `String`,
    /// `anyhow::Error` and every `std::error::Error` work): it is written into
    /// the report and log events when there is no hook; a hook gets it as is.
    ///
    /// Must be called within a tokio runtime: the batcher runs its timer and
    /// its flushes there.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting that cannot work, or
    /// [`BuildError::NoRuntime`].
    pub fn build<F, Fut>(self, flush: F) -> Result<Batcher<T>, BuildError>
    where
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), FlushError<T, E>>> + Send + 'static,
    {
        let config = self.validate()?;
        let runner = Runner::current()?;
        let flush = flush::with_policy(flush, FailurePolicy::new(self.on_failure));
        let state = Arc::new(BatcherState::new(config, flush, runner));
        state.runner.spawn(Driver::new(Arc::clone(&state)));
        Ok(Batcher::from_state(state))
    }

    fn validate(&self) -> Result<Config, BuildError> {
        if self.max_items == 0 {
            return Err(BuildError::ZeroMaxItems);
        }
        if self.max_delay.is_zero() && self.max_items > 1 {
            return Err(BuildError::ZeroMaxDelay {
                max_items: self.max_items,
            });
        }
        if self.max_in_flight == 0 {
            return Err(BuildError::ZeroMaxInFlight);
        }
        if self.margin > self.max_delay {
            return Err(BuildError::MarginExceedsMaxDelay {
                margin: self.margin,
                max_delay: self.max_delay,
            });
        }
        let capacity = self
            .capacity
            .unwrap_or_else(|| self.max_items.saturating_mul(10));
        if capacity < self.max_items {
            return Err(BuildError::CapacityBelowMaxItems {
                capacity,
                max_items: self.max_items,
            });
        }
        Ok(Config {
            max_items: self.max_items,
            max_delay: self.max_delay,
            max_in_flight: self.max_in_flight,
            capacity,
            margin: self.margin,
        })
    }
}

impl<T, E> fmt::Debug for BatcherBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatcherBuilder")
            .field("max_items", &self.max_items)
            .field("max_delay", &self.max_delay)
            .field("deadline_margin", &self.margin)
            .field("max_in_flight", &self.max_in_flight)
            .field("capacity", &self.capacity)
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}
