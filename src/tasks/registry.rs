//! The registry behind a `TaskSet`: which tasks are tracked, their counters
//! and kept failures, and the protocol of a task's life in the set (admit,
//! attach, finish, record) against shutdown's close, abort-all and report.
//!
//! It is written against [`Runtime`] rather than tokio, so that the loom
//! models (`loom_tests.rs`) check the protocol with stand-ins for tokio's
//! abort handles, `Notify` and cancellation token; its `Mutex` and atomics
//! come from `crate::sync`. The set's phase and live count are one word
//! (`lifecycle.rs`); how tasks spread over the shards is in `shards.rs`; the
//! bounded list of kept failures and the first failure in `failures.rs`.
//!
//! Hot path, per task: at admission, before the task is spawned, an atomic
//! load, two atomic adds and one shard lock (the entry is inserted, so that
//! a report sees the task from the moment it is admitted); after the spawn,
//! one shard lock to attach the abort handle, on the line the admission
//! just used; at the end, one shard lock and one atomic sub.
//!
//! # Invariants
//!
//! 1. `live` (the lifecycle's count) counts the tasks between their
//!    admission (`admit`'s increment) and the recording of their ending (or
//!    the undoing of their admission by `abandon`, or a rejection). It
//!    reaches 0 only when no task is tracked and none is being admitted.
//! 2. A task is admitted only under its shard's lock, after reading the
//!    lifecycle there as open; from that moment until its ending is recorded
//!    it has an entry in that shard, and it is counted in `spawned` at the
//!    same moment. The set is shut down (for good) before any report is
//!    built, so a report that has read a shard makes every later admission
//!    there see it closed (the shard's lock orders them): every task whose
//!    spawn returns `Ok` is, for each report, either in the shard when the
//!    report reads it (an entry: unresponsive) or counted by its ending, and
//!    never both.
//! 3. An entry's abort handle is `None` until its spawner attaches it, right
//!    after the spawn. Only the spawner removes such an entry: a task that
//!    ends first leaves its ending in `finished_early`, and the spawner
//!    records it when it attaches (or drops it in `abandon`, when the spawn
//!    panicked and the task never existed). A tracked future (`track`) has
//!    no handle and needs none: its entry counts as attached from its
//!    admission, and it is never aborted.
//! 4. Once an abort-all has run on a shard (`aborting` is `Some`), every task
//!    of that shard is aborted, tracked futures aside: those tracked then by
//!    the abort-all itself, those without a handle yet, and those admitted
//!    later, by their spawner when it attaches the handle.
//! 5. An entry's `aborted_by` names the shutdown that aborted it (`None`:
//!    none has; the abort-all of a dropped set names none, since no report
//!    can follow it). An abort is listed (in `aborted`) only while that
//!    shutdown is in `collecting`, and each report takes only its own.
//! 6. A report reads every shard and the kept failures while holding all of
//!    their locks, and a failure is kept under its shard's lock: a task is in
//!    exactly one column of a report, and a failure is kept in the report's
//!    list exactly when it is counted.
//! 7. The signals are woken only after the event they stand for, outside
//!    every lock: `idle` when `live` fell to 0, `drained` when the set became
//!    closed with `live` at 0 (read from the one value that made it so:
//!    `lifecycle.rs`, invariant 3), `failed` when the first failure was
//!    decided or settled (`failures.rs`, invariant 3). A waiter woken by
//!    `idle` or `drained` may return without reading the state again: the
//!    state it waited for did hold, at the wake's moment.
//!
//! # Deadlock safety
//!
//! The lock order is shards in index order, then the kept failures'. Only
//! `report` holds more than one shard lock; `record` takes the failures'
//! while holding one shard lock. No lock is held while user code may run:
//! aborts are issued, and entries (owned labels, abort handles, which may
//! hold the last reference to a task) dropped, after unlocking.

use std::borrow::Cow;
use std::collections::hash_map::Entry as MapEntry;
use std::num::NonZeroU32;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{AbortBy, Entry, Shard, ShutdownId};
use super::failures::{First, KeptFailures};
use super::lifecycle::{Lifecycle, Phase, Snapshot};
use super::outcome::Ending;
use super::report::{
    FailureKind, ShutdownReport, TaskCounts, TaskFailure, TaskId, TaskInfo, TaskKind,
};
use super::runtime::Runtime;
use super::shards::Shards;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::lock;

