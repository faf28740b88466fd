//! With the `tracing` feature, failures, panics, shutdown reports and a
//! dropped set are logged with labels. Its own test binary with a global
//! subscriber: a thread-local one races with other tests over tracing's
//! per-callsite interest cache.
#![cfg(feature = "tracing")]

use std::future::pending;
use std::time::Duration;

use hangfree::TaskSet;

mod support;

/// Panics with `message`; typed `()` so that the task has a `TaskOutcome`.
fn boom(message: &str) {
    panic!("{message}")
}

#[tokio::test(start_paused = true)]
async fn failures_panics_reports_and_drops_are_logged_with_labels() {
    let collect = support::events::Events::install();

    let set = TaskSet::new();
    set.spawn("ack 1", async { Err::<(), _>("lock lost") })
        .unwrap();
    set.spawn("parse 2", async { boom("bad row") }).unwrap();
    set.spawn("hangs", pending::<()>()).unwrap();
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.aborted().len(), 1);

    let dropped = TaskSet::new();
    dropped.spawn("left behind", pending::<()>()).unwrap();
    dropped.spawn("left behind too", pending::<()>()).unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    dropped
        .spawn_blocking("blocking, left running", move || {
            started_tx.send(()).unwrap();
            // A real blocking wait is the point: it cannot be aborted.
            let _ = released.recv();
        })
        .unwrap();
    // Dropped while the closure runs: one still queued for a blocking
    // thread would be aborted, and never run.
    started.await.unwrap();
    drop(dropped);
    release.send(()).unwrap();

    let lines = collect.lines();
    let find = |needle: &str| {
        lines
            .iter()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no event with {needle:?} in {lines:#?}"))
            .clone()
    };
    let failed = find("task failed");
    assert!(
        failed.starts_with("WARN") && failed.contains("task.label=ack 1"),
        "{failed}"
    );
    assert!(failed.contains("error=lock lost"), "{failed}");
    let panicked = find("task panicked");
    assert!(panicked.starts_with("ERROR") && panicked.contains("task.label=parse 2"));
    assert!(panicked.contains("panic=bad row"), "{panicked}");
    let shut = find("task set shut down");
    assert!(
        shut.starts_with("WARN") && shut.contains("aborted=1"),
        "{shut}"
    );
    assert!(shut.contains(r#"aborted: #3 "hangs""#), "{shut}");
    let drop_warning = find("TaskSet dropped");
    // The blocking closure is not counted as aborted: it runs on.
    assert!(drop_warning.contains("aborted=2"), "{drop_warning}");
    assert!(drop_warning.contains("blocking=1"), "{drop_warning}");
}
