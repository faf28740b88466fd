//! The export job hangfree exists for: every table to a CSV file, none of it allowed to
//! hang, none of it allowed to look finished when it is not.
//!
//! `cargo run --example export` starts an embedded "replica" on loopback whose table `t3`
//! goes quiet mid-query while keeping the socket open, exports every table, detects the
//! stall, recovers `t3` by re-exporting the rest of it in key-range segments, and prints a
//! summary. `--help` lists the flags; `--database-url` exports from PostgreSQL instead.
//!
//! What guards what:
//! - the whole job and each table run inside a `CancelScope` with a deadline;
//! - every query's byte stream is behind a watchdog (first-row and idle limits), which
//!   ends a silent connection with `Stalled` instead of waiting on it forever;
//! - files are written as `<table>.csv.partial` and renamed only once complete and
//!   checked; a manifest records finished tables so a rerun resumes;
//! - completion notices go out through a `Batcher`; best-effort notifications run in a
//!   `TaskSet` whose shutdown is bounded;
//! - the exit code is 0 only if every table is complete.

mod args;
mod manifest;
mod replica;
mod source;

use std::collections::{HashMap, VecDeque};
use std::io::{self, IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::batch::{Batcher, FlushError};
use hangfree::prelude::*;
use hangfree::tasks::TaskSet;
use hangfree::watchdog::{Limits, Stalled};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufWriter};
use tokio::time::Instant;

use args::{Args, Parsed};
use manifest::Manifest;
use source::{Copy, Source};

/// The whole job's budget.
const JOB_BUDGET: Duration = Duration::from_secs(30 * 60);
/// Each table's budget, inside the job's.
const TABLE_BUDGET: Duration = Duration::from_secs(10 * 60);
/// After a stall, the rest of the table is fetched in this many key ranges, one by one.
const SEGMENTS: u64 = 4;
/// A segment that stalls this many times in a row fails its table.
const ATTEMPTS_PER_SEGMENT: u32 = 2;
/// How long shutdown waits for notices and notifications.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("export: {message}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One table's outcome, for the summary.
struct TableRun {
    table: String,
    rows: u64,
    segments: u32,
    stalls: u32,
    took: Duration,
    status: Status,
}

enum Status {
    Done,
    AlreadyDone,
    Failed(String),
}

/// A completion notice, sent in batches.
#[derive(Debug)]
struct Notice {
    table: String,
    rows: u64,
}

