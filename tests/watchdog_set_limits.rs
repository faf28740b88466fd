//! New limits on a live watchdog (`Watchdog::set_limits`,
//! `IoWatchdog::set_read_limits` / `set_write_limits`): they apply from the
//! next poll; the idle clock and `total` keep running, a changed `min_rate`
//! starts a new window. Under tokio's paused clock, with every order of the
//! set against the timer firing and the source waking; one test runs on a
//! multi-thread runtime against a source woken from another thread.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits, Progress, StallKind, Watchdog};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{self, Instant};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_test::{assert_pending, assert_ready, task};

#[path = "watchdog/common.rs"]
mod common;
use common::{MINUTE, MS, SECOND, stall_of, stalled};

type Rows = Watchdog<UnboundedReceiverStream<u32>>;

/// A watched channel that has delivered one row and is now waiting.
fn waiting_after_one_row(limits: Limits) -> (mpsc::UnboundedSender<u32>, task::Spawn<Rows>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).watchdog(limits));
    tx.send(0).unwrap();
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    assert_pending!(rows.poll_next());
    (tx, rows)
}

fn set(rows: &mut task::Spawn<Rows>, limits: Limits) {
    Pin::new(&mut **rows).set_limits(limits);
}

/// A tighter `idle` set during a wait that has already outlasted it: the
/// waiting task is woken, and its next poll declares the stall, with the
/// wait measured so far and the new limit.
#[tokio::test(start_paused = true)]
async fn a_tighter_idle_already_exceeded_trips_at_the_next_poll_with_the_wait_so_far() {
    let (tx, mut rows) = waiting_after_one_row(Limits::new().idle(10 * SECOND));
    time::advance(6 * SECOND).await;
    assert!(!rows.is_woken());

    set(&mut rows, Limits::new().idle(5 * SECOND));
    assert!(
        rows.is_woken(),
        "the waiting task is told the limits changed"
    );
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.waited(), 6 * SECOND);
    assert_eq!(stall.limit(), 5 * SECOND);
    assert_eq!(
        stall.to_string(),
        "stalled: no data for 6s (limit 5s) after 1 item (6s into the stream)"
    );
    assert!(tx.is_closed(), "the source was dropped at the stall");
    assert_eq!(assert_ready!(rows.poll_next()), None);
}

/// A tighter `idle` not yet reached fires at its own deadline, counted from
/// the start of the wait, not at the old one.
#[tokio::test(start_paused = true)]
async fn a_tighter_idle_not_yet_reached_fires_at_its_own_deadline() {
    let (_tx, mut rows) = waiting_after_one_row(Limits::new().idle(MINUTE));
    let waiting_since = Instant::now();
    time::advance(10 * SECOND).await;

    set(&mut rows, Limits::new().idle(20 * SECOND));
    assert!(rows.is_woken());
    assert_pending!(rows.poll_next());
    time::advance(10 * SECOND - MS).await;
    assert!(!rows.is_woken());
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    assert!(rows.is_woken());
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.waited(), 20 * SECOND);
    assert_eq!(stall.limit(), 20 * SECOND);
    assert_eq!(Instant::now() - waiting_since, 20 * SECOND);
}

/// The race: the old limit's timer has fired and woken the task, and the
/// limit is loosened before the task polls. The poll goes by the new limit:
/// no stall until the wait reaches it.
#[tokio::test(start_paused = true)]
async fn a_looser_idle_set_after_the_timer_fired_but_before_the_poll_holds() {
    let (_tx, mut rows) = waiting_after_one_row(Limits::new().idle(10 * SECOND));
    time::advance(10 * SECOND).await;
    assert!(rows.is_woken(), "the old limit's timer fired");

    set(&mut rows, Limits::new().idle(30 * SECOND));
    assert_pending!(rows.poll_next());
    time::advance(20 * SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    assert!(rows.is_woken());
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.waited(), 30 * SECOND);
    assert_eq!(stall.limit(), 30 * SECOND);
}

