//! The end of a task, written once for every kind of spawn: async or
//! blocking, fire and forget or with a handle, spawned at once or after
//! waiting for a slot, and for the futures a caller tracks (`track.rs`).
//!
//! Every admitted task holds a [`Ticket`]. Its work (`tracked.rs`) runs the
//! user's future or closure with panics caught and, at the end, hands the
//! result to [`Ticket::finish`]: the kind of spawn ([`Deliver`]) turns it
//! into the [`Ending`] recorded and the value the task's `JoinHandle`
//! carries, and the registry records the ending and forgets the task. A
//! ticket dropped without finishing (the task was aborted, or dropped with
//! its runtime) records [`Ending::Aborted`]. So each task's end is recorded
//! exactly once, whichever way it ends.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::time::Instant;

use super::outcome::{Ending, TaskOutcome};
use super::registry::Refusal;
use super::report::TaskKind;
use super::state::SetState;
use crate::panic::panic_message;

/// Held by every admitted task, inside its future or closure, until it
/// ends.
pub(super) struct Ticket {
    /// `None` once the ending is recorded.
    state: Option<Arc<SetState>>,
    id: u64,
}

impl Ticket {
    /// Admits a task about to be spawned (tracked and visible from now on),
    /// or counts a rejection once the set is closed.
    pub(super) fn admit(
        state: &Arc<SetState>,
        label: Cow<'static, str>,
        started: Instant,
        kind: TaskKind,
    ) -> Result<Ticket, Refusal> {
        let id = state.registry.admit(label, started, kind)?;
        Ok(Ticket {
            state: Some(Arc::clone(state)),
            id,
        })
    }

    #[inline]
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// The end of a task: records how it ended and forgets it, then returns
    /// what its `JoinHandle` carries. `result` is the task's output, or its
    /// panic's message.
    pub(super) fn finish<O, D: Deliver<O>>(&mut self, result: Result<O, String>) -> D::Output {
        let (ending, output) = D::deliver(result);
        self.record(ending);
        output
    }

    /// Records how the task ended (once; later calls and the drop do
    /// nothing).
    pub(super) fn record(&mut self, ending: Ending) {
        if let Some(state) = self.state.take() {
            state.registry.finish(self.id, ending);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.record(Ending::Aborted);
    }
}

/// What a kind of spawn makes of a task's result: the ending its set
/// records, and the value its `JoinHandle` carries.
pub(super) trait Deliver<O> {
    type Output;

    fn deliver(result: Result<O, String>) -> (Ending, Self::Output);
}

/// Fire and forget (`spawn`, `spawn_waiting`, `spawn_blocking`): the output
/// is judged by its [`TaskOutcome`]; nothing is handed on.
pub(super) struct Judged;

impl<O: TaskOutcome> Deliver<O> for Judged {
    type Output = ();

    fn deliver(result: Result<O, String>) -> (Ending, ()) {
        (Ending::judge(result), ())
    }
}

/// With a handle (`spawn_with_handle`, `spawn_blocking_with_handle`): any
/// output completes the task; the result goes to the handle (a panic as its
/// message).
pub(super) struct HandedOn;

impl<O> Deliver<O> for HandedOn {
    type Output = Result<O, String>;

    fn deliver(result: Result<O, String>) -> (Ending, Self::Output) {
        (Ending::handed_on(&result), result)
    }
}

/// Runs `work`, catching a panic as its message.
#[inline]
pub(super) fn catch_panic<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| panic_message(&*payload))
}
