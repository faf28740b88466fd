//! Integration tests for `hangfree::tasks` (issue 4). Timer behaviour runs
//! under tokio's paused clock; the only real waits are a blocking closure
//! (real blocking is its nature) and a task that never yields.

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::tasks::DEFAULT_ABORT_WAIT;
use hangfree::{
    FailureKind, Rejected, ShutdownReport, TaskCounts, TaskError, TaskFailure, TaskHandle, TaskId,
    TaskInfo, TaskSet, TaskSetBuilder,
};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready};

/// Panics with `message`; typed `()` so that a task that only panics still
/// has a `TaskOutcome` output (a bare `panic!` block has type `!`).
fn boom(message: &str) {
    panic!("{message}")
}

/// Lets spawned tasks run until `done` holds (or fails after many rounds).
async fn run_until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

// ---- point 2: failures and panics are counted, kept and bounded ----------

/// A blocking closure that really blocks until the test drops the returned release
/// handle: real blocking is the point, since a started blocking closure cannot be
/// aborted and these tests check how the set reports it. Waits at most 10 s, so a bug
/// cannot hang the run. Also returns a receiver told when the closure has started.
fn blocking_until_released() -> (
    impl FnOnce() + Send + 'static,
    oneshot::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let work = move || {
        started_tx.send(()).unwrap();
        let _ = released.recv_timeout(Duration::from_secs(10));
    };
    (work, started_rx, release)
}

#[tokio::test(start_paused = true)]
async fn errors_and_panics_are_counted_and_listed_with_labels() {
    let set = TaskSet::new();
    let survivor_ran = Arc::new(AtomicBool::new(false));
    {
        let survivor_ran = survivor_ran.clone();
        set.spawn("survivor", async move {
            sleep(Duration::from_secs(2)).await;
            survivor_ran.store(true, Ordering::SeqCst);
        })
        .unwrap();
    }
    for n in 0..10 {
        set.spawn(format!("ack {n}"), async move {
            sleep(Duration::from_millis(100)).await;
            Err::<(), _>(format!("lock {n} expired"))
        })
        .unwrap();
    }
    for n in 0..3 {
        set.spawn(format!("parse {n}"), async move {
            sleep(Duration::from_millis(200)).await;
            boom(&format!("bad row {n}"))
        })
        .unwrap();
    }

    sleep(Duration::from_secs(1)).await;
    let counts = set.counts();
    assert_eq!(
        (counts.failed, counts.panicked, counts.completed),
        (10, 3, 0)
    );
    assert_eq!(set.len(), 1, "only the survivor is left");

    let report = set.shutdown(Duration::from_secs(5)).await;
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
        assert_eq!(failure.age(), Duration::from_millis(100));
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
    let report = none_kept.shutdown(Duration::from_secs(1)).await;
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
    let report = set.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        (report.completed(), report.failed(), report.panicked()),
        (1, 1, 1)
    );
    let mut messages: Vec<_> = report.failures().iter().map(TaskFailure::message).collect();
    messages.sort();
    assert_eq!(messages, ["disk full", "no such file"]);
}

