//! Where the batcher's tasks run: the one seam between batching and task
//! management.
//!
//! Today a `Runner` spawns onto the tokio runtime that built the batcher, and
//! the batcher tracks its workers itself (slots in its state, a cancellation
//! token to abandon them). Moving flushes onto a `TaskSet` means changing
//! only this file: spawn through the set (label "hangfree batch flush"), and
//! let the set's shutdown abort what the batcher abandons. The batcher keeps
//! its own per-flush records either way, because its report needs item
//! counts and batch numbers, not only task labels.

use std::fmt;
use std::future::Future;

use tokio::runtime::Handle;

use super::error::BuildError;

pub(super) struct Runner {
    handle: Handle,
}

impl Runner {
    /// The runtime the caller runs in.
    pub(super) fn current() -> Result<Self, BuildError> {
        Handle::try_current()
            .map(|handle| Runner { handle })
            .map_err(|_| BuildError::NoRuntime)
    }

    /// Runs `task` in the background. Works from any thread, also from a
    /// `Drop` outside the runtime; if the runtime is shutting down, `task` is
    /// dropped, which its own guards account for.
    pub(super) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // The join handle is not needed: workers report through the shared
        // state, and abandonment goes through the batcher's token.
        drop(self.handle.spawn(task));
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}
