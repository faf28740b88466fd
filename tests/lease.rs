//! `lease`: a lock kept alive while its work beats, under paused time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::lease::{KeepAlive, Lease, Lost};
use hangfree::watchdog::{Progress, deadman};
use tokio::time::{self, Instant};

/// Counts live heap bytes on the threads a test marks (the leak test below).
#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const SECOND: Duration = Duration::from_secs(1);
const LOCK: Duration = Duration::from_secs(30);

/// Sets its flag when dropped: shows a future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A broker's renewal call that records when each one started, answers after
/// `round_trip`, and refuses the renewals whose number (from 1) is in `refuse`.
#[derive(Clone)]
struct Broker {
    start: Instant,
    started: Arc<Mutex<Vec<Duration>>>,
    round_trip: Duration,
    refuse: Vec<usize>,
}

impl Broker {
    fn new(round_trip: Duration) -> Broker {
        Broker {
            start: Instant::now(),
            started: Arc::default(),
            round_trip,
            refuse: Vec::new(),
        }
    }

    fn refusing(mut self, renewal: usize) -> Broker {
        self.refuse.push(renewal);
        self
    }

    fn renew(
        &self,
    ) -> impl FnMut() -> futures::future::BoxFuture<'static, Result<(), String>> + use<> {
        let broker = self.clone();
        move || {
            let broker = broker.clone();
            Box::pin(async move {
                let number = {
                    let mut started = broker.started.lock().unwrap();
                    started.push(broker.start.elapsed());
                    started.len()
                };
                time::sleep(broker.round_trip).await;
                if broker.refuse.contains(&number) {
                    Err(format!(
                        "lock of renewal {number} belongs to another consumer"
                    ))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn started(&self) -> Vec<Duration> {
        self.started.lock().unwrap().clone()
    }
}

fn secs(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|&s| Duration::from_secs(s)).collect()
}

/// Work that beats every `every` until `until`, then returns `"done"`.
async fn beating(
    pulse: hangfree::watchdog::Pulse,
    every: Duration,
    until: Duration,
) -> &'static str {
    let start = Instant::now();
    while start.elapsed() < until {
        time::sleep(every).await;
        pulse.beat();
    }
    "done"
}

#[tokio::test(start_paused = true)]
async fn renewals_start_every_third_of_the_lock_from_the_lease_start_while_the_work_beats() {
    let broker = Broker::new(Duration::ZERO);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let handled = lease
        .keep_alive(
            deadman,
            broker.renew(),
            beating(pulse, 5 * SECOND, 65 * SECOND),
        )
        .await;
    assert_eq!(handled.unwrap(), "done");
    assert_eq!(start.elapsed(), 65 * SECOND);
    assert_eq!(broker.started(), secs(&[10, 20, 30, 40, 50, 60]));
    assert_eq!(lease.renewals(), 6);
    assert_eq!(lease.expires_at(), start + 90 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_lease_received_earlier_is_first_renewed_from_its_own_start() {
    let broker = Broker::new(Duration::ZERO);
    let received = Instant::now();
    time::sleep(7 * SECOND).await; // waited for a free worker
    let lease = Lease::new(received + LOCK, LOCK).renew_every(5 * SECOND);
    let (pulse, deadman) = deadman(15 * SECOND);
    lease
        .keep_alive(deadman, broker.renew(), beating(pulse, SECOND, 12 * SECOND))
        .await
        .unwrap();
    // Due at 5 s, so at once when first polled at 7 s; then every 5 s from there.
    assert_eq!(broker.started(), secs(&[7, 12, 17]));
    assert_eq!(lease.expires_at(), received + 17 * SECOND + LOCK);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_extends_the_lock_from_when_it_started_and_a_slow_one_is_followed_at_once() {
    let broker = Broker::new(12 * SECOND);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let kept = tokio::spawn(lease.keep_alive(
        deadman,
        broker.renew(),
        beating(pulse, 2 * SECOND, 60 * SECOND),
    ));
    time::sleep(23 * SECOND).await;
    // Started at 10 s, answered at 22 s: the lock runs 30 s from 10 s, and the next
    // renewal (due at 20 s) started when the first one was answered.
    assert_eq!(lease.expires_at(), start + 40 * SECOND);
    assert_eq!(broker.started(), secs(&[10, 22]));
    kept.abort();
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_is_not_renewed_from_the_instant_its_deadman_trips() {
    let broker = Broker::new(Duration::ZERO);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(10 * SECOND);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let lost = lease
        .keep_alive(deadman, broker.renew(), async move {
            let _flag = flag;
            beating(pulse, 5 * SECOND, 20 * SECOND).await;
            std::future::pending::<()>().await // hangs without a beat
        })
        .await
        .unwrap_err();
    // Last beat at 20 s: the deadman trips at 30 s, the very instant a renewal was due.
    assert_eq!(start.elapsed(), 30 * SECOND);
    assert_eq!(broker.started(), secs(&[10, 20]), "no renewal at 30 s");
    let Lost::Silent(stalled) = &lost else {
        panic!("expected silence, got {lost}");
    };
    assert_eq!(stalled.progress(), Progress::Beats(4));
    assert_eq!(stalled.waited(), 10 * SECOND);
    assert!(lost.is_silent());
    assert!(
        dropped.load(Ordering::SeqCst),
        "the silent work was dropped"
    );
    assert_eq!(lease.expires_at(), start + 50 * SECOND);
    assert_eq!(
        lost.to_string(),
        "lock given up, the work went silent: stalled: no heartbeat for 10s (limit 10s) after 4 heartbeats (30s into the work)"
    );

    // Nothing renews it afterwards.
    time::sleep(120 * SECOND).await;
    assert_eq!(broker.started().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_beats_just_before_a_renewal_is_due_gets_it() {
    let broker = Broker::new(Duration::ZERO);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(10 * SECOND);
    let lost = lease
        .keep_alive(deadman, broker.renew(), async move {
            beating(pulse.clone(), 5 * SECOND, 20 * SECOND).await;
            time::sleep(Duration::from_millis(1)).await;
            pulse.beat();
            std::future::pending::<()>().await
        })
        .await
        .unwrap_err();
    assert!(lost.is_silent());
    assert_eq!(start.elapsed(), 30 * SECOND + Duration::from_millis(1));
    assert_eq!(broker.started(), secs(&[10, 20, 30]));
}

#[tokio::test(start_paused = true)]
async fn a_failed_renewal_is_reported_with_its_error_and_the_work_dropped() {
    let broker = Broker::new(SECOND).refusing(2);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let lost = lease
        .keep_alive(deadman, broker.renew(), async move {
            let _flag = flag;
            beating(pulse, SECOND, 600 * SECOND).await
        })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), 21 * SECOND, "the second renewal's answer");
    assert!(
        matches!(&lost, Lost::Renewal(e) if e == "lock of renewal 2 belongs to another consumer"),
        "{lost}"
    );
    assert_eq!(
        lost.to_string(),
        "lock lost: a renewal failed: lock of renewal 2 belongs to another consumer"
    );
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(lease.renewals(), 1);
    assert_eq!(lease.expires_at(), start + 40 * SECOND);
    time::sleep(120 * SECOND).await;
    assert_eq!(broker.started().len(), 2, "no renewal after the failure");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_unanswered_when_the_lease_runs_out_loses_the_lock_at_its_expiry() {
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let in_flight_dropped = Arc::new(AtomicBool::new(false));
    let renew = {
        let dropped = in_flight_dropped.clone();
        move || {
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                std::future::pending::<Result<(), String>>().await
            }
        }
    };
    let lost = lease
        .keep_alive(deadman, renew, beating(pulse, SECOND, 600 * SECOND))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), LOCK);
    assert!(
        matches!(lost, Lost::Expired { expired_at } if expired_at == start + LOCK),
        "{lost}"
    );
    assert_eq!(
        lost.to_string(),
        "lock lost: it expired before a renewal was confirmed"
    );
    assert!(in_flight_dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_ran_out_before_it_was_kept_alive_is_lost_at_once() {
    let broker = Broker::new(Duration::ZERO);
    let received = Instant::now();
    time::sleep(LOCK + SECOND).await;
    let lease = Lease::new(received + LOCK, LOCK);
    let (_pulse, deadman) = deadman(15 * SECOND);
    let lost = lease
        .keep_alive(deadman, broker.renew(), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(matches!(lost, Lost::Expired { .. }), "{lost}");
    assert_eq!(received.elapsed(), LOCK + SECOND);
    assert!(broker.started().is_empty());
}

#[tokio::test(start_paused = true)]
async fn work_that_completes_when_a_renewal_is_due_wins_and_renewals_stop() {
    let broker = Broker::new(Duration::ZERO);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let output = lease
        .keep_alive(
            deadman,
            broker.renew(),
            beating(pulse, 5 * SECOND, 20 * SECOND),
        )
        .await
        .unwrap();
    assert_eq!(output, "done");
    assert_eq!(
        broker.started(),
        secs(&[10]),
        "none at 20 s, when the work ended"
    );
    time::sleep(120 * SECOND).await;
    assert_eq!(broker.started().len(), 1);
    assert_eq!(lease.expires_at(), start + 40 * SECOND);
}

/// A runtime held back past both the work's end and the lease's expiry (blocking code,
/// a starved worker) polls the finished work first: its output is returned, not thrown
/// away for an expiry found in the same poll, and the lease still tells that it ran out.
#[tokio::test(start_paused = true)]
async fn finished_work_found_after_the_expiry_keeps_its_output_and_the_lease_tells() {
    let broker = Broker::new(Duration::ZERO);
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let work = async move {
        time::sleep(LOCK + SECOND).await;
        pulse.beat();
        "done"
    };
    let mut kept = tokio_test::task::spawn(lease.keep_alive(deadman, broker.renew(), work));
    tokio_test::assert_pending!(kept.poll());
    // Nobody polls the future again until the work has finished and the lock has run out.
    time::advance(LOCK + 2 * SECOND).await;
    assert_eq!(tokio_test::assert_ready!(kept.poll()).unwrap(), "done");
    assert!(broker.started().is_empty(), "no renewal was ever started");
    assert_eq!(lease.renewals(), 0);
    assert!(
        lease.expires_at() < Instant::now(),
        "the lease tells it ran out"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_keep_alive_stops_renewals_and_drops_the_renewal_in_flight() {
    let start = Instant::now();
    let lease = Lease::new(start + LOCK, LOCK);
    let (pulse, deadman) = deadman(15 * SECOND);
    let calls = Arc::new(AtomicU64::new(0));
    let in_flight_dropped = Arc::new(AtomicBool::new(false));
    let renew = {
        let calls = calls.clone();
        let dropped = in_flight_dropped.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let flag = DropFlag(dropped.clone());
            async move {
                let _flag = flag;
                time::sleep(5 * SECOND).await;
                Ok::<(), String>(())
            }
        }
    };
    let work_dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(work_dropped.clone());
    let kept = tokio::spawn(lease.keep_alive(deadman, renew, async move {
        let _flag = flag;
        beating(pulse, SECOND, 600 * SECOND).await
    }));
    time::sleep(12 * SECOND).await; // the first renewal (10 s..15 s) is in flight
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    kept.abort();
    let _ = kept.await;
    assert!(work_dropped.load(Ordering::SeqCst));
    assert!(in_flight_dropped.load(Ordering::SeqCst));
    time::sleep(300 * SECOND).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "nothing renewed after the drop"
    );
    assert_eq!(lease.renewals(), 0);
    assert_eq!(lease.expires_at(), start + LOCK);
}

#[test]
fn lease_types_are_send_sync_and_unpin() {
    fn send_sync_unpin<T: Send + Sync + Unpin>() {}
    fn send_unpin<T: Send + Unpin>() {}
    send_sync_unpin::<Lease>();
    send_sync_unpin::<Lost<std::io::Error>>();
    type Renew = fn() -> std::future::Ready<Result<(), String>>;
    send_unpin::<KeepAlive<std::future::Ready<u8>, Renew, std::future::Ready<Result<(), String>>>>(
    );
    send_sync_unpin::<
        KeepAlive<std::future::Ready<u8>, Renew, std::future::Ready<Result<(), String>>>,
    >();
}

/// Many keep-alives, ending every way (work done, silent, refused, dropped), leave the
/// heap where it was: no timer, waiter or renewal outlives its keep-alive.
#[test]
fn many_keep_alives_leave_no_residue() {
    const WAVES: usize = 20;
    const PER_WAVE: usize = 2_000;
    alloc::count_this_thread();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let wave = || async {
            let mut handles = Vec::with_capacity(PER_WAVE);
            for n in 0..PER_WAVE {
                let lease = Lease::new(Instant::now() + LOCK, LOCK);
                let (pulse, deadman) = deadman(15 * SECOND);
                let kept = async move {
                    let outcome = match n % 4 {
                        0 => lease
                            .keep_alive(
                                deadman,
                                || async { Ok::<(), String>(()) },
                                beating(pulse, 5 * SECOND, 25 * SECOND),
                            )
                            .await
                            .map(drop),
                        1 => {
                            lease
                                .keep_alive(
                                    deadman,
                                    || async { Ok::<(), String>(()) },
                                    async move {
                                        pulse.beat();
                                        std::future::pending::<()>().await
                                    },
                                )
                                .await
                        }
                        2 => lease
                            .keep_alive(
                                deadman,
                                || async {
                                    time::sleep(SECOND).await;
                                    Err::<(), String>("refused".to_string())
                                },
                                beating(pulse, 5 * SECOND, 60 * SECOND),
                            )
                            .await
                            .map(drop),
                        _ => {
                            let kept = lease.keep_alive(
                                deadman,
                                || async { Ok::<(), String>(()) },
                                beating(pulse, SECOND, 60 * SECOND),
                            );
                            time::timeout(12 * SECOND, kept)
                                .await
                                .map_or(Ok(()), |r| r.map(drop))
                        }
                    };
                    (n % 4, outcome.is_ok())
                };
                handles.push(tokio::spawn(kept));
            }
            let mut ok = [0usize; 4];
            for handle in handles {
                let (kind, is_ok) = handle.await.unwrap();
                ok[kind] += usize::from(is_ok);
            }
            ok
        };
        // Warm up: the runtime's queues reach their working sizes.
        wave().await;
        let before = alloc::live();
        for _ in 0..WAVES {
            let ok = wave().await;
            assert_eq!(
                ok,
                [PER_WAVE / 4, 0, 0, PER_WAVE / 4],
                "work done, silent, refused, dropped"
            );
        }
        let residue = alloc::live() - before;
        println!(
            "{} keep-alives, heap residue {residue} bytes",
            WAVES * PER_WAVE
        );
        assert!(
            residue.abs() < 4096,
            "residue after {} keep-alives: {residue} bytes",
            WAVES * PER_WAVE
        );
    });
}
