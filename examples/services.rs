//! Three services on loopback passing one budget down a chain: edge → orders → stock.
//!
//! `cargo run --example services --features http` starts them, then makes three calls
//! and prints what each service saw:
//!
//! 1. a normal request with a 2 s budget: each hop sees a little less than the last;
//! 2. the same request while `stock` stalls: the whole chain is answered at the edge's
//!    budget (504), and every handler is gone by then;
//! 3. an edge client that hangs up mid-way: `stock` hears of it within milliseconds.
//!
//! What does what:
//! - `DeadlineLayer` on every service reads the caller's budget (`grpc-timeout` here) and
//!   gives the handler a `CancelScope` with it, in the request's extensions;
//! - `PropagateLayer` on every client writes what is left of that scope's budget into the
//!   outgoing request, and drops the call (or its response's body, still arriving) when
//!   the scope ends;
//! - dropping a call is a hang-up for the next service, whose `DeadlineLayer` cancels
//!   that request's scope, and so on down the chain.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, http::StatusCode};
use hangfree::CancelScope;
use hangfree::http::{DeadlineLayer, Propagate, PropagateError, PropagateLayer};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tower_layer::Layer;
use tower_service::Service;

/// No service grants a request more than this, whatever it asks for.
const SERVICE_LIMIT: Duration = Duration::from_secs(30);

type Downstream = Propagate<Client<HttpConnector, Body>>;

/// One line of what a service saw, sent to `main` to print in order.
type Log = mpsc::UnboundedSender<String>;

#[derive(Clone)]
struct Hop {
    name: &'static str,
    /// The next service and the client that calls it; `None` for the last one.
    next: Option<(SocketAddr, Downstream)>,
    log: Log,
}

fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Every hop: say what budget it got, then pass the request on, or (the last hop) do
/// the work.
async fn handle(
    State(hop): State<Hop>,
    Extension(scope): Extension<CancelScope>,
    request: Request,
) -> Response {
    let budget = scope.remaining().unwrap_or(SERVICE_LIMIT);
    let path = request.uri().path().to_owned();
    let _ = hop.log.send(format!(
        "{:>6}: {path} with {} ms left",
        hop.name,
        budget.as_millis()
    ));
    let Some((next, client)) = hop.next.clone() else {
        return work(&hop, &path, scope).await;
    };
    let mut outgoing = http::Request::get(format!("http://{next}{path}"))
        .body(Body::empty())
        .expect("a valid request");
    // The outgoing call runs under this request's scope: its budget goes with it.
    outgoing.extensions_mut().insert(scope);
    let mut client = client;
    let answer = async {
        std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
        client.call(outgoing).await
    };
    match answer.await {
        Ok(response) => response.map(Body::new).into_response(),
        // This request's own deadline ended the call first: a timeout, not a bad gateway.
        Err(PropagateError::Interrupted(why)) if why.is_deadline() => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("{}: {why}\n", hop.name),
        )
            .into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, format!("{}: {error}\n", hop.name)).into_response(),
    }
}

/// The last service's work: answer, stall, or wait to hear of a hang-up.
async fn work(hop: &Hop, path: &str, scope: CancelScope) -> Response {
    match path {
        "/stall" => {
            let log = hop.log.clone();
            let name = hop.name;
            let _on_drop = OnDrop(move || {
                let _ = log.send(format!("{name:>6}: handler dropped"));
            });
            std::future::pending().await
        }
        "/slow" => {
            // Work started under the request's scope outlives the handler; it hears of a
            // hang-up through the scope.
            let log = hop.log.clone();
            let name = hop.name;
            tokio::spawn(async move {
                let why = scope.cancelled().await;
                let _ = log.send(format!("{name:>6}: work under the request stopped: {why}"));
            });
            std::future::pending().await
        }
        _ => "in stock\n".into_response(),
    }
}

struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

async fn start(
    name: &'static str,
    next: Option<SocketAddr>,
    log: &Log,
) -> std::io::Result<SocketAddr> {
    let hop = Hop {
        name,
        next: next.map(|addr| (addr, PropagateLayer::new().layer(client()))),
        log: log.clone(),
    };
    let app = Router::new()
        .route("/{*path}", get(handle))
        .with_state(hop)
        .layer(DeadlineLayer::new(SERVICE_LIMIT));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A call from outside the chain with a 2 s budget.
async fn call_edge(edge: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, String)> {
    let request = http::Request::get(format!("http://{edge}{path}"))
        .header("grpc-timeout", "2S")
        .body(Body::empty())?;
    let response = client().request(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024).await?;
    Ok((status, String::from_utf8_lossy(&body).trim_end().to_owned()))
}

/// Prints what the services logged until they have been quiet for a moment.
async fn print_log(log: &mut mpsc::UnboundedReceiver<String>) {
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(100), log.recv()).await {
        println!("{line}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (log_tx, mut log) = mpsc::unbounded_channel();
    let stock = start("stock", None, &log_tx).await?;
    let orders = start("orders", Some(stock), &log_tx).await?;
    let edge = start("edge", Some(orders), &log_tx).await?;
    println!("edge {edge} -> orders {orders} -> stock {stock}\n");

    println!("1. a normal request, 2 s budget");
    let (status, body) = call_edge(edge, "/item/42").await?;
    print_log(&mut log).await;
    println!("  client: {status} {body}\n");

    println!("2. stock stalls");
    let sent = Instant::now();
    let (status, body) = call_edge(edge, "/stall").await?;
    let took = sent.elapsed();
    print_log(&mut log).await;
    println!("  client: {status} after {took:.2?}: {body}\n");

    println!("3. the client hangs up mid-way");
    let call = tokio::spawn(async move { call_edge(edge, "/slow").await });
    print_log(&mut log).await;
    call.abort();
    println!("  client: hung up");
    print_log(&mut log).await;
    Ok(())
}
