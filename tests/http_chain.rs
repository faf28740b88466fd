//! Three real services on loopback, A → B → C, each behind `DeadlineLayer` and calling the
//! next through a hyper-util client behind `PropagateLayer`: the edge's budget travels,
//! a stall at the end is cut at the edge's budget, and a hang-up at the edge reaches the
//! end of the chain. Real time, short limits: each test asserts both that the event
//! happened and that it happened in time.
#![cfg(feature = "http")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hangfree::CancelScope;
use hangfree::http::{DeadlineLayer, Propagate, PropagateError, PropagateLayer, WatchdogBody};
use hangfree::watchdog::{Limits, StallKind, Stalled};
use http::StatusCode;
use http_body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

/// Each service's own limit: far above the budgets the tests send.
const LIMIT: Duration = Duration::from_secs(30);
/// The margin each hop takes off the budget it forwards.
const MARGIN: Duration = Duration::from_millis(5);

type Downstream = Propagate<Client<HttpConnector, Body>>;

/// What the services report to the test.
#[derive(Clone)]
struct Probe {
    /// Handler futures alive right now, in all three services.
    running: Arc<AtomicUsize>,
    /// C's handlers: the budget their scope had when they started.
    budgets: mpsc::UnboundedSender<Duration>,
    /// C's handlers: started (`None`), then how their scope ended.
    ends: mpsc::UnboundedSender<Option<hangfree::Interrupted>>,
}

struct Events {
    budgets: mpsc::UnboundedReceiver<Duration>,
    ends: mpsc::UnboundedReceiver<Option<hangfree::Interrupted>>,
}

fn probe() -> (Probe, Events) {
    let (budgets_tx, budgets) = mpsc::unbounded_channel();
    let (ends_tx, ends) = mpsc::unbounded_channel();
    let probe = Probe {
        running: Arc::new(AtomicUsize::new(0)),
        budgets: budgets_tx,
        ends: ends_tx,
    };
    (probe, Events { budgets, ends })
}

/// Counts a handler future as running until it is dropped (done or cut).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(probe: &Probe) -> Self {
        probe.running.fetch_add(1, Ordering::SeqCst);
        Running(probe.running.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Hop {
    next: Option<(SocketAddr, Downstream)>,
    probe: Probe,
}

fn client(http2: bool) -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http()
}

fn scope_of(request: &Request) -> CancelScope {
    request
        .extensions()
        .get::<CancelScope>()
        .cloned()
        .expect("DeadlineLayer puts the request's scope in its extensions")
}

/// A and B: pass the request on, under this request's scope.
async fn forward(hop: &Hop, request: Request) -> Response {
    let Some((next, client)) = &hop.next else {
        unreachable!("forward is only routed on A and B");
    };
    let scope = scope_of(&request);
    let mut outgoing = http::Request::get(format!("http://{next}{}", request.uri().path()))
        .body(Body::empty())
        .unwrap();
    outgoing.extensions_mut().insert(scope);
    let mut client = client.clone();
    let sent = async move {
        std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
        client.call(outgoing).await
    };
    match sent.await {
        Ok(response) => response.map(Body::new).into_response(),
        // This request's own deadline ended the call: say so, as the layer would.
        Err(PropagateError::Interrupted(why)) if why.is_deadline() => {
            (StatusCode::GATEWAY_TIMEOUT, why.to_string()).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

async fn handle(State(hop): State<Hop>, request: Request) -> Response {
    let _running = Running::start(&hop.probe);
    if hop.next.is_some() {
        return forward(&hop, request).await;
    }
    let scope = scope_of(&request);
    match request.uri().path() {
        "/budget" => {
            let budget = scope.remaining().expect("a request's scope has a deadline");
            hop.probe.budgets.send(budget).unwrap();
            "ok".into_response()
        }
        "/stall" => std::future::pending().await,
        "/drip" => {
            // One byte every 100 ms, for at most 5 s.
            let drops = futures::stream::unfold(0u32, |sent| async move {
                if sent == 50 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b".")),
                    sent + 1,
                ))
            });
            Body::from_stream(drops).into_response()
        }
        "/hangup" => {
            // Work the handler started under its scope, which outlives the handler's
            // future: it hears of the hang-up through the scope.
            let ends = hop.probe.ends.clone();
            tokio::spawn(async move {
                let why = scope.cancelled().await;
                ends.send(Some(why)).unwrap();
            });
            hop.probe.ends.send(None).unwrap();
            std::future::pending().await
        }
        other => (StatusCode::NOT_FOUND, other.to_owned()).into_response(),
    }
}

