//! A scope's own deadline: when it is, how it fires, and how it moves.
//!
//! A deadline is a [`Timer`]: a tokio `Sleep`, armed on first use inside a runtime, whose
//! waker interrupts the scope when it fires, with the process-wide real-time [`Alarm`] as
//! its backstop (outside a runtime, and once the runtime that armed it shuts down).
//!
//! # Invariants
//!
//! 1. A deadline fires at most once, and only through [`Fire::fire_if_due`] (the clock
//!    says it is due) or [`Fire::fire_now`] (it was set in the past): both decide under
//!    the `moving` lock, so a move and a firing are ordered. A move made before the
//!    decision is what the decision sees; once it is decided, moves are refused.
//! 2. `at` mirrors `moving.at`, written under that lock: the lock-free "is it due" of the
//!    first poll reads it, and goes to the lock (invariant 1) only when it says due.
//! 3. `sleep` holds at most one live timer, for the instant `moving.at` had when it was
//!    armed. A move replaces it after updating `moving`; any arming after the update
//!    reads the new instant. A timer woken for an instant that was moved later finds it
//!    not due and hands over to the alarm, which rings again at the new instant.
//! 4. The wakers of the timer and of the alarm hold the `Fire` weakly: a dropped scope
//!    takes its alarm entry with it, and nothing it armed keeps it alive.
//!
//! # Deadlock safety
//!
//! `moving` and `sleep` are leaves: no interrupt (which wakes tasks and runs hooks) and
//! no drop of a timer runs while `moving` is held, and no interrupt runs while `sleep` is
//! held except the one of a token cancelled from outside, which `is_interrupted` notices.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::task::Unconstrained;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::Interrupted;
use super::signal::Signal;
use crate::alarm::Alarm;
use crate::sync::lock;

pub(crate) type ScopeSignal = Signal<CancellationToken>;

/// A deadline's timer: a tokio `Sleep`, armed on first use inside a runtime, with the
/// real-time alarm as its backstop.
pub(crate) struct Timer {
    pub(crate) fire: Arc<Fire>,
    sleep: Mutex<Option<Pin<Box<Unconstrained<Sleep>>>>>,
}

/// What the timer's and the alarm's wakers need to fire a deadline. Owned by its
/// `Timer`; the wakers hold it weakly (invariant 4).
pub(crate) struct Fire {
    /// The deadline, for the lock-free check of a first poll (invariant 2).
    at: AtomicInstant,
    moving: Mutex<Moving>,
    pub(crate) signal: ScopeSignal,
    /// Whether a live timer is registered. Cleared when the timer is woken early (its
    /// runtime shut down, or the deadline moved later), so the next use re-arms.
    armed: AtomicBool,
    /// The real-time backstop, set once a timer was woken early or the deadline was
    /// watched outside a runtime.
    alarm: Mutex<Option<Alarm>>,
}

/// The deadline as set, and whether it fired (invariant 1).
struct Moving {
    at: Instant,
    /// What the scope is interrupted with.
    cause: Interrupted,
    fired: bool,
}

impl Fire {
    /// The deadline now.
    pub(crate) fn at(&self) -> Instant {
        match self.at.get() {
            Some(at) => at,
            None => lock(&self.moving).at,
        }
    }

    /// Whether the deadline has passed at `now` by the lock-free copy: `true` may be
    /// stale (a move is deciding), so act on it through `fire_if_due`.
    pub(crate) fn looks_due(&self, now: Instant) -> bool {
        self.at.due(now)
    }

    /// Fires if the clock says so, now or already. Outside a runtime (the alarm thread)
    /// tokio's clock is the real one.
    pub(crate) fn fire_if_due(&self, now: Instant) -> bool {
        self.fire_when(|at| now >= at)
    }

    /// Fires whatever the clock says: the deadline was in the past when it was set.
    pub(crate) fn fire_now(&self) {
        self.fire_when(|_| true);
    }

    /// Fires if it has not and `due(at)` says so, deciding under the `moving` lock
    /// (invariant 1) and interrupting outside it. Whether it has fired, now or before.
    fn fire_when(&self, due: impl FnOnce(Instant) -> bool) -> bool {
        let mut moving = lock(&self.moving);
        if moving.fired {
            return true;
        }
        if !due(moving.at) {
            return false;
        }
        moving.fired = true;
        let cause = moving.cause.clone();
        drop(moving);
        self.signal.interrupt(cause);
        true
    }

