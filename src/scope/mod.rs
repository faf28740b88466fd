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
//! # The current scope
//!
//! A deadline reaches code that is handed the scope; the current scope reaches code that
//! is not. [`enter`](CancelScope::enter), [`within`](FutureExt::within) and
//! [`run`](CancelScope::run) make a scope current while their future is polled, and
//! [`CancelScope::current`] returns it there. A library function three calls down
//! honours its caller's budget with [`within_current`](FutureExt::within_current),
//! without a scope in any signature in between, and does nothing when no scope is
//! current:
//!
//! ```
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::{CancelScope, Interrupted};
//!
//! mod repository {
//!     use hangfree::prelude::*;
//!     # use std::time::Duration;
//!     pub async fn load(id: u32) -> Result<String, hangfree::Interrupted> {
//!         let query = async move {
//!             tokio::time::sleep(Duration::from_secs(30)).await; // a slow database
//!             format!("order {id}")
//!         };
//!         query.within_current().await
//!     }
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let request = CancelScope::new()
//!         .with_name("GET /orders/7")
//!         .with_timeout(Duration::from_secs(2));
//!     let loaded: Result<Result<String, Interrupted>, Interrupted> =
//!         repository::load(7).within(&request).await;
//!     let why = loaded.unwrap().unwrap_err(); // the repository stopped itself
//!     assert_eq!(why.to_string(), "deadline of 2s of 'GET /orders/7' exceeded");
//! }
//! ```
//!
//! The innermost scope entered is current. To add a limit below the current scope,
//! derive it from that scope (`CancelScope::current()` then
//! [`child`](CancelScope::child) or [`with_timeout`](CancelScope::with_timeout)): a
//! future run `within` an unrelated scope sees only that one as current.
//!
//! The scope is set on the polling thread for the length of each poll and restored after
//! it (also when the poll panics), so it holds across `.await` points, on every runtime
//! flavour, and for futures moved between threads; it costs no allocation and no atomic
//! operation per poll. A guarded future stays [`Unpin`] whenever its inner future is.
//!
//! ## Spawned tasks
//!
//! A spawned task is polled by the runtime, not inside the future that spawned it: it
//! starts with no current scope, with [`tokio::spawn`] as with
//! [`TaskSet::spawn`](crate::TaskSet::spawn). Nothing is inherited silently, because a
//! task usually outlives the request that spawned it. Give a task a scope explicitly:
//!
//! - a child of the current scope, when the task belongs to the caller's work and must
//!   stop with it: `let scope = CancelScope::current().unwrap_or_default().child();`
//!   then spawn `work.within(&scope)` (or `scope.enter(work)` to make it current
//!   without guarding);
//! - a scope from the set's token, when the task belongs to the set and must stop with
//!   its shutdown: `CancelScope::from_token(&set.token())`.
//!
//! # Interrupt hooks
//!
//! [`on_interrupt`](CancelScope::on_interrupt) runs a function once when a scope is
//! interrupted, as Go's `context.AfterFunc` does: to stop work on the other side of a
//! connection (a server-side query cancel), not only the wait for it. The hook runs on
//! the interrupting thread with no lock held; its [`InterruptHook`] guard deregisters it
//! when dropped before the interrupt.
//!
//! # Reasons and names
//!
//! [`cancel_with`](CancelScope::cancel_with) says why a scope was cancelled, and
//! [`with_name`](CancelScope::with_name) says whose budget it is. Every scope the cancel
//! reaches carries the reason, and the sentence names the scope that owned the budget
//! that ran out. [`Interrupted`] lists the sentences.
//!
//! # Shields
//!
//! [`shield`](CancelScope::shield) makes a scope for cleanup that must outlive an
//! interrupt by a bounded grace: the last acknowledgement flush, a rollback, a "job
//! failed" notice. It is interrupted exactly `grace` after its parent, and is the one
//! exception to "a deadline only tightens".
//!
//! # Moving a deadline
//!
//! [`set_deadline`](CancelScope::set_deadline) moves a live scope's own deadline, later
//! or earlier (Trio's `scope.deadline = …`): a job granted more time, a phase that ends
//! early. Waits already under way see the move. What the scope's children get still
//! only tightens: each remembers what it asked for, and gets the earliest of that and
//! its parents' deadlines as they are now.
//!
//! # The stop signal
//!
//! With the `signal` feature (on by default), [`shutdown_signal`] returns the process's
//! stop scope: cancelled on the first SIGINT or SIGTERM with a reason naming it, while a
//! second signal ends the process at once.
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
//! Deadlines are the other one. A scope that asked for a deadline remembers it for its
//! children, so that a deadline moved later ([`set_deadline`](CancelScope::set_deadline))
//! gives each child what it asked for: a loop that re-binds
//! `scope = scope.child().with_timeout(t)` keeps one level per round alive, and a first
//! poll in the last one reads every level's deadline. Make each round's scope from the
//! same parent (`parent.child().with_timeout(t)`) to stay flat. The chain is walked and
//! dropped in loops, so its length costs time, never the stack
//! (`tests/scope_tree.rs`, 200,000 levels).
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
//! | moving the deadline | `sleep.as_mut().reset(at)`, one wait | — | `scope.set_deadline(at)`, every wait in it and below |
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
mod current;
mod deferred;
mod ext;
mod hook;
mod interrupted;
mod later;
#[cfg(all(test, loom))]
mod loom_stand_ins;
#[cfg(all(test, loom))]
mod loom_tests;
mod node;
mod registration;
#[cfg(all(feature = "signal", not(loom), any(unix, windows)))]
mod shutdown;
mod signal;
mod slab;
mod timer;
mod token;
mod waiters;
mod within;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use cancelled::Cancelled;
pub use current::Enter;
pub use ext::FutureExt;
pub use hook::InterruptHook;
pub use interrupted::{Cause, Interrupted};
#[cfg(all(feature = "signal", not(loom), any(unix, windows)))]
pub use shutdown::shutdown_signal;
/// The token type of [`CancelScope::token`] and [`CancelScope::from_token`], re-exported
/// so that code using scopes needs no direct dependency on `tokio-util`.
pub use tokio_util::sync::CancellationToken;
pub use within::{Guarded, Within, WithinCurrent};

