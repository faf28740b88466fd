//! 100,000 tasks that each yield once, spawned then waited for, on a
//! 2-worker runtime: `TaskSet` (labels, outcomes, shutdown) against bare
//! `tokio::spawn` (awaiting every handle), `JoinSet` (`join_next` loop) and
//! `TaskTracker` (close and wait). Two groups: spawned from the `block_on`
//! thread, and from inside a task.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hangfree::TaskSet;
use tokio::task::{JoinSet, yield_now};
use tokio_util::task::TaskTracker;

const TASKS: usize = 100_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn bare() {
    let mut handles = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        handles.push(tokio::spawn(yield_now()));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

async fn join_set() {
    let mut set = JoinSet::new();
    for _ in 0..TASKS {
        set.spawn(yield_now());
    }
    while let Some(joined) = set.join_next().await {
        joined.unwrap();
    }
}

async fn task_tracker() {
    let tracker = TaskTracker::new();
    for _ in 0..TASKS {
        tracker.spawn(yield_now());
    }
    tracker.close();
    tracker.wait().await;
}

async fn task_set() {
    let set = TaskSet::new();
    for _ in 0..TASKS {
        set.spawn("yield once", yield_now()).unwrap();
    }
    let report = set.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report.completed(), TASKS as u64);
}

fn spawn_and_wait(c: &mut Criterion) {
    let rt = runtime();

    // Spawned from the runtime's `block_on` thread (criterion's async
    // driver), as the anchors were measured: spawns go through the
    // runtime's shared injection queue.
    let mut group = c.benchmark_group("tasks/100k_yield_once/from_block_on");
    group.sample_size(20);
    group.bench_function("tokio_spawn", |b| b.to_async(&rt).iter(bare));
    group.bench_function("join_set", |b| b.to_async(&rt).iter(join_set));
    group.bench_function("task_tracker", |b| b.to_async(&rt).iter(task_tracker));
    group.bench_function("task_set", |b| b.to_async(&rt).iter(task_set));
    group.finish();

    // Spawned from inside a task on a worker, as a service's consumer loop
    // does: spawns go to that worker's local queue.
    let mut group = c.benchmark_group("tasks/100k_yield_once/from_a_task");
    group.sample_size(20);
    group.bench_function("tokio_spawn", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(bare()).await.unwrap() })
    });
    group.bench_function("join_set", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(join_set()).await.unwrap() })
    });
    group.bench_function("task_tracker", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(task_tracker()).await.unwrap() })
    });
    group.bench_function("task_set", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(task_set()).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, spawn_and_wait);
criterion_main!(benches);
