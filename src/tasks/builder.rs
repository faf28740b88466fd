//! How a [`TaskSet`] is made: [`TaskSet::new`], [`TaskSet::builder`] and
//! [`TaskSetBuilder`], with the defaults.

use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::set::TaskSet;
use super::state::SetState;

/// How many failures a set keeps by default (the most recent ones).
pub const DEFAULT_MAX_KEPT_FAILURES: usize = 64;

/// How long [`TaskSet::shutdown`] waits, by default, for aborts to land after
/// the grace period.
pub const DEFAULT_ABORT_WAIT: Duration = Duration::from_millis(100);

/// Builds a [`TaskSet`] with limits. Made by [`TaskSet::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::TaskSet;
/// use tokio_util::sync::CancellationToken;
///
/// let service = CancellationToken::new();
/// let set = TaskSet::builder()
///     .max_in_flight(8)
///     .max_kept_failures(16)
///     .abort_wait(Duration::from_millis(250))
///     .parent_token(&service)
///     .build();
/// service.cancel();
/// assert!(set.token().is_cancelled());
/// ```
#[derive(Debug, Clone)]
pub struct TaskSetBuilder {
    max_in_flight: Option<usize>,
    max_kept_failures: usize,
    abort_wait: Duration,
    parent: Option<CancellationToken>,
}

impl Default for TaskSet {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskSet {
    /// An empty set without a limit on tasks in flight.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a set with `max_in_flight`, a failure list size, an
    /// abort wait or a parent cancellation token.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder().max_in_flight(4).build();
    /// assert!(set.is_empty());
    /// ```
    pub fn builder() -> TaskSetBuilder {
        TaskSetBuilder {
            max_in_flight: None,
            max_kept_failures: DEFAULT_MAX_KEPT_FAILURES,
            abort_wait: DEFAULT_ABORT_WAIT,
            parent: None,
        }
    }
}

impl TaskSetBuilder {
    /// Runs at most `limit` async tasks at once. Tasks spawned with
    /// [`TaskSet::spawn`] while the set is full wait (tracked) for a slot;
    /// [`TaskSet::spawn_waiting`] waits before spawning. Blocking closures
    /// are not counted.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is zero (nothing could ever run).
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder().max_in_flight(32).build();
    /// # drop(set);
    /// ```
    #[track_caller]
    pub fn max_in_flight(mut self, limit: usize) -> Self {
        assert!(limit > 0, "TaskSet max_in_flight must be at least 1");
        self.max_in_flight = Some(limit.min(Semaphore::MAX_PERMITS));
        self
    }

    /// How many failures (errors and panics) to keep for the report: the
    /// most recent `count`. Default [`DEFAULT_MAX_KEPT_FAILURES`] (64). Zero
    /// keeps none; counters still count every failure.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder().max_kept_failures(1000).build();
    /// # drop(set);
    /// ```
    pub fn max_kept_failures(mut self, count: usize) -> Self {
        self.max_kept_failures = count;
        self
    }

    /// How long [`TaskSet::shutdown`] waits for aborts to land after the
    /// grace period, before it reports what is still running as
    /// unresponsive. Default [`DEFAULT_ABORT_WAIT`] (100 ms). Zero reports
    /// at once what the aborts have not stopped yet.
    ///
    /// A wait whose end cannot be represented as an
    /// [`Instant`](tokio::time::Instant), such as `Duration::MAX`, is not
    /// clamped: it means no limit. After the grace period `shutdown` then
    /// waits until every aborted task has ended, so a started blocking
    /// closure or a task that never yields keeps it waiting for as long as
    /// it runs: `shutdown` no longer returns within a bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder()
    ///     .abort_wait(std::time::Duration::from_secs(1))
    ///     .build();
    /// # drop(set);
    /// ```
    pub fn abort_wait(mut self, wait: Duration) -> Self {
        self.abort_wait = wait;
        self
    }

    /// Makes the set's [`token`](TaskSet::token) a child of `parent`:
    /// cancelling `parent` (say, the service's stop signal) cancels the
    /// set's token too, without closing the set.
    ///
    /// # Examples
    ///
    /// ```
    /// let stop = tokio_util::sync::CancellationToken::new();
    /// let set = hangfree::TaskSet::builder().parent_token(&stop).build();
    /// stop.cancel();
    /// assert!(set.token().is_cancelled());
    /// ```
    pub fn parent_token(mut self, parent: &CancellationToken) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    /// Builds the set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder().build();
    /// assert!(!set.is_closed());
    /// ```
    pub fn build(self) -> TaskSet {
        let token = match &self.parent {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        TaskSet::from_state(SetState::new(
            token,
            self.max_in_flight,
            self.max_kept_failures,
            self.abort_wait,
        ))
    }
}
