//! The state every handle, the timer driver and the flush workers share, and
//! the rules that move items through it: open batch → ready queue → flush.
//!
//! One mutex guards it (`crate::sync`'s: std's, or loom's in the model
//! build). It is never held across an `.await` or while user code runs (flush
//! functions, hooks, `T`'s destructor on a hot path), so it is only ever held
//! for a few pointer moves.
//!
//! # Invariants
//!
//! Each holds whenever the lock is free; `loom_tests.rs` checks them in every
//! interleaving of its models.
//!
//! 1. Every accepted item is in exactly one place: the open batch, a ready
//!    batch, a running flush, or the account (counted flushed, failed or
//!    panicked; kept in `failed`; or, at shutdown, handed back or reported
//!    abandoned).
//! 2. A ready batch, or the open one once found overdue, has a worker coming
//!    for it: one that is starting or running, and so will call `next_for`
//!    again. An idle worker is only ever parked when there is nothing to take.
//! 3. A `flush` or `shutdown` caller that waits counts itself in
//!    `progress_waiters` before it looks at the state, so a change it did not
//!    see notifies it.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::mem;
use std::pin::{Pin, pin};
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::primitives::{CancellationToken, Notify, now};
use super::report::{AbandonedFlush, BatchReport, FailedBatch};
use super::runner::Runner;
// `Shared` itself is shared through std's `Arc` in both builds: its methods
// take `self: &Arc<Self>`, which only std's `Arc` allows, and its count orders
// nothing but the final drop, which reads the state under its lock anyway.
use std::sync::Arc;

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Mutex, MutexGuard};

/// The builder's settings, validated.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) max_items: usize,
    pub(super) max_delay: Duration,
    pub(super) max_in_flight: usize,
    pub(super) capacity: usize,
    pub(super) margin: Duration,
}

/// What one flush came to, as seen by the worker that ran it.
pub(super) enum Outcome<T> {
    Flushed,
    Failed {
        /// Items the flush handed back (the rest count as flushed).
        handed_back: usize,
        /// Kept for the report when there is no failure hook.
        kept: Option<(Vec<T>, String)>,
    },
    Panicked,
}

pub(super) type FlushFuture<T> = Pin<Box<dyn Future<Output = Outcome<T>> + Send>>;
/// The user's flush function and failure hook, with the error type erased.
pub(super) type FlushFn<T> = Box<dyn Fn(Vec<T>) -> FlushFuture<T> + Send + Sync>;

pub(super) struct Shared<T> {
    pub(super) config: Config,
    state: Mutex<State<T>>,
    /// Woken when pending items drop below `capacity` or the batcher closes:
    /// `push` waits on it.
    pub(super) room: Notify,
    /// Woken when a flush finishes or shutdown finalizes: `flush` and
    /// `shutdown` wait on it.
    pub(super) progress: Notify,
    /// How many `flush`/`shutdown` callers wait on `progress`: a flush that
    /// finishes with nobody waiting skips the notification.
    progress_waiters: AtomicUsize,
    /// Cancelled when shutdown's grace period runs out: every running flush
    /// is dropped at its next poll.
    pub(super) abandon: CancellationToken,
    /// The sequence number of the next batch whose flush function may be
    /// called. Workers take batches in order under the lock but call the flush
    /// function outside it; this turn keeps the calls in order too.
    next_start: AtomicU64,
    /// Woken when `next_start` moves.
    turn: Notify,
    pub(super) flush: FlushFn<T>,
    pub(super) runner: Runner,
}

/// A batch that no longer accepts items, waiting for a flush slot.
pub(super) struct Sealed<T> {
    pub(super) seq: u64,
    pub(super) items: Vec<T>,
}

/// One of at most `max_in_flight` flush workers. Workers live until the
/// batcher closes: an idle one parks and is woken for the next batch, which
/// is cheaper than a task per batch.
struct Slot {
    worker: u64,
    phase: Phase,
}

