//! The failures a set keeps for [`TaskSet::failures`](super::TaskSet::failures)
//! and its reports, the most recent `max_kept_failures`, oldest first; and
//! the set's first failure, for
//! [`TaskSet::first_failure`](super::TaskSet::first_failure) and the failure
//! policy.
//!
//! # Invariants
//!
//! 1. The list never holds more than `max` failures; keeping one more
//!    drops the oldest.
//! 2. Failures are in the order they were kept. The registry keeps a
//!    failure while it holds the failed task's shard lock, and a report
//!    reads the list while it holds every shard's, so a failure is in a
//!    report's list exactly when the report counts it (`registry.rs`,
//!    invariant 6).
//! 3. The first failure is decided once, under the list's lock: the first
//!    failure kept while it is `Waiting` becomes it, and no later one does.
//!    A shutdown's report settles it (`Settled`) if no task has failed by
//!    then, so the answer never changes once given: exactly one failure is
//!    ever the first, or none is.
//!
//! # Deadlock safety
//!
//! The list's lock is always the last one taken (after a shard's), and
//! nothing else is locked, and no user code runs, while it is held.

use std::collections::VecDeque;

use super::report::TaskFailure;
use crate::sync::{Mutex, lock};

pub(super) struct KeptFailures {
    max: usize,
    list: Mutex<List>,
}

struct List {
    /// Oldest first; never longer than `max`.
    kept: VecDeque<TaskFailure>,
    first: First,
}

/// The set's first failure (invariant 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum First {
    /// No task has failed yet, and no shutdown has reported.
    Waiting,
    /// The first failure.
    Failed(TaskFailure),
    /// A shutdown reported before any task failed.
    Settled,
}

impl KeptFailures {
    pub(super) fn new(max: usize) -> Self {
        KeptFailures {
            max,
            list: Mutex::new(List {
                kept: VecDeque::new(),
                first: First::Waiting,
            }),
        }
    }

    /// Keeps the failure `failure` makes, dropping the oldest kept one if the
    /// list is full. Returns `true` if it is the set's first failure. With a
    /// maximum of zero, once the first is decided, `failure` is not even
    /// called.
    pub(super) fn keep(&self, failure: impl FnOnce() -> TaskFailure) -> bool {
        let mut list = lock(&self.list);
        let first = list.first == First::Waiting;
        if self.max == 0 && !first {
            return false;
        }
        let failure = failure();
        if first {
            list.first = First::Failed(failure.clone());
        }
        if self.max > 0 {
            if list.kept.len() == self.max {
                list.kept.pop_front();
            }
            list.kept.push_back(failure);
        }
        first
    }

    /// The kept failures, oldest first.
    pub(super) fn to_vec(&self) -> Vec<TaskFailure> {
        lock(&self.list).kept.iter().cloned().collect()
    }

    /// The kept failures, for a shutdown's report, which settles the first
    /// failure if there is none yet (invariant 3).
    pub(super) fn to_vec_settling(&self) -> Vec<TaskFailure> {
        let mut list = lock(&self.list);
        if list.first == First::Waiting {
            list.first = First::Settled;
        }
        list.kept.iter().cloned().collect()
    }

    pub(super) fn first(&self) -> First {
        lock(&self.list).first.clone()
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.list).kept.len()
    }
}
