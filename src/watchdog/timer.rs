//! One lazy timer for every limit of a watch.
//!
//! Moving a tokio timer is a trip into the timer wheel; a source that pends
//! between every two items would pay it on every wait. So the timer is moved
//! only when it must be:
//!
//! 1. It never fires later than the deadline that matters now: a timer armed
//!    for a later moment is reset at once.
//! 2. A timer armed for an earlier moment is left alone until it fires, and
//!    only then moved: one early wake-up per firing instead of one wheel
//!    operation per wait.
//! 3. Once it has fired, "now" is at least its deadline: tokio holds a timer
//!    fired when its tick is reached, even if the clock reads a hair earlier,
//!    and a caller that judged with the earlier reading would spin.
//!
//! The `Sleep` is boxed, once, when first needed, so that a watchdog is
//! `Unpin` whenever its source is: `next()`, `read_to_end()` and
//! `tokio::io::copy` then work without pinning.
//!
//! A timer nobody waits on (a `total` budget while the source has never
//! pended) can hold a [`Fired`] flag's waker instead of a task's: then
//! whether it may have fired is one load of our own, not a call into tokio.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};

use tokio::time::{Instant, Sleep, sleep_until};

#[derive(Debug, Default)]
pub(super) struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    /// A timer registered with the wheel at once, so that
    /// [`fired_at`](Self::fired_at) sees `deadline` pass without the timer
    /// ever being polled (a `total` budget on an always-ready source).
    pub(super) fn registered(deadline: Instant) -> Self {
        let mut sleep = Box::pin(sleep_until(deadline));
        sleep.as_mut().reset(deadline);
        LazyTimer { sleep: Some(sleep) }
    }

    /// The deadline the timer fired for, if it has fired (one atomic load).
    #[inline(always)]
    pub(super) fn fired_at(&self) -> Option<Instant> {
        self.sleep
            .as_ref()
            .filter(|sleep| sleep.is_elapsed())
            .map(|sleep| sleep.deadline())
    }

    /// The moment the timer is aimed at; `None` before it is first needed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.sleep.as_ref().map(|sleep| sleep.deadline())
    }

    /// Whether the timer would fire after `target`, or not at all (rule 1:
    /// then it must be moved).
    pub(super) fn fires_after(&self, target: Instant) -> bool {
        self.deadline().is_none_or(|deadline| deadline > target)
    }

    /// Aims the timer at `target` and registers it, without polling it
    /// (a timer that has fired, rule 2, or one that would fire too late,
    /// rule 1), building it if it was never needed before.
    pub(super) fn aim(&mut self, target: Instant) {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(target),
            None => *self = LazyTimer::registered(target),
        }
    }

    /// Hands the timer `fired`'s waker, clearing the flag first: from now
    /// on its firing sets the flag. For a timer no task waits on; a later
    /// poll with a task's context takes the waker back.
    #[cold]
    pub(super) fn arm(&mut self, fired: &Fired) {
        fired.clear();
        let Some(sleep) = self.sleep.as_mut() else {
            return;
        };
        // Unconstrained: the poll of our own flag must not spend the task's
        // coop budget, nor find it spent (tokio would then wake the flag
        // without registering it).
        let waker = Waker::from(fired.set.clone());
        let polled =
            pin!(tokio::task::unconstrained(sleep.as_mut())).poll(&mut Context::from_waker(&waker));
        if polled.is_ready() {
            // Past already: tokio wakes no one for a poll that is ready.
            fired.set.raise();
        }
    }

    /// Polls the timer, pointed at `target` by rules 1 and 2; `fired` says
    /// whether it has fired since the caller last looked, so that an earlier
    /// deadline may be moved. Ready with "now" (rule 3) once it fires.
    pub(super) fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        target: Instant,
        fired: bool,
    ) -> Poll<Instant> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(sleep_until(target)));
        let deadline = sleep.deadline();
        if deadline > target || (fired && deadline < target) {
            sleep.as_mut().reset(target);
        }
        let fires_at = sleep.deadline();
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(now_after(fires_at))
    }
}

/// Whether a timer armed with it ([`LazyTimer::arm`]) may have fired: set by
/// the timer's wake, cleared when armed again. A hint that says when to
/// look; what has fired is always read from the timer itself.
#[derive(Debug, Default)]
pub(super) struct Fired {
    set: Arc<FiredFlag>,
}

#[derive(Debug, Default)]
struct FiredFlag(AtomicBool);

impl Wake for FiredFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.raise();
    }
}

impl FiredFlag {
    fn raise(&self) {
        // Relaxed: the flag carries no data. Whoever sees it set reads the
        // timer's own state (which tokio publishes with release/acquire)
        // and the clock; one who reads it a moment late only looks one
        // poll later, as with a clock read a moment early.
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Fired {
    /// One load: whether the armed timer woke us since it was armed.
    #[inline(always)]
    pub(super) fn is_set(&self) -> bool {
        // Relaxed: see `FiredFlag::raise`.
        self.set.0.load(Ordering::Relaxed)
    }

    pub(super) fn clear(&self) {
        // Relaxed: see `FiredFlag::raise`. A wake racing with this store
        // is for the deadline before `arm`'s; `arm` polls the timer right
        // after, and finds it fired if it has.
        self.set.0.store(false, Ordering::Relaxed);
    }
}

/// The clock, read no earlier than `fired_at` (rule 3).
pub(super) fn now_after(fired_at: Instant) -> Instant {
    Instant::now().max(fired_at)
}
