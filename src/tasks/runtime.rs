//! The seam between the registry and the runtime its tasks run on:
//! [`Runtime`], with tokio's implementation, [`Tokio`]. The loom models
//! (`loom_tests.rs`) implement it with stand-ins, since tokio is invisible to
//! loom.

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the registry needs from the runtime its tasks run on.
pub(super) trait Runtime {
    /// Aborts one spawned task.
    type Abort: Clone;
    /// What waiters for one kind of event wait on (the set became idle, or
    /// drained, or had its first failure).
    type Signal: Default;
    /// What the set's failure policy cancels.
    type Token;

    /// Asks `task` to stop (at its next poll, for an async task).
    fn abort(task: &Self::Abort);

    /// Wakes every waiter registered on `signal`.
    fn wake(signal: &Self::Signal);

    /// Cancels `token` (again is harmless).
    fn cancel(token: &Self::Token);

    /// The runtime's clock.
    fn now() -> Instant;
}

/// The registry's runtime in the crate: tokio.
pub(super) struct Tokio;

impl Runtime for Tokio {
    type Abort = AbortHandle;
    type Signal = Notify;
    type Token = CancellationToken;

    fn abort(task: &AbortHandle) {
        task.abort();
    }

    fn wake(signal: &Notify) {
        signal.notify_waiters();
    }

    fn cancel(token: &CancellationToken) {
        token.cancel();
    }

    fn now() -> Instant {
        Instant::now()
    }
}
