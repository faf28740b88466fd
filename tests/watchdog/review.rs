//! Adversarial review of `watchdog`: each test states the contract it holds
//! the module to. Paused time throughout; no wall-clock sleeps.

use std::io;
use std::time::Duration;

use futures::StreamExt as _;
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits, StallKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::{self, Instant};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_test::{assert_pending, assert_ready, task};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

use super::stall_of;

/// Finding 1. The halves of a split `IoWatchdog` run in two tasks (the
/// usual shape of a proxy or a request/response client). When the write
/// side stalls, the watchdog drops the connection and the read monitor's
/// timer, but nothing wakes the reader waiting on that connection: it stays
/// `Pending` for ever, past its own read limit. "No await hangs forever."
#[tokio::test(start_paused = true)]
async fn review_a_write_stall_wakes_the_reader_of_the_other_half() {
    let (client, _server) = tokio::io::duplex(16);
    let watched = IoWatchdog::new(client, Limits::new())
        .read_limits(Limits::new().idle(MINUTE))
        .write_limits(Limits::new().idle(10 * SECOND));
    let (mut read_half, mut write_half) = tokio::io::split(watched);

    let mut reader = task::spawn(async move { read_half.read(&mut [0; 8]).await });
    let mut writer = task::spawn(async move { write_half.write_all(&[b'x'; 64]).await });
    assert_pending!(reader.poll());
    assert_pending!(writer.poll());

    // The peer stops reading: the write side stalls after 10 s.
    time::advance(10 * SECOND).await;
    assert!(writer.is_woken());
    let err = assert_ready!(writer.poll()).unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);

    // The connection is gone. The reader must learn of it, at the latest
    // when its own read limit passes.
    time::advance(10 * MINUTE).await;
    assert!(
        reader.is_woken(),
        "the reader of a stalled, dropped connection was never woken: it hangs for ever"
    );
    let err = assert_ready!(reader.poll()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

/// Finding 2, control: through `AsyncRead`, bytes that end a wait at the
/// end of a `min_rate` window count for that window ("counting what just
/// arrived", monitor.rs `end_wait`).
#[tokio::test(start_paused = true)]
async fn review_control_unbuffered_min_rate_counts_the_bytes_that_end_the_wait() {
    let window = 10 * SECOND;
    let (client, mut server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(client, Limits::new().min_rate(4, window));
    let mut buf = [0; 4];
    {
        let mut read = task::spawn(reader.read_exact(&mut buf));
        assert_pending!(read.poll());
        time::advance(window).await;
        server.write_all(b"row\n").await.unwrap();
        assert_eq!(assert_ready!(read.poll()).unwrap(), 4);
    }
    server.write_all(b"row\n").await.unwrap();
    reader.read_exact(&mut buf).await.unwrap();
}

/// Finding 2. The same bytes read through `AsyncBufRead` (`read_line`):
/// `poll_fill_buf` ends the wait with zero progress and the bytes are
/// counted later, in `consume`, so the window is judged without them and a
/// source that met the rate is declared too slow ("0 bytes read in 10s"),
/// while the next line sits ready in the buffer.
#[tokio::test(start_paused = true)]
async fn review_buffered_min_rate_counts_the_bytes_that_end_the_wait() {
    let window = 10 * SECOND;
    let (client, mut server) = tokio::io::duplex(1024);
    let mut lines = IoWatchdog::new(BufReader::new(client), Limits::new().min_rate(4, window));
    let mut line = String::new();
    {
        let mut read = task::spawn(lines.read_line(&mut line));
        assert_pending!(read.poll());
        time::advance(window).await;
        server.write_all(b"row\nrow\n").await.unwrap();
        assert_eq!(assert_ready!(read.poll()).unwrap(), 4);
    }
    line.clear();
    let second = lines.read_line(&mut line).await;
    assert!(
        second.is_ok(),
        "8 bytes arrived within a 10 s window with a minimum of 4: {second:?}"
    );
}

/// Finding 3. A consumer that waits a bounded time for the next row
/// (`timeout(.., rows.next())`, or `chunks_timeout`), then does its own
/// work for a minute. The source delivered 20 rows right after that one
/// `Pending`. The minute the consumer spent away is added to the `min_rate`
/// window as "waiting" (`end_wait`), the window is judged on the first row
/// alone, and the stream fails as too slow with 19 rows ready: the consumer
/// made the source look slow, and a stall is declared without polling a
/// source that had items ready.
#[tokio::test(start_paused = true)]
async fn review_min_rate_does_not_count_the_consumers_time_away() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows =
        UnboundedReceiverStream::new(rx).watchdog(Limits::new().min_rate(5, 10 * SECOND));

    // Wait up to a second for a row; none yet.
    assert!(time::timeout(SECOND, rows.next()).await.is_err());
    // Rows arrive at once while the consumer flushes its batch for a minute.
    for row in 0..20 {
        tx.send(row).unwrap();
    }
    time::sleep(MINUTE).await;

    for row in 0..20 {
        match rows.next().await {
            Some(Ok(got)) => assert_eq!(got, row),
            other => panic!("row {row}: expected the ready row, got {other:?}"),
        }
    }
}

/// Finding 4. `first_item` exists so that a query may think before its
/// first row ("replaces idle until then"). Combined with `min_rate` the
/// grace is silently cut to one window: the windows run from the first
/// poll, and the first one ends in `TooSlow` with nothing arrived.
#[tokio::test(start_paused = true)]
async fn review_min_rate_does_not_cut_the_first_item_grace_short() {
    let (tx, rx) = mpsc::unbounded_channel();
    let limits = Limits::new()
        .first_item(15 * MINUTE)
        .idle(MINUTE)
        .min_rate(5, 10 * SECOND);
    let mut rows = UnboundedReceiverStream::new(rx).watchdog(limits);
    let producer = tokio::spawn(async move {
        // The query thinks for 14 minutes, then streams 100 rows a second.
        time::sleep(14 * MINUTE).await;
        for row in 0..1000 {
            tx.send(row).unwrap();
            if row % 100 == 99 {
                time::sleep(SECOND).await;
            }
        }
    });
    let started = Instant::now();
    let mut seen = 0;
    while let Some(row) = rows.next().await {
        match row {
            Ok(_) => seen += 1,
            Err(stalled) => panic!(
                "stalled after {:?} with a 15 min first_item: {stalled}",
                Instant::now() - started
            ),
        }
    }
    assert_eq!(seen, 1000);
    producer.await.unwrap();
}

/// Checked, holds: a source that returns `Pending` only because the task's
/// coop budget ran out is not counted as idle (the timer's poll is budgeted
/// too, and the task is re-polled at once).
#[tokio::test(start_paused = true)]
async fn review_checked_coop_budget_pending_is_not_a_stall() {
    let (tx, rx) = mpsc::unbounded_channel();
    for row in 0..10_000 {
        tx.send(row).unwrap();
    }
    drop(tx);
    let mut rows = UnboundedReceiverStream::new(rx).watchdog(
        Limits::new()
            .idle(Duration::from_nanos(1))
            .min_rate(1, Duration::from_nanos(1)),
    );
    let mut seen = 0;
    while let Some(row) = rows.next().await {
        row.unwrap();
        seen += 1;
    }
    assert_eq!(seen, 10_000);
}

/// Checked, holds: an idle stall with a `total` budget and a stale timer
/// (armed for an idle deadline that fired while the source was ready) is
/// still exact.
#[tokio::test(start_paused = true)]
async fn review_checked_idle_with_total_after_a_stale_firing_is_exact() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows =
        UnboundedReceiverStream::new(rx).watchdog(Limits::new().idle(MINUTE).total(60 * MINUTE));
    let mut next = task::spawn(rows.next());
    assert_pending!(next.poll());
    time::advance(30 * SECOND).await;
    tx.send(1).unwrap();
    assert!(matches!(assert_ready!(next.poll()), Some(Ok(1))));
    drop(next);
    // The idle timer (armed for 60 s) fires while the consumer is busy.
    time::sleep(2 * MINUTE).await;
    let waited_from = Instant::now();
    let item = rows.next().await.unwrap();
    let stalled = item.unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(Instant::now() - waited_from, MINUTE);
    assert!(rows.next().await.is_none());
}

