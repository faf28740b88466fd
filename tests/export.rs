//! The export example, run as a real program: exit codes, files and resumption.
//!
//! `cargo test` builds the examples before it runs the tests; the binary is found next to
//! this test's own executable. Each run uses the embedded replica on loopback, with short
//! real limits (`--idle 150`), and takes well under a few seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const ROWS: u64 = 20_000;

mod support;

// The example's segment recovery plan, compiled here so that its own unit tests run with
// `cargo test`. (An example marked `test = true` would be built only as a test harness,
// and the plain binary these tests run would be missing on a fresh machine.)
#[path = "../examples/export/recovery.rs"]
#[allow(dead_code)] // what only the example's other modules use
mod recovery;

fn example_binary() -> PathBuf {
    support::example::binary("export")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hangfree-test-export-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(out: &Path, extra: &[&str]) -> (Output, String, String, Duration) {
    let started = Instant::now();
    let output = Command::new(example_binary())
        .args(["--rows", &ROWS.to_string(), "--idle", "150", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr, took)
}

/// The replica's row `id`, byte for byte.
fn expected_row(id: u64) -> String {
    format!("{id},customer-{id},{}", (id * 7919) % 100_000)
}

/// Every row of the source, once, in key order, and nothing else.
fn assert_complete_csv(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        let id = i as u64 + 1;
        assert_eq!(line, expected_row(id), "{} line {}", path.display(), i + 1);
        count += 1;
    }
    assert_eq!(count, ROWS, "{}: row count", path.display());
    assert!(text.ends_with('\n'));
}

/// The summary line of `table`: (rows, segments, stalls, status).
fn summary_of<'a>(stdout: &'a str, table: &str) -> (u64, u32, u32, &'a str) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no summary line for {table} in:\n{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let status_at = line.find(fields[5]).unwrap();
    (
        fields[1].parse().unwrap(),
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
        &line[status_at..],
    )
}

