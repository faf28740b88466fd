//! `scope`: cancellation and deadlines, all under tokio's paused clock.

#[path = "support/runtime.rs"]
mod runtime;

use std::future::{Future, pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause, Interrupted};
use tokio::time::{Instant, advance, sleep, timeout};
use tokio_test::{assert_pending, assert_ready, task};
use tokio_util::sync::CancellationToken;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

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

// A guarded future finishing at 899 s is Ok in a 900 s scope; one at 901 s is
// interrupted at exactly 900 s, naming the deadline.
#[tokio::test(start_paused = true)]
async fn finishes_inside_the_deadline_and_is_interrupted_exactly_at_it() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(900 * SECOND);

    let early = sleep(899 * SECOND).within(&scope).await;
    assert_eq!(early, Ok(()));
    assert_eq!(start.elapsed(), 899 * SECOND);

    let late = sleep(2 * SECOND).within(&scope).await;
    let err = late.unwrap_err();
    assert_eq!(
        start.elapsed(),
        900 * SECOND,
        "interrupted exactly at the deadline"
    );
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(err.budget(), Some(900 * SECOND));
    assert_eq!(err.deadline_at(), Some(start + 900 * SECOND));
}

#[tokio::test(start_paused = true)]
async fn a_fresh_scope_interrupts_at_901s_work_exactly_at_900s() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(900 * SECOND);
    let mut guarded = task::spawn(sleep(901 * SECOND).within(&scope));
    assert_pending!(guarded.poll());

    advance(899 * SECOND + Duration::from_millis(999)).await;
    assert_pending!(guarded.poll());
    assert!(!guarded.is_woken());

    advance(MS).await;
    assert!(guarded.is_woken(), "the deadline wakes the guarded task");
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(start.elapsed(), 900 * SECOND);
    assert!(err.is_deadline());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_only_tightens_and_the_error_says_it_was_inherited() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(10 * SECOND);
    let child = parent.child().with_timeout(60 * SECOND);
    assert_eq!(child.deadline(), parent.deadline());
    assert_eq!(child.deadline(), Some(start + 10 * SECOND));

    let err = pending::<()>().within(&child).await.unwrap_err();
    assert_eq!(start.elapsed(), 10 * SECOND);
    assert_eq!(err.cause(), Cause::InheritedDeadlineExceeded);
    assert_eq!(
        err.to_string(),
        "deadline of 10s exceeded (inherited from an outer scope)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tighter_child_deadline_is_its_own_and_leaves_the_parent_running() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(60 * SECOND);
    let child = parent.child().with_timeout(5 * SECOND);
    assert_eq!(child.deadline(), Some(start + 5 * SECOND));

    let mut in_parent = task::spawn(pending::<()>().within(&parent));
    assert_pending!(in_parent.poll());

    let err = pending::<()>().within(&child).await.unwrap_err();
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(start.elapsed(), 5 * SECOND);
    assert!(!parent.is_cancelled());
    assert_pending!(in_parent.poll());
    assert!(child.is_cancelled());
}

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
    let own = CancelScope::from_token(&other_token).with_timeout(SECOND);
    let ended = pending::<()>().within(&own).await;
    assert!(ended.unwrap_err().is_deadline());
    assert!(
        !other_token.is_cancelled(),
        "a scope's deadline never cancels the token it came from"
    );
}

#[tokio::test(start_paused = true)]
async fn the_token_is_cancelled_at_the_deadline_without_anything_polled() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(30 * SECOND);
    let token = scope.token();
    // Bounded, so that a deadline that never fires fails the test instead of hanging it.
    timeout(3600 * SECOND, token.cancelled())
        .await
        .expect("the token is cancelled at the deadline");
    assert_eq!(start.elapsed(), 30 * SECOND);
    assert!(scope.check().unwrap_err().is_deadline());
}

