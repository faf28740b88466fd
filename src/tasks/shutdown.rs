//! How a [`TaskSet`] stops: [`TaskSet::shutdown`], its sequence (close,
//! drain up to the grace period, abort, wait up to the abort wait, report)
//! and its real-time backstop, the crate's alarm (`src/alarm.rs`).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::entry::{AbortBy, ShutdownId};
use super::registry::Registry;
use super::report::ShutdownReport;
use super::runtime::Tokio;
use super::set::TaskSet;
use super::state::SetState;
use crate::alarm::Alarm;

impl TaskSet {
    /// Stops the set and reports what happened. It always returns, within
    /// about `grace` plus the [abort wait](super::TaskSetBuilder::abort_wait)
    /// (100 ms by default):
    ///
    /// 1. at once: stop accepting tasks (later spawns get [`Rejected`](super::Rejected)) and
    ///    cancel [`token`](Self::token);
    /// 2. until `grace` has passed: let tracked tasks finish; return as soon
    ///    as none is left;
    /// 3. then abort what remains and wait up to the abort wait for the
    ///    aborts to land;
    /// 4. report: counters, kept failures, the tasks aborted (label, age) and
    ///    those still running (blocking closures that had started, tasks that
    ///    never yield), which stay tracked.
    ///
    /// Calling it again returns a fresh report (with nothing new aborted
    /// unless tasks were still waiting). Shutdowns may run concurrently: each
    /// report lists the tasks that this shutdown aborted (none, if another
    /// one aborted them first); counters and unresponsive tasks are the set's.
    /// The report is one consistent snapshot:
    /// `spawned == completed + failed + panicked + aborted + unresponsive`.
    ///
    /// It is the whole account of the spawns that returned `Ok`, including
    /// those made on other threads while `shutdown` runs: each of those
    /// tasks is in it exactly once, counted as completed, failed, panicked or
    /// aborted, or listed as unresponsive. A task is tracked from the moment
    /// its spawn is accepted, before the spawn call returns; one whose spawn
    /// call has not returned yet when the report is taken (its thread was
    /// descheduled, say) is listed as unresponsive and, once the grace period
    /// has passed, aborted as soon as its spawn returns. `shutdown` never
    /// waits for spawn calls in progress, so they do not lengthen it.
    ///
    /// # Waiting without a limit
    ///
    /// A `grace` whose end cannot be represented as an
    /// [`Instant`], such as `Duration::MAX`, is not
    /// clamped: it means no limit. `shutdown` then waits until every task
    /// has ended, aborts nothing, and does not return while a task runs. The
    /// [abort wait](super::TaskSetBuilder::abort_wait) is read the same way.
    ///
    /// [Child sets](Self::child) are shut down with the set, at once and
    /// within the same grace period and abort wait, and their tasks are in
    /// the report after the set's own, each with its label path; the
    /// counters are the sums.
    ///
    /// Call it from outside the set: a task of the set that awaits its own
    /// set's shutdown waits for itself, and is aborted with the rest once
    /// the grace period has passed.
    ///
    /// A task that never yields occupies its worker thread and cannot be
    /// aborted: `shutdown` lists it as unresponsive. On a multi-thread
    /// runtime tokio's timers are driven by the workers, so when every worker
    /// is pinned no timer fires; a shutdown that has to wait therefore also
    /// sets an alarm on hangfree's one process-wide alarm thread (parked while
    /// nothing is due) that wakes it at `grace` and at the end of the abort
    /// wait in real time. The deadlines are still read from tokio's clock, so under
    /// a paused clock the timings are exactly tokio's.
    ///
    /// The one limit: the shutdown future must be polled. Awaited from
    /// `block_on`, another runtime or a free worker, it returns on time; awaited
    /// inside a task of a runtime whose every worker is pinned (or of a
    /// current-thread runtime pinned by such a task) it cannot run at all
    /// until a worker frees.
    ///
    /// # Panics
    ///
    /// Panics if the runtime has no timer (`enable_time`), as
    /// `tokio::time::timeout` does.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future early leaves the set closed and its token
    /// cancelled; tasks are aborted only if the grace period had passed.
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
    ///     set.spawn("hangs", std::future::pending::<()>()).unwrap();
    ///
    ///     let report = set.shutdown(Duration::from_secs(5)).await;
    ///     assert_eq!(report.aborted()[0].label(), "hangs");
    ///     assert_eq!(report.aborted()[0].age(), Duration::from_secs(5));
    ///     assert_eq!(report.elapsed(), Duration::from_secs(5));
    /// }
    /// ```
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let started = Instant::now();
        // This set first, then its children: they stop together.
        let tree = self.state().shut_down_tree();
        let mut run = Run {
            aborted_by: vec![None; tree.len()],
            tree,
            alarm: None,
        };
        let drained = run.wait_idle_until(started.checked_add(grace)).await;
        if !drained {
            for (state, aborted_by) in run.tree.iter().zip(&mut run.aborted_by) {
                let by = state.registry.next_shutdown();
                *aborted_by = Some(by);
                state.registry.abort_all(AbortBy::Shutdown(by));
            }
            // Aborted async tasks finish at their next poll; tasks that never
            // yield and started blocking closures will not, hence the bound.
            let abort_deadline = Instant::now().checked_add(self.state().abort_wait);
            run.wait_idle_until(abort_deadline).await;
        }
        // Each report takes its set's aborts: `Run` has nothing left to
        // forget.
        let elapsed = started.elapsed();
        let mut parts = run
            .tree
            .iter()
            .zip(&mut run.aborted_by)
            .map(|(state, aborted_by)| state.registry.report(aborted_by.take(), elapsed));
        let mut report = parts.next().expect("the tree holds the set itself");
        parts.for_each(|child| report.absorb(child));
        drop(run);
        #[cfg(feature = "tracing")]
        if report.is_clean() {
            tracing::info!(report = %report, "task set shut down");
        } else {
            tracing::warn!(
                aborted = report.aborted.len(),
                unresponsive = report.unresponsive.len(),
                failed = report.counts.failed,
                panicked = report.counts.panicked,
                report = %report,
                "task set shut down with failures or stuck tasks"
            );
        }
        report
    }
}

