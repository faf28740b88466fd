use std::time::Duration;

use futures_core::Stream;

use super::{Limits, Watchdog};

/// Watchdog methods for every [`Stream`]; import them with
/// `use hangfree::prelude::*;`.
pub trait StreamExt: Stream {
    /// Watches this stream with `limits`: items pass through as `Ok`; when a
    /// limit trips, the stream yields one `Err(Stalled)`, drops the source
    /// and ends.
    ///
    /// The idle clock measures the source, not the consumer: it starts when
    /// the source returns `Pending` and stops when the source wakes its task
    /// or yields. A consumer that takes its time between polls never causes
    /// a stall, and the source is always polled before a stall is declared,
    /// except when a [`total`](super::Limits::total) budget is spent.
    ///
    /// Items are opaque: a stream of `Result<T, E>` passes its own errors
    /// through as `Ok(Err(e))` and keeps going after them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::prelude::*;
    /// use hangfree::watchdog::{Limits, StallKind};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     // Three rows, then the server stops sending without closing.
    ///     let rows = futures::stream::iter([1, 2, 3]).chain(futures::stream::pending());
    ///     let mut rows = rows.watchdog(
    ///         Limits::new()
    ///             .first_item(Duration::from_secs(15 * 60))
    ///             .idle(Duration::from_secs(60)),
    ///     );
    ///     assert_eq!(rows.next().await, Some(Ok(1)));
    ///     assert_eq!(rows.next().await, Some(Ok(2)));
    ///     assert_eq!(rows.next().await, Some(Ok(3)));
    ///     let stalled = rows.next().await.unwrap().unwrap_err();
    ///     assert_eq!(stalled.kind(), StallKind::Idle);
    ///     assert_eq!(rows.next().await, None);
    /// }
    /// ```
    fn watchdog(self, limits: Limits) -> Watchdog<Self>
    where
        Self: Sized,
    {
        Watchdog::new(self, limits)
    }

    /// Short for `self.watchdog(Limits::new().idle(idle))`: the source may
    /// stay `Pending` for at most `idle` between items.
    ///
    /// # Panics
    ///
    /// Panics if `idle` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::prelude::*;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let mut ticks = futures::stream::iter(0..3)
    ///         .chain(futures::stream::pending())
    ///         .idle_timeout(Duration::from_secs(5));
    ///     let mut seen = 0;
    ///     while let Some(tick) = ticks.next().await {
    ///         match tick {
    ///             Ok(_) => seen += 1,
    ///             Err(stalled) => {
    ///                 assert_eq!(stalled.waited(), Duration::from_secs(5));
    ///             }
    ///         }
    ///     }
    ///     assert_eq!(seen, 3);
    /// }
    /// ```
    #[track_caller]
    fn idle_timeout(self, idle: Duration) -> Watchdog<Self>
    where
        Self: Sized,
    {
        Watchdog::new(self, Limits::new().idle(idle))
    }
}

impl<S: ?Sized + Stream> StreamExt for S {}
