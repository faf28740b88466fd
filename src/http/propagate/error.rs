use crate::Interrupted;

/// The error of a [`Propagate`](super::Propagate) service: the request's scope ended it,
/// or the inner service failed.
#[derive(Debug, thiserror::Error)]
pub enum PropagateError<E> {
    /// Not sent, or dropped while waiting for the response: the scope was cancelled,
    /// its deadline passed, or too little of its budget was left to send the request.
    #[error(transparent)]
    Interrupted(Interrupted),
    /// The inner service's own error.
    #[error(transparent)]
    Inner(E),
}

impl<E> PropagateError<E> {
    /// The interruption, if the scope ended the request.
    pub fn interrupted(&self) -> Option<&Interrupted> {
        match self {
            PropagateError::Interrupted(why) => Some(why),
            PropagateError::Inner(_) => None,
        }
    }
}
