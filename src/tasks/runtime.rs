//! The seam between the registry and the runtime its tasks run on:
//! [`Runtime`], with tokio's implementation, [`Tokio`]. The loom models
//! (`loom_tests.rs`) implement it with stand-ins, since tokio is invisible to
//! loom.

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the registry needs from the runtime its tasks run on.
pub(super) trait Runtime {
    /// Aborts one spawned task.
    type Abort: Clone;
    /// What shutdowns waiting for the set to become idle wait on.
    type Idle: Default;

    /// Asks `task` to stop (at its next poll, for an async task).
    fn abort(task: &Self::Abort);

    /// Wakes every shutdown waiting on `idle`: the set became idle.
    fn wake_idle(idle: &Self::Idle);

    /// The runtime's clock.
    fn now() -> Instant;
}

/// The registry's runtime in the crate: tokio.
pub(super) struct Tokio;

impl Runtime for Tokio {
    type Abort = AbortHandle;
    type Idle = Notify;

    fn abort(task: &AbortHandle) {
        task.abort();
    }

    fn wake_idle(idle: &Notify) {
        idle.notify_waiters();
    }

    fn now() -> Instant {
        Instant::now()
    }
}
