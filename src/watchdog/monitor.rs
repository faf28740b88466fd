//! The clock behind every watchdog: one per watched direction.
//!
//! The owner calls `before_poll`, polls its source with the waker from
//! `source_waker` (or, on the plain path of `is_plain`, with the consumer's
//! own context), then `on_ready` when the source answered or `on_pending`
//! when it returned `Pending`; `on_pending` may ask for one more poll (the
//! first `Pending`, to hand the source our waker). Cost on the hot path (a source that is always ready and never
//! returned `Pending`): no clock read, no timer operation and no waker
//! wrapping, only counters and flag tests; with a `total` budget, one atomic
//! load per item and one clock read every `CLOCK_EVERY` items.
//!
//! # Whose time is waiting
//!
//! A wait begins when the source returns `Pending` and ends when the source
//! *wakes* (or answers, if it never woke us), not when the consumer polls
//! again: the time between the source's wake and the consumer's next poll is
//! the consumer's, and never counts. To see the wake, the source is polled
//! with a waker of our own (`WakeState`) from its first `Pending` on; it
//! records when it was first woken and passes the wake to the consumer's
//! task. The waits between two answers are summed, so a source that wakes
//! without yielding (a lazy `then` step, a decoder fed a byte at a time) is
//! still judged on all its waiting since its last answer.
//!
//! A wake that arrives while the source is being polled (a source that wakes
//! itself, e.g. when the task's coop budget is spent) does not end the wait:
//! the consumer is re-polled at once and the wait ends only when the source
//! yields. A source that spins (wakes itself and never yields) is thus still
//! declared idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use super::limits::{Limits, MinRate};
use super::stalled::{Progress, StallKind, Stalled};

/// With a `total` budget, the clock is read every this many polls, so that
/// the budget is enforced even when the runtime's time driver cannot run
/// (a consumer that never yields, on a current-thread runtime, draining an
/// always-ready source). 64 keeps the amortised cost under a nanosecond per
/// item and the overshoot to 64 items' worth of the consumer's work.
const CLOCK_EVERY: u32 = 64;

/// What to do after the source returned `Pending`.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Return `Pending`: the watchdog's waker and timer are registered.
    Wait,
    /// Poll the source once more, with `source_waker()`.
    PollAgain,
    /// A limit was reached.
    Stalled(Stalled),
}

/// Waiting time within the current `min_rate` window.
#[derive(Debug)]
struct Window {
    rate: MinRate,
    /// Time spent waiting on the source in this window, up to `mark`. It
    /// may reach the window's length when a wait ends; the window is then
    /// judged the next time the source returns `Pending`, counting every
    /// item the source delivered in between.
    waited: Duration,
    /// Total progress when the window began; the window's own progress is
    /// the difference, so items need no bookkeeping here.
    start_progress: u64,
    /// When the current wait began (meaningful only while pending).
    mark: Instant,
}

/// The waker the source is polled with once it has returned `Pending`.
#[derive(Debug, Default)]
struct WakeState {
    slot: Mutex<WakeSlot>,
}

#[derive(Debug, Default)]
struct WakeSlot {
    /// The consumer's waker from the last `Pending`.
    consumer: Option<Waker>,
    /// When the source first woke us since the last time this was taken.
    woken_at: Option<Instant>,
}

impl WakeState {
    fn lock(&self) -> MutexGuard<'_, WakeSlot> {
        crate::sync::lock(&self.slot)
    }
}

impl Wake for WakeState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let consumer = {
            let mut slot = self.lock();
            if slot.woken_at.is_none() {
                slot.woken_at = Some(Instant::now());
            }
            slot.consumer.clone()
        };
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }
}

/// Our waker, built once per watchdog on its first `Pending`.
#[derive(Debug)]
struct Wakes {
    state: Arc<WakeState>,
    waker: Waker,
}

