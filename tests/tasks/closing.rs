//! `close` stops accepting without stopping anything, `reopen` undoes it,
//! `wait` waits until the set is closed and empty (and is not fooled by a
//! set that empties and refills before it looks again), `wait_idle` until
//! it is empty.

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hangfree::{TaskId, TaskSet};
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready};

use super::{MS, SECOND, blocking_until_released, run_until};

#[tokio::test(start_paused = true)]
async fn close_rejects_spawns_and_lets_running_tasks_finish_without_cancelling_the_token() {
    let set = TaskSet::new();
    let token = set.token();
    set.spawn("running", sleep(SECOND)).unwrap();
    assert!(set.close());
    assert!(set.is_closed());

    let rejected = set.spawn("late", async {}).unwrap_err();
    assert_eq!(rejected.label(), "late");
    assert!(!rejected.is_shut_down());
    assert_eq!(
        rejected.to_string(),
        "task not spawned: the task set is closed"
    );
    assert!(set.track("late tracked", async {}).is_err());
    assert!(set.spawn_blocking("late blocking", || ()).is_err());
    assert_eq!(set.counts().rejected, 3);

    let start = Instant::now();
    set.wait().await;
    assert_eq!(start.elapsed(), SECOND, "the running task ran to its end");
    assert!(!token.is_cancelled(), "close cancels nothing");
    let counts = set.counts();
    assert_eq!((counts.completed, counts.aborted), (1, 0));
}

