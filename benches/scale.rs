//! How the cost grows with the work: the shapes a service has, not only one loop on one
//! thread. Every table is interleaved (each variant its own timed loop, in turn, round
//! after round; see `support/interleave.rs`):
//!
//! 1. one scope shared by every worker, against a scope per worker and a shared token;
//! 2. one guarded await with 0, 1,000 and 100,000 other waiters parked on the same scope;
//! 3. cancelling a scope with 100,000 parked waiters, against a `CancellationToken` with as
//!    many `cancelled()` waiters;
//! 4. spawning and finishing tasks with 0 and 100,000 other live tasks in the set, and
//!    `running()` and `shutdown` over 100,000 live tasks;
//! 5. `Batcher` pushes from 1, 2 and 8 producer tasks on a 2-worker runtime.
//!
//! `SCALE_ROUNDS=21 cargo bench --bench scale` (default 5 rounds); `SCALE_ONLY=<part>` runs
//! the parts whose name contains it (`shared_scope`, `many_waiters`, `many_live_tasks`,
//! `many_producers`).

use std::future::pending;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hangfree::batch::Batcher;
use hangfree::prelude::*;
use hangfree::{CancelScope, TaskSet};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::yield_now;
use tokio_util::sync::CancellationToken;

#[path = "support/interleave.rs"]
mod support;

use support::{Variant, interleave, per_op};

const FAR: Duration = Duration::from_secs(24 * 3600);

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `workers` tasks, each awaiting `awaits` futures that pend once, made by `each(worker)`.
fn on_every_worker<F, Fut>(rt: &Runtime, workers: usize, awaits: u64, each: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..workers)
            .map(|worker| tokio::spawn(each(worker)))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    per_op(started.elapsed(), workers as u64 * awaits)
}

fn shared_scope(rounds: usize) {
    const AWAITS: u64 = 100_000;
    const WORKERS: usize = 2;
    let rt = multi_thread();
    let shared = rt.block_on(async { CancelScope::new().with_timeout(FAR) });
    let token = CancellationToken::new();
    interleave(
        "scale/one_scope_on_every_worker (2 workers, guarded yield_now)",
        rounds,
        Some(2),
        &mut [
            Variant::new("bare", || {
                on_every_worker(&rt, WORKERS, AWAITS, |_| async {
                    for _ in 0..AWAITS {
                        yield_now().await;
                    }
                })
            }),
            Variant::new("within_one_shared_scope", || {
                on_every_worker(&rt, WORKERS, AWAITS, |_| {
                    let scope = shared.clone();
                    async move {
                        for _ in 0..AWAITS {
                            black_box(yield_now().within(&scope).await).unwrap();
                        }
                    }
                })
            }),
            Variant::new("within_a_scope_per_worker", || {
                on_every_worker(&rt, WORKERS, AWAITS, |_| async {
                    let scope = CancelScope::new().with_timeout(FAR);
                    for _ in 0..AWAITS {
                        black_box(yield_now().within(&scope).await).unwrap();
                    }
                })
            }),
            Variant::new("run_until_cancelled_one_shared_token", || {
                on_every_worker(&rt, WORKERS, AWAITS, |_| {
                    let token = token.clone();
                    async move {
                        for _ in 0..AWAITS {
                            black_box(token.run_until_cancelled(yield_now()).await);
                        }
                    }
                })
            }),
        ],
    );
}

/// Counts down once per task, and wakes the one waiter when the count reaches zero.
struct Countdown {
    left: AtomicUsize,
    done: Notify,
}

impl Countdown {
    fn new(tasks: usize) -> Arc<Self> {
        Arc::new(Countdown {
            left: AtomicUsize::new(tasks),
            done: Notify::new(),
        })
    }

    fn count(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit if `reached` is not waiting yet.
            self.done.notify_one();
        }
    }

    async fn reached(&self) {
        if self.left.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
    }
}

