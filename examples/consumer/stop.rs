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
//! handlers do.

use std::time::Duration;

/// A receive call in flight: the broker's own wait (100 ms) plus a round trip.
pub const RECEIVE_BOUND: Duration = Duration::from_millis(500);
/// The task set's abort wait after the grace period.
pub const ABORT_WAIT: Duration = Duration::from_millis(100);
/// Flushing the completions still pending.
pub const FLUSH_BOUND: Duration = Duration::from_secs(1);
/// Releasing what is left for redelivery.
pub const RELEASE_BOUND: Duration = Duration::from_millis(500);
/// What the stop may take beyond `--grace`: the sum of the steps above, plus the
/// runtime's shutdown and the report, rounded up.
pub const STOP_BOUND: Duration = Duration::from_millis(2500);
/// How long `main` lets the runtime wind down (blocking threads are not waited for).
pub const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);

/// Resolves with the name of the first SIGINT or SIGTERM.
///
/// The one place the stop signal comes from: when `hangfree::scope::shutdown_signal()`
/// exists, this becomes that root scope's `cancelled()`.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}
