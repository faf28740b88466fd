//! `IoWatchdog`: stalled reads and writes, under tokio's paused clock.

use std::io;
use std::time::Duration;

use hangfree::watchdog::{IoWatchdog, Limits, Progress, StallKind, Stalled};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::{self, Instant};

const MINUTE: Duration = Duration::from_secs(60);

fn stall_of(err: &io::Error) -> &Stalled {
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    err.get_ref()
        .and_then(|source| source.downcast_ref::<Stalled>())
        .expect("the error's source is the Stalled report")
}

/// Issue point 6, read side.
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
        "stalled: no data for 60s after 10240 bytes read (1m0s into the stream)"
    );
    assert_eq!(Instant::now() - started, MINUTE);
    assert_eq!(received.len(), 10_240, "what arrived is kept");
    assert_eq!(reader.bytes_read(), 10_240);

    // Every later call errors: never `Ok(0)`, which reads as a clean EOF.
    for _ in 0..3 {
        let err = reader.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(stall_of(&err).progress(), Progress::BytesRead(10_240));
    }
    assert!(reader.write_all(b"more").await.is_err());
    assert!(reader.stalled().is_some());

    // The connection was dropped when the stall was reported.
    assert!(reader.get_ref().is_none());
    let closed = server.write_all(b"late").await.unwrap_err();
    assert_eq!(closed.kind(), io::ErrorKind::BrokenPipe);
}

/// Issue point 6, write side: a peer that stops reading.
#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_stalls_the_writer() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut writer = IoWatchdog::new(client, Limits::new())
        .write_limits(Limits::new().idle(Duration::from_secs(10)));

    let started = Instant::now();
    let err = writer.write_all(&[7; 10 * 1024]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::BytesWritten(1024));
    assert_eq!(
        stall.to_string(),
        "stalled: the peer accepted no data for 10s after 1024 bytes written (10s into the stream)"
    );
    assert_eq!(Instant::now() - started, Duration::from_secs(10));

    for _ in 0..3 {
        assert!(writer.write(b"x").await.is_err());
    }
    assert!(writer.flush().await.is_err());
    assert!(writer.shutdown().await.is_err());
    assert!(writer.read(&mut [0; 8]).await.is_err());

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
    let mut watched = IoWatchdog::new(client, Limits::new().idle(Duration::from_secs(10)));
    let feeder = tokio::spawn(async move {
        for _ in 0..10 {
            time::sleep(Duration::from_secs(5)).await;
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

/// Issue point 7: one byte every `idle / 2` never trips `idle`, but trips
/// `min_rate` at the end of its first window below the rate.
#[tokio::test(start_paused = true)]
async fn a_drip_feeding_peer_trips_min_rate() {
    let idle = Duration::from_secs(10);
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

    let limits = Limits::new()
        .idle(idle)
        .min_rate(1000, Duration::from_secs(12));
    let mut reader = IoWatchdog::new(client, limits);
    let started = Instant::now();
    let mut received = Vec::new();
    let err = reader.read_to_end(&mut received).await.unwrap_err();
    let stall = stall_of(&err);
    // Window one (waits up to 12 s): the burst plus bytes at 5 and 10 s,
    // above the rate. Window two (12 s to 24 s): bytes at 15 and 20 s only.
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(Instant::now() - started, Duration::from_secs(24));
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
    let idle = Duration::from_secs(10);
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
            time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut reader = IoWatchdog::new(client, Limits::new().idle(MINUTE).total(10 * MINUTE));
    let err = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 10 * MINUTE);
    assert_eq!(stall.progress(), Progress::BytesRead(600 * 4));
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
    assert!(lines.fill_buf().await.is_err());
    assert!(lines.read_line(&mut line).await.is_err());
    drop(server);
}

/// A first byte may be slow in coming; `first_item` covers it on readers.
#[tokio::test(start_paused = true)]
async fn first_item_on_a_reader_is_the_first_byte() {
    let (client, _server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(
        client,
        Limits::new()
            .first_item(Duration::from_secs(30))
            .idle(Duration::from_secs(5)),
    );
    let started = Instant::now();
    let err = reader.read(&mut [0; 16]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::FirstItem);
    assert_eq!(Instant::now() - started, Duration::from_secs(30));
}

/// The mirror of the review's split test: a read stall wakes the task
/// writing on the other half, which gets the stall at once instead of
/// waiting for its own (much longer) limit.
#[tokio::test(start_paused = true)]
async fn a_read_stall_wakes_the_writer_of_the_other_half() {
    let (client, _server) = tokio::io::duplex(16);
    let watched = IoWatchdog::new(client, Limits::new())
        .read_limits(Limits::new().idle(10 * Duration::from_secs(1)))
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
    assert_eq!(failed_at - started, 10 * Duration::from_secs(1));
    assert_eq!(kind, StallKind::Idle);
}

/// Regression tests from an independent review of this module: each one not named
/// "checked" failed on the reviewed code.
#[path = "watchdog/review.rs"]
mod review;
