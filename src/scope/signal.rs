//! The interrupt protocol of a scope tree: marking, waiters and tree links.
//!
//! A `Signal` is one scope level's share of the tree: its phase (running, or interrupted
//! and why), the wakers of the guarded futures waiting on it, its children, and its
//! tokens. It needs no runtime and no timer: its `Mutex`, `Arc` and atomics come from
//! [`crate::sync`] and its tokens from the [`Token`] trait, so that the loom models
//! (`loom_tests.rs`) run it with loom's primitives and stand-in tokens.
//!
//! # Invariants
//!
//! 1. The phase only moves forward: `Running` → `Marked` → `Settled`. A node is marked
//!    under its tree lock, with its cause stored before the phase; the cause never
//!    changes afterwards.
//! 2. A walk marks a node before its children, and marks every node it visits before it
//!    cancels any token or wakes any waiter. A node marked by one walk and reached by
//!    another passes its own cause on, not the second walk's.
//! 3. Whoever marks a node visits every child it has at that moment (they are taken
//!    under the same lock). No child joins a marked node later: a child created then is
//!    born marked, and the children of a dropped node whose parent is marked are marked
//!    by the dropper instead of being moved up.
//! 4. `Settled`: the node's whole subtree is marked and the node's internal token, if it
//!    has one, is cancelled. Only a walk that visited the node's subtree settles it.
//! 5. A waiter (a guarded future's waker, or an interrupt hook) is in `waiters` only
//!    while its node is `Running`; marking takes them all, under the waiters locks (one,
//!    or more once contended: `waiters.rs`), after storing the phase. So each hook is
//!    either taken by marking, and run once by the walk that marked the node, or
//!    removed by its owner before that, and never run: never both, never twice.
//! 6. A waiter's key (kept by its guarded future or its `InterruptHook`) names the slot
//!    of that waiter, from the `register` or `hook` that returned it until the owner's
//!    `deregister` or `unhook`, or until marking takes the slab. Only the owner of a key
//!    removes its slot, so no slot is freed and handed out again while its key is still
//!    held. After marking, the slab stays empty (invariant 5 refuses every
//!    registration), so a stale key finds nothing and needs no phase check.
//! 7. A registration that refreshes its waker replaces it in its own slot, and only if
//!    the new waker would not wake the same task: the slab holds one waker per waiter.
//! 8. Hooks run after the walk that took them has marked and settled every node it
//!    visited and released every lock, on the thread that made the walk, each with the
//!    cause of the node it was registered on. One that panics is caught: the others
//!    still run, and since no lock is held, nothing is poisoned.
//! 9. When two linked nodes are both unlocked, the child's `parent` names the parent and
//!    the slot of the parent's `children` that holds the child.
//! 10. A node's internal token, once it exists, is a tokio-util descendant of the
//!     internal tokens of its ancestors (it is made on first need, a token handed out
//!     here or below, as a child of its parent's, which is made first if it does not
//!     exist; removing a node only moves its children up, here and in tokio-util). So a
//!     token handed out by a scope that has since been dropped is still cancelled with
//!     the nearest ancestor that lives. A scope that never hands out a token, nor has a
//!     descendant that does, never makes one: it costs its parent no tokio-util lock.
//!     One made for a node that is marked already is cancelled at once (`adopt_internal`,
//!     under the tree lock marking takes), so invariant 4 holds for every token that
//!     exists, whenever it was made.
//! 11. A node stays in the tree while a `Node` owns it, or, once its owner is gone, while
//!     it is unmarked, holds a bridge (a token that can be cancelled from outside) and
//!     has children: it then relays that token's cancel to them.
//! 12. A node's interrupt is decided once it is marked, or once one of its ancestors is
//!     (the walk or a dropper will mark it: invariant 3), even before its own hooks are
//!     taken; and once a token it or an ancestor watches is cancelled, even before the
//!     bridge has run (a read that notices it marks the node). A hook whose owner lets go of it after that (`unhook_owned`) still runs,
//!     once, on the owner's thread: the owner may have let go *because* it saw the
//!     interrupt, its guard dropped with the future that the interrupt stopped. The
//!     owner then marks the node itself if the walk has not reached it, top down from
//!     the marked ancestor's child, so that the hook, as every hook, runs with its node
//!     marked (invariant 8). Only a hook removed before its interrupt was decided never
//!     runs.
//!
//! # Deadlock safety
//!
//! Tree locks are taken ancestor before descendant. A node only ever moves under one of
//! its ancestors (invariant 10's "moves up"), so that order never inverts. The waiters
//! lock is taken after a tree lock or alone, never the other way round. No token method,
//! no waker, no hook and no drop of a token, waker, hook or watch runs while any of these
//! locks is held: tokio-util takes its own locks there, and a waker or a hook may run
//! arbitrary code, on any scope.
//!
//! A bridge's waker runs inside tokio-util's `cancel`, and so do the walk and the hooks it
//! starts. tokio-util 0.7.20 wakes a token's waiters only after releasing the token
//! tree's locks, and tokio's `Notify` wakes after releasing its own: a hook started
//! through a token's cancel holds no lock either. tokio's timer driver, too, wakes its
//! timers (and so a deadline's walk) outside its locks.

