//! The waiters of one scope level: one slab under one lock, and more, one per group of
//! threads, once that lock is found contended.
//!
//! A scope shared by every worker (a service's root scope, guarding awaits on all of
//! them) has every guarded await insert its waker at its first poll and remove it at its
//! end, under the level's waiters lock: on two workers, each of those takes a lock and
//! writes a slab whose cache lines the other worker wrote last. A level starts with its
//! main slab alone, which is all a scope used on one thread needs (a request's scope,
//! most of all). The first insert that finds the main lock held by someone else makes
//! [`SHARDS`] more slabs, each under a lock of its own on cache lines of its own, and
//! from then on a task's waker goes to the slab of its thread's group (threads are
//! numbered as they first insert). Hooks always go to the main slab: they are rare.
//!
//! # Invariants
//!
//! 1. A key names the slab its waiter is in (the low [`SHARD_BITS`]; 0 is the main
//!    slab) and its slot there. A key naming a shard exists only once the shards do,
//!    and the shards, once made, live as long as the level.
//! 2. The shards are made under the main slab's lock, and [`take_all`] reads whether
//!    they exist under that lock too. So a take that finds none comes before their
//!    making, in the main lock's order; and every insert into a shard comes after that
//!    making, which comes after the take's release of the main lock, which comes after
//!    the phase store that precedes every take (signal.rs, invariant 5): such an insert
//!    sees the phase, under its shard's lock, and refuses. An insert that saw no phase
//!    is in its slab before the take locks that slab, and is taken. No waiter is left
//!    behind in a slab that a take did not look at.
//!
//! [`take_all`]: Waiters::take_all

use std::cell::Cell;
use std::sync::OnceLock;

use super::slab::Slab;
use crate::sync::{Mutex, lock, try_lock};

/// How many slabs a contended level adds to its main one.
const SHARDS: usize = 8;
/// The bits of a key that name its slab: 0 for the main one, then the shards.
const SHARD_BITS: u32 = 4;
const SHARD_MASK: usize = (1 << SHARD_BITS) - 1;
const _: () = assert!(SHARDS < 1 << SHARD_BITS);

/// One level's waiters (invariants above). `W` is signal.rs's `Waiter`.
pub(super) struct Waiters<W> {
    main: Mutex<Slab<W>>,
    shards: OnceLock<Box<[Shard<W>; SHARDS]>>,
}

/// A shard's slab and lock, alone on its cache lines (128 bytes: two lines, for the
/// adjacent-line prefetch of x86).
#[repr(align(128))]
struct Shard<W>(Mutex<Slab<W>>);

/// The guard of one slab, with the slab's number for the keys of what goes in.
pub(super) struct Locked<'a, W> {
    guard: crate::sync::MutexGuard<'a, Slab<W>>,
    slab: usize,
}

impl<W> Default for Waiters<W> {
    fn default() -> Self {
        Waiters {
            main: Mutex::new(Slab::default()),
            shards: OnceLock::new(),
        }
    }
}

impl<W> Waiters<W> {
    /// The slab `key` names, locked; `None` for a key that names none (which
    /// invariant 1 rules out).
    pub(super) fn lock_of(&self, key: usize) -> Option<Locked<'_, W>> {
        let slab = key & SHARD_MASK;
        let mutex = match slab {
            0 => &self.main,
            shard => &self.shards.get()?.get(shard - 1)?.0,
        };
        Some(Locked {
            guard: lock(mutex),
            slab,
        })
    }

    /// Removes the waiter under `key`, if it is still there.
    pub(super) fn remove(&self, key: usize) -> Option<W> {
        self.lock_of(key)?.remove(key)
    }

    /// The main slab, locked: where hooks go.
    pub(super) fn lock_main(&self) -> Locked<'_, W> {
        Locked {
            guard: lock(&self.main),
            slab: 0,
        }
    }

    /// The slab a new task's waker goes to, locked: its thread's shard once the shards
    /// exist; the main slab before, unless someone holds its lock: then the shards are
    /// made (invariant 2), and the main slab is used this once.
    ///
    /// Inline, the path of a level never contended: one look at the shards and the main
    /// lock taken if free, as an uncontended `lock` takes it. The rest, a contended
    /// level's path included, is one call.
    #[inline]
    pub(super) fn lock_for_task(&self) -> Locked<'_, W> {
        if self.shards.get().is_none()
            && let Some(guard) = try_lock(&self.main)
        {
            return Locked { guard, slab: 0 };
        }
        self.lock_for_task_contended()
    }

    #[inline(never)]
    fn lock_for_task_contended(&self) -> Locked<'_, W> {
        if let Some(shards) = self.shards.get() {
            let shard = thread_group();
            return Locked {
                guard: lock(&shards[shard].0),
                slab: shard + 1,
            };
        }
        let guard = lock(&self.main);
        self.make_shards();
        Locked { guard, slab: 0 }
    }

    /// Makes the shards, if they are not made yet. Called with the main lock held
    /// (invariant 2).
    fn make_shards(&self) {
        self.shards
            .get_or_init(|| Box::new(std::array::from_fn(|_| Shard(Mutex::new(Slab::default())))));
    }

    /// Makes the shards now, as the first contended insert would: for the models.
    #[cfg(all(test, loom))]
    pub(super) fn contend(&self) {
        let _main = lock(&self.main);
        self.make_shards();
    }

    /// Takes every waiter of every slab (for marking, after the phase is stored).
    pub(super) fn take_all(&self) -> impl Iterator<Item = W> + use<W> {
        let (main, shards) = {
            let mut main = lock(&self.main);
            // Under the main lock: invariant 2.
            (main.take(), self.shards.get())
        };
        let shards: Vec<_> = shards
            .into_iter()
            .flat_map(|shards| shards.iter())
            .map(|shard| lock(&shard.0).take())
            .collect();
        main.chain(shards.into_iter().flatten())
    }
}

impl<W> Locked<'_, W> {
    /// The waiter under `key`, which names this slab.
    pub(super) fn get(&self, key: usize) -> Option<&W> {
        self.guard.get(key >> SHARD_BITS)
    }

    /// Puts `waiter` in, and returns its key.
    pub(super) fn insert(&mut self, waiter: W) -> usize {
        (self.guard.insert(waiter) << SHARD_BITS) | self.slab
    }

    /// Replaces the waiter under `key`, which names this slab.
    pub(super) fn replace(&mut self, key: usize, waiter: W) -> Option<W> {
        self.guard.replace(key >> SHARD_BITS, waiter)
    }

    /// Removes the waiter under `key`, which names this slab.
    pub(super) fn remove(&mut self, key: usize) -> Option<W> {
        self.guard.remove(key >> SHARD_BITS)
    }
}

/// This thread's group: which shard its tasks' wakers go to. Threads are numbered in
/// the order they first ask, so the workers of a runtime, which all do, spread evenly.
fn thread_group() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static GROUP: Cell<Option<usize>> = const { Cell::new(None) };
    }
    GROUP.with(|group| match group.get() {
        Some(shard) => shard,
        None => {
            // Relaxed: a number to spread threads over the shards, ordering nothing.
            let shard = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            group.set(Some(shard));
            shard
        }
    })
}
