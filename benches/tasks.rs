//! 100,000 tasks that each yield once, spawned then waited for, on a
//! 2-worker runtime: `TaskSet` (labels, outcomes, shutdown) against bare
//! `tokio::spawn` (awaiting every handle), `JoinSet` (`join_next` loop) and
//! `TaskTracker` (close and wait), and a floor of any set that lists its live
//! tasks (`tracker_and_map`). Two groups: spawned from the `block_on`
//! thread, and from inside a task.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
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
    group.bench_function("tracker_and_map", |b| b.to_async(&rt).iter(tracker_and_map));
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
    group.bench_function("tracker_and_map", |b| {
        b.to_async(&rt)
            .iter(|| async { tokio::spawn(tracker_and_map()).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, spawn_and_wait);

/// The floor of any task set that can list its live tasks, as `TaskSet` does for
/// `running()`, its report and the shutdown's aborts: `TaskTracker`, plus the least that
/// listing takes, an id and an entry (label, start) in a map sharded over padded locks,
/// put in before the spawn and taken out by the task as it ends. No abort handles, no
/// outcomes, no report: `TaskSet` does all of this and more. The start is read from std's
/// clock, which is cheaper than tokio's with the `test-util` feature the benches build.
async fn tracker_and_map() {
    #[derive(Default)]
    struct IdHasher(u64);
    impl Hasher for IdHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, _: &[u8]) {
            unreachable!("only ids are hashed")
        }
        fn write_u64(&mut self, id: u64) {
            self.0 = id >> 3;
        }
    }
    type Live = HashMap<u64, (&'static str, Instant), BuildHasherDefault<IdHasher>>;
    #[repr(align(128))]
    #[derive(Default)]
    struct Shard(Mutex<Live>);

    let tracker = TaskTracker::new();
    let shards: Arc<[Shard]> = (0..8).map(|_| Shard::default()).collect();
    let next_id = AtomicU64::new(0);
    for _ in 0..TASKS {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let shard = (id % 8) as usize;
        shards[shard]
            .0
            .lock()
            .unwrap()
            .insert(id, ("yield once", Instant::now()));
        let shards = Arc::clone(&shards);
        tracker.spawn(async move {
            yield_now().await;
            shards[shard].0.lock().unwrap().remove(&id);
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// CPU time (ms) used so far by all threads of this process (runtime
/// workers included), from `/proc/self/task/*/schedstat` (Linux).
fn cpu_ms() -> Option<f64> {
    let mut total_ns = 0_u64;
    for thread in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok()?;
        total_ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e6)
}

/// `TASKS_INTERLEAVED=<rounds> cargo bench --bench tasks`: runs the
/// variants in turn, round after round, and prints medians of wall time and
/// of CPU time relative to bare `tokio::spawn`. On a machine shared with
/// other work, load drifts over the seconds criterion spends on each
/// variant; interleaving exposes them all to the same drift.
fn interleaved(rounds: usize) {
    let rt = runtime();
    let names = [
        "tokio_spawn",
        "join_set",
        "task_tracker",
        "task_set",
        "tracker_and_map",
    ];
    for from_task in [false, true] {
        let mut wall = vec![Vec::new(); names.len()];
        let mut cpu = vec![Vec::new(); names.len()];
        for _ in 0..rounds {
            for (variant, (wall, cpu)) in wall.iter_mut().zip(&mut cpu).enumerate() {
                let run = async move {
                    match variant {
                        0 => bare().await,
                        1 => join_set().await,
                        2 => task_tracker().await,
                        3 => task_set().await,
                        _ => tracker_and_map().await,
                    }
                };
                let (start, cpu_start) = (std::time::Instant::now(), cpu_ms());
                if from_task {
                    rt.block_on(async { tokio::spawn(run).await.unwrap() });
                } else {
                    rt.block_on(run);
                }
                wall.push(start.elapsed().as_secs_f64() * 1e3);
                if let (Some(end), Some(start)) = (cpu_ms(), cpu_start) {
                    cpu.push(end - start);
                }
            }
        }
        let median = |samples: &mut Vec<f64>| {
            samples.sort_by(f64::total_cmp);
            samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let wall: Vec<f64> = wall.iter_mut().map(median).collect();
        let cpu: Vec<f64> = cpu.iter_mut().map(median).collect();
        let group = if from_task {
            "from_a_task"
        } else {
            "from_block_on"
        };
        println!("interleaved, {rounds} rounds, {group}: median wall / median CPU time");
        for (index, name) in names.iter().enumerate() {
            println!(
                "  {name:13} {:7.1} ms ({:.2}x)   cpu {:7.1} ms ({:.2}x)",
                wall[index],
                wall[index] / wall[0],
                cpu[index],
                cpu[index] / cpu[0]
            );
        }
    }
}

/// `TASKS_ONLY=<variant>[/from_a_task] cargo bench --bench tasks`: runs one
/// variant 20 times and nothing else, for a profiler (`perf record`,
/// `valgrind --tool=callgrind`) to see that variant alone.
fn only(spec: &str) {
    let rt = runtime();
    let (name, from_task) = match spec.split_once('/') {
        Some((name, "from_a_task")) => (name, true),
        _ => (spec, false),
    };
    for _ in 0..20 {
        let name = name.to_owned();
        let run = async move {
            match name.as_str() {
                "tokio_spawn" => bare().await,
                "join_set" => join_set().await,
                "task_tracker" => task_tracker().await,
                "task_set" => task_set().await,
                "tracker_and_map" => tracker_and_map().await,
                other => panic!("no variant {other:?}"),
            }
        };
        if from_task {
            rt.block_on(async { tokio::spawn(run).await.unwrap() });
        } else {
            rt.block_on(run);
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("TASKS_ONLY") {
        only(&spec);
        return;
    }
    if let Some(rounds) = std::env::var("TASKS_INTERLEAVED")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
