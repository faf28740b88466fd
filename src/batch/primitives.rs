//! The pieces of tokio and tokio-util the batcher's hand-offs are built on,
//! and its clock. In the loom build (`RUSTFLAGS="--cfg loom"`) they are
//! stand-ins that loom can model (`loom_stand_ins.rs`): tokio's and
//! tokio-util's own primitives are built on `std`'s, which loom cannot see.

#[cfg(all(test, loom))]
pub(super) use super::loom_stand_ins::{CancellationToken, Notified, Notify, now};
#[cfg(not(all(test, loom)))]
pub(super) use tokio::sync::{Notify, futures::Notified};
#[cfg(not(all(test, loom)))]
pub(super) use tokio_util::sync::CancellationToken;

/// The batcher's clock: tokio's, so that it follows a paused clock exactly.
#[cfg(not(all(test, loom)))]
#[inline]
pub(super) fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}