/// Below this many slots a shard's map is never shrunk (avoids churn).
const MIN_MAP_CAPACITY: usize = 32;

// `repr(C)` keeps the two hot words at the start, which the owner places
// next to its `Arc`'s reference count (see `state::SetState`).
#[repr(C)]
pub(super) struct Registry<R: Runtime> {
    /// The phase, and the tasks admitted and not yet finished (invariant 1),
    /// in one word. Read without a lock on every spawn, by `len()` and by the
    /// waits.
    lifecycle: Lifecycle,
    last_id: AtomicU64,
    shards: Shards<Shard<R>>,
    rejected: AtomicU64,
    /// Woken when `live` drops to zero (invariant 7).
    idle: R::Signal,
    /// Woken when the set becomes closed and empty (invariant 7).
    drained: R::Signal,
    /// Woken when the first failure is decided or settled (invariant 7).
    failed: R::Signal,
    failures: KeptFailures,
    /// Cancelled at the first failure: the set's failure policy says so.
    cancel_on_failure: Option<R::Token>,
    /// The label path of the set, in every snapshot and failure.
    path: std::sync::Arc<str>,
    /// The last id given to a shutdown that aborts (see `next_shutdown`).
    last_shutdown: AtomicU32,
}

/// A spawn the registry did not admit: its label back, and why.
#[derive(Debug)]
pub(super) struct Refusal {
    pub(super) label: Cow<'static, str>,
    /// `Closed` or `ShutDown`.
    pub(super) phase: Phase,
}

/// What an abort-all found: how many async tasks it aborted, blocking
/// closures (which cannot be aborted once started) and tracked futures
/// (never aborted) it left running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Aborting {
    pub(super) aborted: usize,
    pub(super) blocking: usize,
    pub(super) tracked_futures: usize,
}

/// What a finished task leaves to do once its shard is unlocked.
struct Aftermath<R: Runtime> {
    /// Dropped outside the lock: an owned label, the abort handle.
    entry: Entry<R>,
    /// Logged outside the lock (already kept).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    failure: Option<(FailureKind, Cow<'static, str>, String)>,
    /// It was the set's first failure: the policy and `first_failure`'s
    /// waiters are told outside the lock.
    first: bool,
}

impl<R: Runtime> Registry<R> {
    /// An empty registry for a set at `path`; at its first failure it
    /// cancels `cancel_on_failure`, if given.
    pub(super) fn new(
        max_kept_failures: usize,
        path: std::sync::Arc<str>,
        cancel_on_failure: Option<R::Token>,
    ) -> Self {
        Registry {
            lifecycle: Lifecycle::new(),
            last_id: AtomicU64::new(0),
            shards: Shards::new(),
            rejected: AtomicU64::new(0),
            idle: R::Signal::default(),
            drained: R::Signal::default(),
            failed: R::Signal::default(),
            failures: KeptFailures::new(max_kept_failures),
            cancel_on_failure,
            path,
            last_shutdown: AtomicU32::new(0),
        }
    }

    /// Woken when no task is live (invariant 7).
    pub(super) fn idle(&self) -> &R::Signal {
        &self.idle
    }

    /// Woken when the set is closed and empty (invariant 7).
    pub(super) fn drained(&self) -> &R::Signal {
        &self.drained
    }

    /// Woken when the first failure is decided or settled (invariant 7).
    pub(super) fn failed(&self) -> &R::Signal {
        &self.failed
    }

    /// The label path of the set.
    pub(super) fn path(&self) -> &std::sync::Arc<str> {
        &self.path
    }

