//! Tokio services where no await hangs forever, and nothing spawned or handed
//! off is silently lost.
//!
//! `hangfree` gathers the four tools a long-running export, consumer or batch
//! job needs to fail loudly instead of hanging quietly:
//!
//! - [`scope`]: [`CancelScope`], cancellation with deadlines that flow down the
//!   call chain, and [`FutureExt::within`] to run any future inside one;
//! - [`watchdog`]: streams, byte streams and plain work that stall end with one
//!   [`Stalled`] error, and the stalled source is dropped at once;
//! - [`tasks`]: [`TaskSet`], tracked fire-and-forget work whose shutdown always
//!   returns, reporting what finished, failed, panicked or had to be aborted;
//! - [`batch`]: [`Batcher`], batching that flushes when full, when the oldest
//!   item is old enough, or before an item's own deadline.
//!
//! Every timer is tokio's, so everything here can be tested under tokio's
//! paused clock. The [`guide`] is a cookbook built from real failures, one
//! recipe each; `cargo run --example export` runs all four parts together.
//!
//! # Examples
//!
//! A consumer that processes messages within a deadline, watches its source for
//! stalls, and acknowledges in the background without ever hanging its stop:
//!
//! ```
//! use std::time::Duration;
//! use futures::StreamExt as _;
//! use hangfree::prelude::*;
//! use hangfree::watchdog::Limits;
//! use hangfree::{CancelScope, TaskSet};
//!
//! # /*
//! #[tokio::main]
//! # */
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let job = CancelScope::new().with_timeout(Duration::from_secs(600));
//!     let acks = TaskSet::new();
//!
//!     // A source that delivers three messages, then goes silent without closing.
//!     let source = futures::stream::iter(1..=3u32).chain(futures::stream::pending());
//!     let mut messages = std::pin::pin!(source.watchdog(Limits::new().idle(Duration::from_secs(30))));
//!
//!     while let Ok(Some(next)) = messages.next().within(&job).await {
//!         match next {
//!             Ok(message) => {
//!                 acks.spawn(format!("ack {message}"), async move {
//!                     tokio::time::sleep(Duration::from_millis(10)).await; // the broker call
//!                 })
//!                 .expect("the set is open");
//!             }
//!             Err(stalled) => {
//!                 // "stalled: no data for 30s (limit 30s) after 3 items (30s into the stream)"
//!                 eprintln!("{stalled}");
//! #               assert_eq!(
//! #                   stalled.to_string(),
//! #                   "stalled: no data for 30s (limit 30s) after 3 items (30s into the stream)"
//! #               );
//!                 break;
//!             }
//!         }
//!     }
//!
//!     let report = acks.shutdown(Duration::from_secs(5)).await;
//!     assert_eq!(report.completed(), 3);
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    clippy::missing_panics_doc
)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alarm;
mod error_chain;
mod fmt;
pub mod guide;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod panic;
pub mod scope;
mod sync;
mod time;

pub use scope::{CancelScope, Cause, FutureExt, Guarded, InterruptHook, Interrupted, Within};
pub mod tasks;

pub use tasks::{
    FailureKind, FailurePolicy, Rejected, RejectedTask, ShutdownReport, SpawnPermit, TaskCounts,
    TaskError, TaskFailure, TaskHandle, TaskId, TaskInfo, TaskOutcome, TaskSet, TaskSetBuilder,
    TaskSetConfigError, TrackedFuture,
};
pub mod watchdog;

pub use watchdog::{IoWatchdog, Limits, LimitsError, StallKind, Stalled, Watchdog, deadman};
pub mod batch;

pub use batch::{BatchReport, Batcher};
pub mod lease;

pub use lease::{KeepAlive, Lease, Lost};

pub mod prelude {
    //! The extension traits, imported as `_` so their methods are in scope
    //! without their names: `use hangfree::prelude::*;`.
    pub use crate::batch::StreamExt as _;
    pub use crate::scope::FutureExt as _;
    pub use crate::watchdog::StreamExt as _;
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
