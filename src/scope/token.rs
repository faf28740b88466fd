//! The parts of a cancellation token the scope tree's protocol uses (`signal.rs`):
//! tokio-util's `CancellationToken` in the crate, stand-ins in the loom models.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The parts of a cancellation token the protocol uses. `CancellationToken` in the
/// crate; stand-ins in the loom models.
pub(crate) trait Token: Clone + Send + Sync + 'static {
    /// Keeps a waker registered with the token until dropped.
    type Watch: Send + 'static;

    /// A token with no parent.
    fn fresh() -> Self;
    /// A token cancelled when `self` is, and cancellable on its own.
    fn child(&self) -> Self;
    fn cancel(&self);
    fn is_cancelled(&self) -> bool;
    /// Wakes `waker` once when the token is cancelled, for as long as the returned watch
    /// lives. `None` if it is cancelled already (and `waker` is not woken).
    fn watch(&self, waker: &Waker) -> Option<Self::Watch>;
}

impl Token for CancellationToken {
    type Watch = Pin<Box<WaitForCancellationFutureOwned>>;

    fn fresh() -> Self {
        CancellationToken::new()
    }

    fn child(&self) -> Self {
        self.child_token()
    }

    fn cancel(&self) {
        CancellationToken::cancel(self);
    }

    fn is_cancelled(&self) -> bool {
        CancellationToken::is_cancelled(self)
    }

    fn watch(&self, waker: &Waker) -> Option<Self::Watch> {
        let mut wait = Box::pin(self.clone().cancelled_owned());
        match wait.as_mut().poll(&mut Context::from_waker(waker)) {
            Poll::Ready(()) => None,
            Poll::Pending => Some(wait),
        }
    }
}
