//! The scenarios the crates hangfree is compared with test their own types by
//! (tokio-util's `CancellationToken` and `TaskTracker`, tokio's `JoinSet`,
//! tokio-stream's `timeout` and `chunks_timeout`), run against hangfree's
//! counterparts and held to what hangfree documents (where it differs from the
//! anchor on purpose, the test says so), and multi-thread races checking that
//! nothing is lost: no output, task, hook or item.

use std::collections::HashSet;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::StreamExt as _;
use hangfree::batch::{Batcher, FlushError, StreamExt as _};
use hangfree::prelude::*;
use hangfree::scope::CancellationToken;
use hangfree::watchdog::{Limits, StallKind};
use hangfree::{CancelScope, Cause, FailureKind, TaskSet};
use tokio::time::{self, Instant};
use tokio_test::{assert_pending, assert_ready, task};

// ---------------------------------------------------------------------------
// helpers

struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn count_waker() -> (Waker, Arc<CountWaker>) {
    let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
    (Waker::from(Arc::clone(&counter)), counter)
}

fn wakes(c: &Arc<CountWaker>) -> usize {
    c.0.load(SeqCst)
}

fn poll_with<F: Future + ?Sized>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(waker))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A guard against hangs in the multi-thread races (real time, only ever reached
/// on a bug).
async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    match time::timeout(Duration::from_secs(20), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: hung for 20 s"),
    }
}

/// Starts `work` on a thread of its own and returns once that thread is about to run it,
/// so that what the caller does next races with it.
fn racing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let barrier = Arc::new(Barrier::new(2));
    let thread = std::thread::spawn({
        let barrier = Arc::clone(&barrier);
        move || {
            barrier.wait();
            work()
        }
    });
    barrier.wait();
    thread
}

/// The tasks a report accounts for: ended (completed, failed, panicked), aborted by this
/// shutdown, or unresponsive.
fn accounted(report: &hangfree::ShutdownReport) -> u64 {
    let counts = report.counts();
    counts.completed
        + counts.failed
        + counts.panicked
        + report.aborted().len() as u64
        + report.unresponsive().len() as u64
}

// ===========================================================================
// CancelScope, in the scenarios of tokio-util's `CancellationToken`

#[tokio::test(start_paused = true)]
async fn scope_cancel_wakes_its_waiters_and_later_waits_are_ready() {
    let scope = CancelScope::new();
    assert!(!scope.is_cancelled());
    let (w1, c1) = count_waker();
    let mut wait = pin!(scope.cancelled());
    assert!(poll_with(wait.as_mut(), &w1).is_pending());
    assert_eq!(wakes(&c1), 0);

    let mut wait2 = pin!(scope.cancelled());
    scope.cancel();
    assert!(wakes(&c1) >= 1, "a pending cancelled() is woken by cancel");
    assert!(scope.is_cancelled());
    match poll_with(wait.as_mut(), &w1) {
        Poll::Ready(why) => assert_eq!(why.cause(), Cause::Cancelled),
        Poll::Pending => panic!("cancelled() pending after cancel"),
    }
    // A future made before the cancel but first polled after it.
    assert!(poll_with(wait2.as_mut(), &w1).is_ready());
    // And one made after.
    let mut wait3 = pin!(scope.cancelled());
    assert!(poll_with(wait3.as_mut(), &w1).is_ready());
}

#[tokio::test(start_paused = true)]
async fn scope_cancelling_a_parent_cancels_and_wakes_its_child() {
    let parent = CancelScope::new();
    let child = parent.child();
    assert!(!child.is_cancelled());
    let (wc, cc) = count_waker();
    let (wp, cp) = count_waker();
    let mut child_fut = pin!(child.cancelled());
    let mut parent_fut = pin!(parent.cancelled());
    assert!(poll_with(child_fut.as_mut(), &wc).is_pending());
    assert!(poll_with(parent_fut.as_mut(), &wp).is_pending());
    parent.cancel();
    assert!(wakes(&cc) >= 1 && wakes(&cp) >= 1);
    assert!(parent.is_cancelled() && child.is_cancelled());
    assert!(poll_with(child_fut.as_mut(), &wc).is_ready());
    assert!(poll_with(parent_fut.as_mut(), &wp).is_ready());
}

#[tokio::test(start_paused = true)]
async fn scope_cancel_reaches_a_grandchild_whose_parent_was_dropped() {
    let parent = CancelScope::new();
    let mid = parent.child();
    let grandchild = mid.child();
    drop(mid);
    assert!(!grandchild.is_cancelled());
    let (wg, cg) = count_waker();
    let mut g_fut = pin!(std::future::pending::<()>().within(&grandchild));
    assert!(poll_with(g_fut.as_mut(), &wg).is_pending());
    parent.cancel();
    assert!(wakes(&cg) >= 1);
    assert!(grandchild.is_cancelled());
    match poll_with(g_fut.as_mut(), &wg) {
        Poll::Ready(Err(why)) => assert_eq!(why.cause(), Cause::Cancelled),
        other => panic!(
            "expected Err(Cancelled), got {:?}",
            other.map(|r| r.is_ok())
        ),
    }
}