use std::fmt;
use std::task::{Wake, Waker};

use super::interrupted::{Interrupted, Text};
use super::later::Later as Deferred;
pub(crate) use super::later::{Hook, run_hook};
use super::slab::Slab;
pub(crate) use super::token::Token;
use super::waiters::Waiters;
use crate::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use crate::sync::{Arc, Mutex, lock};

/// What an interrupt or a release leaves for after the locks (`later.rs`).
type Later<K> = Deferred<K, Signal<K>>;

const RUNNING: u8 = 0;
const MARKED: u8 = 1;
const SETTLED: u8 = 2;

/// Where a node is in invariant 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Interrupted; the walk that marked it may still be marking below.
    Marked,
    /// Interrupted, with its whole subtree (invariant 4).
    Settled,
}

/// A handle to one level of the scope tree. Clones share the level.
pub(crate) struct Signal<K: Token>(Arc<Level<K>>);

impl<K: Token> Clone for Signal<K> {
    fn clone(&self) -> Self {
        Signal(self.0.clone())
    }
}

impl<K: Token> std::ops::Deref for Signal<K> {
    type Target = Level<K>;

    fn deref(&self) -> &Level<K> {
        &self.0
    }
}

pub(crate) struct Level<K: Token> {
    /// A `Phase`. Stored under the tree lock (Release, after the cause), read anywhere
    /// (Acquire): a reader that sees a node interrupted sees its cause and every mark
    /// the walk made before, including its ancestors' (invariant 2).
    phase: AtomicU8,
    /// Set once this node has an exposed token (see `exposed`): reads then consult it.
    exposed_set: AtomicBool,
    /// The token a scope was built from (`from_token`): reads consult it.
    outside: Option<K>,
    /// The scope's name, given or inherited: interrupts that start here carry it.
    name: Option<Text>,
    /// Why it was interrupted: set once, under the tree lock, before the phase leaves
    /// `Running` (invariant 1), so that a reader that saw it interrupted reads it without
    /// a lock (every waiter woken by an interrupt reads it).
    cause: std::sync::OnceLock<Interrupted>,
    tree: Mutex<Tree<K>>,
    waiters: Waiters<Waiter>,
}

/// One entry of a node's waiters (invariant 5).
enum Waiter {
    /// A guarded future's task.
    Task(Waker),
    /// An interrupt hook.
    Hook(Hook),
}

struct Tree<K: Token> {
    /// Cancelled by hangfree after marking (invariant 10), or through `outside`. Made
    /// on first need (a token handed out here or below), except under `from_token`.
    internal: Option<K>,
    parent: Option<(Signal<K>, usize)>,
    children: Slab<Signal<K>>,
    /// The token handed out by `token()`: a child of `internal`, created on first use.
    exposed: Option<Arc<K>>,
    /// Bridges: watches on tokens that can be cancelled from outside.
    watches: Vec<K::Watch>,
    /// A `Node` owns this signal (invariant 11).
    owned: bool,
}

