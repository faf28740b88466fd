//! [`deadman`]: a heartbeat for work that is not a stream. The work's
//! [`Pulse`]s record beats in shared state; the watcher, [`Watch`], reads it
//! only when its one lazy timer fires.
//!
//! # Invariants
//!
//! 1. `base` is fixed when the deadman is made; `last_beat` is the time of
//!    the latest beat, in nanoseconds from `base`, and only grows
//!    (`fetch_max`), even when beats from several threads race.
//! 2. So the deadline, `last_beat + idle`, only moves later: the watcher's
//!    timer, armed for an earlier deadline, fires early and is moved on,
//!    never too late. A beat never touches the timer.
//! 3. The watch marks its own start as a beat when it is first polled: a
//!    beat before that counts from then.
//! 4. A stall is declared only when the clock has reached the deadline read
//!    *after* the timer fired, so a beat that came while the timer was
//!    firing keeps the work alive.
//!
//! No lock is involved: the pulses and the watcher share two atomics, and
//! each is a hint read by a single watcher that publishes no other memory,
//! so `Relaxed` suffices for both.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::stalled::Report;
use super::timer::LazyTimer;
use super::{Progress, StallKind, Stalled};

/// A dead man's switch for work that is not a stream: the work calls
/// [`Pulse::beat`], and the future watched by [`Deadman::watch`] fails with
/// [`Stalled`] once no beat has come for `idle`.
///
/// The clock starts when the watched future is first polled; a beat before
/// that counts from then.
///
/// # Panics
///
/// Panics if `idle` is zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::{deadman, StallKind};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let (pulse, deadman) = deadman(Duration::from_secs(30));
///     let work = async move {
///         for _page in 0..3 {
///             tokio::time::sleep(Duration::from_secs(10)).await; // fetch a page
///             pulse.beat();
///         }
///         std::future::pending::<()>().await; // and then it hangs
///     };
///     let stalled = deadman.watch(work).await.unwrap_err();
///     assert_eq!(stalled.kind(), StallKind::Idle);
///     assert_eq!(stalled.progress().count(), 3);
/// }
/// ```
#[track_caller]
pub fn deadman(idle: Duration) -> (Pulse, Deadman) {
    match try_deadman(idle) {
        Ok(pair) => pair,
        Err(err) => panic!("{err}"),
    }
}

/// [`deadman`] for an `idle` read from configuration: an error instead of a panic when it
/// is zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::try_deadman;
/// use hangfree::LimitsError;
///
/// assert_eq!(try_deadman(Duration::ZERO).unwrap_err(), LimitsError::ZeroDeadmanIdle);
/// assert!(try_deadman(Duration::from_secs(30)).is_ok());
/// ```
pub fn try_deadman(idle: Duration) -> Result<(Pulse, Deadman), super::LimitsError> {
    if idle.is_zero() {
        return Err(super::LimitsError::ZeroDeadmanIdle);
    }
    let shared = Arc::new(Shared {
        base: Instant::now(),
        last_beat: AtomicU64::new(0),
        beats: AtomicU64::new(0),
    });
    let pulse = Pulse {
        shared: shared.clone(),
    };
    Ok((pulse, Deadman { shared, idle }))
}

/// State shared by the pulses and the watcher; see the invariants above.
#[derive(Debug)]
struct Shared {
    base: Instant,
    /// Nanoseconds from `base` to the latest beat.
    last_beat: AtomicU64,
    beats: AtomicU64,
}

impl Shared {
    fn mark(&self, at: Instant) {
        let nanos =
            u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: invariant 1 needs only the atomicity of `fetch_max`.
        self.last_beat.fetch_max(nanos, Ordering::Relaxed);
    }

    fn last_beat(&self) -> Instant {
        // Relaxed: a hint; a beat missed here moves a later deadline.
        let nanos = self.last_beat.load(Ordering::Relaxed);
        self.base
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.base)
    }

    /// The last beat, and the moment `idle` after it when the work is
    /// stalled; `None` if that lies beyond what `Instant` can hold.
    fn deadline(&self, idle: Duration) -> Option<(Instant, Instant)> {
        let last = self.last_beat();
        Some((last, last.checked_add(idle)?))
    }
}

