use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;
use super::watchdog::WatchdogBody;
use crate::watchdog::Limits;

/// A [`Layer`] that watches the bodies of every request and response of a service:
/// [`WatchdogBody`] with the limits given for each direction.
///
/// On a server, the request limits catch a client that drip-feeds an upload; on a client,
/// the response limits catch a server that stalls a download. A direction without limits
/// is passed through unwatched.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::http::WatchdogBodyLayer;
/// use hangfree::watchdog::Limits;
///
/// let uploads = WatchdogBodyLayer::new()
///     .requests(Limits::new().idle(Duration::from_secs(30)).min_rate(64 * 1024, Duration::from_secs(10)));
/// # drop(uploads);
/// ```
#[derive(Clone, Debug, Default)]
pub struct WatchdogBodyLayer {
    requests: Limits,
    responses: Limits,
}

impl WatchdogBodyLayer {
    /// Watches nothing until given limits.
    pub fn new() -> Self {
        WatchdogBodyLayer::default()
    }

    /// The limits for request bodies.
    pub fn requests(mut self, limits: Limits) -> Self {
        self.requests = limits;
        self
    }

    /// The limits for response bodies.
    pub fn responses(mut self, limits: Limits) -> Self {
        self.responses = limits;
        self
    }
}

impl<S> Layer<S> for WatchdogBodyLayer {
    type Service = WatchdogBodies<S>;

    fn layer(&self, inner: S) -> WatchdogBodies<S> {
        WatchdogBodies {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`WatchdogBodyLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct WatchdogBodies<S> {
    inner: S,
    layer: WatchdogBodyLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WatchdogBodies<S>
where
    S: Service<Request<WatchdogBody<ReqBody>>, Response = Response<ResBody>>,
{
    type Response = Response<WatchdogBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let limits = self.layer.requests;
        let request = request.map(|body| WatchdogBody::new(body, limits));
        ResponseFuture::new(self.inner.call(request), self.layer.responses)
    }
}
