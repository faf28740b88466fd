//! `max_in_flight`: the slots that bound how many async tasks of a set run
//! at once, and the spawns that wait for one.
//!
//! This is not the registry's admission (`registry.rs`), which decides
//! whether a task is tracked at all: a task spawned while the set is full is
//! tracked at once and waits, inside its own future, for its slot. Only
//! `spawn_waiting` waits before it spawns.
//!
//! The rules:
//!
//! 1. Slots are a fair tokio `Semaphore` of `max_in_flight` permits, never
//!    closed; without a limit there is no semaphore and every task runs at
//!    once.
//! 2. A task spawned while the set is full joins the semaphore's queue in
//!    the spawn call, not at its first poll (the scheduler polls new tasks in
//!    no set order, and a later `spawn_waiting` would queue first): slots go
//!    out in spawn order.
//! 3. A task frees its slot after its future is dropped and before it leaves
//!    the set (`tracked.rs`): whoever waits on the set sees the task fully
//!    gone.
//! 4. A waiting spawn (a reservation) gives up, and is rejected, as soon as
//!    the set closes or shutdown begins ([`InFlight::closed`]), even if a
//!    slot is free: a closed set accepts nothing new. It reads the set's
//!    phase after registering for the wake, so a close in between is not
//!    missed; a close undone by `reopen` before it reads leaves it waiting.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::{AcquireError, Notify, OwnedSemaphorePermit, Semaphore};

/// The `max_in_flight` limit of one set.
pub(super) struct InFlight {
    /// `None`: no limit.
    slots: Option<Arc<Semaphore>>,
    max: Option<usize>,
    /// Woken when the set closes or shutdown begins (rule 4). Not the set's
    /// public token: users may cancel that without closing the set.
    closing: Notify,
}

/// A task's claim on a slot.
pub(super) enum InFlightSlot {
    /// No limit, or the slot was freed.
    Free,
    /// Kept for its drop, which frees the slot.
    Held { _permit: OwnedSemaphorePermit },
    /// In the semaphore's queue (rule 2); boxed, since only a full set
    /// queues.
    Queued(QueuedSlot),
}

type QueuedSlot = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

impl InFlight {
    /// At most `max` tasks in flight (`None`: no limit). `max` is at least 1
    /// and at most `Semaphore::MAX_PERMITS` (the builder's checks).
    pub(super) fn new(max: Option<usize>) -> Self {
        InFlight {
            slots: max.map(|max| Arc::new(Semaphore::new(max))),
            max,
            closing: Notify::new(),
        }
    }

    pub(super) fn max(&self) -> Option<usize> {
        self.max
    }

    /// A slot for a task spawned now: free, held, or queued for (in order,
    /// behind earlier waiters: rule 2).
    pub(super) fn claim_now(&self) -> InFlightSlot {
        let Some(slots) = &self.slots else {
            return InFlightSlot::Free;
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return InFlightSlot::Held { _permit: permit };
        }
        let mut acquire: QueuedSlot = Box::pin(slots.clone().acquire_owned());
        // Polled once here to join the queue now; the task's first poll
        // replaces the waker.
        match acquire
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(acquired) => InFlightSlot::acquired(acquired),
            Poll::Pending => InFlightSlot::Queued(acquire),
        }
    }

    /// Waits for a slot, in order behind earlier waiters; `None` once the
    /// set is closed (`is_open` reads `false`: rule 4). `Some(None)`: no
    /// limit, no slot needed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, it leaves the queue and holds no
    /// slot.
    pub(super) async fn wait_for_slot(
        &self,
        is_open: impl Fn() -> bool,
    ) -> Option<Option<OwnedSemaphorePermit>> {
        if !is_open() {
            return None;
        }
        let Some(slots) = &self.slots else {
            return Some(None);
        };
        // Free slots exist only while nobody queues (the semaphore is
        // fair): taking one does not jump the queue.
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Some(Some(permit));
        }
        let mut acquire = pin!(slots.clone().acquire_owned());
        loop {
            let mut closing = pin!(self.closing.notified());
            // Registered before the phase is read: a close in between wakes
            // it.
            closing.as_mut().enable();
            if !is_open() {
                return None;
            }
            let acquired = poll_fn(|cx| {
                if closing.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                acquire.as_mut().poll(cx).map(Some)
            })
            .await;
            match acquired {
                Some(Ok(permit)) => return Some(Some(permit)),
                // The semaphore is never closed (rule 1); run rather than
                // lose work.
                Some(Err(_)) => return Some(None),
                // Closed, or closed and reopened already: read it again.
                None => {}
            }
        }
    }

    /// The set closed or shutdown began: waiting spawns give up (rule 4).
    pub(super) fn closed(&self) {
        self.closing.notify_waiters();
    }
}

impl InFlightSlot {
    /// The slot a reservation holds (`None`: no limit).
    pub(super) fn reserved(permit: Option<OwnedSemaphorePermit>) -> Self {
        match permit {
            Some(permit) => InFlightSlot::Held { _permit: permit },
            None => InFlightSlot::Free,
        }
    }

    fn acquired(acquired: Result<OwnedSemaphorePermit, AcquireError>) -> Self {
        match acquired {
            Ok(permit) => InFlightSlot::Held { _permit: permit },
            // The semaphore is never closed (rule 1); run rather than lose
            // work.
            Err(_) => InFlightSlot::Free,
        }
    }

    /// Ready once the task holds its slot (or needs none).
    #[inline]
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let InFlightSlot::Queued(acquire) = self {
            let acquired = std::task::ready!(acquire.as_mut().poll(cx));
            *self = InFlightSlot::acquired(acquired);
        }
        Poll::Ready(())
    }

    /// Frees the slot (rule 3).
    #[inline]
    pub(super) fn free(&mut self) {
        *self = InFlightSlot::Free;
    }
}
