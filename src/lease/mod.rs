//! Locks kept alive while the work holding them shows life, and only then.
//!
//! A queue consumer receives a message locked for, say, 30 s. A handler that takes
//! longer must renew the lock, or the message is delivered to another consumer while it
//! is still being handled. Renewing "while the handler runs" is not enough either: a
//! handler that hangs would hold its message for ever. [`Lease::keep_alive`] runs the work
//! and renews its lock on a schedule derived from the lock period, only while the work
//! beats a [`deadman`](crate::watchdog::deadman) pulse; renewals stop when the work ends,
//! is dropped, or goes silent, and a lost lock is an error that says why ([`Lost`]).
//!
//! ```
//! use std::time::Duration;
//! use hangfree::lease::{Lease, Lost};
//! use hangfree::watchdog::deadman;
//! use tokio::time::Instant;
//!
//! # struct Queue;
//! # impl Queue {
//! #     async fn renew_lock(&self, _id: u64) -> Result<(), String> { Ok(()) }
//! # }
//! #[tokio::main]
//! # async fn _unused() {}
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     let queue = std::sync::Arc::new(Queue);
//!     let lock = Duration::from_secs(30);
//!     // Received now, locked for 30 s; renewed every 10 s (a third of the lock).
//!     let lease = Lease::new(Instant::now() + lock, lock);
//!     let (pulse, deadman) = deadman(Duration::from_secs(20));
//!
//!     let renew = || {
//!         let queue = queue.clone();
//!         async move { queue.renew_lock(7).await }
//!     };
//!     let handled = lease
//!         .keep_alive(deadman, renew, async move {
//!             for _step in 0..9 {
//!                 tokio::time::sleep(Duration::from_secs(10)).await; // 90 s of work
//!                 pulse.beat();
//!             }
//!             "handled"
//!         })
//!         .await;
//!     assert_eq!(handled.unwrap(), "handled");
//!     assert_eq!(lease.renewals(), 8); // at 10 s, 20 s, ... 80 s
//!     // Complete the message before `lease.expires_at()`.
//!     assert_eq!(lease.remaining(), Duration::from_secs(20));
//! #   let _ = std::marker::PhantomData::<Lost<String>>;
//! }
//! ```
//!
//! # The schedule
//!
//! A lease runs until [`expires_at`](Lease::expires_at); a renewal that **starts** at `s`
//! and succeeds moves the expiry to `s + period` (the start, not the answer: the broker
//! may have renewed the lock at any moment in between, so the earliest is the safe one).
//! Renewals start every [`renew_every`](Lease::renew_every) (a third of the period
//! unless set), counted from the lease's start, `expires_at - period`:
//!
//! ```text
//!  lock 30 s, renew_every 10 s, deadman idle 15 s; the work beats at 10 s and 20 s, then hangs
//!
//!  time     0s       10s       20s       30s  35s      40s                 60s
//!  beats             ♥         ♥
//!  renewals          R         R         R              (none from 35 s on)
//!  expiry   30s      40s       50s       60s ─────────────────────────────── runs out
//!                                             └ Lost::Silent: no heartbeat for 15 s
//! ```
//!
//! A renewal slower than `renew_every` is followed by the next one as soon as it
//! succeeds. A renewal still unanswered when the lease expires ends the keep-alive with
//! [`Lost::Expired`]: from then on another consumer may hold the lock.
//!
//! # When the lock is lost
//!
//! [`KeepAlive`] resolves with `Err(Lost)` and **drops the work**, as
//! [`Deadman::watch`](crate::watchdog::Deadman::watch) does: its message now belongs to
//! the queue again, and finishing it would only process it twice.
//!
//! - [`Lost::Silent`]: no heartbeat for the deadman's idle period. No renewal starts from
//!   that instant on, not even one due at the same instant.
//! - [`Lost::Renewal`]: a renewal returned an error (the broker says the lock is gone, or
//!   the call failed). Retrying a transient error is the renewal function's choice.
//! - [`Lost::Expired`]: the lease expired before a renewal was confirmed.
//!
//! When the work completes first its output is returned and renewals stop; the lock is
//! then held until [`expires_at`](Lease::expires_at), the deadline to complete the
//! message by (with [`Batcher::push_by`](crate::Batcher::push_by)).

mod handle;
mod keep_alive;
mod lost;

pub use handle::Lease;
pub use keep_alive::KeepAlive;
pub use lost::Lost;
