//! `Watchdog<S>`: the idle, `first_item`, `total` and `min_rate` limits on
//! streams, under tokio's paused clock (one test runs on the real clock,
//! and says why).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hangfree::prelude::*;
use hangfree::watchdog::{Limits, LimitsError, Progress, StallKind, Stalled};
use tokio::sync::mpsc;
use tokio::time::{self, Instant};
use tokio_stream::wrappers::{IntervalStream, UnboundedReceiverStream};
use tokio_test::{assert_pending, assert_ready, task};

#[path = "watchdog/common.rs"]
mod common;
use common::{MINUTE, MS, SECOND, stalled};

/// Yields its items at once, then pends for ever without ending (a server
/// that stopped sending but did not close); records when it is dropped.
struct ThenSilent<I> {
    items: I,
    dropped: Arc<AtomicBool>,
}

impl<I> ThenSilent<I> {
    fn new(items: I) -> (Self, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let source = ThenSilent {
            items,
            dropped: dropped.clone(),
        };
        (source, dropped)
    }
}

impl<I: Iterator + Unpin> Stream for ThenSilent<I> {
    type Item = I::Item;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        match self.items.next() {
            Some(item) => Poll::Ready(Some(item)),
            None => Poll::Pending,
        }
    }
}

impl<I> Drop for ThenSilent<I> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A source that goes silent without ending: after `idle`, one stall, the
/// source dropped, and the stream ended.
#[tokio::test(start_paused = true)]
async fn a_silent_source_yields_one_stall_is_dropped_and_the_stream_ends() {
    let (source, dropped) = ThenSilent::new(0..1000u32);
    let mut rows = task::spawn(source.idle_timeout(MINUTE));

    for expected in 0..1000 {
        assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(expected)));
    }
    assert_pending!(rows.poll_next());
    let went_silent = Instant::now();

    time::advance(MINUTE - MS).await;
    assert!(!rows.is_woken(), "no wake-up before the limit");
    assert_pending!(rows.poll_next());
    assert!(!dropped.load(Ordering::SeqCst));

    time::advance(MS).await;
    assert!(rows.is_woken());
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::Items(1000));
    assert_eq!(stall.waited(), MINUTE);
    assert_eq!(Instant::now() - went_silent, MINUTE);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the source is dropped when the stall is yielded"
    );
    assert!(rows.get_ref().is_none());

    assert_eq!(assert_ready!(rows.poll_next()), None);
    assert_eq!(assert_ready!(rows.poll_next()), None);
    assert_eq!(rows.items(), 1000);
}

/// `first_item` replaces `idle` until the first item: a slow first item is
/// fine, a later gap of `idle` is not.
#[tokio::test(start_paused = true)]
async fn a_slow_first_item_is_fine_and_a_later_gap_is_a_stall() {
    let (tx, rx) = mpsc::unbounded_channel();
    let limits = Limits::new().first_item(15 * MINUTE).idle(MINUTE);
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).watchdog(limits));

    assert_pending!(rows.poll_next());
    time::advance(14 * MINUTE).await;
    assert_pending!(rows.poll_next());
    tx.send("first row").unwrap();
    assert!(rows.is_woken());
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok("first row")));

    assert_pending!(rows.poll_next());
    time::advance(MINUTE - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress(), Progress::Items(1));
    assert_eq!(stall.elapsed(), 15 * MINUTE);
    assert_eq!(assert_ready!(rows.poll_next()), None);
    assert!(tx.is_closed(), "the receiver was dropped with the stream");
}

/// No first item within `first_item` is a `FirstItem` stall.
#[tokio::test(start_paused = true)]
async fn no_first_item_in_time_is_a_first_item_stall() {
    let (tx, rx) = mpsc::unbounded_channel::<u32>();
    let limits = Limits::new().first_item(15 * MINUTE).idle(MINUTE);
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).watchdog(limits));

    assert_pending!(rows.poll_next());
    time::advance(15 * MINUTE - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.kind(), StallKind::FirstItem);
    assert_eq!(stall.progress(), Progress::Items(0));
    assert_eq!(stall.limit(), 15 * MINUTE);
    assert_eq!(
        stall.to_string(),
        "stalled: nothing arrived within the first 900s (15m0s into the stream)"
    );
    assert_eq!(assert_ready!(rows.poll_next()), None);
    drop(tx);
}

