//! Plain values describing tasks: ids, snapshots, failures, counters and the
//! shutdown report.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::fmt::Elapsed;

/// A task's id, unique within its [`TaskSet`](super::TaskSet) (ids count up
/// from 1 in spawn order and are never reused).
///
/// # Examples
///
/// ```
/// use hangfree::TaskSet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// let first = set.spawn("first", async {}).unwrap();
/// let second = set.spawn("second", async {}).unwrap();
/// assert!(first < second);
/// assert_eq!(first.to_string(), format!("#{}", first.as_u64()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// assert_eq!(set.spawn("job", async {}).unwrap().as_u64(), 1);
    /// # }
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A snapshot of one tracked task: id, label, age, the path of the set it
/// belongs to, and whether it is a blocking closure or a future its caller
/// polls ([`TaskSet::track`](super::TaskSet::track)).
///
/// Returned by [`TaskSet::running`](super::TaskSet::running) and listed in a
/// [`ShutdownReport`] for tasks that were aborted or did not respond.
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
///     set.spawn("export orders", std::future::pending::<()>()).unwrap();
///     tokio::time::sleep(Duration::from_secs(3)).await;
///
///     let running = set.running();
///     assert_eq!(running[0].label(), "export orders");
///     assert_eq!(running[0].age(), Duration::from_secs(3));
///     assert!(!running[0].is_blocking());
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub(crate) id: TaskId,
    pub(crate) label: Cow<'static, str>,
    pub(crate) path: Arc<str>,
    pub(crate) age: Duration,
    pub(crate) kind: TaskKind,
}

/// What a tracked task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// A spawned future.
    Async,
    /// A closure on the blocking pool.
    Blocking,
    /// A future its caller polls (`track`): never aborted by the set.
    Tracked,
}

impl TaskInfo {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The label path of the set the task belongs to: empty for a set made
    /// by [`TaskSet::new`](super::TaskSet::new) or the builder, the labels
    /// of its ancestors and its own joined by `/` for a
    /// [child set](super::TaskSet::child) (`consumer/handlers`).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let service = hangfree::TaskSet::new();
    /// let consumer = service.child("consumer");
    /// let handlers = consumer.child("handlers");
    /// handlers.spawn("msg 17", std::future::pending::<()>()).unwrap();
    /// assert_eq!(handlers.running()[0].path(), "consumer/handlers");
    /// # }
    /// ```
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How long the task had existed (since it was spawned) when this
    /// snapshot was taken.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// Whether this is a `spawn_blocking` closure (which cannot be aborted
    /// once it has started).
    pub fn is_blocking(&self) -> bool {
        self.kind == TaskKind::Blocking
    }

    /// Whether this is a future its caller polls, counted with
    /// [`TaskSet::track`](super::TaskSet::track) (which the set never
    /// aborts).
    pub fn is_tracked_future(&self) -> bool {
        self.kind == TaskKind::Tracked
    }
}

/// Writes `path ` before a task's id when the task belongs to a child set.
struct PathPrefix<'a>(&'a str);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{} ", self.0)
        }
    }
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} {:?}", PathPrefix(&self.path), self.id, self.label)?;
        match self.kind {
            TaskKind::Async => {}
            TaskKind::Blocking => f.write_str(" (blocking)")?,
            TaskKind::Tracked => f.write_str(" (tracked future)")?,
        }
        write!(f, ", age {}", Elapsed(self.age))
    }
}

/// How a kept failure failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The task returned an error (`Err(e)`; the message is `e.to_string()`).
    Error,
    /// The task panicked (the message is the panic message).
    Panic,
}

/// One kept failure: which task failed, how, and the error text or panic
/// message.
///
/// A set keeps a bounded number of these (the most recent
/// [`max_kept_failures`](super::TaskSetBuilder::max_kept_failures), 64 by
/// default); its counters count every failure.
///
/// # Examples
///
/// ```
/// use hangfree::{FailureKind, TaskSet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.spawn("ack 17", async { Err::<(), _>("lock lost") }).unwrap();
/// let report = set.shutdown(std::time::Duration::from_secs(1)).await;
///
/// let failure = &report.failures()[0];
/// assert_eq!(failure.label(), "ack 17");
/// assert_eq!(failure.kind(), FailureKind::Error);
/// assert_eq!(failure.message(), "lock lost");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub(crate) id: TaskId,
    pub(crate) label: Cow<'static, str>,
    pub(crate) path: Arc<str>,
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
    pub(crate) age: Duration,
}

impl TaskFailure {
    /// The failed task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The label path of the failed task's set, as [`TaskInfo::path`]:
    /// empty for a set that is not a [child](super::TaskSet::child).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the task returned an error or panicked.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The error's `Display` text, or the panic message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How long the task had run when it failed.
    pub fn age(&self) -> Duration {
        self.age
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.kind {
            FailureKind::Error => "failed",
            FailureKind::Panic => "panicked",
        };
        write!(
            f,
            "{}{} {:?} {} after {}: {}",
            PathPrefix(&self.path),
            self.id,
            self.label,
            how,
            Elapsed(self.age),
            self.message
        )
    }
}

