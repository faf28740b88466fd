//! `IoWatchdog`, `deadman` and `lease` run through the scenarios of the crates
//! they are compared with: tokio-io-timeout's reader/writer/stream timeouts,
//! tokio's own `split`, `BufReader`, `copy` and `copy_bidirectional` tests (which
//! must behave the same through a watchdog that never trips), and races across
//! the workers of a multi-thread runtime.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hangfree::lease::{Lease, Lost};
use hangfree::watchdog::{IoWatchdog, Limits, Progress, StallKind, Stalled, deadman};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
    BufWriter, ReadBuf,
};
use tokio::time::{self, Instant, Sleep, sleep_until};
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// The stall inside an `IoWatchdog`'s error.
fn stall_of(err: &io::Error) -> &Stalled {
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    err.get_ref()
        .and_then(|source| source.downcast_ref::<Stalled>())
        .expect("the error's source is the Stalled report")
}

/// tokio-io-timeout's `DelayStream`: every read and write is ready at `until`
/// (a read then fills one byte, a write takes the whole buffer); flush and
/// shutdown are always ready.
struct DelayStream {
    sleep: Pin<Box<Sleep>>,
}

impl DelayStream {
    fn new(until: Instant) -> Self {
        DelayStream {
            sleep: Box::pin(sleep_until(until)),
        }
    }
}

