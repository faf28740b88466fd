//! Deadlines and cancellation that cross HTTP and gRPC hops (feature `http`).
//!
//! A service is one hop in a chain. Without help, a caller's budget dies at the first hop:
//! the edge gives a request 2 s, the next service has no idea and waits 30 s on a stalled
//! dependency, and when the edge's client hangs up, the work three services down runs to
//! completion for nobody. This module carries the budget and the hang-up across hops, on
//! the ecosystem's own types (`http`, `http-body`, `tower-layer`, `tower-service`), so its
//! layers fit axum, tonic and hyper.
//!
//! - [`DeadlineLayer`] (server): reads the request's budget from its headers, takes the
//!   tightest, never more than its own limit, and gives the request a [`CancelScope`]
//!   (a child of the service's root scope, in the request's extensions). When the scope
//!   ends before the response is ready, the handler's future is dropped and the request
//!   is answered in its own protocol. When the response future is dropped (the client went
//!   away), the scope is cancelled: work under it stops.
//! - [`PropagateLayer`] (client): writes what is left of the request's scope, less a
//!   margin, into every outgoing request, refuses to send one with too little left, and
//!   drops the call when the scope ends, which the next service sees as a hang-up. Other
//!   budget headers of a known format that promise more (a proxy's copies of the
//!   headers it received) are cut to the same budget. The
//!   response's body stays under the scope until it ends ([`PropagateBody`]): a stream
//!   still arriving when the scope ends is dropped, and yields an error.
//! - [`WatchdogBody`] and [`WatchdogBodyLayer`]: request and response bodies watched for
//!   stalls in bytes (first frame, idle, total, and a minimum rate, which catches a peer
//!   that drip-feeds one byte a second as no idle or total limit does).
//! - [`BudgetHeader`]: the header formats a budget travels in.
//!
//! ```
//! use std::time::Duration;
//! use axum::{Extension, Router, routing::get};
//! use hangfree::CancelScope;
//! use hangfree::http::DeadlineLayer;
//!
//! async fn export(Extension(scope): Extension<CancelScope>) -> String {
//!     // The caller's budget, or the service's 10 s, whichever is tighter.
//!     format!("{:?} left", scope.remaining())
//! }
//!
//! let stopping = CancelScope::new(); // cancel it to end every request in flight
//! let app: Router = Router::new()
//!     .route("/export", get(export))
//!     .layer(DeadlineLayer::new(Duration::from_secs(10)).root(stopping));
//! # drop(app);
//! ```
//!
//! # Budgets in
//!
//! | header | format | from |
//! |---|---|---|
//! | `grpc-timeout` | 1 to 8 digits, then `H` `M` `S` `m` `u` `n` | gRPC |
//! | `connect-timeout-ms` | 1 to 10 digits, milliseconds | the Connect protocol |
//! | `x-envoy-expected-rq-timeout-ms` | 1 to 10 digits, milliseconds | Envoy |
//! | one of your own ([`DeadlineLayer::budget_header`]) | milliseconds | |
//!
//! A malformed value (empty, too many digits, an unknown unit, any non-digit including a
//! `+`, or zero) counts as absent, and a `tracing` event names the header. The layer's
//! limit is mandatory: a request without any valid header gets it, and one that asks for
//! more gets no more.
//!
//! # Answers when the scope wins
//!
//! | protocol | deadline | service stopping (root cancelled) | other cancel |
//! |---|---|---|---|
//! | gRPC (`content-type: application/grpc…`): trailers-only, `grpc-message` the percent-encoded sentence | `grpc-status` 4 DEADLINE_EXCEEDED | 14 UNAVAILABLE | 1 CANCELLED |
//! | Connect unary (`connect-protocol-version`): JSON `{"code":…,"message":…}` | 504 `deadline_exceeded` | 503 `unavailable` | 499 `canceled` |
//! | Connect streaming (`application/connect+…`): an end-of-stream message | `deadline_exceeded` | `unavailable` | `canceled` |
//! | plain HTTP: the sentence as the body | 504 | 503 | 503 |
//!
//! A request that arrives when its scope is already over (a stopping service) is answered
//! at once, without starting the handler. A streaming response (server-streaming gRPC,
//! SSE, a chunked body) stays under the request's scope until its body ends: a stream cut
//! by the deadline ends with trailers carrying `grpc-status` 4 for gRPC, an end-of-stream
//! message for Connect, and an `Err` for anything else; a stopping service ends its open
//! streams instead of waiting on them. The scope is looked at after every frame (by the
//! clock, when it has a deadline), so a body whose frames are always ready is cut too,
//! one frame late at most.
//!
//! # Hang-ups
//!
//! hyper drops a request's response future when the client resets an HTTP/2 stream, and
//! on HTTP/1 when it sees the connection's end (after the request body was read, and with
//! half-close off, hyper's default). [`DeadlineLayer`] then cancels the request's scope
//! before dropping the handler. An outgoing call made under that scope through
//! [`PropagateLayer`] is dropped with it, which closes its connection (HTTP/1) or resets
//! its stream (HTTP/2): the next service sees a hang-up, and so on down the chain
//! (`tests/http_chain.rs` shows it over both).
//!
//! # tonic
//!
//! tonic's own `Server` reads `grpc-timeout` itself, outside every user layer, and answers
//! CANCELLED ("Timeout expired") when it runs out; a tonic *client* also enforces
//! `Request::set_timeout` by its own clock. So:
//!
//! - behind tonic's `Server`, a budget written by [`PropagateLayer`] is honoured, and the
//!   caller sees tonic's CANCELLED "Timeout expired";
//! - to answer DEADLINE_EXCEEDED, serve the tonic service with axum or hyper, with
//!   [`DeadlineLayer`] outermost, and give it a [`margin`](DeadlineLayer::margin) so that
//!   the answer reaches a tonic client before the client's own timer gives up.
//!
//! [`CancelScope`]: crate::CancelScope

mod answer;
pub mod body;
mod budget;
pub mod deadline;
pub mod propagate;
mod under_scope;

pub use body::{WatchdogBodies, WatchdogBody, WatchdogBodyLayer};
pub use budget::{BudgetHeader, MalformedBudget};
pub use deadline::{BoxError, Deadline, DeadlineBody, DeadlineLayer};
pub use propagate::{Propagate, PropagateBody, PropagateError, PropagateLayer};
