//! Status codes, their static descriptions, and the one mapping from core errors to them.

use std::ffi::{c_char, c_int, CStr};

use tether_core::{Classify, ErrorKind};

/// The result of every fallible call, and the kind of an asynchronous failure reported to
/// `on_error` and `on_send_failed`.
///
/// The numbering is append-only: a value never changes meaning. `tether_status_str()` gives a
/// short static description; the client's or config's last-error message gives the details.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum tether_status {
    /// Success.
    TETHER_OK = 0,
    /// A required pointer parameter was NULL.
    TETHER_ERR_NULL_PARAMETER = 1,
    /// Tether hit a bug (a Rust panic), caught at the boundary. The handle stays usable.
    TETHER_ERR_PANIC = 2,
    /// An internal failure (the runtime or a thread could not start, ...); see the message.
    TETHER_ERR_INTERNAL = 3,
    /// The URL is not a usable `ws://` or `wss://` URL; the message says why.
    TETHER_ERR_INVALID_URL = 4,
    /// A config value is out of range or inconsistent (or TLS material is unreadable); the
    /// message names the option.
    TETHER_ERR_INVALID_CONFIG = 5,
    /// The outbox is full (`TETHER_OVERFLOW_REJECT`, or the `TETHER_OVERFLOW_WAIT` timeout
    /// expired). Nothing was queued.
    TETHER_ERR_QUEUE_FULL = 6,
    /// A message is larger than the configured limit (outbound: nothing was queued; inbound:
    /// the link was closed with 1009). As an `on_send_failed` status: the server closed the
    /// link with 1009 three times while this message was the largest in flight.
    TETHER_ERR_TOO_LARGE = 7,
    /// The client is closed or closing (or being freed): it accepts no more messages.
    TETHER_ERR_CLOSED = 8,
    /// The link is not ready and queueing while disconnected is off. Nothing was queued.
    TETHER_ERR_NOT_READY = 9,
    /// The operation needs a mode this client does not run in: acks in raw mode.
    TETHER_ERR_NOT_SUPPORTED = 10,
    /// An argument is invalid (text that is not UTF-8, a close code that may not be sent, an
    /// unknown enum value, an unknown message id, ...); the message says which.
    TETHER_ERR_INVALID_ARGUMENT = 11,
    /// The handle is not a live `tether_client` / `tether_config`: it was freed, or never was
    /// one. (Detected on a best-effort basis; using a freed handle is a bug.)
    TETHER_ERR_INVALID_HANDLE = 12,
    /// `tether_client_poll*` on a client in callback (dispatcher-thread) mode.
    TETHER_ERR_WRONG_MODE = 13,
    /// `tether_client_poll*` called from inside one of the same client's callbacks, or while
    /// another thread is polling the same client; or `tether_set_log_callback` from inside
    /// the log callback.
    TETHER_ERR_REENTRANT = 14,
    /// A bounded wait ended before the awaited thing happened.
    TETHER_ERR_TIMEOUT = 15,
    /// The caller's buffer is too small; a truncated, NUL-terminated copy was written and
    /// `*needed_out` holds the size required.
    TETHER_ERR_BUFFER_TOO_SMALL = 16,
    /// The call is not possible any more (the runtime already started; another tracing
    /// subscriber is already installed in the process).
    TETHER_ERR_INVALID_STATE = 17,
    /// Asynchronous: a connection attempt failed (refused, DNS, TLS, HTTP status, timeout).
    TETHER_ERR_CONNECT_FAILED = 18,
    /// Asynchronous: the link broke without a close frame, or the server closed it with a
    /// code that is not a normal end (anything but 1000 and 1001; `on_close` has the code).
    TETHER_ERR_CONNECTION_LOST = 19,
    /// Asynchronous: nothing arrived within the heartbeat deadline; the link was dropped.
    TETHER_ERR_HEARTBEAT_TIMEOUT = 20,
    /// Asynchronous: the server violated the WebSocket protocol (for example invalid UTF-8
    /// in a text message: closed with 1007).
    TETHER_ERR_PROTOCOL = 21,
    /// Asynchronous, envelope mode: the application handshake failed or timed out.
    TETHER_ERR_HANDSHAKE = 22,
    /// Asynchronous, envelope mode: the server rejected the session or a message.
    TETHER_ERR_REJECTED = 23,
    /// Asynchronous: reconnecting stopped because the attempt or time limit ran out.
    TETHER_ERR_RETRIES_EXHAUSTED = 24,
    /// Asynchronous: the connection ended for good with the message undelivered.
    TETHER_ERR_CONNECTION_FAILED = 25,
    /// Asynchronous: the message was dropped from a full outbox (drop-oldest policy).
    TETHER_ERR_DROPPED = 26,
    /// Asynchronous, envelope mode: no ack after the configured attempts.
    TETHER_ERR_ACK_TIMEOUT = 27,
    /// Asynchronous, envelope mode: an inbound frame was refused (bad signature, malformed
    /// envelope) and not delivered; the link stays up.
    TETHER_ERR_INBOUND_REJECTED = 28,
    /// Asynchronous: a connection attempt failed at the proxy (it refused the tunnel, e.g.
    /// HTTP 407, or did not speak its protocol); the message names the proxy and its answer.
    TETHER_ERR_PROXY = 29,
    /// Asynchronous: the credentials provider failed (returned non-OK, or misbehaved), so
    /// the attempt was not made; it is retried with backoff. The message has its text.
    TETHER_ERR_CREDENTIALS = 30,
    /// The persistent outbox file (`tether_config_set_outbox_path`) could not be opened, read
    /// or written: from `tether_client_new` (a damaged file, one of another session or mode, a
    /// newer format, a file another live client holds) or `tether_client_send_*` (nothing was
    /// queued). The message names the file and the reason.
    TETHER_ERR_STORAGE = 31,
    /// As an `on_send_failed` status: the client ended before the message was delivered, and
    /// it stays in the persistent outbox file for the next client started with that file.
    TETHER_ERR_KEPT = 32,
}

