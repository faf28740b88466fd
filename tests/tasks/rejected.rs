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

#[tokio::test]
async fn a_rejected_boxed_send_future_goes_through_question_mark_into_anyhow() {
    use std::future::Future;
    use std::pin::Pin;

    type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn submit(set: &TaskSet, job: Job) -> anyhow::Result<()> {
        set.spawn("nightly export", job)?;
        Ok(())
    }

    let set = TaskSet::new();
    set.shutdown(SECOND).await;
    let error = submit(&set, Box::pin(async {})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "task not spawned: the task set is shutting down"
    );
    let rejected = error.downcast::<hangfree::Rejected<Job>>().unwrap();
    assert_eq!(rejected.label(), "nightly export");
    rejected.into_inner().await; // the work came through too
}

#[tokio::test]
async fn a_rejection_without_its_work_keeps_the_label_and_says_why() {
    use hangfree::tasks::RejectedTask;

    let set = TaskSet::new();
    set.close();
    let error: RejectedTask = set.spawn("ack 17", async {}).unwrap_err().into();
    assert_eq!(error.label(), "ack 17");
    assert!(!error.is_shut_down());
    assert_eq!(
        error.to_string(),
        r#"task "ack 17" not spawned: the task set is closed"#
    );
    let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(error);
    assert!(boxed.downcast_ref::<RejectedTask>().is_some());

    set.shutdown(SECOND).await;
    let error = set
        .spawn_blocking("compress", || ())
        .unwrap_err()
        .into_error();
    assert!(error.is_shut_down());
    assert_eq!(
        error.to_string(),
        r#"task "compress" not spawned: the task set is shutting down"#
    );
}
