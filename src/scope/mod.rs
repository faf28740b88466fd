//! Cancellation with deadlines that flow down the call chain, and cannot leak.
//!
//! A [`CancelScope`] is a value you pass down: a cancellation token plus an optional
//! absolute deadline. Any future can be run inside it with [`FutureExt::within`]; the
//! future then ends with `Err(`[`Interrupted`]`)` as soon as the scope is cancelled or its
//! deadline passes, and the error says which budget ran out.
//!
//! ```
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::CancelScope;
//!
//! # async fn fetch_rows() -> Vec<u32> { std::future::pending().await }
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     // The whole export gets 15 minutes, however its steps divide them.
//!     let export = CancelScope::new().with_timeout(Duration::from_secs(15 * 60));
//!
//!     // A step may ask for less, never for more: deadlines only tighten.
//!     let step = export.child().with_timeout(Duration::from_secs(3600));
//!     assert_eq!(step.deadline(), export.deadline());
//!
//!     match fetch_rows().within(&step).await {
//!         Ok(rows) => println!("{} rows", rows.len()),
//!         Err(why) => {
//!             // "deadline of 900s exceeded (inherited from an outer scope)"
//!             eprintln!("export step stopped: {why}");
//!             assert!(why.is_deadline());
//!         }
//!     }
//! }
//! ```
//!
//! # Deadlines, not timeouts
//!
//! A timeout is a duration measured from whenever a call starts; nested calls each
//! starting their own can together take far longer than the caller allowed. A deadline is
//! a point in time. A scope keeps one, and [`with_timeout`](CancelScope::with_timeout) and
//! [`with_deadline`](CancelScope::with_deadline) can only move it *earlier*: a child scope
//! asking for an hour inside a parent with ten minutes left still ends with the parent.
//! The error says whether the scope's own deadline fired or one inherited from outside.
//!
//! # Children
//!
//! [`child`](CancelScope::child) makes a scope that is cancelled with its parent but can be
//! cancelled on its own without touching the parent or its siblings, like
//! [`CancellationToken::child_token`]. It inherits the parent's deadline.
//!
//! # What a guarded await costs, and why nothing leaks
//!
//! Everything run inside one scope shares the scope's single deadline timer. Guarding a
//! future adds one entry to the scope's list of waiters while the future is pending, and
//! removes it when the future completes or is dropped; its first poll also reads the
//! clock if there is a deadline. Nothing is spawned. When the last handle to a scope and
//! the last future guarded by it are gone, its timer and its place in the scope tree are
//! gone too (its children move up to its parent). This is tested by counting heap bytes
//! over a million guarded awaits (`tests/scope_leak.rs`) and over the tree's paths
//! (`tests/scope_tree_leak.rs`).
//!
//! One exception keeps memory while it is needed: a dropped scope whose
//! [`token`](CancelScope::token) was handed out, or that was built
//! [`from_token`](CancelScope::from_token), stays in the tree while it has live
//! children, to pass that token's cancel on to them. A loop that re-binds
//! `scope = scope.child()` *and* hands out every level's token keeps one such level per
//! round until the last scope is dropped; hand out the token of a scope you keep instead.
//!
//! This is the difference from the classic way to make an uncancellable wait
//! cancellable, racing it against "a delay that never ends unless cancelled": when the
//! work wins, the delay and its token registration live on.
//!
//! # Comparison to `tokio::time::timeout` and `CancellationToken`
//!
//! | | `timeout(d, fut)` | `token.run_until_cancelled(fut)` | `fut.within(&scope)` |
//! |---|---|---|---|
//! | stops on | a duration from this call | a cancel | a cancel or a deadline shared down the chain |
//! | nested calls | each starts its own clock | no time limit | can only tighten the outer deadline |
//! | error says | elapsed | (`None`) | which budget: cancelled, own or inherited deadline |
//! | per await | one timer entry | token lock and waiter registration | one waiter registration |
//! | measured cost, two runs (`docs/benchmarks.md`) | 1.22x-1.53x bare | 1.07x-1.22x bare | 1.09x-1.17x bare, token and deadline |
//!
//! # Work that cannot be cancelled
//!
//! Dropping a future stops it at its next await. Some work cannot be stopped that way:
//! a closure on a blocking thread, or a task that must not be dropped half way (a
//! message completion, a payment). Run such work in a [`TaskSet`](crate::TaskSet) and
//! guard the *wait* for it, not the work: awaiting its
//! [`TaskHandle`](crate::TaskHandle) inside `within` stops the caller at the deadline,
//! while the task keeps running, still tracked by the set (label and age in
//! [`running`](crate::TaskSet::running)), and reported or aborted by its shutdown.
//! Nothing is silently detached.
//!
//! ```
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::{CancelScope, TaskSet};
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let work = TaskSet::new();
//!     let settle = work
//!         .spawn_with_handle("settle invoice 42", async {
//!             tokio::time::sleep(Duration::from_secs(60)).await;
//!         })
//!         .expect("the set is open");
//!
//!     let request = CancelScope::new().with_timeout(Duration::from_secs(5));
//!     let waited = settle.within(&request).await;
//!     assert!(waited.unwrap_err().is_deadline()); // the caller stopped waiting...
//!     assert_eq!(work.running()[0].label(), "settle invoice 42"); // ...the work goes on
//!
//!     let report = work.shutdown(Duration::from_secs(120)).await;
//!     assert_eq!(report.completed(), 1);
//! }
//! ```
//!
//! # Runtimes
//!
//! A scope's deadline timer is armed on first use inside a Tokio runtime (the first poll
//! of something guarded by it, [`token`](CancelScope::token), or
//! [`cancelled`](CancelScope::cancelled)), on that runtime's timer, and fires there for
//! every waiter, whichever runtime it runs on. Besides the timer, the clock is read by
//! [`check`](CancelScope::check), by every poll of [`cancelled`](CancelScope::cancelled)
//! and by the first poll of every guarded future: however busy the runtime, nothing
//! starts in a scope whose deadline has passed.
//!
//! A scope shared between runtimes depends on the one that armed its timer:
//!
//! - **If that runtime shuts down** before the deadline, tokio wakes the timer once,
//!   early, and never again. The scope then hands its deadline to a real-time alarm (one
//!   process-wide thread, shared with [`TaskSet`](crate::TaskSet)'s shutdown), which fires
//!   it on time: waits on other runtimes, guarded or on the scope's token, end at the
//!   deadline with its cause. The next use inside a runtime also re-arms the timer there.
//! - **If that runtime lives but nobody drives its timers**, its timer does not fire: a
//!   current-thread runtime that no thread is blocking on, or a multi-thread runtime whose
//!   workers are all stuck in blocking calls. A wait elsewhere that only the timer can
//!   end (a pending guarded future that is not polled again, `token().cancelled()`) then
//!   **hangs** until that runtime runs again; `check` and new guarded futures still see
//!   the deadline by the clock. To avoid it, make the first use of a shared scope on a
//!   runtime that keeps running (call [`token`](CancelScope::token) there, for example),
//!   or keep the arming runtime driven.

