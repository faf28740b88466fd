//! Command-line flags of the consumer example, parsed by clap. As in the export example,
//! the text a user sees is the example's own: `--help` prints [`USAGE`] and exits 0;
//! every mistake prints what was wrong, then [`USAGE`], and exits 2.

use std::error::Error as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ErrorKind};
use clap::{CommandFactory as _, Parser, ValueEnum};

pub const USAGE: &str = "\
usage: consumer [options]

Consumes a queue with peek-lock semantics: handles each message in a bounded task set,
keeps its lock alive while its handler beats, completes messages in batches before their
locks expire, and on SIGINT or SIGTERM stops within --grace plus a bound (2.5s), even with
hung handlers. Exits 0 only if nothing was lost: every message received was completed, or
left for redelivery and listed.

broker:
  --redis-url <url>        consume a Redis stream through a consumer group instead of
                           the embedded in-process broker
  --stream <name>          the Redis stream                  [default: hangfree-consumer]
  --group <name>           the Redis consumer group          [default: hangfree]
  --name <name>            this consumer's name              [default: consumer-<pid>]
  --round-trip <ms>        the embedded broker's round trip  [default: 1]

load:
  --messages <n>           messages this run publishes; it stops once it has handled them
                           all. 0: publishes none, stops when the queue is drained
                           [default: 10]
  --load <low|high>        low: one message every --interval; high: all at once
                           [default: low]
  --interval <ms>          between two messages under low load     [default: 2000]
  --lock <ms>              how long a delivery stays locked        [default: 5000]

handling:
  --workers <k>            messages handled at once                [default: 16]
  --work <ms>              how long a handler works on a message   [default: 0]
  --handler-timeout <ms>   each handler's own budget               [default: 30000]
  --silence <ms>           a handler silent this long loses its lock  [default: --lock]
  --strategy <each|every-100|sleep-5s|hangfree>
                           how completions are sent: one call per message; one call per
                           100; whatever gathered, every 5 s; or hangfree's Batcher,
                           before the earliest lock expires      [default: hangfree]
  --grace <ms>             how long a stop waits for handlers      [default: 5000]

faults, on a message's first delivery, by publish order (1 = the first message):
  --fail <n>               handlers that return an error
  --panic <n>              handlers that panic
  --hang <n>               handlers that stay pending for ever, without a heartbeat
  --hang-blocking <n>      handlers that block their thread for ever
  --slow <n>               handlers that take three locks' time, beating
  --silent <n>             handlers that take three locks' time, silent after a quarter

output:
  --json                   the summary as one JSON object on stdout
  --ids                    with --json: every message ID completed, in `completed_ids`
  --handled-log <file>     append `<id> <consumer>` to <file> for every message handled
  -h, --help               this text";

/// How completions are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// One completion call per message, awaited by its handler.
    Each,
    /// One call once 100 completions have gathered.
    #[value(name = "every-100")]
    Every100,
    /// One call every 5 s with whatever has gathered.
    #[value(name = "sleep-5s")]
    Sleep5s,
    /// hangfree's `Batcher`: full, or old enough, or before the earliest lock expires.
    Hangfree,
}

/// How fast messages are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Load {
    Low,
    High,
}

