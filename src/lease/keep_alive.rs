//! [`KeepAlive`]: the work, its renewals and its deadman, polled as one future.
//!
//! The renewals live inside the future the deadman watches
//! ([`Deadman::watch`](crate::watchdog::Deadman::watch)): when the heartbeats stop, the
//! watcher drops the work and the renewals together, so silence needs no second clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

use super::handle::Lease;
use super::lost::Lost;
use crate::watchdog::{Deadman, Watch};

impl Lease {
    /// Runs `work` and keeps this lease alive meanwhile: calls `renew` on the
    /// [schedule](super#the-schedule) while `deadman`'s pulse beats, and stops renewing
    /// when the work completes, when the returned future is dropped, or when the lock is
    /// [`Lost`] (the work is then dropped).
    ///
    /// `renew` makes one renewal call: `Ok(())` if the broker renewed the lock, an error
    /// otherwise (a lock that is no longer ours is an error). It is called from the
    /// returned future's poll, one call at a time.
    ///
    /// A work that has finished is never thrown away: if it is ready when the future is
    /// polled, its output is returned, even if the lease ran out since the last poll (a
    /// runtime held back past the expiry, by blocking code or a starved worker). A
    /// renewal's answer wins over the expiry in the same way. A caller whose
    /// acknowledgement is only valid under the lock can compare the lease's
    /// [`expires_at`](Lease::expires_at) with the clock before it acknowledges.
    ///
    /// # Examples
    ///
    /// A handler that stops beating loses its lock at the deadman's limit:
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
    ///     let start = Instant::now();
    ///     let lease = Lease::new(start + lock, lock);
    ///     let (pulse, deadman) = deadman(Duration::from_secs(15));
    ///     let renewed = lease
    ///         .keep_alive(deadman, || async { Ok::<(), String>(()) }, async move {
    ///             tokio::time::sleep(Duration::from_secs(12)).await;
    ///             pulse.beat();
    ///             std::future::pending::<()>().await // hangs, silently
    ///         })
    ///         .await;
    ///     assert!(matches!(renewed, Err(Lost::Silent(_))));
    ///     assert_eq!(start.elapsed(), Duration::from_secs(27)); // 15 s after the last beat
    ///     assert_eq!(lease.renewals(), 2); // at 10 s and 20 s, none after
    ///     assert_eq!(lease.expires_at(), start + Duration::from_secs(50));
    /// }
    /// ```
    pub fn keep_alive<F, R, Fut, E>(
        &self,
        deadman: Deadman,
        renew: R,
        work: F,
    ) -> KeepAlive<F, R, Fut>
    where
        F: Future,
        R: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        KeepAlive::new(self.clone(), deadman, renew, work)
    }
}

pin_project! {
    /// Future returned by [`Lease::keep_alive`]: the work's output, or [`Lost`] once the
    /// lock could not be kept.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the work and a renewal call in flight, and nothing is renewed
    /// after that. Whether a renewal dropped in flight reached the broker is unknown; the
    /// lease's [`expires_at`](Lease::expires_at) still tells the earliest the lock can run
    /// out.
    #[must_use = "futures do nothing unless polled"]
    pub struct KeepAlive<F, R, Fut> {
        #[pin]
        watched: Watch<Renewing<F, R, Fut>>,
        lease: Lease,
    }
}

impl<F, R, Fut> KeepAlive<F, R, Fut> {
    pub(super) fn new<E>(lease: Lease, deadman: Deadman, renew: R, work: F) -> Self
    where
        F: Future,
        R: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let renewing = Renewing {
            work,
            renew,
            renewal: None,
            phase: Phase::Start,
            timer: None,
            lease: lease.clone(),
        };
        KeepAlive {
            watched: deadman.watch(renewing),
            lease,
        }
    }

    /// The lease this future keeps alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::lease::Lease;
    /// use hangfree::watchdog::deadman;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let lease = Lease::new(Instant::now() + Duration::from_secs(3), Duration::from_secs(3));
    /// let (_pulse, deadman) = deadman(Duration::from_secs(1));
    /// let kept = lease.keep_alive(deadman, || async { Ok::<(), String>(()) }, async { 1 });
    /// assert_eq!(kept.lease().expires_at(), lease.expires_at());
    /// # }
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl<F, R, Fut, E> Future for KeepAlive<F, R, Fut>
where
    F: Future,
    R: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Output = Result<F::Output, Lost<E>>;

    /// # Panics
    ///
    /// Panics if polled again after it completed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        let lost = match ready!(me.watched.poll(cx)) {
            Ok(Ok(output)) => return Poll::Ready(Ok(output)),
            Ok(Err(lost)) => lost,
            Err(stalled) => Lost::Silent(stalled),
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(
            why = match &lost {
                Lost::Silent(_) => "the work went silent",
                Lost::Renewal(_) => "a renewal failed",
                Lost::Expired { .. } => "it expired before a renewal was confirmed",
            },
            renewals = me.lease.renewals(),
            "hangfree lease lost"
        );
        Poll::Ready(Err(lost))
    }
}

