//! `WatchdogBody` and `WatchdogBodyLayer` under tokio's paused clock: a body that goes
//! silent, one that never starts, one that drip-feeds, and what passes through untouched.
#![cfg(feature = "http")]

#[path = "support/fed_body.rs"]
mod fed_body;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use hangfree::http::{BoxError, WatchdogBody, WatchdogBodyLayer};
use hangfree::watchdog::{Limits, StallKind, Stalled};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use fed_body::{Fed, fed};
use tokio::sync::mpsc;
use tokio_test::{assert_pending, assert_ready};
use tower_layer::Layer;
use tower_service::Service;

const SECOND: Duration = Duration::from_secs(1);

type Next = Poll<Option<Result<Frame<Bytes>, BoxError>>>;
type Watched = tokio_test::task::Spawn<Pin<Box<WatchdogBody<Fed>>>>;

/// Polls the body once, with a task that records wake-ups.
fn poll_next(body: &mut Watched) -> Next {
    body.enter(|cx, mut body| body.as_mut().poll_frame(cx))
}

fn watched(limits: Limits) -> (mpsc::UnboundedSender<Bytes>, Watched) {
    let (tx, body) = fed();
    (
        tx,
        tokio_test::task::spawn(Box::pin(WatchdogBody::new(body, limits))),
    )
}

fn stall(next: Next) -> Stalled {
    let Poll::Ready(Some(Err(error))) = next else {
        panic!("expected a stall, got {next:?}");
    };
    error
        .downcast_ref::<Stalled>()
        .expect("the error is the stall report")
        .clone()
}

fn data(next: Next) -> Bytes {
    let Poll::Ready(Some(Ok(frame))) = next else {
        panic!("expected a data frame, got {next:?}");
    };
    frame.into_data().expect("a data frame")
}

