//! The end of the job: a line per table on stdout, then the verdict. The exit code is 0
//! only if every table is complete and every completion notice was delivered.

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
    if failed.is_empty() && notices_delivered {
        println!("export: complete, files in {}", out.display());
        return ExitCode::SUCCESS;
    }
    for line in &failed {
        eprintln!("export failed: {line}");
    }
    if !notices_delivered {
        eprintln!("export failed: some completion notices were not delivered");
    }
    ExitCode::FAILURE
}
