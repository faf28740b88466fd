//! Command-line flags of the export example. Hand-written: a few flags do not need a
//! parser crate, and every mistake gets the usage text and exit code 2.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: export [options]

Exports every table to <out>/<table>.csv, guarded against stalls, and exits 0 only if
every table is complete. Running it again with the same --out resumes: tables already
done are skipped.

options:
  --tables <n|a,b,c>     tables to export: a count (t1..tN) or names   [default: 4]
  --rows <n>             rows per table (embedded replica)            [default: 50000]
  --stall <table>        the first query for <table> stalls mid-way (repeatable)
                         [default: --stall t3 when no --stall/--stall-forever is given]
  --stall-forever <table>  every query for <table> stalls (repeatable): unrecoverable
  --idle <ms>            longest silence of a stream before it counts as stalled
                         [default: 300]
  --out <dir>            where the CSV files go   [default: a new temporary directory]
  --database-url <url>   export real tables from PostgreSQL instead of the replica
                         (tables need an integer key column `id`)
  -h, --help             this text";

#[derive(Debug, Clone)]
pub struct Args {
    pub tables: Vec<String>,
    pub rows: u64,
    pub stall: Vec<String>,
    pub stall_forever: Vec<String>,
    pub idle: Duration,
    pub out: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Run(Args),
    Help,
}

pub fn parse(mut words: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut tables = None;
    let mut rows = 50_000;
    let mut stall = Vec::new();
    let mut stall_forever = Vec::new();
    let mut idle = Duration::from_millis(300);
    let mut out = None;
    let mut database_url = None;

    while let Some(flag) = words.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (flag.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(Parsed::Help);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| words.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--tables" => tables = Some(parse_tables(&value()?)?),
            "--rows" => {
                let v = value()?;
                rows =
                    v.parse().ok().filter(|&n: &u64| n > 0).ok_or_else(|| {
                        format!("--rows takes a positive whole number, not '{v}'")
                    })?;
            }
            "--stall" => stall.push(value()?),
            "--stall-forever" => stall_forever.push(value()?),
            "--idle" => {
                let v = value()?;
                let ms: u64 = v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("--idle takes milliseconds greater than zero, not '{v}'")
                })?;
                idle = Duration::from_millis(ms);
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--database-url" => database_url = Some(value()?),
            other => return Err(format!("unknown flag '{other}'")),
        }
    }

    let tables = tables.unwrap_or_else(|| numbered(4));
    if stall.is_empty()
        && stall_forever.is_empty()
        && database_url.is_none()
        && tables.iter().any(|t| t == "t3")
    {
        // The default run shows a stall being detected and recovered.
        stall.push("t3".to_string());
    }
    for name in stall.iter().chain(&stall_forever) {
        if !tables.contains(name) {
            return Err(format!(
                "--stall names '{name}', which is not among the tables ({})",
                tables.join(",")
            ));
        }
    }
    if database_url.is_some() && !(stall.is_empty() && stall_forever.is_empty()) {
        return Err(
            "--stall and --stall-forever act on the embedded replica, not on --database-url".into(),
        );
    }
    Ok(Parsed::Run(Args {
        tables,
        rows,
        stall,
        stall_forever,
        idle,
        out,
        database_url,
    }))
}

fn numbered(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("t{i}")).collect()
}

fn parse_tables(value: &str) -> Result<Vec<String>, String> {
    if let Ok(n) = value.parse::<usize>() {
        if n == 0 || n > 1000 {
            return Err(format!(
                "--tables takes a count from 1 to 1000 or names, not '{value}'"
            ));
        }
        return Ok(numbered(n));
    }
    let names: Vec<String> = value.split(',').map(str::trim).map(String::from).collect();
    for name in &names {
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(format!(
                "table names are letters, digits and '_' (not starting with a digit): '{name}'"
            ));
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != names.len() {
        return Err(format!("--tables names a table twice: '{value}'"));
    }
    Ok(names)
}
