//! The state every handle, the timer driver and the flush workers share
//! ([`BatcherState`]), the part of it under its one lock ([`Ledger`]), each
//! worker's [`Phase`], and the moves every side makes: seal the open batch,
//! take the next ready batch, claim a worker for it.
//!
//! An item moves open batch → ready queue → a worker's flush → the account.
//! Each side's rules are in its own file, as `impl BatcherState` blocks on
//! the fields below:
//!
//! | file | side | moves |
//! |---|---|---|
//! | `push.rs` | producers | accept into the open batch; a full batch is sealed and claimed; a due time moved earlier wakes the driver |
//! | `driver.rs` | the timer driver | a due open batch is sealed and claimed, or marked overdue when every slot is busy |
//! | `worker.rs` | the flush workers | record a flush, take the next batch, park, retire; carry out claims |
//! | `shutdown.rs` | `flush`, `shutdown`, the last handle | seal now, close, wait, take the account |
//!
//! # Invariants
//!
//! Each holds whenever the lock is free. `loom_tests.rs` checks 1, 2 and 6 in
//! every interleaving of its models (the account, and a worker coming for
//! every ready batch).
//!
//! 1. Every accepted item is in exactly one place: the open batch, a ready
//!    batch, a running flush, or the account (counted flushed, failed or
//!    panicked; kept in `failed`; or, at shutdown, handed back or reported
//!    abandoned).
//! 2. A ready batch, or the open one once found overdue, has a worker coming
//!    for it: one that is starting or running, and so will look for its next
//!    batch again. An idle worker is only ever parked when there is nothing
//!    to take.
//! 3. `pending` is the number of items in `open` and `ready` (a batch taken
//!    by a worker leaves it). A push accepts an item only while `pending` is
//!    below `capacity`; only a `BatchSink` told there was room may add one
//!    beyond it (`sink.rs`).
//! 4. There are at most `max_in_flight` worker slots, each with a distinct
//!    id and one worker task spawned for it; a worker whose slot is gone
//!    (shutdown took the account) exits at its next look.
//! 5. `open_due` and `open_overdue` describe `open` only while it holds an
//!    item; a batch that opens sets both afresh.
//! 6. A running flush is counted at most once: by its worker, if its slot
//!    still runs that batch, or else by the report that gave up on it
//!    (shutdown, or the worker's drop), never both.
//!
//! # Deadlock safety
//!
//! 1. One lock, the ledger's. It is never held across an `.await` or while
//!    user code runs (the flush function, its future, the hook), and never
//!    while a waker is woken or a task spawned: each side collects what to
//!    wake under the lock and wakes it after releasing it.
//! 2. No other lock is taken while it is held. `Notify`s, the abandon token
//!    and the turns are signalled only after it is released.
//! 3. `T`'s destructor never runs under it on a hot path: items are only
//!    moved under the lock; a refused item is handed back to the caller.

use std::collections::VecDeque;
use std::mem;
use std::sync::PoisonError;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::flush::FlushFn;
use super::primitives::{CancellationToken, Notify};
use super::progress::Progress;
use super::report::{AbandonedFlush, Counts, FailedBatch};
use super::runner::Runner;
use super::turn::Turns;
use crate::sync::{Mutex, MutexGuard};

/// The builder's settings, validated (see `builder.rs`).
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) max_items: usize,
    pub(super) max_delay: Duration,
    pub(super) max_in_flight: usize,
    pub(super) capacity: usize,
    pub(super) margin: Duration,
}

/// Everything a batcher's handles, timer driver and flush workers share.
///
/// It is shared through std's `Arc` in both builds: the sides' methods take
/// `self: &Arc<Self>`, which only std's `Arc` allows, and its count orders
/// nothing but the final drop, which reads the state under its lock anyway.
pub(super) struct BatcherState<T> {
    pub(super) config: Config,
    ledger: Mutex<Ledger<T>>,
    /// Woken when pending items drop below `capacity` or the batcher closes:
    /// `push` waits on it.
    pub(super) room: Notify,
    /// Woken when a flush finishes or shutdown takes the account: `flush`
    /// and `shutdown` wait on it.
    pub(super) progress: Progress,
    /// Cancelled when shutdown's grace period runs out: every running flush
    /// is dropped at its next poll.
    pub(super) abandon: CancellationToken,
    /// Keeps the calls of the flush function in batch order.
    pub(super) turns: Turns,
    pub(super) flush: FlushFn<T>,
    pub(super) runner: Runner,
}