/// Items every 45 s never trip a 60 s idle limit, but the 10 minute
/// budget ends the stream.
#[tokio::test(start_paused = true)]
async fn total_ends_a_stream_that_trickles_inside_idle() {
    let ticks = IntervalStream::new(time::interval(45 * SECOND));
    let started = Instant::now();
    let mut ticks = ticks.watchdog(Limits::new().idle(MINUTE).total(10 * MINUTE));

    let mut items = 0;
    let stall = loop {
        match ticks.next().await {
            Some(Ok(_)) => items += 1,
            Some(Err(stall)) => break stall,
            None => panic!("the stream ended without a stall"),
        }
    };
    // Ticks at 0, 45, ..., 585 s; the next one (630 s) is past the budget.
    assert_eq!(items, 14);
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.progress(), Progress::Items(14));
    assert_eq!(stall.elapsed(), 10 * MINUTE);
    assert_eq!(Instant::now() - started, 10 * MINUTE);
    assert!(ticks.next().await.is_none());
}

/// `total` is a budget: it also ends an always-ready source whose consumer
/// spends the time.
#[tokio::test(start_paused = true)]
async fn total_is_a_budget_that_counts_the_consumers_time_too() {
    let mut numbers = futures::stream::repeat(7u8).watchdog(Limits::new().total(MINUTE));
    let mut items = 0;
    let stall = loop {
        match numbers.next().await {
            Some(Ok(_)) => {
                items += 1;
                time::sleep(10 * SECOND).await;
            }
            Some(Err(stall)) => break stall,
            None => panic!("the stream ended without a stall"),
        }
    };
    assert_eq!(items, 6);
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), MINUTE);
    assert_eq!(
        stall.waited(),
        Duration::ZERO,
        "the source never made us wait"
    );
}

/// A fast consumer of an always-ready source reads the clock only every
/// 1,024th item or so; a budget spent between two reads still ends the
/// stream at the very next item, because the budget's timer fired.
#[tokio::test(start_paused = true)]
async fn a_budget_spent_between_two_clock_reads_ends_the_stream_at_the_next_item() {
    let mut numbers =
        task::spawn(futures::stream::iter(0u64..).watchdog(Limits::new().total(MINUTE)));
    // No time passes: the reads of the clock grow apart, up to every
    // 1,024th poll, and this stops between two of them.
    for expected in 0..5_000 {
        assert_eq!(assert_ready!(numbers.poll_next()), Some(Ok(expected)));
    }
    time::advance(MINUTE).await;
    let stall = stalled(numbers.poll_next());
    assert_eq!(stall.kind(), StallKind::Total);
    assert_eq!(stall.elapsed(), MINUTE);
    assert_eq!(stall.progress(), Progress::Items(5_000));
    assert_eq!(assert_ready!(numbers.poll_next()), None);
}

/// A consumer that takes 10 × `idle` between polls never causes a stall.
#[tokio::test(start_paused = true)]
async fn a_slow_consumer_never_causes_a_stall() {
    let mut rows = task::spawn(futures::stream::iter(0..100).idle_timeout(MINUTE));
    for expected in 0..100 {
        assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(expected)));
        time::advance(10 * MINUTE).await;
    }
    assert_eq!(assert_ready!(rows.poll_next()), None);
}

/// The source is always polled before a stall is declared: an item that
/// arrived while the consumer was busy elsewhere wins.
#[tokio::test(start_paused = true)]
async fn an_item_waiting_for_a_late_consumer_wins_over_the_stall() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).idle_timeout(MINUTE));

    assert_pending!(rows.poll_next());
    time::advance(SECOND).await;
    tx.send(1).unwrap();
    time::advance(10 * MINUTE).await;
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));

    // And the idle clock restarts at the next `Pending`, not at the item.
    assert_pending!(rows.poll_next());
    time::advance(MINUTE - MS).await;
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    assert_eq!(stalled(rows.poll_next()).kind(), StallKind::Idle);
}

/// Items are opaque: the source's own errors pass through as items.
#[tokio::test(start_paused = true)]
async fn the_sources_own_errors_pass_through_untouched() {
    let source = futures::stream::iter([Ok(1), Err("bad row"), Ok(2), Err("worse"), Ok(3)]);
    let seen: Vec<_> = source.idle_timeout(MINUTE).collect().await;
    assert_eq!(
        seen,
        vec![
            Ok(Ok(1)),
            Ok(Err("bad row")),
            Ok(Ok(2)),
            Ok(Err("worse")),
            Ok(Ok(3))
        ]
    );
}