// The inner future is dropped at once, not when the `Within` is dropped.
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
        "dropped before the `Within` itself"
    );
    drop(guarded);
}

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
    let scope = CancelScope::new().with_timeout(5 * SECOND);
    // The inner sleep ends at the same instant as the deadline.
    let result = sleep(5 * SECOND).within(&scope).await;
    assert_eq!(result, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn interrupted_reads_well_and_converts_into_io_error() {
    let outer = CancelScope::new().with_timeout(900 * SECOND);
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

#[tokio::test(start_paused = true)]
async fn zero_or_past_deadlines_interrupt_without_polling_the_inner_future() {
    for scope in [
        CancelScope::new().with_timeout(Duration::ZERO),
        CancelScope::new().with_deadline(Instant::now() - SECOND),
        CancelScope::new()
            .with_timeout(10 * SECOND)
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
    let scope = scope.with_timeout(SECOND);
    assert!(pending::<()>().within(&scope).await.is_err());
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
    let scope = CancelScope::new().with_timeout(SECOND);
    assert_eq!(scope.run(async { 5 }).await, Ok(5));
    assert!(scope.run(sleep(2 * SECOND)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn one_wake_per_interrupt_and_none_before() {
    let scope = CancelScope::new().with_timeout(10 * SECOND);
    let mut guarded = task::spawn(pending::<()>().within(&scope));
    assert_pending!(guarded.poll());
    assert_pending!(guarded.poll());
    assert_eq!(
        guarded.waker_ref_count(),
        2,
        "one waker kept by the scope, one by the test"
    );
    advance(9 * SECOND).await;
    assert!(!guarded.is_woken());
    advance(SECOND).await;
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
fn debug_output_shows_the_state() {
    let scope = CancelScope::new();
    let text = format!("{scope:?}");
    assert!(text.contains("cancelled: false"), "{text}");
    let guarded = async {}.within(&scope);
    let text = format!("{guarded:?}");
    assert!(
        text.contains("running: true") && text.contains("interrupted: false"),
        "{text}"
    );
    scope.cancel();
    assert!(format!("{guarded:?}").contains("interrupted: true"));
    assert!(format!("{scope:?}").contains("cancelled: true"));
}

// A child with a tighter own deadline is interrupted by its parent's cancel at 1 s; its
// timer, armed for 5 s, must not rewrite the cause.
#[tokio::test(start_paused = true)]
async fn a_cancel_stays_the_cause_when_the_scopes_own_deadline_passes_later() {
    let parent = CancelScope::new();
    let child = parent.child().with_timeout(5 * SECOND);
    let mut guarded = task::spawn(pending::<()>().within(&child));
    assert_pending!(guarded.poll());

    advance(SECOND).await;
    parent.cancel();
    assert!(guarded.is_woken());
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);

    // The task that owns `guarded` is busy and only polls it after 5 s.
    advance(10 * SECOND).await;
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(
        err.cause(),
        Cause::Cancelled,
        "interrupted by a cancel at 1 s, reported as: {err}"
    );
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);
}

// The child is cancelled by itself; later the parent's deadline passes.
#[tokio::test(start_paused = true)]
async fn a_cancel_stays_the_cause_when_an_inherited_deadline_passes_later() {
    let parent = CancelScope::new().with_timeout(10 * SECOND);
    let child = parent.child();
    let mut guarded = task::spawn(pending::<()>().within(&child));
    assert_pending!(guarded.poll());

    advance(SECOND).await;
    child.cancel();
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);

    advance(20 * SECOND).await;
    let err = assert_ready!(guarded.poll()).unwrap_err();
    assert_eq!(
        err.cause(),
        Cause::Cancelled,
        "cancelled at 1 s, reported as: {err}"
    );
    assert_eq!(child.check().unwrap_err().cause(), Cause::Cancelled);
}

// When the timeout does not tighten, `with_timeout` still returns a child: whether a cancel
// reaches the scope it came from must not depend on the clock.
#[tokio::test(start_paused = true)]
async fn cancelling_a_with_timeout_scope_never_cancels_the_scope_it_came_from() {
    let export = CancelScope::new().with_timeout(10 * SECOND);
    let step = export.clone().with_timeout(60 * SECOND);
    step.cancel();
    assert!(
        !export.is_cancelled(),
        "cancelling the with_timeout scope cancelled the scope it came from"
    );
}

// Polled again after `Ok`, a guarded future panics with a plain message (documented
// under `# Panics`), like most futures polled after completion: answering
// `Err(Cancelled)` would invent an outcome.
#[tokio::test(start_paused = true)]
#[should_panic(expected = "`Within` polled after it completed")]
async fn within_polled_again_after_ok_panics_instead_of_inventing_a_cancel() {
    let scope = CancelScope::new();
    let mut guarded = task::spawn(async { 1 }.within(&scope));
    assert_eq!(assert_ready!(guarded.poll()), Ok(1));
    let _ = guarded.poll();
}

#[tokio::test(start_paused = true)]
async fn a_guarded_future_moved_to_another_task_wakes_the_new_task() {
    let scope = CancelScope::new().with_timeout(5 * SECOND);
    let mut first = task::spawn(Box::pin(pending::<()>().within(&scope)));
    assert_pending!(first.poll());
    let fut = first.into_inner();
    let mut second = task::spawn(fut);
    assert_pending!(second.poll());
    advance(5 * SECOND).await;
    assert!(second.is_woken());
    assert!(assert_ready!(second.poll()).unwrap_err().is_deadline());
}

// Each round cancels from another task while guarded futures first register; every one
// must end. A lost wakeup shows as the 10 s real-time safety net.
#[test]
fn no_wakeup_is_lost_when_a_cancel_on_another_thread_races_the_first_registrations() {
    let rt = runtime::two_workers();
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
                let r = timeout(10 * SECOND, h).await.expect("lost wakeup");
                assert_eq!(r.unwrap().cause(), Cause::Cancelled);
            }
        }
    });
}

