//! The failure policy ([`FailurePolicy`]) and the set's first failure
//! ([`TaskSet::first_failure`]): errgroup's `WithContext`, for a set.
//!
//! The first failure is decided once, under the kept failures' lock
//! (`failures.rs`, invariant 3), whichever tasks fail at once; the policy
//! acts on it after the failed task's shard is unlocked (`registry.rs`).

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use super::failures::First;
use super::report::TaskFailure;
use super::set::TaskSet;

/// What a set does at its first failure: an `Err` judged by
/// [`TaskOutcome`](super::TaskOutcome) or a panic, of any of its tasks.
/// Chosen with [`TaskSetBuilder::failure_policy`](super::TaskSetBuilder::failure_policy).
///
/// Whatever the policy, every failure is counted, kept (bounded) and logged,
/// and [`TaskSet::first_failure`] resolves with the first one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::TaskSet;
/// use hangfree::tasks::FailurePolicy;
///
/// #[tokio::main]
/// # async fn _hidden() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let set = TaskSet::builder()
///         .failure_policy(FailurePolicy::CancelToken)
///         .build();
///     for shard in 0..4 {
///         let token = set.token();
///         set.spawn(format!("copy shard {shard}"), async move {
///             if shard == 2 {
///                 return Err("disk full");
///             }
///             // The siblings stop when one fails.
///             token.cancelled().await;
///             Ok(())
///         })
///         .unwrap();
///     }
///     let failure = set.first_failure().await.expect("shard 2 fails");
///     assert_eq!(failure.label(), "copy shard 2");
///     assert!(set.token().is_cancelled());
///
///     let report = set.shutdown(Duration::from_secs(5)).await;
///     assert_eq!((report.completed(), report.failed()), (3, 1));
/// }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// The set goes on: the other tasks are not told. The default.
    #[default]
    Continue,
    /// The first failure cancels the set's [`token`](TaskSet::token) (and
    /// with it the tokens of its [child sets](TaskSet::child)), so that
    /// cooperative tasks stop. The set stays open: spawning goes on unless
    /// you close it or shut it down.
    CancelToken,
}

impl TaskSet {
    /// The set's first failure: resolves with it as soon as a task has
    /// failed (returned an `Err` judged by [`TaskOutcome`](super::TaskOutcome))
    /// or panicked, or with `None` once the set has shut down, or has been
    /// [closed](Self::close) and emptied, without one.
    ///
    /// Exactly one failure is the first, however many tasks fail at once:
    /// every call that resolves with a failure resolves with the same one. Once a shutdown has reported without
    /// a failure the answer is `None` for good (a task still running then
    /// that fails later is counted and kept, but is not the first). With
    /// [`FailurePolicy::CancelToken`] the set's token is cancelled by the
    /// time this resolves with a failure.
    ///
    /// Failures of [child sets](Self::child) are their own: a child's
    /// `first_failure` sees them. Tasks spawned with a handle fail only by
    /// panicking (their output is the awaiter's to judge).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits, and the first failure stays recorded for
    /// the next call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// #[tokio::main]
    /// # async fn _hidden() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let set = TaskSet::new();
    ///     set.spawn("import", async {
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         Ok::<(), String>(())
    ///     })
    ///     .unwrap();
    ///     set.close();
    ///     // Nothing failed: `None` once the closed set has emptied.
    ///     assert_eq!(set.first_failure().await, None);
    /// }
    /// ```
    pub async fn first_failure(&self) -> Option<TaskFailure> {
        let registry = &self.state().registry;
        loop {
            let mut failed = pin!(registry.failed().notified());
            let mut drained = pin!(registry.drained().notified());
            // Registered before the state is read: an event in between wakes
            // them.
            failed.as_mut().enable();
            drained.as_mut().enable();
            match registry.first_failure() {
                First::Failed(failure) => {
                    // Its task's end may not have applied the policy yet.
                    registry.apply_failure_policy();
                    return Some(failure);
                }
                First::Settled => return None,
                First::Waiting => {}
            }
            if registry.lifecycle().is_drained() {
                return None;
            }
            let drained_now = poll_fn(|cx| {
                if failed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                drained.as_mut().poll(cx).map(|()| true)
            })
            .await;
            if drained_now {
                // The set was closed and empty at the wake: a failure
                // recorded before it is the answer, else none is (even if
                // the set has been reopened since).
                return match registry.first_failure() {
                    First::Failed(failure) => {
                        registry.apply_failure_policy();
                        Some(failure)
                    }
                    First::Waiting | First::Settled => None,
                };
            }
        }
    }
}
