//! `CancelScope::set_deadline`: moving a live scope's deadline, later or earlier, with
//! what its children asked for remembered, and while guarded futures are waiting.

#[path = "support/runtime.rs"]
mod runtime;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::time::Instant;
use tokio_test::{assert_pending, assert_ready, task};

const SEC: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// `fut`, failing the test instead of hanging if it is still pending a day on (paused
/// time jumps there at once).
async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    match tokio::time::timeout(24 * HOUR, fut).await {
        Ok(out) => out,
        Err(_) => panic!("still pending a day later: the deadline never fired"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_later_lets_a_waiting_future_run_past_the_old_one() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SEC);
    let mut wait = task::spawn(tokio::time::sleep(3 * SEC).within(&scope));
    assert_pending!(wait.poll());

    assert!(scope.set_deadline(start + 5 * SEC));
    assert_eq!(scope.deadline(), Some(start + 5 * SEC));
    tokio::time::advance(2 * SEC).await;
    assert_pending!(wait.poll(), "the old deadline has passed: it must not fire");
    assert!(scope.check().is_ok());
    tokio::time::advance(SEC).await;
    assert_eq!(assert_ready!(wait.poll()), Ok(()), "the sleep ends first");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_earlier_ends_a_waiting_future_at_the_new_one() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(HOUR);
    let waiter = tokio::spawn(pending::<()>().within(&scope));
    tokio::task::yield_now().await;

    assert!(scope.set_deadline(start + 2 * SEC));
    let why = bounded(waiter).await.unwrap().unwrap_err();
    assert_eq!(Instant::now(), start + 2 * SEC);
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
    assert_eq!(why.deadline_at(), Some(start + 2 * SEC));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_moved_into_the_past_interrupts_at_once() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(HOUR);
    let mut wait = task::spawn(pending::<()>().within(&scope));
    assert_pending!(wait.poll());
    tokio::time::advance(SEC).await;

    assert!(scope.set_deadline(start));
    assert!(wait.is_woken());
    let why = assert_ready!(wait.poll()).unwrap_err();
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
    assert_eq!(why.deadline_at(), Some(start));
    assert_eq!(scope.check().unwrap_err().cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_scope_without_a_deadline_is_given_one_while_a_future_waits_in_it() {
    let start = Instant::now();
    let scope = CancelScope::new();
    let waiter = tokio::spawn(pending::<()>().within(&scope));
    tokio::task::yield_now().await;

    assert!(scope.set_deadline(start + SEC));
    assert_eq!(scope.deadline(), Some(start + SEC));
    let why = bounded(waiter).await.unwrap().unwrap_err();
    assert_eq!(Instant::now(), start + SEC);
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_given_to_a_scope_bounds_the_children_made_afterwards() {
    let start = Instant::now();
    let scope = CancelScope::new();
    assert!(scope.set_deadline(start + SEC));
    let child = scope.child();
    let grandchild = child.child().with_timeout(HOUR);
    assert_eq!(child.deadline(), Some(start + SEC));
    assert_eq!(grandchild.deadline(), Some(start + SEC));

    assert!(scope.set_deadline(start + MINUTE));
    assert_eq!(grandchild.deadline(), Some(start + MINUTE));
    let why = bounded(pending::<()>().within(&grandchild))
        .await
        .unwrap_err();
    assert_eq!(Instant::now(), start + MINUTE);
    assert_eq!(
        why.cause(),
        Cause::InheritedDeadlineExceeded,
        "the scope's deadline, reaching its grandchild"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_gets_what_it_asked_for_no_more_when_its_parent_moves() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(10 * MINUTE);
    let child = parent.child().with_timeout(HOUR);
    let plain = child.child();
    assert_eq!(
        child.deadline(),
        Some(start + 10 * MINUTE),
        "never more than the parent"
    );

    assert!(parent.set_deadline(start + 3 * HOUR));
    assert_eq!(
        child.deadline(),
        Some(start + HOUR),
        "what it asked for, from its creation"
    );
    assert_eq!(plain.deadline(), Some(start + HOUR));

    assert!(parent.set_deadline(start + 5 * MINUTE));
    assert_eq!(child.deadline(), Some(start + 5 * MINUTE));
    assert_eq!(plain.deadline(), Some(start + 5 * MINUTE));
}

#[tokio::test(start_paused = true)]
async fn a_child_waiting_under_a_parent_moved_later_ends_at_its_own_deadline() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(10 * MINUTE);
    let child = parent.child().with_timeout(HOUR);
    let waiter = tokio::spawn(pending::<()>().within(&child));
    tokio::task::yield_now().await;

    assert!(parent.set_deadline(start + 3 * HOUR));
    let why = bounded(waiter).await.unwrap().unwrap_err();
    assert_eq!(Instant::now(), start + HOUR);
    assert_eq!(
        why.cause(),
        Cause::DeadlineExceeded,
        "the child's own deadline"
    );
    assert!(parent.check().is_ok(), "the parent has two hours left");
}

#[tokio::test(start_paused = true)]
async fn a_child_moved_later_than_its_parent_still_ends_with_the_parent() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(MINUTE);
    let child = parent.child().with_timeout(SEC);
    assert!(child.set_deadline(start + HOUR));
    assert_eq!(child.deadline(), Some(start + MINUTE));

    let why = bounded(pending::<()>().within(&child)).await.unwrap_err();
    assert_eq!(Instant::now(), start + MINUTE);
    assert_eq!(why.cause(), Cause::InheritedDeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_is_not_moved_once_the_scope_is_interrupted() {
    let start = Instant::now();
    let cancelled = CancelScope::new().with_timeout(HOUR);
    cancelled.cancel();
    assert!(!cancelled.set_deadline(start + 2 * HOUR));
    assert_eq!(cancelled.deadline(), Some(start + HOUR));
    assert_eq!(cancelled.check().unwrap_err().cause(), Cause::Cancelled);

    let expired = CancelScope::new().with_timeout(SEC);
    tokio::time::advance(2 * SEC).await;
    assert!(expired.check().is_err());
    assert!(!expired.set_deadline(start + HOUR));
    assert_eq!(
        expired.check().unwrap_err().deadline_at(),
        Some(start + SEC)
    );

    let plain = CancelScope::new();
    plain.cancel();
    assert!(!plain.set_deadline(start + HOUR));
    assert_eq!(plain.deadline(), None);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_by_the_clock_is_not_moved_even_before_its_timer_ran() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(SEC);
    // The clock passes the deadline with no timer armed (nothing was polled in it).
    tokio::time::advance(2 * SEC).await;
    assert!(!scope.set_deadline(start + 3 * SEC));
    let why = scope.check().unwrap_err();
    assert_eq!(
        why.deadline_at(),
        Some(start + SEC),
        "the deadline that passed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_scope_without_a_deadline_that_has_children_is_not_given_one() {
    let start = Instant::now();
    let scope = CancelScope::new();
    let child = scope.child();
    assert!(!scope.set_deadline(start + SEC));
    assert_eq!(scope.deadline(), None);
    assert_eq!(child.deadline(), None);
    // Once the child is gone, the scope is childless again.
    drop(child);
    assert!(scope.set_deadline(start + SEC));
    assert_eq!(scope.deadline(), Some(start + SEC));
}

#[tokio::test(start_paused = true)]
async fn a_shields_end_is_not_moved() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(SEC);
    let shield = parent.shield(SEC);
    assert!(!shield.set_deadline(start + HOUR));
    assert_eq!(shield.deadline(), Some(start + 2 * SEC));
}

#[tokio::test(start_paused = true)]
async fn a_shield_follows_its_parents_moved_deadline() {
    let start = Instant::now();
    let parent = CancelScope::new().with_timeout(SEC);
    let shield = parent.shield(SEC);
    assert!(parent.set_deadline(start + 10 * SEC));
    assert_eq!(shield.deadline(), Some(start + 11 * SEC));
    let why = bounded(pending::<()>().within(&shield)).await.unwrap_err();
    assert_eq!(Instant::now(), start + 11 * SEC);
    assert_eq!(why.cause(), Cause::GraceExceeded);
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_hook_runs_at_the_moved_deadline() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(HOUR);
    let ran = Arc::new(AtomicUsize::new(0));
    let _hook = scope.on_interrupt({
        let ran = ran.clone();
        move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert!(scope.set_deadline(start + SEC));
    tokio::time::sleep(SEC).await;
    tokio::task::yield_now().await;
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[test]
fn a_deadline_moved_outside_a_runtime_is_watched_in_real_time() {
    let scope = CancelScope::new().with_timeout(HOUR);
    let started = std::time::Instant::now();
    assert!(scope.set_deadline(Instant::now() + Duration::from_millis(50)));
    while scope.check().is_ok() {
        assert!(
            started.elapsed() < 5 * SEC,
            "the moved deadline never fired"
        );
        std::thread::yield_now();
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(50),
        "fired early: {elapsed:?}"
    );
    assert_eq!(scope.check().unwrap_err().cause(), Cause::DeadlineExceeded);
}

/// Moves the deadline from another thread while tasks on every worker are waiting in the
/// scope and its children: every one of them ends with the moved deadline.
#[test]
fn moving_a_deadline_earlier_while_futures_wait_ends_every_one_of_them() {
    let rt = runtime::two_workers();
    rt.block_on(async {
        for round in 0..200 {
            let scope = CancelScope::new().with_timeout(HOUR);
            let child = scope.child().with_timeout(HOUR);
            let waiters: Vec<_> = (0..16)
                .map(|i| {
                    let s = if i % 2 == 0 {
                        scope.clone()
                    } else {
                        child.clone()
                    };
                    tokio::spawn(async move { pending::<()>().within(&s).await })
                })
                .collect();
            let at = Instant::now() + Duration::from_millis(2);
            let mover = std::thread::spawn({
                let scope = scope.clone();
                move || scope.set_deadline(at)
            });
            assert!(
                mover.join().unwrap(),
                "round {round}: the live scope's deadline moved"
            );
            let bound = tokio::time::timeout(5 * SEC, async {
                for waiter in waiters {
                    let why = waiter.await.unwrap().unwrap_err();
                    assert!(why.is_deadline(), "{why}");
                    assert_eq!(why.deadline_at(), Some(at));
                }
            })
            .await;
            assert!(
                bound.is_ok(),
                "round {round}: a waiter missed the moved deadline"
            );
            assert!(
                Instant::now() >= at,
                "round {round}: ended before the deadline"
            );
        }
    });
}

/// Moves a deadline later just as it falls due, while another thread checks the scope
/// against the clock: either the move wins (it returns `true`, and nothing ends at the
/// old deadline) or the deadline does (it returns `false`, and every waiter ends with the
/// old one). Never a move that returns `true` and an interrupt from the deadline it
/// replaced.
#[test]
fn a_move_racing_the_deadline_it_replaces_either_wins_or_is_refused() {
    let rt = runtime::two_workers();
    let rounds = 400;
    let (mut won, mut lost) = (0, 0);
    rt.block_on(async {
        for round in 0..rounds {
            let old = Instant::now() + Duration::from_millis(1);
            let scope = CancelScope::new().with_deadline(old);
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let s = scope.clone();
                    tokio::spawn(async move { pending::<()>().within(&s).await })
                })
                .collect();
            let new = old + HOUR;
            // The move lands anywhere from 40 µs before the old deadline to 40 µs after.
            let aim = (old - Duration::from_micros(40)).into_std()
                + Duration::from_micros(round % 9 * 10);
            let spin_until = |at: std::time::Instant| {
                while std::time::Instant::now() < at {
                    std::hint::spin_loop();
                }
            };
            let checker = std::thread::spawn({
                let scope = scope.clone();
                move || {
                    spin_until((old - Duration::from_micros(50)).into_std());
                    let end = (old + Duration::from_micros(100)).into_std();
                    while std::time::Instant::now() < end && scope.check().is_ok() {}
                }
            });
            let mover = std::thread::spawn({
                let scope = scope.clone();
                move || {
                    spin_until(aim);
                    scope.set_deadline(new)
                }
            });
            let moved = mover.join().unwrap();
            checker.join().unwrap();
            if moved {
                won += 1;
                // Past the old deadline by the clock, and by any timer armed for it.
                tokio::time::sleep_until(old + Duration::from_millis(3)).await;
                let now = scope.check();
                assert!(
                    now.is_ok(),
                    "round {round}: moved, yet interrupted: {now:?}"
                );
                assert_eq!(scope.deadline(), Some(new));
                assert!(waiters.iter().all(|w| !w.is_finished()), "round {round}");
                scope.cancel();
            } else {
                lost += 1;
                assert_eq!(scope.deadline(), Some(old));
                for waiter in waiters {
                    let why = waiter.await.unwrap().unwrap_err();
                    assert_eq!(why.deadline_at(), Some(old), "round {round}");
                }
            }
        }
    });
    assert_eq!(won + lost, rounds);
}
