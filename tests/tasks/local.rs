//! Where tasks run: `spawn_local` on the current `LocalSet`, `spawn_on` on
//! a given runtime; both tracked, reported and aborted like any task.

use std::cell::Cell;
use std::future::pending;
use std::rc::Rc;

use hangfree::TaskSet;
use tokio::task::LocalSet;
use tokio::time::sleep;

use super::SECOND;

#[tokio::test(start_paused = true)]
async fn spawn_local_runs_a_future_that_is_not_send_and_tracks_it() {
    let set = TaskSet::new();
    let local = LocalSet::new();
    let seen = Rc::new(Cell::new(0));
    local
        .run_until(async {
            for n in 1..=3 {
                let seen = Rc::clone(&seen);
                set.spawn_local(format!("render {n}"), async move {
                    sleep(n * SECOND).await;
                    seen.set(seen.get() + 1);
                    if n == 3 {
                        Err("template missing")
                    } else {
                        Ok(())
                    }
                })
                .unwrap();
            }
            set.spawn_local("never ends", pending::<()>()).unwrap();
            assert_eq!(set.len(), 4);
            let report = set.shutdown(5 * SECOND).await;
            assert_eq!((report.completed(), report.failed()), (2, 1));
            assert_eq!(report.failures()[0].message(), "template missing");
            assert_eq!(report.aborted()[0].label(), "never ends");
        })
        .await;
    assert_eq!(seen.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn spawn_local_respects_max_in_flight() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let local = LocalSet::new();
    let running = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    local
        .run_until(async {
            for _ in 0..5 {
                let (running, peak) = (Rc::clone(&running), Rc::clone(&peak));
                set.spawn_local("one at a time", async move {
                    running.set(running.get() + 1);
                    peak.set(peak.get().max(running.get()));
                    sleep(SECOND).await;
                    running.set(running.get() - 1);
                })
                .unwrap();
            }
            let report = set.shutdown(10 * SECOND).await;
            assert_eq!(report.completed(), 5);
            assert_eq!(report.elapsed(), 5 * SECOND);
        })
        .await;
    assert_eq!(peak.get(), 1);
}

#[tokio::test]
async fn spawn_local_outside_a_local_set_panics_without_leaving_a_reservation() {
    let set = TaskSet::new();
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        set.spawn_local("no local set", async {})
    }));
    assert!(spawned.is_err());
    assert_eq!(set.len(), 0);
    assert_eq!(set.counts().spawned, 0);
    let report = set.shutdown(SECOND).await;
    assert!(report.is_clean() && report.unresponsive().is_empty());
}

#[tokio::test]
async fn spawn_on_runs_the_task_on_the_given_runtime() {
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("the-other-runtime")
        .enable_all()
        .build()
        .unwrap();
    let set = TaskSet::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    set.spawn_on(other.handle(), "report thread", async move {
        let name = std::thread::current().name().map(str::to_owned);
        tx.send(name).unwrap();
        Ok::<u64, String>(1)
    })
    .unwrap();
    assert_eq!(rx.await.unwrap().as_deref(), Some("the-other-runtime"));
    // The task leaves the set on the other runtime's thread: wait for it there to be
    // done, not for a number of yields here. Real time, bounded against a bug.
    tokio::time::timeout(10 * SECOND, set.wait_idle())
        .await
        .expect("the task left the set");
    let report = set.shutdown(SECOND).await;
    assert_eq!(report.completed(), 1);
    other.shutdown_background();
}

#[test]
fn spawn_on_needs_no_runtime_on_the_calling_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let set = TaskSet::new();
    set.spawn_on(runtime.handle(), "stuck", pending::<()>())
        .unwrap();
    let report = runtime.block_on(set.shutdown(std::time::Duration::ZERO));
    assert_eq!(report.aborted()[0].label(), "stuck");
}
