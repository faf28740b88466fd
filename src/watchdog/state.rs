//! The monitor's state: what a watch holds in each of its phases.
//!
//! ```text
//! Unstarted --first poll--> Plain --first Pending--> Watched --end or stall--> Finished
//!                             '-------------------end or stall-------------------^
//! ```
//!
//! - [`Unstarted`](State::Unstarted): nothing read, nothing allocated, so a
//!   watchdog can be built outside a runtime.
//! - [`Plain`](State::Plain): the clocks run; the source has never
//!   returned `Pending`, so it is polled with the consumer's own context and
//!   no wait can be on. An always-ready source stays here for good.
//! - [`Watched`](State::Watched): the source has returned `Pending`; from
//!   then on it is polled with our waker ([`Wakes`]), and the idle clock
//!   runs while it is pending.
//! - [`Finished`](State::Finished): the source ended or stalled; the timer
//!   is deregistered and our waker let go. Nothing is watched any more (the
//!   adapters never poll a finished source).
//!
//! [`State::path`] sums a state up for the inline part of a poll: whether
//! the source's answer can be taken as it is, and with which waker. The
//! monitor keeps it beside the state, and sets it again after every change.

use std::mem;
use std::time::Duration;

use tokio::time::Instant;

use super::deadline::{Budget, BudgetCheck, Deadline, Deadlines};
use super::limits::Limits;
use super::timer::LazyTimer;
use super::wake::Wakes;
use super::window::Window;

#[derive(Debug)]
pub(super) enum State {
    Unstarted,
    Plain(Clocks),
    Watched(Watched),
    Finished,
}

/// What runs from the first poll on.
#[derive(Debug)]
pub(super) struct Clocks {
    pub(super) started: Instant,
    /// With a `total` that can be reached.
    pub(super) budget: Option<Budget>,
    /// With a `min_rate`.
    pub(super) window: Option<Window>,
    /// One timer for every limit: armed at the start for a budget, else at
    /// the first wait.
    pub(super) timer: LazyTimer,
}

impl Clocks {
    /// The first poll, now, at the monitor's `tick`; `check` is set for a
    /// budget.
    #[cold]
    pub(super) fn start(limits: &Limits, check: &mut BudgetCheck, tick: u64) -> Self {
        let now = Instant::now();
        let (budget, timer) = match Budget::start(limits, now, check, tick) {
            Some((budget, timer)) => (Some(budget), timer),
            None => (None, LazyTimer::default()),
        };
        Clocks {
            started: now,
            budget,
            window: Window::start(limits, now),
            timer,
        }
    }
}

impl Clocks {
    /// New limits, with `progress` made, at the monitor's `tick`: `started`
    /// stays, so the budget keeps counting from the first poll; the window
    /// stays unless its rate changed.
    fn relimit(
        &mut self,
        limits: &Limits,
        (progress, tick): (u64, u64),
        check: &mut BudgetCheck,
        waited_on: bool,
    ) {
        self.budget = Budget::relimit(
            self.budget.take(),
            limits,
            self.started,
            check,
            &mut self.timer,
            waited_on,
            tick,
        );
        self.window = Window::relimit(self.window.take(), limits, progress, Instant::now);
    }
}

/// A source that has returned `Pending` at least once.
#[derive(Debug)]
pub(super) struct Watched {
    pub(super) clocks: Clocks,
    pub(super) wakes: Wakes,
    pub(super) idle: IdleClock,
}

/// The idle clock: how long the source has kept us waiting since it last
/// answered. It runs from a `Pending` until the source wakes us or answers;
/// the waits between two answers add up, so a source that wakes without
/// yielding is still judged on all its waiting since its last answer.
#[derive(Clone, Copy, Debug)]
pub(super) enum IdleClock {
    /// Not running: the source answered (then `waited` is zero), or it woke
    /// us and has not answered since.
    Stopped { waited: Duration },
    /// Running since the source returned `Pending` at `since`, on top of
    /// `waited` from the earlier waits since its last answer.
    Running { since: Instant, waited: Duration },
}

impl IdleClock {
    pub(super) const ZERO: IdleClock = IdleClock::Stopped {
        waited: Duration::ZERO,
    };

    /// The waiting since the source last answered, as of `now`.
    pub(super) fn waited(self, now: Instant) -> Duration {
        match self {
            IdleClock::Stopped { waited } => waited,
            IdleClock::Running { since, waited } => {
                waited.saturating_add(now.saturating_duration_since(since))
            }
        }
    }
}

/// What a poll in a state must do beyond polling the source: the state's
/// one-byte summary, which the inline part of a poll
/// (`Monitor::plain_waker`) tests instead of the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// `Plain` without a budget: poll the source with the consumer's
    /// context; an answer changes nothing. (`Plain` with a budget is `Full`
    /// here: the inline part tests the budget's next look instead, which is
    /// there exactly then, see [`BudgetCheck::unwaited`], and polls as on
    /// this path once the budget need not be looked at.)
    Plain,
    /// `Watched` without a budget, with no wait on and none since the
    /// source last answered: poll the source with our waker; an answer
    /// changes nothing.
    Flowing,
    /// Anything else (unstarted; a wait on, or one since the last answer;
    /// a budget once the source has pended; finished): the whole protocol,
    /// out of line.
    Full,
}