/// The timer is armed when the source first pends and re-armed lazily:
/// after many short gaps the stall still comes exactly `idle` after the
/// last `Pending`, and early firings cause no false stall.
#[tokio::test(start_paused = true)]
async fn lazy_rearming_keeps_the_stall_exact() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).idle_timeout(MINUTE));
    for i in 0..20 {
        assert_pending!(rows.poll_next());
        time::advance(35 * SECOND).await;
        tx.send(i).unwrap();
        assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(i)));
    }
    assert_pending!(rows.poll_next());
    let last_pending = Instant::now();
    time::advance(MINUTE - MS).await;
    // The timer may have fired early (armed for an older deadline); that
    // must re-arm, not stall.
    assert_pending!(rows.poll_next());
    time::advance(MS).await;
    let stall = stalled(rows.poll_next());
    assert_eq!(stall.waited(), MINUTE);
    assert_eq!(Instant::now() - last_pending, MINUTE);
    assert_eq!(stall.progress(), Progress::Items(20));
}

/// The stall's `Display` is a sentence for an operator, and it converts into
/// an `io::Error` (`TimedOut`) from which it can be taken back.
#[tokio::test(start_paused = true)]
async fn the_stall_reads_like_a_sentence_and_converts_into_io_error() {
    // The query thinks for 13m3s, then streams 1000 rows and goes silent.
    let source = futures::stream::once(time::sleep(13 * MINUTE + 3 * SECOND))
        .flat_map(|()| futures::stream::iter(0..1000))
        .chain(futures::stream::pending());
    let limits = Limits::new().first_item(15 * MINUTE).idle(MINUTE);
    let mut rows = std::pin::pin!(source.watchdog(limits));
    for i in 0..1000 {
        assert_eq!(rows.next().await, Some(Ok(i)));
    }
    let stall = rows.next().await.unwrap().unwrap_err();
    assert_eq!(
        stall.to_string(),
        "stalled: no data for 60s (limit 60s) after 1000 items (14m3s into the stream)"
    );

    let err = std::io::Error::from(stall.clone());
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(err.to_string(), stall.to_string());
    let back = err
        .downcast::<Stalled>()
        .expect("the source is the Stalled report");
    assert_eq!(back, stall);
}

#[tokio::test(start_paused = true)]
async fn a_total_stall_reads_as_a_spent_budget() {
    let (source, _dropped) = ThenSilent::new(0..3u32);
    let mut rows = source.watchdog(Limits::new().total(90 * SECOND));
    for _ in 0..3 {
        rows.next().await.unwrap().unwrap();
    }
    let stall = rows.next().await.unwrap().unwrap_err();
    assert_eq!(
        stall.to_string(),
        "stalled: the whole budget of 90s was spent after 3 items (1m30s into the stream)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_in_time_ends_cleanly_and_lets_go_of_its_source() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut rows = task::spawn(UnboundedReceiverStream::new(rx).idle_timeout(MINUTE));
    assert_pending!(rows.poll_next());
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(1)));
    assert_eq!(assert_ready!(rows.poll_next()), None);
    assert!(rows.get_ref().is_none());
    time::advance(10 * MINUTE).await;
    assert!(!rows.is_woken(), "no timer left behind to wake us");
    assert_eq!(assert_ready!(rows.poll_next()), None);
}

#[tokio::test(start_paused = true)]
async fn no_limits_watch_nothing() {
    let (source, dropped) = ThenSilent::new(0..1u32);
    let mut rows = task::spawn(source.watchdog(Limits::new()));
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    assert_pending!(rows.poll_next());
    time::advance(365 * 24 * 60 * MINUTE).await;
    assert_pending!(rows.poll_next());
    assert!(!dropped.load(Ordering::SeqCst));
}

/// Huge limits are "never", not an overflow panic.
#[tokio::test(start_paused = true)]
async fn huge_limits_never_trip_and_never_panic() {
    let (source, _dropped) = ThenSilent::new(0..1u32);
    let limits = Limits::new()
        .idle(Duration::MAX)
        .first_item(Duration::MAX)
        .total(Duration::MAX)
        .min_rate(u64::MAX, Duration::MAX);
    let mut rows = task::spawn(source.watchdog(limits));
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    assert_pending!(rows.poll_next());
    time::advance(100 * 365 * 24 * 60 * MINUTE).await;
    assert_pending!(rows.poll_next());
}

