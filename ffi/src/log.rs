//! Log records to a C callback: an explicit, process-wide opt-in.
//!
//! Core logs with `tracing`. Records carry no client identity and most are emitted on the
//! shared runtime's threads, so they cannot be routed to one client: the log callback is
//! process-wide, set with `tether_set_log_callback`. Nothing is installed until the first
//! call with a non-NULL callback; that call makes a small subscriber (below) the process's
//! global default `tracing` dispatcher, and fails with `TETHER_ERR_INVALID_STATE` if another
//! library already installed one (we never replace or fight it). The subscriber only passes
//! on records whose target starts with `tether`; everything else is ignored cheaply (callsite
//! interest `never`). Later calls just swap the callback or the level.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::callbacks::UserData;
use crate::status::tether_status::{self, *};
use crate::util::c_string;

/// Severity of a log record (and the `max_level` filter of `tether_set_log_callback`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_log_level {
    /// No records (as a filter).
    TETHER_LOG_OFF = 0,
    /// Errors.
    TETHER_LOG_ERROR = 1,
    /// Warnings (disconnects, missed heartbeats, ...).
    TETHER_LOG_WARN = 2,
    /// Informational (connected, reconnecting, closed).
    TETHER_LOG_INFO = 3,
    /// Debugging (state changes, ...).
    TETHER_LOG_DEBUG = 4,
    /// Very detailed.
    TETHER_LOG_TRACE = 5,
}

/// A log callback: `level`, `target` (the Rust module, e.g. "tether_core::session") and
/// `message` (the text and its fields, e.g. `disconnected reason=...`) are NUL-terminated and
/// borrowed for the call only.
pub type tether_log_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: tether_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, tether_log_level, *const c_char, *const c_char),
    user_data: UserData,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
/// None: not tried yet; Some(true): ours is the global default; Some(false): another is.
static INSTALLED: Mutex<Option<bool>> = Mutex::new(None);

thread_local! {
    /// Set while this thread runs the log callback: records it causes are dropped, and
    /// `tether_set_log_callback` refuses to run (it would wait for itself).
    static IN_LOG: Cell<bool> = const { Cell::new(false) };
}

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

fn is_tether(target: &str) -> bool {
    target.starts_with("tether")
}

/// The subscriber: filters by target and level, formats, calls the sink.
struct CSubscriber;

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

impl Subscriber for CSubscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_tether(metadata.target()) {
            // The level filter changes at run time: ask `enabled` each time.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_tether(metadata.target())
            && level_number(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are not reported; every span shares one id.
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if IN_LOG.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        let meta = event.metadata();
        let mut format = Format::default();
        event.record(&mut format);
        let level = match level_number(meta.level()) {
            1 => tether_log_level::TETHER_LOG_ERROR,
            2 => tether_log_level::TETHER_LOG_WARN,
            3 => tether_log_level::TETHER_LOG_INFO,
            4 => tether_log_level::TETHER_LOG_DEBUG,
            _ => tether_log_level::TETHER_LOG_TRACE,
        };
        let target = c_string(meta.target());
        let message = c_string(&(format.message + &format.fields));
        let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(sink) = sink.as_ref() {
            let _ = IN_LOG.try_with(|f| f.set(true));
            // SAFETY: the application registered this function with this signature and
            // promised it may be called from any thread; the strings live until it returns.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                (sink.callback)(sink.user_data.0, level, target.as_ptr(), message.as_ptr())
            }));
            let _ = IN_LOG.try_with(|f| f.set(false));
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Route Tether's log records to `callback` (process-wide, for all clients), up to
/// `max_level` (a `tether_log_level`). NULL or `TETHER_LOG_OFF` turns logging off.
///
/// The first call with a callback installs Tether's `tracing` subscriber as the process's
/// global default; if another Rust library in the process already installed one, this
/// returns `TETHER_ERR_INVALID_STATE` and nothing changes. Records from other libraries are
/// never passed on. The callback runs on whichever thread logs (Tether's I/O threads
/// included), possibly concurrently: keep it short and thread-safe, copy the strings, and do
/// not call Tether from it (`tether_set_log_callback` from inside it returns
/// `TETHER_ERR_REENTRANT`). After this returns, the previous callback is no longer called;
/// `user_data` is not freed by Tether.
///
/// Ownership: `user_data` stays yours (passed to every call of `callback`; keep it valid until the
/// callback is replaced or cleared); the strings the callback gets are borrowed for that call only.
/// Threads: any thread; process-wide. The callback itself may run on any thread, concurrently with
/// itself; calling this from inside it is refused.
/// Errors: `TETHER_ERR_INVALID_ARGUMENT` (`max_level` not a `tether_log_level`),
/// `TETHER_ERR_INVALID_STATE` (another `tracing` subscriber is installed), `TETHER_ERR_REENTRANT`
/// (from inside the log callback).
#[no_mangle]
pub extern "C" fn tether_set_log_callback(
    callback: tether_log_callback,
    user_data: *mut c_void,
    max_level: c_int,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let Ok(level) = u8::try_from(max_level) else {
            return TETHER_ERR_INVALID_ARGUMENT;
        };
        if level > 5 {
            return TETHER_ERR_INVALID_ARGUMENT;
        }
        if IN_LOG.try_with(Cell::get).unwrap_or(false) {
            return TETHER_ERR_REENTRANT;
        }
        let Some(callback) = callback.filter(|_| level > 0) else {
            MAX_LEVEL.store(0, Ordering::SeqCst);
            *SINK.write().unwrap_or_else(PoisonError::into_inner) = None;
            return TETHER_OK;
        };
        {
            let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
            let ok = *installed.get_or_insert_with(|| {
                tracing::subscriber::set_global_default(CSubscriber).is_ok()
            });
            if !ok {
                return TETHER_ERR_INVALID_STATE;
            }
        }
        *SINK.write().unwrap_or_else(PoisonError::into_inner) = Some(Sink {
            callback,
            user_data: UserData(user_data),
        });
        MAX_LEVEL.store(level, Ordering::SeqCst);
        TETHER_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_levels_are_refused() {
        assert_eq!(
            tether_set_log_callback(None, std::ptr::null_mut(), 6),
            TETHER_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            tether_set_log_callback(None, std::ptr::null_mut(), -1),
            TETHER_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            tether_set_log_callback(None, std::ptr::null_mut(), 0),
            TETHER_OK
        );
    }
}
