//! The shutdown report is the whole account even while other threads are
//! still spawning: every spawn that returned `Ok` is in it exactly once.

use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::{TaskId, TaskSet};

use super::{MS, SECOND};

const SPAWNERS: usize = 6;

/// One round: `SPAWNERS` threads spawn until they are rejected while the main
/// thread shuts the set down with no grace. Returns what went wrong, if anything.
fn race_spawns_against_shutdown(
    runtime: &tokio::runtime::Runtime,
    abort_wait: Duration,
) -> Option<String> {
    let set = TaskSet::builder()
        .abort_wait(abort_wait)
        // Spawns wait for a slot now and then, and some tasks are still
        // waiting for one when the grace is over.
        .max_in_flight(64)
        // Every task fails, so that each finished one is in the report by id.
        .max_kept_failures(1 << 20)
        .build();
    let started = AtomicUsize::new(0);
    let go = Barrier::new(SPAWNERS + 1);
    let (report, spawned_ok) = std::thread::scope(|threads| {
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|spawner| {
                let (set, started, go) = (&set, &started, &go);
                let handle = runtime.handle().clone();
                threads.spawn(move || {
                    let _runtime = handle.enter();
                    let mut ok = Vec::new();
                    go.wait();
                    for n in 0_u32.. {
                        // Some tasks end at their first poll (often before
                        // their spawner is back), the others are still running
                        // when the grace is over and are aborted.
                        let yields = if n % 3 == 0 { 50 } else { 0 };
                        let task = async move {
                            for _ in 0..yields {
                                tokio::task::yield_now().await;
                            }
                            Err::<(), _>("done")
                        };
                        let label = format!("spawner {spawner} task {n}");
                        // Every kind of spawn takes part: plain, blocking
                        // (on the first spawner) and waiting (on the second).
                        let spawned = match (spawner, n % 4) {
                            (0, 0) => set.spawn_blocking(label, || Err::<(), _>("done")).ok(),
                            (1, _) => {
                                futures::executor::block_on(set.spawn_waiting(label, task)).ok()
                            }
                            _ => set.spawn(label, task).ok(),
                        };
                        // Rejected: the shutdown has begun.
                        let Some(id) = spawned else { break };
                        ok.push(id);
                        started.fetch_add(1, Ordering::Relaxed);
                    }
                    ok
                })
            })
            .collect();
        go.wait();
        let report = runtime.block_on(async {
            while started.load(Ordering::Relaxed) < 20 * SPAWNERS {
                tokio::task::yield_now().await;
            }
            set.shutdown(Duration::ZERO).await
        });
        let spawned_ok: Vec<TaskId> = spawners
            .into_iter()
            .flat_map(|spawner| spawner.join().unwrap())
            .collect();
        (report, spawned_ok)
    });

    let mut seen: HashMap<TaskId, Vec<&str>> = HashMap::new();
    for failure in report.failures() {
        seen.entry(failure.id()).or_default().push("failed");
    }
    for task in report.aborted() {
        seen.entry(task.id()).or_default().push("aborted");
    }
    for task in report.unresponsive() {
        seen.entry(task.id()).or_default().push("unresponsive");
    }
    let mut wrong = Vec::new();
    for id in &spawned_ok {
        match seen.remove(id).as_deref() {
            Some([_]) => {}
            Some(columns) => wrong.push(format!("{id} is in {columns:?}")),
            None => wrong.push(format!("{id} is missing")),
        }
    }
    wrong.extend(seen.keys().map(|id| format!("{id} was never spawned")));
    let counts = report.counts();
    let accounted = counts.completed
        + counts.failed
        + counts.panicked
        + counts.aborted
        + report.unresponsive().len() as u64;
    if counts.spawned != spawned_ok.len() as u64 || accounted != counts.spawned {
        wrong.push(format!(
            "{} spawns returned Ok; report: {counts}, {} unresponsive",
            spawned_ok.len(),
            report.unresponsive().len()
        ));
    }
    if counts.aborted != report.aborted().len() as u64 {
        wrong.push(format!(
            "{} aborts counted, {} listed",
            counts.aborted,
            report.aborted().len()
        ));
    }
    (!wrong.is_empty()).then(|| format!("abort wait {abort_wait:?}: {}", wrong.join("; ")))
}

#[test]
fn a_shutdown_racing_spawners_reports_every_spawn_that_returned_ok_exactly_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = Vec::new();
    for round in 0..300 {
        let abort_wait = Duration::from_millis(round % 2);
        if let Some(wrong) = race_spawns_against_shutdown(&runtime, abort_wait) {
            failed.push(format!("round {round}: {wrong}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 300 reports were not the whole account, e.g. {}",
        failed.len(),
        failed[0]
    );
}

/// A future whose destructor blocks until released: what a shut-down runtime
/// runs inside `spawn`, since it drops a task's future at once.
struct BlocksWhenDropped {
    dropping: std::sync::mpsc::Sender<()>,
    released: std::sync::mpsc::Receiver<()>,
}

impl Drop for BlocksWhenDropped {
    fn drop(&mut self) {
        let _ = self.dropping.send(());
        // Real blocking is the point; bounded so that a bug cannot hang the run.
        let _ = self.released.recv_timeout(10 * SECOND);
    }
}

#[test]
fn a_spawn_stuck_in_a_destructor_is_reported_and_does_not_hold_up_shutdown() {
    let dead = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let dead_handle = dead.handle().clone();
    drop(dead);
    let live = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let abort_wait = 20 * MS;
    let set = TaskSet::builder().abort_wait(abort_wait).build();
    let (dropping_tx, dropping) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let future = BlocksWhenDropped {
        dropping: dropping_tx,
        released,
    };

    std::thread::scope(|threads| {
        let spawner = threads.spawn(|| {
            let _runtime = dead_handle.enter();
            set.spawn("stuck in drop", async move {
                let _future = future;
            })
        });
        dropping.recv().unwrap();
        // The spawn call is still running (the destructor blocks inside it).
        let began = std::time::Instant::now();
        let report = live.block_on(set.shutdown(Duration::ZERO));
        let took = began.elapsed();
        assert!(
            took < 2 * SECOND,
            "shutdown waited {took:?} for a spawn in progress"
        );
        assert!(took >= abort_wait, "the abort wait was cut short: {took:?}");
        assert_eq!(report.counts().spawned, 1, "{report}");
        assert_eq!(report.unresponsive().len(), 1, "{report}");
        assert_eq!(report.unresponsive()[0].label(), "stuck in drop");

        drop(release);
        let id = spawner.join().unwrap().expect("the spawn was accepted");
        assert_eq!(report.unresponsive()[0].id(), id);
    });
    assert!(set.is_empty());
    assert_eq!(set.counts().aborted, 1);
}

#[test]
fn a_report_accounts_for_every_task_ending_while_it_is_built() {
    // Tasks keep ending on two workers while shutdown builds its report on
    // the main thread, for many rounds. Each report must account for every task:
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
                tokio::time::sleep(MS).await;
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
