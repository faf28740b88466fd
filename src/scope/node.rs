//! The shared state behind a [`CancelScope`](super::CancelScope).
//!
//! Every scope level is one `Node`: a [`Signal`], its place in the scope tree
//! (`signal.rs` holds the protocol and its invariants), and its deadline: its own
//! [`Timer`] if it asked for one (`timer.rs`: when it fires and how it moves), a link up
//! to the nearest ancestor with a deadline, or a shield's end.
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
//! tokio-util's tree still has one job: a node that hands out a token (or has a
//! descendant that does) keeps an internal token, a child of its parent's, made on that
//! first need, which hangfree cancels only after marking. The tokens handed out by
//! `token()` are its children, so they are cancelled with the scope and, when the scope
//! is dropped but a token is not, with the nearest ancestor that lives (tokio-util's
//! pruning keeps track of that, as hangfree cannot count a token's clones). A scope that
//! never hands out a token costs its parent no tokio-util lock.
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
//! - **One timer per deadline, not per await.** A node that asked for a deadline holds
//!   one `Sleep`, armed on first use inside a runtime, whose waker interrupts the node
//!   (and so the subtree) when it fires. If it is woken early, its runtime is shutting
//!   down: the real-time alarm takes over (and the next use re-arms on a live runtime).
//! - **Nothing outlives the node, and nothing chains.** Timer, alarm and bridges are
//!   owned by the node, and their wakers hold only weak references or the signal. A
//!   dropped node leaves the tree, its children moving up to its parent, so a re-bound
//!   `scope = scope.child()` stays flat; a node links up (`up`) only to the nearest
//!   ancestor that asked for a deadline.
//!
//! # Deadlines that move
//!
//! A deadline can move (`CancelScope::set_deadline`), so a node's effective deadline is
//! read, not fixed at creation: the earliest of its own and what its `up` link reads.
//! A child that asked for a looser deadline than its parent's keeps its own timer, so it
//! gets what it asked for if the parent's moves later; arming and the first poll's
//! clock check visit every timer up the chain (`each_timer`), usually one or two.
//!
//! A node with no deadline of its own lets its children link past it. It can be given
//! one only while it has no children: the link is read after the child joins the tree,
//! under the same lock `set_deadline` checks for children under, so no child can link
//! past a node that gains a deadline.
//!
//! # Shields
//!
//! A shield (`CancelScope::shield`) is the one scope whose deadline is not fixed when it
//! is made. It is the root of a tree of its own, so that its parent's walk does not reach
//! it, and an interrupt hook on its parent starts its grace: when the parent is
//! interrupted at `t` (the deadline itself, for a deadline), the shield's end is set to
//! `t + grace`, on a timer armed by the interrupting thread (the alarm outside a runtime).
//! Until then its deadline reads as the parent's plus the grace, the latest it can end.
//! Because that can move earlier, a node inside a shield links up to the shield like to
//! any deadline, and the shield's `each_timer` visits its parent's timers and its end.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Interrupted;
use super::interrupted::Text;
use super::signal::{Hook, Signal, run_hook};
use super::timer::{ScopeSignal, Timer};
use crate::time::sooner;

/// A shield's deadline: its parent's interrupt plus the grace.
pub(crate) struct Shield {
    /// The parent, kept alive: its hook (under `hook`, while registered) starts the
    /// grace when the parent is interrupted.
    parent: Arc<Node>,
    hook: Option<usize>,
    end: Arc<ShieldEnd>,
}

impl Drop for Shield {
    fn drop(&mut self) {
        if let Some(key) = self.hook.take() {
            self.parent.signal.unhook(key);
        }
    }
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
        &self.parent
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
    /// The nearest ancestor with a deadline of its own (a timer, or a shield's), at this
    /// node's creation: it bounds this node's deadline from above. A node with no
    /// deadline of its own passes it on to its children instead of itself.
    up: Option<Arc<Node>>,
    /// The deadline this node asked for: at its creation, or later by `set_deadline`.
    own: OnceLock<Timer>,
    /// `Some` for a shield.
    shield: Option<Shield>,
}

impl Node {
    fn build(signal: ScopeSignal, up: Option<Arc<Node>>) -> Node {
        Node {
            signal,
            up,
            own: OnceLock::new(),
            shield: None,
        }
    }

    /// A root scope.
    pub(crate) fn root() -> Arc<Node> {
        Arc::new(Node::build(Signal::root(), None))
    }

