//! `IoWatchdog`: stalled reads and writes, under tokio's paused clock.

use std::io;

use hangfree::watchdog::{IoWatchdog, Limits, Progress, StallKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{self, Instant};
use tokio_test::{assert_pending, assert_ready, task};

#[path = "watchdog/common.rs"]
mod common;
use common::{MINUTE, MS, SECOND, stall_of};

/// A stalled read is a `TimedOut` error, never a clean end of file, and so
/// is every later call; the connection is dropped at the stall.
#[tokio::test(start_paused = true)]
async fn a_stalled_read_errors_and_never_looks_like_end_of_file() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    server.write_all(&[b'x'; 10 * 1024]).await.unwrap();
    // The server keeps its end open and sends nothing more.

    let mut reader = IoWatchdog::new(client, Limits::new().idle(MINUTE));
    let mut received = Vec::new();
    let started = Instant::now();
    let err = reader.read_to_end(&mut received).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::BytesRead(10_240));
    assert_eq!(
        stall.to_string(),
        "stalled: no data for 60s (limit 60s) after 10240 bytes read (1m0s into the stream)"
    );
    assert_eq!(Instant::now() - started, MINUTE);
    assert_eq!(received.len(), 10_240, "what arrived is kept");
    assert_eq!(reader.bytes_read(), 10_240);

    // Every later call errors: never `Ok(0)`, which reads as a clean EOF.
    for _ in 0..3 {
        let err = reader.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(stall_of(&err).progress(), Progress::BytesRead(10_240));
    }
    let err = reader.write_all(b"more").await.unwrap_err();
    assert_eq!(stall_of(&err).progress(), Progress::BytesRead(10_240));
    assert!(reader.stalled().is_some());

    // The connection was dropped when the stall was reported.
    assert!(reader.get_ref().is_none());
    let closed = server.write_all(b"late").await.unwrap_err();
    assert_eq!(closed.kind(), io::ErrorKind::BrokenPipe);
}

/// A peer that stops reading stalls the writer, and every later call errors
/// with that stall.
#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_stalls_the_writer() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut writer =
        IoWatchdog::new(client, Limits::new()).write_limits(Limits::new().idle(10 * SECOND));

    let started = Instant::now();
    let err = writer.write_all(&[7; 10 * 1024]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::BytesWritten(1024));
    assert_eq!(
        stall.to_string(),
        "stalled: the peer accepted no data for 10s (limit 10s) after 1024 bytes written (10s into the stream)"
    );
    assert_eq!(Instant::now() - started, 10 * SECOND);

    let written = Progress::BytesWritten(1024);
    for _ in 0..3 {
        let err = writer.write(b"x").await.unwrap_err();
        assert_eq!(stall_of(&err).progress(), written);
    }
    assert_eq!(
        stall_of(&writer.flush().await.unwrap_err()).progress(),
        written
    );
    assert_eq!(
        stall_of(&writer.shutdown().await.unwrap_err()).progress(),
        written
    );
    let err = writer.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(stall_of(&err).progress(), written);

    // The server can still read what was accepted, then sees the close.
    let mut accepted = Vec::new();
    server.read_to_end(&mut accepted).await.unwrap();
    assert_eq!(accepted.len(), 1024);
}

/// Reads and writes keep separate clocks: an idle writer does not stall a
/// busy reader.
#[tokio::test(start_paused = true)]
async fn reads_and_writes_have_their_own_clocks() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut watched = IoWatchdog::new(client, Limits::new().idle(10 * SECOND));
    let feeder = tokio::spawn(async move {
        for _ in 0..10 {
            time::sleep(5 * SECOND).await;
            server.write_all(b"tick").await.unwrap();
        }
        server
    });
    let mut buf = [0; 4];
    for _ in 0..10 {
        watched.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"tick");
    }
    assert_eq!(watched.bytes_read(), 40);
    assert_eq!(watched.bytes_written(), 0);
    let _server = feeder.await.unwrap();
}

