//! [`Lost`]: why a lock could not be kept alive.

use std::fmt;

use tokio::time::Instant;

use crate::watchdog::Stalled;

/// Why [`KeepAlive`](super::KeepAlive) gave up a lock; it dropped the work then.
///
/// `Display` is a sentence for an operator; the renewal's own error is the
/// [`source`](std::error::Error::source) of [`Lost::Renewal`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::lease::{Lease, Lost};
/// use hangfree::watchdog::deadman;
/// use tokio::time::Instant;
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let lock = Duration::from_secs(30);
///     let lease = Lease::new(Instant::now() + lock, lock);
///     let (pulse, deadman) = deadman(Duration::from_secs(60));
///     let refused = || async { Err::<(), _>("lock token not found") };
///     let work = async move {
///         loop {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///             pulse.beat();
///         }
///     };
///     let lost: Lost<&str> = lease.keep_alive(deadman, refused, work).await.unwrap_err();
///     assert!(matches!(lost, Lost::Renewal("lock token not found")));
///     assert_eq!(lost.to_string(), "lock lost: a renewal failed: lock token not found");
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Lost<E> {
    /// The work sent no heartbeat for its deadman's idle period: the lock was given up
    /// (no renewal from that instant on) and will run out at the lease's expiry.
    Silent(Stalled),
    /// A renewal returned this error: the broker refused it (the lock is someone else's,
    /// or gone) or the call failed.
    Renewal(E),
    /// The lease ran out at `expired_at` before a renewal was confirmed: one was still
    /// waiting for its answer, or could not start in time.
    Expired {
        /// The lease's expiry, as last confirmed.
        expired_at: Instant,
    },
}

impl<E> Lost<E> {
    /// `true` for [`Lost::Silent`]: the work stopped beating, rather than the broker or
    /// the clock taking the lock away.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::lease::Lost;
    /// use tokio::time::Instant;
    ///
    /// let lost: Lost<String> = Lost::Expired { expired_at: Instant::now() };
    /// assert!(!lost.is_silent());
    /// ```
    pub fn is_silent(&self) -> bool {
        matches!(self, Lost::Silent(_))
    }
}

impl<E: fmt::Display> fmt::Display for Lost<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Silent(stalled) => write!(f, "lock given up, the work went silent: {stalled}"),
            Lost::Renewal(error) => write!(f, "lock lost: a renewal failed: {error}"),
            Lost::Expired { .. } => {
                f.write_str("lock lost: it expired before a renewal was confirmed")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Lost<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Lost::Silent(stalled) => Some(stalled),
            Lost::Renewal(error) => Some(error),
            Lost::Expired { .. } => None,
        }
    }
}
