//! Loom models of the batcher's hand-offs: a push into the open batch, the
//! batch sealed when full or due, a worker claiming a ready batch (spawned or
//! woken), a worker finishing and parking, batches taking their turn to call
//! the flush function, and close and shutdown finalizing.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --lib --release loom`. The
//! models use the real `BatcherState`, `Batcher::push` and worker code; tokio's
//! `Notify`, tokio-util's `CancellationToken` and the runner are loom
//! stand-ins (`loom_stand_ins.rs`), and the clock stands still, so a batch is
//! due by age never and by a deadline already passed at once. The timer
//! driver is its real `BatcherState::drive` step on a thread of its own, with a
//! timer that never fires; shutdown's grace period ends at its first or
//! second look, which loom places anywhere among the other threads' steps.
//! Each model is small (at most three batches, three threads and one or two
//! workers), so that it finishes in seconds. Each checks, in every
//! interleaving:
//!
//! - every accepted item is flushed, failed, handed back or reported
//!   abandoned exactly once, and the report adds up;
//! - no worker is left parked while a batch is ready (a lost wake leaves a
//!   thread blocked for ever, which loom reports as a deadlock; the rule is
//!   also asserted at points in between);
//! - shutdown's report is the final state: a second one, taken after every
//!   thread has finished, has the same counts and nothing more to hand back.

use std::collections::HashSet;
use std::future::{pending, poll_fn, ready};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use std::task::Context;

use loom::thread;

use super::batcher::Batcher;
use super::driver::Wait;
use super::flush::{FlushFn, FlushFuture, FlushOutcome};
use super::loom_stand_ins::{Runner, block_on, now};
use super::report::BatchReport;
use super::state::{BatcherState, Config};
use crate::sync::lock;

/// What the flush function was called with, in call order (std's mutex: only
/// bookkeeping, never held across a loom operation).
type Calls = Arc<std::sync::Mutex<Vec<Vec<u32>>>>;

/// How the model's sink answers a flush.
#[derive(Clone, Copy)]
enum Sink {
    /// Batches starting with an even item fail, handing every item back
    /// (kept for the report: there is no hook); the others succeed.
    FailsOnEven,
    /// The batch holding item 0 never completes; the others succeed.
    HangsOnZero,
    Succeeds,
    /// Succeeds; the call for the batch holding item 0 first passes a point
    /// where loom may switch threads: the window, on a real runtime, between
    /// a worker taking its batch and its call reaching the sink (the other
    /// sinks have no loom operation there, so no other thread runs in it).
    SucceedsAfterASwitchOnZero,
}

struct Model {
    shared: Arc<BatcherState<u32>>,
    batcher: Batcher<u32>,
    runner: Runner,
    calls: Calls,
}

impl Model {
    /// Joins every batcher task, then checks `report` against what the sink
    /// saw (`complete`: and that everything was flushed), and a second report
    /// against the first.
    fn join_and_check(&self, report: &BatchReport<u32>, accepted: &[u32], complete: bool) {
        self.runner.join_all();
        if complete {
            check_complete(report, &self.calls, accepted);
        } else {
            check_account(report, &self.calls, accepted);
        }
        check_final(&self.shared, report);
    }
}

fn model(max_items: usize, max_in_flight: usize, capacity: usize, sink: Sink) -> Model {
    let calls = Calls::default();
    let flush: FlushFn<u32> = {
        let calls = Arc::clone(&calls);
        Box::new(move |items: Vec<u32>| -> FlushFuture<u32> {
            if matches!(sink, Sink::SucceedsAfterASwitchOnZero) && items.contains(&0) {
                thread::yield_now();
            }
            lock(&*calls).push(items.clone());
            match sink {
                Sink::FailsOnEven if items[0] % 2 == 0 => Box::pin(ready(FlushOutcome::Failed {
                    handed_back: items.len(),
                    kept: Some((items, "refused".to_owned())),
                })),
                Sink::HangsOnZero if items.contains(&0) => Box::pin(pending()),
                _ => Box::pin(ready(FlushOutcome::Flushed)),
            }
        })
    };
    let config = Config {
        max_items,
        max_delay: Duration::from_secs(3600),
        max_in_flight,
        capacity,
        margin: Duration::ZERO,
    };
    let runner = Runner::default();
    let shared = Arc::new(BatcherState::new(config, flush, runner.clone()));
    Model {
        batcher: Batcher::from_state(Arc::clone(&shared)),
        shared,
        runner,
        calls,
    }
}

/// A grace period that is over at shutdown's `look`th look at it; each
/// earlier look wakes the shutdown again at once, as a timer about to fire
/// would.
fn over_at_look(look: usize) -> impl FnMut(&mut Context<'_>) -> bool {
    let mut looks = 0;
    move |cx| {
        looks += 1;
        if looks < look {
            cx.waker().wake_by_ref();
        }
        looks >= look
    }
}

/// Shutdown's wait with no grace limit (`Duration::MAX`): it returns only
/// once everything has been flushed.
fn no_limit(_: &mut Context<'_>) -> bool {
    false
}