/// A clean end of file passes through as `Ok(0)`.
#[tokio::test(start_paused = true)]
async fn a_real_end_of_file_is_still_an_end_of_file() {
    let (client, mut server) = tokio::io::duplex(1024);
    server.write_all(b"id,name\n1,ada\n").await.unwrap();
    drop(server);
    let mut reader = IoWatchdog::new(client, Limits::new().idle(MINUTE));
    let mut text = String::new();
    reader.read_to_string(&mut text).await.unwrap();
    assert_eq!(text, "id,name\n1,ada\n");
    assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 0);
}

/// One byte every `idle / 2` never trips `idle`, but trips `min_rate` at the
/// end of its first window below the rate.
#[tokio::test(start_paused = true)]
async fn a_drip_feeding_peer_trips_min_rate() {
    let idle = 10 * SECOND;
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let dripper = tokio::spawn(async move {
        server.write_all(&[b'x'; 4096]).await.unwrap();
        loop {
            time::sleep(idle / 2).await;
            if server.write_all(b"x").await.is_err() {
                return; // the watchdog hung up
            }
        }
    });

    let limits = Limits::new().idle(idle).min_rate(1000, 12 * SECOND);
    let mut reader = IoWatchdog::new(client, limits);
    let started = Instant::now();
    let mut received = Vec::new();
    let err = reader.read_to_end(&mut received).await.unwrap_err();
    let stall = stall_of(&err);
    // Window one (waits up to 12 s): the burst plus bytes at 5 and 10 s,
    // above the rate. Window two (12 s to 24 s): bytes at 15 and 20 s only.
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(Instant::now() - started, 24 * SECOND);
    assert_eq!(stall.progress(), Progress::BytesRead(4096 + 4));
    assert_eq!(received.len(), 4096 + 4);
    assert_eq!(
        stall.to_string(),
        "stalled: too slow, 2 bytes read in 12s of waiting, below the minimum of 1000 bytes read per 12s (24s into the stream)"
    );
    dripper.await.unwrap();
}

/// The same drip without `min_rate` is never caught by `idle` alone: that
/// is why `min_rate` exists.
#[tokio::test(start_paused = true)]
async fn idle_alone_does_not_catch_a_drip_feed() {
    let idle = 10 * SECOND;
    let (client, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        for _ in 0..100 {
            time::sleep(idle / 2).await;
            server.write_all(b"x").await.unwrap();
        }
    });
    let mut reader = IoWatchdog::new(client, Limits::new().idle(idle));
    let mut received = Vec::new();
    reader.read_to_end(&mut received).await.unwrap();
    assert_eq!(received.len(), 100);
}

/// `total` on a reader that keeps the data coming, just slowly.
#[tokio::test(start_paused = true)]
async fn total_ends_a_reader_that_never_finishes() {
    let (client, mut server) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        while server.write_all(b"row\n").await.is_ok() {
            time::sleep(SECOND).await;
        }
    });
    let mut reader = IoWatchdog::new(client, Limits::new().idle(MINUTE).total(10 * MINUTE));
    let err = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 10 * MINUTE);
    assert_eq!(stall.progress(), Progress::BytesRead(600 * 4));
}

/// `total` on calls that move no bytes: a budget spent between two reads of
/// the clock ends the writer at its very next flush, though no byte has ever
/// been written.
#[tokio::test(start_paused = true)]
async fn a_budget_spent_between_flushes_that_move_no_bytes_ends_the_writer_at_the_next_flush() {
    // A `Vec` is always ready and, unlike `tokio::io::sink`, never spends
    // the task's coop budget: the writer never pends.
    let mut writer = IoWatchdog::new(Vec::new(), Limits::new().total(MINUTE));
    // No time passes: the reads of the clock grow apart, up to every
    // 1,024th call, and this stops between two of them.
    for _ in 0..5_000 {
        writer.flush().await.unwrap();
    }
    time::advance(MINUTE).await;
    let err = writer.flush().await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), MINUTE);
    assert_eq!(stall.progress(), Progress::BytesWritten(0));
}

