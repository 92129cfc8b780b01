//! One log sink for every binding: Tether's `tracing` records forwarded to a function of the
//! application's (the C log callback, Python's `logging`).
//!
//! The core logs with `tracing`. Records carry no client identity and most are emitted on the
//! runtime's threads, so they cannot be routed to one client: the sink is process-wide.
//! Nothing is installed until the first [`set_log_sink`]; that call makes a small subscriber
//! (below) the process's global default `tracing` dispatcher, and fails with
//! [`LogError::OtherSubscriber`] if another library already installed one (we never replace
//! or fight it). The subscriber passes on only records whose target starts with `tether`, up to
//! a level that can change at run time; everything else is ignored cheaply (callsite interest
//! `never`). Later calls swap the sink or the level.
//!
//! The sink runs on whichever thread logs, possibly concurrently. Records that the sink itself
//! causes are dropped (a sink that logs would recurse), a panicking sink is contained, and the
//! sink may not be changed from inside itself ([`LogError::Reentrant`]: it would wait for
//! itself). A sink that must not block the logging thread (one that needs an interpreter
//! lock, say) wraps its delivery in a [`QueuedSink`].

use std::cell::Cell;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

pub use tracing::level_filters::LevelFilter;
pub use tracing::Level;

/// One log record, borrowed for the call.
#[derive(Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    /// Severity.
    pub level: Level,
    /// The Rust module that logged, e.g. `tether_core::session`.
    pub target: &'a str,
    /// The text and then its fields as ` name=value` pairs, e.g. `disconnected reason=...`.
    pub message: &'a str,
}

/// Where log records go. Any `Fn(&LogRecord)` that is `Send + Sync` is one.
pub trait LogSink: Send + Sync {
    /// Take one record. Called on the thread that logged, possibly on several at once.
    fn log(&self, record: &LogRecord<'_>);
}

impl<F: Fn(&LogRecord<'_>) + Send + Sync> LogSink for F {
    fn log(&self, record: &LogRecord<'_>) {
        self(record)
    }
}

/// Why the sink could not be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// Another `tracing` subscriber is already the process's global default.
    #[error("another tracing subscriber is already the process's global default")]
    OtherSubscriber,
    /// Called from inside the log sink, which would wait for itself.
    #[error("the log sink cannot be changed from inside the log sink")]
    Reentrant,
}

static SINK: RwLock<Option<Box<dyn LogSink>>> = RwLock::new(None);
/// The highest rank passed on (see [`rank`]); 0: none.
static MAX_RANK: AtomicU8 = AtomicU8::new(0);
/// None: not tried yet; Some(true): ours is the global default; Some(false): another is.
static INSTALLED: Mutex<Option<bool>> = Mutex::new(None);

thread_local! {
    /// Set while this thread runs the sink: records it causes are dropped, and the sink may
    /// not be changed.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// 1 error … 5 trace.
fn rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

fn filter_rank(filter: LevelFilter) -> u8 {
    filter.into_level().as_ref().map_or(0, rank)
}

fn is_tether(target: &str) -> bool {
    target.starts_with("tether")
}

/// True while the calling thread runs the log sink.
pub fn in_log_sink() -> bool {
    IN_SINK.try_with(Cell::get).unwrap_or(false)
}

/// Send Tether's records up to `max_level` to `sink` (process-wide), installing the subscriber
/// on first use. After this returns, the previous sink is no longer called.
pub fn set_log_sink(sink: Box<dyn LogSink>, max_level: LevelFilter) -> Result<(), LogError> {
    if in_log_sink() {
        return Err(LogError::Reentrant);
    }
    {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        let ours = *installed
            .get_or_insert_with(|| tracing::subscriber::set_global_default(Forwarder).is_ok());
        if !ours {
            return Err(LogError::OtherSubscriber);
        }
    }
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    set_log_level(max_level);
    Ok(())
}

/// Stop forwarding records; after this returns, the sink is no longer called (and dropped).
pub fn clear_log_sink() -> Result<(), LogError> {
    if in_log_sink() {
        return Err(LogError::Reentrant);
    }
    set_log_level(LevelFilter::OFF);
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = None;
    Ok(())
}

/// Change the highest level passed to the sink.
pub fn set_log_level(max_level: LevelFilter) {
    MAX_RANK.store(filter_rank(max_level), Ordering::SeqCst);
}

/// Formats an event's fields: the `message` first, then ` name=value` pairs.
#[derive(Default)]
struct Format {
    message: String,
    fields: String,
}

impl Visit for Format {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// The subscriber: filters by target and level, formats, calls the sink.
struct Forwarder;

impl Subscriber for Forwarder {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_tether(metadata.target()) {
            // The level changes at run time: ask `enabled` each time.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_tether(metadata.target()) && rank(metadata.level()) <= MAX_RANK.load(Ordering::Relaxed)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are not reported; every span shares one id.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if IN_SINK.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        let meta = event.metadata();
        let mut format = Format::default();
        event.record(&mut format);
        format.message.push_str(&format.fields);
        let record = LogRecord {
            level: *meta.level(),
            target: meta.target(),
            message: &format.message,
        };
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sink) = sink.as_ref() {
            let _ = IN_SINK.try_with(|f| f.set(true));
            // A panicking sink loses its record, not the thread that logged (a runtime thread).
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| sink.log(&record)));
            let _ = IN_SINK.try_with(|f| f.set(false));
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// A log record owned by a [`QueuedSink`]'s queue.
#[derive(Clone, Debug)]
pub struct OwnedLogRecord {
    /// Severity.
    pub level: Level,
    /// The Rust module that logged.
    pub target: String,
    /// The text and its fields (see [`LogRecord::message`]).
    pub message: String,
}

/// Records taken from the queue at most at once by the delivery thread.
const QUEUE_BATCH: usize = 256;

/// A sink that never blocks the thread that logs: it puts records on a bounded queue and one
/// thread of its own delivers them in batches. When the queue is full, records are dropped and
/// the next record queued says how many.
pub struct QueuedSink {
    tx: SyncSender<OwnedLogRecord>,
    dropped: AtomicU64,
}

impl QueuedSink {
    /// Start the delivery thread `thread_name`, which calls `deliver` with up to 256 records at
    /// a time (it drains the vector) until `deliver` returns false or the sink is dropped.
    pub fn start<F>(capacity: usize, thread_name: &str, deliver: F) -> std::io::Result<Self>
    where
        F: FnMut(&mut Vec<OwnedLogRecord>) -> bool + Send + 'static,
    {
        let (tx, rx) = sync_channel(capacity);
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || deliver_batches(rx, deliver))?;
        Ok(QueuedSink {
            tx,
            dropped: AtomicU64::new(0),
        })
    }
}

fn deliver_batches<F>(rx: Receiver<OwnedLogRecord>, mut deliver: F)
where
    F: FnMut(&mut Vec<OwnedLogRecord>) -> bool,
{
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < QUEUE_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if !deliver(&mut batch) {
            return;
        }
    }
}

