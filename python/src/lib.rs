//! `tether._tether`: the native half of the `tether` Python package (distribution `tether-ws`).
//!
//! This crate translates; it holds no connection logic of its own. Everything that behaves
//! lives in `tether-core`. What is here:
//!
//! * [`client::Client`]: the Python `tether.Client`, a handle on a core client. Without
//!   callbacks the core runs in poll mode and `recv()`/iteration read its queue; with
//!   callbacks its dispatcher thread hands each event to the [`hub`], which calls the
//!   callback for its kind or gives the event back to the core (routed delivery), which
//!   keeps it for `recv()`. Every other wait (ready, close, receipts, the asyncio bridge in
//!   `tether/_aio.py`) sleeps on the core's change count and re-checks the core.
//! * [`receipt::Receipt`]: the message id `send` returns, with ways to wait for the ack.
//! * [`options`]: `**options` → `tether_core::ConfigBuilder`, with errors that name the option.
//! * [`errors`] and [`convert`]: the one mapping from core errors and events to the Python
//!   exception hierarchy and event classes (defined in Python, `tether/_types.py`, and handed
//!   to this module once by `_init`).
//! * [`log`]: `tracing` records from the core go to the Python logger `tether`.
//!
//! Threads and the GIL: blocking waits release the GIL and wake every 50 ms to run
//! `PyErr_CheckSignals` (Ctrl-C); the dispatcher thread takes the GIL only around a user
//! callback, the change hook only for an asyncio wake-up on a loop that cannot watch the
//! wake-up socket; no lock of this crate is ever held while taking the GIL.

#![forbid(unsafe_code)]

mod client;
mod convert;
mod errors;
mod hub;
mod log;
mod options;
mod receipt;
mod types;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Set by an `atexit` hook: from then on no thread of ours attaches to the interpreter again.
/// (A thread that attaches while Python finalizes is terminated inside `PyGILState_Ensure` on
/// Python < 3.14, which aborts the process when Rust frames are on its stack.)
pub(crate) static FINALIZING: AtomicBool = AtomicBool::new(false);

/// Threads of ours between the `FINALIZING` check and the end of their attached section.
static ATTACHING: AtomicUsize = AtomicUsize::new(0);

/// Run `f` attached to the interpreter, unless the interpreter is shutting down. Only for
/// threads of ours (dispatcher, log thread), never for a Python thread.
pub(crate) fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            ATTACHING.fetch_sub(1, Ordering::SeqCst);
        }
    }
    ATTACHING.fetch_add(1, Ordering::SeqCst);
    let _leave = Leave;
    if FINALIZING.load(Ordering::SeqCst) {
        return None;
    }
    Python::try_attach(f)
}

/// Called from `atexit` (on the main thread, before finalization): stop our threads from
/// taking the GIL, let those already on their way finish (up to 5 s, with the GIL released),
/// and start closing every client that is still open (without waiting for the closes).
#[pyfunction]
fn _atexit(py: Python<'_>) {
    FINALIZING.store(true, Ordering::SeqCst);
    py.detach(|| {
        client::close_all_live();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ATTACHING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Set the number of worker threads of Tether's internal I/O runtime (1 to 64; default 1).
/// Only before the first client is created.
#[pyfunction]
fn set_worker_threads(count: usize) -> PyResult<()> {
    tether_core::runtime::set_worker_threads(count).map_err(errors::classified)
}

#[pymodule(gil_used = false)] // no GIL on free-threaded builds: docs/PYTHON.md
fn _tether(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Handle>()?;
    m.add_class::<client::WakeReader>()?;
    m.add_class::<receipt::Receipt>()?;
    m.add_function(wrap_pyfunction!(types::_init, m)?)?;
    m.add_function(wrap_pyfunction!(_atexit, m)?)?;
    m.add_function(wrap_pyfunction!(set_worker_threads, m)?)?;
    log::install(m.py())?;
    Ok(())
}