/// `total` stops a consumer that loops on calls that move no bytes and
/// never lets the runtime's timer run: the clock is read by the calls it
/// makes, not by the bytes they move. On the real clock, because the
/// consumer's blocking work is the point.
#[tokio::test(flavor = "current_thread")]
async fn total_stops_a_consumer_that_flushes_in_a_loop_and_never_yields() {
    let total = 20 * MS;
    let mut writer = IoWatchdog::new(Vec::new(), Limits::new().total(total));
    let started = std::time::Instant::now();
    let err = loop {
        match writer.flush().await {
            Ok(()) => {
                // The consumer's CPU work, blocking the thread for a
                // millisecond: the runtime never gets to run its timers.
                std::thread::sleep(MS);
                assert!(
                    started.elapsed() < 10 * total,
                    "a {total:?} budget was never enforced in {:?}",
                    started.elapsed()
                );
            }
            Err(err) => break err,
        }
    };
    let took = started.elapsed();
    assert_eq!(stall_of(&err).kind(), StallKind::Total);
    assert!(
        took >= total && took <= 2 * total,
        "the budget of {total:?} ended the writer after {took:?}"
    );
}

/// Through `AsyncBufRead`: lines until the stall, then errors, bytes counted
/// as they are consumed.
#[tokio::test(start_paused = true)]
async fn buffered_reads_are_watched_too() {
    let (client, mut server) = tokio::io::duplex(1024);
    server.write_all(b"one\ntwo\nthr").await.unwrap();
    let mut lines = IoWatchdog::new(BufReader::new(client), Limits::new().idle(MINUTE));

    let mut line = String::new();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line, "one\n");
    line.clear();
    lines.read_line(&mut line).await.unwrap();
    assert_eq!(line, "two\n");
    line.clear();
    let err = lines.read_line(&mut line).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.progress(), Progress::BytesRead(11));
    let read = Progress::BytesRead(11);
    assert_eq!(
        stall_of(&lines.fill_buf().await.unwrap_err()).progress(),
        read
    );
    let err = lines.read_line(&mut line).await.unwrap_err();
    assert_eq!(stall_of(&err).progress(), read);
    drop(server);
}

/// A first byte may be slow in coming; `first_item` covers it on readers.
#[tokio::test(start_paused = true)]
async fn first_item_on_a_reader_is_the_first_byte() {
    let (client, _server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(
        client,
        Limits::new().first_item(30 * SECOND).idle(5 * SECOND),
    );
    let started = Instant::now();
    let err = reader.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::FirstItem);
    assert_eq!(Instant::now() - started, 30 * SECOND);
}

/// The mirror of `a_write_stall_wakes_the_reader_of_the_other_half`: a read
/// stall wakes the task writing on the other half, which gets the stall at
/// once instead of waiting for its own (much longer) limit.
#[tokio::test(start_paused = true)]
async fn a_read_stall_wakes_the_writer_of_the_other_half() {
    let (client, _server) = tokio::io::duplex(16);
    let watched = IoWatchdog::new(client, Limits::new())
        .read_limits(Limits::new().idle(10 * SECOND))
        .write_limits(Limits::new().idle(60 * MINUTE));
    let (mut read_half, mut write_half) = tokio::io::split(watched);
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let err = write_half.write_all(&[b'x'; 64]).await.unwrap_err();
        (Instant::now(), stall_of(&err).kind())
    });
    let err = read_half.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    let (failed_at, kind) = writer.await.unwrap();
    // The writer learns of the read stall when it happens.
    assert_eq!(failed_at - started, 10 * SECOND);
    assert_eq!(kind, StallKind::Idle);
}

/// The halves of a split `IoWatchdog` run in two tasks (a proxy, a
/// request/response client). When the write side stalls, the connection is
/// dropped, and the reader waiting on it must learn of it: nothing else
/// would ever wake it, and it would wait past its own read limit for ever.
#[tokio::test(start_paused = true)]
async fn a_write_stall_wakes_the_reader_of_the_other_half() {
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
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
}

