//! When each limit fires, and whether it has.
//!
//! Every limit is one deadline, written once: `total` here in [`Budget`],
//! `idle` and `first_item` in [`Deadline::idle`], `min_rate` in
//! [`Window::deadline`](super::window::Window::deadline). A limit has fired
//! when the clock is at or past its deadline ([`Deadline::has_passed`], the
//! one judgement). While the source is pending, the monitor arms its timer
//! for the earliest of them and, when the timer fires, asks the same
//! [`Deadlines`] which one has come, so a limit cannot be timed by one rule
//! and judged by another.
//!
//! `total` is also judged before a poll, without a wait: an always-ready
//! source must be stopped when the budget is spent, even by a consumer that
//! never lets the runtime's timer run. [`BudgetCheck`] says when that check
//! is due: after the polls that make about a millisecond at the source's pace
//! (`LOOK_EVERY`), or once the timer may have fired.
//! While the source has never pended no task waits on the timer, so it
//! holds the waker of a [`NextLook`], the tick at which to look, which its
//! firing zeroes: both questions are then one compare, inline. Once a task
//! waits on the timer, whether it fired is asked of the timer.

use crate::time::sooner;
use std::time::Duration;

use tokio::time::Instant;

use super::limits::Limits;
use super::stalled::StallKind;
use super::timer::{LazyTimer, NextLook, now_after};

/// With a `total` budget the clock is also read every so many polls, so that the
/// budget is enforced even when the runtime's time driver cannot run (a consumer that
/// never yields, on a current-thread runtime, draining an always-ready source). How
/// many adapts to the source's pace, so that the clock is read about once every
/// [`LOOK_EVERY`] of polling: every poll for a consumer that spends a millisecond on an
/// item, up to every [`MAX_POLLS_PER_LOOK`] for one that spends a nanosecond. The
/// budget is then overrun by about a millisecond (plus the item at hand), whatever the
/// pace, and a fast source pays a fraction of a nanosecond per item for it.
const LOOK_EVERY: Duration = Duration::from_millis(1);
/// The most polls between two reads of the clock; halving from it down to one poll
/// per read happens at once when polls slow down (see [`BudgetCheck::adapt`]).
const MAX_POLLS_PER_LOOK: u32 = 1024;

/// Which limit a deadline belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trip {
    /// The `total` budget.
    Total,
    /// The idle clock reached `limit`: `first_item` before the first
    /// progress, `idle` after it (`kind` says which).
    Idle { kind: StallKind, limit: Duration },
    /// A `min_rate` window ended: it is judged, and may pass.
    Window,
}

/// The moment a limit fires.
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadline {
    at: Instant,
    trip: Trip,
}

impl Deadline {
    pub(super) fn window(at: Instant) -> Self {
        Deadline {
            at,
            trip: Trip::Window,
        }
    }

    /// When the idle clock, running since `since` on top of `waited`,
    /// reaches the idle-like limit that applies at `progress`; `None` if no
    /// such limit is set or its moment lies beyond what `Instant` can hold.
    pub(super) fn idle(
        limits: &Limits,
        progress: u64,
        since: Instant,
        waited: Duration,
    ) -> Option<Self> {
        let (kind, limit) = match (progress, limits.first_item) {
            (0, Some(first_item)) => (StallKind::FirstItem, first_item),
            _ => (StallKind::Idle, limits.idle?),
        };
        let at = since.checked_add(limit.saturating_sub(waited))?;
        Some(Deadline {
            at,
            trip: Trip::Idle { kind, limit },
        })
    }

    /// Whether the limit has fired by `now`.
    pub(super) fn has_passed(self, now: Instant) -> bool {
        now >= self.at
    }
}

/// The deadlines that matter while the source is pending, in the order they
/// are judged when several have passed: `total`, then the idle clock, then
/// the `min_rate` window.
#[derive(Debug)]
pub(super) struct Deadlines {
    pub(super) total: Option<Deadline>,
    pub(super) idle: Option<Deadline>,
    pub(super) window: Option<Deadline>,
}

impl Deadlines {
    /// The earliest deadline: where the timer is aimed.
    #[inline]
    pub(super) fn next(&self) -> Option<Instant> {
        let at = |deadline: Option<Deadline>| deadline.map(|deadline| deadline.at);
        sooner(sooner(at(self.total), at(self.idle)), at(self.window))
    }

    /// The first limit that has fired by `now`, if any.
    #[inline]
    pub(super) fn fired(&self, now: Instant) -> Option<Trip> {
        [self.total, self.idle, self.window]
            .into_iter()
            .flatten()
            .find(|deadline| deadline.has_passed(now))
            .map(|deadline| deadline.trip)
    }
}