/// One shutdown in progress: the sets it stops (the set and its children),
/// its real-time backstop and, once it aborted tasks, its id in each set.
/// Dropped early (the shutdown future was dropped), it stops listing its
/// aborts.
struct Run {
    tree: Vec<Arc<SetState>>,
    /// Per set of `tree`: set once it aborted tasks, until its report took
    /// their list.
    aborted_by: Vec<Option<ShutdownId>>,
    alarm: Option<Alarm>,
}

impl Run {
    /// Waits until the set is idle (`true`) or `deadline` has passed on
    /// tokio's clock (`false`; `None`: no deadline).
    ///
    /// tokio's timer wakes it at the deadline; so does the alarm thread, in
    /// real time, for when no worker drives the timers (every worker pinned
    /// by a task that never yields). Either way the deadline is checked
    /// against tokio's clock, so under a paused clock only tokio's timer
    /// (auto-advance, `advance`) moves the shutdown on.
    async fn wait_idle_until(&mut self, deadline: Option<Instant>) -> bool {
        if self.tree.iter().all(|state| state.registry.len() == 0) {
            return true;
        }
        // No alarm for a deadline already passed (a zero grace or abort
        // wait): the first poll below returns.
        if let Some(deadline) = deadline.filter(|&deadline| deadline > Instant::now()) {
            if self.alarm.is_none() {
                self.alarm = Some(Alarm::new());
            }
            if let Some(alarm) = &self.alarm {
                alarm.set(deadline);
            }
        }
        let alarm = self.alarm.as_ref();
        let tree = &self.tree;
        // One set after the other: a set that is shut down and idle stays
        // idle, so once the last is, all are.
        let mut idle = pin!(async move {
            for state in tree {
                wait_idle(&state.registry).await;
            }
        });
        let mut sleep = pin!(deadline.map(tokio::time::sleep_until));
        poll_fn(|cx| {
            if idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            let (Some(deadline), Some(sleep)) = (deadline, sleep.as_mut().as_pin_mut()) else {
                return Poll::Pending;
            };
            // Registered before the clock is read: a ring in between is
            // not lost.
            if let Some(alarm) = alarm {
                alarm.register(cx.waker());
            }
            if sleep.poll(cx).is_ready() || Instant::now() >= deadline {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for (state, aborted_by) in self.tree.iter().zip(&self.aborted_by) {
            if let Some(by) = *aborted_by {
                state.registry.forget_aborted(by);
            }
        }
    }
}

/// Waits until no task is tracked.
async fn wait_idle(registry: &Registry<Tokio>) {
    loop {
        let mut notified = pin!(registry.idle().notified());
        // Enabled before `len` is read: a task leaving in between wakes it.
        notified.as_mut().enable();
        if registry.len() == 0 {
            return;
        }
        notified.await;
    }
}
