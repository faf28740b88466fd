//! Adversarial review of `hangfree::tasks` (compiled into `tests/tasks.rs`): each test pins a defect (it failed
//! on the reviewed code) or a property checked and found to hold.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::TaskSet;
use tokio::time::{advance, sleep};

/// An error whose `Display` panics (a buggy user type).
struct PanickyDisplay;

impl fmt::Display for PanickyDisplay {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of the task's error panicked")
    }
}

use super::run_until;

// ---- F1: a panic while judging the output escapes and is counted "aborted"

#[tokio::test]
async fn a_panic_in_the_errors_display_is_a_panic_of_the_task_not_an_abort() {
    let set = TaskSet::new();
    set.spawn("ack", async { Err::<(), _>(PanickyDisplay) })
        .unwrap();
    run_until(|| set.is_empty()).await;
    let counts = set.counts();
    assert_eq!(counts.aborted, 0, "nobody aborted it: {counts}");
    assert_eq!(counts.failed + counts.panicked, 1, "{counts}");
    assert_eq!(set.failures().len(), 1, "the failure must be kept");
    assert_eq!(set.failures()[0].label(), "ack");
}

#[tokio::test]
async fn a_panic_in_a_blocking_closures_error_display_is_recorded_as_a_panic() {
    let set = TaskSet::new();
    set.spawn_blocking("hash", || Err::<(), _>(PanickyDisplay))
        .unwrap();
    let report = set.shutdown(Duration::from_secs(5)).await;
    let counts = report.counts();
    assert_eq!(counts.aborted, 0, "nobody aborted it: {counts}");
    assert_eq!(counts.failed + counts.panicked, 1, "{counts}");
    assert_eq!(report.failures().len(), 1, "the failure must be kept");
}

// ---- F2: tasks spawned while the set is full do not start in spawn order --

#[tokio::test(start_paused = true)]
async fn a_task_spawned_while_full_is_not_overtaken_by_a_later_spawn_waiting() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let order = Arc::new(Mutex::new(Vec::new()));
    set.spawn("holder", sleep(Duration::from_secs(1))).unwrap();
    let log = order.clone();
    // Spawned first, while full: "tracked at once and starts when a slot
    // frees (in spawn order)".
    set.spawn("spawned first", async move {
        log.lock().unwrap().push("spawned first");
        sleep(Duration::from_secs(1)).await;
    })
    .unwrap();
    let log = order.clone();
    set.spawn_waiting("spawned second", async move {
        log.lock().unwrap().push("spawned second");
        sleep(Duration::from_secs(1)).await;
    })
    .await
    .unwrap();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        *order.lock().unwrap(),
        ["spawned first", "spawned second"],
        "slots must be handed out in spawn order"
    );
}

#[test]
fn tasks_spawned_while_full_start_in_spawn_order_on_a_multi_thread_runtime() {
    // One worker: no stealing, so the order is deterministic. Spawning from a
    // worker puts each new task in the worker's LIFO slot.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let order = runtime.block_on(async {
        tokio::spawn(async {
            let set = TaskSet::builder().max_in_flight(1).build();
            let order = Arc::new(Mutex::new(Vec::new()));
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            set.spawn("holder", async move {
                let _ = released.await;
            })
            .unwrap();
            for n in 0..4 {
                let log = order.clone();
                set.spawn(format!("task {n}"), async move {
                    log.lock().unwrap().push(n);
                })
                .unwrap();
            }
            // Let every task reach its slot wait, then free the slot.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            release.send(()).unwrap();
            let report = set.shutdown(Duration::from_secs(5)).await;
            assert_eq!(report.completed(), 5);
            Arc::try_unwrap(order).unwrap().into_inner().unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(order, [0, 1, 2, 3], "documented: starts in spawn order");
}

// ---- F3: shutdown never returns when every worker is pinned ---------------

#[test]
fn shutdown_returns_when_every_worker_is_pinned_by_a_task_that_never_yields() {
    // Real time by nature (tasks that never yield). Two workers, as on this
    // 2-core machine; two tasks stuck in blocking code (a spin here; a sync
    // `recv`, `std::thread::sleep` or a blocking mutex in the wild).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let grace = Duration::from_millis(100);
    let abort_wait = Duration::from_millis(50);
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
                std::thread::sleep(Duration::from_millis(10));
            }
            rescued.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        })
    };
    let took = runtime.block_on(async {
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
        let _report = set.shutdown(grace).await;
        began.elapsed()
    });
    finished.store(true, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    rescuer.join().unwrap();
    drop(runtime);
    assert!(
        !rescued.load(Ordering::SeqCst) && took < grace + abort_wait + Duration::from_secs(1),
        "shutdown({grace:?}) took {took:?}: it returned only because the stuck tasks were released"
    );
}

// ---- F4: a task ending while the report is built is in no column ---------

