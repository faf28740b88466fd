use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::registration::Registration;
use super::{CancelScope, Interrupted};

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
            registration: Registration::new(scope.clone()),
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
            .field("interrupted", &self.registration.scope().is_cancelled())
            .finish()
    }
}
