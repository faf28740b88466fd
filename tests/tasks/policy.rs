//! The failure policy and `first_failure`: errgroup's `WithContext`. The
//! first failure (an `Err` or a panic) cancels the set's token when the
//! policy says so; `first_failure` resolves with it, or with `None` once the
//! set has shut down, or closed and emptied, without one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::tasks::FailurePolicy;
use hangfree::{FailureKind, TaskSet};
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready};

use super::{SECOND, blocking_until_released, boom, run_until};

fn fail_fast() -> TaskSet {
    TaskSet::builder()
        .failure_policy(FailurePolicy::CancelToken)
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_cancels_the_token_and_the_siblings_stop() {
    let set = fail_fast();
    for worker in 0..3 {
        let token = set.token();
        set.spawn(format!("worker {worker}"), async move {
            tokio::select! {
                () = token.cancelled() => Ok(()),
                () = sleep(60 * SECOND) => Err("ran to the end"),
            }
        })
        .unwrap();
    }
    set.spawn("fails", async {
        sleep(2 * SECOND).await;
        Err::<(), _>("connection refused")
    })
    .unwrap();

    let start = Instant::now();
    let first = set.first_failure().await.unwrap();
    assert_eq!(start.elapsed(), 2 * SECOND);
    assert_eq!(
        (first.label(), first.message()),
        ("fails", "connection refused")
    );
    assert_eq!(first.kind(), FailureKind::Error);
    assert!(set.token().is_cancelled());
    assert!(!set.is_closed(), "the policy cancels, it does not close");

    let report = set.shutdown(SECOND).await;
    assert_eq!(report.elapsed(), Duration::ZERO, "the siblings had stopped");
    assert_eq!((report.completed(), report.failed()), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_first_failure_too() {
    let set = fail_fast();
    set.spawn("parse", async {
        sleep(SECOND).await;
        boom("bad row 7")
    })
    .unwrap();
    let first = set.first_failure().await.unwrap();
    assert_eq!(
        (first.kind(), first.message()),
        (FailureKind::Panic, "bad row 7")
    );
    assert!(set.token().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn without_a_policy_a_failure_leaves_the_token_alone_and_is_still_the_first() {
    let set = TaskSet::new();
    set.spawn("fails", async { Err::<(), _>("lock lost") })
        .unwrap();
    set.spawn("fails later", async {
        sleep(SECOND).await;
        Err::<(), _>("lock lost again")
    })
    .unwrap();
    let first = set.first_failure().await.unwrap();
    assert_eq!(first.label(), "fails");
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    assert!(!set.token().is_cancelled());
    assert_eq!(
        set.first_failure().await.unwrap(),
        first,
        "the same one, always"
    );
}

#[tokio::test(start_paused = true)]
async fn first_failure_waits_while_the_set_runs_and_is_none_once_it_closes_and_empties() {
    let set = TaskSet::new();
    let mut first = tokio_test::task::spawn(set.first_failure());
    assert_pending!(first.poll(), "open and empty: a failure may still come");
    set.spawn("succeeds", sleep(SECOND)).unwrap();
    set.close();
    assert_pending!(first.poll());
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    assert!(first.is_woken());
    assert_eq!(assert_ready!(first.poll()), None);
}

#[tokio::test(start_paused = true)]
async fn first_failure_is_none_once_a_shutdown_reported_without_one_for_good() {
    let set = TaskSet::builder().abort_wait(Duration::ZERO).build();
    let (work, started, release) = blocking_until_released();
    let fails_later = move || {
        work();
        Err::<(), _>("failed after the report")
    };
    set.spawn_blocking("unresponsive", fails_later).unwrap();
    started.await.unwrap();

    let mut first = tokio_test::task::spawn(set.first_failure());
    assert_pending!(first.poll());
    let report = set.shutdown(Duration::ZERO).await;
    assert_eq!(report.unresponsive().len(), 1);
    assert!(first.is_woken());
    assert_eq!(
        assert_ready!(first.poll()),
        None,
        "shut down without a failure"
    );

    drop(release);
    // The closure fails on a blocking thread: a real wait, for its end.
    let began = std::time::Instant::now();
    while !set.is_empty() {
        assert!(began.elapsed() < 10 * SECOND, "the closure never ended");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(set.counts().failed, 1, "counted and kept");
    assert_eq!(set.failures()[0].message(), "failed after the report");
    assert_eq!(
        set.first_failure().await,
        None,
        "but not the first: the answer was given"
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_spawned_with_a_handle_fails_only_by_panicking() {
    let set = fail_fast();
    let handle = set
        .spawn_with_handle("query", async { Err::<u8, _>("the awaiter's to judge") })
        .unwrap();
    assert_eq!(handle.await, Ok(Err("the awaiter's to judge")));
    assert!(!set.token().is_cancelled());
    let handle = set
        .spawn_with_handle("query", async { boom("bad plan") })
        .unwrap();
    assert!(handle.await.unwrap_err().is_panic());
    assert_eq!(set.first_failure().await.unwrap().message(), "bad plan");
    assert!(set.token().is_cancelled());
}

#[test]
fn of_two_tasks_failing_at_once_on_a_multi_thread_runtime_exactly_one_is_the_first_failure() {
    // Two blocking closures leave a spinning barrier together and fail at
    // the same moment on two threads; four awaiters on the two workers ask
    // for the first failure meanwhile.
    const FAILING: usize = 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut firsts = [0_u32; FAILING];
    for round in 0..500 {
        runtime.block_on(async {
            let set = fail_fast();
            let askers: Vec<_> = (0..4)
                .map(|_| {
                    let set = set.clone();
                    tokio::spawn(async move { set.first_failure().await })
                })
                .collect();
            let together = Arc::new(AtomicUsize::new(0));
            let ids: Vec<_> = (0..FAILING)
                .map(|n| {
                    let label = format!("failing {n}");
                    let together = Arc::clone(&together);
                    set.spawn_blocking(label.clone(), move || {
                        // A spinning barrier: they leave it within
                        // nanoseconds of each other, as far as the cores
                        // allow (a real busy wait is the point).
                        together.fetch_add(1, Ordering::SeqCst);
                        while together.load(Ordering::SeqCst) < FAILING {
                            std::hint::spin_loop();
                        }
                        Err::<(), _>(label)
                    })
                    .unwrap()
                })
                .collect();
            let mut answers = Vec::new();
            for asker in askers {
                answers.push(asker.await.unwrap().expect("a task failed"));
            }
            let first = answers[0].clone();
            assert!(
                answers.iter().all(|answer| *answer == first),
                "round {round}: {answers:?}"
            );
            assert!(ids.contains(&first.id()), "round {round}");
            assert!(set.token().is_cancelled(), "round {round}");
            let report = set.shutdown(10 * SECOND).await;
            assert_eq!(report.failed(), FAILING as u64, "round {round}");
            assert_eq!(report.failures()[0], first, "round {round}: kept first");
            assert_eq!(set.first_failure().await, Some(first.clone()));
            firsts[ids.iter().position(|id| *id == first.id()).unwrap()] += 1;
        });
    }
    // Each wins some rounds, or the race was not one.
    assert!(
        firsts.iter().filter(|&&won| won > 0).count() > 1,
        "{firsts:?}"
    );
}
