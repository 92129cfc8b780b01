//! Log records from the core (`tracing`) → the Python logger `tether`.
//!
//! The core logs from its runtime threads, which must never wait for the GIL (a busy Python
//! thread would stall I/O). So the subscriber only formats the record and puts it on a bounded
//! channel; one thread (`tether-log`) takes the GIL and calls `logging.getLogger("tether")`
//! with a batch of records at a time. When the channel is full, records are dropped and the
//! next record says how many.
//!
//! The subscriber is installed as the process-wide `tracing` default when the module is
//! imported, but only if no other default exists (another Rust extension in the same process
//! has its own copy of `tracing` statics, so it does not clash). It passes only the core's
//! records (targets `tether*`), at the level the `tether` logger had when the last client was
//! created (`DEBUG` is forwarded only if the logger is enabled for it then).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::{types, with_python};

/// Highest level forwarded: 0 error, 1 warn, 2 info, 3 debug, 4 trace.
static MAX_LEVEL: AtomicUsize = AtomicUsize::new(2);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static SENDER: OnceLock<SyncSender<LogRecord>> = OnceLock::new();

const CHANNEL_CAPACITY: usize = 4096;

struct LogRecord {
    /// Python `logging` level number.
    level: u8,
    message: String,
}

fn rank(level: &Level) -> usize {
    match *level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }
}

fn python_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        _ => 10,
    }
}

struct PyLogSubscriber;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}

impl Subscriber for PyLogSubscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target().starts_with("tether") {
            // Re-asked on every record: the level can change while the process runs.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("tether")
            && rank(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(tx) = SENDER.get() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = fields.message;
        message.push_str(&fields.rest);
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = write!(
                message,
                " ({dropped} earlier log records were dropped: the log thread fell behind)"
            );
        }
        let record = LogRecord {
            level: python_level(event.metadata().level()),
            message,
        };
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

fn forward(rx: Receiver<LogRecord>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let delivered = with_python(|py| {
            let Ok(t) = types::get(py) else { return };
            let logger = t.logger.bind(py);
            for r in batch.drain(..) {
                let _ = logger.call_method1("log", (r.level, "%s", r.message));
            }
        });
        if delivered.is_none() {
            // The interpreter is shutting down: nobody can log any more.
            return;
        }
    }
}

/// Install the subscriber and start the log thread (once per process).
pub(crate) fn install(_py: Python<'_>) -> PyResult<()> {
    if SENDER.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
    if SENDER.set(tx).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("tether-log".into())
        .spawn(move || forward(rx))
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start the tether-log thread: {e}"
            ))
        })?;
    // Fails if the process already has a default subscriber: then that one gets the records.
    let _ = tracing::subscriber::set_global_default(PyLogSubscriber);
    Ok(())
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
        0..=9 => 4,
        10..=19 => 3,
        _ => 2,
    };
    MAX_LEVEL.store(max, Ordering::Relaxed);
}
