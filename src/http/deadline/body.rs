use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::future::ending;
use crate::CancelScope;
use crate::http::answer::{self, Answer, Protocol};
use crate::http::under_scope::{self, Polled, Watch};
use crate::scope::Lendable;

/// An error a [`DeadlineBody`] or another body of this module yields: boxed, as tower and
/// hyper expect of body errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The response body of [`Deadline`](super::Deadline): the inner service's body, still
    /// under the request's scope until it ends, or the layer's own answer to a request
    /// the scope ended.
    ///
    /// A stream cut by the scope (its deadline, or the service stopping) ends the way the
    /// protocol can say it: a gRPC stream with trailers carrying `grpc-status`, a Connect
    /// stream with an end-of-stream message, anything else with an `Err` wrapping
    /// [`Interrupted`](crate::Interrupted). Dropped before its end (the client went away),
    /// it cancels the request's scope. An error from the inner body is handed on as it is,
    /// and cancels the request's scope too, with a reason that says the body failed and
    /// why.
    ///
    /// A frame the inner body has ready is handed on, and the scope is looked at right
    /// after it, by the clock when it has a deadline ([`CancelScope::check`]), by its mark
    /// alone when it has none: a scope found over then cuts the body at its next poll,
    /// unless the body has nothing left. So a body whose frames are always ready (a stream
    /// held in memory, a producer the client keeps up with) is cut one frame after its
    /// scope ended, and so is one on a runtime too busy to run the deadline's timer; a
    /// response made before the interrupt keeps a body that was already complete. [`PropagateBody`](crate::http::PropagateBody) keeps the same rule
    /// for a client's response.
    pub struct DeadlineBody<B> {
        #[pin]
        state: State<B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B> {
        Scoped {
            // Declared first, dropped first: the scope is cancelled before the body.
            hang_up: CancelOnDrop,
            #[pin]
            body: B,
            watch: Watch,
            protocol: Protocol,
        },
        Answer {
            data: Option<Bytes>,
            // Boxed: a `HeaderMap` would make every response of the layer, answered by
            // the handler or not, 88 bytes larger to move.
            trailers: Option<Box<HeaderMap>>,
        },
    }
}

impl<B: Body> DeadlineBody<B> {
    /// The handler's body, under the request's scope until it ends. A body already at
    /// its end (an empty one) owes nothing: the request is over once it is sent, and
    /// dropping it is no hang-up.
    pub(super) fn scoped(body: B, mut hang_up: CancelOnDrop, protocol: Protocol) -> Self {
        if body.is_end_stream() {
            hang_up.disarm();
        }
        DeadlineBody {
            state: State::Scoped {
                hang_up,
                body,
                watch: Watch::default(),
                protocol,
            },
        }
    }
}

impl<B> DeadlineBody<B> {
    pub(super) fn answer(answer: Answer) -> Self {
        DeadlineBody {
            state: State::Answer {
                data: answer.data,
                trailers: answer.trailers.map(Box::new),
            },
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut state = self.as_mut().project().state;
        let (interrupted, protocol, ending) = match state.as_mut().project() {
            StateProj::Answer { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                return Poll::Ready(
                    trailers
                        .take()
                        .map(|trailers| Ok(Frame::trailers(*trailers))),
                );
            }
            StateProj::Scoped {
                hang_up,
                body,
                watch,
                protocol,
            } => {
                let why = match ready!(under_scope::poll(cx, hang_up.scope(), body, watch)) {
                    Polled::Frame(Ok(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Polled::Frame(Err(error)) => {
                        // The response failed: the work under the request's scope is for
                        // nobody now, and is told why; the drop that follows is no
                        // hang-up.
                        let error: BoxError = error.into();
                        hang_up.disarm();
                        hang_up
                            .scope()
                            .cancel_with(format!("{BODY_FAILED}: {error}"));
                        return Poll::Ready(Some(Err(error)));
                    }
                    Polled::End => {
                        hang_up.disarm();
                        state.set(State::Answer {
                            data: None,
                            trailers: None,
                        });
                        return Poll::Ready(None);
                    }
                    Polled::Cut(why) => why,
                };
                hang_up.disarm();
                let ending = ending(&why, hang_up.scope());
                (why, *protocol, ending)
            }
        };
        // The scope cut the stream: drop the inner body at once, then end in the
        // protocol's own way.
        let sentence = interrupted.to_string();
        let (data, trailers) = match protocol {
            Protocol::Grpc => (
                None,
                Some(Box::new(answer::grpc_trailers(ending, &sentence))),
            ),
            Protocol::ConnectStreaming => {
                (Some(answer::connect_end_stream(ending, &sentence)), None)
            }
            Protocol::ConnectUnary | Protocol::Http => (None, None),
        };
        let cut_with_error = data.is_none() && trailers.is_none();
        state.set(State::Answer { data, trailers });
        if cut_with_error {
            return Poll::Ready(Some(Err(Box::new(interrupted))));
        }
        self.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Scoped { body, .. } => body.is_end_stream(),
            State::Answer { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Scoped { body, .. } => body.size_hint(),
            State::Answer { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Scoped { .. } => "scoped",
            State::Answer { .. } => "answer",
        };
        f.debug_struct("DeadlineBody")
            .field("state", &state)
            .finish()
    }
}

/// The request's scope, cancelled when dropped unless disarmed: the response future or
/// body dropped before its end means the client went away. The one handle to the scope
/// the response future and then the body keep.
///
/// It also lends the scope to the thread while the handler's future is polled, so that
/// it is current there (`CancelScope::current`) without a handle of its own.
#[derive(Debug)]
pub(super) struct CancelOnDrop {
    scope: Lendable,
    armed: bool,
}

impl CancelOnDrop {
    /// Not armed yet: [`arm`](Self::arm) it once the response future exists (a service
    /// whose `call` panics has not been hung up on).
    pub(super) fn disarmed(scope: CancelScope) -> Self {
        CancelOnDrop {
            scope: Lendable::new(scope),
            armed: false,
        }
    }

    pub(super) fn arm(&mut self) {
        self.armed = true;
    }

    pub(super) fn scope(&self) -> &CancelScope {
        self.scope.get()
    }

    /// Runs `f` with the scope current on this thread (and puts it back, also if `f`
    /// panics).
    pub(super) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.scope.lend(f)
    }

    /// The request ended as it should: nothing to cancel.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

/// The reason a hang-up gives the request's scope.
pub(super) const HUNG_UP: &str = "the client went away before the response was complete";

/// The reason a failed response body gives the request's scope, before the body's error.
const BODY_FAILED: &str = "the response body failed before it was complete";

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.scope.get().cancel_with(HUNG_UP);
        }
    }
}
