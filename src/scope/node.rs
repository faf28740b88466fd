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
//!   `Sleep`, armed on first use inside a runtime and polled once with a waker that marks
//!   the deadline as fired and cancels the node's token (which reaches every descendant
//!   through the token tree, and this node's signal through the bridge).
//! - **The cause is decided once.** When a signal is interrupted it records why, walking
//!   the chain of enclosing deadline owners; later events never rewrite it.
//! - **Nothing outlives the node, and nothing chains.** The timer and the bridge are owned
//!   by the node, and their wakers hold only the signal and the token, never the node. A
//!   node links to no parent; a node that inherits a deadline links to the one node that
//!   owns it, and a signal to the signal of the next enclosing deadline owner (dropped
//!   iteratively, so a long chain cannot overflow the stack).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::task::Unconstrained;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Interrupted;
use crate::sync::lock;

/// Where a node's effective deadline comes from.
#[derive(Debug)]
pub(crate) enum Deadline {
    None,
    /// This node set the deadline and owns its timer.
    Own(OwnDeadline),
    /// Another node owns the deadline (and its timer).
    Inherited(Arc<Node>),
}

pub(crate) struct OwnDeadline {
    at: Instant,
    /// Whether a live timer is registered. Shared with the timer's waker, which clears it
    /// when the timer is woken early (its runtime shut down), so the next use re-arms.
    armed: Arc<AtomicBool>,
    timer: Mutex<Option<Pin<Box<Unconstrained<Sleep>>>>>,
}

impl std::fmt::Debug for OwnDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnDeadline")
            .field("at", &self.at)
            .field("armed", &self.armed.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) token: CancellationToken,
    pub(crate) signal: Arc<Signal>,
    pub(crate) deadline: Deadline,
    /// Keeps the bridge registered for as long as the node lives; never polled again.
    _bridge: Mutex<Option<Pin<Box<WaitForCancellationFutureOwned>>>>,
}

impl Node {
    /// A node without a deadline of its own. `inherited` is the node owning the deadline
    /// that binds it, if any.
    pub(crate) fn new(token: CancellationToken, inherited: Option<Arc<Node>>) -> Arc<Node> {
        let outer = inherited.as_ref().map(|owner| owner.signal.clone());
        let deadline = match inherited {
            Some(owner) => Deadline::Inherited(owner),
            None => Deadline::None,
        };
        Node::build(token, deadline, Signal::new(None, outer))
    }

    /// A node owning the deadline `at`, inside the deadline owned by `outer` (if any).
    pub(crate) fn with_deadline(
        token: CancellationToken,
        at: Instant,
        budget: Duration,
        outer: Option<&Arc<Node>>,
    ) -> Arc<Node> {
        let deadline = Deadline::Own(OwnDeadline {
            at,
            armed: Arc::new(AtomicBool::new(false)),
            timer: Mutex::new(None),
        });
        let signal = Signal::new(Some((at, budget)), outer.map(|o| o.signal.clone()));
        let node = Node::build(token, deadline, signal);
        if at <= Instant::now() {
            // Already passed: interrupted from the start, nothing in it ever starts.
            node.fire_deadline();
        }
        node
    }

    fn build(token: CancellationToken, deadline: Deadline, signal: Signal) -> Arc<Node> {
        let signal = Arc::new(signal);
        let mut bridge = Box::pin(token.clone().cancelled_owned());
        let waker = Waker::from(Arc::new(BridgeWake(signal.clone())));
        let bridge = match bridge.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(()) => {
                signal.interrupt();
                None
            }
            Poll::Pending => Some(bridge),
        };
        Arc::new(Node {
            token,
            signal,
            deadline,
            _bridge: Mutex::new(bridge),
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
    pub(crate) fn deadline_owner(self: &Arc<Self>) -> Option<&Arc<Node>> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(_) => Some(self),
            Deadline::Inherited(owner) => Some(owner),
        }
    }

    /// Makes sure the deadline that governs this node has a live timer. Called on first
    /// use inside a runtime (first poll, `token()`); one atomic load once armed.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
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
            armed: own.armed.clone(),
            at: own.at,
        }));
        // Set before polling: the waker may run (and clear it) as soon as it is registered.
        own.armed.store(true, Ordering::Relaxed);
        let fired = sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        // Replacing a timer of a runtime that shut down drops it here, unregistered.
        let old = timer.replace(sleep);
        drop(timer);
        drop(old);
        if fired {
            self.fire_deadline();
        }
    }

    /// Marks this node's own deadline as passed and cancels its token: the bridge then
    /// interrupts this node, and the token tree every descendant. A node already
    /// interrupted keeps the cause it has.
    pub(crate) fn fire_deadline(&self) {
        fire(&self.signal, &self.token);
    }

    /// Interrupts the node if its deadline has passed by the clock, even if the timer has
    /// not run yet (for the synchronous `check`).
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
    pub(crate) fn cause(&self) -> Interrupted {
        self.signal.cause()
    }
}

