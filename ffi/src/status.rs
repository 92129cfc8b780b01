//! Status codes, their static descriptions, and the one mapping from core errors to them.

use std::ffi::{c_char, c_int, CStr};

use tether_core::{
    CloseError, ConfigError, DeliveryError, Disconnect, SendError, SendFailure, StartError,
};

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
}

use tether_status::*;

impl tether_status {
    /// Every status, in numbering order (for tests and `tether_status_str`).
    pub(crate) const ALL: [tether_status; 29] = [
        TETHER_OK,
        TETHER_ERR_NULL_PARAMETER,
        TETHER_ERR_PANIC,
        TETHER_ERR_INTERNAL,
        TETHER_ERR_INVALID_URL,
        TETHER_ERR_INVALID_CONFIG,
        TETHER_ERR_QUEUE_FULL,
        TETHER_ERR_TOO_LARGE,
        TETHER_ERR_CLOSED,
        TETHER_ERR_NOT_READY,
        TETHER_ERR_NOT_SUPPORTED,
        TETHER_ERR_INVALID_ARGUMENT,
        TETHER_ERR_INVALID_HANDLE,
        TETHER_ERR_WRONG_MODE,
        TETHER_ERR_REENTRANT,
        TETHER_ERR_TIMEOUT,
        TETHER_ERR_BUFFER_TOO_SMALL,
        TETHER_ERR_INVALID_STATE,
        TETHER_ERR_CONNECT_FAILED,
        TETHER_ERR_CONNECTION_LOST,
        TETHER_ERR_HEARTBEAT_TIMEOUT,
        TETHER_ERR_PROTOCOL,
        TETHER_ERR_HANDSHAKE,
        TETHER_ERR_REJECTED,
        TETHER_ERR_RETRIES_EXHAUSTED,
        TETHER_ERR_CONNECTION_FAILED,
        TETHER_ERR_DROPPED,
        TETHER_ERR_ACK_TIMEOUT,
        TETHER_ERR_INBOUND_REJECTED,
    ];

    /// A short static description.
    pub(crate) fn describe(self) -> &'static CStr {
        match self {
            TETHER_OK => c"ok",
            TETHER_ERR_NULL_PARAMETER => c"a required pointer parameter was NULL",
            TETHER_ERR_PANIC => c"internal error: Tether panicked (this is a bug)",
            TETHER_ERR_INTERNAL => c"internal error",
            TETHER_ERR_INVALID_URL => c"invalid URL",
            TETHER_ERR_INVALID_CONFIG => c"invalid configuration value",
            TETHER_ERR_QUEUE_FULL => c"outbox full",
            TETHER_ERR_TOO_LARGE => c"message too large",
            TETHER_ERR_CLOSED => c"client is closed",
            TETHER_ERR_NOT_READY => c"not ready and queueing while disconnected is off",
            TETHER_ERR_NOT_SUPPORTED => c"not supported in this mode (acks need envelope mode)",
            TETHER_ERR_INVALID_ARGUMENT => c"invalid argument",
            TETHER_ERR_INVALID_HANDLE => c"invalid handle (freed, or never created)",
            TETHER_ERR_WRONG_MODE => c"not available in this dispatch mode",
            TETHER_ERR_REENTRANT => c"re-entrant or concurrent call",
            TETHER_ERR_TIMEOUT => c"timed out",
            TETHER_ERR_BUFFER_TOO_SMALL => c"buffer too small",
            TETHER_ERR_INVALID_STATE => c"not possible in the current state",
            TETHER_ERR_CONNECT_FAILED => c"connect failed",
            TETHER_ERR_CONNECTION_LOST => c"connection lost",
            TETHER_ERR_HEARTBEAT_TIMEOUT => c"heartbeat timeout",
            TETHER_ERR_PROTOCOL => c"protocol error",
            TETHER_ERR_HANDSHAKE => c"application handshake failed",
            TETHER_ERR_REJECTED => c"rejected by the server",
            TETHER_ERR_RETRIES_EXHAUSTED => c"gave up reconnecting",
            TETHER_ERR_CONNECTION_FAILED => c"connection ended for good",
            TETHER_ERR_DROPPED => c"dropped from a full outbox",
            TETHER_ERR_ACK_TIMEOUT => c"no ack from the server",
            TETHER_ERR_INBOUND_REJECTED => c"inbound message rejected",
        }
    }
}

