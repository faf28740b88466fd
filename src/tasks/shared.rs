//! The state behind a `TaskSet`: who is tracked, counters, kept failures,
//! and the bookkeeping of a task's start and end.
//!
//! Hot path, per task: one atomic reservation and one shard lock at spawn,
//! one shard lock at the end. Tasks are spread over `SHARDS` mutexes by id so
//! that the spawning thread and the workers finishing tasks rarely meet on
//! the same lock.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sync::lock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::report::{FailureKind, ShutdownReport, TaskCounts, TaskFailure, TaskId, TaskInfo};
use super::tracked::{Slot, WaitingSlot};

const SHARD_BITS: u32 = 3;
const SHARDS: usize = 1 << SHARD_BITS;

/// Below this many slots a shard's map is never shrunk (avoids churn).
const MIN_MAP_CAPACITY: usize = 32;

/// Keeps each shard's lock on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

// `repr(C)` and boxed shards keep the three hot counters on the same cache
// line as the `Arc`'s reference count, which every spawn and every task end
// touch anyway: one line moves between cores per task instead of three.
#[repr(C)]
pub(super) struct Shared {
    /// Tasks reserved and not yet finished. Read without a lock by `len()`
    /// and by shutdown's wait.
    live: AtomicUsize,
    last_id: AtomicU64,
    /// No new tasks are accepted. Read on every spawn, so kept out of the
    /// shards; see `reserve` for the ordering argument.
    closed: AtomicBool,
    shards: Box<[Padded<Mutex<Shard>>]>,
    rejected: AtomicU64,
    /// Woken when `live` drops to zero.
    idle: Notify,
    /// Given to tasks; cancelled when shutdown begins or the set is dropped.
    pub(super) token: CancellationToken,
    /// Internal: wakes `spawn_waiting` callers when shutdown begins (users
    /// may cancel the public token without closing the set).
    pub(super) closing: CancellationToken,
    pub(super) semaphore: Option<Arc<Semaphore>>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) abort_wait: Duration,
    max_kept_failures: usize,
    /// Kept failures, oldest first (rare path: its own lock).
    failures: Mutex<VecDeque<TaskFailure>>,
    /// The last id given to a shutdown that aborts (ids start at 1; 0 means
    /// "no shutdown": the abort when the set is dropped).
    last_shutdown: AtomicU32,
}

#[derive(Default)]
struct Shard {
    tasks: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    /// Tasks that ended before their spawner registered them (a worker can
    /// run a task to its end before `spawn` returns). The spawner records
    /// them when it registers. Almost always empty.
    finished_early: Vec<(u64, Outcome)>,
    /// Set by an abort-all (to the aborting shutdown's id): tasks
    /// registered later are aborted at once, on behalf of that shutdown.
    aborting: Option<u32>,
    /// Shutdowns that aborted tasks and have not built their report yet:
    /// only their aborted tasks are listed in `aborted`.
    collecting: Vec<u32>,
    /// Aborted tasks, each with the shutdown that aborted it, so that every
    /// report lists its own aborts (not a concurrent shutdown's).
    aborted: Vec<(u32, TaskInfo)>,
    counts: TaskCounts,
}

pub(super) struct Entry {
    pub(super) label: Cow<'static, str>,
    pub(super) started: Instant,
    pub(super) abort: AbortHandle,
    pub(super) blocking: bool,
    /// The shutdown that aborted this task (0: none). Fits in the padding
    /// after `blocking`: an entry stays 56 bytes.
    pub(super) aborted_by: u32,
}

impl Entry {
    fn info(&self, id: u64, now: Instant) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            label: self.label.clone(),
            age: now.saturating_duration_since(self.started),
            blocking: self.blocking,
        }
    }
}

/// Ids are sequential and tasks mostly end in spawn order. Within a shard
/// (ids `k * SHARDS + s`) the hash keeps `k` in place, so neighbouring tasks
/// land in neighbouring buckets (a large table is walked, not jumped around,
/// which measured faster than a multiplicative hash), and copies `k`'s low 7
/// bits into the top 7 bits, which hashbrown uses as the tag that tells
/// neighbours apart.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let within_shard = id >> SHARD_BITS;
        self.0 = within_shard ^ (within_shard << 57);
    }
}

pub(super) enum Outcome {
    Aborted,
    Completed,
    Failed(String),
    Panicked(String),
}

/// Held by every task (inside its future or closure). It records the outcome
/// and forgets the task: through [`complete`](Guard::complete), or, if the
/// task is dropped first (aborted, or dropped with its runtime), on drop.
pub(super) struct Guard {
    shared: Option<Arc<Shared>>,
    pub(super) id: u64,
}

