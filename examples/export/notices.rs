//! Completion notices: one per finished table, sent in batches through a `Batcher`: every
//! 10, or 200 ms after the oldest, or before a notice's own deadline. Here a "send"
//! appends to `<out>/notices.log`.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hangfree::batch::{BatchReport, Batcher, FlushError};
use tokio::time::Instant;

use crate::progress::Progress;

/// A completion notice must go out within this long: that is its deadline.
const DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Notice {
    table: String,
    rows: u64,
}

pub struct Notices {
    batcher: Batcher<Notice>,
}

impl Notices {
    pub fn start(out: &Path) -> anyhow::Result<Notices> {
        let log = Arc::new(out.join("notices.log"));
        let batcher = Batcher::builder()
            .max_items(10)
            .max_delay(Duration::from_millis(200))
            .deadline_margin(Duration::from_millis(100))
            .build(move |batch: Vec<Notice>| {
                let log = log.clone();
                async move {
                    let text: String = batch
                        .iter()
                        .map(|notice| format!("{}\t{} rows\n", notice.table, notice.rows))
                        .collect();
                    let written = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log.as_path())
                        .and_then(|mut file| file.write_all(text.as_bytes()));
                    written.map_err(|e| FlushError::new(batch, e))
                }
            })?;
        Ok(Notices { batcher })
    }

    /// Queues the notice that `table` is complete with `rows` rows.
    pub async fn send(&self, table: &str, rows: u64, progress: &Progress) {
        let notice = Notice {
            table: table.to_string(),
            rows,
        };
        if let Err(refused) = self
            .batcher
            .push_by(notice, Instant::now() + DEADLINE)
            .await
        {
            progress.line(format!(
                "{table}: completion notice refused: {:?}",
                refused.into_inner()
            ));
        }
    }

    /// Sends what is queued, waiting `grace` at most.
    pub async fn shutdown(&self, grace: Duration) -> BatchReport<Notice> {
        self.batcher.shutdown(grace).await
    }
}