mod cancelled;
mod ext;
mod interrupted;
#[cfg(all(test, loom))]
mod loom_tests;
mod node;
mod registration;
mod signal;
mod slab;
mod within;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use cancelled::Cancelled;
pub use ext::FutureExt;
pub use interrupted::{Cause, Interrupted};
/// The token type of [`CancelScope::token`] and [`CancelScope::from_token`], re-exported
/// so that code using scopes needs no direct dependency on `tokio-util`.
pub use tokio_util::sync::CancellationToken;
pub use within::{Guarded, Within};

use node::{Deadline, Node};

/// A cancellation token plus an optional deadline, passed down the call chain.
///
/// Cheap to clone: clones share the same state (cancelling one cancels all). See the
/// [module documentation](self) for the concepts.
///
/// # Examples
///
/// ```
/// use hangfree::prelude::*;
/// use hangfree::{CancelScope, Cause};
///
/// # /*
/// #[tokio::main]
/// # */
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let scope = CancelScope::new();
///     let worker = scope.child();
///
///     let task = tokio::spawn({
///         let worker = worker.clone();
///         async move { std::future::pending::<()>().within(&worker).await }
///     });
///     scope.cancel();
///     let err = task.await.unwrap().unwrap_err();
///     assert_eq!(err.cause(), Cause::Cancelled);
/// }
/// ```
#[derive(Clone)]
pub struct CancelScope {
    node: Arc<Node>,
}

