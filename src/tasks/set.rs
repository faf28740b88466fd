//! [`TaskSet`], the handle, and its spawns: every kind of spawn takes one
//! path, [`TaskSet::spawn_tracked`] (admit, spawn, attach). How a set is
//! made is in `builder.rs`; how it stops, in `shutdown.rs`.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::entry::AbortBy;
use super::error::Rejected;
use super::finish::{Deliver, HandedOn, Judged, Ticket};
use super::handle::TaskHandle;
use super::in_flight::InFlightSlot;
use super::lifecycle::Phase;
use super::outcome::TaskOutcome;
use super::registry::Aborting;
use super::report::{TaskCounts, TaskFailure, TaskId, TaskInfo, TaskKind};
use super::state::SetState;
use super::tracked::{self, Tracked};

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
/// aborted (and, apart, how many blocking closures were tracked). Call
/// [`shutdown`](Self::shutdown) first for a graceful stop.
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

/// Dropped when the last `TaskSet` clone goes: aborts what is left. Tasks
/// hold `Arc<SetState>` (in their ticket), never this, so they do not keep
/// the set alive.
struct Owner {
    state: Arc<SetState>,
}

impl TaskSet {
    pub(super) fn from_state(state: SetState) -> Self {
        TaskSet {
            owner: Arc::new(Owner {
                state: Arc::new(state),
            }),
        }
    }

    pub(super) fn state(&self) -> &Arc<SetState> {
        &self.owner.state
    }

