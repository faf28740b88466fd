//! The waker a source is polled with once it has returned `Pending`.
//!
//! The idle clock stops when the source *wakes* its task, not when the
//! consumer comes back: to see the wake, the source holds a waker of ours.
//! It records when the source first woke and passes the wake on to the
//! consumer's task. The source may wake it from any thread, at any time,
//! even after the watch ended; the monitor reads it before and after each
//! poll.
//!
//! # Invariants
//!
//! 1. `consumer` is the waker of the task that last waited on the source,
//!    given at its latest `Pending`. It is replaced only by a waker that
//!    would not wake the same task, and it is taken out when the watch ends
//!    (when [`Wakes`] drops): a source, or a registration of it, that
//!    outlives the watchdog keeps no reference to the consumer's task
//!    through us.
//! 2. A wake reaches the consumer registered at that moment, if any. A wake
//!    that finds none (before the first registration, after the end) is
//!    only recorded. Our own nudge (new limits) wakes the consumer directly
//!    and records nothing: only the source's wake ends a wait.
//! 3. `woken_at` is the first wake since it was last taken: later wakes
//!    leave it. It is taken before each poll of a waiting source (the wait
//!    ended then) and right after each `Pending` (a wake during the poll,
//!    which does not end the wait).
//!
//! # Deadlock safety
//!
//! One mutex, held only to read or write its two fields. No waker is woken
//! or dropped while it is held, so no user code runs under it: the only
//! waker calls under the lock are `clone` and `will_wake` on the consumer's
//! waker, which never wake a task (and our own waker's `clone` is an `Arc`
//! increment that does not reach this slot).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

use tokio::time::Instant;

/// Our waker and its state, built once per watchdog on its first `Pending`.
#[derive(Debug)]
pub(super) struct Wakes {
    state: Arc<WakeState>,
    waker: Waker,
}

#[derive(Debug, Default)]
struct WakeState {
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The consumer's waker from the last `Pending` (invariant 1).
    consumer: Option<Waker>,
    /// When the source first woke us since this was last taken (invariant 3).
    woken_at: Option<Instant>,
}

impl WakeState {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        crate::sync::lock(&self.slot)
    }
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let consumer = {
            let mut slot = self.lock();
            if slot.woken_at.is_none() {
                slot.woken_at = Some(Instant::now());
            }
            slot.consumer.clone()
        };
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }
}

impl Wakes {
    #[cold]
    pub(super) fn new() -> Self {
        let state = Arc::new(WakeState::default());
        let waker = Waker::from(state.clone());
        Wakes { state, waker }
    }

    /// The waker to poll the source with.
    #[inline]
    pub(super) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// When the source first woke us since the last call, if it did.
    pub(super) fn take_woken(&self) -> Option<Instant> {
        self.state.lock().woken_at.take()
    }

    /// After a `Pending`: hands our waker the consumer's, for the wait that
    /// goes on.
    pub(super) fn register(&self, cx: &Context<'_>) {
        let (replaced, woke_during_poll) = {
            let mut slot = self.state.lock();
            let replaced = if slot
                .consumer
                .as_ref()
                .is_some_and(|consumer| consumer.will_wake(cx.waker()))
            {
                None
            } else {
                slot.consumer.replace(cx.waker().clone())
            };
            (replaced, slot.woken_at.take().is_some())
        };
        drop(replaced);
        if woke_during_poll {
            // Woken while being polled (or by a stale registration): the
            // source answered `Pending` after that, so the wait goes on, but
            // the wake went to a waker that may be stale: poll again.
            cx.waker().wake_by_ref();
        }
    }

    /// Wakes the task waiting on the source, without taking its waker and
    /// without recording a wake: the source did not wake, so its wait goes
    /// on (new limits, whose earlier deadline the task's next poll aims the
    /// timer at).
    pub(super) fn nudge_consumer(&self) {
        let consumer = self.state.lock().consumer.clone();
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }

    /// Wakes the task that last waited (the other half of a split
    /// `IoWatchdog`, after a stall dropped the connection it waited on).
    pub(super) fn wake_consumer(&self) {
        let consumer = self.state.lock().consumer.take();
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        // Invariant 1; the waker is dropped after the lock is released.
        let consumer = self.state.lock().consumer.take();
        drop(consumer);
    }
}
