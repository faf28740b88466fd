use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::PropagateBody;
use super::error::PropagateError;
use super::future::ResponseFuture;
use super::layer::Config;
use crate::CancelScope;

/// The service [`PropagateLayer`](super::PropagateLayer) wraps around a client: its
/// responses' bodies come as [`PropagateBody`], under the request's scope until they end.
#[derive(Clone, Debug)]
pub struct Propagate<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Propagate<S> {
    pub(super) fn new(inner: S, config: Arc<Config>) -> Self {
        Propagate { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<PropagateBody<RB>>;
    type Error = PropagateError<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(PropagateError::Inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The request's own scope, else the one current where the request is sent.
        let scope = request
            .extensions()
            .get::<CancelScope>()
            .cloned()
            .or_else(CancelScope::current);
        let Some(scope) = scope else {
            return ResponseFuture::unscoped(self.inner.call(request));
        };
        // One clock read for both questions.
        let now = tokio::time::Instant::now();
        if let Err(interrupted) = scope.check_at(now) {
            return ResponseFuture::failed(interrupted);
        }
        let config = &self.config;
        let headers = request.headers_mut();
        headers.remove(config.header.name());
        let remaining = scope.deadline().map(|at| at.saturating_duration_since(now));
        if let Some(remaining) = remaining {
            let budget = remaining.saturating_sub(config.margin);
            let encoded = config
                .header
                .encode(budget)
                .filter(|_| budget >= config.min_budget);
            let Some(value) = encoded else {
                return ResponseFuture::failed(too_little_left(&scope, remaining));
            };
            headers.insert(config.header.name().clone(), value);
        }
        ResponseFuture::scoped(self.inner.call(request), scope)
    }
}

/// The interruption of a request that has too little budget left to be sent: its deadline
/// counts as exceeded, with what was left as the budget the sentence names.
fn too_little_left(scope: &CancelScope, remaining: std::time::Duration) -> crate::Interrupted {
    let at = scope.deadline().unwrap_or_else(tokio::time::Instant::now);
    crate::Interrupted::deadline(false, at, remaining)
}
