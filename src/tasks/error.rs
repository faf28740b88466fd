//! The module's error types: [`Rejected`], a spawn the set refused (and
//! [`RejectedTask`], the same without the work), [`TaskError`], why a
//! [`TaskHandle`](super::TaskHandle) gave no output, and
//! [`TaskSetConfigError`], a builder setting that cannot work.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use super::lifecycle::Phase;
use super::registry::Refusal;
use super::report::TaskId;

/// A spawn refused because the set was closed ([`TaskSet::close`](super::TaskSet::close)), its
/// shutdown had begun, or it was dropped. It hands the future (or closure)
/// back, so nothing is lost silently: run it elsewhere, or record that it
/// was not done.
///
/// `Rejected<F>` is an error (`Send` and `Sync` whenever `F` is `Send`), so
/// it goes through `?` into `anyhow::Error` or a `Box<dyn Error + Send +
/// Sync>`, the work inside it. To propagate the rejection without the work
/// (a `!Send` future from [`spawn_local`](super::TaskSet::spawn_local), or an error
/// type of your own), turn it into a [`RejectedTask`], which keeps the
/// label: [`into_error`](Self::into_error), or `?` into a type with
/// `From<RejectedTask>`.
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
///
/// Propagated with `?`:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use hangfree::TaskSet;
///
/// type Job = Pin<Box<dyn Future<Output = ()> + Send>>;
///
/// fn submit(set: &TaskSet, job: Job) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     set.spawn("job", job)?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.close();
/// let error = submit(&set, Box::pin(async {})).unwrap_err();
/// assert_eq!(error.to_string(), "task not spawned: the task set is closed");
/// # }
/// ```
pub struct Rejected<F> {
    /// Never locked: a `Mutex` only so that the rejection is `Sync` for
    /// every `Send` work, which an error needs to travel (`&Rejected` gives
    /// no access to the work).
    work: Mutex<F>,
    label: Cow<'static, str>,
    why: Why,
}

/// Why a spawn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Closed,
    ShutDown,
}

impl Why {
    fn from_phase(phase: Phase) -> Self {
        match phase {
            // Open again: it was closed, then reopened, since the refusal.
            Phase::Closed | Phase::Open => Why::Closed,
            Phase::ShutDown => Why::ShutDown,
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Why::Closed => "the task set is closed",
            Why::ShutDown => "the task set is shutting down",
        }
    }
}

impl<F> Rejected<F> {
    pub(super) fn new(work: F, refusal: Refusal) -> Self {
        Rejected {
            work: Mutex::new(work),
            label: refusal.label,
            why: Why::from_phase(refusal.phase),
        }
    }

    /// The same refusal for other work (a reservation's, for the spawn that
    /// waited on it).
    pub(super) fn for_work<G>(self, work: G, label: Cow<'static, str>) -> Rejected<G> {
        Rejected {
            work: Mutex::new(work),
            label,
            why: self.why,
        }
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
        self.work
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The label the spawn was given.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.close();
    /// let rejected = set.spawn("ack 17", async {}).unwrap_err();
    /// assert_eq!(rejected.label(), "ack 17");
    /// # }
    /// ```
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `true` if the set was shut down (or dropped), for good; `false` if it
    /// was only closed, and [`reopen`](super::TaskSet::reopen) would let the spawn
    /// in.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.close();
    /// assert!(!set.spawn("a", async {}).unwrap_err().is_shut_down());
    /// set.shutdown(std::time::Duration::ZERO).await;
    /// assert!(set.spawn("b", async {}).unwrap_err().is_shut_down());
    /// # }
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.why == Why::ShutDown
    }

    /// The rejection without the work (which is dropped): an error that is
    /// `Send + Sync + 'static` whatever the work was, and keeps the label.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use hangfree::tasks::RejectedTask;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.shutdown(std::time::Duration::ZERO).await;
    /// let not_send = Rc::new(17);
    /// let local = tokio::task::LocalSet::new();
    /// let error: RejectedTask = local
    ///     .run_until(async {
    ///         set.spawn_local("render", async move { drop(not_send) })
    ///             .unwrap_err()
    ///             .into_error()
    ///     })
    ///     .await;
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"task "render" not spawned: the task set is shutting down"#
    /// );
    /// # }
    /// ```
    pub fn into_error(self) -> RejectedTask {
        RejectedTask {
            label: self.label,
            why: self.why,
        }
    }
}

impl<F> fmt::Debug for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("label", &self.label)
            .field("shut_down", &self.is_shut_down())
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Rejected<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task not spawned: {}", self.why.sentence())
    }
}

impl<F> std::error::Error for Rejected<F> {}

/// A refused spawn without its work: the label, and why. Made by
/// [`Rejected::into_error`] (or `From`); `Send + Sync + 'static`, for `?`
/// into any error type.
///
/// # Examples
///
/// ```
/// use hangfree::tasks::RejectedTask;
///
/// #[derive(Debug, thiserror::Error)]
/// enum ConsumerError {
///     #[error(transparent)]
///     Rejected(#[from] RejectedTask),
/// }
///
/// fn handle(set: &hangfree::TaskSet, message: u32) -> Result<(), ConsumerError> {
///     set.spawn(format!("msg {message}"), async {})
///         .map_err(|rejected| rejected.into_error())?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = hangfree::TaskSet::new();
/// set.close();
/// let error = handle(&set, 17).unwrap_err();
/// assert_eq!(error.to_string(), r#"task "msg 17" not spawned: the task set is closed"#);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {label:?} not spawned: {}", .why.sentence())]
pub struct RejectedTask {
    label: Cow<'static, str>,
    why: Why,
}

impl RejectedTask {
    /// The label the spawn was given.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `true` if the set was shut down (or dropped), for good; `false` if it
    /// was only closed.
    pub fn is_shut_down(&self) -> bool {
        self.why == Why::ShutDown
    }
}

impl<F> From<Rejected<F>> for RejectedTask {
    fn from(rejected: Rejected<F>) -> Self {
        rejected.into_error()
    }
}

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

/// A [`TaskSetBuilder`](super::TaskSetBuilder) setting that cannot work,
/// from one of its `try_` setters (for values read from a configuration).
///
/// Its `Display` is written for whoever wrote the configuration: which
/// setting, what it would have done, and what to write instead. The
/// panicking setters (for literals) panic with the same sentence.
///
/// # Examples
///
/// ```
/// use hangfree::TaskSet;
/// use hangfree::tasks::TaskSetConfigError;
///
/// let err = TaskSet::builder().try_max_in_flight(0).unwrap_err();
/// assert_eq!(err, TaskSetConfigError::ZeroMaxInFlight);
/// assert_eq!(
///     err.to_string(),
///     "TaskSetBuilder::max_in_flight must be at least 1: with no slot no task could ever \
///      run; leave max_in_flight unset for no limit",
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TaskSetConfigError {
    /// `max_in_flight` is zero.
    #[error(
        "TaskSetBuilder::max_in_flight must be at least 1: with no slot no task could ever \
         run; leave max_in_flight unset for no limit"
    )]
    ZeroMaxInFlight,
}
