//! Entries under stable keys, with O(1) insert and remove and free slots reused: the
//! store behind a scope level's waiters and its children (`signal.rs`).
//!
//! # Invariants
//!
//! 1. `live` is the number of occupied slots.
//! 2. `free` holds the index of every vacant slot below `slots.len()`, each once.
//! 3. A key returned by `insert` names its entry until that entry is removed (by `remove`
//!    with that key, or by `take`); only then can `insert` hand the key out again.
//! 4. `vacant` returns the key the next `insert` will use.
//! 5. A slab left empty by `remove` keeps at most [`KEEP_SLOTS`] slots of capacity; past
//!    that it gives its memory back, so a burst of entries does not pin memory for the
//!    life of a long-lived scope. `take` always gives it back.

/// Past this many slots, an empty slab gives its memory back (invariant 5).
const KEEP_SLOTS: usize = 64;

pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    live: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The key the next `insert` will use.
    pub(crate) fn vacant(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(key) => {
                self.slots[key] = Some(value);
                key
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.slots.get(key).and_then(Option::as_ref)
    }

    /// Puts `value` in the slot of `key`, which must be occupied (the caller holds the key
    /// its `insert` returned: invariant 3), and returns the entry it replaces.
    pub(crate) fn replace(&mut self, key: usize, value: T) -> Option<T> {
        self.slots.get_mut(key).and_then(|slot| slot.replace(value))
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.slots.get_mut(key).and_then(Option::take)?;
        self.live -= 1;
        if self.live == 0 && self.slots.capacity() > KEEP_SLOTS {
            *self = Slab::default();
        } else {
            self.free.push(key);
        }
        Some(value)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Every entry, leaving the slab empty (and its memory freed).
    pub(crate) fn take(&mut self) -> impl Iterator<Item = T> + use<T> {
        std::mem::take(self).slots.into_iter().flatten()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_key_is_reused_and_an_emptied_slab_gives_its_memory_back() {
        let mut slab = Slab::default();
        let a = slab.insert('a');
        let b = slab.insert('b');
        assert_eq!(slab.remove(a), Some('a'));
        assert_eq!(slab.vacant(), a);
        assert_eq!(slab.insert('c'), a);
        assert_eq!(slab.get(b), Some(&'b'));
        assert_eq!(slab.remove(a), Some('c'));
        assert_eq!(slab.remove(a), None, "a removed key finds nothing");

        let keys: Vec<usize> = (0..=KEEP_SLOTS)
            .map(|i| slab.insert(char::from(b'0' + (i % 10) as u8)))
            .collect();
        for key in keys.into_iter().chain([b]) {
            slab.remove(key);
        }
        assert!(slab.is_empty());
        assert_eq!(
            slab.slots.capacity(),
            0,
            "an emptied large slab keeps its slots"
        );
    }
}
