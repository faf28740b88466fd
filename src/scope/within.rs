use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::registration::Registration;
use super::{CancelScope, Interrupted};

pin_project! {
    /// A future guarded by a [`CancelScope`]: built by [`FutureExt::within`](super::FutureExt::within)
    /// and [`CancelScope::run`].
    ///
    /// Resolves to `Ok(output)` if the inner future completes, or `Err(Interrupted)` as
    /// soon as the scope is cancelled or its deadline passes, whichever comes first.
    ///
    /// While the inner future is polled, the scope is the [current](CancelScope::current)
    /// one, so that code it calls can honour the scope without being handed it
    /// ([`within_current`](super::FutureExt::within_current)).
    ///
    /// # Cancel safety
    ///
    /// When the scope is interrupted, the inner future is dropped at once, in the poll
    /// that observes the interruption, not later when the `Within` itself is dropped:
    /// a guarded socket is closed, a guarded pool checkout is returned.
    ///
    /// If the inner future becomes ready in the same poll in which the interruption is
    /// observed, **its output wins** and `Ok` is returned: a value that was produced
    /// (a message received, a row written) is never thrown away in favour of the error.
    /// Once started, the inner future is always polled before the scope is checked.
    ///
    /// An inner future is never *started* in a scope that is already interrupted: the
    /// first poll checks the scope first, and returns `Err` without polling the inner
    /// future at all. That check reads the clock, as [`CancelScope::check`] does, so a
    /// deadline that has passed stops the work even if its timer has not fired yet (the
    /// thread was blocked, or the runtime that drives the timer is busy): a loop of
    /// guarded futures that are always ready stops at the deadline, even on a
    /// current-thread runtime that it never lets run a timer. Later polls do not read the
    /// clock; the timer interrupts them. A scope whose deadline had already passed when it
    /// was built is interrupted from the start.
    ///
    /// Dropping a `Within` before it completes drops the inner future (as with any
    /// future) and removes every trace of it from the scope.
    ///
    /// # Panics
    ///
    /// Polled again after it returned `Ready` (a contract violation, as for most
    /// futures). Its first poll arms the scope's deadline timer if nothing has yet, and so
    /// panics outside a Tokio runtime with timers enabled, as [`tokio::time::timeout`]
    /// does.
    #[must_use = "futures do nothing unless polled"]
    pub struct Within<F> {
        #[pin]
        inner: Option<F>,
        // `None` only for `within_current` without a current scope.
        scope: Option<Scoped>,
        started: bool,
    }
}

/// The future returned by [`FutureExt::within`](super::FutureExt::within), under its
/// first name. Use [`Within`]: it is named after its method, as tokio names its futures.
pub type Guarded<F> = Within<F>;

/// What a `Within` holds of its scope: its registration, which also lends the scope to
/// the thread while the inner future is polled.
struct Scoped {
    registration: Registration,
}

impl Scoped {
    fn new(scope: CancelScope) -> Self {
        Scoped {
            registration: Registration::new(scope),
        }
    }
}

impl<F> Within<F> {
    pub(crate) fn new(inner: F, scope: &CancelScope) -> Self {
        Within {
            inner: Some(inner),
            scope: Some(Scoped::new(scope.clone())),
            started: false,
        }
    }

    /// Guarded by the current scope, once its first poll has looked it up.
    pub(crate) fn unscoped(inner: F) -> Self {
        Within {
            inner: Some(inner),
            scope: None,
            started: false,
        }
    }

    /// Guards it by `scope`, before its first poll.
    pub(crate) fn attach(self: Pin<&mut Self>, scope: CancelScope) {
        *self.project().scope = Some(Scoped::new(scope));
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Interrupted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.started {
            *this.started = true;
            let interrupted = this.scope.as_ref().and_then(|s| s.registration.check());
            if let Some(interrupted) = interrupted {
                this.inner.set(None);
                return Poll::Ready(Err(interrupted));
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("`Within` polled after it completed");
        };
        let Some(scope) = this.scope.as_mut() else {
            return inner.poll(cx).map(Ok);
        };
        if let Poll::Ready(output) = scope.registration.lend(|| inner.poll(cx)) {
            this.inner.set(None);
            scope.registration.release();
            return Poll::Ready(Ok(output));
        }
        match scope.registration.poll_interrupted(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(interrupted) => {
                this.inner.set(None);
                scope.registration.release();
                Poll::Ready(Err(interrupted))
            }
        }
    }
}

impl<F> fmt::Debug for Within<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.scope.as_ref().map(|s| s.registration.scope());
        f.debug_struct("Within")
            .field("running", &self.inner.is_some())
            .field("interrupted", &scope.is_some_and(CancelScope::is_cancelled))
            .field("deadline", &scope.and_then(CancelScope::deadline))
            .finish()
    }
}

pin_project! {
    /// A future guarded by the scope that is current at its first poll: built by
    /// [`FutureExt::within_current`](super::FutureExt::within_current).
    ///
    /// With a current scope it behaves as [`Within`] with that scope, and keeps the scope
    /// current for the inner future. Without one, it polls the inner future as it is and
    /// resolves to `Ok` with its output.
    ///
    /// # Cancel safety
    ///
    /// As for [`Within`].
    ///
    /// # Panics
    ///
    /// As for [`Within`].
    #[must_use = "futures do nothing unless polled"]
    pub struct WithinCurrent<F> {
        #[pin]
        within: Within<F>,
        looked_up: bool,
    }
}

impl<F> WithinCurrent<F> {
    pub(crate) fn new(inner: F) -> Self {
        WithinCurrent {
            within: Within::unscoped(inner),
            looked_up: false,
        }
    }
}

impl<F: Future> Future for WithinCurrent<F> {
    type Output = Result<F::Output, Interrupted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.looked_up {
            *this.looked_up = true;
            if let Some(scope) = super::current::current() {
                this.within.as_mut().attach(scope);
            }
        }
        this.within.poll(cx)
    }
}

impl<F> fmt::Debug for WithinCurrent<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithinCurrent")
            .field("looked_up", &self.looked_up)
            .field("within", &self.within)
            .finish()
    }
}
