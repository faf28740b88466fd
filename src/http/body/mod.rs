//! Bodies watched for stalls: [`WatchdogBody`], and [`WatchdogBodyLayer`] that applies it
//! to every request and response of a service.

mod future;
mod layer;
mod watchdog;

pub use future::ResponseFuture;
pub use layer::{WatchdogBodies, WatchdogBodyLayer};
pub use watchdog::WatchdogBody;
