//! What a guarded await costs, against the tokio-ecosystem ways of doing the same.
//!
//! Every entry awaits the same future, one that pends exactly once (`yield_now`), so the
//! figures compare the guard's overhead on a real pending/wake round trip.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
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

criterion_group!(benches, guarded_await);
criterion_main!(benches);
