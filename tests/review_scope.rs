//! Adversarial review of `scope` (issue 2). Every `review_` test here that is not marked
//! "checked correct" demonstrates a defect and FAILS on the reviewed code; the report
//! names the root cause and a fix for each.

use std::future::pending;
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::time::{advance, timeout};
use tokio_test::{assert_pending, assert_ready, task};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

// F1 (cause not latched). A child with a tighter own deadline is interrupted by its
// parent's cancel at 1 s; the child's timer still fires at 5 s and rewrites history.
#[tokio::test(start_paused = true)]
async fn review_cancel_cause_survives_a_later_own_deadline() {
    let parent = CancelScope::new();
    let child = parent.child().with_timeout(SECS(5));
    let mut guarded = task::spawn(pending::<()>().within(&child));
    assert_pending!(guarded.poll());

    advance(SECS(1)).await;
    parent.cancel();
    assert!(guarded.is_woken());
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);

    // The task that owns `guarded` is busy and only polls it after 5 s.
    advance(SECS(10)).await;
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(
        err.cause(),
        Cause::Cancelled,
        "interrupted by a cancel at 1 s, reported as: {err}"
    );
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);
}

// F1, second shape: the child is cancelled by itself, later the parent's deadline passes.
#[tokio::test(start_paused = true)]
async fn review_cancel_cause_survives_a_later_inherited_deadline() {
    let parent = CancelScope::new().with_timeout(SECS(10));
    let child = parent.child();
    let mut guarded = task::spawn(pending::<()>().within(&child));
    assert_pending!(guarded.poll());

    advance(SECS(1)).await;
    child.cancel();
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);

    advance(SECS(20)).await;
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(
        err.cause(),
        Cause::Cancelled,
        "cancelled at 1 s, reported as: {err}"
    );
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);
}

// F2 (timer bound to the runtime that armed it). The runtime that built the scope shuts
// down; the scope lives on and is used in a second runtime. Its deadline never fires
// there: a guarded await hangs for ever (here: until the 1 h safety net).
#[test]
fn review_deadline_still_fires_after_the_arming_runtime_shut_down() {
    let rt1 = paused_runtime();
    let scope = rt1.block_on(async { CancelScope::new().with_timeout(SECS(1)) });
    drop(rt1);

    paused_runtime().block_on(async {
        let r = timeout(SECS(3600), pending::<()>().within(&scope)).await;
        assert!(
            matches!(&r, Ok(Err(e)) if e.is_deadline()),
            "a 1 s scope did not interrupt within an hour: {r:?}"
        );
    });
}

// F2, second shape: the arming runtime is alive but idle (a current-thread runtime that
// nobody blocks on), so its timer wheel is never driven.
#[test]
fn review_deadline_fires_while_the_arming_runtime_is_idle() {
    let rt1 = paused_runtime();
    let scope = rt1.block_on(async { CancelScope::new().with_timeout(SECS(1)) });

    paused_runtime().block_on(async {
        let r = timeout(SECS(3600), pending::<()>().within(&scope)).await;
        assert!(
            matches!(&r, Ok(Err(e)) if e.is_deadline()),
            "a 1 s scope did not interrupt within an hour: {r:?}"
        );
    });
    drop(rt1);
}

// F3 (undocumented panic). `with_timeout` inside a runtime without the time driver panics
// at construction; only `within`'s poll documents a panic.
#[test]
fn review_with_timeout_in_a_runtime_without_timers_does_not_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let built = rt.block_on(async {
        std::panic::catch_unwind(|| CancelScope::new().with_timeout(SECS(1)).deadline())
    });
    assert!(
        built.is_ok(),
        "CancelScope::with_timeout panicked (no `# Panics` section says so)"
    );
}

// F4 (doc false). `token()`: "cancelled when ... its deadline passes". Not for a scope
// built outside a runtime and never polled: its timer is never armed.
#[test]
fn review_token_of_a_scope_built_outside_a_runtime_is_cancelled_at_the_deadline() {
    let scope = CancelScope::new().with_timeout(SECS(1));
    paused_runtime().block_on(async {
        let token = scope.token();
        let r = timeout(SECS(3600), token.cancelled()).await;
        assert!(
            r.is_ok(),
            "the token of a 1 s scope was not cancelled after an hour"
        );
    });
}

// F5 (doc false / trap). `with_timeout`: "cancelling it ... does not cancel `self`". When
// the timeout does not tighten, the result *is* `self`, so cancelling it cancels `self`:
// whether a cancel propagates upwards depends on the clock.
#[tokio::test(start_paused = true)]
async fn review_cancelling_a_with_timeout_scope_never_cancels_the_original() {
    let export = CancelScope::new().with_timeout(SECS(10));
    let step = export.clone().with_timeout(SECS(60));
    step.cancel();
    assert!(
        !export.is_cancelled(),
        "cancelling the with_timeout scope cancelled the scope it came from"
    );
}

// F6 (low). A Guarded polled again after `Ok` used to answer `Err(Cancelled)` although
// nothing was cancelled. It now panics with a plain message (documented under `# Panics`),
// like most futures polled after completion: inventing an outcome is worse.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "`Guarded` polled after it completed")]
async fn review_guarded_repolled_after_ok_panics_instead_of_inventing_a_cancel() {
    let scope = CancelScope::new();
    let mut guarded = task::spawn(async { 1 }.within(&scope));
    assert_eq!(assert_ready!(guarded.poll()), Ok(1));
    let _ = guarded.poll();
}

