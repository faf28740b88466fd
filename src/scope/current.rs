//! The current scope of a thread, while a future that entered it is polled.
//!
//! A future that enters a scope ([`Enter`], [`Within`](super::Within)) holds a handle to
//! the scope and lends it to the thread for the length of each poll of its inner future:
//! the handle moves into the thread-local slot, the slot's previous content moves aside, and
//! both move back when the poll returns, or unwinds. Nested entries restore in turn, so
//! the innermost scope is current, and the outer one is current again once the inner
//! poll returns. Nothing is cloned or counted per poll, and nothing holds a scope across
//! an `.await`: a future moved to another thread takes its scope with it, and a thread
//! that polls something else in between sees that something's scope, or none.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::CancelScope;

thread_local! {
    static CURRENT: Cell<Option<CancelScope>> = const { Cell::new(None) };
}

/// The scope current on this thread, cloned.
pub(crate) fn current() -> Option<CancelScope> {
    CURRENT
        .try_with(|slot| {
            let node = slot.take();
            let current = node.clone();
            slot.set(node);
            current
        })
        .ok()
        .flatten()
}

/// A future's own handle to its scope, lent to the thread while the future polls what it
/// wraps: one handle serves for waiting on the scope and for making it current, so that
/// neither costs a reference count of its own.
pub(crate) struct Lendable(
    /// `None` only inside `lend`, where nothing else can reach it.
    Option<CancelScope>,
);

impl Lendable {
    pub(crate) fn new(scope: CancelScope) -> Self {
        Lendable(Some(scope))
    }

    /// The scope; never called while it is lent (the lender holds `&mut self`).
    pub(crate) fn get(&self) -> &CancelScope {
        match &self.0 {
            Some(scope) => scope,
            None => unreachable!("the scope is lent only inside `lend`"),
        }
    }

    /// Runs `f` with the scope current on this thread, and takes it back afterwards, also
    /// if `f` panics.
    #[inline]
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        lend(&mut self.0, f)
    }
}

impl fmt::Debug for Lendable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Runs `f` with `node` current on this thread, taking it back afterwards, also if `f`
/// panics. `node` is `None` only while it is lent.
#[inline]
fn lend<R>(node: &mut Option<CancelScope>, f: impl FnOnce() -> R) -> R {
    /// Puts both back when dropped: after `f` returns, or while it unwinds.
    struct Restore<'a> {
        node: &'a mut Option<CancelScope>,
        previous: Option<CancelScope>,
    }

    impl Drop for Restore<'_> {
        #[inline]
        fn drop(&mut self) {
            let previous = self.previous.take();
            // The slot holds what this lend put there: every other lend that ran inside
            // `f` has put its own back already.
            if let Ok(lent) = CURRENT.try_with(|slot| slot.replace(previous)) {
                *self.node = lent;
            }
        }
    }

    // A thread whose locals are being destroyed has no current scope to set.
    let Ok(previous) = CURRENT.try_with(|slot| slot.replace(node.take())) else {
        return f();
    };
    let _restore = Restore { node, previous };
    f()
}

pin_project! {
    /// A future with a current scope: built by [`CancelScope::enter`].
    ///
    /// While it is polled, [`CancelScope::current`] returns the scope. It does not guard:
    /// its output is the inner future's.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as the inner future: dropping it drops the inner future and nothing
    /// else.
    ///
    /// [`CancelScope::enter`]: super::CancelScope::enter
    /// [`CancelScope::current`]: super::CancelScope::current
    #[must_use = "futures do nothing unless polled"]
    pub struct Enter<F> {
        #[pin]
        inner: F,
        scope: Lendable,
    }
}

impl<F> Enter<F> {
    pub(crate) fn new(inner: F, scope: CancelScope) -> Self {
        Enter {
            inner,
            scope: Lendable::new(scope),
        }
    }
}

impl<F: Future> Future for Enter<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        this.scope.lend(|| inner.poll(cx))
    }
}

impl<F> fmt::Debug for Enter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enter")
            .field("interrupted", &self.scope.get().is_cancelled())
            .finish_non_exhaustive()
    }
}