#[tokio::test(start_paused = true)]
async fn scope_dropped_mid_keeps_its_deadline_for_grandchild() {
    let start = Instant::now();
    let parent = CancelScope::new();
    let mid = parent.child().with_timeout(Duration::from_secs(5));
    let grandchild = mid.child();
    drop(mid);
    assert_eq!(grandchild.deadline(), Some(start + Duration::from_secs(5)));
    let why = std::future::pending::<()>()
        .within(&grandchild)
        .await
        .unwrap_err();
    assert_eq!(Instant::now(), start + Duration::from_secs(5));
    assert_eq!(why.cause(), Cause::InheritedDeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn scope_cancelling_a_child_leaves_its_parent_running() {
    let parent = CancelScope::new();
    let child1 = parent.child();
    let (wc, cc) = count_waker();
    let (wp, cp) = count_waker();
    let mut child_fut = pin!(child1.cancelled());
    let mut parent_fut = pin!(parent.cancelled());
    assert!(poll_with(child_fut.as_mut(), &wc).is_pending());
    assert!(poll_with(parent_fut.as_mut(), &wp).is_pending());
    child1.cancel();
    assert!(wakes(&cc) >= 1);
    assert_eq!(
        wakes(&cp),
        0,
        "the parent's waiter is not woken by a child's cancel"
    );
    assert!(!parent.is_cancelled());
    assert!(poll_with(child_fut.as_mut(), &wc).is_ready());
    assert!(poll_with(parent_fut.as_mut(), &wp).is_pending());

    let child2 = parent.child();
    let (w2, c2) = count_waker();
    let mut child2_fut = pin!(child2.cancelled());
    assert!(poll_with(child2_fut.as_mut(), &w2).is_pending());
    parent.cancel();
    assert!(wakes(&c2) >= 1 && wakes(&cp) >= 1);
    assert!(poll_with(child2_fut.as_mut(), &w2).is_ready());
    assert!(poll_with(parent_fut.as_mut(), &wp).is_ready());
}

#[tokio::test(start_paused = true)]
async fn scope_a_child_of_a_cancelled_parent_is_born_cancelled() {
    for drop_child_first in [true, false] {
        let parent = CancelScope::new();
        parent.cancel();
        let child = parent.child();
        assert!(child.is_cancelled());
        assert!(child.check().is_err());
        let (w, c) = count_waker();
        {
            let mut child_fut = pin!(child.cancelled());
            let mut parent_fut = pin!(parent.cancelled());
            assert!(poll_with(child_fut.as_mut(), &w).is_ready());
            assert!(poll_with(parent_fut.as_mut(), &w).is_ready());
            assert_eq!(wakes(&c), 0);
        }
        // A guarded future in the cancelled child is never started.
        let started = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&started);
        let r = async move { s.store(true, SeqCst) }.within(&child).await;
        assert!(r.is_err());
        assert!(!started.load(SeqCst));
        if drop_child_first {
            drop(child);
            drop(parent);
        } else {
            drop(parent);
            drop(child);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn scope_dropping_children_in_any_order_leaves_the_parent_running() {
    for first_first in [true, false] {
        let parent = CancelScope::new();
        let mut children: Vec<Option<CancelScope>> = (0..3).map(|_| Some(parent.child())).collect();
        for i in 0..children.len() {
            let idx = if first_first {
                i
            } else {
                children.len() - 1 - i
            };
            children[idx] = None;
            assert!(!parent.is_cancelled());
        }
        drop(parent);
    }
}

#[tokio::test(start_paused = true)]
async fn scope_cancel_reaches_every_descendant_and_nothing_else() {
    let parent = CancelScope::new();
    let token = parent.child();
    let sibling = parent.child();
    let child1 = token.child();
    let child2 = token.child();
    let grandchild = child1.child();
    let grandchild2 = child1.child();
    let great_grandchild = grandchild.child();

    let all = [
        &parent,
        &token,
        &sibling,
        &child1,
        &child2,
        &grandchild,
        &grandchild2,
        &great_grandchild,
    ];
    let mut futs: Vec<_> = all.iter().map(|s| Box::pin(s.cancelled())).collect();
    let wakers: Vec<_> = (0..all.len()).map(|_| count_waker()).collect();
    for (f, (w, _)) in futs.iter_mut().zip(&wakers) {
        assert!(poll_with(f.as_mut(), w).is_pending());
    }
    token.cancel();
    let expect = [false, true, false, true, true, true, true, true];
    for (i, s) in all.iter().enumerate() {
        assert_eq!(s.is_cancelled(), expect[i], "scope {i}");
        let woke = wakes(&wakers[i].1);
        if expect[i] {
            assert!(woke >= 1, "scope {i} not woken");
        } else {
            assert_eq!(woke, 0, "scope {i} woken spuriously");
        }
        let ready = poll_with(futs[i].as_mut(), &wakers[i].0).is_ready();
        assert_eq!(ready, expect[i], "scope {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn scope_dropping_a_parent_does_not_cancel_its_children() {
    let parent = CancelScope::new();
    let child1 = parent.child();
    let child2 = parent.child();
    drop(parent);
    assert!(!child1.is_cancelled());
    drop(child1);
    assert!(!child2.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn scope_dropped_parent_token_still_cancels_children() {
    // "It outlives the scope: once the scope is dropped, it is still cancelled with
    // the scope's parent, and still cancels the scope's children."
    let root = CancelScope::new();
    let parent = root.child();
    let token = parent.token();
    let child = parent.child();
    let grandchild = child.child();
    drop(parent);
    assert!(!token.is_cancelled());
    token.cancel();
    assert!(child.is_cancelled() && grandchild.is_cancelled());
    assert!(!root.is_cancelled());

    // and is still cancelled with the parent's parent
    let root = CancelScope::new();
    let parent = root.child();
    let token = parent.token();
    drop(parent);
    root.cancel();
    assert!(token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn scope_from_token_dropped_still_passes_cancel_down() {
    let shutdown = CancellationToken::new();
    let scope = CancelScope::from_token(&shutdown);
    let child = scope.child();
    let w = tokio::spawn({
        let child = child.clone();
        async move { std::future::pending::<()>().within(&child).await }
    });
    tokio::task::yield_now().await;
    drop(scope);
    shutdown.cancel();
    assert!(child.is_cancelled());
    let err = w.await.unwrap().unwrap_err();
    assert_eq!(err.cause(), Cause::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn scope_within_gives_the_output_or_drops_the_future_at_cancel() {
    // token.run_until_cancelled(fut): Some(output) when fut completes, None when
    // cancelled. within: Ok / Err.
    let scope = CancelScope::new();
    assert_eq!(async { 1 }.within(&scope).await, Ok(1));

    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let fut = tokio::spawn({
        let scope = scope.clone();
        async move { rx.within(&scope).await }
    });
    tokio::task::yield_now().await;
    scope.cancel();
    let r = fut.await.unwrap();
    assert!(r.is_err());
    assert!(tx.send(1).is_err(), "the guarded receiver was dropped");

    // A future that was already cancelled before the first poll never runs.
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    assert!(
        async move { r2.store(true, SeqCst) }
            .within(&scope)
            .await
            .is_err()
    );
    assert!(!ran.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn scope_output_wins_when_ready_in_the_same_poll_as_cancel() {
    // The inner future cancels its own scope and returns in the same poll.
    let scope = CancelScope::new();
    let s2 = scope.clone();
    let mut polls = 0;
    let fut = std::future::poll_fn(move |cx| {
        polls += 1;
        if polls == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        s2.cancel();
        Poll::Ready(42)
    });
    assert_eq!(fut.within(&scope).await, Ok(42));
}

#[tokio::test(start_paused = true)]
async fn scope_output_wins_when_sleep_and_deadline_fire_together() {
    let scope = CancelScope::new().with_timeout(ms(500));
    let r = time::sleep(ms(500)).within(&scope).await;
    assert_eq!(
        r,
        Ok(()),
        "a sleep ending at the deadline is ready in the same poll"
    );
}

#[tokio::test(start_paused = true)]
async fn scope_cancelled_future_reports_deadline_without_timer() {
    // check() reads the clock; so does every poll of cancelled().
    let scope = CancelScope::new().with_timeout(ms(100));
    time::advance(ms(150)).await;
    let why = scope.check().unwrap_err();
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
    let (w, _c) = count_waker();
    let mut f = pin!(scope.cancelled());
    assert!(poll_with(f.as_mut(), &w).is_ready());
}

#[test]
fn scope_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CancelScope>();
    assert_send_sync::<hangfree::scope::Cancelled>();
    assert_send_sync::<hangfree::Within<std::future::Ready<()>>>();
}

// ---- multi-thread CancelScope races

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_cancel_while_waiting_on_many_threads() {
    for round in 0..300 {
        let root = CancelScope::new();
        let mid = root.child();
        let mut waits = Vec::new();
        for i in 0..8 {
            let leaf = if i % 2 == 0 {
                mid.child()
            } else {
                root.child().child()
            };
            waits.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    leaf.cancelled().await.cause()
                } else {
                    std::future::pending::<()>()
                        .within(&leaf)
                        .await
                        .unwrap_err()
                        .cause()
                }
            }));
        }
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let r = root.clone();
        let canceller = std::thread::spawn(move || r.cancel());
        drop(mid);
        for w in waits {
            let cause = guard("waiter after cancel", w).await.unwrap();
            assert_eq!(cause, Cause::Cancelled, "round {round}");
        }
        canceller.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_child_creation_vs_cancel() {
    for round in 0..500 {
        let root = CancelScope::new();
        let parent = root.child();
        let maker = racing({
            let parent = parent.clone();
            move || (0..16).map(|_| parent.child()).collect::<Vec<_>>()
        });
        root.cancel();
        let children = maker.join().unwrap();
        for (i, c) in children.iter().enumerate() {
            assert!(c.is_cancelled(), "round {round}: child {i} not cancelled");
            assert!(c.check().is_err(), "round {round}: child {i} check ok");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_drop_intermediate_vs_cancel() {
    for round in 0..500 {
        let root = CancelScope::new();
        let mid = root.child();
        let grandchild = mid.child().child();
        let waiter = tokio::spawn({
            let g = grandchild.clone();
            async move { std::future::pending::<()>().within(&g).await }
        });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let dropper = racing(move || drop(mid));
        root.cancel();
        dropper.join().unwrap();
        assert!(grandchild.is_cancelled(), "round {round}");
        let r = guard("grandchild waiter", waiter).await.unwrap();
        assert_eq!(r.unwrap_err().cause(), Cause::Cancelled, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_cancel_vs_completion_output_never_discarded() {
    for round in 0..2000 {
        let scope = CancelScope::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let produced = Arc::new(AtomicBool::new(false));
        let p = Arc::clone(&produced);
        let inner = async move {
            let v = rx.await.unwrap_or(0);
            p.store(true, SeqCst);
            v
        };
        let task = tokio::spawn({
            let scope = scope.clone();
            async move { inner.within(&scope).await }
        });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let canceller = racing({
            let scope = scope.clone();
            move || scope.cancel()
        });
        let _ = tx.send(7);
        let r = guard("guarded receiver", task).await.unwrap();
        canceller.join().unwrap();
        if produced.load(SeqCst) {
            assert_eq!(
                r,
                Ok(7),
                "round {round}: inner completed but its output was discarded"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_hook_registered_vs_cancel_runs_exactly_once() {
    for round in 0..1000 {
        let scope = CancelScope::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let canceller = racing({
            let scope = scope.clone();
            move || scope.cancel()
        });
        let r = Arc::clone(&ran);
        let hook = scope.child().on_interrupt(move |_| {
            r.fetch_add(1, SeqCst);
        });
        canceller.join().unwrap();
        assert_eq!(ran.load(SeqCst), 1, "round {round}");
        drop(hook);
        assert_eq!(ran.load(SeqCst), 1, "round {round}");
    }
}

// ===========================================================================
// TaskSet, in the scenarios of tokio-util's `TaskTracker`

#[tokio::test(start_paused = true)]
async fn tasks_close_and_reopen_say_whether_they_changed_the_set() {
    let set = TaskSet::new();
    assert!(!set.is_closed() && set.is_empty());
    assert!(set.close());
    assert!(set.is_closed() && set.is_empty());
    assert!(set.reopen());
    assert!(!set.is_closed());
    assert!(!set.reopen());
    assert!(!set.is_closed());
    assert!(set.close());
    assert!(!set.close());
    assert!(set.is_closed());
    assert_eq!(set.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn tasks_tracked_futures_count_while_alive_and_as_aborted_when_dropped() {
    // TaskTracker::token() ~ TaskSet::track(label, fut)
    let set = TaskSet::new();
    let mut tracked = Vec::new();
    for i in 0..10 {
        assert_eq!(set.len(), i);
        tracked.push(set.track("t", std::future::pending::<()>()).unwrap());
    }
    assert_eq!(set.len(), 10);
    for (i, t) in tracked.into_iter().enumerate() {
        drop(t);
        assert_eq!(set.len(), 9 - i);
    }
    // Dropped before finishing: counted as aborted.
    assert_eq!(set.counts().aborted, 10);
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_on_a_closed_empty_set_is_ready_at_once() {
    let set = TaskSet::new();
    set.close();
    let mut wait = task::spawn(set.wait());
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_on_a_set_reopened_before_its_first_poll_pends() {
    // TaskTracker: ready (wait() registers when created). hangfree: "resolves once
    // the set has been closed and empty at some moment after its first poll"; at
    // the first poll here the set is open again.
    let set = TaskSet::new();
    set.close();
    let mut wait = task::spawn(set.wait());
    set.reopen();
    assert_pending!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_on_an_empty_set_is_woken_by_close() {
    let set = TaskSet::new();
    let mut wait = task::spawn(set.wait());
    assert_pending!(wait.poll());
    set.close();
    assert!(wait.is_woken());
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_sees_a_close_reopened_before_its_next_poll() {
    let set = TaskSet::new();
    let mut wait = task::spawn(set.wait());
    assert_pending!(wait.poll());
    set.close();
    set.reopen();
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_on_a_closed_set_is_woken_by_its_last_task() {
    let set = TaskSet::new();
    let tracked = set.track("t", std::future::pending::<()>()).unwrap();
    set.close();
    let mut wait = task::spawn(set.wait());
    assert_pending!(wait.poll());
    drop(tracked);
    assert!(wait.is_woken());
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_sees_the_empty_moment_despite_a_reopen_and_respawn() {
    let set = TaskSet::new();
    let tracked = set.track("t", std::future::pending::<()>()).unwrap();
    set.close();
    let mut wait = task::spawn(set.wait());
    assert_pending!(wait.poll());
    drop(tracked);
    set.reopen();
    let tracked2 = set.track("t2", std::future::pending::<()>()).unwrap();
    assert_ready!(wait.poll());
    drop(tracked2);
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_on_an_open_set_needs_a_close() {
    let set = TaskSet::new();
    let tracked = set.track("t", std::future::pending::<()>()).unwrap();
    let mut wait = task::spawn(set.wait());
    assert_pending!(wait.poll());
    drop(tracked);
    let tracked2 = set.track("t2", std::future::pending::<()>()).unwrap();
    assert_pending!(wait.poll());
    drop(tracked2);
    assert_pending!(wait.poll(), "open set: wait() needs a close");
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_is_ready_once_closed_and_empty_in_either_order() {
    const ITERS: usize = 5;
    for close_spot in 0..=ITERS {
        let set = TaskSet::new();
        let tracked: Vec<_> = (0..ITERS)
            .map(|_| set.track("t", std::future::pending::<()>()).unwrap())
            .collect();
        let mut wait = task::spawn(set.wait());
        for (i, t) in tracked.into_iter().enumerate() {
            assert_pending!(wait.poll());
            if i == close_spot {
                set.close();
                assert_pending!(wait.poll());
            }
            drop(t);
        }
        if close_spot == ITERS {
            assert_pending!(wait.poll());
            set.close();
        }
        assert_ready!(wait.poll());
    }
}

#[tokio::test(start_paused = true)]
async fn tasks_close_wakes_every_wait() {
    let set = TaskSet::new();
    let mut waits: Vec<_> = (0..10).map(|_| task::spawn(set.wait())).collect();
    for w in &mut waits {
        assert_pending!(w.poll());
    }
    set.close();
    for w in &mut waits {
        assert_ready!(w.poll());
    }
}

#[tokio::test(start_paused = true)]
async fn tasks_wait_idle_on_empty_open_set_is_ready() {
    let set = TaskSet::new();
    let mut idle = task::spawn(set.wait_idle());
    assert_ready!(idle.poll());
    // wait() on an open empty set has no time limit and needs a close.
    let waited = time::timeout(Duration::from_secs(3600), set.wait()).await;
    assert!(waited.is_err());
}

#[tokio::test(start_paused = true)]
async fn tasks_spawn_after_close_is_rejected_and_handed_back() {
    let set = TaskSet::new();
    set.close();
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let rejected = set
        .spawn("late", async move { r.store(true, SeqCst) })
        .unwrap_err();
    assert!(!rejected.is_shut_down());
    assert_eq!(rejected.label(), "late");
    assert_eq!(set.counts().rejected, 1);
    // The work comes back and can be run by hand.
    rejected.into_inner().await;
    assert!(ran.load(SeqCst));
    set.wait().await;
    assert!(set.is_empty());

    set.shutdown(Duration::ZERO).await;
    let rejected = set.spawn("later", async {}).unwrap_err();
    assert!(rejected.is_shut_down());
    assert!(set.track("tracked", async {}).is_err());
    assert_eq!(set.counts().rejected, 3);
}

#[tokio::test(start_paused = true)]
async fn tasks_spawn_local_after_close() {
    let local = tokio::task::LocalSet::new();
    let set = TaskSet::new();
    set.close();
    local
        .run_until(async {
            for _ in 0..8 {
                let rc = std::rc::Rc::new(());
                assert!(set.spawn_local("l", async move { drop(rc) }).is_err());
            }
            set.wait().await;
            assert!(set.is_closed() && set.is_empty());
        })
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn tasks_drop_set_aborts_local_tasks() {
    // Anchor: dropping a TaskTracker leaves its tasks running. A TaskSet's drop
    // aborts them (documented).
    let local = tokio::task::LocalSet::new();
    let set = TaskSet::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    local
        .run_until(async move {
            for _ in 0..8 {
                let tx = tx.clone();
                set.spawn_local("l", async move {
                    std::future::pending::<()>().await;
                    drop(tx);
                })
                .unwrap();
            }
            drop(tx);
            tokio::task::yield_now().await;
            drop(set);
            tokio::task::yield_now().await;
            assert!(
                rx.recv().await.is_none(),
                "every task was aborted, dropping its sender"
            );
        })
        .await;
}

// ===========================================================================
// TaskSet, in the scenarios of tokio's `JoinSet`

#[tokio::test(start_paused = true)]
async fn tasks_finished_tasks_leave_the_set_and_count_completed() {
    let set = TaskSet::new();
    for i in 0..10u64 {
        set.spawn("sleep", time::sleep(ms(i))).unwrap();
        assert_eq!(set.len(), 1 + i as usize);
    }
    set.wait_idle().await;
    assert_eq!(set.counts().completed, 10);
    assert!(set.is_empty());
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert!(report.is_clean());
    assert_eq!(report.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn tasks_aborts_through_handles_are_counted_each_once() {
    let set = TaskSet::new();
    let mut handles = Vec::new();
    for i in 0..10u64 {
        let h = set
            .spawn_with_handle("x", async move {
                time::sleep(ms(i)).await;
                i
            })
            .unwrap();
        handles.push(h);
    }
    for (i, h) in handles.iter().enumerate() {
        if i % 2 != 0 {
            h.abort();
        }
    }
    let mut got = Vec::new();
    let mut aborted = 0;
    for h in handles {
        match h.await {
            Ok(v) => got.push(v),
            Err(e) => {
                assert!(e.is_aborted());
                aborted += 1;
            }
        }
    }
    assert_eq!(got, [0, 2, 4, 6, 8]);
    assert_eq!(aborted, 5);
    let c = set.counts();
    assert_eq!((c.completed, c.aborted, c.spawned), (5, 5, 10));
}

#[test]
fn tasks_of_a_dropped_runtime_count_as_aborted() {
    let set = TaskSet::new();
    let handle;
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _context = rt.enter();
        set.spawn("pending", std::future::pending::<()>()).unwrap();
        handle = set
            .spawn_with_handle("pending with handle", std::future::pending::<u8>())
            .unwrap();
        assert_eq!(set.len(), 2);
    }
    // The runtime dropped its tasks: nothing is tracked, and they count as aborted.
    assert_eq!(
        set.len(),
        0,
        "tasks of a dropped runtime still tracked: {:?}",
        set.running()
    );
    let c = set.counts();
    assert_eq!(
        c.spawned,
        c.completed + c.failed + c.panicked + c.aborted + set.len() as u64
    );
    assert_eq!(c.aborted, 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let joined = rt.block_on(handle);
    assert!(joined.unwrap_err().is_aborted());
    let report = rt.block_on(set.shutdown(Duration::from_secs(1)));
    assert!(report.aborted().is_empty() && report.unresponsive().is_empty());
}

#[tokio::test(start_paused = true)]
async fn tasks_panics_are_counted_and_kept_with_their_messages() {
    let set = TaskSet::new();
    set.spawn("boom", async {
        if true {
            panic!("Test panic")
        }
    })
    .unwrap();
    set.spawn("fine", async {}).unwrap();
    let h = set
        .spawn_with_handle("boom with handle", async { panic!("handle panic") })
        .unwrap();
    let err = h.await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("handle panic"));
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.panicked(), 2);
    assert_eq!(report.completed(), 1);
    let msgs: Vec<_> = report
        .failures()
        .iter()
        .map(|f| (f.kind(), f.message().to_string()))
        .collect();
    assert!(
        msgs.contains(&(FailureKind::Panic, "Test panic".to_string())),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&(FailureKind::Panic, "handle panic".to_string())),
        "{msgs:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tasks_abort_all_via_zero_grace_shutdown() {
    let set = TaskSet::new();
    for _ in 0..5 {
        set.spawn("forever", std::future::pending::<()>()).unwrap();
    }
    set.spawn("quick", time::sleep(ms(1))).unwrap();
    let report = set.shutdown(Duration::ZERO).await;
    assert_eq!(report.aborted().len(), 6);
    assert_eq!(report.counts().aborted, 6);
    assert!(set.is_empty());
    let ids: HashSet<_> = report.aborted().iter().map(|t| t.id()).collect();
    assert_eq!(ids.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn tasks_spawned_from_within_tasks() {
    let set = TaskSet::new();
    let count = Arc::new(AtomicUsize::new(0));
    {
        let inner = set.clone();
        let count = Arc::clone(&count);
        set.spawn("parent", async move {
            for _ in 0..10 {
                let count = Arc::clone(&count);
                inner
                    .spawn("child", async move {
                        time::sleep(ms(5)).await;
                        count.fetch_add(1, SeqCst);
                    })
                    .unwrap();
            }
        })
        .unwrap();
    }
    tokio::task::yield_now().await;
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.completed(), 11);
    assert_eq!(count.load(SeqCst), 10);
    assert_eq!(report.elapsed(), ms(5));
}

#[tokio::test(start_paused = true)]
async fn tasks_child_spawns_during_shutdown_are_rejected_not_lost() {
    // A task that keeps spawning while the set shuts down: every spawn that
    // returned Ok is in the report.
    let set = TaskSet::new();
    let oks = Arc::new(AtomicU64::new(0));
    {
        let inner = set.clone();
        let oks = Arc::clone(&oks);
        set.spawn("spawner", async move {
            loop {
                match inner.spawn("work", time::sleep(ms(3))) {
                    Ok(_) => oks.fetch_add(1, SeqCst),
                    Err(r) => {
                        assert!(r.is_shut_down());
                        break;
                    }
                };
                time::sleep(ms(1)).await;
            }
        })
        .unwrap();
    }
    time::sleep(ms(10)).await;
    let report = set.shutdown(ms(2)).await;
    let expected = oks.load(SeqCst) + 1;
    assert_eq!(report.counts().spawned, expected);
    assert_eq!(accounted(&report), expected, "{report}");
}

#[tokio::test(start_paused = true)]
async fn tasks_max_in_flight_queued_task_aborted_on_shutdown() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("running", std::future::pending::<()>()).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    set.spawn("queued", async move { r.store(true, SeqCst) })
        .unwrap();
    assert_eq!(set.len(), 2);
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.aborted().len(), 2, "{report}");
    assert!(!ran.load(SeqCst), "the queued task never got a slot");
    assert_eq!(report.counts().spawned, 2);
}

// ---- multi-thread TaskSet races

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_shutdown_vs_spawn_every_task_reported_once() {
    for round in 0..400 {
        let set = TaskSet::builder().abort_wait(ms(200)).build();
        let n_spawners = 2;
        let barrier = Arc::new(tokio::sync::Barrier::new(n_spawners + 1));
        let mut spawners = Vec::new();
        for s in 0..n_spawners {
            let set = set.clone();
            let barrier = Arc::clone(&barrier);
            spawners.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut ok = 0u64;
                let mut i = 0u64;
                loop {
                    i += 1;
                    let r = match (i + s as u64) % 3 {
                        0 => set
                            .spawn("quick", async {})
                            .map(|_| ())
                            .map_err(|r| r.is_shut_down()),
                        1 => set
                            .spawn("pending", std::future::pending::<()>())
                            .map(|_| ())
                            .map_err(|r| r.is_shut_down()),
                        _ => set
                            .spawn("yields", async {
                                tokio::task::yield_now().await;
                                Err::<(), _>("failed")
                            })
                            .map(|_| ())
                            .map_err(|r| r.is_shut_down()),
                    };
                    match r {
                        Ok(()) => ok += 1,
                        Err(shut_down) => {
                            assert!(shut_down);
                            break;
                        }
                    }
                    if i % 8 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                ok
            }));
        }
        barrier.wait().await;
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let grace = if round % 3 == 0 {
            Duration::ZERO
        } else {
            ms(1)
        };
        let report = guard("shutdown", set.shutdown(grace)).await;
        let mut ok = 0;
        for s in spawners {
            ok += s.await.unwrap();
        }
        let c = report.counts();
        assert_eq!(c.spawned, ok, "round {round}: {report}");
        assert_eq!(
            accounted(&report),
            ok,
            "round {round}: {report} counts {c:?}"
        );
        assert_eq!(c.aborted, report.aborted().len() as u64, "round {round}");
        let mut ids = HashSet::new();
        for t in report.aborted().iter().chain(report.unresponsive()) {
            assert!(
                ids.insert(t.id()),
                "round {round}: task {} listed twice",
                t.id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_spawn_from_std_thread_vs_shutdown() {
    let rt = tokio::runtime::Handle::current();
    for round in 0..300 {
        let set = TaskSet::builder().abort_wait(ms(200)).build();
        let spawner = racing({
            let set = set.clone();
            let rt = rt.clone();
            move || {
                let mut ok = 0u64;
                loop {
                    let r = if ok % 2 == 0 {
                        set.spawn_on(&rt, "a", async {}).map(|_| ()).map_err(|_| ())
                    } else {
                        set.spawn_on(&rt, "b", std::future::pending::<()>())
                            .map(|_| ())
                            .map_err(|_| ())
                    };
                    match r {
                        Ok(()) => ok += 1,
                        Err(_) => break ok,
                    }
                }
            }
        });
        let report = guard("shutdown", set.shutdown(Duration::ZERO)).await;
        let ok = spawner.join().unwrap();
        assert_eq!(report.counts().spawned, ok, "round {round}");
        assert_eq!(accounted(&report), ok, "round {round}: {report}");
        // What was unresponsive only because its spawn call had not returned is
        // aborted once it returns: the set empties.
        guard("unresponsive leftovers", async {
            while !set.is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let c = set.counts();
        assert_eq!(
            c.spawned,
            c.completed + c.failed + c.panicked + c.aborted,
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_close_wait_vs_spawn() {
    for round in 0..500 {
        let set = TaskSet::new();
        let done = Arc::new(AtomicU64::new(0));
        let spawner = tokio::spawn({
            let set = set.clone();
            let done = Arc::clone(&done);
            async move {
                let mut ok = 0u64;
                loop {
                    let done = Arc::clone(&done);
                    match set.spawn("t", async move {
                        tokio::task::yield_now().await;
                        done.fetch_add(1, SeqCst);
                    }) {
                        Ok(_) => ok += 1,
                        Err(_) => break ok,
                    }
                    if ok % 4 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        set.close();
        guard("wait", set.wait()).await;
        let ok = spawner.await.unwrap();
        // "a spawn that loses the race to close is rejected, one that wins it is
        // waited for"
        assert_eq!(
            done.load(SeqCst),
            ok,
            "round {round}: wait returned before every accepted task ended"
        );
        assert!(set.is_empty());
    }
}

// ===========================================================================
// watchdog, in the scenarios of tokio-stream's `timeout`

async fn maybe_sleep(idx: i32) -> i32 {
    if idx % 2 == 0 {
        time::sleep(ms(200)).await;
    }
    idx
}

#[tokio::test(start_paused = true)]
async fn watchdog_a_late_item_is_one_stall_that_ends_the_stream() {
    // Anchor: [Ok(1), Err(Elapsed), Ok(2), Ok(3), Err(Elapsed), Ok(4)].
    // hangfree: Ok(1), one Err(Stalled), then the end, the source dropped.
    let stream = futures::stream::iter(1..=4)
        .then(maybe_sleep)
        .idle_timeout(ms(100));
    let mut stream = task::spawn(stream);
    assert_eq!(assert_ready!(stream.poll_next()), Some(Ok(1)));
    assert_pending!(stream.poll_next());
    time::advance(ms(150)).await;
    let v = assert_ready!(stream.poll_next());
    let stalled = v.unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(stalled.limit(), ms(100));
    assert!(stalled.waited() >= ms(100), "waited {:?}", stalled.waited());
    assert_eq!(assert_ready!(stream.poll_next()), None);
    assert!(
        stream.enter(|_, s| s.get_ref().is_none()),
        "source dropped on stall"
    );
}

#[tokio::test(start_paused = true)]
async fn watchdog_a_stall_is_reported_once_then_the_stream_ends() {
    let stream = futures::stream::iter(1..=3)
        .then(maybe_sleep)
        .idle_timeout(ms(50));
    let mut stream = task::spawn(stream);
    assert_eq!(assert_ready!(stream.poll_next()), Some(Ok(1)));
    assert_pending!(stream.poll_next());
    time::advance(ms(51)).await;
    assert!(assert_ready!(stream.poll_next()).unwrap().is_err());
    time::advance(ms(50)).await;
    assert_eq!(assert_ready!(stream.poll_next()), None);
    time::advance(ms(100)).await;
    assert_eq!(assert_ready!(stream.poll_next()), None);
    assert_eq!(assert_ready!(stream.poll_next()), None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_items_in_time_pass_through_untouched() {
    let stream = futures::stream::iter(vec![1, 3, 5])
        .then(maybe_sleep)
        .idle_timeout(ms(100));
    let mut stream = task::spawn(stream);
    assert_eq!(assert_ready!(stream.poll_next()), Some(Ok(1)));
    assert_eq!(assert_ready!(stream.poll_next()), Some(Ok(3)));
    assert_eq!(assert_ready!(stream.poll_next()), Some(Ok(5)));
    assert_eq!(assert_ready!(stream.poll_next()), None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_duration_max_does_not_overflow() {
    let mut s = task::spawn(futures::stream::iter([1]).idle_timeout(Duration::MAX));
    assert_eq!(assert_ready!(s.poll_next()), Some(Ok(1)));
    assert_eq!(assert_ready!(s.poll_next()), None);

    let limits = Limits::new()
        .idle(Duration::MAX)
        .first_item(Duration::MAX)
        .total(Duration::MAX)
        .min_rate(1, Duration::MAX);
    let src = futures::stream::iter([1, 2]).chain(futures::stream::once(async {
        time::sleep(Duration::from_secs(3600)).await;
        3
    }));
    let got: Vec<_> = src.watchdog(limits).collect().await;
    assert_eq!(got, [Ok(1), Ok(2), Ok(3)]);
}

#[tokio::test(start_paused = true)]
async fn watchdog_item_ready_at_the_limit_wins() {
    // The source answers exactly when the idle limit runs out: "an item that is
    // ready always wins".
    let src = futures::stream::iter([100u64, 100, 100]).then(|d| async move {
        time::sleep(ms(d)).await;
        d
    });
    let got: Vec<_> = src.idle_timeout(ms(100)).collect().await;
    assert_eq!(got, [Ok(100), Ok(100), Ok(100)]);
}

#[tokio::test(start_paused = true)]
async fn watchdog_slow_consumer_is_not_a_stall() {
    let src = futures::stream::iter([50u64, 50, 50]).then(|d| async move {
        time::sleep(ms(d)).await;
        d
    });
    let mut s = pin!(src.idle_timeout(ms(100)));
    for _ in 0..3 {
        assert!(matches!(s.next().await, Some(Ok(50))));
        time::sleep(Duration::from_secs(5)).await; // the consumer's work
    }
    assert!(s.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn watchdog_source_woke_while_consumer_away() {
    // The source wakes at 50 ms; the consumer comes back at 1 s. Only the
    // source's Pending time counts.
    let src = futures::stream::iter([1]).then(|n| async move {
        time::sleep(ms(50)).await;
        n
    });
    let mut s = task::spawn(src.idle_timeout(ms(100)));
    assert_pending!(s.poll_next());
    time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(s.poll_next()), Some(Ok(1)));
}

#[tokio::test(start_paused = true)]
async fn watchdog_first_item_then_idle() {
    let start = Instant::now();
    let src = futures::stream::once(async {
        time::sleep(Duration::from_secs(50)).await;
        1
    })
    .chain(futures::stream::pending());
    let mut s = pin!(
        src.watchdog(
            Limits::new()
                .first_item(Duration::from_secs(60))
                .idle(Duration::from_secs(10))
        )
    );
    assert_eq!(s.next().await, Some(Ok(1)));
    let stalled = s.next().await.unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(stalled.waited(), Duration::from_secs(10));
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_first_item_stall() {
    let mut s = pin!(
        futures::stream::pending::<u8>().watchdog(
            Limits::new()
                .first_item(Duration::from_secs(60))
                .idle(Duration::from_secs(1))
        )
    );
    let stalled = s.next().await.unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::FirstItem);
    assert_eq!(stalled.waited(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn watchdog_total_ends_an_always_ready_stream() {
    let start = Instant::now();
    let mut s =
        pin!(futures::stream::iter(0..).watchdog(Limits::new().total(Duration::from_secs(1))));
    let mut n = 0;
    loop {
        match s.next().await {
            Some(Ok(_)) => {
                n += 1;
                time::sleep(ms(300)).await;
            }
            Some(Err(stalled)) => {
                assert_eq!(stalled.kind(), StallKind::Total);
                break;
            }
            None => panic!("ended without a stall"),
        }
    }
    assert_eq!(n, 4, "items at 0, 300, 600, 900 ms");
    assert_eq!(start.elapsed(), ms(1200));
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_source_errors_pass_through() {
    let src = futures::stream::iter([Ok(1), Err("bad"), Ok(2)]);
    let got: Vec<_> = src.idle_timeout(ms(10)).collect().await;
    assert_eq!(got, [Ok(Ok(1)), Ok(Err("bad")), Ok(Ok(2))]);
}

#[tokio::test(start_paused = true)]
async fn watchdog_io_reader_stall_never_ok_zero() {
    use tokio::io::AsyncReadExt as _;
    let (client, mut server) = tokio::io::duplex(64);
    use tokio::io::AsyncWriteExt as _;
    server.write_all(b"abc").await.unwrap();
    let mut io = pin!(hangfree::IoWatchdog::new(
        client,
        Limits::new().idle(Duration::from_secs(5))
    ));
    let mut buf = [0u8; 16];
    assert_eq!(io.read(&mut buf).await.unwrap(), 3);
    let err = io.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(hangfree::Stalled::find_in(&err).is_some());
    let late = server.write_all(b"late").await.unwrap_err();
    assert_eq!(
        late.kind(),
        std::io::ErrorKind::BrokenPipe,
        "the stalled reader was dropped"
    );
    let err = io.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    drop(server);
}

// ===========================================================================
// batch, in the scenarios of tokio-stream's `chunks_timeout`

#[tokio::test(start_paused = true)]
async fn batched_items_taken_back_when_the_adapter_is_dropped() {
    let stream1 = futures::stream::iter([5]).then(|n| async move {
        time::sleep(Duration::from_secs(1)).await;
        n
    });
    let inner = futures::stream::iter([1, 2, 3, 4]).chain(stream1);
    let mut inner = pin!(inner);
    {
        let batched = inner.as_mut().batched(10, ms(20));
        let mut batched = task::spawn(batched);
        assert_pending!(batched.poll_next());
        let remainder = batched.enter(|_, s| s.take_pending());
        assert_eq!(remainder, vec![1, 2, 3, 4]);
    }
    time::advance(Duration::from_secs(2)).await;
    assert_eq!(inner.next().await, Some(5));
}

#[tokio::test(start_paused = true)]
async fn batched_batches_end_at_their_size_or_their_age() {
    // chunks_timeout's `usage`: items every 10 ms, 5 per batch, or 25 ms.
    let start = Instant::now();
    let src = futures::stream::iter(0..20u32).then(|n| async move {
        time::sleep(ms(10)).await;
        n
    });
    let mut b = pin!(src.batched(5, ms(25)));
    let mut seen = Vec::new();
    let mut times = Vec::new();
    while let Some(batch) = b.next().await {
        assert!(!batch.is_empty() && batch.len() <= 5);
        times.push(start.elapsed());
        seen.extend(batch);
    }
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    // Item 0 arrives at 10 ms; the batch is due at 35 ms, when items 0..=2 are in
    // (item 2 arrives at 30 ms, item 3 at 40 ms).
    assert_eq!(times[0], ms(35), "times {times:?}");
}

#[tokio::test(start_paused = true)]
async fn batched_a_full_batch_goes_at_once_and_a_short_one_at_its_age() {
    // chunks_timeout's `full_chunk_with_timeout`.
    let src = futures::stream::iter([1, 2])
        .chain(futures::stream::once(async {
            time::sleep(ms(20)).await;
            3
        }))
        .chain(futures::stream::iter([4]))
        .chain(futures::stream::once(async {
            time::sleep(ms(50)).await;
            5
        }))
        .chain(futures::stream::iter([6, 7, 8]));
    let start = Instant::now();
    let mut b = pin!(src.batched(3, ms(100)));
    assert_eq!(b.next().await, Some(vec![1, 2, 3]));
    assert_eq!(start.elapsed(), ms(20));
    assert_eq!(b.next().await, Some(vec![4, 5, 6]));
    assert_eq!(start.elapsed(), ms(70));
    assert_eq!(b.next().await, Some(vec![7, 8]));
    assert_eq!(b.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn batched_age_counts_from_the_oldest_item_of_each_batch() {
    let start = Instant::now();
    let src = futures::stream::iter([0u64, 30, 150, 160]).then(move |at| async move {
        time::sleep_until(start + ms(at)).await;
        at
    });
    let mut b = pin!(src.batched(10, ms(100)));
    assert_eq!(b.next().await, Some(vec![0, 30]));
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(b.next().await, Some(vec![150, 160]));
    // The source ended at 160 ms: the remainder at once.
    assert_eq!(start.elapsed(), ms(160));
    assert_eq!(b.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn batched_duration_max_and_zero() {
    let mut b = pin!(futures::stream::iter(0..7).batched(3, Duration::MAX));
    assert_eq!(b.next().await, Some(vec![0, 1, 2]));
    assert_eq!(b.next().await, Some(vec![3, 4, 5]));
    assert_eq!(b.next().await, Some(vec![6]));
    assert_eq!(b.next().await, None);

    let mut b = pin!(futures::stream::iter(0..7).batched(3, Duration::ZERO));
    let mut all = Vec::new();
    while let Some(x) = b.next().await {
        assert!(!x.is_empty() && x.len() <= 3);
        all.extend(x);
    }
    assert_eq!(all, (0..7).collect::<Vec<_>>());

    // A pending source with MAX: nothing yielded, no overflow, no empty batch.
    let mut b = task::spawn(
        futures::stream::iter([1])
            .chain(futures::stream::pending())
            .batched(3, Duration::MAX),
    );
    assert_pending!(b.poll_next());
    time::advance(Duration::from_secs(1_000_000)).await;
    assert_pending!(b.poll_next());
}

#[tokio::test(start_paused = true)]
async fn batched_by_deadline_pulls_batch_forward() {
    let start = Instant::now();
    let src = futures::stream::iter([
        ("a", start + Duration::from_secs(30)),
        ("b", start + Duration::from_secs(3)),
    ])
    .chain(futures::stream::pending());
    let mut b = pin!(src.batched_by(100, Duration::from_secs(5), Duration::from_secs(1)));
    assert_eq!(b.next().await, Some(vec!["a", "b"]));
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    // A deadline already inside the margin: at once.
    let src = futures::stream::iter([("c", start)]).chain(futures::stream::pending());
    let mut b = pin!(src.batched_by(100, Duration::from_secs(5), Duration::from_secs(1)));
    let t = Instant::now();
    assert_eq!(b.next().await, Some(vec!["c"]));
    assert_eq!(t.elapsed(), Duration::ZERO);
}

// ---- Batcher, paused clock

/// The batches a recording batcher flushed, each with its time since the start.
type Flushed = Arc<Mutex<Vec<(Duration, Vec<u64>)>>>;

fn recording_batcher(
    max_items: usize,
    max_delay: Duration,
    margin: Duration,
) -> (Batcher<u64>, Flushed) {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let batcher = Batcher::builder()
        .max_items(max_items)
        .max_delay(max_delay)
        .deadline_margin(margin)
        .build(move |items: Vec<u64>| {
            s.lock().unwrap().push((start.elapsed(), items));
            async { Ok::<(), FlushError<u64, String>>(()) }
        })
        .unwrap();
    (batcher, seen)
}

#[tokio::test(start_paused = true)]
async fn batcher_flush_rule_size_age_deadline() {
    let (b, seen) = recording_batcher(3, Duration::from_secs(5), Duration::from_secs(1));
    for i in 0..3 {
        b.push(i).await.unwrap();
    }
    time::sleep(ms(1)).await;
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &(Duration::ZERO, vec![0, 1, 2])
    );

    b.push(3).await.unwrap(); // at ~1 ms; due at 5 s + 1 ms
    time::sleep(Duration::from_secs(6)).await;
    assert_eq!(seen.lock().unwrap().last().unwrap(), &(ms(5001), vec![3]));

    let t = Instant::now();
    b.push(4).await.unwrap();
    b.push_by(5, t + Duration::from_secs(3)).await.unwrap();
    time::sleep(Duration::from_secs(6)).await;
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.1, vec![4, 5]);
    assert_eq!(last.0, ms(6001) + Duration::from_secs(2));

    let report = b.shutdown(Duration::from_secs(1)).await;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.accepted(), 6);
}

#[tokio::test(start_paused = true)]
async fn batcher_push_waiting_for_room_gets_item_back_on_shutdown() {
    let batcher = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
        .unwrap();
    batcher.push(1).await.unwrap(); // flushing forever
    tokio::task::yield_now().await;
    assert_eq!(batcher.pending(), 0, "in flight is not pending");
    batcher.push(2).await.unwrap(); // pending: no flush slot; capacity reached
    let b2 = batcher.clone();
    let waiting = tokio::spawn(async move { b2.push(3).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    let report = batcher.shutdown(Duration::from_secs(1)).await;
    let back = waiting.await.unwrap().unwrap_err().into_inner();
    assert_eq!(back, 3);
    assert_eq!(report.accepted(), 2);
    assert_eq!(report.abandoned_items(), 1);
    assert_eq!(report.unflushed(), [2]);
}

#[tokio::test(start_paused = true)]
async fn batcher_abandoned_push_future_keeps_its_item() {
    let batcher = Batcher::builder()
        .max_items(1)
        .capacity(1)
        .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
        .unwrap();
    batcher.push(1).await.unwrap();
    tokio::task::yield_now().await;
    batcher.push(2).await.unwrap();
    let mut push = batcher.push(3);
    tokio::select! {
        pushed = &mut push => panic!("accepted without room: {pushed:?}"),
        () = time::sleep(Duration::from_secs(1)) => {
            assert_eq!(push.into_item(), Some(3));
        }
    }
    assert_eq!(batcher.pending(), 1);
    let report = batcher.shutdown(Duration::ZERO).await;
    assert_eq!(report.accepted(), 2);
    assert_eq!(report.unflushed(), [2]);
}

#[tokio::test(start_paused = true)]
async fn batcher_failed_flush_items_handed_back() {
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&hooked);
    let batcher = Batcher::builder()
        .max_items(2)
        .on_failure(move |f: FlushError<u32, String>| h.lock().unwrap().extend(f.items))
        .build(|items: Vec<u32>| async move {
            if items[0] % 4 == 0 {
                Err(FlushError::new(items, "down".to_string()))
            } else {
                Ok(())
            }
        })
        .unwrap();
    for i in 0..8 {
        batcher.push(i).await.unwrap();
    }
    let report = batcher.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.failed_items(), 4);
    assert_eq!(report.flushed_items(), 4);
    let mut got = hooked.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, [0, 1, 4, 5]);
    assert!(report.failed().is_empty(), "with a hook, nothing is kept");
}

#[tokio::test(start_paused = true)]
async fn batcher_dropping_last_handle_flushes_in_background() {
    let (b, seen) = recording_batcher(10, Duration::from_secs(60), Duration::ZERO);
    b.push(1).await.unwrap();
    b.push(2).await.unwrap();
    drop(b);
    time::sleep(ms(1)).await;
    let s = seen.lock().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1, vec![1, 2]);
    assert_eq!(
        s[0].0,
        Duration::ZERO,
        "closed and flushed at once, not after max_delay"
    );
}

// ---- multi-thread Batcher races

struct Account {
    accepted: Vec<u64>,
    rejected: Vec<u64>,
}

async fn produce(b: Batcher<u64>, base: u64, count: u64, try_mode: bool) -> Account {
    let mut acc = Account {
        accepted: Vec::new(),
        rejected: Vec::new(),
    };
    for i in 0..count {
        let item = base + i;
        let r = if try_mode {
            match b.try_push(item) {
                Ok(()) => Ok(()),
                Err(e) if e.is_full() => {
                    // backpressure: fall back to the waiting push
                    b.push(e.into_inner()).await.map_err(|e| e.into_inner())
                }
                Err(e) => Err(e.into_inner()),
            }
        } else {
            b.push(item).await.map_err(|e| e.into_inner())
        };
        match r {
            Ok(()) => acc.accepted.push(item),
            Err(back) => {
                assert_eq!(back, item, "the item handed back is the one pushed");
                acc.rejected.push(item);
                // every later push is refused too
                for j in i + 1..count {
                    assert!(b.try_push(base + j).is_err());
                    acc.rejected.push(base + j);
                }
                break;
            }
        }
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    acc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_batcher_push_vs_shutdown_nothing_lost() {
    for round in 0..300u64 {
        let flushed = Arc::new(Mutex::new(Vec::<u64>::new()));
        let hooked = Arc::new(Mutex::new(Vec::<u64>::new()));
        let f = Arc::clone(&flushed);
        let h = Arc::clone(&hooked);
        let fail = round % 4 == 0;
        let batcher = Batcher::builder()
            .max_items(4)
            .max_delay(ms(1))
            .max_in_flight(2)
            .capacity(8)
            .on_failure(move |e: FlushError<u64, String>| h.lock().unwrap().extend(e.items))
            .build(move |items: Vec<u64>| {
                let f = Arc::clone(&f);
                async move {
                    tokio::task::yield_now().await;
                    if fail && items[0] % 3 == 0 {
                        return Err(FlushError::new(items, "no".to_string()));
                    }
                    f.lock().unwrap().extend(items);
                    Ok(())
                }
            })
            .unwrap();
        let producers: Vec<_> = (0..2u64)
            .map(|p| tokio::spawn(produce(batcher.clone(), p * 1_000_000, 200, p == 1)))
            .collect();
        for _ in 0..(round % 5) {
            tokio::task::yield_now().await;
        }
        let report = guard(
            "batcher shutdown",
            batcher.shutdown(Duration::from_secs(10)),
        )
        .await;
        let mut accepted = Vec::new();
        for p in producers {
            let acc = p.await.unwrap();
            accepted.extend(acc.accepted);
        }
        let flushed = flushed.lock().unwrap().clone();
        let hooked = hooked.lock().unwrap().clone();
        let unflushed = report.unflushed().to_vec();
        assert_eq!(
            report.accepted(),
            accepted.len() as u64,
            "round {round}: {report}"
        );
        assert_eq!(
            report.flushed_items(),
            flushed.len() as u64,
            "round {round}"
        );
        assert_eq!(report.failed_items(), hooked.len() as u64, "round {round}");
        assert_eq!(report.unknown_items(), 0, "round {round}: {report}");
        let mut all: Vec<u64> = flushed
            .iter()
            .chain(&hooked)
            .chain(&unflushed)
            .copied()
            .collect();
        all.sort();
        let mut acc_sorted = accepted.clone();
        acc_sorted.sort();
        assert_eq!(
            all, acc_sorted,
            "round {round}: accepted vs flushed+failed+unflushed ({report})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_batcher_try_push_from_threads_vs_shutdown() {
    for round in 0..300u64 {
        let flushed = Arc::new(Mutex::new(Vec::<u64>::new()));
        let f = Arc::clone(&flushed);
        let batcher = Batcher::builder()
            .max_items(3)
            .max_delay(ms(1))
            .max_in_flight(1)
            .capacity(1000)
            .build(move |items: Vec<u64>| {
                f.lock().unwrap().extend(&items);
                async { Ok::<(), FlushError<u64, String>>(()) }
            })
            .unwrap();
        let start = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..2u64)
            .map(|t| {
                let b = batcher.clone();
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let mut ok = Vec::new();
                    for i in 0..300 {
                        let item = t * 1_000_000 + i;
                        match b.try_push(item) {
                            Ok(()) => ok.push(item),
                            Err(e) => {
                                assert!(e.is_closed() || e.is_full());
                                assert_eq!(e.into_inner(), item);
                            }
                        }
                    }
                    ok
                })
            })
            .collect();
        start.wait();
        let report = guard("shutdown", batcher.shutdown(Duration::from_secs(10))).await;
        let mut accepted: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        accepted.sort();
        let mut got: Vec<u64> = flushed.lock().unwrap().clone();
        got.extend(report.unflushed());
        got.sort();
        assert_eq!(
            report.accepted(),
            accepted.len() as u64,
            "round {round}: {report}"
        );
        assert_eq!(got, accepted, "round {round}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_batcher_flush_waits_for_everything_pushed_before() {
    for round in 0..300u64 {
        let flushed = Arc::new(Mutex::new(HashSet::<u64>::new()));
        let f = Arc::clone(&flushed);
        let batcher = Batcher::builder()
            .max_items(5)
            .max_delay(Duration::from_secs(3600))
            .max_in_flight(2)
            .build(move |items: Vec<u64>| {
                let f = Arc::clone(&f);
                async move {
                    tokio::task::yield_now().await;
                    f.lock().unwrap().extend(items);
                    Ok::<(), FlushError<u64, String>>(())
                }
            })
            .unwrap();
        let done = Arc::new(AtomicU64::new(0));
        let producer = tokio::spawn({
            let b = batcher.clone();
            let done = Arc::clone(&done);
            async move {
                for i in 0..200u64 {
                    b.push(i).await.unwrap();
                    done.store(i + 1, SeqCst);
                    if i % 5 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        for _ in 0..(round % 7) {
            tokio::task::yield_now().await;
        }
        let before = done.load(SeqCst);
        guard("flush", batcher.flush()).await;
        {
            let f = flushed.lock().unwrap();
            for i in 0..before {
                assert!(
                    f.contains(&i),
                    "round {round}: item {i} pushed before flush() but not flushed when it returned"
                );
            }
        }
        producer.await.unwrap();
        let report = guard("shutdown", batcher.shutdown(Duration::from_secs(10))).await;
        assert!(report.is_complete(), "round {round}: {report}");
        assert_eq!(flushed.lock().unwrap().len(), 200);
    }
}

// ===========================================================================
// Edges and races: grace periods, concurrent shutdowns, moved deadlines

#[tokio::test(start_paused = true)]
async fn batcher_flush_ending_exactly_at_grace_counted_once() {
    for extra in [0u64, 1] {
        let flushed = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&flushed);
        let batcher = Batcher::builder()
            .max_items(2)
            .max_in_flight(1)
            .build(move |items: Vec<u32>| {
                let f = Arc::clone(&f);
                async move {
                    time::sleep(ms(1000 + extra)).await;
                    f.fetch_add(items.len() as u64, SeqCst);
                    Ok::<(), FlushError<u32, String>>(())
                }
            })
            .unwrap();
        for i in 0..6 {
            batcher.push(i).await.unwrap();
        }
        let report = batcher.shutdown(ms(1000)).await;
        let accounted = report.flushed_items()
            + report.failed_items()
            + report.unknown_items()
            + report.unflushed().len() as u64;
        assert_eq!(accounted, report.accepted(), "extra {extra}: {report}");
        assert_eq!(report.accepted(), 6);
        assert_eq!(report.elapsed(), ms(1000));
        assert_eq!(
            report.flushed_items(),
            flushed.load(SeqCst).min(report.flushed_items())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn batcher_second_shutdown_counts_again_hands_back_nothing() {
    let batcher = Batcher::builder()
        .max_items(2)
        .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
        .unwrap();
    for i in 0..5 {
        batcher.push(i).await.unwrap();
    }
    let first = batcher.shutdown(ms(10)).await;
    assert_eq!(first.unflushed(), [2, 3, 4]);
    assert_eq!(first.abandoned_items(), 2);
    let second = batcher.shutdown(ms(10)).await;
    assert_eq!(second.accepted(), 5);
    assert!(second.unflushed().is_empty());
    assert!(second.abandoned().is_empty(), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_batcher_short_grace_everything_accounted() {
    // Flushes that sometimes hang, a grace that runs out while producers push:
    // flushed + failed + unknown + unflushed == accepted, and every item seen
    // by the sink is either flushed or in an abandoned flush.
    for round in 0..200u64 {
        let sunk = Arc::new(Mutex::new(Vec::<u64>::new()));
        let s = Arc::clone(&sunk);
        let batcher = Batcher::builder()
            .max_items(3)
            .max_delay(ms(1))
            .max_in_flight(2)
            .capacity(6)
            .build(move |items: Vec<u64>| {
                let s = Arc::clone(&s);
                async move {
                    if items[0] % 5 == 0 {
                        std::future::pending::<()>().await;
                    }
                    tokio::task::yield_now().await;
                    s.lock().unwrap().extend(&items);
                    if items[0] % 7 == 0 {
                        return Err(FlushError::new(items, "x".to_string()));
                    }
                    Ok(())
                }
            })
            .unwrap();
        let producers: Vec<_> = (0..2u64)
            .map(|p| tokio::spawn(produce(batcher.clone(), p * 1_000_000, 100, p == 0)))
            .collect();
        for _ in 0..(round % 4) {
            tokio::task::yield_now().await;
        }
        let report = guard("shutdown", batcher.shutdown(ms(2))).await;
        let mut accepted = 0;
        for p in producers {
            accepted += p.await.unwrap().accepted.len() as u64;
        }
        assert_eq!(report.accepted(), accepted, "round {round}: {report}");
        let accounted = report.flushed_items()
            + report.failed_items()
            + report.unknown_items()
            + report.unflushed().len() as u64;
        assert_eq!(accounted, accepted, "round {round}: {report}");
        let kept: u64 = report.failed().iter().map(|f| f.items().len() as u64).sum();
        assert_eq!(
            kept,
            report.failed_items(),
            "round {round}: failed items without a hook are kept"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn batched_due_batch_takes_what_is_ready() {
    // "a batch that fell due while the consumer was away takes what the source
    // has ready (up to max_items) before it is yielded"
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let mut b = pin!(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).batched(3, ms(100)));
    tx.send(1).unwrap();
    let (w, _c) = count_waker();
    assert!(futures::Stream::poll_next(b.as_mut(), &mut Context::from_waker(&w)).is_pending());
    time::sleep(Duration::from_secs(1)).await;
    for i in 2..=5 {
        tx.send(i).unwrap();
    }
    assert_eq!(b.next().await, Some(vec![1, 2, 3]));
    // 4 and 5 start a new batch, due 100 ms after 4 was gathered.
    let t = Instant::now();
    assert_eq!(b.next().await, Some(vec![4, 5]));
    assert!(t.elapsed() <= ms(100), "{:?}", t.elapsed());
}

#[tokio::test(start_paused = true)]
async fn batched_never_polls_source_after_end() {
    struct Once(bool);
    impl futures::Stream for Once {
        type Item = u8;
        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u8>> {
            match self.0 {
                false => {
                    self.0 = true;
                    Poll::Ready(Some(1))
                }
                true => Poll::Ready(None),
            }
        }
    }
    struct PanicAfterEnd(Once, bool);
    impl futures::Stream for PanicAfterEnd {
        type Item = u8;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u8>> {
            assert!(!self.1, "polled after it ended");
            let r = Pin::new(&mut self.0).poll_next(cx);
            if let Poll::Ready(None) = r {
                self.1 = true;
            }
            r
        }
    }
    let mut b = pin!(PanicAfterEnd(Once(false), false).batched(10, ms(5)));
    assert_eq!(b.next().await, Some(vec![1]));
    assert_eq!(b.next().await, None);
    assert_eq!(b.next().await, None);
    let mut w = pin!(PanicAfterEnd(Once(false), false).idle_timeout(ms(5)));
    assert_eq!(w.next().await, Some(Ok(1)));
    assert_eq!(w.next().await, None);
    assert_eq!(w.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_spurious_wakes_add_up() {
    // A source that wakes every 30 ms without an item: "the waits of a source
    // that wakes without yielding an item add up".
    let start = Instant::now();
    let mut sleep = Box::pin(time::sleep(ms(30)));
    let src = futures::stream::poll_fn(move |cx| {
        if sleep.as_mut().poll(cx).is_ready() {
            sleep.as_mut().reset(Instant::now() + ms(30));
            cx.waker().wake_by_ref();
        }
        Poll::<Option<u8>>::Pending
    });
    let mut s = pin!(src.idle_timeout(ms(100)));
    let stalled = s.next().await.unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert!(
        start.elapsed() <= ms(130),
        "stalled after {:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn watchdog_min_rate_too_slow() {
    // One item every 400 ms, at least 3 per second required.
    let src = futures::stream::iter(0..100u32).then(|n| async move {
        time::sleep(ms(400)).await;
        n
    });
    let mut s = pin!(src.watchdog(Limits::new().min_rate(3, Duration::from_secs(1))));
    let mut n = 0;
    let stalled = loop {
        match s.next().await.unwrap() {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(stalled.kind(), StallKind::TooSlow);
    assert!(n <= 3, "{n} items before the stall");
    assert_eq!(s.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn watchdog_set_limits_counts_the_wait_so_far() {
    let src = futures::stream::pending::<u8>();
    let mut s = Box::pin(src.idle_timeout(Duration::from_secs(100)));
    let (w, _) = count_waker();
    assert!(futures::Stream::poll_next(s.as_mut(), &mut Context::from_waker(&w)).is_pending());
    time::advance(Duration::from_secs(30)).await;
    s.as_mut()
        .set_limits(Limits::new().idle(Duration::from_secs(10)));
    let t = Instant::now();
    let stalled = s.next().await.unwrap().unwrap_err();
    assert_eq!(
        t.elapsed(),
        Duration::ZERO,
        "30 s waited > the new 10 s limit"
    );
    assert_eq!(stalled.limit(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn scope_set_deadline_later_and_earlier_with_waiters() {
    let start = Instant::now();
    let job = CancelScope::new().with_timeout(Duration::from_secs(10));
    let step = job.child();
    let w = tokio::spawn({
        let step = step.clone();
        async move {
            let r = std::future::pending::<()>().within(&step).await;
            (Instant::now(), r)
        }
    });
    tokio::task::yield_now().await;
    assert!(job.set_deadline(start + Duration::from_secs(20)));
    time::sleep(Duration::from_secs(15)).await;
    assert!(!w.is_finished(), "the waiter saw the deadline move later");
    assert!(job.set_deadline(start + Duration::from_secs(16)));
    let (at, r) = w.await.unwrap();
    assert_eq!(at, start + Duration::from_secs(16));
    assert_eq!(r.unwrap_err().cause(), Cause::InheritedDeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn scope_first_interrupt_wins() {
    let scope = CancelScope::new().with_timeout(ms(100));
    let child = scope.child();
    child.cancel_with("first");
    time::sleep(ms(200)).await;
    let why = child.check().unwrap_err();
    assert_eq!(why.cause(), Cause::Cancelled);
    assert_eq!(why.reason(), Some("first"));
    let why = scope.check().unwrap_err();
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
    scope.cancel_with("too late");
    assert_eq!(scope.check().unwrap_err().cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn scope_within_current_in_spawned_task_has_no_scope() {
    let set = TaskSet::new();
    let scope = CancelScope::new();
    scope.cancel();
    let h = scope
        .enter(async {
            set.spawn_with_handle("t", async {
                (
                    CancelScope::current().is_none(),
                    async { 5 }.within_current().await,
                )
            })
        })
        .await
        .unwrap();
    assert_eq!(h.await.unwrap(), (true, Ok(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_deadline_vs_cancel_cause_consistent() {
    // A deadline firing while another thread cancels: every scope in the tree
    // reports the same first interrupt, and waiters agree with check().
    for round in 0..300 {
        let root = CancelScope::new().with_timeout(ms(1));
        let child = root.child();
        let waiter = tokio::spawn({
            let child = child.clone();
            async move {
                std::future::pending::<()>()
                    .within(&child)
                    .await
                    .unwrap_err()
            }
        });
        let r = root.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::yield_now();
            r.cancel();
        });
        let got = guard("waiter", waiter).await.unwrap();
        canceller.join().unwrap();
        let root_cause = root.check().unwrap_err().cause();
        let child_cause = child.check().unwrap_err().cause();
        match root_cause {
            Cause::Cancelled => assert_eq!(child_cause, Cause::Cancelled, "round {round}"),
            Cause::DeadlineExceeded => {
                assert_eq!(
                    child_cause,
                    Cause::InheritedDeadlineExceeded,
                    "round {round}"
                )
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(
            got.cause(),
            child_cause,
            "round {round}: waiter and check disagree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_concurrent_shutdowns_abort_each_task_once() {
    for round in 0..300 {
        let set = TaskSet::builder().abort_wait(ms(500)).build();
        for i in 0..20 {
            if i % 2 == 0 {
                set.spawn("forever", std::future::pending::<()>()).unwrap();
            } else {
                set.spawn("quick", tokio::task::yield_now()).unwrap();
            }
        }
        let a = tokio::spawn({
            let set = set.clone();
            async move { set.shutdown(Duration::ZERO).await }
        });
        let b = tokio::spawn({
            let set = set.clone();
            async move { set.shutdown(Duration::ZERO).await }
        });
        let ra = guard("a", a).await.unwrap();
        let rb = guard("b", b).await.unwrap();
        let ids_a: HashSet<_> = ra.aborted().iter().map(|t| t.id()).collect();
        let ids_b: HashSet<_> = rb.aborted().iter().map(|t| t.id()).collect();
        assert!(
            ids_a.is_disjoint(&ids_b),
            "round {round}: both reports aborted {:?}",
            ids_a.intersection(&ids_b).collect::<Vec<_>>()
        );
        let c = set.counts();
        assert_eq!(c.spawned, 20);
        assert_eq!(c.completed + c.aborted, 20, "round {round}: {c:?}");
        assert_eq!(
            c.aborted,
            (ids_a.len() + ids_b.len()) as u64,
            "round {round}: {ra}\n{rb}"
        );
        assert!(set.is_empty(), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_child_set_created_during_shutdown() {
    for round in 0..300 {
        let parent = TaskSet::builder().abort_wait(ms(500)).build();
        let maker = tokio::spawn({
            let parent = parent.clone();
            async move {
                let mut ok = 0u64;
                let mut children = Vec::new();
                for i in 0..50 {
                    let child = parent.child(format!("c{i}"));
                    match child.spawn("w", std::future::pending::<()>()) {
                        Ok(_) => ok += 1,
                        Err(r) => assert!(r.is_shut_down()),
                    }
                    children.push(child);
                    if i % 5 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (ok, children)
            }
        });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let report = guard("shutdown", parent.shutdown(Duration::ZERO)).await;
        let (ok, children) = maker.await.unwrap();
        let listed = report.aborted().len() + report.unresponsive().len();
        assert_eq!(report.counts().spawned, ok, "round {round}: {report}");
        assert_eq!(
            listed as u64 + report.completed(),
            ok,
            "round {round}: {report}"
        );
        for c in &children {
            assert!(c.is_empty() || c.running().iter().all(|t| t.label() == "w"));
        }
        let left: usize = children.iter().map(|c| c.len()).sum();
        assert_eq!(
            left,
            report.unresponsive().len(),
            "round {round}: a child's task outlived its parent's shutdown"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tasks_first_failure_and_cancel_token_policy_with_panic() {
    let set = TaskSet::builder()
        .failure_policy(hangfree::FailurePolicy::CancelToken)
        .build();
    let token = set.token();
    set.spawn("waits", async move { token.cancelled().await })
        .unwrap();
    set.spawn("panics", async {
        time::sleep(ms(5)).await;
        if true {
            panic!("kaput")
        }
    })
    .unwrap();
    let f = set.first_failure().await.unwrap();
    assert_eq!(f.kind(), FailureKind::Panic);
    assert_eq!(f.message(), "kaput");
    assert!(set.token().is_cancelled());
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.completed(), report.panicked()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn tasks_first_failure_none_when_shut_down_cleanly() {
    let set = TaskSet::new();
    set.spawn("ok", async {}).unwrap();
    let ff = tokio::spawn({
        let set = set.clone();
        async move { set.first_failure().await }
    });
    tokio::task::yield_now().await;
    set.shutdown(Duration::from_secs(1)).await;
    let r = guard("first_failure", ff).await.unwrap();
    assert!(r.is_none());
}

#[test]
fn tasks_of_a_dropped_multi_thread_runtime_count_as_aborted() {
    let set = TaskSet::new();
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..50 {
                set.spawn("pending", std::future::pending::<()>()).unwrap();
            }
        });
    }
    assert_eq!(set.len(), 0, "{:?}", set.running());
    assert_eq!(set.counts().aborted, 50);
}

// ===========================================================================
// Hooks and max_in_flight

#[tokio::test(start_paused = true)]
async fn scope_hook_outlives_its_scope_handle() {
    let parent = CancelScope::new();
    let child = parent.child();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let hook = child.on_interrupt(move |_| {
        r.fetch_add(1, SeqCst);
    });
    drop(child);
    parent.cancel();
    assert_eq!(ran.load(SeqCst), 1);
    drop(hook);
    assert_eq!(ran.load(SeqCst), 1);

    // A deadline hook whose scope handle is gone still fires at the deadline.
    let start = Instant::now();
    let ran = Arc::new(Mutex::new(None));
    let r = Arc::clone(&ran);
    let scope = CancelScope::new().with_timeout(Duration::from_secs(3));
    let hook = scope.on_interrupt(move |why| {
        *r.lock().unwrap() = Some((Instant::now(), why.cause()));
    });
    drop(scope);
    time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        *ran.lock().unwrap(),
        Some((start + Duration::from_secs(3), Cause::DeadlineExceeded))
    );
    drop(hook);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_hook_guard_drop_vs_cancel() {
    // "What the cancel owes the child (its interrupt hooks) is owed from the
    // moment the parent reads cancelled"
    let mut seen_then_lost = 0;
    for round in 0..2000 {
        let root = CancelScope::new();
        let leaf = root.child().child();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        let hook = leaf.on_interrupt(move |_| {
            r.fetch_add(1, SeqCst);
        });
        let dropper = racing({
            let root = root.clone();
            move || {
                let saw = root.is_cancelled();
                drop(hook);
                saw
            }
        });
        root.cancel();
        let saw = dropper.join().unwrap();
        let n = ran.load(SeqCst);
        assert!(n <= 1, "round {round}: hook ran {n} times");
        if saw && n == 0 {
            seen_then_lost += 1;
        }
    }
    assert_eq!(
        seen_then_lost, 0,
        "hooks lost after the parent read cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn tasks_max_in_flight_abort_queued_and_running_frees_slots() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let a = set
        .spawn_with_handle("a", std::future::pending::<()>())
        .unwrap();
    let started_b = Arc::new(AtomicBool::new(false));
    let sb = Arc::clone(&started_b);
    let b = set
        .spawn_with_handle("b", async move {
            sb.store(true, SeqCst);
        })
        .unwrap();
    tokio::task::yield_now().await;
    assert!(!started_b.load(SeqCst));
    b.abort();
    assert!(b.await.unwrap_err().is_aborted());
    assert!(!started_b.load(SeqCst));
    a.abort();
    assert!(a.await.unwrap_err().is_aborted());
    let c = set.spawn_with_handle("c", async { 3 }).unwrap();
    assert_eq!(guard("c", c).await, Ok(3));
    let counts = set.counts();
    assert_eq!((counts.aborted, counts.completed), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn tasks_max_in_flight_queued_start_in_order_after_abort() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let order = Arc::new(Mutex::new(Vec::new()));
    let a = set
        .spawn_with_handle("a", std::future::pending::<()>())
        .unwrap();
    for i in 0..5 {
        let order = Arc::clone(&order);
        set.spawn("q", async move {
            order.lock().unwrap().push(i);
            time::sleep(ms(1)).await;
        })
        .unwrap();
    }
    a.abort();
    set.wait_idle().await;
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn tasks_spawn_waiting_rejected_on_close() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("busy", std::future::pending::<()>()).unwrap();
    let s2 = set.clone();
    let waiting = tokio::spawn(async move {
        s2.spawn_waiting("w", async {})
            .await
            .map(|_| ())
            .map_err(|r| r.is_shut_down())
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    set.close();
    let r = guard("spawn_waiting", waiting).await.unwrap();
    assert_eq!(r, Err(false), "rejected, not shut down");
    // reserve on a closed set is rejected and counted.
    assert!(set.reserve().await.is_err());
    assert_eq!(set.counts().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn tasks_permit_spawn_after_close_rejected() {
    let set = TaskSet::builder().max_in_flight(2).build();
    let permit = set.reserve().await.unwrap();
    set.close();
    assert!(permit.spawn("p", async {}).is_err());
    assert_eq!(set.len(), 0);
    set.reopen();
    // The slot is free again.
    let p1 = set.reserve().await.unwrap();
    let p2 = set.reserve().await.unwrap();
    p1.spawn("x", std::future::pending::<()>()).unwrap();
    p2.spawn("y", std::future::pending::<()>()).unwrap();
    let r = time::timeout(Duration::from_secs(1), set.reserve()).await;
    assert!(r.is_err(), "only two slots");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_max_in_flight_bound_holds() {
    for round in 0..50 {
        let set = TaskSet::builder().max_in_flight(3).build();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..200 {
            let running = Arc::clone(&running);
            let peak = Arc::clone(&peak);
            let fut = async move {
                struct Leave(Arc<AtomicUsize>);
                impl Drop for Leave {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, SeqCst);
                    }
                }
                let now = running.fetch_add(1, SeqCst) + 1;
                let _leave = Leave(running);
                peak.fetch_max(now, SeqCst);
                tokio::task::yield_now().await;
            };
            if i % 3 == 0 {
                handles.push(set.spawn_with_handle("h", fut).unwrap());
            } else if i % 3 == 1 {
                set.spawn("s", fut).unwrap();
            } else {
                set.spawn_waiting("w", fut).await.unwrap();
            }
            if i % 17 == 0 {
                if let Some(h) = handles.pop() {
                    h.abort();
                }
            }
        }
        let report = guard("shutdown", set.shutdown(Duration::from_secs(10))).await;
        assert!(
            peak.load(SeqCst) <= 3,
            "round {round}: {} ran at once",
            peak.load(SeqCst)
        );
        let c = report.counts();
        assert_eq!(c.completed + c.aborted, 200, "round {round}: {report}");
        assert_eq!(running.load(SeqCst), 0);
    }
}

// ===========================================================================
// Deadman, shields, limits at the edges

#[tokio::test(start_paused = true)]
async fn deadman_beats_keep_work_alive_and_silence_stalls() {
    let start = Instant::now();
    let (pulse, dm) = hangfree::deadman(Duration::from_secs(30));
    let p = pulse.clone();
    let r = dm
        .watch(async move {
            for _ in 0..5 {
                time::sleep(Duration::from_secs(29)).await;
                p.beat();
            }
            std::future::pending::<()>().await;
        })
        .await;
    let stalled = r.unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(start.elapsed(), Duration::from_secs(5 * 29 + 30));
    assert_eq!(pulse.beats(), 5);
}

#[tokio::test(start_paused = true)]
async fn deadman_beat_before_first_poll_counts_from_then() {
    let (pulse, dm) = hangfree::deadman(Duration::from_secs(30));
    pulse.beat();
    time::sleep(Duration::from_secs(100)).await;
    let start = Instant::now();
    let r = dm.watch(std::future::pending::<()>()).await;
    assert!(r.is_err());
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn deadman_beat_from_other_task_at_the_last_moment() {
    let start = Instant::now();
    let (pulse, dm) = hangfree::deadman(Duration::from_secs(10));
    tokio::spawn(async move {
        time::sleep(ms(9_999)).await;
        pulse.beat();
        time::sleep(ms(9_999)).await;
        pulse.beat();
    });
    let r = dm.watch(std::future::pending::<()>()).await;
    assert!(r.is_err());
    assert_eq!(start.elapsed(), ms(9_999 * 2 + 10_000));
}

#[tokio::test(start_paused = true)]
async fn scope_shield_grace_after_cancel_and_after_deadline() {
    let start = Instant::now();
    let job = CancelScope::new().with_timeout(Duration::from_secs(10));
    let flush = job.shield(Duration::from_secs(5));
    assert_eq!(flush.deadline(), Some(start + Duration::from_secs(15)));
    let why = std::future::pending::<()>()
        .within(&flush)
        .await
        .unwrap_err();
    assert_eq!(why.cause(), Cause::GraceExceeded);
    assert_eq!(start.elapsed(), Duration::from_secs(15));

    // shield called after the interrupt: the grace started at the interrupt.
    let job = CancelScope::new();
    job.cancel();
    let t = Instant::now();
    time::sleep(Duration::from_secs(3)).await;
    let late = job.shield(Duration::from_secs(5));
    assert!(late.check().is_ok());
    let _ = std::future::pending::<()>()
        .within(&late)
        .await
        .unwrap_err();
    assert_eq!(t.elapsed(), Duration::from_secs(5));

    // cancelling the shield itself interrupts it at once
    let job = CancelScope::new();
    let s = job.shield(Duration::from_secs(5));
    s.child().cancel();
    assert!(!s.is_cancelled());
    s.cancel();
    assert_eq!(s.check().unwrap_err().cause(), Cause::Cancelled);
    assert!(!job.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn scope_timeouts_at_the_edges() {
    let s = CancelScope::new().with_timeout(Duration::MAX);
    assert_eq!(s.deadline(), None);
    assert!(async { 1 }.within(&s).await.is_ok());
    let s = CancelScope::new().with_timeout(Duration::ZERO);
    assert!(s.check().is_err());
    assert!(async { 1 }.within(&s).await.is_err());
    let past = Instant::now();
    time::sleep(ms(1)).await;
    let s = CancelScope::new().with_deadline(past);
    assert!(
        s.is_cancelled(),
        "a deadline in the past interrupts at once"
    );
    assert_eq!(s.check().unwrap_err().cause(), Cause::DeadlineExceeded);
    let io: std::io::Error = s.check().unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    let c = CancelScope::new();
    c.cancel();
    let io: std::io::Error = c.check().unwrap_err().into();
    assert_ne!(io.kind(), std::io::ErrorKind::Interrupted);
}

#[tokio::test(start_paused = true)]
async fn batched_by_margin_max_is_due_at_once() {
    let far = Instant::now() + Duration::from_secs(3600);
    let src = futures::stream::iter([(1, far)]).chain(futures::stream::pending());
    let mut b = pin!(src.batched_by(10, Duration::from_secs(60), Duration::MAX));
    let t = Instant::now();
    assert_eq!(b.next().await, Some(vec![1]));
    assert_eq!(t.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn batcher_push_by_past_deadline_while_slot_busy_flushes_when_free() {
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let batcher = Batcher::builder()
        .max_items(10)
        .max_delay(Duration::from_secs(60))
        .max_in_flight(1)
        .build(move |items: Vec<u32>| {
            s.lock().unwrap().push((start.elapsed(), items.clone()));
            async move {
                if items[0] == 0 {
                    time::sleep(Duration::from_secs(2)).await;
                }
                Ok::<(), FlushError<u32, String>>(())
            }
        })
        .unwrap();
    batcher.push_by(0, start).await.unwrap();
    tokio::task::yield_now().await;
    batcher.push_by(1, start).await.unwrap();
    time::sleep(Duration::from_secs(3)).await;
    let s = seen.lock().unwrap().clone();
    assert_eq!(
        s,
        [(Duration::ZERO, vec![0]), (Duration::from_secs(2), vec![1])]
    );
}

#[tokio::test(start_paused = true)]
async fn batcher_max_delay_max_flushes_only_full_or_on_shutdown() {
    let (b, seen) = recording_batcher(3, Duration::MAX, Duration::ZERO);
    b.push(1).await.unwrap();
    time::sleep(Duration::from_secs(1_000_000)).await;
    assert!(seen.lock().unwrap().is_empty());
    let r = b.shutdown(Duration::from_secs(1)).await;
    assert!(r.is_complete(), "{r}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn tasks_tracked_future_never_aborted_listed_unresponsive() {
    let set = TaskSet::new();
    let tracked = set
        .track("polled by me", std::future::pending::<()>())
        .unwrap();
    let report = set.shutdown(ms(10)).await;
    assert_eq!(report.unresponsive().len(), 1);
    assert!(report.unresponsive()[0].is_tracked_future());
    assert!(report.aborted().is_empty());
    assert_eq!(set.len(), 1);
    drop(tracked);
    assert_eq!(set.len(), 0);
    assert_eq!(set.counts().aborted, 1);
}

#[tokio::test(start_paused = true)]
async fn tasks_child_sets_reported_with_parent() {
    let service = TaskSet::new();
    let consumer = service.child("consumer");
    let handlers = consumer.child("handlers");
    handlers.spawn("msg", std::future::pending::<()>()).unwrap();
    consumer.spawn("loop", async { Err::<(), _>("x") }).unwrap();
    service.spawn("top", async {}).unwrap();
    tokio::task::yield_now().await;
    let report = service.shutdown(ms(5)).await;
    assert_eq!(report.completed(), 1);
    assert_eq!(report.failed(), 1);
    assert_eq!(report.aborted().len(), 1);
    assert_eq!(report.aborted()[0].path(), "consumer/handlers");
    assert!(handlers.is_closed() && consumer.is_closed());
    assert!(handlers.spawn("late", async {}).is_err());
}

#[tokio::test(start_paused = true)]
async fn tasks_shutdown_grace_max_waits_for_everything() {
    let set = TaskSet::new();
    set.spawn("long", time::sleep(Duration::from_secs(7200)))
        .unwrap();
    let r = set.shutdown(Duration::MAX).await;
    assert_eq!(r.completed(), 1);
    assert_eq!(r.elapsed(), Duration::from_secs(7200));
}

// ===========================================================================
// Ordering races and the sink

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_scope_completion_before_cancel_always_wins_once_started() {
    // "Once started, the inner future is always polled before the scope is
    // checked": once the guarded receiver's poll has returned Pending, a value
    // sent strictly before the cancel (on one thread) must come out as Ok.
    //
    // (A first version set its flag inside the inner future's poll, before the
    // `Within` had returned Pending: the send could then land between the inner
    // Pending and the scope check, and `Err` was right. That was a test race,
    // not a bug. Here the flag is set only once `Within::poll` returned.)
    for round in 0..3000u32 {
        let scope = CancelScope::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let parked = Arc::new(AtomicBool::new(false));
        let pk = Arc::clone(&parked);
        let task = tokio::spawn({
            let scope = scope.clone();
            async move {
                let mut guarded = pin!(async move { rx.await.unwrap() }.within(&scope));
                std::future::poll_fn(|cx| match guarded.as_mut().poll(cx) {
                    Poll::Pending => {
                        pk.store(true, SeqCst);
                        Poll::Pending
                    }
                    ready => ready,
                })
                .await
            }
        });
        guard("park", async {
            while !parked.load(SeqCst) {
                tokio::task::yield_now().await;
            }
        })
        .await;
        let s = scope.clone();
        let t = std::thread::spawn(move || {
            tx.send(round).unwrap();
            s.cancel();
        });
        let r = guard("guarded", task).await.unwrap();
        t.join().unwrap();
        assert_eq!(
            r,
            Ok(round),
            "round {round}: sent before the cancel, yet interrupted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_tasks_handle_within_scope_task_never_lost() {
    // The wait for a task is guarded; the task itself is never lost: the set
    // counts it whatever the waiter saw.
    for round in 0..500 {
        let set = TaskSet::new();
        let scope = CancelScope::new();
        let h = set
            .spawn_with_handle("w", async {
                tokio::task::yield_now().await;
                1
            })
            .unwrap();
        let s = scope.clone();
        let t = std::thread::spawn(move || s.cancel());
        let r = guard("wait", h.within(&scope)).await;
        t.join().unwrap();
        if let Ok(inner) = r {
            assert_eq!(inner, Ok(1));
        }
        let report = guard("shutdown", set.shutdown(Duration::from_secs(10))).await;
        assert_eq!(report.completed(), 1, "round {round}: {report}");
    }
}

#[cfg(feature = "sink")]
#[tokio::test(start_paused = true)]
async fn batch_sink_forward_accounts_everything() {
    use futures::SinkExt as _;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let batcher = Batcher::builder()
        .max_items(7)
        .capacity(7)
        .build(move |items: Vec<u32>| {
            s.lock().unwrap().extend(items);
            async { Ok::<(), FlushError<u32, String>>(()) }
        })
        .unwrap();
    let mut sink = batcher.sink();
    futures::stream::iter(0..100u32)
        .map(Ok)
        .forward(&mut sink)
        .await
        .unwrap();
    let report = sink.into_report().expect("closed by forward");
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.accepted(), 100);
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
    assert!(batcher.is_closed());
    let mut sink2 = batcher.sink();
    let err = sink2.send(5).await.unwrap_err();
    assert_eq!(err.into_inner(), 5);
}

#[tokio::test(start_paused = true)]
async fn batcher_capacity_counts_only_items_not_yet_handed_to_a_flush() {
    let batcher = Batcher::builder()
        .capacity(1)
        .max_items(1)
        .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
        .unwrap();
    batcher.push(1).await.unwrap();
    // 1 goes to the flush, which never ends: it no longer counts, so 2 finds room.
    let mut push = batcher.push(2);
    tokio::select! {
        pushed = &mut push => pushed.unwrap(),
        () = time::sleep(Duration::from_secs(1)) => panic!("no room for 2: {:?}", push.into_item()),
    }
    assert_eq!(batcher.pending(), 1);
    assert_eq!(batcher.in_flight(), 1);
    let report = batcher.shutdown(Duration::ZERO).await;
    assert_eq!(report.accepted(), 2);
    assert_eq!(report.unflushed(), [2]);
}
