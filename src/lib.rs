//! Tokio services where no await hangs forever, and nothing spawned or handed
//! off is silently lost.
//!
//! `hangfree` gathers the four tools a long-running export, consumer or batch
//! job needs to fail loudly instead of hanging quietly: cancel scopes with
//! deadlines, watchdogs for streams that stall, tracked task sets with a
//! bounded shutdown, and deadline-aware batching. Every timer is tokio's, so
//! everything here can be tested under tokio's paused clock.
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

mod fmt;
pub mod scope;

pub use scope::{CancelScope, Cause, FutureExt, Guarded, Interrupted};
pub mod tasks;

pub use tasks::{
    FailureKind, Rejected, ShutdownReport, TaskCounts, TaskError, TaskFailure, TaskHandle, TaskId,
    TaskInfo, TaskOutcome, TaskSet, TaskSetBuilder,
};
pub mod watchdog;

pub use watchdog::{IoWatchdog, Limits, StallKind, Stalled, Watchdog, deadman};
pub mod batch;

pub use batch::{BatchReport, Batcher};

pub mod prelude {
    //! The extension traits, imported as `_` so their methods are in scope
    //! without their names: `use hangfree::prelude::*;`.
    pub use crate::scope::FutureExt as _;
    pub use crate::watchdog::StreamExt as _;
}
