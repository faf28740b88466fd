//! A flush worker: one of at most `max_in_flight` tasks. It takes batches in
//! order, runs the flush function on each, and records the outcome; when
//! nothing is ready it parks until woken, and it exits once the batcher is
//! closed and drained.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use super::state::{Finished, Outcome, Shared};

pub(super) async fn run<T: Send + 'static>(shared: Arc<Shared<T>>, worker: u64) {
    // If this future is dropped half way (the runtime shuts down), the slot
    // must not stay taken and a running flush must be reported.
    let guard = SlotGuard {
        shared: &shared,
        worker,
        done: false,
    };
    let mut finished = None;
    while let Some(batch) = poll_fn(|cx| shared.next_for(worker, &mut finished, cx.waker())).await {
        let size = batch.items.len();
        let seq = batch.seq;
        // Batches start in order: call the flush function only after every earlier
        // batch has called it (shutdown's abandon token ends the wait; the batch is
        // then already reported as abandoned).
        if !shared.wait_turn(seq).await {
            break;
        }
        let flush = catch_unwind(AssertUnwindSafe(|| (shared.flush)(batch.items)));
        shared.end_turn(seq);
        let outcome = match flush {
            Ok(future) => {
                let mut future = pin!(future);
                let mut abandoned = pin!(shared.abandon.cancelled());
                let finished = poll_fn(|cx| {
                    match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                        Ok(Poll::Ready(outcome)) => return Poll::Ready(Some(outcome)),
                        Err(panic) => {
                            note_panic(&*panic);
                            return Poll::Ready(Some(Outcome::Panicked));
                        }
                        Ok(Poll::Pending) => {}
                    }
                    // Shutdown's grace period ran out: it has already
                    // reported this flush as abandoned; drop it now.
                    match abandoned.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await;
                match finished {
                    Some(outcome) => outcome,
                    None => break,
                }
            }
            Err(panic) => {
                note_panic(&*panic);
                Outcome::Panicked
            }
        };
        finished = Some(Finished { seq, size, outcome });
    }
    let mut guard = guard;
    guard.done = true;
}

struct SlotGuard<'a, T: Send + 'static> {
    shared: &'a Arc<Shared<T>>,
    worker: u64,
    done: bool,
}

impl<T: Send + 'static> Drop for SlotGuard<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.worker_dropped(self.worker);
        }
    }
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn note_panic(panic: &(dyn Any + Send)) {
    #[cfg(feature = "tracing")]
    {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        tracing::error!(panic = message, "hangfree batch flush panicked");
    }
}
