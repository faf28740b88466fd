//! `scope` across runtimes: scopes built outside a runtime, runtimes without timers, a
//! runtime that shuts down or idles under a scope's timer, all under tokio's paused clock.

use std::future::pending;
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::time::{Instant, advance, timeout};

const SECOND: Duration = Duration::from_secs(1);

/// A current-thread runtime under the paused clock, for scopes built before it exists.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn scopes_built_outside_a_runtime_arm_their_deadline_on_first_poll() {
    let scope = CancelScope::new().with_timeout(3 * SECOND);
    paused_runtime().block_on(async {
        let err = timeout(3600 * SECOND, pending::<()>().within(&scope))
            .await
            .expect("the deadline fires")
            .unwrap_err();
        assert!(err.is_deadline());
        // The scope's deadline is not on a whole millisecond; tokio's timer fires at the
        // first one after it.
        let late = Instant::now()
            .checked_duration_since(scope.deadline().unwrap())
            .expect("not before the deadline");
        assert!(
            late < Duration::from_millis(1),
            "fired {late:?} after the deadline"
        );
    });
}

#[test]
fn check_sees_a_passed_deadline_before_any_timer_runs() {
    // Built outside a runtime and never polled: no timer is armed, only the clock can tell.
    let scope = CancelScope::new().with_timeout(SECOND);
    paused_runtime().block_on(async {
        assert_eq!(scope.check(), Ok(()));
        advance(2 * SECOND).await;
        assert!(
            !scope.is_cancelled(),
            "nothing has observed the deadline yet"
        );
        let err = scope.check().unwrap_err();
        assert_eq!(err.cause(), Cause::DeadlineExceeded);
        assert!(scope.is_cancelled());
        assert!(scope.token().is_cancelled());
    });
}

// The runtime that built the scope shuts down; the scope lives on and is used in a
// second runtime, where its deadline still fires (not only at the 1 h safety net).
#[test]
fn a_deadline_fires_on_another_runtime_after_the_arming_runtime_shut_down() {
    let rt1 = paused_runtime();
    let scope = rt1.block_on(async { CancelScope::new().with_timeout(SECOND) });
    drop(rt1);

    paused_runtime().block_on(async {
        let r = timeout(3600 * SECOND, pending::<()>().within(&scope)).await;
        assert!(
            matches!(&r, Ok(Err(e)) if e.is_deadline()),
            "a 1 s scope did not interrupt within an hour: {r:?}"
        );
    });
}

// The arming runtime is alive but idle (a current-thread runtime that nobody blocks on), so
// its timer wheel is never driven.
#[test]
fn a_deadline_fires_on_another_runtime_while_the_arming_runtime_is_idle() {
    let rt1 = paused_runtime();
    let scope = rt1.block_on(async { CancelScope::new().with_timeout(SECOND) });

    paused_runtime().block_on(async {
        let r = timeout(3600 * SECOND, pending::<()>().within(&scope)).await;
        assert!(
            matches!(&r, Ok(Err(e)) if e.is_deadline()),
            "a 1 s scope did not interrupt within an hour: {r:?}"
        );
    });
    drop(rt1);
}

// Only a guarded poll documents a panic without timers: building the scope must not.
#[test]
fn with_timeout_in_a_runtime_without_timers_does_not_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let built = rt.block_on(async {
        std::panic::catch_unwind(|| CancelScope::new().with_timeout(SECOND).deadline())
    });
    assert!(
        built.is_ok_and(|deadline| deadline.is_some()),
        "CancelScope::with_timeout panicked (no `# Panics` section says so)"
    );
}

// Built outside a runtime and never polled: `token()` arms the timer.
#[test]
fn the_token_of_a_scope_built_outside_a_runtime_is_cancelled_at_the_deadline() {
    let scope = CancelScope::new().with_timeout(SECOND);
    paused_runtime().block_on(async {
        let token = scope.token();
        let r = timeout(3600 * SECOND, token.cancelled()).await;
        assert!(
            r.is_ok(),
            "the token of a 1 s scope was not cancelled after an hour"
        );
    });
}

// A blocking task that outlives its runtime (after `shutdown_background` blocking threads
// keep the runtime's handle entered) builds a scope with a timeout for its cleanup.
// Building a `tokio::time::timeout` there does not panic; only polling it would. Nor may
// building a scope.
#[test]
fn with_timeout_on_a_blocking_thread_after_its_runtime_shut_down_does_not_panic() {
    // Current-thread: `shutdown_background` shuts the timer driver down before it returns.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    rt.spawn_blocking(move || {
        go_rx.recv().unwrap();
        let tokio_timeout = std::panic::catch_unwind(|| {
            drop(tokio::time::timeout(SECOND, pending::<()>()));
        });
        let scope = std::panic::catch_unwind(|| {
            drop(CancelScope::new().with_timeout(SECOND));
        });
        done_tx
            .send((tokio_timeout.is_ok(), scope.is_ok()))
            .unwrap();
    });
    rt.shutdown_background();
    go_tx.send(()).unwrap();
    // A real blocking wait is the point: the blocking thread runs on after the shutdown.
    let (tokio_ok, scope_ok) = done_rx.recv_timeout(10 * SECOND).unwrap();
    assert!(tokio_ok, "anchor: building tokio's timeout does not panic");
    assert!(
        scope_ok,
        "CancelScope::with_timeout panicked after runtime shutdown"
    );
}