impl AsyncRead for DelayStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                if buf.remaining() > 0 {
                    buf.put_slice(b"d");
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for DelayStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Ok(buf.len())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------
// tokio-io-timeout: reads and writes that time out, or do not
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_read_slower_than_the_idle_limit_times_out_at_the_limit() {
    let started = Instant::now();
    let mut reader = IoWatchdog::new(
        DelayStream::new(started + 500 * MS),
        Limits::new().idle(100 * MS),
    );
    let err = reader.read(&mut [0]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::BytesRead(0));
    assert_eq!(Instant::now() - started, 100 * MS);
    assert!(reader.get_ref().is_none(), "the reader was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_read_faster_than_the_idle_limit_completes() {
    let started = Instant::now();
    let mut reader = IoWatchdog::new(
        DelayStream::new(started + 100 * MS),
        Limits::new().idle(500 * MS),
    );
    assert_eq!(reader.read(&mut [0]).await.unwrap(), 1);
    assert_eq!(Instant::now() - started, 100 * MS);
    assert_eq!(reader.bytes_read(), 1);
    // Later reads are ready at once and never trip.
    time::advance(10 * SECOND).await;
    assert_eq!(reader.read(&mut [0]).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_slower_than_the_idle_limit_times_out_at_the_limit() {
    let started = Instant::now();
    let mut writer = IoWatchdog::new(
        DelayStream::new(started + 500 * MS),
        Limits::new().idle(100 * MS),
    );
    let err = writer.write(&[0]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::BytesWritten(0));
    assert_eq!(Instant::now() - started, 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_write_faster_than_the_idle_limit_completes() {
    let started = Instant::now();
    let mut writer = IoWatchdog::new(
        DelayStream::new(started + 100 * MS),
        Limits::new().idle(500 * MS),
    );
    assert_eq!(writer.write(&[0, 1, 2]).await.unwrap(), 3);
    assert_eq!(writer.bytes_written(), 3);
    writer.flush().await.unwrap();
    writer.shutdown().await.unwrap();
}

/// `first_item` replaces `idle` only until the first byte.
#[tokio::test(start_paused = true)]
async fn a_slow_first_byte_is_allowed_by_first_item_and_later_silence_by_idle_is_not() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(client, Limits::new().first_item(MINUTE).idle(5 * SECOND));
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        time::sleep(50 * SECOND).await;
        server.write_all(b"x").await.unwrap();
        server
    });
    assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 1);
    assert_eq!(Instant::now() - started, 50 * SECOND);
    let _server = sender.await.unwrap();
    let err = reader.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    assert_eq!(Instant::now() - started, 55 * SECOND);
}

/// A read that moves data resets the idle clock: a peer that sends a byte
/// every 9 s never trips a 10 s idle limit, however long it goes on; when it
/// goes quiet, the stall comes exactly 10 s after its last byte.
#[tokio::test(start_paused = true)]
async fn a_read_that_moves_data_resets_the_idle_clock() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut reader = IoWatchdog::new(client, Limits::new().idle(10 * SECOND));
    let sender = tokio::spawn(async move {
        for _ in 0..50 {
            time::sleep(9 * SECOND).await;
            server.write_all(b"y").await.unwrap();
        }
        server // kept open, silent
    });
    let started = Instant::now();
    let mut received = 0;
    let mut last = started;
    let err = loop {
        match reader.read(&mut [0; 16]).await {
            Ok(0) => panic!("a silent peer is not an end of file"),
            Ok(n) => {
                received += n;
                last = Instant::now();
            }
            Err(err) => break err,
        }
    };
    let _server = sender.await.unwrap();
    assert_eq!(received, 50);
    assert_eq!(last - started, 450 * SECOND);
    assert_eq!(Instant::now() - last, 10 * SECOND);
    assert_eq!(stall_of(&err).progress(), Progress::BytesRead(50));
}

/// The same for writes: a peer that drains the pipe every 9 s keeps a
/// writer with a 10 s idle limit alive.
#[tokio::test(start_paused = true)]
async fn a_write_that_moves_data_resets_the_idle_clock() {
    let (client, mut server) = tokio::io::duplex(8);
    let mut writer = IoWatchdog::new(client, Limits::new().idle(10 * SECOND));
    let drainer = tokio::spawn(async move {
        let mut total = 0;
        for _ in 0..40 {
            time::sleep(9 * SECOND).await;
            total += server.read(&mut [0; 8]).await.unwrap();
        }
        (total, server)
    });
    let started = Instant::now();
    writer.write_all(&[b'z'; 8 * 40]).await.unwrap();
    assert_eq!(Instant::now() - started, 39 * 9 * SECOND);
    let (drained, _server) = drainer.await.unwrap();
    assert_eq!(drained, 8 * 40);
    assert_eq!(writer.bytes_written(), 8 * 40);
}

/// `TimeoutStream`: each direction has its own limit. A write waiting on a
/// peer that does not read is not held to the read limit, and a read waiting
/// on a silent peer is not held to the write limit.
#[tokio::test(start_paused = true)]
async fn each_direction_of_a_stream_is_held_to_its_own_limit() {
    let (client, mut server) = tokio::io::duplex(4);
    let mut stream = IoWatchdog::new(client, Limits::new())
        .read_limits(Limits::new().idle(MINUTE))
        .write_limits(Limits::new().idle(10 * SECOND));

    // Writes fill the pipe; the peer drains it after 30 s: no read is
    // pending, so the 10 s write limit trips and nothing else.
    let started = Instant::now();
    let err = stream.write_all(&[0; 64]).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    assert_eq!(stall_of(&err).progress(), Progress::BytesWritten(4));
    assert_eq!(Instant::now() - started, 10 * SECOND);
    // Both directions are over now.
    let err = stream.read(&mut [0; 4]).await.unwrap_err();
    assert_eq!(stall_of(&err).progress(), Progress::BytesWritten(4));
    assert!(server.write_all(b"late").await.is_err());
}

/// With no limit (tokio-io-timeout's `set_timeout(None)`), a read waits as
/// long as it takes, and then completes.
#[tokio::test(start_paused = true)]
async fn limits_with_nothing_set_never_time_out() {
    let started = Instant::now();
    let mut stream = IoWatchdog::new(
        DelayStream::new(started + Duration::from_secs(10 * 3600)),
        Limits::new(),
    );
    assert_eq!(stream.read(&mut [0]).await.unwrap(), 1);
    assert_eq!(stream.write(&[1, 2]).await.unwrap(), 2);
    assert_eq!(Instant::now() - started, Duration::from_secs(10 * 3600));
    assert!(stream.stalled().is_none());
}

/// tokio-io-timeout's `set_read_timeout_pinned` mid-wait, the hangfree way:
/// the silence measured so far counts against the new limit.
#[tokio::test(start_paused = true)]
async fn a_tighter_write_limit_set_mid_wait_counts_the_wait_so_far() {
    let (client, _server) = tokio::io::duplex(4);
    let mut stream = IoWatchdog::new(client, Limits::new().idle(MINUTE));
    stream.write_all(&[0; 4]).await.unwrap();
    let started = Instant::now();
    {
        let mut write = task::spawn(stream.write(&[1; 4]));
        assert_pending!(write.poll());
        time::advance(20 * SECOND).await;
        assert_pending!(write.poll());
    }
    Pin::new(&mut stream).set_write_limits(Limits::new().idle(30 * SECOND));
    let err = stream.write(&[1; 4]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(Instant::now() - started, 30 * SECOND);
    assert_eq!(stall.waited(), 30 * SECOND);
    assert_eq!(stall.limit(), 30 * SECOND);
}

/// A write limit set while a write is pending on another task is enforced
/// on time, even though the wait had no deadline before.
#[tokio::test(start_paused = true)]
async fn a_write_limit_added_while_a_write_waits_is_enforced_on_time() {
    let (client, _server) = tokio::io::duplex(4);
    let mut stream = IoWatchdog::new(client, Limits::new());
    stream.write_all(&[0; 4]).await.unwrap();
    let started = Instant::now();
    let mut pinned = Box::pin(stream);
    {
        let mut write = task::spawn(pinned.write(&[1; 4]));
        assert_pending!(write.poll());
    }
    time::advance(5 * SECOND).await;
    pinned
        .as_mut()
        .set_write_limits(Limits::new().idle(8 * SECOND));
    let mut write = task::spawn(pinned.write(&[1; 4]));
    assert_pending!(write.poll());
    time::advance(3 * SECOND - MS).await;
    assert_pending!(write.poll());
    time::advance(MS).await;
    assert!(write.is_woken());
    let err = assert_ready!(write.poll()).unwrap_err();
    assert_eq!(stall_of(&err).waited(), 8 * SECOND);
    assert_eq!(Instant::now() - started, 8 * SECOND);
}

/// A read limit removed mid-wait (`set_read_timeout_pinned(None)`) no longer
/// trips; the read completes whenever data comes.
#[tokio::test(start_paused = true)]
async fn a_read_limit_removed_mid_wait_no_longer_trips() {
    let (client, mut server) = tokio::io::duplex(64);
    let mut pinned = Box::pin(IoWatchdog::new(client, Limits::new().idle(10 * SECOND)));
    {
        let mut read = task::spawn(pinned.read_u8());
        assert_pending!(read.poll());
        time::advance(9 * SECOND).await;
        assert_pending!(read.poll());
    }
    pinned.as_mut().set_read_limits(Limits::new());
    let mut read = task::spawn(pinned.read_u8());
    assert_pending!(read.poll());
    time::advance(10 * MINUTE).await;
    assert_pending!(read.poll());
    server.write_all(b"!").await.unwrap();
    assert_eq!(assert_ready!(read.poll()).unwrap(), b'!');
}

/// A writer whose peer stops reading: tokio-io-timeout's write timeout; here
/// the write stall comes `idle` after the pipe filled.
#[tokio::test(start_paused = true)]
async fn a_writer_whose_peer_stops_reading_stalls_after_the_idle_limit() {
    let (client, server) = tokio::io::duplex(1000);
    let mut writer = IoWatchdog::new(client, Limits::new().idle(7 * SECOND));
    let started = Instant::now();
    let err = writer.write_all(&vec![b'w'; 5000]).await.unwrap_err();
    assert_eq!(Instant::now() - started, 7 * SECOND);
    assert_eq!(stall_of(&err).progress(), Progress::BytesWritten(1000));
    assert_eq!(writer.bytes_written(), 1000);
    drop(server);
}

/// A flush that cannot complete (a buffered writer over a peer that does
/// not read) is a write stall, timed like a write.
#[tokio::test(start_paused = true)]
async fn a_flush_that_never_completes_is_a_write_stall() {
    let (client, _server) = tokio::io::duplex(16);
    let mut writer = IoWatchdog::new(
        BufWriter::with_capacity(1024, client),
        Limits::new().idle(4 * SECOND),
    );
    // Fits in the buffer: ready at once.
    writer.write_all(&[b'b'; 100]).await.unwrap();
    assert_eq!(writer.bytes_written(), 100);
    let started = Instant::now();
    let err = writer.flush().await.unwrap_err();
    assert_eq!(Instant::now() - started, 4 * SECOND);
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
}

/// The same for `shutdown`, which flushes first.
#[tokio::test(start_paused = true)]
async fn a_shutdown_that_never_completes_is_a_write_stall() {
    let (client, _server) = tokio::io::duplex(16);
    let mut writer = IoWatchdog::new(
        BufWriter::with_capacity(1024, client),
        Limits::new().idle(4 * SECOND),
    );
    writer.write_all(&[b'b'; 100]).await.unwrap();
    let started = Instant::now();
    let err = writer.shutdown().await.unwrap_err();
    assert_eq!(Instant::now() - started, 4 * SECOND);
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
}

/// A flush and a shutdown that complete at once never trip, and a reader
/// idle meanwhile is not affected by them.
#[tokio::test(start_paused = true)]
async fn flush_and_shutdown_that_complete_do_not_touch_the_read_clock() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut stream = IoWatchdog::new(client, Limits::new().idle(10 * SECOND));
    let mut pinned = Pin::new(&mut stream);
    {
        let mut read = task::spawn(pinned.read_u8());
        assert_pending!(read.poll());
        time::advance(6 * SECOND).await;
        assert_pending!(read.poll());
    }
    pinned.write_all(b"req").await.unwrap();
    pinned.flush().await.unwrap();
    pinned.shutdown().await.unwrap();
    // The read wait goes on from 6 s: 4 s more and it trips.
    let started = Instant::now();
    let err = pinned.read_u8().await.unwrap_err();
    assert_eq!(Instant::now() - started, 4 * SECOND);
    assert_eq!(stall_of(&err).waited(), 10 * SECOND);
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"req");
}

