//! The internal tokio runtime: created on first use, shared by all clients in the process.
//!
//! Game engines and embedders care about thread counts, so the worker count is configurable
//! (default 1) with [`set_worker_threads`] before the first client is created.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::{Handle, Runtime};

static WORKERS: AtomicUsize = AtomicUsize::new(1);
static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Error from [`set_worker_threads`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The runtime already runs; its size can no longer change.
    #[error("the Tether runtime is already running with {0} worker thread(s)")]
    AlreadyStarted(usize),
    /// Zero or absurdly many threads.
    #[error("worker thread count must be 1 to 64, got {0}")]
    InvalidCount(usize),
    /// The OS refused to start the runtime's threads.
    #[error("could not start the Tether runtime: {0}")]
    Start(String),
}

/// Set the number of runtime worker threads (1 to 64). Must be called before the first client
/// is created; afterwards it returns [`RuntimeError::AlreadyStarted`].
pub fn set_worker_threads(count: usize) -> Result<(), RuntimeError> {
    if !(1..=64).contains(&count) {
        return Err(RuntimeError::InvalidCount(count));
    }
    if RUNTIME.get().is_some() {
        return Err(RuntimeError::AlreadyStarted(WORKERS.load(Ordering::SeqCst)));
    }
    WORKERS.store(count, Ordering::SeqCst);
    Ok(())
}

/// The runtime's handle, starting it on first use.
pub(crate) fn handle() -> Result<Handle, RuntimeError> {
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS.load(Ordering::SeqCst))
            .thread_name("tether-rt")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(rt.handle().clone()),
        Err(e) => Err(RuntimeError::Start(e.clone())),
    }
}