use tether_status::*;

/// The short static description of each status, indexed by its number.
const DESCRIPTIONS: [&CStr; 33] = [
    c"ok",
    c"a required pointer parameter was NULL",
    c"internal error: Tether panicked (this is a bug)",
    c"internal error",
    c"invalid URL",
    c"invalid configuration value",
    c"outbox full",
    c"message too large",
    c"client is closed",
    c"not ready and queueing while disconnected is off",
    c"not supported in this mode (acks need envelope mode)",
    c"invalid argument",
    c"invalid handle (freed, or never created)",
    c"not available in this dispatch mode",
    c"re-entrant or concurrent call",
    c"timed out",
    c"buffer too small",
    c"not possible in the current state",
    c"connect failed",
    c"connection lost",
    c"heartbeat timeout",
    c"protocol error",
    c"application handshake failed",
    c"rejected by the server",
    c"gave up reconnecting",
    c"connection ended for good",
    c"dropped from a full outbox",
    c"no ack from the server",
    c"inbound message rejected",
    c"refused by the proxy",
    c"credentials provider failed",
    c"persistent outbox file error",
    c"not delivered; kept in the outbox file",
];

/// A short, static, NUL-terminated English description of a status code. Takes an `int` so
/// that any value is safe to pass: unknown values give "unknown status". Never NULL; the
/// string must not be freed.
///
/// Ownership: returns a static string: never NULL, do not free.
/// Threads: any thread.
/// Errors: none: an unknown value gives "unknown status".
#[no_mangle]
pub extern "C" fn tether_status_str(status: c_int) -> *const c_char {
    ffi_boundary!(c"unknown status".as_ptr(), {
        usize::try_from(status)
            .ok()
            .and_then(|i| DESCRIPTIONS.get(i))
            .map_or(c"unknown status", |s| s)
            .as_ptr()
    })
}

/// A failed call: the status returned to C and the message kept as the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub status: tether_status,
    pub message: String,
}

impl Fail {
    pub(crate) fn new(status: tether_status, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
        }
    }
}

/// A failed core call: the status of its kind (core's one classification), its message.
impl<E: Classify> From<&E> for Fail {
    fn from(e: &E) -> Fail {
        Fail::new(e.kind().into(), e.to_string())
    }
}

impl From<ErrorKind> for tether_status {
    fn from(kind: ErrorKind) -> tether_status {
        match kind {
            ErrorKind::InvalidUrl => TETHER_ERR_INVALID_URL,
            ErrorKind::InvalidConfig => TETHER_ERR_INVALID_CONFIG,
            ErrorKind::InvalidArgument => TETHER_ERR_INVALID_ARGUMENT,
            ErrorKind::InvalidState => TETHER_ERR_INVALID_STATE,
            ErrorKind::QueueFull => TETHER_ERR_QUEUE_FULL,
            ErrorKind::TooLarge => TETHER_ERR_TOO_LARGE,
            ErrorKind::Closed => TETHER_ERR_CLOSED,
            ErrorKind::NotReady => TETHER_ERR_NOT_READY,
            ErrorKind::NotSupported => TETHER_ERR_NOT_SUPPORTED,
            ErrorKind::Timeout => TETHER_ERR_TIMEOUT,
            ErrorKind::ConnectFailed => TETHER_ERR_CONNECT_FAILED,
            ErrorKind::ConnectionLost => TETHER_ERR_CONNECTION_LOST,
            ErrorKind::HeartbeatTimeout => TETHER_ERR_HEARTBEAT_TIMEOUT,
            ErrorKind::Protocol => TETHER_ERR_PROTOCOL,
            ErrorKind::Handshake => TETHER_ERR_HANDSHAKE,
            ErrorKind::Rejected => TETHER_ERR_REJECTED,
            ErrorKind::InboundRejected => TETHER_ERR_INBOUND_REJECTED,
            ErrorKind::RetriesExhausted => TETHER_ERR_RETRIES_EXHAUSTED,
            ErrorKind::ConnectionFailed => TETHER_ERR_CONNECTION_FAILED,
            ErrorKind::Dropped => TETHER_ERR_DROPPED,
            ErrorKind::AckTimeout => TETHER_ERR_ACK_TIMEOUT,
            ErrorKind::Proxy => TETHER_ERR_PROXY,
            ErrorKind::Credentials => TETHER_ERR_CREDENTIALS,
            ErrorKind::Storage => TETHER_ERR_STORAGE,
            ErrorKind::Kept => TETHER_ERR_KEPT,
            ErrorKind::Reentrant => TETHER_ERR_REENTRANT,
            ErrorKind::WrongMode => TETHER_ERR_WRONG_MODE,
            // Internal, and a kind this version does not know yet.
            _ => TETHER_ERR_INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_description() {
        assert_eq!(DESCRIPTIONS.len(), TETHER_ERR_KEPT as usize + 1);
        for i in 0..DESCRIPTIONS.len() {
            let text = tether_status_str(i as c_int);
            // SAFETY: tether_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(text) };
            assert!(!text.to_bytes().is_empty());
        }
    }

    #[test]
    fn unknown_values_are_safe() {
        for v in [-1, 33, 1000, c_int::MIN, c_int::MAX] {
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(tether_status_str(v)) };
            assert_eq!(text, c"unknown status");
        }
    }
}
