//! Unit tests of the wake rule between `push` and the timer driver: a push
//! wakes the driver only when its timer would fire too late.

use std::future::ready;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::driver::Wait;
use super::error::FlushError;
use super::flush::{FlushFn, FlushOutcome};
use super::runner::Runner;
use super::state::{BatcherState, Config};

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn state(max_items: usize) -> Arc<BatcherState<u32>> {
    let flush: FlushFn<u32> = Box::new(|items: Vec<u32>| {
        let result: Result<(), FlushError<u32, String>> = Ok(());
        drop((items, result));
        Box::pin(ready(FlushOutcome::Flushed))
    });
    let config = Config {
        max_items,
        max_delay: Duration::from_secs(5),
        max_in_flight: 4,
        capacity: 1_000_000,
        margin: Duration::from_secs(1),
    };
    Arc::new(BatcherState::new(config, flush, Runner::current().unwrap()))
}

#[tokio::test(start_paused = true)]
async fn full_batches_under_load_do_not_wake_the_driver() {
    let state = state(100);
    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&wakes));
    // The driver has looked: nothing is open, so it waits to be woken.
    assert_eq!(state.drive(&waker), Wait::Woken);

    state.insert(0, None).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "a batch opened");
    let start = Instant::now();
    assert_eq!(
        state.drive(&waker),
        Wait::Until(start + Duration::from_secs(5))
    );

    // 100 more batches fill and close; each new one is due no earlier than
    // the driver's timer, so none of them wakes it.
    for n in 1..10_000 {
        state.insert(n, None).ok().unwrap();
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);

    // A deadline earlier than the timer must wake it, once.
    let deadline = start + Duration::from_secs(3);
    state.insert(10_000, Some(&deadline)).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    state.insert(10_001, Some(&deadline)).ok().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "same due time: no wake");
    assert_eq!(
        state.drive(&waker),
        Wait::Until(deadline - Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn the_driver_closes_a_due_batch_and_stops_once_closed() {
    let state = state(100);
    let wakes = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&wakes));
    state.insert(1, None).ok().unwrap();
    assert!(matches!(state.drive(&waker), Wait::Until(_)));
    tokio::time::advance(Duration::from_secs(5)).await;
    // Due: closed and handed to a worker; nothing left to time.
    assert_eq!(state.drive(&waker), Wait::Woken);
    assert_eq!(state.pending(), 1, "closed, waiting for its worker");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(state.pending(), 0);
    state.seal_now(true);
    assert_eq!(state.drive(&waker), Wait::Done);
}
