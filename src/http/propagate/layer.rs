use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::service::Propagate;
use crate::http::BudgetHeader;

/// A [`Layer`] for clients: every request made under a [`CancelScope`](crate::CancelScope)
/// carries what is left of its budget to the next service, and is dropped when the scope
/// ends; see the [module docs](crate::http).
///
/// The defaults: the budget in `grpc-timeout`, a margin of 5 ms for the hop, and a
/// request with less than 1 ms left is not sent.
///
/// The request may carry other budget headers too, often copies a proxy made of the
/// ones on the request it received, which were true then. Any of `grpc-timeout`,
/// `connect-timeout-ms` and `x-envoy-expected-rq-timeout-ms`, besides the one written,
/// that promises more than the budget sent, appears more than once, or cannot be read,
/// is rewritten to the budget sent (at least the least its format can say: `1n`, `1`),
/// so that no service down the line believes it has longer than this one will wait. One
/// that promises no more is kept as it was set. Under a scope without a deadline they
/// are left alone: there is no budget to hold them to.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::http::{BudgetHeader, PropagateLayer};
///
/// let to_connect_service = PropagateLayer::new()
///     .header(BudgetHeader::connect())
///     .margin(Duration::from_millis(20))
///     .min_budget(Duration::from_millis(50));
/// # drop(to_connect_service);
/// ```
#[derive(Clone, Debug)]
pub struct PropagateLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) header: BudgetHeader,
    pub(super) margin: Duration,
    pub(super) min_budget: Duration,
}

/// The time a hop is assumed to take by default: taken off the budget it is sent.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(5);
/// The least budget a request is sent with by default.
pub const DEFAULT_MIN_BUDGET: Duration = Duration::from_millis(1);

impl PropagateLayer {
    /// `grpc-timeout`, a 5 ms margin, a 1 ms minimum.
    pub fn new() -> Self {
        PropagateLayer {
            config: Arc::new(Config {
                header: BudgetHeader::grpc(),
                margin: DEFAULT_MARGIN,
                min_budget: DEFAULT_MIN_BUDGET,
            }),
        }
    }

    /// The header (and format) the target reads its budget from.
    pub fn header(mut self, header: BudgetHeader) -> Self {
        Arc::make_mut(&mut self.config).header = header;
        self
    }

    /// Taken off the remaining budget before it is written: the time the request and
    /// its response spend between the two services, so that the next one gives up
    /// before this one has to.
    pub fn margin(mut self, margin: Duration) -> Self {
        Arc::make_mut(&mut self.config).margin = margin;
        self
    }

    /// A request whose budget (after the margin) is below `minimum` is not sent: it fails
    /// at once with [`PropagateError::Interrupted`](super::PropagateError::Interrupted).
    pub fn min_budget(mut self, minimum: Duration) -> Self {
        Arc::make_mut(&mut self.config).min_budget = minimum;
        self
    }
}

impl Default for PropagateLayer {
    fn default() -> Self {
        PropagateLayer::new()
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Propagate<S> {
        Propagate::new(inner, self.config.clone())
    }
}