// Far deadlines that still fit in an `Instant` neither panic (timer, `remaining`,
// `Display`) nor fire.
#[tokio::test(start_paused = true)]
async fn far_deadlines_neither_panic_nor_fire() {
    let far = CancelScope::new().with_timeout(Duration::from_secs(u64::MAX / 4));
    assert!(far.deadline().is_some());
    assert!(far.remaining().unwrap() > Duration::from_secs(1 << 60));
    let r = timeout(3600 * SECOND, pending::<()>().within(&far)).await;
    assert!(r.is_err(), "a far deadline fired: {r:?}");
    assert_eq!(far.check(), Ok(()));
    let near = far.child().with_timeout(SECOND);
    let err = pending::<()>().within(&near).await.unwrap_err();
    assert_eq!(err.to_string(), "deadline of 1s exceeded");
}

// `with_deadline` on a scope that already owns a deadline, then a child of that: the
// tighter one is its own, the child's is inherited, and the original scope is untouched
// until its own deadline, which leaves the earlier causes alone.
#[tokio::test(start_paused = true)]
async fn stacked_own_deadlines_each_report_their_own_cause() {
    let start = tokio::time::Instant::now();
    let a = CancelScope::new().with_timeout(10 * SECOND);
    let b = a.clone().with_deadline(start + 5 * SECOND);
    let c = b.child();
    assert_eq!(
        a.clone().with_deadline(start + 20 * SECOND).deadline(),
        a.deadline()
    );

    let mut in_a = task::spawn(pending::<()>().within(&a));
    let mut in_c = task::spawn(pending::<()>().within(&c));
    assert_pending!(in_a.poll());
    assert_pending!(in_c.poll());
    advance(5 * SECOND).await;
    assert_eq!(
        assert_ready!(in_c.poll()).unwrap_err().cause(),
        Cause::InheritedDeadlineExceeded
    );
    assert_eq!(b.check().unwrap_err().cause(), Cause::DeadlineExceeded);
    assert!(!in_a.is_woken() && a.check().is_ok());
    advance(5 * SECOND).await;
    assert_eq!(
        assert_ready!(in_a.poll()).unwrap_err().cause(),
        Cause::DeadlineExceeded
    );
    assert_eq!(b.check().unwrap_err().cause(), Cause::DeadlineExceeded);
    let err = c.check().unwrap_err();
    assert_eq!(err.cause(), Cause::InheritedDeadlineExceeded);
    assert_eq!(err.budget(), Some(5 * SECOND));
}
