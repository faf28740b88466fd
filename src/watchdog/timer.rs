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
//! pended) can hold a [`NextLook`]'s waker instead of a task's: then
//! whether it may have fired is read from our own word, not asked of tokio.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

    /// Hands the timer `next_look`'s waker: from now on its firing zeroes
    /// the next look. For a timer no task waits on; a later poll with a
    /// task's context takes the waker back.
    #[cold]
    pub(super) fn arm(&mut self, next_look: &NextLook) {
        let Some(sleep) = self.sleep.as_mut() else {
            return;
        };
        // Unconstrained: the poll for our own waker must not spend the
        // task's coop budget, nor find it spent (tokio would then wake it
        // without registering it).
        let waker = Waker::from(next_look.at.clone());
        let polled =
            pin!(tokio::task::unconstrained(sleep.as_mut())).poll(&mut Context::from_waker(&waker));
        if polled.is_ready() {
            // Past already: tokio wakes no one for a poll that is ready.
            next_look.at.zero();
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

/// The tick at which a budget is next looked at, while no task waits on its
/// timer: a poll looks once the monitor's tick count (`Monitor::ticks`: the
/// items yielded, or the polls made) has reached it, and the timer's firing
/// zeroes it when the timer is armed with it ([`LazyTimer::arm`]). A hint
/// that says when to look; what has fired is always read from the timer
/// itself.
///
/// One word for both reasons to look, compared with a count the poll keeps
/// anyway: so the inline part of a poll loads and compares it, and stores
/// nothing, instead of counting its own polls down and loading a flag of the
/// timer's besides.
#[derive(Debug)]
pub(super) struct NextLook {
    at: Arc<LookAt>,
}

#[derive(Debug)]
struct LookAt(AtomicU64);

impl Wake for LookAt {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.zero();
    }
}

impl LookAt {
    fn zero(&self) {
        // Relaxed: the tick carries no data. Whoever finds it reached reads
        // the timer's own state (which tokio publishes with release/acquire)
        // and the clock; one who reads it a moment late only looks a poll
        // later, as with a clock read a moment early.
        self.0.store(0, Ordering::Relaxed);
    }
}

impl NextLook {
    /// The next poll looks: the tick is the monitor's count now, which
    /// the next poll's count is at least.
    pub(super) fn new(tick: u64) -> Self {
        NextLook {
            at: Arc::new(LookAt(AtomicU64::new(tick))),
        }
    }

    /// Whether the poll at `tick` must look at the budget: the ticks have
    /// reached the next look, or the timer fired. Asks without changing
    /// anything, so asking again before the look gives the same answer,
    /// and a firing on another thread is never overwritten here: the next
    /// poll to load the tick after the firing sees it.
    #[inline(always)]
    pub(super) fn due(&self, tick: u64) -> bool {
        // Relaxed: see `LookAt::zero`.
        tick >= self.at.0.load(Ordering::Relaxed)
    }

    /// The next poll looks. Also what a look does before it reads the timer,
    /// at `tick`, so that [`restart`](Self::restart) can tell a firing after
    /// that read (which zeroes the tick) from the look's own mark.
    ///
    /// The mark is a plain store, and the timer is read after it: a firing
    /// on another thread that the read misses but that lands before the
    /// store takes effect is overwritten, and seen at the next look, within
    /// the ticks it had left: about a millisecond of polling (`deadline.rs`,
    /// `LOOK_EVERY`), the bound `Limits::total` documents for a consumer that
    /// never lets the timer run. On one thread (a current-thread runtime, the
    /// paused clock) a firing cannot land inside a poll.
    pub(super) fn mark(&self, tick: u64) {
        // Relaxed: see `LookAt::zero`.
        self.at.0.store(tick, Ordering::Relaxed);
    }

    /// The ticks left before the next look, as of `tick`, for a check that
    /// goes on counting polls without this.
    pub(super) fn left(&self, tick: u64) -> u64 {
        // Relaxed: see `LookAt::zero`.
        self.at.0.load(Ordering::Relaxed).saturating_sub(tick)
    }

    /// After a look that [`mark`](Self::mark)ed `tick` before it read the
    /// timer: the next look comes at `next`, unless the timer zeroed the
    /// mark since; then the next poll looks. A mark is never zero (see
    /// `Monitor::ticks`), so a firing is told apart from it.
    pub(super) fn restart(&self, tick: u64, next: u64) {
        // Relaxed: see `LookAt::zero`. A compare-exchange, once a look and
        // out of line, so that a firing after the look's read of the timer
        // is not overwritten.
        let _ = self
            .at
            .0
            .compare_exchange(tick, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The clock, read no earlier than `fired_at` (rule 3).
pub(super) fn now_after(fired_at: Instant) -> Instant {
    Instant::now().max(fired_at)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// What the budget's timer does when it fires: wakes the waker it holds.
    fn fire(next_look: &NextLook) {
        Waker::from(next_look.at.clone()).wake_by_ref();
    }

    #[test]
    fn a_new_next_look_is_due_at_the_next_tick_and_stays_due_until_restarted() {
        let next_look = NextLook::new(0);
        assert!(next_look.due(1));
        assert!(next_look.due(1), "asking again changes nothing");
        next_look.mark(1);
        next_look.restart(1, 9);
        assert!(!next_look.due(1));
        assert!(!next_look.due(8));
        assert!(next_look.due(9));
        assert_eq!(next_look.left(5), 4);
    }

    #[test]
    fn a_firing_makes_the_next_poll_look_whatever_its_tick() {
        let next_look = NextLook::new(1);
        next_look.mark(1);
        next_look.restart(1, 1_025);
        assert!(!next_look.due(2));
        fire(&next_look);
        assert!(next_look.due(2));
        assert_eq!(next_look.left(2), 0);
    }

    #[test]
    fn a_firing_between_a_looks_mark_and_its_restart_survives_the_restart() {
        let next_look = NextLook::new(1);
        next_look.mark(7);
        // The look read the timer as not fired; it fires now.
        fire(&next_look);
        next_look.restart(7, 7 + 1_024);
        assert!(
            next_look.due(8),
            "the next poll looks, and finds the timer fired"
        );
    }

    #[test]
    fn a_firing_before_a_looks_mark_is_for_the_look_to_read_from_the_timer() {
        // The mark overwrites it: the look reads the timer after the mark,
        // so it finds the firing there.
        let next_look = NextLook::new(1);
        fire(&next_look);
        next_look.mark(3);
        assert!(next_look.due(4));
        next_look.restart(3, 3 + 1_024);
        assert!(!next_look.due(4));
    }
}
