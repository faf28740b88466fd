//! Ending batches on request: `flush` seals the open batch and waits for
//! every batch sealed so far; `shutdown` closes, waits up to its grace, and
//! takes the account; the last handle to go closes without waiting.
//!
//! The account ([`BatcherState::finalize`]) gives up on what is left, under
//! one lock: batches that never started are handed back, flushes still
//! running are reported abandoned and cancelled through the abandon token,
//! idle workers are woken to exit, and their slots go, so that a flush that
//! completes afterwards is not counted again (state invariant 6).

use std::future::{Future, poll_fn};
use std::mem;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::grace::Grace;
use super::primitives::now;
use super::report::{AbandonedFlush, BatchReport};
use super::state::{BatcherState, Claim, Phase};

impl<T: Send + 'static> BatcherState<T> {
    /// Seals the open batch now (for `flush` and `shutdown`; `close` also
    /// closes the batcher), starts what can start, and returns the number
    /// every batch sealed so far is below.
    pub(super) fn seal_now(self: &Arc<Self>, close: bool) -> u64 {
        let mut ledger = self.lock();
        let newly_closed = close && !ledger.closed;
        let mut wake_driver = None;
        if newly_closed {
            ledger.closed = true;
            // The driver has nothing left to time once the open batch is
            // sealed: wake it so it exits.
            wake_driver = ledger.driver.waker.take();
        }
        if !ledger.open.is_empty() {
            ledger.seal_open();
        }
        let mut claims = ledger.claim_workers(&self.config);
        if newly_closed {
            // Idle workers exit once they see the batcher closed.
            let idle: Vec<Waker> = ledger.wake_idle().collect();
            claims.extend(idle.into_iter().map(Claim::Wake));
        }
        let below = ledger.sealed_below();
        drop(ledger);
        if let Some(waker) = wake_driver {
            waker.wake();
        }
        if newly_closed {
            // Pushes waiting for room hand their items back.
            self.room.notify_waiters();
        }
        claims.into_iter().for_each(|claim| self.start(claim));
        below
    }

    /// Seals the open batch and waits until every batch sealed so far has
    /// finished flushing (or been given up by shutdown).
    pub(super) async fn flush_sealed(self: &Arc<Self>) {
        let _waiting = self.progress.waiting();
        let below = self.seal_now(false);
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            if self.finished_below(below) {
                return;
            }
            progress.await;
        }
    }

    /// `true` once every batch numbered below `below` has finished (or been
    /// given up by shutdown).
    fn finished_below(&self, below: u64) -> bool {
        let ledger = self.lock();
        ledger.ready.front().is_none_or(|batch| batch.seq >= below)
            && ledger.workers.iter().all(|slot| match &slot.phase {
                Phase::Running(running) => running.seq >= below,
                Phase::Starting | Phase::Idle(_) => true,
            })
    }

    /// `true` once nothing is pending or running.
    fn drained(&self) -> bool {
        let ledger = self.lock();
        ledger.open.is_empty()
            && ledger.ready.is_empty()
            && !ledger
                .workers
                .iter()
                .any(|slot| matches!(slot.phase, Phase::Running(_)))
    }

    /// `Batcher::shutdown`: [`shutdown`](Self::shutdown) with a grace period
    /// on tokio's clock and the process-wide alarm (`grace.rs`), and the
    /// report logged (feature `tracing`).
    pub(super) async fn shutdown_within(self: &Arc<Self>, grace: Duration) -> BatchReport<T> {
        let started = Instant::now();
        let mut grace = Grace::new(started, grace);
        let report = self.shutdown(started, |cx| grace.poll_over(cx)).await;
        #[cfg(feature = "tracing")]
        if report.is_complete() {
            tracing::info!(%report, "hangfree batcher shut down");
        } else {
            tracing::warn!(%report, "hangfree batcher shut down");
        }
        report
    }

    /// Closes the batcher, waits until nothing is pending or running or until
    /// the grace period is over, then takes the account, giving up on what
    /// is left.
    ///
    /// `grace_over` is asked only when there is something to wait for, after
    /// this wait for progress is registered: it returns `true` once the grace
    /// period is over, and otherwise arranges a wake for when it will be.
    pub(super) async fn shutdown(
        self: &Arc<Self>,
        started: Instant,
        mut grace_over: impl FnMut(&mut Context<'_>) -> bool,
    ) -> BatchReport<T> {
        // Counted before the batcher closes: a flush finishing from here on
        // notifies.
        let waiting = self.progress.waiting();
        self.seal_now(true);
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            if self.drained() {
                break;
            }
            let progressed = poll_fn(|cx| {
                if progress.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                if grace_over(cx) {
                    return Poll::Ready(false);
                }
                Poll::Pending
            })
            .await;
            if !progressed {
                break;
            }
        }
        drop(waiting);
        self.finalize(started)
    }

    /// Gives up on what is left after shutdown's grace period: hands back
    /// batches that never started, records running flushes as abandoned (and
    /// cancels them), and takes the account.
    fn finalize(&self, shutdown_started: Instant) -> BatchReport<T> {
        let now = now();
        let mut ledger = self.lock();
        let mut abandoned: Vec<AbandonedFlush> = mem::take(&mut ledger.lost);
        let mut idle = Vec::new();
        for slot in ledger.workers.drain(..) {
            match slot.phase {
                Phase::Running(running) => abandoned.push(running.abandoned(now)),
                // Its slot is gone: once woken, it exits.
                Phase::Idle(waker) => idle.push(waker),
                Phase::Starting => {}
            }
        }
        // `shutdown` sealed the open batch when it closed the batcher, so
        // everything not yet flushed is in `ready`; `open` is taken too, in
        // case, to keep "nothing is dropped" local to this function.
        let mut unflushed = Vec::with_capacity(ledger.pending);
        for batch in mem::take(&mut ledger.ready) {
            unflushed.extend(batch.items);
        }
        unflushed.append(&mut ledger.open);
        ledger.pending = 0;
        let failed = mem::take(&mut ledger.failed);
        let counts = ledger.counts;
        drop(ledger);
        idle.into_iter().for_each(Waker::wake);
        if !abandoned.is_empty() {
            self.abandon.cancel();
        }
        self.progress.notify_all();
        BatchReport::new(
            counts,
            failed,
            unflushed,
            abandoned,
            now.saturating_duration_since(shutdown_started),
        )
    }

    /// The last handle is gone: close, and flush what is pending in the
    /// background. Nobody is left to read a report, so nothing waits.
    pub(super) fn drop_handle(self: &Arc<Self>) {
        let last = {
            let mut ledger = self.lock();
            ledger.handles -= 1;
            ledger.handles == 0
        };
        if last {
            self.seal_now(true);
        }
    }
}