impl CancelScope {
    /// A scope with a fresh token and no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// let scope = hangfree::CancelScope::new();
    /// assert!(!scope.is_cancelled());
    /// assert_eq!(scope.deadline(), None);
    /// ```
    pub fn new() -> Self {
        CancelScope { node: Node::root() }
    }

    /// A scope that is cancelled when `token` is cancelled.
    ///
    /// The scope uses a child of `token`: cancelling the scope (or its deadline passing)
    /// does **not** cancel `token`, which may be shared with work outside the scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio_util::sync::CancellationToken;
    ///
    /// let shutdown = CancellationToken::new();
    /// let scope = hangfree::CancelScope::from_token(&shutdown);
    /// scope.cancel();
    /// assert!(scope.is_cancelled());
    /// assert!(!shutdown.is_cancelled());
    ///
    /// let other = hangfree::CancelScope::from_token(&shutdown);
    /// shutdown.cancel();
    /// assert!(other.is_cancelled());
    /// ```
    pub fn from_token(token: &CancellationToken) -> Self {
        CancelScope {
            node: Node::from_token(token),
        }
    }

    /// A child of this scope whose deadline is `timeout` from now, or this scope's
    /// deadline if that is sooner. A timeout too large to represent adds no deadline.
    ///
    /// Like every child, the returned scope is cancelled with `self`, and cancelling it
    /// (or its own deadline passing) never cancels `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let outer = CancelScope::new().with_timeout(Duration::from_secs(10));
    ///     let inner = outer.child().with_timeout(Duration::from_secs(60));
    ///     assert_eq!(inner.deadline(), outer.deadline()); // only tightens
    ///     assert!(inner.remaining().unwrap() <= Duration::from_secs(10));
    /// }
    /// ```
    pub fn with_timeout(self, timeout: Duration) -> Self {
        let now = Instant::now();
        match now.checked_add(timeout) {
            Some(at) => self.tighten(at, timeout),
            None => self.child(),
        }
    }

    /// A child of this scope whose deadline is `at`, or this scope's deadline if that is
    /// sooner. A deadline in the past interrupts the returned scope at once.
    ///
    /// Same relation to `self` as [`with_timeout`](Self::with_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    /// use hangfree::CancelScope;
    /// use tokio::time::Instant;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let at = Instant::now() + Duration::from_secs(2);
    ///     let scope = CancelScope::new().with_deadline(at);
    ///     assert_eq!(scope.deadline(), Some(at));
    ///     let r = tokio::time::sleep(Duration::from_secs(3)).within(&scope).await;
    ///     assert!(r.is_err());
    ///     assert_eq!(Instant::now(), at);
    /// }
    /// ```
    pub fn with_deadline(self, at: Instant) -> Self {
        let budget = at.saturating_duration_since(Instant::now());
        self.tighten(at, budget)
    }

    fn tighten(self, at: Instant, budget: Duration) -> Self {
        if self.node.deadline_at().is_some_and(|current| current <= at) {
            return self.child();
        }
        CancelScope {
            node: Node::with_deadline(&self.node, at, budget),
        }
    }

    /// A child scope: cancelled when this one is, cancellable on its own without affecting
    /// this one, and bound by this scope's deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// let parent = hangfree::CancelScope::new();
    /// let a = parent.child();
    /// let b = parent.child();
    /// a.cancel();
    /// assert!(a.is_cancelled());
    /// assert!(!parent.is_cancelled() && !b.is_cancelled());
    /// parent.cancel();
    /// assert!(b.is_cancelled());
    /// ```
    pub fn child(&self) -> Self {
        CancelScope {
            node: Node::child(&self.node),
        }
    }

    /// Cancels this scope and its children. Futures guarded by them end with
    /// `Err(Interrupted)` whose cause is [`Cause::Cancelled`].
    ///
    /// Every scope is marked interrupted before anything is woken: code woken by this
    /// cancel, on any thread and through any scope below, finds this scope and every
    /// scope between interrupted. When `cancel` returns, all of them read interrupted and
    /// their tokens are cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let scope = hangfree::CancelScope::new();
    /// scope.cancel();
    /// assert!(scope.check().is_err());
    /// ```
    pub fn cancel(&self) {
        self.node.signal.interrupt(Interrupted::cancelled());
    }

