//! The failures a set keeps for [`TaskSet::failures`](super::TaskSet::failures)
//! and its reports: the most recent `max_kept_failures`, oldest first.
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
    /// Oldest first; never longer than `max`.
    list: Mutex<VecDeque<TaskFailure>>,
}

impl KeptFailures {
    pub(super) fn new(max: usize) -> Self {
        KeptFailures {
            max,
            list: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps the failure `failure` makes, dropping the oldest kept one if the
    /// list is full. With a maximum of zero, `failure` is not even called.
    pub(super) fn keep(&self, failure: impl FnOnce() -> TaskFailure) {
        if self.max == 0 {
            return;
        }
        let failure = failure();
        let mut list = lock(&self.list);
        if list.len() == self.max {
            list.pop_front();
        }
        list.push_back(failure);
    }

    /// The kept failures, oldest first.
    pub(super) fn to_vec(&self) -> Vec<TaskFailure> {
        lock(&self.list).iter().cloned().collect()
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.list).len()
    }
}
