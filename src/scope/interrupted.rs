use std::fmt;
use std::io;
use std::time::Duration;

use tokio::time::Instant;

use crate::fmt::Limit;

/// Why a scope stopped the work it guarded.
///
/// Returned by [`Within`](super::Within), [`CancelScope::check`](super::CancelScope::check)
/// and [`CancelScope::cancelled`](super::CancelScope::cancelled). Its `Display` is a sentence
/// an operator understands, such as
/// `deadline of 900s exceeded (inherited from an outer scope)`.
///
/// It converts into [`std::io::Error`]: a deadline becomes
/// [`io::ErrorKind::TimedOut`], a cancellation [`io::ErrorKind::Other`] (never
/// [`io::ErrorKind::Interrupted`], which `std::io` treats as "retry the call"). The
/// original value can be recovered with [`io::Error::get_ref`] and `downcast_ref`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::prelude::*;
/// use hangfree::{CancelScope, Cause};
///
/// # /*
/// #[tokio::main]
/// # */
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
/// let scope = CancelScope::new().with_timeout(Duration::from_secs(900));
/// let err = std::future::pending::<()>().within(&scope).await.unwrap_err();
/// assert_eq!(err.cause(), Cause::DeadlineExceeded);
/// assert_eq!(err.to_string(), "deadline of 900s exceeded");
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Interrupted {
    cause: Cause,
    budget: Option<Duration>,
    deadline: Option<Instant>,
}

/// Which budget ran out: see [`Interrupted::cause`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// The scope, one of its ancestors, or the token it was built from was cancelled.
    Cancelled,
    /// The scope's own deadline passed.
    DeadlineExceeded,
    /// A deadline inherited from an outer scope passed.
    InheritedDeadlineExceeded,
}

impl Interrupted {
    pub(crate) fn cancelled() -> Self {
        Interrupted {
            cause: Cause::Cancelled,
            budget: None,
            deadline: None,
        }
    }

    pub(crate) fn deadline(inherited: bool, deadline: Instant, budget: Duration) -> Self {
        Interrupted {
            cause: if inherited {
                Cause::InheritedDeadlineExceeded
            } else {
                Cause::DeadlineExceeded
            },
            budget: Some(budget),
            deadline: Some(deadline),
        }
    }

    /// The reason a scope inside the one interrupted by `self` gets: the same cancel, or
    /// the same deadline, then one inherited from an outer scope.
    pub(crate) fn inherited(&self) -> Self {
        let cause = match self.cause {
            Cause::DeadlineExceeded => Cause::InheritedDeadlineExceeded,
            other => other,
        };
        Interrupted {
            cause,
            ..self.clone()
        }
    }

    /// Which budget ran out.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// `true` if a deadline (own or inherited) passed, `false` if the scope was cancelled.
    pub fn is_deadline(&self) -> bool {
        matches!(
            self.cause,
            Cause::DeadlineExceeded | Cause::InheritedDeadlineExceeded
        )
    }

    /// The deadline that passed, if a deadline was the cause.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }

    /// The budget the deadline allowed when it was set (`with_timeout(d)` gives `d`),
    /// if a deadline was the cause.
    pub fn budget(&self) -> Option<Duration> {
        self.budget
    }
}

impl fmt::Debug for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupted")
            .field("cause", &self.cause)
            .field("budget", &self.budget)
            .finish()
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cause, self.budget) {
            (Cause::Cancelled, _) => f.write_str("cancelled"),
            (Cause::DeadlineExceeded, Some(budget)) => {
                write!(f, "deadline of {} exceeded", Limit(budget))
            }
            (Cause::InheritedDeadlineExceeded, Some(budget)) => write!(
                f,
                "deadline of {} exceeded (inherited from an outer scope)",
                Limit(budget)
            ),
            (Cause::DeadlineExceeded, None) => f.write_str("deadline exceeded"),
            (Cause::InheritedDeadlineExceeded, None) => {
                f.write_str("deadline exceeded (inherited from an outer scope)")
            }
        }
    }
}

impl std::error::Error for Interrupted {}

impl From<Interrupted> for io::Error {
    fn from(err: Interrupted) -> io::Error {
        let kind = if err.is_deadline() {
            io::ErrorKind::TimedOut
        } else {
            // Not `Interrupted`: std's read loops retry on it.
            io::ErrorKind::Other
        };
        io::Error::new(kind, err)
    }
}
