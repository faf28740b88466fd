//! Compile-time checks, for the whole crate: the public types are `Send`, `Sync` and
//! `Unpin` where a user needs them to be, and the futures users hold across `.await` in a
//! spawned task are `Send`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hangfree::batch::{
    AbandonedFlush, BatchReport, Batched, BatchedBy, Batcher, BatcherBuilder, BuildError,
    FailedBatch, FlushError, Push, PushError, TryPushError,
};
use hangfree::tasks::{
    Rejected, ShutdownReport, TaskCounts, TaskError, TaskFailure, TaskHandle, TaskId, TaskInfo,
    TaskSet, TaskSetBuilder,
};

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}
fn send_sync_unpin<T: Send + Sync + Unpin>() {}
fn unpin<T: Unpin>() {}
fn future_is_send<F: Future + Send>(_: &F) {}

#[test]
fn task_set_types_are_send_sync_and_unpin() {
    send_sync_unpin::<TaskSet>();
    send_sync_unpin::<TaskSetBuilder>();
    send_sync_unpin::<TaskHandle<String>>();
    send_sync_unpin::<TaskError>();
    send_sync_unpin::<TaskId>();
    send_sync_unpin::<TaskInfo>();
    send_sync_unpin::<TaskFailure>();
    send_sync_unpin::<TaskCounts>();
    send_sync_unpin::<ShutdownReport>();
    send::<Rejected<Pin<Box<dyn Future<Output = ()> + Send>>>>();
    send_sync_unpin::<Rejected<u8>>();
}

#[test]
fn task_set_futures_are_send() {
    let set = TaskSet::new();
    future_is_send(&set.shutdown(Duration::ZERO));
    future_is_send(&set.spawn_waiting("x", async {}));
}

#[test]
fn batch_types_are_send_sync_and_unpin() {
    send_sync_unpin::<Batcher<String>>();
    send_sync_unpin::<BatcherBuilder<String, std::io::Error>>();
    send_sync_unpin::<BatchReport<String>>();
    send_sync_unpin::<FlushError<String, std::io::Error>>();
    send_sync_unpin::<PushError<String>>();
    send_sync_unpin::<TryPushError<String>>();
    send_sync_unpin::<BuildError>();
    send_sync_unpin::<FailedBatch<String>>();
    send_sync_unpin::<AbandonedFlush>();
    send_sync_unpin::<Push<'static, String>>();
    // `Push` is `Unpin` even for an item type that is not.
    unpin::<Push<'static, std::marker::PhantomPinned>>();

    // The stream adapters are `Send` and `Sync` when their source is (they
    // hold a timer, so they are not `Unpin`: pin them, as `chunks_timeout`).
    type Source = futures::stream::Iter<std::vec::IntoIter<String>>;
    type Deadlined = futures::stream::Iter<std::vec::IntoIter<(String, tokio::time::Instant)>>;
    send_sync::<Batched<Source>>();
    send_sync::<BatchedBy<Deadlined, String>>();
    #[cfg(feature = "sink")]
    send_sync_unpin::<hangfree::batch::BatchSink<String>>();
    #[cfg(feature = "sink")]
    send_sync_unpin::<hangfree::batch::BatchSink<std::marker::PhantomPinned>>();
}

#[tokio::test]
async fn batch_futures_are_send() {
    let batcher = Batcher::builder()
        .build(|_: Vec<String>| async { Ok::<(), FlushError<String, String>>(()) })
        .unwrap();
    future_is_send(&batcher.push(String::new()));
    future_is_send(&batcher.push_by(String::new(), tokio::time::Instant::now()));
    future_is_send(&batcher.flush());
    future_is_send(&batcher.shutdown(Duration::ZERO));
}
