//! The one owner of the poll protocol: [`Monitor::poll`] polls a source and
//! says what happened.
//!
//! Every watchdog has one monitor per watched direction: a [`Watchdog`] one,
//! an [`IoWatchdog`] one for reads and one for writes. The adapter hands
//! `poll` a closure that polls its source with the context it is given; it
//! gets back [`Polled`]: the answer, `Pending`, or a stall, and counts the
//! progress an answer carried ([`Monitor::count`]). The steps of a poll are:
//!
//! 1. Before the poll: the first poll starts the clocks; a spent `total`
//!    budget ends the watch without polling the source.
//! 2. The poll: with the consumer's own context while the source has never
//!    returned `Pending`, with our waker ([`Wakes`]) from then on. A wait
//!    the source woke since ends at its wake, before the poll.
//! 3. An answer stops the idle clock (the owner then counts its progress, so
//!    that the wait it ended is judged without it: see `window.rs`).
//! 4. A `Pending` starts the idle clock (or lets it run on), judges a
//!    `min_rate` window that the wait before filled, hands our waker the
//!    consumer's and arms the timer for the earliest deadline. The first
//!    `Pending` polls once more instead, so that the source holds our waker.
//!
//! An idle, `first_item` or `min_rate` stall is only declared in step 4,
//! right after the source answered `Pending`: an item that is ready always
//! wins, however late the consumer is. Only `total` ends a watch without a
//! poll (step 1).
//!
//! # Whose time is waiting
//!
//! A wait begins when the source returns `Pending` and ends when the source
//! *wakes* (or answers, if it never woke us), not when the consumer polls
//! again: the time between the source's wake and the consumer's next poll is
//! the consumer's, and never counts. The waits between two answers add up
//! (see [`IdleClock`]). A wake that arrives while the source is being polled
//! (a source that wakes itself, e.g. when the task's coop budget is spent)
//! does not end the wait: the consumer is re-polled at once and the wait
//! ends only when the source yields, so a source that spins (wakes itself
//! and never yields) is still declared idle.
//!
//! # Cost
//!
//! The plain path (a source that never returned `Pending`, no `total`) is
//! inlined into the adapter: two tests, the poll, a counter; no clock read,
//! no timer operation, no waker wrapping. With a `total` budget each poll
//! also makes one out-of-line call, which loads the timer's state and reads
//! the clock every 64th time ([`Budget::must_look`]). Once the source has
//! returned `Pending` a poll is one out-of-line call with the same tests
//! inline; only a wait costs more: a clock read, an uncontended lock after
//! the `Pending` and one before the next poll, and a timer poll (the timer
//! is moved only by the rules in `timer.rs`).
//!
//! [`Watchdog`]: super::Watchdog
//! [`IoWatchdog`]: super::IoWatchdog
//! [`Wakes`]: super::wake::Wakes
//! [`Budget::must_look`]: super::deadline::Budget::must_look

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::deadline::Trip;
use super::limits::Limits;
use super::stalled::{Progress, Report, StallKind, Stalled};
use super::state::{Clocks, IdleClock, State, Watched};
use super::window::TooSlow;

#[derive(Debug)]
pub(crate) struct Monitor {
    limits: Limits,
    /// The unit progress is counted in; its count is ignored.
    unit: Progress,
    progress: u64,
    state: State,
}

/// What a poll through the monitor came to.
#[derive(Debug)]
pub(crate) enum Polled<T> {
    /// The source answered; the owner counts the progress it carried.
    Ready(T),
    /// The source is pending and the watch goes on: the source, through our
    /// waker, or the timer will wake the consumer.
    Pending,
    /// A limit tripped: the owner drops its source, then calls
    /// [`finish`](Monitor::finish).
    Stalled(Stalled),
}

/// What to do after the source returned `Pending`.
enum AfterPending {
    /// Return `Pending`: our waker and the timer are registered.
    Wait,
    /// Poll the source once more, with our waker.
    PollAgain,
    Stalled(Stalled),
}

/// A limit that tripped, with what its report says of it.
enum Tripped {
    Total,
    Idle { kind: StallKind, limit: Duration },
    TooSlow(TooSlow),
}

