//! Locking, crate-wide.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poison.
///
/// Every mutex in this crate is held only across code that runs no user code and leaves
/// its data consistent at every statement (wakers are woken, and user values dropped,
/// after unlocking). A panic while one is held can therefore only be an allocation
/// failure, and poison carries no information: it must not become a second panic in
/// library code.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
