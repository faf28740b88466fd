//! How a task ended: [`Ending`], what the registry records, and
//! [`TaskOutcome`], how the output of a fire-and-forget task is judged to
//! get there.
//!
//! A task ends in one of four ways: it completed, it failed (a
//! fire-and-forget task returned what its `TaskOutcome` calls a failure), it
//! panicked, or it was aborted (its future or closure was dropped before it
//! ended). Panics never leave a task: their payload becomes a message here.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The output of a fire-and-forget task: `()` or `Result<T, E>` where
/// `E: Display`.
///
/// An `Err` counts as a failure: it is counted, kept (label plus
/// `e.to_string()`) and, with the `tracing` feature, logged. An `Ok` value is
/// dropped: a task can return what a client call returns (`Result<u64, E>`
/// for the rows a statement touched, say) without mapping it away.
/// Implement it for your own output type if `()` and `Result` do not fit. A
/// panic while the output is judged (in `into_failure`, an error's
/// `Display`, or the output's drop) is recorded as the task's panic.
///
/// ```
/// use hangfree::TaskSet;
///
/// async fn execute(statement: &str) -> Result<u64, std::io::Error> {
///     Ok(statement.len() as u64) // rows affected
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.spawn("mark done", execute("UPDATE jobs SET done = true")).unwrap();
/// let report = set.shutdown(std::time::Duration::from_secs(1)).await;
/// assert_eq!(report.completed(), 1);
/// # }
/// ```
///
/// Your own type:
///
/// # Examples
///
/// ```
/// use hangfree::{TaskOutcome, TaskSet};
///
/// enum Ack { Done, Expired }
///
/// impl TaskOutcome for Ack {
///     fn into_failure(self) -> Option<String> {
///         match self {
///             Ack::Done => None,
///             Ack::Expired => Some("message lock expired".to_owned()),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.spawn("ack", async { Ack::Done }).unwrap();
/// set.spawn("ack", async { Ack::Expired }).unwrap();
/// let report = set.shutdown(std::time::Duration::from_secs(1)).await;
/// assert_eq!(report.failures()[0].message(), "message lock expired");
/// # }
/// ```
pub trait TaskOutcome {
    /// `None` for success, `Some(message)` for a failure.
    fn into_failure(self) -> Option<String>;
}

impl TaskOutcome for () {
    fn into_failure(self) -> Option<String> {
        None
    }
}

impl<T, E: fmt::Display> TaskOutcome for Result<T, E> {
    fn into_failure(self) -> Option<String> {
        self.err().map(|error| error.to_string())
    }
}

/// How a task ended, as its set records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// Dropped before it ended: by an abort, or with its runtime.
    Aborted,
    Completed,
    /// A fire-and-forget task's output was a failure; the message.
    Failed(String),
    /// The panic message.
    Panicked(String),
}

impl Ending {
    /// The ending of a fire-and-forget task, from its output (or its panic's
    /// message). Judging runs user code (the output's `TaskOutcome`, an
    /// error's `Display`, the output's drop), so a panic there is caught and
    /// is the task's panic: it must neither escape into the worker (where
    /// the task would count as aborted) nor lose the failure.
    pub(super) fn judge<O: TaskOutcome>(result: Result<O, String>) -> Self {
        match result {
            Ok(output) => match catch_unwind(AssertUnwindSafe(|| output.into_failure())) {
                Ok(None) => Ending::Completed,
                Ok(Some(message)) => Ending::Failed(message),
                Err(payload) => Ending::Panicked(format!(
                    "panic while judging the task's output: {}",
                    crate::panic::panic_message(&*payload)
                )),
            },
            Err(panic) => Ending::Panicked(panic),
        }
    }

    /// The ending of a task spawned with a handle: any output completes it
    /// (the awaiter judges the value).
    pub(super) fn handed_on<O>(result: &Result<O, String>) -> Self {
        match result {
            Ok(_) => Ending::Completed,
            Err(panic) => Ending::Panicked(panic.clone()),
        }
    }
}