impl Monitor {
    pub(crate) fn new(limits: Limits, unit: Progress) -> Self {
        Monitor {
            limits,
            unit,
            progress: 0,
            state: State::Unstarted,
        }
    }

    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// Replaces the limits; they apply from the next poll on. Every clock
    /// keeps running, only what a limit is compared with changes:
    ///
    /// - the idle clock keeps the wait it has measured since the source
    ///   last answered, now held to the new `idle` (or `first_item`, before
    ///   the first progress);
    /// - `total` keeps counting from the first poll: its deadline moves to
    ///   the first poll plus the new `total`;
    /// - a `min_rate` window goes on if the rate (and `first_item`'s
    ///   presence) is unchanged; a new rate starts a new window now;
    /// - progress is kept.
    ///
    /// A deadline that has passed already under the new limits is declared
    /// at the next poll, by the usual rules: `total` before polling the
    /// source, the others once it has answered `Pending`. A deadline that
    /// moved earlier during a wait wakes the consumer (`Watched::relimit`);
    /// one that moved later costs one early timer wake (`timer.rs`, rule 2).
    #[cold]
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        let old = std::mem::replace(&mut self.limits, limits);
        self.state.relimit(&old, &self.limits, self.progress);
    }

    /// Counts progress; also for progress made outside a poll
    /// (`AsyncBufRead::consume`).
    #[inline(always)]
    pub(crate) fn count(&mut self, amount: u64) {
        self.progress = self.progress.saturating_add(amount);
    }

    /// Polls the source through `source`, which polls it with the context
    /// it is given.
    #[inline(always)]
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut source: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Polled<T> {
        // The plain path, kept this small so that it inlines into the
        // consumer's loop: without it, an always-ready source cost 3.3-3.7x
        // bare instead of 1.3-1.7x (docs/watchdog.md).
        if let State::Plain(clocks) = &self.state {
            if clocks.budget.is_some() {
                if let Err(stalled) = self.check_budget() {
                    return Polled::Stalled(stalled);
                }
            }
            return match source(cx) {
                Poll::Ready(answer) => Polled::Ready(answer),
                Poll::Pending => self.poll_watched(cx, source, true),
            };
        }
        self.poll_watched(cx, source, false)
    }

    /// Everything but the plain path. `pended`: the plain path polled the
    /// source already, and it returned `Pending`.
    #[inline(never)]
    fn poll_watched<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut source: impl FnMut(&mut Context<'_>) -> Poll<T>,
        pended: bool,
    ) -> Polled<T> {
        let mut polled = if pended {
            Poll::Pending
        } else {
            if let Err(stalled) = self.before_poll() {
                return Polled::Stalled(stalled);
            }
            self.poll_source(cx, &mut source)
        };
        loop {
            match polled {
                Poll::Ready(answer) => {
                    self.on_ready();
                    return Polled::Ready(answer);
                }
                Poll::Pending => match self.on_pending(cx) {
                    AfterPending::Wait => return Polled::Pending,
                    AfterPending::PollAgain => polled = self.poll_source(cx, &mut source),
                    AfterPending::Stalled(stalled) => return Polled::Stalled(stalled),
                },
            }
        }
    }

    /// Step 1: starts the clocks on the first poll; a spent budget stalls.
    // A test of the state inline; starting and the budget out of line.
    #[inline(always)]
    fn before_poll(&mut self) -> Result<(), Stalled> {
        match self.state.clocks() {
            Some(clocks) if clocks.budget.is_none() => Ok(()),
            Some(_) => self.check_budget(),
            None => {
                self.start();
                Ok(())
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn start(&mut self) {
        if let State::Unstarted = self.state {
            self.state = State::Plain(Clocks::start(&self.limits));
        }
    }

    /// Before a poll under a `total` budget.
    #[inline(never)]
    fn check_budget(&mut self) -> Result<(), Stalled> {
        let Some(clocks) = self.state.clocks_mut() else {
            return Ok(());
        };
        let Some(budget) = clocks.budget.as_mut() else {
            return Ok(());
        };
        if !budget.must_look(&clocks.timer) {
            return Ok(());
        }
        match budget.look(&mut clocks.timer) {
            Ok(()) => Ok(()),
            Err(now) => Err(self.declare(Tripped::Total, now)),
        }
    }

    /// Step 2: polls the source with the right waker.
    #[inline(always)]
    fn poll_source<T>(
        &mut self,
        cx: &Context<'_>,
        source: &mut impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        source(&mut Context::from_waker(self.source_waker(cx)))
    }

    /// The waker to poll the source with: the consumer's own until the
    /// source first returned `Pending`, ours from then on.
    #[inline(always)]
    fn source_waker<'a>(&'a mut self, cx: &'a Context<'_>) -> &'a Waker {
        if let State::Watched(Watched {
            idle: IdleClock::Running { .. },
            ..
        }) = self.state
        {
            self.take_wake();
        }
        match &self.state {
            State::Watched(watched) => watched.wakes.waker(),
            _ => cx.waker(),
        }
    }

    /// Before a poll while a wait is on: if the source woke since, the wait
    /// ended then, whenever the consumer came back.
    #[inline(never)]
    fn take_wake(&mut self) {
        let progress = self.progress;
        let State::Watched(watched) = &mut self.state else {
            return;
        };
        let IdleClock::Running { since, .. } = watched.idle else {
            return;
        };
        if let Some(woken_at) = watched.wakes.take_woken() {
            // A wake from a thread outside the runtime reads the real
            // clock, which under a paused clock may lie outside the wait:
            // clamp.
            let at = woken_at.clamp(since, Instant::now().max(since));
            watched.end_wait(at, progress);
        }
    }

    /// Step 3: the source answered. The progress it carried is counted by
    /// the owner afterwards, so that the wait ends with the progress before.
    #[inline(always)]
    fn on_ready(&mut self) {
        if let State::Watched(watched) = &mut self.state {
            match watched.idle {
                IdleClock::Running { .. } => self.end_waiting(),
                IdleClock::Stopped { .. } => watched.idle = IdleClock::ZERO,
            }
        }
    }

    /// The source answered without waking us (it was polled for another
    /// reason): the wait ends now. A window this wait filled is judged at
    /// the next `Pending`.
    #[inline(never)]
    fn end_waiting(&mut self) {
        let progress = self.progress;
        if let State::Watched(watched) = &mut self.state {
            watched.end_wait(Instant::now(), progress);
            watched.idle = IdleClock::ZERO;
        }
    }

    /// Step 4: the source returned `Pending`.
    // Out of line: inlined, it crowds every instance of `poll_watched`.
    #[inline(never)]
    fn on_pending(&mut self, cx: &mut Context<'_>) -> AfterPending {
        match self.state {
            State::Watched(_) => self.wait(cx),
            State::Plain(_) => {
                // The source holds the consumer's waker from the poll that
                // just returned `Pending`: poll it again with ours, so that
                // it holds ours. (It may be ready by now: then its answer is
                // handed on.)
                self.state.watch();
                AfterPending::PollAgain
            }
            // Nothing is watched: the source holds the consumer's waker.
            State::Unstarted | State::Finished => AfterPending::Wait,
        }
    }

    /// Waits on a pending source until the source wakes us or the earliest
    /// deadline: a limit that has passed is a stall.
    fn wait(&mut self, cx: &mut Context<'_>) -> AfterPending {
        let progress = self.progress;
        let State::Watched(watched) = &mut self.state else {
            return AfterPending::Wait;
        };
        let (since, waited) = match watched.idle {
            IdleClock::Running { since, waited } => (since, waited),
            IdleClock::Stopped { waited } => {
                let now = Instant::now();
                watched.begin_wait(now);
                // A window the waits before filled is judged now that the
                // source has been polled and is pending.
                if let Some(window) = watched.clocks.window.as_mut() {
                    if window.deadline(progress).is_some_and(|d| d.has_passed(now)) {
                        if let Err(slow) = window.judge(now, progress) {
                            return AfterPending::Stalled(
                                self.declare(Tripped::TooSlow(slow), now),
                            );
                        }
                    }
                }
                (now, waited)
            }
        };
        watched.wakes.register(cx);
        // Whether the timer has fired in this call: then it is moved even
        // to a later deadline.
        let mut fired = false;
        loop {
            let deadlines = watched.deadlines(&self.limits, progress, since, waited);
            let Some(target) = deadlines.next() else {
                return AfterPending::Wait;
            };
            let Poll::Ready(now) = watched.clocks.timer.poll_until(cx, target, fired) else {
                return AfterPending::Wait;
            };
            fired = true;
            let tripped = match deadlines.fired(now) {
                // Fired early, for a deadline that no longer applies: re-arm.
                None => continue,
                Some(Trip::Total) => Tripped::Total,
                Some(Trip::Idle { kind, limit }) => Tripped::Idle { kind, limit },
                Some(Trip::Window) => {
                    let Some(window) = watched.clocks.window.as_mut() else {
                        continue;
                    };
                    match window.judge(now, progress) {
                        Ok(()) => continue,
                        Err(slow) => Tripped::TooSlow(slow),
                    }
                }
            };
            return AfterPending::Stalled(self.declare(tripped, now));
        }
    }

    /// Declares a stall at `now`: every report of a monitor is written here.
    #[cold]
    fn declare(&self, tripped: Tripped, now: Instant) -> Stalled {
        let (started, waited) = match &self.state {
            State::Plain(clocks) => (clocks.started, Duration::ZERO),
            State::Watched(watched) => (watched.clocks.started, watched.idle.waited(now)),
            // Not reached: only a running watch trips.
            State::Unstarted | State::Finished => (now, Duration::ZERO),
        };
        let (kind, limit, waited, rate) = match tripped {
            Tripped::Total => (
                StallKind::Total,
                self.limits.total.unwrap_or_default(),
                waited,
                None,
            ),
            Tripped::Idle { kind, limit } => (kind, limit, waited, None),
            // The window judged is the wait reported.
            Tripped::TooSlow(TooSlow { got, rate }) => (
                StallKind::TooSlow,
                rate.window,
                rate.window,
                Some((got, rate.amount)),
            ),
        };
        Report {
            kind,
            progress: self.unit.with_count(self.progress),
            waited,
            elapsed: now.saturating_duration_since(started),
            limit,
            rate,
        }
        .declare()
    }

    /// Wakes the task that last waited on this monitor's source (the other
    /// half of a split `IoWatchdog` after a stall dropped the connection).
    pub(crate) fn wake_waiter(&self) {
        if let State::Watched(watched) = &self.state {
            watched.wakes.wake_consumer();
        }
    }

    /// The source ended or stalled: deregisters the timer and lets go of
    /// our waker.
    // Out of line: the drop glue of the timer and the waker would crowd
    // the adapter's poll.
    #[cold]
    #[inline(never)]
    pub(crate) fn finish(&mut self) {
        self.state = State::Finished;
    }
}
