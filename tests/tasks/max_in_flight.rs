//! `max_in_flight`: at most that many async tasks run at once, slots go out
//! in spawn order, and `spawn_waiting` waits for one (and gives up when
//! shutdown begins).

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hangfree::TaskSet;
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready};

use super::{MS, SECOND, run_until};

#[tokio::test(start_paused = true)]
async fn at_most_max_in_flight_tasks_run_at_once() {
    let set = TaskSet::builder().max_in_flight(3).build();
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let (current, peak) = (current.clone(), peak.clone());
        set.spawn("limited", async move {
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            sleep(100 * MS).await;
            current.fetch_sub(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(set.len(), 20, "tasks waiting for a slot are tracked");
    let start = Instant::now();
    let report = set.shutdown(10 * SECOND).await;
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(report.completed(), 20);
    // 20 tasks, 3 at a time, 100 ms each: 7 rounds.
    assert_eq!(start.elapsed(), 700 * MS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_holds_under_mixed_spawns_on_two_workers() {
    let set = TaskSet::builder().max_in_flight(3).build();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let work = |now: Arc<AtomicUsize>, peak: Arc<AtomicUsize>| async move {
        let running = now.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(running, Ordering::SeqCst);
        tokio::task::yield_now().await;
        now.fetch_sub(1, Ordering::SeqCst);
    };
    for n in 0..3000 {
        let job = work(now.clone(), peak.clone());
        match n % 3 {
            0 => {
                set.spawn("spawn", job).unwrap();
            }
            // The handle is dropped at once: the task stays tracked.
            1 => drop(set.spawn_with_handle("handle", job).unwrap()),
            _ => {
                set.spawn_waiting("waiting", job).await.unwrap();
            }
        }
    }
    let report = set.shutdown(30 * SECOND).await;
    assert_eq!(report.completed(), 3000);
    assert!(peak.load(Ordering::SeqCst) <= 3, "peak {peak:?}");
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_resumes_as_soon_as_a_slot_frees_in_order() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("first", sleep(SECOND)).unwrap();
    let start = Instant::now();

    let mut second = tokio_test::task::spawn(set.spawn_waiting("second", sleep(SECOND)));
    let mut third = tokio_test::task::spawn(set.spawn_waiting("third", sleep(SECOND)));
    assert_pending!(second.poll());
    assert_pending!(third.poll());

    advance(SECOND).await;
    run_until(|| second.is_woken()).await;
    let second_id = assert_ready!(second.poll()).unwrap();
    assert_eq!(start.elapsed(), SECOND);
    assert_pending!(third.poll());
    assert!(!third.is_woken());

    advance(SECOND).await;
    run_until(|| third.is_woken()).await;
    let third_id = assert_ready!(third.poll()).unwrap();
    assert!(second_id < third_id);
    assert_eq!(start.elapsed(), 2 * SECOND);
    assert_eq!(set.running()[0].label(), "third");
}

#[tokio::test(start_paused = true)]
async fn a_task_spawned_while_full_is_not_overtaken_by_a_later_spawn_waiting() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let order = Arc::new(Mutex::new(Vec::new()));
    set.spawn("holder", sleep(SECOND)).unwrap();
    let log = order.clone();
    // Spawned first, while full: "tracked at once and starts when a slot
    // frees (in spawn order)".
    set.spawn("spawned first", async move {
        log.lock().unwrap().push("spawned first");
        sleep(SECOND).await;
    })
    .unwrap();
    let log = order.clone();
    set.spawn_waiting("spawned second", async move {
        log.lock().unwrap().push("spawned second");
        sleep(SECOND).await;
    })
    .await
    .unwrap();
    sleep(5 * SECOND).await;
    assert_eq!(
        *order.lock().unwrap(),
        ["spawned first", "spawned second"],
        "slots must be handed out in spawn order"
    );
}

#[test]
fn tasks_spawned_while_full_start_in_spawn_order_on_a_multi_thread_runtime() {
    // One worker: no stealing, so the order is deterministic. Spawning from a
    // worker puts each new task in the worker's LIFO slot.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let order = runtime.block_on(async {
        tokio::spawn(async {
            let set = TaskSet::builder().max_in_flight(1).build();
            let order = Arc::new(Mutex::new(Vec::new()));
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            set.spawn("holder", async move {
                let _ = released.await;
            })
            .unwrap();
            for n in 0..4 {
                let log = order.clone();
                set.spawn(format!("task {n}"), async move {
                    log.lock().unwrap().push(n);
                })
                .unwrap();
            }
            // Let every task reach its slot wait, then free the slot.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            release.send(()).unwrap();
            let report = set.shutdown(5 * SECOND).await;
            assert_eq!(report.completed(), 5);
            Arc::try_unwrap(order).unwrap().into_inner().unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(order, [0, 1, 2, 3], "documented: starts in spawn order");
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_is_rejected_when_shutdown_begins() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holds the slot", pending::<()>()).unwrap();
    let mut waiting = tokio_test::task::spawn(set.spawn_waiting("waits", async {}));
    assert_pending!(waiting.poll());

    let mut shutdown = tokio_test::task::spawn(set.shutdown(SECOND));
    assert_pending!(shutdown.poll());
    assert!(waiting.is_woken());
    assert!(assert_ready!(waiting.poll()).is_err());
    drop(waiting);
    drop(shutdown);
    assert_eq!(set.counts().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_spawn_waiting_leaks_no_slot() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("holder", sleep(SECOND)).unwrap();
    let waiting = tokio::time::timeout(10 * MS, set.spawn_waiting("gives up", async {})).await;
    assert!(waiting.is_err());
    advance(SECOND).await;
    run_until(|| set.is_empty()).await;
    let again =
        tokio::time::timeout(10 * MS, set.spawn_waiting("gets the slot", sleep(SECOND))).await;
    assert!(matches!(again, Ok(Ok(_))), "the slot came back");
}

#[test]
#[should_panic(expected = "max_in_flight must be at least 1")]
fn zero_max_in_flight_is_a_programmer_error() {
    let _ = TaskSet::builder().max_in_flight(0);
}

#[tokio::test(start_paused = true)]
async fn a_reservation_abandoned_in_a_select_keeps_the_message_and_holds_no_slot() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("busy", sleep(10 * SECOND)).unwrap();
    let message = String::from("msg 17");
    let stop = sleep(SECOND); // ctrl-c, say
    let spawned = tokio::select! {
        permit = set.reserve() => {
            let message = message.clone();
            permit.unwrap().spawn("handle", async move { drop(message) }).unwrap();
            true
        }
        () = stop => false,
    };
    assert!(!spawned, "stopped first");
    assert_eq!(message, "msg 17", "the message is still ours");
    assert_eq!(set.len(), 1);
    // The abandoned reservation left the queue: the next one gets the slot.
    let start = Instant::now();
    let permit = set.reserve().await.unwrap();
    assert_eq!(start.elapsed(), 9 * SECOND);
    permit
        .spawn("handle", async move { drop(message) })
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_permit_holds_its_slot_until_it_spawns_or_is_dropped() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let permit = set.reserve().await.unwrap();
    let mut second = tokio_test::task::spawn(set.reserve());
    assert_pending!(second.poll(), "the permit holds the only slot");
    set.spawn("queued", async {}).unwrap();
    drop(permit);
    // In order: the waiting reservation first, then the task spawned after it.
    assert!(second.is_woken());
    let permit = assert_ready!(second.poll()).unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(set.len(), 1, "the queued task waits behind the permit");
    let id = permit.spawn("in the reserved slot", sleep(SECOND)).unwrap();
    assert_eq!(set.running()[1].id(), id);
    set.wait_idle().await;
    assert_eq!(set.counts().completed, 2);
}

#[tokio::test(start_paused = true)]
async fn a_permits_spawn_is_rejected_once_the_set_has_closed() {
    let set = TaskSet::builder().max_in_flight(1).build();
    let permit = set.reserve().await.unwrap();
    set.close();
    let rejected = permit
        .spawn("too late", async { Ok::<u8, String>(5) })
        .unwrap_err();
    assert_eq!(rejected.label(), "too late");
    assert_eq!(rejected.into_inner().await, Ok(5));
    set.reopen();
    assert!(
        set.reserve().await.is_ok(),
        "the rejected spawn freed the slot"
    );
}

#[tokio::test(start_paused = true)]
async fn spawn_waiting_with_handle_waits_for_a_slot_and_hands_back_the_output() {
    let set = TaskSet::builder().max_in_flight(1).build();
    set.spawn("first", sleep(SECOND)).unwrap();
    let start = Instant::now();
    let handle = set
        .spawn_waiting_with_handle("sum", async { 1 + 2 })
        .await
        .unwrap();
    assert_eq!(start.elapsed(), SECOND);
    assert_eq!(handle.await, Ok(3));

    set.close();
    let rejected = set
        .spawn_waiting_with_handle("late", async { 4 })
        .await
        .unwrap_err();
    assert_eq!(rejected.into_inner().await, 4);
}

#[test]
fn try_max_in_flight_refuses_zero_with_a_sentence_for_operators() {
    use hangfree::tasks::TaskSetConfigError;
    let err = TaskSet::builder().try_max_in_flight(0).unwrap_err();
    assert_eq!(err, TaskSetConfigError::ZeroMaxInFlight);
    assert_eq!(
        err.to_string(),
        "TaskSetBuilder::max_in_flight must be at least 1: with no slot no task could ever \
         run; leave max_in_flight unset for no limit"
    );
    let set = TaskSet::builder().try_max_in_flight(3).unwrap().build();
    assert!(format!("{set:?}").contains("max_in_flight: Some(3)"));
}
