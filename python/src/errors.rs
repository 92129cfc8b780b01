//! The one mapping from core errors to the Python exception hierarchy (`tether/_types.py`):
//!
//! ```text
//! TetherError
//! ├── ConfigError (also ValueError)      ConfigError, StartError::Config, bad **options
//! ├── InvalidArgumentError (+ValueError) CloseError (bad close code or reason)
//! ├── ConnectError                       Disconnect::{ConnectFailed, ConnectionLost, HeartbeatTimeout,
//! │                                        Rejected, HandshakeTimeout, HandshakeFailed} when fatal
//! ├── ClosedError                        SendError::Closed; recv() on a closed client
//! ├── NotReadyError                      SendError::NotReady
//! ├── QueueFullError                     SendError::QueueFull
//! ├── MessageTooLargeError               SendError::TooLarge, Disconnect::InboundTooLarge
//! ├── DeliveryFailedError                SendFailure (via DeliveryError::Failed or a receipt)
//! ├── ProtocolError                      Disconnect::ProtocolError
//! ├── NotSupportedError                  DeliveryError::NotSupported (acks in raw mode)
//! └── StorageError                       StartError::Store, SendError::Storage (outbox_path)
//! TimeoutError (builtin)                 every timed wait
//! ```
//!
//! `InvalidArgument`, `MessageTooLarge` and `DeliveryFailed` (the names before the `Error`
//! suffix) stay as aliases of the same classes.
//!
//! Every `match` here has a catch-all arm for the core's `#[non_exhaustive]` enums: a variant
//! added to the core later becomes a plain `TetherError` with the core's message until it is
//! mapped here.

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;

use tether_core::{Classify, ConfigError, Disconnect, ErrorKind};
use tether_core::{MessageId, SendError, SendFailure, StartError};

use crate::convert::{self, obj};
use crate::types;

