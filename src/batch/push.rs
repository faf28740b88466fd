//! Accepting an item: the push path's rule (`BatcherState::insert`), and
//! [`Push`], the future that waits for room.
//!
//! An accepted item joins the open batch. The first item of a batch reads
//! the clock once, for the batch's due time; a deadline can only move that
//! time earlier. A batch that fills is sealed and a worker claimed for it; a
//! due time moved earlier than the driver's timer wakes the driver (and
//! nothing else does, see `driver.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;

use super::error::{PushError, Refused};
use super::primitives::{Notified, now};
use super::state::{BatcherState, Ledger};
use crate::sync::MutexGuard;

impl<T: Send + 'static> BatcherState<T> {
    /// Accepts `item`, or says why not.
    ///
    /// The deadline comes by reference: for `None` only its niche is read,
    /// never the (unwritten) seconds, which would stall the load on the
    /// caller's freshly written future.
    #[inline]
    pub(super) fn insert(
        self: &Arc<Self>,
        item: T,
        deadline: Option<&Instant>,
    ) -> Result<(), Refused<T>> {
        self.insert_up_to(self.config.capacity, item, deadline)
    }

    /// `insert`, with room for `limit` pending items instead of `capacity`:
    /// a sink that was told there is room passes `usize::MAX` (`sink.rs`).
    #[inline]
    pub(super) fn insert_up_to(
        self: &Arc<Self>,
        limit: usize,
        item: T,
        deadline: Option<&Instant>,
    ) -> Result<(), Refused<T>> {
        let mut ledger = self.lock();
        // The common case under load, kept small enough to inline: the batch
        // is open, there is room, no deadline, and the batch does not fill.
        if deadline.is_none()
            && !ledger.closed
            && !ledger.open.is_empty()
            && ledger.pending < limit
            && ledger.open.len() + 1 < self.config.max_items
        {
            ledger.open.push(item);
            ledger.pending += 1;
            ledger.counts.accepted += 1;
            return Ok(());
        }
        self.insert_slow(ledger, limit, item, deadline)
    }

    /// `true` if a push would not wait now: fewer than `capacity` items are
    /// pending, or the batcher is closed (the push would hand its item back).
    #[cfg(feature = "sink")]
    pub(super) fn has_room(&self) -> bool {
        let ledger = self.lock();
        ledger.closed || ledger.pending < self.config.capacity
    }

    #[inline(never)]
    fn insert_slow(
        self: &Arc<Self>,
        mut ledger: MutexGuard<'_, Ledger<T>>,
        limit: usize,
        item: T,
        deadline: Option<&Instant>,
    ) -> Result<(), Refused<T>> {
        let config = &self.config;
        if ledger.closed {
            return Err(Refused::Closed(item));
        }
        if ledger.pending >= limit {
            return Err(Refused::Full(item));
        }
        let mut due_moved = false;
        if ledger.open.is_empty() {
            // The only clock read on the push path: once per batch, when its
            // oldest item arrives.
            ledger.open_due = now().checked_add(config.max_delay);
            ledger.open_overdue = false;
            // Bounded: a huge `max_items` grows the batch as items come, instead of
            // reserving (or failing to reserve) its whole size up front.
            ledger.open.reserve_exact(config.max_items.min(1024));
            due_moved = true;
        }
        if let Some(&deadline) = deadline {
            // A margin reaching back past the earliest instant the clock can
            // express reaches past now too: the batch is due at once.
            let flush_by = deadline.checked_sub(config.margin).unwrap_or_else(now);
            if ledger.open_due.is_none_or(|due| flush_by < due) {
                ledger.open_due = Some(flush_by);
                due_moved = true;
            }
        }
        ledger.open.push(item);
        ledger.pending += 1;
        ledger.counts.accepted += 1;

        // A full batch goes to a worker; otherwise the driver must know if
        // the open batch is now due earlier than its timer.
        let mut wake = None;
        let mut claim = None;
        if ledger.open.len() >= config.max_items {
            ledger.seal_open();
            claim = ledger.claim_worker(config);
        } else if due_moved && !ledger.open_overdue {
            // No due time: the driver has nothing to time until a deadline
            // comes, and waits to be woken.
            if let Some(due) = ledger.open_due {
                wake = ledger.driver.before(due);
            }
        }
        drop(ledger);
        if let Some(waker) = wake {
            waker.wake();
        }
        if let Some(claim) = claim {
            self.start(claim);
        }
        Ok(())
    }
}

