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
//! The inline part of a poll, [`Monitor::plain_waker`], tests the state's
//! [`Path`], a byte kept beside the state, and takes the source's answer as
//! it is on the two paths where an answer changes nothing: a source that
//! has never returned `Pending` (polled with the consumer's context), and
//! one that has but is not being waited on (polled with our waker). No
//! clock read, no timer operation, no lock on either. With a `total` budget
//! on the first, the test is of the budget's next look instead: the
//! monitor's tick count (items, or polls) compared with the tick the budget
//! is next looked at, a word that the budget's timer zeroes when it fires
//! ([`BudgetCheck`]); nothing is stored. When the ticks reach it, about once
//! a millisecond of polling, the budget is looked at out of line.
//!
//! Everything else, [`Monitor::poll_rest`], is one out-of-line call: the
//! first poll, a `total` once the source has pended (then the timer is asked
//! whether it fired, a call into tokio), and each wait. A wait costs three
//! clock reads (when it begins, when the source wakes, and before the next
//! poll, to keep a wake read on another clock inside the wait), an
//! uncontended lock at the `Pending`, at the wake and before the next poll,
//! and a timer poll (the timer is moved only by the rules in `timer.rs`).
//!
//! [`Watchdog`]: super::Watchdog
//! [`IoWatchdog`]: super::IoWatchdog
//! [`Wakes`]: super::wake::Wakes
//! [`BudgetCheck`]: super::deadline::BudgetCheck

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::deadline::{BudgetCheck, Trip};
use super::limits::Limits;
use super::stalled::{Progress, Report, StallKind, Stalled};
use super::state::{Clocks, IdleClock, Path, State, Watched};
use super::window::TooSlow;