/// A vectored writer that never completes is a write stall; one that does
/// moves every byte and counts it.
#[tokio::test(start_paused = true)]
async fn vectored_writes_are_watched_and_counted() {
    let (client, mut server) = tokio::io::duplex(1024);
    let mut writer = IoWatchdog::new(client, Limits::new().idle(5 * SECOND));
    assert!(writer.is_write_vectored());
    let bufs = [io::IoSlice::new(b"hello "), io::IoSlice::new(b"world")];
    let n = writer.write_vectored(&bufs).await.unwrap();
    assert_eq!(n, 11);
    assert_eq!(writer.bytes_written(), 11);
    let mut got = [0; 11];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello world");

    // Fill the pipe; the next vectored write waits and stalls.
    writer.write_all(&[0; 1024]).await.unwrap();
    let started = Instant::now();
    let err = writer.write_vectored(&bufs).await.unwrap_err();
    assert_eq!(Instant::now() - started, 5 * SECOND);
    assert_eq!(stall_of(&err).progress(), Progress::BytesWritten(1035));
    assert!(!writer.is_write_vectored(), "the writer is gone");
}

/// A vectored write to an inner writer that is not vectored goes through
/// its default (first non-empty buffer), the same as without a watchdog.
#[tokio::test(start_paused = true)]
async fn a_vectored_write_to_a_plain_writer_behaves_as_without_the_watchdog() {
    let mut plain = IoWatchdog::new(DelayStream::new(Instant::now()), Limits::new().idle(SECOND));
    assert!(!plain.is_write_vectored());
    let bufs = [
        io::IoSlice::new(b""),
        io::IoSlice::new(b"abc"),
        io::IoSlice::new(b"de"),
    ];
    assert_eq!(plain.write_vectored(&bufs).await.unwrap(), 3);
    assert_eq!(plain.bytes_written(), 3);
}

// ---------------------------------------------------------------------------
// tokio-io-timeout's TCP test, on real sockets with short real limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_tcp_read_that_goes_quiet_is_detected_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(b"f").await.unwrap();
        // Silent, connection open, until the test is over.
        let _ = done_rx.await;
    });
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let idle = 100 * MS;
    let mut stream = IoWatchdog::new(socket, Limits::new()).read_limits(Limits::new().idle(idle));
    stream.read_exact(&mut [0]).await.unwrap();
    let last = Instant::now();
    let err = stream.read(&mut [0]).await.unwrap_err();
    let detected = last.elapsed();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    assert!(
        detected >= idle && detected < idle + 400 * MS,
        "detected after {detected:?}"
    );
    let _ = done_tx.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_tcp_writer_whose_peer_stops_reading_is_detected_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        // Never reads.
        let _ = done_rx.await;
        drop(socket);
    });
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let idle = 150 * MS;
    let mut stream = IoWatchdog::new(socket, Limits::new()).write_limits(Limits::new().idle(idle));
    let chunk = vec![b'w'; 64 * 1024];
    let mut last = Instant::now();
    let err = loop {
        match stream.write(&chunk).await {
            Ok(n) => {
                assert!(n > 0);
                last = Instant::now();
            }
            Err(err) => break err,
        }
    };
    let detected = last.elapsed();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    assert!(stream.bytes_written() > 0);
    assert!(
        detected >= idle && detected < idle + 500 * MS,
        "detected after {detected:?}"
    );
    let _ = done_tx.send(());
    server.await.unwrap();
}

// ---------------------------------------------------------------------------
// tokio's own io tests, through a watchdog that never trips
// ---------------------------------------------------------------------------

/// Pseudo-random bytes, the same on every run.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn generous() -> Limits {
    Limits::new()
        .idle(MINUTE)
        .first_item(MINUTE)
        .min_rate(1, MINUTE)
        .total(Duration::from_secs(24 * 3600))
}

/// tokio's `test_buffered_reader`, with the watchdog under the `BufReader`.
#[tokio::test(start_paused = true)]
async fn a_buf_reader_over_a_watchdog_reads_as_over_the_bare_reader() {
    let inner: &[u8] = &[5, 6, 7, 0, 1, 2, 3, 4];
    let mut reader = BufReader::with_capacity(2, IoWatchdog::new(inner, generous()));

    let mut buf = [0, 0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 3);
    assert_eq!(buf, [5, 6, 7]);
    assert_eq!(reader.buffer(), []);

    let mut buf = [0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 2);
    assert_eq!(buf, [0, 1]);
    assert_eq!(reader.buffer(), []);

    let mut buf = [0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [2]);
    assert_eq!(reader.buffer(), [3]);

    let mut buf = [0, 0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [3, 0, 0]);
    assert_eq!(reader.buffer(), []);

    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [4, 0, 0]);
    assert_eq!(reader.buffer(), []);

    assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
    assert_eq!(reader.get_ref().bytes_read(), 8);
}

