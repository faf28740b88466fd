use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::node::Node;
use super::{CancelScope, Interrupted};

/// A waiter in a scope's signal: registered while its future is pending, removed when
/// the future completes or is dropped. This is all a guarded await leaves behind, and
/// `Drop` takes it back.
pub(crate) struct Registration {
    node: Arc<Node>,
    key: Option<usize>,
}

impl Registration {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Registration { node, key: None }
    }

    /// Interrupted already, or past the deadline by the clock? Arms a lazily armed
    /// deadline first. No registration.
    fn check(&self) -> Option<Interrupted> {
        self.node.ensure_armed();
        self.node.check().err()
    }

    /// Registers the task's waker, or returns the interruption if it already happened.
    fn poll_interrupted(&mut self, cx: &mut Context<'_>) -> Poll<Interrupted> {
        if self.node.signal.register(&mut self.key, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(self.node.cause())
        }
    }

    fn release(&mut self) {
        if let Some(key) = self.key.take() {
            self.node.signal.deregister(key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}

pin_project! {
    /// A future guarded by a [`CancelScope`]: built by [`FutureExt::within`] and
    /// [`CancelScope::run`].
    ///
    /// Resolves to `Ok(output)` if the inner future completes, or `Err(Interrupted)` as
    /// soon as the scope is cancelled or its deadline passes, whichever comes first.
    ///
    /// # Cancel safety
    ///
    /// When the scope is interrupted, the inner future is dropped at once, in the poll
    /// that observes the interruption, not later when the `Guarded` itself is dropped:
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
    /// Dropping a `Guarded` before it completes drops the inner future (as with any
    /// future) and removes every trace of it from the scope.
    ///
    /// # Panics
    ///
    /// Polled again after it returned `Ready` (a contract violation, as for most
    /// futures). Its first poll arms the scope's deadline timer if nothing has yet, and so
    /// panics outside a Tokio runtime with timers enabled, as [`tokio::time::timeout`]
    /// does.
    #[must_use = "futures do nothing unless polled"]
    pub struct Guarded<F> {
        #[pin]
        inner: Option<F>,
        registration: Registration,
        started: bool,
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(inner: F, scope: &CancelScope) -> Self {
        Guarded {
            inner: Some(inner),
            registration: Registration::new(scope.node.clone()),
            started: false,
        }
    }
}

impl<F: Future> Future for Guarded<F> {
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
            panic!("`Guarded` polled after it completed");
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

impl<F> fmt::Debug for Guarded<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("running", &self.inner.is_some())
            .field(
                "interrupted",
                &self.registration.node.signal.is_interrupted(),
            )
            .field("deadline", &self.registration.node.deadline_at())
            .finish()
    }
}

/// The future returned by [`CancelScope::cancelled`]: resolves with the reason once the
/// scope is cancelled or its deadline passes.
///
/// # Cancel safety
///
/// Cancel safe: it holds no data, and dropping it only removes its registration.
#[must_use = "futures do nothing unless polled"]
pub struct Cancelled {
    registration: Registration,
}

impl Cancelled {
    pub(crate) fn new(scope: &CancelScope) -> Self {
        Cancelled {
            registration: Registration::new(scope.node.clone()),
        }
    }
}

impl Future for Cancelled {
    type Output = Interrupted;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Interrupted> {
        // Every poll, not only the first: this future only observes, and a poll is its
        // only chance to notice a deadline whose timer cannot run.
        if let Some(interrupted) = self.registration.check() {
            self.registration.release();
            return Poll::Ready(interrupted);
        }
        self.registration.poll_interrupted(cx)
    }
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field(
                "interrupted",
                &self.registration.node.signal.is_interrupted(),
            )
            .finish()
    }
}

/// Extension trait that guards any future with a [`CancelScope`].
///
/// Import it with `use hangfree::prelude::*;`.
pub trait FutureExt: Future {
    /// Runs this future until it completes or `scope` is interrupted, whichever comes
    /// first. See [`Guarded`] for the exact rules (and its `# Cancel safety`).
    ///
    /// The scope's deadline is shared by everything run inside it: guarding a future
    /// costs no timer of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let scope = CancelScope::new().with_timeout(Duration::from_secs(30));
    ///
    ///     let quick = tokio::time::sleep(Duration::from_secs(1)).within(&scope).await;
    ///     assert!(quick.is_ok());
    ///
    ///     let slow = tokio::time::sleep(Duration::from_secs(60)).within(&scope).await;
    ///     assert_eq!(slow.unwrap_err().to_string(), "deadline of 30s exceeded");
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// The returned future's first poll panics outside a Tokio runtime with timers enabled
    /// if the scope has a deadline whose timer is not armed yet, as
    /// [`tokio::time::timeout`] does.
    fn within(self, scope: &CancelScope) -> Guarded<Self>
    where
        Self: Sized,
    {
        Guarded::new(self, scope)
    }
}

impl<F: Future + ?Sized> FutureExt for F {}
