//! With the `tracing` feature, a malformed budget header is logged with its name, and the
//! layer's limit applies. Its own test binary: the subscriber is global.
#![cfg(all(feature = "http", feature = "tracing"))]

mod support;

use std::convert::Infallible;
use std::time::Duration;

use hangfree::CancelScope;
use hangfree::http::DeadlineLayer;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

#[tokio::test(start_paused = true)]
async fn a_malformed_budget_header_is_logged_by_name_and_the_limit_applies() {
    let events = support::events::Events::install();
    let limit = Duration::from_secs(10);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let mut service =
        DeadlineLayer::new(limit).layer(tower::service_fn(move |request: Request<()>| {
            let scope = request.extensions().get::<CancelScope>().cloned().unwrap();
            *record.lock().unwrap() = scope.remaining();
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        }));
    let request = Request::builder()
        .header("grpc-timeout", "+5S")
        .body(())
        .unwrap();
    service.call(request).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(limit));
    let lines = events.lines();
    let logged: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("malformed budget header"))
        .collect();
    assert_eq!(logged.len(), 1, "{lines:#?}");
    assert!(logged[0].starts_with("WARN"), "{}", logged[0]);
    assert!(logged[0].contains("header=grpc-timeout"), "{}", logged[0]);
    assert!(
        logged[0].contains(r#"header "+5S": not a whole number"#),
        "{}",
        logged[0]
    );
}
