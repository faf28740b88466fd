//! Deadline-aware batching: acknowledgements flushed in bulk, and always
//! before their locks expire.
//!
//! Writes that are cheap in bulk and expensive one by one (message
//! completions, offset commits, metric points) are usually batched with a
//! rule that fails under one of two loads: "every 100 items" starves under
//! low load (a lone message's lock expires and it is processed twice), "every
//! 5 s" wastes latency under low load and round trips under high load. A
//! [`Batcher`] flushes by size, by age and by deadline, runs flushes
//! concurrently up to a bound, hands failures to a hook, and accounts for
//! every item at [`shutdown`](Batcher::shutdown).
//!
//! # The flush rule
//!
//! **A batch is flushed when it holds `max_items` items, or when its oldest
//! item has waited `max_delay`, or at the earliest deadline given to
//! [`push_by`](Batcher::push_by) minus the `deadline_margin` — whichever
//! comes first** (and as soon as a flush slot is free, if all `max_in_flight`
//! are busy then).
//!
//! ```text
//!  time ─────────────────────────────────────────────────────────────────▶
//!  push    a         b            c (deadline D)
//!          │         │            │
//!  batch   [a ───────[a,b─────────[a,b,c─────────┐
//!          │                                     │        │        │
//!          oldest item arrives                   │        │        │
//!                                     D - margin ┘        │        │
//!                              a's age = max_delay ───────┘        │
//!                                           D (lock expires) ──────┘
//!  flushed at the first of: full (max_items) │ D - margin │ a + max_delay
//! ```
//!
//! Under load batches fill and are flushed at once; with one message a
//! minute it is flushed `max_delay` after it arrived, not after a fixed
//! sleep, and an item whose lock expires sooner is flushed `margin` before
//! it expires.
//!
//! # Message completions with a lock duration
//!
//! A queue consumer receives messages locked for, say, 30 s; completing a
//! message after its lock expired fails and the message is delivered again.
//! Push each lock token with its expiry as the deadline, and set the margin
//! to what one completion call may take:
//!
//! ```
//! use std::time::Duration;
//! use hangfree::batch::{Batcher, FlushError};
//! use tokio::time::Instant;
//!
//! # struct Queue;
//! # impl Queue {
//! #     async fn complete(&self, _tokens: &[String]) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! #[tokio::main]
//! # async fn _unused() {}
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let queue = std::sync::Arc::new(Queue);
//!     let completions = Batcher::builder()
//!         .max_items(100) // the service's batch limit
//!         .max_delay(Duration::from_secs(5)) // latency under low load
//!         .deadline_margin(Duration::from_secs(5)) // a completion call's worst case
//!         .max_in_flight(4)
//!         .on_failure(|failed: FlushError<String, std::io::Error>| {
//!             // The locks will expire and the messages come back: log, count.
//!             eprintln!("{} completions failed: {}", failed.items.len(), failed.error);
//!         })
//!         .build(move |tokens: Vec<String>| {
//!             let queue = std::sync::Arc::clone(&queue);
//!             async move {
//!                 queue.complete(&tokens).await.map_err(|e| FlushError::new(tokens, e))
//!             }
//!         })
//!         .unwrap();
//!
//!     // For every message: its lock runs from when it was received.
//!     let received = Instant::now();
//!     let locked_until = received + Duration::from_secs(30);
//!     tokio::time::sleep(Duration::from_secs(27)).await; // slow processing
//!     // 3 s of lock left, less than the margin: its batch is flushed at once,
//!     // not after max_delay.
//!     completions.push_by("lock-token".to_string(), locked_until).await.unwrap();
//!
//!     // On shutdown, every token is accounted for.
//!     let report = completions.shutdown(Duration::from_secs(10)).await;
//!     assert!(report.is_complete(), "{report}");
//!     assert_eq!(report.elapsed(), Duration::ZERO);
//! }
//! ```
//!
//! # Pulling batches from a stream
//!
//! A consumer that pulls batches rather than pushing items gets the same
//! rule from [`StreamExt`]: [`batched(max_items, max_delay)`](StreamExt::batched)
//! yields `Vec` batches, full or when the oldest item has waited `max_delay`;
//! [`batched_by`](StreamExt::batched_by) does the same for `(item, deadline)`
//! pairs and also yields at the earliest deadline minus a margin. Neither
//! yields an empty batch, and both yield the remainder when the source ends.
//! They run in the consumer's task: no flush slots, no shutdown, nothing
//! spawned.
//!
//! With the `sink` feature, [`Batcher::sink`] turns a batcher into a
//! `futures_sink::Sink`, so that `stream.map(Ok).forward(batcher.sink())`
//! pushes a stream's items and shuts the batcher down when it ends.
//!
//! # Comparison to `chunks_timeout`, futures-batch and "sleep and flush"
//!
//! | what you write today | with hangfree |
//! |---|---|
//! | tokio-stream: `stream.chunks_timeout(100, d)` | `stream.`[`batched(100, d)`](StreamExt::batched): the same rule, with [`take_pending`](Batched::take_pending) for what it holds when you stop |
//! | futures-batch: `ChunksTimeoutStreamExt::chunks_timeout(stream, 100, d)` | `stream.batched(100, d)` |
//! | `chunks_timeout` over `(token, lock_expiry)`, hoping no lock expires inside `d` | `stream.`[`batched_by(100, d, margin)`](StreamExt::batched_by): yielded `margin` before the earliest expiry |
//! | a task that reads `chunks_timeout` and awaits each flush in turn | [`Batcher::builder()`](Batcher::builder)`.max_items(100).max_delay(d).max_in_flight(k).build(flush)`, then [`push`](Batcher::push): flushes run concurrently up to `k`, `push` waits when `capacity` items are pending |
//! | `loop { sleep(5 s).await; flush(take(&mut buffer)).await }` | `.max_delay(5 s)`: flushed 5 s after its oldest item, not on a fixed tick; a full batch at once; [`push_by`](Batcher::push_by) for items that expire |
//! | "flush every 100 items" | `.max_items(100)` with a `max_delay`, so a lone item is not stranded |
//! | `stream.forward(sink)` into a hand-written batching sink | `stream.map(Ok).forward(batcher.sink())` (feature `sink`) |
//! | on stop: `drop(tx); worker.await` (hangs while a flush hangs) | [`shutdown(grace)`](Batcher::shutdown): returns within `grace`, hands back what never started, names what it abandoned |
//! | a failed flush logged and its items dropped | [`FlushError`] hands them to [`on_failure`](BatcherBuilder::on_failure), or to the [`BatchReport`] |

mod batched;
mod batched_by;
mod batcher;
mod builder;
mod driver;
mod error;
mod ext;
mod flush;
mod gather;
mod grace;
#[cfg(all(test, loom))]
mod loom_stand_ins;
#[cfg(all(test, loom))]
mod loom_tests;
mod primitives;
mod progress;
mod push;
mod report;
mod runner;
mod shutdown;
#[cfg(feature = "sink")]
mod sink;
mod state;
#[cfg(test)]
mod tests;
mod turn;
mod worker;

pub use batched::Batched;
pub use batched_by::BatchedBy;
pub use batcher::Batcher;
pub use builder::BatcherBuilder;
pub use error::{BuildError, FlushError, PushError, TryPushError};
pub use ext::StreamExt;
pub use push::Push;
pub use report::{AbandonedFlush, BatchReport, FailedBatch};
#[cfg(feature = "sink")]
#[cfg_attr(docsrs, doc(cfg(feature = "sink")))]
pub use sink::BatchSink;