fn fire(signal: &Signal, token: &CancellationToken) {
    if signal.is_interrupted() {
        return;
    }
    signal.deadline_fired.store(true, Ordering::Release);
    token.cancel();
}

/// Wakes guarded futures when their node is interrupted.
#[derive(Debug)]
pub(crate) struct Signal {
    /// Set once, under the waiters lock, after `cause` is set. Read without the lock on
    /// fast paths; Acquire pairs with the Release in `interrupt`.
    interrupted: AtomicBool,
    /// Set before the token is cancelled when this node's own deadline passes.
    deadline_fired: AtomicBool,
    /// This node's own deadline and the budget it allowed, if it owns one.
    own: Option<(Instant, Duration)>,
    /// The signal of the next enclosing deadline owner.
    outer: Option<Arc<Signal>>,
    cause: OnceLock<Interrupted>,
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
    fn new(own: Option<(Instant, Duration)>, outer: Option<Arc<Signal>>) -> Signal {
        Signal {
            interrupted: AtomicBool::new(false),
            deadline_fired: AtomicBool::new(false),
            own,
            outer,
            cause: OnceLock::new(),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Acquire)
    }

    pub(crate) fn cause(&self) -> Interrupted {
        self.cause
            .get()
            .cloned()
            .unwrap_or_else(Interrupted::cancelled)
    }

    /// Why the token was cancelled, decided now: this node's deadline if it fired, else
    /// the nearest enclosing deadline that fired (each marks itself before cancelling),
    /// else a cancel.
    fn decide_cause(&self) -> Interrupted {
        if self.deadline_fired.load(Ordering::Acquire) {
            if let Some((at, budget)) = self.own {
                return Interrupted::deadline(false, at, budget);
            }
        }
        let mut next = self.outer.as_deref();
        while let Some(signal) = next {
            if signal.deadline_fired.load(Ordering::Acquire) {
                if let Some((at, budget)) = signal.own {
                    return Interrupted::deadline(true, at, budget);
                }
            }
            next = signal.outer.as_deref();
        }
        Interrupted::cancelled()
    }

    fn interrupt(&self) {
        let slots = {
            let mut waiters = lock(&self.waiters);
            if self.interrupted.load(Ordering::Relaxed) {
                return;
            }
            let _ = self.cause.set(self.decide_cause());
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
    ///
    /// Wakers are cloned and dropped outside the lock: both may run arbitrary code.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) -> bool {
        if let Some(k) = *key {
            let waiters = lock(&self.waiters);
            if self.interrupted.load(Ordering::Relaxed) {
                *key = None;
                return false;
            }
            if waiters.slots[k]
                .as_ref()
                .is_some_and(|w| w.will_wake(waker))
            {
                return true;
            }
        }
        let new = waker.clone();
        let old = {
            let mut waiters = lock(&self.waiters);
            if self.interrupted.load(Ordering::Relaxed) {
                *key = None;
                return false;
            }
            match *key {
                Some(k) => waiters.slots[k].replace(new),
                None => {
                    waiters.live += 1;
                    let k = match waiters.free.pop() {
                        Some(k) => {
                            waiters.slots[k] = Some(new);
                            k
                        }
                        None => {
                            waiters.slots.push(Some(new));
                            waiters.slots.len() - 1
                        }
                    };
                    *key = Some(k);
                    None
                }
            }
        };
        drop(old);
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
        drop(waker);
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        // Unlink the chain of enclosing signals one by one instead of recursively.
        let mut next = self.outer.take();
        while let Some(signal) = next {
            next = Arc::into_inner(signal).and_then(|mut s| s.outer.take());
        }
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
    armed: Arc<AtomicBool>,
    at: Instant,
}

impl TimerWake {
    fn fire(&self) {
        if Instant::now() >= self.at {
            fire(&self.signal, &self.token);
        } else {
            // Woken before the deadline: the timer's runtime is shutting down. Let the
            // next use re-arm the deadline wherever it runs.
            self.armed.store(false, Ordering::Relaxed);
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
