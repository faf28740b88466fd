//! The state behind a `TaskSet`: the task registry on tokio, the set's
//! tokens and `max_in_flight` gate, and the `Guard` every task holds.

use std::borrow::Cow;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::registry::{Outcome, Registry, Runtime};
use super::tracked::{Slot, WaitingSlot};

/// The registry's runtime in the crate: tokio.
pub(super) struct Tokio;

impl Runtime for Tokio {
    type Abort = AbortHandle;
    type Idle = Notify;

    fn abort(task: &AbortHandle) {
        task.abort();
    }

    fn wake_idle(idle: &Notify) {
        idle.notify_waiters();
    }

    fn now() -> Instant {
        Instant::now()
    }
}

// `repr(C)` with the registry first keeps its three hot counters on the
// same cache line as the `Arc`'s reference count, which every spawn and
// every task end touch anyway: one line moves between cores per task
// instead of three.
#[repr(C)]
pub(super) struct Shared {
    pub(super) registry: Registry<Tokio>,
    /// Given to tasks; cancelled when shutdown begins or the set is dropped.
    pub(super) token: CancellationToken,
    /// Internal: wakes `spawn_waiting` callers when shutdown begins (users
    /// may cancel the public token without closing the set).
    pub(super) closing: CancellationToken,
    pub(super) semaphore: Option<Arc<Semaphore>>,
    pub(super) max_in_flight: Option<usize>,
    pub(super) abort_wait: Duration,
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
            shared.registry.finish(self.id, outcome);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.complete(Outcome::Aborted);
    }
}

impl Shared {
    pub(super) fn new(
        token: CancellationToken,
        max_in_flight: Option<usize>,
        max_kept_failures: usize,
        abort_wait: Duration,
    ) -> Self {
        Shared {
            registry: Registry::new(max_kept_failures),
            token,
            closing: CancellationToken::new(),
            semaphore: max_in_flight.map(|limit| Arc::new(Semaphore::new(limit))),
            max_in_flight,
            abort_wait,
        }
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

    /// Admits a task about to be spawned (tracked and visible from now on),
    /// or counts a rejection once the set is closed.
    pub(super) fn admit(
        self: &Arc<Self>,
        label: Cow<'static, str>,
        started: Instant,
        blocking: bool,
    ) -> Option<Guard> {
        let id = self.registry.admit(label, started, blocking)?;
        Some(Guard {
            shared: Some(Arc::clone(self)),
            id,
        })
    }

    /// Stops admitting tasks and tells tasks and waiting spawns.
    pub(super) fn close(&self) {
        self.registry.close();
        self.closing.cancel();
        self.token.cancel();
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let mut notified = pin!(self.registry.idle().notified());
            notified.as_mut().enable();
            if self.registry.len() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn spawning_outside_a_runtime_panics_without_leaving_a_reservation() {
        use std::panic::AssertUnwindSafe;
        let set = crate::TaskSet::new();
        let spawned =
            std::panic::catch_unwind(AssertUnwindSafe(|| set.spawn("no runtime", async {})));
        assert!(spawned.is_err());
        assert_eq!(set.len(), 0);
        assert_eq!(set.counts().spawned, 0);
        assert!(set.running().is_empty());
    }
}