/// The same sequence with the watchdog over the `BufReader`, through
/// `AsyncRead` on the watchdog.
#[tokio::test(start_paused = true)]
async fn a_watchdog_over_a_buf_reader_reads_as_the_buf_reader() {
    let inner: &[u8] = &[5, 6, 7, 0, 1, 2, 3, 4];
    let mut reader = IoWatchdog::new(BufReader::with_capacity(2, inner), generous());
    let mut buf = [0, 0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 3);
    assert_eq!(buf, [5, 6, 7]);
    let mut buf = [0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 2);
    assert_eq!(buf, [0, 1]);
    let mut buf = [0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [2]);
    assert_eq!(reader.get_ref().unwrap().buffer(), [3]);
    let mut buf = [0, 0, 0];
    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [3, 0, 0]);
    assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
    assert_eq!(buf, [4, 0, 0]);
    assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
    assert_eq!(reader.bytes_read(), 8);
}

/// `fill_buf` / `consume` through the watchdog: the buffer is the inner
/// one, and only consumed bytes are counted.
#[tokio::test(start_paused = true)]
async fn fill_buf_and_consume_through_the_watchdog_count_only_consumed_bytes() {
    let inner: &[u8] = b"abcdefgh";
    let mut reader = IoWatchdog::new(BufReader::with_capacity(4, inner), generous());
    assert_eq!(reader.fill_buf().await.unwrap(), b"abcd");
    assert_eq!(reader.bytes_read(), 0);
    // A second fill without consuming returns the same bytes.
    assert_eq!(reader.fill_buf().await.unwrap(), b"abcd");
    Pin::new(&mut reader).consume(3);
    assert_eq!(reader.bytes_read(), 3);
    assert_eq!(reader.fill_buf().await.unwrap(), b"d");
    Pin::new(&mut reader).consume(1);
    assert_eq!(reader.fill_buf().await.unwrap(), b"efgh");
    Pin::new(&mut reader).consume(4);
    assert_eq!(reader.fill_buf().await.unwrap(), b"");
    assert_eq!(reader.bytes_read(), 8);
    Pin::new(&mut reader).consume(0);
    assert_eq!(reader.bytes_read(), 8);
}

/// `read_line`, `read_until` and `lines` over a watchdog over a buffered
/// duplex fed in odd chunks: every byte, in order, and EOF only at the end.
#[tokio::test(start_paused = true)]
async fn lines_through_a_watchdog_arrive_whole_and_in_order() {
    let (client, mut server) = tokio::io::duplex(7);
    let text: String = (0..200)
        .map(|i| format!("line {i} {}\n", "x".repeat(i % 13)))
        .collect();
    let expected = text.clone();
    let feeder = tokio::spawn(async move {
        let bytes = text.as_bytes();
        let mut at = 0;
        let mut step = 1;
        while at < bytes.len() {
            let end = (at + step).min(bytes.len());
            server.write_all(&bytes[at..end]).await.unwrap();
            at = end;
            step = step % 11 + 1;
            if step % 3 == 0 {
                time::sleep(SECOND).await;
            }
        }
    });
    let mut reader = IoWatchdog::new(BufReader::with_capacity(5, client), generous());
    let mut got = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(line.ends_with('\n'), "{line:?}");
        got.push_str(&line);
    }
    feeder.await.unwrap();
    assert_eq!(got, expected);
    assert_eq!(reader.bytes_read(), expected.len() as u64);
    assert!(reader.stalled().is_none());
}

/// tokio's `maybe_pending` readers: a reader that answers `Pending` (and
/// wakes itself) before every read behaves the same through the watchdog.
struct MaybePending<'a> {
    inner: &'a [u8],
    ready: bool,
}

impl AsyncRead for MaybePending<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ready {
            self.ready = false;
            Pin::new(&mut self.inner).poll_read(cx, buf)
        } else {
            self.ready = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl AsyncBufRead for MaybePending<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let me = self.get_mut();
        if me.ready {
            Poll::Ready(Ok(me.inner))
        } else {
            me.ready = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.inner = &self.inner[amt..];
        self.ready = false;
    }
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_pends_before_every_read_reads_the_same_through_the_watchdog() {
    let data = pattern(1000);
    let mut reader = BufReader::with_capacity(
        7,
        IoWatchdog::new(
            MaybePending {
                inner: &data,
                ready: false,
            },
            Limits::new().idle(SECOND),
        ),
    );
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);

    // And through the watchdog's own `AsyncBufRead`.
    let mut reader = IoWatchdog::new(
        MaybePending {
            inner: &data,
            ready: false,
        },
        Limits::new().idle(SECOND),
    );
    let mut got = Vec::new();
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let n = reader.read_until(data[500], &mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, data);
    assert_eq!(reader.bytes_read(), 1000);
}

/// tokio's `copy`: every byte from a watched reader to a watched writer,
/// and the count returned is the count moved.
#[tokio::test(start_paused = true)]
async fn copy_between_watchdogs_moves_every_byte_unchanged() {
    let data = pattern(1 << 20);
    let mut reader = IoWatchdog::new(&data[..], generous());
    let mut writer = IoWatchdog::new(Vec::new(), generous());
    let n = tokio::io::copy(&mut reader, &mut writer).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(reader.bytes_read(), n);
    assert_eq!(writer.bytes_written(), n);
    assert_eq!(writer.into_inner().unwrap(), data);
}