enum Phase {
    /// Spawned or woken: it will look for a batch at its next poll.
    Starting,
    /// Flushing a batch.
    Running(Running),
    /// Nothing to do: wake it when a batch is ready or the batcher closes.
    Idle(Waker),
}

/// How to get a worker to a ready batch.
pub(super) enum Claim {
    Spawn(u64),
    Wake(Waker),
}

#[derive(Clone, Copy)]
struct Running {
    seq: u64,
    items: usize,
    started: Instant,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    accepted: u64,
    flushed_batches: u64,
    flushed_items: u64,
    failed_batches: u64,
    failed_items: u64,
    panicked_batches: u64,
    panicked_items: u64,
}

pub(super) struct State<T> {
    /// The batch being filled. Its items are in push order.
    open: Vec<T>,
    /// When `open` must be flushed: its oldest item's push time plus
    /// `max_delay`, or an earlier per-item deadline minus the margin; `None`
    /// while neither is representable (`max_delay(Duration::MAX)` and no
    /// deadline): then only size, `flush` and `shutdown` end the batch.
    /// Meaningful only while `open` is not empty.
    open_due: Option<Instant>,
    /// `open` is due but every flush slot was busy when the driver looked:
    /// the next free worker takes it, and until then it keeps accepting
    /// items (up to `max_items`).
    open_overdue: bool,
    /// Closed batches in the order they were closed.
    ready: VecDeque<Sealed<T>>,
    /// Items in `open` and `ready`: accepted, not yet handed to a flush.
    pending: usize,
    next_seq: u64,
    slots: Vec<Slot>,
    next_worker: u64,
    closed: bool,
    handles: usize,
    /// The timer driver's waker, and the instant its timer is set for
    /// (`None`: it waits to be woken).
    driver: Option<Waker>,
    driver_armed: Option<Instant>,
    counters: Counters,
    failed: Vec<FailedBatch<T>>,
    /// Flushes dropped by something other than shutdown (the runtime
    /// shutting down): reported as abandoned.
    lost: Vec<AbandonedFlush>,
}

/// How a worker's flush of batch `seq` (`size` items) ended.
pub(super) struct Finished<T> {
    pub(super) seq: u64,
    pub(super) size: usize,
    pub(super) outcome: Outcome<T>,
}

/// Counts one waiter in `Shared::progress_waiters` while it lives.
pub(super) struct ProgressWaiter<'a>(&'a AtomicUsize);

impl Drop for ProgressWaiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why an item was not accepted.
pub(super) enum Rejected<T> {
    Full(T),
    Closed(T),
}

/// Work to do once the lock is released.
#[must_use]
#[derive(Default)]
pub(super) struct AfterUnlock {
    wake_driver: Option<Waker>,
    /// Workers to spawn or wake.
    claims: Vec<Claim>,
    room: bool,
}

