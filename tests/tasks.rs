//! Integration tests for `hangfree::tasks`, one file per area under
//! `tests/tasks/`. Timer behaviour runs under tokio's paused clock; the real
//! waits are blocking closures (real blocking is their nature), tasks that
//! never yield, and spawns racing a shutdown on other threads, each said
//! where it happens.

use std::time::Duration;

use tokio::sync::oneshot;

/// One millisecond and one second: the tests' units of time.
const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// Panics with `message`; typed `()` so that a task that only panics still
/// has a `TaskOutcome` output (a bare `panic!` block has type `!`).
fn boom(message: &str) {
    panic!("{message}")
}

/// Lets spawned tasks run until `done` holds (or fails after many rounds).
async fn run_until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

/// A blocking closure that really blocks until the test drops the returned release
/// handle: real blocking is the point, since a started blocking closure cannot be
/// aborted and these tests check how the set reports it. Waits at most 10 s, so a bug
/// cannot hang the run. Also returns a receiver told when the closure has started.
fn blocking_until_released() -> (
    impl FnOnce() + Send + 'static,
    oneshot::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let work = move || {
        started_tx.send(()).unwrap();
        let _ = released.recv_timeout(10 * SECOND);
    };
    (work, started_rx, release)
}

/// Errors and panics: counted, kept, bounded.
#[path = "tasks/failures.rs"]
mod failures;

/// The shutdown sequence, and the abort when the set is dropped.
#[path = "tasks/shutdown.rs"]
mod shutdown;

/// A grace or an abort wait of `Duration::MAX`.
#[path = "tasks/no_limit.rs"]
mod no_limit;

/// The report is the whole account while tasks end and spawns race it.
#[path = "tasks/report_race.rs"]
mod report_race;

/// Spawns after shutdown began hand their work back.
#[path = "tasks/rejected.rs"]
mod rejected;

/// Task handles.
#[path = "tasks/handle.rs"]
mod handle;

/// `max_in_flight` and `spawn_waiting`.
#[path = "tasks/max_in_flight.rs"]
mod max_in_flight;

/// `running()`, counters, `Debug` and `Display`.
#[path = "tasks/diagnostics.rs"]
mod diagnostics;

/// `close`, `reopen`, `wait` and `wait_idle`.
#[path = "tasks/closing.rs"]
mod closing;

/// `track`: futures the caller polls.
#[path = "tasks/track.rs"]
mod track;

/// `spawn_local` and `spawn_on`.
#[path = "tasks/local.rs"]
mod local;

/// The failure policy and `first_failure`.
#[path = "tasks/policy.rs"]
mod policy;

/// Child sets.
#[path = "tasks/child.rs"]
mod child;
