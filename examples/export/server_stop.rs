//! Stopping a PostgreSQL query on the server when its scope is interrupted. Dropping our
//! side of a `COPY` (a stall, the table's budget, SIGTERM) closes the socket, but the
//! server may go on running the query for a long time. An interrupt hook on the query's
//! scope sends the cancel request, then terminates the backend if the query is still
//! active (`source::stop_on_server`). The hook runs on whatever thread interrupts the
//! scope, maybe outside the runtime (the stop signal's thread), so it spawns that work
//! on the runtime's `Handle`, captured when the query starts, into a `TaskSet` that the
//! job waits for, within a bound, before it exits.
//!
//! A hook that the interrupt owes may still be on its way when the query's work has
//! already ended: the thread that interrupts takes the hooks of the scopes it marks and
//! runs them after, and a guard dropped meanwhile (`disarm` says `false`) does not wait
//! for them. So every armed stop counts as unsettled until it is disarmed in time or its
//! hook has handed its task to the set, and the job's end waits for none to be unsettled
//! before it closes the set: a stop started late is still waited for, not refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::scope::InterruptHook;
use hangfree::tasks::{ShutdownReport, TaskSet};
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::progress::Progress;
use crate::source::{self, ServerQuery};

/// The server-side stops the job has started, waited for at its end.
pub struct ServerStops {
    tasks: TaskSet,
    unsettled: Arc<Unsettled>,
}

/// The armed stops that are neither disarmed nor handed to the set yet.
#[derive(Default)]
struct Unsettled {
    count: AtomicUsize,
    settled: Notify,
}

impl Unsettled {
    fn settle_one(&self) {
        // SeqCst: one counter, read by the job's end after it registered to be woken.
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    /// Waits until none is unsettled, or `deadline`; `false` at the deadline.
    async fn none_by(&self, deadline: Instant) -> bool {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return false;
            }
        }
    }
}

/// The stop of one query, armed on its scope: dropping it (the query finished) disarms it.
pub struct ArmedStop {
    /// `None` once dropped or waited for.
    hook: Option<InterruptHook>,
    done: Option<oneshot::Receiver<()>>,
    unsettled: Arc<Unsettled>,
}

impl ServerStops {
    pub fn new() -> ServerStops {
        ServerStops {
            tasks: TaskSet::new(),
            unsettled: Arc::default(),
        }
    }

    /// Stops `query` on the server `url` as soon as `scope` is interrupted, and says so
    /// on `progress`.
    pub fn arm(
        &self,
        scope: &CancelScope,
        url: &str,
        table: &str,
        query: ServerQuery,
        progress: &Progress,
    ) -> ArmedStop {
        let runtime = Handle::current();
        let (tasks, url, table, progress) = (
            self.tasks.clone(),
            url.to_string(),
            table.to_string(),
            progress.clone(),
        );
        let (finished, done) = oneshot::channel();
        self.unsettled.count.fetch_add(1, Ordering::SeqCst);
        let unsettled = self.unsettled.clone();
        let hook = scope.on_interrupt(move |why| {
            let why = why.to_string();
            let label = format!("stop the query of {table} on the server");
            let _in_runtime = runtime.enter();
            let stop = async move {
                match source::stop_on_server(&url, query).await {
                    Ok(how) => progress.line(format!("{table}: query {how} on the server ({why})")),
                    Err(e) => progress.line(format!(
                        "{table}: could not stop the query on the server ({why}): {e}"
                    )),
                }
                let _ = finished.send(());
            };
            if let Err(refused) = tasks.spawn(label, stop) {
                // Only once the job's end has given up waiting for unsettled stops.
                drop(refused);
            }
            unsettled.settle_one();
        });
        ArmedStop {
            hook: Some(hook),
            done: Some(done),
            unsettled: self.unsettled.clone(),
        }
    }

    /// Waits `grace` at most for the stops still running, and for those whose hooks are
    /// still on their way (see the module docs).
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let deadline = Instant::now() + grace;
        self.unsettled.none_by(deadline).await;
        self.tasks
            .shutdown(deadline.saturating_duration_since(Instant::now()))
            .await
    }
}

impl ArmedStop {
    /// Waits until the stop that the scope's interrupt started has finished.
    pub async fn finished(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for ArmedStop {
    fn drop(&mut self) {
        // Disarmed in time: the hook never runs, so it settles here. Otherwise the hook
        // has run, is running, or will run, and settles itself.
        if self.hook.take().is_some_and(InterruptHook::disarm) {
            self.unsettled.settle_one();
        }
    }
}
