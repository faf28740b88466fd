//! When a shutdown's grace period is over: tokio's clock decides; tokio's
//! timer and the process-wide real-time alarm wake the shutdown to look.
//!
//! The alarm is for when tokio's timer cannot fire: on a multi-thread runtime
//! the timers are driven by the worker threads, and flushes that block their
//! threads (a synchronous call inside the flush) can pin every one of them.
//! The alarm only wakes; the grace period is still read from tokio's clock,
//! so under a paused clock a shutdown keeps tokio's exact timings.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use crate::alarm::Alarm;

/// The grace period of one `Batcher::shutdown` call.
pub(super) struct Grace {
    /// `None`: a grace too long to add to the start (`Duration::MAX`, say)
    /// is no limit.
    give_up: Option<Instant>,
    /// Armed at the first wait, so that a shutdown with nothing to wait for
    /// touches neither tokio's timer nor the alarm thread.
    armed: Option<(Pin<Box<Sleep>>, Alarm)>,
}

impl Grace {
    pub(super) fn new(started: Instant, grace: Duration) -> Self {
        Grace {
            give_up: started.checked_add(grace),
            armed: None,
        }
    }

    /// `true` once the grace period is over; otherwise both tokio's timer
    /// and the alarm will wake `cx` when it is.
    pub(super) fn poll_over(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(give_up) = self.give_up else {
            return false;
        };
        let (sleep, alarm) = match &mut self.armed {
            Some(armed) => armed,
            None => {
                // No timer for a grace already over (a zero grace).
                if Instant::now() >= give_up {
                    return true;
                }
                let alarm = Alarm::new();
                alarm.set(give_up);
                self.armed.insert((Box::pin(sleep_until(give_up)), alarm))
            }
        };
        // Registered before the clock is read: a ring in between is not lost.
        alarm.register(cx.waker());
        sleep.as_mut().poll(cx).is_ready() || Instant::now() >= give_up
    }
}

impl std::fmt::Debug for Grace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grace")
            .field("give_up", &self.give_up)
            .field("armed", &self.armed.is_some())
            .finish()
    }
}
