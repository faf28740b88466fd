//! The shared state behind a [`CancelScope`](super::CancelScope).
//!
//! Every scope level is one `Node`: an optional deadline and a [`Signal`], its place in
//! the scope tree (`signal.rs` holds the protocol and its invariants).
//!
//! # Why hangfree propagates interrupts itself
//!
//! A scope must never read as running once anything has seen it, or a scope inside it,
//! interrupted. If scopes followed each other through tokio-util's token tree (a child's
//! token a `child_token` of its parent's), a cancel would reach a child's waiters before
//! the parent noticed: tokio-util marks and wakes the tokens of a tree in an order it
//! does not promise. So the tree is hangfree's own, and an interrupt **marks before it
//! wakes**: it sets the node's cause and phase, then its descendants', parent before
//! child, and only then cancels tokens and wakes waiters, outside every lock. A waiter
//! woken anywhere below therefore finds every scope up to the interrupted one marked.
//!
//! Cancels that come from outside (`scope.token().cancel()`, the token given to
//! `from_token`) reach a node through a bridge (a waker on that token). Code woken by the
//! same token may run before the bridge, so the reads of such a node (`is_cancelled`,
//! `check`, a guarded future's first poll) look at the token too and mark the node
//! themselves. Only those nodes pay for that: the others read one atomic.
//!
//! tokio-util's tree still has one job: each node keeps an internal token, a child of its
//! parent's, which hangfree cancels only after marking. The tokens handed out by
//! `token()` are its children, so they are cancelled with the scope and, when the scope
//! is dropped but a token is not, with the nearest ancestor that lives (tokio-util's
//! pruning keeps track of that, as hangfree cannot count a token's clones).
//!
//! One order remains tokio-util's. Under a `from_token` scope the internal chain starts
//! at the given token, so that the given token still reaches tokens handed out below
//! after all their scopes are dropped. Its cancel can therefore cancel a token handed
//! out by a scope *below* the `from_token` scope before any bridge has run. That scope's
//! reads notice it (they look at their own token), and the `from_token` scope's reads
//! look at the given token, which must then read cancelled too. tokio-util 0.7.20
//! guarantees that (`cancel` holds the given token's lock until it is marked, and
//! `is_cancelled` takes it); a tokio-util whose `is_cancelled` may read a parent
//! uncancelled after one of its children reads cancelled would reopen this one case.
//!
//! The costs stay where they were: one waiter registration per guarded await, one clock
//! read on its first poll when there is a deadline, and one timer per deadline:
//!
//! - **One timer per deadline, not per await.** A node that owns a deadline holds one
//!   `Sleep`, armed on first use inside a runtime, whose waker interrupts the node (and
//!   so the subtree) when it fires. If it is woken early, its runtime is shutting down:
//!   a real-time [`Alarm`] takes over (and the next use re-arms on a live runtime).
//! - **Nothing outlives the node, and nothing chains.** Timer, alarm and bridges are
//!   owned by the node, and their wakers hold only weak references or the signal. A
//!   dropped node leaves the tree, its children moving up to its parent, so a re-bound
//!   `scope = scope.child()` stays flat; a node that inherits a deadline links to the
//!   one node that owns it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::task::Unconstrained;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::Interrupted;
use super::signal::Signal;
use crate::alarm::Alarm;
use crate::sync::lock;

type ScopeSignal = Signal<CancellationToken>;

/// Where a node's effective deadline comes from.
#[derive(Debug)]
pub(crate) enum Deadline {
    None,
    /// This node set the deadline and owns its timer.
    Own(OwnDeadline),
    /// Another node, an ancestor, owns the deadline (and its timer).
    Inherited(Arc<Node>),
}

pub(crate) struct OwnDeadline {
    fire: Arc<Fire>,
    timer: Mutex<Option<Pin<Box<Unconstrained<Sleep>>>>>,
}

