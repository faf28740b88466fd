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
//! # Comparison to `chunks_timeout`
//!
//! tokio-stream's `StreamExt::chunks_timeout(n, d)` knows size and the first
//! item's age. A `Batcher` adds per-item deadlines, concurrent flushes with a
//! bound and backpressure, a failure path that hands items back, and a
//! shutdown that reports every item.

mod batcher;
mod builder;
mod driver;
mod error;
mod flush;
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
mod state;
#[cfg(test)]
mod tests;
mod turn;
mod worker;

pub use batcher::Batcher;
pub use builder::BatcherBuilder;
pub use error::{BuildError, FlushError, PushError, TryPushError};
pub use push::Push;
pub use report::{AbandonedFlush, BatchReport, FailedBatch};
