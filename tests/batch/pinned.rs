//! Shutdown when flushes pin every worker thread of a multi-thread runtime.
//! tokio's timers are driven by those workers, so none fires; shutdown must
//! return on time anyway. Real time by nature: the blocking is the point.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hangfree::batch::{Batcher, FlushError};

use super::{MS, SECOND};

/// What `Batcher::shutdown` documents past `grace`: waking through the
/// real-time alarm and taking the account, with room for a loaded machine.
const BOUND: Duration = Duration::from_millis(400);

/// A gate that flushes block on for real, until the test opens it (or for
/// `at_most`, so a shutdown that waits for the flushes fails the test instead
/// of hanging it).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self, at_most: Duration) {
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_timeout_while(open, at_most, |open| !*open));
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

#[test]
fn shutdown_returns_within_grace_while_flushes_pin_every_runtime_worker() {
    const WORKERS: usize = 2;
    let grace = 100 * MS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let gate = Arc::new(Gate::default());
    let (started, starts) = std::sync::mpsc::channel();
    let batcher = {
        let _runtime = runtime.enter();
        let gate = Arc::clone(&gate);
        Batcher::builder()
            .max_items(1)
            .max_delay(Duration::ZERO)
            .max_in_flight(WORKERS)
            .build(move |items: Vec<u32>| {
                let gate = Arc::clone(&gate);
                let started = started.clone();
                async move {
                    // The test may have stopped listening (it failed).
                    let _ = started.send(items[0]);
                    // Real blocking is the point: the flush pins its worker
                    // thread, and with every worker pinned no tokio timer fires.
                    gate.wait(3 * SECOND);
                    Ok::<(), FlushError<u32, String>>(())
                }
            })
            .unwrap()
    };
    for n in 0..=WORKERS as u32 {
        batcher.try_push(n).unwrap();
    }
    let mut running: Vec<u32> = (0..WORKERS)
        .map(|_| starts.recv_timeout(5 * SECOND).unwrap())
        .collect();
    running.sort_unstable();
    assert_eq!(running, [0, 1], "every worker is pinned by a flush");

    let began = std::time::Instant::now();
    let report = runtime.block_on(batcher.shutdown(grace));
    let took = began.elapsed();
    gate.open();

    assert!(
        took >= grace && took < grace + BOUND,
        "shutdown({grace:?}) returned after {took:?}, not within {grace:?} + {BOUND:?}"
    );
    let mut abandoned: Vec<(u64, usize)> = report
        .abandoned()
        .iter()
        .map(|flush| (flush.batch(), flush.items()))
        .collect();
    abandoned.sort_unstable();
    assert_eq!(abandoned, [(0, 1), (1, 1)], "{report}");
    assert_eq!(report.unflushed(), [2]);
    assert_eq!(report.accepted(), 3);
    runtime.shutdown_timeout(5 * SECOND);
}
