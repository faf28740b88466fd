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
//! pended) can hold a [`Countdown`]'s waker instead of a task's: then
//! whether it may have fired is read from our own count, not asked of tokio.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
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

    /// Hands the timer `countdown`'s waker: from now on its firing zeroes
    /// the countdown. For a timer no task waits on; a later poll with a
    /// task's context takes the waker back.
    #[cold]
    pub(super) fn arm(&mut self, countdown: &Countdown) {
        let Some(sleep) = self.sleep.as_mut() else {
            return;
        };
        // Unconstrained: the poll of our own countdown must not spend the
        // task's coop budget, nor find it spent (tokio would then wake the
        // countdown without registering it).
        let waker = Waker::from(countdown.polls.clone());
        let polled =
            pin!(tokio::task::unconstrained(sleep.as_mut())).poll(&mut Context::from_waker(&waker));
        if polled.is_ready() {
            // Past already: tokio wakes no one for a poll that is ready.
            countdown.polls.zero();
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

/// The polls left until a budget is looked at, while no task waits on its
/// timer: counted down by each poll, and zeroed by the timer's firing when
/// the timer is armed with it ([`LazyTimer::arm`]). A hint that says when to
/// look; what has fired is always read from the timer itself.
///
/// One count for both reasons to look, so that the inline part of a poll
/// loads, tests and stores one word, instead of counting its own polls and
/// loading a flag of the timer's besides.
#[derive(Debug)]
pub(super) struct Countdown {
    polls: Arc<Polls>,
}

#[derive(Debug)]
struct Polls(AtomicU32);

impl Wake for Polls {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.zero();
    }
}

impl Polls {
    fn zero(&self) {
        // Relaxed: the count carries no data. Whoever finds it run out reads
        // the timer's own state (which tokio publishes with release/acquire)
        // and the clock; one who reads it a moment late only looks a poll
        // later, as with a clock read a moment early.
        self.0.store(0, Ordering::Relaxed);
    }
}

impl Countdown {
    /// A countdown at one poll: the next poll looks.
    pub(super) fn new() -> Self {
        Countdown {
            polls: Arc::new(Polls(AtomicU32::new(1))),
        }
    }

    /// Counts one poll down: whether the budget must be looked at now (the
    /// polls have run out, or the timer fired). Asking again before the
    /// look gives the same answer.
    ///
    /// A load and a store, not one atomic read-modify-write, which would
    /// cost a locked instruction on every item. So a firing on another
    /// thread that lands between the two is overwritten, and seen only
    /// when the count runs out: within the polls it had left, about a
    /// millisecond of polling (`deadline.rs`, `LOOK_EVERY`), the bound
    /// `Limits::total` documents for a consumer that never lets the timer
    /// run. On one thread (a current-thread runtime, the paused clock) a
    /// firing cannot land inside a poll, and is seen by the next one.
    #[inline(always)]
    pub(super) fn count_down(&self) -> bool {
        // Relaxed: see `Polls::zero`.
        let left = self.polls.0.load(Ordering::Relaxed);
        if left > 1 {
            self.polls.0.store(left - 1, Ordering::Relaxed);
            false
        } else {
            true
        }
    }

    /// The next poll looks. Also what a look does before it reads the
    /// timer, so that [`restart`](Self::restart) can tell a firing after
    /// that read (which zeroes the count) from the look's own mark.
    pub(super) fn restart_at_one(&self) {
        // Relaxed: see `Polls::zero`. A firing overwritten here was due to
        // be looked at by the next poll anyway, and a look reads the timer
        // after this store.
        self.polls.0.store(1, Ordering::Relaxed);
    }

    /// The polls left, for a check that goes on counting without it.
    pub(super) fn left(&self) -> u32 {
        // Relaxed: see `Polls::zero`.
        self.polls.0.load(Ordering::Relaxed)
    }

    /// After a look that set the count at one ([`restart_at_one`]) before
    /// it read the timer: starts a count of `polls` (at least one), unless
    /// the timer zeroed the count since; then it stays run out.
    ///
    /// [`restart_at_one`]: Self::restart_at_one
    pub(super) fn restart(&self, polls: u32) {
        // Relaxed: see `Polls::zero`. A compare-exchange, once a look and
        // out of line, so that a firing after the look's read of the timer
        // is not overwritten.
        let _ =
            self.polls
                .0
                .compare_exchange(1, polls.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The clock, read no earlier than `fired_at` (rule 3).
pub(super) fn now_after(fired_at: Instant) -> Instant {
    Instant::now().max(fired_at)
}
