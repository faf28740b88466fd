use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::monitor::{Monitor, Pending};
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
}

impl<S: Stream> Stream for Watchdog<S> {
    type Item = Result<S::Item, Stalled>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut me = self.project();
        // The plain path (the source never pended): poll with the
        // consumer's context and count the item; everything else is out of
        // line, so that this inlines into the consumer's loop.
        let mut polled = None;
        if me.monitor.is_plain() {
            let Some(stream) = me.stream.as_mut().as_pin_mut() else {
                return Poll::Ready(None);
            };
            if let Err(stalled) = me.monitor.before_poll() {
                // A spent `total` budget: it ends the stream without a poll.
                return end(me.stream, me.monitor, Some(Err(stalled)));
            }
            match stream.poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    me.monitor.on_ready(1);
                    return Poll::Ready(Some(Ok(item)));
                }
                answer => polled = Some(answer),
            }
        }
        poll_watched(me.stream, me.monitor, cx, polled)
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

/// Everything but the plain path: the first poll, a `total` budget, waits,
/// stalls and the end. `polled` is the answer of a poll already made on the
/// plain path, if any.
#[inline(never)]
fn poll_watched<S: Stream>(
    mut slot: Pin<&mut Option<S>>,
    monitor: &mut Monitor,
    cx: &mut Context<'_>,
    mut polled: Option<Poll<Option<S::Item>>>,
) -> Poll<Option<Result<S::Item, Stalled>>> {
    let outcome = 'outcome: {
        let Some(mut stream) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if polled.is_none() {
            // Only a spent `total` budget ends the stream without a poll.
            if let Err(stalled) = monitor.before_poll() {
                break 'outcome Some(Err(stalled));
            }
        }
        // The source is always polled before any other stall is declared:
        // an item that is ready wins, however late the consumer is.
        loop {
            let answer = match polled.take() {
                Some(answer) => answer,
                None => {
                    let waker = monitor.source_waker(cx);
                    stream.as_mut().poll_next(&mut Context::from_waker(waker))
                }
            };
            match answer {
                Poll::Ready(Some(item)) => {
                    monitor.on_ready(1);
                    return Poll::Ready(Some(Ok(item)));
                }
                Poll::Ready(None) => break None,
                Poll::Pending => match monitor.on_pending(cx) {
                    Pending::Wait => return Poll::Pending,
                    // The first `Pending`: poll again with our waker.
                    Pending::PollAgain => continue,
                    Pending::Stalled(stalled) => break Some(Err(stalled)),
                },
            }
        }
    };
    end(slot, monitor, outcome)
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