// ---- point 3: shutdown always returns ------------------------------------

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
    let grace = Duration::from_secs(5);
    let start = Instant::now();
    let mut shutdown = tokio_test::task::spawn(set.shutdown(grace));
    assert_pending!(shutdown.poll());
    let report = loop {
        advance(Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        // A few steps after the last quick task's timer (995 ms).
        if start.elapsed() == Duration::from_millis(1050) {
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
        assert!(
            start.elapsed() < grace + Duration::from_secs(1),
            "shutdown hangs"
        );
    };
    let took = start.elapsed();
    assert!(took >= grace, "the grace period was respected: {took:?}");
    assert!(
        took <= grace + DEFAULT_ABORT_WAIT + Duration::from_millis(10),
        "{took:?}"
    );
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
    assert!(aborted.age() >= grace && aborted.age() <= grace + Duration::from_millis(10));
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
    let abort_wait = Duration::from_millis(50);
    let grace = Duration::from_millis(100);
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
    assert!(
        took < grace + abort_wait + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(report.unresponsive().len(), 1);
    assert_eq!(report.unresponsive()[0].label(), "spins without yielding");
    assert!(report.unresponsive()[0].age() >= grace + abort_wait);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_landing_in_a_later_shutdown_is_listed_by_that_shutdown() {
    // Real time: a task that does not yield for a while (one worker busy).
    // The first shutdown waits the abort wait out; the second must not
    // reach it before the released task yields (a loaded machine).
    let set = TaskSet::builder()
        .abort_wait(Duration::from_millis(500))
        .build();
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
async fn shutdown_returns_at_once_when_everything_finishes_early() {
    let set = TaskSet::new();
    set.spawn("short", sleep(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    let report = set.shutdown(Duration::from_secs(60)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(300));
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
        std::thread::sleep(Duration::from_millis(300));
        done_tx.send(()).unwrap();
    })
    .unwrap();
    started_rx.await.unwrap();
    let start = Instant::now();
    let report = set.shutdown(Duration::from_millis(10)).await;
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
        let set = TaskSet::builder()
            .abort_wait(Duration::from_millis(20))
            .build();
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

        let after = set.shutdown(Duration::from_secs(10)).await;
        assert!(after.unresponsive().is_empty());
        assert!(!ran.load(Ordering::SeqCst), "the aborted closure never ran");
        assert_eq!((after.completed(), after.counts().aborted), (1, 1));
    });
}

// ---- point 4: nothing is lost after shutdown ------------------------------

#[tokio::test]
async fn spawn_after_shutdown_hands_the_future_back() {
    let set = TaskSet::new();
    set.shutdown(Duration::from_secs(1)).await;
    assert!(set.is_closed());

    let (tx, rx) = oneshot::channel::<u8>();
    let Err(rejected) = set.spawn("late", async move { tx.send(7).unwrap() }) else {
        panic!("a closed set accepted a task");
    };
    rejected.into_inner().await; // the caller still owns the work and can run it
    assert_eq!(rx.await, Ok(7));

    let rejected = set
        .spawn_with_handle("late handle", async { 1 })
        .unwrap_err();
    assert_eq!(rejected.into_inner().await, 1);
    let rejected = set.spawn_blocking("late blocking", || ()).map(|_| ());
    assert!(rejected.is_err());
    let rejected = set.spawn_waiting("late waiting", async {}).await;
    assert_eq!(
        rejected.unwrap_err().to_string(),
        "task not spawned: the task set is shutting down"
    );
    assert_eq!(set.counts().rejected, 4);
    assert_eq!(set.counts().spawned, 0);
}

// ---- point 5: handles ------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn handle_gives_the_output_and_a_panic_as_an_error() {
    let set = TaskSet::new();
    let sum = set
        .spawn_with_handle("sum", async {
            sleep(Duration::from_secs(1)).await;
            20 + 22
        })
        .unwrap();
    assert_eq!(sum.await, Ok(42));

    let panics = set
        .spawn_with_handle("parse", async {
            sleep(Duration::from_secs(1)).await;
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
            sleep(Duration::from_secs(10)).await;
            done.store(true, Ordering::SeqCst);
            "ok"
        })
        .unwrap()
    };
    let id = handle.id();
    drop(handle);
    sleep(Duration::from_secs(3)).await;
    let running = set.running();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id(), id);
    assert_eq!(running[0].label(), "deferred completion");
    assert_eq!(running[0].age(), Duration::from_secs(3));

    sleep(Duration::from_secs(7)).await;
    run_until(|| set.is_empty()).await;
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(set.counts().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn giving_up_on_a_handle_at_a_deadline_leaves_the_task_tracked() {
    // The `scope` integration (`handle.within(&scope)`) is added on main; a
    // plain tokio timeout shows the same property of the handle.
    let set = TaskSet::new();
    let handle = set
        .spawn_with_handle("uncancellable", async {
            sleep(Duration::from_secs(60)).await;
        })
        .unwrap();
    let start = Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(2), handle).await;
    assert!(waited.is_err());
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let running = set.running();
    assert_eq!(running[0].label(), "uncancellable");
    assert_eq!(running[0].age(), Duration::from_secs(2));
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

// ---- point 6: max_in_flight -----------------------------------------------

#[tokio::test(start_paused = true)]
async fn at_most_max_in_flight_tasks_run_at_once() {
    let set = TaskSet::builder().max_in_flight(3).build();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let (current, peak) = (current.clone(), peak.clone());
        set.spawn("limited", async move {
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            sleep(Duration::from_millis(100)).await;
            current.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(set.len(), 20, "tasks waiting for a slot are tracked");
    let start = Instant::now();
    let report = set.shutdown(Duration::from_secs(10)).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(report.completed(), 20);
    // 20 tasks, 3 at a time, 100 ms each: 7 rounds.
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_resumes_as_soon_as_a_slot_frees_in_order() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("first", sleep(Duration::from_secs(1))).unwrap();
    let start = Instant::now();

    let mut second =
        tokio_test::task::spawn(set.spawn_waiting("second", sleep(Duration::from_secs(1))));
    let mut third =
        tokio_test::task::spawn(set.spawn_waiting("third", sleep(Duration::from_secs(1))));
    assert_pending!(second.poll());
    assert_pending!(third.poll());

    advance(Duration::from_secs(1)).await;
    run_until(|| second.is_woken()).await;
    let second_id = assert_ready!(second.poll()).unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_pending!(third.poll());
    assert!(!third.is_woken());

    advance(Duration::from_secs(1)).await;
    run_until(|| third.is_woken()).await;
    let third_id = assert_ready!(third.poll()).unwrap();
    assert!(second_id < third_id);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(set.running()[0].label(), "third");
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_is_rejected_when_shutdown_begins() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holds the slot", pending::<()>()).unwrap();
    let mut waiting = tokio_test::task::spawn(set.spawn_waiting("waits", async {}));
    assert_pending!(waiting.poll());

    let mut shutdown = tokio_test::task::spawn(set.shutdown(Duration::from_secs(1)));
    assert_pending!(shutdown.poll());
    assert!(waiting.is_woken());
    assert!(assert_ready!(waiting.poll()).is_err());
    drop(waiting);
    drop(shutdown);
    assert_eq!(set.counts().rejected, 1);
}

#[test]
#[should_panic(expected = "max_in_flight must be at least 1")]
fn zero_max_in_flight_is_a_programmer_error() {
    let _ = TaskSet::builder().max_in_flight(0);
}

// ---- point 7: diagnostics -------------------------------------------------

#[tokio::test(start_paused = true)]
async fn running_lists_id_label_and_age_and_debug_is_useful() {
    let set = TaskSet::new();
    let a = set.spawn("consume orders", pending::<()>()).unwrap();
    sleep(Duration::from_secs(2)).await;
    // The blocking closure holds until the test has looked (a real wait on a channel,
    // capped so that a bug cannot hang the run): it must still be running when listed.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let b = set
        .spawn_blocking("wait for lock", move || {
            let _ = released.recv_timeout(Duration::from_secs(10));
        })
        .unwrap();
    let running = set.running();
    assert_eq!(running.len(), 2);
    assert_eq!(
        (running[0].id(), running[0].label(), running[0].age()),
        (a, "consume orders", Duration::from_secs(2))
    );
    assert_eq!((running[1].id(), running[1].label()), (b, "wait for lock"));
    assert!(running[1].is_blocking());
    assert_eq!(
        running[0].to_string(),
        format!("{a} \"consume orders\", age 2s")
    );

    let debug = format!("{set:?}");
    assert!(
        debug.starts_with("TaskSet { len: 2, closed: false"),
        "{debug}"
    );
    assert!(debug.contains("spawned: 2"), "{debug}");
    assert_eq!(
        set.to_string(),
        "task set (open): 2 running; 2 spawned, 0 completed, 0 failed, 0 panicked, 0 aborted, 0 rejected"
    );
    release.send(()).unwrap();
}

#[tokio::test]
async fn spawn_works_from_inside_a_driver_task() {
    // The batcher's driver spawns its flushes into a set it holds a clone of.
    let set = TaskSet::new();
    let driver_set = set.clone();
    set.spawn("driver", async move {
        for n in 0..10 {
            driver_set
                .spawn(format!("flush {n}"), async { Ok::<(), String>(()) })
                .unwrap();
        }
    })
    .unwrap();
    run_until(|| set.counts().spawned == 11).await;
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.completed(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_when_tasks_end_while_others_are_spawned() {
    // Four spawners on two workers; most tasks end at once, so a worker
    // often finishes a task before its spawner has registered it (the path
    // where the spawner records the outcome).
    const PER_SPAWNER: u64 = 10_000;
    let set = TaskSet::new();
    let mut spawners = Vec::new();
    for spawner in 0..4 {
        let set = set.clone();
        spawners.push(tokio::spawn(async move {
            for n in 0..PER_SPAWNER {
                let label = if n % 1000 == 0 { "fails" } else { "ok" };
                set.spawn(label, async move {
                    if n % 1000 == 0 {
                        Err(format!("spawner {spawner} task {n}"))
                    } else {
                        Ok(())
                    }
                })
                .unwrap();
                if n % 2500 == 0 {
                    set.spawn("panics", async { boom("on purpose") }).unwrap();
                }
            }
        }));
    }
    for spawner in spawners {
        spawner.await.unwrap();
    }
    let report = set.shutdown(Duration::from_secs(30)).await;
    let counts = report.counts();
    assert_eq!(counts.spawned, 4 * (PER_SPAWNER + 4));
    assert_eq!(counts.completed, 4 * (PER_SPAWNER - 10));
    assert_eq!(counts.failed, 4 * 10);
    assert_eq!(counts.panicked, 4 * 4);
    assert_eq!(counts.aborted, 0);
    assert_eq!(report.failures().len(), 56);
    assert!(report.failures().iter().all(|f| f.label() != "ok"));
    assert!(set.is_empty() && set.running().is_empty());
}

// ---- point 8: dropping the last clone aborts -------------------------------

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

// ---- auto traits -----------------------------------------------------------

#[test]
fn public_types_are_send_sync_and_unpin() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    fn send<T: Send>() {}
    send_sync_unpin::<TaskSet>();
    send_sync_unpin::<TaskSetBuilder>();
    send_sync_unpin::<TaskHandle<String>>();
    send_sync_unpin::<TaskError>();
    send_sync_unpin::<TaskId>();
    send_sync_unpin::<TaskInfo>();
    send_sync_unpin::<TaskFailure>();
    send_sync_unpin::<TaskCounts>();
    send_sync_unpin::<ShutdownReport>();
    send::<Rejected<Pin<Box<dyn Future<Output = ()> + Send>>>>();
    send_sync_unpin::<Rejected<u8>>();

    // The futures returned by the async methods are Send: usable from any
    // spawned driver task.
    fn future_is_send<F: Future + Send>(_: &F) {}
    let set = TaskSet::new();
    future_is_send(&set.shutdown(Duration::ZERO));
    future_is_send(&set.spawn_waiting("x", async {}));
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

// 5 (with `scope`). Awaiting a handle inside `within(&scope)`: the wait ends with
// `Err(Interrupted)` exactly at the deadline, the task keeps running and stays listed,
// and its output is still delivered to the set when it finishes. This is how a caller
// stops waiting on work that cannot be cancelled without losing track of it.
#[tokio::test(start_paused = true)]
async fn a_scoped_wait_on_a_handle_ends_at_the_deadline_while_the_task_runs_on() {
    use hangfree::prelude::*;

    let set = TaskSet::new();
    let finished = Arc::new(AtomicBool::new(false));
    let handle = set
        .spawn_with_handle("settle invoice 42", {
            let finished = finished.clone();
            async move {
                sleep(Duration::from_secs(60)).await;
                finished.store(true, Ordering::SeqCst);
                "settled"
            }
        })
        .unwrap();

    let start = Instant::now();
    let scope = hangfree::CancelScope::new().with_timeout(Duration::from_secs(5));
    let waited = handle.within(&scope).await;
    let interrupted = waited.expect_err("the wait is interrupted at the deadline");
    assert!(interrupted.is_deadline());
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    let running = set.running();
    assert_eq!(running.len(), 1, "the task is still tracked");
    assert_eq!(running[0].label(), "settle invoice 42");
    assert_eq!(running[0].age(), Duration::from_secs(5));
    assert!(!finished.load(Ordering::SeqCst));

    let report = set.shutdown(Duration::from_secs(120)).await;
    assert!(finished.load(Ordering::SeqCst), "the task ran to the end");
    assert_eq!(report.completed(), 1);
    assert!(report.aborted().is_empty());
}

/// Regression tests from an independent review of this module: each one not named
/// "checked" failed on the reviewed code.
#[path = "tasks/review.rs"]
mod review;

/// Shutdown racing spawns on other threads.
#[path = "tasks/report_race.rs"]
mod report_race;

/// A grace or an abort wait of `Duration::MAX`.
#[path = "tasks/no_limit.rs"]
mod no_limit;
