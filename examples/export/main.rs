//! The export job hangfree exists for: every table to a CSV file, none of it allowed to
//! hang, none of it allowed to look finished when it is not.
//!
//! `cargo run --example export` starts an embedded "replica" on loopback whose table `t3`
//! goes quiet mid-query while keeping the socket open, exports every table, detects the
//! stall, recovers `t3` by re-exporting the rest of it in key-range segments, and prints a
//! summary. `--help` lists the flags; `--database-url` exports from PostgreSQL instead.
//!
//! What guards what:
//! - the whole job and each table run inside a `CancelScope` with a deadline, under the
//!   process's stop scope: on ctrl-c or SIGTERM the table being exported stops at once,
//!   its partial file stays, the tables not started are listed, and the job exits
//!   non-zero within a bounded time (a second signal ends it at once);
//! - every query's byte stream is behind a watchdog (first-row and idle limits), which
//!   ends a silent connection with `Stalled` instead of waiting on it forever;
//! - files are written as `<table>.csv.partial` and renamed only once complete and
//!   checked; a manifest records finished tables so a rerun resumes;
//! - completion notices go out through a `Batcher`; best-effort notifications run in a
//!   `TaskSet` whose shutdown is bounded;
//! - the exit code is 0 only if every table is complete.
//!
//! Where to find what: `args` (the flags), `table` (one table's export, its files and
//! budget), `recovery` (which key range after a stall), `protocol` (one query's rows,
//! checked), `source` (the replica or PostgreSQL), `replica` (the embedded server),
//! `manifest` (what a rerun skips), `notices` and `notifications` (what goes out once a
//! table is done), `server_stop` (a query stopped on PostgreSQL when its scope is
//! interrupted), `progress` (stderr), `summary` (stdout and the exit code), `out_dir`
//! (where the files go).

mod args;
mod manifest;
mod notices;
mod notifications;
mod out_dir;
mod progress;
mod protocol;
mod recovery;
mod replica;
mod server_stop;
mod source;
mod summary;
mod table;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use hangfree::scope::shutdown_signal;
use hangfree::watchdog::Limits;

use args::Args;
use manifest::Manifest;
use notices::Notices;
use notifications::Notifications;
use progress::Progress;
use replica::Replica;
use server_stop::ServerStops;
use source::Source;
use table::{Exporter, Status, TableRun};

/// The whole job's budget.
const JOB_BUDGET: Duration = Duration::from_secs(30 * 60);
/// How long shutdown waits for notices and notifications.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// How long the job waits for queries being stopped on the server: a cancel request, then
/// a second for it to act, then the backend's termination.
const SERVER_STOP_GRACE: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::from_command_line() {
        Ok(args) => args,
        Err(usage_shown) => return usage_shown,
    };
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("export: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = out_dir::prepare(args.out.as_deref())?;
    println!(
        "export: {} table(s) into {}",
        args.tables.len(),
        out.display()
    );
    let (source, replica) = open_source(&args).await?;
    let exporter = Exporter {
        source,
        limits: Limits::new().first_item(args.idle * 3).idle(args.idle),
        // Cancelled by the first SIGINT or SIGTERM: the job ends within a bounded time.
        job: shutdown_signal()
            .with_name("export job")
            .with_timeout(JOB_BUDGET),
        out: out.clone(),
        progress: Progress::new(),
        server_stops: ServerStops::new(),
    };
    let progress = &exporter.progress;
    let mut manifest = Manifest::load(&out)?;
    let notices = Notices::start(&out)?;
    let notifications = Notifications::new();

    let mut runs = Vec::new();
    for table in args.tables.iter() {
        if let Err(stopped) = exporter.job.check() {
            runs.push(TableRun::not_started(table, stopped));
            continue;
        }
        if let Some(rows) = manifest.completed(table, &exporter.files(table).finished) {
            progress.line(format!("{table}: already exported ({rows} rows), skipped"));
            runs.push(TableRun::skipped(table, rows));
            continue;
        }
        let run = exporter.export(table).await;
        if let Status::Done = run.status {
            manifest.mark_done(table, run.counts.rows)?;
            notices.send(table, run.counts.rows, progress).await;
            notifications.notify(table, run.counts.stalls > 0, progress);
        }
        runs.push(run);
    }

    let notice_report = notices.shutdown(SHUTDOWN_GRACE).await;
    let task_report = notifications.shutdown(SHUTDOWN_GRACE).await;
    let stops_report = exporter.server_stops.shutdown(SERVER_STOP_GRACE).await;
    summary::print_tables(&runs);
    println!("completion notices: {notice_report}");
    println!("notifications: {task_report}");
    if stops_report.completed() > 0 || !stops_report.is_clean() {
        println!("queries stopped on the server: {stops_report}");
    }
    if let Some(replica) = &replica {
        println!("replica: {}", replica.stats);
    }
    Ok(summary::verdict(&runs, notice_report.is_complete(), &out))
}

/// PostgreSQL if `--database-url` names one; otherwise the embedded replica, started with
/// the stalls the flags ask for; it serves until the process exits.
async fn open_source(args: &Args) -> anyhow::Result<(Source, Option<Replica>)> {
    if let Some(url) = &args.database_url {
        return Ok((Source::Postgres { url: url.clone() }, None));
    }
    let mut faults = HashMap::new();
    for table in &args.stall {
        faults.insert(table.clone(), replica::Fault::StallOnce);
    }
    for table in &args.stall_forever {
        faults.insert(table.clone(), replica::Fault::StallAlways);
    }
    let replica = replica::start(&args.tables, args.rows, &faults).await?;
    println!("export: embedded replica on {}", replica.addr);
    let source = Source::Replica {
        addr: replica.addr,
        rows: args.rows,
    };
    Ok((source, Some(replica)))
}
