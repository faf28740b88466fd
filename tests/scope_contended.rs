//! `scope`: one scope guarding awaits on every worker at once, as a service's root scope
//! does. Its waiters spread over more slabs once its lock is found contended; a cancel
//! must still reach every one of them, whichever slab it is in.

use std::future::{Future, pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::task::yield_now;

const WORKERS: usize = 4;
const TASKS: usize = 64;
const ROUNDS: usize = 100;
/// Far longer than a round takes: a task still running after it was never woken.
const HANG: Duration = Duration::from_secs(20);

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap()
}

/// Tasks on every worker make short guarded awaits on one scope, then wait in it; the
/// scope is cancelled from outside the runtime while some are still making their short
/// awaits and others wait. Every task ends with the cancel, none hangs, in every round.
#[test]
fn a_cancel_reaches_every_waiter_of_a_scope_contended_by_every_worker() {
    let rt = multi_thread();
    for round in 0..ROUNDS {
        let scope = CancelScope::new();
        let parked = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let (scope, parked) = (scope.clone(), parked.clone());
                rt.spawn(async move {
                    // A different number of short awaits for each task, so that the
                    // cancel finds some in them and the others waiting.
                    for _ in 0..(i % 16) * 8 {
                        if let Err(why) = yield_now().within(&scope).await {
                            return why.cause();
                        }
                    }
                    parked.fetch_add(1, Ordering::SeqCst);
                    pending::<()>().within(&scope).await.unwrap_err().cause()
                })
            })
            .collect();
        // Cancel once half the tasks wait, from this thread, outside the runtime.
        while parked.load(Ordering::SeqCst) < TASKS / 2 {
            std::thread::yield_now();
        }
        scope.cancel();
        rt.block_on(async {
            for (i, task) in tasks.into_iter().enumerate() {
                let cause = tokio::time::timeout(HANG, task)
                    .await
                    .unwrap_or_else(|_| {
                        panic!("round {round}: task {i} was never woken by the cancel")
                    })
                    .unwrap();
                assert_eq!(cause, Cause::Cancelled, "round {round}, task {i}");
            }
        });
    }
}

/// Counts its wakes.
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Threads register guarded futures on one scope at once, each with a waker of its own,
/// and drop every other one at once: the cancel then wakes each future still waiting
/// exactly once and none of those that left, and once all are dropped the scope holds
/// none of the wakers.
#[test]
fn a_cancel_wakes_each_waiter_of_a_contended_scope_once_and_keeps_none() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    for round in 0..20 {
        let scope = CancelScope::new();
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (scope, start) = (scope.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut registered = Vec::new();
                    for i in 0..PER_THREAD {
                        let counting = Arc::new(Counting(AtomicUsize::new(0)));
                        let waker = Waker::from(counting.clone());
                        let mut guarded = Box::pin(pending::<()>().within(&scope));
                        let polled = guarded.as_mut().poll(&mut Context::from_waker(&waker));
                        assert!(polled.is_pending());
                        // Every other one is dropped at once: it leaves the scope.
                        let kept = (i % 2 == 0).then_some(guarded);
                        registered.push((kept, counting));
                    }
                    registered
                })
            })
            .collect();
        let registered: Vec<_> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        scope.cancel();
        for (kept, counting) in registered {
            let wakes = usize::from(kept.is_some());
            assert_eq!(counting.0.load(Ordering::SeqCst), wakes, "round {round}");
            drop(kept);
            assert_eq!(
                Arc::strong_count(&counting),
                1,
                "round {round}: a waker kept"
            );
        }
    }
}
