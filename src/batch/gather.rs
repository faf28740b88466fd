//! [`Gather`]: what [`Batched`](super::Batched) and
//! [`BatchedBy`](super::BatchedBy) share — the flush rule for batches that
//! the consumer pulls.
//!
//! One poll drains what the source has ready into the batch, up to
//! `max_items`, then yields the batch if it is full, if it is due (its oldest
//! item's age, or the earliest deadline minus the margin), or if the source
//! ended. Otherwise it waits on the source and on one timer set for the due
//! time. The clock is read once per batch, when its first item arrives.
//!
//! A batch that fell due while the consumer was away takes what the source
//! has ready before it is yielded, as a `Batcher`'s open batch keeps
//! accepting items while every flush slot is busy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

pin_project! {
    /// The source, the batch being gathered, its due time and its timer.
    pub(super) struct Gather<S, T> {
        #[pin]
        source: S,
        // The source has ended: the remainder was yielded, nothing follows.
        ended: bool,
        items: Vec<T>,
        max_items: usize,
        max_delay: Duration,
        // When the gathered batch is due; `None` while nothing is gathered,
        // or while neither its age (`max_delay(Duration::MAX)`) nor a
        // deadline can make it due.
        due: Option<Instant>,
        // Set at the first due time, re-armed for later ones.
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<S: Stream, T> Gather<S, T> {
    /// # Panics
    ///
    /// If `max_items` is zero.
    #[track_caller]
    pub(super) fn new(source: S, max_items: usize, max_delay: Duration) -> Self {
        if max_items == 0 {
            panic!("{}", super::BuildError::ZeroStreamMaxItems);
        }
        Gather {
            source,
            ended: false,
            items: Vec::new(),
            max_items,
            max_delay,
            due: None,
            timer: None,
        }
    }

    pub(super) fn source(&self) -> &S {
        &self.source
    }

    pub(super) fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    pub(super) fn source_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().source
    }

    pub(super) fn pending(&self) -> usize {
        self.items.len()
    }

    pub(super) fn take_pending(self: Pin<&mut Self>) -> Vec<T> {
        let this = self.project();
        *this.due = None;
        std::mem::take(this.items)
    }

    /// The next batch: `split` turns a source item into the batch's item and
    /// the instant by which it must be yielded, if any.
    pub(super) fn poll_batch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut split: impl FnMut(S::Item) -> (T, Option<Instant>),
    ) -> Poll<Option<Vec<T>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        loop {
            match this.source.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let (item, yield_by) = split(item);
                    if this.items.is_empty() {
                        // The one clock read per batch.
                        *this.due = Instant::now().checked_add(*this.max_delay);
                        // Bounded: a huge `max_items` grows the batch as items come.
                        this.items.reserve_exact((*this.max_items).min(1024));
                    }
                    if let Some(yield_by) = yield_by {
                        if this.due.is_none_or(|due| yield_by < due) {
                            *this.due = Some(yield_by);
                        }
                    }
                    this.items.push(item);
                    if this.items.len() >= *this.max_items {
                        *this.due = None;
                        return Poll::Ready(Some(std::mem::take(this.items)));
                    }
                }
                Poll::Ready(None) => {
                    *this.ended = true;
                    *this.due = None;
                    if this.items.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(std::mem::take(this.items)));
                }
                Poll::Pending => break,
            }
        }
        // Nothing gathered, or nothing that can fall due: the source's wake
        // is the only one to wait for.
        let Some(due) = *this.due else {
            return Poll::Pending;
        };
        match this.timer.as_mut().as_pin_mut() {
            Some(timer) if timer.deadline() == due => {}
            Some(timer) => timer.reset(due),
            None => this.timer.set(Some(sleep_until(due))),
        }
        let Some(timer) = this.timer.as_pin_mut() else {
            return Poll::Pending;
        };
        // A due time already past (a deadline inside the margin) fires at
        // its first poll.
        if timer.poll(cx).is_pending() {
            return Poll::Pending;
        }
        *this.due = None;
        Poll::Ready(Some(std::mem::take(this.items)))
    }

    pub(super) fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            return (0, Some(0));
        }
        let (lower, upper) = self.source.size_hint();
        let gathered = self.items.len();
        // At least as many batches as full ones hold the items; at most one
        // for what is gathered (it is yielded together) plus one per item.
        let lower = gathered.saturating_add(lower).div_ceil(self.max_items);
        let upper = upper.and_then(|upper| upper.checked_add(usize::from(gathered > 0)));
        (lower, upper)
    }
}
