//! Log records from the core (`tracing`) → the Python logger `tether`.
//!
//! The forwarding is core's `tether_core::log`. The core logs from its runtime threads, which
//! must never wait for the GIL (a busy Python thread would stall I/O), so the sink is a
//! [`QueuedSink`]: a bounded queue that drops (and later counts) what does not fit, and one
//! thread (`tether-log`) that takes the GIL and calls `logging.getLogger("tether")` with a
//! batch of records at a time.
//!
//! The subscriber is installed as the process-wide `tracing` default when the module is
//! imported, but only if no other default exists (another Rust extension in the same process
//! has its own copy of `tracing` statics, so it does not clash). It passes only the core's
//! records, at the level the `tether` logger had when the last client was created (`DEBUG` is
//! forwarded only if the logger is enabled for it then).

use pyo3::prelude::*;
use tether_core::log::{self as core_log, Level, LevelFilter, OwnedLogRecord, QueuedSink};

use crate::{types, with_python};

const CHANNEL_CAPACITY: usize = 4096;

/// Python `logging` level number.
fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        _ => 10,
    }
}

/// Hand a batch to the `tether` logger; false once the interpreter is gone.
fn deliver(batch: &mut Vec<OwnedLogRecord>) -> bool {
    let delivered = with_python(|py| {
        let Ok(t) = types::get(py) else { return };
        let logger = t.logger.bind(py);
        for r in batch.drain(..) {
            let _ = logger.call_method1("log", (python_level(r.level), "%s", r.message));
        }
    });
    // None: the interpreter is shutting down: nobody can log any more.
    delivered.is_some()
}

/// Install the subscriber and start the log thread (once per process).
pub(crate) fn install(_py: Python<'_>) -> PyResult<()> {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    STARTED.call_once(|| {
        result = QueuedSink::start(CHANNEL_CAPACITY, "tether-log", deliver)
            .map(|sink| {
                // Fails if the process already has a default subscriber: that one gets the
                // records (and the sink and its thread end here).
                let _ = core_log::set_log_sink(Box::new(sink), LevelFilter::INFO);
            })
            .map_err(|e| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "cannot start the tether-log thread: {e}"
                ))
            });
    });
    result
}

/// Read the `tether` logger's effective level (called when a client is created).
pub(crate) fn refresh_level(py: Python<'_>) {
    let Ok(t) = types::get(py) else { return };
    let level: usize = t
        .logger
        .call_method0(py, "getEffectiveLevel")
        .and_then(|l| l.extract::<usize>(py))
        .unwrap_or(20);
    // INFO and above always pass (they are rare: connects, reconnects, closes) and the
    // logger filters them; DEBUG and TRACE only when the logger wants them.
    let max = match level {
        0..=9 => LevelFilter::TRACE,
        10..=19 => LevelFilter::DEBUG,
        _ => LevelFilter::INFO,
    };
    core_log::set_log_level(max);
}