/// `copy` through duplex pipes with peers on other tasks, small buffers and
/// a slow consumer: nothing lost, nothing trips.
#[tokio::test(start_paused = true)]
async fn copy_through_watched_pipes_with_a_slow_consumer_never_trips() {
    let data = pattern(64 * 1024);
    let (source_peer, source) = tokio::io::duplex(100);
    let (sink, sink_peer) = tokio::io::duplex(50);
    let limits = Limits::new().idle(10 * SECOND);
    let feed = data.clone();
    let feeder = tokio::spawn(async move {
        let mut source_peer = source_peer;
        for chunk in feed.chunks(333) {
            source_peer.write_all(chunk).await.unwrap();
        }
    });
    let drainer = tokio::spawn(async move {
        let mut sink_peer = sink_peer;
        let mut got = Vec::new();
        let mut buf = [0; 97];
        loop {
            // A consumer far slower than the watchdog's limit would allow
            // if its time counted.
            time::sleep(SECOND).await;
            let n = sink_peer.read(&mut buf).await.unwrap();
            if n == 0 {
                break got;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() == 64 * 1024 {
                break got;
            }
        }
    });
    let mut reader = IoWatchdog::new(source, limits);
    let mut writer = IoWatchdog::new(sink, Limits::new().idle(MINUTE));
    let n = tokio::io::copy(&mut reader, &mut writer).await.unwrap();
    writer.shutdown().await.unwrap();
    feeder.await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(drainer.await.unwrap(), data);
    assert!(reader.stalled().is_none());
}

/// tokio's `test_basic_transfer` and `test_transfer_after_close` for
/// `copy_bidirectional` between two watched sockets.
#[tokio::test(start_paused = true)]
async fn copy_bidirectional_between_watchdogs_transfers_both_ways_and_after_a_close() {
    let (mut a, a1) = tokio::io::duplex(1024);
    let (b1, mut b) = tokio::io::duplex(1024);
    let mut a1 = IoWatchdog::new(a1, generous());
    let mut b1 = IoWatchdog::new(b1, generous());
    let proxy = tokio::spawn(async move {
        let counts = tokio::io::copy_bidirectional(&mut a1, &mut b1).await;
        (counts, a1.stalled().is_some(), b1.stalled().is_some())
    });

    a.write_all(b"test").await.unwrap();
    let mut buf = [0; 4];
    b.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"test");

    // Close a's write side; b→a still flows.
    a.shutdown().await.unwrap();
    assert_eq!(b.read(&mut buf).await.unwrap(), 0, "b sees a's EOF");
    b.write_all(b"after").await.unwrap();
    let mut back = [0; 5];
    a.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"after");
    b.shutdown().await.unwrap();

    let (counts, a_stalled, b_stalled) = proxy.await.unwrap();
    assert_eq!(counts.unwrap(), (4, 5));
    assert!(!a_stalled && !b_stalled);
    assert_eq!(a.read(&mut buf).await.unwrap(), 0);
}

/// tokio's `blocking_one_side_does_not_block_other`: a full direction does
/// not hold up the other, through watchdogs.
#[tokio::test(start_paused = true)]
async fn a_blocked_direction_of_copy_bidirectional_does_not_block_the_other() {
    let (a, a1) = tokio::io::duplex(1024);
    let (b1, mut b) = tokio::io::duplex(1024);
    let mut a1 = IoWatchdog::new(a1, Limits::new().idle(MINUTE));
    let mut b1 = IoWatchdog::new(b1, Limits::new().idle(MINUTE));
    let proxy = tokio::spawn(async move { tokio::io::copy_bidirectional(&mut a1, &mut b1).await });
    let (mut a_read, mut a_write) = tokio::io::split(a);
    // a→b fills up: b never reads.
    let filler = tokio::spawn(async move {
        let big = vec![0u8; 1 << 16];
        let _ = a_write.write_all(&big).await;
        a_write
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!filler.is_finished(), "a→b is blocked");
    b.write_all(b"hello").await.unwrap();
    let mut buf = [0; 5];
    a_read.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    // The blocked direction stalls at its own limit, not before.
    let started = Instant::now();
    let err = proxy.await.unwrap().unwrap_err();
    assert!(Instant::now() - started <= MINUTE);
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    let _a_write = filler.await.unwrap();
    drop(b);
}

/// tokio's `immediate_exit_on_read_error`, with a stall as the read error:
/// `copy_bidirectional` ends at the stall with the `TimedOut` error, and the
/// other peer sees the connection closed.
#[tokio::test(start_paused = true)]
async fn copy_bidirectional_ends_at_a_stall_with_the_stall() {
    let (_a, a1) = tokio::io::duplex(1024);
    let (b1, mut b) = tokio::io::duplex(1024);
    let mut a1 = IoWatchdog::new(a1, Limits::new().idle(3 * SECOND));
    let mut b1 = IoWatchdog::new(b1, Limits::new());
    let started = Instant::now();
    let err = tokio::io::copy_bidirectional(&mut a1, &mut b1)
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - started, 3 * SECOND);
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
    drop(b1);
    assert_eq!(b.read(&mut [0; 4]).await.unwrap(), 0);
}

/// tokio's split tests: halves move data both ways, `unsplit` gives the
/// watchdog back, and `is_write_vectored` is the inner writer's.
#[tokio::test(start_paused = true)]
async fn split_halves_of_a_watchdog_move_data_both_ways_and_unsplit() {
    let (client, mut server) = tokio::io::duplex(64);
    let watched = IoWatchdog::new(client, generous());
    let (mut r, mut w) = tokio::io::split(watched);
    assert!(w.is_write_vectored());
    let data = pattern(10_000);
    let echo = tokio::spawn(async move {
        let mut buf = [0; 13];
        loop {
            let n = server.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            server.write_all(&buf[..n]).await.unwrap();
        }
    });
    let send = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in send.chunks(101) {
            w.write_all(chunk).await.unwrap();
        }
        w
    });
    let mut got = vec![0; data.len()];
    r.read_exact(&mut got).await.unwrap();
    assert_eq!(got, data);
    let w = writer.await.unwrap();
    let mut watched = r.unsplit(w);
    assert_eq!(watched.bytes_read(), 10_000);
    assert_eq!(watched.bytes_written(), 10_000);
    watched.shutdown().await.unwrap();
    echo.await.unwrap();
    assert_eq!(watched.read(&mut [0; 4]).await.unwrap(), 0);
}

/// EOF is `Ok(0)` at a real end, every time it is asked, however long after:
/// a closed peer never becomes a stall.
#[tokio::test(start_paused = true)]
async fn end_of_file_is_ok_zero_at_a_real_end_and_stays_so() {
    let (client, mut server) = tokio::io::duplex(64);
    server.write_all(b"tail").await.unwrap();
    drop(server);
    let mut reader = IoWatchdog::new(
        client,
        Limits::new()
            .idle(SECOND)
            .first_item(SECOND)
            .min_rate(100, SECOND),
    );
    let mut got = Vec::new();
    assert_eq!(reader.read_to_end(&mut got).await.unwrap(), 4);
    for _ in 0..5 {
        time::sleep(10 * SECOND).await;
        assert_eq!(reader.read(&mut [0; 8]).await.unwrap(), 0);
    }
    assert!(reader.stalled().is_none());
}

