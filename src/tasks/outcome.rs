//! What a fire-and-forget task may return, the value handed back when a spawn
//! is refused, and panic messages.

use std::any::Any;
use std::fmt;

/// The output of a fire-and-forget task: `()` or `Result<(), E>` where
/// `E: Display`.
///
/// An `Err` counts as a failure: it is counted, kept (label plus
/// `e.to_string()`) and, with the `tracing` feature, logged. Implement it for
/// your own output type if `()` and `Result` do not fit. A panic while the
/// output is judged (in `into_failure`, an error's `Display`, or the output's
/// drop) is recorded as the task's panic.
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

impl<E: fmt::Display> TaskOutcome for Result<(), E> {
    fn into_failure(self) -> Option<String> {
        self.err().map(|error| error.to_string())
    }
}

/// A spawn refused because the set's shutdown had begun (or the set was
/// dropped). It hands the future (or closure) back, so nothing is lost
/// silently: run it elsewhere, or record that it was not done.
///
/// # Examples
///
/// ```
/// use hangfree::{Rejected, TaskSet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = TaskSet::new();
/// set.shutdown(std::time::Duration::from_secs(1)).await;
///
/// match set.spawn("late", async { println!("late work") }) {
///     Ok(_) => unreachable!("the set is shut down"),
///     Err(Rejected(fut)) => fut.await, // run it here instead
/// }
/// # }
/// ```
pub struct Rejected<F>(pub F);

impl<F> Rejected<F> {
    /// The refused future or closure.
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

/// The text of a panic payload (`&str` or `String`, as `panic!` makes).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
