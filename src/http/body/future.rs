//! The response future of [`WatchdogBodies`](super::WatchdogBodies).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use super::watchdog::WatchdogBody;
use crate::watchdog::Limits;

pin_project! {
    /// The inner service's response future, its body wrapped in a
    /// [`WatchdogBody`] when it is ready.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner service's future, like any future.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        limits: Limits,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, limits: Limits) -> Self {
        ResponseFuture { inner, limits }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<WatchdogBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        let response = ready!(me.inner.poll(cx))?;
        let limits = *me.limits;
        Poll::Ready(Ok(response.map(|body| WatchdogBody::new(body, limits))))
    }
}