/// A writer that answers `Ok(0)`: the watchdog hands it on (so `write_all`
/// fails with `WriteZero`, as without it), and it is not a stall.
struct ZeroWriter;

impl AsyncWrite for ZeroWriter {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(0))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_of_ok_zero_is_handed_on_as_it_is() {
    let mut writer = IoWatchdog::new(ZeroWriter, Limits::new().idle(SECOND));
    assert_eq!(writer.write(b"abc").await.unwrap(), 0);
    let err = writer.write_all(b"abc").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    assert_eq!(writer.bytes_written(), 0);
    assert!(writer.stalled().is_none());
}

/// Zero-length reads and writes are answered as the inner object answers.
#[tokio::test(start_paused = true)]
async fn zero_length_reads_and_writes_are_answered_as_without_the_watchdog() {
    let (client, mut server) = tokio::io::duplex(64);
    server.write_all(b"abc").await.unwrap();
    let mut stream = IoWatchdog::new(client, Limits::new().idle(SECOND));
    assert_eq!(stream.read(&mut []).await.unwrap(), 0);
    assert_eq!(stream.write(&[]).await.unwrap(), 0);
    let mut buf = [0; 3];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"abc");
    assert_eq!(stream.bytes_read(), 3);
    assert_eq!(stream.bytes_written(), 0);

    // `read_buf` into a full buffer returns 0 without a poll.
    let mut full: &mut [u8] = &mut [];
    assert_eq!(stream.read_buf(&mut full).await.unwrap(), 0);
    // And the watch is unaffected: a real silence still trips.
    let started = Instant::now();
    let err = stream.read(&mut [0; 4]).await.unwrap_err();
    assert_eq!(Instant::now() - started, SECOND);
    assert_eq!(stall_of(&err).progress(), Progress::BytesRead(3));
}

/// `total` ends an always-ready reader whose consumer is slow, once the
/// budget is spent, and the data read before is intact.
#[tokio::test(start_paused = true)]
async fn total_ends_an_always_ready_reader_once_spent_by_a_slow_consumer() {
    let data = pattern(1000);
    let mut reader = IoWatchdog::new(&data[..], Limits::new().total(10 * SECOND));
    let mut got = Vec::new();
    let started = Instant::now();
    let err = loop {
        let mut buf = [0; 10];
        match reader.read(&mut buf).await {
            Ok(0) => panic!("the budget ends the read before the data does"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => break err,
        }
        time::sleep(SECOND).await;
    };
    assert_eq!(stall_of(&err).kind(), StallKind::Total);
    assert_eq!(Instant::now() - started, 10 * SECOND);
    assert_eq!(got, data[..100]);
}

/// A `total` on writes to an always-ready writer, the same.
#[tokio::test(start_paused = true)]
async fn total_ends_an_always_ready_writer_once_spent() {
    let mut writer = IoWatchdog::new(Vec::new(), Limits::new().total(5 * SECOND));
    let started = Instant::now();
    let err = loop {
        if let Err(err) = writer.write_all(b"0123456789").await {
            break err;
        }
        time::sleep(SECOND).await;
    };
    assert_eq!(stall_of(&err).kind(), StallKind::Total);
    assert_eq!(Instant::now() - started, 5 * SECOND);
    assert_eq!(writer.bytes_written(), 50);
}

// ---------------------------------------------------------------------------
// Races across the workers of a multi-thread runtime (real clock, short limits)
// ---------------------------------------------------------------------------

const ROUNDS: usize = 300;
const HANG: Duration = Duration::from_secs(5);

/// Both halves of a split watchdog on different tasks of a two-worker
/// runtime: the read side stalls, and the writer, blocked on a peer that does
/// not read and held to a limit of an hour, must be woken and fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stall_wakes_and_fails_the_writer_on_another_worker() {
    let idle = 3 * MS;
    for round in 0..ROUNDS {
        let (client, server) = tokio::io::duplex(16);
        let watched = IoWatchdog::new(client, Limits::new())
            .read_limits(Limits::new().idle(idle))
            .write_limits(Limits::new().idle(Duration::from_secs(3600)));
        let (mut r, mut w) = tokio::io::split(watched);
        let writer = tokio::spawn(async move { w.write_all(&[0; 64]).await });
        let reader = tokio::spawn(async move {
            let started = Instant::now();
            (r.read(&mut [0; 8]).await, started.elapsed())
        });
        let (read, waited) = time::timeout(HANG, reader)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the reader hung"))
            .unwrap();
        let err = read.unwrap_err();
        assert_eq!(stall_of(&err).kind(), StallKind::Idle);
        assert!(waited >= idle, "round {round}: stalled after {waited:?}");
        let write = time::timeout(HANG, writer)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the writer of the other half hung"))
            .unwrap();
        let err = write.unwrap_err();
        assert_eq!(stall_of(&err).kind(), StallKind::Idle, "round {round}");
        drop(server);
    }
}

/// The mirror: the write side stalls, the reader on the other worker (held
/// to an hour) is woken and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stall_wakes_and_fails_the_reader_on_another_worker() {
    let idle = 3 * MS;
    for round in 0..ROUNDS {
        let (client, server) = tokio::io::duplex(16);
        let watched = IoWatchdog::new(client, Limits::new())
            .read_limits(Limits::new().idle(Duration::from_secs(3600)))
            .write_limits(Limits::new().idle(idle));
        let (mut r, mut w) = tokio::io::split(watched);
        let reader = tokio::spawn(async move { r.read(&mut [0; 8]).await });
        let writer = tokio::spawn(async move { w.write_all(&[0; 64]).await });
        let err = time::timeout(HANG, writer)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the writer hung"))
            .unwrap()
            .unwrap_err();
        assert_eq!(stall_of(&err).kind(), StallKind::Idle);
        let err = time::timeout(HANG, reader)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the reader of the other half hung"))
            .unwrap()
            .unwrap_err();
        assert_eq!(stall_of(&err).kind(), StallKind::Idle, "round {round}");
        drop(server);
    }
}

