//! Synchronization primitives, crate-wide: the one seam the loom models swap.
//!
//! Code whose interleavings are model-checked takes its `Mutex`, `Arc` and
//! atomics from here. In a normal build they are `std`'s; in the loom build
//! (`RUSTFLAGS="--cfg loom" cargo test --lib --release loom`) they are loom's,
//! so every interleaving of the protocols built on them is explored. Pieces of
//! tokio and tokio-util that those protocols use have loom stand-ins next to
//! the models (see `docs/loom.md`).

#[cfg(all(test, loom))]
#[allow(unused_imports)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic};
#[cfg(not(all(test, loom)))]
#[allow(unused_imports)]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic};

use std::sync::PoisonError;

/// A mutex [`lock`] can lock: `std`'s, and in the loom build loom's too.
pub(crate) trait Lock {
    /// The guard `lock` returns.
    type Guard<'a>
    where
        Self: 'a;

    /// Locks, ignoring poison.
    fn lock_ignoring_poison(&self) -> Self::Guard<'_>;

    /// Locks if no one holds the lock, ignoring poison; `None` if someone does.
    fn try_lock_ignoring_poison(&self) -> Option<Self::Guard<'_>>;
}

impl<T> Lock for std::sync::Mutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;

    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock_ignoring_poison(&self) -> Option<Self::Guard<'_>> {
        match self.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

#[cfg(all(test, loom))]
impl<T> Lock for loom::sync::Mutex<T> {
    type Guard<'a>
        = loom::sync::MutexGuard<'a, T>
    where
        T: 'a;

    fn lock_ignoring_poison(&self) -> Self::Guard<'_> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock_ignoring_poison(&self) -> Option<Self::Guard<'_>> {
        match self.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// Locks `mutex`, ignoring poison.
///
/// Every mutex in this crate is held only across code that runs no user code and leaves
/// its data consistent at every statement (wakers are woken, and user values dropped,
/// after unlocking). A panic while one is held can therefore only be an allocation
/// failure, and poison carries no information: it must not become a second panic in
/// library code.
pub(crate) fn lock<M: Lock + ?Sized>(mutex: &M) -> M::Guard<'_> {
    mutex.lock_ignoring_poison()
}

/// Locks `mutex` if no one holds it, ignoring poison (see [`lock`]); `None` if someone
/// does.
pub(crate) fn try_lock<M: Lock + ?Sized>(mutex: &M) -> Option<M::Guard<'_>> {
    mutex.try_lock_ignoring_poison()
}
