//! Integration tests for `hangfree::batch`, one file per area under
//! `tests/batch/`. Timer behaviour runs under tokio's paused clock, so every
//! timing is exact; the tests on real threads (races on multi-thread
//! runtimes, flushes that block their threads) say so where they are.

use std::future::{Future, Ready, pending, ready};
use std::pin::Pin;
use std::time::Duration;

use hangfree::batch::{Batcher, BatcherBuilder, FlushError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// One millisecond and one second: the tests' units of time.
const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

type Flushed = mpsc::UnboundedReceiver<(Instant, Vec<u32>)>;
type FlushResult = Result<(), FlushError<u32, String>>;

/// A flush that succeeds at once and reports when it was called, with what.
fn recording() -> (
    impl Fn(Vec<u32>) -> Ready<FlushResult> + Send + Sync + 'static,
    Flushed,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let flush = move |items: Vec<u32>| {
        tx.send((Instant::now(), items)).unwrap();
        ready(Ok(()))
    };
    (flush, rx)
}

/// A flush that waits until the test releases it: each call sends its items
/// and a gate; sending `Ok`/`Err` through the gate finishes the flush, and
/// dropping the gate leaves it pending for ever.
type Gate = oneshot::Sender<Result<(), String>>;
type GatedFlush = Pin<Box<dyn Future<Output = FlushResult> + Send>>;
type Started = mpsc::UnboundedReceiver<(Vec<u32>, Gate)>;
fn gated() -> (
    impl Fn(Vec<u32>) -> GatedFlush + Send + Sync + 'static,
    Started,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let flush = move |items: Vec<u32>| {
        let (gate, opened) = oneshot::channel();
        tx.send((items.clone(), gate)).unwrap();
        Box::pin(async move {
            match opened.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(FlushError::new(items, error)),
                Err(_) => pending().await,
            }
        }) as GatedFlush
    };
    (flush, rx)
}

/// Lets every spawned task run until it waits, without moving the clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn builder() -> BatcherBuilder<u32, String> {
    Batcher::builder()
}

/// A multi-thread runtime with `workers` threads, for races.
fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// When a batch is flushed: full, by its oldest item's age, by the earliest
/// deadline minus the margin; items and batches in order.
#[path = "batch/flush_rule.rs"]
mod flush_rule;

/// `max_in_flight`, `capacity` and the backpressure of `push`.
#[path = "batch/in_flight.rs"]
mod in_flight;

/// Failed and panicking flushes: the hook, the items kept, the account.
#[path = "batch/failures.rs"]
mod failures;

/// `flush`, `shutdown`, the last handle, and the tasks a batcher leaves.
#[path = "batch/shutdown.rs"]
mod shutdown;

/// Pushes, flushes and shutdowns racing on multi-thread runtimes.
#[path = "batch/races.rs"]
mod races;

/// `batched` and `batched_by`: the flush rule for streams.
#[path = "batch/stream.rs"]
mod stream;

/// The batcher as a `Sink`.
#[cfg(feature = "sink")]
#[path = "batch/sink.rs"]
mod sink;

/// Settings that cannot work, and settings at their extremes.
#[path = "batch/settings.rs"]
mod settings;

/// Durations and instants at their edges.
#[path = "batch/limits.rs"]
mod limits;

/// Shutdown while flushes pin every runtime worker.
#[path = "batch/pinned.rs"]
mod pinned;
