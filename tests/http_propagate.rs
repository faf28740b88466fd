//! `PropagateLayer` under tokio's paused clock: what budget an outgoing request carries,
//! when it is not sent at all, and that its response, and then its response's body, are
//! dropped when the scope ends.
#![cfg(feature = "http")]

#[path = "support/fed_body.rs"]
mod fed_body;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fed_body::fed;
use hangfree::http::{BudgetHeader, PropagateBody, PropagateError, PropagateLayer};
use hangfree::{CancelScope, Cause, Interrupted};
use http::{HeaderMap, Request, Response};
use http_body::{Body as _, Frame};
use tokio_test::{assert_pending, assert_ready};
use tower_layer::Layer;
use tower_service::Service;

/// What the client saw of each request: its headers, and whether its response future was
/// dropped.
#[derive(Clone, Default)]
struct Client {
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    calls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
    /// Whether responses come at once or never.
    answers: bool,
}

#[derive(Debug, PartialEq)]
struct ClientError;

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for ClientError {}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<()>, ClientError>> + Send>>;

impl Service<Request<()>> for Client {
    type Response = Response<()>;
    type Error = ClientError;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Answer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.headers.lock().unwrap().push(request.headers().clone());
        let guard = SetOnDrop(self.dropped.clone());
        let answers = self.answers;
        Box::pin(async move {
            let _guard = guard;
            if !answers {
                std::future::pending::<()>().await;
            }
            Ok(Response::new(()))
        })
    }
}

impl Client {
    fn answering() -> Self {
        Client {
            answers: true,
            ..Client::default()
        }
    }

    fn last_header(&self, name: &str) -> Option<String> {
        let headers = self.headers.lock().unwrap();
        let last = headers.last().expect("a request was sent");
        last.get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn request_in(scope: Option<&CancelScope>) -> Request<()> {
    let mut request = Request::new(());
    if let Some(scope) = scope {
        request.extensions_mut().insert(scope.clone());
    }
    request
}

#[tokio::test(start_paused = true)]
async fn a_request_outside_any_scope_is_sent_unchanged() {
    let client = Client::answering();
    let mut service = PropagateLayer::new().layer(client.clone());
    let mut request = request_in(None);
    request
        .headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("7S"));
    service.call(request).await.unwrap();
    assert_eq!(client.last_header("grpc-timeout").as_deref(), Some("7S"));
    assert_eq!(client.headers.lock().unwrap()[0].len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_remaining_budget_less_the_margin_is_written_rounded_down() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    tokio::time::advance(Duration::from_millis(500)).await;
    let client = Client::answering();

    let mut grpc = PropagateLayer::new().layer(client.clone());
    grpc.call(request_in(Some(&scope))).await.unwrap();
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("1495000u")
    );

    let mut connect = PropagateLayer::new()
        .header(BudgetHeader::connect())
        .margin(Duration::from_micros(100))
        .layer(client.clone());
    connect.call(request_in(Some(&scope))).await.unwrap();
    // 1499.9 ms, written as whole milliseconds, down.
    assert_eq!(
        client.last_header("connect-timeout-ms").as_deref(),
        Some("1499")
    );
    assert_eq!(client.last_header("grpc-timeout"), None);
}

#[tokio::test(start_paused = true)]
async fn a_budget_header_already_on_the_request_is_replaced() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .margin(Duration::ZERO)
        .layer(client.clone());
    let mut request = request_in(Some(&scope));
    request
        .headers_mut()
        .insert("grpc-timeout", http::HeaderValue::from_static("1H"));
    service.call(request).await.unwrap();
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("1000000u")
    );
    assert_eq!(
        client.headers.lock().unwrap()[0]
            .get_all("grpc-timeout")
            .iter()
            .count(),
        1
    );
}