impl<K: Token> Level<K> {
    fn build(
        internal: Option<K>,
        outside: Option<K>,
        parent: Option<(Signal<K>, usize)>,
        name: Option<Text>,
    ) -> Self {
        Level {
            phase: AtomicU8::new(RUNNING),
            exposed_set: AtomicBool::new(false),
            outside,
            name,
            cause: std::sync::OnceLock::new(),
            tree: Mutex::new(Tree {
                internal,
                parent,
                children: Slab::default(),
                exposed: None,
                watches: Vec::new(),
                owned: true,
            }),
            waiters: Waiters::default(),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            RUNNING => Phase::Running,
            MARKED => Phase::Marked,
            _ => Phase::Settled,
        }
    }

    /// Marked interrupted, by the phase alone: no look at a token cancelled from outside
    /// whose bridge has not run (which `is_interrupted` takes a token's lock to notice).
    /// What a child of this node reads of it, as the walk reaches the child only after
    /// marking this node.
    pub(crate) fn is_marked(&self) -> bool {
        self.phase() != Phase::Running
    }

    /// Why this node was interrupted; only meaningful once it has been.
    pub(crate) fn cause(&self) -> Interrupted {
        match self.cause.get() {
            Some(cause) => cause.clone(),
            None => self.cancel_now(None),
        }
    }

    /// The scope's name, given or inherited.
    pub(crate) fn name(&self) -> Option<&Text> {
        self.name.as_ref()
    }

    /// A cancel of this node, now, for `reason`.
    pub(crate) fn cancel_now(&self, reason: Option<Text>) -> Interrupted {
        Interrupted::cancel(tokio::time::Instant::now(), reason, self.name.clone())
    }

    /// Registers (or refreshes) `waker` under `key`. Returns `false` if the node is
    /// already interrupted, in which case nothing is registered.
    ///
    /// Wakers are cloned and dropped outside the lock: both may run arbitrary code.
    pub(crate) fn register(&self, key: &mut Option<usize>, waker: &Waker) -> bool {
        // Interrupted already: no lock needed to say so, as the phase only moves forward
        // (and a key is stale once marking took the slab, invariant 6). Every waiter an
        // interrupt wakes comes this way. Acquire: as below.
        if self.phase.load(Ordering::Acquire) != RUNNING {
            *key = None;
            return false;
        }
        if let Some(k) = *key {
            // A key names its slab (waiters.rs, invariant 1); one that named none would
            // be registered afresh.
            match self.waiters.lock_of(k) {
                Some(waiters) => {
                    // Acquire, although under the waiters lock: marking stores the phase
                    // before it takes that lock, so the lock alone does not order a
                    // `Marked` seen here after the marks of the ancestors (the models find
                    // this).
                    if self.phase.load(Ordering::Acquire) != RUNNING {
                        *key = None;
                        return false;
                    }
                    if matches!(waiters.get(k), Some(Waiter::Task(registered)) if registered.will_wake(waker))
                    {
                        return true;
                    }
                }
                None => *key = None,
            }
        }
        let new = Waiter::Task(waker.clone());
        let old = {
            let mut waiters = match key.and_then(|k| self.waiters.lock_of(k)) {
                Some(waiters) => waiters,
                None => self.waiters.lock_for_task(),
            };
            // Acquire: as above.
            if self.phase.load(Ordering::Acquire) != RUNNING {
                *key = None;
                drop(waiters);
                drop(new);
                return false;
            }
            match *key {
                Some(k) => waiters.replace(k, new),
                None => {
                    *key = Some(waiters.insert(new));
                    None
                }
            }
        };
        drop(old);
        true
    }

    /// Gives this level its waiter shards now, as a contended registration would: for
    /// the models.
    #[cfg(all(test, loom))]
    pub(crate) fn contend(&self) {
        self.waiters.contend();
    }

    pub(crate) fn deregister(&self, key: usize) {
        // Once marking has taken the slab, it stays empty (registration is refused), so
        // this finds nothing: no need to look at the phase (invariant 6).
        let waker = self.waiters.remove(key);
        drop(waker);
    }

