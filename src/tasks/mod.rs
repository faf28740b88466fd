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
//! # Closing, waiting and failing fast
//!
//! A shutdown is the bounded stop. For the rest of a set's life:
//!
//! - [`TaskSet::close`] stops accepting tasks without cancelling anything,
//!   [`TaskSet::reopen`] undoes it, and [`TaskSet::wait`] waits until the set
//!   is closed and empty; [`TaskSet::wait_idle`] waits until it is empty,
//!   open or not. Neither wait has a time limit.
//! - [`TaskSet::track`] counts a future you poll yourself, like a task,
//!   without ever aborting it.
//! - [`TaskSetBuilder::failure_policy`] with [`FailurePolicy::CancelToken`]
//!   makes the first failure cancel the set's token, and
//!   [`TaskSet::first_failure`] waits for that failure, errgroup's
//!   `WithContext` and `Wait`.
//! - [`TaskSet::child`] makes a nested set that stops, and is reported,
//!   with its parent.
//! - [`TaskSet::reserve`] waits for a `max_in_flight` slot without taking
//!   your work, so that the wait can be abandoned in a `select!`.
//!
//! # A task's cancel scope
//!
//! A spawned task runs on its own: it does not run under the
//! [`CancelScope`](crate::CancelScope) of the code that spawned it, and
//! nothing is inherited silently, neither a cancellation nor a deadline. It
//! starts with no [current scope](crate::CancelScope::current): it is polled
//! by the runtime, not inside the future that spawned it, and usually outlives
//! the request. Give a task the scope it should stop with, by moving it into
//! the future: a child of the caller's scope (it ends with the request or job
//! that spawned it, deadline included: `CancelScope::current()` gives it in
//! code that was never handed one), or a scope made from the set's
//! [`token`](TaskSet::token) (it ends when the set shuts down).
//! [`enter`](crate::CancelScope::enter) makes a scope current for the task
//! without guarding it.
//!
//! ```
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::{CancelScope, TaskSet};
//!
//! #[tokio::main]
//! # async fn _hidden() {}
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let set = TaskSet::new();
//!     let request = CancelScope::new().with_timeout(Duration::from_secs(2));
//!
//!     // Ends with the request: its deadline, or its cancellation.
//!     let scope = request.child();
//!     set.spawn("audit log", async move {
//!         tokio::time::sleep(Duration::from_secs(60)).within(&scope).await
//!     })
//!     .unwrap();
//!
//!     // Ends when the set shuts down.
//!     let scope = CancelScope::from_token(&set.token());
//!     set.spawn("refresh cache", async move {
//!         std::future::pending::<()>().within(&scope).await
//!     })
//!     .unwrap();
//!
//!     tokio::time::sleep(Duration::from_secs(3)).await;
//!     // The request's deadline passed: an `Interrupted` is a failure.
//!     assert_eq!(set.counts().failed, 1);
//!     let report = set.shutdown(Duration::from_secs(1)).await;
//!     assert_eq!((report.failed(), report.completed()), (2, 0));
//! }
//! ```
//!
//! # Panics are reported twice
//!
//! A panic in a task is caught by the set, which counts it, keeps its
//! message and (with the `tracing` feature) logs it with the task's label.
//! Before that, as for any panic, Rust's process-wide panic hook has already
//! run, and the default hook prints the message to stderr: the same panic is
//! reported twice, once without the label. The set cannot turn the hook
//! off, since it is global. To keep only the set's report, install a hook
//! that skips panics on tokio's threads:
//!
//! ```
//! let default_hook = std::panic::take_hook();
//! std::panic::set_hook(Box::new(move |info| {
//!     // Tasks run on threads tokio names `tokio-runtime-worker` (worker and
//!     // blocking threads alike); the set reports their panics.
//!     if std::thread::current().name() != Some("tokio-runtime-worker") {
//!         default_hook(info);
//!     }
//! }));
//! ```
//!
//! That hook quiets every panic on those threads, including those of tasks
//! spawned outside any set, which nothing else may report: use it when all
//! your work runs in sets or is awaited. Tasks of a current-thread runtime
//! run on the thread that drives it, which it does not filter.
//!
//! # Comparison to `TaskTracker`, `JoinSet`, errgroup and tokio-graceful-shutdown
//!
//! What users of tokio-util's
//! [`TaskTracker`](https://docs.rs/tokio-util/0.7/tokio_util/task/task_tracker/struct.TaskTracker.html),
//! tokio's [`JoinSet`](tokio::task::JoinSet), Go's
//! [`errgroup`](https://pkg.go.dev/golang.org/x/sync/errgroup) and
//! [tokio-graceful-shutdown](https://docs.rs/tokio-graceful-shutdown) write
//! every day, and its `TaskSet` form (– where the anchor has no such call):
//!
//! | everyday call | `TaskTracker` | `JoinSet` | errgroup | tokio-graceful-shutdown | `TaskSet` |
//! |---|---|---|---|---|---|
//! | make one | `TaskTracker::new()` | `JoinSet::new()` | `errgroup.Group{}` | `Toplevel::new(f)` | [`TaskSet::new()`], [`TaskSet::builder()`] |
//! | spawn | `spawn(fut)` | `spawn(fut)` (`&mut`) | `g.Go(f)` | `start(SubsystemBuilder::new(name, f))` | [`spawn(label, fut)`](TaskSet::spawn), `&self` |
//! | spawn, keep the output | `spawn(fut)`, await the `JoinHandle` | `spawn(fut)`, then `join_next()` | – | – | [`spawn_with_handle(label, fut)`](TaskSet::spawn_with_handle) |
//! | blocking work | `spawn_blocking(f)` | `spawn_blocking(f)` | – | – | [`spawn_blocking(label, f)`](TaskSet::spawn_blocking) |
//! | `!Send` future | `spawn_local(fut)` | `spawn_local(fut)` | – | – | [`spawn_local(label, fut)`](TaskSet::spawn_local) |
//! | on another runtime | `spawn_on(fut, &handle)` | `spawn_on(fut, &handle)` | – | – | [`spawn_on(&handle, label, fut)`](TaskSet::spawn_on) |
//! | count a future you poll | `track_future(fut)` | – | – | – | [`track(label, fut)`](TaskSet::track) |
//! | bound concurrency | – | – | `g.SetLimit(n)`, `Go` waits | – | [`max_in_flight(n)`](TaskSetBuilder::max_in_flight), [`spawn_waiting`](TaskSet::spawn_waiting), [`reserve`](TaskSet::reserve) |
//! | stop accepting | `close()` (still accepts) | – | – | – | [`close()`](TaskSet::close) (rejects), [`reopen()`](TaskSet::reopen) |
//! | wait for all | `close(); wait().await` | `join_next()` loop, `join_all()` | `g.Wait()` | `handle_shutdown_requests(timeout)` | [`close(); wait().await`](TaskSet::wait), [`wait_idle()`](TaskSet::wait_idle) (no limit); [`shutdown(grace)`](TaskSet::shutdown) (bounded) |
//! | tell tasks to stop | your own token | – | `ctx` of `WithContext` | `subsys.on_shutdown_requested()` | [`token()`](TaskSet::token), cancelled by `shutdown` |
//! | first error cancels the rest | – | – | `errgroup.WithContext(ctx)` | the default (`ErrorAction::Forward`) | [`failure_policy(FailurePolicy::CancelToken)`](TaskSetBuilder::failure_policy) |
//! | the first error | – | the first `Err` from `join_next()` | returned by `g.Wait()` | in the `Err` of `handle_shutdown_requests` | [`first_failure().await`](TaskSet::first_failure) |
//! | every error and panic | each `JoinHandle` | each `join_next()` (lost if never joined) | the first only | `SubsystemError`s | counted, kept, logged: [`failures()`](TaskSet::failures), the report |
//! | stop within a time limit | – | – (`shutdown()` aborts, then waits without a limit) | – | `handle_shutdown_requests(timeout)` | [`shutdown(grace)`](TaskSet::shutdown): cancel, wait, abort, report |
//! | abort what is left | – | `abort_all()`, drop | – | after the timeout | after the grace period, and on drop |
//! | nested groups | – | – | – | `subsys.start(..)` in a subsystem | [`child(label)`](TaskSet::child) |
//! | what is running | `len()` | `len()` | – | – | [`len()`](TaskSet::len), [`running()`](TaskSet::running) (label, age, path), [`counts()`](TaskSet::counts) |
//!
//! And what the table does not show: a `JoinSet` keeps every output until
//! it is joined, while `TaskTracker` and `TaskSet` forget a task as soon as
//! it ends (memory is O(live tasks)); a `JoinSet`'s `shutdown` waits for
//! blocking closures that started, where a `TaskSet`'s reports them as
//! unresponsive after the grace period.
//!
//! Use a `JoinSet` when you want every task's output in the spawning task;
//! a `TaskTracker` when you only need to wait and tasks stop by themselves
//! (it is the lightest). Use a `TaskSet` for fire-and-forget work that must
//! not be lost silently and a stop that must not hang: a panic is never
//! re-raised into your code, and a task that hangs is aborted and named.
//! Tasks that need their output use [`TaskSet::spawn_with_handle`]; the
//! handle can be dropped without untracking the task.

mod builder;
mod child;
mod closing;
mod entry;
mod error;
mod failures;
mod finish;
mod handle;
mod in_flight;
mod lifecycle;
#[cfg(all(test, loom))]
mod loom_tests;
mod outcome;
mod permit;
mod policy;
mod registry;
mod report;
mod runtime;
mod set;
mod shards;
mod shutdown;
mod state;
mod track;
mod tracked;

pub use builder::{DEFAULT_ABORT_WAIT, DEFAULT_MAX_KEPT_FAILURES, TaskSetBuilder};
pub use error::{Rejected, RejectedTask, TaskError, TaskSetConfigError};
pub use handle::TaskHandle;
pub use outcome::TaskOutcome;
pub use permit::SpawnPermit;
pub use policy::FailurePolicy;
pub use report::{FailureKind, ShutdownReport, TaskCounts, TaskFailure, TaskId, TaskInfo};
pub use set::TaskSet;
pub use track::TrackedFuture;