/// The timer driver with a timer that never fires: it moves only when a
/// push or the close wakes it.
fn drive(shared: &Arc<BatcherState<u32>>) {
    block_on(poll_fn(|cx| match shared.drive(cx.waker()) {
        Wait::Done => Poll::Ready(()),
        Wait::Until(_) | Wait::Woken => Poll::Pending,
    }));
}

/// A complete report, matching what the sink saw.
fn check_complete(report: &BatchReport<u32>, calls: &Calls, accepted: &[u32]) {
    assert!(report.is_complete(), "{report:?}");
    check_account(report, calls, accepted);
    let mut flushed: Vec<u32> = lock(&**calls).iter().flatten().copied().collect();
    flushed.sort_unstable();
    assert_eq!(flushed, accepted);
}

type Counts = (u64, u64, u64, u64, u64, u64, u64);

fn counts(report: &BatchReport<u32>) -> Counts {
    (
        report.accepted(),
        report.flushed_batches(),
        report.flushed_items(),
        report.failed_batches(),
        report.failed_items(),
        report.panicked_batches(),
        report.panicked_items(),
    )
}

/// Every accepted item is in exactly one place of the report, and the flush
/// function saw each at most once; an item handed back was never flushed.
fn check_account(report: &BatchReport<u32>, calls: &Calls, accepted: &[u32]) {
    let calls = lock(&**calls).clone();
    assert_eq!(report.accepted(), accepted.len() as u64, "{report:?}");
    assert_eq!(
        report.accepted(),
        report.flushed_items()
            + report.failed_items()
            + report.unflushed().len() as u64
            + report.abandoned_items()
            + report.panicked_items(),
        "{report:?}"
    );
    let mut flushed = HashSet::new();
    for item in calls.iter().flatten() {
        assert!(flushed.insert(*item), "item {item} flushed twice");
    }
    for item in report.unflushed() {
        assert!(
            !flushed.contains(item),
            "item {item} handed back and flushed"
        );
    }
    for batch in report.failed() {
        assert!(batch.items().iter().all(|item| flushed.contains(item)));
    }
    assert!(report.flushed_items() + report.failed_items() <= flushed.len() as u64);
    // Abandoned batches may or may not have reached the sink; every other
    // accepted item did, or was handed back.
    let missing = accepted
        .iter()
        .filter(|item| !flushed.contains(item) && !report.unflushed().contains(item))
        .count() as u64;
    assert!(missing <= report.abandoned_items(), "{missing} items lost");
}

/// A second shutdown, after every thread has finished, finds the state the
/// first one reported, and nothing more to hand back.
fn check_final(shared: &Arc<BatcherState<u32>>, first: &BatchReport<u32>) {
    let again = block_on(shared.shutdown(now(), |_| true));
    assert_eq!(counts(&again), counts(first));
    assert!(
        again.unflushed().is_empty() && again.failed().is_empty() && again.abandoned().is_empty()
    );
    assert_eq!(shared.pending(), 0);
    assert_eq!(shared.in_flight(), 0);
}

#[test]
fn loom_full_batches_are_claimed_flushed_once_and_their_worker_parks_and_exits() {
    loom::model(|| {
        // One item per batch, one slot: the second batch is claimed while
        // the worker is starting, running, or parked (and must be woken);
        // shutdown closes at any point of that.
        let m = model(1, 1, 4, Sink::Succeeds);
        let producer = {
            let batcher = m.batcher.clone();
            let shared = Arc::clone(&m.shared);
            thread::spawn(move || {
                let accepted: Vec<u32> = [0, 1]
                    .into_iter()
                    .filter(|&item| batcher.try_push(item).is_ok())
                    .collect();
                shared.assert_ready_batches_have_a_worker_coming();
                accepted
            })
        };
        let report = block_on(m.shared.shutdown(now(), no_limit));
        let accepted = producer.join().unwrap();
        m.join_and_check(&report, &accepted, true);
    });
}

#[test]
fn loom_a_due_batch_goes_to_the_driver_or_to_the_next_free_worker() {
    loom::model(|| {
        // Batch [0, 1] fills and goes to the worker; [2] is due at once
        // (its deadline has passed): the driver seals it if the slot is
        // free or its worker parked, or marks it overdue for the worker to
        // take when it finishes.
        let m = model(2, 1, 4, Sink::Succeeds);
        let driver = {
            let shared = Arc::clone(&m.shared);
            thread::spawn(move || drive(&shared))
        };
        m.batcher.try_push(0).unwrap();
        m.batcher.try_push(1).unwrap();
        m.batcher.try_push_by(2, now()).unwrap();
        m.shared.assert_ready_batches_have_a_worker_coming();
        let report = block_on(m.shared.shutdown(now(), no_limit));
        driver.join().unwrap();
        m.join_and_check(&report, &[0, 1, 2], true);
    });
}