#[tokio::test(start_paused = true)]
async fn a_body_that_goes_silent_yields_one_stall_drops_its_inner_body_and_ends() {
    let (tx, mut body) = watched(Limits::new().idle(5 * SECOND));
    tx.send(Bytes::from_static(b"12345")).unwrap();
    assert_eq!(data(poll_next(&mut body)), "12345");
    assert_pending!(poll_next(&mut body));
    tokio::time::advance(5 * SECOND - Duration::from_millis(1)).await;
    assert!(!body.is_woken());
    assert_pending!(poll_next(&mut body));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(body.is_woken());
    let stalled = stall(poll_next(&mut body));
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(stalled.progress().count(), 5);
    assert_eq!(stalled.waited(), 5 * SECOND);
    assert!(tx.is_closed(), "the inner body is dropped at the stall");
    assert!(assert_ready!(poll_next(&mut body)).is_none());
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn a_body_whose_first_frame_never_comes_stalls_at_the_first_frame_limit() {
    let limits = Limits::new().first_item(2 * SECOND).idle(SECOND);
    let (_tx, mut body) = watched(limits);
    assert_pending!(poll_next(&mut body));
    tokio::time::advance(1500 * Duration::from_millis(1)).await;
    assert_pending!(poll_next(&mut body));
    tokio::time::advance(500 * Duration::from_millis(1)).await;
    let stalled = stall(poll_next(&mut body));
    assert_eq!(stalled.kind(), StallKind::FirstItem);
    assert_eq!(stalled.waited(), 2 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_drip_fed_body_is_cut_by_min_rate_though_it_is_never_idle() {
    // One byte every 100 ms: far below 100 bytes a second, yet never silent for long.
    let limits = Limits::new().idle(SECOND).min_rate(100, SECOND);
    let (tx, mut body) = watched(limits);
    let started = tokio::time::Instant::now();
    // Fifty drops (5 s), then the body ends: without the cut, the test fails, not hangs.
    let drip = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if tx.send(Bytes::from_static(b".")).is_err() {
                return;
            }
        }
    });
    let stalled = loop {
        let next =
            std::future::poll_fn(|cx| body.enter(|_, mut body| body.as_mut().poll_frame(cx))).await;
        match next {
            Some(Ok(_)) => continue,
            Some(Err(error)) => break error.downcast_ref::<Stalled>().unwrap().clone(),
            None => panic!("the body ended without a stall"),
        }
    };
    assert_eq!(stalled.kind(), StallKind::TooSlow);
    let took = started.elapsed();
    assert!(
        took >= SECOND && took <= SECOND + Duration::from_millis(100),
        "cut after {took:?}, not at the end of the first window"
    );
    assert!(stalled.progress().count() < 100);
    drip.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_body_that_ends_on_its_own_passes_through_with_its_size_hint() {
    let (tx, mut inner) = fed();
    inner.hint = SizeHint::with_exact(6);
    let mut body = tokio_test::task::spawn(Box::pin(WatchdogBody::new(
        inner,
        Limits::new().idle(SECOND),
    )));
    assert_eq!(body.size_hint().exact(), Some(6));
    assert!(!body.is_end_stream());
    tx.send(Bytes::from_static(b"abc")).unwrap();
    tx.send(Bytes::from_static(b"def")).unwrap();
    drop(tx);
    assert_eq!(data(poll_next(&mut body)), "abc");
    assert_eq!(data(poll_next(&mut body)), "def");
    assert!(assert_ready!(poll_next(&mut body)).is_none());
    assert_eq!(body.bytes(), 6);
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn the_layer_watches_request_bodies_on_the_way_in_and_response_bodies_on_the_way_out() {
    let (request_tx, request_body) = fed();
    let (response_tx, response_body) = fed();
    let response_body = std::sync::Mutex::new(Some(response_body));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut service = WatchdogBodyLayer::new()
        .requests(Limits::new().idle(2 * SECOND))
        .responses(Limits::new().idle(3 * SECOND))
        .layer(tower::service_fn(
            move |request: Request<WatchdogBody<Fed>>| {
                let seen = seen_tx.clone();
                let body = response_body.lock().unwrap().take().unwrap();
                async move {
                    // The handler reads the upload to its end, or to its stall.
                    let mut upload = std::pin::pin!(request.into_body());
                    let stall = loop {
                        match std::future::poll_fn(|cx| upload.as_mut().poll_frame(cx)).await {
                            Some(Ok(_)) => continue,
                            Some(Err(error)) => break error.downcast_ref::<Stalled>().cloned(),
                            None => break None,
                        }
                    };
                    seen.send(stall).unwrap();
                    Ok::<_, Infallible>(Response::new(body))
                }
            },
        ));
    let response = tokio::spawn(service.call(Request::new(request_body)));
    request_tx.send(Bytes::from_static(b"part")).unwrap();
    let upload_stall = seen.recv().await.unwrap().expect("the upload stalled");
    assert_eq!(upload_stall.kind(), StallKind::Idle);
    assert_eq!(upload_stall.waited(), 2 * SECOND);
    assert!(request_tx.is_closed());

    let response = response.await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let mut download = std::pin::pin!(response.into_body());
    response_tx.send(Bytes::from_static(b"x")).unwrap();
    let first = std::future::poll_fn(|cx| download.as_mut().poll_frame(cx)).await;
    assert_eq!(first.unwrap().unwrap().into_data().unwrap(), "x");
    let next = std::future::poll_fn(|cx| download.as_mut().poll_frame(cx)).await;
    let stalled = next.unwrap().unwrap_err();
    assert_eq!(
        stalled.downcast_ref::<Stalled>().unwrap().kind(),
        StallKind::Idle
    );
    assert_eq!(started.elapsed(), 3 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn limits_set_on_a_live_body_apply_from_its_next_poll() {
    let (tx, mut body) = watched(Limits::new().idle(10 * SECOND));
    tx.send(Bytes::from_static(b"header")).unwrap();
    assert_eq!(data(poll_next(&mut body)), "header");
    assert_pending!(poll_next(&mut body));
    // The steady phase: silence is now held to 2 s, counted from the last frame.
    body.enter(|_, body| {
        body.get_mut()
            .as_mut()
            .set_limits(Limits::new().idle(2 * SECOND))
    });
    tokio::time::advance(2 * SECOND).await;
    let stalled = stall(poll_next(&mut body));
    assert_eq!(stalled.kind(), StallKind::Idle);
    assert_eq!(stalled.limit(), 2 * SECOND);
}
