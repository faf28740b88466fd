//! How a [`TaskSet`] is made: [`TaskSet::new`], [`TaskSet::builder`] and
//! [`TaskSetBuilder`], with the defaults.

use std::borrow::Cow;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::error::TaskSetConfigError;
use super::policy::FailurePolicy;
use super::set::TaskSet;
use super::state::{SetState, Settings};

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
    failure_policy: FailurePolicy,
    /// The parent set and this set's label in it (`child_of`).
    child_of: Option<(TaskSet, Cow<'static, str>)>,
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
    /// abort wait, a parent cancellation token, a failure policy or a parent
    /// set.
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
            failure_policy: FailurePolicy::Continue,
            child_of: None,
        }
    }
}

impl TaskSetBuilder {
    /// Runs at most `limit` async tasks at once. Tasks spawned with
    /// [`TaskSet::spawn`] while the set is full wait (tracked) for a slot;
    /// [`TaskSet::spawn_waiting`] waits before spawning. Blocking closures
    /// are not counted.
    ///
    /// A limit above `tokio::sync::Semaphore::MAX_PERMITS` is lowered to it.
    ///
    /// # Panics
    ///
    /// Panics if `limit` is zero (nothing could ever run), with the sentence
    /// of [`TaskSetConfigError::ZeroMaxInFlight`];
    /// [`try_max_in_flight`](Self::try_max_in_flight) returns the error
    /// instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let set = hangfree::TaskSet::builder().max_in_flight(32).build();
    /// # drop(set);
    /// ```
    #[track_caller]
    #[must_use]
    pub fn max_in_flight(self, limit: usize) -> Self {
        match self.try_max_in_flight(limit) {
            Ok(builder) => builder,
            Err(err) => panic!("{err}"),
        }
    }

    /// [`max_in_flight`](Self::max_in_flight), for a value read from a
    /// configuration.
    ///
    /// # Errors
    ///
    /// [`TaskSetConfigError::ZeroMaxInFlight`] if `limit` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::TaskSet;
    /// use hangfree::tasks::TaskSetConfigError;
    ///
    /// fn handlers(limit_from_config: usize) -> Result<TaskSet, TaskSetConfigError> {
    ///     Ok(TaskSet::builder().try_max_in_flight(limit_from_config)?.build())
    /// }
    ///
    /// assert!(handlers(16).is_ok());
    /// assert_eq!(handlers(0).unwrap_err(), TaskSetConfigError::ZeroMaxInFlight);
    /// ```
    pub fn try_max_in_flight(mut self, limit: usize) -> Result<Self, TaskSetConfigError> {
        if limit == 0 {
            return Err(TaskSetConfigError::ZeroMaxInFlight);
        }
        self.max_in_flight = Some(limit.min(Semaphore::MAX_PERMITS));
        Ok(self)
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
    /// set's token too, without closing the set. For a set built
    /// [`child_of`](Self::child_of) another, the parent set's token is the
    /// parent: this setting is not used.
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

    /// What the set does at its first failure (an `Err` judged by
    /// [`TaskOutcome`](super::TaskOutcome), or a panic). Default
    /// [`FailurePolicy::Continue`]: it is counted, kept and logged, and the
    /// other tasks go on. [`FailurePolicy::CancelToken`] also cancels the
    /// set's [`token`](TaskSet::token), so that its tasks stop, like Go's
    /// `errgroup.WithContext`. See [`TaskSet::first_failure`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::TaskSet;
    /// use hangfree::tasks::FailurePolicy;
    ///
    /// let set = TaskSet::builder()
    ///     .failure_policy(FailurePolicy::CancelToken)
    ///     .build();
    /// # drop(set);
    /// ```
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Builds the set as a child of `parent`, labelled `label`: see
    /// [`TaskSet::child`], which is this with the other settings at their
    /// defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::TaskSet;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let service = TaskSet::new();
    /// let handlers = TaskSet::builder()
    ///     .child_of(&service, "handlers")
    ///     .max_in_flight(16)
    ///     .build();
    /// handlers.spawn("msg 17", std::future::pending::<()>()).unwrap();
    ///
    /// let report = service.shutdown(std::time::Duration::from_secs(1)).await;
    /// assert_eq!(report.aborted()[0].to_string(), r#"handlers #1 "msg 17", age 1s"#);
    /// # }
    /// ```
    pub fn child_of(mut self, parent: &TaskSet, label: impl Into<Cow<'static, str>>) -> Self {
        self.child_of = Some((parent.clone(), label.into()));
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
        let (token, path) = match &self.child_of {
            Some((parent, label)) => (parent.token().child_token(), parent.child_path(label)),
            None => {
                let token = match &self.parent {
                    Some(parent) => parent.child_token(),
                    None => CancellationToken::new(),
                };
                (token, "".into())
            }
        };
        let set = TaskSet::from_state(SetState::new(Settings {
            token,
            max_in_flight: self.max_in_flight,
            max_kept_failures: self.max_kept_failures,
            abort_wait: self.abort_wait,
            cancel_on_failure: self.failure_policy == FailurePolicy::CancelToken,
            path,
        }));
        if let Some((parent, _)) = &self.child_of {
            parent.adopt(&set);
        }
        set
    }
}