#[derive(Debug)]
pub(crate) struct Monitor {
    limits: Limits,
    // The unit progress is counted in; its count is ignored.
    unit: Progress,
    progress: u64,
    // The one flag the hot path reads before polling the source: set until
    // the first poll, and while a `total` budget is set.
    check_before_poll: bool,
    // Started, and the source never returned `Pending`: see `is_plain`.
    plain: bool,
    // Polls left until the clock is read for the `total` budget.
    countdown: u32,
    started: Option<Instant>,
    // `None` when no total is set, or when it lies beyond what `Instant`
    // can represent (then it can never be reached).
    total_deadline: Option<Instant>,
    // Set from a `Pending` until the source next answers.
    waiting: bool,
    // Waiting in the earlier waits since the last answer (each ended by a
    // wake of the source that did not lead to an answer).
    waited: Duration,
    // The current wait: set when the source returned `Pending`, cleared when
    // it woke us or answered.
    pending_since: Option<Instant>,
    window: Option<Window>,
    wakes: Option<Wakes>,
    // One timer for every limit. Its deadline is never later than the
    // earliest deadline that matters; when it fires early it is re-armed.
    // Boxed (once, when first needed) so that watchdogs are `Unpin`
    // whenever their source is: `next()`, `read_to_end()` and
    // `tokio::io::copy` then work without pinning.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Monitor {
    pub(crate) fn new(limits: Limits, unit: Progress) -> Self {
        Monitor {
            limits,
            unit,
            progress: 0,
            check_before_poll: true,
            plain: false,
            countdown: CLOCK_EVERY,
            started: None,
            total_deadline: None,
            waiting: false,
            waited: Duration::ZERO,
            pending_since: None,
            window: None,
            wakes: None,
            timer: None,
        }
    }

    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// Starts the clocks on the first call; reports a spent `total` budget.
    #[inline(always)]
    pub(crate) fn before_poll(&mut self) -> Result<(), Stalled> {
        // Kept to one load and branch so it inlines into every `poll_next`;
        // the checks live out of line.
        if self.check_before_poll {
            return self.checks_before_poll();
        }
        Ok(())
    }

    /// Whether the next poll may take the plain path: started, and the
    /// source never returned `Pending` (so it is polled with the consumer's
    /// waker and no wait is on). Then an item needs only `before_poll` and
    /// `on_ready`.
    #[inline(always)]
    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    #[inline(never)]
    fn checks_before_poll(&mut self) -> Result<(), Stalled> {
        if self.started.is_none() {
            self.start();
            return Ok(());
        }
        // Only while a `total` budget is set: one atomic load, and a clock
        // read every `CLOCK_EVERY` polls for when the timer cannot fire.
        self.countdown = self.countdown.saturating_sub(1);
        if self.countdown != 0 && !self.timer.as_ref().is_some_and(|t| t.is_elapsed()) {
            return Ok(());
        }
        self.check_budget()
    }

    #[cold]
    fn start(&mut self) {
        let now = Instant::now();
        self.started = Some(now);
        if let Some(rate) = self.limits.min_rate {
            self.window = Some(Window {
                rate,
                waited: Duration::ZERO,
                start_progress: 0,
                mark: now,
            });
        }
        if let Some(total) = self.limits.total {
            self.total_deadline = now.checked_add(total);
            if let Some(deadline) = self.total_deadline {
                // Registered now, so an always-ready source sees the budget
                // run out through `is_elapsed` without polling the timer.
                let mut timer = Box::pin(sleep_until(deadline));
                timer.as_mut().reset(deadline);
                self.timer = Some(timer);
            }
        }
        self.countdown = CLOCK_EVERY;
        self.check_before_poll = self.total_deadline.is_some();
        self.plain = self.wakes.is_none();
    }

    /// The timer fired, or it is time to read the clock for the budget.
    #[cold]
    fn check_budget(&mut self) -> Result<(), Stalled> {
        self.countdown = CLOCK_EVERY;
        let Some(total_deadline) = self.total_deadline else {
            return Ok(());
        };
        let fired = self.timer.as_ref().is_some_and(|t| t.is_elapsed());
        let mut now = Instant::now();
        if fired {
            // Tokio holds the timer's deadline reached even if the clock
            // reads a hair earlier.
            if let Some(timer) = self.timer.as_ref() {
                now = now.max(timer.deadline());
            }
        }
        if now >= total_deadline {
            let stalled = Stalled::new(
                StallKind::Total,
                self.unit.with_count(self.progress),
                self.current_wait(now),
                now - self.started.unwrap_or(now),
                self.limits.total.unwrap_or_default(),
                None,
            );
            report(&stalled);
            return Err(stalled);
        }
        if fired {
            // The timer fired for an idle or window deadline that no longer
            // applies (the source yielded since): point it back at the budget.
            if let Some(timer) = self.timer.as_mut() {
                timer.as_mut().reset(total_deadline);
            }
        }
        Ok(())
    }

