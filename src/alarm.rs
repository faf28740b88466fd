//! A real-time backstop for deadlines that tokio's timers may not deliver.
//!
//! tokio's timers are driven by the runtime that registered them. Two things
//! can stop them from ever firing:
//!
//! - on a multi-thread runtime the timers are driven by the worker threads,
//!   so when every worker is pinned by a task that never yields (a blocking
//!   call inside an async task), no timer fires and a shutdown awaited from
//!   `block_on` would wait for its grace period forever;
//! - when the runtime that registered a timer shuts down, the timer is woken
//!   once, early, and never again: a deadline armed there is lost.
//!
//! An [`Alarm`] is a handle to one entry of a single, process-wide alarm
//! thread (started on first use, parked on a `Condvar` while there is nothing
//! to ring). [`set`](Alarm::set) asks it to wake the registered waker when a
//! deadline passes in real time; dropping the handle removes the entry. One
//! thread serves every alarm, however many shutdowns or scopes use one.
//!
//! The alarm only wakes; the decision stays with the clock: its users check
//! `tokio::time::Instant::now()` against their deadline when woken. Unpaused,
//! that clock is real time, so the alarm's wake finds the deadline passed.
//! Under a paused clock the alarm's wake finds it not reached (tokio's timer
//! fires first, by auto-advance or `advance`), so paused-time tests keep
//! their exact timings.
//!
//! # Invariants
//!
//! 1. An entry is in `queue` under key `(at, id)` exactly when its `at` is
//!    `Some(at)`: `set` and a ring update both together, under the lock.
//! 2. An entry rings at most once per `set`: ringing clears its `at`.
//! 3. Wakers are woken and dropped outside the lock (they may run arbitrary
//!    code, including another alarm's `set` or `drop`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use std::task::Waker;
use std::time::Instant as RealInstant;

use tokio::time::Instant;

/// One entry of the process-wide alarm thread. Dropping it removes the entry.
pub(crate) struct Alarm {
    id: u64,
}

struct Clock {
    state: Mutex<Entries>,
    ring: Condvar,
}

#[derive(Default)]
struct Entries {
    entries: HashMap<u64, Entry>,
    /// Pending rings in deadline order (invariant 1).
    queue: BTreeSet<(RealInstant, u64)>,
    next_id: u64,
    /// `Some(false)`: the system refused a thread; alarms then do nothing and
    /// their users rely on tokio's timers alone.
    thread: Option<bool>,
}

#[derive(Default)]
struct Entry {
    at: Option<RealInstant>,
    waker: Option<Waker>,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| Clock {
        state: Mutex::new(Entries::default()),
        ring: Condvar::new(),
    })
}

fn lock(clock: &Clock) -> MutexGuard<'_, Entries> {
    crate::sync::lock(&clock.state)
}

impl Alarm {
    /// A new entry, with no deadline and no waker yet.
    pub(crate) fn new() -> Self {
        let mut state = lock(clock());
        state.next_id += 1;
        let id = state.next_id;
        state.entries.insert(id, Entry::default());
        Alarm { id }
    }

    /// Rings at `deadline` (tokio's clock, mapped to real time now), in place
    /// of any deadline set before. A deadline too far to represent never rings.
    pub(crate) fn set(&self, deadline: Instant) {
        // tokio's clock first: unpaused, the real deadline is then never
        // earlier than the tokio one.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let real = RealInstant::now().checked_add(remaining);
        let clock = clock();
        let mut state = lock(clock);
        let state = &mut *state;
        let Some(entry) = state.entries.get_mut(&self.id) else {
            return;
        };
        if let Some(old) = entry.at.take() {
            state.queue.remove(&(old, self.id));
        }
        let Some(at) = real else {
            return;
        };
        entry.at = Some(at);
        state.queue.insert((at, self.id));
        let earliest = state.queue.first().is_some_and(|&(first, _)| first == at);
        if state.thread.is_none() {
            state.thread = Some(start_thread());
        } else if earliest {
            // The thread may sleep for a later deadline: let it look again.
            clock.ring.notify_one();
        }
    }