    /// Spawns a fire-and-forget task with a label. Its output is `()` or
    /// `Result<T, E>` ([`TaskOutcome`]); an `Err` or a panic is counted,
    /// kept and logged, never re-raised.
    ///
    /// A panic is reported twice: by the process's panic hook, which prints
    /// it to stderr when it happens (as for any tokio task), and by the set
    /// (counted, kept, and logged with the `tracing` feature). The set
    /// cannot quiet the hook, which is process-wide; see the
    /// [module documentation](super#panics-are-reported-twice) for how.
    ///
    /// Returns the future back in [`Rejected`] once the set is
    /// [closed](Self::close) or its shutdown has begun.
    /// With [`max_in_flight`](super::TaskSetBuilder::max_in_flight), a task spawned
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
        let slot = self.state().in_flight.claim_now();
        self.spawn_async::<F, Judged>(label.into(), future, slot, tokio::spawn)
            .map(|(id, _join)| id)
    }

    /// Like [`spawn`](Self::spawn), for a future that is not `Send`: it runs
    /// on the current [`LocalSet`](tokio::task::LocalSet), as
    /// `tokio::task::spawn_local` does, and is tracked, reported and aborted
    /// like any task of the set. `max_in_flight` applies.
    ///
    /// # Panics
    ///
    /// Panics if called outside a `LocalSet`, like
    /// `tokio::task::spawn_local`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = TaskSet::new();
    /// let local = tokio::task::LocalSet::new();
    /// local
    ///     .run_until(async {
    ///         let shared = Rc::new("not Send");
    ///         set.spawn_local("render", async move { assert_eq!(*shared, "not Send") })
    ///             .unwrap();
    ///         let report = set.shutdown(Duration::from_secs(1)).await;
    ///         assert_eq!(report.completed(), 1);
    ///     })
    ///     .await;
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + 'static,
        F::Output: TaskOutcome,
    {
        let slot = self.state().in_flight.claim_now();
        self.spawn_async::<F, Judged>(label.into(), future, slot, tokio::task::spawn_local)
            .map(|(id, _join)| id)
    }

    /// Like [`spawn`](Self::spawn), on the runtime of `handle` rather than
    /// the current one (which it does not need): for a set whose tasks run on
    /// a runtime of their own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// let io = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .enable_all()
    ///     .build()
    ///     .unwrap();
    /// let set = TaskSet::new();
    /// // No runtime on this thread: the task goes to `io`.
    /// set.spawn_on(io.handle(), "flush", async { Ok::<u64, String>(3) }).unwrap();
    /// let report = io.block_on(set.shutdown(Duration::from_secs(1)));
    /// assert_eq!(report.completed(), 1);
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(
        &self,
        handle: &Handle,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        let slot = self.state().in_flight.claim_now();
        self.spawn_async::<F, Judged>(label.into(), future, slot, |task| handle.spawn(task))
            .map(|(id, _join)| id)
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
        let slot = self.state().in_flight.claim_now();
        self.spawn_async::<F, HandedOn>(label.into(), future, slot, tokio::spawn)
            .map(|(id, join)| TaskHandle::new(id, join))
    }

    /// Runs a blocking closure on tokio's blocking pool, tracked like a task.
    /// Its output is `()` or `Result<T, E>` ([`TaskOutcome`]).
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
        self.spawn_blocking_as::<F, R, Judged>(label.into(), function)
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
        self.spawn_blocking_as::<F, R, HandedOn>(label.into(), function)
            .map(|(id, join)| TaskHandle::new(id, join))
    }

    /// An async task holding (or queued for) `slot`, delivering as `D`,
    /// started by `spawn` (`tokio::spawn`, `spawn_local`, a handle's).
    #[track_caller]
    pub(super) fn spawn_async<F, D>(
        &self,
        label: Cow<'static, str>,
        future: F,
        slot: InFlightSlot,
        spawn: impl FnOnce(Tracked<F, D>) -> JoinHandle<D::Output>,
    ) -> Result<(TaskId, JoinHandle<D::Output>), Rejected<F>>
    where
        F: Future,
        D: Deliver<F::Output>,
    {
        self.spawn_tracked(label, TaskKind::Async, future, move |future, ticket| {
            spawn(Tracked::<F, D>::new(future, slot, ticket))
        })
    }

    /// A blocking closure on tokio's blocking pool, delivering as `D`.
    #[track_caller]
    fn spawn_blocking_as<F, R, D>(
        &self,
        label: Cow<'static, str>,
        function: F,
    ) -> Result<(TaskId, JoinHandle<D::Output>), Rejected<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        D: Deliver<R>,
        D::Output: Send + 'static,
    {
        self.spawn_tracked(label, TaskKind::Blocking, function, |function, ticket| {
            tokio::task::spawn_blocking(move || tracked::run_blocking::<F, R, D>(function, ticket))
        })
    }

    /// Admit, spawn, attach the abort handle: the one path every spawn
    /// takes.
    fn spawn_tracked<W, T>(
        &self,
        label: Cow<'static, str>,
        kind: TaskKind,
        work: W,
        spawn: impl FnOnce(W, Ticket) -> JoinHandle<T>,
    ) -> Result<(TaskId, JoinHandle<T>), Rejected<W>> {
        let state = self.state();
        let started = Instant::now();
        // Tracked from here on, before it is spawned: a shutdown that
        // reports while this call runs lists it (the report is the whole
        // account of the spawns that return `Ok`).
        let ticket = match Ticket::admit(state, label, started, kind) {
            Ok(ticket) => ticket,
            Err(refusal) => return Err(Rejected::new(work, refusal)),
        };
        let id = ticket.id();
        // `spawn` panics outside a runtime: undo the admission first, or
        // a shutdown would wait for a task that does not exist.
        let join = match catch_unwind(AssertUnwindSafe(|| spawn(work, ticket))) {
            Ok(join) => join,
            Err(payload) => {
                state.registry.abandon(id);
                std::panic::resume_unwind(payload);
            }
        };
        state.registry.attach(id, join.abort_handle());
        Ok((TaskId(id), join))
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
        self.state().registry.len()
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
        self.state().registry.running()
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
        self.state().registry.counts()
    }

    /// The kept failures (errors and panics, with labels), oldest first; at
    /// most [`max_kept_failures`](super::TaskSetBuilder::max_kept_failures), the
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
        self.state().registry.failures()
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
        self.state().token.clone()
    }

    /// `true` while spawns are rejected: after [`close`](Self::close) (until
    /// [`reopen`](Self::reopen)), and for good once shutdown has begun or the
    /// set's parent was shut down.
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
        self.state().registry.is_closed()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // The whole tree: a child set goes with its parent.
        let mut found = Aborting::default();
        for state in self.state.shut_down_tree() {
            let aborting = state.registry.abort_all(AbortBy::DroppedSet);
            found.aborted += aborting.aborted;
            found.blocking += aborting.blocking;
            found.tracked_futures += aborting.tracked_futures;
        }
        #[cfg(feature = "tracing")]
        if found != Aborting::default() {
            tracing::warn!(
                aborted = found.aborted,
                blocking = found.blocking,
                tracked_futures = found.tracked_futures,
                "TaskSet dropped with tasks still running: async tasks were aborted, \
                 blocking closures that started and tracked futures run on (call shutdown first)"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = found;
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("TaskSet")
            .field("len", &state.registry.len())
            .field("closed", &state.registry.is_closed())
            .field("path", &state.registry.path())
            .field("counts", &state.registry.counts())
            .field("max_in_flight", &state.in_flight.max())
            .field("kept_failures", &state.registry.kept_failures())
            .finish()
    }
}

impl fmt::Display for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let path = state.registry.path();
        if !path.is_empty() {
            write!(f, "{path}: ")?;
        }
        let phase = match state.registry.lifecycle().phase() {
            Phase::Open => "open",
            Phase::Closed => "closed",
            Phase::ShutDown => "shut down",
        };
        write!(
            f,
            "task set ({phase}): {} running; {}",
            state.registry.len(),
            state.registry.counts()
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn spawning_outside_a_runtime_panics_without_leaving_a_reservation() {
        use std::panic::AssertUnwindSafe;
        let set = crate::TaskSet::new();
        let spawned =
            std::panic::catch_unwind(AssertUnwindSafe(|| set.spawn("no runtime", async {})));
        assert!(spawned.is_err());
        assert_eq!(set.len(), 0);
        assert_eq!(set.counts().spawned, 0);
        assert!(set.running().is_empty());
    }
}