/// A short, static, NUL-terminated English description of a status code. Takes an `int` so
/// that any value is safe to pass: unknown values give "unknown status". Never NULL; the
/// string must not be freed.
#[no_mangle]
pub extern "C" fn tether_status_str(status: c_int) -> *const c_char {
    ffi_boundary!(c"unknown status".as_ptr(), {
        usize::try_from(status)
            .ok()
            .and_then(|i| tether_status::ALL.get(i))
            .map_or(c"unknown status", |s| s.describe())
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

impl From<&SendError> for Fail {
    fn from(e: &SendError) -> Fail {
        let status = match e {
            SendError::Closed => TETHER_ERR_CLOSED,
            SendError::NotReady => TETHER_ERR_NOT_READY,
            SendError::QueueFull { .. } => TETHER_ERR_QUEUE_FULL,
            SendError::TooLarge { .. } => TETHER_ERR_TOO_LARGE,
            _ => TETHER_ERR_INTERNAL,
        };
        Fail::new(status, e.to_string())
    }
}

impl From<&ConfigError> for Fail {
    fn from(e: &ConfigError) -> Fail {
        let status = match e {
            ConfigError::InvalidUrl { .. } => TETHER_ERR_INVALID_URL,
            _ => TETHER_ERR_INVALID_CONFIG,
        };
        Fail::new(status, e.to_string())
    }
}

impl From<&StartError> for Fail {
    fn from(e: &StartError) -> Fail {
        match e {
            StartError::Config(c) => Fail::from(c),
            other => Fail::new(TETHER_ERR_INTERNAL, other.to_string()),
        }
    }
}

impl From<&CloseError> for Fail {
    fn from(e: &CloseError) -> Fail {
        Fail::new(TETHER_ERR_INVALID_ARGUMENT, e.to_string())
    }
}

impl From<&DeliveryError> for Fail {
    fn from(e: &DeliveryError) -> Fail {
        let status = match e {
            DeliveryError::NotSupported => TETHER_ERR_NOT_SUPPORTED,
            DeliveryError::Failed(reason) => send_failure_status(reason),
            DeliveryError::Timeout => TETHER_ERR_TIMEOUT,
            DeliveryError::Unknown => TETHER_ERR_INVALID_ARGUMENT,
            _ => TETHER_ERR_INTERNAL,
        };
        Fail::new(status, e.to_string())
    }
}

/// The status given to `on_send_failed` for a message that will never be delivered.
pub(crate) fn send_failure_status(f: &SendFailure) -> tether_status {
    match f {
        SendFailure::DroppedOldest => TETHER_ERR_DROPPED,
        SendFailure::Closed => TETHER_ERR_CLOSED,
        SendFailure::ConnectionFailed(_) => TETHER_ERR_CONNECTION_FAILED,
        SendFailure::AckTimeout { .. } => TETHER_ERR_ACK_TIMEOUT,
        SendFailure::Rejected(_) => TETHER_ERR_REJECTED,
        SendFailure::RefusedTooLarge { .. } => TETHER_ERR_TOO_LARGE,
        _ => TETHER_ERR_CONNECTION_FAILED,
    }
}

/// The status given to `on_error` for a link that ended abnormally; None for the normal ends
/// ([`Disconnect::is_normal`]).
pub(crate) fn disconnect_status(d: &Disconnect) -> Option<tether_status> {
    Some(match d {
        // The one definition of a normal end (the application's close, a server's 1000 or
        // 1001): no error.
        d if d.is_normal() => return None,
        Disconnect::ConnectFailed(_) => TETHER_ERR_CONNECT_FAILED,
        Disconnect::ConnectionLost(_) | Disconnect::ServerClosed { .. } => {
            TETHER_ERR_CONNECTION_LOST
        }
        Disconnect::HeartbeatTimeout(_) => TETHER_ERR_HEARTBEAT_TIMEOUT,
        Disconnect::InboundTooLarge { .. } => TETHER_ERR_TOO_LARGE,
        Disconnect::ProtocolError { .. } => TETHER_ERR_PROTOCOL,
        Disconnect::Rejected { .. } => TETHER_ERR_REJECTED,
        Disconnect::HandshakeTimeout(_) | Disconnect::HandshakeFailed(_) => TETHER_ERR_HANDSHAKE,
        Disconnect::RetriesExhausted { .. } => TETHER_ERR_RETRIES_EXHAUSTED,
        _ => TETHER_ERR_CONNECTION_LOST,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_dense_and_matches_all() {
        for (i, s) in tether_status::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "{s:?}");
            let text = tether_status_str(i as c_int);
            // SAFETY: tether_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(text) };
            assert!(!text.to_bytes().is_empty());
        }
    }

    #[test]
    fn unknown_values_are_safe() {
        for v in [-1, 29, 1000, c_int::MIN, c_int::MAX] {
            // SAFETY: as above.
            let text = unsafe { CStr::from_ptr(tether_status_str(v)) };
            assert_eq!(text, c"unknown status");
        }
    }
}
