//! Command-line flags of the export example, parsed by clap. The text a user sees is the
//! example's own: `--help` prints [`USAGE`] and exits 0; every mistake prints what was
//! wrong, then [`USAGE`], and exits 2.

use std::error::Error as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};

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

/// What the job was asked to do.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "export",
    override_usage = "export [options]",
    override_help = USAGE,
    // A flag given twice takes its last value: a script can override a flag it passes.
    args_override_self = true
)]
pub struct Args {
    #[arg(long, value_name = "n|a,b,c", default_value = "4", value_parser = parse_tables)]
    pub tables: Tables,
    #[arg(long, value_name = "n", default_value = "50000", value_parser = parse_rows)]
    pub rows: u64,
    #[arg(long, value_name = "table")]
    pub stall: Vec<String>,
    #[arg(long, value_name = "table")]
    pub stall_forever: Vec<String>,
    #[arg(long, value_name = "ms", default_value = "300", value_parser = parse_idle)]
    pub idle: Duration,
    // A directory may be called `-x`: the word after `--out` is its value, whatever it is.
    #[arg(long, value_name = "dir", allow_hyphen_values = true)]
    pub out: Option<PathBuf>,
    #[arg(long, value_name = "url")]
    pub database_url: Option<String>,
}

/// The tables to export, in order, each named once.
#[derive(Debug, Clone)]
pub struct Tables(Vec<String>);

impl std::ops::Deref for Tables {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// The arguments of this process, or the exit code once the usage text or a mistake has
/// been printed.
pub fn from_command_line() -> Result<Args, ExitCode> {
    let parsed = Args::try_parse().and_then(Args::with_defaults_checked);
    parsed.map_err(|error| {
        if error.kind() == ErrorKind::DisplayHelp {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprintln!("export: {}\n\n{USAGE}", what_was_wrong(&error));
        ExitCode::from(2)
    })
}

impl Args {
    /// Adds the default stall, then checks what no single flag can check on its own.
    fn with_defaults_checked(mut self) -> Result<Args, clap::Error> {
        let refuse = |kind, message: String| Args::command().error(kind, message);
        if self.stall.is_empty()
            && self.stall_forever.is_empty()
            && self.database_url.is_none()
            && self.tables.iter().any(|t| t == "t3")
        {
            // The default run shows a stall being detected and recovered.
            self.stall.push("t3".to_string());
        }
        for name in self.stall.iter().chain(&self.stall_forever) {
            if !self.tables.contains(name) {
                return Err(refuse(
                    ErrorKind::ValueValidation,
                    format!(
                        "--stall names '{name}', which is not among the tables ({})",
                        self.tables.join(",")
                    ),
                ));
            }
        }
        if self.database_url.is_some() && !(self.stall.is_empty() && self.stall_forever.is_empty())
        {
            return Err(refuse(
                ErrorKind::ArgumentConflict,
                "--stall and --stall-forever act on the embedded replica, not on --database-url"
                    .into(),
            ));
        }
        Ok(self)
    }
}

/// The sentence of our own value checks as it is; or clap's own message with its tip, if
/// it has one, without the usage line and the hint to try `--help`, since [`USAGE`]
/// follows.
fn what_was_wrong(error: &clap::Error) -> String {
    if let Some(ours) = error.source() {
        return ours.to_string();
    }
    let rendered = error.render().to_string();
    let end = ["\nUsage:", "\nFor more information"]
        .iter()
        .filter_map(|tail| rendered.find(tail))
        .min()
        .unwrap_or(rendered.len());
    let message = rendered[..end]
        .strip_prefix("error: ")
        .unwrap_or(&rendered[..end]);
    let lines: Vec<&str> = message.lines().filter(|line| !line.is_empty()).collect();
    lines.join("\n")
}

fn parse_rows(value: &str) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--rows takes a positive whole number, not '{value}'"))
}

fn parse_idle(value: &str) -> Result<Duration, String> {
    let ms: u64 = value
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("--idle takes milliseconds greater than zero, not '{value}'"))?;
    Ok(Duration::from_millis(ms))
}

fn parse_tables(value: &str) -> Result<Tables, String> {
    if let Ok(n) = value.parse::<usize>() {
        if n == 0 || n > 1000 {
            return Err(format!(
                "--tables takes a count from 1 to 1000 or names, not '{value}'"
            ));
        }
        return Ok(Tables((1..=n).map(|i| format!("t{i}")).collect()));
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
    Ok(Tables(names))
}
