//! What `DeadlineLayer` (and `DeadlineLayer` with `PropagateLayer` on the way out) costs
//! per request, against tower's `TimeoutLayer` and against what a user would write by
//! hand: `TimeoutLayer` plus a child `CancellationToken` in the request's extensions.
//! `timeout_and_extension` (`TimeoutLayer` plus a one-word marker in the extensions) is
//! the floor of any layer that, like `DeadlineLayer`, hands the request its scope through
//! the extensions.
//!
//! Every variant serves the same in-memory request with a service that answers at once,
//! so the figures are the layers' own cost on the path every request takes. A request
//! that never waits should need no timer at all.
//!
//! `cargo bench --bench http --features http` runs the criterion group.
//! `HTTP_INTERLEAVED=<rounds> cargo bench --bench http --features http` runs each variant
//! in its own timed loop of 100,000 requests, in turn, round after round, and prints the
//! median ratios to bare: steadier on a shared machine.

#[path = "../tests/support/answer.rs"]
mod answer;

use std::convert::Infallible;

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use hangfree::CancelScope;
use hangfree::http::{DeadlineLayer, PropagateLayer};
use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower::timeout::TimeoutLayer;
use tower_layer::Layer;
use tower_service::Service;

use answer::Answer;

const LIMIT: Duration = Duration::from_secs(30);

/// Puts `make()` in every request's extensions before calling `inner`. With a child
/// token of the service's shutdown token it is the hand-rolled equivalent of a request
/// scope; with a plain marker it is the floor of any layer that hands its request
/// something through the extensions (their map is allocated by the first insert).
#[derive(Clone)]
struct InsertExtension<S, F> {
    inner: S,
    make: F,
}

impl<S, F, T> Service<Request<()>> for InsertExtension<S, F>
where
    S: Service<Request<()>>,
    F: Fn() -> T,
    T: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<()>) -> S::Future {
        request.extensions_mut().insert((self.make)());
        self.inner.call(request)
    }
}

/// A value of one word, as small as an extension gets.
#[derive(Clone, Copy)]
struct Marker(#[allow(dead_code)] u64);

/// `TimeoutLayer` plus a child token in the extensions: what a user writes by hand.
fn timeout_and_child_token(
    root: &CancellationToken,
) -> impl Service<Request<()>, Error = tower::BoxError> + Clone {
    let root = root.clone();
    TimeoutLayer::new(LIMIT).layer(InsertExtension {
        inner: Answer,
        make: move || root.child_token(),
    })
}

/// `TimeoutLayer` plus a one-word marker in the extensions: the floor of any timeout
/// layer that puts something in the request's extensions, as `DeadlineLayer` must.
fn timeout_and_extension() -> impl Service<Request<()>, Error = tower::BoxError> + Clone {
    TimeoutLayer::new(LIMIT).layer(InsertExtension {
        inner: Answer,
        make: || Marker(1),
    })
}

/// A handler that makes one outgoing call under its request's scope, through
/// `PropagateLayer`, to a client that answers at once.
#[derive(Clone)]
struct Forward<C> {
    client: C,
}

impl<C, B> Service<Request<()>> for Forward<C>
where
    C: Service<Request<()>, Response = Response<B>> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: std::fmt::Debug,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<B>, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let scope = request.extensions().get::<CancelScope>().cloned();
        let mut client = self.client.clone();
        Box::pin(async move {
            let mut outgoing = Request::new(());
            if let Some(scope) = scope {
                outgoing.extensions_mut().insert(scope);
            }
            Ok(client.call(outgoing).await.expect("the client answers"))
        })
    }
}

/// One request through `service`: the loop every variant times.
async fn serve<S>(service: &mut S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let service = service.ready().await.expect("ready");
    black_box(service.call(Request::new(())).await.expect("answered"));
}