impl<T: Send + 'static> Shared<T> {
    pub(super) fn new(config: Config, flush: FlushFn<T>, runner: Runner) -> Self {
        Shared {
            state: Mutex::new(State {
                open: Vec::new(),
                open_due: None,
                open_overdue: false,
                ready: VecDeque::new(),
                pending: 0,
                next_seq: 0,
                // Bounded: `max_in_flight(usize::MAX)` means "no limit", not an allocation.
                slots: Vec::with_capacity(config.max_in_flight.min(64)),
                next_worker: 0,
                closed: false,
                handles: 1,
                driver: None,
                driver_armed: None,
                counters: Counters::default(),
                failed: Vec::new(),
                lost: Vec::new(),
            }),
            config,
            room: Notify::new(),
            progress: Notify::new(),
            progress_waiters: AtomicUsize::new(0),
            abandon: CancellationToken::new(),
            next_start: AtomicU64::new(0),
            turn: Notify::new(),
            flush,
            runner,
        }
    }

    /// Waits until batch `seq` may call the flush function: every earlier batch
    /// has called it. The wait is only ever for the short moment between an
    /// earlier worker taking its batch and calling the function, since batches
    /// are taken in order. Returns `false` if shutdown abandoned the flushes
    /// meanwhile (the batch is then already reported as abandoned).
    pub(super) async fn wait_turn(&self, seq: u64) -> bool {
        // The usual case, checked without registering anywhere.
        if self.next_start.load(Ordering::Acquire) >= seq {
            return true;
        }
        loop {
            let mut notified = std::pin::pin!(self.turn.notified());
            notified.as_mut().enable();
            if self.next_start.load(Ordering::Acquire) >= seq {
                return true;
            }
            let mut abandoned = std::pin::pin!(self.abandon.cancelled());
            let abandoned = std::future::poll_fn(|cx| {
                if abandoned.as_mut().poll(cx).is_ready() {
                    return std::task::Poll::Ready(true);
                }
                notified.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if abandoned {
                return false;
            }
        }
    }

    /// Batch `seq` has called the flush function: the next batch's turn.
    pub(super) fn end_turn(&self, seq: u64) {
        self.next_start.fetch_max(seq + 1, Ordering::AcqRel);
        self.turn.notify_waiters();
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State<T>> {
        crate::sync::lock(&self.state)
    }

    pub(super) fn finish(self: &Arc<Self>, after: AfterUnlock) {
        if let Some(waker) = after.wake_driver {
            waker.wake();
        }
        if after.room {
            self.room.notify_waiters();
        }
        for claim in after.claims {
            self.start(claim);
        }
    }

    /// Accepts `item`, or says why not.
    ///
    /// The deadline comes by reference: for `None` only its niche is read,
    /// never the (unwritten) seconds, which would stall the load on the
    /// caller's freshly written future.
    #[inline]
    pub(super) fn insert(
        self: &Arc<Self>,
        item: T,
        deadline: Option<&Instant>,
    ) -> Result<(), Rejected<T>> {
        let mut state = self.lock();
        // The common case under load, kept small enough to inline: the batch
        // is open, there is room, no deadline, and the batch does not fill.
        if deadline.is_none()
            && !state.closed
            && !state.open.is_empty()
            && state.pending < self.config.capacity
            && state.open.len() + 1 < self.config.max_items
        {
            state.open.push(item);
            state.pending += 1;
            state.counters.accepted += 1;
            return Ok(());
        }
        self.insert_slow(state, item, deadline)
    }

    #[inline(never)]
    fn insert_slow(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State<T>>,
        item: T,
        deadline: Option<&Instant>,
    ) -> Result<(), Rejected<T>> {
        let config = &self.config;
        if state.closed {
            return Err(Rejected::Closed(item));
        }
        if state.pending >= config.capacity {
            return Err(Rejected::Full(item));
        }
        let mut due_moved = false;
        if state.open.is_empty() {
            // The only clock read on the push path: once per batch, when its
            // oldest item arrives.
            state.open_due = now().checked_add(config.max_delay);
            state.open_overdue = false;
            // Bounded: a huge `max_items` grows the batch as items come, instead of
            // reserving (or failing to reserve) its whole size up front.
            state.open.reserve_exact(config.max_items.min(1024));
            due_moved = true;
        }
        if let Some(&deadline) = deadline {
            // A margin reaching back past the earliest instant the clock can
            // express reaches past now too: the batch is due at once.
            let flush_by = deadline.checked_sub(config.margin).unwrap_or_else(now);
            if state.open_due.is_none_or(|due| flush_by < due) {
                state.open_due = Some(flush_by);
                due_moved = true;
            }
        }
        state.open.push(item);
        state.pending += 1;
        state.counters.accepted += 1;

        // A full batch goes to a worker; otherwise the driver must know if
        // the open batch is now due earlier than its timer.
        let mut wake = None;
        let mut claim = None;
        if state.open.len() >= config.max_items {
            state.seal_open();
            claim = state.claim_slot(config);
        } else if due_moved && !state.open_overdue {
            // No due time: the driver has nothing to time until a deadline
            // comes, and waits to be woken.
            if let Some(due) = state.open_due {
                wake = state.wake_driver_before(due);
            }
        }
        drop(state);
        if let Some(waker) = wake {
            waker.wake();
        }
        if let Some(claim) = claim {
            self.start(claim);
        }
        Ok(())
    }

    fn start(self: &Arc<Self>, claim: Claim) {
        match claim {
            Claim::Spawn(worker) => self
                .runner
                .spawn(super::worker::run(Arc::clone(self), worker)),
            Claim::Wake(waker) => waker.wake(),
        }
    }

    /// Closes the open batch now (for `flush` and `shutdown`), starts what
    /// can start, and returns the sequence number every batch so far is
    /// below.
    pub(super) fn seal_now(self: &Arc<Self>, close: bool) -> u64 {
        let mut state = self.lock();
        let mut after = AfterUnlock::default();
        let newly_closed = close && !state.closed;
        if newly_closed {
            state.closed = true;
            after.room = true;
            // The driver has nothing left to time once the open batch is
            // sealed: wake it so it exits.
            after.wake_driver = state.driver.take();
        }
        if !state.open.is_empty() {
            state.seal_open();
        }
        after.claims = state.claim_slots(&self.config);
        if newly_closed {
            // Idle workers exit once they see the batcher closed.
            let idle: Vec<Waker> = state.wake_idle().collect();
            after.claims.extend(idle.into_iter().map(Claim::Wake));
        }
        let below = state.next_seq;
        drop(state);
        self.finish(after);
        below
    }

    /// `true` once every batch numbered below `below` has finished (or been
    /// given up by shutdown).
    pub(super) fn finished_below(&self, below: u64) -> bool {
        let state = self.lock();
        state.ready.front().is_none_or(|batch| batch.seq >= below)
            && state.slots.iter().all(|slot| match &slot.phase {
                Phase::Running(running) => running.seq >= below,
                Phase::Starting | Phase::Idle(_) => true,
            })
    }

    /// `true` once nothing is pending or running.
    pub(super) fn drained(&self) -> bool {
        let state = self.lock();
        state.open.is_empty()
            && state.ready.is_empty()
            && !state
                .slots
                .iter()
                .any(|slot| matches!(slot.phase, Phase::Running(_)))
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
        let waiting = self.waiting_for_progress();
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
        let mut state = self.lock();
        let mut abandoned: Vec<AbandonedFlush> = mem::take(&mut state.lost);
        let mut idle = Vec::new();
        for slot in state.slots.drain(..) {
            match slot.phase {
                Phase::Running(running) => abandoned.push(AbandonedFlush {
                    batch: running.seq,
                    items: running.items,
                    running_for: now.saturating_duration_since(running.started),
                }),
                // Its slot is gone: once woken, it exits.
                Phase::Idle(waker) => idle.push(waker),
                Phase::Starting => {}
            }
        }
        // `shutdown` sealed the open batch when it closed the batcher, so
        // everything not yet flushed is in `ready`; `open` is taken too, in
        // case, to keep "nothing is dropped" local to this function.
        let mut unflushed = Vec::with_capacity(state.pending);
        for batch in mem::take(&mut state.ready) {
            unflushed.extend(batch.items);
        }
        unflushed.append(&mut state.open);
        state.pending = 0;
        let failed = mem::take(&mut state.failed);
        let counters = state.counters;
        drop(state);
        idle.into_iter().for_each(Waker::wake);
        if !abandoned.is_empty() {
            self.abandon.cancel();
        }
        self.progress.notify_waiters();
        BatchReport {
            accepted: counters.accepted,
            flushed_batches: counters.flushed_batches,
            flushed_items: counters.flushed_items,
            failed_batches: counters.failed_batches,
            failed_items: counters.failed_items,
            panicked_batches: counters.panicked_batches,
            panicked_items: counters.panicked_items,
            failed,
            unflushed,
            abandoned,
            elapsed: now.saturating_duration_since(shutdown_started),
        }
    }

    // ---- the worker's side ----

    /// Records how worker `worker`'s previous flush ended (if `finished` is
    /// set), then gives it its next batch; parks it while there is none;
    /// retires it (`Ready(None)`) once the batcher is closed and drained, or
    /// shutdown gave up on its slot. One lock for both halves.
    pub(super) fn next_for(
        &self,
        worker: u64,
        finished: &mut Option<Finished<T>>,
        waker: &Waker,
    ) -> Poll<Option<Sealed<T>>> {
        let mut state = self.lock();
        let recorded = finished.take().map(|done| state.record(worker, done));
        let next = state.next_for(worker, waker, self.config.capacity);
        drop(state);
        if recorded.is_some() {
            self.notify_progress();
        }
        if let Poll::Ready(Some((_, true))) = &next {
            self.room.notify_waiters();
        }
        next.map(|next| next.map(|(batch, _)| batch))
    }

    /// Wakes `flush` and `shutdown` callers, if any wait.
    pub(super) fn notify_progress(&self) {
        // A waiter counts itself before it looks at the state under the
        // lock, and this runs after the change was made under the lock: if
        // the waiter saw the old state, this sees its count.
        if self.progress_waiters.load(Ordering::SeqCst) > 0 {
            self.progress.notify_waiters();
        }
    }

    /// Counts a `flush` or `shutdown` caller as waiting for progress until the
    /// guard is dropped.
    pub(super) fn waiting_for_progress(&self) -> ProgressWaiter<'_> {
        self.progress_waiters.fetch_add(1, Ordering::SeqCst);
        ProgressWaiter(&self.progress_waiters)
    }

    /// The worker was dropped without finishing (its task was cancelled by
    /// something other than shutdown, e.g. the runtime shutting down).
    pub(super) fn worker_dropped(&self, worker: u64) {
        let mut state = self.lock();
        if let Some(index) = state.slots.iter().position(|slot| slot.worker == worker) {
            let slot = state.slots.swap_remove(index);
            if let Phase::Running(running) = slot.phase {
                state.lost.push(AbandonedFlush {
                    batch: running.seq,
                    items: running.items,
                    running_for: now().saturating_duration_since(running.started),
                });
            }
        }
        drop(state);
        self.notify_progress();
    }

    /// The no-lost-wake rule, which the loom models check at arbitrary
    /// points: a ready batch (or the open one, once found overdue) always has
    /// a worker coming for it, one that is starting or running and so will
    /// look for its next batch. An idle worker is parked until woken.
    #[cfg(all(test, loom))]
    pub(super) fn assert_ready_batches_have_a_worker_coming(&self) {
        let state = self.lock();
        let waiting = !state.ready.is_empty() || (state.open_overdue && !state.open.is_empty());
        let coming = state
            .slots
            .iter()
            .any(|slot| !matches!(slot.phase, Phase::Idle(_)));
        assert!(
            !waiting || coming,
            "{} ready batches and no worker coming for them",
            state.ready.len()
        );
    }

    // ---- the driver's side ----

    /// One look by the timer driver. Returns what it should wait for:
    /// `Some(instant)` to sleep until, `None` to wait for a wake, or `Err`
    /// when the batcher is closed and the driver is done.
    pub(super) fn drive(self: &Arc<Self>, waker: &Waker) -> Result<Option<Instant>, ()> {
        loop {
            let mut state = self.lock();
            if state.closed && state.open.is_empty() {
                state.driver = None;
                state.driver_armed = None;
                return Err(());
            }
            let wait = if state.open.is_empty() || state.open_overdue {
                None
            } else if let Some(due) = state.open_due.filter(|&due| due > now()) {
                Some(due)
            } else if state.open_due.is_none() {
                // Not due by age ever: a deadline, `flush` or `shutdown` wakes it.
                None
            } else if state.slots.len() < self.config.max_in_flight
                || state
                    .slots
                    .iter()
                    .any(|slot| matches!(slot.phase, Phase::Idle(_)))
            {
                state.seal_open();
                let claims = state.claim_slots(&self.config);
                drop(state);
                self.finish(AfterUnlock {
                    claims,
                    ..AfterUnlock::default()
                });
                continue;
            } else {
                // Every slot is busy: the next worker to finish takes it.
                state.open_overdue = true;
                None
            };
            state.driver_armed = wait;
            if !state.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
                state.driver = Some(waker.clone());
            }
            return Ok(wait);
        }
    }

    // ---- handles ----

    pub(super) fn add_handle(&self) {
        self.lock().handles += 1;
    }

    /// The last handle is gone: close, and flush what is pending in the
    /// background. Nobody is left to read a report, so nothing waits.
    pub(super) fn drop_handle(self: &Arc<Self>) {
        let last = {
            let mut state = self.lock();
            state.handles -= 1;
            state.handles == 0
        };
        if last {
            self.seal_now(true);
        }
    }

    pub(super) fn pending(&self) -> usize {
        self.lock().pending
    }

    pub(super) fn in_flight(&self) -> usize {
        let state = self.lock();
        state
            .slots
            .iter()
            .filter(|slot| matches!(slot.phase, Phase::Running(_)))
            .count()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Reached with something to account for when no `shutdown` took the
        // account: items left if the runtime went away before they could be
        // flushed (its tasks, which hold this state, were dropped), and failed
        // batches kept for a report (no failure hook) that nobody will read.
        // Nothing can hand them back now; at least say so.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let running: usize = state
            .slots
            .iter()
            .filter_map(|slot| match &slot.phase {
                Phase::Running(running) => Some(running.items),
                _ => None,
            })
            .sum();
        let lost = state.pending + running + state.lost.iter().map(|l| l.items).sum::<usize>();
        let failed_batches = state.failed.len();
        let failed_items: usize = state.failed.iter().map(|batch| batch.items.len()).sum();
        #[cfg(feature = "tracing")]
        if lost > 0 || failed_batches > 0 {
            tracing::error!(
                items = lost,
                failed_batches,
                failed_items,
                "hangfree batcher dropped without Batcher::shutdown: `items` were never \
                 flushed (its runtime shut down first), and `failed_batches` failed flushes \
                 (`failed_items` items) were kept for a report nobody took"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (lost, failed_batches, failed_items);
    }
}

impl<T> State<T> {
    /// Records how a worker's flush ended. If shutdown already gave up on
    /// it, it was reported as abandoned: it is neither counted nor reported
    /// again (its failed items still went to the hook, if there is one).
    fn record(&mut self, worker: u64, done: Finished<T>) {
        let Finished { seq, size, outcome } = done;
        let slot = self.slots.iter_mut().find(|slot| slot.worker == worker);
        let counted = match slot {
            Some(slot) if matches!(&slot.phase, Phase::Running(r) if r.seq == seq) => {
                slot.phase = Phase::Starting;
                true
            }
            _ => false,
        };
        let counters = &mut self.counters;
        match outcome {
            Outcome::Flushed => {
                if counted {
                    counters.flushed_batches += 1;
                    counters.flushed_items += size as u64;
                }
            }
            Outcome::Failed { handed_back, kept } => {
                if counted {
                    counters.failed_batches += 1;
                    // A flush may hand back more items than it was given (its own,
                    // or duplicates); the account only ever counts this batch's.
                    let handed_back = handed_back.min(size);
                    counters.failed_items += handed_back as u64;
                    counters.flushed_items += (size - handed_back) as u64;
                }
                // Only a flush still counted here can add to `failed`: one that a
                // shutdown already reported as abandoned (outcome unknown) must
                // not reappear in a later report. Its items went to the hook if
                // there is one, as every failed flush's do.
                if let Some((items, error)) = kept.filter(|_| counted) {
                    self.failed.push(FailedBatch {
                        batch: seq,
                        items,
                        error,
                    });
                }
            }
            Outcome::Panicked => {
                if counted {
                    counters.panicked_batches += 1;
                    counters.panicked_items += size as u64;
                }
            }
        }
    }

    /// The worker's half of `Shared::next_for`; the flag says whether room
    /// was made for waiting pushes.
    fn next_for(
        &mut self,
        worker: u64,
        waker: &Waker,
        capacity: usize,
    ) -> Poll<Option<(Sealed<T>, bool)>> {
        let Some(index) = self.slots.iter().position(|slot| slot.worker == worker) else {
            return Poll::Ready(None);
        };
        let was_full = self.pending >= capacity;
        let Some(batch) = self.take_next() else {
            if self.closed {
                self.slots.swap_remove(index);
                return Poll::Ready(None);
            }
            self.slots[index].phase = Phase::Idle(waker.clone());
            return Poll::Pending;
        };
        self.slots[index].phase = Phase::Running(Running {
            seq: batch.seq,
            items: batch.items.len(),
            started: now(),
        });
        let room = was_full && self.pending < capacity;
        Poll::Ready(Some((batch, room)))
    }

    /// Wakes the driver if its timer would fire after `due`.
    fn wake_driver_before(&mut self, due: Instant) -> Option<Waker> {
        if self.driver_armed.is_some_and(|armed| armed <= due) {
            return None;
        }
        // Until it runs and sets its own timer, nobody needs to wake it
        // again for anything later than `due`.
        self.driver_armed = Some(due);
        self.driver.take()
    }

    fn seal_open(&mut self) {
        let items = mem::take(&mut self.open);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open_overdue = false;
        self.ready.push_back(Sealed { seq, items });
    }

    /// The next batch to flush, in order: closed batches first, then the open
    /// one if the driver found it due while every slot was busy. (An open
    /// batch that becomes due while a slot is free is the driver's to start,
    /// so this needs no clock read.)
    fn take_next(&mut self) -> Option<Sealed<T>> {
        if self.ready.is_empty() && !self.open.is_empty() && self.open_overdue {
            self.seal_open();
        }
        let batch = self.ready.pop_front()?;
        self.pending -= batch.items.len();
        Some(batch)
    }

    /// Gets a worker to a ready batch that has none coming: wakes an idle
    /// one, or reserves a slot for a new one.
    fn claim_slot(&mut self, config: &Config) -> Option<Claim> {
        let starting = self
            .slots
            .iter()
            .filter(|slot| matches!(slot.phase, Phase::Starting))
            .count();
        if self.ready.len() <= starting {
            return None;
        }
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|slot| matches!(slot.phase, Phase::Idle(_)))
        {
            if let Phase::Idle(waker) = mem::replace(&mut slot.phase, Phase::Starting) {
                return Some(Claim::Wake(waker));
            }
        }
        if self.slots.len() >= config.max_in_flight {
            return None;
        }
        let worker = self.next_worker;
        self.next_worker += 1;
        self.slots.push(Slot {
            worker,
            phase: Phase::Starting,
        });
        Some(Claim::Spawn(worker))
    }

    fn claim_slots(&mut self, config: &Config) -> Vec<Claim> {
        let mut claims = Vec::new();
        while let Some(claim) = self.claim_slot(config) {
            claims.push(claim);
        }
        claims
    }

    /// Takes the wakers of every idle worker (to let them see that the
    /// batcher closed).
    fn wake_idle(&mut self) -> impl Iterator<Item = Waker> + '_ {
        self.slots.iter_mut().filter_map(|slot| {
            if matches!(slot.phase, Phase::Idle(_)) {
                match mem::replace(&mut slot.phase, Phase::Starting) {
                    Phase::Idle(waker) => Some(waker),
                    _ => None,
                }
            } else {
                None
            }
        })
    }
}
