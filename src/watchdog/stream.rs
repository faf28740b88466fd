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
}

impl<S: Stream> Stream for Watchdog<S> {
    type Item = Result<S::Item, Stalled>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut me = self.project();
        let Some(mut stream) = me.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match me.monitor.poll(cx, |cx| stream.as_mut().poll_next(cx)) {
            Polled::Ready(Some(item)) => {
                me.monitor.count(1);
                Poll::Ready(Some(Ok(item)))
            }
            Polled::Pending => Poll::Pending,
            Polled::Ready(None) => end(me.stream, me.monitor, None),
            Polled::Stalled(stalled) => end(me.stream, me.monitor, Some(Err(stalled))),
        }
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
