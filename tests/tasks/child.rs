//! Nested sets: a child stops with its parent, within the parent's grace,
//! and its tasks are in the parent's report with their label path.

use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::tasks::DEFAULT_ABORT_WAIT;
use hangfree::{TaskId, TaskSet};
use tokio::time::{Instant, sleep};

use super::{MS, SECOND, run_until};

#[tokio::test(start_paused = true)]
async fn a_child_is_shut_down_with_its_parent_and_reported_with_its_label_path() {
    let service = TaskSet::new();
    let consumer = service.child("consumer");
    let handlers = consumer.child("handlers");
    service.spawn("health", pending::<()>()).unwrap();
    let token = handlers.token();
    handlers
        .spawn("cooperative", async move { token.cancelled().await })
        .unwrap();
    for n in 0..16 {
        handlers.spawn(format!("msg {n}"), sleep(SECOND)).unwrap();
    }
    let stuck = handlers.spawn("msg 17", pending::<()>()).unwrap();
    consumer
        .spawn("ack", async { Err::<(), _>("lock lost") })
        .unwrap();

    let start = Instant::now();
    let report = service.shutdown(5 * SECOND).await;
    assert_eq!(start.elapsed(), 5 * SECOND, "within the parent's grace");
    assert!(handlers.is_closed() && consumer.is_closed());
    assert!(
        handlers.token().is_cancelled(),
        "cancelled with the parent's"
    );

    let counts = report.counts();
    assert_eq!(
        (
            counts.spawned,
            counts.completed,
            counts.failed,
            counts.aborted
        ),
        (20, 17, 1, 2),
        "the sums over the tree: {report}"
    );
    let aborted: Vec<(&str, &str)> = report
        .aborted()
        .iter()
        .map(|task| (task.path(), task.label()))
        .collect();
    assert_eq!(aborted, [("", "health"), ("consumer/handlers", "msg 17")]);
    assert_eq!(report.aborted()[1].id(), stuck);
    assert_eq!(
        report.aborted()[1].to_string(),
        format!("consumer/handlers {stuck} \"msg 17\", age 5s")
    );
    let failure = &report.failures()[0];
    assert_eq!((failure.path(), failure.label()), ("consumer", "ack"));
    assert_eq!(
        failure.to_string(),
        format!(
            "consumer {} \"ack\" failed after 0s: lock lost",
            failure.id()
        )
    );
    assert!(
        report
            .to_string()
            .contains("aborted: consumer/handlers #18 \"msg 17\"")
    );
}

#[tokio::test(start_paused = true)]
async fn the_parents_abort_wait_bounds_the_childs_unresponsive_tasks() {
    let parent = TaskSet::new();
    let child = TaskSet::builder()
        .child_of(&parent, "exports")
        .abort_wait(10 * SECOND)
        .build();
    let (work, started, release) = super::blocking_until_released();
    child.spawn_blocking("blocking export", work).unwrap();
    started.await.unwrap();
    // The running blocking closure stops tokio from auto-advancing the
    // paused clock: the test moves it by hand.
    let mut shutdown = tokio_test::task::spawn(parent.shutdown(SECOND));
    let start = Instant::now();
    let report = loop {
        if let std::task::Poll::Ready(report) = shutdown.poll() {
            break report;
        }
        tokio::time::advance(10 * MS).await;
        assert!(start.elapsed() < 5 * SECOND, "shutdown hangs");
    };
    assert_eq!(report.elapsed(), SECOND + DEFAULT_ABORT_WAIT);
    let stuck = &report.unresponsive()[0];
    assert_eq!(
        (stuck.path(), stuck.label()),
        ("exports", "blocking export")
    );
    drop(release);
}

#[tokio::test(start_paused = true)]
async fn a_childs_own_counts_and_waits_are_its_own() {
    let parent = TaskSet::new();
    let child = parent.child("child");
    child.spawn("child's", sleep(SECOND)).unwrap();
    assert!(parent.is_empty() && parent.running().is_empty());
    assert_eq!(parent.counts().spawned, 0);
    assert_eq!(child.running()[0].path(), "child");
    parent.close();
    parent.wait().await;
    assert!(!child.is_closed(), "close is the set's own");
    assert_eq!(child.len(), 1);
    child.wait_idle().await;
    assert_eq!(child.counts().completed, 1);
}