/// Future for [`Batcher::push`](super::Batcher::push) and
/// [`Batcher::push_by`](super::Batcher::push_by): resolves once the item is
/// accepted, or hands it back if the batcher is shut down.
///
/// When there is room it completes in its first poll, with one lock and no
/// allocation; only a push that must wait for room allocates its waiter.
///
/// # Cancel safety
///
/// Dropping it before it completes leaves the item unaccepted (it is dropped
/// with the future). To keep the item when giving up on a push that waits for
/// room, poll the push through `&mut` (it is `Unpin`) and take the item back
/// with [`into_item`](Self::into_item).
///
/// # Panics
///
/// Like most futures, if polled again after it completed.
///
/// # Examples
///
/// ```
/// use hangfree::batch::{Batcher, FlushError, Push};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let batcher = Batcher::builder()
///         .build(|_: Vec<u32>| async { Ok::<(), FlushError<u32, String>>(()) })
///         .unwrap();
///     let push: Push<'_, u32> = batcher.push(1);
///     push.await.unwrap();
/// }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Push<'a, T: Send + 'static> {
    state: &'a Arc<BatcherState<T>>,
    item: Option<T>,
    deadline: Option<Instant>,
    /// Registered while waiting for room.
    room: Option<Pin<Box<Notified<'a>>>>,
}

// The item is only ever moved, never pinned, so `Push` can be `Unpin` even
// when `T` is not.
impl<T: Send + 'static> Unpin for Push<'_, T> {}

impl<'a, T: Send + 'static> Push<'a, T> {
    pub(super) fn new(state: &'a Arc<BatcherState<T>>, item: T, deadline: Option<Instant>) -> Self {
        Push {
            state,
            item: Some(item),
            deadline,
            room: None,
        }
    }
}

impl<T: Send + 'static> Push<'_, T> {
    /// The item, if the batcher has not accepted it: for a push given up on while it
    /// waits for room, so that the item is not lost with the future. `None` once the
    /// push has completed (the item accepted, or handed back in its error).
    ///
    /// # Examples
    ///
    /// A batcher with room for one pending item (one not yet handed to a flush), whose
    /// flush is stuck, and a producer that stops waiting for room after a second, keeping
    /// its item (to put back on its queue, say):
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::batch::{Batcher, FlushError};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let batcher = Batcher::builder()
    ///         .capacity(1)
    ///         .max_items(1)
    ///         .build(|_: Vec<u32>| std::future::pending::<Result<(), FlushError<u32, String>>>())
    ///         .unwrap();
    ///     batcher.push(1).await.unwrap();
    ///     tokio::task::yield_now().await; // 1 goes to the flush, which never ends
    ///     batcher.push(2).await.unwrap(); // 2 waits for the flush: no room now
    ///
    ///     let mut push = batcher.push(3);
    ///     tokio::select! {
    ///         pushed = &mut push => unreachable!("accepted without room: {pushed:?}"),
    ///         () = tokio::time::sleep(Duration::from_secs(1)) => {
    ///             assert_eq!(push.into_item(), Some(3), "not accepted, and not lost");
    ///         }
    ///     }
    ///     # drop(batcher.shutdown(Duration::from_secs(1)).await);
    /// }
    /// ```
    pub fn into_item(self) -> Option<T> {
        self.item
    }
}

impl<T: Send + 'static> Future for Push<'_, T> {
    type Output = Result<(), PushError<T>>;

    // The fast path is small and inlined into the caller's state machine,
    // so the freshly built future's fields need not round-trip through
    // memory; waiting for room is out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.room.is_none() {
            if let Some(item) = this.item.take() {
                match this.state.insert(item, this.deadline.as_ref()) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(Refused::Closed(item)) => return Poll::Ready(Err(PushError::new(item))),
                    Err(Refused::Full(item)) => this.item = Some(item),
                }
            }
        }
        this.poll_waiting(cx)
    }
}

impl<T: Send + 'static> Push<'_, T> {
    #[cold]
    #[inline(never)]
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PushError<T>>> {
        loop {
            if let Some(room) = self.room.as_mut() {
                ready!(room.as_mut().poll(cx));
                self.room = None;
            }
            let item = self.item.take().expect("`Push` polled after it completed");
            // Register before looking again, so room made in between is not
            // missed.
            let mut room = Box::pin(self.state.room.notified());
            room.as_mut().enable();
            match self.state.insert(item, self.deadline.as_ref()) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(Refused::Closed(item)) => return Poll::Ready(Err(PushError::new(item))),
                Err(Refused::Full(item)) => {
                    self.item = Some(item);
                    self.room = Some(room);
                }
            }
        }
    }
}

impl<T: Send + 'static> fmt::Debug for Push<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("deadline", &self.deadline)
            .field("waiting_for_room", &self.room.is_some())
            .field("done", &self.item.is_none())
            .finish()
    }
}
