//! `scope`: cancellation and deadlines, all under tokio's paused clock.

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause, Guarded, Interrupted};
use tokio::time::{Instant, advance, sleep, timeout};
use tokio_test::{assert_pending, assert_ready, task};
use tokio_util::sync::CancellationToken;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// Sets its flag when dropped, so a test can see exactly when a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A future that never completes and records when it is dropped and how often polled.
fn watched_pending(
    dropped: &Arc<AtomicBool>,
    polls: &Arc<AtomicUsize>,
) -> impl Future<Output = ()> {
    let flag = DropFlag(dropped.clone());
    let polls = polls.clone();
    std::future::poll_fn(move |_cx| {
        let _keep = &flag;
        polls.fetch_add(1, Ordering::SeqCst);
        Poll::Pending
    })
}

// 1. A guarded future finishing at 899 s is Ok in a 900 s scope; one at 901 s is
//    interrupted at exactly 900 s, naming the deadline.
#[tokio::test(start_paused = true)]
async fn finishes_inside_the_deadline_and_is_interrupted_exactly_at_it() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SECS(900));

    let early = sleep(SECS(899)).within(&scope).await;
    assert_eq!(early, Ok(()));
    assert_eq!(start.elapsed(), SECS(899));

    let late = sleep(SECS(2)).within(&scope).await;
    let err = late.unwrap_err();
    assert_eq!(
        start.elapsed(),
        SECS(900),
        "interrupted exactly at the deadline"
    );
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(err.budget(), Some(SECS(900)));
    assert_eq!(err.deadline_at(), Some(start + SECS(900)));
}

#[tokio::test(start_paused = true)]
async fn a_fresh_scope_interrupts_at_901s_work_exactly_at_900s() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SECS(900));
    let mut guarded = task::spawn(sleep(SECS(901)).within(&scope));
    assert_pending!(guarded.poll());

    advance(SECS(899) + Duration::from_millis(999)).await;
    assert_pending!(guarded.poll());
    assert!(!guarded.is_woken());

    advance(Duration::from_millis(1)).await;
    assert!(guarded.is_woken(), "the deadline wakes the guarded task");
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(start.elapsed(), SECS(900));
    assert!(err.is_deadline());
}

// 2. Deadlines only tighten; the error names the inherited deadline.
#[tokio::test(start_paused = true)]
async fn a_deadline_only_tightens_and_the_error_says_it_was_inherited() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(SECS(10));
    let child = parent.child().with_timeout(SECS(60));
    assert_eq!(child.deadline(), parent.deadline());
    assert_eq!(child.deadline(), Some(start + SECS(10)));

    let err = pending::<()>().within(&child).await.unwrap_err();
    assert_eq!(start.elapsed(), SECS(10));
    assert_eq!(err.cause(), Cause::InheritedDeadlineExceeded);
    assert_eq!(
        err.to_string(),
        "deadline of 10s exceeded (inherited from an outer scope)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tighter_child_deadline_is_its_own_and_leaves_the_parent_running() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(SECS(60));
    let child = parent.child().with_timeout(SECS(5));
    assert_eq!(child.deadline(), Some(start + SECS(5)));

    let mut in_parent = task::spawn(pending::<()>().within(&parent));
    assert_pending!(in_parent.poll());

    let err = pending::<()>().within(&child).await.unwrap_err();
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(start.elapsed(), SECS(5));
    assert!(!parent.is_cancelled());
    assert_pending!(in_parent.poll());
    assert!(child.is_cancelled());
}

