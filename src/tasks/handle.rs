//! `TaskHandle`: await a tracked task's output without owning the task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use super::error::TaskError;
use super::report::TaskId;

/// A handle to a task spawned with
/// [`TaskSet::spawn_with_handle`](super::TaskSet::spawn_with_handle) or
/// [`spawn_blocking_with_handle`](super::TaskSet::spawn_blocking_with_handle).
///
/// It is a future of `Result<T, TaskError>`: the task's output, or why there
/// is none (a panic becomes an error value, never a panic in the awaiter).
/// Dropping the handle does **not** stop the task: it keeps running and stays
/// tracked by its set (listed by `running()`, counted, aborted or reported
/// at shutdown). So a caller can stop waiting — for example when a deadline
/// passes — without losing sight of work that cannot be cancelled.
///
/// `TaskHandle<T>` is `Unpin`, and `Send` and `Sync` when `T: Send`.
///
/// # Cancel safety
///
/// Awaiting a handle is cancel safe: dropping the `.await` (in `select!`, or
/// under a timeout) loses nothing; the task keeps running and its output is
/// dropped when it finishes unless the handle is awaited again.
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
///     let handle = set
///         .spawn_with_handle("slow sum", async {
///             tokio::time::sleep(Duration::from_secs(10)).await;
///             1 + 2
///         })
///         .unwrap();
///
///     // Stop waiting after one second: the task goes on, still tracked.
///     let waited = tokio::time::timeout(Duration::from_secs(1), handle).await;
///     assert!(waited.is_err());
///     assert_eq!(set.running()[0].label(), "slow sum");
/// }
/// ```
#[must_use = "the task runs without its handle: use `spawn` if the output is not needed"]
pub struct TaskHandle<T> {
    id: TaskId,
    join: JoinHandle<Result<T, String>>,
}

impl<T> TaskHandle<T> {
    pub(super) fn new(id: TaskId, join: JoinHandle<Result<T, String>>) -> Self {
        Self { id, join }
    }

    /// The task's id (as listed by [`TaskSet::running`](super::TaskSet::running)).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task has finished (completed, panicked or been aborted).
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Aborts the task. It is counted as aborted by its set and the handle
    /// resolves to an error for which [`TaskError::is_aborted`] is true
    /// (unless the task finished first). A blocking closure that has already
    /// started cannot be aborted and runs to its end.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let handle = set.spawn_with_handle("forever", std::future::pending::<()>()).unwrap();
    /// handle.abort();
    /// assert!(handle.await.unwrap_err().is_aborted());
    /// assert_eq!(set.counts().aborted, 1);
    /// # }
    /// ```
    pub fn abort(&self) {
        self.join.abort();
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        Pin::new(&mut self.join)
            .poll(cx)
            .map(|joined| match joined {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(message)) => Err(TaskError::panicked(id, message)),
                // Panics are caught inside the task, so a join error here means
                // the task was cancelled (aborted, or its runtime shut down).
                Err(_) => Err(TaskError::aborted(id)),
            })
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id)
            .field("finished", &self.join.is_finished())
            .finish()
    }
}