    /// Moves the deadline to `at`, measured as `budget` from now. `false` once it has
    /// fired (or the scope is interrupted otherwise), when nothing moves.
    fn reset(&self, at: Instant, budget: Duration) -> bool {
        // Outside the lock: noticing a token cancelled from outside interrupts here.
        if self.signal.is_interrupted() {
            return false;
        }
        let mut moving = lock(&self.moving);
        if moving.fired {
            return false;
        }
        moving.at = at;
        moving.cause = Interrupted::deadline_of(at, budget, self.signal.name().cloned());
        self.at.set(at);
        true
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn has_alarm(&self) -> bool {
        lock(&self.alarm).is_some()
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// Makes the alarm ring at the deadline and fire it.
    fn set_alarm(self: &Arc<Self>) {
        let waker = FireWake::waker(self, Source::Alarm);
        let mut alarm = lock(&self.alarm);
        let alarm = alarm.get_or_insert_with(Alarm::new);
        alarm.register(&waker);
        alarm.set(self.at());
    }
}

impl Timer {
    pub(crate) fn new(at: Instant, cause: Interrupted, signal: ScopeSignal) -> Timer {
        Timer {
            fire: Arc::new(Fire {
                at: AtomicInstant::new(at),
                moving: Mutex::new(Moving {
                    at,
                    cause,
                    fired: false,
                }),
                signal,
                armed: AtomicBool::new(false),
                alarm: Mutex::new(None),
            }),
            sleep: Mutex::new(None),
        }
    }

    pub(crate) fn at(&self) -> Instant {
        self.fire.at()
    }

    /// One atomic load once armed.
    ///
    /// # Panics
    ///
    /// Inside a runtime without timers, as any tokio timer does.
    pub(crate) fn ensure_armed(&self) {
        // Relaxed: a stale `false` only sends us to the lock, which decides.
        if !self.fire.armed.load(Ordering::Relaxed) {
            self.arm();
        }
    }

    fn arm(&self) {
        let fire = &self.fire;
        let mut sleep = lock(&self.sleep);
        if fire.armed.load(Ordering::Relaxed) || fire.signal.is_interrupted() {
            return;
        }
        // Read under `sleep` (invariant 3): a move after this replaces what is armed here.
        let at = fire.at();
        let now = Instant::now();
        if at <= now {
            drop(sleep);
            fire.fire_if_due(now);
            return;
        }
        // Unconstrained: the first poll must register the timer even when the calling
        // task has spent its cooperative budget.
        let mut new = Box::pin(tokio::task::unconstrained(tokio::time::sleep_until(at)));
        let waker = FireWake::waker(fire, Source::Timer);
        // Set before polling: the waker may run (and clear it) as soon as it is registered.
        fire.armed.store(true, Ordering::Relaxed);
        let fired = new
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        // Replacing a timer of a runtime that shut down drops it here, unregistered.
        let old = sleep.replace(new);
        drop(sleep);
        drop(old);
        if fired {
            fire.fire_if_due(Instant::now());
        }
    }

    /// Watched from outside a runtime: the alarm fires it in real time (tokio's clock is
    /// the real one there), until a use inside a runtime arms the timer.
    pub(crate) fn ensure_alarm(&self) {
        let armed = self.fire.armed.load(Ordering::Relaxed);
        if !armed && lock(&self.fire.alarm).is_none() && !self.fire.signal.is_interrupted() {
            self.fire.set_alarm();
        }
    }

    /// Armed by whatever thread it is on: the timer inside a runtime, the alarm outside
    /// one, or fired at once if due.
    pub(crate) fn arm_here(&self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            // A runtime that is shutting down refuses new timers with a panic, which must
            // not unwind into whatever interrupted the scope: the alarm takes over then.
            if catch_unwind(AssertUnwindSafe(|| self.arm())).is_ok() {
                return;
            }
            self.fire.armed.store(false, Ordering::Relaxed);
        } else if self.fire.fire_if_due(Instant::now()) {
            return;
        }
        self.fire.set_alarm();
    }

    /// Moves the deadline to `at` (`budget` from now) and re-arms what watched the old
    /// one. `false`, and nothing moves, once the deadline has fired or the scope is
    /// interrupted.
    pub(crate) fn reset(&self, at: Instant, budget: Duration) -> bool {
        if !self.fire.reset(at, budget) {
            return false;
        }
        let old = {
            let mut sleep = lock(&self.sleep);
            self.fire.armed.store(false, Ordering::Relaxed);
            sleep.take()
        };
        drop(old);
        // Guarded futures may be waiting already: whatever watched the old instant
        // watches the new one from here, and one that is due fires now.
        self.arm_here();
        true
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("at", &self.fire.at())
            .field("armed", &self.fire.armed.load(Ordering::Relaxed))
            .finish()
    }
}

/// Fires a deadline when tokio's timer or the real-time alarm wakes it.
struct FireWake {
    fire: Weak<Fire>,
    from: Source,
}

#[derive(Clone, Copy)]
enum Source {
    Timer,
    Alarm,
}

impl FireWake {
    fn waker(fire: &Arc<Fire>, from: Source) -> Waker {
        Waker::from(Arc::new(FireWake {
            fire: Arc::downgrade(fire),
            from,
        }))
    }

