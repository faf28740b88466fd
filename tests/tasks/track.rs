//! `track`: a future its caller polls, counted and reported like a task,
//! never aborted.

use std::future::pending;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use hangfree::{FailureKind, TaskSet};
use tokio::time::{Instant, sleep};
use tokio_test::{assert_pending, assert_ready};

use super::SECOND;

#[tokio::test(start_paused = true)]
async fn a_tracked_future_is_listed_like_a_task_and_passes_its_output_through() {
    let set = TaskSet::new();
    let tracked = set
        .track("serve connection", async {
            sleep(SECOND).await;
            Err::<u8, _>("the caller's error, not the set's")
        })
        .unwrap();
    let running = set.running();
    assert_eq!(
        (running[0].id(), running[0].label()),
        (tracked.id(), "serve connection")
    );
    assert!(running[0].is_tracked_future() && !running[0].is_blocking());
    assert_eq!(
        running[0].to_string(),
        format!(
            "{} \"serve connection\" (tracked future), age 0s",
            tracked.id()
        )
    );

    assert_eq!(tracked.await, Err("the caller's error, not the set's"));
    let counts = set.counts();
    assert_eq!((counts.spawned, counts.completed, counts.failed), (1, 1, 0));
    assert!(set.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_waits_for_a_tracked_future_and_reports_it_unresponsive_without_aborting_it() {
    let set = TaskSet::new();
    let token = set.token();
    let mut tracked = tokio_test::task::spawn(
        set.track("driven by the caller", async move {
            token.cancelled().await;
            // Ignores the token's request to stop promptly.
            pending::<()>().await;
        })
        .unwrap(),
    );
    assert_pending!(tracked.poll());

    let start = Instant::now();
    let report = set.shutdown(SECOND).await;
    assert_eq!(
        start.elapsed(),
        SECOND + hangfree::tasks::DEFAULT_ABORT_WAIT
    );
    assert!(report.aborted().is_empty(), "never aborted: {report}");
    assert_eq!(report.unresponsive()[0].label(), "driven by the caller");
    assert!(report.unresponsive()[0].is_tracked_future());
    assert_eq!(report.counts().aborted, 0);

    // Still the caller's, still pollable; dropped unfinished, it counts as
    // aborted and leaves the set.
    assert!(tracked.is_woken(), "the token's cancel reached it");
    assert_pending!(tracked.poll());
    assert_eq!(set.len(), 1);
    drop(tracked);
    assert!(set.is_empty());
    assert_eq!(set.counts().aborted, 1);
}

#[tokio::test(start_paused = true)]
async fn a_tracked_future_that_ends_within_the_grace_ends_the_shutdown_early() {
    let set = TaskSet::new();
    let tracked = set.track("flush", sleep(2 * SECOND)).unwrap();
    let start = Instant::now();
    let ((), report) = tokio::join!(tracked, set.shutdown(5 * SECOND));
    assert_eq!(report.elapsed(), 2 * SECOND);
    assert_eq!(start.elapsed(), 2 * SECOND);
    assert!(report.is_clean());
    assert_eq!(report.completed(), 1);
}

#[tokio::test]
async fn a_panic_in_a_tracked_future_is_counted_and_goes_on_unwinding_into_its_caller() {
    let set = TaskSet::new();
    let tracked = set
        .track("parse", async {
            super::boom("bad row 7");
        })
        .unwrap();
    let caught = AssertUnwindSafe(tracked).catch_unwind().await;
    assert!(caught.is_err(), "the caller sees its own panic");
    let counts = set.counts();
    assert_eq!((counts.panicked, counts.aborted), (1, 0));
    let failure = &set.failures()[0];
    assert_eq!(
        (failure.label(), failure.kind(), failure.message()),
        ("parse", FailureKind::Panic, "bad row 7")
    );
    assert!(set.is_empty());
}

#[tokio::test]
async fn a_closed_set_hands_the_future_back_from_track() {
    let set = TaskSet::new();
    set.close();
    let rejected = set.track("late", async { 7 }).unwrap_err();
    assert_eq!(rejected.label(), "late");
    assert_eq!(rejected.into_inner().await, 7);
    assert_eq!(set.counts().rejected, 1);
}

#[tokio::test]
async fn dropping_the_set_leaves_a_tracked_future_to_its_caller() {
    let set = TaskSet::new();
    let mut tracked = tokio_test::task::spawn(set.track("outlives the set", async { 3 }).unwrap());
    drop(set);
    assert_eq!(
        assert_ready!(tracked.poll()),
        3,
        "not aborted: it was never the set's"
    );
}
