//! The cookbook: one recipe per real failure, each the few lines of hangfree that
//! prevent it.
//!
//! This module holds no code; it is documentation only, like clap's `_cookbook`. Every
//! snippet below is compiled and run as a doctest (`cargo test --doc`), under tokio's
//! paused clock where time matters, so none of them can silently go stale.
//!
//! The end-to-end version of all of them together is the export example:
//! `cargo run --example export` (see `examples/export/main.rs`).
//!
//! # 1. The export that sat on a dead socket for hours, and reported success
//!
//! *A data export read a PostgreSQL `COPY ... TO STDOUT` stream from a replica. The server
//! terminated the query after 15 minutes, but the client's stream never ended: the job sat
//! on a socket for hours, and the scheduler reported success because failures were not
//! propagated.*
//!
//! Three things were missing: a limit on silence, a budget for the whole job, and an exit
//! code that tells the truth. A watchdog ends a stream that goes quiet with one
//! `Err(Stalled)` and drops it (closing the socket); a scope bounds the whole export; and the
//! error goes up, not into a log line.
//!
//! ```rust
//! use std::time::Duration;
//! use futures::{stream, StreamExt as _};
//! use hangfree::prelude::*;
//! use hangfree::watchdog::Limits;
//! use hangfree::CancelScope;
//!
//! /// Stands in for `client.copy_out(...)`: three chunks, then silence with the socket open.
//! fn copy_out() -> impl futures::Stream<Item = Vec<u8>> {
//!     stream::iter(vec![b"1,a\n".to_vec(), b"2,b\n".to_vec(), b"3,c\n".to_vec()])
//!         .chain(stream::pending())
//! }
//!
//! async fn export(job: &CancelScope) -> Result<u64, Box<dyn std::error::Error>> {
//!     // A query may think before its first row, but never go quiet for long after it.
//!     let limits = Limits::new()
//!         .first_item(Duration::from_secs(15 * 60))
//!         .idle(Duration::from_secs(60));
//!     let mut rows = 0;
//!     let mut chunks = std::pin::pin!(copy_out().watchdog(limits));
//!     while let Some(chunk) = chunks.next().within(job).await? {
//!         rows += chunk?.iter().filter(|&&b| b == b'\n').count() as u64;
//!     }
//!     Ok(rows)
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let job = CancelScope::new().with_timeout(Duration::from_secs(2 * 3600));
//!     let code = match export(&job).await {
//!         Ok(rows) => {
//!             println!("exported {rows} rows");
//!             0
//!         }
//!         Err(e) => {
//!             // "stalled: no data for 60s (limit 60s) after 3 items (...)": the scheduler sees a failure.
//!             eprintln!("export failed: {e}");
//!             # assert!(e.to_string().starts_with("stalled: no data for 60s (limit 60s) after 3 items"));
//!             1
//!         }
//!     };
//!     # assert_eq!(code, 1);
//!     # /*
//!     std::process::exit(code);
//!     # */
//! }
//! ```
//!
//! Two more habits from the example:
//!
//! - **Write to a temporary name, rename when complete.** `t3.csv.partial` becomes `t3.csv`
//!   only after the row count is checked. A truncated file that looks finished is the worst
//!   outcome: the next system trusts it.
//! - **Stop the query on the server too.** Dropping the stream closes *your* socket; on a
//!   half-open connection the server never hears of it. Send PostgreSQL a cancel request
//!   directly (tokio-postgres `CancelToken::cancel_query`), and if the backend is still
//!   `active` a moment later, `pg_terminate_backend` it. The cancel is not always enough: a
//!   backend blocked writing to a client that stopped reading (wait event `ClientWrite`) may
//!   not act on it; we saw one ignore it for more than three seconds, while terminating
//!   ended it in 15 ms (`tests/postgres_stall.rs` checks the whole sequence on a real server).
//!
//! # 2. The cancellable wait that leaked
//!
//! *A helper made an uncancellable call cancellable by racing it against "a delay that never
//! ends unless the token fires". When the real call finished first, the delay and its token
//! registration stayed alive: a slow memory leak in a long-running service.*
//!
//! `within` races the work against the scope without creating anything per call that could
//! outlive it: the scope's deadline timer and its token subscription are shared, and a
//! guarded future's only trace, one waiter entry, is removed when it completes or is dropped.
//! `tests/scope_leak.rs` counts heap bytes over a million guarded awaits to keep it so.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::CancelScope;
//!
//! async fn call_backend(n: u32) -> u32 {
//!     tokio::task::yield_now().await;
//!     n * 2
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     // One long-lived scope for the service; it is never cancelled in this snippet.
//!     let service = CancelScope::new().with_timeout(Duration::from_secs(24 * 3600));
//!     let mut total = 0;
//!     for n in 0..10_000 {
//!         // Nothing is left behind by a call that completes: no timer, no registration.
//!         total += call_backend(n).within(&service).await.unwrap();
//!     }
//!     assert_eq!(total, 99_990_000);
//! }
//! ```
//!
//! If the work itself cannot be cancelled (a blocking call), do not pretend to cancel it:
//! run it as a tracked task and stop *waiting* for it (recipe 3).
//!
//! # 3. The stop that never returned
//!
//! *A message consumer completed messages fire and forget, tracking the pending completions
//! in a dictionary. `Stop()` awaited all of them, and hung forever when one of them hung.*
//!
//! A `TaskSet` tracks fire-and-forget work by label, forgets each task as soon as it ends,
//! and its `shutdown(grace)` always returns: it cancels the set's token, lets work finish
//! for up to `grace`, aborts the rest, and reports what happened to each.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::tasks::TaskSet;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let completions = TaskSet::new();
//!     for message in 0..100u32 {
//!         completions
//!             .spawn(format!("complete message {message}"), async move {
//!                 // Message 7's completion hangs: the broker never answers.
//!                 if message == 7 {
//!                     std::future::pending::<()>().await;
//!                 }
//!                 tokio::time::sleep(Duration::from_millis(50)).await;
//!             })
//!             .expect("the set is open");
//!     }
//!
//!     let report = completions.shutdown(Duration::from_secs(5)).await;
//!     println!("{report}");
//!     assert_eq!(report.completed(), 99);
//!     assert_eq!(report.aborted().len(), 1);
//!     assert_eq!(report.aborted()[0].label(), "complete message 7");
//! }
//! ```
//!
//! To stop waiting on work that must not be dropped half way, await its handle inside a
//! scope: the wait ends at the deadline, the task runs on, still tracked and listed.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::tasks::TaskSet;
//! use hangfree::CancelScope;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let work = TaskSet::new();
//!     let handle = work
//!         .spawn_with_handle("settle invoice 42", async {
//!             tokio::time::sleep(Duration::from_secs(60)).await;
//!             "settled"
//!         })
//!         .expect("the set is open");
//!
//!     let request = CancelScope::new().with_timeout(Duration::from_secs(2));
//!     let waited = handle.within(&request).await;
//!     assert!(waited.unwrap_err().is_deadline()); // the caller answers in 2 s...
//!     assert_eq!(work.running()[0].label(), "settle invoice 42"); // ...the work goes on
//! }
//! ```
//!
//! # 4. Acknowledgements that waited too long, or not long enough
//!
//! *Batched acknowledgements, "complete lock tokens every 100 messages" or "sleep 5 s in a
//! loop", either waited too long under low load, so locks expired and messages were
//! processed twice, or wasted round trips under high load.*
//!
//! A `Batcher` flushes when a batch is full, or when its oldest item has waited `max_delay`,
//! or before the earliest per-item deadline given with `push_by`, whichever comes first. A
//! message whose lock expires in 30 s is completed before that, however quiet the queue.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::batch::{Batcher, FlushError};
//! use tokio::time::Instant;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
//!     let completer = Batcher::builder()
//!         .max_items(100)
//!         .max_delay(Duration::from_secs(5))
//!         .deadline_margin(Duration::from_secs(1))
//!         .build(move |lock_tokens: Vec<u64>| {
//!             let sent_tx = sent_tx.clone();
//!             async move {
//!                 // complete_messages(lock_tokens).await, in one round trip
//!                 sent_tx.send((Instant::now(), lock_tokens)).ok();
//!                 Ok::<(), FlushError<u64, std::io::Error>>(())
//!             }
//!         })
//!         .expect("valid settings");
//!
//!     // Low load: one message, whose lock expires in 3 s (sooner than max_delay).
//!     let start = Instant::now();
//!     completer.push_by(7, start + Duration::from_secs(3)).await.unwrap();
//!     let (at, batch) = sent.recv().await.unwrap();
//!     assert_eq!(batch, vec![7]);
//!     assert_eq!(at - start, Duration::from_secs(2)); // deadline minus the margin
//!
//!     let report = completer.shutdown(Duration::from_secs(5)).await;
//!     assert!(report.is_complete());
//! }
//! ```
//!
//! A flush that fails hands its items back with the error (`FlushError::new(items, error)`),
//! to the `on_failure` hook or to the shutdown report: nothing is dropped silently.
//!
//! # 5. The job that died half way
//!
//! *A batch job died half way through (its host process recycled) and nobody could tell
//! what had and had not been done.*
//!
//! Record progress where the next run will find it, in steps that are each complete or
//! absent:
//!
//! - each output is written under a temporary name and renamed when complete;
//! - a manifest lists the finished parts, and is itself replaced atomically (write a
//!   temporary file, rename);
//! - a rerun with the same output skips what the manifest lists and does the rest.
//!
//! The export example does exactly this (`examples/export/manifest.rs`);
//! `tests/export.rs` interrupts a run and checks that the second run exports only the
//! missing tables. For work that is not a stream, a deadman switch turns "it stopped making
//! progress" into an error instead of a hang:
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::watchdog::deadman;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let (pulse, deadman) = deadman(Duration::from_secs(30));
//!     let job = deadman.watch(async move {
//!         for step in 0.. {
//!             if step == 3 {
//!                 // A step that never finishes: no more beats.
//!                 std::future::pending::<()>().await;
//!             }
//!             tokio::time::sleep(Duration::from_secs(10)).await;
//!             pulse.beat();
//!         }
//!     });
//!     let stalled = job.await.unwrap_err();
//!     println!("{stalled}");
//! }
//! ```
//!
//! # 6. A stop that cannot hang (the consumer)
//!
//! *A message consumer completed messages "fire and forget" and tracked the pending
//! completions in a dictionary. `Stop()` awaited all of them and hung forever when one of
//! them hung.*
//!
//! Two waits made the stop unbounded: the handlers still running, and the completions
//! still pending. Give each a bound. Handlers run in a `TaskSet`: its `shutdown(grace)` lets
//! them finish for `grace`, aborts the rest, and names them. Completions go through a
//! `Batcher`: its `shutdown(bound)` flushes what is pending and hands back what it could
//! not send. Neither waits past its bound, whatever hangs.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::batch::{Batcher, FlushError};
//! use hangfree::TaskSet;
//! use tokio::time::Instant;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let handlers = TaskSet::builder().max_in_flight(16).build();
//!     // The completion call hangs for ever: the broker stopped answering.
//!     let completions = Batcher::builder()
//!         .max_items(100)
//!         .max_delay(Duration::from_millis(200))
//!         .build(|_ids: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
//!         .unwrap();
//!
//!     for id in 0..10u32 {
//!         let completions = completions.clone();
//!         handlers
//!             .spawn(format!("handle {id}"), async move {
//!                 if id == 3 {
//!                     std::future::pending::<()>().await; // a handler that hangs
//!                 }
//!                 completions.push(id).await.map_err(|_| "shutting down")
//!             })
//!             .unwrap();
//!     }
//!
//!     // Stop: bounded at every step.
//!     let stop = Instant::now();
//!     let handled = handlers.shutdown(Duration::from_secs(5)).await;
//!     let flushed = completions.shutdown(Duration::from_secs(1)).await;
//!     assert!(stop.elapsed() <= Duration::from_millis(6_100)); // grace + abort wait + flush bound
//!
//!     assert_eq!(handled.completed(), 9);
//!     assert_eq!(handled.aborted()[0].label(), "handle 3"); // named, with its message
//!     assert_eq!(flushed.abandoned_items(), 9); // sent, never answered: delivered again
//!     println!("{handled}\n{flushed}");
//! }
//! ```
//!
//! The same stop in `examples/consumer` adds a bound on the receive call in flight and on
//! the final release, and lists every message left for redelivery by ID; its process exits
//! within `--grace` + 2.5 s of SIGTERM, which `tests/consumer.rs` checks with a real signal.
//!
//! # 7. Completions that never let a lock expire (the consumer)
//!
//! *Batched acknowledgements (complete lock tokens every 100 messages, or sleep 5 s in a
//! loop) either waited too long under low load, so that locks expired and messages were
//! processed twice, or wasted round trips under high load.*
//!
//! Two things decide whether a lock runs out: how long the handler takes, and how long the
//! completion waits. A `Lease` kept alive by `Lease::keep_alive` renews the lock while the
//! handler beats a deadman pulse (a handler that goes silent stops being renewed, and its
//! message goes back to the queue). Then the completion is pushed with the lock's expiry
//! as its deadline: the `Batcher` flushes its batch before the earliest lock in it runs
//! out, however empty the batch is, and under load batches fill.
//!
//! ```rust
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use hangfree::batch::{Batcher, FlushError};
//! use hangfree::lease::Lease;
//! use hangfree::watchdog::deadman;
//! use tokio::time::Instant;
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let lock = Duration::from_secs(5);
//!     let completed_at = Arc::new(Mutex::new(None));
//!     let completions = Batcher::builder()
//!         .max_items(100)
//!         .max_delay(Duration::from_secs(30)) // patient under low load...
//!         .deadline_margin(Duration::from_secs(1)) // ...but never past a lock
//!         .build({
//!             let completed_at = completed_at.clone();
//!             move |_tokens: Vec<&'static str>| {
//!                 *completed_at.lock().unwrap() = Some(Instant::now());
//!                 async { Ok::<(), FlushError<&'static str, String>>(()) }
//!             }
//!         })
//!         .unwrap();
//!
//!     // One message under low load; its handler takes 12 s, more than two locks.
//!     let received = Instant::now();
//!     let lease = Lease::new(received + lock, lock);
//!     let (pulse, deadman) = deadman(Duration::from_secs(3));
//!     let renew = || async { Ok::<(), String>(()) }; // the broker's renew call
//!     lease
//!         .keep_alive(deadman, renew, async move {
//!             for _ in 0..12 {
//!                 tokio::time::sleep(Duration::from_secs(1)).await;
//!                 pulse.beat();
//!             }
//!         })
//!         .await
//!         .expect("the lock was kept");
//!     completions.push_by("lock-token", lease.expires_at()).await.unwrap();
//!
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     let completed_at = completed_at.lock().unwrap().expect("completed");
//!     assert!(completed_at < lease.expires_at()); // before the lock ran out, not after 30 s
//!     assert_eq!(lease.renewals(), 7); // every third of the lock, while it beat
//! }
//! ```
//!
//! `examples/consumer --strategy every-100` and `--strategy sleep-5s` show the two old rules
//! failing under low load (duplicates), and `docs/consumer.md` has the measured table.
//!
//!
//! # 8. The library call that never heard of its caller's deadline
//!
//! *A request has two seconds. Three calls down, a repository method runs a query with no
//! limit of its own: nobody handed it the request's scope, because every signature in
//! between would have needed a parameter. The request's budget ran out; the query did not
//! stop.*
//!
//! The caller makes its scope current (`within`, `run` and `enter` all do); the library
//! guards its own await with `within_current()`, which uses whatever scope is current at
//! its first poll, and does nothing when there is none. No signature changes.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::{CancelScope, Interrupted};
//!
//! /// Library code: no scope in its signature.
//! mod repository {
//!     use std::time::Duration;
//!     use hangfree::prelude::*;
//!
//!     pub async fn load_order(id: u32) -> Result<String, hangfree::Interrupted> {
//!         let query = async move {
//!             tokio::time::sleep(Duration::from_secs(30)).await; // a slow database
//!             format!("order {id}")
//!         };
//!         // The caller's budget, if it has one; none otherwise.
//!         query.within_current().await
//!     }
//! }
//!
//! /// The service's handler, between the two: it passes nothing down.
//! async fn handle(id: u32) -> Result<String, Interrupted> {
//!     repository::load_order(id).await
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let request = CancelScope::new()
//!         .with_name("GET /orders/7")
//!         .with_timeout(Duration::from_secs(2));
//!     let started = tokio::time::Instant::now();
//!     let answer = request.enter(handle(7)).await;
//!     let why = answer.unwrap_err();
//!     assert_eq!(started.elapsed(), Duration::from_secs(2)); // not 30
//!     assert_eq!(why.to_string(), "deadline of 2s of 'GET /orders/7' exceeded");
//!
//!     // Called where no scope is current (a test, a script), it simply runs.
//!     assert_eq!(handle(8).await.unwrap(), "order 8");
//! }
//! ```
//!
//! To give part of the work less time, derive the limit from the current scope, so that the
//! caller's deadline still applies: `CancelScope::current().unwrap_or_default().with_timeout(d)`.
//! A task spawned from inside does not inherit the current scope: pass it a child
//! (`work.within(&CancelScope::current().unwrap_or_default().child())`) or build its scope
//! from its set's token (`CancelScope::from_token(&set.token())`).
//!
//! # 9. The query that kept running on the server after the client gave up
//!
//! *The request's budget ran out and the client dropped the query's future, which closed its
//! socket. The server never noticed: the query went on scanning for twenty minutes, holding
//! its locks, for an answer nobody would read.*
//!
//! Dropping a future stops *your* side. To stop the other side, register an interrupt hook on
//! the scope: it runs once, when the scope is cancelled or its deadline passes, on the
//! thread that interrupts it (maybe outside the runtime, with no lock held). It does the
//! quick part itself and spawns the async part (PostgreSQL's cancel request, then
//! `pg_terminate_backend` if the query is still active) on a runtime `Handle` it captured.
//! Dropping the returned guard once the query is done deregisters it: a finished query is
//! never cancelled. Dropped *because* of the interrupt (the guard lives in the work that an
//! outer scope's cancel stops, and is dropped with it), it does not stop the hook: once the
//! scope or an ancestor is interrupted, the hook runs. The export example does exactly this
//! (`examples/export/server_stop.rs`).
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::CancelScope;
//! use tokio::sync::mpsc;
//!
//! /// Stands in for a `tokio_postgres::CancelToken`: sends the server its cancel request.
//! #[derive(Clone)]
//! struct CancelToken(mpsc::UnboundedSender<String>);
//!
//! impl CancelToken {
//!     async fn cancel_query(&self, why: String) {
//!         tokio::time::sleep(Duration::from_millis(5)).await; // a round trip to the server
//!         let _ = self.0.send(why);
//!     }
//! }
//!
//! async fn run_query(scope: &CancelScope, cancel: CancelToken) -> Result<u64, hangfree::Interrupted> {
//!     let runtime = tokio::runtime::Handle::current();
//!     // Armed before the query starts, so that no interrupt finds it running and unarmed.
//!     let _stop_on_server = scope.on_interrupt(move |why| {
//!         let why = why.to_string();
//!         runtime.spawn(async move { cancel.cancel_query(why).await });
//!     });
//!     let rows = async {
//!         tokio::time::sleep(Duration::from_secs(20 * 60)).await; // the server's long scan
//!         42
//!     };
//!     rows.within(scope).await
//!     // `_stop_on_server` is dropped here: had the query finished, nothing would be sent.
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let (server, mut cancel_requests) = mpsc::unbounded_channel();
//!     let request = CancelScope::new().with_timeout(Duration::from_secs(2));
//!     let answer = run_query(&request, CancelToken(server.clone())).await;
//!     assert!(answer.unwrap_err().is_deadline());
//!     // The server was told, with the reason.
//!     assert_eq!(cancel_requests.recv().await.unwrap(), "deadline of 2s exceeded");
//!
//!     // A query that finishes in time sends nothing.
//!     let quick = CancelScope::new().with_timeout(Duration::from_secs(3600));
//!     let ok = run_query(&quick, CancelToken(server)).await;
//!     assert_eq!(ok.unwrap(), 42);
//!     quick.cancel(); // later: its hook was dropped with the query
//!     assert!(cancel_requests.recv().await.is_none());
//! }
//! ```
//!
//! A hook on a scope that is already interrupted runs at once, before `on_interrupt`
//! returns; `InterruptHook::disarm` says whether it stopped the hook in time, as Go's
//! `stop` does for `context.AfterFunc`.
//!
//! `false` does not mean the hook has *finished*: the thread that interrupts takes the
//! hooks of the scopes it marks and runs them after, so a guard dropped meanwhile returns
//! while the hook is still on its way. A program that waits for the work its hooks start
//! before it exits (the export example waits for its server-side stops in a `TaskSet`)
//! must not close that wait first: count each armed hook until it is disarmed in time or
//! has handed its work on, and wait for that count to reach zero, as
//! `examples/export/server_stop.rs` does. Without it, a stop started a moment late found
//! the set already shut down, in about one SIGTERM of twenty on a loaded machine.
//!
//! # 10. The last acknowledgements, lost on the way out
//!
//! *On SIGTERM the consumer stopped at once, as it should. But the acknowledgements of the
//! messages it had already processed were in a batch that was never flushed: the broker
//! redelivered them, and they were processed twice. The fix that waited for the flush hung
//! the stop when the broker was down.*
//!
//! The flush must outlive the stop, but not for ever. A shield is a scope for exactly that:
//! when its parent is interrupted at `t`, it runs on until `t + grace`, then it is
//! interrupted too, saying why (its `source()` is the parent's interrupt). Everything else
//! stops at `t`.
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::{CancelScope, Cause};
//! use tokio::time::{Instant, sleep};
//!
//! /// Stands in for the broker's "complete these lock tokens" call.
//! async fn complete(batch: &[u64], broker_up: bool) {
//!     if !broker_up {
//!         std::future::pending::<()>().await;
//!     }
//!     sleep(Duration::from_millis(30 * batch.len() as u64)).await;
//! }
//!
//! async fn stop_consumer(consumer: &CancelScope, pending_acks: Vec<u64>, broker_up: bool) -> String {
//!     // Made before the stop, or after: the grace runs from the stop's instant either way.
//!     let flush = consumer.shield(Duration::from_secs(5));
//!     consumer.cancel_with("service stopping (SIGTERM)");
//!     match complete(&pending_acks, broker_up).within(&flush).await {
//!         Ok(()) => format!("{} acknowledgements flushed", pending_acks.len()),
//!         Err(why) => {
//!             // "grace of 5s exceeded after the outer scope was interrupted"
//!             assert_eq!(why.cause(), Cause::GraceExceeded);
//!             format!("{} acknowledgements left for redelivery: {why}", pending_acks.len())
//!         }
//!     }
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let consumer = CancelScope::new();
//!     let said = stop_consumer(&consumer, vec![1, 2, 3], true).await;
//!     assert_eq!(said, "3 acknowledgements flushed");
//!
//!     // The broker is down: the stop still ends, exactly 5 s after it began.
//!     let consumer = CancelScope::new();
//!     let began = Instant::now();
//!     let said = stop_consumer(&consumer, vec![4, 5], false).await;
//!     assert_eq!(began.elapsed(), Duration::from_secs(5));
//!     assert_eq!(
//!         said,
//!         "2 acknowledgements left for redelivery: \
//!          grace of 5s exceeded after the outer scope was interrupted"
//!     );
//! }
//! ```
//!
//! The shield is the one exception to "a deadline only tightens", and it is bounded: its
//! `deadline()` is the latest it can end (`t + grace`, or the parent's deadline plus the grace
//! before any interrupt), a deadline of its own still applies, and cancelling it stops it at
//! once.
//!
//! # 11. The host recycled the process mid-job, and nobody could tell what was done
//!
//! *A deployment sent the export job SIGTERM. It was killed half way through a table; the
//! next run started from scratch, and a file that looked complete was not.*
//!
//! `shutdown_signal()` is the process's stop scope: cancelled on the first SIGINT or SIGTERM,
//! with a reason naming it (a second signal ends the process at once, with 130 or 143, so a
//! stop that hangs can still be ended with ctrl-c). Make it the root of the job's scope.
//! The table in flight stops at once; its rows stay in their `.partial` file; the manifest
//! lists what finished; the summary says what was interrupted and why; the exit code is not
//! 0; and a rerun resumes. The export example does all of it (`tests/export.rs` sends it a
//! real SIGTERM).
//!
//! ```rust
//! use std::time::Duration;
//! use hangfree::prelude::*;
//! use hangfree::CancelScope;
//! use tokio::time::sleep;
//!
//! /// Stands in for one table's export: `seconds` of work, written to `<table>.csv.partial`
//! /// and renamed to `<table>.csv` only once complete.
//! async fn export_table(seconds: u64) {
//!     sleep(Duration::from_secs(seconds)).await;
//! }
//!
//! /// The job: returns its exit code, with what finished and what did not.
//! async fn export(stop: CancelScope, tables: &[(&str, u64)]) -> (i32, Vec<String>) {
//!     let job = stop.with_name("export job").with_timeout(Duration::from_secs(3600));
//!     let mut report = Vec::new();
//!     for (table, seconds) in tables {
//!         if let Err(why) = job.check() {
//!             report.push(format!("{table}: not started: {why}"));
//!             continue;
//!         }
//!         match export_table(*seconds).within(&job).await {
//!             Ok(()) => report.push(format!("{table}: done")), // and into the manifest
//!             Err(why) => report.push(format!("{table}: interrupted: {why} (kept as .partial)")),
//!         }
//!     }
//!     let complete = report.iter().all(|line| line.ends_with(": done"));
//!     (if complete { 0 } else { 1 }, report)
//! }
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     # /*
//!     let stop = hangfree::scope::shutdown_signal();
//!     # */
//!     # let stop = CancelScope::new();
//!     # let signal = stop.clone();
//!     # tokio::spawn(async move {
//!     #     sleep(Duration::from_secs(90)).await; // SIGTERM arrives during t2
//!     #     signal.cancel_with("service stopping (SIGTERM)");
//!     # });
//!     let (code, report) = export(stop, &[("t1", 60), ("t2", 60), ("t3", 60)]).await;
//!     for line in &report {
//!         eprintln!("{line}");
//!     }
//!     # assert_eq!(code, 1);
//!     # assert_eq!(
//!     #     report,
//!     #     [
//!     #         "t1: done",
//!     #         "t2: interrupted: cancelled: service stopping (SIGTERM) (kept as .partial)",
//!     #         "t3: not started: cancelled: service stopping (SIGTERM)",
//!     #     ]
//!     # );
//!     # /*
//!     std::process::exit(code);
//!     # */
//! }
//! ```
//!
//! The stop is bounded by what runs after it: the work in flight is dropped at once, and
//! whatever must still run (acknowledgements, notices, the server-side stop of a query) gets
//! a grace of its own (a shield, a `TaskSet` shutdown, a `Batcher` shutdown).
//!
//! # 12. The budget that died at the first hop (a request, from the edge to the database)
//!
//! *The edge gave a request 2 s. The service behind it had no idea and waited 30 s on a
//! stalled database; when the edge's client hung up, the query ran on for nobody.*
//!
//! With the `http` feature, [`DeadlineLayer`](crate::http::DeadlineLayer) turns the
//! caller's budget (`grpc-timeout`, `connect-timeout-ms`, Envoy's header) into the request's
//! scope, current while the handler runs, and ends the request in its own protocol when the
//! scope ends. The repository three calls down was never handed the scope: it honours it
//! through [`within_current`](crate::FutureExt::within_current), and a hang-up reaches it
//! the same way.
//!
//! ```rust
//! # #[cfg(feature = "http")]
//! # mod recipe {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use hangfree::http::DeadlineLayer;
//! use hangfree::prelude::*;
//! use tower::ServiceExt as _;
//!
//! /// A repository method, three calls below the handler, with no scope parameter.
//! async fn orders_of(customer: u64) -> Result<Vec<String>, hangfree::Interrupted> {
//!     // Stands in for `client.query("select …", &[&customer])` on tokio-postgres: a
//!     // database that stalls.
//!     let query = async move {
//!         tokio::time::sleep(Duration::from_secs(30)).await;
//!         vec![format!("order of {customer}")]
//!     };
//!     // Honours whatever budget its caller runs under; dropped (and with it the
//!     // connection's query) when that budget ends.
//!     query.within_current().await
//! }
//!
//! async fn handler() -> String {
//!     match orders_of(42).await {
//!         Ok(orders) => orders.join("\n"),
//!         Err(why) => why.to_string(),
//!     }
//! }
//!
//! pub async fn main() {
//!     let service = Router::new()
//!         .route("/orders", get(handler))
//!         .layer(DeadlineLayer::new(Duration::from_secs(10)));
//!     let request = http::Request::get("/orders")
//!         .header("grpc-timeout", "2S") // what the edge has left for us
//!         .body(axum::body::Body::empty())
//!         .unwrap();
//!     let started = tokio::time::Instant::now();
//!     let response = service.oneshot(request).await.unwrap();
//!     // The handler answered itself at the request's deadline: 2 s, not 30.
//!     assert_eq!(started.elapsed(), Duration::from_secs(2));
//!     let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
//!     assert_eq!(body, "deadline of 2s of 'GET /orders' exceeded");
//! }
//! # }
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! #     #[cfg(feature = "http")]
//! #     recipe::main().await;
//! # }
//! ```
//!
//! With tokio-postgres, the dropped query future does not stop the query on the server:
//! register an interrupt hook on the request's scope that sends the cancel request (see
//! recipe 9). Outgoing calls to other services go through
//! [`PropagateLayer`](crate::http::PropagateLayer), which sends what is left of the budget
//! and drops the call when it ends.
