//! Nothing is lost once shutdown has begun: every kind of spawn hands its
//! work back in `Rejected`, and the rejection is counted.

use hangfree::TaskSet;
use tokio::sync::oneshot;

use super::SECOND;

#[tokio::test]
async fn every_kind_of_spawn_after_shutdown_hands_its_work_back() {
    let set = TaskSet::new();
    set.shutdown(SECOND).await;
    assert!(set.is_closed());

    let (tx, rx) = oneshot::channel::<u8>();
    let Err(rejected) = set.spawn("late", async move { tx.send(7).unwrap() }) else {
        panic!("a closed set accepted a task");
    };
    rejected.into_inner().await; // the caller still owns the work and can run it
    assert_eq!(rx.await, Ok(7));

    let rejected = set
        .spawn_with_handle("late handle", async { 1 })
        .unwrap_err();
    assert_eq!(rejected.into_inner().await, 1);
    let rejected = set
        .spawn_blocking("late blocking", || Err::<(), _>("not run"))
        .unwrap_err();
    assert_eq!((rejected.into_inner())(), Err("not run"));
    let rejected = set
        .spawn_waiting("late waiting", async { Err::<(), _>("not run") })
        .await
        .unwrap_err();
    assert_eq!(
        rejected.to_string(),
        "task not spawned: the task set is shutting down"
    );
    assert_eq!(rejected.into_inner().await, Err("not run"));
    assert_eq!(set.counts().rejected, 4);
    assert_eq!(set.counts().spawned, 0);
}