impl<F, R, Fut> fmt::Debug for KeepAlive<F, R, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeepAlive")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Where the renewals stand.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Not polled yet: the schedule is read from the lease at the first poll.
    Start,
    /// The next renewal starts when the timer fires.
    Waiting,
    /// The timer fired in the previous poll; the renewal starts at this one. The turn in
    /// between lets the deadman, polled after us, trip first when it is due at the same
    /// instant: a silent worker never gets a renewal it was due at the moment it
    /// went silent.
    Due,
    /// A renewal started at `started` is in flight; the timer is the lease's expiry.
    InFlight { started: Instant },
}

pin_project! {
    /// The work plus its renewal schedule; what the deadman watches.
    struct Renewing<F, R, Fut> {
        #[pin]
        work: F,
        renew: R,
        #[pin]
        renewal: Option<Fut>,
        phase: Phase,
        // Boxed so that `KeepAlive` is `Unpin` whenever the work and the renewal are.
        timer: Option<Pin<Box<Sleep>>>,
        lease: Lease,
    }
}

impl<F, R, Fut> fmt::Debug for Renewing<F, R, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewing")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<F, R, Fut, E> Future for Renewing<F, R, Fut>
where
    F: Future,
    R: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    type Output = Result<F::Output, Lost<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        // The work first: if it is done, its output wins over a renewal due or an expiry
        // in the same poll.
        if let Poll::Ready(output) = me.work.poll(cx) {
            me.renewal.set(None);
            *me.timer = None;
            return Poll::Ready(Ok(output));
        }
        loop {
            match *me.phase {
                Phase::Start => {
                    let first = me.lease.started() + me.lease.renew_interval();
                    arm(me.timer, first);
                    *me.phase = Phase::Waiting;
                }
                Phase::Waiting => {
                    let timer = me
                        .timer
                        .get_or_insert_with(|| Box::pin(sleep_until(Instant::now())));
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *me.phase = Phase::Due;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Phase::Due => {
                    let now = Instant::now();
                    let expires_at = me.lease.expires_at();
                    if now >= expires_at {
                        // Not polled in time (a starved runtime, or a lease that had run
                        // out before it was kept alive): someone else may hold it now.
                        *me.timer = None;
                        return Poll::Ready(Err(Lost::Expired {
                            expired_at: expires_at,
                        }));
                    }
                    me.renewal.set(Some((me.renew)()));
                    arm(me.timer, expires_at);
                    *me.phase = Phase::InFlight { started: now };
                }
                Phase::InFlight { started } => {
                    let Some(renewal) = me.renewal.as_mut().as_pin_mut() else {
                        unreachable!("a renewal is in flight in this phase");
                    };
                    // Its answer wins over the expiry in the same poll: a broker that
                    // renewed checked that the lock was still ours.
                    match renewal.poll(cx) {
                        Poll::Ready(Ok(())) => {
                            me.renewal.set(None);
                            me.lease.renewed(started);
                            arm(me.timer, started + me.lease.renew_interval());
                            *me.phase = Phase::Waiting;
                        }
                        Poll::Ready(Err(error)) => {
                            me.renewal.set(None);
                            *me.timer = None;
                            return Poll::Ready(Err(Lost::Renewal(error)));
                        }
                        Poll::Pending => {
                            let timer = me
                                .timer
                                .get_or_insert_with(|| Box::pin(sleep_until(Instant::now())));
                            if timer.as_mut().poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            me.renewal.set(None);
                            *me.timer = None;
                            return Poll::Ready(Err(Lost::Expired {
                                expired_at: me.lease.expires_at(),
                            }));
                        }
                    }
                }
            }
        }
    }
}

/// Points the timer at `at`, creating it on first use (inside the runtime, at a poll).
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant) {
    match timer {
        Some(timer) => timer.as_mut().reset(at),
        None => *timer = Some(Box::pin(sleep_until(at))),
    }
}