#[test]
fn every_spawned_task_is_accounted_for_in_the_report() {
    // Stress: tasks keep ending on two workers while shutdown builds its
    // report on the main thread. Each report must account for every task:
    // spawned == completed + failed + panicked + aborted + unresponsive.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut mismatches = Vec::new();
    for round in 0..600 {
        let set = TaskSet::builder().abort_wait(Duration::ZERO).build();
        runtime.block_on(async {
            for n in 0..200_u32 {
                set.spawn("spin", async move {
                    // Never yields: ends by itself after a few microseconds.
                    let spins = 200 + (n % 17) * 300;
                    for _ in 0..spins {
                        std::hint::spin_loop();
                    }
                })
                .unwrap();
            }
            let report = set.shutdown(Duration::ZERO).await;
            let c = report.counts();
            let accounted = c.completed
                + c.failed
                + c.panicked
                + c.aborted
                + report.unresponsive().len() as u64;
            if accounted != c.spawned {
                mismatches.push(format!(
                    "round {round}: {c}; {} unresponsive",
                    report.unresponsive().len()
                ));
            }
        });
        runtime.block_on(async {
            // Real time: the stragglers run on the workers.
            for _ in 0..2_000 {
                if set.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(set.is_empty(), "round {round}: {set:?} {:?}", set.running());
    }
    assert!(
        mismatches.is_empty(),
        "{} reports lost tasks, e.g. {}",
        mismatches.len(),
        mismatches[0]
    );
}

// ---- F5: a concurrent shutdown steals the aborting shutdown's list -------

#[tokio::test(start_paused = true)]
async fn the_shutdown_that_aborts_a_task_lists_it_in_its_report() {
    let set = TaskSet::new();
    set.spawn("hangs", std::future::pending::<()>()).unwrap();
    set.spawn("quick", sleep(Duration::from_millis(10)))
        .unwrap();
    let (a, b) = tokio::join!(
        set.shutdown(Duration::from_secs(10)),
        set.shutdown(Duration::from_secs(1))
    );
    // `b` aborted the task: its report must name it; `a` aborted nothing.
    assert_eq!(b.aborted().len(), 1, "\na: {a}\nb: {b}");
    assert!(a.aborted().is_empty(), "\na: {a}\nb: {b}");
    assert_eq!(b.elapsed(), Duration::from_secs(1));
    assert_eq!(a.elapsed(), Duration::from_secs(1));
    assert_eq!((a.counts().completed, a.counts().aborted), (1, 1));
    assert!(set.is_empty());
}

// ---- checked and found correct --------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_cancelled_spawn_waiting_leaks_no_slot() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holder", sleep(Duration::from_secs(1))).unwrap();
    let waiting = tokio::time::timeout(
        Duration::from_millis(10),
        set.spawn_waiting("gives up", async {}),
    )
    .await;
    assert!(waiting.is_err());
    advance(Duration::from_secs(1)).await;
    run_until(|| set.is_empty()).await;
    let again = tokio::time::timeout(
        Duration::from_millis(10),
        set.spawn_waiting("gets the slot", sleep(Duration::from_secs(1))),
    )
    .await;
    assert!(matches!(again, Ok(Ok(_))), "the slot came back");
}

#[tokio::test]
async fn a_non_string_panic_payload_is_kept_with_a_message() {
    let set = TaskSet::new();
    set.spawn("odd", async { odd_panic() }).unwrap();
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.panicked(), 1);
    assert_eq!(report.counts().aborted, 0);
    assert!(!report.failures()[0].message().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_handle_awaited_after_the_set_is_dropped_says_aborted() {
    let set = TaskSet::new();
    let handle = set
        .spawn_with_handle("orphan", std::future::pending::<()>())
        .unwrap();
    drop(set);
    assert!(handle.await.unwrap_err().is_aborted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_holds_under_mixed_spawns_on_two_workers() {
    let set = TaskSet::builder().max_in_flight(3).build();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let work = |now: Arc<AtomicUsize>, peak: Arc<AtomicUsize>| async move {
        let running = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(running, Ordering::SeqCst);
        tokio::task::yield_now().await;
        now.fetch_sub(1, Ordering::SeqCst);
    };
    for n in 0..3000 {
        let job = work(now.clone(), peak.clone());
        match n % 3 {
            0 => drop(set.spawn("spawn", job).unwrap()),
            1 => drop(set.spawn_with_handle("handle", job).unwrap()),
            _ => drop(set.spawn_waiting("waiting", job).await.unwrap()),
        }
    }
    let report = set.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.completed(), 3000);
    assert!(peak.load(Ordering::SeqCst) <= 3, "peak {peak:?}");
}

/// Panics with a non-string payload; typed `()` to have a `TaskOutcome`.
fn odd_panic() {
    std::panic::panic_any(42_u32)
}
