//! `TaskSet`: the public handle, its builder, spawning and shutdown.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handle::TaskHandle;
use super::outcome::{Rejected, TaskOutcome, panic_message};
use super::registry::Outcome;
use super::report::{ShutdownReport, TaskCounts, TaskFailure, TaskId, TaskInfo};
use super::shared::{Guard, Shared};
use super::tracked::{HandedOn, Judged, Slot, Tracked, judge};
use crate::alarm::Alarm;

/// How many failures a set keeps by default (the most recent ones).
pub const DEFAULT_MAX_KEPT_FAILURES: usize = 64;

/// How long [`TaskSet::shutdown`] waits, by default, for aborts to land after
/// the grace period.
pub const DEFAULT_ABORT_WAIT: Duration = Duration::from_millis(100);

/// A set of tracked tasks with labels, outcomes and a shutdown that always
/// returns. See the [module documentation](super) for the full story, the
/// shutdown timeline and a comparison with `JoinSet` and `TaskTracker`.
///
/// `TaskSet` is a cheap handle: clones share the same set. Spawning takes
/// `&self`, so a set can be shared with (and used from inside) other tasks.
///
/// **Dropping the last clone aborts every task still in the set** (async
/// tasks are aborted; blocking closures that already started run to their
/// end) and, with the `tracing` feature, logs a warning with how many were
/// aborted (and, apart, how many blocking closures were tracked). Call [`shutdown`](Self::shutdown) first for a graceful stop.
/// Tasks are tracked with a handle to the set's shared state only, so a task
/// does not keep its own set alive, unless it holds a `TaskSet` clone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::TaskSet;
///
/// #[tokio::main]
/// # async fn _hidden() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let set = TaskSet::new();
///     for n in 0..3_u64 {
///         set.spawn(format!("complete message {n}"), async move {
///             tokio::time::sleep(Duration::from_millis(10 * n)).await;
///             Ok::<(), std::io::Error>(())
///         })
///         .expect("the set is open");
///     }
///     assert_eq!(set.len(), 3);
///
///     let report = set.shutdown(Duration::from_secs(5)).await;
///     assert_eq!(report.completed(), 3);
///     assert!(report.is_clean());
///     assert!(set.is_empty());
/// }
/// ```
#[derive(Clone)]
pub struct TaskSet {
    owner: Arc<Owner>,
}

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