/// The work's side of a [`deadman`]: call [`beat`](Pulse::beat) whenever
/// the work makes progress. Cheap to clone and to share across tasks and
/// threads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::watchdog::deadman;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (pulse, deadman) = deadman(Duration::from_secs(30));
/// let worker = pulse.clone();
/// let done = deadman.watch(async move {
///     worker.beat();
///     42
/// });
/// assert_eq!(done.await.unwrap(), 42);
/// assert_eq!(pulse.beats(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Pulse {
    shared: Arc<Shared>,
}

impl Pulse {
    /// Records progress: the deadman's idle clock restarts now.
    ///
    /// Costs one clock read and two atomic operations; it never touches a
    /// timer (the watcher re-arms its timer only when it fires).
    ///
    /// "Now" is read on the calling thread, as [`tokio::time::Instant::now`]
    /// reads it. Under tokio's paused clock (tests), beat from a task, or from
    /// a thread that has entered the runtime ([`Handle::enter`]): a plain
    /// thread reads the real clock, which the paused clock does not follow, so
    /// its beats may land before the paused clock's now and not count.
    ///
    /// [`Handle::enter`]: tokio::runtime::Handle::enter
    pub fn beat(&self) {
        // Relaxed: a count for the report, publishing nothing else.
        self.shared.beats.fetch_add(1, Ordering::Relaxed);
        self.shared.mark(Instant::now());
    }

    /// Beats so far.
    pub fn beats(&self) -> u64 {
        // Relaxed: see `beat`.
        self.shared.beats.load(Ordering::Relaxed)
    }
}

/// The watcher's side of a [`deadman`]; see [`Deadman::watch`].
#[derive(Debug)]
pub struct Deadman {
    shared: Arc<Shared>,
    idle: Duration,
}

impl Deadman {
    /// Runs `future` until it completes, or until no beat has come for the
    /// deadman's `idle`; then the future is dropped at once and the result is
    /// `Err(Stalled)` (kind [`StallKind::Idle`], progress in heartbeats).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::deadman;
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (pulse, deadman) = deadman(Duration::from_secs(30));
    ///     let result = deadman
    ///         .watch(async move {
    ///             for _ in 0..10 {
    ///                 tokio::time::sleep(Duration::from_secs(10)).await;
    ///                 pulse.beat();
    ///             }
    ///             "done"
    ///         })
    ///         .await;
    ///     assert_eq!(result.unwrap(), "done");
    /// }
    /// ```
    pub fn watch<F: Future>(self, future: F) -> Watch<F> {
        Watch {
            future: Some(future),
            timer: LazyTimer::default(),
            shared: self.shared,
            idle: self.idle,
            started: None,
        }
    }
}

pin_project! {
    /// Future returned by [`Deadman::watch`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the watched future; nothing else is left behind.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct Watch<F> {
        #[pin]
        future: Option<F>,
        timer: LazyTimer,
        shared: Arc<Shared>,
        idle: Duration,
        started: Option<Instant>,
    }
}

impl<F: Future> Future for Watch<F> {
    type Output = Result<F::Output, Stalled>;

    /// # Panics
    ///
    /// Panics if polled again after it completed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        let Some(future) = me.future.as_mut().as_pin_mut() else {
            panic!("`Watch` polled after it completed");
        };
        if me.started.is_none() {
            let now = Instant::now();
            *me.started = Some(now);
            me.shared.mark(now);
        }
        if let Poll::Ready(output) = future.poll(cx) {
            me.future.set(None);
            *me.timer = LazyTimer::default();
            return Poll::Ready(Ok(output));
        }
        loop {
            let Some((_, deadline)) = me.shared.deadline(*me.idle) else {
                return Poll::Pending;
            };
            // Invariant 2: a timer that fired for an earlier deadline is
            // moved on, here, and only then.
            let fired = me.timer.fired_at().is_some();
            let Poll::Ready(now) = me.timer.poll_until(cx, deadline, fired) else {
                return Poll::Pending;
            };
            // Invariant 4: judged on the deadline as it is now.
            let Some((last, deadline)) = me.shared.deadline(*me.idle) else {
                return Poll::Pending;
            };
            if now >= deadline {
                me.future.set(None);
                *me.timer = LazyTimer::default();
                let stalled = Report {
                    kind: StallKind::Idle,
                    // Relaxed: see `Pulse::beat`.
                    progress: Progress::Beats(me.shared.beats.load(Ordering::Relaxed)),
                    waited: now - last,
                    elapsed: now - me.started.unwrap_or(now),
                    limit: *me.idle,
                    rate: None,
                }
                .declare();
                return Poll::Ready(Err(stalled));
            }
        }
    }
}
