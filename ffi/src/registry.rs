//! Handles as checked tokens.
//!
//! A `tether_client *` or `tether_config *` given to C is not the address of anything: it is
//! `serial << 2 | tag`, a key into a registry of `Arc`s (serials are never reused while the
//! counter has not wrapped: 2^62 handles on 64-bit targets), and a tag for the handle type.
//! Looking a handle up clones the `Arc` under a read lock, so:
//! * a freed handle (its key gone) is detected instead of reading freed memory, and a double
//!   free is a no-op;
//! * a call that races with `_free` on another thread either got its `Arc` first (and finishes
//!   on a live object) or finds the key gone;
//! * a config passed where a client is expected (or the reverse) fails the tag check.
//!
//! Nothing here is `unsafe`: the token is only ever compared, never dereferenced.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::status::tether_status::{self, *};

/// Tag of client handles.
pub(crate) const TAG_CLIENT: usize = 1;
/// Tag of config handles.
pub(crate) const TAG_CONFIG: usize = 2;

/// A table of live objects of one type: the last serial given out, and the live tokens.
pub(crate) struct Registry<T> {
    tag: usize,
    inner: RwLock<(usize, BTreeMap<usize, Arc<T>>)>,
}

impl<T> Registry<T> {
    pub(crate) const fn new(tag: usize) -> Self {
        Registry {
            tag,
            inner: RwLock::new((0, BTreeMap::new())),
        }
    }

    /// Store `value`; returns its token (never 0). None if every token is taken (only
    /// possible on 32-bit targets, with 2^30 live handles).
    pub(crate) fn insert(&self, value: Arc<T>) -> Option<usize> {
        let mut t = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..=t.1.len() {
            t.0 = t.0.wrapping_add(1) & (usize::MAX >> 2);
            let token = (t.0 << 2) | self.tag;
            if t.0 != 0 && !t.1.contains_key(&token) {
                t.1.insert(token, value);
                return Some(token);
            }
        }
        None
    }

    /// The live object behind a handle: NULL and stale or forged handles are refused.
    pub(crate) fn lookup<H>(&self, handle: *const H) -> Result<Arc<T>, tether_status> {
        if handle.is_null() {
            return Err(TETHER_ERR_NULL_PARAMETER);
        }
        self.get(handle.addr()).ok_or(TETHER_ERR_INVALID_HANDLE)
    }

    /// The frame of an export on a handle: look it up (a NULL or stale handle returns its
    /// status: there is no object to record a message on) and run `f`, at the boundary (a
    /// panic becomes `TETHER_ERR_PANIC`).
    pub(crate) fn call<H>(
        &self,
        handle: *const H,
        f: impl FnOnce(Arc<T>) -> tether_status,
    ) -> tether_status {
        ffi_boundary!(TETHER_ERR_PANIC, {
            match self.lookup(handle) {
                Ok(value) => f(value),
                Err(status) => status,
            }
        })
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
        let t = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        t.1.get(&token).map(f)
    }

    /// Remove the object behind `token`; None if it was not live (double free, forged token).
    pub(crate) fn remove(&self, token: usize) -> Option<Arc<T>> {
        let mut t = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        t.1.remove(&token)
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
        assert_ne!(a, b, "a token is not given out again");
        assert!(clients.get(a).is_none());
        assert_eq!(clients.get(b).as_deref(), Some(&2));
        for forged in [0, 1, 2, 3, 4, usize::MAX, 0xdead_beef] {
            assert!(clients.get(forged).is_none() || forged == b);
        }
    }
}
