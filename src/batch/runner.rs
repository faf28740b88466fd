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
//!
//! In the loom build the runner is a stand-in whose tasks are loom threads
//! (`loom_stand_ins.rs`).

#[cfg(all(test, loom))]
pub(super) use super::loom_stand_ins::Runner;
#[cfg(not(all(test, loom)))]
use {super::error::BuildError, std::fmt, std::future::Future, tokio::runtime::Handle};

#[cfg(not(all(test, loom)))]
pub(super) struct Runner {
    handle: Handle,
}

#[cfg(not(all(test, loom)))]
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

#[cfg(not(all(test, loom)))]
impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}
