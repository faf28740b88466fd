//! The shared state behind a [`CancelScope`](super::CancelScope).
//!
//! Every scope level is one `Node`: a cancellation token, an optional deadline, and a
//! `Signal` that guarded futures wait on. The design keeps the per-await cost to one
//! registration in the signal's waiter slab:
//!
//! - **One bridge per node, not per await.** The node's token may be cancelled by anyone
//!   (our `cancel`, a parent token, the token a scope was built from). A single
//!   `cancelled_owned()` future per node, polled once with a waker that interrupts the
//!   signal, forwards all of them. Guarded futures never clone or poll the token.
//! - **One timer per deadline, not per await.** A node that owns a deadline holds one
//!   `Sleep`, polled once with a waker that marks the deadline as fired and cancels the
//!   node's token (which reaches every descendant through the token tree, and this
//!   node's signal through the bridge).
//! - **Nothing outlives the node.** The timer and the bridge are owned by the node, and
//!   their wakers hold only the signal and the token, never the node: dropping the last
//!   scope handle and the last guarded future drops the node, which deregisters its timer
//!   entry and its bridge waiter. No cycles, no spawned helpers.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::task::Unconstrained;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Interrupted;

/// Locks a mutex whose critical sections cannot leave the data inconsistent: none of them
/// runs user code or can panic half way, so a poisoned lock is still sound to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a node's effective deadline comes from.
#[derive(Debug)]
pub(crate) enum Deadline {
    None,
    /// This node set the deadline and owns its timer.
    Own(OwnDeadline),
    /// An ancestor owns the deadline (and its timer).
    Inherited(Arc<Node>),
}

pub(crate) struct OwnDeadline {
    pub(crate) at: Instant,
    /// The time the deadline allowed when it was set, for error messages.
    pub(crate) budget: Duration,
    /// Whether the timer has been created and registered (fast path of `ensure_armed`).
    armed: AtomicBool,
    timer: Mutex<Option<Pin<Box<Unconstrained<Sleep>>>>>,
}

impl std::fmt::Debug for OwnDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnDeadline")
            .field("at", &self.at)
            .field("budget", &self.budget)
            .field("armed", &self.armed.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) token: CancellationToken,
    pub(crate) signal: Arc<Signal>,
    pub(crate) deadline: Deadline,
    pub(crate) parent: Option<Arc<Node>>,
    /// Keeps the bridge registered for as long as the node lives; never polled again.
    _bridge: Mutex<Option<Pin<Box<WaitForCancellationFutureOwned>>>>,
}

impl Node {
    pub(crate) fn new(
        token: CancellationToken,
        deadline: Deadline,
        parent: Option<Arc<Node>>,
    ) -> Arc<Node> {
        let signal = Arc::new(Signal::default());
        let mut bridge = Box::pin(token.clone().cancelled_owned());
        let waker = Waker::from(Arc::new(BridgeWake(signal.clone())));
        let bridge = match bridge.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(()) => {
                signal.interrupt();
                None
            }
            Poll::Pending => Some(bridge),
        };
        let node = Arc::new(Node {
            token,
            signal,
            deadline,
            parent,
            _bridge: Mutex::new(bridge),
        });
        if let Deadline::Own(own) = &node.deadline {
            if own.at <= Instant::now() {
                // A deadline that has already passed interrupts at once: nothing started
                // in this scope gets polled.
                node.fire_deadline();
            } else if tokio::runtime::Handle::try_current().is_ok() {
                // Arm now, so that the token handed out by `token()` is cancelled at the
                // deadline even if nothing in the scope is ever polled.
                node.arm(own);
            }
        }
        node
    }

    pub(crate) fn own_deadline(at: Instant, budget: Duration) -> Deadline {
        Deadline::Own(OwnDeadline {
            at,
            budget,
            armed: AtomicBool::new(false),
            timer: Mutex::new(None),
        })
    }

    /// The effective deadline of this node, own or inherited.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(own) => Some(own.at),
            Deadline::Inherited(owner) => owner.deadline_at(),
        }
    }

    /// The node that owns the effective deadline (possibly `self`).
    fn deadline_owner(self: &Arc<Self>) -> Option<&Arc<Node>> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(_) => Some(self),
            Deadline::Inherited(owner) => Some(owner),
        }
    }

    /// Makes sure the deadline that governs this node has a registered timer. Scopes built
    /// inside a runtime are armed when built; this covers scopes built outside one, on the
    /// first poll of anything in them. One atomic load once armed.
    pub(crate) fn ensure_armed(self: &Arc<Self>) {
        if let Some(owner) = self.deadline_owner() {
            if let Deadline::Own(own) = &owner.deadline {
                // Relaxed: a stale `false` only sends us to the lock, which decides.
                if !own.armed.load(Ordering::Relaxed) {
                    owner.arm(own);
                }
            }
        }
    }

    fn arm(&self, own: &OwnDeadline) {
        let mut timer = lock(&own.timer);
        if own.armed.load(Ordering::Relaxed) || self.signal.is_interrupted() {
            return;
        }
        if own.at <= Instant::now() {
            drop(timer);
            self.fire_deadline();
            return;
        }
        // Unconstrained: the first poll must register the timer even when the calling
        // task has spent its cooperative budget.
        let mut sleep = Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(own.at)));
        let waker = Waker::from(Arc::new(TimerWake {
            signal: self.signal.clone(),
            token: self.token.clone(),
            at: own.at,
        }));
        match sleep.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(()) => {
                drop(timer);
                self.fire_deadline();
            }
            Poll::Pending => {
                *timer = Some(sleep);
                own.armed.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Marks this node's own deadline as passed and cancels its token: the bridge then
    /// interrupts this node, and the token tree every descendant.
    pub(crate) fn fire_deadline(&self) {
        self.signal.deadline_fired.store(true, Ordering::Release);
        self.token.cancel();
    }

    /// Interrupts the node if its deadline has passed by the clock, even if the timer has
    /// not fired yet (used by the synchronous `check`).
    pub(crate) fn check_deadline_now(self: &Arc<Self>) {
        if let Some(owner) = self.deadline_owner() {
            if let Deadline::Own(own) = &owner.deadline {
                if !owner.signal.is_interrupted() && own.at <= Instant::now() {
                    owner.fire_deadline();
                }
            }
        }
    }

    /// Why this node was interrupted. Only meaningful once it has been.
    ///
    /// A deadline marks its node before cancelling the token, so a walk up the ancestors
    /// finds the deadline that caused the cancellation; if none fired, it was a cancel.
    pub(crate) fn cause(&self) -> Interrupted {
        let mut node = self;
        let mut inherited = false;
        loop {
            if node.signal.deadline_fired.load(Ordering::Acquire) {
                if let Deadline::Own(own) = &node.deadline {
                    return Interrupted::deadline(inherited, own.at, own.budget);
                }
            }
            match &node.parent {
                Some(parent) => {
                    node = parent;
                    inherited = true;
                }
                None => return Interrupted::cancelled(),
            }
        }
    }
}