/// Counters over the whole life of a set. They are never reset and never
/// bounded, unlike the list of kept failures.
///
/// `spawned == completed + failed + panicked + aborted + running`, where
/// `running` is [`TaskSet::len`](super::TaskSet::len) (a task counts as
/// spawned once it is tracked; rejected spawns are counted apart).
///
/// # Examples
///
/// ```
/// use hangfree::TaskSet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.spawn("ok", async {}).unwrap();
/// set.spawn("bad", async { Err::<(), _>("no") }).unwrap();
/// let report = set.shutdown(std::time::Duration::from_secs(1)).await;
/// let counts = report.counts();
/// assert_eq!((counts.spawned, counts.completed, counts.failed), (2, 1, 1));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskCounts {
    /// Tasks accepted by the set.
    pub spawned: u64,
    /// Tasks that returned `()` or `Ok(_)` (or any value, for tasks spawned
    /// with a handle and tracked futures).
    pub completed: u64,
    /// Tasks that returned `Err`.
    pub failed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Tasks that were aborted (by shutdown, by dropping the set, or through
    /// [`TaskHandle::abort`](super::TaskHandle::abort)) before they finished,
    /// and tracked futures dropped by their caller before they finished.
    pub aborted: u64,
    /// Spawns (and `track`s and `reserve`s) refused because the set was
    /// closed or shut down.
    pub rejected: u64,
}

impl TaskCounts {
    /// Adds the counters a registry keeps per shard (all but `rejected`,
    /// which it counts apart).
    pub(super) fn add(&mut self, shard: &TaskCounts) {
        self.spawned += shard.spawned;
        self.completed += shard.completed;
        self.failed += shard.failed;
        self.panicked += shard.panicked;
        self.aborted += shard.aborted;
    }

    /// Adds every counter of `other`, `rejected` too (a child set's, into
    /// its parent's report).
    pub(super) fn add_all(&mut self, other: &TaskCounts) {
        self.add(other);
        self.rejected += other.rejected;
    }
}

impl fmt::Display for TaskCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} spawned, {} completed, {} failed, {} panicked, {} aborted, {} rejected",
            self.spawned, self.completed, self.failed, self.panicked, self.aborted, self.rejected
        )
    }
}

/// What [`TaskSet::shutdown`](super::TaskSet::shutdown) found: the set's
/// counters, the kept failures, and every task that had to be aborted or did
/// not respond at all.
///
/// Its `Display` is a short multi-line summary meant for logs.
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
///     set.spawn("quick", async {}).unwrap();
///     set.spawn("stuck", std::future::pending::<()>()).unwrap();
///
///     let report = set.shutdown(Duration::from_secs(5)).await;
///     assert_eq!(report.counts().completed, 1);
///     assert_eq!(report.aborted()[0].label(), "stuck");
///     assert!(report.unresponsive().is_empty());
///     assert!(!report.is_clean());
///     println!("{report}");
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    pub(crate) elapsed: Duration,
    pub(crate) counts: TaskCounts,
    pub(crate) failures: Vec<TaskFailure>,
    pub(crate) aborted: Vec<TaskInfo>,
    pub(crate) unresponsive: Vec<TaskInfo>,
}

impl ShutdownReport {
    /// How long the shutdown took.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The set's counters when the shutdown returned, read in one snapshot
    /// with [`unresponsive`](Self::unresponsive): `spawned == completed +
    /// failed + panicked + aborted + unresponsive().len()`. With
    /// [child sets](super::TaskSet::child) they are the sums over the set and
    /// its children (each child read in one snapshot of its own), so the
    /// equation still holds.
    pub fn counts(&self) -> TaskCounts {
        self.counts
    }

    /// Tasks that completed over the set's life (shortcut for
    /// `counts().completed`).
    pub fn completed(&self) -> u64 {
        self.counts.completed
    }

    /// Tasks that returned `Err` over the set's life.
    pub fn failed(&self) -> u64 {
        self.counts.failed
    }

    /// Tasks that panicked over the set's life.
    pub fn panicked(&self) -> u64 {
        self.counts.panicked
    }

    /// The kept failures (bounded per set; oldest first, the set's own, then
    /// each child set's).
    pub fn failures(&self) -> &[TaskFailure] {
        &self.failures
    }

    /// Tasks this shutdown aborted after the grace period, with their age
    /// when they were aborted: the set's own by id, then each child set's
    /// (their [`path`](TaskInfo::path) says whose).
    pub fn aborted(&self) -> &[TaskInfo] {
        &self.aborted
    }

    /// Tasks still running when the shutdown returned: blocking closures that
    /// had started (they cannot be aborted) and tasks that never yield, so
    /// that their abort could not land, tasks whose spawn call (on
    /// another thread) had not returned yet, and
    /// [tracked futures](super::TaskSet::track) (never aborted: their caller
    /// polls them) that had not ended. They are still tracked by the set.
    /// The set's own come first by id, then each child set's.
    pub fn unresponsive(&self) -> &[TaskInfo] {
        &self.unresponsive
    }

    /// `true` when nothing failed, panicked, was aborted or is unresponsive.
    pub fn is_clean(&self) -> bool {
        self.counts.failed == 0
            && self.counts.panicked == 0
            && self.counts.aborted == 0
            && self.unresponsive.is_empty()
    }

    /// Adds a child set's report to its parent's: its counters, its kept
    /// failures and its tasks, after the parent's own.
    pub(super) fn absorb(&mut self, child: ShutdownReport) {
        self.counts.add_all(&child.counts);
        self.failures.extend(child.failures);
        self.aborted.extend(child.aborted);
        self.unresponsive.extend(child.unresponsive);
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task set shut down in {}: {} completed, {} failed, {} panicked, {} aborted, {} unresponsive",
            Elapsed(self.elapsed),
            self.counts.completed,
            self.counts.failed,
            self.counts.panicked,
            self.aborted.len(),
            self.unresponsive.len()
        )?;
        for task in &self.aborted {
            write!(f, "\n  aborted: {task}")?;
        }
        for task in &self.unresponsive {
            write!(f, "\n  unresponsive (still running): {task}")?;
        }
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}
