//! [`Observed`]: state guarded by a mutex, with a condition variable so that
//! synchronous callers can block (bounded) until it reaches a condition.
//! Shared by the [`Peer`](crate::Peer) and [`Proxy`](crate::Proxy) handles,
//! whose counters are updated by the runtime thread and waited on by tests.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A `Mutex<S>` plus a `Condvar` notified on every [`Observed::update`].
pub(crate) struct Observed<S> {
    state: Mutex<S>,
    changed: Condvar,
}

impl<S> Observed<S> {
    pub(crate) fn new(state: S) -> Self {
        Observed {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Locks the state. A poisoned lock is taken over: the state stays
    /// usable after a panicking test thread.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mutates the state and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    /// Blocks until `f` returns `Some` or `timeout` elapses.
    pub(crate) fn wait_until<R>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&S) -> Option<R>,
    ) -> Option<R> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        loop {
            if let Some(r) = f(&state) {
                return Some(r);
            }
            state = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    self.changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}
