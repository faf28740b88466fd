//! `DeadlineLayer` under tokio's paused clock: the budget a request gets, the answer when
//! its scope wins, in each protocol, and what a hang-up or a stopping service does.
#![cfg(feature = "http")]

#[path = "support/fed_body.rs"]
mod fed_body;

#[path = "support/runtime.rs"]
mod runtime;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hangfree::CancelScope;
use hangfree::http::{DeadlineBody, DeadlineLayer};
use http::{Request, Response, StatusCode};
use http_body::{Body as _, Frame};
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready};
use tower_layer::Layer;
use tower_service::Service;

const LIMIT: Duration = Duration::from_secs(10);

type Handled = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// A service made of a closure: what a handler does with its request.
#[derive(Clone)]
struct Handler<F>(F);

impl<F, Fut> Service<Request<Body>> for Handler<F>
where
    F: FnMut(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Handled;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Handled {
        let handled = (self.0)(request);
        Box::pin(async move { Ok(handled.await) })
    }
}

/// The scope `DeadlineLayer` gave a request, from its extensions.
fn scope_of(request: &Request<Body>) -> CancelScope {
    request
        .extensions()
        .get::<CancelScope>()
        .cloned()
        .expect("DeadlineLayer puts the request's scope in its extensions")
}

fn request(headers: &[(&'static str, &'static str)]) -> Request<Body> {
    let mut builder = Request::builder().uri("/export");
    for &(name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::empty()).unwrap()
}