    /// Registers `hook`, to run once when the node is interrupted. Returns its key, or
    /// gives the hook back if the node is interrupted already.
    pub(crate) fn add_hook(&self, hook: Hook) -> Result<usize, Hook> {
        let mut waiters = self.waiters.lock_main();
        // Acquire: as in `register`.
        if self.phase.load(Ordering::Acquire) != RUNNING {
            drop(waiters);
            return Err(hook);
        }
        Ok(waiters.insert(Waiter::Hook(hook)))
    }

    /// Removes the hook registered under `key`. `true` if it was still there, and so
    /// will never run; `false` once marking has taken it (invariant 5). For a hook of
    /// hangfree's own whose owner is gone (a shield's); a user's hook is let go of with
    /// [`Signal::unhook_owned`].
    pub(crate) fn unhook(&self, key: usize) -> bool {
        let hook = self.waiters.remove(key);
        // Dropped here, outside the lock: it may own anything.
        hook.is_some()
    }
}

/// What became of a hook that its owner let go of ([`Signal::unhook_owned`]).
pub(crate) enum Unhooked {
    /// Removed in time: it never runs.
    Removed,
    /// Taken by the walk that marked its node: it runs (or ran) on that walk's thread.
    Taken,
    /// Its node's interrupt was decided first (invariant 12): the owner runs it now,
    /// with this cause. The node is marked.
    Due(Hook, Interrupted),
}

impl<K: Token> Signal<K> {
    /// How many handles share this level (the models check that none is left over).
    #[cfg(all(test, loom))]
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// The root of a new tree.
    pub(crate) fn root() -> Self {
        Signal::named_root(None)
    }

    /// The root of a new tree, called `name`.
    pub(crate) fn named_root(name: Option<Text>) -> Self {
        Signal(Arc::new(Level::build(None, None, None, name)))
    }

    /// The root of a new tree, interrupted when `outside` is cancelled.
    pub(crate) fn from_token(outside: &K) -> Self {
        let internal = outside.child();
        let watched = internal.clone();
        let signal = Signal(Arc::new(Level::build(
            Some(internal),
            Some(outside.clone()),
            None,
            None,
        )));
        signal.add_bridge(&watched);
        signal
    }

    /// A child of `parent`, with its name, born interrupted (with its parent's cause,
    /// inherited) if the parent is interrupted already.
    pub(crate) fn child(parent: &Self) -> Self {
        Signal::named_child(parent, parent.name.clone())
    }

    /// A child of `parent` called `name`, as [`child`](Self::child) otherwise.
    pub(crate) fn named_child(parent: &Self, name: Option<Text>) -> Self {
        let mut tree = lock(&parent.tree);
        if parent.phase() == Phase::Running {
            let slot = tree.children.vacant();
            let child = Signal(Arc::new(Level::build(
                None,
                None,
                Some((parent.clone(), slot)),
                name,
            )));
            tree.children.insert(child.clone());
            return child;
        }
        let cause = inherited(parent.cause.get());
        drop(tree);
        let child = Level::build(None, None, None, name);
        let _ = child.cause.set(cause);
        // Settled at once: it has no internal token yet (one made later is made
        // cancelled, `adopt_internal`), and every scope made under it is born
        // interrupted too, so no walk is needed. Relaxed: the child is published through
        // the `Arc`.
        child.phase.store(SETTLED, Ordering::Relaxed);
        Signal(Arc::new(child))
    }

