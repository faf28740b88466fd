use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::fmt::Limit;

/// A scope's name or a cancel's reason, shared by every `Interrupted` that carries it.
pub(crate) type Text = Arc<str>;

/// Why a scope stopped the work it guarded.
///
/// Returned by [`Within`](super::Within), [`CancelScope::check`](super::CancelScope::check)
/// and [`CancelScope::cancelled`](super::CancelScope::cancelled), and handed to
/// [interrupt hooks](super::CancelScope::on_interrupt). Its `Display` is a sentence an
/// operator understands, naming the budget that ran out and, if that budget belongs to
/// a [named](super::CancelScope::with_name) scope, the scope:
///
/// | what happened | `Display` |
/// |---|---|
/// | the scope's own deadline | `deadline of 2s exceeded` |
/// | a named scope's own deadline | `deadline of 2s of 'GET /export' exceeded` |
/// | an outer scope's deadline | `deadline of 900s exceeded (inherited from an outer scope)` |
/// | a cancel | `cancelled` |
/// | a cancel with a reason | `cancelled: service stopping (SIGTERM)` |
/// | a named scope cancelled with a reason | `'GET /export' cancelled: client went away` |
/// | an outer scope's cancel with a reason | the outer scope's sentence: `cancelled: service stopping (SIGTERM)` |
/// | a shield's grace ran out | `grace of 5s exceeded after the outer scope was interrupted` |
///
/// A scope interrupted through an outer one carries the outer one's interrupt: its
/// reason, and the name of the scope that owned the budget. The first interrupt of a
/// scope is its cause for good: a later cancel or deadline changes nothing.
///
/// It converts into [`std::io::Error`]: a deadline or a grace that ran out becomes
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
///     let scope = CancelScope::new().with_timeout(Duration::from_secs(900));
///     let err = std::future::pending::<()>().within(&scope).await.unwrap_err();
///     assert_eq!(err.cause(), Cause::DeadlineExceeded);
///     assert_eq!(err.to_string(), "deadline of 900s exceeded");
///     let io: std::io::Error = err.into();
///     assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
///
///     let request = CancelScope::new().with_name("GET /export");
///     request.cancel_with("client went away");
///     let err = request.check().unwrap_err();
///     assert_eq!(err.reason(), Some("client went away"));
///     assert_eq!(err.to_string(), "'GET /export' cancelled: client went away");
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Interrupted {
    cause: Cause,
    /// When it happened: the deadline for a deadline, the end of the grace for a shield,
    /// the moment of the cancel for a cancel.
    at: Instant,
    /// The deadline's budget, or the shield's grace.
    budget: Option<Duration>,
    reason: Option<Text>,
    /// The name of the scope that owned the budget that ran out (or that was cancelled).
    name: Option<Text>,
    /// For a shield's grace: the interrupt of the shield's parent.
    source: Option<Arc<Interrupted>>,
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
    /// The scope is (or is inside) a [shield](super::CancelScope::shield) whose grace ran
    /// out: the shield's parent was interrupted `grace` ago.
    /// [`source`](std::error::Error::source) is the parent's interrupt.
    GraceExceeded,
}

impl Interrupted {
    /// A cancel at `at`, of a scope called `name`, for `reason`.
    pub(crate) fn cancel(at: Instant, reason: Option<Text>, name: Option<Text>) -> Self {
        Interrupted {
            cause: Cause::Cancelled,
            at,
            budget: None,
            reason,
            name,
            source: None,
        }
    }

    /// A plain cancel, now.
    pub(crate) fn cancelled() -> Self {
        Interrupted::cancel(Instant::now(), None, None)
    }

