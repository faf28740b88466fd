//! `scope::shutdown_signal`: real signals sent to a real process. Each test runs this
//! test binary again as a child process that takes the other role (`CHILD` set): the
//! child waits on the stop scope and reports what it sees; the test sends the signals
//! with `kill` and checks what the child reports, how fast, and how it exits. Real time
//! with short bounds: a signal is the point.
#![cfg(all(unix, feature = "signal"))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hangfree::scope::shutdown_signal;

const CHILD: &str = "HANGFREE_SHUTDOWN_SIGNAL_CHILD";
const BOUND: Duration = Duration::from_secs(5);

/// The child's side: waits on the stop scope in a runtime, says what it saw, then waits
/// to be ended by the second signal.
fn child() {
    let stop = shutdown_signal();
    assert!(!stop.is_cancelled());
    println!("child: ready");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let why = runtime.block_on(async { stop.cancelled().await });
    // Every call returns the same scope: a later one, on another thread, is cancelled too.
    let again = std::thread::spawn(|| shutdown_signal().is_cancelled())
        .join()
        .unwrap();
    println!("child: interrupted: {why}; the same scope everywhere: {again}");
    // A real process waiting for the parent's second signal, which ends it at once.
    std::thread::sleep(Duration::from_secs(30));
    println!("child: still running after the second signal");
    std::process::exit(3);
}

/// The child process, killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test again as the child, and returns it with its stdout's lines.
fn spawn_child(test: &str) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.send(text).is_err() {
                break;
            }
        }
    });
    (Running(child), lines)
}

/// The next line of the child that starts with `child: `, within `BOUND`.
fn next_report(lines: &mpsc::Receiver<String>) -> String {
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the child reported in time");
        // libtest's "test <name> ... " may start the line.
        if let Some(at) = line.find("child: ") {
            return line[at + "child: ".len()..].to_string();
        }
    }
}

fn kill(signal: &str, child: &Running) {
    let status = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit, within `BOUND`; returns its exit code.
fn exit_code(mut child: Running) -> Option<i32> {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the child did not exit in time");
        // Polling a child process's exit: a short real wait is the only way.
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(test: &str, first: &str, second: &str) -> (String, Duration, Option<i32>, Duration) {
    let (child, lines) = spawn_child(test);
    assert_eq!(next_report(&lines), "ready");
    let sent = Instant::now();
    kill(first, &child);
    let seen = next_report(&lines);
    let seen_after = sent.elapsed();
    let sent = Instant::now();
    kill(second, &child);
    let code = exit_code(child);
    (seen, seen_after, code, sent.elapsed())
}

#[test]
fn sigterm_cancels_the_stop_scope_with_its_name_and_a_second_ends_the_process_with_143() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let test =
        "sigterm_cancels_the_stop_scope_with_its_name_and_a_second_ends_the_process_with_143";
    let (seen, seen_after, code, exited_after) = run(test, "-TERM", "-TERM");
    assert_eq!(
        seen,
        "interrupted: cancelled: service stopping (SIGTERM); the same scope everywhere: true"
    );
    assert!(
        seen_after < Duration::from_secs(1),
        "seen after {seen_after:?}"
    );
    assert_eq!(code, Some(143));
    assert!(
        exited_after < Duration::from_secs(1),
        "exited after {exited_after:?}"
    );
}

#[test]
fn sigint_cancels_the_stop_scope_and_a_second_signal_ends_the_process_with_130() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let test = "sigint_cancels_the_stop_scope_and_a_second_signal_ends_the_process_with_130";
    let (seen, _, code, _) = run(test, "-INT", "-INT");
    assert!(
        seen.starts_with("interrupted: cancelled: service stopping (SIGINT)"),
        "{seen}"
    );
    assert_eq!(code, Some(130));
}

#[test]
fn the_exit_code_names_the_second_signal() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let (seen, _, code, _) = run("the_exit_code_names_the_second_signal", "-TERM", "-INT");
    assert!(seen.contains("(SIGTERM)"), "{seen}");
    assert_eq!(code, Some(130));
}
