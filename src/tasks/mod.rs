//! Tracked fire-and-forget work with a shutdown that always returns.
//!
//! A consumer that completes messages in the background must be able to stop:
//! wait a while for pending work, then give up on what hangs — and say what
//! it gave up on. A [`TaskSet`] tracks every task it spawns with a label and
//! an age, counts and keeps failures and panics, forgets finished tasks at
//! once (memory is O(live tasks)), and [`TaskSet::shutdown`] returns within
//! its grace period plus a short bound even if a task never completes, never
//! yields, or is a blocking closure that never returns.
//!
//! ```
//! use std::time::Duration;
//! use hangfree::TaskSet;
//!
//! #[tokio::main]
//! # async fn _hidden() {}
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let set = TaskSet::new();
//!     for message in 0..100_u32 {
//!         // Complete each message in the background, fire and forget.
//!         set.spawn("complete message", async move {
//!             tokio::time::sleep(Duration::from_millis(u64::from(message))).await;
//!             if message == 13 { Err("lock lost") } else { Ok(()) }
//!         })
//!         .expect("the set is open");
//!     }
//!     // One completion hangs forever: stop must not.
//!     set.spawn("complete message", std::future::pending::<()>()).unwrap();
//!
//!     let report = set.shutdown(Duration::from_secs(5)).await;
//!     assert_eq!(report.completed(), 99);
//!     assert_eq!(report.failures()[0].message(), "lock lost");
//!     assert_eq!(report.aborted().len(), 1);
//!     println!("{report}");
//! }
//! ```
//!
//! # The shutdown sequence
//!
//! ```text
//! shutdown(grace)
//! │ t = 0               close: later spawns get their work back (Rejected);
//! │                     token() is cancelled: cooperative tasks wrap up
//! │ 0 ≤ t ≤ grace       drain: the rest run on ── none left ──────────► report
//! │ t = grace           abort every remaining task (blocking closures
//! │                     that started cannot be aborted)
//! │ grace ≤ t ≤         aborts land at each task's next poll
//! │   grace+abort_wait  ── none left ─────────────────────────────────► report
//! │ t = grace+abort_wait
//! ▼                     what still runs is listed as unresponsive ────► report
//! ```
//!
//! `abort_wait` is 100 ms by default
//! ([`TaskSetBuilder::abort_wait`]), so `shutdown` returns at most about
//! `grace + 100 ms` after it was called.
//!
//! The report ([`ShutdownReport`]) holds the counters (completed, failed,
//! panicked, aborted), the kept failures (label plus error text or panic
//! message) and the label and age of every task aborted or unresponsive.
//! Unresponsive tasks stay tracked, so [`TaskSet::running`] still lists them.
//!
//! # Comparison to `JoinSet` and `TaskTracker`
//!
//! tokio's [`JoinSet`](tokio::task::JoinSet) and tokio-util's
//! [`TaskTracker`](https://docs.rs/tokio-util/0.7/tokio_util/task/task_tracker/struct.TaskTracker.html) are the closest neighbours.
//!
//! | | `JoinSet` | `TaskTracker` | `TaskSet` |
//! |---|---|---|---|
//! | memory after tasks finish | keeps every output until joined | freed at once | freed at once |
//! | spawn needs | `&mut self` | `&self`, cloneable | `&self`, cloneable |
//! | returns a handle | `AbortHandle` | `JoinHandle` | `TaskId`, or a `TaskHandle` on request |
//! | wait for all | `join_next` loop / `shutdown` (no time limit) | `close` + `wait` (no time limit) | `shutdown(grace)`: bounded |
//! | abort | `abort_all`, and on drop | only one by one, through each `JoinHandle` | after the grace period, and on drop of the last clone |
//! | labels, ages, `running()` | ids only | no | yes |
//! | errors and panics | returned by `join_next` (lost if never joined) | only through each `JoinHandle` | counted, kept (bounded), logged |
//! | blocking closures | `shutdown` aborts them only before they start, then waits for them | waited for | waited for up to `grace`, then reported as unresponsive |
//! | backpressure | no | no | `max_in_flight` + `spawn_waiting` |
//!
//! Use a `JoinSet` when you want every task's output in the spawning task;
//! a `TaskTracker` when you only need to wait and tasks stop by themselves
//! (it is the lightest). Use a `TaskSet` for fire-and-forget work that must
//! not be lost silently and a stop that must not hang: a panic is never
//! re-raised into your code, and a task that hangs is aborted and named.
//! Tasks that need their output use [`TaskSet::spawn_with_handle`]; the
//! handle can be dropped without untracking the task.

mod builder;
mod error;
mod failures;
mod finish;
mod handle;
mod in_flight;
#[cfg(all(test, loom))]
mod loom_tests;
mod outcome;
mod registry;
mod report;
mod runtime;
mod set;
mod shards;
mod shutdown;
mod state;
mod tracked;

pub use builder::{DEFAULT_ABORT_WAIT, DEFAULT_MAX_KEPT_FAILURES, TaskSetBuilder};
pub use error::{Rejected, TaskError};
pub use handle::TaskHandle;
pub use outcome::TaskOutcome;
pub use report::{FailureKind, ShutdownReport, TaskCounts, TaskFailure, TaskId, TaskInfo};
pub use set::TaskSet;
