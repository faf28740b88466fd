use std::time::Duration;

/// The limits a watchdog enforces on a stream, a reader or a writer.
///
/// Every limit is optional; a `Limits::new()` with nothing set watches
/// nothing. Limits are built with chained setters, each of which rejects a
/// zero value at once, so a typo in a configuration file cannot produce a
/// stream that stalls on its first poll. Each setter comes in two forms:
///
/// - `idle(d)`, `first_item(d)`, `total(d)`, `min_rate(n, d)` for values
///   written in the code: a zero is a programmer's error and panics (see
///   each one's `# Panics`), at the caller's line;
/// - `try_idle(d)`, `try_first_item(d)`, `try_total(d)`,
///   `try_min_rate(n, d)` for values read from a configuration file or the
///   command line: a zero is the operator's error and comes back as a
///   [`LimitsError`] that says which setting and why.
///
/// A `Limits` value is therefore always valid; there is nothing left to
/// check when a watchdog is built from it.
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
///
/// The same limits from a configuration file, where a zero is reported
/// rather than a panic:
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::{Limits, LimitsError};
///
/// struct Config {
///     first_row_secs: u64,
///     idle_secs: u64,
///     total_secs: Option<u64>,
/// }
///
/// fn limits(config: &Config) -> Result<Limits, LimitsError> {
///     let mut limits = Limits::new()
///         .try_first_item(Duration::from_secs(config.first_row_secs))?
///         .try_idle(Duration::from_secs(config.idle_secs))?;
///     if let Some(total) = config.total_secs {
///         limits = limits.try_total(Duration::from_secs(total))?;
///     }
///     Ok(limits)
/// }
///
/// let config = Config { first_row_secs: 900, idle_secs: 0, total_secs: None };
/// let err = limits(&config).unwrap_err();
/// assert_eq!(err, LimitsError::ZeroIdle);
/// assert!(err.to_string().starts_with("Limits::idle must be greater than zero"));
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
    /// Panics if `idle` is zero; [`try_idle`](Self::try_idle) returns an
    /// error instead.
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
    pub fn idle(self, idle: Duration) -> Self {
        or_panic(self.try_idle(idle))
    }

    /// [`idle`](Self::idle), for a value read from a configuration.
    ///
    /// # Errors
    ///
    /// [`LimitsError::ZeroIdle`] if `idle` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{Limits, LimitsError};
    ///
    /// assert!(Limits::new().try_idle(Duration::from_secs(60)).is_ok());
    /// assert_eq!(Limits::new().try_idle(Duration::ZERO), Err(LimitsError::ZeroIdle));
    /// ```
    pub fn try_idle(mut self, idle: Duration) -> Result<Self, LimitsError> {
        if idle.is_zero() {
            return Err(LimitsError::ZeroIdle);
        }
        self.idle = Some(idle);
        Ok(self)
    }

    /// The longest the source may stay `Pending` before its first item.
    ///
    /// Until the first item arrives this limit replaces [`idle`](Self::idle);
    /// a database query may legitimately think for minutes before its first
    /// row, then stream rows quickly.
    ///
    /// # Panics
    ///
    /// Panics if `first_item` is zero;
    /// [`try_first_item`](Self::try_first_item) returns an error instead.
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
    pub fn first_item(self, first_item: Duration) -> Self {
        or_panic(self.try_first_item(first_item))
    }

    /// [`first_item`](Self::first_item), for a value read from a
    /// configuration.
    ///
    /// # Errors
    ///
    /// [`LimitsError::ZeroFirstItem`] if `first_item` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{Limits, LimitsError};
    ///
    /// let err = Limits::new().try_first_item(Duration::ZERO).unwrap_err();
    /// assert_eq!(err, LimitsError::ZeroFirstItem);
    /// ```
    pub fn try_first_item(mut self, first_item: Duration) -> Result<Self, LimitsError> {
        if first_item.is_zero() {
            return Err(LimitsError::ZeroFirstItem);
        }
        self.first_item = Some(first_item);
        Ok(self)
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
    /// stopped too: its timer's firing is seen by the next item, and for a consumer
    /// that never lets the runtime's timer run the clock is read about once
    /// a millisecond (every item for a consumer that takes a millisecond on
    /// one, up to every 1,024th for a fast one), so the budget may be overrun
    /// by about a millisecond plus the item at hand. On an
    /// [`IoWatchdog`](super::IoWatchdog) the same holds per call, whether or
    /// not the call moves bytes (a flush in a loop meets the budget too).
    ///
    /// # Panics
    ///
    /// Panics if `total` is zero; [`try_total`](Self::try_total) returns an
    /// error instead.
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
    pub fn total(self, total: Duration) -> Self {
        or_panic(self.try_total(total))
    }

    /// [`total`](Self::total), for a value read from a configuration.
    ///
    /// # Errors
    ///
    /// [`LimitsError::ZeroTotal`] if `total` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{Limits, LimitsError};
    ///
    /// let err = Limits::new().try_total(Duration::ZERO).unwrap_err();
    /// assert_eq!(err, LimitsError::ZeroTotal);
    /// ```
    pub fn try_total(mut self, total: Duration) -> Result<Self, LimitsError> {
        if total.is_zero() {
            return Err(LimitsError::ZeroTotal);
        }
        self.total = Some(total);
        Ok(self)
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
    /// Panics if `amount` or `window` is zero;
    /// [`try_min_rate`](Self::try_min_rate) returns an error instead.
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
    pub fn min_rate(self, amount: u64, window: Duration) -> Self {
        or_panic(self.try_min_rate(amount, window))
    }

    /// [`min_rate`](Self::min_rate), for values read from a configuration.
    ///
    /// # Errors
    ///
    /// [`LimitsError::ZeroMinRateAmount`] if `amount` is zero,
    /// [`LimitsError::ZeroMinRateWindow`] if `window` is.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{Limits, LimitsError};
    ///
    /// let err = Limits::new().try_min_rate(0, Duration::from_secs(10)).unwrap_err();
    /// assert_eq!(err, LimitsError::ZeroMinRateAmount);
    /// ```
    pub fn try_min_rate(mut self, amount: u64, window: Duration) -> Result<Self, LimitsError> {
        if amount == 0 {
            return Err(LimitsError::ZeroMinRateAmount);
        }
        if window.is_zero() {
            return Err(LimitsError::ZeroMinRateWindow);
        }
        self.min_rate = Some(MinRate { amount, window });
        Ok(self)
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

/// A setting of [`Limits`] that cannot work, from one of its `try_` setters.
///
/// Its `Display` is written for whoever wrote the configuration: which
/// setting, what it would have done, and what to write instead. The
/// panicking setters (`idle`, `total`, ...) panic with the same sentence.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::{Limits, LimitsError};
///
/// let err = Limits::new().try_total(Duration::ZERO).unwrap_err();
/// assert_eq!(err, LimitsError::ZeroTotal);
/// assert_eq!(
///     err.to_string(),
///     "Limits::total must be greater than zero: a zero budget is spent before the first \
///      item; leave total unset for no budget",
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// `idle` is zero.
    #[error(
        "Limits::idle must be greater than zero: a zero idle limit makes every wait on the \
         source a stall; leave idle unset for no limit"
    )]
    ZeroIdle,
    /// `first_item` is zero.
    #[error(
        "Limits::first_item must be greater than zero: a zero first_item limit stalls before \
         the first item can arrive; leave first_item unset to hold the first item to idle"
    )]
    ZeroFirstItem,
    /// `total` is zero.
    #[error(
        "Limits::total must be greater than zero: a zero budget is spent before the first \
         item; leave total unset for no budget"
    )]
    ZeroTotal,
    /// `min_rate`'s amount is zero.
    #[error(
        "Limits::min_rate amount must be greater than zero: a minimum of nothing is met by \
         every window; leave min_rate unset for no minimum rate"
    )]
    ZeroMinRateAmount,
    /// `min_rate`'s window is zero.
    #[error(
        "Limits::min_rate window must be greater than zero: no progress fits in a window of \
         no time; give the window the length a healthy source needs to show its rate"
    )]
    ZeroMinRateWindow,
    /// `deadman`'s idle limit is zero.
    #[error(
        "deadman idle must be greater than zero: with no time between beats the switch \
         trips at once; give it the longest a healthy beat may take"
    )]
    ZeroDeadmanIdle,
}

/// The panicking setters: the error's sentence, at the caller's line.
#[track_caller]
fn or_panic(limits: Result<Limits, LimitsError>) -> Limits {
    match limits {
        Ok(limits) => limits,
        Err(err) => panic!("{err}"),
    }
}