/// Build `tether.<class>(message)` and set `attrs` on it.
pub(crate) fn make(
    py: Python<'_>,
    class: &str,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = types::get(py)?.class(py, class)?.call1((message,))?;
        for (name, value) in attrs {
            exc.setattr(*name, value)?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// The exception class for a failure of `kind` (the core's one classification).
fn class(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidUrl | ErrorKind::InvalidConfig => "ConfigError",
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::Closed => "ClosedError",
        ErrorKind::NotReady => "NotReadyError",
        ErrorKind::QueueFull => "QueueFullError",
        ErrorKind::TooLarge => "MessageTooLargeError",
        ErrorKind::NotSupported => "NotSupportedError",
        ErrorKind::Protocol => "ProtocolError",
        ErrorKind::Storage => "StorageError",
        ErrorKind::ConnectFailed
        | ErrorKind::ConnectionLost
        | ErrorKind::HeartbeatTimeout
        | ErrorKind::Handshake
        | ErrorKind::Rejected
        | ErrorKind::Proxy
        | ErrorKind::Credentials => "ConnectError",
        _ => "TetherError",
    }
}

/// The exception for `e`, of the class of its kind, with the core's text (`CloseError` →
/// `InvalidArgument`, `RuntimeError` → `InvalidArgument` or `TetherError`, ...).
pub(crate) fn classified(e: impl Classify) -> PyErr {
    raise(class(e.kind()), e.to_string())
}

/// `tether.<class>(message)`, from a thread that may not hold the GIL.
fn raise(class: &str, message: String) -> PyErr {
    Python::attach(|py| make(py, class, message, &[]))
}

/// `ConfigError` → `tether.ConfigError` (a `ValueError`) with `.option`: the core's text and
/// option id are the Python keyword's (the option table's stable ids), so nothing is re-worded.
pub(crate) fn config_error(e: ConfigError) -> PyErr {
    match e.option() {
        Some(option) => config_message(option, e.to_string()),
        None => raise("ConfigError", e.to_string()),
    }
}

/// A Python value of the wrong type for an option, found before the core saw it.
pub(crate) fn option_error(option: &str, problem: impl std::fmt::Display) -> PyErr {
    config_message(
        option,
        format!("invalid value for option `{option}`: {problem}"),
    )
}

/// A `ConfigError` with this exact message, naming `option`.
pub(crate) fn config_message(option: &str, message: String) -> PyErr {
    Python::attach(|py| match obj(py, option) {
        Ok(name) => make(py, "ConfigError", message, &[("option", name)]),
        Err(e) => e,
    })
}

/// `StartError` → `ConfigError` for TLS material, else `TetherError`.
pub(crate) fn start_error(e: StartError) -> PyErr {
    match e {
        StartError::Config(c) => config_error(c),
        other => classified(other),
    }
}

/// `SendError` → the exception `send` raises, with the sizes as attributes.
pub(crate) fn send_error(e: SendError) -> PyErr {
    Python::attach(|py| {
        let attrs = match &e {
            SendError::QueueFull { messages, bytes } => {
                [("messages", *messages), ("bytes", *bytes)]
            }
            SendError::TooLarge { size, limit } => [("size", *size), ("limit", *limit)],
            _ => return classified(e),
        };
        let attrs = attrs.map(|(k, v)| (k, int(py, v as u64)));
        make(py, class(e.kind()), e.to_string(), &attrs)
    })
}

/// A message that will never be delivered → `DeliveryFailedError` with `.id` and `.reason`.
pub(crate) fn delivery_failed(py: Python<'_>, id: MessageId, failure: &SendFailure) -> PyErr {
    let reason = convert::failure_reason(py, failure).unwrap_or_else(|_| py.None());
    make(
        py,
        "DeliveryFailedError",
        format!("message {id} was not delivered: {failure}"),
        &[("id", int(py, id.0)), ("reason", reason)],
    )
}

/// A receipt whose id the core does not know → `TetherError`.
pub(crate) fn unknown_id(py: Python<'_>, id: MessageId) -> PyErr {
    let message =
        format!("message id {id} is unknown to this client (never issued, or too old to remember)");
    make(py, "TetherError", message, &[])
}

pub(crate) fn not_supported(py: Python<'_>) -> PyErr {
    make(
        py,
        "NotSupportedError",
        "acks need protocol=\"envelope\" (a server that speaks the Tether protocol); in raw mode \
         use receipt.wait_written(), which tells that the message was written to the socket"
            .to_owned(),
        &[],
    )
}

pub(crate) fn timeout(message: String) -> PyErr {
    PyTimeoutError::new_err(message)
}

/// The exception class that describes a client that ended for `reason`.
/// (A close by either side, whatever its code, is a `ClosedError`; giving up is the class of
/// the last failure.)
fn disconnect_class(reason: &Disconnect) -> &'static str {
    match reason {
        Disconnect::UserClose { .. } | Disconnect::ServerClosed { .. } => "ClosedError",
        Disconnect::RetriesExhausted { last, .. } => disconnect_class(last),
        other => other.error_kind().map_or("TetherError", class),
    }
}

/// The specific exception for a client that closed for good because of `reason`
/// (`ConnectError`, `ProtocolError`, `MessageTooLarge`, `ClosedError`), with `.reason`.
pub(crate) fn disconnect_error(py: Python<'_>, reason: &Disconnect, context: &str) -> PyErr {
    let info = convert::disconnect_reason(py, reason).unwrap_or_else(|_| py.None());
    let class = disconnect_class(reason);
    make(
        py,
        class,
        format!("{context}: {reason}"),
        &[("reason", info)],
    )
}

/// `ClosedError` for a call on a client that has closed for good; `.reason` says why and,
/// when the cause was not a close, `__cause__` is the specific error (`ConnectError`, ...).
pub(crate) fn closed_error(py: Python<'_>, reason: Option<&Disconnect>) -> PyErr {
    let Some(reason) = reason else {
        return make(py, "ClosedError", "the client is closed".to_owned(), &[]);
    };
    let info = convert::disconnect_reason(py, reason).unwrap_or_else(|_| py.None());
    let message = format!("the client is closed: {reason}");
    let err = make(py, "ClosedError", message, &[("reason", info)]);
    if disconnect_class(reason) != "ClosedError" {
        err.set_cause(py, Some(disconnect_error(py, reason, "cause")));
    }
    err
}

/// Raised by a blocking call made from inside a callback, where it would deadlock.
pub(crate) fn in_callback(what: &str) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(format!(
        "{what} cannot wait inside a tether callback: callbacks run on the client's dispatcher \
         thread, which is the thread that would have to deliver what you are waiting for"
    ))
}

fn int(py: Python<'_>, v: u64) -> Py<PyAny> {
    obj(py, v).unwrap_or_else(|_| py.None())
}
