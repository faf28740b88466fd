//! `TaskHandle`: the output, or a panic or abort as an error; dropping it or
//! giving up on it leaves the task running and tracked.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hangfree::{TaskError, TaskSet};
use tokio::time::{Instant, sleep};

use super::{SECOND, run_until};

#[tokio::test(start_paused = true)]
async fn handle_gives_the_output_and_a_panic_as_an_error() {
    let set = TaskSet::new();
    let sum = set
        .spawn_with_handle("sum", async {
            sleep(SECOND).await;
            20 + 22
        })
        .unwrap();
    assert_eq!(sum.await, Ok(42));

    let panics = set
        .spawn_with_handle("parse", async {
            sleep(SECOND).await;
            if true {
                panic!("bad header");
            }
            0_u32
        })
        .unwrap();
    let id = panics.id();
    let error: TaskError = panics.await.unwrap_err();
    assert!(error.is_panic() && !error.is_aborted());
    assert_eq!(error.panic_message(), Some("bad header"));
    assert_eq!(error.id(), id);
    assert_eq!(error.to_string(), format!("task {id} panicked: bad header"));
    assert_eq!(set.counts().panicked, 1);
    assert_eq!(set.failures()[0].label(), "parse");

    let blocking = set.spawn_blocking_with_handle("hash", || 7_u64).unwrap();
    assert_eq!(blocking.await, Ok(7));
    let blocking = set
        .spawn_blocking_with_handle("hash", || -> u64 { panic!("io error") })
        .unwrap();
    assert_eq!(
        blocking.await.unwrap_err().panic_message(),
        Some("io error")
    );
    assert_eq!(set.counts().completed, 2);
    assert_eq!(set.counts().panicked, 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_keeps_the_task_running_and_tracked() {
    let set = TaskSet::new();
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let done = done.clone();
        set.spawn_with_handle("deferred completion", async move {
            sleep(10 * SECOND).await;
            done.store(true, Ordering::SeqCst);
            "ok"
        })
        .unwrap()
    };
    let id = handle.id();
    drop(handle);
    sleep(3 * SECOND).await;
    let running = set.running();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id(), id);
    assert_eq!(running[0].label(), "deferred completion");
    assert_eq!(running[0].age(), 3 * SECOND);

    sleep(7 * SECOND).await;
    run_until(|| set.is_empty()).await;
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(set.counts().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn giving_up_on_a_handle_at_a_deadline_leaves_the_task_tracked() {
    // A plain tokio timeout: the handle's own property, without `scope`
    // (the next test awaits it inside a scope).
    let set = TaskSet::new();
    let handle = set
        .spawn_with_handle("uncancellable", async {
            sleep(60 * SECOND).await;
        })
        .unwrap();
    let start = Instant::now();
    let waited = tokio::time::timeout(2 * SECOND, handle).await;
    assert!(waited.is_err());
    assert_eq!(start.elapsed(), 2 * SECOND);
    let running = set.running();
    assert_eq!(running[0].label(), "uncancellable");
    assert_eq!(running[0].age(), 2 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_scoped_wait_on_a_handle_ends_at_the_deadline_while_the_task_runs_on() {
    // How a caller stops waiting on work that cannot be cancelled without
    // losing track of it: the wait ends with `Err(Interrupted)` exactly at
    // the deadline, the task keeps running, stays listed, and is counted
    // when it finishes.
    use hangfree::prelude::*;

    let set = TaskSet::new();
    let finished = Arc::new(AtomicBool::new(false));
    let handle = set
        .spawn_with_handle("settle invoice 42", {
            let finished = finished.clone();
            async move {
                sleep(60 * SECOND).await;
                finished.store(true, Ordering::SeqCst);
                "settled"
            }
        })
        .unwrap();

    let start = Instant::now();
    let scope = hangfree::CancelScope::new().with_timeout(5 * SECOND);
    let waited = handle.within(&scope).await;
    let interrupted = waited.expect_err("the wait is interrupted at the deadline");
    assert!(interrupted.is_deadline());
    assert_eq!(start.elapsed(), 5 * SECOND);

    let running = set.running();
    assert_eq!(running.len(), 1, "the task is still tracked");
    assert_eq!(running[0].label(), "settle invoice 42");
    assert_eq!(running[0].age(), 5 * SECOND);
    assert!(!finished.load(Ordering::SeqCst));

    let report = set.shutdown(120 * SECOND).await;
    assert!(finished.load(Ordering::SeqCst), "the task ran to the end");
    assert_eq!(report.completed(), 1);
    assert!(report.aborted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn aborting_through_the_handle_is_counted() {
    let set = TaskSet::new();
    let handle = set.spawn_with_handle("forever", pending::<()>()).unwrap();
    assert!(!handle.is_finished());
    handle.abort();
    let error = handle.await.unwrap_err();
    assert!(error.is_aborted());
    assert_eq!(set.counts().aborted, 1);
    assert!(set.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_handle_awaited_after_the_set_is_dropped_says_aborted() {
    let set = TaskSet::new();
    let handle = set.spawn_with_handle("orphan", pending::<()>()).unwrap();
    drop(set);
    assert!(handle.await.unwrap_err().is_aborted());
}
