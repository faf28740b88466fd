//! Deadlines and cancellation that cross HTTP and gRPC hops (feature `http`).
//!
//! A service is one hop in a chain. The caller's budget arrives in a header, becomes the
//! request's [`CancelScope`](crate::CancelScope), and leaves again on every outgoing call
//! as what remains. This module is built on the ecosystem's own types (`http`,
//! `http-body`, `tower-layer`, `tower-service`), so its pieces fit axum, tonic and hyper.
//!
//! - [`BudgetHeader`]: the three header formats a budget travels in (`grpc-timeout`,
//!   `connect-timeout-ms`, `x-envoy-expected-rq-timeout-ms`) and your own, read strictly
//!   and written rounded down.

mod answer;
mod budget;
pub mod deadline;
pub mod propagate;

pub use budget::{BudgetHeader, MalformedBudget};
pub use deadline::{BoxError, Deadline, DeadlineBody, DeadlineLayer};
pub use propagate::{Propagate, PropagateError, PropagateLayer};