/// A looser `idle` set before the old deadline: nobody is woken by the set,
/// the old timer wakes the task once, early, and the stall comes at the new
/// deadline.
#[tokio::test(start_paused = true)]
async fn a_looser_idle_set_before_the_old_deadline_moves_the_stall_later() {
    let (_tx, mut rows) = waiting_after_one_row(Limits::new().idle(10 * SECOND));
    time::advance(5 * SECOND).await;

    set(&mut rows, Limits::new().idle(30 * SECOND));
    assert!(!rows.is_woken(), "a later deadline needs no wake");
    time::advance(5 * SECOND).await;
    assert!(rows.is_woken(), "the old timer fires once, early");
    assert_pending!(rows.poll_next());
    time::advance(20 * SECOND - MS).await;
    assert!(!rows.is_woken(), "and is moved to the new deadline");
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.waited(), 30 * SECOND);
}

/// An item that is ready wins over a limit the wait has already exceeded;
/// the idle clock then starts again from that item.
#[tokio::test(start_paused = true)]
async fn an_item_ready_when_a_tighter_limit_is_set_still_wins() {
    let (tx, mut rows) = waiting_after_one_row(Limits::new().idle(10 * SECOND));
    time::advance(8 * SECOND).await;
    tx.send(1).unwrap();
    assert!(rows.is_woken());

    set(&mut rows, Limits::new().idle(5 * SECOND));
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));
    assert_pending!(rows.poll_next());
    time::advance(5 * SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.waited(), 5 * SECOND);
    assert_eq!(stall.progress(), Progress::Items(2));
}

/// A limit removed during a wait no longer trips: the old timer wakes the
/// task once, and nothing after that.
#[tokio::test(start_paused = true)]
async fn an_idle_removed_during_a_wait_no_longer_trips() {
    let (tx, mut rows) = waiting_after_one_row(Limits::new().idle(10 * SECOND));
    time::advance(5 * SECOND).await;

    set(&mut rows, Limits::new());
    time::advance(5 * SECOND).await;
    assert!(rows.is_woken(), "the old timer fires once");
    assert_pending!(rows.poll_next());
    time::advance(60 * MINUTE).await;
    assert!(!rows.is_woken());
    assert_pending!(rows.poll_next());
    tx.send(1).unwrap();
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));
}

/// `first_item`, set while waiting for the first item, holds the wait so far
/// to it: the source may have been silent since the first poll.
#[tokio::test(start_paused = true)]
async fn first_item_set_while_waiting_for_the_first_item_counts_the_wait_so_far() {
    let (_tx, rx) = mpsc::unbounded_channel::<u32>();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).watchdog(Limits::new()));
    assert_pending!(rows.poll_next());
    time::advance(2 * MINUTE).await;

    set(&mut rows, Limits::new().first_item(MINUTE).idle(SECOND));
    assert!(rows.is_woken());
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::FirstItem);
    assert_eq!(stall.limit(), MINUTE);
    assert_eq!(stall.waited(), 2 * MINUTE);
}

/// Counts the polls of an always-ready source.
struct Counting {
    polls: Arc<AtomicU64>,
}

impl Stream for Counting {
    type Item = u64;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u64>> {
        // SeqCst: a test counter, read by the test after the polls.
        Poll::Ready(Some(self.polls.fetch_add(1, Ordering::SeqCst)))
    }
}

/// `total` keeps counting from the first poll: a budget set later that is
/// already spent ends the stream at the next poll, without polling the
/// source, though its items are always ready.
#[tokio::test(start_paused = true)]
async fn a_total_set_later_counts_from_the_first_poll() {
    let polls = Arc::new(AtomicU64::new(0));
    let mut rows = task::spawn(
        Counting {
            polls: polls.clone(),
        }
        .watchdog(Limits::new()),
    );
    for expected in 0..3 {
        assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(expected)));
    }
    time::advance(10 * SECOND).await;

    Pin::new(&mut *rows).set_limits(Limits::new().total(5 * SECOND));
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 10 * SECOND);
    assert_eq!(stall.limit(), 5 * SECOND);
    assert_eq!(
        stall.to_string(),
        "stalled: the whole budget of 5s was spent after 3 items (10s into the stream)"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 3, "the source was not polled");
}

/// A `total` added to an always-ready stream is enforced as one set at the
/// start is: by its timer, on the first poll after it fires, not only by
/// the clock read about once a millisecond.
#[tokio::test(start_paused = true)]
async fn a_total_added_to_an_always_ready_stream_is_enforced_by_its_timer() {
    let polls = Arc::new(AtomicU64::new(0));
    let mut rows = task::spawn(
        Counting {
            polls: polls.clone(),
        }
        .watchdog(Limits::new()),
    );
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    Pin::new(&mut *rows).set_limits(Limits::new().total(5 * SECOND));
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));

    time::advance(5 * SECOND).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 5 * SECOND);
    assert_eq!(stall.progress(), Progress::Items(2));
}

