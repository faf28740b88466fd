use std::time::Duration;

/// The limits a watchdog enforces on a stream, a reader or a writer.
///
/// Every limit is optional; a `Limits::new()` with nothing set watches
/// nothing. Limits are built with chained setters, each of which rejects a
/// zero value at once (see `# Panics`), so a typo in a configuration file
/// cannot produce a stream that stalls on its first poll.
///
/// | limit | what it bounds | clock |
/// |---|---|---|
/// | [`idle`](Limits::idle) | the wait for the next item | runs only while the source is `Pending` |
/// | [`first_item`](Limits::first_item) | the wait for the first item (replaces `idle` until then) | runs only while the source is `Pending` |
/// | [`total`](Limits::total) | the whole stream, consumer time included | runs from the first poll |
/// | [`min_rate`](Limits::min_rate) | progress per window of waiting | runs only while the source is `Pending`; with `first_item`, from the first progress on |
///
/// Progress is counted in items on a [`Watchdog`](super::Watchdog) and in
/// bytes on an [`IoWatchdog`](super::IoWatchdog).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::Limits;
///
/// // A query may think for up to 15 minutes before its first row; after
/// // that, a minute without a row is a stall, and the export as a whole
/// // gets two hours.
/// let limits = Limits::new()
///     .first_item(Duration::from_secs(15 * 60))
///     .idle(Duration::from_secs(60))
///     .total(Duration::from_secs(2 * 3600));
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    pub(crate) idle: Option<Duration>,
    pub(crate) first_item: Option<Duration>,
    pub(crate) total: Option<Duration>,
    pub(crate) min_rate: Option<MinRate>,
}

/// A minimum rate: at least `amount` units of progress per `window` of
/// waiting on the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MinRate {
    pub(crate) amount: u64,
    pub(crate) window: Duration,
}

impl Limits {
    /// Limits with nothing set: a watchdog built from them never trips.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::watchdog::Limits;
    ///
    /// assert_eq!(Limits::new(), Limits::default());
    /// ```
    pub const fn new() -> Self {
        Limits {
            idle: None,
            first_item: None,
            total: None,
            min_rate: None,
        }
    }

    /// The longest the source may stay `Pending` before its next item.
    ///
    /// The idle clock measures the source, not the consumer: it starts when
    /// the source returns `Pending` and stops when the source wakes its task
    /// (or yields). Time the consumer spends between polls never counts. The
    /// waits of a source that wakes without yielding an item add up: the
    /// limit bounds the waiting since the last item.
    ///
    /// # Panics
    ///
    /// Panics if `idle` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::Limits;
    ///
    /// let limits = Limits::new().idle(Duration::from_secs(60));
    /// # let _ = limits;
    /// ```
    #[track_caller]
    #[must_use]
    pub fn idle(mut self, idle: Duration) -> Self {
        assert!(!idle.is_zero(), "Limits::idle must be greater than zero");
        self.idle = Some(idle);
        self
    }

    /// The longest the source may stay `Pending` before its first item.
    ///
    /// Until the first item arrives this limit replaces [`idle`](Self::idle);
    /// a database query may legitimately think for minutes before its first
    /// row, then stream rows quickly.
    ///
    /// # Panics
    ///
    /// Panics if `first_item` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::Limits;
    ///
    /// let limits = Limits::new()
    ///     .first_item(Duration::from_secs(15 * 60))
    ///     .idle(Duration::from_secs(60));
    /// # let _ = limits;
    /// ```
    #[track_caller]
    #[must_use]
    pub fn first_item(mut self, first_item: Duration) -> Self {
        assert!(
            !first_item.is_zero(),
            "Limits::first_item must be greater than zero"
        );
        self.first_item = Some(first_item);
        self
    }

    /// The budget for the whole stream, counted from its first poll.
    ///
    /// Unlike the other limits this one is a budget of wall time: the
    /// consumer's own time counts too. It ends a source that keeps trickling
    /// items just inside `idle` for ever.
    ///
    /// Once the budget is spent the stream ends (one
    /// [`StallKind::Total`](super::StallKind::Total)) without polling the
    /// source again, even if items are ready. An always-ready source is
    /// stopped too: its timer is checked on every item, and the clock is
    /// read every 64 items for a consumer that never lets the runtime's
    /// timer run, so the budget may be overrun by at most 64 items' worth of
    /// the consumer's work.
    ///
    /// # Panics
    ///
    /// Panics if `total` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::Limits;
    ///
    /// let limits = Limits::new().total(Duration::from_secs(2 * 3600));
    /// # let _ = limits;
    /// ```
    #[track_caller]
    #[must_use]
    pub fn total(mut self, total: Duration) -> Self {
        assert!(!total.is_zero(), "Limits::total must be greater than zero");
        self.total = Some(total);
        self
    }

    /// At least `amount` units of progress (bytes on an
    /// [`IoWatchdog`](super::IoWatchdog), items on a
    /// [`Watchdog`](super::Watchdog)) per `window` spent waiting on the source.
    ///
    /// This catches a peer that drip-feeds a byte at a time, each just inside
    /// `idle`. Like the idle clock, the window only advances while the
    /// source is `Pending`, so a slow consumer never makes the source look
    /// slow. A window is judged when it ends: a source below the rate stalls
    /// with [`StallKind::TooSlow`](super::StallKind::TooSlow) at the end of
    /// its first window below the rate. Items delivered before the source
    /// next returns `Pending` count for the window its wait filled, so a
    /// window is never judged while items are ready.
    ///
    /// With [`first_item`](Self::first_item) set, the windows start at the
    /// first progress: until then only `first_item` applies, and its grace
    /// is not cut short to one window.
    ///
    /// To judge a stream of byte chunks by bytes rather than by chunks, turn
    /// it into a reader (tokio-util's `StreamReader`) and watch that with an
    /// [`IoWatchdog`](super::IoWatchdog).
    ///
    /// # Panics
    ///
    /// Panics if `amount` or `window` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::Limits;
    ///
    /// // At least 64 KiB per 10 seconds of waiting.
    /// let limits = Limits::new().min_rate(64 * 1024, Duration::from_secs(10));
    /// # let _ = limits;
    /// ```
    #[track_caller]
    #[must_use]
    pub fn min_rate(mut self, amount: u64, window: Duration) -> Self {
        assert!(
            amount > 0,
            "Limits::min_rate amount must be greater than zero"
        );
        assert!(
            !window.is_zero(),
            "Limits::min_rate window must be greater than zero"
        );
        self.min_rate = Some(MinRate { amount, window });
        self
    }

    /// Whether no limit is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::Limits;
    ///
    /// assert!(Limits::new().is_unlimited());
    /// assert!(!Limits::new().idle(Duration::from_secs(1)).is_unlimited());
    /// ```
    pub fn is_unlimited(&self) -> bool {
        self.idle.is_none()
            && self.first_item.is_none()
            && self.total.is_none()
            && self.min_rate.is_none()
    }
}
