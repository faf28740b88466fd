//! What a guarded await costs, against the tokio-ecosystem ways of doing the same; what
//! entering a scope and looking it up cost; and what a request's scope costs to make.
//!
//! Every await variant awaits the same future, one that pends exactly once (`yield_now`),
//! so the figures compare the overhead on a real pending/wake round trip:
//!
//! - anchors: `bare`, `tokio_timeout`, `run_until_cancelled`, `select_token_and_timeout`;
//! - `within_scope_token_and_deadline`: `within(&scope)`, which also makes the scope
//!   current while the inner future is polled;
//! - `enter`: `scope.enter(fut)` alone, the cost of making a scope current;
//! - `enter_and_current`: `enter` with a `CancelScope::current()` before and after the
//!   await, as library code looking up its caller's scope does;
//! - `within_inside_enter`: `within` run inside an `enter` of the same scope (a request
//!   handler guarding a step), so the scope is entered twice;
//! - `within_current_inside_enter`: `within_current()` inside an `enter`;
//! - floors, the least a guarded await with `within`'s promises can do:
//!   `floor_token_and_clock` (`run_until_cancelled`, and one clock read and compare
//!   before it, so that a deadline passed by the clock stops the work before it starts)
//!   and `floor_token_clock_and_current` (the same, with a thread-local set and restored
//!   around each poll of the inner future, as `within` makes its scope current).
//!
//! And, with no await: `child_with_timeout_create_drop` (`root.clone().with_timeout(d)`,
//! then dropped: what a request scope costs the http `DeadlineLayer`) against
//! `child_token_create_drop` (tokio-util's `child_token`, then dropped).
//!
//! `cargo bench --bench scope` runs the criterion group. On a shared machine whose load
//! drifts while criterion measures one variant after another, the interleaved mode is
//! steadier: `SCOPE_INTERLEAVED=<rounds> cargo bench --bench scope` times every variant
//! in turn, each in its own loop of 100,000 operations, round after round, and prints
//! median ratios (awaits to `bare`, creations to `child_token_create_drop`).
//! `SCOPE_ONLY=<variant>` runs one variant's loop once, for a profiler (callgrind).

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::yield_now;
use tokio_util::sync::CancellationToken;

const FAR: Duration = Duration::from_secs(24 * 3600);
const REQUEST: Duration = Duration::from_secs(30);

/// What every variant shares: the runtime, a token, and a scope with token and deadline,
/// built inside the runtime (as a service would) and shared by every operation.
struct Setup {
    rt: Runtime,
    token: CancellationToken,
    scope: CancelScope,
}

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let token = CancellationToken::new();
        let scope = rt.block_on(async { CancelScope::from_token(&token).with_timeout(FAR) });
        Setup { rt, token, scope }
    }
}

async fn select_token_and_timeout(token: &CancellationToken) -> Option<()> {
    tokio::select! {
        biased;
        _ = token.cancelled() => None,
        r = tokio::time::timeout(FAR, yield_now()) => r.ok(),
    }
}

async fn enter_and_current(scope: &CancelScope) {
    scope
        .enter(async {
            black_box(CancelScope::current());
            yield_now().await;
            black_box(CancelScope::current());
        })
        .await
}

thread_local! {
    /// What the floor variants make "current": a word, set and restored around a poll.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The least that making something current for an inner future costs: a thread-local
/// set before each of its polls and restored after.
async fn current_while_polled<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let previous = CURRENT.replace(1);
        let polled = fut.as_mut().poll(cx);
        CURRENT.set(previous);
        polled
    })
    .await
}

/// The floor of a guarded await that watches a token and a deadline and keeps
/// `within`'s promise that a deadline passed by the clock stops the work before it
/// starts: `run_until_cancelled`, and one read of the clock and a compare before it
/// (the deadline's timer is one per scope, armed once, so none per await).
async fn floor_token_and_clock(
    token: &CancellationToken,
    deadline: tokio::time::Instant,
) -> Option<()> {
    if black_box(tokio::time::Instant::now()) >= deadline {
        return None;
    }
    token.run_until_cancelled(yield_now()).await
}

/// [`floor_token_and_clock`], and the inner future's scope current while it is polled,
/// as `within` makes it.
async fn floor_token_clock_and_current(
    token: &CancellationToken,
    deadline: tokio::time::Instant,
) -> Option<()> {
    if black_box(tokio::time::Instant::now()) >= deadline {
        return None;
    }
    token
        .run_until_cancelled(current_while_polled(yield_now()))
        .await
}

