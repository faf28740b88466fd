use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::body::PropagateBody;
use super::error::PropagateError;
use crate::scope::Cancelled;
use crate::{CancelScope, Interrupted};

pin_project! {
    /// The response future of [`Propagate`](super::Propagate): the inner client's, dropped
    /// as soon as the request's scope ends (which closes the connection or resets the
    /// stream, and so tells the next service). The response it yields carries its body as
    /// a [`PropagateBody`], under the same scope.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the inner client's future, like any future.
    ///
    /// # Panics
    ///
    /// Polled again after it returned `Ready`.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // The scope that guards the call, if any; waited on (`interrupted`) only from the
        // first poll that finds the response pending: a call answered at once never
        // registers with it.
        scope: Option<CancelScope>,
        interrupted: Option<Cancelled>,
        failed: Option<Interrupted>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn unscoped(inner: F) -> Self {
        ResponseFuture {
            inner: Some(inner),
            scope: None,
            interrupted: None,
            failed: None,
        }
    }

    pub(super) fn scoped(inner: F, scope: CancelScope) -> Self {
        ResponseFuture {
            inner: Some(inner),
            scope: Some(scope),
            interrupted: None,
            failed: None,
        }
    }

    pub(super) fn failed(interrupted: Interrupted) -> Self {
        ResponseFuture {
            inner: None,
            scope: None,
            interrupted: None,
            failed: Some(interrupted),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<PropagateBody<B>>, PropagateError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(interrupted) = this.failed.take() {
            return Poll::Ready(Err(PropagateError::Interrupted(interrupted)));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("`ResponseFuture` polled after it completed");
        };
        // The response first: one that is ready wins over the interrupt.
        if let Poll::Ready(result) = inner.poll(cx) {
            this.inner.set(None);
            *this.interrupted = None;
            // The body stays under the scope until it ends.
            let scope = this.scope.take();
            return Poll::Ready(match result {
                Ok(response) => Ok(response.map(|body| match scope {
                    Some(scope) => PropagateBody::scoped(body, scope),
                    None => PropagateBody::unscoped(body),
                })),
                Err(error) => Err(PropagateError::Inner(error)),
            });
        }
        let Some(scope) = this.scope.as_ref() else {
            return Poll::Pending;
        };
        let interrupted = this.interrupted.get_or_insert_with(|| scope.cancelled());
        match Pin::new(interrupted).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(why) => {
                this.inner.set(None);
                *this.interrupted = None;
                Poll::Ready(Err(PropagateError::Interrupted(why)))
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("running", &self.inner.is_some())
            .field("scoped", &self.scope.is_some())
            .finish()
    }
}
