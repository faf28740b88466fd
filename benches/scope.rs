//! What a guarded await costs, against the tokio-ecosystem ways of doing the same.
//!
//! Every entry awaits the same future, one that pends exactly once (`yield_now`), so the
//! figures compare the guard's overhead on a real pending/wake round trip.
//!
//! `cargo bench --bench scope` runs the criterion group. On a shared machine whose load
//! drifts while criterion measures one variant after another, the interleaved mode is
//! steadier: `SCOPE_INTERLEAVED=<rounds> cargo bench --bench scope` runs every variant in
//! turn, 100,000 awaits each, round after round, and prints median ratios to bare.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use hangfree::CancelScope;
use hangfree::prelude::*;
use tokio::task::yield_now;
use tokio_util::sync::CancellationToken;

const FAR: Duration = Duration::from_secs(24 * 3600);

fn guarded_await(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("scope/guarded_await");

    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async { yield_now().await })
    });

    group.bench_function("tokio_timeout", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tokio::time::timeout(FAR, yield_now()).await) })
    });

    let token = CancellationToken::new();
    group.bench_function("run_until_cancelled", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(token.run_until_cancelled(yield_now()).await) })
    });

    group.bench_function("select_token_and_timeout", |b| {
        b.to_async(&rt).iter(|| async {
            let r = tokio::select! {
                biased;
                _ = token.cancelled() => None,
                r = tokio::time::timeout(FAR, yield_now()) => r.ok(),
            };
            black_box(r)
        })
    });

    // Token and deadline both, like the select above; the scope is built inside the
    // runtime (as a service would) and shared by every await.
    let scope = rt.block_on(async { CancelScope::from_token(&token).with_timeout(FAR) });
    group.bench_function("within_scope_token_and_deadline", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(yield_now().within(&scope).await) })
    });

    group.finish();
}

/// The interleaved mode: each round times 100,000 awaits of every variant, in turn.
fn interleaved(rounds: usize) {
    const AWAITS: u32 = 100_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = CancellationToken::new();
    let scope = rt.block_on(async { CancelScope::from_token(&token).with_timeout(FAR) });
    let names = [
        "bare",
        "tokio_timeout",
        "run_until_cancelled",
        "select_token_and_timeout",
        "within_scope_token_and_deadline",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        for (i, times) in times.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            rt.block_on(async {
                for _ in 0..AWAITS {
                    match i {
                        0 => yield_now().await,
                        1 => black_box(tokio::time::timeout(FAR, yield_now()).await).unwrap(),
                        2 => {
                            black_box(token.run_until_cancelled(yield_now()).await);
                        }
                        3 => {
                            let r = tokio::select! {
                                biased;
                                _ = token.cancelled() => None,
                                r = tokio::time::timeout(FAR, yield_now()) => r.ok(),
                            };
                            black_box(r);
                        }
                        _ => black_box(yield_now().within(&scope).await).unwrap(),
                    }
                }
            });
            times.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(AWAITS));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    println!(
        "scope/guarded_await interleaved, {rounds} rounds of {AWAITS} awaits (median ns per await, ratio to bare):"
    );
    for (name, m) in names.iter().zip(&medians) {
        println!("  {name:<34} {m:>8.1} ns  {:>5.2}x", m / medians[0]);
    }
}

criterion_group!(benches, guarded_await);

fn main() {
    if let Some(rounds) = std::env::var("SCOPE_INTERLEAVED")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
