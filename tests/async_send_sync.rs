//! Compile-time checks, for the whole crate: the public types are `Send`, `Sync` and
//! `Unpin` where a user needs them to be, and the futures users hold across `.await` in a
//! spawned task are `Send`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::batch::{
    AbandonedFlush, BatchReport, Batched, BatchedBy, Batcher, BatcherBuilder, BuildError,
    FailedBatch, FlushError, Push, PushError, TryPushError,
};
use hangfree::scope::{
    Cancelled, Cause, Enter, Guarded, InterruptHook, Interrupted, Within, WithinCurrent,
};
use hangfree::tasks::{
    FailurePolicy, Rejected, RejectedTask, ShutdownReport, SpawnPermit, TaskCounts, TaskError,
    TaskFailure, TaskHandle, TaskId, TaskInfo, TaskSet, TaskSetBuilder, TaskSetConfigError,
    TrackedFuture,
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
    // A rejected `Send` future is an error that travels (`?` into anyhow).
    send_sync_unpin::<Rejected<Pin<Box<dyn Future<Output = ()> + Send>>>>();
    send_sync_unpin::<Rejected<u8>>();
    send_sync_unpin::<RejectedTask>();
    send_sync_unpin::<TaskSetConfigError>();
    send_sync_unpin::<FailurePolicy>();
    send_sync_unpin::<SpawnPermit<'static>>();
    send_sync_unpin::<TrackedFuture<std::future::Ready<()>>>();
    send::<TrackedFuture<Pin<Box<dyn Future<Output = ()> + Send>>>>();
}

/// `'static` errors that are `Send + Sync`: what `?` into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>` needs.
fn error_that_travels<E: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn task_set_errors_travel() {
    error_that_travels::<Rejected<Pin<Box<dyn Future<Output = ()> + Send>>>>();
    error_that_travels::<RejectedTask>();
    error_that_travels::<TaskError>();
    error_that_travels::<TaskSetConfigError>();
}

#[test]
fn task_set_futures_are_send() {
    let set = TaskSet::new();
    future_is_send(&set.shutdown(Duration::ZERO));
    future_is_send(&set.spawn_waiting("x", async {}));
    future_is_send(&set.spawn_waiting_with_handle("x", async {}));
    future_is_send(&set.reserve());
    future_is_send(&set.wait());
    future_is_send(&set.wait_idle());
    future_is_send(&set.first_failure());
}

type SendSyncFuture = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;
type SendFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

#[test]
fn scope_types_are_send_sync_and_unpin() {
    send_sync_unpin::<CancelScope>();
    send_sync_unpin::<Interrupted>();
    send_sync::<Cause>();
    send_sync_unpin::<Cancelled>();
    send_sync_unpin::<InterruptHook>();
    send_sync::<Within<SendSyncFuture>>();
    send_sync::<Guarded<SendSyncFuture>>();
    send_sync::<Enter<SendSyncFuture>>();
    send_sync::<WithinCurrent<SendSyncFuture>>();
    unpin::<Within<SendFuture>>();
    unpin::<Guarded<SendFuture>>();
    unpin::<Enter<SendFuture>>();
    unpin::<WithinCurrent<SendFuture>>();
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
