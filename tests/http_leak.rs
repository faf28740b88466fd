//! `DeadlineLayer` is leak-free, measured: live heap bytes are counted by a global
//! allocator around a million requests answered at once (whose scopes never make their
//! node) and the paths that make it: a request whose handler waits on its scope, one whose
//! client hangs up while the handler waits, and one answered after the service stopped.
//! One test per binary, so that nothing else allocates while it counts.
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::http::DeadlineLayer;
use hangfree::prelude::*;
use http::{Request, Response};
use tokio::task::yield_now;
use tokio_test::{assert_pending, task};
use tower_layer::Layer;
use tower_service::Service;

#[path = "support/alloc.rs"]
mod alloc;
#[path = "support/answer.rs"]
mod answer;

use answer::Answer;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const REQUESTS: usize = 1_000_000;
const ROUNDS: usize = 200_000;

type Waiting = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

/// Waits on its request's scope: a guarded `yield_now`, or for ever with `forever`.
#[derive(Clone, Copy)]
struct Waits {
    forever: bool,
}

impl Service<Request<()>> for Waits {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Waiting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Waiting {
        let scope = request.extensions().get::<CancelScope>().cloned().unwrap();
        let forever = self.forever;
        Box::pin(async move {
            if forever {
                std::future::pending::<()>().within(&scope).await.ok();
            } else {
                yield_now().within(&scope).await.unwrap();
            }
            Ok(Response::new(String::from("done")))
        })
    }
}

#[test]
fn requests_and_their_scopes_leave_the_heap_where_it_was() {
    let rt = alloc::counted_current_thread();
    let _enter = rt.enter();
    let root = CancelScope::new();
    let layer = DeadlineLayer::new(Duration::from_secs(30)).root(root.clone());
    let mut answers = layer.layer(Answer);
    let mut waits = layer.layer(Waits { forever: false });
    let mut hangs = layer.layer(Waits { forever: true });

    alloc::measure("a request answered at once", REQUESTS, || {
        let response = rt.block_on(answers.call(Request::new(()))).unwrap();
        drop(response);
    });
    alloc::measure("a request whose handler waits on its scope", ROUNDS, || {
        let response = rt.block_on(waits.call(Request::new(()))).unwrap();
        drop(response);
    });
    alloc::measure(
        "a client that hangs up while the handler waits",
        ROUNDS,
        || {
            let mut response = task::spawn(hangs.call(Request::new(())));
            assert_pending!(response.poll());
        },
    );
    let stopped = CancelScope::new();
    stopped.cancel();
    let mut refused = DeadlineLayer::new(Duration::from_secs(30))
        .root(stopped)
        .layer(Answer);
    alloc::measure("a request to a stopped service", ROUNDS, || {
        let response = rt.block_on(refused.call(Request::new(()))).unwrap();
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    });
    assert!(!root.is_cancelled());
}