impl State {
    /// This state's [`Path`].
    pub(super) fn path(&self) -> Path {
        match self {
            State::Plain(clocks) if clocks.budget.is_some() => Path::Full,
            State::Plain(_) => Path::Plain,
            State::Watched(Watched {
                clocks: Clocks { budget: None, .. },
                idle: IdleClock::Stopped { waited },
                ..
            }) if waited.is_zero() => Path::Flowing,
            State::Watched(_) | State::Unstarted | State::Finished => Path::Full,
        }
    }

    /// The clocks, once started and until finished.
    #[inline(always)]
    pub(super) fn clocks(&self) -> Option<&Clocks> {
        match self {
            State::Plain(clocks) => Some(clocks),
            State::Watched(watched) => Some(&watched.clocks),
            State::Unstarted | State::Finished => None,
        }
    }

    /// The clocks, mutably.
    pub(super) fn clocks_mut(&mut self) -> Option<&mut Clocks> {
        match self {
            State::Plain(clocks) => Some(clocks),
            State::Watched(watched) => Some(&mut watched.clocks),
            State::Unstarted | State::Finished => None,
        }
    }

    /// New limits on this watch, for its next poll on, with `progress` made
    /// at the monitor's `tick`. What keeps running and what starts over is
    /// listed at `Monitor::set_limits`; before the first poll the limits are
    /// simply used when the clocks start, and after the end nothing is
    /// watched.
    #[cold]
    pub(super) fn relimit(
        &mut self,
        old: &Limits,
        new: &Limits,
        (progress, tick): (u64, u64),
        check: &mut BudgetCheck,
    ) {
        match self {
            State::Unstarted | State::Finished => {}
            State::Plain(clocks) => clocks.relimit(new, (progress, tick), check, false),
            State::Watched(watched) => watched.relimit(old, new, (progress, tick), check),
        }
    }

    /// The source returned `Pending` for the first time: from now on it is
    /// polled with our waker.
    #[cold]
    #[inline(never)]
    pub(super) fn watch(&mut self) {
        *self = match mem::replace(self, State::Finished) {
            State::Plain(clocks) => State::Watched(Watched {
                clocks,
                wakes: Wakes::new(),
                idle: IdleClock::ZERO,
            }),
            other => other,
        };
    }
}

impl Watched {
    /// While a wait runs, since `since` on top of `waited`: every limit's
    /// deadline under `limits`.
    #[inline]
    pub(super) fn deadlines(
        &self,
        limits: &Limits,
        progress: u64,
        since: Instant,
        waited: Duration,
    ) -> Deadlines {
        Deadlines {
            total: self.clocks.budget.as_ref().map(Budget::deadline),
            idle: Deadline::idle(limits, progress, since, waited),
            window: self
                .clocks
                .window
                .as_ref()
                .and_then(|window| window.deadline(progress)),
        }
    }

    /// New limits, replacing `old`. While a wait is on, the consumer sleeps
    /// until the source or the timer wakes it, and the timer holds its
    /// waker only if the wait had a deadline under the old limits (the
    /// monitor polled the timer for it). So the consumer is woken, for its
    /// next poll to aim the timer, when the new limits give the wait a
    /// deadline and either the old ones gave it none or the timer would
    /// fire after it. (A deadline that has passed already is declared by
    /// that poll, once the source has answered `Pending` to it.)
    fn relimit(
        &mut self,
        old: &Limits,
        new: &Limits,
        (progress, tick): (u64, u64),
        check: &mut BudgetCheck,
    ) {
        let IdleClock::Running { since, waited } = self.idle else {
            self.clocks.relimit(new, (progress, tick), check, true);
            return;
        };
        let timed = self
            .deadlines(old, progress, since, waited)
            .next()
            .is_some();
        self.clocks.relimit(new, (progress, tick), check, true);
        let next = self.deadlines(new, progress, since, waited).next();
        if next.is_some_and(|next| !timed || self.clocks.timer.fires_after(next)) {
            self.wakes.nudge_consumer();
        }
    }

    /// The source returned `Pending` at `now`: the idle clock runs on from
    /// where it stopped, and the window counts this wait from now.
    pub(super) fn begin_wait(&mut self, now: Instant) {
        if let IdleClock::Stopped { waited } = self.idle {
            self.idle = IdleClock::Running { since: now, waited };
        }
        if let Some(window) = self.clocks.window.as_mut() {
            window.begin_wait(now);
        }
    }

    /// The wait ended at `at` (the source woke us, or answered): its time
    /// counts on the idle clock and in the window.
    pub(super) fn end_wait(&mut self, at: Instant, progress: u64) {
        if let IdleClock::Running { since, waited } = self.idle {
            self.idle = IdleClock::Stopped {
                waited: waited.saturating_add(at.saturating_duration_since(since)),
            };
            if let Some(window) = self.clocks.window.as_mut() {
                window.end_wait(at, progress);
            }
        }
    }
}