    /// `true` once the scope is cancelled or its deadline timer has fired.
    ///
    /// This does not read the clock; use [`check`](Self::check) to also catch a deadline
    /// that has passed but whose timer has not run yet (in a busy synchronous loop).
    ///
    /// # Examples
    ///
    /// ```
    /// let scope = hangfree::CancelScope::new();
    /// assert!(!scope.is_cancelled());
    /// scope.cancel();
    /// assert!(scope.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.node.signal.is_interrupted()
    }

    /// The effective deadline (own or inherited), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let scope = hangfree::CancelScope::new().with_timeout(Duration::from_secs(1));
    /// assert_eq!(
    ///     scope.deadline(),
    ///     Some(tokio::time::Instant::now() + Duration::from_secs(1))
    /// );
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline_at()
    }

    /// Time left until the deadline (zero once it has passed), or `None` without one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let scope = hangfree::CancelScope::new().with_timeout(Duration::from_secs(10));
    /// tokio::time::advance(Duration::from_secs(4)).await;
    /// assert_eq!(scope.remaining(), Some(Duration::from_secs(6)));
    /// # }
    /// ```
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// The scope's token: cancelled when the scope is cancelled or its deadline passes.
    /// Hand it to code that takes a [`CancellationToken`]. Cancelling it cancels the scope
    /// and its children. Every call returns the same token. It outlives the scope: once
    /// the scope is dropped, it is still cancelled with the scope's parent, and still
    /// cancels the scope's children.
    ///
    /// Called inside a Tokio runtime, this arms the scope's deadline timer, so the token is
    /// cancelled at the deadline even if nothing else in the scope is ever polled. Called
    /// outside one, the timer is armed by the first guarded poll instead.
    ///
    /// A scope built from this token with [`from_token`](Self::from_token) follows its
    /// cancellation but neither inherits the deadline as its own nor reports it as the
    /// cause: use [`child`](Self::child) to pass a scope down.
    ///
    /// # Panics
    ///
    /// Inside a runtime built without timers, if the scope has a deadline (as any tokio
    /// timer would).
    ///
    /// # Examples
    ///
    /// ```
    /// let scope = hangfree::CancelScope::new();
    /// let token = scope.token();
    /// scope.cancel();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.node.ensure_armed();
        }
        self.node.signal.token()
    }

    /// `Ok(())` while the scope may go on, `Err` once it is cancelled or its deadline has
    /// passed by the clock. For loops and synchronous code between awaits.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let scope = hangfree::CancelScope::new().with_timeout(Duration::from_secs(1));
    /// for batch in 0.. {
    ///     if let Err(why) = scope.check() {
    ///         println!("stopping after {batch} batches: {why}");
    ///         break;
    ///     }
    ///     tokio::time::advance(Duration::from_millis(300)).await; // a batch's work
    /// }
    /// # }
    /// ```
    pub fn check(&self) -> Result<(), Interrupted> {
        self.node.check()
    }

    /// A future that resolves with the reason once the scope is cancelled or its deadline
    /// passes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let scope = CancelScope::new().with_timeout(Duration::from_secs(3));
    ///     let why = scope.cancelled().await;
    ///     assert_eq!(why.to_string(), "deadline of 3s exceeded");
    /// }
    /// ```
    pub fn cancelled(&self) -> Cancelled {
        Cancelled::new(self)
    }

    /// Runs `fut` inside this scope: the same as `fut.within(&scope)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let scope = hangfree::CancelScope::new();
    /// assert_eq!(scope.run(async { 7 }).await, Ok(7));
    /// # }
    /// ```
    pub fn run<F: std::future::Future>(&self, fut: F) -> Within<F> {
        Within::new(fut, self)
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        CancelScope::new()
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelScope")
            .field("cancelled", &self.is_cancelled())
            .field("deadline", &self.deadline())
            .field(
                "deadline_inherited",
                &matches!(self.node.deadline, Deadline::Inherited(_)),
            )
            .finish()
    }
}
