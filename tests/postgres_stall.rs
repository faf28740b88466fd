//! Real PostgreSQL: a `COPY ... TO STDOUT` whose connection goes half-open mid-stream.
//!
//! Needs `DATABASE_URL` (set by `.ci/services`, which starts a loopback server with the
//! `export_rows` table of 2,000,000 rows). Without it each test says it was skipped; with
//! `CI` set and no database, each test fails.
//!
//! The stall is made by a TCP proxy between the client and the server that stops
//! forwarding mid-COPY in both directions while keeping both sockets open.

mod support;

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hangfree::prelude::*;
use hangfree::watchdog::{Limits, StallKind};
use support::pg;

/// The stall is declared after this much silence.
const IDLE: Duration = Duration::from_millis(500);
/// The proxy goes silent after this many bytes from the server: well into the COPY
/// (the whole table is about 60 MB), well past the start-up and query messages.
const FREEZE_AFTER: u64 = 4 << 20;
const COPY: &str = "COPY export_rows TO STDOUT";

// 1. Through the watchdog, the half-open COPY ends with `Stalled` no later than
// idle + 500 ms after the proxy went silent (and no earlier than idle).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_ends_a_half_open_copy_in_time() {
    let Some(url) = pg::database_url("the_watchdog_ends_a_half_open_copy_in_time") else {
        return;
    };
    let pg::ProxiedCopy {
        pid, proxy, copy, ..
    } = pg::copy_through_proxy(&url, FREEZE_AFTER, COPY).await;
    let mut copy = pin!(copy.watchdog(Limits::new().idle(IDLE)));
    let mut bytes = 0usize;
    let mut stalled = None;
    // The outer timeout only bounds the test if the watchdog were broken.
    let outcome = tokio::time::timeout(10 * IDLE, async {
        while let Some(item) = copy.next().await {
            match item {
                Ok(chunk) => bytes += chunk.unwrap().len(),
                Err(stall) => {
                    stalled = Some((stall, Instant::now()));
                    break;
                }
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the watchdog did not end the read");
    let (stall, detected_at) = stalled.expect("the read ended with Stalled, not a clean end");
    assert!(
        copy.next().await.is_none(),
        "after the stall the stream ends"
    );
    let frozen_at = proxy
        .frozen_at
        .lock()
        .unwrap()
        .expect("the proxy went silent");
    let after = detected_at.duration_since(frozen_at);
    println!(
        "stalled after {bytes} bytes, detected {after:?} after the proxy went silent: {stall}"
    );
    assert_eq!(stall.kind(), StallKind::Idle);
    assert!(after >= IDLE, "detected too early: {after:?}");
    assert!(
        after <= IDLE + Duration::from_millis(500),
        "detected too late: {after:?}"
    );
    assert!(bytes > 0);
    pg::terminate(&url, pid).await;
}

// 2. Control: without a watchdog the same stall is still pending after 3 x idle. The
// danger is real on this stack: nothing in tokio-postgres or the OS ends the read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_watchdog_a_half_open_copy_hangs() {
    let Some(url) = pg::database_url("without_a_watchdog_a_half_open_copy_hangs") else {
        return;
    };
    let pg::ProxiedCopy {
        pid, proxy, copy, ..
    } = pg::copy_through_proxy(&url, FREEZE_AFTER, COPY).await;
    let mut copy = pin!(copy);
    let mut bytes = 0usize;
    let read_all = async {
        while let Some(chunk) = copy.next().await {
            bytes += chunk.unwrap().len();
        }
    };
    // Bounded from outside, so that the test ends: the read itself never would.
    let outcome = tokio::time::timeout(3 * IDLE, read_all).await;
    assert!(
        proxy.frozen.load(Ordering::SeqCst),
        "the proxy went silent mid-COPY"
    );
    assert!(
        outcome.is_err(),
        "the read should still be pending after {:?}",
        3 * IDLE
    );
    assert!(bytes > 0, "some rows arrived before the stall");
    pg::terminate(&url, pid).await;
}

// 3. After the stall, stop the query on the server with a cancel request, sent straight to
// the server since the proxy is silent. PostgreSQL may not act on a cancel while the
// backend is blocked writing to a client that stopped reading (wait event `ClientWrite`):
// we saw it ignored for more than 3 s once, although in most runs it takes effect within
// 100 ms. Terminating the backend always works there. So the test does what a service
// must do: cancel, and if the query is still active after a second, terminate; and it
// asserts that the query is gone within a few seconds either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_copy_is_stopped_on_the_server() {
    let Some(url) = pg::database_url("a_stalled_copy_is_stopped_on_the_server") else {
        return;
    };
    let pg::ProxiedCopy {
        client,
        pid,
        proxy,
        copy,
    } = pg::copy_through_proxy(&url, FREEZE_AFTER, COPY).await;
    let admin = pg::connect_direct(&url).await;
    let mut copy = pin!(copy.watchdog(Limits::new().idle(IDLE)));
    let stalled = tokio::time::timeout(10 * IDLE, async {
        while let Some(item) = copy.next().await {
            if let Err(stall) = item {
                return stall;
            }
        }
        panic!("the COPY ended instead of stalling");
    })
    .await
    .expect("the watchdog reports the stall");
    assert!(proxy.frozen.load(Ordering::SeqCst));
    let (state, wait) = pg::backend_state(&admin, pid)
        .await
        .expect("backend exists");
    println!("after `{stalled}`: server state {state}, wait event {wait}");
    assert_eq!(state, "active", "the server is still running the COPY");

    let started = Instant::now();
    let direct = tokio::net::TcpStream::connect(pg::server_addr(&url))
        .await
        .unwrap();
    client
        .cancel_token()
        .cancel_query_raw(direct, tokio_postgres::NoTls)
        .await
        .unwrap();
    let how = match pg::wait_not_active(&admin, pid, Duration::from_secs(1)).await {
        Some(took) => format!("cancel request ended the query in {took:?}"),
        None => {
            let (state, wait) = pg::backend_state(&admin, pid).await.unwrap_or_default();
            pg::terminate(&url, pid).await;
            format!("cancel request ignored (state {state}, wait event {wait}); terminated")
        }
    };
    let gone = pg::wait_not_active(&admin, pid, Duration::from_secs(3)).await;
    println!(
        "{how}; no active query {:?} after the cancel",
        started.elapsed()
    );
    assert!(
        gone.is_some(),
        "the COPY is still active on the server: {how}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

// 4 (client side). When the server terminates the backend, the client sees an error
// promptly: a closed connection is not a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_is_an_error_not_a_stall() {
    let Some(url) = pg::database_url("a_terminated_backend_is_an_error_not_a_stall") else {
        return;
    };
    let client = pg::connect_direct(&url).await;
    let pid = pg::backend_pid(&client).await;
    let copy = client.copy_out(COPY).await.unwrap();
    let mut copy = pin!(copy.watchdog(Limits::new().idle(Duration::from_secs(5))));
    // Read a little, then have the server end the backend under our feet.
    let first = copy
        .next()
        .await
        .expect("a first chunk")
        .expect("no stall")
        .unwrap();
    assert!(!first.is_empty());
    let terminated_at = Instant::now();
    pg::terminate(&url, pid).await;
    let error = loop {
        match copy.next().await {
            Some(Ok(Ok(_))) => continue,
            Some(Ok(Err(db))) => break db,
            Some(Err(stall)) => panic!("a terminated backend must be an error, not `{stall}`"),
            None => panic!("a terminated COPY must end in an error, not a clean end"),
        }
    };
    let took = terminated_at.elapsed();
    println!("client saw `{error}` {took:?} after the termination");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// Starts the export example against the server. Its connections carry `app` as their
/// `application_name`, so that a test can find its own backends among those of tests
/// running at the same time.
async fn run_export(url: &str, app: &str, out: &std::path::Path) -> tokio::process::Child {
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}application_name={app}");
    tokio::process::Command::new(support::example::binary("export"))
        .args([
            "--database-url",
            &url,
            "--tables",
            "export_rows",
            "--idle",
            "2000",
            "--out",
        ])
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hangfree-pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// 4 (example side). The server terminates the backend mid-export: the example reports the
// table as failed, promptly, exits non-zero, and leaves no finished-looking file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_reports_a_terminated_backend_as_a_failed_table() {
    let Some(url) = pg::database_url("the_example_reports_a_terminated_backend_as_a_failed_table")
    else {
        return;
    };
    let out = fresh_dir("terminated");
    let admin = pg::connect_direct(&url).await;
    let child = run_export(&url, "hangfree-terminated", &out).await;

    // Wait for the example's COPY to be running, then end its backend.
    let started = Instant::now();
    let pid = loop {
        let rows = admin
            .query(
                "select pid from pg_stat_activity where state = 'active' and application_name = 'hangfree-terminated' and query like 'COPY %'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            break row.get::<_, i32>(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the example never started its COPY"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let terminated_at = Instant::now();

    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the example exits")
        .unwrap();
    let reaction = terminated_at.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "example exited {:?}, {reaction:?} after the termination",
        output.status.code()
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("export failed: export_rows"), "{stderr}");
    assert!(
        !out.join("export_rows.csv").exists(),
        "no finished-looking file"
    );
    // Promptly: an error, not a stall that waits out the 2 s idle limit.
    assert!(reaction < Duration::from_millis(1500), "took {reaction:?}");
    let _ = std::fs::remove_dir_all(&out);
}

// `--database-url` end to end: the 2,000,000-row table through the example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_exports_two_million_rows_from_postgres() {
    let Some(url) = pg::database_url("the_example_exports_two_million_rows_from_postgres") else {
        return;
    };
    let admin = pg::connect_direct(&url).await;
    let expected: i64 = admin
        .query_one("select count(*) from export_rows", &[])
        .await
        .unwrap()
        .get(0);
    assert!(expected >= 2_000_000);
    let out = fresh_dir("full");
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        run_export(&url, "hangfree-full", &out)
            .await
            .wait_with_output(),
    )
    .await
    .expect("the export finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let csv = std::fs::read(out.join("export_rows.csv")).unwrap();
    let rows = csv.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(rows as i64, expected);
    assert!(csv.starts_with(b"1,customer-1,7919\n"));
    let _ = std::fs::remove_dir_all(&out);
}

// SIGTERM mid-COPY: the interrupt hook on the query's scope stops the query on the server
// (a cancel request, then termination if it is still active) before the example exits,
// which it does promptly and non-zero, keeping the partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_copy_stops_the_query_on_the_server_before_the_example_exits() {
    let Some(url) =
        pg::database_url("sigterm_mid_copy_stops_the_query_on_the_server_before_the_example_exits")
    else {
        return;
    };
    let out = fresh_dir("sigterm");
    let admin = pg::connect_direct(&url).await;
    let child = run_export(&url, "hangfree-sigterm", &out).await;

    let started = Instant::now();
    let pid = loop {
        let rows = admin
            .query(
                "select pid from pg_stat_activity where state = 'active' and application_name = 'hangfree-sigterm' and query like 'COPY %'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            break row.get::<_, i32>(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the example never started its COPY"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();

    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the example exits")
        .unwrap();
    let took = sent.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "exited {:?} {took:?} after SIGTERM\n{stderr}",
        output.status.code()
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let stopped = stderr.lines().find(|line| {
        line.starts_with("export_rows: query ")
            && line.ends_with(" on the server (cancelled: service stopping (SIGTERM))")
    });
    assert!(
        stopped.is_some(),
        "the hook stopped the query on the server:\n{stderr}"
    );
    assert!(
        stderr.contains("export interrupted: export_rows: cancelled: service stopping (SIGTERM)"),
        "{stderr}"
    );
    assert!(out.join("export_rows.csv.partial").exists());
    assert!(!out.join("export_rows.csv").exists());
    // Stopping on the server is bounded too: a second for the cancel, then termination.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        pg::wait_not_active(&admin, pid, Duration::from_secs(1))
            .await
            .is_some(),
        "the COPY is still active on the server"
    );
    let _ = std::fs::remove_dir_all(&out);
}
