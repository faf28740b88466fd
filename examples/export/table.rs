//! One table's export: its budget inside the job's, its two files, the queries that fill
//! them, and its outcome for the summary.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use hangfree::prelude::*;
use hangfree::watchdog::Limits;
use hangfree::{CancelScope, Interrupted};
use tokio::io::{AsyncWriteExt as _, BufWriter};
use tokio::time::Instant;

use crate::progress::Progress;
use crate::protocol::Copied;
use crate::recovery::{AfterStall, Plan};
use crate::server_stop::ServerStops;
use crate::source::{self, Source};

/// Each table's budget, inside the job's.
const TABLE_BUDGET: Duration = Duration::from_secs(10 * 60);

/// What every table's export shares.
pub struct Exporter {
    pub source: Source,
    /// The watchdog's limits on every query's stream.
    pub limits: Limits,
    /// The whole job's scope: each table's runs inside it. Its root is the process's
    /// stop scope, so SIGINT or SIGTERM interrupt it.
    pub job: CancelScope,
    pub out: PathBuf,
    pub progress: Progress,
    /// Queries being stopped on the server, which the job waits for before it exits.
    pub server_stops: ServerStops,
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
    /// The job was interrupted (a stop signal, its budget) while this table was being
    /// exported: its partial file stays, and a rerun exports it again.
    Interrupted(Interrupted),
    /// The job was interrupted before this table started.
    NotStarted(Interrupted),
}

impl TableRun {
    /// A table the job did not start, being interrupted.
    pub fn not_started(table: &str, why: Interrupted) -> TableRun {
        TableRun {
            table: table.to_string(),
            counts: Counts::default(),
            took: Duration::ZERO,
            status: Status::NotStarted(why),
        }
    }

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
            scope: self
                .job
                .clone()
                .with_name(format!("table {table}"))
                .with_timeout(TABLE_BUDGET),
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
            Err(why) => match self.job.check() {
                Err(stopped) => {
                    self.progress.line(format!(
                        "{table}: INTERRUPTED: {stopped} (partial rows kept in {})",
                        files.partial.display()
                    ));
                    Status::Interrupted(stopped)
                }
                Ok(()) => {
                    self.progress.line(format!(
                        "{table}: FAILED after {} rows: {why:#} (partial rows kept in {})",
                        counts.rows,
                        files.partial.display()
                    ));
                    Status::Failed(why)
                }
            },
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
                .map_err(|interrupted| anyhow!(interrupted))??;
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

    /// One query: the rows of `keys` appended to `file`, in a scope of its own. After a
    /// stall the watchdog has dropped our side of the stream; on PostgreSQL the query is
    /// stopped on the server too, by a hook on the query's scope, which also stops it
    /// when the table's scope is interrupted (its budget, or the job's stop).
    async fn copy_range(
        &self,
        keys: RangeInclusive<u64>,
        file: &mut BufWriter<tokio::fs::File>,
    ) -> anyhow::Result<Copied> {
        let Exporter {
            source,
            limits,
            progress,
            server_stops,
            ..
        } = self.exporter;
        let table = self.table;
        let query = self.scope.child();
        let source::Copy {
            rows,
            stop,
            connection,
        } = source
            .open(
                table,
                *keys.start(),
                *keys.end(),
                *limits,
                |url, backend| server_stops.arm(&query, url, table, backend, progress),
            )
            .await
            .context("cannot start the query")?;
        let copied = rows.copy_into(keys, file, progress).await?;
        if copied.stalled.is_some() {
            if let Some(stop) = stop {
                query.cancel_with("its stream stalled");
                // The next query starts once this one is stopped on the server.
                stop.finished().await;
            }
        }
        drop(connection);
        Ok(copied)
    }
}