/// Capacity two, filled by items 0 and 1 (one batch), and a thread whose
/// push of item 2 waits for room; it returns whether the push got in.
fn full_with_a_push_waiting() -> (Model, thread::JoinHandle<bool>) {
    let m = model(2, 1, 2, Sink::Succeeds);
    m.batcher.try_push(0).unwrap();
    m.batcher.try_push(1).unwrap();
    let producer = {
        let batcher = m.batcher.clone();
        thread::spawn(move || block_on(batcher.push(2)).is_ok())
    };
    (m, producer)
}

#[test]
fn loom_a_push_waiting_for_room_gets_in_or_gets_its_item_back() {
    loom::model(|| {
        // The third push waits until the worker takes the first batch, or
        // until shutdown closes the batcher.
        let (m, producer) = full_with_a_push_waiting();
        let report = block_on(m.shared.shutdown(now(), no_limit));
        let mut accepted = vec![0, 1];
        if producer.join().unwrap() {
            accepted.push(2);
        }
        m.join_and_check(&report, &accepted, true);
    });
}

#[test]
fn loom_a_push_waiting_for_room_is_woken_once_a_worker_takes_a_batch() {
    loom::model(|| {
        // No shutdown until the third push is in: only the worker taking
        // the first batch can let it in.
        let (m, producer) = full_with_a_push_waiting();
        assert!(producer.join().unwrap(), "the batcher is open");
        let report = block_on(m.shared.shutdown(now(), no_limit));
        m.join_and_check(&report, &[0, 1, 2], true);
    });
}

#[test]
fn loom_a_shutdown_giving_up_mid_flush_accounts_for_each_item_once() {
    for look in [1, 2] {
        loom::model(move || {
            // One item per batch, one slot; batches 0 and 2 fail (kept for
            // the report), 1 succeeds. The grace period runs out while they
            // are handed over, run, or recorded.
            let m = model(1, 1, 4, Sink::FailsOnEven);
            for item in [0, 1, 2] {
                m.batcher.try_push(item).unwrap();
            }
            let report = block_on(m.shared.shutdown(now(), over_at_look(look)));
            m.shared.assert_ready_batches_have_a_worker_coming();
            m.join_and_check(&report, &[0, 1, 2], false);
        });
    }
}

#[test]
fn loom_batches_take_their_turn_to_call_the_flush_function() {
    loom::model(|| {
        // Two slots: batch 1's worker may take its batch before batch 0's
        // worker has called the flush function, and must then wait for its
        // turn, and be woken for it. Dropping the last handle closes the
        // batcher (a shutdown's waits would only add interleavings that do
        // not touch the turns).
        let m = model(1, 2, 4, Sink::SucceedsAfterASwitchOnZero);
        for item in [0, 1] {
            m.batcher.try_push(item).unwrap();
        }
        drop(m.batcher);
        m.runner.join_all();
        assert_eq!(*lock(&*m.calls), [[0], [1]], "batches called out of order");

        // Nothing is left for a report to give up on.
        let report = block_on(m.shared.shutdown(now(), |_| true));
        check_complete(&report, &m.calls, &[0, 1]);
    });
}

#[test]
fn loom_an_abandoned_flush_and_the_batch_waiting_behind_it_are_woken_and_exit() {
    // Batch 0 never completes. With two slots, batch 1's worker may still
    // wait for its turn behind it, and the grace period is over at
    // shutdown's first look; with one slot, batch 1 waits for the slot, and
    // shutdown waits once before it gives up. Either way the abandonment
    // must wake the worker stuck in the flush (and the one behind it).
    for (slots, look) in [(2, 1), (1, 2)] {
        loom::model(move || {
            let m = model(1, slots, 4, Sink::HangsOnZero);
            for item in [0, 1] {
                m.batcher.try_push(item).unwrap();
            }
            let report = block_on(m.shared.shutdown(now(), over_at_look(look)));
            m.join_and_check(&report, &[0, 1], false);
            // Only batch 1, and only with a slot of its own, can be flushed.
            assert!(
                report.flushed_items() < slots as u64,
                "the hanging flush was counted: {report:?}"
            );
            let calls = lock(&*m.calls).clone();
            assert!(calls.is_empty() || calls[0] == [0], "{calls:?}");
        });
    }
}

#[test]
fn loom_dropping_the_last_handle_flushes_in_the_background_and_the_worker_exits() {
    loom::model(|| {
        // No shutdown: the last of two handles to go closes the batcher, and
        // the worker, parked or busy, must flush what is left and exit.
        let m = model(1, 1, 4, Sink::Succeeds);
        m.batcher.try_push(0).unwrap();
        let producer = {
            let batcher = m.batcher.clone();
            thread::spawn(move || {
                batcher.try_push(1).unwrap();
                drop(batcher);
            })
        };
        drop(m.batcher);
        producer.join().unwrap();
        m.runner.join_all();

        // Nothing is left for a report to give up on.
        let report = block_on(m.shared.shutdown(now(), |_| true));
        check_complete(&report, &m.calls, &[0, 1]);
    });
}