    /// Runs `f` under this node's tree lock if the node is running and has no children:
    /// children join under that lock, so none can join while `f` runs. `None` otherwise.
    pub(crate) fn if_childless<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let tree = lock(&self.tree);
        if self.phase() != Phase::Running || !tree.children.is_empty() {
            return None;
        }
        let r = f();
        drop(tree);
        Some(r)
    }

    /// Interrupted? Notices, and records, a cancel of one of this node's tokens made from
    /// outside that its bridge has not delivered yet: code woken through such a token may
    /// run first.
    pub(crate) fn is_interrupted(&self) -> bool {
        if self.phase() != Phase::Running {
            return true;
        }
        if self.outside.is_none() && !self.exposed_set.load(Ordering::Relaxed) {
            // Relaxed is enough: whoever cancels the exposed token got it from `token()`,
            // after the flag was set, and a reader that saw that cancel happens after it.
            return false;
        }
        let exposed = if self.exposed_set.load(Ordering::Relaxed) {
            lock(&self.tree).exposed.clone()
        } else {
            None
        };
        let cancelled = self.outside.as_ref().is_some_and(K::is_cancelled)
            || exposed.is_some_and(|token| token.is_cancelled());
        if cancelled {
            self.interrupt(self.cancel_now(None));
            return true;
        }
        false
    }

    /// The token to hand out: cancelled when the node is interrupted, and interrupting
    /// the node when cancelled.
    pub(crate) fn token(&self) -> K {
        let exposed = lock(&self.tree).exposed.clone();
        let exposed = match exposed {
            Some(token) => token,
            None => self.expose(),
        };
        if self.phase() != Phase::Running {
            // The walk cancels it through `internal`, maybe not yet: no caller should see
            // an interrupted scope's token uncancelled.
            exposed.cancel();
        }
        K::clone(&exposed)
    }

    /// This node's internal token, made now if no token was needed here before: a
    /// tokio-util child of its parent's (made too, if needed, up to the first ancestor
    /// that has one or the root), so that invariant 10 holds for every token that exists.
    /// One made for a node that is interrupted already is cancelled at once.
    fn internal(&self) -> K {
        if let Some(internal) = lock(&self.tree).internal.clone() {
            return internal;
        }
        // The ancestors without a token, nearest first; and the token above them.
        let mut lacking: Vec<Signal<K>> = Vec::new();
        let mut above: Option<K> = None;
        let mut parent = lock(&self.tree).parent.as_ref().map(|(p, _)| p.clone());
        while let Some(node) = parent {
            let tree = lock(&node.tree);
            if let Some(internal) = tree.internal.clone() {
                above = Some(internal);
                break;
            }
            parent = tree.parent.as_ref().map(|(p, _)| p.clone());
            drop(tree);
            lacking.push(node);
        }
        // Made from the top down, each outside every lock (a token's methods take
        // tokio-util's locks), and kept only if no other thread made one meanwhile.
        let mut token = above;
        for node in lacking.iter().rev() {
            token = Some(node.adopt_internal(token.as_ref()));
        }
        self.adopt_internal(token.as_ref())
    }

    /// Sets this node's internal token to a child of `above` (a fresh token without one),
    /// unless it has one already; returns the one it has.
    fn adopt_internal(&self, above: Option<&K>) -> K {
        let fresh = above.map_or_else(K::fresh, K::child);
        let mut tree = lock(&self.tree);
        let (kept, spare) = match tree.internal.clone() {
            Some(existing) => (existing, Some(fresh)),
            None => {
                tree.internal = Some(fresh.clone());
                (fresh, None)
            }
        };
        // Read under the lock the walk settles under. Settled: the walk that marked the
        // subtree has passed, so the token is cancelled here (every scope below is
        // marked: cancelling it wakes no one too early). Running or marked: the walk
        // cancels it when it settles this node (it looks again under this lock).
        let interrupted = self.phase() == Phase::Settled;
        drop(tree);
        drop(spare);
        if interrupted {
            kept.cancel();
        }
        kept
    }

    fn expose(&self) -> Arc<K> {
        let fresh = Arc::new(self.internal().child());
        let mut tree = lock(&self.tree);
        if let Some(token) = tree.exposed.clone() {
            drop(tree);
            drop(fresh);
            return token;
        }
        tree.exposed = Some(fresh.clone());
        // Relaxed: see `is_interrupted`.
        self.exposed_set.store(true, Ordering::Relaxed);
        drop(tree);
        self.add_bridge(&fresh);
        fresh
    }

    /// Interrupts this node when `token` is cancelled by anyone.
    fn add_bridge(&self, token: &K) {
        let waker = Waker::from(std::sync::Arc::new(Bridge(self.clone())));
        match token.watch(&waker) {
            None => self.interrupt(self.cancel_now(None)),
            Some(watch) => lock(&self.tree).watches.push(watch),
        }
    }

    /// Lets go of the hook under `key` for its owner (invariant 12): removed if this
    /// node's interrupt is not decided yet; handed back to run now if it is, the node
    /// marked first, as the walk would mark it, when that walk has not reached it yet.
    pub(crate) fn unhook_owned(&self, key: usize) -> Unhooked {
        let waiter = self.waiters.remove(key);
        let Some(Waiter::Hook(hook)) = waiter else {
            // Taken by marking (a hook's key never names a task's slot: invariant 6).
            drop(waiter);
            return Unhooked::Taken;
        };
        // Interrupted already: marked (the walk stores the phase before it takes the
        // slab), or through a token whose cancel has not reached the node yet (the read
        // marks it). The hook is due as it is. Not yet: due all the same if an ancestor
        // is interrupted.
        if !self.is_interrupted() {
            let Some((below, cause)) = self.interrupted_above() else {
                drop(hook);
                return Unhooked::Removed;
            };
            // The walk's work, done here: the unmarked part of the path first, top down.
            below.interrupt(cause.clone());
            if self.phase() == Phase::Running {
                // Moved out from under `below` meanwhile (a scope between was dropped),
                // still under the same marked ancestor.
                self.interrupt(cause.inherited());
            }
        }
        Unhooked::Due(hook, self.cause())
    }

    /// If an ancestor of this running node is interrupted: the highest node below it on
    /// the path up (a child of that ancestor), and the cause it inherits. A walk or a
    /// dropper marks that node and this one later (invariant 3). An ancestor cancelled
    /// through a token whose bridge has not run yet is marked here, by its read
    /// (`is_interrupted`). Takes one tree lock at a time, and holds none when it returns.
    fn interrupted_above(&self) -> Option<(Signal<K>, Interrupted)> {
        let mut below = self.clone();
        loop {
            let parent = lock(&below.tree).parent.as_ref().map(|(p, _)| p.clone())?;
            if parent.is_interrupted() {
                // Marked now. Acquire (in `phase`): the cause was set before the phase.
                return Some((below, inherited(parent.cause.get())));
            }
            below = parent;
        }
    }

    /// Interrupts this node and its descendants with `cause` (they inherit it). A node
    /// interrupted already keeps its cause, and passes it on.
    pub(crate) fn interrupt(&self, cause: Interrupted) {
        if self.phase() == Phase::Settled {
            return;
        }
        let mut later = Later::default();
        let visited = mark(self.clone(), cause, &mut later);
        // Descendants first, so that a settled node's subtree is settled (invariant 4).
        for node in visited.iter().rev() {
            // Cancelled outside the lock. A token made between this read and the
            // settling below is cancelled after it: `adopt_internal` sets it under the
            // lock the settling takes, and leaves it to this walk while the node is not
            // settled.
            let internal = lock(&node.tree).internal.clone();
            if let Some(internal) = &internal {
                internal.cancel();
            }
            let tree = lock(&node.tree);
            // Release: see `phase`.
            node.phase.store(SETTLED, Ordering::Release);
            let made_meanwhile = match (&internal, &tree.internal) {
                (None, Some(made)) => Some(made.clone()),
                _ => None,
            };
            drop(tree);
            if let Some(made) = made_meanwhile {
                made.cancel();
            }
        }
        later.signals.extend(visited);
        later.run();
    }

    /// The owning `Node` is gone: leaves the tree (or stays as a relay, invariant 11), and
    /// so does every relay this leaves without children.
    pub(crate) fn release(&self) {
        let mut later = Later::default();
        // This node's handle in its parent's children, dropped after the locks. Usually
        // the only handle to drop: kept out of `later` to spare a `Vec` per dropped scope.
        let mut removed = None;
        let mut node = self.clone();
        let mut first = true;
        loop {
            let parent = lock(&node.tree).parent.as_ref().map(|(p, _)| p.clone());
            let mut parent_tree = parent.as_ref().map(|p| lock(&p.tree));
            let mut tree = lock(&node.tree);
            let slot = match (&tree.parent, &parent) {
                (None, None) => None,
                (Some((now, slot)), Some(then)) if Arc::ptr_eq(&now.0, &then.0) => Some(*slot),
                // Moved while unlocked (its parent left the tree): look again.
                _ => continue,
            };
            if first {
                tree.owned = false;
                first = false;
            } else if tree.owned || !tree.children.is_empty() {
                break;
            }
            let running = node.phase() == Phase::Running;
            if running && !tree.watches.is_empty() && !tree.children.is_empty() {
                break;
            }
            later.watches.append(&mut tree.watches);
            if let Some(exposed) = tree.exposed.take() {
                later.tokens.push(exposed);
            }
            tree.parent = None;
            if let (Some(parent_tree), Some(slot)) = (parent_tree.as_mut(), slot) {
                if let Some(me) = parent_tree.children.remove(slot) {
                    match removed {
                        None => removed = Some(me),
                        Some(_) => later.signals.push(me),
                    }
                }
            }
            let children = tree.children.take();
            match (&parent, parent_tree.as_mut()) {
                (Some(parent), Some(parent_tree)) if running => {
                    if parent.phase() == Phase::Running {
                        for child in children {
                            let slot = parent_tree.children.vacant();
                            lock(&child.tree).parent = Some((parent.clone(), slot));
                            parent_tree.children.insert(child);
                        }
                    } else {
                        // The walk that marked the parent already took its children and
                        // will not see these (invariant 3): mark them here, still holding
                        // both locks, so that it finds them marked when it reaches us.
                        let cause = inherited(parent.cause.get());
                        for child in children {
                            lock(&child.tree).parent = None;
                            let visited = mark(child, cause.clone(), &mut later);
                            later.signals.extend(visited);
                        }
                    }
                }
                _ => {
                    // No parent, or this node is marked and whoever marked it visits
                    // them: they leave the tree as roots.
                    for child in children {
                        lock(&child.tree).parent = None;
                        later.signals.push(child);
                    }
                }
            }
            let next = match (&parent, &parent_tree) {
                (Some(parent), Some(parent_tree))
                    if !parent_tree.owned && parent_tree.children.is_empty() =>
                {
                    Some(parent.clone())
                }
                _ => None,
            };
            drop(tree);
            drop(parent_tree);
            match next {
                Some(relay) => node = relay,
                None => break,
            }
        }
        later.run();
    }
}

