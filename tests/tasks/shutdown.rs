//! `shutdown(grace)` always returns, within the grace period plus the abort
//! wait, and names what it aborted and what did not respond; dropping the
//! last clone of a set aborts what is left.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::tasks::DEFAULT_ABORT_WAIT;
use hangfree::{TaskId, TaskInfo, TaskSet};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};
use tokio_test::assert_pending;

use super::{MS, SECOND, blocking_until_released};

#[tokio::test(start_paused = true)]
async fn shutdown_returns_within_grace_plus_bound_and_names_what_hung() {
    let set = TaskSet::new();
    for n in 0..100_u64 {
        // 5 ms .. 995 ms
        set.spawn("quick", async move {
            sleep(Duration::from_millis(10 * n + 5)).await
        })
        .unwrap();
    }
    let never = set.spawn("never completes", pending::<()>()).unwrap();
    let token = set.token();
    let cooperative = set
        .spawn("cooperative", async move { token.cancelled().await })
        .unwrap();

    let (work, started, release) = blocking_until_released();
    let blocking = set.spawn_blocking("blocking export", work).unwrap();
    started.await.unwrap();
    assert_eq!(set.len(), 103);

    // The running blocking closure stops tokio from auto-advancing the paused
    // clock, so the test moves it by hand, 10 ms at a time.
    let grace = 5 * SECOND;
    let start = Instant::now();
    let mut shutdown = tokio_test::task::spawn(set.shutdown(grace));
    assert_pending!(shutdown.poll());
    let report = loop {
        advance(10 * MS).await;
        tokio::task::yield_now().await;
        // A few steps after the last quick task's timer (995 ms).
        if start.elapsed() == 1050 * MS {
            let counts = set.counts();
            assert_eq!(
                counts.completed, 101,
                "100 quick tasks and the cooperative one"
            );
            let left: Vec<TaskId> = set.running().iter().map(TaskInfo::id).collect();
            assert_eq!(left, [never, blocking]);
        }
        if let std::task::Poll::Ready(report) = shutdown.poll() {
            break report;
        }
        assert!(start.elapsed() < grace + SECOND, "shutdown hangs");
    };
    let took = start.elapsed();
    assert!(took >= grace, "the grace period was respected: {took:?}");
    assert!(took <= grace + DEFAULT_ABORT_WAIT + 10 * MS, "{took:?}");
    assert_eq!(report.elapsed(), took);

    assert_eq!(report.completed(), 101);
    assert!(
        !report.aborted().iter().any(|task| task.id() == cooperative),
        "the cooperative task finished by itself"
    );
    assert_eq!(report.aborted().len(), 1);
    let aborted = &report.aborted()[0];
    assert_eq!((aborted.id(), aborted.label()), (never, "never completes"));
    // The test polls the shutdown after each 10 ms step, so the abort is
    // issued at most one step after the grace period ended.
    assert!(aborted.age() >= grace && aborted.age() <= grace + 10 * MS);
    assert!(!aborted.is_blocking());

    assert_eq!(report.unresponsive().len(), 1);
    let stuck = &report.unresponsive()[0];
    assert_eq!((stuck.id(), stuck.label()), (blocking, "blocking export"));
    assert!(stuck.is_blocking());
    assert_eq!(stuck.age(), took);
    assert!(!report.is_clean());
    assert_eq!(report.counts().aborted, 1);
    // (Times depend on which 10 ms step the abort was issued at: 5.1 s or
    // 5.11 s.)
    let text = report.to_string();
    let (head, tail) = text.split_once(": ").unwrap();
    assert!(head.starts_with("task set shut down in 5.1"), "{text}");
    assert!(
        tail.starts_with("101 completed, 0 failed, 0 panicked, 1 aborted, 1 unresponsive"),
        "{text}"
    );
    let aborted_line = format!("\n  aborted: {never} \"never completes\", age 5");
    assert!(text.contains(&aborted_line), "{text}");
    let stuck_line = format!(
        "\n  unresponsive (still running): {blocking} \"blocking export\" (blocking), age 5.1"
    );
    assert!(text.contains(&stuck_line), "{text}");

    // The unresponsive closure is still tracked; once it ends it is forgotten.
    assert_eq!(set.running()[0].label(), "blocking export");
    drop(release);
    let again = set.shutdown(grace).await;
    assert!(again.unresponsive().is_empty());
    assert_eq!(again.completed(), 102);
    assert!(set.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_even_if_a_task_never_yields() {
    // Real time: a task that never yields pins a worker thread, which paused
    // time cannot model. Short real limits, asserted both ways.
    let abort_wait = 50 * MS;
    let grace = 100 * MS;
    let set = TaskSet::builder().abort_wait(abort_wait).build();
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicBool::new(false));
    {
        let (stop, spinning) = (stop.clone(), spinning.clone());
        set.spawn("spins without yielding", async move {
            spinning.store(true, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        })
        .unwrap();
    }
    while !spinning.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }

    let began = std::time::Instant::now();
    let report = set.shutdown(grace).await;
    let took = began.elapsed();
    stop.store(true, Ordering::SeqCst);

    assert!(took >= grace + abort_wait, "{took:?}");
    assert!(took < grace + abort_wait + SECOND, "{took:?}");
    assert_eq!(report.unresponsive().len(), 1);
    assert_eq!(report.unresponsive()[0].label(), "spins without yielding");
    assert!(report.unresponsive()[0].age() >= grace + abort_wait);
}

#[test]
fn shutdown_returns_when_every_worker_is_pinned_by_a_task_that_never_yields() {
    // Real time by nature (tasks that never yield). Two workers, each pinned
    // by a task stuck in blocking code (a spin here; a sync `recv`,
    // `std::thread::sleep` or a blocking mutex in the wild), so no worker
    // drives tokio's timers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let grace = 100 * MS;
    let abort_wait = 50 * MS;
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicUsize::new(0));
    // Rescue: if shutdown has not returned after 3 s, release the spinners so
    // that the test ends (and fails) instead of hanging.
    let rescued = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let rescuer = {
        let (stop, rescued, finished) = (stop.clone(), rescued.clone(), finished.clone());
        std::thread::spawn(move || {
            for _ in 0..300 {
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                // A real wait is the point: this thread watches for a hang.
                std::thread::sleep(10 * MS);
            }
            rescued.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        })
    };
    let (took, report) = runtime.block_on(async {
        let set = TaskSet::builder().abort_wait(abort_wait).build();
        for n in 0..2 {
            let (stop, spinning) = (stop.clone(), spinning.clone());
            set.spawn(format!("stuck {n}"), async move {
                spinning.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        }
        while spinning.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let began = std::time::Instant::now();
        let report = set.shutdown(grace).await;
        (began.elapsed(), report)
    });
    finished.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    rescuer.join().unwrap();
    drop(runtime);
    assert!(
        !rescued.load(Ordering::SeqCst) && took < grace + abort_wait + SECOND,
        "shutdown({grace:?}) took {took:?}: it returned only because the stuck tasks were released"
    );
    assert!(took >= grace + abort_wait, "{took:?}");
    let stuck: Vec<&str> = report
        .unresponsive()
        .iter()
        .map(|task| task.label())
        .collect();
    assert_eq!(stuck, ["stuck 0", "stuck 1"], "{report}");
    assert!(report.aborted().is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_landing_in_a_later_shutdown_is_listed_by_that_shutdown() {
    // Real time: a task that does not yield for a while (one worker busy).
    // The first shutdown waits the abort wait out; the second must not
    // reach it before the released task yields (a loaded machine).
    let set = TaskSet::builder().abort_wait(500 * MS).build();
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::new(AtomicBool::new(false));
    {
        let (stop, spinning) = (stop.clone(), spinning.clone());
        set.spawn("busy, then yields", async move {
            spinning.store(true, Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            // The first yield after the abort: the abort lands here.
            tokio::task::yield_now().await;
        })
        .unwrap();
    }
    while !spinning.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    let first = set.shutdown(Duration::ZERO).await;
    assert_eq!(first.unresponsive().len(), 1, "{first}");
    assert!(first.aborted().is_empty(), "{first}");

    // The second shutdown aborts again (grace zero, at its first poll); the
    // task yields while it waits, so its abort lands in this shutdown.
    let mut second = tokio_test::task::spawn(set.shutdown(Duration::ZERO));
    assert_pending!(second.poll());
    stop.store(true, Ordering::SeqCst);
    let second = second.await;
    assert_eq!(second.aborted().len(), 1, "{second}");
    assert_eq!(second.aborted()[0].label(), "busy, then yields");
    assert!(second.unresponsive().is_empty(), "{second}");
    assert_eq!(second.counts().aborted, 1);
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_that_aborts_a_task_lists_it_in_its_report() {
    let set = TaskSet::new();
    set.spawn("hangs", std::future::pending::<()>()).unwrap();
    set.spawn("quick", sleep(10 * MS)).unwrap();
    let (a, b) = tokio::join!(set.shutdown(10 * SECOND), set.shutdown(SECOND));
    // `b` aborted the task: its report must name it; `a` aborted nothing.
    assert_eq!(b.aborted().len(), 1, "\na: {a}\nb: {b}");
    assert!(a.aborted().is_empty(), "\na: {a}\nb: {b}");
    assert_eq!(b.elapsed(), SECOND);
    assert_eq!(a.elapsed(), SECOND);
    assert_eq!((a.counts().completed, a.counts().aborted), (1, 1));
    assert!(set.is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_at_once_when_everything_finishes_early() {
    let set = TaskSet::new();
    set.spawn("short", sleep(300 * MS)).unwrap();
    let start = Instant::now();
    let report = set.shutdown(60 * SECOND).await;
    assert_eq!(start.elapsed(), 300 * MS);
    assert!(report.is_clean());
    assert_eq!(report.completed(), 1);
}

#[tokio::test(start_paused = true)]
async fn under_a_paused_clock_only_tokios_clock_ends_the_grace_period() {
    // Shutdown's real-time backstop (for workers pinned by tasks that never
    // yield) wakes it after `grace` of real time; under a paused clock that
    // must not count. A running blocking closure stops auto-advance, so the
    // paused clock stays put while real time passes the grace period: the
    // shutdown must wait for the closure (and the task waiting for it), not
    // abort at real time.
    let set = TaskSet::new();
    let (started_tx, started_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    set.spawn(
        "waits for the closure",
        async move { done_rx.await.unwrap() },
    )
    .unwrap();
    set.spawn_blocking("real work", move || {
        started_tx.send(()).unwrap();
        // Real blocking is the point: 30 times the grace period, real time.
        std::thread::sleep(300 * MS);
        done_tx.send(()).unwrap();
    })
    .unwrap();
    started_rx.await.unwrap();
    let start = Instant::now();
    let report = set.shutdown(10 * MS).await;
    assert_eq!(report.elapsed(), Duration::ZERO, "{report}");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(report.is_clean(), "nothing aborted: {report}");
    assert_eq!(report.completed(), 2);
}

#[test]
fn a_blocking_closure_that_has_not_started_never_runs_after_shutdown() {
    // Real time: with one blocking thread busy, a second closure waits in the
    // pool's queue. Its abort lands only when the pool picks it up (then it
    // is dropped without running), so until then it is reported unresponsive.
    // (Paused time does not fit: tokio stops auto-advancing the paused clock
    // while a blocking closure runs.)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        let set = TaskSet::builder().abort_wait(20 * MS).build();
        let (work, started, release) = blocking_until_released();
        let busy = set.spawn_blocking("busy", work).unwrap();
        started.await.unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let queued = {
            let ran = ran.clone();
            set.spawn_blocking("queued", move || ran.store(true, Ordering::SeqCst))
                .unwrap()
        };

        let report = set.shutdown(Duration::ZERO).await;
        drop(release);
        let aborted: Vec<TaskId> = report.aborted().iter().map(TaskInfo::id).collect();
        let unresponsive: Vec<TaskId> = report.unresponsive().iter().map(TaskInfo::id).collect();
        assert_eq!(aborted, []);
        assert_eq!(unresponsive, [busy, queued]);

        let after = set.shutdown(10 * SECOND).await;
        assert!(after.unresponsive().is_empty());
        assert!(!ran.load(Ordering::SeqCst), "the aborted closure never ran");
        assert_eq!((after.completed(), after.counts().aborted), (1, 1));
    });
}

#[tokio::test]
async fn dropping_the_last_clone_aborts_remaining_tasks() {
    let set = TaskSet::new();
    let clone = set.clone();
    let (tx, mut rx) = oneshot::channel::<()>();
    set.spawn("holds a sender", async move {
        let _tx = tx; // dropped when the task is aborted
        pending::<()>().await
    })
    .unwrap();
    let token = set.token();

    drop(set);
    tokio::task::yield_now().await;
    assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty));
    assert!(!token.is_cancelled(), "a clone is still alive");

    drop(clone);
    assert!(
        rx.await.is_err(),
        "the task was aborted and its sender dropped"
    );
    assert!(token.is_cancelled());
}
