//! [`IoWatchdog`], the adapter for readers and writers: one monitor per
//! direction, each call on the inner object made through its direction's
//! monitor, and one stall that ends both.
//!
//! # Invariants
//!
//! 1. Once a call in either direction stalls, `stalled` holds its report and
//!    `inner` is `None`, for good: every later call, in both directions,
//!    returns the same `TimedOut` error without reaching the inner object.
//!    A stalled read never becomes `Ok(0)`, a clean end of file.
//! 2. When either direction stalls, both monitors finish: no timer stays
//!    registered and neither direction's waker keeps a consumer's task.
//! 3. The task that last waited on the other direction is woken at the
//!    stall. The wakers it left were held by the inner object, now dropped,
//!    and by that direction's waker slot, from which it is taken and woken;
//!    without that wake the other half of a `tokio::io::split` would wait
//!    for ever.
//! 4. Each monitor sees only its own direction's calls: `read` sees
//!    `poll_read` and `poll_fill_buf`, `write` sees `poll_write`,
//!    `poll_write_vectored`, `poll_flush` and `poll_shutdown`. `consume`
//!    counts read bytes outside a poll, and `set_read_limits` /
//!    `set_write_limits` reach only their own direction's monitor (after a
//!    stall both are finished, so invariant 1 holds whatever is set).
//!
//! # Deadlock safety
//!
//! `IoWatchdog` holds no lock. The halves of a split share it under
//! tokio's split lock, held across one call; the wake of invariant 3 is made
//! from inside that call, after our waker slot's lock is released, and only
//! schedules the other task, which then waits for the split lock like any
//! call.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::monitor::{Monitor, Polled};
use super::{Limits, Progress, Stalled};

pin_project! {
    /// Watches reads and writes on any [`AsyncRead`], [`AsyncWrite`] or
    /// [`AsyncBufRead`], each direction with its own [`Limits`].
    ///
    /// The idle clock of a direction runs while that direction's calls
    /// return `Pending` (for writes: `poll_write`, `poll_flush` and
    /// `poll_shutdown`) and stops when the inner object wakes the task or a
    /// call completes. When a limit trips, the
    /// call returns an [`io::Error`] of kind [`io::ErrorKind::TimedOut`]
    /// whose source is the [`Stalled`] report, the inner I/O object is
    /// dropped at once (closing a socket), and **every later call errors the
    /// same way**: a stalled read never looks like a clean end of file. A
    /// task waiting on the other direction (the other half of a
    /// [`tokio::io::split`]) is woken then and gets the same error.
    ///
    /// Progress is counted in bytes, so [`Limits::min_rate`] is bytes per
    /// window.
    ///
    /// A call that completes ends its direction's wait even if it moved no
    /// bytes (a flush with nothing to flush, a zero-length write, an error),
    /// as in tokio-io-timeout. So a writer that gives up on a pending write
    /// now and then and flushes meanwhile never reaches its `idle` limit,
    /// however long the peer accepts nothing. [`Limits::min_rate`] judges the
    /// bytes moved over the waiting, which such calls do not reset: a
    /// `min_rate` of one byte per window catches it.
    ///
    /// # Cancel safety
    ///
    /// Each call is as cancel safe as the same call on the inner object:
    /// the watchdog moves no data itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use hangfree::watchdog::{IoWatchdog, Limits, Stalled};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (client, mut server) = tokio::io::duplex(64 * 1024);
    ///     server.write_all(b"id,name\n1,ada\n").await.unwrap();
    ///     // The server keeps the connection open but sends nothing more.
    ///
    ///     let mut csv = IoWatchdog::new(client, Limits::new().idle(Duration::from_secs(30)));
    ///     let mut text = String::new();
    ///     let err = csv.read_to_string(&mut text).await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    ///     let stalled = err.get_ref().and_then(|e| e.downcast_ref::<Stalled>()).unwrap();
    ///     assert_eq!(stalled.progress().count(), 14);
    ///
    ///     // Never `Ok(0)`: the truncated file cannot pass for a complete one.
    ///     assert!(csv.read(&mut [0; 16]).await.is_err());
    ///     # drop(server);
    /// }
    /// ```
    #[derive(Debug)]
    pub struct IoWatchdog<T> {
        #[pin]
        inner: Option<T>,
        read: Monitor,
        write: Monitor,
        stalled: Option<Stalled>,
    }
}

impl<T> IoWatchdog<T> {
    /// Watches `inner`, with `limits` on reads and on writes alike.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{IoWatchdog, Limits};
    ///
    /// let (socket, _peer) = tokio::io::duplex(1024);
    /// let socket = IoWatchdog::new(socket, Limits::new().idle(Duration::from_secs(30)));
    /// # let _ = socket;
    /// ```
    pub fn new(inner: T, limits: Limits) -> Self {
        IoWatchdog {
            inner: Some(inner),
            read: Monitor::new(limits, Progress::BytesRead(0)),
            write: Monitor::new(limits, Progress::BytesWritten(0)),
            stalled: None,
        }
    }