/// A shorter `total` set during a wait wakes the task and ends the stream
/// at the first poll plus the new budget; a longer one moves the end later.
#[tokio::test(start_paused = true)]
async fn a_changed_total_moves_the_end_of_the_stream_from_the_first_poll() {
    let (_tx, mut rows) = waiting_after_one_row(Limits::new().total(MINUTE));
    time::advance(40 * SECOND).await;
    set(&mut rows, Limits::new().total(50 * SECOND));
    assert!(rows.is_woken());
    assert_pending!(rows.poll_next());
    time::advance(10 * SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 50 * SECOND);

    let (_tx, mut rows) = waiting_after_one_row(Limits::new().total(MINUTE));
    time::advance(40 * SECOND).await;
    set(&mut rows, Limits::new().total(90 * SECOND));
    assert!(!rows.is_woken());
    time::advance(20 * SECOND).await;
    assert_pending!(rows.poll_next());
    time::advance(30 * SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), 90 * SECOND);
}

/// New limits that keep `min_rate` keep its window: the waiting before the
/// set counts.
#[tokio::test(start_paused = true)]
async fn an_unchanged_min_rate_keeps_its_window() {
    let rate = Limits::new().min_rate(5, 10 * SECOND);
    let (_tx, mut rows) = waiting_after_one_row(rate);
    time::advance(6 * SECOND).await;

    set(&mut rows, rate.idle(60 * MINUTE));
    time::advance(4 * SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(stall.elapsed(), 10 * SECOND);
}

/// A changed `min_rate` starts a new window at the set, counting progress
/// from there: the waiting before it is not judged by the new rate.
#[tokio::test(start_paused = true)]
async fn a_changed_min_rate_starts_a_new_window_at_the_set() {
    let (tx, mut rows) = waiting_after_one_row(Limits::new().min_rate(5, 10 * SECOND));
    time::advance(6 * SECOND).await;

    set(&mut rows, Limits::new().min_rate(2, 8 * SECOND));
    time::advance(4 * SECOND).await;
    assert_pending!(rows.poll_next());
    time::advance(3 * SECOND).await;
    tx.send(1).unwrap();
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));
    assert_pending!(rows.poll_next());
    time::advance(SECOND - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(stall.limit(), 8 * SECOND);
    assert_eq!(stall.elapsed(), 14 * SECOND, "the new window began at 6s");
    assert_eq!(
        stall.to_string(),
        "stalled: too slow, 1 item in 8s of waiting, below the minimum of 2 items per 8s \
         (14s into the stream)"
    );
}

/// Before the first poll, new limits are the ones the watch starts with.
#[tokio::test(start_paused = true)]
async fn limits_set_before_the_first_poll_are_the_ones_the_watch_starts_with() {
    let (_tx, rx) = mpsc::unbounded_channel::<u32>();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).watchdog(Limits::new()));
    set(&mut rows, Limits::new().idle(5 * SECOND).total(MINUTE));
    assert_pending!(rows.poll_next());
    time::advance(5 * SECOND).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.elapsed(), 5 * SECOND);
}

/// After a stall the stream has ended, whatever limits are set.
#[tokio::test(start_paused = true)]
async fn limits_set_after_a_stall_change_nothing() {
    let (_tx, mut rows) = waiting_after_one_row(Limits::new().idle(SECOND));
    time::advance(SECOND).await;
    let _ = stalled(rows.poll_next());
    set(&mut rows, Limits::new());
    assert_eq!(assert_ready!(rows.poll_next()), None);
    assert_eq!(rows.items(), 1);
}

