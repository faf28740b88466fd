//! Scenarios from the test suites of the crates the http layers are compared with (tonic's
//! `grpc-timeout` parsing, tower's and tower-http's timeout middleware, the Connect
//! protocol's `connect-timeout-ms` rules), translated to what `hangfree::http` documents,
//! plus edge cases a production user meets. Paused tokio clock throughout.
#![cfg(feature = "http")]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hangfree::CancelScope;
use hangfree::http::{
    BoxError, BudgetHeader, DeadlineBody, DeadlineLayer, PropagateError, PropagateLayer,
    WatchdogBody, WatchdogBodyLayer,
};
use hangfree::watchdog::{Limits, StallKind, Stalled};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready};
use tower_layer::Layer;
use tower_service::Service;

const LIMIT: Duration = Duration::from_secs(10);
const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Bodies and services
// ---------------------------------------------------------------------------------------

/// A body fed frame by frame (data or trailers) through a channel; pending until a frame
/// is sent, ended when the sender is dropped.
struct Frames {
    rx: mpsc::UnboundedReceiver<Frame<Bytes>>,
    hint: SizeHint,
    end: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }

    fn is_end_stream(&self) -> bool {
        self.end
    }
}

fn frames() -> (mpsc::UnboundedSender<Frame<Bytes>>, Frames) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        tx,
        Frames {
            rx,
            hint: SizeHint::default(),
            end: false,
        },
    )
}

/// A body that always has a frame ready: a fast producer behind a slow reader, or an
/// in-memory stream. Counts the frames it yielded.
#[derive(Clone, Default)]
struct Endless {
    yielded: Arc<AtomicUsize>,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.yielded.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
    }
}

/// A body that fails with its own error after its frames.
struct Failing(VecDeque<Bytes>);

#[derive(Debug)]
struct BodyBroke;

impl std::fmt::Display for BodyBroke {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by peer")
    }
}

impl std::error::Error for BodyBroke {}

impl Body for Failing {
    type Data = Bytes;
    type Error = BodyBroke;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyBroke>>> {
        Poll::Ready(Some(self.0.pop_front().map(Frame::data).ok_or(BodyBroke)))
    }
}

/// The inner service's own error.
#[derive(Debug, PartialEq)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A service made of a closure from request to a future of the response.
#[derive(Clone)]
struct Handler<F>(F);

impl<F, Fut, ReqB, ResB> Service<Request<ReqB>> for Handler<F>
where
    F: FnMut(Request<ReqB>) -> Fut,
    Fut: Future<Output = Result<Response<ResB>, Refused>> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Refused;
    type Future = Boxed<Response<ResB>, Refused>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        Box::pin((self.0)(request))
    }
}