    /// A root scope interrupted when `token` is cancelled.
    pub(crate) fn from_token(token: &CancellationToken) -> Arc<Node> {
        Arc::new(Node::build(Signal::from_token(token), None))
    }

    /// A child of `parent` bound by the parent's deadline, if any, with its name.
    pub(crate) fn child(parent: &Arc<Node>) -> Arc<Node> {
        // The signal first: once the child is in the parent's tree, the parent can no
        // longer be given a deadline of its own (`set_deadline`), so the link read after
        // it is final.
        let signal = Signal::child(&parent.signal);
        Arc::new(Node::build(signal, parent.deadline_owner().cloned()))
    }

    /// A child of `parent` called `name`, bound by the parent's deadline, if any.
    pub(crate) fn named_child(parent: &Arc<Node>, name: Text) -> Arc<Node> {
        let signal = Signal::named_child(&parent.signal, Some(name));
        Arc::new(Node::build(signal, parent.deadline_owner().cloned()))
    }

    /// A child of `parent` asking for the deadline `at`, which has `passed` already or
    /// not, called `name` if given (else inheriting the parent's name). It keeps what it
    /// asked for even when the parent's deadline is sooner: the parent's may move later.
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
        let timer = Timer::new(at, cause, signal.clone());
        let node = Node::build(signal, parent.deadline_owner().cloned());
        let _ = node.own.set(timer);
        let node = Arc::new(node);
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
        let hook = parent.add_hook(Box::new(move |cause| start.start(cause)));
        let mut node = Node::build(signal, None);
        node.shield = Some(Shield {
            parent: parent.clone(),
            hook,
            end,
        });
        Arc::new(node)
    }

    /// Registers `hook` to run once when this node is interrupted, and watches the
    /// deadline for it (nothing may ever be polled in the scope). One that finds the node
    /// interrupted, by the clock too, runs at once with the cause. The key while it is
    /// registered, for `signal.unhook`.
    pub(crate) fn add_hook(&self, hook: Hook) -> Option<usize> {
        self.watch_deadline();
        match self.check() {
            Err(why) => {
                run_hook(hook, &why);
                None
            }
            Ok(()) => match self.signal.add_hook(hook) {
                Ok(key) => Some(key),
                // Interrupted since the check, on another thread.
                Err(hook) => {
                    run_hook(hook, &self.cause());
                    None
                }
            },
        }
    }

    /// The effective deadline of this node: the earliest of its own and the ones above.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        // A loop, not recursion: a chain of scopes that each asked for a deadline can be
        // as long as the program made it.
        let mut earliest: Option<Instant> = None;
        let mut node = self;
        loop {
            earliest = sooner(earliest, node.own.get().map(Timer::at));
            if let Some(shield) = &node.shield {
                return sooner(earliest, shield.deadline_at());
            }
            match &node.up {
                Some(up) => node = up,
                None => return earliest,
            }
        }
    }

    /// Whether the effective deadline is another node's.
    pub(crate) fn inherits_deadline(&self) -> bool {
        let above = self.up.as_ref().and_then(|up| up.deadline_at());
        governed_from_above(self.own.get().map(Timer::at), above)
    }

    /// The node whose deadline a child links to (possibly `self`).
    fn deadline_owner(self: &Arc<Self>) -> Option<&Arc<Node>> {
        if self.own.get().is_some() || self.shield.is_some() {
            Some(self)
        } else {
            self.up.as_ref()
        }
    }

    /// Calls `visit` with every timer that can interrupt this node by itself: its own,
    /// the ones above it, and the ones a shield above depends on (its parent's, and its
    /// end once started).
    fn each_timer<'a, V: FnMut(&'a Timer)>(&'a self, visit: &mut V) {
        // A loop along the chain, as in `deadline_at`; only a shield recurses, into its
        // parent's chain.
        let mut node = self;
        loop {
            if let Some(own) = node.own.get() {
                visit(own);
            }
            if let Some(shield) = &node.shield {
                shield.parent().each_timer(visit);
                if let Some(timer) = shield.end.timer() {
                    visit(timer);
                }
                return;
            }
            match &node.up {
                Some(up) => node = up,
                None => return,
            }
        }
    }

    /// Makes sure the deadlines that govern this node have a live timer. Called on first
    /// use inside a runtime (first poll, `token()`, a hook); one atomic load per deadline
    /// once armed.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
    pub(crate) fn ensure_armed(&self) {
        self.each_timer(&mut Timer::ensure_armed);
    }

    /// For a hook: the deadline must be watched although nothing may ever be polled in
    /// the scope. Inside a runtime its timer is armed; outside one, the alarm watches it.
    pub(crate) fn watch_deadline(&self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.ensure_armed();
        } else {
            self.each_timer(&mut Timer::ensure_alarm);
        }
    }

    /// Interrupts this node with its own deadline as the cause (and its subtree with it,
    /// inherited). A node already interrupted keeps the cause it has.
    pub(crate) fn fire_deadline(&self) {
        if let Some(own) = self.own.get() {
            own.fire.fire_now();
        }
    }

    /// Moves this node's own deadline to `at` (`budget` from now), or gives it one if it
    /// has none and no scope has been made from it yet. `false` if it is interrupted (or
    /// past a deadline by the clock), a shield, or has children that fixed their link
    /// past it.
    pub(crate) fn set_deadline(&self, at: Instant, budget: Duration) -> bool {
        // A deadline passed by the clock counts as interrupted, as in `check`, even if no
        // timer has run yet.
        if self.shield.is_some() || self.check().is_err() {
            return false;
        }
        loop {
            if let Some(own) = self.own.get() {
                return own.reset(at, budget);
            }
            if self.signal.is_interrupted() {
                return false;
            }
            let cause = Interrupted::deadline_of(at, budget, self.signal.name().cloned());
            let timer = Timer::new(at, cause, self.signal.clone());
            // Under the tree lock, where children join: none can link past this node
            // while it gains a deadline (see `child`).
            let set = self.signal.if_childless(|| self.own.set(timer));
            match set {
                // Children made from it already read their deadline past this node.
                None => return false,
                Some(Ok(())) => {
                    if let Some(own) = self.own.get() {
                        // Guarded futures may be waiting already: watch it from here.
                        own.arm_here();
                    }
                    return true;
                }
                // Another thread gave it one first: move that one.
                Some(Err(_lost)) => continue,
            }
        }
    }

    /// `Err` once the node is interrupted, or a deadline that governs it has passed by the
    /// clock even if no timer has run (the deadline is then fired here; if several have
    /// passed, in the order they passed, so the first is the cause).
    pub(crate) fn check(&self) -> Result<(), Interrupted> {
        self.check_at(Instant::now())
    }

    /// `check` with the clock read as `now`.
    pub(crate) fn check_at(&self, now: Instant) -> Result<(), Interrupted> {
        // The usual case in one pass: no deadline that governs it looks due (one atomic
        // load each), so only the phase decides.
        let mut any_due = false;
        self.each_timer(&mut |timer| any_due |= timer.fire.looks_due(now));
        if !any_due {
            return match self.signal.is_interrupted() {
                true => Err(self.signal.cause()),
                false => Ok(()),
            };
        }
        while !self.signal.is_interrupted() {
            // Usually one timer, and not due: no clone, no allocation.
            let mut earliest: Option<(Instant, &Timer)> = None;
            self.each_timer(&mut |timer| {
                if timer.fire.looks_due(now) && !timer.fire.signal.is_interrupted() {
                    let at = timer.at();
                    if earliest.is_none_or(|(first, _)| at < first) {
                        earliest = Some((at, timer));
                    }
                }
            });
            // Each round interrupts the scope of the timer it fires, which the next round
            // then skips; a deadline moved later meanwhile is not due any more.
            match earliest {
                Some((_, timer)) => {
                    timer.fire.fire_if_due(now);
                }
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

/// Whether a scope whose own deadline is `own` is governed by the deadline `above` it
/// (what `CancelScope`'s `Debug` calls an inherited deadline).
pub(crate) fn governed_from_above(own: Option<Instant>, above: Option<Instant>) -> bool {
    match (own, above) {
        (None, above) => above.is_some(),
        (Some(own), above) => above.is_some_and(|above| above < own),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal.release();
        // The chain above, dropped in a loop rather than by recursion, for as long as
        // this node held the last link to the next one.
        let mut up = self.up.take();
        while let Some(next) = up {
            up = match Arc::try_unwrap(next) {
                Ok(mut node) => node.up.take(),
                Err(_shared) => None,
            };
        }
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
        let fire = &node.own.get().expect("the node owns its deadline").fire;
        assert!(!fire.has_alarm(), "no alarm while the timer lives");
        drop(rt); // tokio wakes the timer early, once
        assert!(fire.has_alarm(), "the alarm took over");
        assert!(!fire.is_armed(), "re-armed on next use");
        let fire = Arc::downgrade(fire);
        drop(node);
        assert!(fire.upgrade().is_none(), "the alarm outlived its scope");
        assert!(!root.signal.is_interrupted());
    }
}
