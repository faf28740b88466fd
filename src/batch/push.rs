//! [`Push`]: the future returned by [`Batcher::push`] and
//! [`Batcher::push_by`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::Instant;

use super::batcher::Batcher;
use super::error::PushError;
use super::primitives::Notified;
use super::state::{Rejected, Shared};

/// Future for [`Batcher::push`] and [`Batcher::push_by`]: resolves once the
/// item is accepted, or hands it back if the batcher is shut down.
///
/// When there is room it completes in its first poll, with one lock and no
/// allocation; only a push that must wait for room allocates its waiter.
///
/// # Cancel safety
///
/// Dropping it before it completes leaves the item unaccepted (it is dropped
/// with the future).
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
    shared: &'a Arc<Shared<T>>,
    item: Option<T>,
    deadline: Option<Instant>,
    /// Registered while waiting for room.
    room: Option<Pin<Box<Notified<'a>>>>,
}

// The item is only ever moved, never pinned, so `Push` can be `Unpin` even
// when `T` is not.
impl<T: Send + 'static> Unpin for Push<'_, T> {}

impl<'a, T: Send + 'static> Push<'a, T> {
    pub(super) fn new(batcher: &'a Batcher<T>, item: T, deadline: Option<Instant>) -> Self {
        Push {
            shared: batcher.shared(),
            item: Some(item),
            deadline,
            room: None,
        }
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
                match this.shared.insert(item, this.deadline.as_ref()) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(Rejected::Closed(item)) => return Poll::Ready(Err(PushError(item))),
                    Err(Rejected::Full(item)) => this.item = Some(item),
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
            let mut room = Box::pin(self.shared.room.notified());
            room.as_mut().enable();
            match self.shared.insert(item, self.deadline.as_ref()) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(Rejected::Closed(item)) => return Poll::Ready(Err(PushError(item))),
                Err(Rejected::Full(item)) => {
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