    /// The waker to poll the source with: `None` (the consumer's own) until
    /// the source first returned `Pending`, ours from then on. Ends the
    /// current wait if the source woke since.
    #[inline(always)]
    pub(crate) fn source_waker<'a>(&'a mut self, cx: &'a Context<'_>) -> &'a Waker {
        if self.wakes.is_none() {
            return cx.waker();
        }
        self.wrapped_waker(cx)
    }

    #[inline(never)]
    fn wrapped_waker<'a>(&'a mut self, cx: &'a Context<'_>) -> &'a Waker {
        if self.pending_since.is_some() {
            self.take_wake();
        }
        self.wakes.as_ref().map_or(cx.waker(), |wakes| &wakes.waker)
    }

    #[cold]
    #[inline(never)]
    fn build_wakes(&mut self) {
        let state = Arc::new(WakeState::default());
        let waker = Waker::from(state.clone());
        self.wakes = Some(Wakes { state, waker });
        // No longer plain: the source is polled with our waker from now on.
        self.plain = false;
    }

    /// Before a poll while a wait is on: if the source woke since, the wait
    /// ended then, whenever the consumer comes back.
    #[inline(never)]
    fn take_wake(&mut self) {
        let (Some(wakes), Some(since)) = (self.wakes.as_ref(), self.pending_since) else {
            return;
        };
        let woken_at = wakes.state.lock().woken_at.take();
        if let Some(at) = woken_at {
            // A wake from a thread outside the runtime reads the real clock,
            // which under a paused clock may lie outside the wait: clamp.
            let now = Instant::now().max(since);
            self.end_wait(since, at.clamp(since, now));
        }
    }

    /// Ends the current wait at `at`: adds it to the idle clock and to the
    /// `min_rate` window.
    fn end_wait(&mut self, since: Instant, at: Instant) {
        self.pending_since = None;
        self.waited = self
            .waited
            .saturating_add(at.saturating_duration_since(since));
        if window_active(&self.limits, self.progress) {
            if let Some(window) = self.window.as_mut() {
                window.waited = window
                    .waited
                    .saturating_add(at.saturating_duration_since(window.mark));
            }
        }
    }

    /// The source yielded `amount` units of progress (zero for an answer
    /// that carries none: an end of file, an error, a flush).
    #[inline(always)]
    pub(crate) fn on_ready(&mut self, amount: u64) {
        if self.waiting {
            self.end_waiting();
        }
        self.progress = self.progress.saturating_add(amount);
    }

    /// The source answered: stops the idle clock. A `min_rate` window the
    /// wait filled is judged at the next `Pending`, counting everything the
    /// source delivers until then.
    #[inline(never)]
    fn end_waiting(&mut self) {
        if let Some(since) = self.pending_since {
            // The source answered without waking us (it was polled for
            // another reason): the wait ends now.
            self.end_wait(since, Instant::now());
        }
        self.waiting = false;
        self.waited = Duration::ZERO;
    }

    /// Counts progress that arrives outside a poll (`AsyncBufRead::consume`).
    pub(crate) fn count(&mut self, amount: u64) {
        self.progress = self.progress.saturating_add(amount);
    }

    /// The source returned `Pending`: starts a wait if none is on, and
    /// reports a stall once a limit is reached. The source has always just
    /// been polled when a stall is declared here.
    // Out of line: inlined, it crowds the always-ready path of `poll_next`.
    #[inline(never)]
    pub(crate) fn on_pending(&mut self, cx: &mut Context<'_>) -> Pending {
        if self.wakes.is_none() {
            // The source holds the consumer's waker from the poll that just
            // returned `Pending`: poll it again with ours, so that it holds
            // ours. (It may be ready by now: then its answer is handed on.)
            self.build_wakes();
            return Pending::PollAgain;
        }
        match self.wait(cx) {
            Poll::Pending => Pending::Wait,
            Poll::Ready(stalled) => Pending::Stalled(stalled),
        }
    }

    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Stalled> {
        if self.pending_since.is_none() {
            let now = Instant::now();
            if let Some(stalled) = self.judge_full_window(now) {
                report(&stalled);
                return Poll::Ready(stalled);
            }
            self.pending_since = Some(now);
            self.waiting = true;
            if let Some(window) = self.window.as_mut() {
                window.mark = now;
            }
        }
        self.register(cx);
        // Whether the timer has fired in this call: then it must be re-armed
        // even for a later deadline.
        let mut fired = false;
        loop {
            let Some(target) = next_deadline(
                &self.limits,
                self.progress,
                self.total_deadline,
                self.pending_since,
                self.waited,
                self.window.as_ref(),
            ) else {
                return Poll::Pending;
            };
            let timer = arm(&mut self.timer, target, fired);
            let fired_at = timer.deadline();
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            fired = true;
            // The timer fired, so tokio holds its deadline reached even if the
            // clock reads a hair earlier; this keeps the loop from spinning.
            let now = Instant::now().max(fired_at);
            if let Some(stalled) = self.limit_reached(now) {
                report(&stalled);
                return Poll::Ready(stalled);
            }
            // Fired early (a deadline that no longer applies): re-arm.
        }
    }

    /// Hands our waker the consumer's, for the wait that goes on.
    fn register(&mut self, cx: &mut Context<'_>) {
        let Some(wakes) = self.wakes.as_ref() else {
            return;
        };
        let woke_during_poll = {
            let mut slot = wakes.state.lock();
            if !slot
                .consumer
                .as_ref()
                .is_some_and(|consumer| consumer.will_wake(cx.waker()))
            {
                slot.consumer = Some(cx.waker().clone());
            }
            slot.woken_at.take().is_some()
        };
        if woke_during_poll {
            // Woken while being polled (or by a stale registration): the
            // source answered `Pending` after that, so the wait goes on, but
            // the wake went to a waker that may be stale: poll again.
            cx.waker().wake_by_ref();
        }
    }

    /// Wakes the task that last waited on this monitor's source (the other
    /// half of a split `IoWatchdog` after a stall dropped the connection).
    pub(crate) fn wake_waiter(&mut self) {
        let consumer = self
            .wakes
            .as_ref()
            .and_then(|wakes| wakes.state.lock().consumer.take());
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }

    /// Deregisters the timer and lets go of our waker; called when the
    /// source ends or stalls.
    // Out of line: the drop glue of the timer and the waker would crowd
    // the always-ready path of `poll_next`.
    #[cold]
    #[inline(never)]
    pub(crate) fn finish(&mut self) {
        self.timer = None;
        self.release_consumer();
        self.wakes = None;
        self.pending_since = None;
        self.waiting = false;
    }

    /// Clears the consumer's waker from our waker's state: a source (or a
    /// registration of it) that outlives the watchdog keeps no reference to
    /// the consumer's task through us.
    fn release_consumer(&mut self) {
        let consumer = self
            .wakes
            .as_ref()
            .and_then(|wakes| wakes.state.lock().consumer.take());
        drop(consumer);
    }

    /// The waiting since the source last answered, as of `now`.
    fn current_wait(&self, now: Instant) -> Duration {
        let current = self
            .pending_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.waited.saturating_add(current)
    }

    /// Judges a `min_rate` window that an ended wait filled, now that the
    /// source has been polled and returned `Pending`.
    fn judge_full_window(&mut self, now: Instant) -> Option<Stalled> {
        if !window_active(&self.limits, self.progress) {
            return None;
        }
        let window = self.window.as_mut()?;
        if window.waited < window.rate.window {
            return None;
        }
        window.waited = window.rate.window;
        let in_window = self.progress - window.start_progress;
        if in_window < window.rate.amount {
            let elapsed = now - self.started.unwrap_or(now);
            return Some(too_slow(
                window,
                in_window,
                self.unit.with_count(self.progress),
                elapsed,
            ));
        }
        window.waited = Duration::ZERO;
        window.start_progress = self.progress;
        None
    }

    /// Which limit, if any, is reached at `now` while the source is pending.
    fn limit_reached(&mut self, now: Instant) -> Option<Stalled> {
        let elapsed = now - self.started.unwrap_or(now);
        let made = self.unit.with_count(self.progress);
        let waited = self.current_wait(now);
        if let (Some(deadline), Some(total)) = (self.total_deadline, self.limits.total) {
            if now >= deadline {
                return Some(Stalled::new(
                    StallKind::Total,
                    made,
                    waited,
                    elapsed,
                    total,
                    None,
                ));
            }
        }
        self.pending_since?;
        if let Some((kind, limit)) = idle_limit(&self.limits, self.progress) {
            if waited >= limit {
                return Some(Stalled::new(kind, made, waited, elapsed, limit, None));
            }
        }
        if !window_active(&self.limits, self.progress) {
            return None;
        }
        if let Some(window) = self.window.as_mut() {
            if window_end(window).is_some_and(|end| now >= end) {
                window.waited = window.rate.window;
                let in_window = self.progress - window.start_progress;
                if in_window < window.rate.amount {
                    return Some(too_slow(window, in_window, made, elapsed));
                }
                window.waited = Duration::ZERO;
                window.start_progress = self.progress;
                window.mark = now;
            }
        }
        None
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.release_consumer();
    }
}

