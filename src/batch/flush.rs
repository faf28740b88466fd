//! One flush, from the call to the user's function to the batcher's counts:
//! the [`FlushOutcome`], the [`FailurePolicy`] that makes a failed flush's
//! items and error an outcome (hook, keep, trace), panics caught on the way,
//! and how an outcome is counted.
//!
//! Every flush ends in exactly one of three outcomes:
//!
//! | the flush | outcome | its items |
//! |---|---|---|
//! | returns `Ok(())` | `Flushed` | counted flushed |
//! | returns `Err(FlushError { items, error })` | `Failed` | `items` counted failed (to the hook, or kept for the report), the rest flushed |
//! | panics (the call, its future, or the hook) | `Panicked` | counted panicked: outcome unknown |
//!
//! A fourth end is not an outcome: shutdown abandons a flush still running
//! at its grace, reports it itself, and the flush is dropped ([`complete`]
//! returns `None`).

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;

use super::error::FlushError;
use super::report::{Counts, FailedBatch};

/// What one flush came to.
pub(super) enum FlushOutcome<T> {
    Flushed,
    Failed {
        /// Items the flush handed back (the rest count as flushed).
        handed_back: usize,
        /// Kept for the report when there is no failure hook.
        kept: Option<(Vec<T>, String)>,
    },
    Panicked,
}

/// A flush on its way to its outcome, the error type erased.
pub(super) type FlushFuture<T> = Pin<Box<dyn Future<Output = FlushOutcome<T>> + Send>>;
/// The user's flush function behind its failure policy.
pub(super) type FlushFn<T> = Box<dyn Fn(Vec<T>) -> FlushFuture<T> + Send + Sync>;
/// The user's failure hook.
pub(super) type Hook<T, E> = Arc<dyn Fn(FlushError<T, E>) + Send + Sync>;

/// What happens to a failed flush's items and error: the hook takes them, or
/// without one they are kept for the report (as the error's `Display`); either
/// way the failure is traced (feature `tracing`).
pub(super) struct FailurePolicy<T, E> {
    hook: Option<Hook<T, E>>,
}

impl<T, E> Clone for FailurePolicy<T, E> {
    fn clone(&self) -> Self {
        FailurePolicy {
            hook: self.hook.clone(),
        }
    }
}

impl<T, E: fmt::Display> FailurePolicy<T, E> {
    pub(super) fn new(hook: Option<Hook<T, E>>) -> Self {
        FailurePolicy { hook }
    }

    /// The outcome of a flush that returned `result`. The hook is user code:
    /// it runs here, on the flush's task, where a panic is caught with the
    /// flush's.
    fn judge(&self, result: Result<(), FlushError<T, E>>) -> FlushOutcome<T> {
        let failed = match result {
            Ok(()) => return FlushOutcome::Flushed,
            Err(failed) => failed,
        };
        let handed_back = failed.items.len();
        #[cfg(feature = "tracing")]
        tracing::warn!(
            items = handed_back,
            error = %failed.error,
            "hangfree batch flush failed"
        );
        let kept = match &self.hook {
            Some(hook) => {
                hook(failed);
                None
            }
            None => Some((failed.items, failed.error.to_string())),
        };
        FlushOutcome::Failed { handed_back, kept }
    }
}

/// The user's `flush` behind `policy`: what the workers call.
pub(super) fn with_policy<T, E, F, Fut>(flush: F, policy: FailurePolicy<T, E>) -> FlushFn<T>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), FlushError<T, E>>> + Send + 'static,
{
    Box::new(move |items: Vec<T>| -> FlushFuture<T> {
        let future = flush(items);
        let policy = policy.clone();
        Box::pin(async move { policy.judge(future.await) })
    })
}

/// Calls the flush function on `items`. A panic in the call is the flush's
/// outcome.
pub(super) fn call<T>(
    flush: &FlushFn<T>,
    items: Vec<T>,
) -> Result<FlushFuture<T>, FlushOutcome<T>> {
    catch_unwind(AssertUnwindSafe(|| flush(items))).map_err(|panic| {
        note_panic(&*panic);
        FlushOutcome::Panicked
    })
}

/// Polls a flush to its outcome, catching its panics, until `abandoned`
/// completes; then drops it and returns `None` (shutdown has already reported
/// it as abandoned). The flush is polled first: if it completes in the poll
/// that sees the abandonment, its outcome is still returned (and recorded as
/// not counted, see `Ledger::record`).
pub(super) async fn complete<T>(
    future: FlushFuture<T>,
    abandoned: impl Future<Output = ()>,
) -> Option<FlushOutcome<T>> {
    let mut future = pin!(future);
    let mut abandoned = pin!(abandoned);
    poll_fn(|cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(outcome)) => return Poll::Ready(Some(outcome)),
            Err(panic) => {
                note_panic(&*panic);
                return Poll::Ready(Some(FlushOutcome::Panicked));
            }
            Ok(Poll::Pending) => {}
        }
        abandoned.as_mut().poll(cx).map(|()| None)
    })
    .await
}

impl<T> FlushOutcome<T> {
    /// Counts this outcome of batch `batch`, which held `size` items, and
    /// keeps a failed batch's items for the report when there was no hook.
    pub(super) fn count(
        self,
        batch: u64,
        size: usize,
        counts: &mut Counts,
        failed: &mut Vec<FailedBatch<T>>,
    ) {
        match self {
            FlushOutcome::Flushed => {
                counts.flushed_batches += 1;
                counts.flushed_items += size as u64;
            }
            FlushOutcome::Failed { handed_back, kept } => {
                counts.failed_batches += 1;
                // A flush may hand back more items than it was given (its own,
                // or duplicates); the account only ever counts this batch's.
                let handed_back = handed_back.min(size);
                counts.failed_items += handed_back as u64;
                counts.flushed_items += (size - handed_back) as u64;
                if let Some((items, error)) = kept {
                    failed.push(FailedBatch::new(batch, items, error));
                }
            }
            FlushOutcome::Panicked => {
                counts.panicked_batches += 1;
                counts.panicked_items += size as u64;
            }
        }
    }
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn note_panic(panic: &(dyn Any + Send)) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        panic = crate::panic::panic_message(panic),
        "hangfree batch flush panicked"
    );
}