    /// Replaces the limits on reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{IoWatchdog, Limits};
    ///
    /// let (socket, _peer) = tokio::io::duplex(1024);
    /// // Reads may idle for 5 minutes; writes are not watched.
    /// let socket = IoWatchdog::new(socket, Limits::new())
    ///     .read_limits(Limits::new().idle(Duration::from_secs(300)));
    /// # let _ = socket;
    /// ```
    pub fn read_limits(mut self, limits: Limits) -> Self {
        self.read.set_limits(limits);
        self
    }

    /// Replaces the limits on writes (including flushes and shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::watchdog::{IoWatchdog, Limits};
    ///
    /// let (socket, _peer) = tokio::io::duplex(1024);
    /// // A peer that stops reading for 10 seconds is stalled.
    /// let socket = IoWatchdog::new(socket, Limits::new())
    ///     .write_limits(Limits::new().idle(Duration::from_secs(10)));
    /// # let _ = socket;
    /// ```
    pub fn write_limits(mut self, limits: Limits) -> Self {
        self.write.set_limits(limits);
        self
    }

    /// Replaces the limits on reads from the next read on: for a protocol
    /// whose phases need different limits (headers, then a body). The
    /// limits on writes are left as they are.
    ///
    /// Every clock keeps running; only the limit it is held to changes:
    ///
    /// | limit | under the new limits |
    /// |---|---|
    /// | `idle`, `first_item` | the wait measured since the last read that moved data goes on, held to the new limit |
    /// | `total` | still counted from the first read: reads end at the first read plus the new `total` |
    /// | `min_rate` | an unchanged rate keeps its window; a new rate starts a new window now, counting bytes from now |
    /// | progress | kept: [`bytes_read`](Self::bytes_read) and a stall's report count from the start |
    ///
    /// A limit that is already exceeded trips at the next read, by the usual
    /// rules: `total` without calling the inner reader, the others only
    /// after it answered `Pending`, so data that is ready is still read. Set
    /// while a read waits, a deadline that moved earlier wakes the task
    /// waiting on the read, so that the new limit is enforced on time.
    /// Before the first read this is the same as
    /// [`read_limits`](Self::read_limits); after a stall it does nothing:
    /// every call still fails.
    ///
    /// Compare tokio-io-timeout's `TimeoutStream::set_read_timeout_pinned`,
    /// which restarts a pending countdown from zero: here the silence
    /// already measured counts against the new limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    /// use hangfree::watchdog::{IoWatchdog, Limits, StallKind, Stalled};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (client, mut server) = tokio::io::duplex(64 * 1024);
    ///     server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    ///     server.write_all(&[b'x'; 100]).await.unwrap();
    ///     // Then the server drip-feeds the rest of the body, or sends nothing.
    ///
    ///     // Headers: no 10 s of silence.
    ///     let headers = Limits::new().idle(Duration::from_secs(10));
    ///     let mut response =
    ///         std::pin::pin!(BufReader::new(IoWatchdog::new(client, Limits::new()).read_limits(headers)));
    ///     let mut line = String::new();
    ///     while line != "\r\n" {
    ///         line.clear();
    ///         response.read_line(&mut line).await.unwrap();
    ///     }
    ///
    ///     // The body: at least 1 KiB per 10 s of waiting.
    ///     let body = Limits::new().idle(Duration::from_secs(60)).min_rate(1024, Duration::from_secs(10));
    ///     response.as_mut().get_pin_mut().set_read_limits(body);
    ///     let mut bytes = Vec::new();
    ///     let err = response.read_to_end(&mut bytes).await.unwrap_err();
    ///     let stalled = Stalled::find_in(&err).unwrap();
    ///     assert_eq!(stalled.kind(), StallKind::TooSlow);
    ///     assert_eq!(bytes.len(), 100);
    ///     # drop(server);
    /// }
    /// ```
    pub fn set_read_limits(self: Pin<&mut Self>, limits: Limits) {
        self.project().read.set_limits(limits);
    }

    /// Replaces the limits on writes (including flushes and shutdown) from
    /// the next write on; the limits on reads are left as they are.
    ///
    /// The rules are [`set_read_limits`](Self::set_read_limits)', for the
    /// write direction: the clocks keep running, `total` counts from the
    /// first write, a changed `min_rate` starts a new window, an exceeded
    /// limit trips at the next write once the inner writer answered
    /// `Pending`, and after a stall nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::io::AsyncWriteExt;
    /// use hangfree::watchdog::{IoWatchdog, Limits};
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (socket, _peer) = tokio::io::duplex(64 * 1024);
    ///     let mut socket = std::pin::pin!(
    ///         IoWatchdog::new(socket, Limits::new()).write_limits(Limits::new().idle(Duration::from_secs(5)))
    ///     );
    ///     socket.write_all(b"HELLO\n").await.unwrap();
    ///     // The upload that follows may wait on a slow peer for up to a minute.
    ///     socket.as_mut().set_write_limits(Limits::new().idle(Duration::from_secs(60)));
    ///     socket.write_all(&[0; 1024]).await.unwrap();
    ///     assert_eq!(socket.bytes_written(), 1030);
    /// }
    /// ```
    pub fn set_write_limits(self: Pin<&mut Self>, limits: Limits) {
        self.project().write.set_limits(limits);
    }

