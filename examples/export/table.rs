//! One table's export: its budget inside the job's, its two files, the queries that fill
//! them, and its outcome for the summary.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use hangfree::CancelScope;
use hangfree::prelude::*;
use hangfree::watchdog::Limits;
use tokio::io::{AsyncWriteExt as _, BufWriter};
use tokio::time::Instant;

use crate::progress::Progress;
use crate::protocol::Copied;
use crate::recovery::{AfterStall, Plan};
use crate::source::{self, Source};

/// Each table's budget, inside the job's.
const TABLE_BUDGET: Duration = Duration::from_secs(10 * 60);

/// What every table's export shares.
pub struct Exporter {
    pub source: Source,
    /// The watchdog's limits on every query's stream.
    pub limits: Limits,
    /// The whole job's scope: each table's runs inside it.
    pub job: CancelScope,
    pub out: PathBuf,
    pub progress: Progress,
}

/// Where a table's rows go: `<table>.csv.partial` while they arrive, renamed to
/// `<table>.csv` only once the table is complete and checked.
pub struct Files {
    pub partial: PathBuf,
    pub finished: PathBuf,
}

/// One table's outcome, for the summary.
pub struct TableRun {
    pub table: String,
    pub counts: Counts,
    pub took: Duration,
    pub status: Status,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub rows: u64,
    /// Queries run, the first one for the whole table included.
    pub segments: u32,
    pub stalls: u32,
}

pub enum Status {
    Done,
    AlreadyDone,
    Failed(anyhow::Error),
}

impl TableRun {
    /// A table that an earlier run completed.
    pub fn skipped(table: &str, rows: u64) -> TableRun {
        TableRun {
            table: table.to_string(),
            counts: Counts {
                rows,
                ..Counts::default()
            },
            took: Duration::ZERO,
            status: Status::AlreadyDone,
        }
    }
}

impl Exporter {
    pub fn files(&self, table: &str) -> Files {
        Files {
            partial: self.out.join(format!("{table}.csv.partial")),
            finished: self.out.join(format!("{table}.csv")),
        }
    }

    /// Exports `table` into its [`Files`].
    pub async fn export(&self, table: &str) -> TableRun {
        let started = Instant::now();
        let files = self.files(table);
        let mut copy = TableCopy {
            exporter: self,
            table,
            scope: self.job.child().with_timeout(TABLE_BUDGET),
            counts: Counts::default(),
        };
        let copied = copy.copy_all(&files.partial).await;
        self.progress.finish();
        let counts = copy.counts;
        let status = match copied {
            Ok(()) => match std::fs::rename(&files.partial, &files.finished) {
                Ok(()) => {
                    self.progress.line(format!(
                        "{table}: done, {} rows in {} segment(s), {} stall(s) recovered",
                        counts.rows, counts.segments, counts.stalls
                    ));
                    Status::Done
                }
                Err(e) => Status::Failed(
                    anyhow!(e).context(format!("could not rename {}", files.partial.display())),
                ),
            },
            Err(why) => {
                self.progress.line(format!(
                    "{table}: FAILED after {} rows: {why:#} (partial rows kept in {})",
                    counts.rows,
                    files.partial.display()
                ));
                Status::Failed(why)
            }
        };
        TableRun {
            table: table.to_string(),
            counts,
            took: started.elapsed(),
            status,
        }
    }
}

/// One table being copied: what its queries share, and what they have done so far.
struct TableCopy<'a> {
    exporter: &'a Exporter,
    table: &'a str,
    /// The table's budget.
    scope: CancelScope,
    counts: Counts,
}

impl TableCopy<'_> {
    /// Every row of the table into `partial`, through as many queries as the
    /// [`Plan`] asks for, then checked against the source's row count.
    async fn copy_all(&mut self, partial: &Path) -> anyhow::Result<()> {
        let Exporter {
            source, progress, ..
        } = self.exporter;
        let table = self.table;
        let (first, last, expected) = source
            .key_range(table)
            .within(&self.scope)
            .await?
            .context("cannot read the key range")?;
        let file = tokio::fs::File::create(partial)
            .await
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut file = BufWriter::new(file);
        progress.start(table, expected);

        let mut plan = Plan::new(first, last);
        while let Some(keys) = plan.next_query() {
            self.counts.segments += 1;
            let copied = self
                .copy_range(keys, &mut file)
                .within(&self.scope)
                .await
                .map_err(|interrupted| anyhow!("{interrupted} (table budget)"))??;
            self.counts.rows += copied.rows;
            let Some(stalled) = copied.stalled else {
                plan.arrived();
                continue;
            };
            self.counts.stalls += 1;
            progress.line(format!("{table}: {stalled}"));
            match plan.stalled(copied.next_key) {
                AfterStall::Split { keys, segments } => progress.line(format!(
                    "{table}: re-exporting keys {}..={} in {segments} segment(s)",
                    keys.start(),
                    keys.end()
                )),
                AfterStall::Resume => {}
                AfterStall::GiveUp { keys, attempts } => bail!(
                    "keys {}..={} stalled {attempts} times in a row; last: {stalled}",
                    keys.start(),
                    keys.end()
                ),
            }
        }
        file.flush().await?;
        file.into_inner().sync_all().await?;
        if self.counts.rows != expected {
            bail!(
                "{} rows exported, the source has {expected}",
                self.counts.rows
            );
        }
        Ok(())
    }

    /// One query: the rows of `keys` appended to `file`. After a stall the watchdog has
    /// dropped our side of the stream; on PostgreSQL the query is stopped on the server
    /// too.
    async fn copy_range(
        &self,
        keys: RangeInclusive<u64>,
        file: &mut BufWriter<tokio::fs::File>,
    ) -> anyhow::Result<Copied> {
        let Exporter {
            source,
            limits,
            progress,
            ..
        } = self.exporter;
        let table = self.table;
        let source::Copy { rows, server_query } = source
            .open(table, *keys.start(), *keys.end(), *limits)
            .await
            .context("cannot start the query")?;
        let copied = rows.copy_into(keys, file, progress).await?;
        if copied.stalled.is_none() {
            return Ok(copied);
        }
        if let (Some(query), Source::Postgres { url }) = (server_query, source) {
            match source::stop_on_server(url, query).await {
                Ok(how) => progress.line(format!("{table}: stalled query {how} on the server")),
                Err(e) => progress.line(format!(
                    "{table}: could not stop the stalled query on the server: {e}"
                )),
            }
        }
        Ok(copied)
    }
}
