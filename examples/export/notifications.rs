//! Best-effort notifications to a downstream system, one per finished table, each a task
//! in a `TaskSet`. The one for a table that stalled goes to a "slow" endpoint that never
//! answers: the set's bounded shutdown is what keeps it from holding the job open.

use std::time::Duration;

use hangfree::tasks::{ShutdownReport, TaskSet};

use crate::progress::Progress;

pub struct Notifications {
    tasks: TaskSet,
}

impl Notifications {
    pub fn new() -> Notifications {
        Notifications {
            tasks: TaskSet::new(),
        }
    }

    /// Starts the notification that `table` is complete.
    pub fn notify(&self, table: &str, stalled: bool, progress: &Progress) {
        let spawned = self.tasks.spawn(
            format!("notify {table}"),
            notify_downstream(table.to_string(), stalled),
        );
        if spawned.is_err() {
            progress.line(format!(
                "{table}: notification not sent: the task set is shut down"
            ));
        }
    }

    /// Waits `grace` at most for the notifications still running.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        self.tasks.shutdown(grace).await
    }
}

async fn notify_downstream(table: String, slow_endpoint: bool) -> anyhow::Result<()> {
    if slow_endpoint {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    anyhow::ensure!(!table.is_empty(), "no table");
    Ok(())
}