/// Set from another task while a task waits on the stream, a tighter limit
/// is enforced at its own deadline: the waiting task is woken to aim its
/// timer there.
#[tokio::test(start_paused = true)]
async fn a_tighter_limit_set_from_another_task_is_enforced_on_time() {
    let (tx, rx) = mpsc::unbounded_channel::<u32>();
    let rows = UnboundedReceiverStream::new(rx).watchdog(Limits::new().idle(60 * MINUTE));
    let shared = Arc::new(Mutex::new(Box::pin(rows)));
    let started = Instant::now();
    let reader = tokio::spawn({
        let shared = shared.clone();
        async move {
            let stall = poll_fn(|cx| shared.lock().unwrap().as_mut().poll_next(cx)).await;
            (stall, Instant::now())
        }
    });
    tokio::task::yield_now().await;
    assert!(!reader.is_finished());
    time::sleep(10 * SECOND).await;

    shared
        .lock()
        .unwrap()
        .as_mut()
        .set_limits(Limits::new().idle(15 * SECOND));
    let (stall, at) = reader.await.unwrap();
    let stall = stall.unwrap().unwrap_err();
    assert_eq!(stall.limit(), 15 * SECOND);
    assert_eq!(
        at - started,
        15 * SECOND,
        "not at the old deadline, an hour in"
    );
    assert!(tx.is_closed());
}

/// Across threads: a row sent from another thread just before a tighter
/// limit (one the wait has already exceeded) is set must still win; sent
/// just after, either the row or the stall may come first, but the stream
/// never hangs. On a multi-thread runtime, many rounds, so the send lands
/// on both sides of the set and of the poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_sent_before_a_tighter_limit_is_set_wins_across_threads() {
    let (mut won, mut stalls) = (0, 0);
    for round in 0..1000u32 {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut rows =
            std::pin::pin!(UnboundedReceiverStream::new(rx).watchdog(Limits::new().idle(MINUTE)));
        assert!(futures::poll!(rows.next()).is_pending(), "the wait begins");

        let sent = Arc::new(AtomicBool::new(false));
        let sender = std::thread::spawn({
            let sent = sent.clone();
            move || {
                if tx.send(round).is_ok() {
                    // SeqCst: read by the test before the set, after the send.
                    sent.store(true, Ordering::SeqCst);
                }
                tx
            }
        });
        for _ in 0..round % 64 {
            std::hint::spin_loop();
        }
        let sent_before_set = sent.load(Ordering::SeqCst);
        rows.as_mut()
            .set_limits(Limits::new().idle(Duration::from_nanos(1)));
        let next = time::timeout(10 * SECOND, rows.next())
            .await
            .expect("the stream never hangs");
        match next {
            Some(Ok(row)) => {
                assert_eq!(row, round);
                won += 1;
            }
            Some(Err(stall)) => {
                assert!(
                    !sent_before_set,
                    "round {round}: a ready row lost to {stall}"
                );
                assert_eq!(stall.limit(), Duration::from_nanos(1));
                assert!(stall.waited() >= stall.limit());
                stalls += 1;
            }
            None => panic!("round {round}: the stream ended without a row or a stall"),
        }
        drop(sender.join().unwrap());
    }
    assert_eq!(won + stalls, 1000);
}

/// An I/O object whose reads and writes pend until the test says so.
struct Gate {
    readable: Arc<AtomicBool>,
}