fn request(headers: &[(&'static str, &'static str)]) -> Request<()> {
    let mut builder = Request::builder().uri("/export");
    for &(name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap()
}

fn request_with_values(values: &[(&'static str, HeaderValue)]) -> Request<()> {
    let mut request = request(&[]);
    for (name, value) in values {
        request.headers_mut().append(*name, value.clone());
    }
    request
}

/// The budget the handler's scope had at the moment of the call (`None`: no deadline).
async fn budget_for(layer: DeadlineLayer, request: Request<()>) -> Option<Duration> {
    let seen = Arc::new(Mutex::new(None));
    let seen_in = seen.clone();
    let mut service = layer.layer(Handler(move |request: Request<()>| {
        let scope = request.extensions().get::<CancelScope>().cloned().unwrap();
        *seen_in.lock().unwrap() = Some(scope.remaining());
        async { Ok(Response::new(Endless::default())) }
    }));
    service.call(request).await.unwrap();
    let seen = seen.lock().unwrap().take();
    seen.expect("the handler was called")
}

async fn budget_seen(headers: &[(&'static str, &'static str)]) -> Option<Duration> {
    budget_for(DeadlineLayer::new(LIMIT), request(headers)).await
}

fn grpc(value: &'static str) -> Result<Duration, hangfree::http::MalformedBudget> {
    BudgetHeader::grpc().parse(&HeaderValue::from_static(value))
}

fn connect(value: &'static str) -> Result<Duration, hangfree::http::MalformedBudget> {
    BudgetHeader::connect().parse(&HeaderValue::from_static(value))
}

type Next = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

fn poll_body<B: Body<Data = Bytes, Error = BoxError>>(body: Pin<&mut B>) -> Next {
    body.poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
}

fn data_of(next: Next) -> Bytes {
    match next {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().expect("a data frame"),
        other => panic!("expected a data frame, got {other:?}"),
    }
}

/// A streaming service: its one response body is given, and the scope the request got is
/// kept.
async fn serve_body<B>(
    layer: DeadlineLayer,
    headers: &[(&'static str, &'static str)],
    body: B,
) -> (Response<DeadlineBody<B>>, CancelScope)
where
    B: Body<Data = Bytes> + Send + 'static,
{
    let scope = Arc::new(Mutex::new(None));
    let scope_in = scope.clone();
    let body = Mutex::new(Some(body));
    let mut service = layer.layer(Handler(move |request: Request<()>| {
        *scope_in.lock().unwrap() = request.extensions().get::<CancelScope>().cloned();
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok(Response::new(body)) }
    }));
    let response = service.call(request(headers)).await.unwrap();
    let scope = scope.lock().unwrap().take().unwrap();
    (response, scope)
}

// ---------------------------------------------------------------------------------------
// grpc-timeout parsing (tonic's cases)
// ---------------------------------------------------------------------------------------

#[test]
fn grpc_timeout_reads_every_unit_as_tonic_does() {
    assert_eq!(grpc("3H").unwrap(), Duration::from_secs(3 * 3600));
    assert_eq!(grpc("1M").unwrap(), Duration::from_secs(60));
    assert_eq!(grpc("42S").unwrap(), Duration::from_secs(42));
    assert_eq!(grpc("13m").unwrap(), Duration::from_millis(13));
    assert_eq!(grpc("2u").unwrap(), Duration::from_micros(2));
    assert_eq!(grpc("82n").unwrap(), Duration::from_nanos(82));
}

#[test]
fn grpc_timeout_with_eight_digits_is_read_in_every_unit() {
    assert_eq!(grpc("99999999n").unwrap(), Duration::from_nanos(99_999_999));
    assert_eq!(
        grpc("99999999u").unwrap(),
        Duration::from_micros(99_999_999)
    );
    assert_eq!(
        grpc("99999999m").unwrap(),
        Duration::from_millis(99_999_999)
    );
    assert_eq!(grpc("99999999S").unwrap(), Duration::from_secs(99_999_999));
    assert_eq!(
        grpc("99999999M").unwrap(),
        Duration::from_secs(99_999_999 * 60)
    );
    assert_eq!(
        grpc("99999999H").unwrap(),
        Duration::from_secs(99_999_999 * 3600)
    );
}

#[test]
fn grpc_timeout_with_nine_digits_is_malformed_even_with_leading_zeros() {
    for value in ["123456789H", "100000000n", "000000001S", "999999999m"] {
        let error = BudgetHeader::grpc()
            .parse(&HeaderValue::from_static(value))
            .unwrap_err();
        assert!(
            error.to_string().ends_with("more than 8 digits"),
            "{value}: {error}"
        );
    }
}

#[test]
fn grpc_timeout_with_an_unknown_or_wrong_case_unit_is_malformed() {
    for value in ["82f", "5h", "5s", "5U", "5N", "5ms", "5MS", "5Sm", "5!"] {
        let parsed =
            BudgetHeader::grpc().parse(&HeaderValue::from_bytes(value.as_bytes()).unwrap());
        assert!(parsed.is_err(), "{value:?} read as {parsed:?}");
    }
    // Case is the unit: `M` minutes, `m` milliseconds.
    assert_eq!(grpc("5M").unwrap(), Duration::from_secs(300));
    assert_eq!(grpc("5m").unwrap(), Duration::from_millis(5));
}

#[test]
fn grpc_timeout_with_words_signs_spaces_or_fractions_is_malformed() {
    for value in [
        "oneH", "", "H", "m", " 5S", "5S ", "5 S", "\t5S", "+5S", "-5S", "1.5S", "1e3m", "0x5S",
        "5,0S", "٥S",
    ] {
        let parsed =
            BudgetHeader::grpc().parse(&HeaderValue::from_bytes(value.as_bytes()).unwrap());
        assert!(parsed.is_err(), "{value:?} read as {parsed:?}");
    }
}

#[test]
fn grpc_timeout_of_zero_in_any_unit_is_malformed() {
    for value in ["0H", "0M", "0S", "0m", "0u", "0n", "00000000n"] {
        let error = grpc(value).unwrap_err();
        assert!(
            error.to_string().ends_with("zero is not a budget"),
            "{value}"
        );
    }
}

#[test]
fn grpc_timeout_that_is_not_utf8_or_not_ascii_is_malformed_not_a_panic() {
    for bytes in [
        &b"\xff"[..],
        b"5\xff",
        b"\xffS",
        b"5\xffS",
        b"\x80\x80",
        "５S".as_bytes(),
        "5Ｓ".as_bytes(),
        "5µ".as_bytes(),
    ] {
        let value = HeaderValue::from_bytes(bytes).unwrap();
        assert!(BudgetHeader::grpc().parse(&value).is_err(), "{bytes:?}");
        assert!(BudgetHeader::connect().parse(&value).is_err(), "{bytes:?}");
        // The error's text is lossy, never a panic.
        let _ = BudgetHeader::grpc().parse(&value).unwrap_err().to_string();
    }
}

#[test]
fn grpc_timeout_parsing_never_panics_on_tonics_fuzz_alphabet() {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVabcdefghilpqrstuvwxyz----0123456789";
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 12) as usize;
        let mut y = x;
        let text: Vec<u8> = (0..len)
            .map(|_| {
                y = y.rotate_left(7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                alphabet[(y % alphabet.len() as u64) as usize]
            })
            .collect();
        let value = HeaderValue::from_bytes(&text).unwrap();
        if let Ok(budget) = BudgetHeader::grpc().parse(&value) {
            // Only the documented shape is read: 1 to 8 digits and a unit.
            let (unit, digits) = text.split_last().unwrap();
            assert!(b"HMSmun".contains(unit), "{text:?}");
            assert!((1..=8).contains(&digits.len()), "{text:?}");
            assert!(digits.iter().all(u8::is_ascii_digit), "{text:?}");
            assert!(!budget.is_zero());
        }
    }
}

// ---------------------------------------------------------------------------------------
// connect-timeout-ms (the Connect protocol: at most 10 digits, a positive integer)
// ---------------------------------------------------------------------------------------

#[test]
fn connect_timeout_allows_ten_digits_and_no_more() {
    assert_eq!(connect("1").unwrap(), MS);
    assert_eq!(
        connect("9999999999").unwrap(),
        Duration::from_millis(9_999_999_999)
    );
    assert_eq!(connect("0000000001").unwrap(), MS);
    for value in ["10000000000", "00000000001", "99999999999999999999999"] {
        let error = connect(value).unwrap_err();
        assert!(
            error.to_string().ends_with("more than 10 digits"),
            "{value}: {error}"
        );
    }
}

#[test]
fn connect_timeout_that_is_negative_fractional_or_spaced_is_malformed() {
    for value in [
        "-1",
        "+1",
        "1.0",
        " 1",
        "1 ",
        "1ms",
        "1S",
        "0x1",
        "",
        "0",
        "0000000000",
    ] {
        assert!(connect(value).is_err(), "{value:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The budget a request gets (DeadlineLayer)
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn grpc_timeout_with_nine_digits_is_ignored() {
    assert_eq!(
        budget_seen(&[("grpc-timeout", "123456789H")]).await,
        Some(LIMIT)
    );
    assert_eq!(
        budget_seen(&[("grpc-timeout", "000000001S")]).await,
        Some(LIMIT)
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_budget_header_counts_as_absent_and_the_limit_applies() {
    for headers in [
        [("grpc-timeout", "0n")],
        [("grpc-timeout", "0S")],
        [("connect-timeout-ms", "0")],
        [("x-envoy-expected-rq-timeout-ms", "0")],
    ] {
        assert_eq!(budget_seen(&headers).await, Some(LIMIT), "{headers:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_tiny_budget_of_one_nanosecond_is_honoured() {
    assert_eq!(
        budget_seen(&[("grpc-timeout", "1n")]).await,
        Some(Duration::from_nanos(1))
    );
}

#[tokio::test(start_paused = true)]
async fn several_grpc_timeout_headers_the_tightest_valid_one_wins() {
    let request = request_with_values(&[
        ("grpc-timeout", HeaderValue::from_static("5S")),
        ("grpc-timeout", HeaderValue::from_static("bogus")),
        ("grpc-timeout", HeaderValue::from_static("300m")),
        ("grpc-timeout", HeaderValue::from_static("0m")),
        ("grpc-timeout", HeaderValue::from_static("2S")),
    ]);
    assert_eq!(
        budget_for(DeadlineLayer::new(LIMIT), request).await,
        Some(Duration::from_millis(300))
    );
    // The order does not matter.
    let request = request_with_values(&[
        ("grpc-timeout", HeaderValue::from_static("300m")),
        ("grpc-timeout", HeaderValue::from_static("5S")),
    ]);
    assert_eq!(
        budget_for(DeadlineLayer::new(LIMIT), request).await,
        Some(Duration::from_millis(300))
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_utf8_or_non_ascii_budget_header_is_ignored_and_does_not_hide_a_valid_one() {
    let request = request_with_values(&[
        ("grpc-timeout", HeaderValue::from_bytes(b"5\xffS").unwrap()),
        (
            "connect-timeout-ms",
            HeaderValue::from_bytes("１００".as_bytes()).unwrap(),
        ),
    ]);
    assert_eq!(
        budget_for(DeadlineLayer::new(LIMIT), request).await,
        Some(LIMIT)
    );
    let request = request_with_values(&[
        ("grpc-timeout", HeaderValue::from_bytes(b"\xff").unwrap()),
        ("grpc-timeout", HeaderValue::from_static("700m")),
    ]);
    assert_eq!(
        budget_for(DeadlineLayer::new(LIMIT), request).await,
        Some(Duration::from_millis(700))
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_larger_than_the_servers_limit_gets_the_limit() {
    for headers in [
        [("grpc-timeout", "11S")],
        [("grpc-timeout", "99999999H")],
        [("connect-timeout-ms", "9999999999")],
        [("x-envoy-expected-rq-timeout-ms", "10001")],
    ] {
        assert_eq!(budget_seen(&headers).await, Some(LIMIT), "{headers:?}");
    }
    // Exactly the limit is the limit.
    assert_eq!(
        budget_seen(&[("connect-timeout-ms", "10000")]).await,
        Some(LIMIT)
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_and_connect_headers_together_the_tightest_wins_either_way() {
    assert_eq!(
        budget_seen(&[("grpc-timeout", "2S"), ("connect-timeout-ms", "1500")]).await,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        budget_seen(&[("grpc-timeout", "1S"), ("connect-timeout-ms", "1500")]).await,
        Some(SECOND)
    );
    assert_eq!(
        budget_seen(&[
            ("connect-timeout-ms", "1500"),
            ("x-envoy-expected-rq-timeout-ms", "900"),
            ("grpc-timeout", "1S"),
        ])
        .await,
        Some(Duration::from_millis(900))
    );
}

#[tokio::test(start_paused = true)]
async fn a_layer_without_a_limit_gives_no_deadline_to_a_request_without_a_budget() {
    assert_eq!(
        budget_for(DeadlineLayer::new(Duration::MAX), request(&[])).await,
        None
    );
}

#[tokio::test(start_paused = true)]
async fn a_layer_without_a_limit_honours_the_largest_grpc_budget() {
    assert_eq!(
        budget_for(
            DeadlineLayer::new(Duration::MAX),
            request(&[("grpc-timeout", "99999999H")])
        )
        .await,
        Some(Duration::from_secs(99_999_999 * 3600))
    );
    assert_eq!(
        budget_for(
            DeadlineLayer::new(Duration::MAX),
            request(&[("connect-timeout-ms", "9999999999")])
        )
        .await,
        Some(Duration::from_millis(9_999_999_999))
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_header_of_the_users_own_with_a_bad_value_is_ignored() {
    let layer = DeadlineLayer::new(LIMIT)
        .budget_header(BudgetHeader::millis(HeaderName::from_static("x-budget-ms")));
    assert_eq!(
        budget_for(layer.clone(), request(&[("x-budget-ms", "1.5")])).await,
        Some(LIMIT)
    );
    assert_eq!(
        budget_for(
            layer,
            request(&[("x-budget-ms", "250"), ("grpc-timeout", "1S")])
        )
        .await,
        Some(Duration::from_millis(250))
    );
}

// ---------------------------------------------------------------------------------------
// The response future (tower's `Timeout`, tower-http's `TimeoutLayer`)
// ---------------------------------------------------------------------------------------

/// A service whose readiness and answers the test controls.
#[derive(Clone, Default)]
struct Gate {
    ready: Arc<AtomicBool>,
    fail_ready: Arc<AtomicBool>,
    polled_ready: Arc<AtomicUsize>,
}

impl Service<Request<()>> for Gate {
    type Response = Response<Endless>;
    type Error = Refused;
    type Future = Boxed<Response<Endless>, Refused>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        self.polled_ready.fetch_add(1, Ordering::SeqCst);
        if self.fail_ready.load(Ordering::SeqCst) {
            return Poll::Ready(Err(Refused));
        }
        if self.ready.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        Box::pin(async { Ok(Response::new(Endless::default())) })
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_is_the_inner_services_and_no_deadline_applies_to_it() {
    let gate = Gate::default();
    let mut service = DeadlineLayer::new(SECOND).layer(gate.clone());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(service.poll_ready(&mut cx).is_pending());
    // Waiting to be ready is not part of any request's budget.
    tokio::time::advance(5 * SECOND).await;
    assert!(service.poll_ready(&mut cx).is_pending());
    gate.ready.store(true, Ordering::SeqCst);
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    gate.fail_ready.store(true, Ordering::SeqCst);
    assert!(matches!(
        service.poll_ready(&mut cx),
        Poll::Ready(Err(Refused))
    ));
    assert_eq!(gate.polled_ready.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_fast_inner_service_is_answered_untouched_within_its_budget() {
    let mut service = DeadlineLayer::new(SECOND).layer(Handler(|_: Request<()>| async {
        let mut response = Response::new(Endless::default());
        *response.status_mut() = StatusCode::CREATED;
        response
            .headers_mut()
            .insert("x-made-by", HeaderValue::from_static("handler"));
        Ok(response)
    }));
    let response = service
        .call(request(&[("grpc-timeout", "1S")]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-made-by"], "handler");
}

#[tokio::test(start_paused = true)]
async fn a_slow_inner_service_is_answered_504_at_its_budget_not_at_the_handlers_pace() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Response::new(Endless::default()))
    }));
    let started = tokio::time::Instant::now();
    let response = service
        .call(request(&[("connect-timeout-ms", "250")]))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn the_inner_services_error_passes_through_unchanged() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        Err::<Response<Endless>, _>(Refused)
    }));
    let error = service.call(request(&[])).await.unwrap_err();
    assert_eq!(error, Refused);
    // Also one that comes late, but within the budget.
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        tokio::time::sleep(SECOND).await;
        Err::<Response<Endless>, _>(Refused)
    }));
    let error = service
        .call(request(&[("grpc-timeout", "2S")]))
        .await
        .unwrap_err();
    assert_eq!(error, Refused);
}

#[tokio::test(start_paused = true)]
async fn the_budget_counts_from_the_call_not_from_the_first_poll() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Response::new(Endless::default()))
    }));
    let call = service.call(request(&[("grpc-timeout", "2S")]));
    let called = tokio::time::Instant::now();
    tokio::time::advance(1500 * MS).await;
    let response = call.await.unwrap();
    assert_eq!(called.elapsed(), 2 * SECOND);
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_web_call_past_its_budget_is_answered_deadline_exceeded() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        std::future::pending::<()>().await;
        Ok(Response::new(Endless::default()))
    }));
    let response = service
        .call(request(&[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-timeout", "100m"),
        ]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(
        response.headers()["content-type"],
        "application/grpc-web+proto"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_call_with_a_connect_budget_is_answered_in_grpc_at_the_tighter_budget() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        std::future::pending::<()>().await;
        Ok(Response::new(Endless::default()))
    }));
    let started = tokio::time::Instant::now();
    let response = service
        .call(request(&[
            ("content-type", "application/grpc"),
            ("grpc-timeout", "3S"),
            ("connect-timeout-ms", "400"),
        ]))
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(400));
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(
        response.headers()["grpc-message"],
        "deadline of 400ms of 'GET /export' exceeded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_budget_equal_to_the_margin_is_answered_at_once() {
    let called = Arc::new(AtomicBool::new(false));
    let seen = called.clone();
    let mut service = DeadlineLayer::new(LIMIT)
        .margin(Duration::from_millis(20))
        .layer(Handler(move |_: Request<()>| {
            seen.store(true, Ordering::SeqCst);
            async { Ok(Response::new(Endless::default())) }
        }));
    let response = service
        .call(request(&[("connect-timeout-ms", "20")]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(!called.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------
// Response bodies under the request's scope (tower-http's ResponseBodyTimeout, and the
// deadline passing while a response streams)
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_response_stream_with_frames_always_ready_is_cut_one_frame_after_its_deadline() {
    let endless = Endless::default();
    let yielded = endless.yielded.clone();
    let (response, scope) = serve_body(
        DeadlineLayer::new(LIMIT),
        &[("grpc-timeout", "1S")],
        endless,
    )
    .await;
    let mut body = std::pin::pin!(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())), "x");
    tokio::time::advance(2 * SECOND).await;
    assert!(scope.check().is_err(), "the request's deadline has passed");
    // The docs: a streaming response stays under the request's scope until its body
    // ends, and a stream cut by the deadline ends with an `Err` for plain HTTP. A reader
    // that keeps up with a fast producer never sees the body pending.
    let mut after_deadline = 0;
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(_))) if after_deadline < 1000 => after_deadline += 1,
            other => break other,
        }
    };
    let Poll::Ready(Some(Err(error))) = outcome else {
        panic!(
            "{after_deadline} frames passed after the deadline, {} in all; then {outcome:?}",
            yielded.load(Ordering::SeqCst)
        );
    };
    assert_eq!(after_deadline, 1, "the frame that was ready, then the cut");
    let why = error
        .downcast_ref::<hangfree::Interrupted>()
        .expect("an Interrupted");
    assert_eq!(why.cause(), hangfree::Cause::DeadlineExceeded);
    assert_eq!(
        yielded.load(Ordering::SeqCst),
        2,
        "the body is not polled after the cut"
    );
}

