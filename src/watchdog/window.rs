//! `min_rate`'s window: progress per window of *waiting* on the source.
//!
//! 1. A window's clock is the idle clock: it advances only while the source
//!    is pending, so a slow consumer never makes the source look slow. The
//!    monitor tells the window when a wait begins and when it ends.
//! 2. A window ends when the waiting in it reaches its length. It is judged
//!    then: by the timer while the source is pending, or, when a wait that
//!    ended filled it, at the source's next `Pending`, counting every unit
//!    delivered in between. So a window is never judged while items are
//!    ready.
//! 3. A window passes when it saw at least the minimum; the next one begins
//!    at that moment, with the progress made by then.
//! 4. With `first_item` set, windows run only from the first progress on,
//!    so the first item's grace is not cut short to one window.
//! 5. New limits on a running watch keep the window if they keep its rate
//!    (and rule 4); a changed rate begins a new window at that moment, with
//!    the progress made by then, rather than judge waiting measured under
//!    the old rate by the new one.

use std::time::Duration;

use tokio::time::Instant;

use super::deadline::Deadline;
use super::limits::{Limits, MinRate};

#[derive(Debug)]
pub(super) struct Window {
    rate: MinRate,
    /// Rule 4: set when `first_item` is.
    from_first_progress: bool,
    /// Waiting counted in this window, up to `mark`. It may reach the
    /// window's length when a wait ends; the window is then judged at the
    /// next `Pending` (rule 2).
    waited: Duration,
    /// Total progress when the window began; the window's own progress is
    /// the difference, so items need no bookkeeping here.
    start_progress: u64,
    /// While a wait is on: when this window began counting it (the wait's
    /// start, or the moment the window last passed during it).
    mark: Instant,
}

/// A window that saw less than the minimum.
#[derive(Debug)]
pub(super) struct TooSlow {
    /// Progress in the window.
    pub(super) got: u64,
    pub(super) rate: MinRate,
}

impl Window {
    /// The first window, from the first poll at `now`; `None` without a
    /// `min_rate`.
    pub(super) fn start(limits: &Limits, now: Instant) -> Option<Self> {
        Some(Window {
            rate: limits.min_rate?,
            from_first_progress: limits.first_item.is_some(),
            waited: Duration::ZERO,
            start_progress: 0,
            mark: now,
        })
    }

    /// The window under new limits, at `now` with `progress` made (rule 5):
    /// the same window if the rate and rule 4 are unchanged, else a new one
    /// from now; `None` without a `min_rate`.
    pub(super) fn relimit(
        old: Option<Self>,
        limits: &Limits,
        progress: u64,
        now: impl FnOnce() -> Instant,
    ) -> Option<Self> {
        let rate = limits.min_rate?;
        let from_first_progress = limits.first_item.is_some();
        match old {
            Some(window)
                if window.rate == rate && window.from_first_progress == from_first_progress =>
            {
                Some(window)
            }
            _ => Some(Window {
                rate,
                from_first_progress,
                waited: Duration::ZERO,
                start_progress: progress,
                mark: now(),
            }),
        }
    }

    /// Whether windows run at `progress` (rule 4).
    fn runs(&self, progress: u64) -> bool {
        progress > 0 || !self.from_first_progress
    }

    /// A wait began at `now`.
    pub(super) fn begin_wait(&mut self, now: Instant) {
        self.mark = now;
    }

    /// The wait ended at `at`: its part in this window counts.
    pub(super) fn end_wait(&mut self, at: Instant, progress: u64) {
        if self.runs(progress) {
            self.waited = self
                .waited
                .saturating_add(at.saturating_duration_since(self.mark));
        }
    }

    /// While a wait is on: when the waiting in this window reaches its
    /// length. `None` while windows do not run yet, or beyond what `Instant`
    /// can hold.
    pub(super) fn deadline(&self, progress: u64) -> Option<Deadline> {
        if !self.runs(progress) {
            return None;
        }
        self.mark
            .checked_add(self.rate.window.saturating_sub(self.waited))
            .map(Deadline::window)
    }

    /// Judges the window that ended at `now` (its deadline has passed):
    /// below the minimum it is [`TooSlow`], otherwise the next window begins.
    pub(super) fn judge(&mut self, now: Instant, progress: u64) -> Result<(), TooSlow> {
        let got = progress - self.start_progress;
        if got < self.rate.amount {
            return Err(TooSlow {
                got,
                rate: self.rate,
            });
        }
        self.waited = Duration::ZERO;
        self.start_progress = progress;
        self.mark = now;
        Ok(())
    }
}
