//! `scope` on real time, where the point is what a real runtime does: a thread that
//! blocks past a deadline, a task that never yields, a runtime that shuts down under a
//! scope's timer. Limits are short and every test asserts both what happened and when.

#[path = "support/runtime.rs"]
mod runtime;

use std::future::{Future, pending};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn nothing_starts_after_a_missed_deadline_even_when_the_timer_was_armed() {
    let rt = current_thread();
    rt.block_on(async {
        let scope = CancelScope::new().with_timeout(10 * MS);
        // Arms the scope's timer.
        assert_eq!(async { "ran" }.within(&scope).await, Ok("ran"));
        // A real blocking call is the point: the thread sleeps through the deadline, so
        // the timer has not run when the next guarded future is first polled.
        std::thread::sleep(30 * MS);
        let started = async { "ran" }.within(&scope).await;
        assert_eq!(
            started.map_err(|e| e.cause()),
            Err(Cause::DeadlineExceeded),
            "started 20 ms after the deadline"
        );
        assert!(scope.check().is_err());
    });
}

#[test]
fn a_loop_of_always_ready_guarded_futures_stops_at_the_deadline_on_a_current_thread_runtime() {
    let rt = current_thread();
    rt.block_on(async {
        let began = Instant::now();
        let scope = CancelScope::new().with_timeout(20 * MS);
        let _token = scope.token(); // arms the timer, which this loop never lets run
        let mut rounds = 0u64;
        let stopped = loop {
            match async {}.within(&scope).await {
                Ok(()) => rounds += 1,
                Err(why) => break why,
            }
            // Safety net: only a loop that never stops gets here.
            assert!(
                began.elapsed() < 2 * SECOND,
                "still running 2 s after a 20 ms deadline, {rounds} rounds"
            );
        };
        let elapsed = began.elapsed();
        assert_eq!(stopped.cause(), Cause::DeadlineExceeded);
        assert!(
            elapsed >= 20 * MS && elapsed < 500 * MS,
            "stopped after {elapsed:?}"
        );
    });
}

/// Polls `fut` once where it runs (to register its waiter), then completes with it.
struct Registered<F> {
    fut: Pin<Box<F>>,
    polled: Option<std::sync::mpsc::Sender<()>>,
}

impl<F: Future> Future for Registered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let poll = self.fut.as_mut().poll(cx);
        if let Some(polled) = self.polled.take() {
            polled.send(()).unwrap();
        }
        poll
    }
}

#[test]
fn waits_on_another_runtime_end_at_the_deadline_when_the_runtime_that_armed_it_shuts_down() {
    let began = Instant::now();
    // Built outside any runtime: tokio's clock is the real one.
    let scope = CancelScope::new().with_timeout(300 * MS);
    let arming = current_thread();
    let _token = arming.block_on(async { scope.token() }); // the timer lives on `arming`

    let waiting = runtime::two_workers();
    let (polled, registered) = std::sync::mpsc::channel();
    let guarded = waiting.spawn(Registered {
        fut: Box::pin(pending::<()>().within(&scope)),
        polled: Some(polled.clone()),
    });
    let token = waiting.spawn(Registered {
        fut: Box::pin(scope.token().cancelled_owned()),
        polled: Some(polled),
    });
    for _ in 0..2 {
        registered.recv().unwrap();
    }

    drop(arming); // tokio wakes its timers once, early, and never again
    let (guarded, token) = waiting.block_on(async {
        let guarded = tokio::time::timeout(2 * SECOND, guarded).await;
        let guarded_at = began.elapsed();
        let token = tokio::time::timeout(2 * SECOND, token).await;
        ((guarded, guarded_at), (token, began.elapsed()))
    });

    let (result, at) = guarded;
    let err = result
        .expect("`pending().within(&scope)` still pending 2 s after a 300 ms deadline")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert!(
        at >= 300 * MS && at <= 500 * MS,
        "guarded wait ended at {at:?}"
    );

    let (result, at) = token;
    result
        .expect("`scope.token().cancelled()` still pending 2 s after a 300 ms deadline")
        .unwrap();
    assert!(
        at >= 300 * MS && at <= 500 * MS,
        "token wait ended at {at:?}"
    );
    assert_eq!(scope.check().unwrap_err().cause(), Cause::DeadlineExceeded);
}
