//! What a tracked task runs: the user's future or closure, wrapped so that
//! it ends through its [`Ticket`] (`finish.rs`).
//!
//! An async task runs [`Tracked`]: it waits for its `max_in_flight` slot,
//! polls the user's future with panics caught, drops it, frees the slot,
//! and only then finishes (so a task leaves the set after its destructors
//! ran). It is hand-written rather than an `async` block to keep the
//! per-task state small: an `async` wrapper holding a semaphore acquire
//! future cost about 300 bytes per live task. A blocking task runs
//! [`run_blocking`].

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::finish::{Deliver, Ticket, catch_panic};
use super::in_flight::InFlightSlot;

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Running { #[pin] future: F },
        Done,
    }
}

pin_project_lite::pin_project! {
    /// The future every async task of a set runs.
    pub(super) struct Tracked<F, D> {
        // Declared first so that an aborted task drops the user's future
        // before the ticket records the abort.
        #[pin]
        stage: Stage<F>,
        slot: InFlightSlot,
        ticket: Ticket,
        deliver: PhantomData<fn() -> D>,
    }
}

impl<F, D> Tracked<F, D> {
    pub(super) fn new(future: F, slot: InFlightSlot, ticket: Ticket) -> Self {
        Self {
            stage: Stage::Running { future },
            slot,
            ticket,
            deliver: PhantomData,
        }
    }
}

impl<F: Future, D: Deliver<F::Output>> Future for Tracked<F, D> {
    type Output = D::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.slot.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let polled = match this.stage.as_mut().project() {
            // A task is not polled after it completed.
            StageProj::Done => return Poll::Pending,
            // The future is not polled again after a panic, so no broken
            // invariant inside it can be observed.
            StageProj::Running { future } => catch_panic(|| future.poll(cx)),
        };
        let mut result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(panic) => Err(panic),
        };
        // Drop the future (its destructors), then free the slot, then leave
        // the set: whoever waits on the set sees the task fully gone. A
        // destructor that panics is the task's panic too.
        let mut stage = this.stage;
        if let Err(panic) = catch_panic(|| stage.set(Stage::Done)) {
            if result.is_ok() {
                result = Err(format!("panic while dropping the finished future: {panic}"));
            }
        }
        this.slot.free();
        Poll::Ready(this.ticket.finish::<F::Output, D>(result))
    }
}

/// What a blocking task runs on tokio's blocking pool: `function` with
/// panics caught (its captures are dropped inside, so a panicking destructor
/// is its panic too), then the task's end.
pub(super) fn run_blocking<F, O, D>(function: F, mut ticket: Ticket) -> D::Output
where
    F: FnOnce() -> O,
    D: Deliver<O>,
{
    ticket.finish::<O, D>(catch_panic(function))
}
