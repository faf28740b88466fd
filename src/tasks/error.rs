//! The module's two error types: [`Rejected`], a spawn the set refused, and
//! [`TaskError`], why a [`TaskHandle`](super::TaskHandle) gave no output.

use std::fmt;

use super::report::TaskId;

/// A spawn refused because the set's shutdown had begun (or the set was
/// dropped). It hands the future (or closure) back, so nothing is lost
/// silently: run it elsewhere, or record that it was not done.
///
/// # Examples
///
/// ```
/// use hangfree::TaskSet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.shutdown(std::time::Duration::from_secs(1)).await;
///
/// match set.spawn("late", async { println!("late work") }) {
///     Ok(_) => unreachable!("the set is shut down"),
///     Err(rejected) => rejected.into_inner().await, // run it here instead
/// }
/// # }
/// ```
pub struct Rejected<F>(F);

impl<F> Rejected<F> {
    pub(super) fn new(work: F) -> Self {
        Rejected(work)
    }

    /// The refused future or closure.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.shutdown(std::time::Duration::ZERO).await;
    /// let rejected = set.spawn_with_handle("late", async { 7 }).unwrap_err();
    /// assert_eq!(rejected.into_inner().await, 7);
    /// # }
    /// ```
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Rejected").finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task not spawned: the task set is shutting down")
    }
}

impl<F> std::error::Error for Rejected<F> {}

/// Why a [`TaskHandle`](super::TaskHandle) gave no output.
///
/// # Examples
///
/// ```
/// use hangfree::TaskSet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// let handle = set.spawn_with_handle("parse", async { panic!("bad row 7") }).unwrap();
/// let error = handle.await.unwrap_err();
/// assert!(error.is_panic());
/// assert_eq!(error.panic_message(), Some("bad row 7"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    id: TaskId,
    /// `None`: aborted.
    panic: Option<String>,
}

impl TaskError {
    pub(super) fn panicked(id: TaskId, message: String) -> Self {
        TaskError {
            id,
            panic: Some(message),
        }
    }

    pub(super) fn aborted(id: TaskId) -> Self {
        TaskError { id, panic: None }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// `true` if the task panicked.
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// `true` if the task was aborted (by shutdown after its grace, by
    /// dropping the set, or by [`TaskHandle::abort`](super::TaskHandle::abort)).
    pub fn is_aborted(&self) -> bool {
        self.panic.is_none()
    }

    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        self.panic.as_deref()
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.panic {
            Some(message) => write!(f, "task {} panicked: {message}", self.id),
            None => write!(f, "task {} was aborted before it finished", self.id),
        }
    }
}

impl std::error::Error for TaskError {}
