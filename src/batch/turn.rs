//! [`Turns`]: flush calls kept in batch order.
//!
//! Workers take batches in order under the batcher's lock but call the flush
//! function outside it (it is user code). Without a turn, two workers on a
//! multi-thread runtime could call it in either order. A turn is one counter:
//! the number of the next batch that may call the flush function.
//!
//! # Invariants
//!
//! 1. `next` only grows, and only by [`Turns::end`]: batch `n` ends its turn
//!    once it has called the flush function (or panicked in the call), which
//!    lets batch `n + 1` in.
//! 2. Every batch number is taken by exactly one worker, in order (the lock
//!    hands them out), and that worker ends its turn once it has called the
//!    function. So a worker waiting for its turn waits behind one that holds
//!    an earlier batch and is about to call, unless shutdown abandoned the
//!    flushes, which ends every wait (or the runtime dropped the worker
//!    ahead, and with it every worker behind).
//! 3. A waiter registers on `moved` before it reads `next` again, so an `end`
//!    between its first look and its registration is not missed.
//!
//! # Deadlock safety
//!
//! 1. No lock is held while waiting, and `end` takes only `Notify`'s own
//!    short internal lock, never the batcher's.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use super::primitives::{CancellationToken, Notify};
use crate::sync::atomic::{AtomicU64, Ordering};

/// The order in which batches call the flush function.
pub(super) struct Turns {
    /// The number of the next batch whose flush function may be called.
    next: AtomicU64,
    /// Woken when `next` moves.
    moved: Notify,
}

impl Turns {
    pub(super) fn new() -> Self {
        Turns {
            next: AtomicU64::new(0),
            moved: Notify::new(),
        }
    }

    /// Waits until batch `seq` may call the flush function: every earlier
    /// batch has called it. The wait is only ever for the short moment
    /// between an earlier worker taking its batch and calling the function,
    /// since batches are taken in order. Returns `false` if `abandon` was
    /// cancelled meanwhile (shutdown gave up; the batch is then already
    /// reported as abandoned).
    pub(super) async fn wait(&self, seq: u64, abandon: &CancellationToken) -> bool {
        // Acquire: pairs with `end`'s AcqRel, so the earlier batch's call
        // happened before this one's. The usual case, checked without
        // registering anywhere.
        if self.next.load(Ordering::Acquire) >= seq {
            return true;
        }
        loop {
            let mut moved = pin!(self.moved.notified());
            moved.as_mut().enable();
            // Acquire: as above; read after registering (invariant 3).
            if self.next.load(Ordering::Acquire) >= seq {
                return true;
            }
            let mut abandoned = pin!(abandon.cancelled());
            let abandoned = poll_fn(|cx| {
                if abandoned.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(true);
                }
                moved.as_mut().poll(cx).map(|()| false)
            })
            .await;
            if abandoned {
                return false;
            }
        }
    }

    /// Batch `seq` has called the flush function: the next batch's turn.
    pub(super) fn end(&self, seq: u64) {
        // AcqRel: releases this batch's call to the next waiter (see `wait`).
        // `fetch_max`, not a store: the counter never moves back, whatever
        // the order in which ends are seen.
        self.next.fetch_max(seq + 1, Ordering::AcqRel);
        self.moved.notify_waiters();
    }
}