impl Guard {
    pub(super) fn complete(&mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            shared.finish(self.id, outcome);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.complete(Outcome::Aborted);
    }
}

/// What a finished task leaves to do once its shard is unlocked.
struct Aftermath {
    /// Dropped outside the lock: an owned label, the abort handle.
    _entry: Option<Entry>,
    failure: Option<TaskFailure>,
}

impl Shared {
    pub(super) fn new(
        token: CancellationToken,
        max_in_flight: Option<usize>,
        max_kept_failures: usize,
        abort_wait: Duration,
    ) -> Self {
        Shared {
            shards: (0..SHARDS)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            closed: AtomicBool::new(false),
            last_id: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            idle: Notify::new(),
            token,
            closing: CancellationToken::new(),
            semaphore: max_in_flight.map(|limit| Arc::new(Semaphore::new(limit))),
            max_in_flight,
            abort_wait,
            max_kept_failures,
            failures: Mutex::new(VecDeque::new()),
            last_shutdown: AtomicU32::new(0),
        }
    }

    fn shard(&self, id: u64) -> MutexGuard<'_, Shard> {
        lock(&self.shards[(id as usize) & (SHARDS - 1)].0)
    }

    /// A slot for a task spawned now: free, held, or to wait for (in order,
    /// behind earlier waiters; the semaphore is fair).
    pub(super) fn gate_now(&self) -> Slot {
        match &self.semaphore {
            None => Slot::Unlimited,
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Slot::Held { _permit: permit },
                Err(_) => {
                    let mut acquire: WaitingSlot = Box::pin(semaphore.clone().acquire_owned());
                    // Join the semaphore's queue now, not at the task's first
                    // poll (the scheduler polls new tasks in no set order,
                    // and a `spawn_waiting` would queue first): slots go out
                    // in spawn order. The first poll replaces the waker.
                    match acquire
                        .as_mut()
                        .poll(&mut Context::from_waker(Waker::noop()))
                    {
                        Poll::Ready(Ok(permit)) => Slot::Held { _permit: permit },
                        // The semaphore is never closed; run rather than lose work.
                        Poll::Ready(Err(_)) => Slot::Unlimited,
                        Poll::Pending => Slot::Waiting(acquire),
                    }
                }
            },
        }
    }

    /// Admits a task (counted in `live`), or counts a rejection once the set
    /// is closed.
    ///
    /// Ordering: `live` is raised before `closed` is read, and shutdown sets
    /// `closed` before it reads `live` (both `SeqCst`). So either this spawn
    /// sees `closed` and is rejected, or shutdown sees the task in `live` and
    /// waits for it (and aborts it once registered): no task slips past.
    pub(super) fn reserve(self: &Arc<Self>) -> Option<Guard> {
        self.live.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            self.leave();
            return None;
        }
        // Relaxed: ids only need to be unique and increasing per spawner.
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        Some(Guard {
            shared: Some(Arc::clone(self)),
            id,
        })
    }

    /// Counts a rejection decided outside `reserve` (a waiting spawn that
    /// saw shutdown begin).
    pub(super) fn count_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes a spawned task visible (label, age, abort handle). If the task
    /// already ended, records its outcome instead.
    pub(super) fn register(&self, id: u64, mut entry: Entry) {
        let mut shard = self.shard(id);
        shard.counts.spawned += 1;
        let early = shard
            .finished_early
            .iter()
            .position(|(early_id, _)| *early_id == id);
        if let Some(index) = early {
            let (_, outcome) = shard.finished_early.swap_remove(index);
            let aftermath = Self::record(&mut shard, id, entry, outcome);
            drop(shard);
            self.after(id, aftermath);
            return;
        }
        let abort_now = shard.aborting.map(|by| {
            entry.aborted_by = by;
            entry.abort.clone()
        });
        shard.tasks.insert(id, entry);
        drop(shard);
        if let Some(abort) = abort_now {
            abort.abort();
        }
    }

    /// Undoes a `reserve` whose spawn panicked (no runtime).
    pub(super) fn abandon(&self, id: u64) {
        let mut shard = self.shard(id);
        shard.finished_early.retain(|(early_id, _)| *early_id != id);
        drop(shard);
        self.leave();
    }

    /// Records a task's end and forgets it.
    fn finish(&self, id: u64, outcome: Outcome) {
        let mut shard = self.shard(id);
        let Some(entry) = shard.tasks.remove(&id) else {
            // Not registered yet: the spawner records it (and leaves).
            shard.finished_early.push((id, outcome));
            return;
        };
        let capacity = shard.tasks.capacity();
        if capacity > MIN_MAP_CAPACITY && shard.tasks.len() * 4 < capacity {
            let keep = (shard.tasks.len() * 2).max(MIN_MAP_CAPACITY);
            shard.tasks.shrink_to(keep);
        }
        let aftermath = Self::record(&mut shard, id, entry, outcome);
        drop(shard);
        self.after(id, aftermath);
    }

    fn record(shard: &mut Shard, id: u64, entry: Entry, outcome: Outcome) -> Aftermath {
        let failure = |kind, message| TaskFailure {
            id: TaskId(id),
            age: Instant::now().saturating_duration_since(entry.started),
            label: entry.label.clone(),
            kind,
            message,
        };
        let failure = match outcome {
            Outcome::Completed => {
                shard.counts.completed += 1;
                None
            }
            Outcome::Aborted => {
                shard.counts.aborted += 1;
                let by = entry.aborted_by;
                if by != 0 && shard.collecting.contains(&by) {
                    shard.aborted.push((by, entry.info(id, Instant::now())));
                }
                None
            }
            Outcome::Failed(message) => {
                shard.counts.failed += 1;
                Some(failure(FailureKind::Error, message))
            }
            Outcome::Panicked(message) => {
                shard.counts.panicked += 1;
                Some(failure(FailureKind::Panic, message))
            }
        };
        Aftermath {
            _entry: Some(entry),
            failure,
        }
    }

    /// The part of a task's end done without its shard locked.
    fn after(&self, id: u64, aftermath: Aftermath) {
        let Aftermath { _entry, failure } = aftermath;
        drop(_entry);
        if let Some(failure) = failure {
            #[cfg(feature = "tracing")]
            match failure.kind {
                FailureKind::Error => tracing::warn!(
                    task.id = id,
                    task.label = %failure.label,
                    error = %failure.message,
                    "task failed"
                ),
                FailureKind::Panic => tracing::error!(
                    task.id = id,
                    task.label = %failure.label,
                    panic = %failure.message,
                    "task panicked"
                ),
            }
            #[cfg(not(feature = "tracing"))]
            let _ = id;
            if self.max_kept_failures > 0 {
                let mut failures = lock(&self.failures);
                if failures.len() == self.max_kept_failures {
                    failures.pop_front();
                }
                failures.push_back(failure);
            }
        }
        self.leave();
    }

    fn leave(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.cancel();
        self.token.cancel();
    }

    /// A fresh id for a shutdown that is about to abort tasks (never 0).
    pub(super) fn next_shutdown(&self) -> u32 {
        loop {
            let id = self
                .last_shutdown
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            if id != 0 {
                return id;
            }
        }
    }

    /// Closes the set and aborts every registered task on behalf of shutdown
    /// `by` (0: the set is dropped, nothing is listed); later registrations
    /// abort themselves. Returns how many async tasks and how many blocking
    /// closures (which cannot be aborted once started) were tracked.
    pub(super) fn abort_all(&self, by: u32) -> (usize, usize) {
        self.closed.store(true, Ordering::SeqCst);
        let mut handles = Vec::new();
        let mut blocking = 0;
        for shard in &self.shards {
            let mut shard = lock(&shard.0);
            let shard = &mut *shard;
            shard.aborting = Some(by);
            if by != 0 {
                shard.collecting.push(by);
            }
            for entry in shard.tasks.values_mut() {
                // An abort of an earlier shutdown still waiting for it stays
                // that shutdown's; one whose shutdown has reported (the task
                // was unresponsive) becomes this one's.
                let by_earlier = entry.aborted_by;
                if by_earlier == 0 || !shard.collecting.contains(&by_earlier) {
                    entry.aborted_by = by;
                }
                blocking += usize::from(entry.blocking);
                handles.push(entry.abort.clone());
            }
        }
        // Outside the locks: aborting may drop a task's future right here.
        for handle in &handles {
            handle.abort();
        }
        (handles.len() - blocking, blocking)
    }

    /// Stops listing the aborts of shutdown `by` and drops those listed
    /// (its future was dropped before it reported).
    pub(super) fn forget_aborted(&self, by: u32) {
        for shard in &self.shards {
            let mut shard = lock(&shard.0);
            shard.collecting.retain(|&id| id != by);
            shard.aborted.retain(|(id, _)| *id != by);
        }
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(super) fn running(&self) -> Vec<TaskInfo> {
        let now = Instant::now();
        let mut tasks = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let shard = lock(&shard.0);
            tasks.extend(shard.tasks.iter().map(|(&id, entry)| entry.info(id, now)));
        }
        tasks.sort_unstable_by_key(TaskInfo::id);
        tasks
    }

    pub(super) fn counts(&self) -> TaskCounts {
        let mut total = TaskCounts::default();
        for shard in &self.shards {
            let counts = lock(&shard.0).counts;
            total.spawned += counts.spawned;
            total.completed += counts.completed;
            total.failed += counts.failed;
            total.panicked += counts.panicked;
            total.aborted += counts.aborted;
        }
        total.rejected = self.rejected.load(Ordering::Relaxed);
        total
    }

    pub(super) fn failures(&self) -> Vec<TaskFailure> {
        lock(&self.failures).iter().cloned().collect()
    }

    pub(super) fn kept_failures(&self) -> usize {
        lock(&self.failures).len()
    }

    /// The report of shutdown `by` (0 if it aborted nothing).
    ///
    /// Counters, aborted and still-running tasks are read from each shard
    /// under one lock, so every task is in exactly one column: a task
    /// counts as spawned, and is either running or has its outcome counted,
    /// within one shard (a task ending between two reads was in none).
    pub(super) fn report(&self, by: u32, elapsed: Duration) -> ShutdownReport {
        let now = Instant::now();
        let mut counts = TaskCounts::default();
        let mut aborted = Vec::new();
        let mut unresponsive = Vec::new();
        for shard in &self.shards {
            let mut shard = lock(&shard.0);
            let shard = &mut *shard;
            counts.spawned += shard.counts.spawned;
            counts.completed += shard.counts.completed;
            counts.failed += shard.counts.failed;
            counts.panicked += shard.counts.panicked;
            counts.aborted += shard.counts.aborted;
            unresponsive.extend(shard.tasks.iter().map(|(&id, entry)| entry.info(id, now)));
            if by != 0 {
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
        counts.rejected = self.rejected.load(Ordering::Relaxed);
        aborted.sort_unstable_by_key(TaskInfo::id);
        unresponsive.sort_unstable_by_key(TaskInfo::id);
        ShutdownReport {
            elapsed,
            counts,
            failures: self.failures(),
            aborted,
            unresponsive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(
            CancellationToken::new(),
            None,
            8,
            Duration::from_millis(100),
        ))
    }

    #[tokio::test]
    async fn a_task_that_ends_before_it_is_registered_is_recorded_by_its_spawner() {
        let shared = shared();
        let mut guard = shared.reserve().unwrap();
        let id = guard.id;
        guard.complete(Outcome::Failed("lost ack".to_owned()));
        assert_eq!(shared.len(), 1, "live until its spawner registers it");
        assert_eq!(shared.counts().failed, 0);

        let abort = tokio::spawn(async {}).abort_handle();
        let entry = Entry {
            label: "early".into(),
            started: Instant::now(),
            abort,
            blocking: false,
            aborted_by: 0,
        };
        shared.register(id, entry);
        assert_eq!(shared.len(), 0);
        let counts = shared.counts();
        assert_eq!((counts.spawned, counts.failed), (1, 1));
        assert_eq!(shared.failures()[0].label(), "early");
        assert_eq!(shared.failures()[0].message(), "lost ack");
        assert!(shared.running().is_empty());
        assert!(
            lock(&shared.shards[(id as usize) & (SHARDS - 1)].0)
                .finished_early
                .is_empty()
        );
    }

    #[test]
    fn the_aborting_shutdowns_id_fits_in_an_entrys_padding() {
        // Per live task: the id tagging an abort must not grow the entry.
        assert!(std::mem::size_of::<Entry>() <= 56);
    }

    #[test]
    fn a_spawn_that_panicked_leaves_nothing_to_wait_for() {
        let shared = shared();
        let guard = shared.reserve().unwrap();
        let id = guard.id;
        // What happens when `tokio::spawn` panics: the future, and with it
        // the guard, is dropped; then the spawner abandons the reservation.
        drop(guard);
        shared.abandon(id);
        assert_eq!(shared.len(), 0);
        assert_eq!(shared.counts(), TaskCounts::default());
        assert!(
            lock(&shared.shards[(id as usize) & (SHARDS - 1)].0)
                .finished_early
                .is_empty()
        );
    }

    #[test]
    fn spawning_outside_a_runtime_panics_without_leaving_a_reservation() {
        use std::panic::AssertUnwindSafe;
        let set = crate::TaskSet::new();
        let spawned =
            std::panic::catch_unwind(AssertUnwindSafe(|| set.spawn("no runtime", async {})));
        assert!(spawned.is_err());
        assert_eq!(set.len(), 0);
        assert_eq!(set.counts().spawned, 0);
    }
}