/// The cause a child inherits from a parent interrupted with `cause`.
fn inherited(cause: Option<&Interrupted>) -> Interrupted {
    cause.map_or_else(Interrupted::cancelled, Interrupted::inherited)
}

/// Marks `start` with `cause` and every node below it (invariant 2), collecting the
/// wakers to wake and the hooks to run. Returns the nodes visited, parents before children. Takes one tree
/// lock at a time, below any the caller holds.
fn mark<K: Token>(start: Signal<K>, cause: Interrupted, later: &mut Later<K>) -> Vec<Signal<K>> {
    let mut stack = vec![(start, cause)];
    let mut visited = Vec::new();
    while let Some((node, carried)) = stack.pop() {
        let tree = lock(&node.tree);
        let cause = match node.phase() {
            Phase::Settled => {
                // Dropped after the caller's locks too: it may be the last handle.
                drop(tree);
                later.signals.push(node);
                continue;
            }
            Phase::Marked => inherited(node.cause.get()),
            Phase::Running => {
                let down = carried.inherited();
                // Set once: only the walk that finds it running marks it, under this lock.
                let _ = node.cause.set(carried);
                // Release: see `Signal::phase`.
                node.phase.store(MARKED, Ordering::Release);
                let waiters = node.waiters.take_all();
                for waiter in waiters {
                    match waiter {
                        Waiter::Task(waker) => later.wakers.push(waker),
                        Waiter::Hook(hook) => {
                            // The node's own cause: set above.
                            let cause = node
                                .cause
                                .get()
                                .cloned()
                                .unwrap_or_else(Interrupted::cancelled);
                            later.hooks.push((hook, cause));
                        }
                    }
                }
                down
            }
        };
        for child in tree.children.iter() {
            stack.push((child.clone(), cause.clone()));
        }
        drop(tree);
        visited.push(node);
    }
    visited
}

impl<K: Token> fmt::Debug for Signal<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

/// Interrupts a node when a token it watches is cancelled.
struct Bridge<K: Token>(Signal<K>);

impl<K: Token> Wake for Bridge<K> {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.interrupt(self.0.cancel_now(None));
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.interrupt(self.0.cancel_now(None));
    }
}