#[tokio::test]
async fn a_child_made_after_its_parents_shutdown_began_is_shut_down() {
    let parent = TaskSet::new();
    parent.shutdown(Duration::ZERO).await;
    let late = parent.child("late");
    assert!(late.is_closed());
    assert!(late.token().is_cancelled());
    assert!(late.spawn("rejected", async {}).unwrap_err().is_shut_down());
    assert!(!late.reopen());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_parent_aborts_the_childs_tasks() {
    let parent = TaskSet::new();
    let child = parent.child("child");
    let dropped = Arc::new(AtomicBool::new(false));
    struct SetsOnDrop(Arc<AtomicBool>);
    impl Drop for SetsOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let guard = SetsOnDrop(dropped.clone());
    child
        .spawn("held", async move {
            let _guard = guard;
            pending::<()>().await
        })
        .unwrap();
    drop(parent);
    run_until(|| dropped.load(Ordering::SeqCst)).await;
    assert!(child.is_closed());
    assert_eq!(child.counts().aborted, 1);
}

#[tokio::test]
async fn a_child_whose_handles_and_tasks_are_gone_is_forgotten() {
    let parent = TaskSet::new();
    for n in 0..100 {
        let child = parent.child(format!("child {n}"));
        child.spawn("quick", async {}).unwrap();
        child.wait_idle().await;
    }
    let report = parent.shutdown(SECOND).await;
    assert_eq!(
        report.counts().spawned,
        0,
        "dropped children are not reported"
    );
}

#[test]
fn children_made_while_the_parent_shuts_down_on_another_thread_are_all_stopped() {
    // Real threads race the shutdown: every child made is either in the
    // report or made shut down, and every task accepted is accounted for.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..200 {
        let parent = TaskSet::new();
        let children = Mutex::new(Vec::new());
        let accepted = Mutex::new(Vec::<TaskId>::new());
        let report = std::thread::scope(|threads| {
            let maker = threads.spawn(|| {
                let _runtime = runtime.enter();
                // Bounded, so that a child escaping the shutdown fails the
                // test rather than hanging it.
                for n in 0..10_000 {
                    let child = parent.child(format!("child {n}"));
                    let spawned = child.spawn("waits for the token", {
                        let token = child.token();
                        async move { token.cancelled().await }
                    });
                    children.lock().unwrap().push(child.clone());
                    match spawned {
                        Ok(id) => accepted.lock().unwrap().push(id),
                        Err(_) => break,
                    }
                }
            });
            let report = runtime.block_on(async {
                while children.lock().unwrap().len() < 3 {
                    tokio::task::yield_now().await;
                }
                parent.shutdown(10 * SECOND).await
            });
            maker.join().unwrap();
            report
        });
        for child in children.lock().unwrap().iter() {
            assert!(child.is_closed(), "round {round}: a child escaped");
            assert!(child.token().is_cancelled(), "round {round}");
        }
        // Every accepted task is in the report: each waited for its
        // token, which the shutdown cancelled, so each completed.
        let accepted = accepted.into_inner().unwrap().len() as u64;
        let counts = report.counts();
        assert_eq!(counts.spawned, accepted, "round {round}: {report}");
        assert_eq!(counts.completed, accepted, "round {round}: {report}");
        assert!(report.unresponsive().is_empty(), "round {round}: {report}");
    }
}

#[tokio::test]
async fn a_child_whose_parent_was_dropped_is_shut_down() {
    let service = TaskSet::new();
    // The middle set is a temporary: gone with the statement, and its child
    // with it.
    let orphan = service.child("consumer").child("handlers");
    assert!(orphan.is_closed() && orphan.token().is_cancelled());
    assert!(orphan.spawn("msg 17", async {}).unwrap_err().is_shut_down());

    let consumer = service.child("consumer");
    let handlers = consumer.child("handlers");
    assert!(
        handlers.spawn("msg 17", async {}).is_ok(),
        "its parent is alive"
    );
}
