//! Unit tests of the wake rule between `push` and the timer driver: a push
//! wakes the driver only when its timer would fire too late.

use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::error::FlushError;
use super::runner::Runner;
use super::state::{Config, FlushFn, Outcome, Shared};

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn shared(max_items: usize) -> Arc<Shared<u32>> {
    let flush: FlushFn<u32> = Box::new(|items: Vec<u32>| {
        let result: Result<(), FlushError<u32, String>> = Ok(());
        drop((items, result));
        Box::pin(ready(Outcome::Flushed))
    });
    let config = Config {
        max_items,
        max_delay: Duration::from_secs(5),
        max_in_flight: 4,
        capacity: 1_000_000,
        margin: Duration::from_secs(1),
    };
    Arc::new(Shared::new(config, flush, Runner::current().unwrap()))
}

#[tokio::test(start_paused = true)]
async fn full_batches_under_load_do_not_wake_the_driver() {
    let shared = shared(100);
    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&wakes));
    // The driver has looked: nothing is open, so it waits to be woken.
    assert_eq!(shared.drive(&waker), Ok(None));

    shared.insert(0, None).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a batch opened");
    let start = Instant::now();
    assert_eq!(
        shared.drive(&waker),
        Ok(Some(start + Duration::from_secs(5)))
    );

    // 100 more batches fill and close; each new one is due no earlier than
    // the driver's timer, so none of them wakes it.
    for n in 1..10_000 {
        shared.insert(n, None).ok().unwrap();
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);

    // A deadline earlier than the timer must wake it, once.
    let deadline = start + Duration::from_secs(3);
    shared.insert(10_000, Some(&deadline)).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    shared.insert(10_001, Some(&deadline)).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "same due time: no wake");
    assert_eq!(
        shared.drive(&waker),
        Ok(Some(deadline - Duration::from_secs(1)))
    );
}

#[tokio::test(start_paused = true)]
async fn the_driver_closes_a_due_batch_and_stops_once_closed() {
    let shared = shared(100);
    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&wakes));
    shared.insert(1, None).ok().unwrap();
    assert!(matches!(shared.drive(&waker), Ok(Some(_))));
    tokio::time::advance(Duration::from_secs(5)).await;
    // Due: closed and handed to a worker; nothing left to time.
    assert_eq!(shared.drive(&waker), Ok(None));
    assert_eq!(shared.pending(), 1, "closed, waiting for its worker");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(shared.pending(), 0);
    shared.seal_now(true);
    assert_eq!(shared.drive(&waker), Err(()));
}
