//! The timer side: one task per batcher ([`Driver`]) that seals the open
//! batch when it is due (its oldest item's age, or a deadline minus the
//! margin) and hands it to a worker.
//!
//! # The wake rule
//!
//! A push wakes the driver only when a batch opens or a deadline moves the
//! due time earlier than the driver's timer (`DriverWake::before`, in
//! `state.rs`, which the push path calls). Under load, when batches fill
//! before they are due, the driver wakes about once per `max_delay`, not once
//! per batch: a batch that opened after its timer was set is due no earlier
//! than that timer, and the driver re-arms lazily when it fires.
//!
//! # A due batch
//!
//! When a slot is free (or a worker idle), the driver seals the batch and
//! claims a worker for it. When every slot is busy it marks the batch
//! overdue instead: the next worker to finish takes it (`Ledger::take_next`),
//! so workers need no clock read, and the batch keeps accepting items until
//! then.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::primitives::now;
use super::state::BatcherState;

/// What the driver waits for after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Its timer, set for this instant.
    Until(Instant),
    /// A wake from a push, `flush` or `shutdown`.
    Woken,
    /// Nothing: the batcher is closed and the open batch gone; the driver exits.
    Done,
}

impl<T: Send + 'static> BatcherState<T> {
    /// One look by the timer driver: seals the open batch if it is due, and
    /// says what to wait for next.
    pub(super) fn drive(self: &Arc<Self>, waker: &Waker) -> Wait {
        loop {
            let mut ledger = self.lock();
            if ledger.closed && ledger.open.is_empty() {
                ledger.driver.waker = None;
                ledger.driver.armed = None;
                return Wait::Done;
            }
            let wait = if ledger.open.is_empty() || ledger.open_overdue {
                None
            } else if let Some(due) = ledger.open_due.filter(|&due| due > now()) {
                Some(due)
            } else if ledger.open_due.is_none() {
                // Not due by age ever: a deadline, `flush` or `shutdown` wakes it.
                None
            } else if ledger.has_free_worker(&self.config) {
                ledger.seal_open();
                let claims = ledger.claim_workers(&self.config);
                drop(ledger);
                claims.into_iter().for_each(|claim| self.start(claim));
                continue;
            } else {
                // Every slot is busy: the next worker to finish takes it.
                ledger.open_overdue = true;
                None
            };
            ledger.driver.armed = wait;
            if !ledger
                .driver
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(waker))
            {
                ledger.driver.waker = Some(waker.clone());
            }
            return wait.map_or(Wait::Woken, Wait::Until);
        }
    }
}

pin_project! {
    /// The timer driver's task: [`BatcherState::drive`] on a timer.
    pub(super) struct Driver<T> {
        state: Arc<BatcherState<T>>,
        #[pin]
        sleep: Sleep,
    }
}

impl<T: Send + 'static> Driver<T> {
    pub(super) fn new(state: Arc<BatcherState<T>>) -> Self {
        Driver {
            state,
            sleep: sleep_until(Instant::now()),
        }
    }
}

impl<T: Send + 'static> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            match this.state.drive(cx.waker()) {
                Wait::Done => return Poll::Ready(()),
                Wait::Woken => return Poll::Pending,
                Wait::Until(due) => {
                    if this.sleep.deadline() != due {
                        this.sleep.as_mut().reset(due);
                    }
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Due: look again, now that the clock has moved.
                }
            }
        }
    }
}
