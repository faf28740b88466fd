use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, HeaderValue, Response};
use pin_project_lite::pin_project;

use super::body::{CancelOnDrop, DeadlineBody};
use crate::CancelScope;
use crate::http::answer::{self, Ending, Protocol};
use crate::scope::{Cancelled, Interrupted};

pin_project! {
    /// The response future of [`Deadline`](super::Deadline).
    ///
    /// # Cancel safety
    ///
    /// Dropping it before the response is ready (the client or its connection went away)
    /// cancels the request's scope first, then drops the inner service's future: work the
    /// handler spawned under the scope stops, and outgoing calls made under it are
    /// dropped, which tells the next hop.
    ///
    /// # Panics
    ///
    /// Polled again after it returned `Ready`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        // The request's scope until the response is ready (then handed to the body).
        // Declared first, dropped first: the scope is cancelled before the handler's
        // future is dropped.
        hang_up: Option<CancelOnDrop>,
        // `None` once it completed, or from the start when the scope was interrupted
        // before the inner service was called. Polled with the scope current.
        #[pin]
        inner: Option<F>,
        // Made at the first poll that finds the handler pending: a request answered at
        // once never registers with its scope (nor arms its timer).
        interrupted: Option<Cancelled>,
        protocol: Protocol,
        content_type: Option<HeaderValue>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(
        inner: Option<F>,
        hang_up: CancelOnDrop,
        protocol: Protocol,
        content_type: Option<HeaderValue>,
    ) -> Self {
        ResponseFuture {
            hang_up: Some(hang_up),
            inner,
            interrupted: None,
            protocol,
            content_type,
        }
    }
}

/// Why the request's scope ended the work, as the answer needs it.
pub(super) fn ending(interrupted: &Interrupted, scope: &CancelScope) -> Ending {
    if interrupted.is_deadline() {
        Ending::Deadline
    } else if scope.parent_is_cancelled() {
        // The layer's root: the service is stopping.
        Ending::Stopping
    } else {
        Ending::Cancelled
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<DeadlineBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(hang_up) = this.hang_up.as_mut() else {
            panic!("`ResponseFuture` polled after it completed");
        };
        // The inner service first: a response that is ready wins over the interrupt.
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            if let Poll::Ready(result) = hang_up.lend(|| inner.poll(cx)) {
                this.inner.set(None);
                let protocol = *this.protocol;
                let Some(hang_up) = this.hang_up.take() else {
                    unreachable!("checked above");
                };
                return Poll::Ready(result.map(|response| {
                    response.map(|body| DeadlineBody::scoped(body, hang_up, protocol))
                }));
            }
        }
        let wait = this
            .interrupted
            .get_or_insert_with(|| hang_up.scope().cancelled());
        let interrupted = ready!(Pin::new(wait).poll(cx));
        hang_up.disarm();
        let ending = ending(&interrupted, hang_up.scope());
        this.inner.set(None);
        *this.hang_up = None;
        let mut request_headers = HeaderMap::new();
        if let Some(content_type) = this.content_type.take() {
            request_headers.insert(http::header::CONTENT_TYPE, content_type);
        }
        let sentence = interrupted.to_string();
        let response = answer::response(*this.protocol, ending, &sentence, &request_headers);
        Poll::Ready(Ok(response.map(DeadlineBody::answer)))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("scope", &self.hang_up.as_ref().map(CancelOnDrop::scope))
            .field("protocol", &self.protocol)
            .field("running", &self.inner.is_some())
            .field("done", &self.hang_up.is_none())
            .finish()
    }
}