    fn fire(&self) {
        let Some(fire) = self.fire.upgrade() else {
            return;
        };
        if fire.fire_if_due(Instant::now()) {
            return;
        }
        match self.from {
            // Woken before the deadline: the timer's runtime is shutting down, and this
            // timer will never fire (or the deadline moved later). Waits elsewhere still
            // need the deadline: the alarm delivers it in real time, and the next use
            // re-arms on a live runtime.
            Source::Timer => {
                fire.armed.store(false, Ordering::Relaxed);
                fire.set_alarm();
            }
            // The deadline is on a clock ahead of the real one (a paused runtime's), or
            // it moved later: ring again when real time gets there.
            Source::Alarm => {
                if !fire.signal.is_interrupted() {
                    fire.set_alarm();
                }
            }
        }
    }
}

impl Wake for FireWake {
    fn wake(self: Arc<Self>) {
        self.fire();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fire();
    }
}

/// An instant in one atomic: nanoseconds since a base a century before the process
/// started. Instants before the base read as the base's nanosecond 0 (long passed), and
/// instants past the last representable nanosecond (about five centuries on) as never
/// due; both are kept exactly by [`Moving`], where [`get`](Self::get) sends their reads.
struct AtomicInstant(AtomicU64);

const BEFORE_BASE: u64 = 0;
const PAST_RANGE: u64 = u64::MAX;

fn base() -> std::time::Instant {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::Instant::now();
        // As far back as the platform's clock goes, up to a century: every instant a
        // clock of this process reads is after it.
        let mut back = Duration::from_secs(100 * 365 * 24 * 3600);
        loop {
            if let Some(base) = now.checked_sub(back) {
                return base;
            }
            back /= 2;
        }
    })
}

fn encode(at: Instant) -> u64 {
    match at.into_std().checked_duration_since(base()) {
        None => BEFORE_BASE,
        Some(since) => u64::try_from(since.as_nanos()).map_or(PAST_RANGE, |n| n.max(1)),
    }
}

impl AtomicInstant {
    fn new(at: Instant) -> Self {
        AtomicInstant(AtomicU64::new(encode(at)))
    }

    /// The instant, unless it is outside the exact range.
    fn get(&self) -> Option<Instant> {
        match self.0.load(Ordering::Acquire) {
            BEFORE_BASE | PAST_RANGE => None,
            nanos => Some(Instant::from_std(base() + Duration::from_nanos(nanos))),
        }
    }

    fn set(&self, at: Instant) {
        self.0.store(encode(at), Ordering::Release);
    }

    fn due(&self, now: Instant) -> bool {
        let at = self.0.load(Ordering::Acquire);
        at != PAST_RANGE && at <= encode(now)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_instant_reads_back_what_was_stored_and_knows_when_it_is_due() {
        let now = Instant::now();
        for at in [
            now,
            now + Duration::from_nanos(1),
            now + Duration::from_secs(3600),
            now.checked_sub(Duration::from_secs(60)).unwrap(),
        ] {
            let cell = AtomicInstant::new(at);
            assert_eq!(cell.get(), Some(at));
            assert_eq!(cell.due(now), at <= now, "{at:?} against {now:?}");
        }
        let far = now + Duration::from_secs(600 * 365 * 24 * 3600);
        let cell = AtomicInstant::new(far);
        assert_eq!(
            cell.get(),
            None,
            "outside the exact range: read from the lock"
        );
        assert!(!cell.due(now), "five centuries on is not due");
    }
}
