use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use tower_service::Service;

use super::body::PropagateBody;
use super::error::PropagateError;
use super::future::ResponseFuture;
use super::layer::Config;
use crate::CancelScope;
use crate::http::BudgetHeader;

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
            shorten_other_budgets(headers, &config.header, budget);
        }
        ResponseFuture::scoped(self.inner.call(request), scope)
    }
}

/// Any other budget header the request carries (one a proxy copied from the request it
/// received, say) that promises more than `budget`, says it more than once, or cannot be
/// read, is rewritten to say `budget`: the next service must not believe it has longer
/// than this one will wait for it. One that promises no more is kept, as it was set.
fn shorten_other_budgets(headers: &mut HeaderMap, sent: &BudgetHeader, budget: Duration) {
    if headers.len() <= 1 {
        // The header just written is the only one.
        return;
    }
    for header in BudgetHeader::known() {
        if header.name() == sent.name() {
            continue;
        }
        let mut values = headers.get_all(header.name()).iter();
        let Some(first) = values.next() else {
            continue;
        };
        let kept = values.next().is_none() && header.parse(first).is_ok_and(|said| said <= budget);
        if !kept {
            headers.insert(header.name().clone(), header.encode_or_least(budget));
        }
    }
}

/// The interruption of a request that has too little budget left to be sent: its deadline
/// counts as exceeded, with what was left as the budget the sentence names.
fn too_little_left(scope: &CancelScope, remaining: std::time::Duration) -> crate::Interrupted {
    let at = scope.deadline().unwrap_or_else(tokio::time::Instant::now);
    crate::Interrupted::deadline(false, at, remaining)
}