/// Spawns `tasks` tasks that each count `started` down at their first poll and then await
/// `wait`, and returns once every one has been polled, so that every one is parked on what
/// it waits for. A single `yield_now` is not enough: a current-thread runtime polls 61
/// tasks (its event interval) before it polls the `block_on` future again.
async fn park<F, Fut>(tasks: usize, wait: F) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let started = Countdown::new(tasks);
    let parked: Vec<_> = (0..tasks)
        .map(|_| {
            let (started, wait) = (started.clone(), wait());
            tokio::spawn(async move {
                started.count();
                wait.await
            })
        })
        .collect();
    started.reached().await;
    parked
}

/// Parks `waiters` tasks on `scope`, each pending for ever inside it, so that each holds a
/// registration.
async fn park_on_scope(scope: &CancelScope, waiters: usize) -> Vec<tokio::task::JoinHandle<()>> {
    park(waiters, || {
        let scope = scope.clone();
        async move {
            let _ = pending::<()>().within(&scope).await;
        }
    })
    .await
}

fn many_waiters(rounds: usize) {
    const AWAITS: u64 = 100_000;
    let rt = current_thread();
    // `elsewhere`: the others wait on another scope, so the runtime holds as many idle
    // tasks, and only what parking them on the same scope adds is left in the ratio.
    let guarded_awaits_with = |others: usize, elsewhere: bool| {
        let rt = &rt;
        move || {
            rt.block_on(async {
                let scope = CancelScope::new().with_timeout(FAR);
                let other = CancelScope::new();
                let parked = park_on_scope(if elsewhere { &other } else { &scope }, others).await;
                let started = Instant::now();
                for _ in 0..AWAITS {
                    black_box(yield_now().within(&scope).await).unwrap();
                }
                let took = started.elapsed();
                scope.cancel();
                other.cancel();
                for task in parked {
                    task.await.unwrap();
                }
                per_op(took, AWAITS)
            })
        }
    };
    interleave(
        "scale/guarded_await_with_other_waiters_parked_on_the_scope",
        rounds,
        None,
        &mut [
            Variant::new("0_others", guarded_awaits_with(0, false)),
            Variant::new("1_000_others", guarded_awaits_with(1_000, false)),
            Variant::new("100_000_others", guarded_awaits_with(100_000, false)),
            Variant::new(
                "100_000_parked_on_another_scope",
                guarded_awaits_with(100_000, true),
            ),
        ],
    );

    const WAITERS: usize = 100_000;
    interleave(
        "scale/cancel_with_100_000_parked_waiters (ns per waiter, cancel to all ended)",
        rounds,
        None,
        &mut [
            Variant::new("cancellation_token", || {
                rt.block_on(async {
                    let token = CancellationToken::new();
                    let parked = park(WAITERS, || token.clone().cancelled_owned()).await;
                    let started = Instant::now();
                    token.cancel();
                    for task in parked {
                        task.await.unwrap();
                    }
                    per_op(started.elapsed(), WAITERS as u64)
                })
            }),
            Variant::new("cancel_scope", || {
                rt.block_on(async {
                    let scope = CancelScope::new();
                    let parked = park_on_scope(&scope, WAITERS).await;
                    let started = Instant::now();
                    scope.cancel();
                    for task in parked {
                        task.await.unwrap();
                    }
                    per_op(started.elapsed(), WAITERS as u64)
                })
            }),
        ],
    );
}

/// Spawns `tasks` tasks that yield once into `set`, and waits until they have all ended.
async fn spawn_and_finish(set: &TaskSet, tasks: usize) {
    let finished = Countdown::new(tasks);
    for _ in 0..tasks {
        let finished = finished.clone();
        set.spawn("yield once", async move {
            yield_now().await;
            finished.count();
        })
        .unwrap();
    }
    finished.reached().await;
}

/// A set with `live` tasks that wait for the set's token, every one of them polled once
/// and parked.
async fn set_with_live_tasks(live: usize) -> TaskSet {
    let set = TaskSet::new();
    let started = Countdown::new(live);
    for _ in 0..live {
        let (token, started) = (set.token(), started.clone());
        set.spawn("live", async move {
            started.count();
            token.cancelled().await
        })
        .unwrap();
    }
    started.reached().await;
    set
}