/// Data flowing both ways through the halves on two workers (an echo peer
/// on the runtime too), then the peer goes quiet: every byte arrives, and
/// both halves then fail with the same stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_on_two_workers_move_every_byte_then_fail_together_at_a_stall() {
    // Real time: an idle limit well above what a loaded machine may hold a task back
    // for while the data flows, so that only the peer's silence trips it.
    for round in 0..30 {
        let (client, mut server) = tokio::io::duplex(32);
        let watched = IoWatchdog::new(client, Limits::new().idle(100 * MS));
        let (mut r, mut w) = tokio::io::split(watched);
        let data = pattern(4096 + round);
        let (quiet_tx, quiet_rx) = tokio::sync::oneshot::channel::<()>();
        let expected = data.len();
        let echo = tokio::spawn(async move {
            let mut buf = [0; 29];
            let mut echoed = 0;
            while echoed < expected {
                let want = buf.len().min(expected - echoed);
                let n = server.read(&mut buf[..want]).await.unwrap();
                server.write_all(&buf[..n]).await.unwrap();
                echoed += n;
            }
            // Quiet from now on, connection open.
            let _ = quiet_rx.await;
        });
        let send = data.clone();
        let (echoed_tx, echoed_rx) = tokio::sync::oneshot::channel::<()>();
        let writer = tokio::spawn(async move {
            for chunk in send.chunks(37) {
                w.write_all(chunk).await.unwrap();
            }
            echoed_rx.await.unwrap();
            // Then more, which the quiet peer never reads: the writer waits
            // until the read side's stall ends it.
            let err = w.write_all(&[1; 4096]).await.unwrap_err();
            stall_of(&err).clone()
        });
        let mut got = vec![0; data.len()];
        time::timeout(HANG, r.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("round {round}: read hung"))
            .unwrap();
        assert_eq!(got, data, "round {round}");
        echoed_tx.send(()).unwrap();
        let err = time::timeout(HANG, r.read(&mut [0; 8]))
            .await
            .unwrap_or_else(|_| panic!("round {round}: read after the data hung"))
            .unwrap_err();
        let read_stall = stall_of(&err).clone();
        let write_stall = time::timeout(HANG, writer)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the writer hung"))
            .unwrap();
        assert_eq!(
            read_stall, write_stall,
            "round {round}: one stall ends both"
        );
        let _ = quiet_tx.send(());
        echo.await.unwrap();
    }
}

/// Beats from a plain thread (no runtime context) on a real clock, paced by a
/// task at a tenth of the limit: the work is never declared stalled while they
/// come, and is within a bound once they stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_from_a_plain_thread_keep_a_deadman_alive_on_the_real_clock() {
    // Beats ten times as often as the limit: a loaded machine that holds the pacer back
    // for a while must not pass for silence.
    let idle = 200 * MS;
    let (pulse, deadman) = deadman(idle);
    let (tick_tx, tick_rx) = std::sync::mpsc::channel::<()>();
    let (beat_tx, beat_rx) = std::sync::mpsc::channel::<Instant>();
    let beater = std::thread::spawn(move || {
        for () in tick_rx {
            pulse.beat();
            let _ = beat_tx.send(Instant::now());
        }
    });
    let pacer = tokio::spawn(async move {
        for _ in 0..25 {
            time::sleep(idle / 10).await;
            tick_tx.send(()).unwrap();
        }
    });
    let stall = time::timeout(HANG, deadman.watch(std::future::pending::<()>()))
        .await
        .expect("the deadman never fired")
        .unwrap_err();
    let stalled_at = Instant::now();
    pacer.await.unwrap();
    beater.join().unwrap();
    let beats: Vec<Instant> = beat_rx.try_iter().collect();
    assert_eq!(
        stall.progress(),
        Progress::Beats(25),
        "stalled while beats came"
    );
    let last = *beats.last().unwrap();
    let after = stalled_at - last;
    assert!(
        after >= idle && after < idle + 500 * MS,
        "stalled {after:?} after the last beat"
    );
}

/// Beats from another thread (which entered the runtime, so it reads the
/// paused clock) at 1 ms before the deadline, a hundred times over: never a
/// stall; then silence trips exactly `idle` after the last.
#[tokio::test(start_paused = true)]
async fn beats_from_another_thread_one_ms_before_the_limit_keep_the_work_alive() {
    let idle = 10 * SECOND;
    let (pulse, deadman) = deadman(idle);
    let handle = tokio::runtime::Handle::current();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
    let beater = std::thread::spawn(move || {
        let _entered = handle.enter();
        for () in go_rx {
            pulse.beat();
            ack_tx.send(()).unwrap();
        }
    });
    let started = Instant::now();
    let mut watched = task::spawn(deadman.watch(std::future::pending::<()>()));
    assert_pending!(watched.poll());
    for round in 0..100 {
        time::advance(idle - MS).await;
        if watched.is_woken() {
            assert_pending!(watched.poll(), "round {round}");
        }
        go_tx.send(()).unwrap();
        ack_rx.recv().unwrap();
        assert_pending!(watched.poll(), "round {round}");
    }
    drop(go_tx);
    beater.join().unwrap();
    let last = Instant::now();
    time::advance(idle - MS).await;
    if watched.is_woken() {
        assert_pending!(watched.poll());
    }
    time::advance(MS).await;
    assert!(watched.is_woken());
    let stall = assert_ready!(watched.poll()).unwrap_err();
    assert_eq!(stall.progress(), Progress::Beats(100));
    assert_eq!(stall.waited(), idle);
    assert_eq!(Instant::now() - last, idle);
    assert_eq!(Instant::now() - started, 100 * (idle - MS) + idle);
}

/// A beat at the very instant the deadline falls, from another thread, while
/// the watcher's timer is due: either outcome is allowed by the docs, but a
/// stall must report the beats as they were, and a survival must move the
/// deadline a full `idle` on.
#[tokio::test(start_paused = true)]
async fn a_beat_at_the_deadline_instant_either_saves_the_work_or_is_counted() {
    let idle = 10 * SECOND;
    let (pulse, deadman) = deadman(idle);
    let mut watched = task::spawn(deadman.watch(std::future::pending::<()>()));
    assert_pending!(watched.poll());
    time::advance(idle).await;
    // The timer fired; the beat lands before the watcher's poll.
    pulse.beat();
    match watched.poll() {
        Poll::Pending => {
            time::advance(idle - MS).await;
            if watched.is_woken() {
                assert_pending!(watched.poll());
            }
            time::advance(MS).await;
            let stall = assert_ready!(watched.poll()).unwrap_err();
            assert_eq!(stall.progress(), Progress::Beats(1));
            assert_eq!(stall.waited(), idle);
        }
        Poll::Ready(result) => {
            panic!("a beat before the poll that judges keeps the work alive: {result:?}")
        }
    }
}

