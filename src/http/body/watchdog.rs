use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::http::BoxError;
use crate::watchdog::monitor::{Monitor, Polled};
use crate::watchdog::{Limits, Progress};

pin_project! {
    /// An [`http_body::Body`] watched for stalls, in bytes: the first frame, the silence
    /// between frames, the whole body's time, and a minimum rate (which catches a peer
    /// that drip-feeds one byte at a time, as no idle limit does).
    ///
    /// On a stall it yields one error wrapping the [`Stalled`](crate::Stalled) report (find it with
    /// `downcast_ref::<Stalled>()` on the boxed error), drops the inner body at once
    /// (which closes its stream or connection), and ends: [`is_end_stream`](Body::is_end_stream)
    /// is `true` from then on. Until then, [`size_hint`](Body::size_hint) and
    /// `is_end_stream` are the inner body's.
    ///
    /// Wrap a request body on a server (a client drip-feeding an upload) or a response body
    /// on a client (a server stalling a download); [`WatchdogBodyLayer`](super::WatchdogBodyLayer)
    /// does either for every request of a service.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::http::WatchdogBody;
    /// use hangfree::watchdog::Limits;
    ///
    /// // At least 1 KiB per 10 s, and never silent for a minute.
    /// let limits = Limits::new()
    ///     .idle(Duration::from_secs(60))
    ///     .min_rate(1024, Duration::from_secs(10));
    /// let body = WatchdogBody::new(axum::body::Body::from("upload"), limits);
    /// # drop(body);
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner body and its timer; nothing stays registered.
    pub struct WatchdogBody<B> {
        #[pin]
        body: Option<B>,
        monitor: Monitor,
    }
}

impl<B> WatchdogBody<B> {
    /// Watches `body` with `limits`, counted in bytes.
    pub fn new(body: B, limits: Limits) -> Self {
        WatchdogBody {
            body: Some(body),
            monitor: Monitor::new(limits, Progress::BytesRead(0)),
        }
    }

    /// Bytes of data passed on so far.
    pub fn bytes(&self) -> u64 {
        self.monitor.progress()
    }

    /// The inner body, or `None` once it ended or stalled (it is dropped then).
    pub fn get_ref(&self) -> Option<&B> {
        self.body.as_ref()
    }

    /// Changes the limits from the next poll on, by the rules of
    /// [`Watchdog::set_limits`](crate::Watchdog::set_limits): the idle clock and `total`
    /// keep running, a changed `min_rate` starts a new window. For a body whose phases
    /// differ: a slow first chunk, then a steady stream.
    pub fn set_limits(self: Pin<&mut Self>, limits: Limits) {
        self.project().monitor.set_limits(limits);
    }
}

impl<B> Body for WatchdogBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let mut me = self.project();
        let Some(mut body) = me.body.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match me.monitor.poll(cx, |cx| body.as_mut().poll_frame(cx)) {
            Polled::Pending => Poll::Pending,
            Polled::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, |data| data.remaining() as u64);
                me.monitor.count(bytes);
                Poll::Ready(Some(Ok(frame)))
            }
            Polled::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Polled::Ready(None) => {
                me.body.set(None);
                me.monitor.finish();
                Poll::Ready(None)
            }
            Polled::Stalled(stalled) => {
                me.body.set(None);
                me.monitor.finish();
                Poll::Ready(Some(Err(Box::new(stalled))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for WatchdogBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogBody")
            .field("bytes", &self.monitor.progress())
            .field("ended", &self.body.is_none())
            .finish()
    }
}