/// The budget the handler's scope was given, read at the moment of the call.
async fn budget_seen(layer: DeadlineLayer, headers: &[(&'static str, &'static str)]) -> Duration {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut service = layer.layer(Handler(move |request: Request<Body>| {
        let scope = request.extensions().get::<CancelScope>().cloned();
        seen_tx
            .send(scope.and_then(|scope| scope.remaining()))
            .unwrap();
        async { Response::new(Body::empty()) }
    }));
    service.call(request(headers)).await.unwrap();
    seen.recv()
        .await
        .unwrap()
        .expect("the request's scope has a deadline")
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_budget_header_gets_the_layers_limit() {
    assert_eq!(budget_seen(DeadlineLayer::new(LIMIT), &[]).await, LIMIT);
}

#[tokio::test(start_paused = true)]
async fn the_tightest_budget_header_wins() {
    let headers = [
        ("grpc-timeout", "5S"),
        ("connect-timeout-ms", "3000"),
        ("x-envoy-expected-rq-timeout-ms", "4000"),
    ];
    assert_eq!(
        budget_seen(DeadlineLayer::new(LIMIT), &headers).await,
        Duration::from_secs(3)
    );
    let headers = [("grpc-timeout", "250m"), ("connect-timeout-ms", "3000")];
    assert_eq!(
        budget_seen(DeadlineLayer::new(LIMIT), &headers).await,
        Duration::from_millis(250)
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_never_grants_more_than_its_own_limit() {
    let headers = [("grpc-timeout", "99999999H")];
    assert_eq!(
        budget_seen(DeadlineLayer::new(LIMIT), &headers).await,
        LIMIT
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_of_the_users_own_is_read_too() {
    let layer = DeadlineLayer::new(LIMIT).budget_header(hangfree::http::BudgetHeader::millis(
        http::HeaderName::from_static("x-budget-ms"),
    ));
    let headers = [("x-budget-ms", "1500"), ("grpc-timeout", "2S")];
    assert_eq!(
        budget_seen(layer, &headers).await,
        Duration::from_millis(1500)
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_budget_headers_count_as_absent() {
    for (name, value) in [
        ("grpc-timeout", ""),
        ("grpc-timeout", "123456789S"),
        ("grpc-timeout", "5x"),
        ("grpc-timeout", "+5S"),
        ("grpc-timeout", "0S"),
        ("connect-timeout-ms", "12345678901"),
        ("connect-timeout-ms", "+100"),
        ("connect-timeout-ms", "0"),
        ("x-envoy-expected-rq-timeout-ms", "1.5"),
    ] {
        let budget = budget_seen(DeadlineLayer::new(LIMIT), &[(name, value)]).await;
        assert_eq!(budget, LIMIT, "{name}: {value:?}");
    }
    // A malformed header does not hide a valid one.
    let headers = [("grpc-timeout", "5x"), ("connect-timeout-ms", "700")];
    assert_eq!(
        budget_seen(DeadlineLayer::new(LIMIT), &headers).await,
        Duration::from_millis(700)
    );
}

/// A flag set when the handler's future is dropped.
#[derive(Clone, Default)]
struct DropFlag(Arc<AtomicBool>);

struct SetOnDrop(DropFlag);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        (self.0).0.store(true, Ordering::SeqCst);
    }
}

impl DropFlag {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A service whose handler never answers; its future sets `dropped` when dropped.
fn stalled_service(
    layer: DeadlineLayer,
    dropped: &DropFlag,
) -> impl Service<Request<Body>, Response = Response<DeadlineBody<Body>>, Error = Infallible> {
    let dropped = dropped.clone();
    layer.layer(Handler(move |_| {
        let guard = SetOnDrop(dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending::<Response<Body>>().await
        }
    }))
}

async fn collect(body: DeadlineBody<Body>) -> (Vec<Bytes>, Option<http::HeaderMap>) {
    let mut body = std::pin::pin!(body);
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.expect("an answer's body does not fail");
        match frame.into_data() {
            Ok(bytes) => data.push(bytes),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    (data, trailers)
}

fn text(data: &[Bytes]) -> String {
    data.iter()
        .map(|bytes| std::str::from_utf8(bytes).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_stalled_plain_request_is_answered_504_exactly_at_its_deadline() {
    let dropped = DropFlag::default();
    let mut service = stalled_service(DeadlineLayer::new(LIMIT), &dropped);
    let mut response = tokio_test::task::spawn(service.call(request(&[("grpc-timeout", "2S")])));
    assert_pending!(response.poll());
    tokio::time::advance(Duration::from_millis(1999)).await;
    assert_pending!(response.poll());
    assert!(!dropped.is_set());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(response.is_woken());
    let response = assert_ready!(response.poll()).unwrap();
    assert!(
        dropped.is_set(),
        "the handler's future is dropped at the deadline"
    );
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let (data, trailers) = collect(response.into_body()).await;
    assert_eq!(text(&data), "deadline of 2s of 'GET /export' exceeded\n");
    assert!(trailers.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_grpc_call_gets_a_trailers_only_deadline_exceeded() {
    let dropped = DropFlag::default();
    let mut service = stalled_service(DeadlineLayer::new(LIMIT), &dropped);
    let call = service.call(request(&[
        ("content-type", "application/grpc"),
        ("grpc-timeout", "1500m"),
    ]));
    let started = tokio::time::Instant::now();
    let response = call.await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
    assert!(dropped.is_set());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(
        response.headers()["grpc-message"],
        "deadline of 1.5s of 'GET /export' exceeded"
    );
    assert!(response.body().is_end_stream(), "trailers-only: no body");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_connect_call_gets_the_connect_deadline_error() {
    let dropped = DropFlag::default();
    let mut service = stalled_service(DeadlineLayer::new(LIMIT), &dropped);
    let response = service
        .call(request(&[
            ("content-type", "application/json"),
            ("connect-protocol-version", "1"),
            ("connect-timeout-ms", "800"),
        ]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(response.headers()["content-type"], "application/json");
    let (data, _) = collect(response.into_body()).await;
    assert_eq!(
        text(&data),
        r#"{"code":"deadline_exceeded","message":"deadline of 800ms of 'GET /export' exceeded"}"#
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopping_service_answers_its_requests_in_flight_as_unavailable() {
    for (headers, check) in [
        (
            vec![("content-type", "application/grpc")],
            (|response: &Response<DeadlineBody<Body>>| {
                assert_eq!(response.headers()["grpc-status"], "14");
            }) as fn(&Response<DeadlineBody<Body>>),
        ),
        (vec![], |response| {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }),
        (vec![("connect-protocol-version", "1")], |response| {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }),
    ] {
        let root = CancelScope::new();
        let dropped = DropFlag::default();
        let mut service = stalled_service(DeadlineLayer::new(LIMIT).root(root.clone()), &dropped);
        let mut response = tokio_test::task::spawn(service.call(request(&headers)));
        assert_pending!(response.poll());
        root.cancel();
        assert!(response.is_woken());
        let response = assert_ready!(response.poll()).unwrap();
        assert!(dropped.is_set());
        check(&response);
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_cancelled_otherwise_is_answered_as_cancelled() {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        std::future::pending()
    }));
    let mut response =
        tokio_test::task::spawn(service.call(request(&[("content-type", "application/grpc")])));
    assert_pending!(response.poll());
    scope_rx.recv().await.unwrap().cancel();
    let response = assert_ready!(response.poll()).unwrap();
    assert_eq!(response.headers()["grpc-status"], "1");
    assert_eq!(
        response.headers()["grpc-message"],
        "'GET /export' cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_response_future_cancels_the_requests_scope_before_dropping_the_handler() {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let cancelled_at_drop = Arc::new(AtomicBool::new(false));
    let seen = cancelled_at_drop.clone();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        let scope = scope_of(&request);
        scope_tx.send(scope.clone()).unwrap();
        let seen = seen.clone();
        async move {
            struct OnDrop(CancelScope, Arc<AtomicBool>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    self.1.store(self.0.is_cancelled(), Ordering::SeqCst);
                }
            }
            let _on_drop = OnDrop(scope, seen);
            std::future::pending::<Response<Body>>().await
        }
    }));
    let mut response = tokio_test::task::spawn(service.call(request(&[])));
    assert_pending!(response.poll());
    let scope = scope_rx.recv().await.unwrap();
    // Work the handler started under its scope, still running.
    let work = tokio::spawn({
        let scope = scope.clone();
        async move { scope.cancelled().await }
    });
    drop(response);
    assert!(scope.is_cancelled());
    assert!(cancelled_at_drop.load(Ordering::SeqCst));
    assert!(!work.await.unwrap().is_deadline());
}

/// A response body fed frame by frame from a channel; it ends only when the sender is
/// dropped.
fn channel_body() -> (mpsc::UnboundedSender<Bytes>, Body) {
    let (tx, body) = fed_body::fed();
    (tx, Body::new(body))
}

/// A streaming service: each response body is fed through the returned channel.
async fn streaming_call(
    layer: DeadlineLayer,
    headers: &[(&'static str, &'static str)],
) -> (mpsc::UnboundedSender<Bytes>, DeadlineBody<Body>) {
    let (tx, body) = channel_body();
    let body = std::sync::Mutex::new(Some(body));
    let mut service = layer.layer(Handler(move |_| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Response::new(body) }
    }));
    let response = service.call(request(headers)).await.unwrap();
    (tx, response.into_body())
}

fn next_frame(
    body: &mut Pin<&mut DeadlineBody<Body>>,
) -> Poll<Option<Result<Frame<Bytes>, hangfree::http::BoxError>>> {
    body.as_mut()
        .poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn a_grpc_stream_cut_by_the_deadline_ends_with_deadline_exceeded_trailers() {
    let headers = [("content-type", "application/grpc"), ("grpc-timeout", "3S")];
    let (tx, body) = streaming_call(DeadlineLayer::new(LIMIT), &headers).await;
    let mut body = std::pin::pin!(body);
    tx.send(Bytes::from_static(b"first")).unwrap();
    let frame = assert_ready!(next_frame(&mut body)).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    assert!(next_frame(&mut body).is_pending());
    tokio::time::advance(Duration::from_secs(3)).await;
    let frame = assert_ready!(next_frame(&mut body)).unwrap().unwrap();
    let trailers = frame.into_trailers().unwrap();
    assert_eq!(trailers["grpc-status"], "4");
    assert_eq!(
        trailers["grpc-message"],
        "deadline of 3s of 'GET /export' exceeded"
    );
    assert!(assert_ready!(next_frame(&mut body)).is_none());
    assert!(body.is_end_stream());
    // The inner body was dropped: its sender sees the stream gone.
    assert!(tx.send(Bytes::from_static(b"late")).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_plain_stream_cut_by_the_deadline_yields_an_error() {
    let (tx, body) = streaming_call(DeadlineLayer::new(LIMIT), &[("grpc-timeout", "1S")]).await;
    let mut body = std::pin::pin!(body);
    assert!(next_frame(&mut body).is_pending());
    tokio::time::advance(Duration::from_secs(1)).await;
    let error = assert_ready!(next_frame(&mut body)).unwrap().unwrap_err();
    let interrupted = error.downcast_ref::<hangfree::Interrupted>().unwrap();
    assert!(interrupted.is_deadline());
    assert!(assert_ready!(next_frame(&mut body)).is_none());
    assert!(tx.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_stopping_service_ends_its_open_streams_instead_of_waiting_on_them() {
    let root = CancelScope::new();
    let headers = [("content-type", "application/grpc")];
    let (_tx, body) = streaming_call(DeadlineLayer::new(LIMIT).root(root.clone()), &headers).await;
    let mut body = std::pin::pin!(body);
    assert!(next_frame(&mut body).is_pending());
    root.cancel();
    let frame = assert_ready!(next_frame(&mut body)).unwrap().unwrap();
    assert_eq!(frame.into_trailers().unwrap()["grpc-status"], "14");
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_ends_on_its_own_passes_through_untouched() {
    let (tx, body) = streaming_call(DeadlineLayer::new(LIMIT), &[]).await;
    tx.send(Bytes::from_static(b"a")).unwrap();
    tx.send(Bytes::from_static(b"b")).unwrap();
    drop(tx);
    let (data, trailers) = collect(body).await;
    assert_eq!(text(&data), "ab");
    assert!(trailers.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_response_body_dropped_before_its_end_cancels_the_requests_scope() {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let (_tx, inner) = channel_body();
    let inner = std::sync::Mutex::new(Some(inner));
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        let body = inner.lock().unwrap().take().unwrap();
        async move { Response::new(body) }
    }));
    let response = service.call(request(&[])).await.unwrap();
    let scope = scope_rx.recv().await.unwrap();
    assert!(!scope.is_cancelled());
    drop(response);
    assert!(scope.is_cancelled());

    // One that ended is not: the client read it all.
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        async { Response::new(Body::from("done")) }
    }));
    let response = service.call(request(&[])).await.unwrap();
    let scope = scope_rx.recv().await.unwrap();
    let (data, _) = collect(response.into_body()).await;
    assert_eq!(text(&data), "done");
    assert!(!scope.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_ready_response_wins_over_an_interrupt_in_the_same_poll() {
    let root = CancelScope::new();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<()>();
    let answer_rx = std::sync::Mutex::new(Some(answer_rx));
    let mut service = DeadlineLayer::new(LIMIT)
        .root(root.clone())
        .layer(Handler(move |_| {
            let answer = answer_rx.lock().unwrap().take().unwrap();
            async move {
                answer.await.unwrap();
                Response::new(Body::from("made"))
            }
        }));
    let mut response = tokio_test::task::spawn(service.call(request(&[])));
    assert_pending!(response.poll());
    answer_tx.send(()).unwrap();
    root.cancel();
    let response = assert_ready!(response.poll()).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (data, _) = collect(response.into_body()).await;
    assert_eq!(text(&data), "made");
}

/// A service whose handler answers at once, and a flag it sets when it is called.
fn answering_service(
    layer: DeadlineLayer,
) -> (
    impl Service<Request<Body>, Response = Response<DeadlineBody<Body>>, Error = Infallible>,
    Arc<AtomicBool>,
) {
    let called = Arc::new(AtomicBool::new(false));
    let seen = called.clone();
    let service = layer.layer(Handler(move |_| {
        seen.store(true, Ordering::SeqCst);
        async { Response::new(Body::from("made")) }
    }));
    (service, called)
}

#[tokio::test(start_paused = true)]
async fn a_request_to_a_stopped_service_is_answered_without_starting_its_handler() {
    let root = CancelScope::new();
    root.cancel();
    let (mut service, called) = answering_service(DeadlineLayer::new(LIMIT).root(root));
    let response = service.call(request(&[])).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!called.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn size_hint_and_end_of_stream_are_the_inner_bodys() {
    let mut service =
        DeadlineLayer::new(LIMIT).layer(Handler(|_| async { Response::new(Body::from("12345")) }));
    let response = service.call(request(&[])).await.unwrap();
    assert_eq!(response.body().size_hint().exact(), Some(5));
    assert!(!response.body().is_end_stream());
    let mut service =
        DeadlineLayer::new(LIMIT).layer(Handler(|_| async { Response::new(Body::empty()) }));
    let response = service.call(request(&[])).await.unwrap();
    assert!(response.body().is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn the_margin_comes_off_a_carried_budget_but_not_off_the_layers_limit() {
    let layer = DeadlineLayer::new(LIMIT).margin(Duration::from_millis(25));
    assert_eq!(
        budget_seen(layer.clone(), &[("grpc-timeout", "300m")]).await,
        Duration::from_millis(275)
    );
    assert_eq!(budget_seen(layer, &[]).await, LIMIT);
}

#[tokio::test(start_paused = true)]
async fn a_budget_smaller_than_the_margin_is_answered_at_once_without_starting_the_handler() {
    let (mut service, called) =
        answering_service(DeadlineLayer::new(LIMIT).margin(Duration::from_millis(25)));
    let started = tokio::time::Instant::now();
    let response = service
        .call(request(&[
            ("grpc-timeout", "20m"),
            ("content-type", "application/grpc"),
        ]))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert!(!called.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn an_empty_response_body_dropped_unread_is_no_hang_up() {
    // hyper does not poll a body that is already at its end: it drops it.
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        async { Response::new(Body::empty()) }
    }));
    let response = service.call(request(&[])).await.unwrap();
    assert!(response.body().is_end_stream());
    drop(response);
    assert!(!scope_rx.recv().await.unwrap().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn the_requests_scope_is_current_for_the_handler_and_named_after_the_request() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        let given = scope_of(&request);
        // In `call` (building the future) and in the future's own polls.
        let in_call = CancelScope::current();
        let seen = seen_tx.clone();
        async move {
            tokio::task::yield_now().await;
            let in_poll = CancelScope::current();
            seen.send((given, in_call, in_poll)).unwrap();
            Response::new(Body::empty())
        }
    }));
    service
        .call(request(&[("grpc-timeout", "2S")]))
        .await
        .unwrap();
    let (given, in_call, in_poll) = seen.recv().await.unwrap();
    assert_eq!(given.name(), Some("GET /export"));
    for current in [in_call, in_poll] {
        let current = current.expect("a current scope");
        assert_eq!(current.name(), Some("GET /export"));
        assert_eq!(current.deadline(), given.deadline());
    }
    assert!(
        CancelScope::current().is_none(),
        "not current outside the request"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hang_up_cancels_the_requests_scope_with_a_reason_that_says_so() {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        std::future::pending()
    }));
    let mut response = tokio_test::task::spawn(service.call(request(&[])));
    assert_pending!(response.poll());
    let scope = scope_rx.recv().await.unwrap();
    drop(response);
    let why = scope.check().unwrap_err();
    assert_eq!(
        why.reason(),
        Some("the client went away before the response was complete")
    );
    assert_eq!(
        why.to_string(),
        "'GET /export' cancelled: the client went away before the response was complete"
    );
}

/// Serves one request whose handler answers at once, and returns the scope it was given:
/// a request scope that nothing ever waited on.
async fn scope_of_a_request_answered_at_once(layer: DeadlineLayer) -> CancelScope {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = layer.layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        async { Response::new(Body::from("done")) }
    }));
    let response = service.call(request(&[])).await.unwrap();
    let (data, _) = collect(response.into_body()).await;
    assert_eq!(text(&data), "done");
    scope_rx.recv().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_request_scope_nothing_waited_on_is_still_cancelled_by_its_stopping_service() {
    let root = CancelScope::new();
    let kept =
        scope_of_a_request_answered_at_once(DeadlineLayer::new(LIMIT).root(root.clone())).await;
    assert!(!kept.is_cancelled());
    root.cancel_with("service stopping (SIGTERM)");
    assert!(kept.is_cancelled());
    let why = kept.check().unwrap_err();
    assert_eq!(why.cause(), hangfree::Cause::Cancelled);
    assert_eq!(why.reason(), Some("service stopping (SIGTERM)"));
    let after = kept.child();
    assert!(
        after.is_cancelled(),
        "a scope made from it now is born cancelled"
    );
    let waited = kept.cancelled().await;
    assert_eq!(waited.reason(), Some("service stopping (SIGTERM)"));
}

#[tokio::test(start_paused = true)]
async fn a_request_scope_nothing_waited_on_keeps_its_deadline_and_name() {
    let kept = scope_of_a_request_answered_at_once(DeadlineLayer::new(LIMIT)).await;
    let start = tokio::time::Instant::now();
    assert_eq!(kept.remaining(), Some(LIMIT));
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(kept.remaining(), Some(Duration::from_secs(6)));
    assert_eq!(kept.deadline(), Some(start + LIMIT));
    assert!(kept.check().is_ok());
    tokio::time::advance(Duration::from_secs(6)).await;
    let why = kept.check().unwrap_err();
    assert!(why.is_deadline());
    assert_eq!(why.to_string(), "deadline of 10s of 'GET /export' exceeded");
    assert_eq!(kept.name(), Some("GET /export"));
    assert!(
        kept.is_cancelled(),
        "the check that saw the deadline fired it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_scope_nothing_waited_on_follows_its_roots_sooner_deadline() {
    let root = CancelScope::new().with_timeout(Duration::from_secs(1));
    let kept =
        scope_of_a_request_answered_at_once(DeadlineLayer::new(LIMIT).root(root.clone())).await;
    assert_eq!(kept.deadline(), root.deadline());
    assert!(format!("{kept:?}").contains("deadline_inherited: true"));
    assert!(kept.check().is_ok());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        !kept.is_cancelled(),
        "no timer was armed: only a check can tell"
    );
    let why = kept.check().unwrap_err();
    assert_eq!(
        why.to_string(),
        "deadline of 1s exceeded (inherited from an outer scope)"
    );
    assert!(root.is_cancelled(), "the check fired the root's deadline");
}

#[tokio::test(start_paused = true)]
async fn a_request_scope_made_when_its_root_is_past_its_deadline_is_over_from_the_start() {
    let root = CancelScope::new().with_timeout(Duration::from_secs(1));
    // Past the root's deadline by the clock, with no timer armed to say so yet.
    tokio::time::advance(Duration::from_secs(2)).await;
    let (mut service, called) = answering_service(DeadlineLayer::new(LIMIT).root(root));
    let response = service.call(request(&[])).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!called.load(Ordering::SeqCst));
}

#[test]
fn request_scopes_racing_their_roots_cancel_on_another_thread_all_end_cancelled() {
    // Each round: requests answered at once leave their scopes behind; one thread waits
    // on them (the first wait makes each scope's node) while another cancels the root.
    let rt = runtime::two_workers();
    rt.block_on(async {
        for round in 0..300 {
            let root = CancelScope::new();
            let mut kept = Vec::new();
            for _ in 0..8 {
                kept.push(
                    scope_of_a_request_answered_at_once(
                        DeadlineLayer::new(LIMIT).root(root.clone()),
                    )
                    .await,
                );
            }
            let waiters = tokio::spawn(async move {
                let mut whys = Vec::new();
                for scope in kept {
                    whys.push(scope.cancelled().await);
                }
                whys
            });
            let canceller = tokio::spawn(async move {
                tokio::task::yield_now().await;
                root.cancel_with("stop");
            });
            let whys = tokio::time::timeout(Duration::from_secs(10), waiters)
                .await
                .unwrap_or_else(|_| panic!("round {round}: a waiter was never woken"))
                .unwrap();
            canceller.await.unwrap();
            assert!(
                whys.iter().all(|why| why.reason() == Some("stop")),
                "round {round}"
            );
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_requests_scope_is_named_after_its_path_without_the_query() {
    let (scope_tx, mut scope_rx) = mpsc::unbounded_channel();
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<Body>| {
        scope_tx.send(scope_of(&request)).unwrap();
        async { Response::new(Body::empty()) }
    }));
    for (method, uri, name) in [
        ("GET", "/export?since=2024-01-01", "GET /export"),
        ("POST", "http://example.com/jobs/7?force=1", "POST /jobs/7"),
        ("GET", "http://example.com", "GET /"),
        ("CONNECT", "example.com:443", "CONNECT"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        service.call(request).await.unwrap();
        let scope = scope_rx.recv().await.unwrap();
        assert_eq!(scope.name(), Some(name), "{method} {uri}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_repeats_the_requests_grpc_or_connect_streaming_content_type() {
    for (content_type, answered) in [
        ("application/grpc+proto", "application/grpc+proto"),
        ("application/grpc+json", "application/grpc+json"),
        ("application/connect+proto", "application/connect+proto"),
        ("application/json", "application/json"),
        ("text/csv", "text/plain; charset=utf-8"),
    ] {
        let dropped = DropFlag::default();
        let mut service = stalled_service(DeadlineLayer::new(LIMIT), &dropped);
        let headers = [("content-type", content_type), ("grpc-timeout", "1S")];
        let mut request = request(&headers);
        if content_type == "application/json" {
            // Connect unary: answered in JSON whatever it sent.
            request
                .headers_mut()
                .insert("connect-protocol-version", "1".parse().unwrap());
        }
        let response = service.call(request).await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            answered,
            "{content_type}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_scope_under_a_shutdown_token_is_cancelled_once_the_token_is() {
    let shutdown = hangfree::scope::CancellationToken::new();
    let root = CancelScope::from_token(&shutdown);
    let kept = scope_of_a_request_answered_at_once(DeadlineLayer::new(LIMIT).root(root)).await;
    assert!(!kept.is_cancelled());
    shutdown.cancel();
    assert!(
        kept.is_cancelled(),
        "the token's cancel reached the request's scope"
    );
    assert_eq!(
        kept.check().unwrap_err().cause(),
        hangfree::Cause::Cancelled
    );
    let token = kept.token();
    assert!(token.is_cancelled());
}