/// What the timer's and the alarm's wakers need to fire a deadline. Owned by the node's
/// `OwnDeadline`; the wakers hold it weakly, so a dropped scope takes its alarm entry with
/// it.
struct Fire {
    at: Instant,
    budget: Duration,
    signal: ScopeSignal,
    /// Whether a live timer is registered. Cleared when the timer is woken early (its
    /// runtime shut down), so the next use re-arms.
    armed: AtomicBool,
    /// The real-time backstop, set once a timer was woken early.
    alarm: Mutex<Option<Alarm>>,
}

impl Fire {
    fn fire(&self) {
        self.signal
            .interrupt(Interrupted::deadline(false, self.at, self.budget));
    }

    /// Fires if the clock says so. Outside a runtime (the alarm thread) tokio's clock is
    /// the real one.
    fn fire_if_due(self: &Arc<Self>) -> bool {
        let due = Instant::now() >= self.at;
        if due {
            self.fire();
        }
        due
    }

    /// Makes the alarm ring at the deadline and fire it.
    fn set_alarm(self: &Arc<Self>) {
        let waker = Waker::from(Arc::new(AlarmWake(Arc::downgrade(self))));
        let mut alarm = lock(&self.alarm);
        let alarm = alarm.get_or_insert_with(Alarm::new);
        alarm.register(&waker);
        alarm.set(self.at);
    }
}

impl std::fmt::Debug for OwnDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnDeadline")
            .field("at", &self.fire.at)
            .field("armed", &self.fire.armed.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) signal: ScopeSignal,
    pub(crate) deadline: Deadline,
}

impl Node {
    /// A root scope.
    pub(crate) fn root() -> Arc<Node> {
        Arc::new(Node {
            signal: Signal::root(),
            deadline: Deadline::None,
        })
    }

    /// A root scope interrupted when `token` is cancelled.
    pub(crate) fn from_token(token: &CancellationToken) -> Arc<Node> {
        Arc::new(Node {
            signal: Signal::from_token(token),
            deadline: Deadline::None,
        })
    }

    /// A child of `parent` bound by the parent's deadline, if any.
    pub(crate) fn child(parent: &Arc<Node>) -> Arc<Node> {
        let deadline = match parent.deadline_owner() {
            Some(owner) => Deadline::Inherited(owner.clone()),
            None => Deadline::None,
        };
        Arc::new(Node {
            signal: Signal::child(&parent.signal),
            deadline,
        })
    }

    /// A child of `parent` owning the deadline `at`.
    pub(crate) fn with_deadline(parent: &Arc<Node>, at: Instant, budget: Duration) -> Arc<Node> {
        let signal = Signal::child(&parent.signal);
        let fire = Arc::new(Fire {
            at,
            budget,
            signal: signal.clone(),
            armed: AtomicBool::new(false),
            alarm: Mutex::new(None),
        });
        let node = Arc::new(Node {
            signal,
            deadline: Deadline::Own(OwnDeadline {
                fire,
                timer: Mutex::new(None),
            }),
        });
        if at <= Instant::now() {
            // Already passed: interrupted from the start, nothing in it ever starts.
            node.fire_deadline();
        }
        node
    }

    /// The effective deadline of this node, own or inherited.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(own) => Some(own.fire.at),
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

    fn own_deadline(self: &Arc<Self>) -> Option<(&Arc<Node>, &OwnDeadline)> {
        let owner = self.deadline_owner()?;
        match &owner.deadline {
            Deadline::Own(own) => Some((owner, own)),
            _ => None,
        }
    }

    /// Makes sure the deadline that governs this node has a live timer. Called on first
    /// use inside a runtime (first poll, `token()`); one atomic load once armed.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
    pub(crate) fn ensure_armed(self: &Arc<Self>) {
        if let Some((owner, own)) = self.own_deadline() {
            // Relaxed: a stale `false` only sends us to the lock, which decides.
            if !own.fire.armed.load(Ordering::Relaxed) {
                owner.arm(own);
            }
        }
    }