    /// The waker to wake when the deadline passes, in place of any before.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut state = lock(clock());
        let Some(entry) = state.entries.get_mut(&self.id) else {
            return;
        };
        if entry.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            return;
        }
        let old = entry.waker.replace(waker.clone());
        drop(state);
        drop(old);
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let mut state = lock(clock());
        let entry = state.entries.remove(&self.id);
        if let Some(at) = entry.as_ref().and_then(|entry| entry.at) {
            state.queue.remove(&(at, self.id));
        }
        drop(state);
        // The waker may hold a runtime's task: let it go now, outside the lock.
        drop(entry);
    }
}

impl std::fmt::Debug for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarm").field("id", &self.id).finish()
    }
}

/// Starts the alarm thread; `false` if the system refuses one.
fn start_thread() -> bool {
    std::thread::Builder::new()
        .name("hangfree-alarm".to_owned())
        .spawn(|| clock().run())
        .is_ok()
}

impl Clock {
    fn run(&self) {
        let mut state = lock(self);
        loop {
            let Some(&(at, id)) = state.queue.first() else {
                state = self
                    .ring
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let now = RealInstant::now();
            if now < at {
                // May return early (spuriously, or for an earlier deadline):
                // the loop looks again.
                state = self
                    .ring
                    .wait_timeout(state, at - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            state.queue.remove(&(at, id));
            let waker = state.entries.get_mut(&id).and_then(|entry| {
                entry.at = None;
                entry.waker.clone()
            });
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
            state = lock(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> Arc<Count> {
        Arc::new(Count(AtomicUsize::new(0)))
    }

    /// Waits until `count` reaches `n`; returns the time since `since`.
    fn wait_for(count: &Count, n: usize, since: std::time::Instant) -> Duration {
        while count.0.load(Ordering::SeqCst) < n {
            assert!(since.elapsed() < Duration::from_secs(5), "never woken");
            std::thread::yield_now();
        }
        since.elapsed()
    }

    #[test]
    fn it_wakes_once_at_the_deadline_in_real_time() {
        // Real time by nature: the alarm exists for when tokio's timers do
        // not run. Outside a runtime, tokio's clock is the real one.
        let woken = counter();
        let alarm = Alarm::new();
        alarm.register(&Waker::from(woken.clone()));
        // The clock starts before the deadline is computed, so an on-time ring can never
        // measure as early.
        let began = std::time::Instant::now();
        alarm.set(Instant::now() + Duration::from_millis(20));
        assert!(
            wait_for(&woken, 1, began) >= Duration::from_millis(20),
            "woken early"
        );
        // Rung once per `set`: a second ring needs a second deadline.
        alarm.set(Instant::now() + Duration::from_millis(5));
        wait_for(&woken, 2, std::time::Instant::now());
        assert_eq!(woken.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_earlier_deadline_set_later_rings_first_and_a_dropped_alarm_never_rings() {
        let (far, near, dropped) = (counter(), counter(), counter());
        let far_alarm = Alarm::new();
        far_alarm.register(&Waker::from(far.clone()));
        far_alarm.set(Instant::now() + Duration::from_secs(3600));
        let gone = Alarm::new();
        gone.register(&Waker::from(dropped.clone()));
        gone.set(Instant::now() + Duration::from_millis(10));
        drop(gone);
        let near_alarm = Alarm::new();
        near_alarm.register(&Waker::from(near.clone()));
        let began = std::time::Instant::now();
        near_alarm.set(Instant::now() + Duration::from_millis(30));
        let waited = wait_for(&near, 1, began);
        assert!(
            waited < Duration::from_secs(3),
            "the thread slept through it"
        );
        assert_eq!(dropped.0.load(Ordering::SeqCst), 0);
        assert_eq!(far.0.load(Ordering::SeqCst), 0);
        // A dropped alarm's waker is released at once, not kept by the thread.
        assert_eq!(Arc::strong_count(&dropped), 1);
    }
}