/// A proxy copies the budget headers of the request it received; by the time it sends
/// one on, what they promise is stale.
fn with_headers(scope: &CancelScope, headers: &[(&'static str, &'static str)]) -> Request<()> {
    let mut request = request_in(Some(scope));
    for &(name, value) in headers {
        request
            .headers_mut()
            .append(name, http::HeaderValue::from_static(value));
    }
    request
}

#[tokio::test(start_paused = true)]
async fn other_budget_headers_that_promise_more_than_is_left_are_cut_to_what_is_left() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    tokio::time::advance(Duration::from_millis(500)).await;
    let client = Client::answering();
    let mut service = PropagateLayer::new().layer(client.clone());
    let request = with_headers(
        &scope,
        &[
            ("connect-timeout-ms", "60000"),
            ("x-envoy-expected-rq-timeout-ms", "30000"),
        ],
    );
    service.call(request).await.unwrap();
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("1495000u")
    );
    assert_eq!(
        client.last_header("connect-timeout-ms").as_deref(),
        Some("1495")
    );
    assert_eq!(
        client
            .last_header("x-envoy-expected-rq-timeout-ms")
            .as_deref(),
        Some("1495")
    );
}

#[tokio::test(start_paused = true)]
async fn another_budget_header_that_promises_less_is_kept_as_it_was_set() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .header(BudgetHeader::connect())
        .layer(client.clone());
    let request = with_headers(
        &scope,
        &[
            ("grpc-timeout", "250m"),
            ("x-envoy-expected-rq-timeout-ms", "1995"),
        ],
    );
    service.call(request).await.unwrap();
    assert_eq!(
        client.last_header("connect-timeout-ms").as_deref(),
        Some("1995")
    );
    assert_eq!(client.last_header("grpc-timeout").as_deref(), Some("250m"));
    assert_eq!(
        client
            .last_header("x-envoy-expected-rq-timeout-ms")
            .as_deref(),
        Some("1995"),
        "exactly what is left is no more than what is left"
    );
}

#[tokio::test(start_paused = true)]
async fn another_budget_header_that_cannot_be_read_or_is_repeated_is_rewritten() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .margin(Duration::ZERO)
        .layer(client.clone());
    let request = with_headers(
        &scope,
        &[
            ("connect-timeout-ms", "+5"),
            ("x-envoy-expected-rq-timeout-ms", "100"),
            ("x-envoy-expected-rq-timeout-ms", "90000"),
        ],
    );
    service.call(request).await.unwrap();
    let sent = client.headers.lock().unwrap()[0].clone();
    assert_eq!(sent["connect-timeout-ms"], "1000");
    let envoy: Vec<_> = sent
        .get_all("x-envoy-expected-rq-timeout-ms")
        .iter()
        .collect();
    assert_eq!(envoy, ["1000"]);
}