/// Finding 5 (real clock: the consumer's blocking work is the point). The
/// module docs promise "an always-ready source must still be stopped when
/// the budget is spent", but `total` is only seen through the timer's
/// `is_elapsed`, which turns true only when the runtime's time driver runs.
/// A consumer that processes an always-ready source without yielding (CPU
/// work per row on a current-thread runtime) never lets it run: the budget
/// of 20 ms is exceeded tenfold and the stream is never stopped.
#[tokio::test(flavor = "current_thread")]
async fn review_total_stops_an_always_ready_source_with_a_busy_consumer() {
    let total = Duration::from_millis(20);
    let mut rows = futures::stream::iter(0u64..).watchdog(Limits::new().total(total));
    let started = std::time::Instant::now();
    let mut seen = 0u64;
    let stalled = loop {
        match rows.next().await {
            Some(Ok(_)) => {
                seen += 1;
                // A row's CPU work, blocking the thread for a millisecond.
                std::thread::sleep(Duration::from_millis(1));
                if started.elapsed() > 10 * total {
                    panic!(
                        "{seen} rows in {:?}: a {total:?} budget was never enforced",
                        started.elapsed()
                    );
                }
            }
            Some(Err(stalled)) => break stalled,
            None => unreachable!("an endless source"),
        }
    };
    assert_eq!(stalled.kind(), StallKind::Total);
    assert!(started.elapsed() >= total);
}

