//! The future every async task of a set runs: waits for its
//! `max_in_flight` slot, polls the user's future with panics caught, drops
//! it, and only then records the outcome (so a task leaves the set after its
//! destructors ran). Hand-written rather than an `async` block to keep the
//! per-task state small: an `async` wrapper holding a semaphore acquire
//! future cost about 300 bytes per live task.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{AcquireError, OwnedSemaphorePermit};

use super::outcome::{TaskOutcome, panic_message};
use super::registry::Outcome;
use super::shared::Guard;

/// A `max_in_flight` slot, boxed while waiting (only when the set is full).
pub(super) enum Slot {
    Unlimited,
    /// Kept for its drop, which frees the slot.
    Held {
        _permit: OwnedSemaphorePermit,
    },
    Waiting(WaitingSlot),
}

/// A queued wait for a `max_in_flight` slot.
pub(super) type WaitingSlot =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// Turns a task's result into its recorded outcome and the value its
/// `JoinHandle` carries.
pub(super) trait Finish<O> {
    type Output;
    fn finish(result: Result<O, String>) -> (Outcome, Self::Output);
}

/// Fire and forget: the output is judged by [`TaskOutcome`], nothing is
/// handed on.
pub(super) struct Judged;

impl<O: TaskOutcome> Finish<O> for Judged {
    type Output = ();

    fn finish(result: Result<O, String>) -> (Outcome, ()) {
        (judge(result), ())
    }
}

/// Judges a fire-and-forget task's result. The judging runs user code (the
/// output's `TaskOutcome`, an error's `Display`, the output's drop), so a
/// panic there is caught and recorded as the task's panic: it must neither
/// escape into the worker (where the guard would count an abort) nor lose
/// the failure.
pub(super) fn judge<O: TaskOutcome>(result: Result<O, String>) -> Outcome {
    match result {
        Ok(output) => match catch_unwind(AssertUnwindSafe(|| output.into_failure())) {
            Ok(None) => Outcome::Completed,
            Ok(Some(message)) => Outcome::Failed(message),
            Err(payload) => Outcome::Panicked(format!(
                "panic while judging the task's output: {}",
                panic_message(&*payload)
            )),
        },
        Err(panic) => Outcome::Panicked(panic),
    }
}

/// With a handle: any output completes the task; the result goes to the
/// handle (a panic as its message).
pub(super) struct HandedOn;

impl<O> Finish<O> for HandedOn {
    type Output = Result<O, String>;

    fn finish(result: Result<O, String>) -> (Outcome, Self::Output) {
        let outcome = match &result {
            Ok(_) => Outcome::Completed,
            Err(panic) => Outcome::Panicked(panic.clone()),
        };
        (outcome, result)
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Running { #[pin] future: F },
        Done,
    }
}

pin_project_lite::pin_project! {
    pub(super) struct Tracked<F, M> {
        // Declared first so that an aborted task drops the user's future
        // before the guard records the abort.
        #[pin]
        stage: Stage<F>,
        slot: Slot,
        guard: Guard,
        mode: PhantomData<fn() -> M>,
    }
}

impl<F, M> Tracked<F, M> {
    pub(super) fn new(future: F, slot: Slot, guard: Guard) -> Self {
        Self {
            stage: Stage::Running { future },
            slot,
            guard,
            mode: PhantomData,
        }
    }
}

impl<F: Future, M: Finish<F::Output>> Future for Tracked<F, M> {
    type Output = M::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Slot::Waiting(acquire) = this.slot {
            *this.slot = match acquire.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(permit)) => Slot::Held { _permit: permit },
                // The semaphore is never closed; run rather than lose work.
                Poll::Ready(Err(_)) => Slot::Unlimited,
            };
        }
        let polled = match this.stage.as_mut().project() {
            // A task is not polled after it completed.
            StageProj::Done => return Poll::Pending,
            // The future is not polled again after a panic, so no broken
            // invariant inside it can be observed.
            StageProj::Running { future } => catch_unwind(AssertUnwindSafe(|| future.poll(cx))),
        };
        let mut result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(panic_message(&*payload)),
        };
        // Drop the future (its destructors), then free the slot, then leave
        // the set: whoever waits on the set sees the task fully gone. A
        // destructor that panics is the task's panic too.
        let mut stage = this.stage;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done))) {
            if result.is_ok() {
                let message = panic_message(&*payload);
                result = Err(format!(
                    "panic while dropping the finished future: {message}"
                ));
            }
        }
        *this.slot = Slot::Unlimited;
        let (outcome, output) = M::finish(result);
        this.guard.complete(outcome);
        Poll::Ready(output)
    }
}