/// Through `AsyncRead`, bytes that end a wait at the end of a `min_rate`
/// window count for that window: the source met the rate.
#[tokio::test(start_paused = true)]
async fn min_rate_counts_the_bytes_that_end_a_wait() {
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

/// The same bytes read through `AsyncBufRead` (`read_line`), where they are
/// counted in `consume`, after the wait ended: they still count for the
/// window the wait filled, so the next line, ready in the buffer, is read
/// and not declared too slow.
#[tokio::test(start_paused = true)]
async fn min_rate_through_a_buffered_reader_counts_the_bytes_that_end_a_wait() {
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
    assert_eq!(line, "row\n");
}

/// After a stall, flush and shutdown error too (no `Ok(())` that would pass
/// for a clean close), and a zero-length write or read neither panics nor
/// revives the connection: each returns the stall.
#[tokio::test(start_paused = true)]
async fn every_call_after_a_stall_returns_the_stall() {
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
    assert_eq!(
        stall_of(&watched.write(&[]).await.unwrap_err()).kind(),
        StallKind::Idle
    );
    assert_eq!(
        stall_of(&watched.read(&mut []).await.unwrap_err()).kind(),
        StallKind::Idle
    );
}

/// A stall inside an `io::Error` is found however the error is wrapped
/// afterwards, where a walk of `source()` (anyhow's `chain()` and
/// `downcast_ref`) misses it: `io::Error` hides its payload from `source()`.
#[tokio::test(start_paused = true)]
async fn a_stall_is_found_through_any_wrapping_of_its_io_error() {
    use hangfree::watchdog::Stalled;
    use std::error::Error as _;

    let (client, _server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(client, Limits::new().idle(MINUTE));
    let err = reader.read(&mut [0; 8]).await.unwrap_err();
    let stall = Stalled::find_in(&err)
        .expect("the error is the stall")
        .clone();
    assert_eq!(&stall, stall_of(&err));
    assert!(
        err.source().is_none(),
        "io::Error::source skips its payload"
    );

    // anyhow, with context on top.
    let later = reader.read(&mut [0; 8]).await.unwrap_err();
    let wrapped = anyhow::Error::new(later).context("reading the export");
    assert!(wrapped.downcast_ref::<Stalled>().is_none());
    assert!(
        wrapped
            .chain()
            .all(|e| e.downcast_ref::<Stalled>().is_none())
    );
    assert_eq!(Stalled::find_in(wrapped.as_ref()), Some(&stall));

    // An `io::Error` wrapping it again (a codec, a TLS layer).
    let twice = io::Error::other(io::Error::from(stall.clone()));
    assert_eq!(Stalled::find_in(&twice), Some(&stall));

    // A stream's stall, boxed.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(stall.clone());
    assert_eq!(Stalled::find_in(&*boxed), Some(&stall));

    // And a timeout that is not ours is not taken for one.
    assert!(Stalled::find_in(&io::Error::from(io::ErrorKind::TimedOut)).is_none());
}

/// A call that completes ends a wait, as in tokio-io-timeout: a writer that gives up on
/// a pending write every few seconds and flushes (a no-op that completes at once) never
/// reaches an `idle` limit, however long the peer accepts nothing. `min_rate` judges
/// the bytes moved over the waiting, which the flushes do not reset, and catches it:
/// its first window still holds the bytes written before the peer stopped, the second
/// holds none.
#[tokio::test(start_paused = true)]
async fn flushes_between_pending_writes_hide_a_stall_from_idle_but_not_from_min_rate() {
    let attempt = 3 * SECOND;
    let cases = [
        (Limits::new().idle(10 * SECOND), None),
        (
            Limits::new().min_rate(1, 10 * SECOND),
            Some((StallKind::TooSlow, 20 * SECOND)),
        ),
    ];
    for (limits, expected) in cases {
        let (client, _server) = tokio::io::duplex(1024);
        let mut writer = IoWatchdog::new(client, Limits::new()).write_limits(limits);
        writer.write_all(&[7; 1024]).await.unwrap();
        // The peer reads nothing from here on.
        let started = Instant::now();
        let mut stalled = None;
        for _ in 0..20 {
            match time::timeout(attempt, writer.write(b"x")).await {
                Ok(Err(err)) => {
                    stalled = Some((stall_of(&err).kind(), Instant::now() - started));
                    break;
                }
                Ok(Ok(n)) => panic!("the peer reads nothing, yet {n} more bytes were accepted"),
                Err(_gave_up) => writer.flush().await.unwrap(),
            }
        }
        assert_eq!(stalled, expected, "{limits:?}");
        if expected.is_none() {
            assert_eq!(
                Instant::now() - started,
                20 * attempt,
                "every attempt was made"
            );
        }
    }
}