/// A renewal answered at the very instant the lease expires wins (its answer
/// is polled before the expiry); one answered a millisecond later loses the
/// lock at the expiry, the work dropped and the lease unchanged.
#[tokio::test(start_paused = true)]
async fn a_renewal_answered_at_the_expiry_instant_keeps_the_lock() {
    let lock = 30 * SECOND;
    let start = Instant::now();
    let lease = Lease::new(start + lock, lock);
    let (pulse, deadman) = deadman(MINUTE);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // The first renewal starts at 10 s and answers at 30 s, the expiry.
    let renew = move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                time::sleep_until(start + lock).await;
            }
            Ok::<(), String>(())
        }
    };
    let out = lease
        .keep_alive(deadman, renew, async move {
            time::sleep(35 * SECOND).await;
            pulse.beat();
            "done"
        })
        .await;
    assert_eq!(out.unwrap(), "done");
    assert!(lease.renewals() >= 1);
    assert!(lease.expires_at() >= start + 10 * SECOND + lock);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_answered_just_after_the_expiry_loses_the_lock_at_the_expiry() {
    let lock = 30 * SECOND;
    let start = Instant::now();
    let lease = Lease::new(start + lock, lock);
    let (pulse, deadman) = deadman(MINUTE);
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Flag(dropped.clone());
    let renew = move || async move {
        time::sleep_until(start + lock + MS).await;
        Ok::<(), String>(())
    };
    let out = lease
        .keep_alive(deadman, renew, async move {
            let _flag = flag;
            time::sleep(35 * SECOND).await;
            pulse.beat();
            "done"
        })
        .await;
    match out {
        Err(Lost::Expired { expired_at }) => assert_eq!(expired_at, start + lock),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(Instant::now() - start, lock);
    assert_eq!(lease.renewals(), 0);
    assert_eq!(lease.expires_at(), start + lock);
    assert!(dropped.load(Ordering::SeqCst), "the work was dropped");
}

/// A renewal answered from another worker right around the expiry, a hundred
/// times: whichever wins, the outcome is consistent (a confirmed renewal
/// moved the expiry and the work finished; an expiry reports the lease's
/// expiry as it stood), and nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_its_expiry_across_workers_has_a_consistent_outcome() {
    let lock = 15 * MS;
    let mut kept = 0;
    let mut expired = 0;
    for round in 0..100 {
        let start = Instant::now();
        let lease = Lease::new(start + lock, lock).renew_every(5 * MS);
        let (pulse, deadman) = deadman(Duration::from_secs(1));
        let answers_at = start + lock;
        let renew = move || {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                time::sleep_until(answers_at).await;
                let _ = tx.send(());
            });
            async move {
                rx.await.map_err(|_| "gone".to_string())?;
                Ok::<(), String>(())
            }
        };
        let out = time::timeout(
            HANG,
            lease.keep_alive(deadman, renew, async move {
                time::sleep(lock + 10 * MS).await;
                pulse.beat();
                "done"
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the keep-alive hung"));
        match out {
            Ok("done") => {
                kept += 1;
                if lease.renewals() == 0 {
                    // A runtime held back past the work's end (a loaded machine) polls
                    // the finished work first, and a ready output wins over an expiry
                    // found in the same poll: the lease is then as it started.
                    assert_eq!(lease.expires_at(), start + lock, "round {round}");
                } else {
                    assert!(lease.expires_at() > start + lock, "round {round}");
                }
            }
            Err(Lost::Expired { expired_at }) => {
                expired += 1;
                // The lease as it was when it ran out: the first expiry if no renewal was
                // confirmed, or the one the last confirmed renewal set (a loaded machine
                // may start the next renewal after that one has passed).
                assert_eq!(expired_at, lease.expires_at(), "round {round}");
                if lease.renewals() == 0 {
                    assert_eq!(expired_at, start + lock, "round {round}");
                } else {
                    assert!(expired_at > start + lock, "round {round}");
                }
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert_eq!(kept + expired, 100);
}

/// A drip-feeding writer's peer (drains 10 bytes a second) is too slow for
/// a `min_rate` of 200 bytes per 10 s of waiting, which `idle` alone would
/// never catch.
#[tokio::test(start_paused = true)]
async fn a_peer_that_drains_slowly_trips_min_rate_on_writes() {
    let (client, mut server) = tokio::io::duplex(10);
    let mut writer = IoWatchdog::new(
        client,
        Limits::new().idle(5 * SECOND).min_rate(200, 10 * SECOND),
    );
    let drainer = tokio::spawn(async move {
        loop {
            time::sleep(SECOND).await;
            if server.read(&mut [0; 10]).await.unwrap_or(0) == 0 {
                break;
            }
        }
    });
    let started = Instant::now();
    let err = writer.write_all(&[0; 10_000]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(Instant::now() - started, 10 * SECOND);
    // 10 bytes at once, 10 per drain: 100 or 110 depending on whether the
    // drain at 10 s or the window's end is seen first, both under 200.
    assert!(matches!(
        stall.progress(),
        Progress::BytesWritten(100 | 110)
    ));
    drainer.await.unwrap();
}

/// `min_rate` through the watchdog's `fill_buf`/`consume`: bytes consumed
/// count, the rate is met, nothing trips however long the transfer.
#[tokio::test(start_paused = true)]
async fn a_peer_meeting_min_rate_through_fill_buf_never_trips() {
    let (client, mut server) = tokio::io::duplex(64);
    let feeder = tokio::spawn(async move {
        for _ in 0..100 {
            time::sleep(SECOND).await;
            server.write_all(&[b'a'; 30]).await.unwrap();
        }
    });
    let mut reader = IoWatchdog::new(
        BufReader::with_capacity(16, client),
        Limits::new().idle(5 * SECOND).min_rate(200, 10 * SECOND),
    );
    let mut got = Vec::new();
    reader.read_until(b'\n', &mut got).await.unwrap();
    feeder.await.unwrap();
    assert_eq!(got.len(), 3000);
    assert_eq!(reader.bytes_read(), 3000);
}
