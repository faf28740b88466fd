//! Small helpers on instants shared by the modules.

use tokio::time::Instant;

/// The sooner of two deadlines, either of which may be absent.
#[inline]
pub(crate) fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