/// Dropped when the last `TaskSet` clone goes: aborts what is left. Tasks
/// hold `Arc<Shared>`, never this, so they do not keep the set alive.
struct Owner {
    shared: Arc<Shared>,
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

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// Spawns a fire-and-forget task with a label. Its output is `()` or
    /// `Result<(), E>` ([`TaskOutcome`]); an `Err` or a panic is counted,
    /// kept and logged, never re-raised.
    ///
    /// Returns the future back in [`Rejected`] once shutdown has begun.
    /// With [`max_in_flight`](TaskSetBuilder::max_in_flight), a task spawned
    /// while the set is full is tracked at once and starts when a slot frees
    /// (in spawn order); use [`spawn_waiting`](Self::spawn_waiting) to wait
    /// for the slot instead (backpressure).
    ///
    /// The label is a `&'static str` (no allocation) or a `String`.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::TaskSet;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = TaskSet::new();
    /// let id = set.spawn("send receipt", async { Ok::<(), String>(()) }).unwrap();
    /// assert_eq!(set.running()[0].id(), id);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        let gate = self.shared().gate_now();
        self.spawn_gated(label.into(), future, gate)
    }

    /// Like [`spawn`](Self::spawn), but when the set has a
    /// [`max_in_flight`](TaskSetBuilder::max_in_flight) limit and is full,
    /// waits until a slot frees before spawning. Waiting callers are served
    /// in order. Without a limit it spawns at once.
    ///
    /// Returns the future back in [`Rejected`] if shutdown begins before a
    /// slot frees.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if this future is dropped while it waits for a
    /// slot, the task's future is dropped without having run.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// #[tokio::main]
    /// # async fn _hidden() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let set = TaskSet::builder().max_in_flight(2).build();
    ///     for n in 0..10 {
    ///         // Returns once one of the two slots is free.
    ///         set.spawn_waiting(format!("upload {n}"), async {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///         })
    ///         .await
    ///         .unwrap();
    ///         assert!(set.len() <= 2);
    ///     }
    /// }
    /// ```
    pub async fn spawn_waiting<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        let label = label.into();
        let shared = self.shared();
        let gate = match &shared.semaphore {
            None => Slot::Unlimited,
            Some(semaphore) => {
                let mut acquire = pin!(semaphore.clone().acquire_owned());
                let mut closing = pin!(shared.closing.cancelled());
                // Shutdown wins over a free slot: once it has begun nothing
                // new is accepted.
                let permit = poll_fn(|cx| {
                    if closing.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    acquire.as_mut().poll(cx).map(Result::ok)
                })
                .await;
                match permit {
                    Some(permit) => Slot::Held { _permit: permit },
                    None => {
                        shared.registry.count_rejected();
                        return Err(Rejected(future));
                    }
                }
            }
        };
        self.spawn_gated(label, future, gate)
    }

    #[track_caller]
    fn spawn_gated<F>(
        &self,
        label: Cow<'static, str>,
        future: F,
        gate: Slot,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        self.spawn_tracked(label, false, future, move |future, guard| {
            tokio::spawn(Tracked::<F, Judged>::new(future, gate, guard))
        })
        .map(|(id, _join)| id)
    }

    /// Admit, spawn, attach the abort handle: the one path every spawn
    /// takes.
    fn spawn_tracked<W, T>(
        &self,
        label: Cow<'static, str>,
        blocking: bool,
        work: W,
        spawn: impl FnOnce(W, Guard) -> JoinHandle<T>,
    ) -> Result<(TaskId, JoinHandle<T>), Rejected<W>> {
        let shared = self.shared();
        let started = Instant::now();
        // Tracked from here on, before it is spawned: a shutdown that
        // reports while this call runs lists it (the report is the whole
        // account of the spawns that return `Ok`).
        let Some(guard) = shared.admit(label, started, blocking) else {
            return Err(Rejected(work));
        };
        let id = guard.id;
        // `spawn` panics outside a runtime: undo the admission first, or
        // a shutdown would wait for a task that does not exist.
        let join = match catch_unwind(AssertUnwindSafe(|| spawn(work, guard))) {
            Ok(join) => join,
            Err(payload) => {
                shared.registry.abandon(id);
                std::panic::resume_unwind(payload);
            }
        };
        shared.registry.attach(id, join.abort_handle());
        Ok((TaskId(id), join))
    }

    /// Spawns a tracked task and returns a [`TaskHandle`] to await its
    /// output. Dropping the handle does not stop or untrack the task.
    ///
    /// The set does not look inside `T`: the task counts as completed
    /// whatever it returns (the awaiter judges the value); a panic is
    /// counted, kept and logged, and the handle yields it as a
    /// [`TaskError`](super::TaskError). `max_in_flight` applies as for
    /// [`spawn`](Self::spawn).
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let handle = set.spawn_with_handle("count rows", async { 42 }).unwrap();
    /// assert_eq!(handle.await, Ok(42));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_with_handle<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskHandle<F::Output>, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let gate = self.shared().gate_now();
        self.spawn_tracked(label.into(), false, future, move |future, guard| {
            tokio::spawn(Tracked::<F, HandedOn>::new(future, gate, guard))
        })
        .map(|(id, join)| TaskHandle::new(id, join))
    }

    /// Runs a blocking closure on tokio's blocking pool, tracked like a task.
    /// Its output is `()` or `Result<(), E>` ([`TaskOutcome`]).
    ///
    /// A blocking closure cannot be aborted once it has started: shutdown
    /// reports it as unresponsive (label and age) instead of waiting for it.
    /// One still queued for a blocking thread is aborted when the pool
    /// reaches it (it then never runs); until then it is listed as
    /// unresponsive too.
    /// Let it watch [`token`](Self::token) if it can stop early.
    /// `max_in_flight` does not apply to blocking closures (tokio's blocking
    /// pool bounds them).
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = TaskSet::new();
    /// let token = set.token();
    /// set.spawn_blocking("compress archive", move || {
    ///     while !token.is_cancelled() {
    ///         // ... one chunk of blocking work ...
    /// #       break;
    ///     }
    /// })
    /// .unwrap();
    /// let report = set.shutdown(Duration::from_secs(1)).await;
    /// assert_eq!(report.completed(), 1);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        function: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: TaskOutcome,
    {
        self.spawn_tracked(label.into(), true, function, |function, mut guard| {
            tokio::task::spawn_blocking(move || {
                let result = catch_unwind(AssertUnwindSafe(function))
                    .map_err(|payload| panic_message(&*payload));
                guard.complete(judge(result));
            })
        })
        .map(|(id, _join)| id)
    }

    /// Runs a blocking closure tracked like a task and returns a
    /// [`TaskHandle`] for its output. Await the handle under a deadline to
    /// stop waiting for work that cannot be cancelled: the closure keeps
    /// running and stays listed by [`running`](Self::running).
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let handle = set.spawn_blocking_with_handle("hash file", || 0xfeed_u32).unwrap();
    /// assert_eq!(handle.await, Ok(0xfeed));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking_with_handle<F, R>(
        &self,
        label: impl Into<Cow<'static, str>>,
        function: F,
    ) -> Result<TaskHandle<R>, Rejected<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_tracked(label.into(), true, function, |function, mut guard| {
            tokio::task::spawn_blocking(move || {
                let result = catch_unwind(AssertUnwindSafe(function))
                    .map_err(|payload| panic_message(&*payload));
                guard.complete(match &result {
                    Ok(_) => Outcome::Completed,
                    Err(panic) => Outcome::Panicked(panic.clone()),
                });
                result
            })
        })
        .map(|(id, join)| TaskHandle::new(id, join))
    }

    /// How many tasks are tracked: running, waiting for a `max_in_flight`
    /// slot, or unresponsive after a shutdown. Finished tasks are forgotten
    /// at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.spawn("idle", std::future::pending::<()>()).unwrap();
    /// assert_eq!(set.len(), 1);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.shared().registry.len()
    }

    /// `true` when no task is tracked.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(hangfree::TaskSet::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the tracked tasks (id, label, age), oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.spawn("consume queue", std::future::pending::<()>()).unwrap();
    /// for task in set.running() {
    ///     println!("{task}"); // #1 "consume queue", age 0ns
    /// }
    /// # }
    /// ```
    pub fn running(&self) -> Vec<TaskInfo> {
        self.shared().registry.running()
    }

    /// The set's counters (spawned, completed, failed, panicked, aborted,
    /// rejected) since it was created.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.spawn("x", async {}).unwrap();
    /// assert_eq!(set.counts().spawned, 1);
    /// # }
    /// ```
    pub fn counts(&self) -> TaskCounts {
        self.shared().registry.counts()
    }

    /// The kept failures (errors and panics, with labels), oldest first; at
    /// most [`max_kept_failures`](TaskSetBuilder::max_kept_failures), the
    /// most recent ones.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.spawn("flaky", async { Err::<(), _>("timed out") }).unwrap();
    /// tokio::task::yield_now().await;
    /// assert_eq!(set.failures()[0].to_string(), r#"#1 "flaky" failed after 0s: timed out"#);
    /// # }
    /// ```
    pub fn failures(&self) -> Vec<TaskFailure> {
        self.shared().registry.failures()
    }

    /// The set's cancellation token: cancelled when shutdown begins (or the
    /// set is dropped), so that cooperative tasks can stop taking new work
    /// and wrap up within the grace period. Work that must complete simply
    /// does not watch it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = TaskSet::new();
    /// let token = set.token();
    /// set.spawn("consumer loop", async move { token.cancelled().await }).unwrap();
    ///
    /// let report = set.shutdown(Duration::from_secs(30)).await;
    /// assert_eq!(report.completed(), 1);
    /// assert!(report.elapsed() < Duration::from_secs(1));
    /// # }
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.shared().token.clone()
    }

    /// `true` once shutdown has begun: spawns are rejected.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.shutdown(std::time::Duration::ZERO).await;
    /// assert!(set.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared().registry.is_closed()
    }

    /// Stops the set and reports what happened. It always returns, within
    /// about `grace` plus the [abort wait](TaskSetBuilder::abort_wait)
    /// (100 ms by default):
    ///
    /// 1. at once: stop accepting tasks (later spawns get [`Rejected`]) and
    ///    cancel [`token`](Self::token);
    /// 2. until `grace` has passed: let tracked tasks finish; return as soon
    ///    as none is left;
    /// 3. then abort what remains and wait up to the abort wait for the
    ///    aborts to land;
    /// 4. report: counters, kept failures, the tasks aborted (label, age) and
    ///    those still running (blocking closures that had started, tasks that
    ///    never yield), which stay tracked.
    ///
    /// Calling it again returns a fresh report (with nothing new aborted
    /// unless tasks were still waiting). Shutdowns may run concurrently: each
    /// report lists the tasks that this shutdown aborted (none, if another
    /// one aborted them first); counters and unresponsive tasks are the set's.
    /// The report is one consistent snapshot:
    /// `spawned == completed + failed + panicked + aborted + unresponsive`.
    ///
    /// It is the whole account of the spawns that returned `Ok`, including
    /// those made on other threads while `shutdown` runs: each of those
    /// tasks is in it exactly once, counted as completed, failed, panicked or
    /// aborted, or listed as unresponsive. A task is tracked from the moment
    /// its spawn is accepted, before the spawn call returns; one whose spawn
    /// call has not returned yet when the report is taken (its thread was
    /// descheduled, say) is listed as unresponsive and, once the grace period
    /// has passed, aborted as soon as its spawn returns. `shutdown` never
    /// waits for spawn calls in progress, so they do not lengthen it.
    ///
    /// # Waiting without a limit
    ///
    /// A `grace` whose end cannot be represented as an
    /// [`Instant`](tokio::time::Instant), such as `Duration::MAX`, is not
    /// clamped: it means no limit. `shutdown` then waits until every task
    /// has ended, aborts nothing, and does not return while a task runs. The
    /// [abort wait](TaskSetBuilder::abort_wait) is read the same way.
    ///
    /// Call it from outside the set: a task of the set that awaits its own
    /// set's shutdown waits for itself, and is aborted with the rest once
    /// the grace period has passed.
    ///
    /// A task that never yields occupies its worker thread and cannot be
    /// aborted: `shutdown` lists it as unresponsive. On a multi-thread
    /// runtime tokio's timers are driven by the workers, so when every worker
    /// is pinned no timer fires; a shutdown that has to wait therefore also
    /// sets an alarm on hangfree's one process-wide alarm thread (parked while
    /// nothing is due) that wakes it at `grace` and at the end of the abort
    /// wait in real time. The deadlines are still read from tokio's clock, so under
    /// a paused clock the timings are exactly tokio's.
    ///
    /// The one limit: the shutdown future must be polled. Awaited from
    /// `block_on`, another runtime or a free worker, it returns on time; awaited
    /// inside a task of a runtime whose every worker is pinned (or of a
    /// current-thread runtime pinned by such a task) it cannot run at all
    /// until a worker frees.
    ///
    /// # Panics
    ///
    /// Panics if the runtime has no timer (`enable_time`), as
    /// `tokio::time::timeout` does.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future early leaves the set closed and its token
    /// cancelled; tasks are aborted only if the grace period had passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// #[tokio::main]
    /// # async fn _hidden() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let set = TaskSet::new();
    ///     set.spawn("hangs", std::future::pending::<()>()).unwrap();
    ///
    ///     let report = set.shutdown(Duration::from_secs(5)).await;
    ///     assert_eq!(report.aborted()[0].label(), "hangs");
    ///     assert_eq!(report.aborted()[0].age(), Duration::from_secs(5));
    ///     assert_eq!(report.elapsed(), Duration::from_secs(5));
    /// }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let shared = self.shared();
        let started = Instant::now();
        shared.close();
        let mut run = Run {
            shared,
            aborted_by: 0,
            alarm: None,
        };
        let drained = run.wait_idle_until(started.checked_add(grace)).await;
        if !drained {
            run.aborted_by = shared.registry.next_shutdown();
            shared.registry.abort_all(run.aborted_by);
            // Aborted async tasks finish at their next poll; tasks that never
            // yield and started blocking closures will not, hence the bound.
            let abort_deadline = Instant::now().checked_add(shared.abort_wait);
            run.wait_idle_until(abort_deadline).await;
        }
        let report = shared.registry.report(run.aborted_by, started.elapsed());
        run.aborted_by = 0;
        drop(run);
        #[cfg(feature = "tracing")]
        if report.is_clean() {
            tracing::info!(report = %report, "task set shut down");
        } else {
            tracing::warn!(
                aborted = report.aborted.len(),
                unresponsive = report.unresponsive.len(),
                failed = report.counts.failed,
                panicked = report.counts.panicked,
                report = %report,
                "task set shut down with failures or stuck tasks"
            );
        }
        report
    }
}