#[tokio::test(start_paused = true)]
async fn a_millisecond_header_with_less_than_a_millisecond_left_says_one() {
    let scope = CancelScope::new().with_timeout(Duration::from_micros(700));
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .margin(Duration::ZERO)
        .min_budget(Duration::from_micros(100))
        .layer(client.clone());
    service
        .call(with_headers(&scope, &[("connect-timeout-ms", "5000")]))
        .await
        .unwrap();
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("700000n")
    );
    assert_eq!(
        client.last_header("connect-timeout-ms").as_deref(),
        Some("1"),
        "the least the format can say, not nothing, which reads as no budget"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_other_budget_headers_are_left_alone() {
    let scope = CancelScope::new();
    let client = Client::answering();
    let mut service = PropagateLayer::new().layer(client.clone());
    service
        .call(with_headers(&scope, &[("connect-timeout-ms", "60000")]))
        .await
        .unwrap();
    assert_eq!(
        client.last_header("connect-timeout-ms").as_deref(),
        Some("60000")
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_with_too_little_budget_left_is_not_sent() {
    let scope = CancelScope::new().with_timeout(Duration::from_millis(60));
    tokio::time::advance(Duration::from_millis(15)).await;
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .margin(Duration::from_millis(5))
        .min_budget(Duration::from_millis(50))
        .layer(client.clone());
    // 45 ms left, 40 ms after the margin: below the minimum.
    let error = service.call(request_in(Some(&scope))).await.unwrap_err();
    let interrupted = error
        .interrupted()
        .expect("an interruption, not a client error");
    assert!(interrupted.is_deadline());
    assert_eq!(interrupted.deadline_at(), scope.deadline());
    assert_eq!(client.calls(), 0, "not sent");

    // With enough left it goes.
    let mut service = PropagateLayer::new()
        .margin(Duration::from_millis(5))
        .min_budget(Duration::from_millis(40))
        .layer(client.clone());
    service.call(request_in(Some(&scope))).await.unwrap();
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("40000000n")
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_in_an_interrupted_scope_fails_at_once_without_being_sent() {
    let scope = CancelScope::new();
    scope.cancel();
    let client = Client::answering();
    let mut service = PropagateLayer::new().layer(client.clone());
    let error = service.call(request_in(Some(&scope))).await.unwrap_err();
    assert!(matches!(&error, PropagateError::Interrupted(why) if !why.is_deadline()));
    assert_eq!(error.to_string(), "cancelled");
    assert_eq!(client.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_response_is_dropped_exactly_at_the_scopes_deadline() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(3));
    let client = Client::default();
    let mut service = PropagateLayer::new().layer(client.clone());
    let mut response = tokio_test::task::spawn(service.call(request_in(Some(&scope))));
    assert_pending!(response.poll());
    tokio::time::advance(Duration::from_millis(2999)).await;
    assert_pending!(response.poll());
    assert!(!client.dropped.load(Ordering::SeqCst));
    tokio::time::advance(Duration::from_millis(1)).await;
    let error = assert_ready!(response.poll()).unwrap_err();
    assert!(error.interrupted().unwrap().is_deadline());
    assert!(
        client.dropped.load(Ordering::SeqCst),
        "the connection is let go"
    );
}

#[tokio::test(start_paused = true)]
async fn a_scope_without_a_deadline_sends_no_budget_but_still_ends_the_wait() {
    let scope = CancelScope::new();
    let client = Client::default();
    let mut service = PropagateLayer::new().layer(client.clone());
    let mut response = tokio_test::task::spawn(service.call(request_in(Some(&scope))));
    assert_pending!(response.poll());
    assert_eq!(client.last_header("grpc-timeout"), None);
    scope.cancel();
    assert!(response.is_woken());
    let error = assert_ready!(response.poll()).unwrap_err();
    assert!(!error.interrupted().unwrap().is_deadline());
    assert!(client.dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn the_clients_own_error_passes_through() {
    #[derive(Clone)]
    struct Refusing;
    impl Service<Request<()>> for Refusing {
        type Response = Response<()>;
        type Error = ClientError;
        type Future = std::future::Ready<Result<Response<()>, ClientError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            std::future::ready(Err(ClientError))
        }
    }
    let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
    let mut service = PropagateLayer::new().layer(Refusing);
    let error = service.call(request_in(Some(&scope))).await.unwrap_err();
    assert!(matches!(error, PropagateError::Inner(ClientError)));
    assert_eq!(error.to_string(), "connection refused");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_scope_of_its_own_carries_the_current_one() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
    let client = Client::answering();
    let mut service = PropagateLayer::new()
        .margin(Duration::ZERO)
        .layer(client.clone());
    scope
        .enter(async { service.call(request_in(None)).await.unwrap() })
        .await;
    assert_eq!(
        client.last_header("grpc-timeout").as_deref(),
        Some("1000000u")
    );
}

/// A response body that always has a frame ready.
struct Endless;

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"row\n")))))
    }
}