impl LogSink for QueuedSink {
    fn log(&self, record: &LogRecord<'_>) {
        let mut message = record.message.to_owned();
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = write!(
                message,
                " ({dropped} earlier log records were dropped: the log thread fell behind)"
            );
        }
        let owned = OwnedLogRecord {
            level: record.level,
            target: record.target.to_owned(),
            message,
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(owned) {
            // This record and the ones its note counted are for the next record to report.
            self.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    fn record(message: &str) -> LogRecord<'_> {
        LogRecord {
            level: Level::WARN,
            target: "tether_core::test",
            message,
        }
    }

    // The one test that owns the process-wide sink (tests run in parallel in one process).
    #[test]
    fn the_global_sink_filters_formats_and_guards_reentry() {
        let got: Arc<Mutex<Vec<(Level, String, String)>>> = Arc::default();
        let seen = got.clone();
        let sink = move |r: &LogRecord<'_>| {
            // Reentry is refused and what the sink logs is dropped.
            assert_eq!(clear_log_sink(), Err(LogError::Reentrant));
            tracing::error!(target: "tether_core::test", "from inside the sink");
            let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.push((r.level, r.target.to_owned(), r.message.to_owned()));
        };
        assert_eq!(set_log_sink(Box::new(sink), LevelFilter::INFO), Ok(()));
        tracing::warn!(target: "tether_core::test", code = 1006, reason = ?"gone", "disconnected");
        tracing::debug!(target: "tether_core::test", "too detailed");
        tracing::error!(target: "other_crate", "not ours");
        set_log_level(LevelFilter::DEBUG);
        tracing::debug!(target: "tether_core::test", "now wanted");
        assert_eq!(clear_log_sink(), Ok(()));
        tracing::error!(target: "tether_core::test", "after clear");
        assert!(!in_log_sink());
        let got = got.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(
            got,
            vec![
                (
                    Level::WARN,
                    "tether_core::test".to_owned(),
                    "disconnected code=1006 reason=\"gone\"".to_owned()
                ),
                (
                    Level::DEBUG,
                    "tether_core::test".to_owned(),
                    "now wanted".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_queued_sink_delivers_in_order_and_counts_what_it_drops() {
        let (out_tx, out_rx) = channel();
        let (entered_tx, entered_rx) = channel();
        let gate = Arc::new(Barrier::new(2));
        let wait = gate.clone();
        let mut first = true;
        let sink = QueuedSink::start(2, "tether-log-test", move |batch| {
            if std::mem::take(&mut first) {
                let _ = entered_tx.send(());
                wait.wait(); // hold the thread until the queue has overflowed
            }
            for r in batch.drain(..) {
                let _ = out_tx.send(r.message);
            }
            true
        })
        .expect("thread");
        sink.log(&record("a"));
        entered_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the thread took the first record");
        // The thread holds "a"; the queue (2) takes b and c; d, e and f are dropped.
        for m in ["b", "c", "d", "e", "f"] {
            sink.log(&record(m));
        }
        gate.wait();
        let seen: Vec<String> = (0..3)
            .map(|_| out_rx.recv_timeout(Duration::from_secs(5)).expect("record"))
            .collect();
        assert_eq!(seen, ["a", "b", "c"]);
        sink.log(&record("g"));
        let next = out_rx.recv_timeout(Duration::from_secs(5)).expect("g");
        assert_eq!(
            next,
            "g (3 earlier log records were dropped: the log thread fell behind)"
        );
    }
}
