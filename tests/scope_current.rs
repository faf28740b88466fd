//! `scope`: the current scope. `enter`, `within` and `run` make a scope current while
//! their inner future is polled; `current()` finds it, and `within_current()` guards by
//! it. Under tokio's paused clock, except where threads are the point.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::FutureExt as _;
use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::task::yield_now;
use tokio::time::{Instant, sleep};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// The name of the current scope, `None` without one.
fn current_name() -> Option<String> {
    CancelScope::current().map(|scope| scope.name().unwrap_or("(unnamed)").to_string())
}

fn named(name: &'static str) -> CancelScope {
    CancelScope::new().with_name(name)
}

#[tokio::test(start_paused = true)]
async fn no_scope_is_current_where_none_was_entered() {
    assert_eq!(current_name(), None);
    let scope = named("request");
    let _not_entered = scope.child();
    sleep(SECOND).await;
    assert_eq!(current_name(), None);
}

#[tokio::test(start_paused = true)]
async fn the_innermost_entered_scope_is_current_and_the_outer_one_again_after_it() {
    let outer = named("outer");
    let inner = outer.child().with_name("inner");
    let seen = outer
        .enter(async {
            let mut seen = vec![current_name()];
            let inside = inner
                .enter(async {
                    let before = current_name();
                    yield_now().await;
                    sleep(SECOND).await;
                    (before, current_name())
                })
                .await;
            seen.push(inside.0);
            seen.push(inside.1);
            seen.push(current_name());
            sleep(SECOND).await;
            seen.push(current_name());
            seen
        })
        .await;
    let names: Vec<Option<&str>> = seen.iter().map(Option::as_deref).collect();
    assert_eq!(
        names,
        [
            Some("outer"),
            Some("inner"),
            Some("inner"),
            Some("outer"),
            Some("outer")
        ]
    );
    assert_eq!(current_name(), None);
}

#[tokio::test(start_paused = true)]
async fn enter_does_not_guard() {
    let scope = CancelScope::new().with_timeout(SECOND);
    scope.cancel();
    let output = scope
        .enter(async {
            sleep(5 * SECOND).await;
            assert!(CancelScope::current().unwrap().is_cancelled());
            "finished"
        })
        .await;
    assert_eq!(output, "finished", "enter ran its future to the end");
}

#[tokio::test(start_paused = true)]
async fn within_and_run_make_the_scope_current_for_the_inner_future() {
    let scope = named("job");
    let within = async {
        yield_now().await;
        current_name()
    }
    .within(&scope)
    .await;
    let run = scope
        .run(async {
            sleep(SECOND).await;
            current_name()
        })
        .await;
    assert_eq!(within.unwrap().as_deref(), Some("job"));
    assert_eq!(run.unwrap().as_deref(), Some("job"));
    assert_eq!(current_name(), None);
}

#[tokio::test(start_paused = true)]
async fn within_current_guards_by_the_scope_current_at_its_first_poll() {
    let start = Instant::now();
    let request = CancelScope::new().with_timeout(2 * SECOND);
    let err = request
        .enter(sleep(60 * SECOND).within_current())
        .await
        .unwrap_err();
    assert_eq!(
        start.elapsed(),
        2 * SECOND,
        "interrupted at the caller's deadline"
    );
    assert_eq!(err.to_string(), "deadline of 2s exceeded");

    // Built with one scope current, first polled with another: the first poll decides.
    let first = named("first").with_timeout(SECOND);
    let second = named("second");
    // The point: the future is made, not awaited, while `first` is current.
    #[allow(clippy::async_yields_async)]
    let guarded = first
        .enter(async { sleep(10 * SECOND).within_current() })
        .await;
    let finished = second.enter(guarded).await;
    assert_eq!(
        finished,
        Ok(()),
        "guarded by `second`, which is never interrupted"
    );
}

#[tokio::test(start_paused = true)]
async fn within_current_keeps_its_scope_current_for_the_inner_future() {
    let scope = named("repository");
    let seen = scope
        .enter(async {
            async {
                yield_now().await;
                current_name()
            }
            .within_current()
            .await
        })
        .await;
    assert_eq!(seen.unwrap().as_deref(), Some("repository"));
}