/// The `total` budget: a wall-clock deadline from the first poll.
#[derive(Debug)]
pub(super) struct Budget {
    deadline: Instant,
}

/// When the budget is next looked at, before a poll. Kept in the monitor
/// itself rather than in its state, so that the inline part of a poll
/// reaches it without matching the state.
#[derive(Debug)]
pub(super) struct BudgetCheck {
    /// Polls until the clock is read, this one included: at least 1. Kept
    /// as a tick in `unwaited` instead while that is set.
    polls_left: u32,
    /// Polls from one read of the clock to the next, adapted to the pace.
    every: u32,
    /// When the clock was last read for the budget.
    last_look: Option<Instant>,
    /// While no task waits on the timer (the source has never pended): the
    /// tick of the next look, which the timer's firing zeroes. `None` once
    /// the monitor polls the timer with a task's context, which takes the
    /// timer's waker.
    unwaited: Option<NextLook>,
}

impl Default for BudgetCheck {
    fn default() -> Self {
        BudgetCheck {
            polls_left: 1,
            every: 1,
            last_look: None,
            unwaited: None,
        }
    }
}

impl BudgetCheck {
    /// The tick at which the budget is next looked at, which the timer's
    /// firing zeroes: there exactly while the state is plain with a budget
    /// (no task waits on the timer), and `None` in every other state, so
    /// that the inline part of a poll takes its presence for that state
    /// ([`Monitor::plain_waker`](super::monitor::Monitor::plain_waker)).
    #[inline(always)]
    pub(super) fn unwaited(&self) -> Option<&NextLook> {
        self.unwaited.as_ref()
    }

    /// The watch ended: the next look goes with the timer.
    pub(super) fn let_go(&mut self) {
        self.unwaited = None;
    }

    /// Before a poll under a budget, in any state: whether the budget must
    /// be looked at now. While no task waits on the timer, the next look
    /// says ([`NextLook::due`], at the monitor's tick, which `tick` reads);
    /// once one does, whether it fired is asked of the timer (a call into
    /// tokio).
    pub(super) fn must_look(&mut self, timer: &LazyTimer, tick: impl FnOnce() -> u64) -> bool {
        match &self.unwaited {
            Some(next_look) => next_look.due(tick()),
            None if self.polls_left > 1 => {
                self.polls_left -= 1;
                timer.fired_at().is_some()
            }
            None => true,
        }
    }

    /// The next poll looks at the budget; the monitor's tick is `tick`.
    fn look_next(&mut self, tick: u64) {
        self.polls_left = 1;
        if let Some(next_look) = &self.unwaited {
            next_look.mark(tick);
        }
    }

    /// Starts the count to the next look, after a look at `tick` that made
    /// the next poll look before it read the timer (see [`Budget::look`]).
    fn count_again(&mut self, tick: u64) {
        match &self.unwaited {
            Some(next_look) => next_look.restart(tick, tick.saturating_add(u64::from(self.every))),
            None => self.polls_left = self.every,
        }
    }

    /// The clock was read at `now` for the budget: the next read comes after as
    /// many polls as make about [`LOOK_EVERY`] at the pace since the last one.
    /// Twice as many when the last ones took less than half of it, and at once
    /// proportionally fewer when they took longer, down to every poll.
    fn adapt(&mut self, now: Instant) {
        if let Some(last) = self.last_look {
            let since = now.saturating_duration_since(last);
            self.every = if since < LOOK_EVERY / 2 {
                self.every.saturating_mul(2).min(MAX_POLLS_PER_LOOK)
            } else if since > LOOK_EVERY {
                let scaled = u128::from(self.every) * LOOK_EVERY.as_nanos() / since.as_nanos();
                u32::try_from(scaled).unwrap_or(1).max(1)
            } else {
                self.every
            };
        }
        self.last_look = Some(now);
    }

    /// A task waits on the timer from now on (the source pended, at
    /// `tick`): its firing is asked of the timer, whose waker the task's
    /// poll takes. The count goes on in `polls_left`.
    pub(super) fn waited_on(&mut self, tick: u64) {
        if let Some(next_look) = self.unwaited.take() {
            self.polls_left = u32::try_from(next_look.left(tick))
                .unwrap_or(u32::MAX)
                .max(1);
        }
    }

    /// While no task waits on the timer: hands it the next look's waker,
    /// since a timer that fired has let go of it, and one just built never
    /// had it.
    fn arm(&self, timer: &mut LazyTimer) {
        if let Some(next_look) = &self.unwaited {
            timer.arm(next_look);
        }
    }
}

