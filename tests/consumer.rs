//! The consumer example, run as a real program: against the embedded broker always, and
//! against real Redis when `REDIS_URL` is set (`.ci/services` starts one; in CI a missing
//! server fails the Redis tests instead of skipping them).
//!
//! Every run is scaled down (locks of a fraction of a second, a handful of messages) so
//! that each takes a second or two. Stops are started with a real SIGTERM (`kill -TERM`),
//! and the third consumer of the last test is ended with a real SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

// The embedded broker's lock rules, compiled here so that the example's own unit tests
// run with `cargo test`. (An example marked `test = true` would be built only as a test
// harness, and the plain binary these tests run would be missing on a fresh machine.)
#[path = "../examples/consumer/broker.rs"]
#[allow(dead_code)] // what only the example's other modules use
mod broker;
#[path = "../examples/consumer/embedded.rs"]
#[allow(dead_code)]
mod embedded;

#[path = "support/redis.rs"]
mod redis_server;

/// What a stop may take beyond `--grace` (the example's `stop::STOP_BOUND`, documented in
/// its usage text).
const STOP_BOUND: Duration = Duration::from_millis(2500);

fn binary() -> PathBuf {
    support::example::binary("consumer")
}

/// A broker to run against: the embedded one, or a fresh stream on Redis.
#[derive(Clone)]
enum Broker {
    Embedded,
    Redis { url: String, stream: String },
}

impl Broker {
    fn redis(test: &str) -> Option<Broker> {
        let url = redis_server::redis_url(test)?;
        Some(Broker::Redis {
            url,
            stream: redis_server::unique_stream(test),
        })
    }

    fn args(&self) -> Vec<String> {
        match self {
            Broker::Embedded => Vec::new(),
            Broker::Redis { url, stream } => {
                vec![
                    "--redis-url".into(),
                    url.clone(),
                    "--stream".into(),
                    stream.clone(),
                ]
            }
        }
    }

    fn clean_up(&self) {
        if let Broker::Redis { url, stream } = self {
            redis_server::delete(&mut redis_server::connect(url), stream);
        }
    }
}

/// One finished run: its exit status, its JSON summary (with `--ids`) and its stderr.
struct Finished {
    status: ExitStatus,
    summary: Value,
    stderr: String,
}

impl Finished {
    fn count(&self, field: &str) -> u64 {
        self.summary[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {field} in {}", self.summary))
    }

    fn ids(&self, field: &str) -> BTreeSet<String> {
        self.summary[field]
            .as_array()
            .unwrap_or_else(|| panic!("no {field} in {}", self.summary))
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect()
    }
}

fn run(broker: &Broker, extra: &[&str]) -> Finished {
    let output = Command::new(binary())
        .args(broker.args())
        .args(["--json", "--ids"])
        .args(extra)
        .output()
        .unwrap();
    finished(output.status, &output.stdout, &output.stderr)
}

fn finished(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Finished {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr = String::from_utf8_lossy(stderr).into_owned();
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}\n{stderr}"));
    Finished {
        status,
        summary,
        stderr,
    }
}

/// A consumer running in the background, its stderr read line by line as it comes.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

fn start(broker: &Broker, extra: &[&str]) -> Running {
    let mut child = Command::new(binary())
        .args(broker.args())
        .args(["--json", "--ids"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Running {
        child,
        lines,
        stderr: Vec::new(),
    }
}

impl Running {
    /// Waits (10 s at most) for a stderr line that ends with `tail`, or finds it among the
    /// lines already read; returns it.
    fn line_ending_with(&mut self, tail: &str) -> String {
        if let Some(seen) = self.stderr.iter().find(|line| line.ends_with(tail)) {
            return seen.clone();
        }
        let give_up = Instant::now() + Duration::from_secs(10);
        while let Some(left) = give_up.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.ends_with(tail) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line ending with {tail:?} in:\n{}",
            self.stderr.join("\n")
        );
    }

    fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name}");
    }

