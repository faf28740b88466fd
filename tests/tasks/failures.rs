//! Failures and panics are counted, kept (bounded, with labels) and never
//! re-raised, for async tasks and blocking closures alike.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hangfree::{FailureKind, TaskFailure, TaskSet};
use tokio::time::sleep;

use super::{MS, SECOND, boom, run_until};

/// An error whose `Display` panics (a buggy user type).
struct PanickyDisplay;

impl fmt::Display for PanickyDisplay {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of the task's error panicked")
    }
}

/// The message kept for a task whose error's `Display` panicked.
const PANIC_WHILE_JUDGING: &str =
    "panic while judging the task's output: Display of the task's error panicked";

/// Panics with a non-string payload; typed `()` to have a `TaskOutcome`.
fn odd_panic() {
    std::panic::panic_any(42_u32)
}

#[tokio::test(start_paused = true)]
async fn errors_and_panics_are_counted_and_listed_with_labels() {
    let set = TaskSet::new();
    let survivor_ran = Arc::new(AtomicBool::new(false));
    {
        let survivor_ran = survivor_ran.clone();
        set.spawn("survivor", async move {
            sleep(2 * SECOND).await;
            survivor_ran.store(true, Ordering::SeqCst);
        })
        .unwrap();
    }
    for n in 0..10 {
        set.spawn(format!("ack {n}"), async move {
            sleep(100 * MS).await;
            Err::<(), _>(format!("lock {n} expired"))
        })
        .unwrap();
    }
    for n in 0..3 {
        set.spawn(format!("parse {n}"), async move {
            sleep(200 * MS).await;
            boom(&format!("bad row {n}"))
        })
        .unwrap();
    }

    sleep(SECOND).await;
    let counts = set.counts();
    assert_eq!(
        (counts.failed, counts.panicked, counts.completed),
        (10, 3, 0)
    );
    assert_eq!(set.len(), 1, "only the survivor is left");

    let report = set.shutdown(5 * SECOND).await;
    assert!(
        survivor_ran.load(Ordering::SeqCst),
        "panics did not disturb the other task"
    );
    assert_eq!(
        (report.failed(), report.panicked(), report.completed()),
        (10, 3, 1)
    );
    assert_eq!(report.failures().len(), 13);
    let errors: Vec<_> = report
        .failures()
        .iter()
        .filter(|failure| failure.kind() == FailureKind::Error)
        .collect();
    assert_eq!(errors.len(), 10);
    for failure in errors {
        let n = failure.label().strip_prefix("ack ").unwrap();
        assert_eq!(failure.message(), format!("lock {n} expired"));
        assert_eq!(failure.age(), 100 * MS);
    }
    let mut panics: Vec<_> = report
        .failures()
        .iter()
        .filter(|failure| failure.kind() == FailureKind::Panic)
        .map(|failure| (failure.label().to_owned(), failure.message().to_owned()))
        .collect();
    panics.sort();
    assert_eq!(
        panics,
        [0, 1, 2].map(|n| (format!("parse {n}"), format!("bad row {n}")))
    );
    let text = report.to_string();
    assert!(
        text.contains(r#""parse 1" panicked after 200ms: bad row 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#""ack 9" failed after 100ms: lock 9 expired"#),
        "{text}"
    );
}

#[tokio::test]
async fn kept_failures_are_bounded_but_counters_are_not() {
    let set = TaskSet::builder().max_kept_failures(4).build();
    for n in 0..10 {
        set.spawn(format!("job {n}"), async move { Err::<(), _>(n) })
            .unwrap();
    }
    run_until(|| set.is_empty()).await;
    assert_eq!(set.counts().failed, 10);
    let kept: Vec<String> = set
        .failures()
        .iter()
        .map(|failure| failure.label().to_owned())
        .collect();
    assert_eq!(
        kept,
        ["job 6", "job 7", "job 8", "job 9"],
        "the most recent are kept"
    );

    let none_kept = TaskSet::builder().max_kept_failures(0).build();
    none_kept.spawn("x", async { boom("boom") }).unwrap();
    let report = none_kept.shutdown(SECOND).await;
    assert_eq!(report.panicked(), 1);
    assert!(report.failures().is_empty());
}

#[tokio::test]
async fn blocking_failures_and_panics_are_recorded() {
    let set = TaskSet::new();
    set.spawn_blocking("blocking err", || Err::<(), _>("disk full"))
        .unwrap();
    set.spawn_blocking("blocking panic", || boom("no such file"))
        .unwrap();
    set.spawn_blocking("blocking ok", || ()).unwrap();
    let report = set.shutdown(10 * SECOND).await;
    assert_eq!(
        (report.completed(), report.failed(), report.panicked()),
        (1, 1, 1)
    );
    let mut messages: Vec<_> = report.failures().iter().map(TaskFailure::message).collect();
    messages.sort();
    assert_eq!(messages, ["disk full", "no such file"]);
}

#[tokio::test]
async fn a_panic_in_the_errors_display_is_a_panic_of_the_task_not_an_abort() {
    let set = TaskSet::new();
    set.spawn("ack", async { Err::<(), _>(PanickyDisplay) })
        .unwrap();
    run_until(|| set.is_empty()).await;
    let counts = set.counts();
    assert_eq!(counts.aborted, 0, "nobody aborted it: {counts}");
    assert_eq!((counts.failed, counts.panicked), (0, 1), "{counts}");
    let failures = set.failures();
    assert_eq!(failures.len(), 1, "the failure must be kept");
    assert_eq!(failures[0].label(), "ack");
    assert_eq!(failures[0].kind(), FailureKind::Panic);
    assert_eq!(failures[0].message(), PANIC_WHILE_JUDGING);
}

#[tokio::test]
async fn a_panic_in_a_blocking_closures_error_display_is_recorded_as_a_panic() {
    let set = TaskSet::new();
    set.spawn_blocking("hash", || Err::<(), _>(PanickyDisplay))
        .unwrap();
    let report = set.shutdown(5 * SECOND).await;
    let counts = report.counts();
    assert_eq!(counts.aborted, 0, "nobody aborted it: {counts}");
    assert_eq!((counts.failed, counts.panicked), (0, 1), "{counts}");
    assert_eq!(report.failures().len(), 1, "the failure must be kept");
    assert_eq!(report.failures()[0].kind(), FailureKind::Panic);
    assert_eq!(report.failures()[0].message(), PANIC_WHILE_JUDGING);
}

#[tokio::test]
async fn a_panic_in_a_finished_futures_destructor_is_a_panic_of_the_task() {
    /// Ready at once; its destructor panics (an `async` block would drop
    /// its captures inside the last poll instead).
    struct PanicsOnDrop;
    impl Future for PanicsOnDrop {
        type Output = u8;
        fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<u8> {
            std::task::Poll::Ready(5)
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("cleanup failed");
        }
    }
    let set = TaskSet::new();
    let handle = set.spawn_with_handle("cleanup", PanicsOnDrop).unwrap();
    let error = handle.await.unwrap_err();
    assert_eq!(
        error.panic_message(),
        Some("panic while dropping the finished future: cleanup failed")
    );
    assert_eq!(set.counts().panicked, 1);
    assert_eq!(set.failures()[0].label(), "cleanup");
}

#[tokio::test]
async fn a_non_string_panic_payload_is_kept_with_a_message() {
    let set = TaskSet::new();
    set.spawn("odd", async { odd_panic() }).unwrap();
    let report = set.shutdown(SECOND).await;
    assert_eq!(report.panicked(), 1);
    assert_eq!(report.counts().aborted, 0);
    assert_eq!(
        report.failures()[0].message(),
        "panic with a non-string payload"
    );
}

#[tokio::test]
async fn a_task_may_return_a_value_in_its_ok_without_mapping_it_away() {
    async fn execute(rows: u64) -> Result<u64, std::io::Error> {
        if rows == 0 {
            Err(std::io::Error::other("no such table"))
        } else {
            Ok(rows)
        }
    }
    let set = TaskSet::new();
    set.spawn("update", execute(3)).unwrap();
    set.spawn("update", execute(0)).unwrap();
    set.spawn_blocking("count", || Ok::<usize, String>(7))
        .unwrap();
    let report = set.shutdown(SECOND).await;
    assert_eq!((report.completed(), report.failed()), (2, 1));
    assert_eq!(report.failures()[0].message(), "no such table");
}