impl AsyncRead for Gate {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // SeqCst: set by the test between polls.
        if self.readable.load(Ordering::SeqCst) {
            buf.put_slice(b"x");
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncWrite for Gate {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Headers under one read limit, the body under another: set between the
/// two, the body's limit applies from there, and the bytes read are kept.
#[tokio::test(start_paused = true)]
async fn read_limits_set_between_headers_and_body_apply_to_the_body() {
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let mut response = std::pin::pin!(
        IoWatchdog::new(client, Limits::new()).read_limits(Limits::new().idle(5 * SECOND))
    );
    server.write_all(b"HEAD\n").await.unwrap();
    let mut head = [0; 5];
    response.read_exact(&mut head).await.unwrap();

    response
        .as_mut()
        .set_read_limits(Limits::new().idle(MINUTE));
    let body = tokio::spawn(async move {
        time::sleep(30 * SECOND).await;
        server.write_all(b"body").await.unwrap();
        server
    });
    let mut chunk = [0; 4];
    response.read_exact(&mut chunk).await.unwrap();
    let _server = body.await.unwrap();

    let waiting_since = Instant::now();
    let err = response.read(&mut [0; 16]).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.limit(), MINUTE);
    assert_eq!(stall.progress(), Progress::BytesRead(9));
    assert_eq!(Instant::now() - waiting_since, MINUTE);
    assert_eq!(response.bytes_read(), 9);
}

/// A tighter read limit set while a read waits wakes the reader, whose next
/// poll fails with the wait so far; the write limits were not touched.
#[tokio::test(start_paused = true)]
async fn a_tighter_read_limit_during_a_pending_read_trips_with_the_wait_so_far() {
    let readable = Arc::new(AtomicBool::new(false));
    let mut socket = IoWatchdog::new(
        Gate {
            readable: readable.clone(),
        },
        Limits::new().idle(MINUTE),
    );
    let mut buf = [0; 8];
    {
        let mut read = task::spawn(socket.read(&mut buf));
        assert_pending!(read.poll());
    }
    time::advance(30 * SECOND).await;
    Pin::new(&mut socket).set_read_limits(Limits::new().idle(10 * SECOND));
    let err = socket.read(&mut buf).await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.progress(), Progress::BytesRead(0));
    assert_eq!(stall.waited(), 30 * SECOND);
    assert_eq!(stall.limit(), 10 * SECOND);
    assert_eq!(
        stall.to_string(),
        "stalled: no data for 30s (limit 10s) after 0 bytes read (30s into the stream)"
    );
}

/// `set_write_limits` changes writes only, `set_read_limits` reads only.
#[tokio::test(start_paused = true)]
async fn each_direction_is_set_on_its_own() {
    let readable = Arc::new(AtomicBool::new(false));
    let mut socket = IoWatchdog::new(
        Gate {
            readable: readable.clone(),
        },
        Limits::new().idle(MINUTE),
    );
    Pin::new(&mut socket).set_write_limits(Limits::new().idle(5 * SECOND));
    let mut buf = [0; 8];
    {
        let mut read = task::spawn(socket.read(&mut buf));
        assert_pending!(read.poll());
        time::advance(30 * SECOND).await;
        assert_pending!(read.poll());
        readable.store(true, Ordering::SeqCst);
        assert_eq!(assert_ready!(read.poll()).unwrap(), 1);
    }

    Pin::new(&mut socket).set_read_limits(Limits::new().idle(SECOND));
    let started = Instant::now();
    let err = socket.write_all(b"request").await.unwrap_err();
    let stall = stall_of(&err);
    assert_eq!(stall.progress(), Progress::BytesWritten(0));
    assert_eq!(stall.limit(), 5 * SECOND);
    assert_eq!(Instant::now() - started, 5 * SECOND);
}

/// After a stall, new limits do not revive the connection: every call still
/// returns the stall.
#[tokio::test(start_paused = true)]
async fn read_limits_set_after_a_stall_do_not_revive_the_connection() {
    let (client, _server) = tokio::io::duplex(1024);
    let mut socket = IoWatchdog::new(client, Limits::new().idle(SECOND));
    let err = socket.read(&mut [0; 8]).await.unwrap_err();
    let first = stall_of(&err).clone();

    Pin::new(&mut socket).set_read_limits(Limits::new());
    Pin::new(&mut socket).set_write_limits(Limits::new());
    let err = socket.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(stall_of(&err), &first);
    let err = socket.write_all(b"x").await.unwrap_err();
    assert_eq!(stall_of(&err), &first);
    assert!(socket.get_ref().is_none());
}

/// A limit set during a wait that had none to time is enforced: the waiting
/// task is woken to arm the timer, even when the timer already exists for a
/// budget that was removed and would fire before the new deadline.
#[tokio::test(start_paused = true)]
async fn a_limit_set_during_a_wait_that_had_no_deadline_is_enforced() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows =
        task::spawn(UnboundedReceiverStream::new(rx).watchdog(Limits::new().total(SECOND)));
    tx.send(0).unwrap();
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    // The budget's timer is registered, never polled; then the budget goes,
    // and the wait that follows has nothing to time.
    set(&mut rows, Limits::new());
    assert_pending!(rows.poll_next());
    time::advance(500 * MS).await;

    set(&mut rows, Limits::new().idle(5 * SECOND));
    time::advance(5 * SECOND).await;
    assert!(rows.is_woken(), "the new limit's deadline wakes the task");
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.waited(), 5500 * MS);
    assert_eq!(stall.limit(), 5 * SECOND);
}
