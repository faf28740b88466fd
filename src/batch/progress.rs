//! [`Progress`]: how `flush` and `shutdown` callers learn that a flush
//! finished, without every finished flush paying for a wake.
//!
//! A finished flush notifies only if someone waits; a waiter counts itself
//! before it looks at the state, so the check cannot skip it.
//!
//! # Invariants
//!
//! 1. A caller that waits holds a [`Waiting`] guard, taken before its first
//!    look at the state under the batcher's lock, and creates its
//!    `Notified` (enabled) before each further look.
//! 2. Whoever changes what a waiter waits for (a flush recorded, a worker
//!    dropped, the account taken) does so under the lock, and calls
//!    [`Progress::notify`] after releasing it. `SeqCst` on both sides: if the
//!    waiter's look saw the old state, the notifier's read sees the count.
//!
//! # Deadlock safety
//!
//! 1. `notify` is only called with the batcher's lock released; it takes no
//!    lock but `Notify`'s own.

use super::primitives::{Notified, Notify};
use crate::sync::atomic::{AtomicUsize, Ordering};

/// Wakes `flush` and `shutdown` callers when a flush finishes or shutdown
/// takes the account.
pub(super) struct Progress {
    notify: Notify,
    /// How many callers wait: a flush that finishes with nobody waiting
    /// skips the notification.
    waiters: AtomicUsize,
}

/// Counts one waiter in [`Progress`] while it lives.
pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // SeqCst: see the module's invariant 2 (a stale count only costs a
        // notification nobody needs).
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Progress {
    pub(super) fn new() -> Self {
        Progress {
            notify: Notify::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Counts the caller as waiting until the guard is dropped.
    pub(super) fn waiting(&self) -> Waiting<'_> {
        // SeqCst: before the caller's first look (invariant 1), ordered
        // against `notify`'s load (invariant 2).
        self.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(&self.waiters)
    }

    /// A notification to wait for: enable it, then look at the state.
    pub(super) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Wakes the waiters, if there are any.
    pub(super) fn notify(&self) {
        // SeqCst: this runs after the change was made under the lock; if a
        // waiter saw the old state, this sees its count (invariant 2).
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }

    /// Wakes every waiter, counted or not: the account was taken, and a
    /// second `shutdown` waiting on it must see that.
    pub(super) fn notify_all(&self) {
        self.notify.notify_waiters();
    }
}
