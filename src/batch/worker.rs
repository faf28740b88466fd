//! The flush side: a worker is one of at most `max_in_flight` tasks. It
//! takes batches in order, runs each through `flush.rs` (in its turn, see
//! `turn.rs`), records the outcome, and repeats; with nothing to take it
//! parks until woken; it exits once the batcher is closed and drained, or
//! once shutdown gave up on its slot.
//!
//! Recording a flush and taking the next batch is one look under the lock
//! ([`BatcherState::next_for`]). A flush is counted only if the worker's slot
//! still runs that batch: shutdown may have given up on it meanwhile and
//! reported it as abandoned (state invariant 6).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::flush::{self, FlushOutcome};
use super::primitives::now;
use super::state::{BatcherState, Claim, Ledger, Phase, ReadyBatch, RunningBatch};

/// How a worker's flush of batch `seq` (`size` items) ended.
pub(super) struct FinishedFlush<T> {
    seq: u64,
    size: usize,
    outcome: FlushOutcome<T>,
}

impl<T: Send + 'static> BatcherState<T> {
    /// Carries out a claim made under the lock: spawns a worker for the slot
    /// reserved for it, or wakes an idle one.
    pub(super) fn start(self: &Arc<Self>, claim: Claim) {
        match claim {
            Claim::Spawn(worker) => self.runner.spawn(run(Arc::clone(self), worker)),
            Claim::Wake(waker) => waker.wake(),
        }
    }

    /// Records how worker `worker`'s previous flush ended (if `finished` is
    /// set), then gives it its next batch; parks it while there is none;
    /// retires it (`Ready(None)`) once the batcher is closed and drained, or
    /// shutdown gave up on its slot. One lock for both halves.
    pub(super) fn next_for(
        &self,
        worker: u64,
        finished: &mut Option<FinishedFlush<T>>,
        waker: &Waker,
    ) -> Poll<Option<ReadyBatch<T>>> {
        let mut ledger = self.lock();
        let uncounted = finished.take().map(|done| ledger.record(worker, done));
        let next = ledger.next_for(worker, waker, self.config.capacity);
        drop(ledger);
        // An outcome shutdown already reported holds items nobody will
        // read: dropped here, with the lock released.
        let recorded = uncounted.is_some();
        drop(uncounted);
        if recorded {
            self.progress.notify();
        }
        if let Poll::Ready(Some((_, true))) = &next {
            self.room.notify_waiters();
        }
        next.map(|next| next.map(|(batch, _)| batch))
    }

    /// The worker was dropped without finishing (its task was cancelled by
    /// something other than shutdown, e.g. the runtime shutting down): its
    /// slot goes, and a flush it was running is reported as abandoned.
    fn worker_dropped(&self, worker: u64) {
        let mut ledger = self.lock();
        if let Some(index) = ledger.slot_of(worker) {
            let slot = ledger.workers.swap_remove(index);
            if let Phase::Running(running) = slot.phase {
                ledger.lost.push(running.abandoned(now()));
            }
        }
        drop(ledger);
        self.progress.notify();
    }
}

impl<T> Ledger<T> {
    /// Counts how a worker's flush ended, unless shutdown already gave up on
    /// it: then it was reported as abandoned, is neither counted nor kept
    /// again (its failed items still went to the hook, if there is one), and
    /// comes back to be dropped outside the lock.
    fn record(&mut self, worker: u64, done: FinishedFlush<T>) -> Option<FlushOutcome<T>> {
        let FinishedFlush { seq, size, outcome } = done;
        let slot = self.workers.iter_mut().find(|slot| slot.worker == worker);
        match slot {
            Some(slot) if matches!(&slot.phase, Phase::Running(r) if r.seq == seq) => {
                slot.phase = Phase::Starting;
                outcome.count(seq, size, &mut self.counts, &mut self.failed);
                None
            }
            _ => Some(outcome),
        }
    }

    /// The worker's half of `BatcherState::next_for`; the flag says whether
    /// room was made for waiting pushes.
    fn next_for(
        &mut self,
        worker: u64,
        waker: &Waker,
        capacity: usize,
    ) -> Poll<Option<(ReadyBatch<T>, bool)>> {
        let Some(index) = self.slot_of(worker) else {
            return Poll::Ready(None);
        };
        let was_full = self.pending >= capacity;
        let Some(batch) = self.take_next() else {
            if self.closed {
                self.workers.swap_remove(index);
                return Poll::Ready(None);
            }
            self.workers[index].phase = Phase::Idle(waker.clone());
            return Poll::Pending;
        };
        self.workers[index].phase = Phase::Running(RunningBatch {
            seq: batch.seq,
            items: batch.items.len(),
            started: now(),
        });
        let room = was_full && self.pending < capacity;
        Poll::Ready(Some((batch, room)))
    }
}

/// A worker's task.
async fn run<T: Send + 'static>(state: Arc<BatcherState<T>>, worker: u64) {
    // If this future is dropped half way (the runtime shuts down), the slot
    // must not stay taken and a running flush must be reported.
    let guard = SlotGuard {
        state: &state,
        worker,
        done: false,
    };
    let mut finished = None;
    while let Some(batch) = poll_fn(|cx| state.next_for(worker, &mut finished, cx.waker())).await {
        let size = batch.items.len();
        let seq = batch.seq;
        // Shutdown's abandon token ends the wait; the batch is then already
        // reported as abandoned.
        if !state.turns.wait(seq, &state.abandon).await {
            break;
        }
        let called = flush::call(&state.flush, batch.items);
        state.turns.end(seq);
        let outcome = match called {
            Ok(future) => match flush::complete(future, state.abandon.cancelled()).await {
                Some(outcome) => outcome,
                None => break,
            },
            Err(panicked) => panicked,
        };
        finished = Some(FinishedFlush { seq, size, outcome });
    }
    let mut guard = guard;
    guard.done = true;
}

/// Gives the slot back if the worker's task is dropped before it retires.
struct SlotGuard<'a, T: Send + 'static> {
    state: &'a Arc<BatcherState<T>>,
    worker: u64,
    done: bool,
}

impl<T: Send + 'static> Drop for SlotGuard<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.state.worker_dropped(self.worker);
        }
    }
}
