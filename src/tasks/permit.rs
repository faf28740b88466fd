//! Waiting for room before spawning: [`TaskSet::reserve`] and its
//! [`SpawnPermit`] (a `max_in_flight` slot held for a spawn that cannot
//! wait), and the waiting spawns built on them,
//! [`TaskSet::spawn_waiting`] and [`TaskSet::spawn_waiting_with_handle`].
//!
//! The reservation is the cancel-safe half: waiting for a slot holds
//! nothing of the caller's, so a `select!` may drop it at any point. The
//! work is handed over only once the slot is held, to a spawn that returns
//! at once.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use tokio::sync::OwnedSemaphorePermit;

use super::error::Rejected;
use super::finish::{HandedOn, Judged};
use super::handle::TaskHandle;
use super::in_flight::InFlightSlot;
use super::outcome::TaskOutcome;
use super::registry::Refusal;
use super::report::TaskId;
use super::set::TaskSet;

impl TaskSet {
    /// Waits for room for one task: a free
    /// [`max_in_flight`](super::TaskSetBuilder::max_in_flight) slot, held by
    /// the returned [`SpawnPermit`] until it spawns (or is dropped). Waiting
    /// callers are served in order. Without a limit it returns at once.
    ///
    /// It is rejected (and counted as a rejection) if the set is
    /// [closed](Self::close) or shuts down before a slot frees. The permit's
    /// spawn is rejected if the set closes after the permit was given.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, it leaves the queue and holds no
    /// slot, and it never held your work. This is the way to wait for room in
    /// a `select!` (against ctrl-c, say) without losing the message you were
    /// about to hand over: make the task only once the permit is there.
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
    ///     let set = TaskSet::builder().max_in_flight(1).build();
    ///     set.spawn("busy", tokio::time::sleep(Duration::from_secs(60))).unwrap();
    ///     let stop = tokio::time::sleep(Duration::from_secs(1)); // ctrl-c, say
    ///
    ///     let message = String::from("msg 17");
    ///     tokio::select! {
    ///         permit = set.reserve() => {
    ///             permit.unwrap().spawn("handle", async move { drop(message) }).unwrap();
    ///         }
    ///         () = stop => {
    ///             // Still ours: nack it, put it back in the queue.
    ///             assert_eq!(message, "msg 17");
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn reserve(&self) -> Result<SpawnPermit<'_>, Rejected<()>> {
        let state = self.state();
        let registry = &state.registry;
        let is_open = || registry.lifecycle().is_open();
        match state.in_flight.wait_for_slot(is_open).await {
            Some(permit) => Ok(SpawnPermit { set: self, permit }),
            None => {
                registry.count_rejected();
                let refusal = Refusal {
                    label: Cow::Borrowed(""),
                    phase: registry.lifecycle().phase(),
                };
                Err(Rejected::new((), refusal))
            }
        }
    }

    /// Like [`spawn`](Self::spawn), but when the set has a
    /// [`max_in_flight`](super::TaskSetBuilder::max_in_flight) limit and is
    /// full, waits until a slot frees before spawning: a
    /// [`reserve`](Self::reserve), then the permit's spawn. Waiting callers
    /// are served in order. Without a limit it spawns at once.
    ///
    /// Returns the future back in [`Rejected`] if the set is closed, or shuts
    /// down, before a slot frees.
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits, it holds no slot and spawns nothing, but the
    /// future you gave it is dropped with it. Where the wait may be
    /// abandoned (a `select!`), [`reserve`](Self::reserve) first and spawn
    /// on the permit: the future is handed over only once there is room.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
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
    ///     let set = TaskSet::builder().max_in_flight(2).build();
    ///     for n in 0..10 {
    ///         // Returns once one of the two slots is free.
    ///         set.spawn_waiting(format!("upload {n}"), async {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///         })
    ///         .await
    ///         .unwrap();
    ///         assert!(set.len() <= 2);
    ///     }
    /// }
    /// ```
    pub async fn spawn_waiting<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        let label = label.into();
        match self.reserve().await {
            Ok(permit) => permit.spawn(label, future),
            Err(rejected) => Err(rejected.for_work(future, label)),
        }
    }

    /// [`spawn_waiting`](Self::spawn_waiting) for a task whose output you
    /// want: waits for a slot, then spawns as
    /// [`spawn_with_handle`](Self::spawn_with_handle) does.
    ///
    /// # Cancel safety
    ///
    /// As [`spawn_waiting`](Self::spawn_waiting): dropped while it waits, the
    /// future is dropped unspawned; [`reserve`](Self::reserve) first where
    /// that matters.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::builder().max_in_flight(4).build();
    /// let handle = set.spawn_waiting_with_handle("count rows", async { 42 }).await.unwrap();
    /// assert_eq!(handle.await, Ok(42));
    /// # }
    /// ```
    pub async fn spawn_waiting_with_handle<F>(
        &self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskHandle<F::Output>, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let label = label.into();
        match self.reserve().await {
            Ok(permit) => permit.spawn_with_handle(label, future),
            Err(rejected) => Err(rejected.for_work(future, label)),
        }
    }
}

/// Room for one task in a [`TaskSet`], held until it spawns: made by
/// [`TaskSet::reserve`]. Its spawns never wait. Dropping it frees the slot.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let set = hangfree::TaskSet::builder().max_in_flight(1).build();
/// let permit = set.reserve().await.unwrap();
/// // The one slot is held: a second reservation would wait.
/// assert!(futures::FutureExt::now_or_never(set.reserve()).is_none());
/// permit.spawn("ack", async {}).unwrap();
/// # }
/// ```
#[must_use = "the slot is freed when the permit is dropped: spawn on it"]
pub struct SpawnPermit<'a> {
    set: &'a TaskSet,
    /// `None`: the set has no limit.
    permit: Option<OwnedSemaphorePermit>,
}

impl SpawnPermit<'_> {
    /// Spawns a fire-and-forget task in the reserved slot, as
    /// [`TaskSet::spawn`] does. Returns the future back in [`Rejected`] if the
    /// set was closed (or shut down) since the permit was given.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let permit = set.reserve().await.unwrap();
    /// let id = permit.spawn("send receipt", async { Ok::<(), String>(()) }).unwrap();
    /// assert_eq!(set.running()[0].id(), id);
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F>(
        self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskId, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutcome,
    {
        let slot = InFlightSlot::reserved(self.permit);
        self.set
            .spawn_async::<F, Judged>(label.into(), future, slot, tokio::spawn)
            .map(|(id, _join)| id)
    }

    /// Spawns a task in the reserved slot and returns a [`TaskHandle`] for
    /// its output, as [`TaskSet::spawn_with_handle`] does.
    ///
    /// # Panics
    ///
    /// Panics if called outside a tokio runtime, like `tokio::spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let set = hangfree::TaskSet::new();
    /// let permit = set.reserve().await.unwrap();
    /// let handle = permit.spawn_with_handle("sum", async { 1 + 2 }).unwrap();
    /// assert_eq!(handle.await, Ok(3));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_with_handle<F>(
        self,
        label: impl Into<Cow<'static, str>>,
        future: F,
    ) -> Result<TaskHandle<F::Output>, Rejected<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = InFlightSlot::reserved(self.permit);
        self.set
            .spawn_async::<F, HandedOn>(label.into(), future, slot, tokio::spawn)
            .map(|(id, join)| TaskHandle::new(id, join))
    }
}

impl fmt::Debug for SpawnPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnPermit")
            .field("holds_slot", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