    /// Admits a task about to be spawned and makes it visible (label, age;
    /// no abort handle yet): reserves its place in `live`, takes an id, and
    /// registers its entry. Refused once the set is closed (a rejection,
    /// counted; the label comes back).
    ///
    /// Ordering: the count is raised before the phase is read again, in the
    /// same word that `close` and `shut_down` modify (`lifecycle.rs`). So
    /// either this admission sees the set closed and is rejected, or whoever
    /// closed it sees the task in `live` (and a shutdown waits for it). The
    /// report's account does not rest on this, only on the shard's lock
    /// (invariant 2).
    pub(super) fn admit(
        &self,
        label: Cow<'static, str>,
        started: Instant,
        kind: TaskKind,
    ) -> Result<u64, Refusal> {
        // The fast rejection: a closed set's spawns take no id and no lock.
        // The decision is the reading under the lock below.
        let now = self.lifecycle.load();
        if !now.is_open() {
            self.count_rejected();
            return Err(Refusal {
                label,
                phase: now.phase(),
            });
        }
        self.lifecycle.enter();
        // Relaxed: ids only need to be unique (the add is atomic) and
        // increasing per spawner.
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut shard = self.shards.lock(id);
        // Under the lock: a report that has read this shard shut the set
        // down before it (invariant 2).
        let now = self.lifecycle.load();
        if !now.is_open() {
            drop(shard);
            self.count_rejected();
            self.leave();
            return Err(Refusal {
                label,
                phase: now.phase(),
            });
        }
        shard.counts.spawned += 1;
        let aborted_by = match kind {
            // Never aborted (invariant 4).
            TaskKind::Tracked => None,
            TaskKind::Async | TaskKind::Blocking => shard.aborting.and_then(AbortBy::shutdown),
        };
        let entry = Entry {
            label,
            started,
            abort: None,
            kind,
            aborted_by,
        };
        shard.tasks.insert(id, entry);
        Ok(id)
    }

