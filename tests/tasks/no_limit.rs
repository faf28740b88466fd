//! A grace or an abort wait whose end cannot be represented means no limit.

use std::time::Duration;

use hangfree::TaskSet;
use tokio::sync::oneshot;
use tokio::time::advance;
use tokio_test::{assert_pending, assert_ready};

use super::{SECOND, blocking_until_released};

/// Far beyond any clamp a shutdown could apply.
const A_THOUSAND_YEARS: Duration = Duration::from_secs(1000 * 365 * 24 * 60 * 60);

#[tokio::test(start_paused = true)]
async fn a_grace_of_duration_max_waits_for_every_task_and_aborts_nothing() {
    let set = TaskSet::new();
    let (finish, finished) = oneshot::channel::<()>();
    set.spawn("settle", async move {
        let _ = finished.await;
    })
    .unwrap();

    let mut shutdown = tokio_test::task::spawn(set.shutdown(Duration::MAX));
    assert_pending!(shutdown.poll());
    assert!(set.is_closed() && set.token().is_cancelled());
    advance(A_THOUSAND_YEARS).await;
    assert_pending!(shutdown.poll());
    assert_eq!(set.running()[0].label(), "settle");

    finish.send(()).unwrap();
    for _ in 0..1_000 {
        if shutdown.is_woken() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let report = assert_ready!(shutdown.poll());
    assert_eq!(report.completed(), 1);
    assert_eq!(report.counts().aborted, 0);
    assert!(report.aborted().is_empty() && report.unresponsive().is_empty());
    assert_eq!(report.elapsed(), A_THOUSAND_YEARS);
}

#[tokio::test(start_paused = true)]
async fn an_abort_wait_of_duration_max_waits_until_every_aborted_task_has_ended() {
    let set = TaskSet::builder().abort_wait(Duration::MAX).build();
    // A started blocking closure: the abort cannot stop it (it really blocks
    // until released, which is the point).
    let (work, started, release) = blocking_until_released();
    set.spawn_blocking("compress", work).unwrap();
    started.await.unwrap();

    let mut shutdown = tokio_test::task::spawn(set.shutdown(SECOND));
    assert_pending!(shutdown.poll());
    // A running blocking closure stops tokio's auto-advance: time moves by hand.
    advance(SECOND).await;
    assert_pending!(shutdown.poll());
    advance(A_THOUSAND_YEARS).await;
    assert_pending!(shutdown.poll());
    assert_eq!(set.running()[0].label(), "compress");

    drop(release);
    // Real time: the closure ends on its blocking thread.
    let released = std::time::Instant::now();
    while !shutdown.is_woken() {
        assert!(
            released.elapsed() < 5 * SECOND,
            "the shutdown was not woken when the closure ended"
        );
        std::thread::yield_now();
    }
    let report = assert_ready!(shutdown.poll());
    assert_eq!(report.completed(), 1, "{report}");
    assert!(report.unresponsive().is_empty());
    assert_eq!(report.elapsed(), SECOND + A_THOUSAND_YEARS);
}