// The default run: exit 0, every CSV complete, the stalled table recovered in segments.
#[test]
fn the_default_run_exports_everything_and_recovers_the_stalled_table() {
    let out = out_dir("default");
    let (output, stdout, stderr, took) = run(&out, &[]);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    for table in ["t1", "t2", "t3", "t4"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
        assert!(!out.join(format!("{table}.csv.partial")).exists());
    }
    let (rows, segments, stalls, status) = summary_of(&stdout, "t3");
    assert_eq!(rows, ROWS);
    assert!(stalls >= 1, "the stall was detected: {stdout}");
    assert!(segments > 1, "t3 was recovered in segments: {stdout}");
    assert!(status.starts_with("done"), "{status}");
    for table in ["t1", "t2", "t4"] {
        assert_eq!(summary_of(&stdout, table).2, 0, "{table} had no stall");
    }
    assert!(
        stdout.contains("replica: 1 quiet connection(s), 1 closed by the exporter"),
        "the stalled connection was closed, not left open: {stdout}"
    );
    let notices = std::fs::read_to_string(out.join("notices.log")).unwrap();
    assert_eq!(
        notices.lines().count(),
        4,
        "one completion notice per table: {notices}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let _ = std::fs::remove_dir_all(&out);
}

// An unrecoverable table: exit non-zero naming it, no t3.csv, the others complete.
#[test]
fn an_unrecoverable_table_fails_the_job_and_leaves_no_finished_looking_file() {
    let out = out_dir("forever");
    let (output, stdout, stderr, _) = run(&out, &["--stall-forever", "t3"]);
    assert!(
        !output.status.success(),
        "a failed export must not exit 0:\n{stdout}\n{stderr}"
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("export failed: t3"),
        "the message names t3:\n{stderr}"
    );
    assert!(!out.join("t3.csv").exists(), "no t3.csv may exist");
    for table in ["t1", "t2", "t4"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
    }
    let (_, _, stalls, status) = summary_of(&stdout, "t3");
    assert!(stalls >= 2 && status.starts_with("FAILED"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}

// Resume: after a failed run, a normal run with the same --out exports only what is missing.
#[test]
fn a_second_run_resumes_and_exports_only_the_missing_tables() {
    let out = out_dir("resume");
    let (first, _, _, _) = run(&out, &["--stall-forever", "t3"]);
    assert!(!first.status.success());
    let t1_written = std::fs::metadata(out.join("t1.csv"))
        .unwrap()
        .modified()
        .unwrap();

    let (second, stdout, stderr, _) = run(&out, &[]);
    assert!(second.status.success(), "{stdout}\n{stderr}");
    for table in ["t1", "t2", "t4"] {
        let (_, segments, _, status) = summary_of(&stdout, table);
        assert!(
            status.contains("skipped") && segments == 0,
            "{table}: {status}"
        );
    }
    let (rows, segments, _, status) = summary_of(&stdout, "t3");
    assert!(
        status.starts_with("done") && segments >= 1 && rows == ROWS,
        "{stdout}"
    );
    for table in ["t1", "t2", "t3", "t4"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
    }
    let t1_now = std::fs::metadata(out.join("t1.csv"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(t1_written, t1_now, "t1.csv was not rewritten");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_flags_get_the_usage_and_exit_code_2() {
    let out = out_dir("flags");
    for bad in [
        &["--rows", "zero"][..],
        &["--idle", "0"],
        &["--bogus"],
        &["--stall", "nope"],
        &["--tables"],
    ] {
        let output = Command::new(example_binary())
            .args(bad)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("usage: export"), "{bad:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn help_prints_the_usage_on_stdout_and_exits_0() {
    for flag in ["--help", "-h"] {
        let output = Command::new(example_binary()).arg(flag).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{flag}: {stdout}");
        assert!(
            stdout.starts_with("usage: export [options]\n"),
            "{flag}: {stdout}"
        );
        for documented in [
            "--tables <n|a,b,c>",
            "--rows <n>",
            "--stall <table>",
            "--stall-forever <table>",
            "--idle <ms>",
            "--out <dir>",
            "--database-url <url>",
            "-h, --help",
        ] {
            assert!(
                stdout.contains(documented),
                "{flag}: no {documented}: {stdout}"
            );
        }
        assert!(output.stderr.is_empty(), "{flag}: {:?}", output.stderr);
    }
}

#[test]
fn a_bad_value_is_named_in_the_first_line_before_the_usage() {
    let out = out_dir("values");
    for (bad, message) in [
        (
            &["--rows", "0"][..],
            "--rows takes a positive whole number, not '0'",
        ),
        (
            &["--idle", "0"],
            "--idle takes milliseconds greater than zero, not '0'",
        ),
        (
            &["--tables", "0"],
            "--tables takes a count from 1 to 1000 or names, not '0'",
        ),
        (
            &["--tables", "t1,9lives"],
            "table names are letters, digits and '_' (not starting with a digit): '9lives'",
        ),
        (
            &["--tables", "a,b,a"],
            "--tables names a table twice: 'a,b,a'",
        ),
        (
            &["--stall", "t9"],
            "--stall names 't9', which is not among the tables (t1,t2,t3,t4)",
        ),
        (
            &[
                "--database-url",
                "postgres://127.0.0.1:1/none",
                "--stall",
                "t1",
            ],
            "--stall and --stall-forever act on the embedded replica, not on --database-url",
        ),
    ] {
        let output = Command::new(example_binary())
            .args(bad)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad:?}: {stderr}");
        assert_eq!(
            stderr.lines().next(),
            Some(format!("export: {message}").as_str()),
            "{bad:?}"
        );
        assert!(
            stderr.contains("\n\nusage: export [options]\n"),
            "{bad:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{bad:?}: nothing runs");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_flag_given_twice_takes_its_last_value() {
    let out = out_dir("twice");
    let (output, stdout, stderr, _) = run(&out, &["--tables", "1", "--tables", "2"]);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for table in ["t1", "t2"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
    }
    assert!(
        !out.join("t3.csv").exists(),
        "--tables 2 exports t1 and t2 only"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// How long a run may take to stop after SIGTERM: the query in flight is dropped at once,
/// then notices and notifications get their 500 ms grace each.
const STOP_BOUND: Duration = Duration::from_secs(3);

// SIGTERM mid-run, sent to the example's process: it stops within a bounded time, exits
// non-zero, keeps the interrupted table's rows as `.partial`, records only what finished,
// says which tables were interrupted and why, and a rerun resumes.
#[test]
fn sigterm_stops_a_run_in_time_keeps_what_finished_and_a_rerun_resumes() {
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::process::Stdio;

    let out = out_dir("sigterm");
    // t3's query goes quiet mid-table and its watchdog waits 5 s: the signal lands in it.
    let mut child = Command::new(example_binary())
        .args(["--rows", &ROWS.to_string(), "--idle", "5000"])
        .args(["--stall-forever", "t3", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    let (line, lines) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for text in stderr.lines().map_while(Result::ok) {
            let _ = line.send(text);
        }
    });
    let mut stderr = Vec::new();
    while !stderr
        .iter()
        .any(|l: &String| l.starts_with("t3: exporting"))
    {
        let next = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("t3 never started:\n{}", stderr.join("\n")));
        stderr.push(next);
    }

    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > 10 * STOP_BOUND {
            let _ = child.kill();
            panic!("still running {:?} after SIGTERM", sent.elapsed());
        }
        // Polling a child process's exit: a short real wait is the only way.
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    let stdout = stdout.join().unwrap();
    stderr.extend(lines.try_iter());
    let stderr = stderr.join("\n");
    assert!(took < STOP_BOUND, "stopped {took:?} after SIGTERM");
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");

    for table in ["t1", "t2"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
    }
    assert!(!out.join("t3.csv").exists(), "no finished-looking t3.csv");
    assert!(
        out.join("t3.csv.partial").exists(),
        "t3's rows so far are kept"
    );
    assert!(!out.join("t4.csv").exists() && !out.join("t4.csv.partial").exists());
    let manifest = std::fs::read_to_string(out.join("manifest.tsv")).unwrap();
    let recorded: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(recorded, ["t1", "t2"], "the manifest records what finished");

    let why = "cancelled: service stopping (SIGTERM)";
    assert_eq!(summary_of(&stdout, "t3").3, format!("INTERRUPTED: {why}"));
    assert_eq!(summary_of(&stdout, "t4").3, format!("not started: {why}"));
    assert!(summary_of(&stdout, "t2").3.starts_with("done"), "{stdout}");
    assert!(
        stderr.contains(&format!("export interrupted: t3: {why}"))
            && stderr.contains(&format!("export interrupted: t4: not started: {why}")),
        "{stderr}"
    );

    let (rerun, stdout, stderr, _) = run(&out, &[]);
    assert!(rerun.status.success(), "{stdout}\n{stderr}");
    for table in ["t1", "t2"] {
        assert!(summary_of(&stdout, table).3.contains("skipped"), "{stdout}");
    }
    for table in ["t1", "t2", "t3", "t4"] {
        assert_complete_csv(&out.join(format!("{table}.csv")));
        assert!(!out.join(format!("{table}.csv.partial")).exists());
    }
    let _ = std::fs::remove_dir_all(&out);
}