    /// Counts a rejection decided outside `admit` (a waiting spawn that saw
    /// shutdown begin).
    pub(super) fn count_rejected(&self) {
        // Relaxed: a statistic, read with no other data.
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Attaches the abort handle of a task spawned after `admit`. If the
    /// task already ended, records its ending instead; if an abort-all has
    /// run, aborts it (invariant 4).
    pub(super) fn attach(&self, id: u64, abort: R::Abort) {
        let mut shard = self.shards.lock(id);
        let early = shard
            .finished_early
            .iter()
            .position(|(early_id, _)| *early_id == id);
        if let Some(index) = early {
            let (_, ending) = shard.finished_early.swap_remove(index);
            // Always there: only the spawner removes an entry without a
            // handle (invariant 3).
            let entry = shard.tasks.remove(&id);
            let aftermath = entry.map(|entry| self.record(&mut shard, id, entry, ending));
            drop(shard);
            drop(abort);
            if let Some(aftermath) = aftermath {
                self.after(id, aftermath);
            }
            return;
        }
        let abort_now = shard.aborting.is_some().then(|| abort.clone());
        let unused = match shard.tasks.get_mut(&id) {
            Some(entry) => entry.abort.replace(abort),
            // Not reached: only the spawner removes an entry without a
            // handle (invariant 3).
            None => Some(abort),
        };
        drop(shard);
        drop(unused);
        if let Some(abort) = abort_now {
            R::abort(&abort);
        }
    }

    /// Undoes the admission of a task whose spawn panicked (no runtime): it
    /// never existed. Its ticket, dropped in the panic, left an ending in
    /// `finished_early` (invariant 3). A report built meanwhile listed it as
    /// unresponsive.
    pub(super) fn abandon(&self, id: u64) {
        let mut shard = self.shards.lock(id);
        shard.finished_early.retain(|(early_id, _)| *early_id != id);
        let entry = shard.tasks.remove(&id);
        if entry.is_some() {
            shard.counts.spawned -= 1;
        }
        drop(shard);
        drop(entry);
        self.leave();
    }

    /// Records a task's end and forgets it; before its spawner attached the
    /// handle, leaves the ending to the spawner (invariant 3).
    pub(super) fn finish(&self, id: u64, ending: Ending) {
        let mut guard = self.shards.lock(id);
        let shard = &mut *guard;
        let entry = match shard.tasks.entry(id) {
            MapEntry::Occupied(entry) if entry.get().is_attached() => entry.remove(),
            _ => {
                shard.finished_early.push((id, ending));
                return;
            }
        };
        let capacity = shard.tasks.capacity();
        if capacity > MIN_MAP_CAPACITY && shard.tasks.len() * 4 < capacity {
            let keep = (shard.tasks.len() * 2).max(MIN_MAP_CAPACITY);
            shard.tasks.shrink_to(keep);
        }
        let aftermath = self.record(shard, id, entry, ending);
        drop(guard);
        self.after(id, aftermath);
    }

    /// Counts a finished task in its shard and keeps its failure, under the
    /// shard's lock (invariant 6).
    fn record(
        &self,
        shard: &mut Shard<R>,
        id: u64,
        entry: Entry<R>,
        ending: Ending,
    ) -> Aftermath<R> {
        let (kind, message) = match ending {
            Ending::Completed => {
                shard.counts.completed += 1;
                return Aftermath {
                    entry,
                    failure: None,
                    first: false,
                };
            }
            Ending::Aborted => {
                shard.counts.aborted += 1;
                if let Some(by) = entry.aborted_by {
                    if shard.collecting.contains(&by) {
                        shard
                            .aborted
                            .push((by, entry.info(id, R::now(), &self.path)));
                    }
                }
                return Aftermath {
                    entry,
                    failure: None,
                    first: false,
                };
            }
            Ending::Failed(message) => {
                shard.counts.failed += 1;
                (FailureKind::Error, message)
            }
            Ending::Panicked(message) => {
                shard.counts.panicked += 1;
                (FailureKind::Panic, message)
            }
        };
        let first = self.failures.keep(|| TaskFailure {
            id: TaskId(id),
            age: R::now().saturating_duration_since(entry.started),
            label: entry.label.clone(),
            path: self.path.clone(),
            kind,
            message: message.clone(),
        });
        let label = entry.label.clone();
        Aftermath {
            entry,
            failure: Some((kind, label, message)),
            first,
        }
    }

    /// The part of a task's end done without its shard locked.
    fn after(&self, id: u64, aftermath: Aftermath<R>) {
        let Aftermath {
            entry,
            failure,
            first,
        } = aftermath;
        drop(entry);
        if first {
            // The policy first: a waiter woken below finds the token
            // cancelled.
            if let Some(token) = &self.cancel_on_failure {
                R::cancel(token);
            }
            R::wake(&self.failed);
        }
        #[cfg(feature = "tracing")]
        match failure {
            Some((FailureKind::Error, label, message)) => tracing::warn!(
                task.id = id,
                task.label = %label,
                task.path = %self.path,
                error = %message,
                "task failed"
            ),
            Some((FailureKind::Panic, label, message)) => tracing::error!(
                task.id = id,
                task.label = %label,
                task.path = %self.path,
                panic = %message,
                "task panicked"
            ),
            None => {}
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (id, failure);
        self.leave();
    }

    fn leave(&self) {
        let now = self.lifecycle.leave();
        if now.live() == 0 {
            R::wake(&self.idle);
            if now.is_drained() {
                R::wake(&self.drained);
            }
        }
    }

    /// Tasks admitted and not finished.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.lifecycle.load().live()
    }

    /// One reading of the phase and the live count.
    #[inline]
    pub(super) fn lifecycle(&self) -> Snapshot {
        self.lifecycle.load()
    }

    /// Spawns are rejected (closed, or shut down).
    pub(super) fn is_closed(&self) -> bool {
        !self.lifecycle.load().is_open()
    }

    /// Stops admitting tasks until `reopen`; `true` if this call closed it.
    pub(super) fn close(&self) -> bool {
        let Some(now) = self.lifecycle.close() else {
            return false;
        };
        if now.is_drained() {
            R::wake(&self.drained);
        }
        true
    }

    /// Admits tasks again after `close`; `false` if the set was open or shut
    /// down.
    pub(super) fn reopen(&self) -> bool {
        self.lifecycle.reopen()
    }

    /// Stops admitting tasks for good (before any report: invariant 2).
    pub(super) fn shut_down(&self) {
        let now = self.lifecycle.shut_down();
        if now.is_drained() {
            R::wake(&self.drained);
        }
    }

    /// The set's first failure, as decided so far (`failures.rs`,
    /// invariant 3).
    pub(super) fn first_failure(&self) -> First {
        self.failures.first()
    }

    /// Cancels what the failure policy cancels at the first failure (again
    /// is harmless): for a waiter that found the first failure before its
    /// task's end got round to it.
    pub(super) fn apply_failure_policy(&self) {
        if let Some(token) = &self.cancel_on_failure {
            R::cancel(token);
        }
    }

    /// A fresh id for a shutdown that is about to abort tasks.
    pub(super) fn next_shutdown(&self) -> ShutdownId {
        loop {
            // Relaxed: ids only need to be unique.
            let id = self
                .last_shutdown
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            // Zero comes round after 2^32 shutdowns; skip it.
            if let Some(id) = NonZeroU32::new(id) {
                return ShutdownId(id);
            }
        }
    }

    /// Shuts the set down and aborts every tracked task on behalf of `by`,
    /// tracked futures aside; tasks without a handle yet are aborted by their
    /// spawner (invariant 4).
    pub(super) fn abort_all(&self, by: AbortBy) -> Aborting {
        self.shut_down();
        let shutdown = by.shutdown();
        let mut handles = Vec::new();
        let mut found = Aborting::default();
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let shard = &mut *shard;
            shard.aborting = Some(by);
            shard.collecting.extend(shutdown);
            for entry in shard.tasks.values_mut() {
                match entry.kind {
                    TaskKind::Tracked => {
                        found.tracked_futures += 1;
                        continue;
                    }
                    TaskKind::Blocking => found.blocking += 1,
                    TaskKind::Async => found.aborted += 1,
                }
                // An abort of an earlier shutdown still waiting for it stays
                // that shutdown's; one whose shutdown has reported (the task
                // was unresponsive) becomes this one's.
                let by_earlier = entry.aborted_by;
                if !by_earlier.is_some_and(|earlier| shard.collecting.contains(&earlier)) {
                    entry.aborted_by = shutdown;
                }
                handles.extend(entry.abort.clone());
            }
        }
        // Outside the locks: aborting may drop a task's future right here.
        for handle in &handles {
            R::abort(handle);
        }
        found
    }