/// `requests` requests through `service`, in one timed loop of its own.
fn timed<S>(rt: &tokio::runtime::Runtime, mut service: S, requests: u32) -> f64
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    let started = Instant::now();
    rt.block_on(async {
        for _ in 0..requests {
            serve(&mut service).await;
        }
    });
    started.elapsed().as_secs_f64() * 1e9 / f64::from(requests)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn deadline_and_propagate() -> impl Service<Request<()>, Error = Infallible> + Clone {
    DeadlineLayer::new(LIMIT).layer(Forward {
        client: PropagateLayer::new().layer(Answer),
    })
}

fn per_request(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("http/per_request");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| async { serve(&mut Answer).await })
    });
    let timeout = TimeoutLayer::new(LIMIT).layer(Answer);
    group.bench_function("tower_timeout", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = timeout.clone();
            async move { serve(&mut service).await }
        })
    });
    let extension = timeout_and_extension();
    group.bench_function("timeout_and_extension", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = extension.clone();
            async move { serve(&mut service).await }
        })
    });
    let root = CancellationToken::new();
    let hand_rolled = timeout_and_child_token(&root);
    group.bench_function("timeout_and_child_token", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = hand_rolled.clone();
            async move { serve(&mut service).await }
        })
    });
    let deadline = rt.block_on(async { DeadlineLayer::new(LIMIT).layer(Answer) });
    group.bench_function("deadline_layer", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = deadline.clone();
            async move { serve(&mut service).await }
        })
    });
    let both = rt.block_on(async { deadline_and_propagate() });
    group.bench_function("deadline_and_propagate", |b| {
        b.to_async(&rt).iter(|| {
            let mut service = both.clone();
            async move { serve(&mut service).await }
        })
    });
    group.finish();
}

fn interleaved(rounds: usize) {
    const REQUESTS: u32 = 100_000;
    let rt = runtime();
    let root = CancellationToken::new();
    let names = [
        "bare",
        "tower_timeout",
        "timeout_and_extension",
        "timeout_and_child_token",
        "deadline_layer",
        "deadline_and_propagate",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        times[0].push(timed(&rt, Answer, REQUESTS));
        times[1].push(timed(&rt, TimeoutLayer::new(LIMIT).layer(Answer), REQUESTS));
        times[2].push(timed(&rt, timeout_and_extension(), REQUESTS));
        times[3].push(timed(&rt, timeout_and_child_token(&root), REQUESTS));
        times[4].push(timed(
            &rt,
            DeadlineLayer::new(LIMIT).layer(Answer),
            REQUESTS,
        ));
        times[5].push(timed(&rt, deadline_and_propagate(), REQUESTS));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    println!(
        "http/per_request interleaved, {rounds} rounds of {REQUESTS} requests (median ns per request, ratio to bare, to tower_timeout):"
    );
    for (name, m) in names.iter().zip(&medians) {
        println!(
            "  {name:<26} {m:>8.1} ns  {:>5.2}x  {:>5.2}x",
            m / medians[0],
            m / medians[1]
        );
    }
}

criterion_group!(benches, per_request);

/// `HTTP_ONLY=<variant>`: one loop of that variant alone, for a profiler
/// (`valgrind --tool=callgrind`) to see where a request's time goes.
fn only(variant: &str) {
    const REQUESTS: u32 = 20_000;
    let rt = runtime();
    let ns = match variant {
        "bare" => timed(&rt, Answer, REQUESTS),
        "tower_timeout" => timed(&rt, TimeoutLayer::new(LIMIT).layer(Answer), REQUESTS),
        "timeout_and_extension" => timed(&rt, timeout_and_extension(), REQUESTS),
        "timeout_and_child_token" => timed(
            &rt,
            timeout_and_child_token(&CancellationToken::new()),
            REQUESTS,
        ),
        "deadline_layer" => timed(&rt, DeadlineLayer::new(LIMIT).layer(Answer), REQUESTS),
        "deadline_and_propagate" => timed(&rt, deadline_and_propagate(), REQUESTS),
        other => panic!("no variant {other}"),
    };
    println!("{variant}: {ns:.1} ns per request");
}

fn main() {
    if let Ok(variant) = std::env::var("HTTP_ONLY") {
        only(&variant);
        return;
    }
    if let Some(rounds) = std::env::var("HTTP_INTERLEAVED")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
