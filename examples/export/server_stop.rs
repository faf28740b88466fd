//! Stopping a PostgreSQL query on the server when its scope is interrupted. Dropping our
//! side of a `COPY` (a stall, the table's budget, SIGTERM) closes the socket, but the
//! server may go on running the query for a long time. An interrupt hook on the query's
//! scope sends the cancel request, then terminates the backend if the query is still
//! active (`source::stop_on_server`). The hook runs on whatever thread interrupts the
//! scope, maybe outside the runtime (the stop signal's thread), so it spawns that work
//! on the runtime's `Handle`, captured when the query starts, into a `TaskSet` that the
//! job waits for, within a bound, before it exits.

use std::time::Duration;

use hangfree::CancelScope;
use hangfree::scope::InterruptHook;
use hangfree::tasks::{ShutdownReport, TaskSet};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::progress::Progress;
use crate::source::{self, ServerQuery};

/// The server-side stops the job has started, waited for at its end.
pub struct ServerStops {
    tasks: TaskSet,
}

/// The stop of one query, armed on its scope: dropping it (the query finished) disarms it.
pub struct ArmedStop {
    _hook: InterruptHook,
    done: oneshot::Receiver<()>,
}

impl ServerStops {
    pub fn new() -> ServerStops {
        ServerStops {
            tasks: TaskSet::new(),
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
                // Only once the job's end has begun, when nothing would wait for it.
                drop(refused);
            }
        });
        ArmedStop { _hook: hook, done }
    }

    /// Waits `grace` at most for the stops still running.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.tasks.shutdown(grace).await
    }
}

impl ArmedStop {
    /// Waits until the stop that the scope's interrupt started has finished.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}