    /// Waits for the exit (30 s at most, then kills it and fails).
    fn finish(mut self) -> (Finished, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let took = started.elapsed();
                let mut stdout = Vec::new();
                std::io::Read::read_to_end(&mut self.child.stdout.take().unwrap(), &mut stdout)
                    .unwrap();
                self.stderr.extend(self.lines.try_iter());
                let stderr = self.stderr.join("\n");
                return (finished(status, &stdout, stderr.as_bytes()), took);
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!(
                    "the consumer did not exit within 30 s:\n{}",
                    self.stderr.join("\n")
                );
            }
            // Polling a child process's exit: a short real wait is the only way.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The message ID at the start of a line `<id>: ...`.
fn id_in(line: &str) -> String {
    line.split(':').next().unwrap().trim().to_string()
}

/// Under low load (a message every 150 ms, locks of 500 ms): `hangfree` completes every
/// message exactly once; `each` does too, at a call per message; `every-100` and
/// `sleep-5s` wait longer than a lock, so messages are delivered twice.
fn low_load_every_strategy(broker_for: impl Fn(&str) -> Broker) {
    let low = [
        "--messages",
        "8",
        "--load",
        "low",
        "--interval",
        "150",
        "--lock",
        "500",
    ];
    let runs: Vec<(&str, Broker, Finished)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["hangfree", "each", "every-100", "sleep-5s"]
            .into_iter()
            .map(|strategy| {
                let broker = broker_for(strategy);
                scope.spawn(move || {
                    let mut args = low.to_vec();
                    args.extend(["--strategy", strategy]);
                    let finished = run(&broker, &args);
                    (strategy, broker, finished)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (strategy, broker, run) in &runs {
        broker.clean_up();
        assert!(
            run.status.success(),
            "{strategy}: {}\n{}",
            run.summary,
            run.stderr
        );
        match *strategy {
            "hangfree" => {
                assert_eq!(run.count("duplicates"), 0, "{strategy}: {}", run.summary);
                assert_eq!(run.count("received"), 8, "{strategy}: {}", run.summary);
                assert_eq!(run.count("handled"), 8, "{strategy}: {}", run.summary);
                assert_eq!(run.count("completed"), 8, "{strategy}: {}", run.summary);
                assert!(run.ids("left_for_redelivery").is_empty(), "{}", run.summary);
                assert!(run.count("completion_calls") <= 8, "{}", run.summary);
            }
            "each" => {
                assert_eq!(run.count("duplicates"), 0, "{strategy}: {}", run.summary);
                assert_eq!(run.count("completed"), 8, "{strategy}: {}", run.summary);
                assert_eq!(
                    run.count("completion_calls"),
                    8,
                    "{strategy}: {}",
                    run.summary
                );
            }
            _ => {
                assert!(
                    run.count("duplicates") > 0,
                    "{strategy} waits longer than a lock: {}",
                    run.summary
                );
                // Whatever came back, nothing is lost: completed, or listed.
                let completed = run.ids("completed_ids");
                let left = run.ids("left_for_redelivery");
                assert_eq!(
                    completed.len() + left.len(),
                    8,
                    "{strategy}: {}",
                    run.summary
                );
            }
        }
    }
}

#[test]
fn under_low_load_hangfree_completes_each_message_once_and_every_100_delivers_twice() {
    low_load_every_strategy(|_| Broker::Embedded);
}

#[test]
fn under_low_load_on_redis_hangfree_completes_each_message_once_and_every_100_delivers_twice() {
    let test = "low-load";
    if redis_server::redis_url(test).is_none() {
        return;
    }
    low_load_every_strategy(|strategy| Broker::redis(&format!("{test}-{strategy}")).unwrap());
}

/// A hung and a panicking handler, then SIGTERM: the stop returns within the grace plus
/// the bound, aborts the hung handler, and lists its message for redelivery. Returns the
/// hung message's ID.
fn hung_and_panicking_then_sigterm(broker: &Broker) -> String {
    let grace = Duration::from_millis(300);
    let mut running = start(
        broker,
        &[
            "--messages",
            "4",
            "--load",
            "high",
            "--hang",
            "1",
            "--panic",
            "1",
            "--lock",
            "2000",
            "--silence",
            "20000",
            "--grace",
            "300",
        ],
    );
    let panicked = id_in(&running.line_ending_with("fault injected: Panic"));
    let hung = id_in(&running.line_ending_with("fault injected: Hang"));
    running.signal("TERM");
    let (run, took) = running.finish();
    assert!(run.status.success(), "{}\n{}", run.summary, run.stderr);
    assert!(
        took <= grace + STOP_BOUND,
        "exited {took:?} after SIGTERM, more than {grace:?} + {STOP_BOUND:?}"
    );
    assert_eq!(run.summary["ended_by"], "SIGTERM");
    assert!(run.ids("aborted").contains(&hung), "{}", run.summary);
    let left = run.ids("left_for_redelivery");
    assert!(left.contains(&hung), "{}", run.summary);
    assert!(left.contains(&panicked), "{}", run.summary);
    assert!(
        run.ids("panicked_ids").contains(&panicked),
        "{}",
        run.summary
    );
    assert_eq!(run.count("panicked"), 1);
    assert_eq!(run.count("received"), 4);
    let completed = run.ids("completed_ids");
    assert_eq!(
        completed.len() + left.len(),
        4,
        "every message completed or listed: {}",
        run.summary
    );
    hung
}

#[test]
fn a_hung_and_a_panicking_handler_then_sigterm_stop_in_time_and_list_the_hung_message() {
    hung_and_panicking_then_sigterm(&Broker::Embedded);
}

#[test]
fn on_redis_the_message_a_stop_left_for_redelivery_is_completed_by_the_next_run() {
    let Some(broker) = Broker::redis("redelivery") else {
        return;
    };
    let hung = hung_and_panicking_then_sigterm(&broker);
    // The stop released it (idle set to the lock): the next consumer's claimer takes it
    // at once, and the run ends when the stream is drained.
    let second = run(&broker, &["--messages", "0", "--lock", "2000"]);
    broker.clean_up();
    assert!(
        second.status.success(),
        "{}\n{}",
        second.summary,
        second.stderr
    );
    assert_eq!(second.summary["ended_by"], "the queue is drained");
    assert!(
        second.ids("completed_ids").contains(&hung),
        "{}",
        second.summary
    );
    assert!(
        second.ids("left_for_redelivery").is_empty(),
        "{}",
        second.summary
    );
}

/// A handler three locks long that beats keeps its lock (renewed, never delivered twice);
/// the same handler going silent loses it, and its message is delivered again and
/// completed once.
fn slow_beating_and_silent(broker_for: impl Fn(&str) -> Broker) {
    let common = ["--messages", "3", "--load", "high", "--lock", "400"];
    let slow_broker = broker_for("slow");
    let mut args = common.to_vec();
    args.extend(["--slow", "1"]);
    let slow = run(&slow_broker, &args);
    slow_broker.clean_up();
    assert!(slow.status.success(), "{}\n{}", slow.summary, slow.stderr);
    assert_eq!(slow.count("duplicates"), 0, "{}", slow.summary);
    assert_eq!(slow.count("completed"), 3, "{}", slow.summary);
    assert!(
        slow.count("renewals") >= 6,
        "1.2 s at a renewal per 133 ms: {}",
        slow.summary
    );
    assert_eq!(slow.summary["lost_locks"].as_array().unwrap().len(), 0);

    let silent_broker = broker_for("silent");
    let mut args = common.to_vec();
    args.extend(["--silent", "1"]);
    let silent = run(&silent_broker, &args);
    silent_broker.clean_up();
    assert!(
        silent.status.success(),
        "{}\n{}",
        silent.summary,
        silent.stderr
    );
    let lost = silent.summary["lost_locks"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{}", silent.summary);
    assert!(
        lost[0]["why"].as_str().unwrap().contains("went silent"),
        "{}",
        silent.summary
    );
    let lost_id = lost[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        silent.count("duplicates"),
        1,
        "delivered again: {}",
        silent.summary
    );
    assert_eq!(silent.count("received"), 4);
    assert_eq!(silent.count("completed"), 3, "{}", silent.summary);
    assert!(silent.ids("completed_ids").contains(&lost_id));
    assert!(
        silent.ids("left_for_redelivery").is_empty(),
        "{}",
        silent.summary
    );
}

#[test]
fn a_slow_handler_that_beats_keeps_its_lock_and_a_silent_one_loses_it() {
    slow_beating_and_silent(|_| Broker::Embedded);
}

#[test]
fn on_redis_a_slow_handler_that_beats_keeps_its_lock_and_a_silent_one_loses_it_to_the_claimer() {
    let test = "slow-silent";
    if redis_server::redis_url(test).is_none() {
        return;
    }
    slow_beating_and_silent(|which| Broker::redis(&format!("{test}-{which}")).unwrap());
}

/// Three consumers on one stream, one of them killed with SIGKILL mid-run: the other two
/// claim its messages once their locks run out; every message is handled at least once,
/// and the only messages handled twice are ones the killed consumer held when it died.
#[test]
fn three_consumers_on_one_stream_with_one_killed_handle_every_message() {
    let test = "three-consumers";
    let Some(url) = redis_server::redis_url(test) else {
        return;
    };
    const MESSAGES: u64 = 600;
    let stream = redis_server::unique_stream(test);
    let mut connection = redis_server::connect(&url);
    let ids: BTreeSet<String> = redis_server::add(&mut connection, &stream, 1..=MESSAGES)
        .into_iter()
        .collect();
    let log = std::env::temp_dir().join(format!("{stream}.log"));
    let broker = Broker::Redis {
        url: url.clone(),
        stream: stream.clone(),
    };
    let names: Vec<String> = (1..=3)
        .map(|n| format!("c{n}-{}", std::process::id()))
        .collect();
    let mut consumers: Vec<Running> = names
        .iter()
        .map(|name| {
            start(
                &broker,
                &[
                    "--messages",
                    "0",
                    "--lock",
                    "1000",
                    "--workers",
                    "8",
                    "--work",
                    "40",
                    "--name",
                    name,
                    "--handled-log",
                    log.to_str().unwrap(),
                ],
            )
        })
        .collect();

    // Mid-run: a quarter of the messages handled. Reading a file another process appends
    // to has no event to wait on: poll it, briefly.
    let give_up = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log).map_or(0, |text| text.lines().count())
        < MESSAGES as usize / 4
    {
        assert!(Instant::now() < give_up, "the consumers made no progress");
        // Other processes write the log: a short real wait between looks.
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = consumers.remove(0);
    killed.signal("KILL");
    let mut killed = killed;
    let _ = killed.child.wait();
    // What it held when it died: its pending entries, read before any lock ran out.
    let mut held: BTreeSet<String> = BTreeSet::new();
    for owner in [names[0].clone(), format!("{}-claimer", names[0])] {
        held.extend(redis_server::pending_of(
            &mut connection,
            &stream,
            "hangfree",
            &owner,
        ));
    }

    for survivor in consumers {
        let (run, _) = survivor.finish();
        assert!(run.status.success(), "{}\n{}", run.summary, run.stderr);
        assert_eq!(
            run.summary["ended_by"], "the queue is drained",
            "{}",
            run.summary
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    redis_server::delete(&mut connection, &stream);

    let mut handled: BTreeMap<String, u32> = BTreeMap::new();
    for line in text.lines() {
        *handled
            .entry(line.split(' ').next().unwrap().to_string())
            .or_default() += 1;
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !handled.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never handled: {missing:?}");
    let twice: BTreeSet<String> = handled
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        twice.is_subset(&held),
        "handled twice but not held by the killed consumer: {:?}",
        twice.difference(&held).collect::<Vec<_>>()
    );
    let duplicates: u32 = handled.values().map(|count| count - 1).sum();
    assert!(
        duplicates as usize <= held.len(),
        "{duplicates} duplicates, the killed consumer held {}",
        held.len()
    );
    assert!(
        !held.is_empty(),
        "the kill came mid-run, with messages in flight"
    );
}

#[test]
fn bad_flags_get_the_usage_and_exit_code_2() {
    for (bad, message) in [
        (
            &["--lock", "0"][..],
            "--lock <ms> takes milliseconds greater than zero, not '0'",
        ),
        (
            &["--workers", "none"],
            "--workers <k> takes a count from 1 to 10000, not 'none'",
        ),
        (
            &["--strategy", "sometimes"],
            "invalid value 'sometimes' for '--strategy <STRATEGY>'",
        ),
        (
            &["--load", "medium"],
            "invalid value 'medium' for '--load <LOAD>'",
        ),
        (&["--bogus"], "unexpected argument '--bogus' found"),
        (
            &["--messages", "2", "--hang", "3"],
            "the faults name 3 messages, but --messages is 2",
        ),
        (
            &["--ids"],
            "--ids lists the IDs in the JSON summary: it needs --json",
        ),
    ] {
        let output = Command::new(binary()).args(bad).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("consumer: {message}")),
            "{bad:?}: {stderr}"
        );
        assert!(
            stderr.contains("\n\nusage: consumer [options]\n"),
            "{bad:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{bad:?}: nothing runs");
    }
}

#[test]
fn help_prints_the_usage_on_stdout_and_exits_0() {
    let output = Command::new(binary()).arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout.starts_with("usage: consumer [options]\n"),
        "{stdout}"
    );
    for documented in [
        "--redis-url <url>",
        "--strategy <each|every-100|sleep-5s|hangfree>",
        "--grace <ms>",
        "--hang <n>",
    ] {
        assert!(stdout.contains(documented), "no {documented}: {stdout}");
    }
}
