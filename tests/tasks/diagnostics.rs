//! What a set tells about itself while it runs: `running()` (id, label,
//! age), exact counters, `Debug` and `Display`.

use std::future::pending;

use hangfree::TaskSet;
use tokio::time::sleep;

use super::{SECOND, boom, run_until};

#[tokio::test(start_paused = true)]
async fn running_lists_id_label_and_age_and_debug_and_display_show_the_state() {
    let set = TaskSet::new();
    let a = set.spawn("consume orders", pending::<()>()).unwrap();
    sleep(2 * SECOND).await;
    // The blocking closure holds until the test has looked (a real wait on a channel,
    // capped so that a bug cannot hang the run): it must still be running when listed.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let b = set
        .spawn_blocking("wait for lock", move || {
            let _ = released.recv_timeout(10 * SECOND);
        })
        .unwrap();
    let running = set.running();
    assert_eq!(running.len(), 2);
    assert_eq!(
        (running[0].id(), running[0].label(), running[0].age()),
        (a, "consume orders", 2 * SECOND)
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
async fn a_task_can_spawn_into_its_own_set() {
    // A driver task holding a clone of its set spawns work into it.
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
    let report = set.shutdown(SECOND).await;
    assert_eq!(report.completed(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_stay_exact_when_tasks_end_while_others_are_spawned() {
    // Four spawners on two workers; most tasks end at once, so a worker
    // often finishes a task before its spawner has attached its abort
    // handle (the path where the spawner records how the task ended).
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
    let report = set.shutdown(30 * SECOND).await;
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