impl Budget {
    /// The budget that starts at `now`, at the monitor's `tick`, with the
    /// timer registered for it and `check` set for it (the next poll
    /// looks); `None` without a `total`, or when its end lies beyond what
    /// `Instant` can hold (then it can never be reached).
    pub(super) fn start(
        limits: &Limits,
        now: Instant,
        check: &mut BudgetCheck,
        tick: u64,
    ) -> Option<(Self, LazyTimer)> {
        let deadline = now.checked_add(limits.total?)?;
        *check = BudgetCheck {
            polls_left: 1,
            every: 1,
            last_look: Some(now),
            unwaited: Some(NextLook::new(tick)),
        };
        // Registered now, with the next look's waker, so that an always-ready
        // source sees the budget run out without polling the timer.
        let mut timer = LazyTimer::registered(deadline);
        check.arm(&mut timer);
        Some((Budget { deadline }, timer))
    }

    /// The budget under new limits: still counted from the first poll at
    /// `started`, so a `total` that changed moves the deadline, never the
    /// start. A new deadline is looked at on the next poll: it may be spent
    /// already, and that look aims the timer at it (see [`look`](Self::look)).
    ///
    /// `waited_on`: whether a task waits on the timer (the source has
    /// pended); if not, a budget that is new gets a next look, armed at
    /// once. `tick`: the monitor's tick count.
    pub(super) fn relimit(
        old: Option<Self>,
        limits: &Limits,
        started: Instant,
        check: &mut BudgetCheck,
        timer: &mut LazyTimer,
        waited_on: bool,
        tick: u64,
    ) -> Option<Self> {
        let Some(deadline) = limits.total.and_then(|total| started.checked_add(total)) else {
            // No budget any more: nothing to count down to.
            check.let_go();
            return None;
        };
        if old.as_ref().is_some_and(|old| old.deadline == deadline) {
            return old;
        }
        check.look_next(tick);
        if old.is_none() && !waited_on {
            check.unwaited = Some(NextLook::new(tick));
            check.arm(timer);
        }
        Some(Budget { deadline })
    }

    pub(super) fn deadline(&self) -> Deadline {
        Deadline {
            at: self.deadline,
            trip: Trip::Total,
        }
    }

    /// Reads the clock, at the monitor's `tick`: `Err(now)` if the budget is
    /// spent. A timer that
    /// fired for an earlier deadline, one that no longer applies since the
    /// source answered, is pointed back at the budget; so is one that would
    /// fire after it, or not at all, since new limits moved the budget
    /// ([`relimit`](Self::relimit)).
    #[cold]
    pub(super) fn look(
        &self,
        timer: &mut LazyTimer,
        check: &mut BudgetCheck,
        tick: u64,
    ) -> Result<(), Instant> {
        // Before reading the timer: a firing after this read zeroes the
        // mark, and the restart below leaves it zeroed, for the next poll.
        check.look_next(tick);
        let fired_at = timer.fired_at();
        let now = fired_at.map_or_else(Instant::now, now_after);
        check.adapt(now);
        check.count_again(tick);
        if self.deadline().has_passed(now) {
            return Err(now);
        }
        if fired_at.is_some() || timer.fires_after(self.deadline) {
            timer.aim(self.deadline);
            check.arm(timer);
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn looked(check: &mut BudgetCheck, at: Instant) -> u32 {
        check.adapt(at);
        check.count_again(1);
        check.polls_left
    }

    #[test]
    fn the_clock_is_read_less_often_while_polls_are_fast_up_to_the_most() {
        let start = Instant::now();
        let mut check = BudgetCheck {
            last_look: Some(start),
            ..BudgetCheck::default()
        };
        let mut at = start;
        let mut periods = Vec::new();
        for _ in 0..14 {
            at += Duration::from_micros(10);
            periods.push(looked(&mut check, at));
        }
        assert_eq!(
            periods,
            [
                2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024, 1024, 1024
            ]
        );
    }

    #[test]
    fn the_clock_is_read_at_once_more_often_when_polls_slow_down() {
        let start = Instant::now();
        let mut check = BudgetCheck {
            every: MAX_POLLS_PER_LOOK,
            last_look: Some(start),
            ..BudgetCheck::default()
        };
        // 1,024 polls took 256 ms: a quarter of a millisecond each.
        assert_eq!(looked(&mut check, start + Duration::from_millis(256)), 4);
        // Four polls took 40 ms: every poll from now on.
        assert_eq!(looked(&mut check, start + Duration::from_millis(296)), 1);
        // About a millisecond a poll: it stays there.
        assert_eq!(
            looked(&mut check, start + Duration::from_micros(297_000)),
            1
        );
    }
}