/// Zero limits are rejected where `Limits` is built.
#[test]
#[should_panic(expected = "Limits::idle must be greater than zero")]
fn a_zero_idle_is_rejected() {
    let _ = Limits::new().idle(Duration::ZERO);
}

#[test]
#[should_panic(expected = "Limits::first_item must be greater than zero")]
fn a_zero_first_item_is_rejected() {
    let _ = Limits::new().first_item(Duration::ZERO);
}

#[test]
#[should_panic(expected = "Limits::total must be greater than zero")]
fn a_zero_total_is_rejected() {
    let _ = Limits::new().total(Duration::ZERO);
}

#[test]
#[should_panic(expected = "Limits::min_rate amount must be greater than zero")]
fn a_zero_rate_is_rejected() {
    let _ = Limits::new().min_rate(0, SECOND);
}

#[test]
#[should_panic(expected = "Limits::min_rate window must be greater than zero")]
fn a_zero_rate_window_is_rejected() {
    let _ = Limits::new().min_rate(1, Duration::ZERO);
}

#[test]
#[should_panic(expected = "Limits::idle must be greater than zero")]
fn a_zero_idle_timeout_is_rejected() {
    let _ = futures::stream::iter([1]).idle_timeout(Duration::ZERO);
}

/// From a configuration, a zero comes back as an error that names the
/// setting, in the sentence the panicking setter panics with; valid values
/// make the same limits as the panicking setters.
#[test]
fn zero_limits_from_a_configuration_are_errors_that_name_the_setting() {
    let cases = [
        (
            Limits::new().try_idle(Duration::ZERO),
            LimitsError::ZeroIdle,
            "Limits::idle must be greater than zero",
        ),
        (
            Limits::new().try_first_item(Duration::ZERO),
            LimitsError::ZeroFirstItem,
            "Limits::first_item must be greater than zero",
        ),
        (
            Limits::new().try_total(Duration::ZERO),
            LimitsError::ZeroTotal,
            "Limits::total must be greater than zero",
        ),
        (
            Limits::new().try_min_rate(0, SECOND),
            LimitsError::ZeroMinRateAmount,
            "Limits::min_rate amount must be greater than zero",
        ),
        (
            Limits::new().try_min_rate(1, Duration::ZERO),
            LimitsError::ZeroMinRateWindow,
            "Limits::min_rate window must be greater than zero",
        ),
    ];
    for (result, expected, sentence) in cases {
        let err = result.unwrap_err();
        assert_eq!(err, expected);
        assert!(err.to_string().starts_with(sentence), "{err}");
    }

    let from_config = Limits::new()
        .try_first_item(15 * MINUTE)
        .and_then(|limits| limits.try_idle(MINUTE))
        .and_then(|limits| limits.try_total(2 * 60 * MINUTE))
        .and_then(|limits| limits.try_min_rate(10, 5 * SECOND))
        .unwrap();
    let literal = Limits::new()
        .first_item(15 * MINUTE)
        .idle(MINUTE)
        .total(2 * 60 * MINUTE)
        .min_rate(10, 5 * SECOND);
    assert_eq!(from_config, literal);
}

/// The panicking setters panic with the error's own sentence, so a literal
/// and a configuration report a zero alike.
#[test]
fn a_panicking_setter_panics_with_the_errors_sentence() {
    let panic = std::panic::catch_unwind(|| Limits::new().min_rate(1, Duration::ZERO)).unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .expect("the panic carries the sentence");
    assert_eq!(*message, LimitsError::ZeroMinRateWindow.to_string());
}

#[test]
fn a_watchdog_can_be_built_outside_a_runtime() {
    // Nothing touches the clock or the timer until the first poll.
    let rows = futures::stream::iter([1]).idle_timeout(MINUTE);
    assert_eq!(rows.size_hint(), (0, Some(2)));
}

/// `min_rate` on a stream counts items per window of waiting.
#[tokio::test(start_paused = true)]
async fn min_rate_on_a_stream_counts_items() {
    let ticks = IntervalStream::new(time::interval(20 * SECOND));
    let limits = Limits::new().idle(MINUTE).min_rate(5, 50 * SECOND);
    let mut ticks = ticks.watchdog(limits);
    let mut items = 0;
    let stall = loop {
        match ticks.next().await.unwrap() {
            Ok(_) => items += 1,
            Err(stall) => break stall,
        }
    };
    // Ticks at 0, 20, 40 s: the first 50 s of waiting ends at 50 s with
    // 3 items, below 5.
    assert_eq!(items, 3);
    assert_eq!(stall.kind(), StallKind::TooSlow);
    assert_eq!(stall.elapsed(), 50 * SECOND);
    assert_eq!(
        stall.to_string(),
        "stalled: too slow, 3 items in 50s of waiting, below the minimum of 5 items per 50s (50s into the stream)"
    );
}