/// Finding 3b: the same root cause on `idle`, the headline guarantee
/// ("time the consumer spends between polls never counts"). Most streams
/// are lazy: a `then` step makes progress only when polled. The consumer
/// waits half a second for a row, then does two minutes of its own work.
/// The source's first round trip finished at 1 s; re-polled at 120.5 s it
/// starts its second round trip (1 s) and returns `Pending`, and the
/// watchdog declares a 120 s idle stall at once, a second before row 0.
#[tokio::test(start_paused = true)]
async fn review_idle_does_not_count_the_consumers_time_away_from_a_lazy_source() {
    let source = futures::stream::iter(0..3).then(|row| async move {
        time::sleep(SECOND).await; // send the query
        time::sleep(SECOND).await; // read the reply
        row
    });
    let mut rows = Box::pin(source.idle_timeout(MINUTE));

    assert!(time::timeout(SECOND / 2, rows.next()).await.is_err());
    time::sleep(2 * MINUTE).await; // the consumer's own work

    for row in 0..3 {
        match rows.next().await {
            Some(Ok(got)) => assert_eq!(got, row),
            other => panic!("row {row}: expected the row, got {other:?}"),
        }
    }
}

/// Checked, holds: after a stall, flush and shutdown error too (no
/// `Ok(())` that would pass for a clean close), and a zero-length write
/// neither panics nor revives the connection.
#[tokio::test(start_paused = true)]
async fn review_checked_every_call_after_a_stall_errors() {
    let (client, _server) = tokio::io::duplex(1024);
    let mut watched = IoWatchdog::new(client, Limits::new().idle(MINUTE));
    let err = watched.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    assert_eq!(
        stall_of(&watched.flush().await.unwrap_err()).kind(),
        StallKind::Idle
    );
    assert_eq!(
        stall_of(&watched.shutdown().await.unwrap_err()).kind(),
        StallKind::Idle
    );
    assert!(watched.write(&[]).await.is_err());
    assert!(watched.read(&mut []).await.is_err());
}

/// Checked, holds: a deadman whose every `Pulse` is dropped while the work
/// still runs stalls `idle` after the last beat (it does not finish, nor
/// hang); `watch` on a future that is ready at once is `Ok` without a
/// timer; a `Duration::MAX` idle never trips and never panics.
#[tokio::test(start_paused = true)]
async fn review_checked_deadman_edges() {
    let (pulse, watcher) = hangfree::watchdog::deadman(30 * SECOND);
    let started = Instant::now();
    let stall = watcher
        .watch(async move {
            time::sleep(10 * SECOND).await;
            pulse.beat();
            drop(pulse);
            std::future::pending::<()>().await;
        })
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - started, 40 * SECOND);
    assert_eq!(stall.kind(), StallKind::Idle);

    let (_pulse, watcher) = hangfree::watchdog::deadman(SECOND);
    assert_eq!(watcher.watch(std::future::ready(7)).await.unwrap(), 7);

    let (_pulse, watcher) = hangfree::watchdog::deadman(Duration::MAX);
    let mut watched = task::spawn(watcher.watch(std::future::pending::<()>()));
    assert_pending!(watched.poll());
    time::advance(365 * 24 * 60 * MINUTE).await;
    assert_pending!(watched.poll());
}
