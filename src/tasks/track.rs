//! Counting work that is not a task: [`TaskSet::track`] and
//! [`TrackedFuture`], a future its caller polls, tracked like a task (label,
//! age, outcome, in reports) and never aborted, since the set does not own
//! it.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::error::Rejected;
use super::finish::Ticket;
use super::outcome::Ending;
use super::report::{TaskId, TaskKind};
use super::set::TaskSet;
use crate::panic::panic_message;

impl TaskSet {
    /// Tracks a future that the caller polls itself (a connection's serve
    /// loop, a `select!` branch, work driven by another executor): it is
    /// counted and listed like a task, with a label and an age, until it
    /// completes or is dropped, but it runs where the caller polls it.
    ///
    /// The future is never aborted, since it is not the set's to abort: a
    /// shutdown waits up to its grace period for it, cancels the set's
    /// [`token`](Self::token) as for every task, and then reports it as
    /// unresponsive if it is still running (it stays tracked until it ends).
    /// Its output is the caller's, passed through unjudged: it counts as
    /// completed. A panic while it is polled is counted, kept and logged as
    /// the task's panic, then goes on unwinding into the caller. Dropped
    /// before it completed, it counts as aborted (its future was dropped
    /// unfinished). It leaves the set when it completes, before the
    /// [`TrackedFuture`] is dropped.
    ///
    /// Returns the future back in [`Rejected`] if the set is closed or shut
    /// down. `max_in_flight` does not apply. Compare
    /// `TaskTracker::track_future`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// #[tokio::main]
    /// # async fn _hidden() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let set = TaskSet::new();
    ///     let serve = set
    ///         .track("serve connection", async {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///             42_u64
    ///         })
    ///         .unwrap();
    ///     assert!(set.running()[0].is_tracked_future());
    ///
    ///     assert_eq!(serve.await, 42); // polled here, by the caller
    ///     assert_eq!(set.counts().completed, 1);
    ///     assert!(set.is_empty());
    /// }
    /// ```
    pub fn track<F: Future>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TrackedFuture<F>, Rejected<F>> {
        match Ticket::admit(
            self.state(),
            label.into(),
            Instant::now(),
            TaskKind::Tracked,
        ) {
            Ok(ticket) => Ok(TrackedFuture { future, ticket }),
            Err(refusal) => Err(Rejected::new(future, refusal)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future its caller polls, tracked by a [`TaskSet`]: made by
    /// [`TaskSet::track`]. It yields the inner future's output.
    #[must_use = "futures do nothing unless polled"]
    pub struct TrackedFuture<F> {
        #[pin]
        future: F,
        ticket: Ticket,
    }
}

impl<F> TrackedFuture<F> {
    /// The id the set lists it under.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let tracked = set.track("poll me", async {}).unwrap();
    /// assert_eq!(set.running()[0].id(), tracked.id());
    /// # }
    /// ```
    pub fn id(&self) -> TaskId {
        TaskId(self.ticket.id())
    }
}

impl<F: Future> Future for TrackedFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                this.ticket.record(Ending::Completed);
                Poll::Ready(output)
            }
            Err(payload) => {
                this.ticket
                    .record(Ending::Panicked(panic_message(&*payload)));
                resume_unwind(payload)
            }
        }
    }
}

impl<F> fmt::Debug for TrackedFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedFuture")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}
