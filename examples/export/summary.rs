//! The end of the job: a line per table on stdout, then the verdict. The exit code is 0
//! only if every table is complete and every completion notice was delivered; a job
//! interrupted (by a stop signal, or its budget) says which tables it did not finish, and
//! why, and exits 1.

use std::path::Path;
use std::process::ExitCode;

use crate::table::{Status, TableRun};

pub fn print_tables(runs: &[TableRun]) {
    println!();
    println!(
        "{:<16} {:>10} {:>9} {:>7} {:>9}  status",
        "table", "rows", "segments", "stalls", "time"
    );
    for run in runs {
        let status = match &run.status {
            Status::Done => "done".to_string(),
            Status::AlreadyDone => "done earlier (skipped)".to_string(),
            Status::Failed(why) => format!("FAILED: {why:#}"),
            Status::Interrupted(why) => format!("INTERRUPTED: {why}"),
            Status::NotStarted(why) => format!("not started: {why}"),
        };
        println!(
            "{:<16} {:>10} {:>9} {:>7} {:>8.2}s  {status}",
            run.table,
            run.counts.rows,
            run.counts.segments,
            run.counts.stalls,
            run.took.as_secs_f64()
        );
    }
    println!();
}

/// Says whether the job is complete, and returns its exit code.
pub fn verdict(runs: &[TableRun], notices_delivered: bool, out: &Path) -> ExitCode {
    let failed: Vec<String> = runs
        .iter()
        .filter_map(|run| match &run.status {
            Status::Failed(why) => Some(format!("{}: {why:#}", run.table)),
            _ => None,
        })
        .collect();
    let interrupted: Vec<String> = runs
        .iter()
        .filter_map(|run| match &run.status {
            Status::Interrupted(why) => Some(format!(
                "{}: {why} (partial rows kept in {}.csv.partial)",
                run.table, run.table
            )),
            Status::NotStarted(why) => Some(format!("{}: not started: {why}", run.table)),
            _ => None,
        })
        .collect();
    if failed.is_empty() && interrupted.is_empty() && notices_delivered {
        println!("export: complete, files in {}", out.display());
        return ExitCode::SUCCESS;
    }
    for line in &failed {
        eprintln!("export failed: {line}");
    }
    for line in &interrupted {
        eprintln!("export interrupted: {line}");
    }
    if !interrupted.is_empty() {
        eprintln!(
            "export: run it again with --out {} to resume: finished tables are skipped",
            out.display()
        );
    }
    if !notices_delivered {
        eprintln!("export failed: some completion notices were not delivered");
    }
    ExitCode::FAILURE
}