/// The earliest deadline that matters now, if any.
fn next_deadline(
    limits: &Limits,
    progress: u64,
    total_deadline: Option<Instant>,
    pending_since: Option<Instant>,
    waited: Duration,
    window: Option<&Window>,
) -> Option<Instant> {
    let mut next = total_deadline;
    if let Some(since) = pending_since {
        if let Some((_, limit)) = idle_limit(limits, progress) {
            next = earliest(next, since.checked_add(limit.saturating_sub(waited)));
        }
        if let Some(window) = window.filter(|_| window_active(limits, progress)) {
            next = earliest(next, window_end(window));
        }
    }
    next
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Which idle-like limit applies: `first_item` until the first progress.
fn idle_limit(limits: &Limits, progress: u64) -> Option<(StallKind, Duration)> {
    match (progress, limits.first_item) {
        (0, Some(first_item)) => Some((StallKind::FirstItem, first_item)),
        _ => limits.idle.map(|idle| (StallKind::Idle, idle)),
    }
}

/// Whether `min_rate` windows run: with `first_item` set, only from the
/// first progress on, so the first item's grace is not cut to one window.
fn window_active(limits: &Limits, progress: u64) -> bool {
    progress > 0 || limits.first_item.is_none()
}

fn window_end(window: &Window) -> Option<Instant> {
    window
        .mark
        .checked_add(window.rate.window.saturating_sub(window.waited))
}

/// Points the timer at `target` unless it already fires no later than that
/// and has not fired yet.
fn arm(timer: &mut Option<Pin<Box<Sleep>>>, target: Instant, fired: bool) -> &mut Pin<Box<Sleep>> {
    let sleep = timer.get_or_insert_with(|| Box::pin(sleep_until(target)));
    let deadline = sleep.deadline();
    // An earlier deadline is left alone: when it fires, the loop in
    // `on_pending` comes back with `fired` set and re-arms it. That keeps
    // the timer wheel out of the path of a source that pends often. (A timer
    // that fired while the source was ready is found the same way, by one
    // poll that returns at once.)
    if deadline > target || (fired && deadline < target) {
        sleep.as_mut().reset(target);
    }
    sleep
}

fn too_slow(window: &Window, in_window: u64, made: Progress, elapsed: Duration) -> Stalled {
    Stalled::new(
        StallKind::TooSlow,
        made,
        window.waited,
        elapsed,
        window.rate.window,
        Some((in_window, window.rate.amount)),
    )
}

/// Emits the stall as a `tracing` event when that feature is on.
pub(crate) fn report(stalled: &Stalled) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        kind = ?stalled.kind(),
        progress = stalled.progress().count(),
        waited = ?stalled.waited(),
        elapsed = ?stalled.elapsed(),
        "{stalled}"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = stalled;
}
