//! Handles as generation-checked tokens.
//!
//! A `tether_client *` or `tether_config *` given to C is not the address of anything: it is
//! `generation << HALF | index << 2 | tag`, an index into a registry of `Arc`s plus the slot's
//! generation, and a tag for the handle type. Looking a handle up clones the `Arc` under a read
//! lock, so:
//! * a freed handle (its slot emptied, or reused under a new generation) is detected instead
//!   of reading freed memory, and a double free is a no-op;
//! * a call that races with `_free` on another thread either got its `Arc` first (and finishes
//!   on a live object) or finds the slot empty;
//! * a config passed where a client is expected (or the reverse) fails the tag check.
//!
//! Nothing here is `unsafe`: the token is only ever compared, never dereferenced.

use std::sync::{Arc, PoisonError, RwLock};

const HALF: u32 = usize::BITS / 2;
const TAG_MASK: usize = 0b11;
const INDEX_MASK: usize = (1 << HALF) - 1;
const GENERATION_MASK: usize = usize::MAX >> HALF;

/// Tag of client handles.
pub(crate) const TAG_CLIENT: usize = 1;
/// Tag of config handles.
pub(crate) const TAG_CONFIG: usize = 2;

struct Slot<T> {
    generation: usize,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
}

/// A table of live objects of one type.
pub(crate) struct Registry<T> {
    tag: usize,
    inner: RwLock<Slots<T>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(tag: usize) -> Self {
        Registry {
            tag,
            inner: RwLock::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn encode(&self, index: usize, generation: usize) -> usize {
        (generation << HALF) | (index << 2) | self.tag
    }

    fn decode(&self, token: usize) -> Option<(usize, usize)> {
        if token & TAG_MASK != self.tag {
            return None;
        }
        Some(((token & INDEX_MASK) >> 2, token >> HALF))
    }

    /// Store `value`; returns its token (never 0). None if the table is full (2^30 live
    /// handles on 64-bit targets).
    pub(crate) fn insert(&self, value: Arc<T>) -> Option<usize> {
        let mut t = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let index = match t.free.pop() {
            Some(index) => index,
            None => {
                let index = t.slots.len();
                if index > (INDEX_MASK >> 2) {
                    return None;
                }
                t.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let slot = &mut t.slots[index];
        // Generations start at 1 and skip 0 on wrap-around, so a token is never 0 (NULL).
        slot.generation = match (slot.generation + 1) & GENERATION_MASK {
            0 => 1,
            g => g,
        };
        slot.value = Some(value);
        let generation = slot.generation;
        Some(self.encode(index, generation))
    }

    /// The live object behind `token`, if any.
    pub(crate) fn get(&self, token: usize) -> Option<Arc<T>> {
        self.with(token, Arc::clone)
    }

    /// Run `f` on the live object behind `token` without taking a reference (None if it is
    /// not live). `f` runs under the table's read lock, which every handle lookup in the
    /// process shares: it must be short and must never block (it may try a lock, not wait
    /// for one), nor insert or remove.
    pub(crate) fn with<R>(&self, token: usize, f: impl FnOnce(&Arc<T>) -> R) -> Option<R> {
        let (index, generation) = self.decode(token)?;
        let t = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let slot = t.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.as_ref().map(f)
    }

    /// Remove the object behind `token`; None if it was not live (double free, forged token).
    pub(crate) fn remove(&self, token: usize) -> Option<Arc<T>> {
        let (index, generation) = self.decode(token)?;
        let mut t = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let slot = t.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        t.free.push(index);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_generation_and_tag() {
        let clients: Registry<u32> = Registry::new(TAG_CLIENT);
        let configs: Registry<u32> = Registry::new(TAG_CONFIG);
        let a = clients.insert(Arc::new(1)).unwrap();
        assert_ne!(a, 0);
        assert_eq!(clients.get(a).as_deref(), Some(&1));
        assert_eq!(clients.with(a, |v| **v + 1), Some(2));
        assert!(configs.get(a).is_none(), "wrong tag");
        assert!(configs.with(a, |_| ()).is_none(), "wrong tag");
        assert_eq!(clients.remove(a).as_deref(), Some(&1));
        assert!(clients.get(a).is_none(), "freed");
        assert!(clients.with(a, |_| ()).is_none(), "freed");
        assert!(clients.remove(a).is_none(), "double free");
        let b = clients.insert(Arc::new(2)).unwrap();
        assert_ne!(a, b, "the slot is reused under a new generation");
        assert!(clients.get(a).is_none());
        assert_eq!(clients.get(b).as_deref(), Some(&2));
        for forged in [0, 1, 2, 3, 4, usize::MAX, 0xdead_beef] {
            assert!(clients.get(forged).is_none() || forged == b);
        }
    }
}
