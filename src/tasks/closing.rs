//! Closing a set without stopping it: [`TaskSet::close`] and
//! [`TaskSet::reopen`], and the waits [`TaskSet::wait`] (closed and empty)
//! and [`TaskSet::wait_idle`] (empty).
//!
//! Both waits register for their wake, then read the set's one word
//! (`lifecycle.rs`), and return when woken without reading it again: the
//! registry wakes them only from the value that made the set drained (or
//! idle), so a set that empties and refills before the waiter runs again
//! still ends the wait (`registry.rs`, invariant 7).

use std::pin::pin;

use super::set::TaskSet;

impl TaskSet {
    /// Stops accepting tasks, without cancelling the [`token`](Self::token):
    /// the tasks already in the set simply run to their end. Returns `true`
    /// if this call closed the set, `false` if it was closed already (or shut
    /// down).
    ///
    /// Spawns (and [`track`](Self::track)) are rejected from now on, as after
    /// [`shutdown`](Self::shutdown): the work is handed back in
    /// [`Rejected`](super::Rejected). Spawns waiting for a `max_in_flight`
    /// slot give up. Unlike a shutdown, nothing is cancelled or aborted, and
    /// [`reopen`](Self::reopen) undoes it. Child sets are not closed: each
    /// [child](Self::child) is closed on its own (its parent's shutdown does
    /// shut it down).
    ///
    /// Compare `TaskTracker::close`, which only marks the tracker for
    /// `wait` and keeps accepting tasks.
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
    ///     set.spawn("drain queue", tokio::time::sleep(Duration::from_secs(3))).unwrap();
    ///
    ///     assert!(set.close());
    ///     assert!(set.spawn("late", async {}).is_err());
    ///     set.wait().await; // the running task finishes on its own
    ///     assert_eq!(set.counts().completed, 1);
    ///     assert!(!set.token().is_cancelled());
    /// }
    /// ```
    pub fn close(&self) -> bool {
        self.state().close()
    }

    /// Accepts tasks again after [`close`](Self::close). Returns `true` if
    /// this call reopened the set; `false` if it was open, or has been shut
    /// down (or dropped), which is final.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// set.close();
    /// assert!(set.reopen());
    /// assert!(set.spawn("accepted again", async {}).is_ok());
    ///
    /// set.shutdown(std::time::Duration::ZERO).await;
    /// assert!(!set.reopen(), "a shut down set stays shut down");
    /// # }
    /// ```
    pub fn reopen(&self) -> bool {
        self.state().registry.reopen()
    }

    /// Waits until the set is closed (by [`close`](Self::close), a shutdown
    /// or the set's drop) and no task is tracked, like `TaskTracker::wait`.
    ///
    /// It resolves once the set has been closed and empty at some moment
    /// after its first poll, even if by the time it runs again the set has
    /// been reopened and has new tasks. It is safe to race with spawns (a
    /// spawn that loses the race to `close` is rejected, one that wins it is
    /// waited for) and with shutdowns. It does not wait for
    /// [child sets](Self::child).
    ///
    /// There is no time limit: a task that never ends (or ignores the token,
    /// once you cancel it) keeps `wait` pending, and so do the unresponsive
    /// tasks a shutdown leaves behind. For a stop that always returns, use
    /// [`shutdown`](Self::shutdown), or put `wait` under a deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
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
    ///     for n in 1..=3_u64 {
    ///         set.spawn("upload", tokio::time::sleep(Duration::from_secs(n))).unwrap();
    ///     }
    ///     set.close();
    ///     let waited = tokio::time::timeout(Duration::from_secs(10), set.wait()).await;
    ///     assert!(waited.is_ok());
    ///     assert_eq!(set.counts().completed, 3);
    /// }
    /// ```
    pub async fn wait(&self) {
        let registry = &self.state().registry;
        let mut drained = pin!(registry.drained().notified());
        // Registered before the state is read: a drain in between wakes it.
        drained.as_mut().enable();
        if registry.lifecycle().is_drained() {
            return;
        }
        drained.await;
    }

    /// Waits until no task is tracked, without closing the set: tasks can
    /// still be spawned meanwhile, and are waited for while they run.
    ///
    /// It resolves once the set has been empty at some moment after its
    /// first poll, even if tasks have been spawned again by the time it runs
    /// again. It does not wait for [child sets](Self::child). Like
    /// [`wait`](Self::wait), it has no time limit.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
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
    ///     set.spawn("warm cache", tokio::time::sleep(Duration::from_secs(2))).unwrap();
    ///     set.wait_idle().await;
    ///     assert!(set.is_empty() && !set.is_closed());
    /// }
    /// ```
    pub async fn wait_idle(&self) {
        let registry = &self.state().registry;
        let mut idle = pin!(registry.idle().notified());
        // Registered before the count is read: the last task leaving in
        // between wakes it.
        idle.as_mut().enable();
        if registry.lifecycle().live() == 0 {
            return;
        }
        idle.await;
    }
}
