//! The clock behind every watchdog: one per watched direction.
//!
//! The owner calls `before_poll` before polling its source, `on_ready` when
//! the source made progress (or answered at all), and `on_pending` when it
//! returned `Pending`. Cost on the hot path (a source that is always ready):
//! no clock read and no timer operation, only counters and, when a `total`
//! budget is set, one atomic load to see whether its timer has fired.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use super::limits::{Limits, MinRate};
use super::stalled::{Progress, StallKind, Stalled};

/// Waiting time within the current `min_rate` window.
#[derive(Debug)]
struct Window {
    rate: MinRate,
    /// Time spent waiting on the source in this window, up to `mark`.
    waited: Duration,
    /// Total progress when the window began; the window's own progress is
    /// the difference, so items need no bookkeeping here.
    start_progress: u64,
    /// When the current wait began (meaningful only while pending).
    mark: Instant,
}

#[derive(Debug)]
pub(crate) struct Monitor {
    limits: Limits,
    // The unit progress is counted in; its count is ignored.
    unit: Progress,
    progress: u64,
    // The one flag the hot path reads before polling the source: set until
    // the first poll, while a `total` budget is set, and while a verdict
    // waits to be reported.
    check_before_poll: bool,
    started: Option<Instant>,
    // `None` when no total is set, or when it lies beyond what `Instant`
    // can represent (then it can never be reached).
    total_deadline: Option<Instant>,
    // The idle clock: set when the source returned `Pending`, cleared when
    // it yields.
    pending_since: Option<Instant>,
    window: Option<Window>,
    // A `min_rate` window found too slow when an item ended it; reported on
    // the next poll, after the item was handed over.
    verdict: Option<Stalled>,
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
            started: None,
            total_deadline: None,
            pending_since: None,
            window: None,
            verdict: None,
            timer: None,
        }
    }

    pub(crate) fn progress(&self) -> u64 {
        self.progress
    }

    /// Starts the clocks on the first call; reports a spent `total` budget or
    /// a window already judged too slow.
    #[inline(always)]
    pub(crate) fn before_poll(&mut self) -> Result<(), Stalled> {
        // Kept to one load and branch so it inlines into every `poll_next`;
        // the checks live out of line.
        if self.check_before_poll {
            return self.checks_before_poll();
        }
        Ok(())
    }

    #[inline(never)]
    fn checks_before_poll(&mut self) -> Result<(), Stalled> {
        // The common case with a `total` budget: one atomic load.
        let budget_only = self.verdict.is_none() && self.started.is_some();
        if budget_only && !self.timer.as_ref().is_some_and(|t| t.is_elapsed()) {
            return Ok(());
        }
        self.check_slow()
    }

    #[cold]
    fn check_slow(&mut self) -> Result<(), Stalled> {
        if self.started.is_none() {
            self.start();
        } else if let Some(verdict) = self.verdict.take() {
            return Err(verdict);
        } else {
            // The timer has fired: the budget ran out, or it was armed for an
            // idle or window deadline that no longer applies.
            self.check_budget()?;
        }
        self.check_before_poll = self.total_deadline.is_some();
        Ok(())
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
    }

    /// The timer fired while the source was not known to be pending.
    #[cold]
    fn check_budget(&mut self) -> Result<(), Stalled> {
        let Some(total_deadline) = self.total_deadline else {
            // Only a stale idle or window deadline: `on_pending` re-arms.
            return Ok(());
        };
        let fired_at = self.timer.as_ref().map_or(total_deadline, |t| t.deadline());
        let now = Instant::now().max(fired_at);
        if now >= total_deadline {
            let stalled = Stalled::new(
                StallKind::Total,
                self.unit.with_count(self.progress),
                self.pending_since
                    .map_or(Duration::ZERO, |since| now - since),
                now - self.started.unwrap_or(now),
                self.limits.total.unwrap_or_default(),
                None,
            );
            report(&stalled);
            return Err(stalled);
        }
        // The timer fired for an idle or window deadline that no longer
        // applies (the source yielded since): point it back at the budget.
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(total_deadline);
        }
        Ok(())
    }

    /// The source yielded `amount` units of progress (zero for an answer
    /// that carries none: an end of file, an error, a flush).
    #[inline(always)]
    pub(crate) fn on_ready(&mut self, amount: u64) {
        self.progress += amount;
        if self.pending_since.is_some() {
            self.end_wait();
        }
    }

    /// Stops the idle clock; adds the wait that just ended to the `min_rate`
    /// window and judges the window if that filled it, counting what just
    /// arrived.
    #[inline(never)]
    fn end_wait(&mut self) {
        self.pending_since = None;
        let Some(window) = self.window.as_mut() else {
            return;
        };
        let now = Instant::now();
        window.waited += now.saturating_duration_since(window.mark);
        if window.waited >= window.rate.window {
            let made = self.progress - window.start_progress;
            if made < window.rate.amount {
                let elapsed = now - self.started.unwrap_or(now);
                let stalled = too_slow(window, made, self.unit.with_count(self.progress), elapsed);
                report(&stalled);
                self.verdict = Some(stalled);
                self.check_before_poll = true;
            }
            window.waited = Duration::ZERO;
            window.start_progress = self.progress;
        }
    }

    /// Counts progress that arrives outside a poll (`AsyncBufRead::consume`).
    pub(crate) fn count(&mut self, amount: u64) {
        self.progress += amount;
    }

    /// The source returned `Pending`: starts the idle clock if it is not
    /// running, and reports a stall once a limit is reached.
    // Out of line: inlined, it crowds the always-ready path of `poll_next`.
    #[inline(never)]
    pub(crate) fn on_pending(&mut self, cx: &mut Context<'_>) -> Poll<Stalled> {
        if self.pending_since.is_none() {
            let now = Instant::now();
            self.pending_since = Some(now);
            if let Some(window) = self.window.as_mut() {
                window.mark = now;
            }
        }
        // Whether the timer has fired in this call: then it must be re-armed
        // even for a later deadline.
        let mut fired = false;
        loop {
            let Some(target) = next_deadline(
                &self.limits,
                self.progress,
                self.total_deadline,
                self.pending_since,
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

    /// Deregisters the timer; called when the source ends or stalls.
    pub(crate) fn finish(&mut self) {
        self.timer = None;
        self.pending_since = None;
    }

    /// Which limit, if any, is reached at `now` while the source is pending.
    fn limit_reached(&mut self, now: Instant) -> Option<Stalled> {
        let elapsed = now - self.started.unwrap_or(now);
        let made = self.unit.with_count(self.progress);
        let waited = self
            .pending_since
            .map_or(Duration::ZERO, |since| now - since);
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
        let since = self.pending_since?;
        if let Some((kind, limit)) = idle_limit(&self.limits, self.progress) {
            if since.checked_add(limit).is_some_and(|at| now >= at) {
                return Some(Stalled::new(kind, made, waited, elapsed, limit, None));
            }
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

/// The earliest deadline that matters now, if any.
fn next_deadline(
    limits: &Limits,
    progress: u64,
    total_deadline: Option<Instant>,
    pending_since: Option<Instant>,
    window: Option<&Window>,
) -> Option<Instant> {
    let mut next = total_deadline;
    if let Some(since) = pending_since {
        if let Some((_, limit)) = idle_limit(limits, progress) {
            next = earliest(next, since.checked_add(limit));
        }
        if let Some(window) = window {
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