async fn run(args: Args) -> io::Result<ExitCode> {
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => fresh_temp_dir()?,
    };
    std::fs::create_dir_all(&out)?;
    println!(
        "export: {} table(s) into {}",
        args.tables.len(),
        out.display()
    );

    let (source, replica) = match &args.database_url {
        Some(url) => (Source::Postgres { url: url.clone() }, None),
        None => {
            let mut faults = HashMap::new();
            for table in &args.stall {
                faults.insert(table.clone(), replica::Fault::StallOnce);
            }
            for table in &args.stall_forever {
                faults.insert(table.clone(), replica::Fault::StallAlways);
            }
            let replica = replica::start(&args.tables, args.rows, &faults).await?;
            println!("export: embedded replica on {}", replica.addr);
            (
                Source::Replica {
                    addr: replica.addr,
                    rows: args.rows,
                },
                Some(replica),
            )
        }
    };

    let limits = Limits::new().first_item(args.idle * 3).idle(args.idle);
    let job = CancelScope::new().with_timeout(JOB_BUDGET);
    let mut manifest = Manifest::load(&out)?;
    let progress = Progress::new(io::stderr().is_terminal());
    let notices = notice_batcher(&out)?;
    let notifications = TaskSet::new();

    let mut runs = Vec::new();
    for table in &args.tables {
        let csv = out.join(format!("{table}.csv"));
        if let Some(rows) = manifest.completed(table, &csv) {
            progress.line(&format!("{table}: already exported ({rows} rows), skipped"));
            runs.push(TableRun {
                table: table.clone(),
                rows,
                segments: 0,
                stalls: 0,
                took: Duration::ZERO,
                status: Status::AlreadyDone,
            });
            continue;
        }
        let started = Instant::now();
        let mut run = export_table(&source, table, &out, limits, &job, &progress).await;
        run.took = started.elapsed();
        if let Status::Done = run.status {
            manifest.mark_done(table, run.rows)?;
            let notice = Notice {
                table: table.clone(),
                rows: run.rows,
            };
            // A completion notice must go out within 2 s: that is its deadline.
            if let Err(refused) = notices
                .push_by(notice, Instant::now() + Duration::from_secs(2))
                .await
            {
                progress.line(&format!(
                    "{table}: completion notice refused: {:?}",
                    refused.into_inner()
                ));
            }
            let stalled = run.stalls > 0;
            let spawned = notifications.spawn(
                format!("notify {table}"),
                notify_downstream(table.clone(), stalled),
            );
            if spawned.is_err() {
                progress.line(&format!(
                    "{table}: notification not sent: the task set is shut down"
                ));
            }
        }
        runs.push(run);
    }

    let notice_report = notices.shutdown(SHUTDOWN_GRACE).await;
    let task_report = notifications.shutdown(SHUTDOWN_GRACE).await;

    print_summary(&runs);
    println!("completion notices: {notice_report}");
    println!("notifications: {task_report}");
    if let Some(replica) = &replica {
        let stats = &replica.stats;
        println!(
            "replica: {} quiet connection(s), {} closed by the exporter",
            stats.stalls.load(std::sync::atomic::Ordering::SeqCst),
            stats
                .closed_by_client_after_stall
                .load(std::sync::atomic::Ordering::SeqCst)
        );
    }

    let failed: Vec<String> = runs
        .iter()
        .filter_map(|run| match &run.status {
            Status::Failed(why) => Some(format!("{}: {why}", run.table)),
            _ => None,
        })
        .collect();
    if failed.is_empty() && notice_report.is_complete() {
        println!("export: complete, files in {}", out.display());
        Ok(ExitCode::SUCCESS)
    } else {
        for line in &failed {
            eprintln!("export failed: {line}");
        }
        if !notice_report.is_complete() {
            eprintln!("export failed: some completion notices were not delivered");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Exports one table into `<out>/<table>.csv`, through `<table>.csv.partial`.
async fn export_table(
    source: &Source,
    table: &str,
    out: &Path,
    limits: Limits,
    job: &CancelScope,
    progress: &Progress,
) -> TableRun {
    let mut run = TableRun {
        table: table.to_string(),
        rows: 0,
        segments: 0,
        stalls: 0,
        took: Duration::ZERO,
        status: Status::Done,
    };
    let scope = job.child().with_timeout(TABLE_BUDGET);
    let partial = out.join(format!("{table}.csv.partial"));
    let finished = out.join(format!("{table}.csv"));
    match copy_table(source, table, &partial, limits, &scope, progress, &mut run).await {
        Ok(()) => match std::fs::rename(&partial, &finished) {
            Ok(()) => progress.line(&format!(
                "{table}: done, {} rows in {} segment(s), {} stall(s) recovered",
                run.rows, run.segments, run.stalls
            )),
            Err(e) => {
                run.status = Status::Failed(format!("could not rename {}: {e}", partial.display()))
            }
        },
        Err(why) => {
            progress.line(&format!(
                "{table}: FAILED after {} rows: {why} (partial rows kept in {})",
                run.rows,
                partial.display()
            ));
            run.status = Status::Failed(why);
        }
    }
    run
}

async fn copy_table(
    source: &Source,
    table: &str,
    partial: &Path,
    limits: Limits,
    scope: &CancelScope,
    progress: &Progress,
    run: &mut TableRun,
) -> Result<(), String> {
    let (first, last, expected) = source
        .key_range(table)
        .within(scope)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the key range: {}", error_chain(&e)))?;
    let file = tokio::fs::File::create(partial)
        .await
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut file = BufWriter::new(file);
    progress.start(table, expected);

    // First the whole table in one query; after a stall, the rest in SEGMENTS key ranges,
    // one after another, each resumed after its last complete row if it stalls again.
    let mut plan = VecDeque::from([(first, last)]);
    let mut split = false;
    while let Some((lo, hi)) = plan.pop_front() {
        let mut from = lo;
        let mut attempts = 0;
        while from <= hi {
            run.segments += 1;
            attempts += 1;
            let copied = copy_range(source, table, from, hi, limits, &mut file, progress)
                .within(scope)
                .await
                .map_err(|interrupted| format!("{interrupted} (table budget)"))??;
            run.rows += copied.rows;
            let next = copied.last_key.map_or(from, |key| key + 1);
            let Some(stalled) = copied.stalled else {
                break;
            };
            run.stalls += 1;
            progress.line(&format!("{table}: {stalled}"));
            from = next;
            if !split {
                split = true;
                plan.extend(segments(from, hi, SEGMENTS));
                progress.line(&format!(
                    "{table}: re-exporting keys {from}..={hi} in {} segment(s)",
                    plan.len()
                ));
                break;
            }
            if attempts >= ATTEMPTS_PER_SEGMENT {
                return Err(format!(
                    "keys {from}..={hi} stalled {attempts} times in a row; last: {stalled}"
                ));
            }
        }
    }
    file.flush().await.map_err(|e| e.to_string())?;
    file.into_inner()
        .sync_all()
        .await
        .map_err(|e| e.to_string())?;
    if run.rows != expected {
        return Err(format!(
            "{} rows exported, the source has {expected}",
            run.rows
        ));
    }
    Ok(())
}

/// An error with its causes: database errors keep their detail in `source()`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `lo..=hi` cut into at most `count` consecutive ranges.
fn segments(lo: u64, hi: u64, count: u64) -> Vec<(u64, u64)> {
    if lo > hi {
        return Vec::new();
    }
    let span = hi - lo + 1;
    let size = span.div_ceil(count);
    (0..count)
        .map(|i| (lo + i * size, (lo + (i + 1) * size - 1).min(hi)))
        .filter(|(a, b)| a <= b)
        .collect()
}

/// What one query delivered: complete rows (written), the last key written, and the stall
/// that ended it early, if one did.
struct Copied {
    rows: u64,
    last_key: Option<u64>,
    stalled: Option<Stalled>,
}

async fn copy_range(
    source: &Source,
    table: &str,
    lo: u64,
    hi: u64,
    limits: Limits,
    file: &mut BufWriter<tokio::fs::File>,
    progress: &Progress,
) -> Result<Copied, String> {
    let Copy {
        mut lines,
        has_trailer,
        server_query,
    } = source
        .open(table, lo, hi, limits)
        .await
        .map_err(|e| format!("cannot start the query: {}", error_chain(&e)))?;
    let mut copied = Copied {
        rows: 0,
        last_key: None,
        stalled: None,
    };
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) if has_trailer => {
                return Err("the connection closed before the end of the table".into());
            }
            Ok(0) => return Ok(copied),
            Ok(_) if !line.ends_with('\n') => {
                return Err(format!("truncated row at the end of the stream: {line:?}"));
            }
            Ok(_) => {
                if let Some(count) = line.strip_prefix("#END ") {
                    let count: u64 = count
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad trailer {line:?}"))?;
                    if count != copied.rows {
                        return Err(format!(
                            "the source says {count} rows, {} arrived",
                            copied.rows
                        ));
                    }
                    return Ok(copied);
                }
                if let Some(message) = line.strip_prefix("#ERR ") {
                    return Err(format!("the source refused the query: {}", message.trim()));
                }
                let key: u64 = line
                    .split(',')
                    .next()
                    .and_then(|k| k.parse().ok())
                    .ok_or_else(|| format!("a row without a numeric key: {line:?}"))?;
                let floor = copied.last_key.map_or(lo, |k| k + 1);
                if key < floor || key > hi {
                    return Err(format!("row key {key} outside the expected {floor}..={hi}"));
                }
                file.write_all(line.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                copied.rows += 1;
                copied.last_key = Some(key);
                progress.advance(table, 1);
            }
            Err(e) => {
                let Some(stalled) = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<Stalled>())
                else {
                    return Err(format!("read failed: {}", error_chain(&e)));
                };
                copied.stalled = Some(stalled.clone());
                // The watchdog has dropped our side; make sure the server stops too.
                drop(lines);
                if let (Some(query), Source::Postgres { url }) = (server_query, source) {
                    match source::stop_on_server(url, query).await {
                        Ok(how) => {
                            progress.line(&format!("{table}: stalled query {how} on the server"))
                        }
                        Err(e) => progress.line(&format!(
                            "{table}: could not stop the stalled query on the server: {e}"
                        )),
                    }
                }
                return Ok(copied);
            }
        }
    }
}

