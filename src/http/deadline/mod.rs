//! The server side: a request's budget in, its scope for the handler, the protocol's
//! answer when the scope wins.

mod body;
mod future;
mod layer;
mod service;

pub use body::{BoxError, DeadlineBody};
pub use future::ResponseFuture;
pub use layer::DeadlineLayer;
pub use service::Deadline;
