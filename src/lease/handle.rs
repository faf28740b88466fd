//! [`Lease`]: a lock's period, its renewal interval, and its current expiry, shared by
//! the keep-alive that renews it and whoever must act before it runs out.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::{Arc, Mutex, lock};

/// A lock held for `period` at a time, and when it runs out now.
///
/// Made from what the broker said on delivery ([`new`](Self::new)); renewed by
/// [`keep_alive`](Self::keep_alive) while the work beats; read with
/// [`expires_at`](Self::expires_at) to complete the message in time. Cheap to clone:
/// clones share the expiry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::lease::Lease;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let received = Instant::now();
/// let lease = Lease::new(received + Duration::from_secs(30), Duration::from_secs(30));
/// assert_eq!(lease.renew_interval(), Duration::from_secs(10));
/// assert_eq!(lease.remaining(), Duration::from_secs(30));
///
/// let lease = lease.renew_every(Duration::from_secs(5));
/// assert_eq!(lease.renew_interval(), Duration::from_secs(5));
/// # }
/// ```
#[derive(Clone)]
pub struct Lease {
    shared: Arc<Shared>,
    period: Duration,
    every: Duration,
}

/// What the clones of a lease share: written by its keep-alives, read by anyone.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    expires_at: Instant,
    renewals: u64,
}

impl Lease {
    /// A lock that runs until `expires_at` and that each renewal extends to `period`
    /// from the renewal's start. It is renewed every third of `period` unless
    /// [`renew_every`](Self::renew_every) says otherwise.
    ///
    /// Take `expires_at` on the safe side: when the request that received the message was
    /// sent, plus the lock period, since the broker started the lock at some moment after
    /// that.
    ///
    /// # Panics
    ///
    /// Panics if `period` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let sent = Instant::now();
    /// // ... the receive call returns a message locked for 60 s ...
    /// let lease = Lease::new(sent + Duration::from_secs(60), Duration::from_secs(60));
    /// assert_eq!(lease.expires_at(), sent + Duration::from_secs(60));
    /// # }
    /// ```
    #[track_caller]
    pub fn new(expires_at: Instant, period: Duration) -> Lease {
        assert!(
            !period.is_zero(),
            "a lease period must be greater than zero"
        );
        let every = (period / 3).max(Duration::from_nanos(1));
        Lease {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    expires_at,
                    renewals: 0,
                }),
            }),
            period,
            every,
        }
    }

    /// Renews every `every` instead of every third of the period. Shorter leaves more
    /// time for a slow or retried renewal before the lock runs out; longer costs fewer
    /// calls.
    ///
    /// # Panics
    ///
    /// Panics if `every` is zero, or not shorter than the period (the lock would run out
    /// before its renewal).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lock = Duration::from_secs(30);
    /// let lease = Lease::new(Instant::now() + lock, lock).renew_every(Duration::from_secs(20));
    /// assert_eq!(lease.renew_interval(), Duration::from_secs(20));
    /// # }
    /// ```
    #[track_caller]
    pub fn renew_every(mut self, every: Duration) -> Lease {
        assert!(
            !every.is_zero() && every < self.period,
            "a lease must be renewed more often than its period ({:?}), not every {every:?}",
            self.period
        );
        self.every = every;
        self
    }

    /// When the lock runs out, as far as this process knows: the lease's start plus the
    /// period, moved on by every renewal confirmed so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let at = Instant::now() + Duration::from_secs(5);
    /// assert_eq!(Lease::new(at, Duration::from_secs(5)).expires_at(), at);
    /// # }
    /// ```
    pub fn expires_at(&self) -> Instant {
        lock(&self.shared.state).expires_at
    }

    /// How long until [`expires_at`](Self::expires_at); zero once it has passed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lease = Lease::new(Instant::now() + Duration::from_secs(5), Duration::from_secs(5));
    /// tokio::time::sleep(Duration::from_secs(7)).await;
    /// assert_eq!(lease.remaining(), Duration::ZERO);
    /// # }
    /// ```
    pub fn remaining(&self) -> Duration {
        self.expires_at().saturating_duration_since(Instant::now())
    }

    /// Renewals confirmed so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lease = Lease::new(Instant::now() + Duration::from_secs(5), Duration::from_secs(5));
    /// assert_eq!(lease.renewals(), 0);
    /// # }
    /// ```
    pub fn renewals(&self) -> u64 {
        lock(&self.shared.state).renewals
    }

    /// The lock period: how long each renewal holds the lock for.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lease = Lease::new(Instant::now(), Duration::from_secs(5));
    /// assert_eq!(lease.period(), Duration::from_secs(5));
    /// # }
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How often renewals start (a third of the period by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lease = Lease::new(Instant::now(), Duration::from_secs(6));
    /// assert_eq!(lease.renew_interval(), Duration::from_secs(2));
    /// # }
    /// ```
    pub fn renew_interval(&self) -> Duration {
        self.every
    }

    /// Records a renewal that started at `started` and succeeded. The expiry never moves
    /// back, whatever order the keep-alives of two clones confirm in.
    pub(super) fn renewed(&self, started: Instant) {
        let mut state = lock(&self.shared.state);
        let expires_at = started.checked_add(self.period).unwrap_or(started);
        state.expires_at = state.expires_at.max(expires_at);
        state.renewals += 1;
    }

    /// When the lease started: one period before the expiry it was made with, or its
    /// expiry's last renewal.
    pub(super) fn started(&self) -> Instant {
        let expires_at = self.expires_at();
        expires_at.checked_sub(self.period).unwrap_or(expires_at)
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = *lock(&self.shared.state);
        f.debug_struct("Lease")
            .field("expires_at", &state.expires_at)
            .field("renewals", &state.renewals)
            .field("period", &self.period)
            .field("renew_every", &self.every)
            .finish()
    }
}
