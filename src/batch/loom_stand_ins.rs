//! Loom stand-ins for the tokio and tokio-util pieces the batcher's hand-offs
//! use (`primitives.rs` swaps them in under `cfg(all(test, loom))`), and a
//! runner whose tasks are loom threads.
//!
//! Each keeps the documented guarantee the batcher relies on, and no more:
//!
//! - [`Notify`]: `notify_waiters` wakes every [`Notified`] created before
//!   the call, polled or not (tokio documents this for `Notify::notified`);
//!   no permit is stored for later ones.
//! - [`CancellationToken`]: once `cancel` has returned, every `cancelled()`
//!   future completes, including those created earlier.
//! - [`now`]: the clock stands still, so control flow never depends on real
//!   time: a batch is due by age never, by a deadline already passed at once.
//!
//! [`block_on`] runs a future on a loom thread (loom's own needs its
//! `futures` feature).

use std::future::Future;
use std::mem;
use std::pin::{Pin, pin};
use std::sync::OnceLock;
use std::task::{Context, Poll, Wake, Waker};

use tokio::time::Instant;

use super::error::BuildError;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{Mutex, lock};

/// The model's clock: one instant, fixed for the whole process.
pub(super) fn now() -> Instant {
    static FIXED: OnceLock<Instant> = OnceLock::new();
    *FIXED.get_or_init(Instant::now)
}

/// Runs `future` to completion on the current loom thread, blocked while it
/// is pending; its waker notifies the thread through loom's `Notify`, whose
/// notification persists until waited for. (A park token would not: loom
/// drops it when the thread blocks on a mutex in between.)
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    struct Wakeup(loom::sync::Notify);

    impl Wake for Wakeup {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
    }

    let wakeup = std::sync::Arc::new(Wakeup(loom::sync::Notify::new()));
    let waker = Waker::from(std::sync::Arc::clone(&wakeup));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        wakeup.0.wait();
    }
}

/// tokio's `Notify`, `notify_waiters` half.
pub(super) struct Notify {
    /// How many times `notify_waiters` was called: a `Notified` created
    /// when the count was lower has been notified. Changed only under
    /// `waiters`' lock, read without it when a `Notified` is created.
    calls: AtomicU64,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_key: u64,
    wakers: Vec<(u64, Waker)>,
}

impl Notify {
    pub(super) fn new() -> Self {
        Notify {
            calls: AtomicU64::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    pub(super) fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            // Acquire: pairs with the Release in `notify_waiters`, so what
            // was written before a notification seen here is visible.
            seen: self.calls.load(Ordering::Acquire),
            key: None,
        }
    }

    pub(super) fn notify_waiters(&self) {
        let wakers = {
            let mut waiters = lock(&self.waiters);
            // Release: see `notified`. Under the lock, so a `poll` that
            // registers after this sees the new count.
            self.calls.fetch_add(1, Ordering::Release);
            mem::take(&mut waiters.wakers)
        };
        for (_, waker) in wakers {
            waker.wake();
        }
    }
}

/// tokio's `Notified`.
pub(super) struct Notified<'a> {
    notify: &'a Notify,
    seen: u64,
    key: Option<u64>,
}

impl Notified<'_> {
    /// Receiving `notify_waiters` needs no registration here (see `seen`).
    pub(super) fn enable(self: Pin<&mut Self>) -> bool {
        // Acquire: as in `Notify::notified`.
        self.notify.calls.load(Ordering::Acquire) != self.seen
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut waiters = lock(&this.notify.waiters);
        // Relaxed: the lock orders it after every change (all are made
        // under it).
        if this.notify.calls.load(Ordering::Relaxed) != this.seen {
            if let Some(key) = this.key.take() {
                waiters.wakers.retain(|(k, _)| *k != key);
            }
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => {
                if let Some((_, waker)) = waiters.wakers.iter_mut().find(|(k, _)| *k == key) {
                    waker.clone_from(cx.waker());
                }
            }
            None => {
                let key = waiters.next_key;
                waiters.next_key += 1;
                waiters.wakers.push((key, cx.waker().clone()));
                this.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            lock(&self.notify.waiters).wakers.retain(|(k, _)| *k != key);
        }
    }
}

/// tokio-util's `CancellationToken`, for a token without children.
pub(super) struct CancellationToken {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancellationToken {
    pub(super) fn new() -> Self {
        CancellationToken {
            cancelled: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Marks, then wakes, as tokio-util does for the token itself.
    pub(super) fn cancel(&self) {
        // Release: a waiter whose `notified()` was created after the wake
        // below (under the notify's lock) sees the mark; one created before
        // is woken by it.
        self.cancelled.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(super) fn cancelled(&self) -> Cancelled<'_> {
        Cancelled {
            token: self,
            notified: self.notify.notified(),
        }
    }
}

/// tokio-util's `WaitForCancellationFuture`.
pub(super) struct Cancelled<'a> {
    token: &'a CancellationToken,
    notified: Notified<'a>,
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Acquire: pairs with `cancel`'s Release.
        if this.token.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        // `Notified` is `Unpin`: it is only ever moved, never pinned.
        Pin::new(&mut this.notified).poll(cx)
    }
}

/// The batcher's runner, spawning each task on a loom thread; the model
/// joins them all at its end.
#[derive(Clone, Default)]
pub(super) struct Runner {
    // std's: only the model's bookkeeping, never held across a loom operation.
    threads: std::sync::Arc<std::sync::Mutex<Vec<loom::thread::JoinHandle<()>>>>,
}

impl Runner {
    pub(super) fn current() -> Result<Self, BuildError> {
        Ok(Runner::default())
    }

    pub(super) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let thread = loom::thread::spawn(move || block_on(task));
        lock(&*self.threads).push(thread);
    }

    /// Joins every task spawned so far, and every task they spawn.
    pub(super) fn join_all(&self) {
        loop {
            let next = lock(&*self.threads).pop();
            match next {
                Some(thread) => thread.join().expect("a batcher task panicked"),
                None => return,
            }
        }
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}
