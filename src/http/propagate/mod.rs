//! The client side: a request's remaining budget out, its response, and then its
//! response's body, dropped when the scope ends.

mod body;
mod error;
mod future;
mod layer;
mod service;

pub use body::PropagateBody;
pub use error::PropagateError;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_MARGIN, DEFAULT_MIN_BUDGET, PropagateLayer};
pub use service::Propagate;