/// The response to a request in `scope` (if any) from a client that answers at once with
/// `body`.
async fn response_with<B: Send + 'static>(
    scope: Option<&CancelScope>,
    body: B,
) -> Response<PropagateBody<B>> {
    let body = Mutex::new(Some(body));
    let client = tower::service_fn(move |_: Request<()>| {
        let body = body.lock().unwrap().take().expect("one call");
        async move { Ok::<_, std::convert::Infallible>(Response::new(body)) }
    });
    let mut service = PropagateLayer::new().layer(client);
    service.call(request_in(scope)).await.unwrap()
}

/// What one poll of a body gives.
type Next<B> =
    Poll<Option<Result<Frame<<B as http_body::Body>::Data>, <B as http_body::Body>::Error>>>;

fn next_frame<B: http_body::Body>(body: Pin<&mut B>) -> Next<B> {
    body.poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn a_response_body_still_arriving_at_the_deadline_is_dropped_and_ends_in_the_interruption() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    let (tx, body) = fed();
    let response = response_with(Some(&scope), body).await;
    let mut body = tokio_test::task::spawn(Box::pin(response.into_body()));
    tx.send(Bytes::from_static(b"row 1\n")).unwrap();
    let frame = assert_ready!(body.enter(|cx, body| body.poll_frame(cx)));
    assert_eq!(frame.unwrap().unwrap().into_data().unwrap(), "row 1\n");
    assert_pending!(body.enter(|cx, body| body.poll_frame(cx)));

    tokio::time::advance(Duration::from_millis(1999)).await;
    assert!(!body.is_woken(), "still within its budget");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(body.is_woken(), "woken at the deadline");
    let error = assert_ready!(body.enter(|cx, body| body.poll_frame(cx)))
        .unwrap()
        .unwrap_err();
    let why = error
        .downcast_ref::<Interrupted>()
        .expect("the interruption");
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
    assert!(
        tx.is_closed(),
        "the inner body is dropped: its sender sees the hang-up"
    );
    assert!(matches!(
        body.enter(|cx, body| body.poll_frame(cx)),
        Poll::Ready(None)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_response_body_whose_frames_are_always_ready_is_cut_one_frame_after_the_scope_ends() {
    let scope = CancelScope::new();
    let response = response_with(Some(&scope), Endless).await;
    let mut body = std::pin::pin!(response.into_body());
    assert!(matches!(
        next_frame(body.as_mut()),
        Poll::Ready(Some(Ok(_)))
    ));
    scope.cancel();
    assert!(
        matches!(next_frame(body.as_mut()), Poll::Ready(Some(Ok(_)))),
        "the frame that was ready"
    );
    let Poll::Ready(Some(Err(error))) = next_frame(body.as_mut()) else {
        panic!("cut after one more frame");
    };
    assert_eq!(
        error.downcast_ref::<Interrupted>().map(Interrupted::cause),
        Some(Cause::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_body_that_ended_before_its_scope_did_is_whole() {
    let scope = CancelScope::new().with_timeout(Duration::from_secs(2));
    let (tx, body) = fed();
    tx.send(Bytes::from_static(b"all of it")).unwrap();
    drop(tx);
    let response = response_with(Some(&scope), body).await;
    let mut body = std::pin::pin!(response.into_body());
    let frame = next_frame(body.as_mut());
    assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
    assert!(matches!(next_frame(body.as_mut()), Poll::Ready(None)));
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(
        matches!(next_frame(body.as_mut()), Poll::Ready(None)),
        "an ended body stays ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_outside_any_scope_keeps_its_body_as_it_is() {
    let (tx, body) = fed();
    let response = response_with(None, body).await;
    let mut body = std::pin::pin!(response.into_body());
    assert!(next_frame(body.as_mut()).is_pending());
    tokio::time::advance(Duration::from_secs(3600)).await;
    tx.send(Bytes::from_static(b"late")).unwrap();
    assert!(matches!(
        next_frame(body.as_mut()),
        Poll::Ready(Some(Ok(_)))
    ));
}