// Checked correct: a guarded future moved to another task (a different waker) is woken
// through the new waker, not the old one.
#[tokio::test(start_paused = true)]
async fn review_checked_correct_moved_future_wakes_the_new_task() {
    let scope = CancelScope::new().with_timeout(SECS(5));
    let mut first = task::spawn(Box::pin(pending::<()>().within(&scope)));
    assert_pending!(first.poll());
    let fut = first.into_inner();
    let mut second = task::spawn(fut);
    assert_pending!(second.poll());
    advance(SECS(5)).await;
    assert!(second.is_woken());
    assert!(assert_ready!(second.poll()).unwrap_err().is_deadline());
}

// Checked correct: no lost wakeup between `register` and `interrupt` on a multi-thread
// runtime. Each round cancels from another task while guarded futures first register;
// every one must end. A lost wakeup shows as the 10 s real-time safety net.
#[test]
fn review_checked_correct_no_lost_wakeup_under_cross_thread_cancel() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..2_000 {
            let scope = CancelScope::new();
            let mut handles = Vec::new();
            for _ in 0..8 {
                let scope = scope.clone();
                handles.push(tokio::spawn(async move {
                    pending::<()>().within(&scope).await.unwrap_err()
                }));
            }
            let canceller = scope.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                canceller.cancel();
            });
            for h in handles {
                // Real-time safety net: only a lost wakeup can make this elapse.
                let r = timeout(SECS(10), h).await.expect("lost wakeup");
                assert_eq!(r.unwrap().cause(), Cause::Cancelled);
            }
        }
    });
}

// F3, second shape: a blocking task that outlives its runtime (after `shutdown_background`
// blocking threads keep the runtime's handle entered) builds a scope with a timeout for its
// cleanup. `Node::new` sees a runtime, polls a `Sleep` on the shut-down timer driver and
// panics ("A Tokio 1.x context was found, but it is being shutdown"). Building a
// `tokio::time::timeout` there does not panic; only polling it would.
#[test]
fn review_with_timeout_after_the_runtime_shut_down_does_not_panic() {
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
            drop(tokio::time::timeout(SECS(1), pending::<()>()));
        });
        let scope = std::panic::catch_unwind(|| {
            drop(CancelScope::new().with_timeout(SECS(1)));
        });
        done_tx
            .send((tokio_timeout.is_ok(), scope.is_ok()))
            .unwrap();
    });
    rt.shutdown_background();
    go_tx.send(()).unwrap();
    // A real blocking wait is the point: the blocking thread runs on after the shutdown.
    let (tokio_ok, scope_ok) = done_rx.recv_timeout(SECS(10)).unwrap();
    assert!(tokio_ok, "anchor: building tokio's timeout does not panic");
    assert!(
        scope_ok,
        "CancelScope::with_timeout panicked after runtime shutdown"
    );
}

// Checked correct: far deadlines that still fit in an `Instant` neither panic (timer,
// `remaining`, `Display`) nor fire.
#[tokio::test(start_paused = true)]
async fn review_checked_correct_far_deadlines_do_not_panic() {
    let far = CancelScope::new().with_timeout(SECS(u64::MAX / 4));
    assert!(far.deadline().is_some());
    assert!(far.remaining().unwrap() > SECS(1 << 60));
    let r = timeout(SECS(3600), pending::<()>().within(&far)).await;
    assert!(r.is_err(), "a far deadline fired: {r:?}");
    assert_eq!(far.check(), Ok(()));
    let near = far.child().with_timeout(SECS(1));
    let err = pending::<()>().within(&near).await.unwrap_err();
    assert_eq!(err.to_string(), "deadline of 1s exceeded");
}

// Checked correct: `with_deadline` on a scope that already owns a deadline, then a child
// of that: the tighter one is its own, the child's is inherited, and the original scope
// is untouched until its own deadline, which leaves the earlier causes alone.
#[tokio::test(start_paused = true)]
async fn review_checked_correct_causes_of_stacked_own_deadlines() {
    let start = tokio::time::Instant::now();
    let a = CancelScope::new().with_timeout(SECS(10));
    let b = a.clone().with_deadline(start + SECS(5));
    let c = b.child();
    assert_eq!(
        a.clone().with_deadline(start + SECS(20)).deadline(),
        a.deadline()
    );

    let mut in_a = task::spawn(pending::<()>().within(&a));
    let mut in_c = task::spawn(pending::<()>().within(&c));
    assert_pending!(in_a.poll());
    assert_pending!(in_c.poll());
    advance(SECS(5)).await;
    assert_eq!(
        assert_ready!(in_c.poll()).unwrap_err().cause(),
        Cause::InheritedDeadlineExceeded
    );
    assert_eq!(b.check().unwrap_err().cause(), Cause::DeadlineExceeded);
    assert!(!in_a.is_woken() && a.check().is_ok());
    advance(SECS(5)).await;
    assert_eq!(
        assert_ready!(in_a.poll()).unwrap_err().cause(),
        Cause::DeadlineExceeded
    );
    assert_eq!(b.check().unwrap_err().cause(), Cause::DeadlineExceeded);
    let err = c.check().unwrap_err();
    assert_eq!(err.cause(), Cause::InheritedDeadlineExceeded);
    assert_eq!(err.budget(), Some(SECS(5)));
}
