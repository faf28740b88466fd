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
        registration: Registration,
        started: bool,
    }
}

/// The future returned by [`FutureExt::within`](super::FutureExt::within), under its
/// first name. Use [`Within`]: it is named after its method, as tokio names its futures.
pub type Guarded<F> = Within<F>;

impl<F> Within<F> {
    pub(crate) fn new(inner: F, scope: &CancelScope) -> Self {
        Within {
            inner: Some(inner),
            registration: Registration::new(scope.node.clone()),
            started: false,
        }
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Interrupted>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.started {
            *this.started = true;
            if let Some(interrupted) = this.registration.check() {
                this.inner.set(None);
                return Poll::Ready(Err(interrupted));
            }
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("`Within` polled after it completed");
        };
        if let Poll::Ready(output) = inner.poll(cx) {
            this.inner.set(None);
            this.registration.release();
            return Poll::Ready(Ok(output));
        }
        match this.registration.poll_interrupted(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(interrupted) => {
                this.inner.set(None);
                this.registration.release();
                Poll::Ready(Err(interrupted))
            }
        }
    }
}

impl<F> fmt::Debug for Within<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.registration.node();
        f.debug_struct("Within")
            .field("running", &self.inner.is_some())
            .field("interrupted", &node.signal.is_interrupted())
            .field("deadline", &node.deadline_at())
            .finish()
    }
}