/// The part of [`BatcherState`] under its lock: the batches, the workers'
/// slots, and the account so far.
pub(super) struct Ledger<T> {
    /// The batch being filled. Its items are in push order.
    pub(super) open: Vec<T>,
    /// When `open` must be flushed: its oldest item's push time plus
    /// `max_delay`, or an earlier per-item deadline minus the margin; `None`
    /// while neither is representable (`max_delay(Duration::MAX)` and no
    /// deadline): then only size, `flush` and `shutdown` end the batch.
    pub(super) open_due: Option<Instant>,
    /// `open` is due but every flush slot was busy when the driver looked:
    /// the next free worker takes it, and until then it keeps accepting
    /// items (up to `max_items`).
    pub(super) open_overdue: bool,
    /// Sealed batches in the order they were sealed.
    pub(super) ready: VecDeque<ReadyBatch<T>>,
    /// Items in `open` and `ready`: accepted, not yet handed to a flush.
    pub(super) pending: usize,
    next_seq: u64,
    pub(super) workers: Vec<WorkerSlot>,
    next_worker: u64,
    pub(super) closed: bool,
    /// Live `Batcher` handles: the last one to go closes the batcher.
    pub(super) handles: usize,
    pub(super) driver: DriverWake,
    pub(super) counts: Counts,
    /// Failed flushes kept for the report (no failure hook).
    pub(super) failed: Vec<FailedBatch<T>>,
    /// Flushes dropped by something other than shutdown (the runtime
    /// shutting down): reported as abandoned.
    pub(super) lost: Vec<AbandonedFlush>,
}

/// A sealed batch: it accepts no more items and waits for a worker.
pub(super) struct ReadyBatch<T> {
    /// Its number: batches are numbered from 0 in the order they are sealed.
    pub(super) seq: u64,
    pub(super) items: Vec<T>,
}

/// One of at most `max_in_flight` flush workers. Workers live until the
/// batcher closes: an idle one parks and is woken for the next batch, which
/// is cheaper than a task per batch.
pub(super) struct WorkerSlot {
    pub(super) worker: u64,
    pub(super) phase: Phase,
}

/// Where a worker is: the state machine `worker.rs` runs.
///
/// ```text
///  claimed (spawned) ─▶ Starting ──take──▶ Running ──record──▶ Starting
///                          │  ▲                                   │
///                   nothing│  │claimed (woken)                    │
///                          ▼  │                                   │
///                         Idle ◀──────────── nothing to take ─────┘
///  closed and drained, or its slot gone: the worker exits
/// ```
pub(super) enum Phase {
    /// Spawned or woken: it will look for a batch at its next poll.
    Starting,
    /// Flushing a batch.
    Running(RunningBatch),
    /// Nothing to do: wake it when a batch is ready or the batcher closes.
    Idle(Waker),
}

/// The batch a worker is flushing: what a report says if it gives up on it.
#[derive(Clone, Copy)]
pub(super) struct RunningBatch {
    pub(super) seq: u64,
    pub(super) items: usize,
    pub(super) started: Instant,
}

impl RunningBatch {
    pub(super) fn abandoned(&self, now: Instant) -> AbandonedFlush {
        AbandonedFlush::new(
            self.seq,
            self.items,
            now.saturating_duration_since(self.started),
        )
    }
}

/// How to get a worker to a ready batch; carried out after unlocking
/// (`worker.rs`).
pub(super) enum Claim {
    Spawn(u64),
    Wake(Waker),
}

/// The timer driver's waker and the instant its timer is set for: how a
/// push knows whether to wake it (the rule is in `driver.rs`).
#[derive(Default)]
pub(super) struct DriverWake {
    pub(super) waker: Option<Waker>,
    /// `None`: it waits to be woken.
    pub(super) armed: Option<Instant>,
}

impl DriverWake {
    /// The driver's waker, if its timer would fire after `due`.
    pub(super) fn before(&mut self, due: Instant) -> Option<Waker> {
        if self.armed.is_some_and(|armed| armed <= due) {
            return None;
        }
        // Until it runs and sets its own timer, nobody needs to wake it
        // again for anything later than `due`.
        self.armed = Some(due);
        self.waker.take()
    }
}

