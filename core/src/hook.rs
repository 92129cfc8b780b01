//! A slot for one application hook (the wake hook, the change hook, the I/O hook): set from any
//! thread, called from Tether's threads or a sending thread, never with a lock of ours held
//! during the call, and a panic in it caught and logged so that it cannot end the thread that
//! called it (the session task, a `send`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, PoisonError, RwLock};

/// An application hook: cheap, non-blocking, callable from any thread.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync>;

/// One hook, or none.
#[derive(Default)]
pub(crate) struct HookSlot(RwLock<Option<Hook>>);

impl HookSlot {
    /// Install (or with `None` remove) the hook.
    pub(crate) fn set(&self, hook: Option<Hook>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = hook;
    }

    /// Call the hook, if any; `name` names it in the log if it panics.
    pub(crate) fn fire(&self, name: &str) {
        let hook = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            if catch_unwind(AssertUnwindSafe(|| hook())).is_err() {
                tracing::error!("the {name} hook panicked; the client carries on");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_hook_is_called_until_removed_and_its_panic_is_contained() {
        let slot = HookSlot::default();
        slot.fire("test"); // none installed: nothing happens
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        slot.set(Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        slot.fire("test");
        slot.fire("test");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        slot.set(Some(Arc::new(|| panic!("in a hook"))));
        slot.fire("test"); // caught
        slot.set(None);
        slot.fire("test");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
