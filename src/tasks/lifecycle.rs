//! A set's phase (open, closed, shut down) and its count of live tasks,
//! packed in one atomic word: [`Lifecycle`].
//!
//! One word, so that "closed and empty" is one reading, never two: a
//! `wait()` that read the phase and then the count could put together a
//! closed set with the count of the set after it was reopened. And one word,
//! so that an admission and a close are ordered by the word's modification
//! order alone: either the admission's increment comes first and whoever
//! closed sees the task in the count, or it comes after and the admission's
//! later read sees the set closed.
//!
//! # Invariants
//!
//! 1. The phase only moves Open → Closed → Open (by `close` and `reopen`)
//!    and from either to ShutDown, which is final.
//! 2. The count is the registry's `live` (`registry.rs`, invariant 1): it
//!    rises at each admission and falls at each recorded ending or undone
//!    admission, so it never wraps below zero.
//! 3. "Drained" (closed or shut down, and a count of zero) is read from one
//!    value, and every transition into it is made by one read-modify-write
//!    whose result says so: the registry wakes `wait()` only from those.

use crate::sync::atomic::{AtomicUsize, Ordering};

/// Set while the set rejects spawns: closed, or shut down.
const CLOSED: usize = 1;
/// Set once shutdown has begun (or the set was dropped); never cleared.
const SHUT_DOWN: usize = 2;
/// One live task.
const ONE: usize = 4;

/// The phase and the count of live tasks of one set.
pub(super) struct Lifecycle(AtomicUsize);

/// Where a set is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Spawns are accepted.
    Open,
    /// `close()`: spawns are rejected until `reopen()`.
    Closed,
    /// Shutdown has begun, or the set was dropped: spawns are rejected for
    /// good.
    ShutDown,
}

/// One reading of a [`Lifecycle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot(usize);

impl Snapshot {
    /// Tasks admitted and not finished.
    #[inline]
    pub(super) fn live(self) -> usize {
        self.0 / ONE
    }

    #[inline]
    pub(super) fn phase(self) -> Phase {
        if self.0 & SHUT_DOWN != 0 {
            Phase::ShutDown
        } else if self.0 & CLOSED != 0 {
            Phase::Closed
        } else {
            Phase::Open
        }
    }

    /// Spawns are accepted.
    #[inline]
    pub(super) fn is_open(self) -> bool {
        self.0 & CLOSED == 0
    }

    /// Closed (or shut down) with no task live.
    #[inline]
    pub(super) fn is_drained(self) -> bool {
        !self.is_open() && self.live() == 0
    }
}

// Orderings: every decision about this word is made from one value of it,
// and read-modify-writes of one location are totally ordered whatever their
// ordering, so nothing here needs `SeqCst`. Acquire on reads and AcqRel on
// read-modify-writes make a reader that sees a task gone (the count fall)
// see what the task did before it left, its recorded ending included; the
// registry's account rests on its shard locks, not on these.
impl Lifecycle {
    pub(super) fn new() -> Self {
        Lifecycle(AtomicUsize::new(0))
    }

    #[inline]
    pub(super) fn load(&self) -> Snapshot {
        // Acquire: see the orderings note above.
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Counts a task being admitted; returns the reading before.
    #[inline]
    pub(super) fn enter(&self) -> Snapshot {
        // AcqRel: see the orderings note above.
        Snapshot(self.0.fetch_add(ONE, Ordering::AcqRel))
    }

    /// Uncounts a task; returns the reading after.
    #[inline]
    pub(super) fn leave(&self) -> Snapshot {
        // AcqRel: see the orderings note above.
        let before = self.0.fetch_sub(ONE, Ordering::AcqRel);
        Snapshot(before - ONE)
    }

    /// Closes an open set; `Some(reading after)` if this call closed it.
    pub(super) fn close(&self) -> Option<Snapshot> {
        // AcqRel: see the orderings note above.
        let before = self.0.fetch_or(CLOSED, Ordering::AcqRel);
        (before & CLOSED == 0).then_some(Snapshot(before | CLOSED))
    }

    /// Reopens a set closed by `close`; `false` if it was open or shut down
    /// (invariant 1).
    pub(super) fn reopen(&self) -> bool {
        // Acquire: see the orderings note above.
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            if current & SHUT_DOWN != 0 || current & CLOSED == 0 {
                return false;
            }
            // AcqRel, and Acquire on failure: see the orderings note above.
            match self.0.compare_exchange_weak(
                current,
                current & !CLOSED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Shuts the set down for good; returns the reading after.
    pub(super) fn shut_down(&self) -> Snapshot {
        // AcqRel: see the orderings note above.
        let before = self.0.fetch_or(CLOSED | SHUT_DOWN, Ordering::AcqRel);
        Snapshot(before | CLOSED | SHUT_DOWN)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn close_and_reopen_change_the_phase_and_say_whether_they_did() {
        let lifecycle = Lifecycle::new();
        assert_eq!(lifecycle.load().phase(), Phase::Open);
        assert!(!lifecycle.reopen(), "an open set is not reopened");
        assert_eq!(lifecycle.close().map(Snapshot::phase), Some(Phase::Closed));
        assert_eq!(lifecycle.close(), None, "closing twice changes nothing");
        assert!(lifecycle.reopen());
        assert_eq!(lifecycle.load().phase(), Phase::Open);
    }

    #[test]
    fn a_shut_down_set_stays_shut_down() {
        let lifecycle = Lifecycle::new();
        lifecycle.close();
        assert_eq!(lifecycle.shut_down().phase(), Phase::ShutDown);
        assert!(!lifecycle.reopen());
        assert_eq!(lifecycle.close(), None);
        assert_eq!(lifecycle.load().phase(), Phase::ShutDown);
    }

    #[test]
    fn drained_is_closed_with_no_task_live() {
        let lifecycle = Lifecycle::new();
        assert!(!lifecycle.load().is_drained(), "open");
        assert_eq!(lifecycle.enter().live(), 0);
        let closed = lifecycle.close().unwrap();
        assert!(!closed.is_drained() && closed.live() == 1);
        let left = lifecycle.leave();
        assert!(left.is_drained());
        assert!(lifecycle.reopen());
        assert!(!lifecycle.load().is_drained());
    }
}