async fn serve(next: Option<SocketAddr>, http2: bool, probe: &Probe) -> SocketAddr {
    let next = next.map(|addr| {
        (
            addr,
            PropagateLayer::new().margin(MARGIN).layer(client(http2)),
        )
    });
    let hop = Hop {
        next,
        probe: probe.clone(),
    };
    let router = Router::new()
        .route("/{*path}", get(handle))
        .with_state(hop)
        .layer(DeadlineLayer::new(LIMIT));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Starts C, then B in front of it, then A in front of B; returns A's address.
async fn chain(http2: bool, probe: &Probe) -> SocketAddr {
    let c = serve(None, http2, probe).await;
    let b = serve(Some(c), http2, probe).await;
    serve(Some(b), http2, probe).await
}

fn edge_request(a: SocketAddr, path: &str, budget: &'static str) -> http::Request<Body> {
    http::Request::get(format!("http://{a}{path}"))
        .header("grpc-timeout", budget)
        .body(Body::empty())
        .unwrap()
}

async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_budget_reaches_the_end_of_the_chain_less_the_hops() {
    let (probe, mut events) = probe();
    let a = chain(false, &probe).await;
    let sent = Instant::now();
    let response = client(false)
        .request(edge_request(a, "/budget", "2S"))
        .await
        .unwrap();
    let took = sent.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = events.budgets.recv().await.unwrap();
    // Two hops each took their margin off, and the time they spent.
    let most = Duration::from_secs(2) - 2 * MARGIN;
    assert!(seen <= most, "C saw {seen:?}, more than {most:?}");
    assert!(
        seen >= most.saturating_sub(took),
        "C saw {seen:?}: less than the budget less the whole round trip ({took:?})"
    );
}

async fn a_stall_at_the_end_is_cut_at_the_edges_budget(http2: bool) {
    let (probe, _events) = probe();
    let a = chain(http2, &probe).await;
    let sent = Instant::now();
    let response = client(http2)
        .request(edge_request(a, "/stall", "2S"))
        .await
        .unwrap();
    let took = sent.elapsed();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_millis(2100),
        "answered after {took:?}, not at the 2 s budget"
    );
    // C's own deadline came first and dropped its handler; B and A finished theirs.
    wait_until("every handler gone", Duration::from_millis(100), || {
        probe.running.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_at_the_end_is_cut_at_the_edges_budget_over_http1() {
    a_stall_at_the_end_is_cut_at_the_edges_budget(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_at_the_end_is_cut_at_the_edges_budget_over_http2() {
    a_stall_at_the_end_is_cut_at_the_edges_budget(true).await;
}

async fn a_hang_up_at_the_edge_cancels_the_end_of_the_chain(http2: bool) {
    let (probe, mut events) = probe();
    let a = chain(http2, &probe).await;
    let edge = tokio::spawn(client(http2).request(edge_request(a, "/hangup", "10S")));
    assert!(events.ends.recv().await.unwrap().is_none(), "C started");
    let hung_up = Instant::now();
    edge.abort();
    let ended = tokio::time::timeout(Duration::from_secs(2), events.ends.recv())
        .await
        .expect("C's scope is cancelled after the edge hangs up")
        .unwrap()
        .unwrap();
    let took = hung_up.elapsed();
    assert!(!ended.is_deadline(), "cancelled, not timed out: {ended}");
    assert_eq!(
        ended.reason(),
        Some("the client went away before the response was complete"),
        "{ended}"
    );
    assert!(
        took <= Duration::from_millis(200),
        "C heard of it after {took:?}"
    );
    wait_until("every handler gone", Duration::from_millis(200), || {
        probe.running.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_at_the_edge_cancels_the_end_of_the_chain_over_http1() {
    a_hang_up_at_the_edge_cancels_the_end_of_the_chain(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_at_the_edge_cancels_the_end_of_the_chain_over_http2() {
    a_hang_up_at_the_edge_cancels_the_end_of_the_chain(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drip_fed_response_is_cut_by_min_rate_at_the_end_of_its_window() {
    let (probe, _events) = probe();
    let a = chain(false, &probe).await;
    let response = client(false)
        .request(edge_request(a, "/drip", "10S"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // At least 50 bytes a second: the drip gives 10.
    let window = Duration::from_secs(1);
    let limits = Limits::new().idle(window).min_rate(50, window);
    let started = Instant::now();
    let mut body = std::pin::pin!(WatchdogBody::new(response.into_body(), limits));
    let stalled = loop {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                break error
                    .downcast_ref::<Stalled>()
                    .expect("the stall, not a transport error")
                    .clone();
            }
            None => panic!("the drip ended without a stall"),
        }
    };
    let took = started.elapsed();
    assert_eq!(stalled.kind(), StallKind::TooSlow, "{stalled}");
    assert!(stalled.progress().count() < 50, "{stalled}");
    assert!(
        took >= window && took <= window + Duration::from_millis(300),
        "cut after {took:?}, not at the end of the {window:?} window"
    );
    assert!(body.is_end_stream());
    // The edge let go of the response: the chain's handlers end with it.
    wait_until("every handler gone", Duration::from_millis(500), || {
        probe.running.load(Ordering::SeqCst) == 0
    })
    .await;
}