/// A source whose items are made available from outside without waking
/// anyone, so every wake-up the consumer sees comes from the watchdog.
struct Tap {
    available: Arc<std::sync::atomic::AtomicU32>,
}

impl Stream for Tap {
    type Item = u32;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u32>> {
        let left = self.available.load(Ordering::SeqCst);
        if left == 0 {
            return Poll::Pending;
        }
        self.available.store(left - 1, Ordering::SeqCst);
        Poll::Ready(Some(left))
    }
}

struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lazy re-arming: a source that pends between items every second does not
/// cost a timer operation per item; the timer wakes the consumer about once
/// per `idle`, and never stalls while items keep coming.
#[tokio::test(start_paused = true)]
async fn the_timer_wakes_about_once_per_idle_not_once_per_item() {
    let available = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut rows = Tap {
        available: available.clone(),
    }
    .idle_timeout(MINUTE);
    let counter = Arc::new(CountingWaker(std::sync::atomic::AtomicUsize::new(0)));
    let waker = std::task::Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);

    for _ in 0..600 {
        assert!(Pin::new(&mut rows).poll_next(&mut cx).is_pending());
        time::advance(SECOND).await;
        available.store(1, Ordering::SeqCst);
        assert!(matches!(
            Pin::new(&mut rows).poll_next(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
    }
    let wakes = counter.0.load(Ordering::SeqCst);
    // 600 s of one-second gaps under a 60 s limit: one early firing per
    // ~59 s, each re-arming the timer once.
    assert!((9..=11).contains(&wakes), "{wakes} wake-ups");
}

/// `first_item` alone: once the first item arrived, nothing is watched.
#[tokio::test(start_paused = true)]
async fn first_item_alone_stops_watching_after_the_first_item() {
    let (source, _dropped) = ThenSilent::new(0..1u32);
    let mut rows = task::spawn(source.watchdog(Limits::new().first_item(MINUTE)));
    assert_eq!(assert_ready!(rows.poll_next()), Some(Ok(0)));
    assert_pending!(rows.poll_next());
    time::advance(100 * MINUTE).await;
    assert_pending!(rows.poll_next());
}

/// A source that wakes its task and returns `Pending` on every poll, never
/// yielding (a busy loop), is still declared idle: a wake that comes while
/// the source is being polled does not end the wait.
#[tokio::test(start_paused = true)]
async fn a_source_that_wakes_itself_and_never_yields_is_still_idle() {
    let spinner = futures::stream::poll_fn(|cx: &mut Context<'_>| -> Poll<Option<u32>> {
        cx.waker().wake_by_ref();
        Poll::Pending
    });
    let mut rows = spinner.idle_timeout(MINUTE);
    let mut next = task::spawn(rows.next());
    for _ in 0..3 {
        assert_pending!(next.poll());
        assert!(next.is_woken());
        time::advance(20 * SECOND).await;
    }
    let stalled = assert_ready!(next.poll()).unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(stalled.waited(), MINUTE);
}

/// A source that wakes without yielding (a lazy step with two round trips,
/// each inside `idle`) is judged on all its waiting since its last item:
/// the waits between its wakes add up.
#[tokio::test(start_paused = true)]
async fn waits_between_wakes_add_up_until_an_item() {
    let source = futures::stream::iter(0..1).then(|row| async move {
        time::sleep(40 * SECOND).await;
        time::sleep(40 * SECOND).await;
        row
    });
    let mut rows = Box::pin(source.idle_timeout(MINUTE));
    let started = Instant::now();
    let stalled = rows.next().await.unwrap().unwrap_err();
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(Instant::now() - started, MINUTE);
    assert_eq!(stalled.waited(), MINUTE);
}

/// A consumer away after the source woke is not charged, but a source that
/// is re-polled and still has nothing is: the wait it started then counts
/// in full.
#[tokio::test(start_paused = true)]
async fn the_wait_after_the_consumer_returns_counts_in_full() {
    let (tx, rx) = mpsc::unbounded_channel::<u32>();
    let mut rows = UnboundedReceiverStream::new(rx).idle_timeout(MINUTE);
    assert!(time::timeout(SECOND, rows.next()).await.is_err());
    tx.send(1).unwrap();
    time::sleep(10 * MINUTE).await; // the consumer's own work
    assert!(matches!(rows.next().await, Some(Ok(1))));
    let waited_from = Instant::now();
    let stalled = rows.next().await.unwrap().unwrap_err();
    assert_eq!(Instant::now() - waited_from, MINUTE);
    assert_eq!(stalled.waited(), MINUTE);
    drop(tx);
}

/// The idle clock does not count the consumer's time away from a lazy
/// source. A `then` step makes progress only when polled: the consumer
/// waits half a second for a row, then does two minutes of its own work.
/// The source's first round trip finished at 1 s; re-polled at 120.5 s it
/// starts its second round trip and returns `Pending`, which must not count
/// as two minutes of waiting.
#[tokio::test(start_paused = true)]
async fn idle_does_not_count_the_consumers_time_away_from_a_lazy_source() {
    let source = futures::stream::iter(0..3).then(|row| async move {
        time::sleep(SECOND).await; // send the query
        time::sleep(SECOND).await; // read the reply
        row
    });
    let mut rows = Box::pin(source.idle_timeout(MINUTE));

    assert!(time::timeout(SECOND / 2, rows.next()).await.is_err());
    time::sleep(2 * MINUTE).await; // the consumer's own work

    expect_rows(&mut rows, 0..3).await;
}

/// A `min_rate` window does not count the consumer's time away either. The
/// consumer waits a bounded time for a row (`timeout(.., rows.next())`),
/// then does a minute of its own work while 20 rows arrive at once: the
/// minute is not waiting, so the window is not judged on the first row
/// alone, and every ready row is delivered.
#[tokio::test(start_paused = true)]
async fn min_rate_does_not_count_the_consumers_time_away() {
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

    expect_rows(&mut rows, 0..20).await;
}

/// The next items are exactly `rows`, none of them a stall.
async fn expect_rows<S>(rows: &mut S, expected: std::ops::Range<i32>)
where
    S: Stream<Item = Result<i32, Stalled>> + Unpin,
{
    for row in expected {
        match rows.next().await {
            Some(Ok(got)) => assert_eq!(got, row),
            other => panic!("row {row}: expected the row, got {other:?}"),
        }
    }
}

/// With `first_item` set, `min_rate` windows start at the first item: a
/// query may think for 14 of its 15 minutes, then stream fast, without a
/// `TooSlow` stall from a window that ran out while it was thinking.
#[tokio::test(start_paused = true)]
async fn min_rate_does_not_cut_the_first_item_grace_short() {
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

/// A source that returns `Pending` only because the task's coop budget ran
/// out is not idle: the task is re-polled at once, and even a limit of a
/// nanosecond does not trip while items are ready.
#[tokio::test(start_paused = true)]
async fn a_pending_from_a_spent_coop_budget_is_not_a_stall() {
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

/// With a `total` budget, a timer that fired for an idle deadline while the
/// source was ready (and the consumer busy) does not shift the next idle
/// stall: it still comes exactly `idle` after the source went quiet.
#[tokio::test(start_paused = true)]
async fn an_idle_stall_after_a_stale_timer_firing_is_exact() {
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

/// `total` stops an always-ready source even when the consumer never lets
/// the runtime's timer run: CPU work per row on a current-thread runtime.
/// On the real clock, because the consumer's blocking work is the point;
/// the clock is read about once a millisecond (here every row), so a 20 ms budget ends
/// within a row of 20 ms, not 64 rows later as a fixed period of 64 polls would.
#[tokio::test(flavor = "current_thread")]
async fn total_stops_an_always_ready_source_whose_consumer_never_yields() {
    let total = 20 * MS;
    let mut rows = futures::stream::iter(0u64..).watchdog(Limits::new().total(total));
    let started = std::time::Instant::now();
    let mut seen = 0u64;
    let stalled = loop {
        match rows.next().await {
            Some(Ok(_)) => {
                seen += 1;
                // A row's CPU work, blocking the thread for a millisecond.
                std::thread::sleep(MS);
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
    let took = started.elapsed();
    assert_eq!(stalled.kind(), StallKind::Total);
    assert!(
        took >= total && took <= 2 * total,
        "the budget of {total:?} ended the stream after {took:?}"
    );
}