    /// The stall report, once a limit has tripped.
    pub fn stalled(&self) -> Option<&Stalled> {
        self.stalled.as_ref()
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.progress()
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.write.progress()
    }

    /// The inner I/O object, or `None` once it stalled (it is dropped then).
    pub fn get_ref(&self) -> Option<&T> {
        self.inner.as_ref()
    }

    /// The inner I/O object, mutably, or `None` once it stalled.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.inner.as_mut()
    }

    /// The pinned inner I/O object, or `None` once it stalled.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Option<Pin<&mut T>> {
        self.project().inner.as_pin_mut()
    }

    /// Unwraps the inner I/O object, or `None` once it stalled.
    pub fn into_inner(self) -> Option<T> {
        self.inner
    }
}

/// Which direction a call belongs to.
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl<T> IoWatchdog<T> {
    /// Runs one call on the inner object under the monitor of `direction`.
    /// `call` returns the inner answer and the bytes it moved.
    fn guard<R>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        direction: Direction,
        mut call: impl FnMut(Pin<&mut T>, &mut Context<'_>) -> Poll<(io::Result<R>, u64)>,
    ) -> Poll<io::Result<R>> {
        let mut me = self.project();
        if let Some(stalled) = me.stalled {
            // Invariant 1.
            return Poll::Ready(Err(stalled.clone().into()));
        }
        let Some(mut inner) = me.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let (monitor, other) = match direction {
            Direction::Read => (&mut *me.read, &mut *me.write),
            Direction::Write => (&mut *me.write, &mut *me.read),
        };
        match monitor.poll(cx, |cx| call(inner.as_mut(), cx)) {
            Polled::Ready((answer, moved)) => {
                monitor.count(moved);
                Poll::Ready(answer)
            }
            Polled::Pending => Poll::Pending,
            Polled::Stalled(stalled) => {
                // Invariants 1 to 3: drop the connection at once, wake the
                // task waiting on the other direction (its wakers went with
                // the connection), and remember why for every later call.
                me.inner.set(None);
                other.wake_waiter();
                monitor.finish();
                other.finish();
                *me.stalled = Some(stalled.clone());
                Poll::Ready(Err(stalled.into()))
            }
        }
    }
}

/// The inner object was taken out; only reachable through misuse of
/// `get_pin_mut` after a stall, which already returned `None`.
fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the watched I/O object is gone",
    )
}

impl<T: AsyncRead> AsyncRead for IoWatchdog<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.guard(cx, Direction::Read, |inner, cx| {
            let before = buf.filled().len();
            inner.poll_read(cx, buf).map(|answer| {
                let moved = buf.filled().len().saturating_sub(before);
                (answer, moved as u64)
            })
        })
    }
}

impl<T: AsyncWrite> AsyncWrite for IoWatchdog<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, Direction::Write, |inner, cx| {
            inner.poll_write(cx, buf).map(|answer| {
                let moved = answer.as_ref().map_or(0, |n| *n as u64);
                (answer, moved)
            })
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.guard(cx, Direction::Write, |inner, cx| {
            inner.poll_write_vectored(cx, bufs).map(|answer| {
                let moved = answer.as_ref().map_or(0, |n| *n as u64);
                (answer, moved)
            })
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(T::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, Direction::Write, |inner, cx| {
            inner.poll_flush(cx).map(|answer| (answer, 0))
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.guard(cx, Direction::Write, |inner, cx| {
            inner.poll_shutdown(cx).map(|answer| (answer, 0))
        })
    }
}

impl<T: AsyncBufRead> AsyncBufRead for IoWatchdog<T> {
    fn poll_fill_buf(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        // First wait, under the watchdog, until the inner buffer is ready;
        // bytes are counted in `consume`. The buffer itself is then fetched
        // by a second `poll_fill_buf`, which returns the data already
        // buffered without new I/O (returning a borrow from the first call
        // and dropping the inner object on a stall cannot both be expressed
        // in one borrow). An error from the first call is returned as is.
        let ready = self.as_mut().guard(cx, Direction::Read, |inner, cx| {
            inner
                .poll_fill_buf(cx)
                .map(|answer| (answer.map(|_| ()), 0))
        });
        match ready {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        match self.project().inner.as_pin_mut() {
            Some(inner) => match inner.poll_fill_buf(cx) {
                // An inner reader that was ready a moment ago and is not
                // now: poll again through the watchdog, rather than wait
                // here unwatched.
                Poll::Pending => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                answer => answer,
            },
            None => Poll::Ready(Err(gone())),
        }
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let me = self.project();
        if let Some(inner) = me.inner.as_pin_mut() {
            inner.consume(amt);
            me.read.count(amt as u64);
        }
    }
}
