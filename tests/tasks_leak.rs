//! "Finished tasks are forgotten at once": a million fire-and-forget tasks
//! leave no heap residue, measured with a counting global allocator. (Its own
//! test binary, since the global allocator is per binary; one test function,
//! so no other test allocates concurrently.)

use std::time::Duration;

use hangfree::TaskSet;

/// Counts live heap bytes (allocated minus freed) over the whole process.
#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn live_bytes() -> isize {
    alloc::live()
}

const TASKS: usize = 1_000_000;
const WAVE: usize = 10_000;

/// Spawns `WAVE` tasks that each yield once, then lets them all finish.
/// Returns the heap growth with all of them spawned and none run yet.
async fn wave(set: &TaskSet) -> isize {
    let start = live_bytes();
    for _ in 0..WAVE {
        set.spawn("yield once", tokio::task::yield_now()).unwrap();
    }
    let spawned = live_bytes() - start;
    // Bounded, so that a task that is never forgotten fails the test
    // instead of hanging it.
    for _ in 0..1_000_000 {
        if set.is_empty() {
            return spawned;
        }
        tokio::task::yield_now().await;
    }
    panic!("{} tasks still tracked after their wave", set.len());
}

#[test]
fn a_million_finished_tasks_leave_no_residue() {
    let runtime = alloc::counted_current_thread();
    runtime.block_on(async {
        let set = TaskSet::new();
        // Warm up: the runtime's run queue and the set's map reach their
        // working sizes (their capacity is kept between waves by design).
        wave(&set).await;
        wave(&set).await;
        let before = live_bytes();

        for _ in 0..TASKS / WAVE {
            wave(&set).await;
        }
        assert_eq!(set.len(), 0);
        let after = live_bytes();
        let residue = after - before;
        println!("TaskSet: {TASKS} tasks, heap residue {residue} bytes");
        // One byte per task would show as a megabyte.
        assert!(
            residue.abs() < 4096,
            "residue after {TASKS} tasks: {residue} bytes"
        );

        let counts = set.counts();
        assert_eq!(counts.completed as usize, TASKS + 2 * WAVE);
        assert_eq!(counts.spawned, counts.completed);

        let report = set.shutdown(Duration::from_secs(1)).await;
        assert!(report.is_clean());

        // O(live tasks): what a live task costs (tokio's task cell included).
        let per_live_task = wave(&TaskSet::new()).await / WAVE as isize;
        println!("TaskSet: {per_live_task} bytes per live task");

        // For docs/benchmarks.md: a JoinSet used fire-and-forget keeps every
        // finished task until it is joined.
        let before = live_bytes();
        let mut join_set = tokio::task::JoinSet::new();
        for _ in 0..TASKS / WAVE {
            for _ in 0..WAVE {
                join_set.spawn(tokio::task::yield_now());
            }
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        let retained = live_bytes() - before;
        println!(
            "JoinSet: {TASKS} tasks not joined, {retained} bytes retained ({} per task)",
            retained / TASKS as isize
        );
        assert!(
            retained > TASKS as isize * 64,
            "JoinSet keeps finished tasks"
        );
        join_set.detach_all();
    });
}
