//! [`SetState`]: what a set's handles and its tasks share. Each task holds
//! it through its ticket (`finish.rs`); the handles hold it through the
//! set's owner (`set.rs`), whose drop aborts what is left.
//!
//! Nothing here is hand-written shared state of its own: the registry
//! (`registry.rs`) holds its invariants, and the rest are tokio-util tokens,
//! the `max_in_flight` slots (`in_flight.rs`) and the list of child sets
//! (`child.rs` says how it is kept).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::in_flight::InFlight;
use super::registry::Registry;
use super::runtime::Tokio;
use crate::sync::lock;

// `repr(C)` with the registry first keeps its hot words on the same cache
// line as the `Arc`'s reference count, which every spawn and every task end
// touch anyway: one line moves between cores per task instead of three.
#[repr(C)]
pub(super) struct SetState {
    pub(super) registry: Registry<Tokio>,
    /// Given to tasks; cancelled when shutdown begins or the set is dropped
    /// (and at the first failure, if the policy says so).
    pub(super) token: CancellationToken,
    pub(super) in_flight: InFlight,
    /// How long a shutdown waits for its aborts to land.
    pub(super) abort_wait: Duration,
    /// The child sets (`child.rs`): shut down, aborted and reported with
    /// this one. Weak, so that a child whose last handle and tasks are gone
    /// is gone.
    pub(super) children: Mutex<Vec<Weak<SetState>>>,
}

/// What a set is made with (`builder.rs`).
pub(super) struct Settings {
    pub(super) token: CancellationToken,
    pub(super) max_in_flight: Option<usize>,
    pub(super) max_kept_failures: usize,
    pub(super) abort_wait: Duration,
    pub(super) cancel_on_failure: bool,
    pub(super) path: Arc<str>,
}

impl SetState {
    pub(super) fn new(settings: Settings) -> Self {
        let Settings {
            token,
            max_in_flight,
            max_kept_failures,
            abort_wait,
            cancel_on_failure,
            path,
        } = settings;
        SetState {
            registry: Registry::new(
                max_kept_failures,
                path,
                cancel_on_failure.then(|| token.clone()),
            ),
            token,
            in_flight: InFlight::new(max_in_flight),
            abort_wait,
            children: Mutex::new(Vec::new()),
        }
    }

    /// Stops admitting tasks until `reopen`, and tells waiting spawns;
    /// `true` if this call closed the set.
    pub(super) fn close(&self) -> bool {
        let closed = self.registry.close();
        if closed {
            self.in_flight.closed();
        }
        closed
    }

    /// Stops admitting tasks for good and tells tasks and waiting spawns.
    pub(super) fn shut_down(&self) {
        self.registry.shut_down();
        self.in_flight.closed();
        self.token.cancel();
    }

    /// Shuts this set down, then its children, then theirs; returns them
    /// all in that order, this one first. Each set is shut down before its
    /// children are listed, so a child made meanwhile is either listed or
    /// made shut down (`child.rs`).
    pub(super) fn shut_down_tree(self: &Arc<Self>) -> Vec<Arc<SetState>> {
        let mut tree = vec![Arc::clone(self)];
        let mut next = 0;
        while let Some(state) = tree.get(next).cloned() {
            state.shut_down();
            tree.extend(state.live_children());
            next += 1;
        }
        tree
    }

    /// The children still alive (a handle or a task holds them).
    fn live_children(&self) -> Vec<Arc<SetState>> {
        lock(&self.children)
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }
}