    /// Stops listing the aborts of shutdown `by` and drops those listed
    /// (its future was dropped before it reported).
    pub(super) fn forget_aborted(&self, by: ShutdownId) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.collecting.retain(|&id| id != by);
            shard.aborted.retain(|(id, _)| *id != by);
        }
    }

    pub(super) fn running(&self) -> Vec<TaskInfo> {
        let now = R::now();
        let mut tasks = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let shard = lock(shard);
            tasks.extend(
                shard
                    .tasks
                    .iter()
                    .map(|(&id, entry)| entry.info(id, now, &self.path)),
            );
        }
        tasks.sort_unstable_by_key(TaskInfo::id);
        tasks
    }

    pub(super) fn counts(&self) -> TaskCounts {
        let mut total = TaskCounts::default();
        for shard in self.shards.iter() {
            total.add(&lock(shard).counts);
        }
        // Relaxed: a statistic, read with no other data.
        total.rejected = self.rejected.load(Ordering::Relaxed);
        total
    }

    pub(super) fn failures(&self) -> Vec<TaskFailure> {
        self.failures.to_vec()
    }

    pub(super) fn kept_failures(&self) -> usize {
        self.failures.len()
    }

    /// The report of a shutdown, listing the aborts of `aborted_by` (`None`
    /// if it aborted nothing): one snapshot of every shard and the kept
    /// failures, taken with all their locks held (invariants 2 and 6). Tasks
    /// without a handle yet (their spawn has not returned) are listed as
    /// unresponsive, like every tracked task. Settles the first failure if
    /// none was decided (`failures.rs`, invariant 3).
    pub(super) fn report(
        &self,
        aborted_by: Option<ShutdownId>,
        elapsed: Duration,
    ) -> ShutdownReport {
        let mut shards = self.shards.lock_all();
        let now = R::now();
        let mut counts = TaskCounts::default();
        let mut aborted = Vec::new();
        let mut unresponsive = Vec::new();
        for shard in &mut shards {
            let shard = &mut **shard;
            counts.add(&shard.counts);
            unresponsive.extend(
                shard
                    .tasks
                    .iter()
                    .map(|(&id, entry)| entry.info(id, now, &self.path)),
            );
            if let Some(by) = aborted_by {
                shard.collecting.retain(|&id| id != by);
                let mut index = 0;
                while index < shard.aborted.len() {
                    if shard.aborted[index].0 == by {
                        aborted.push(shard.aborted.swap_remove(index).1);
                    } else {
                        index += 1;
                    }
                }
            }
        }
        let failures = self.failures.to_vec_settling();
        drop(shards);
        // Settled now if no task had failed: `first_failure` answers.
        R::wake(&self.failed);
        // Relaxed: a statistic, read with no other data.
        counts.rejected = self.rejected.load(Ordering::Relaxed);
        aborted.sort_unstable_by_key(TaskInfo::id);
        unresponsive.sort_unstable_by_key(TaskInfo::id);
        ShutdownReport {
            elapsed,
            counts,
            failures,
            aborted,
            unresponsive,
        }
    }

    /// Whether a shard still holds anything of task `id` (for tests).
    #[cfg(test)]
    pub(super) fn holds(&self, id: u64) -> bool {
        let shard = self.shards.lock(id);
        shard.tasks.contains_key(&id) || shard.finished_early.iter().any(|(early, _)| *early == id)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