fn guarded_await(c: &mut Criterion) {
    let Setup { rt, token, scope } = Setup::new();
    let mut group = c.benchmark_group("scope/guarded_await");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async { yield_now().await })
    });
    group.bench_function("tokio_timeout", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tokio::time::timeout(FAR, yield_now()).await) })
    });
    group.bench_function("run_until_cancelled", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(token.run_until_cancelled(yield_now()).await) })
    });
    group.bench_function("select_token_and_timeout", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(select_token_and_timeout(&token).await) })
    });
    group.bench_function("within_scope_token_and_deadline", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(yield_now().within(&scope).await) })
    });
    group.bench_function("enter", |b| {
        b.to_async(&rt)
            .iter(|| async { scope.enter(yield_now()).await })
    });
    group.bench_function("enter_and_current", |b| {
        b.to_async(&rt).iter(|| enter_and_current(&scope))
    });
    group.bench_function("within_inside_enter", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(scope.enter(yield_now().within(&scope)).await) })
    });
    group.bench_function("within_current_inside_enter", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(scope.enter(yield_now().within_current()).await) })
    });
    group.finish();

    let mut group = c.benchmark_group("scope/request_scope");
    let root = rt.block_on(async { CancelScope::new() });
    let _entered = rt.enter();
    group.bench_function("child_token_create_drop", |b| {
        b.iter(|| drop(black_box(token.child_token())))
    });
    group.bench_function("child_with_timeout_create_drop", |b| {
        b.iter(|| drop(black_box(root.clone().with_timeout(REQUEST))))
    });
    group.finish();
}

/// One timed loop of `OPS` operations, in ns per operation.
const OPS: u32 = 100_000;

/// A variant of the interleaved mode: its name, and its own timed loop.
type Variant<'a> = (&'static str, Box<dyn Fn() -> f64 + 'a>);

fn per_op(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / f64::from(OPS)
}

/// The interleaved mode: each round times every variant in turn, each in its own loop.
/// With `only`, runs that one variant's loop once, for a profiler.
fn interleaved(rounds: usize, only: Option<&str>) {
    let Setup { rt, token, scope } = Setup::new();
    let root = rt.block_on(async { CancelScope::new() });
    let deadline = rt.block_on(async { tokio::time::Instant::now() + FAR });
    // Each variant is its own loop: nothing dispatches on the variant inside the timing.
    let awaits: Vec<Variant<'_>> = vec![
        (
            "bare",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        yield_now().await;
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "tokio_timeout",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(tokio::time::timeout(FAR, yield_now()).await).unwrap();
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "run_until_cancelled",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(token.run_until_cancelled(yield_now()).await);
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "floor_token_and_clock",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(floor_token_and_clock(&token, deadline).await);
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "floor_token_clock_and_current",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(floor_token_clock_and_current(&token, deadline).await);
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "select_token_and_timeout",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(select_token_and_timeout(&token).await);
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "within_scope_token_and_deadline",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(yield_now().within(&scope).await).unwrap();
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "enter",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        scope.enter(yield_now()).await;
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "enter_and_current",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        enter_and_current(&scope).await;
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "within_inside_enter",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(scope.enter(yield_now().within(&scope)).await).unwrap();
                    }
                    per_op(start)
                })
            }),
        ),
        (
            "within_current_inside_enter",
            Box::new(|| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..OPS {
                        black_box(scope.enter(yield_now().within_current()).await).unwrap();
                    }
                    per_op(start)
                })
            }),
        ),
    ];
    let creations: Vec<Variant<'_>> = vec![
        (
            "child_token_create_drop",
            Box::new(|| {
                let start = Instant::now();
                for _ in 0..OPS {
                    drop(black_box(token.child_token()));
                }
                per_op(start)
            }),
        ),
        (
            "child_with_timeout_create_drop",
            Box::new(|| {
                let _entered = rt.enter();
                let start = Instant::now();
                for _ in 0..OPS {
                    drop(black_box(root.clone().with_timeout(REQUEST)));
                }
                per_op(start)
            }),
        ),
    ];
    if let Some(only) = only {
        let Some((name, run)) = awaits.iter().chain(&creations).find(|(n, _)| *n == only) else {
            panic!("no variant {only}");
        };
        println!("{name}: {:.1} ns per operation", run());
        return;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let report = |title: &str, variants: &[Variant<'_>]| {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..rounds {
            for (times, (_, run)) in times.iter_mut().zip(variants) {
                times.push(run());
            }
        }
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        println!(
            "{title}, {rounds} rounds of {OPS} each (median ns per operation, ratio to the first):"
        );
        for ((name, _), m) in variants.iter().zip(&medians) {
            println!("  {name:<34} {m:>8.1} ns  {:>5.2}x", m / medians[0]);
        }
    };
    report("scope/guarded_await interleaved", &awaits);
    report("scope/request_scope interleaved", &creations);
}

criterion_group!(benches, guarded_await);

fn main() {
    if let Ok(variant) = std::env::var("SCOPE_ONLY") {
        interleaved(1, Some(&variant));
        return;
    }
    if let Some(rounds) = std::env::var("SCOPE_INTERLEAVED")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds, None);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