/// Completion notices go out in batches: every 10, or 200 ms after the oldest, or before
/// a notice's own deadline. Here a "send" appends to `<out>/notices.log`.
fn notice_batcher(out: &Path) -> io::Result<Batcher<Notice>> {
    let log = Arc::new(out.join("notices.log"));
    Batcher::builder()
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
        })
        .map_err(io::Error::other)
}

/// A best-effort notification to a downstream system. The one for a table that stalled
/// goes to a "slow" endpoint that never answers: the task set's bounded shutdown is what
/// keeps it from holding the job open.
async fn notify_downstream(table: String, slow_endpoint: bool) -> Result<(), String> {
    if slow_endpoint {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    if table.is_empty() {
        return Err("no table".into());
    }
    Ok(())
}

fn print_summary(runs: &[TableRun]) {
    println!();
    println!(
        "{:<16} {:>10} {:>9} {:>7} {:>9}  status",
        "table", "rows", "segments", "stalls", "time"
    );
    for run in runs {
        let status = match &run.status {
            Status::Done => "done".to_string(),
            Status::AlreadyDone => "done earlier (skipped)".to_string(),
            Status::Failed(why) => format!("FAILED: {why}"),
        };
        println!(
            "{:<16} {:>10} {:>9} {:>7} {:>8.2}s  {status}",
            run.table,
            run.rows,
            run.segments,
            run.stalls,
            run.took.as_secs_f64()
        );
    }
    println!();
}

fn fresh_temp_dir() -> io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("hangfree-export-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise.
struct Progress {
    tty: bool,
    state: std::sync::Mutex<(String, u64, u64)>,
}

impl Progress {
    fn new(tty: bool) -> Self {
        Progress {
            tty,
            state: std::sync::Mutex::new((String::new(), 0, 0)),
        }
    }

    fn start(&self, table: &str, total: u64) {
        *self.state.lock().unwrap() = (table.to_string(), 0, total);
        if !self.tty {
            eprintln!("{table}: exporting {total} rows");
        }
    }

    fn advance(&self, _table: &str, rows: u64) {
        if !self.tty {
            return;
        }
        let mut state = self.state.lock().unwrap();
        state.1 += rows;
        let (table, done, total) = &*state;
        if done % 2_000 == 0 || done == total {
            let width = 30u64;
            let filled = if *total == 0 {
                width
            } else {
                (done * width / total).min(width)
            };
            eprint!(
                "\r{table:<12} [{}{}] {done}/{total}",
                "#".repeat(filled as usize),
                ".".repeat((width - filled) as usize)
            );
            let _ = io::stderr().flush();
        }
    }

    fn line(&self, text: &str) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{text}");
    }
}
