//! The shared state behind a [`CancelScope`](super::CancelScope).
//!
//! Every scope level is one `Node`: its deadline (none, its own, one it inherits, or a
//! shield's) and a [`Signal`], its place in the scope tree (`signal.rs` holds the protocol
//! and its invariants).
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
//!
//! # Shields
//!
//! A shield (`CancelScope::shield`) is the one scope whose deadline is not fixed when it
//! is made. It is the root of a tree of its own, so that its parent's walk does not reach
//! it, and an interrupt hook on its parent starts its grace: when the parent is
//! interrupted at `t` (the deadline itself, for a deadline), the shield's end is set to
//! `t + grace`, on a timer armed by the interrupting thread (the alarm outside a runtime).
//! Until then its deadline reads as the parent's plus the grace, the latest it can end.
//! Because that can move earlier, a node that owns a deadline inside a shield keeps the
//! shield as its `bound` and reads its deadline as the earlier of the two; arming, the
//! clock check and the alarm visit the bound's timers too (`each_timer`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::task::Unconstrained;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::Interrupted;
use super::hook::InterruptHook;
use super::interrupted::Text;
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
    /// This node is a shield: its deadline is set when its parent is interrupted.
    Shield(Shield),
}

#[derive(Debug)]
pub(crate) struct OwnDeadline {
    timer: Timer,
    /// The nearest shield above: its end may come before this deadline, once the shield's
    /// parent is interrupted.
    bound: Option<Arc<Node>>,
}

/// A deadline's timer: a tokio `Sleep`, armed on first use inside a runtime, with the
/// real-time alarm as its backstop.
struct Timer {
    fire: Arc<Fire>,
    sleep: Mutex<Option<Pin<Box<Unconstrained<Sleep>>>>>,
}

/// What the timer's and the alarm's wakers need to fire a deadline. Owned by its
/// `Timer`; the wakers hold it weakly, so a dropped scope takes its alarm entry with it.
struct Fire {
    at: Instant,
    /// What the scope is interrupted with.
    cause: Interrupted,
    signal: ScopeSignal,
    /// Whether a live timer is registered. Cleared when the timer is woken early (its
    /// runtime shut down), so the next use re-arms.
    armed: AtomicBool,
    /// The real-time backstop, set once a timer was woken early or the deadline was
    /// watched outside a runtime.
    alarm: Mutex<Option<Alarm>>,
}

impl Fire {
    fn fire(&self) {
        self.signal.interrupt(self.cause.clone());
    }

    /// Fires if the clock says so. Outside a runtime (the alarm thread) tokio's clock is
    /// the real one.
    fn fire_if_due(&self) -> bool {
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

impl Timer {
    fn new(at: Instant, cause: Interrupted, signal: ScopeSignal) -> Timer {
        Timer {
            fire: Arc::new(Fire {
                at,
                cause,
                signal,
                armed: AtomicBool::new(false),
                alarm: Mutex::new(None),
            }),
            sleep: Mutex::new(None),
        }
    }

    fn at(&self) -> Instant {
        self.fire.at
    }

    /// One atomic load once armed.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
    fn ensure_armed(&self) {
        // Relaxed: a stale `false` only sends us to the lock, which decides.
        if !self.fire.armed.load(Ordering::Relaxed) {
            self.arm();
        }
    }

    fn arm(&self) {
        let fire = &self.fire;
        let mut sleep = lock(&self.sleep);
        if fire.armed.load(Ordering::Relaxed) || fire.signal.is_interrupted() {
            return;
        }
        if fire.at <= Instant::now() {
            drop(sleep);
            fire.fire();
            return;
        }
        // Unconstrained: the first poll must register the timer even when the calling
        // task has spent its cooperative budget.
        let mut new = Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(
            fire.at,
        )));
        let waker = Waker::from(Arc::new(TimerWake(Arc::downgrade(fire))));
        // Set before polling: the waker may run (and clear it) as soon as it is registered.
        fire.armed.store(true, Ordering::Relaxed);
        let fired = new
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        // Replacing a timer of a runtime that shut down drops it here, unregistered.
        let old = sleep.replace(new);
        drop(sleep);
        drop(old);
        if fired {
            fire.fire();
        }
    }

    /// Watched from outside a runtime: the alarm fires it in real time (tokio's clock is
    /// the real one there), until a use inside a runtime arms the timer.
    fn ensure_alarm(&self) {
        let armed = self.fire.armed.load(Ordering::Relaxed);
        if !armed && lock(&self.fire.alarm).is_none() && !self.fire.signal.is_interrupted() {
            self.fire.set_alarm();
        }
    }

