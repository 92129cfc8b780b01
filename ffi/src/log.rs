//! Log records to a C callback: an explicit, process-wide opt-in.
//!
//! The forwarding itself (one process-wide `tracing` subscriber, `tether*` targets only, a
//! run-time level, reentrancy guard, contained panics) is core's `tether_core::log`; this
//! file translates levels, strings and the callback. Nothing is installed until the first
//! call with a non-NULL callback, which fails with `TETHER_ERR_INVALID_STATE` if another
//! library already installed a global `tracing` subscriber.

use std::ffi::{c_char, c_int, c_void};

use tether_core::log::{self as core_log, Level, LevelFilter, LogError, LogRecord};

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

impl core_log::LogSink for Sink {
    fn log(&self, record: &LogRecord<'_>) {
        let level = match record.level {
            Level::ERROR => tether_log_level::TETHER_LOG_ERROR,
            Level::WARN => tether_log_level::TETHER_LOG_WARN,
            Level::INFO => tether_log_level::TETHER_LOG_INFO,
            Level::DEBUG => tether_log_level::TETHER_LOG_DEBUG,
            _ => tether_log_level::TETHER_LOG_TRACE,
        };
        let target = c_string(record.target);
        let message = c_string(record.message);
        // SAFETY: the application registered this function with this signature and promised
        // it may be called from any thread; the strings live until it returns.
        unsafe { (self.callback)(self.user_data.0, level, target.as_ptr(), message.as_ptr()) }
    }
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
        let filter = match max_level {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            5 => LevelFilter::TRACE,
            _ => return TETHER_ERR_INVALID_ARGUMENT,
        };
        let result = match callback.filter(|_| filter != LevelFilter::OFF) {
            None => core_log::clear_log_sink(),
            Some(callback) => {
                let user_data = UserData(user_data);
                core_log::set_log_sink(
                    Box::new(Sink {
                        callback,
                        user_data,
                    }),
                    filter,
                )
            }
        };
        match result {
            Ok(()) => TETHER_OK,
            Err(LogError::Reentrant) => TETHER_ERR_REENTRANT,
            Err(LogError::OtherSubscriber) => TETHER_ERR_INVALID_STATE,
        }
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