/// Real time, on a current-thread runtime that the loop never lets run its timers: only
/// the clock can tell the body its deadline passed.
#[tokio::test]
async fn a_response_stream_is_cut_at_its_deadline_even_if_the_timer_never_runs() {
    // Before the request: its budget counts from its arrival.
    let started = std::time::Instant::now();
    let (response, _scope) = serve_body(
        DeadlineLayer::new(LIMIT),
        &[("grpc-timeout", "20m")],
        Endless::default(),
    )
    .await;
    let mut body = std::pin::pin!(response.into_body());
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(_))) if started.elapsed() < 10 * SECOND => {}
            other => break other,
        }
    };
    let took = started.elapsed();
    assert!(matches!(outcome, Poll::Ready(Some(Err(_)))), "{outcome:?}");
    assert!(
        took >= 20 * MS && took < SECOND,
        "cut {took:?} after the request, for a budget of 20 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_memory_streamed_response_is_cut_one_frame_after_its_deadline() {
    // What a handler streaming an export it holds in memory returns in axum.
    let chunks = (0..100_000).map(|_| Ok::<_, Infallible>(Bytes::from_static(b"row\n")));
    let inner = axum::body::Body::from_stream(futures::stream::iter(chunks));
    let (response, _scope) =
        serve_body(DeadlineLayer::new(LIMIT), &[("grpc-timeout", "1S")], inner).await;
    let mut body = std::pin::pin!(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())), "row\n");
    tokio::time::advance(2 * SECOND).await;
    let mut after_deadline = 0;
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(_))) => after_deadline += 1,
            other => break other,
        }
    };
    assert!(
        matches!(outcome, Poll::Ready(Some(Err(_)))) && after_deadline == 1,
        "{after_deadline} frames passed after the deadline; then {outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_channel_fed_response_with_a_full_queue_is_cut_once_tokios_budget_runs_out() {
    // A tokio channel yields `Pending` when the task's coop budget is spent, which is when
    // the deadline body looks at its scope: the cut comes, if a little late.
    let (tx, inner) = frames();
    for _ in 0..10_000 {
        tx.send(Frame::data(Bytes::from_static(b"x"))).unwrap();
    }
    let (response, _scope) =
        serve_body(DeadlineLayer::new(LIMIT), &[("grpc-timeout", "1S")], inner).await;
    let mut body = std::pin::pin!(response.into_body());
    tokio::time::advance(2 * SECOND).await;
    let mut after_deadline = 0;
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(_))) => after_deadline += 1,
            other => break other,
        }
    };
    assert!(matches!(outcome, Poll::Ready(Some(Err(_)))), "{outcome:?}");
    assert!(
        after_deadline <= 128,
        "{after_deadline} frames after the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_response_stream_with_frames_always_ready_is_cut_one_frame_after_the_service_stops()
{
    let root = CancelScope::new();
    let (response, _scope) = serve_body(
        DeadlineLayer::new(LIMIT).root(root.clone()),
        &[("content-type", "application/grpc")],
        Endless::default(),
    )
    .await;
    let mut body = std::pin::pin!(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())), "x");
    root.cancel_with("stopping");
    // The docs: a stopping service ends its open streams instead of waiting on them.
    let mut after_stop = 0;
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                after_stop += 1;
                assert!(
                    after_stop < 1000,
                    "{after_stop} data frames passed after the service stopped, no trailers"
                );
            }
            other => break other,
        }
    };
    let Poll::Ready(Some(Ok(frame))) = outcome else {
        panic!("{after_stop} frames after the stop, then {outcome:?}");
    };
    assert_eq!(
        frame.into_trailers().expect("trailers")["grpc-status"],
        "14",
        "{after_stop} frames after the stop"
    );
    assert_eq!(after_stop, 1, "the frame that was ready, then the trailers");
}

