use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::{CancelOnDrop, DeadlineBody};
use super::future::ResponseFuture;
use super::layer::Config;
use crate::http::answer::Protocol;
use crate::scope::RequestName;

/// The service [`DeadlineLayer`](super::DeadlineLayer) wraps around an inner service.
///
/// Its error type is the inner service's, so it fits where `Infallible` is required (axum's
/// `Router::layer`): an interrupted request is answered, not failed.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Deadline<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Deadline { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Deadline<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<DeadlineBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let budget = self.config.budget(request.headers());
        let name = RequestName {
            method: request.method().clone(),
            path: request.uri().path_and_query().cloned(),
        };
        let scope = self.config.root.named_child_with_timeout(name, budget);
        let content_type = request.headers().get(http::header::CONTENT_TYPE);
        let protocol = Protocol::from(content_type, request.headers());
        // Kept only where an answer echoes it (a reference count on the request's buffer).
        let content_type = protocol
            .echoes_content_type()
            .then(|| content_type.cloned())
            .flatten();
        request.extensions_mut().insert(scope.clone());
        // A request that arrives when its scope is already over (a stopping service) is
        // answered without starting the handler, as nothing is started in an
        // interrupted scope (`is_cancelled` is `check` here: a scope over when it is made
        // reads so).
        // The scope is current while the service builds its future, and while that
        // future is polled: library code honours it unasked.
        let starts = !scope.is_cancelled();
        let mut hang_up = CancelOnDrop::disarmed(scope);
        let inner = starts.then(|| {
            let inner = &mut self.inner;
            hang_up.lend(|| inner.call(request))
        });
        hang_up.arm();
        ResponseFuture::new(inner, hang_up, protocol, content_type)
    }
}
