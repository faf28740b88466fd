//! How the registry spreads tasks over its locks: by id over [`SHARDS`]
//! mutexes, each on its own cache lines, and within a shard over a hash
//! table keyed by [`IdHasher`].
//!
//! Ids are sequential, so consecutive tasks land on different shards: the
//! spawning thread and the workers finishing earlier tasks rarely meet on
//! the same lock.
//!
//! # Deadlock safety
//!
//! Whoever holds more than one shard lock takes them in index order
//! ([`Shards::iter`], [`Shards::lock_all`]); what the registry does under
//! them is in `registry.rs`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::sync::{Mutex, MutexGuard, lock};

const SHARD_BITS: u32 = 3;

/// How many shards a registry has.
pub(super) const SHARDS: usize = 1 << SHARD_BITS;

/// `SHARDS` mutexes; task `id` belongs to shard `id % SHARDS`.
pub(super) struct Shards<T>(Box<[Padded<Mutex<T>>]>);

/// Keeps each shard's lock on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

impl<T: Default> Shards<T> {
    pub(super) fn new() -> Self {
        Shards((0..SHARDS).map(|_| Padded(Mutex::default())).collect())
    }
}

impl<T> Shards<T> {
    /// Locks the shard of task `id`.
    pub(super) fn lock(&self, id: u64) -> MutexGuard<'_, T> {
        lock(&self.0[(id as usize) & (SHARDS - 1)].0)
    }

    /// Every shard, in index order (the order in which a caller that holds
    /// several must lock them).
    pub(super) fn iter(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.0.iter().map(|padded| &padded.0)
    }

    /// Locks every shard, in index order.
    pub(super) fn lock_all(&self) -> Vec<MutexGuard<'_, T>> {
        self.0.iter().map(|padded| lock(&padded.0)).collect()
    }
}

/// A shard's table of tasks by id.
pub(super) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Ids are sequential and tasks mostly end in spawn order. Within a shard
/// (ids `k * SHARDS + s`) the hash keeps `k` in place, so neighbouring tasks
/// land in neighbouring buckets (a large table is walked, not jumped around,
/// which measured faster than a multiplicative hash), and copies `k`'s low 7
/// bits into the top 7 bits, which hashbrown uses as the tag that tells
/// neighbours apart.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let within_shard = id >> SHARD_BITS;
        self.0 = within_shard ^ (within_shard << 57);
    }
}
