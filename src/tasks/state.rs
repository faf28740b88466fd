//! [`SetState`]: what a set's handles and its tasks share. Each task holds
//! it through its ticket (`finish.rs`); the handles hold it through the
//! set's owner (`set.rs`), whose drop aborts what is left.
//!
//! Nothing here is hand-written shared state: the registry (`registry.rs`)
//! holds its own invariants, and the rest are tokio-util tokens and the
//! `max_in_flight` slots (`in_flight.rs`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::in_flight::InFlight;
use super::registry::Registry;
use super::runtime::Tokio;

// `repr(C)` with the registry first keeps its three hot counters on the
// same cache line as the `Arc`'s reference count, which every spawn and
// every task end touch anyway: one line moves between cores per task
// instead of three.
#[repr(C)]
pub(super) struct SetState {
    pub(super) registry: Registry<Tokio>,
    /// Given to tasks; cancelled when shutdown begins or the set is dropped.
    pub(super) token: CancellationToken,
    pub(super) in_flight: InFlight,
    /// How long a shutdown waits for its aborts to land.
    pub(super) abort_wait: Duration,
}

impl SetState {
    pub(super) fn new(
        token: CancellationToken,
        max_in_flight: Option<usize>,
        max_kept_failures: usize,
        abort_wait: Duration,
    ) -> Self {
        SetState {
            registry: Registry::new(max_kept_failures),
            token,
            in_flight: InFlight::new(max_in_flight),
            abort_wait,
        }
    }

    /// Stops admitting tasks and tells tasks and waiting spawns.
    pub(super) fn close(&self) {
        self.registry.close();
        self.in_flight.close();
        self.token.cancel();
    }
}
