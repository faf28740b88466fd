//! The timer driver: one task per batcher that flushes the open batch when
//! it is due (oldest item's age, or a deadline minus the margin).
//!
//! It is woken by `push` only when a batch opens or a deadline moves the due
//! time earlier than the driver's timer; under load, when batches fill before
//! they are due, it wakes about once per `max_delay`, not once per batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep_until};

use super::state::Shared;

pin_project! {
    pub(super) struct Driver<T> {
        shared: Arc<Shared<T>>,
        #[pin]
        sleep: Sleep,
    }
}

impl<T: Send + 'static> Driver<T> {
    pub(super) fn new(shared: Arc<Shared<T>>) -> Self {
        Driver {
            shared,
            sleep: sleep_until(tokio::time::Instant::now()),
        }
    }
}

impl<T: Send + 'static> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            match this.shared.drive(cx.waker()) {
                Err(()) => return Poll::Ready(()),
                Ok(None) => return Poll::Pending,
                Ok(Some(due)) => {
                    if this.sleep.deadline() != due {
                        this.sleep.as_mut().reset(due);
                    }
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Due: look again, now that the clock has moved.
                }
            }
        }
    }
}