// 3. Cancelling a parent interrupts its children's futures; cancelling a child does not
//    touch the parent or siblings.
#[tokio::test(start_paused = true)]
async fn cancelling_a_parent_interrupts_children_but_not_the_reverse() {
    let parent = CancelScope::new();
    let a = parent.child();
    let b = parent.child();
    let grandchild = b.child();

    let mut in_a = task::spawn(pending::<()>().within(&a));
    let mut in_b = task::spawn(pending::<()>().within(&b));
    let mut in_grandchild = task::spawn(pending::<()>().within(&grandchild));
    let mut in_parent = task::spawn(pending::<()>().within(&parent));
    assert_pending!(in_a.poll());
    assert_pending!(in_b.poll());
    assert_pending!(in_grandchild.poll());
    assert_pending!(in_parent.poll());

    a.cancel();
    assert!(in_a.is_woken());
    let err = assert_ready!(in_a.poll()).unwrap_err();
    assert_eq!(err.cause(), Cause::Cancelled);
    assert!(!in_b.is_woken() && !in_parent.is_woken() && !in_grandchild.is_woken());
    assert_pending!(in_b.poll());
    assert_pending!(in_parent.poll());

    parent.cancel();
    for (name, t) in [
        ("b", &mut in_b),
        ("grandchild", &mut in_grandchild),
        ("parent", &mut in_parent),
    ] {
        assert!(t.is_woken(), "{name} woken by the parent's cancel");
        assert_eq!(
            assert_ready!(t.poll()).unwrap_err().cause(),
            Cause::Cancelled
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_scope_from_a_token_follows_it_without_cancelling_it() {
    let shutdown = CancellationToken::new();
    let scope = CancelScope::from_token(&shutdown);
    let mut guarded = task::spawn(pending::<()>().within(&scope));
    assert_pending!(guarded.poll());

    shutdown.cancel();
    assert!(guarded.is_woken());
    assert_eq!(
        assert_ready!(guarded.poll()).unwrap_err().cause(),
        Cause::Cancelled
    );

    let other_token = CancellationToken::new();
    let own = CancelScope::from_token(&other_token).with_timeout(SECS(1));
    let _ = pending::<()>().within(&own).await;
    assert!(
        !other_token.is_cancelled(),
        "a scope's deadline never cancels the token it came from"
    );
}

#[tokio::test(start_paused = true)]
async fn the_token_is_cancelled_at_the_deadline_without_anything_polled() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SECS(30));
    let token = scope.token();
    // Bounded, so that a deadline that never fires fails the test instead of hanging it.
    timeout(SECS(3600), token.cancelled())
        .await
        .expect("the token is cancelled at the deadline");
    assert_eq!(start.elapsed(), SECS(30));
    assert!(scope.check().unwrap_err().is_deadline());
}

// 4. On interrupt the inner future is dropped at once, not when the Guarded is dropped.
#[tokio::test(start_paused = true)]
async fn the_inner_future_is_dropped_in_the_poll_that_sees_the_interrupt() {
    let dropped = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let scope = CancelScope::new();
    let mut guarded = task::spawn(watched_pending(&dropped, &polls).within(&scope));
    assert_pending!(guarded.poll());
    assert!(!dropped.load(Ordering::SeqCst));

    scope.cancel();
    let result = assert_ready!(guarded.poll());
    assert!(result.is_err());
    assert!(
        dropped.load(Ordering::SeqCst),
        "dropped before the Guarded itself"
    );
    drop(guarded);
}

// 5. Output wins over an interrupt observed in the same poll.
#[tokio::test(start_paused = true)]
async fn output_wins_when_ready_in_the_same_poll_as_the_interrupt() {
    let scope = CancelScope::new();
    let cancel = scope.clone();
    let mut first = true;
    // Pends once; on its second poll it cancels the scope and is ready in the same poll.
    let fut = std::future::poll_fn(move |cx: &mut Context<'_>| {
        if first {
            first = false;
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            cancel.cancel();
            Poll::Ready("row 42")
        }
    });
    let mut guarded = task::spawn(fut.within(&scope));
    assert_pending!(guarded.poll());
    assert_eq!(assert_ready!(guarded.poll()), Ok("row 42"));
    assert!(scope.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn output_wins_when_the_deadline_and_the_output_arrive_together() {
    let scope = CancelScope::new().with_timeout(SECS(5));
    // The inner sleep ends at the same instant as the deadline.
    let result = sleep(SECS(5)).within(&scope).await;
    assert_eq!(result, Ok(()));
}

// 6. Display, Error, io::Error.
#[tokio::test(start_paused = true)]
async fn interrupted_reads_well_and_converts_into_io_error() {
    let outer = CancelScope::new().with_timeout(SECS(900));
    let inner = outer.child();
    let err = pending::<()>().within(&inner).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "deadline of 900s exceeded (inherited from an outer scope)"
    );
    let as_error: &dyn std::error::Error = &err;
    assert!(as_error.source().is_none());

    let io: std::io::Error = err.clone().into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    let back = io.get_ref().unwrap().downcast_ref::<Interrupted>().unwrap();
    assert_eq!(back, &err);

    let cancelled = CancelScope::new();
    cancelled.cancel();
    let err = cancelled.check().unwrap_err();
    assert_eq!(err.to_string(), "cancelled");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::Other);
}

