//! Interop with tonic, on real sockets: a tonic client's timeout read by `DeadlineLayer`,
//! and a tonic server honouring the budget `PropagateLayer` writes. The service is our
//! own `Health` implementation (tonic-health ships the generated code) whose `check`
//! never answers.
#![cfg(feature = "http")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hangfree::CancelScope;
use hangfree::http::{DeadlineLayer, PropagateLayer};
use tokio::sync::mpsc;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_layer::Layer;

/// A health service whose `check` never answers. It reports the budget its request's
/// scope had (if it had one) and counts its calls still alive.
#[derive(Clone)]
struct Stalling {
    alive: Arc<AtomicUsize>,
    budgets: mpsc::UnboundedSender<Option<Duration>>,
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl Health for Stalling {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.alive.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(self.alive.clone());
        let budget = request
            .extensions()
            .get::<CancelScope>()
            .and_then(CancelScope::remaining);
        self.budgets.send(budget).unwrap();
        std::future::pending().await
    }

    type WatchStream = futures::stream::Pending<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

fn stalling() -> (Stalling, mpsc::UnboundedReceiver<Option<Duration>>) {
    let (budgets, seen) = mpsc::unbounded_channel();
    let service = Stalling {
        alive: Arc::new(AtomicUsize::new(0)),
        budgets,
    };
    (service, seen)
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn wait_until_gone(alive: &AtomicUsize) {
    let started = Instant::now();
    while alive.load(Ordering::SeqCst) != 0 {
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "the stalled call is still running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_clients_timeout_is_read_by_deadline_layer_and_answered_deadline_exceeded() {
    // tonic's own `Server` applies its grpc-timeout handling outside every user layer;
    // served by axum, `DeadlineLayer` is the outermost and its answer is the one sent.
    // The tonic client enforces the same timeout by its own clock: the margin lets the
    // server's answer arrive first.
    let (service, mut budgets) = stalling();
    let alive = service.alive.clone();
    let router = tonic::service::Routes::new(HealthServer::new(service))
        .into_axum_router()
        .layer(DeadlineLayer::new(Duration::from_secs(30)).margin(Duration::from_millis(25)));
    let (listener, addr) = listener().await;
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut client = HealthClient::new(channel(addr).await);
    let mut request = Request::new(HealthCheckRequest::default());
    request.set_timeout(Duration::from_millis(300));
    let sent = Instant::now();
    let status = client.check(request).await.unwrap_err();
    let took = sent.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        status.message(),
        "deadline of 275ms of 'POST /grpc.health.v1.Health/Check' exceeded"
    );
    assert!(
        took >= Duration::from_millis(275) && took < Duration::from_millis(300),
        "answered after {took:?}"
    );
    let budget = budgets
        .recv()
        .await
        .unwrap()
        .expect("the handler had a scope");
    assert!(budget <= Duration::from_millis(275) && budget > Duration::from_millis(200));
    wait_until_gone(&alive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_server_honours_the_budget_propagate_layer_writes() {
    let (service, mut budgets) = stalling();
    let alive = service.alive.clone();
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });

    let mut client = HealthClient::new(PropagateLayer::new().layer(channel(addr).await));
    let scope = CancelScope::new().with_timeout(Duration::from_millis(400));
    let mut request = Request::new(HealthCheckRequest::default());
    request.extensions_mut().insert(scope.clone());
    let sent = Instant::now();
    let status = client.check(request).await.unwrap_err();
    let took = sent.elapsed();
    // What tonic sends when the budget it read runs out: CANCELLED, "Timeout expired",
    // before the caller's own scope (400 ms) ends, since the margin (5 ms) was taken off.
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(status.message(), "Timeout expired");
    // (Had the caller's scope ended first, the error would be the client's, not a status
    // from the server.)
    assert!(
        took >= Duration::from_millis(350) && took <= Duration::from_millis(450),
        "answered after {took:?}"
    );
    // tonic does not put a scope in the request: the handler saw none.
    assert_eq!(budgets.recv().await.unwrap(), None);
    wait_until_gone(&alive).await;
}