/// One shutdown in progress: its real-time backstop and, once it aborted
/// tasks, its id. Dropped early (the shutdown future was dropped), it stops
/// listing its aborts.
struct Run<'a> {
    shared: &'a Shared,
    aborted_by: u32,
    alarm: Option<Alarm>,
}

impl Run<'_> {
    /// Waits until the set is idle (`true`) or `deadline` has passed on
    /// tokio's clock (`false`; `None`: no deadline).
    ///
    /// tokio's timer wakes it at the deadline; so does the alarm thread, in
    /// real time, for when no worker drives the timers (every worker pinned
    /// by a task that never yields). Either way the deadline is checked
    /// against tokio's clock, so under a paused clock only tokio's timer
    /// (auto-advance, `advance`) moves the shutdown on.
    async fn wait_idle_until(&mut self, deadline: Option<Instant>) -> bool {
        if self.shared.registry.len() == 0 {
            return true;
        }
        // No alarm for a deadline already passed (a zero grace or abort
        // wait): the first poll below returns.
        if let Some(deadline) = deadline.filter(|&deadline| deadline > Instant::now()) {
            if self.alarm.is_none() {
                self.alarm = Some(Alarm::new());
            }
            if let Some(alarm) = &self.alarm {
                alarm.set(deadline);
            }
        }
        let alarm = self.alarm.as_ref();
        let mut idle = pin!(self.shared.wait_idle());
        let mut sleep = pin!(deadline.map(tokio::time::sleep_until));
        poll_fn(|cx| {
            if idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            let (Some(deadline), Some(sleep)) = (deadline, sleep.as_mut().as_pin_mut()) else {
                return Poll::Pending;
            };
            // Registered before the clock is read: a ring in between is
            // not lost.
            if let Some(alarm) = alarm {
                alarm.register(cx.waker());
            }
            if sleep.poll(cx).is_ready() || Instant::now() >= deadline {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.aborted_by != 0 {
            self.shared.registry.forget_aborted(self.aborted_by);
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
        let shared = Shared::new(
            token,
            self.max_in_flight,
            self.max_kept_failures,
            self.abort_wait,
        );
        TaskSet {
            owner: Arc::new(Owner {
                shared: Arc::new(shared),
            }),
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let (aborted, blocking) = self.shared.registry.abort_all(0);
        self.shared.closing.cancel();
        self.shared.token.cancel();
        #[cfg(feature = "tracing")]
        if aborted > 0 || blocking > 0 {
            tracing::warn!(
                aborted,
                blocking,
                "TaskSet dropped with tasks still running: async tasks were aborted, \
                 blocking closures that started run on (call shutdown first)"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (aborted, blocking);
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("TaskSet")
            .field("len", &shared.registry.len())
            .field("closed", &shared.registry.is_closed())
            .field("counts", &shared.registry.counts())
            .field("max_in_flight", &shared.max_in_flight)
            .field("kept_failures", &shared.registry.kept_failures())
            .finish()
    }
}

impl fmt::Display for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        write!(
            f,
            "task set ({}): {} running; {}",
            if shared.registry.is_closed() {
                "closed"
            } else {
                "open"
            },
            shared.registry.len(),
            shared.registry.counts()
        )
    }
}