fn many_live_tasks(rounds: usize) {
    const TASKS: usize = 100_000;
    const LIVE: usize = 100_000;
    let rt = multi_thread();
    // `elsewhere`: the live tasks run in another set, so the runtime holds as many, and
    // only what holding them in the same set adds is left in the ratio.
    let spawn_and_finish_with = |live: usize, elsewhere: bool| {
        let rt = &rt;
        move || {
            rt.block_on(async {
                let (set, other) = if elsewhere {
                    (TaskSet::new(), set_with_live_tasks(live).await)
                } else {
                    (set_with_live_tasks(live).await, TaskSet::new())
                };
                let started = Instant::now();
                spawn_and_finish(&set, TASKS).await;
                let took = started.elapsed();
                set.shutdown(FAR).await;
                other.shutdown(FAR).await;
                per_op(took, TASKS as u64)
            })
        }
    };
    interleave(
        "scale/task_spawn_and_finish_with_other_live_tasks (2 workers)",
        rounds,
        None,
        &mut [
            Variant::new("0_live", spawn_and_finish_with(0, false)),
            Variant::new("100_000_live", spawn_and_finish_with(LIVE, false)),
            Variant::new(
                "100_000_live_in_another_set",
                spawn_and_finish_with(LIVE, true),
            ),
        ],
    );
    interleave(
        "scale/over_100_000_live_tasks (ns per task)",
        rounds,
        None,
        &mut [
            Variant::new("running", || {
                rt.block_on(async {
                    let set = set_with_live_tasks(LIVE).await;
                    let started = Instant::now();
                    let running = black_box(set.running());
                    let took = started.elapsed();
                    assert_eq!(running.len(), LIVE);
                    set.shutdown(FAR).await;
                    per_op(took, LIVE as u64)
                })
            }),
            Variant::new("shutdown", || {
                rt.block_on(async {
                    let set = set_with_live_tasks(LIVE).await;
                    let started = Instant::now();
                    let report = set.shutdown(FAR).await;
                    let took = started.elapsed();
                    assert_eq!(report.completed(), LIVE as u64);
                    per_op(took, LIVE as u64)
                })
            }),
        ],
    );
}

fn many_producers(rounds: usize) {
    const ITEMS: usize = 200_000;
    let rt = multi_thread();
    let pushes_from = |producers: usize| {
        let rt = &rt;
        move || {
            rt.block_on(async {
                let batcher = Batcher::builder()
                    .max_items(100)
                    .max_delay(Duration::from_millis(1))
                    .build(|batch: Vec<usize>| async move {
                        black_box(batch);
                        Ok::<(), hangfree::batch::FlushError<_, String>>(())
                    })
                    .unwrap();
                let started = Instant::now();
                let tasks: Vec<_> = (0..producers)
                    .map(|_| {
                        let batcher = batcher.clone();
                        tokio::spawn(async move {
                            for item in 0..ITEMS / producers {
                                batcher.push(item).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let report = batcher.shutdown(FAR).await;
                let took = started.elapsed();
                assert!(report.is_complete());
                per_op(took, (ITEMS / producers * producers) as u64)
            })
        }
    };
    interleave(
        "scale/batcher_push_from_producers (2 workers, push to flush)",
        rounds,
        None,
        &mut [
            Variant::new("1_producer", pushes_from(1)),
            Variant::new("2_producers", pushes_from(2)),
            Variant::new("8_producers", pushes_from(8)),
        ],
    );
}

/// One part of the bench: its name and the function that runs its tables.
type Part = (&'static str, fn(usize));

fn main() {
    let rounds = support::rounds("SCALE_ROUNDS").unwrap_or(5);
    // `SCALE_ONLY=<text>`: only the parts whose name contains it (`shared_scope`,
    // `many_waiters`, `many_live_tasks`, `many_producers`).
    let only = std::env::var("SCALE_ONLY").unwrap_or_default();
    let parts: [Part; 4] = [
        ("shared_scope", shared_scope),
        ("many_waiters", many_waiters),
        ("many_live_tasks", many_live_tasks),
        ("many_producers", many_producers),
    ];
    for (name, part) in parts {
        if name.contains(&only) {
            part(rounds);
        }
    }
}