    /// Armed by whatever thread it is on: the timer inside a runtime, the alarm outside
    /// one, or fired at once if due.
    fn arm_here(&self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            // A runtime that is shutting down refuses new timers with a panic, which must
            // not unwind into whatever interrupted the scope: the alarm takes over then.
            if catch_unwind(AssertUnwindSafe(|| self.arm())).is_ok() {
                return;
            }
            self.fire.armed.store(false, Ordering::Relaxed);
        } else if self.fire.fire_if_due() {
            return;
        }
        self.fire.set_alarm();
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("at", &self.fire.at)
            .field("armed", &self.fire.armed.load(Ordering::Relaxed))
            .finish()
    }
}

/// A shield's deadline: its parent's interrupt plus the grace.
pub(crate) struct Shield {
    /// On the parent, whom it keeps alive: starts the grace when the parent is
    /// interrupted.
    parent: InterruptHook,
    end: Arc<ShieldEnd>,
}

/// What the hook on the parent needs to end the shield.
struct ShieldEnd {
    grace: Duration,
    signal: ScopeSignal,
    /// Set once, when the parent is interrupted: the end of the grace, or `None` if that
    /// is too far to represent (the shield then never ends by itself).
    timer: OnceLock<Option<Timer>>,
}

impl ShieldEnd {
    /// The parent was interrupted by `cause`: the shield ends `grace` after it.
    fn start(&self, cause: &Interrupted) {
        let timer = cause.at().checked_add(self.grace).map(|at| {
            let why =
                Interrupted::grace(at, self.grace, self.signal.name().cloned(), cause.clone());
            Timer::new(at, why, self.signal.clone())
        });
        if self.timer.set(timer).is_ok() {
            if let Some(Some(timer)) = self.timer.get() {
                timer.arm_here();
            }
        }
    }

    fn timer(&self) -> Option<&Timer> {
        self.timer.get().and_then(Option::as_ref)
    }
}

impl Shield {
    fn parent(&self) -> &Arc<Node> {
        self.parent.node()
    }

    fn deadline_at(&self) -> Option<Instant> {
        match self.end.timer.get() {
            Some(timer) => timer.as_ref().map(Timer::at),
            None => {
                let parent = self.parent();
                // The hook may not have run yet on the thread that interrupted the parent.
                let t = if parent.signal.is_interrupted() {
                    Some(parent.cause().at())
                } else {
                    parent.deadline_at()
                };
                t?.checked_add(self.end.grace)
            }
        }
    }
}

