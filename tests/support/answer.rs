//! A service that answers every request at once, with an empty body: the handler of the
//! http layer's cost bench (`benches/http.rs`) and of its leak test, so that both measure
//! the layers and nothing of the handler's.
//! Use it with `#[path = "support/answer.rs"] mod answer;`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

/// Answers at once.
#[derive(Clone, Copy, Debug)]
pub struct Answer;

impl Service<Request<()>> for Answer {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(String::new())))
    }
}