#[derive(Debug)]
pub(crate) struct Monitor {
    limits: Limits,
    /// The unit progress is counted in; its count is ignored.
    unit: Progress,
    progress: u64,
    /// Polls made, for a monitor whose progress is not counted in polls
    /// (bytes): see [`ticks`](Self::ticks).
    polls: u64,
    state: State,
    /// `state.path()`, kept up to date by every change of the state (all of
    /// them out of line: `poll_rest`, `set_limits`, `finish`).
    path: Path,
    /// When a budget is next looked at (with a `total` only).
    check: BudgetCheck,
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
            polls: 0,
            state: State::Unstarted,
            path: Path::Full,
            check: BudgetCheck::default(),
        }
    }

    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// What the budget's next look is counted in: a stream's items, since
    /// every answer it gives while it has never pended is an item (its
    /// progress, which the poll counts anyway); a reader's or writer's
    /// polls, since an answer may move no bytes (a flush, the end of the
    /// input), and a consumer that makes such calls in a loop must still
    /// meet the budget. Never zero at a look (see [`NextLook::restart`]):
    /// a stream looks at its budget from its second poll on, after an item;
    /// the polls are counted before the poll.
    ///
    /// [`NextLook::restart`]: super::timer::NextLook::restart
    fn ticks(&self) -> u64 {
        ticks(&self.unit, self.progress, self.polls)
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
        let ticks = self.ticks();
        self.state
            .relimit(&old, &self.limits, (self.progress, ticks), &mut self.check);
        self.path = self.state.path();
        self.debug_assert_next_look();
    }

    /// Counts progress; also for progress made outside a poll
    /// (`AsyncBufRead::consume`).
    #[inline(always)]
    pub(crate) fn count(&mut self, amount: u64) {
        self.progress = self.progress.saturating_add(amount);
    }

    /// Counts one item. Wrapping, not saturating, to keep it one
    /// instruction on the plain path: a count of items cannot reach
    /// `u64::MAX` (at one item a nanosecond, that takes 584 years).
    #[inline(always)]
    pub(crate) fn count_item(&mut self) {
        self.progress = self.progress.wrapping_add(1);
    }

    /// Polls the source through `source`, which polls it with the context
    /// it is given; counts the poll.
    ///
    /// Made of two halves a stream adapter calls itself, to keep its own
    /// inline part smallest ([`Watchdog`](super::Watchdog) does):
    /// [`plain_waker`](Self::plain_waker), the inline test, and
    /// [`poll_rest`](Self::poll_rest), the protocol, here out of line.
    #[inline(always)]
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut source: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Polled<T> {
        self.polls = self.polls.wrapping_add(1);
        let pended = match self.plain_waker_at(cx, Self::ticks) {
            Some(waker) => match source(&mut Context::from_waker(waker)) {
                Poll::Ready(answer) => return Polled::Ready(answer),
                Poll::Pending => true,
            },
            None => false,
        };
        self.poll_rest_out_of_line(cx, source, pended)
    }

    #[inline(never)]
    fn poll_rest_out_of_line<T>(
        &mut self,
        cx: &mut Context<'_>,
        source: impl FnMut(&mut Context<'_>) -> Poll<T>,
        pended: bool,
    ) -> Polled<T> {
        self.poll_rest(cx, source, pended)
    }

    /// The inline half of a stream's poll: if an answer from the source
    /// would change nothing here, the waker to poll it with (the consumer's
    /// while it has never pended, ours once it has); the caller then polls
    /// the source and hands on an answer as it is, and counts an item.
    /// `None`: the whole protocol is due ([`poll_rest`](Self::poll_rest)
    /// without a poll). One test of the state's `Path`; with a budget, the
    /// test of its next look and one compare with the items so far.
    #[inline(always)]
    pub(crate) fn plain_waker<'a>(&'a mut self, cx: &'a Context<'_>) -> Option<&'a Waker> {
        debug_assert!(
            matches!(self.unit, Progress::Items(_)),
            "a stream's monitor"
        );
        self.plain_waker_at(cx, |monitor| monitor.progress)
    }

    /// [`plain_waker`](Self::plain_waker) for any monitor, whose tick count
    /// ([`ticks`](Self::ticks)) `tick` reads: only where a budget is
    /// tested, so that the plain path loads nothing more.
    #[inline(always)]
    fn plain_waker_at<'a>(
        &'a mut self,
        cx: &'a Context<'_>,
        tick: impl FnOnce(&Self) -> u64,
    ) -> Option<&'a Waker> {
        // Tests in a row rather than a `match`, which compiles to a jump
        // table: the plain path, the common one, costs one compare.
        if self.path == Path::Plain {
            return Some(cx.waker());
        }
        // A plain state with a budget: the next look is there exactly then
        // (`BudgetCheck::unwaited`), so its presence is the path's test.
        if let Some(next_look) = self.check.unwaited() {
            return (!next_look.due(tick(self))).then(|| cx.waker());
        }
        match &self.state {
            State::Watched(watched) if self.path == Path::Flowing => Some(watched.wakes.waker()),
            _ => None,
        }
    }

    /// The other half: the protocol's steps, after `plain_waker` said
    /// `None` (then `pended` is false), or after the source, polled with
    /// its waker, returned `Pending` (`pended`). Then the state's path for
    /// the next poll. Inlined into its caller, which is itself out of line
    /// (`poll`'s own, or the adapter's), so that the rest of a poll is one
    /// call.
    #[inline(always)]
    pub(crate) fn poll_rest<T>(
        &mut self,
        cx: &mut Context<'_>,
        source: impl FnMut(&mut Context<'_>) -> Poll<T>,
        pended: bool,
    ) -> Polled<T> {
        let polled = self.poll_full(cx, source, pended);
        self.path = self.state.path();
        self.debug_assert_next_look();
        polled
    }

    #[inline(always)]
    fn poll_full<T>(
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
            let ticks = self.ticks();
            self.state = State::Plain(Clocks::start(&self.limits, &mut self.check, ticks));
        }
    }

    /// Before a poll under a `total` budget. On a plain path with a budget
    /// whose `plain_waker` found the look due, the check says so again:
    /// asking changes nothing, and only the look moves the next one.
    #[inline(never)]
    fn check_budget(&mut self) -> Result<(), Stalled> {
        // Read only where the next look is compared, or at a look: once
        // the source has pended, the check is of the timer alone.
        let tick = || ticks(&self.unit, self.progress, self.polls);
        let Some(clocks) = self.state.clocks_mut() else {
            return Ok(());
        };
        let Some(budget) = clocks.budget.as_ref() else {
            return Ok(());
        };
        if !self.check.must_look(&clocks.timer, tick) {
            return Ok(());
        }
        match budget.look(&mut clocks.timer, &mut self.check, tick()) {
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
                let tick = self.ticks();
                self.check.waited_on(tick);
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
        self.path = Path::Full;
        self.check.let_go();
        self.debug_assert_next_look();
    }

    /// The budget's next look is there exactly while the state is plain
    /// with a budget: `plain_waker` takes its presence for that state.
    fn debug_assert_next_look(&self) {
        debug_assert_eq!(
            self.check.unwaited().is_some(),
            matches!(&self.state, State::Plain(clocks) if clocks.budget.is_some()),
            "the budget's next look is there exactly while no task waits on its timer",
        );
    }
}

/// [`Monitor::ticks`], from the fields it reads.
fn ticks(unit: &Progress, progress: u64, polls: u64) -> u64 {
    match unit {
        Progress::Items(_) => progress,
        Progress::BytesRead(_) | Progress::BytesWritten(_) | Progress::Beats(_) => polls,
    }
}