impl std::fmt::Debug for Shield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shield")
            .field("grace", &self.end.grace)
            .field("end", &self.end.timer.get())
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

    /// A child of `parent` bound by the parent's deadline, if any, with its name.
    pub(crate) fn child(parent: &Arc<Node>) -> Arc<Node> {
        Arc::new(Node {
            signal: Signal::child(&parent.signal),
            deadline: Node::inherit(parent),
        })
    }

    /// A child of `parent` called `name`, bound by the parent's deadline, if any.
    pub(crate) fn named_child(parent: &Arc<Node>, name: Text) -> Arc<Node> {
        Arc::new(Node {
            signal: Signal::named_child(&parent.signal, Some(name)),
            deadline: Node::inherit(parent),
        })
    }

    fn inherit(parent: &Arc<Node>) -> Deadline {
        match parent.deadline_owner() {
            Some(owner) => Deadline::Inherited(owner.clone()),
            None => Deadline::None,
        }
    }

    /// A child of `parent` owning the deadline `at`, which has `passed` already or not,
    /// called `name` if given (else inheriting the parent's name).
    pub(crate) fn with_deadline(
        parent: &Arc<Node>,
        at: Instant,
        budget: Duration,
        passed: bool,
        name: Option<Text>,
    ) -> Arc<Node> {
        let signal = match name {
            Some(name) => Signal::named_child(&parent.signal, Some(name)),
            None => Signal::child(&parent.signal),
        };
        let cause = Interrupted::deadline_of(at, budget, signal.name().cloned());
        let node = Arc::new(Node {
            deadline: Deadline::Own(OwnDeadline {
                timer: Timer::new(at, cause, signal.clone()),
                bound: parent.bound(),
            }),
            signal,
        });
        if passed {
            // Interrupted from the start: nothing in it ever starts.
            node.fire_deadline();
        }
        node
    }

    /// A shield of `parent`: not interrupted with it, but `grace` after it.
    pub(crate) fn shield(parent: &Arc<Node>, grace: Duration) -> Arc<Node> {
        let signal = Signal::named_root(parent.signal.name().cloned());
        let end = Arc::new(ShieldEnd {
            grace,
            signal: signal.clone(),
            timer: OnceLock::new(),
        });
        // Runs at once if the parent is interrupted already: the grace then started at
        // the parent's interrupt, not now.
        let start = Arc::clone(&end);
        let hook = InterruptHook::register(parent, Box::new(move |cause| start.start(cause)));
        Arc::new(Node {
            signal,
            deadline: Deadline::Shield(Shield { parent: hook, end }),
        })
    }

    /// The effective deadline of this node: own, inherited, or a shield's.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(own) => {
                let bound = own.bound.as_ref().and_then(|shield| shield.deadline_at());
                Some(bound.map_or(own.timer.at(), |end| end.min(own.timer.at())))
            }
            Deadline::Inherited(owner) => owner.deadline_at(),
            Deadline::Shield(shield) => shield.deadline_at(),
        }
    }

    /// Whether the effective deadline is another node's.
    pub(crate) fn inherits_deadline(&self) -> bool {
        matches!(self.deadline, Deadline::Inherited(_))
    }

    /// The node that owns the effective deadline (possibly `self`).
    fn deadline_owner(self: &Arc<Self>) -> Option<&Arc<Node>> {
        match &self.deadline {
            Deadline::None => None,
            Deadline::Own(_) | Deadline::Shield(_) => Some(self),
            Deadline::Inherited(owner) => Some(owner),
        }
    }

    /// The nearest shield whose end bounds this node's deadline.
    fn bound(self: &Arc<Self>) -> Option<Arc<Node>> {
        let owner = self.deadline_owner()?;
        match &owner.deadline {
            Deadline::Own(own) => own.bound.clone(),
            Deadline::Shield(_) => Some(owner.clone()),
            _ => None,
        }
    }

    /// Calls `visit` with every timer that can interrupt this node by itself: the owner's,
    /// and the ones a shield above depends on (its parent's, and its end once started).
    fn each_timer<V: FnMut(&Timer)>(self: &Arc<Self>, visit: &mut V) {
        let Some(owner) = self.deadline_owner() else {
            return;
        };
        match &owner.deadline {
            Deadline::Own(own) => {
                visit(&own.timer);
                if let Some(shield) = &own.bound {
                    shield.each_timer(visit);
                }
            }
            Deadline::Shield(shield) => {
                shield.parent().each_timer(visit);
                if let Some(timer) = shield.end.timer() {
                    visit(timer);
                }
            }
            _ => {}
        }
    }

    /// Makes sure the deadlines that govern this node have a live timer. Called on first
    /// use inside a runtime (first poll, `token()`, a hook); one atomic load once armed,
    /// for a deadline outside any shield.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
    pub(crate) fn ensure_armed(self: &Arc<Self>) {
        self.each_timer(&mut Timer::ensure_armed);
    }

    /// For a hook: the deadline must be watched although nothing may ever be polled in
    /// the scope. Inside a runtime its timer is armed; outside one, the alarm watches it.
    pub(crate) fn watch_deadline(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.ensure_armed();
        } else {
            self.each_timer(&mut Timer::ensure_alarm);
        }
    }

    /// Interrupts this node with its own deadline as the cause (and its subtree with it,
    /// inherited). A node already interrupted keeps the cause it has.
    pub(crate) fn fire_deadline(self: &Arc<Self>) {
        if let Deadline::Own(own) = &self.deadline {
            own.timer.fire.fire();
        }
    }

    /// `Err` once the node is interrupted, or a deadline that governs it has passed by the
    /// clock even if no timer has run (the deadline is then fired here; if several have
    /// passed, in the order they passed, so the first is the cause).
    pub(crate) fn check(self: &Arc<Self>) -> Result<(), Interrupted> {
        let now = Instant::now();
        while !self.signal.is_interrupted() {
            // Usually one timer, and not due: no clone, no allocation.
            let mut earliest: Option<Arc<Fire>> = None;
            self.each_timer(&mut |timer: &Timer| {
                let due = timer.at() <= now && !timer.fire.signal.is_interrupted();
                if due && earliest.as_ref().is_none_or(|first| timer.at() < first.at) {
                    earliest = Some(timer.fire.clone());
                }
            });
            // Each round interrupts the scope of the timer it fires, which the next round
            // then skips.
            match earliest {
                Some(fire) => fire.fire(),
                None => break,
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
        let node = Node::with_deadline(&root, Instant::now() + hour, hour, false, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async { node.ensure_armed() });
        let Deadline::Own(own) = &node.deadline else {
            panic!("the node owns its deadline");
        };
        let fire = &own.timer.fire;
        assert!(
            lock(&fire.alarm).is_none(),
            "no alarm while the timer lives"
        );
        drop(rt); // tokio wakes the timer early, once
        assert!(lock(&fire.alarm).is_some(), "the alarm took over");
        assert!(!fire.armed.load(Ordering::Relaxed), "re-armed on next use");
        let fire = Arc::downgrade(fire);
        drop(node);
        assert!(fire.upgrade().is_none(), "the alarm outlived its scope");
        assert!(!root.signal.is_interrupted());
    }
}