#[tokio::test(start_paused = true)]
async fn a_response_stream_that_stalls_mid_stream_is_cut_exactly_at_the_deadline() {
    let (tx, inner) = frames();
    let (response, _scope) = serve_body(
        DeadlineLayer::new(LIMIT),
        &[("content-type", "application/grpc"), ("grpc-timeout", "2S")],
        inner,
    )
    .await;
    let mut body = tokio_test::task::spawn(Box::pin(response.into_body()));
    tx.send(Frame::data(Bytes::from_static(b"one"))).unwrap();
    let next = body.enter(|cx, mut body| body.as_mut().poll_frame(cx));
    assert_eq!(data_of(next), "one");
    assert_pending!(body.enter(|cx, mut body| body.as_mut().poll_frame(cx)));
    tokio::time::advance(2 * SECOND - MS).await;
    assert!(!body.is_woken());
    tokio::time::advance(MS).await;
    assert!(
        body.is_woken(),
        "the deadline wakes the reader of a stalled stream"
    );
    let frame = assert_ready!(body.enter(|cx, mut body| body.as_mut().poll_frame(cx)))
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_trailers().unwrap()["grpc-status"], "4");
    assert!(tx.is_closed(), "the inner body is dropped at the cut");
}

#[tokio::test(start_paused = true)]
async fn a_connect_stream_cut_by_the_deadline_ends_with_a_deadline_end_of_stream_message() {
    let (tx, inner) = frames();
    let (response, _scope) = serve_body(
        DeadlineLayer::new(LIMIT),
        &[
            ("content-type", "application/connect+json"),
            ("connect-timeout-ms", "500"),
        ],
        inner,
    )
    .await;
    let mut body = std::pin::pin!(response.into_body());
    tx.send(Frame::data(Bytes::from_static(b"msg"))).unwrap();
    assert_eq!(data_of(poll_body(body.as_mut())), "msg");
    assert!(poll_body(body.as_mut()).is_pending());
    tokio::time::advance(500 * MS).await;
    let end = data_of(poll_body(body.as_mut()));
    assert_eq!(end[0], 0x02);
    let json = std::str::from_utf8(&end[5..]).unwrap();
    assert_eq!(
        json,
        r#"{"error":{"code":"deadline_exceeded","message":"deadline of 500ms of 'GET /export' exceeded"}}"#
    );
    assert_eq!(
        u32::from_be_bytes(end[1..5].try_into().unwrap()) as usize,
        json.len()
    );
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn a_response_stream_that_ends_cleanly_with_its_own_trailers_passes_them_through() {
    let (tx, inner) = frames();
    let (response, scope) = serve_body(
        DeadlineLayer::new(LIMIT),
        &[("content-type", "application/grpc"), ("grpc-timeout", "1S")],
        inner,
    )
    .await;
    let mut body = std::pin::pin!(response.into_body());
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    tx.send(Frame::data(Bytes::from_static(b"msg"))).unwrap();
    tx.send(Frame::trailers(trailers)).unwrap();
    drop(tx);
    assert_eq!(data_of(poll_body(body.as_mut())), "msg");
    let frame = assert_ready!(poll_body(body.as_mut())).unwrap().unwrap();
    assert_eq!(frame.into_trailers().unwrap()["grpc-status"], "0");
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    // Ended on its own: the deadline passing later cuts nothing and no hang-up is seen.
    tokio::time::advance(2 * SECOND).await;
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    assert!(body.is_end_stream());
    let why = scope.check().unwrap_err();
    assert!(
        why.is_deadline(),
        "the scope ends by its deadline, not a hang-up"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_body_that_ends_before_the_deadline_is_not_cut_afterwards() {
    let (tx, inner) = frames();
    let (response, scope) =
        serve_body(DeadlineLayer::new(LIMIT), &[("grpc-timeout", "1S")], inner).await;
    let mut body = Box::pin(response.into_body());
    tx.send(Frame::data(Bytes::from_static(b"all"))).unwrap();
    drop(tx);
    assert_eq!(data_of(poll_body(body.as_mut())), "all");
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    drop(body);
    assert!(
        !scope.is_cancelled(),
        "a body read to its end is no hang-up"
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_body_passes_size_hint_and_end_of_stream_through() {
    let (_tx, mut inner) = frames();
    inner.hint = SizeHint::with_exact(42);
    let (response, _) = serve_body(DeadlineLayer::new(LIMIT), &[], inner).await;
    assert_eq!(response.body().size_hint().exact(), Some(42));
    assert!(!response.body().is_end_stream());

    let (_tx, mut inner) = frames();
    let mut hint = SizeHint::new();
    hint.set_lower(3);
    hint.set_upper(9);
    inner.hint = hint;
    let (response, _) = serve_body(DeadlineLayer::new(LIMIT), &[], inner).await;
    assert_eq!(response.body().size_hint().lower(), 3);
    assert_eq!(response.body().size_hint().upper(), Some(9));

    let (_tx, mut inner) = frames();
    inner.end = true;
    let (response, scope) = serve_body(DeadlineLayer::new(LIMIT), &[], inner).await;
    assert!(response.body().is_end_stream());
    drop(response);
    assert!(!scope.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn an_inner_body_error_passes_through_the_deadline_body() {
    let inner = Failing(VecDeque::from([Bytes::from_static(b"part")]));
    let (response, _) = serve_body(DeadlineLayer::new(LIMIT), &[], inner).await;
    let mut body = std::pin::pin!(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())), "part");
    let Poll::Ready(Some(Err(error))) = poll_body(body.as_mut()) else {
        panic!("expected the body's error");
    };
    assert!(error.downcast_ref::<BodyBroke>().is_some(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_layer_answer_reports_its_exact_size_and_end() {
    let mut service = DeadlineLayer::new(LIMIT).layer(Handler(|_: Request<()>| async {
        std::future::pending::<()>().await;
        Ok(Response::new(Endless::default()))
    }));
    let response = service
        .call(request(&[("grpc-timeout", "1S")]))
        .await
        .unwrap();
    let expected = "deadline of 1s of 'GET /export' exceeded\n".len() as u64;
    assert_eq!(response.body().size_hint().exact(), Some(expected));
    assert!(!response.body().is_end_stream());
    let mut body = std::pin::pin!(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())).len() as u64, expected);
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
}

// ---------------------------------------------------------------------------------------
// Watchdog bodies (tower-http's RequestBodyTimeout / ResponseBodyTimeout)
// ---------------------------------------------------------------------------------------

fn watched(
    limits: Limits,
) -> (
    mpsc::UnboundedSender<Frame<Bytes>>,
    Pin<Box<WatchdogBody<Frames>>>,
) {
    let (tx, inner) = frames();
    (tx, Box::pin(WatchdogBody::new(inner, limits)))
}

fn stall_of(next: Next) -> Stalled {
    match next {
        Poll::Ready(Some(Err(error))) => error
            .downcast_ref::<Stalled>()
            .unwrap_or_else(|| panic!("not a stall: {error}"))
            .clone(),
        other => panic!("expected a stall, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_frame_available_within_the_idle_limit_passes() {
    let (tx, mut body) = watched(Limits::new().idle(2 * SECOND));
    assert!(poll_body(body.as_mut()).is_pending());
    tokio::time::advance(SECOND).await;
    tx.send(Frame::data(Bytes::from_static(b"late but in time")))
        .unwrap();
    assert_eq!(data_of(poll_body(body.as_mut())), "late but in time");
}

#[tokio::test(start_paused = true)]
async fn a_body_frame_unavailable_within_the_idle_limit_is_a_stall() {
    let (tx, mut body) = watched(Limits::new().idle(SECOND));
    let mut task = tokio_test::task::spawn(());
    assert_pending!(task.enter(|cx, _| body.as_mut().poll_frame(cx)));
    tokio::time::advance(SECOND).await;
    assert!(task.is_woken(), "the idle limit wakes the reader");
    let stalled = stall_of(poll_body(body.as_mut()));
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert!(tx.is_closed());
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
}

#[tokio::test(start_paused = true)]
async fn the_idle_limit_resets_with_each_frame_so_a_slow_steady_body_passes() {
    let (tx, mut body) = watched(Limits::new().idle(SECOND));
    for _ in 0..10 {
        assert!(poll_body(body.as_mut()).is_pending());
        tokio::time::advance(900 * MS).await;
        tx.send(Frame::data(Bytes::from_static(b"."))).unwrap();
        assert_eq!(data_of(poll_body(body.as_mut())), ".");
    }
    drop(tx);
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    assert_eq!(body.bytes(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stalls_mid_stream_is_cut_after_its_frames() {
    let (tx, mut body) = watched(Limits::new().idle(SECOND));
    tx.send(Frame::data(Bytes::from_static(b"abc"))).unwrap();
    tx.send(Frame::data(Bytes::from_static(b"de"))).unwrap();
    assert_eq!(data_of(poll_body(body.as_mut())), "abc");
    assert_eq!(data_of(poll_body(body.as_mut())), "de");
    assert!(poll_body(body.as_mut()).is_pending());
    tokio::time::advance(SECOND).await;
    let stalled = stall_of(poll_body(body.as_mut()));
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(stalled.progress().count(), 5);
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_total_limit_cuts_a_body_whose_frames_are_always_ready() {
    let mut body = Box::pin(WatchdogBody::new(
        Endless::default(),
        Limits::new().total(SECOND),
    ));
    assert_eq!(data_of(poll_body(body.as_mut())), "x");
    tokio::time::advance(SECOND).await;
    let mut passed = 0;
    let outcome = loop {
        match poll_body(body.as_mut()) {
            Poll::Ready(Some(Ok(_))) if passed < 1000 => passed += 1,
            other => break other,
        }
    };
    let stalled = stall_of(outcome);
    assert_eq!(stalled.kind(), StallKind::Total);
    assert!(passed <= 64, "{passed} frames after the total limit");
}

#[tokio::test(start_paused = true)]
async fn trailers_pass_through_a_watchdog_body_and_count_no_bytes() {
    let (tx, mut body) = watched(Limits::new().idle(SECOND).min_rate(1, SECOND));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    tx.send(Frame::data(Bytes::from_static(b"1234"))).unwrap();
    tx.send(Frame::trailers(trailers)).unwrap();
    drop(tx);
    assert_eq!(data_of(poll_body(body.as_mut())), "1234");
    let frame = assert_ready!(poll_body(body.as_mut())).unwrap().unwrap();
    assert_eq!(frame.into_trailers().unwrap()["grpc-status"], "0");
    assert!(assert_ready!(poll_body(body.as_mut())).is_none());
    assert_eq!(body.bytes(), 4);
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn watchdog_body_passes_size_hint_and_end_of_stream_through() {
    let (_tx, mut inner) = frames();
    inner.hint = SizeHint::with_exact(7);
    inner.end = false;
    let body = WatchdogBody::new(inner, Limits::new().idle(SECOND));
    assert_eq!(body.size_hint().exact(), Some(7));
    assert!(!body.is_end_stream());
    let (_tx, mut inner) = frames();
    inner.end = true;
    let body = WatchdogBody::new(inner, Limits::new().idle(SECOND));
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn an_inner_body_error_passes_through_a_watchdog_body_as_itself() {
    let inner = Failing(VecDeque::new());
    let mut body = Box::pin(WatchdogBody::new(inner, Limits::new().idle(SECOND)));
    let Poll::Ready(Some(Err(error))) = poll_body(body.as_mut()) else {
        panic!("expected the body's error");
    };
    assert!(error.downcast_ref::<BodyBroke>().is_some());
    assert!(error.downcast_ref::<Stalled>().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_request_body_that_stalls_reaches_the_handler_as_a_stall() {
    let (tx, inner) = frames();
    let (result_tx, mut result_rx) = mpsc::unbounded_channel();
    let mut service = WatchdogBodyLayer::new()
        .requests(Limits::new().idle(SECOND))
        .layer(Handler(move |request: Request<WatchdogBody<Frames>>| {
            let result_tx = result_tx.clone();
            async move {
                let mut body = std::pin::pin!(request.into_body());
                let mut read = Vec::new();
                let end = loop {
                    match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
                        Some(Ok(frame)) => read.extend_from_slice(&frame.into_data().unwrap()),
                        Some(Err(error)) => break Some(error.to_string()),
                        None => break None,
                    }
                };
                result_tx.send((read, end)).unwrap();
                Ok(Response::new(Endless::default()))
            }
        }));
    let mut request = Request::new(inner);
    *request.uri_mut() = "/upload".parse().unwrap();
    tx.send(Frame::data(Bytes::from_static(b"head"))).unwrap();
    let call = tokio::spawn(service.call(request));
    let (read, end) = result_rx.recv().await.unwrap();
    assert_eq!(read, b"head");
    assert!(end.is_some(), "the handler saw a stall, not an end");
    call.await.unwrap().unwrap();
    assert!(tx.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_watchdog_layer_without_limits_passes_bodies_through() {
    let mut service =
        WatchdogBodyLayer::new().layer(Handler(|request: Request<WatchdogBody<()>>| {
            assert!(request.body().get_ref().is_some());
            async { Ok(Response::new(Endless::default())) }
        }));
    let response = service.call(Request::new(())).await.unwrap();
    let mut body = std::pin::pin!(response.into_body());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(data_of(poll_body(body.as_mut())), "x");
}

// ---------------------------------------------------------------------------------------
// Propagation (client side) and two hops
// ---------------------------------------------------------------------------------------

/// A client that records each request's headers and answers at once, or never.
#[derive(Clone, Default)]
struct Recorder {
    headers: Arc<Mutex<Vec<HeaderMap>>>,
    never: bool,
}

impl Service<Request<()>> for Recorder {
    type Response = Response<()>;
    type Error = Refused;
    type Future = Boxed<Response<()>, Refused>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        self.headers.lock().unwrap().push(request.headers().clone());
        let never = self.never;
        Box::pin(async move {
            if never {
                std::future::pending::<()>().await;
            }
            Ok(Response::new(()))
        })
    }
}

impl Recorder {
    fn last(&self, name: &str) -> Option<String> {
        self.headers
            .lock()
            .unwrap()
            .last()
            .and_then(|headers| headers.get(name))
            .map(|value| value.to_str().unwrap().to_owned())
    }
}

#[tokio::test(start_paused = true)]
async fn propagation_through_two_hops_shrinks_the_budget_by_the_time_spent() {
    // Hop B: a server behind DeadlineLayer that spends 100 ms, then calls C through
    // PropagateLayer with the request's scope current. C records what it was sent.
    let to_c = Recorder::default();
    let client = PropagateLayer::new().layer(to_c.clone());
    let client = Arc::new(tokio::sync::Mutex::new(client));
    let budget_in_b = Arc::new(Mutex::new(None));
    let seen = budget_in_b.clone();
    let mut b = DeadlineLayer::new(LIMIT).layer(Handler(move |request: Request<()>| {
        let scope = request.extensions().get::<CancelScope>().cloned().unwrap();
        *seen.lock().unwrap() = scope.remaining();
        let client = client.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut client = client.lock().await;
            client.call(Request::new(())).await.unwrap();
            Ok(Response::new(Endless::default()))
        }
    }));

    // Hop A: the edge, with 1 s, sends to B through PropagateLayer.
    let edge = CancelScope::new().with_timeout(SECOND);
    let to_b = Recorder::default();
    let mut a = PropagateLayer::new().layer(to_b.clone());
    tokio::time::advance(Duration::from_millis(50)).await;
    let mut out = Request::new(());
    out.extensions_mut().insert(edge.clone());
    a.call(out).await.unwrap();
    // 950 ms left, less the 5 ms margin.
    let sent_to_b = to_b.last("grpc-timeout").unwrap();
    assert_eq!(sent_to_b, "945000u");

    // B receives what A sent.
    let response = b
        .call(request_with_values(&[(
            "grpc-timeout",
            HeaderValue::from_str(&sent_to_b).unwrap(),
        )]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        *budget_in_b.lock().unwrap(),
        Some(Duration::from_millis(945))
    );
    // 945 - 100 spent - 5 margin.
    assert_eq!(to_c.last("grpc-timeout").as_deref(), Some("840000u"));
    let at_c = BudgetHeader::grpc()
        .parse(&HeaderValue::from_str(&to_c.last("grpc-timeout").unwrap()).unwrap())
        .unwrap();
    assert!(at_c < Duration::from_millis(945));
}

#[tokio::test(start_paused = true)]
async fn propagation_in_connect_format_rounds_down_and_a_deadline_layer_reads_it_back() {
    let scope = CancelScope::new().with_timeout(Duration::from_micros(1_234_999));
    let to_next = Recorder::default();
    let mut client = PropagateLayer::new()
        .header(BudgetHeader::connect())
        .margin(Duration::ZERO)
        .layer(to_next.clone());
    let mut out = Request::new(());
    out.extensions_mut().insert(scope);
    client.call(out).await.unwrap();
    let written = to_next.last("connect-timeout-ms").unwrap();
    assert_eq!(written, "1234");
    let request = request_with_values(&[(
        "connect-timeout-ms",
        HeaderValue::from_str(&written).unwrap(),
    )]);
    assert_eq!(
        budget_for(DeadlineLayer::new(LIMIT), request).await,
        Some(Duration::from_millis(1234))
    );
}

#[tokio::test(start_paused = true)]
async fn a_propagated_call_is_dropped_when_the_budget_runs_out_mid_call() {
    let scope = CancelScope::new().with_timeout(SECOND);
    let next = Recorder {
        never: true,
        ..Recorder::default()
    };
    let mut client = PropagateLayer::new().layer(next.clone());
    let mut out = Request::new(());
    out.extensions_mut().insert(scope);
    let started = tokio::time::Instant::now();
    let error = client.call(out).await.unwrap_err();
    assert_eq!(started.elapsed(), SECOND);
    let PropagateError::Interrupted(why) = error else {
        panic!("expected an interruption");
    };
    assert!(why.is_deadline());
}

#[tokio::test(start_paused = true)]
async fn a_propagated_call_with_its_deadline_passed_is_not_sent() {
    let scope = CancelScope::new().with_timeout(SECOND);
    tokio::time::advance(2 * SECOND).await;
    let next = Recorder::default();
    let mut client = PropagateLayer::new().layer(next.clone());
    let mut out = Request::new(());
    out.extensions_mut().insert(scope);
    let error = client.call(out).await.unwrap_err();
    assert!(
        error
            .interrupted()
            .is_some_and(hangfree::Interrupted::is_deadline)
    );
    assert!(next.headers.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_propagated_budget_never_exceeds_what_the_scope_has_left_in_either_format() {
    for micros in [1_001u64, 5_999, 6_000, 999_999, 1_000_000, 86_400_000_001] {
        let scope = CancelScope::new().with_timeout(Duration::from_micros(micros));
        for header in [BudgetHeader::grpc(), BudgetHeader::connect()] {
            let next = Recorder::default();
            let mut client = PropagateLayer::new()
                .header(header.clone())
                .margin(Duration::ZERO)
                .min_budget(Duration::from_nanos(1))
                .layer(next.clone());
            let mut out = Request::new(());
            out.extensions_mut().insert(scope.clone());
            let result = client.call(out).await;
            let Some(written) = next.last(header.name().as_str()) else {
                assert!(result.is_err(), "{micros}us: not sent, so an error");
                continue;
            };
            let read = header
                .parse(&HeaderValue::from_str(&written).unwrap())
                .unwrap();
            assert!(
                read <= Duration::from_micros(micros),
                "{micros}us written as {written}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_where_a_scope_is_current_carries_that_scopes_budget() {
    let scope = CancelScope::new().with_timeout(2 * SECOND);
    let next = Recorder::default();
    let mut client = PropagateLayer::new()
        .margin(Duration::ZERO)
        .layer(next.clone());
    scope
        .enter(async move {
            tokio::time::sleep(SECOND / 2).await;
            client.call(Request::new(())).await.unwrap();
        })
        .await;
    assert_eq!(next.last("grpc-timeout").as_deref(), Some("1500000u"));
}

#[tokio::test(start_paused = true)]
async fn a_response_body_that_fails_cancels_the_scope_saying_so() {
    let inner = Failing(VecDeque::from([Bytes::from_static(b"row\n")]));
    let (response, scope) = serve_body(DeadlineLayer::new(LIMIT), &[], inner).await;
    let mut body = Box::pin(response.into_body());
    assert_eq!(data_of(poll_body(body.as_mut())), "row\n");
    assert!(!scope.is_cancelled());
    let Poll::Ready(Some(Err(error))) = poll_body(body.as_mut()) else {
        panic!("the body's own error");
    };
    assert!(
        error.downcast_ref::<BodyBroke>().is_some(),
        "handed on as it is"
    );
    // The work under the scope stops at once, told why, not when the body is dropped.
    let why = scope.check().unwrap_err();
    assert_eq!(
        why.reason(),
        Some("the response body failed before it was complete: connection reset by peer")
    );
    drop(body);
    let why = scope.check().unwrap_err();
    assert_eq!(
        why.reason(),
        Some("the response body failed before it was complete: connection reset by peer"),
        "the drop that follows is no hang-up"
    );
}