// 8. Zero or past deadlines interrupt at the first poll without polling the inner future.
#[tokio::test(start_paused = true)]
async fn zero_or_past_deadlines_interrupt_without_polling_the_inner_future() {
    for scope in [
        CancelScope::new().with_timeout(Duration::ZERO),
        CancelScope::new().with_deadline(Instant::now() - SECS(1)),
        CancelScope::new()
            .with_timeout(SECS(10))
            .child()
            .with_timeout(Duration::ZERO),
    ] {
        let dropped = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicUsize::new(0));
        let mut guarded = task::spawn(watched_pending(&dropped, &polls).within(&scope));
        let err = assert_ready!(guarded.poll()).unwrap_err();
        assert_eq!(err.cause(), Cause::DeadlineExceeded);
        assert_eq!(polls.load(Ordering::SeqCst), 0, "inner never polled");
        assert!(dropped.load(Ordering::SeqCst));
    }
}

#[tokio::test(start_paused = true)]
async fn an_already_cancelled_scope_never_starts_the_inner_future() {
    let scope = CancelScope::new();
    scope.cancel();
    let dropped = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let err = watched_pending(&dropped, &polls)
        .within(&scope)
        .await
        .unwrap_err();
    assert_eq!(err.cause(), Cause::Cancelled);
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn huge_timeouts_mean_no_deadline_instead_of_a_panic() {
    let scope = CancelScope::new().with_timeout(Duration::MAX);
    assert_eq!(scope.deadline(), None);
    assert_eq!(scope.remaining(), None);
    let scope = scope.with_timeout(SECS(1));
    assert!(pending::<()>().within(&scope).await.is_err());
}

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
    let scope = CancelScope::new().with_timeout(SECS(3));
    paused_runtime().block_on(async {
        let start = Instant::now();
        let err = timeout(SECS(3600), pending::<()>().within(&scope))
            .await
            .expect("the deadline fires")
            .unwrap_err();
        assert!(err.is_deadline());
        assert!(start.elapsed() <= SECS(3));
    });
}

#[test]
fn check_sees_a_passed_deadline_before_any_timer_runs() {
    // Built outside a runtime and never polled: no timer is armed, only the clock can tell.
    let scope = CancelScope::new().with_timeout(SECS(1));
    paused_runtime().block_on(async {
        assert_eq!(scope.check(), Ok(()));
        advance(SECS(2)).await;
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

#[tokio::test(start_paused = true)]
async fn cancelled_resolves_with_the_reason() {
    let scope = CancelScope::new();
    let mut waiting = task::spawn(scope.cancelled());
    assert_pending!(waiting.poll());
    scope.cancel();
    assert!(waiting.is_woken());
    assert_eq!(assert_ready!(waiting.poll()).cause(), Cause::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn run_is_within() {
    let scope = CancelScope::new().with_timeout(SECS(1));
    assert_eq!(scope.run(async { 5 }).await, Ok(5));
    assert!(scope.run(sleep(SECS(2))).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn one_wake_per_interrupt_and_none_before() {
    let scope = CancelScope::new().with_timeout(SECS(10));
    let mut guarded = task::spawn(pending::<()>().within(&scope));
    assert_pending!(guarded.poll());
    assert_pending!(guarded.poll());
    assert_eq!(
        guarded.waker_ref_count(),
        2,
        "one waker kept by the scope, one by the test"
    );
    advance(SECS(9)).await;
    assert!(!guarded.is_woken());
    advance(SECS(1)).await;
    assert!(guarded.is_woken());
    assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(
        guarded.waker_ref_count(),
        1,
        "the scope let go of the waker"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_pending_guarded_releases_its_waker() {
    let scope = CancelScope::new();
    let mut guarded = task::spawn(pending::<()>().within(&scope));
    assert_pending!(guarded.poll());
    assert_eq!(guarded.waker_ref_count(), 2);
    let mut other = task::spawn(pending::<()>().within(&scope));
    assert_pending!(other.poll());
    drop(guarded);
    assert_eq!(other.waker_ref_count(), 2);
    scope.cancel();
    assert!(other.is_woken());
}

#[test]
fn public_types_are_send_sync_unpin_where_expected() {
    fn send_sync<T: Send + Sync>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<CancelScope>();
    send_sync::<Interrupted>();
    send_sync::<hangfree::scope::Cancelled>();
    unpin::<hangfree::scope::Cancelled>();
    send_sync::<Guarded<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>>();
    unpin::<Guarded<Pin<Box<dyn Future<Output = ()> + Send>>>>();
    unpin::<CancelScope>();
}

#[test]
fn debug_output_is_useful() {
    let scope = CancelScope::new();
    let text = format!("{scope:?}");
    assert!(text.contains("cancelled: false"), "{text}");
    let guarded = async {}.within(&scope);
    assert!(format!("{guarded:?}").contains("Guarded"));
}

// Regression tests from an independent review of this module. Each test not named
// "checked correct" failed on the first version of `scope` (the fixes are in the
// changelog's `### Fixed`).

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