#[cfg(feature = "http")]
pub(crate) use current::Lendable;
use deferred::Deferred;
#[cfg(feature = "http")]
pub(crate) use deferred::RequestName;
pub(crate) use interrupted::Text;
use node::Node;

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
    repr: Repr,
}

/// A scope's state: its node, or what a node will be made from when something needs it
/// (`deferred.rs`).
#[derive(Clone)]
enum Repr {
    Node(Arc<Node>),
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    Deferred(Arc<Deferred>),
}

impl From<Arc<Node>> for CancelScope {
    fn from(node: Arc<Node>) -> Self {
        CancelScope {
            repr: Repr::Node(node),
        }
    }
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
        Node::root().into()
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
        Node::from_token(token).into()
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
            Some(at) => self.tighten(at, timeout, timeout.is_zero(), None),
            None => self.child(),
        }
    }

    /// `self.child().with_name(name).with_timeout(timeout)` in one scope instead of two,
    /// borrowing `self`: what a server makes for every request from its shared root
    /// (whose reference count every worker would otherwise touch twice more).
    ///
    /// Its node is made only when something needs it (`deferred.rs`): a request answered
    /// without waiting on its scope never registers in the root's tree, arms no timer,
    /// and never formats its name. A scope that is over when it is made reads so at
    /// once: [`is_cancelled`](Self::is_cancelled) is then as good as
    /// [`check`](Self::check), without a second clock read.
    #[cfg(feature = "http")]
    pub(crate) fn named_child_with_timeout(&self, name: RequestName, timeout: Duration) -> Self {
        let parent = self.node();
        let now = Instant::now();
        let deadline = now.checked_add(timeout).map(|at| (at, timeout));
        // Over before it starts (a zero budget, a stopping service, a parent past its
        // deadline): its node is made and checked now, so that `is_cancelled` tells,
        // without the clock, whether the request may start.
        // The parent's phase, as a child reads it (no token lock for a `from_token` root).
        let over = timeout.is_zero()
            || parent.signal.is_marked()
            || parent.deadline_at().is_some_and(|above| now >= above);
        let deferred = Arc::new(Deferred::new(parent.clone(), deadline, name));
        if over {
            let _ = deferred.node().check_at(now);
        }
        CancelScope {
            repr: Repr::Deferred(deferred),
        }
    }

    /// For a scope made by `named_child_with_timeout`: whether the scope it was made from
    /// is interrupted (a request's scope: whether the service is stopping). `false` for
    /// any other scope.
    #[cfg(feature = "http")]
    pub(crate) fn parent_is_cancelled(&self) -> bool {
        match &self.repr {
            Repr::Deferred(deferred) => deferred.parent().signal.is_marked(),
            Repr::Node(_) => false,
        }
    }

    /// The scope's node, made now if it was deferred.
    pub(crate) fn node(&self) -> &Arc<Node> {
        match &self.repr {
            Repr::Node(node) => node,
            Repr::Deferred(deferred) => deferred.node(),
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
        let now = Instant::now();
        self.tighten(at, at.saturating_duration_since(now), at <= now, None)
    }

    /// `passed`: `at` is not after the instant the budget was measured from (read once:
    /// the clock is the dearest part of making a request's scope after its allocations).
    /// `name`: the child's own name, if it gets one.
    ///
    /// The child keeps what it asked for even when this scope's deadline is sooner, so
    /// that it gets its own deadline, no more, if this scope's is moved later.
    fn tighten(self, at: Instant, budget: Duration, passed: bool, name: Option<Text>) -> Self {
        Node::with_deadline(self.node(), at, budget, passed, name).into()
    }

    /// Moves this scope's own deadline to `at`, later or earlier, like assigning Trio's
    /// `scope.deadline` or [`Sleep::reset`](tokio::time::Sleep::reset). Returns whether
    /// it did.
    ///
    /// - The scope's effective deadline, and what every scope made from it gets, is still
    ///   the earliest of its own and its parents': a child never gets more than its
    ///   parent has. A child remembers what it asked for: one that asked for an hour
    ///   under a ten-minute parent gets that hour, no more, if the parent moves to three.
    /// - Guarded futures already waiting in the scope, or in a scope made from it, see the
    ///   move: they end at the new deadline, and `at` in the past interrupts the scope at
    ///   once, with [`Cause::DeadlineExceeded`].
    /// - A scope with no deadline of its own ([`new`](Self::new),
    ///   [`from_token`](Self::from_token), [`child`](Self::child)) is given one, as long
    ///   as no scope has been made from it yet: those took their deadline from what it
    ///   had. Give such a scope a deadline to move when you make it
    ///   ([`with_deadline`](Self::with_deadline)).
    ///
    /// Returns `false`, and changes nothing, once the scope is interrupted (by a cancel
    /// or a deadline, including one the clock has passed that no timer has reported yet:
    /// [`check`](Self::check) would fail), for a [`shield`](Self::shield) (whose end is its parent's
    /// interrupt plus the grace), and for a scope without a deadline of its own that
    /// has children.
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
    ///     let start = Instant::now();
    ///     let job = CancelScope::new().with_timeout(Duration::from_secs(10));
    ///     let step = job.child().with_timeout(Duration::from_secs(3600));
    ///     assert_eq!(step.deadline(), job.deadline()); // never more than its parent
    ///
    ///     // The job gets more time: the step gets what it asked for, no more.
    ///     assert!(job.set_deadline(start + Duration::from_secs(3 * 3600)));
    ///     assert_eq!(step.deadline(), Some(start + Duration::from_secs(3600)));
    ///
    ///     // And less: a waiting future ends at the new deadline.
    ///     assert!(job.set_deadline(start + Duration::from_secs(5)));
    ///     let r = std::future::pending::<()>().within(&step).await;
    ///     assert!(r.is_err());
    ///     assert_eq!(Instant::now(), start + Duration::from_secs(5));
    ///     assert!(!job.set_deadline(start + Duration::from_secs(60)), "interrupted");
    /// }
    /// ```
    pub fn set_deadline(&self, at: Instant) -> bool {
        let budget = at.saturating_duration_since(Instant::now());
        self.node().set_deadline(at, budget)
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
        Node::child(self.node()).into()
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
        let node = self.node();
        node.signal.interrupt(node.signal.cancel_now(None));
    }

    /// Cancels this scope and its children, as [`cancel`](Self::cancel) does, saying why:
    /// the reason is in every [`Interrupted`] this cancel causes, here and below
    /// ([`Interrupted::reason`]), and in its sentence.
    ///
    /// The first interrupt wins: on a scope already cancelled, or whose deadline has
    /// fired, this changes nothing, neither the cause nor the reason.
    ///
    /// # Examples
    ///
    /// ```
    /// let service = hangfree::CancelScope::new();
    /// let request = service.child().with_name("GET /export");
    /// service.cancel_with("service stopping (SIGTERM)");
    /// service.cancel_with("too late: the first reason stays");
    ///
    /// let why = request.check().unwrap_err();
    /// assert_eq!(why.reason(), Some("service stopping (SIGTERM)"));
    /// assert_eq!(why.to_string(), "cancelled: service stopping (SIGTERM)");
    /// ```
    pub fn cancel_with(&self, reason: impl Into<Cow<'static, str>>) {
        let node = self.node();
        if node.signal.is_interrupted() {
            return;
        }
        let reason: Arc<str> = match reason.into() {
            Cow::Borrowed(reason) => Arc::from(reason),
            Cow::Owned(reason) => Arc::from(reason),
        };
        node.signal.interrupt(node.signal.cancel_now(Some(reason)));
    }

    /// `true` once the scope is cancelled or its deadline timer has fired.
    ///
    /// This does not read the clock; use [`check`](Self::check) to also catch a deadline
    /// that has passed but whose timer has not run yet (in a busy synchronous loop).
    ///
    /// A cancel marks its tree top down, one scope at a time, as tokio-util's
    /// `CancellationToken` does: while it runs on another thread, a child may read `false`
    /// for a moment after its parent reads `true`. Never the other way round: once a
    /// scope reads cancelled, so does every ancestor that the same cancel reached it
    /// through. What the cancel owes the child (its interrupt hooks) is owed from the
    /// moment the parent reads cancelled (see [`on_interrupt`](Self::on_interrupt)).
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
        match &self.repr {
            Repr::Node(node) => node.signal.is_interrupted(),
            Repr::Deferred(deferred) => deferred.is_interrupted(),
        }
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
        match &self.repr {
            Repr::Node(node) => node.deadline_at(),
            Repr::Deferred(deferred) => deferred.deadline_at(),
        }
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
            self.node().ensure_armed();
        }
        self.node().signal.token()
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
        self.check_at(Instant::now())
    }

    /// [`check`](Self::check) with the clock read as `now`: for a caller that reads the
    /// clock once for several questions.
    pub(crate) fn check_at(&self, now: Instant) -> Result<(), Interrupted> {
        match &self.repr {
            Repr::Node(node) => node.check_at(now),
            Repr::Deferred(deferred) => deferred.check_at(now),
        }
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

    /// Runs `fut` inside this scope, which is [current](Self::current) while `fut` is
    /// polled: the same as `fut.within(&scope)`.
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
    pub fn run<F: Future>(&self, fut: F) -> Within<F> {
        Within::new(fut, self)
    }

    /// Makes this scope the [current](Self::current) one while `fut` is polled, without
    /// guarding it: the output is `fut`'s own. Code that `fut` calls can then honour the
    /// scope without being handed it, with
    /// [`within_current`](FutureExt::within_current) or `current()`.
    ///
    /// Nesting works: the innermost scope entered is current, and the outer one is
    /// current again once the inner future's poll returns. It holds across `.await`
    /// points, on any runtime flavour, and for a future moved between threads: the scope
    /// is set on the polling thread for the length of each poll, and restored after it,
    /// also when the poll panics. [`within`](FutureExt::within) and [`run`](Self::run)
    /// enter the scope too.
    ///
    /// A task spawned from inside does not inherit the scope: see
    /// [the module documentation](self#the-current-scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let request = CancelScope::new().with_name("GET /export");
    ///     let name = request
    ///         .enter(async {
    ///             tokio::task::yield_now().await; // across awaits
    ///             CancelScope::current().and_then(|s| s.name().map(String::from))
    ///         })
    ///         .await;
    ///     assert_eq!(name.as_deref(), Some("GET /export"));
    ///     assert!(CancelScope::current().is_none());
    /// }
    /// ```
    pub fn enter<F: Future>(&self, fut: F) -> Enter<F> {
        Enter::new(fut, self.clone())
    }

    /// The scope that is current on this thread: the one whose [`enter`](Self::enter),
    /// [`within`](FutureExt::within) or [`run`](Self::run) future is being polled, the
    /// innermost if they nest. `None` where none is.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::prelude::*;
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     assert!(CancelScope::current().is_none());
    ///     let outer = CancelScope::new().with_name("outer");
    ///     let inner = outer.child().with_name("inner");
    ///     let names = async {
    ///         let here = || CancelScope::current().unwrap().name().unwrap().to_string();
    ///         let inside = async { here() }.within(&inner).await.unwrap();
    ///         (inside, here())
    ///     }
    ///     .within(&outer)
    ///     .await
    ///     .unwrap();
    ///     assert_eq!(names, ("inner".to_string(), "outer".to_string()));
    /// }
    /// ```
    pub fn current() -> Option<CancelScope> {
        current::current()
    }

    /// A child of this scope called `name`: its interrupts' sentences name the budget
    /// it owns, "deadline of 2s of 'GET /export' exceeded". Its children inherit the name
    /// unless they are given their own, and [`with_timeout`](Self::with_timeout) and
    /// [`with_deadline`](Self::with_deadline) keep it. A budget owned by an unnamed scope
    /// above every name stays unnamed.
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
    ///     let request = CancelScope::new()
    ///         .with_name("GET /export")
    ///         .with_timeout(Duration::from_secs(2));
    ///     assert_eq!(request.name(), Some("GET /export"));
    ///     let query = request.child();
    ///     let why = query.cancelled().await;
    ///     assert_eq!(
    ///         why.to_string(),
    ///         "deadline of 2s of 'GET /export' exceeded (inherited from an outer scope)"
    ///     );
    /// }
    /// ```
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Node::named_child(self.node(), text(name)).into()
    }

    /// The scope's name, its own or inherited (see [`with_name`](Self::with_name)).
    ///
    /// # Examples
    ///
    /// ```
    /// let named = hangfree::CancelScope::new().with_name("nightly export");
    /// assert_eq!(named.child().name(), Some("nightly export"));
    /// assert_eq!(hangfree::CancelScope::new().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.node().signal.name().map(|name| &**name)
    }

    /// Runs `f` once, when this scope is interrupted: cancelled (itself or through an
    /// ancestor or a token), or its deadline passes. Go's `context.AfterFunc`.
    ///
    /// - Registering a hook is enough for the deadline to be watched: nothing else needs
    ///   to wait on the scope. (Inside a runtime its timer is armed; outside one, the
    ///   crate's real-time alarm thread watches it.)
    /// - If the scope is interrupted already, `f` runs at once, before `on_interrupt`
    ///   returns.
    /// - Dropping the returned [`InterruptHook`] before the interrupt deregisters `f`,
    ///   which then never runs; [`InterruptHook::disarm`] does the same and says whether
    ///   it was in time.
    /// - Once this scope or one of its ancestors is interrupted (a token it was made from
    ///   cancelled included), dropping the guard no longer stops `f`. The guard often lives in the work that the interrupt stops (a
    ///   guarded future dropped the moment its scope is cancelled), and the thread that
    ///   marks the tree may not have reached this scope yet; `f` then runs on the thread
    ///   that drops the guard, before the drop returns, with this scope marked
    ///   interrupted first.
    ///
    /// # Where the hook runs
    ///
    /// On the thread that interrupts the scope (the one that calls `cancel`, or the one
    /// that drives the timer, which may be outside a runtime: the alarm thread), after
    /// every scope it interrupts is marked, and with no lock held, neither hangfree's nor
    /// tokio-util's: a hook may call anything on any scope. A thread that drops a scope or
    /// a hook's guard while an interrupt is on its way down the tree marks the scopes
    /// that interrupt has not reached yet below it, and so runs their hooks itself, the
    /// same way, inside the drop. It should be quick: it runs
    /// in the way of the other hooks and of whoever interrupted. Async work, such as a
    /// server-side cancel request, is spawned on a [`Handle`](tokio::runtime::Handle)
    /// captured when the hook is registered.
    ///
    /// A hook that panics is caught (and reported through `tracing`, with the feature):
    /// the other hooks still run, and the scope is not poisoned.
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
    ///     let query = CancelScope::new().with_timeout(Duration::from_secs(5));
    ///     let (stopped, told) = tokio::sync::oneshot::channel();
    ///     let handle = tokio::runtime::Handle::current();
    ///     let _stop_on_server = query.on_interrupt(move |why| {
    ///         let why = why.to_string();
    ///         handle.spawn(async move {
    ///             // send the server its cancel request here
    ///             let _ = stopped.send(why);
    ///         });
    ///     });
    ///     assert_eq!(told.await.unwrap(), "deadline of 5s exceeded");
    /// }
    /// ```
    pub fn on_interrupt<F>(&self, f: F) -> InterruptHook
    where
        F: FnOnce(&Interrupted) + Send + 'static,
    {
        InterruptHook::register(self.node(), Box::new(f))
    }

    /// A shield: a scope for cleanup that must outlive an interrupt of this one, though
    /// not for ever (a final acknowledgement flush, a rollback, a "job failed" notice).
    ///
    /// When this scope is interrupted at an instant `t`, the shield keeps running until
    /// `t + grace`, and is then interrupted, with [`Cause::GraceExceeded`] and this
    /// scope's interrupt as its [`source`](std::error::Error::source). `t` is the
    /// interrupt's recorded instant ([`Interrupted::at`]): for a deadline, the deadline
    /// itself; for a cancel, the moment of the cancel. This holds when `shield` is called
    /// after the interrupt too: the grace started at `t`, not at the call.
    ///
    /// This is the one exception to "a deadline only tightens": the shield ends up to
    /// `grace` after this scope. Everything else still applies. Its
    /// [`deadline`](Self::deadline) is the latest it can end: `t + grace` once `t` is
    /// known, this scope's deadline plus `grace` before. A deadline given to the shield
    /// (`shield(grace).with_timeout(d)`) applies on its own, and reads as the earlier of
    /// the two. Cancelling the shield, or a child of it, interrupts it at once. The
    /// shield has this scope's name. A grace too large to represent never ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    /// use hangfree::{CancelScope, Cause};
    /// use tokio::time::{Instant, sleep};
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let consumer = CancelScope::new();
    ///     let flush = consumer.shield(Duration::from_secs(5));
    ///
    ///     consumer.cancel_with("service stopping (SIGTERM)");
    ///     let stopped_at = Instant::now();
    ///     assert!(flush.check().is_ok(), "the shield outlives the interrupt");
    ///
    ///     // A flush that hangs ends with the grace, 5 s after the stop.
    ///     let why = sleep(Duration::from_secs(60)).within(&flush).await.unwrap_err();
    ///     assert_eq!(Instant::now() - stopped_at, Duration::from_secs(5));
    ///     assert_eq!(why.cause(), Cause::GraceExceeded);
    ///     let source = std::error::Error::source(&why).unwrap();
    ///     assert_eq!(source.to_string(), "cancelled: service stopping (SIGTERM)");
    /// }
    /// ```
    pub fn shield(&self, grace: Duration) -> CancelScope {
        Node::shield(self.node(), grace).into()
    }
}

impl Default for CancelScope {
    fn default() -> Self {
        CancelScope::new()
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Read without making a deferred scope's node: printing changes nothing.
        let name = match &self.repr {
            Repr::Deferred(deferred) if deferred.made().is_none() => Some(deferred.name()),
            _ => self.name().map(Arc::from),
        };
        f.debug_struct("CancelScope")
            .field("name", &name)
            .field("cancelled", &self.is_cancelled())
            .field("deadline", &self.deadline())
            .field(
                "deadline_inherited",
                &match &self.repr {
                    Repr::Node(node) => node.inherits_deadline(),
                    Repr::Deferred(deferred) => deferred.inherits_deadline(),
                },
            )
            .finish()
    }
}

/// A scope's name as it is kept.
fn text(name: impl Into<Cow<'static, str>>) -> Text {
    match name.into() {
        Cow::Borrowed(name) => Arc::from(name),
        Cow::Owned(name) => Arc::from(name),
    }
}
