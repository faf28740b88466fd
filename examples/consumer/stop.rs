//! The stop: what starts it, and the steps that always end it in bounded time.
//!
//! ```text
//!  SIGINT/SIGTERM (or: every message handled, or the queue drained)
//!  │ t = 0                 stop receiving; a receive call in flight may finish
//!  │                       (≤ RECEIVE_BOUND) and what it brought is released
//!  │ 0 ≤ t ≤ grace         in-flight handlers finish (TaskSet::shutdown(grace))
//!  │ t = grace             abort what remains (+ the task set's abort wait, 100 ms);
//!  │                       blocking handlers are left running, reported unresponsive
//!  │ + ≤ FLUSH_BOUND       flush the completions still pending (Batcher::shutdown)
//!  │ + ≤ RELEASE_BOUND     release what is left, so others may take it at once
//!  ▼                       report; main ends the runtime without waiting for
//!                          blocking threads (Runtime::shutdown_timeout)
//! ```
//!
//! So a stop returns within `grace + STOP_BOUND` (2.5 s) of its start, whatever the
//! handlers do. The steps after the handlers also run in a shield of the job
//! (`job.shield(grace + CLEANUP_BOUND)`): a step that overran its own bound would still
//! be cut there.

use std::time::Duration;

/// A receive call in flight: the broker's own wait (100 ms) plus a round trip.
pub const RECEIVE_BOUND: Duration = Duration::from_millis(500);
/// The task set's abort wait after the grace period.
pub const ABORT_WAIT: Duration = Duration::from_millis(100);
/// Flushing the completions still pending.
pub const FLUSH_BOUND: Duration = Duration::from_secs(1);
/// Releasing what is left for redelivery.
pub const RELEASE_BOUND: Duration = Duration::from_millis(500);
/// What the steps after the handlers may take beyond `--grace`, all together: they run
/// in a shield of the job that ends this long after the stop's start plus the grace.
pub const CLEANUP_BOUND: Duration = Duration::from_millis(2100);
/// What the stop may take beyond `--grace`: the sum of the steps above, plus the
/// runtime's shutdown and the report, rounded up.
pub const STOP_BOUND: Duration = Duration::from_millis(2500);
/// How long `main` lets the runtime wind down (blocking threads are not waited for).
pub const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);

/// Resolves with the name of the first SIGINT or SIGTERM.
///
/// The signal comes from `hangfree::scope::shutdown_signal()`: one root scope for the
/// process, cancelled on the first signal with a reason that names it ("service stopping
/// (SIGTERM)"); a second signal ends the process at once (130 or 143), so a stop that
/// hangs can still be ended with ctrl-c.
pub async fn signal() -> &'static str {
    let why = hangfree::scope::shutdown_signal().cancelled().await;
    match why.reason() {
        Some(reason) if reason.contains("SIGINT") => "SIGINT",
        _ => "SIGTERM",
    }
}

// The shield ends no earlier than the steps it covers, and the stop's promise covers
// the shield, the runtime's shutdown and the report.
const _: () = assert!(
    CLEANUP_BOUND.as_millis()
        == RECEIVE_BOUND.as_millis()
            + ABORT_WAIT.as_millis()
            + FLUSH_BOUND.as_millis()
            + RELEASE_BOUND.as_millis()
);
const _: () =
    assert!(CLEANUP_BOUND.as_millis() + RUNTIME_SHUTDOWN.as_millis() <= STOP_BOUND.as_millis());