#[tokio::test]
async fn close_and_reopen_say_whether_they_changed_anything_and_a_shutdown_is_final() {
    let set = TaskSet::new();
    assert!(!set.reopen(), "an open set is not reopened");
    assert!(set.close());
    assert!(!set.close(), "closed already");
    assert!(set.reopen());
    assert!(!set.is_closed());
    assert!(set.spawn("accepted again", async {}).is_ok());
    set.wait_idle().await;

    set.close();
    set.shutdown(Duration::ZERO).await;
    assert!(!set.reopen(), "a shut down set stays shut down");
    assert!(!set.close());
    assert!(set.is_closed());
    let rejected = set.spawn("after shutdown", async {}).unwrap_err();
    assert!(rejected.is_shut_down());
    assert_eq!(
        rejected.to_string(),
        "task not spawned: the task set is shutting down"
    );
    assert_eq!(
        set.to_string(),
        "task set (shut down): 0 running; 1 spawned, 1 completed, 0 failed, 0 panicked, \
         0 aborted, 1 rejected"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_resolves_only_once_the_set_is_closed_and_empty() {
    let set = TaskSet::new();
    let mut wait = tokio_test::task::spawn(set.wait());
    assert_pending!(wait.poll(), "open and empty is not enough");

    set.spawn("one second", sleep(SECOND)).unwrap();
    set.spawn("two seconds", sleep(2 * SECOND)).unwrap();
    advance(SECOND).await;
    run_until(|| set.len() == 1).await;
    assert_pending!(wait.poll());

    set.close();
    assert!(!wait.is_woken(), "closed, but a task is still running");
    assert_pending!(wait.poll());
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    assert!(wait.is_woken());
    assert_ready!(wait.poll());

    // Closed and empty already: at once.
    assert_ready!(tokio_test::task::spawn(set.wait()).poll());
}

#[tokio::test(start_paused = true)]
async fn wait_is_not_fooled_by_a_set_that_empties_and_refills_before_it_is_polled_again() {
    let set = TaskSet::new();
    set.spawn("last", sleep(SECOND)).unwrap();
    let mut wait = tokio_test::task::spawn(set.wait());
    assert_pending!(wait.poll());
    set.close();

    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    // Closed and empty for a moment, then refilled before the waiter runs.
    assert!(set.reopen());
    set.spawn("refill", pending::<()>()).unwrap();
    assert!(wait.is_woken());
    assert_ready!(
        wait.poll(),
        "the set was closed and empty since it began waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn wait_is_not_ended_by_an_open_set_that_empties() {
    let set = TaskSet::new();
    set.spawn("first", sleep(SECOND)).unwrap();
    let mut wait = tokio_test::task::spawn(set.wait());
    assert_pending!(wait.poll());
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    set.spawn("second", pending::<()>()).unwrap();
    assert!(!wait.is_woken(), "emptied while open");
    assert_pending!(wait.poll());
    set.close();
    assert_pending!(wait.poll(), "closed, but the second task runs");
}

#[tokio::test(start_paused = true)]
async fn wait_idle_resolves_when_the_set_empties_without_closing_it() {
    let set = TaskSet::new();
    assert_ready!(tokio_test::task::spawn(set.wait_idle()).poll());

    set.spawn("first", sleep(SECOND)).unwrap();
    let mut idle = tokio_test::task::spawn(set.wait_idle());
    assert_pending!(idle.poll());
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    // Refilled before the waiter runs: it was empty since it began.
    set.spawn("second", pending::<()>()).unwrap();
    assert!(idle.is_woken());
    assert_ready!(idle.poll());
    assert!(!set.is_closed());
    assert_pending!(tokio_test::task::spawn(set.wait_idle()).poll());
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_ends_wait_once_its_aborts_have_emptied_the_set() {
    let set = TaskSet::new();
    set.spawn("hangs", pending::<()>()).unwrap();
    let mut wait = tokio_test::task::spawn(set.wait());
    assert_pending!(wait.poll());
    let report = set.shutdown(SECOND).await;
    assert_eq!(report.aborted().len(), 1);
    assert!(wait.is_woken());
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn an_unresponsive_task_keeps_wait_pending_until_it_ends() {
    let set = TaskSet::builder().abort_wait(Duration::ZERO).build();
    let (work, started, release) = blocking_until_released();
    set.spawn_blocking("blocking export", work).unwrap();
    started.await.unwrap();
    let report = set.shutdown(Duration::ZERO).await;
    assert_eq!(report.unresponsive().len(), 1);

    let mut wait = tokio_test::task::spawn(set.wait());
    assert_pending!(wait.poll(), "the unresponsive closure still runs");
    drop(release);
    // The closure ends on a blocking thread: a real wait, for its end.
    let began = std::time::Instant::now();
    while !wait.is_woken() {
        assert!(began.elapsed() < 10 * SECOND, "wait never woken");
        std::thread::sleep(MS);
    }
    assert_ready!(wait.poll());
}

#[tokio::test(start_paused = true)]
async fn close_makes_waiting_spawns_give_up_and_reopen_lets_them_wait_again() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holds the slot", sleep(SECOND)).unwrap();
    let mut waiting = tokio_test::task::spawn(set.spawn_waiting("waits", async {}));
    assert_pending!(waiting.poll());
    set.close();
    assert!(waiting.is_woken());
    let rejected = assert_ready!(waiting.poll()).unwrap_err();
    assert_eq!(rejected.label(), "waits");
    assert!(!rejected.is_shut_down());
    drop(waiting);
    assert_eq!(set.counts().rejected, 1);

    set.reopen();
    let mut waiting = tokio_test::task::spawn(set.spawn_waiting("waits again", async {}));
    assert_pending!(waiting.poll());
    advance(SECOND).await;
    run_until(|| waiting.is_woken()).await;
    assert!(assert_ready!(waiting.poll()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_close_undone_before_a_waiting_spawn_looks_leaves_it_waiting() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holds the slot", sleep(SECOND)).unwrap();
    let mut waiting = tokio_test::task::spawn(set.reserve());
    assert_pending!(waiting.poll());
    set.close();
    set.reopen();
    assert_pending!(waiting.poll(), "open again: it waits on");
    advance(SECOND).await;
    run_until(|| waiting.is_woken()).await;
    assert!(assert_ready!(waiting.poll()).is_ok());
}

/// One round: spawner threads spawn (plain, waiting, tracked) until they
/// are rejected, while the runtime closes the set and waits (and, if asked,
/// shuts it down at the same time). Returns what went wrong, if anything.
fn race_spawns_against_close_and_wait(
    runtime: &tokio::runtime::Runtime,
    also_shut_down: bool,
) -> Option<String> {
    const SPAWNERS: usize = 3;
    let set = TaskSet::builder().max_in_flight(16).build();
    let finished = Arc::new(AtomicUsize::new(0));
    let accepted = AtomicUsize::new(0);
    let go = Barrier::new(SPAWNERS + 1);
    std::thread::scope(|threads| {
        for spawner in 0..SPAWNERS {
            let (set, accepted, go, finished) = (&set, &accepted, &go, &finished);
            let handle = runtime.handle().clone();
            threads.spawn(move || {
                let _runtime = handle.enter();
                go.wait();
                for n in 0_u32.. {
                    let finished = Arc::clone(finished);
                    let task = async move {
                        for _ in 0..n % 3 {
                            tokio::task::yield_now().await;
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    };
                    let ok: Option<TaskId> = match spawner {
                        0 => set.spawn("plain", task).ok(),
                        1 => futures::executor::block_on(set.spawn_waiting("waiting", task)).ok(),
                        // Polled here, by its caller, to its end.
                        _ => set.track("tracked", task).ok().map(|tracked| {
                            let id = tracked.id();
                            futures::executor::block_on(tracked);
                            id
                        }),
                    };
                    if ok.is_none() {
                        break;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        go.wait();
        runtime.block_on(async {
            while accepted.load(Ordering::SeqCst) < 30 {
                tokio::task::yield_now().await;
            }
            set.close();
            if also_shut_down {
                let ((), report) = tokio::join!(set.wait(), set.shutdown(10 * SECOND));
                assert!(report.aborted().is_empty() && report.unresponsive().is_empty());
            } else {
                set.wait().await;
            }
        });
    });
    let accepted = accepted.load(Ordering::SeqCst);
    let finished = finished.load(Ordering::SeqCst);
    let counts = set.counts();
    if !set.is_empty() {
        return Some(format!("wait returned with {} tasks tracked", set.len()));
    }
    if finished != accepted || counts.completed != accepted as u64 {
        return Some(format!(
            "{accepted} accepted, {finished} finished, {counts}"
        ));
    }
    None
}

#[test]
fn close_and_wait_racing_spawns_on_a_multi_thread_runtime_wait_for_every_accepted_task() {
    // Real threads race the close: what matters is that `wait` returns only
    // once every task whose spawn returned `Ok` has ended.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..200 {
        if let Some(wrong) = race_spawns_against_close_and_wait(&runtime, round % 2 == 1) {
            panic!("round {round}: {wrong}");
        }
    }
}