impl<T> BatcherState<T> {
    pub(super) fn new(config: Config, flush: FlushFn<T>, runner: Runner) -> Self {
        BatcherState {
            ledger: Mutex::new(Ledger {
                open: Vec::new(),
                open_due: None,
                open_overdue: false,
                ready: VecDeque::new(),
                pending: 0,
                next_seq: 0,
                // Bounded: `max_in_flight(usize::MAX)` means "no limit", not an allocation.
                workers: Vec::with_capacity(config.max_in_flight.min(64)),
                next_worker: 0,
                closed: false,
                handles: 1,
                driver: DriverWake::default(),
                counts: Counts::default(),
                failed: Vec::new(),
                lost: Vec::new(),
            }),
            config,
            room: Notify::new(),
            progress: Progress::new(),
            abandon: CancellationToken::new(),
            turns: Turns::new(),
            flush,
            runner,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Ledger<T>> {
        crate::sync::lock(&self.ledger)
    }

    pub(super) fn pending(&self) -> usize {
        self.lock().pending
    }

    pub(super) fn in_flight(&self) -> usize {
        let ledger = self.lock();
        ledger
            .workers
            .iter()
            .filter(|slot| matches!(slot.phase, Phase::Running(_)))
            .count()
    }

    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(super) fn add_handle(&self) {
        self.lock().handles += 1;
    }

    /// The no-lost-wake rule (invariant 2), which the loom models check at
    /// arbitrary points.
    #[cfg(all(test, loom))]
    pub(super) fn assert_ready_batches_have_a_worker_coming(&self) {
        let ledger = self.lock();
        let waiting = !ledger.ready.is_empty() || (ledger.open_overdue && !ledger.open.is_empty());
        let coming = ledger
            .workers
            .iter()
            .any(|slot| !matches!(slot.phase, Phase::Idle(_)));
        assert!(
            !waiting || coming,
            "{} ready batches and no worker coming for them",
            ledger.ready.len()
        );
    }
}

impl<T> Drop for BatcherState<T> {
    fn drop(&mut self) {
        // Reached with something to account for when no `shutdown` took the
        // account: items left if the runtime went away before they could be
        // flushed (its tasks, which hold this state, were dropped), and failed
        // batches kept for a report (no failure hook) that nobody will read.
        // Nothing can hand them back now; at least say so.
        let ledger = self
            .ledger
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let running: usize = ledger
            .workers
            .iter()
            .filter_map(|slot| match &slot.phase {
                Phase::Running(running) => Some(running.items),
                _ => None,
            })
            .sum();
        let lost = ledger.pending + running + ledger.lost.iter().map(|l| l.items()).sum::<usize>();
        let failed_batches = ledger.failed.len();
        let failed_items: usize = ledger.failed.iter().map(|batch| batch.items().len()).sum();
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

impl<T> Ledger<T> {
    /// Seals the open batch into the ready queue.
    pub(super) fn seal_open(&mut self) {
        let items = mem::take(&mut self.open);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open_overdue = false;
        self.ready.push_back(ReadyBatch { seq, items });
    }

    /// The number every batch sealed so far is below.
    pub(super) fn sealed_below(&self) -> u64 {
        self.next_seq
    }

    /// The next batch to flush, in order: sealed batches first, then the open
    /// one if the driver found it due while every slot was busy. (An open
    /// batch that becomes due while a slot is free is the driver's to seal,
    /// so this needs no clock read.)
    pub(super) fn take_next(&mut self) -> Option<ReadyBatch<T>> {
        if self.ready.is_empty() && !self.open.is_empty() && self.open_overdue {
            self.seal_open();
        }
        let batch = self.ready.pop_front()?;
        self.pending -= batch.items.len();
        Some(batch)
    }

    /// `true` if a due batch could start now: a slot is free or idle.
    pub(super) fn has_free_worker(&self, config: &Config) -> bool {
        self.workers.len() < config.max_in_flight
            || self
                .workers
                .iter()
                .any(|slot| matches!(slot.phase, Phase::Idle(_)))
    }

    /// Gets a worker to a ready batch that has none coming: wakes an idle
    /// one, or reserves a slot for a new one (invariant 2).
    pub(super) fn claim_worker(&mut self, config: &Config) -> Option<Claim> {
        let starting = self
            .workers
            .iter()
            .filter(|slot| matches!(slot.phase, Phase::Starting))
            .count();
        if self.ready.len() <= starting {
            return None;
        }
        if let Some(slot) = self
            .workers
            .iter_mut()
            .find(|slot| matches!(slot.phase, Phase::Idle(_)))
        {
            if let Phase::Idle(waker) = mem::replace(&mut slot.phase, Phase::Starting) {
                return Some(Claim::Wake(waker));
            }
        }
        if self.workers.len() >= config.max_in_flight {
            return None;
        }
        let worker = self.next_worker;
        self.next_worker += 1;
        self.workers.push(WorkerSlot {
            worker,
            phase: Phase::Starting,
        });
        Some(Claim::Spawn(worker))
    }

    /// A worker for every ready batch that has none coming, as slots allow.
    pub(super) fn claim_workers(&mut self, config: &Config) -> Vec<Claim> {
        let mut claims = Vec::new();
        while let Some(claim) = self.claim_worker(config) {
            claims.push(claim);
        }
        claims
    }

    /// Takes the wakers of every idle worker, to let them see that the
    /// batcher closed.
    pub(super) fn wake_idle(&mut self) -> impl Iterator<Item = Waker> + '_ {
        self.workers.iter_mut().filter_map(|slot| {
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

    /// The slot of worker `worker`, if shutdown has not taken it.
    pub(super) fn slot_of(&self, worker: u64) -> Option<usize> {
        self.workers.iter().position(|slot| slot.worker == worker)
    }
}
