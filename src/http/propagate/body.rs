use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::CancelScope;
use crate::http::BoxError;
use crate::http::under_scope::{self, Polled, Watch};

pin_project! {
    /// The response body of [`Propagate`](super::Propagate): the inner client's body, still
    /// under the request's scope until it ends.
    ///
    /// A frame the inner body has ready is handed on, and the scope is looked at right
    /// after it, by the clock when it has a deadline ([`CancelScope::check`]), by its mark
    /// alone when it has none; a body that is pending waits on the scope too. Once the
    /// scope has ended (cancelled, or its deadline passed) the next poll drops the inner
    /// body, which closes the connection (HTTP/1) or resets the stream (HTTP/2) and so
    /// tells the service that sends it, and yields an `Err` wrapping the
    /// [`Interrupted`](crate::Interrupted); a body with nothing left ends as it would
    /// have. The inner body's own errors are handed on, boxed. A request sent
    /// without a scope gets its body as it is, only boxed in its errors.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use hangfree::http::PropagateLayer;
    /// use hangfree::{CancelScope, Interrupted};
    /// use http::{Request, Response};
    /// use http_body::Body;
    /// use tower::{Layer, Service, ServiceExt};
    ///
    /// // A server that sends the response's head, then nothing more.
    /// let client = tower::service_fn(|_: Request<()>| async {
    ///     let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    ///     Ok::<_, std::io::Error>(Response::new(axum::body::Body::from_stream(never)))
    /// });
    /// let mut client = PropagateLayer::new().layer(client);
    ///
    /// let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    /// let mut request = Request::new(());
    /// request.extensions_mut().insert(scope);
    /// let response = client.ready().await.unwrap().call(request).await.unwrap();
    ///
    /// // The body is read under the scope too: it ends at the deadline.
    /// let mut body = std::pin::pin!(response.into_body());
    /// let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
    /// let error = frame.unwrap().unwrap_err();
    /// assert!(error.downcast_ref::<Interrupted>().is_some());
    /// # }
    /// ```
    pub struct PropagateBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B> {
        Scoped {
            scope: CancelScope,
            #[pin]
            body: B,
            watch: Watch,
        },
        Unscoped {
            #[pin]
            body: B,
        },
        // Cut by the scope, or ended: the inner body is gone.
        Done,
    }
}

impl<B> PropagateBody<B> {
    pub(super) fn scoped(body: B, scope: CancelScope) -> Self {
        PropagateBody {
            state: State::Scoped {
                scope,
                body,
                watch: Watch::default(),
            },
        }
    }

    pub(super) fn unscoped(body: B) -> Self {
        PropagateBody {
            state: State::Unscoped { body },
        }
    }
}

impl<B> Body for PropagateBody<B>
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
        let mut state = self.project().state;
        let ended = match state.as_mut().project() {
            StateProj::Unscoped { body } => {
                return body.poll_frame(cx).map_err(Into::into);
            }
            StateProj::Done => return Poll::Ready(None),
            StateProj::Scoped { scope, body, watch } => {
                match ready!(under_scope::poll(cx, scope, body, watch)) {
                    Polled::Frame(frame) => return Poll::Ready(Some(frame.map_err(Into::into))),
                    Polled::End => None,
                    Polled::Cut(why) => Some(Err(BoxError::from(why))),
                }
            }
        };
        // Ended, or cut: the inner body goes now (a cut one closes its connection or
        // resets its stream).
        state.set(State::Done);
        Poll::Ready(ended)
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Scoped { body, .. } | State::Unscoped { body } => body.is_end_stream(),
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Scoped { body, .. } | State::Unscoped { body } => body.size_hint(),
            State::Done => SizeHint::with_exact(0),
        }
    }
}

impl<B> fmt::Debug for PropagateBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Scoped { .. } => "scoped",
            State::Unscoped { .. } => "unscoped",
            State::Done => "done",
        };
        f.debug_struct("PropagateBody")
            .field("state", &state)
            .finish()
    }
}
