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