/// Wakes guarded futures when their node is interrupted.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    /// Set once, under the waiters lock, when the node is interrupted. Read without the
    /// lock on fast paths; Acquire pairs with the Release in `interrupt`.
    interrupted: AtomicBool,
    /// Set before the token is cancelled when this node's own deadline passes.
    deadline_fired: AtomicBool,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
    live: usize,
}

/// Past this many slots, an empty slab gives its memory back.
const KEEP_SLOTS: usize = 64;

impl Signal {
    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }

    fn interrupt(&self) {
        let slots = {
            let mut waiters = lock(&self.waiters);
            if self.interrupted.load(Ordering::Relaxed) {
                return;
            }
            self.interrupted.store(true, Ordering::Release);
            waiters.free = Vec::new();
            waiters.live = 0;
            std::mem::take(&mut waiters.slots)
        };
        // Wake outside the lock: a woken task may run (and deregister) on another thread.
        for waker in slots.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Registers (or refreshes) `waker` under `key`. Returns `false` if the node is
    /// already interrupted, in which case nothing is registered.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) -> bool {
        let mut waiters = lock(&self.waiters);
        if self.interrupted.load(Ordering::Relaxed) {
            *key = None;
            return false;
        }
        match *key {
            Some(k) => {
                let slot = &mut waiters.slots[k];
                if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *slot = Some(waker.clone());
                }
            }
            None => {
                waiters.live += 1;
                let k = match waiters.free.pop() {
                    Some(k) => {
                        waiters.slots[k] = Some(waker.clone());
                        k
                    }
                    None => {
                        waiters.slots.push(Some(waker.clone()));
                        waiters.slots.len() - 1
                    }
                };
                *key = Some(k);
            }
        }
        true
    }

    pub(crate) fn deregister(&self, key: usize) {
        let waker = {
            let mut waiters = lock(&self.waiters);
            if self.interrupted.load(Ordering::Relaxed) {
                // `interrupt` already took every slot.
                return;
            }
            let waker = waiters.slots[key].take();
            waiters.live -= 1;
            if waiters.live == 0 && waiters.slots.capacity() > KEEP_SLOTS {
                waiters.slots = Vec::new();
                waiters.free = Vec::new();
            } else {
                waiters.free.push(key);
            }
            waker
        };
        // Dropped outside the lock: dropping a waker may run arbitrary code.
        drop(waker);
    }
}

/// Forwards the node token's cancellation to the node's signal.
struct BridgeWake(Arc<Signal>);

impl Wake for BridgeWake {
    fn wake(self: Arc<Self>) {
        self.0.interrupt();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.interrupt();
    }
}

/// Fires a node's own deadline from tokio's timer.
struct TimerWake {
    signal: Arc<Signal>,
    token: CancellationToken,
    at: Instant,
}

impl TimerWake {
    fn fire(&self) {
        // The timer also wakes its entry when the runtime shuts down; that is not the
        // deadline passing, so it must not be reported as one.
        if Instant::now() >= self.at {
            self.signal.deadline_fired.store(true, Ordering::Release);
            self.token.cancel();
        }
    }
}

impl Wake for TimerWake {
    fn wake(self: Arc<Self>) {
        self.fire();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fire();
    }
}