    /// A deadline that passed; without a name (the budget headers of `http` use it).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn deadline(inherited: bool, deadline: Instant, budget: Duration) -> Self {
        let own = Interrupted::deadline_of(deadline, budget, None);
        if inherited { own.inherited() } else { own }
    }

    /// The own deadline `at` of a scope called `name`, set with `budget`.
    pub(crate) fn deadline_of(at: Instant, budget: Duration, name: Option<Text>) -> Self {
        Interrupted {
            cause: Cause::DeadlineExceeded,
            at,
            budget: Some(budget),
            reason: None,
            name,
            source: None,
        }
    }

    /// The end, at `at`, of the grace of a shield called `name`, whose parent was
    /// interrupted by `source`.
    pub(crate) fn grace(at: Instant, grace: Duration, name: Option<Text>, source: Self) -> Self {
        Interrupted {
            cause: Cause::GraceExceeded,
            at,
            budget: Some(grace),
            reason: None,
            name,
            source: Some(Arc::new(source)),
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

    /// `true` if a deadline (own or inherited) passed, or a shield's grace ran out;
    /// `false` if the scope was cancelled.
    pub fn is_deadline(&self) -> bool {
        !matches!(self.cause, Cause::Cancelled)
    }

    /// The deadline that passed (for a shield, the end of its grace), if a deadline was the
    /// cause.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.is_deadline().then_some(self.at)
    }

    /// The budget the deadline allowed when it was set (`with_timeout(d)` gives `d`), or
    /// a shield's grace, if one of them was the cause.
    pub fn budget(&self) -> Option<Duration> {
        self.budget
    }

    /// When the scope was interrupted: the deadline itself for a deadline (whenever its
    /// timer ran), the end of the grace for a shield, and for a cancel the moment it was
    /// made (by tokio's clock, so paused in tests under a paused clock).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let scope = hangfree::CancelScope::new();
    /// tokio::time::advance(Duration::from_secs(5)).await;
    /// let cancelled_at = tokio::time::Instant::now();
    /// scope.cancel();
    /// tokio::time::advance(Duration::from_secs(5)).await;
    /// assert_eq!(scope.check().unwrap_err().at(), cancelled_at);
    /// # }
    /// ```
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The reason given to [`cancel_with`](super::CancelScope::cancel_with), by this scope
    /// or the outer scope whose cancel reached it. `None` for a plain cancel, a deadline,
    /// or a cancel through a token.
    ///
    /// # Examples
    ///
    /// ```
    /// let service = hangfree::CancelScope::new();
    /// let request = service.child();
    /// service.cancel_with("service stopping (SIGTERM)");
    /// let why = request.check().unwrap_err();
    /// assert_eq!(why.reason(), Some("service stopping (SIGTERM)"));
    /// assert_eq!(why.to_string(), "cancelled: service stopping (SIGTERM)");
    /// ```
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The [name](super::CancelScope::with_name) of the scope whose budget ran out (its
    /// own name or the one it inherited), or that was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use hangfree::CancelScope;
    /// let request = CancelScope::new()
    ///     .with_name("GET /export")
    ///     .with_timeout(Duration::from_secs(2));
    /// let why = request.cancelled().await;
    /// assert_eq!(why.scope_name(), Some("GET /export"));
    /// assert_eq!(why.to_string(), "deadline of 2s of 'GET /export' exceeded");
    /// # }
    /// ```
    pub fn scope_name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The `Interrupted` anywhere in `error`'s chain, also inside an [`io::Error`]'s
    /// payload, which `source()` (and so anyhow's `chain()` and `downcast_ref`) skips:
    /// `Interrupted` converts into `io::Error`, and an I/O layer may have done so.
    ///
    /// # Examples
    ///
    /// ```
    /// use anyhow::Context as _;
    /// use hangfree::{CancelScope, Interrupted};
    ///
    /// fn read_config(scope: &CancelScope) -> anyhow::Result<()> {
    ///     scope.check().map_err(std::io::Error::from).context("reading the config")?;
    ///     Ok(())
    /// }
    ///
    /// let scope = CancelScope::new();
    /// scope.cancel_with("service stopping");
    /// let err = read_config(&scope).unwrap_err();
    /// assert!(err.chain().all(|cause| cause.downcast_ref::<Interrupted>().is_none()));
    /// let why = Interrupted::find_in(err.as_ref()).expect("in the chain");
    /// assert_eq!(why.reason(), Some("service stopping"));
    /// ```
    pub fn find_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Interrupted> {
        crate::error_chain::find(error)
    }
}

impl fmt::Debug for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Interrupted");
        debug
            .field("cause", &self.cause)
            .field("budget", &self.budget);
        if let Some(reason) = &self.reason {
            debug.field("reason", reason);
        }
        if let Some(name) = &self.name {
            debug.field("scope_name", name);
        }
        if let Some(source) = &self.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// ` of 'name'`, or nothing.
        struct Of<'a>(Option<&'a str>);
        impl fmt::Display for Of<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Some(name) => write!(f, " of '{name}'"),
                    None => Ok(()),
                }
            }
        }
        let of = Of(self.scope_name());
        match (self.cause, self.budget) {
            (Cause::Cancelled, _) => {
                if let Some(name) = self.scope_name() {
                    write!(f, "'{name}' ")?;
                }
                f.write_str("cancelled")?;
                match self.reason() {
                    Some(reason) => write!(f, ": {reason}"),
                    None => Ok(()),
                }
            }
            (Cause::DeadlineExceeded, Some(budget)) => {
                write!(f, "deadline of {}{of} exceeded", Limit(budget))
            }
            (Cause::InheritedDeadlineExceeded, Some(budget)) => write!(
                f,
                "deadline of {}{of} exceeded (inherited from an outer scope)",
                Limit(budget)
            ),
            (Cause::DeadlineExceeded, None) => write!(f, "deadline{of} exceeded"),
            (Cause::InheritedDeadlineExceeded, None) => {
                write!(f, "deadline{of} exceeded (inherited from an outer scope)")
            }
            (Cause::GraceExceeded, Some(grace)) => write!(
                f,
                "grace of {}{of} exceeded after the outer scope was interrupted",
                Limit(grace)
            ),
            (Cause::GraceExceeded, None) => {
                write!(
                    f,
                    "grace{of} exceeded after the outer scope was interrupted"
                )
            }
        }
    }
}

impl std::error::Error for Interrupted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

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
