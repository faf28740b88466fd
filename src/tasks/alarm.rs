//! A real-time backstop for shutdown's deadlines.
//!
//! On a multi-thread runtime tokio's timers are driven by the worker threads
//! only. When every worker is pinned by a task that never yields, no timer
//! fires, and a shutdown awaited from `block_on` (or any thread outside the
//! pinned workers) would wait for its grace period forever. An `Alarm` is a
//! plain thread, one per shutdown that has to wait, parked on a `Condvar`
//! until the current deadline passes in real time; it then wakes the
//! shutdown's future, which checks the deadline itself.
//!
//! The alarm only wakes; the decision stays with the clock: shutdown moves
//! on when `tokio::time::Instant::now()` has reached its deadline. Unpaused,
//! that clock is real time, so the alarm's wake finds the deadline passed.
//! Under a paused clock the alarm's wake finds it not reached (tokio's timer
//! fires first, by auto-advance or `advance`), so paused-time tests keep
//! their exact timings.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use tokio::time::Instant;

/// Stops and releases its thread when dropped.
///
/// The thread is not joined on drop: it exits as soon as it sees `stop`, and a
/// drop inside an async context must not block.
pub(super) struct Alarm {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    ring: Condvar,
}

#[derive(Default)]
struct State {
    /// In real time; `None` while there is nothing to wake for.
    deadline: Option<std::time::Instant>,
    waker: Option<Waker>,
    stop: bool,
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    crate::sync::lock(&inner.state)
}

impl Alarm {
    /// Starts the alarm's thread; `None` if the system refuses a thread
    /// (then shutdown relies on tokio's timers alone).
    pub(super) fn start() -> Option<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            ring: Condvar::new(),
        });
        let ringing = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("hangfree-shutdown-alarm".to_owned())
            .spawn(move || ringing.run())
            .ok()?;
        Some(Self { inner })
    }

    /// Rings at `deadline` (tokio's clock, mapped to real time now), in
    /// place of any earlier deadline.
    pub(super) fn set(&self, deadline: Instant) {
        // tokio's clock first: unpaused, the real deadline is then never
        // earlier than the tokio one.
        let remaining = deadline.saturating_duration_since(Instant::now());
        let real = std::time::Instant::now().checked_add(remaining);
        lock(&self.inner).deadline = real;
        self.inner.ring.notify_one();
    }

    /// The waker to wake when the deadline passes.
    pub(super) fn register(&self, waker: &Waker) {
        let mut state = lock(&self.inner);
        if !state.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            state.waker = Some(waker.clone());
        }
    }
}

impl Inner {
    fn run(&self) {
        let mut state = lock(self);
        loop {
            if state.stop {
                return;
            }
            match state.deadline {
                None => {
                    state = self
                        .ring
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(at) => {
                    let now = std::time::Instant::now();
                    if now >= at {
                        state.deadline = None;
                        let waker = state.waker.clone();
                        drop(state);
                        if let Some(waker) = waker {
                            waker.wake();
                        }
                        state = lock(self);
                    } else {
                        // May return early (spuriously): the loop checks.
                        state = self
                            .ring
                            .wait_timeout(state, at - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                }
            }
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        let mut state = lock(&self.inner);
        state.stop = true;
        // The waker may hold the runtime's task: let it go now.
        state.waker = None;
        drop(state);
        self.inner.ring.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn it_wakes_at_the_deadline_in_real_time_and_its_thread_ends_on_drop() {
        // Real time by nature: the alarm exists for when tokio's timers do
        // not run. Outside a runtime, tokio's clock is the real one.
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let alarm = Alarm::start().unwrap();
        alarm.register(&Waker::from(woken.clone()));
        let began = std::time::Instant::now();
        alarm.set(Instant::now() + Duration::from_millis(20));
        while woken.0.load(Ordering::SeqCst) == 0 {
            assert!(began.elapsed() < Duration::from_secs(5), "never woken");
            std::thread::yield_now();
        }
        assert!(began.elapsed() >= Duration::from_millis(20), "woken early");
        // A deadline far away: the drop ends the thread without waiting.
        alarm.set(Instant::now() + Duration::from_secs(3600));
        // The thread holds the only other reference to the alarm's state: once
        // that is gone, the thread has returned.
        let state = Arc::downgrade(&alarm.inner);
        let dropped = std::time::Instant::now();
        drop(alarm);
        while state.strong_count() > 0 {
            assert!(
                dropped.elapsed() < Duration::from_secs(5),
                "the thread lingers"
            );
            std::thread::yield_now();
        }
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    }
}
