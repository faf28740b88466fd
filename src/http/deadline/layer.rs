use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tower_layer::Layer;

use super::service::Deadline;
use crate::CancelScope;
use crate::http::BudgetHeader;

/// A [`Layer`] that gives every request a [`CancelScope`] with the tightest budget it
/// carries, never more than the layer's limit; see the [module docs](crate::http).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hangfree::CancelScope;
/// use hangfree::http::DeadlineLayer;
///
/// let service_stops = CancelScope::new();
/// let layer = DeadlineLayer::new(Duration::from_secs(30)).root(service_stops.clone());
/// # drop(layer);
/// ```
#[derive(Clone, Debug)]
pub struct DeadlineLayer {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) limit: Duration,
    pub(super) root: CancelScope,
    pub(super) headers: Vec<BudgetHeader>,
    pub(super) margin: Duration,
}

impl DeadlineLayer {
    /// Requests get at most `limit`: the layer's own budget, which also applies to a
    /// request that carries no budget header, or only malformed ones. `Duration::MAX`
    /// means no limit of the layer's own.
    pub fn new(limit: Duration) -> Self {
        DeadlineLayer {
            config: Arc::new(Config {
                limit,
                root: CancelScope::new(),
                headers: BudgetHeader::known().into(),
                margin: Duration::ZERO,
            }),
        }
    }

    /// Makes every request's scope a child of `root`: cancelling `root` (a service that
    /// stops, such as `shutdown_signal()`) ends every request in flight, which is
    /// answered as "unavailable" (gRPC 14, Connect `unavailable`, HTTP 503).
    pub fn root(mut self, root: CancelScope) -> Self {
        Arc::make_mut(&mut self.config).root = root;
        self
    }

    /// Also reads the budget from `header`, besides `grpc-timeout`, `connect-timeout-ms`
    /// and `x-envoy-expected-rq-timeout-ms`. The tightest valid budget of all wins.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::http::{BudgetHeader, DeadlineLayer};
    ///
    /// let budget = BudgetHeader::millis(http::HeaderName::from_static("x-budget-ms"));
    /// let layer = DeadlineLayer::new(Duration::from_secs(10)).budget_header(budget);
    /// # drop(layer);
    /// ```
    pub fn budget_header(mut self, header: BudgetHeader) -> Self {
        Arc::make_mut(&mut self.config).headers.push(header);
        self
    }

    /// Taken off every budget a request carries (not off the layer's own limit): the time
    /// the answer needs to reach the caller. A client that enforces its own timeout (tonic's
    /// `Request::set_timeout` does) otherwise gives up by its own clock just before the
    /// server's answer arrives, and reports its own error instead of the server's
    /// DEADLINE_EXCEEDED. Default zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::http::DeadlineLayer;
    ///
    /// let layer = DeadlineLayer::new(Duration::from_secs(30)).margin(Duration::from_millis(20));
    /// # drop(layer);
    /// ```
    pub fn margin(mut self, margin: Duration) -> Self {
        Arc::make_mut(&mut self.config).margin = margin;
        self
    }
}

impl Config {
    /// The request's budget: the tightest valid budget header, at most the limit.
    pub(super) fn budget(&self, headers: &HeaderMap) -> Duration {
        let mut budget = self.limit;
        for header in &self.headers {
            for value in headers.get_all(header.name()) {
                match header.parse(value) {
                    Ok(asked) => budget = budget.min(asked.saturating_sub(self.margin)),
                    Err(malformed) => {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(
                            header = %malformed.header(),
                            error = %malformed,
                            "ignoring a malformed budget header; the layer's limit applies"
                        );
                        #[cfg(not(feature = "tracing"))]
                        let _ = malformed;
                    }
                }
            }
        }
        budget
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline::new(inner, self.config.clone())
    }
}