#[tokio::test(start_paused = true)]
async fn within_current_without_a_current_scope_runs_the_future_as_is() {
    let start = Instant::now();
    let output = async {
        sleep(3600 * SECOND).await;
        7
    }
    .within_current()
    .await;
    assert_eq!(output, Ok(7));
    assert_eq!(start.elapsed(), 3600 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn within_current_in_a_cancelled_scope_never_starts_its_future() {
    let scope = CancelScope::new();
    scope.cancel();
    let mut started = false;
    let result = scope
        .enter(async { async { started = true }.within_current().await })
        .await;
    assert_eq!(result.unwrap_err().cause(), Cause::Cancelled);
    assert!(!started);
}

#[tokio::test(start_paused = true)]
async fn a_task_spawned_inside_an_entered_scope_does_not_inherit_it() {
    let scope = named("request");
    let (inside, spawned) = scope
        .enter(async {
            let spawned = tokio::spawn(async { current_name() });
            (current_name(), spawned.await.unwrap())
        })
        .await;
    assert_eq!(inside.as_deref(), Some("request"));
    assert_eq!(spawned, None, "a spawned task starts with no current scope");
}

#[tokio::test(start_paused = true)]
async fn a_panic_inside_a_poll_restores_the_scope_that_was_current() {
    let outer = named("outer");
    let inner = named("inner");
    let seen = outer
        .enter(async {
            let entered = std::panic::AssertUnwindSafe(inner.enter(async {
                yield_now().await;
                panic!("a handler bug");
            }))
            .catch_unwind()
            .await;
            assert!(entered.is_err());
            let guarded = std::panic::AssertUnwindSafe(
                async {
                    sleep(SECOND).await;
                    panic!("a handler bug");
                }
                .within(&inner),
            )
            .catch_unwind()
            .await;
            assert!(guarded.is_err());
            current_name()
        })
        .await;
    assert_eq!(seen.as_deref(), Some("outer"));
    assert_eq!(current_name(), None);
}

/// Polls `fut` once on this thread with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn a_future_moved_to_another_thread_takes_its_scope_and_leaves_none_behind() {
    let scope = named("moving");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut polls = 0;
    let record = seen.clone();
    let mut entered = Box::pin(scope.enter(std::future::poll_fn(move |cx| {
        record
            .lock()
            .unwrap()
            .push((std::thread::current().id(), current_name()));
        polls += 1;
        if polls == 2 {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })));
    assert!(poll_once(&mut entered).is_pending());
    assert_eq!(current_name(), None, "nothing left on the first thread");
    let other = std::thread::spawn(move || {
        assert!(poll_once(&mut entered).is_ready());
        current_name()
    })
    .join()
    .unwrap();
    assert_eq!(other, None, "nothing left on the second thread");
    let seen = seen.lock().unwrap();
    assert_ne!(seen[0].0, seen[1].0, "polled on two threads");
    assert_eq!(seen[0].1.as_deref(), Some("moving"));
    assert_eq!(seen[1].1.as_deref(), Some("moving"));
}

#[test]
fn current_follows_tasks_that_move_between_the_workers_of_a_multi_thread_runtime() {
    const TASKS: usize = 200;
    const AWAITS: usize = 50;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (wrong, moved) = rt.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|i| {
                let scope = CancelScope::new().with_name(format!("task {i}"));
                tokio::spawn(scope.clone().enter(async move {
                    let expected = format!("task {i}");
                    let first = std::thread::current().id();
                    let (mut wrong, mut moved) = (0, false);
                    for round in 0..AWAITS {
                        if round % 2 == 0 {
                            yield_now().await;
                        } else {
                            tokio::time::sleep(MS).await;
                        }
                        if current_name().as_deref() != Some(expected.as_str()) {
                            wrong += 1;
                        }
                        moved |= std::thread::current().id() != first;
                    }
                    (wrong, moved)
                }))
            })
            .collect();
        let mut totals = (0, 0);
        for handle in handles {
            let (wrong, moved) = handle.await.unwrap();
            totals.0 += wrong;
            totals.1 += usize::from(moved);
        }
        totals
    });
    println!("{moved} of {TASKS} tasks ran on more than one worker");
    assert_eq!(
        wrong, 0,
        "{wrong} looks at the current scope found another one"
    );
}