    fn arm(self: &Arc<Self>, own: &OwnDeadline) {
        let fire = &own.fire;
        let mut timer = lock(&own.timer);
        if fire.armed.load(Ordering::Relaxed) || self.signal.is_interrupted() {
            return;
        }
        if fire.at <= Instant::now() {
            drop(timer);
            fire.fire();
            return;
        }
        // Unconstrained: the first poll must register the timer even when the calling
        // task has spent its cooperative budget.
        let mut sleep = Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(
            fire.at,
        )));
        let waker = Waker::from(Arc::new(TimerWake(Arc::downgrade(fire))));
        // Set before polling: the waker may run (and clear it) as soon as it is registered.
        fire.armed.store(true, Ordering::Relaxed);
        let fired = sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        // Replacing a timer of a runtime that shut down drops it here, unregistered.
        let old = timer.replace(sleep);
        drop(timer);
        drop(old);
        if fired {
            fire.fire();
        }
    }

    /// Interrupts this node with its own deadline as the cause (and its subtree with it,
    /// inherited). A node already interrupted keeps the cause it has.
    pub(crate) fn fire_deadline(self: &Arc<Self>) {
        if let Deadline::Own(own) = &self.deadline {
            own.fire.fire();
        }
    }

    /// `Err` once the node is interrupted, or its deadline has passed by the clock even
    /// if no timer has run (the deadline is then fired here).
    pub(crate) fn check(self: &Arc<Self>) -> Result<(), Interrupted> {
        if !self.signal.is_interrupted() {
            if let Some((owner, own)) = self.own_deadline() {
                if own.fire.at <= Instant::now() {
                    owner.fire_deadline();
                }
            }
        }
        if self.signal.is_interrupted() {
            Err(self.signal.cause())
        } else {
            Ok(())
        }
    }

    /// Why this node was interrupted. Only meaningful once it has been.
    pub(crate) fn cause(&self) -> Interrupted {
        self.signal.cause()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal.release();
    }
}

/// Fires a node's own deadline from tokio's timer.
struct TimerWake(Weak<Fire>);

impl TimerWake {
    fn fire(&self) {
        let Some(fire) = self.0.upgrade() else {
            return;
        };
        if !fire.fire_if_due() {
            // Woken before the deadline: the timer's runtime is shutting down, and this
            // timer will never fire. Waits elsewhere still need the deadline: the alarm
            // delivers it in real time, and the next use re-arms on a live runtime.
            fire.armed.store(false, Ordering::Relaxed);
            fire.set_alarm();
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

/// Fires a node's own deadline from the real-time alarm thread.
struct AlarmWake(Weak<Fire>);

impl AlarmWake {
    fn fire(&self) {
        if let Some(fire) = self.0.upgrade() {
            if !fire.fire_if_due() && !fire.signal.is_interrupted() {
                // The deadline is on a clock ahead of the real one (a paused runtime's):
                // ring again when real time gets there.
                fire.set_alarm();
            }
        }
    }
}

impl Wake for AlarmWake {
    fn wake(self: Arc<Self>) {
        self.fire();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fire();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_takes_over_from_a_shut_down_timer_and_goes_with_the_scope() {
        let hour = Duration::from_secs(3600);
        let root = Node::root();
        let node = Node::with_deadline(&root, Instant::now() + hour, hour);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { node.ensure_armed() });
        let Deadline::Own(own) = &node.deadline else {
            panic!("the node owns its deadline");
        };
        assert!(
            lock(&own.fire.alarm).is_none(),
            "no alarm while the timer lives"
        );
        drop(rt); // tokio wakes the timer early, once
        assert!(lock(&own.fire.alarm).is_some(), "the alarm took over");
        assert!(
            !own.fire.armed.load(Ordering::Relaxed),
            "re-armed on next use"
        );
        let fire = Arc::downgrade(&own.fire);
        drop(node);
        assert!(fire.upgrade().is_none(), "the alarm outlived its scope");
        assert!(!root.signal.is_interrupted());
    }
}