/// What the consumer was asked to do.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "consumer",
    override_usage = "consumer [options]",
    override_help = USAGE,
    args_override_self = true
)]
pub struct Args {
    #[arg(long, value_name = "url")]
    pub redis_url: Option<String>,
    #[arg(long, value_name = "name", default_value = "hangfree-consumer")]
    pub stream: String,
    #[arg(long, value_name = "name", default_value = "hangfree")]
    pub group: String,
    #[arg(long, value_name = "name")]
    pub name: Option<String>,
    #[arg(long, value_name = "ms", default_value = "1", value_parser = parse_ms_or_zero)]
    pub round_trip: Duration,
    #[arg(long, value_name = "n", default_value = "10", value_parser = parse_count)]
    pub messages: u64,
    #[arg(long, value_enum, default_value = "low")]
    pub load: Load,
    #[arg(long, value_name = "ms", default_value = "2000", value_parser = parse_ms)]
    pub interval: Duration,
    #[arg(long, value_name = "ms", default_value = "5000", value_parser = parse_ms)]
    pub lock: Duration,
    #[arg(long, value_name = "k", default_value = "16", value_parser = parse_workers)]
    pub workers: usize,
    #[arg(long, value_name = "ms", default_value = "0", value_parser = parse_ms_or_zero)]
    pub work: Duration,
    #[arg(long, value_name = "ms", default_value = "30000", value_parser = parse_ms)]
    pub handler_timeout: Duration,
    #[arg(long, value_name = "ms", value_parser = parse_ms)]
    pub silence: Option<Duration>,
    #[arg(long, value_enum, default_value = "hangfree")]
    pub strategy: Strategy,
    #[arg(long, value_name = "ms", default_value = "5000", value_parser = parse_ms_or_zero)]
    pub grace: Duration,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub fail: u64,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub panic: u64,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub hang: u64,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub hang_blocking: u64,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub slow: u64,
    #[arg(long, value_name = "n", default_value = "0", value_parser = parse_count)]
    pub silent: u64,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub ids: bool,
    #[arg(long, value_name = "file", allow_hyphen_values = true)]
    pub handled_log: Option<PathBuf>,
}

impl Args {
    /// How long a handler may go without a heartbeat before it loses its lock.
    pub fn silence(&self) -> Duration {
        self.silence.unwrap_or(self.lock)
    }

    /// This consumer's name in the consumer group.
    pub fn consumer_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("consumer-{}", std::process::id()))
    }

    /// Checks what no single flag can check on its own.
    fn checked(self) -> Result<Args, clap::Error> {
        let refuse = |kind, message: String| Args::command().error(kind, message);
        let faults =
            self.fail + self.panic + self.hang + self.hang_blocking + self.slow + self.silent;
        if self.messages > 0 && faults > self.messages {
            return Err(refuse(
                ErrorKind::ValueValidation,
                format!(
                    "the faults name {faults} messages, but --messages is {}",
                    self.messages
                ),
            ));
        }
        if self.redis_url.is_some() && self.round_trip != Duration::from_millis(1) {
            return Err(refuse(
                ErrorKind::ArgumentConflict,
                "--round-trip sets the embedded broker's latency; Redis has its own".into(),
            ));
        }
        if self.ids && !self.json {
            return Err(refuse(
                ErrorKind::MissingRequiredArgument,
                "--ids lists the IDs in the JSON summary: it needs --json".into(),
            ));
        }
        Ok(self)
    }
}

/// The arguments of this process, or the exit code once the usage text or a mistake has
/// been printed.
pub fn from_command_line() -> Result<Args, ExitCode> {
    let parsed = Args::try_parse().and_then(Args::checked);
    parsed.map_err(|error| {
        if error.kind() == ErrorKind::DisplayHelp {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        eprintln!("consumer: {}\n\n{USAGE}", what_was_wrong(&error));
        ExitCode::from(2)
    })
}

/// Our own sentence, after the flag it is about; or clap's message without its usage
/// line and hint.
fn what_was_wrong(error: &clap::Error) -> String {
    if let Some(ours) = error.source() {
        return match error.get(ContextKind::InvalidArg) {
            Some(flag) => format!("{flag} {ours}"),
            None => ours.to_string(),
        };
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

fn parse_ms(value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("takes milliseconds greater than zero, not '{value}'"))
}

fn parse_ms_or_zero(value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("takes a whole number of milliseconds, not '{value}'"))
}

fn parse_count(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("takes a whole number, not '{value}'"))
}

fn parse_workers(value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|&k| (1..=10_000).contains(&k))
        .ok_or_else(|| format!("takes a count from 1 to 10000, not '{value}'"))
}
