//! `deadman`: heartbeats for work that is not a stream, under paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hangfree::watchdog::{Progress, StallKind, deadman};
use tokio::time::{self, Instant};
use tokio_test::{assert_pending, assert_ready, task};

#[path = "watchdog/common.rs"]
mod common;
use common::{MINUTE, MS, SECOND};

/// Sets its flag when dropped: shows the watched future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Work that keeps beating within `idle` runs to completion, however long.
#[tokio::test(start_paused = true)]
async fn a_worker_that_keeps_beating_runs_to_completion() {
    let (pulse, deadman) = deadman(30 * SECOND);
    let started = Instant::now();
    let result = deadman
        .watch(async move {
            for _ in 0..20 {
                time::sleep(10 * SECOND).await;
                pulse.beat();
            }
            "exported"
        })
        .await;
    assert_eq!(result.unwrap(), "exported");
    assert_eq!(Instant::now() - started, 200 * SECOND);
}

/// Work whose beats stop is stalled `idle` after the last beat, and its
/// future is dropped.
#[tokio::test(start_paused = true)]
async fn a_worker_whose_beats_stop_is_stalled_and_dropped() {
    let (pulse, deadman) = deadman(30 * SECOND);
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let mut watched = task::spawn(deadman.watch(async move {
        let _flag = flag;
        for _ in 0..3 {
            time::sleep(10 * SECOND).await;
            pulse.beat();
        }
        std::future::pending::<()>().await;
    }));

    assert_pending!(watched.poll());
    for _ in 0..3 {
        time::advance(10 * SECOND).await;
        assert_pending!(watched.poll());
    }
    let last_beat = Instant::now();
    time::advance(30 * SECOND - MS).await;
    assert_pending!(watched.poll());
    assert!(!dropped.load(Ordering::SeqCst));

    time::advance(MS).await;
    assert!(watched.is_woken());
    let stall = assert_ready!(watched.poll()).unwrap_err();
    assert_eq!(Instant::now() - last_beat, 30 * SECOND);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::Beats(3));
    assert_eq!(stall.waited(), 30 * SECOND);
    assert_eq!(stall.elapsed(), 60 * SECOND);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stalled work was dropped"
    );
    assert_eq!(
        stall.to_string(),
        "stalled: no heartbeat for 30s (limit 30s) after 3 heartbeats (1m0s into the work)"
    );
}

/// Work that never beats is stalled `idle` after the watch began.
#[tokio::test(start_paused = true)]
async fn work_that_never_beats_is_stalled_after_idle() {
    let (_pulse, deadman) = deadman(30 * SECOND);
    let started = Instant::now();
    let stall = deadman
        .watch(std::future::pending::<()>())
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - started, 30 * SECOND);
    assert_eq!(stall.progress(), Progress::Beats(0));
}

/// Beats may come from other tasks; they move the deadline without waking
/// the watcher (the timer is re-armed lazily when it fires).
#[tokio::test(start_paused = true)]
async fn beats_from_another_task_keep_the_work_alive() {
    let (pulse, deadman) = deadman(30 * SECOND);
    let helper = pulse.clone();
    let beater = tokio::spawn(async move {
        for _ in 0..6 {
            time::sleep(20 * SECOND).await;
            helper.beat();
        }
    });
    let started = Instant::now();
    // The work itself never beats; the helper beats for 120 s.
    let stall = deadman
        .watch(std::future::pending::<()>())
        .await
        .unwrap_err();
    beater.await.unwrap();
    assert_eq!(Instant::now() - started, 150 * SECOND);
    assert_eq!(pulse.beats(), 6);
    assert_eq!(stall.progress(), Progress::Beats(6));
}

/// A beat moves the deadline without touching the timer: the timer fires
/// early, is moved on, and the stall comes `idle` after the last beat.
#[tokio::test(start_paused = true)]
async fn early_firings_rearm_without_a_false_stall() {
    let (pulse, deadman) = deadman(30 * SECOND);
    let mut watched = task::spawn(deadman.watch(std::future::pending::<()>()));
    assert_pending!(watched.poll());
    time::advance(20 * SECOND).await;
    pulse.beat();
    // The timer armed for 30 s fires; the deadline is now 50 s.
    time::advance(10 * SECOND).await;
    assert!(watched.is_woken());
    assert_pending!(watched.poll());
    time::advance(20 * SECOND - MS).await;
    assert_pending!(watched.poll());
    time::advance(MS).await;
    let stall = assert_ready!(watched.poll()).unwrap_err();
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(
        stall.waited(),
        30 * SECOND,
        "measured from the beat at 20 s"
    );
}

#[test]
#[should_panic(expected = "deadman idle must be greater than zero")]
fn a_zero_idle_is_rejected() {
    let _ = deadman(Duration::ZERO);
}

#[test]
fn a_zero_idle_is_an_error_from_the_fallible_form() {
    let err = hangfree::watchdog::try_deadman(Duration::ZERO).unwrap_err();
    assert_eq!(err, hangfree::LimitsError::ZeroDeadmanIdle);
    assert!(
        err.to_string()
            .starts_with("deadman idle must be greater than zero")
    );
}

/// A deadman whose every `Pulse` is dropped while the work still runs
/// neither finishes nor hangs: it stalls `idle` after the last beat.
#[tokio::test(start_paused = true)]
async fn dropping_every_pulse_stalls_idle_after_the_last_beat() {
    let (pulse, watcher) = deadman(30 * SECOND);
    let started = Instant::now();
    let stall = watcher
        .watch(async move {
            time::sleep(10 * SECOND).await;
            pulse.beat();
            drop(pulse);
            std::future::pending::<()>().await;
        })
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - started, 40 * SECOND);
    assert_eq!(stall.kind(), StallKind::Idle);
}

/// Watching a future that is ready at once gives its output.
#[tokio::test(start_paused = true)]
async fn a_future_that_is_ready_at_once_is_ok() {
    let (_pulse, watcher) = deadman(SECOND);
    assert_eq!(watcher.watch(std::future::ready(7)).await.unwrap(), 7);
}

/// An idle of `Duration::MAX` is "never", not an overflow panic.
#[tokio::test(start_paused = true)]
async fn the_longest_idle_never_trips_and_never_panics() {
    let (_pulse, watcher) = deadman(Duration::MAX);
    let mut watched = task::spawn(watcher.watch(std::future::pending::<()>()));
    assert_pending!(watched.poll());
    time::advance(365 * 24 * 60 * MINUTE).await;
    assert_pending!(watched.poll());
}
