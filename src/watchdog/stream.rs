//! [`Watchdog`], the stream adapter: each poll goes through its monitor,
//! which polls the source and says what happened; the adapter passes items
//! on and drops the source when it ends or stalls.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::monitor::{Monitor, Polled};
use super::{Limits, Progress, Stalled};

pin_project! {
    /// Stream returned by [`watchdog`](super::StreamExt::watchdog) and
    /// [`idle_timeout`](super::StreamExt::idle_timeout).
    ///
    /// Yields the source's items as `Ok`, then, if a limit trips, exactly one
    /// `Err(Stalled)` and `None` for ever after. The source is dropped the
    /// moment the stall is yielded (or the moment it ends), which closes its
    /// socket or returns its pooled connection.
    ///
    /// # Cancel safety
    ///
    /// Polling takes nothing from the source unless it yields an item, so
    /// `next()` on a `Watchdog` is cancel safe whenever it is on the source
    /// (e.g. in a `tokio::select!` loop). Dropping the watchdog drops the
    /// source and its timer; nothing is left registered.
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct Watchdog<S> {
        #[pin]
        stream: Option<S>,
        monitor: Monitor,
    }
}

impl<S: Stream> Watchdog<S> {
    pub(super) fn new(stream: S, limits: Limits) -> Self {
        Watchdog {
            stream: Some(stream),
            monitor: Monitor::new(limits, Progress::Items(0)),
        }
    }
}

impl<S> Watchdog<S> {
    /// The source, or `None` once it ended or stalled (it is dropped then).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    ///
    /// let rows = futures::stream::iter([1, 2, 3]).idle_timeout(Duration::from_secs(60));
    /// assert!(rows.get_ref().is_some());
    /// ```
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }

    /// The source, mutably, or `None` once it ended or stalled.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.stream.as_mut()
    }

    /// The pinned source, or `None` once it ended or stalled.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Option<Pin<&mut S>> {
        self.project().stream.as_pin_mut()
    }

    /// Unwraps the source, or `None` once it ended or stalled.
    pub fn into_inner(self) -> Option<S> {
        self.stream
    }

    /// Items yielded so far.
    pub fn items(&self) -> u64 {
        self.monitor.progress()
    }

    /// Replaces the limits from the next poll on: for a protocol whose
    /// phases need different limits (a handshake, then a feed).
    ///
    /// Every clock keeps running; only the limit it is held to changes:
    ///
    /// | limit | under the new limits |
    /// |---|---|
    /// | `idle`, `first_item` | the wait measured since the source last yielded goes on, held to the new limit |
    /// | `total` | still counted from the first poll: the stream ends at the first poll plus the new `total` |
    /// | `min_rate` | an unchanged rate keeps its window; a new rate starts a new window now, counting progress from now |
    /// | progress | kept: [`items`](Self::items) and a stall's report count from the start |
    ///
    /// A limit that is already exceeded trips at the next poll, by the
    /// usual rules: `total` without polling the source, the others only
    /// after the source was polled and answered `Pending`, so an item that
    /// is ready still wins. Set while the stream waits on its source, a
    /// deadline that moved earlier wakes the task waiting on the stream, so
    /// that the new limit is enforced on time. Before the first poll this is
    /// the same as building with `limits`; once the stream ended or stalled
    /// it does nothing.
    ///
    /// Compare tokio-io-timeout's `set_read_timeout_pinned`, which restarts
    /// a pending countdown from zero: here the silence already measured
    /// counts against the new limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt as _;
    /// use hangfree::prelude::*;
    /// use hangfree::watchdog::{Limits, StallKind};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     // A session: a three-message handshake, each message within 5 s;
    ///     // then a feed where an hour between updates is normal.
    ///     let messages = futures::stream::iter(["hello", "auth ok", "subscribed", "update"])
    ///         .chain(futures::stream::pending());
    ///     let mut session =
    ///         std::pin::pin!(messages.watchdog(Limits::new().idle(Duration::from_secs(5))));
    ///     for _ in 0..3 {
    ///         session.next().await.unwrap().unwrap();
    ///     }
    ///     session.as_mut().set_limits(Limits::new().idle(Duration::from_secs(3600)));
    ///
    ///     assert_eq!(session.next().await, Some(Ok("update")));
    ///     let started = tokio::time::Instant::now();
    ///     let stalled = session.next().await.unwrap().unwrap_err();
    ///     assert_eq!(stalled.kind(), StallKind::Idle);
    ///     assert_eq!(started.elapsed(), Duration::from_secs(3600));
    /// }
    /// ```
    pub fn set_limits(self: Pin<&mut Self>, limits: Limits) {
        self.project().monitor.set_limits(limits);
    }
}

impl<S: Stream> Stream for Watchdog<S> {
    type Item = Result<S::Item, Stalled>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The monitor's two halves called apart, so that all this function
        // keeps inline is one test, the source's poll and a count; the
        // rest is one call (docs/watchdog.md, "Hot path").
        let me = self.as_mut().project();
        let Some(stream) = me.stream.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let rest = match me.monitor.plain_waker(cx) {
            Some(waker) => match stream.poll_next(&mut Context::from_waker(waker)) {
                Poll::Ready(Some(item)) => {
                    me.monitor.count_item();
                    return Poll::Ready(Some(Ok(item)));
                }
                Poll::Ready(None) => Rest::Ended,
                Poll::Pending => Rest::Pended,
            },
            None => Rest::Protocol,
        };
        self.poll_next_rest(cx, rest)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.stream {
            // A stall may cut the stream short and adds one error.
            Some(stream) => (0, stream.size_hint().1.and_then(|n| n.checked_add(1))),
            None => (0, Some(0)),
        }
    }
}

impl<S: Stream> FusedStream for Watchdog<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}

/// What is left of a poll after `poll_next`'s inline part.
enum Rest {
    /// The monitor's protocol, from the start.
    Protocol,
    /// The source, polled inline, returned `Pending`.
    Pended,
    /// The source, polled inline, ended.
    Ended,
}

impl<S: Stream> Watchdog<S> {
    /// The rest of a poll, out of line: the monitor's protocol, and what
    /// its answer means for the stream.
    #[inline(never)]
    fn poll_next_rest(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        rest: Rest,
    ) -> Poll<Option<Result<S::Item, Stalled>>> {
        let mut me = self.project();
        let Some(mut stream) = me.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let polled = match rest {
            Rest::Ended => Polled::Ready(None),
            Rest::Pended | Rest::Protocol => me.monitor.poll_rest(
                cx,
                |cx| stream.as_mut().poll_next(cx),
                matches!(rest, Rest::Pended),
            ),
        };
        match polled {
            Polled::Ready(Some(item)) => {
                me.monitor.count_item();
                Poll::Ready(Some(Ok(item)))
            }
            Polled::Pending => Poll::Pending,
            Polled::Ready(None) => end(me.stream, me.monitor, None),
            Polled::Stalled(stalled) => end(me.stream, me.monitor, Some(Err(stalled))),
        }
    }
}

/// Ended or stalled: lets go of the source and the timer at once.
#[cold]
#[inline(never)]
fn end<S: Stream>(
    mut slot: Pin<&mut Option<S>>,
    monitor: &mut Monitor,
    outcome: Option<Result<S::Item, Stalled>>,
) -> Poll<Option<Result<S::Item, Stalled>>> {
    slot.set(None);
    monitor.finish();
    Poll::Ready(outcome)
}
