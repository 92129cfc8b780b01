//! The one mapping from core errors to the Python exception hierarchy (`tether/_types.py`):
//!
//! ```text
//! TetherError
//! ├── ConfigError (also ValueError)      ConfigError, StartError::Config, bad **options
//! ├── InvalidArgument (also ValueError)  CloseError (bad close code or reason)
//! ├── ConnectError                       Disconnect::{ConnectFailed, ConnectionLost, HeartbeatTimeout,
//! │                                        Rejected, HandshakeTimeout, HandshakeFailed} when fatal
//! ├── ClosedError                        SendError::Closed; recv() on a closed client
//! ├── NotReadyError                      SendError::NotReady
//! ├── QueueFullError                     SendError::QueueFull
//! ├── MessageTooLarge                    SendError::TooLarge, Disconnect::InboundTooLarge
//! ├── DeliveryFailed                     SendFailure (via DeliveryError::Failed or a receipt)
//! ├── ProtocolError                      Disconnect::ProtocolError
//! └── NotSupportedError                  DeliveryError::NotSupported (acks in raw mode)
//! TimeoutError (builtin)                 DeliveryError::Timeout, and every timed wait
//! ```
//!
//! Every `match` here has a catch-all arm for the core's `#[non_exhaustive]` enums: a variant
//! added to the core later becomes a plain `TetherError` with the core's message until it is
//! mapped here.

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::types::PyType;

use tether_core::runtime::RuntimeError;
use tether_core::{
    CloseError, ConfigError, DeliveryError, Disconnect, MessageId, SendError, SendFailure,
    StartError,
};

use crate::convert;
use crate::types;

/// Build `cls(message)` and set `attrs` on it.
pub(crate) fn make(
    py: Python<'_>,
    cls: &Py<PyType>,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let exc = cls.bind(py).call1((message.clone(),))?;
        for (name, value) in attrs {
            exc.setattr(*name, value)?;
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

fn with_types(f: impl for<'py> FnOnce(Python<'py>, &types::Types) -> PyErr) -> PyErr {
    Python::attach(|py| match types::get(py) {
        Ok(t) => f(py, t),
        Err(e) => e,
    })
}

/// `ConfigError` → `tether.ConfigError` (a `ValueError`) with `.option`: the core's text and
/// option id are the Python keyword's (the option table's stable ids), so nothing is re-worded.
pub(crate) fn config_error(e: ConfigError) -> PyErr {
    match e.option() {
        Some(option) => config_message(option, e.to_string()),
        None => with_types(|py, t| make(py, &t.config_error, e.to_string(), &[])),
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
    with_types(|py, t| {
        let name = option
            .into_pyobject(py)
            .map(|s| s.into_any().unbind())
            .unwrap_or_else(|_| py.None());
        make(py, &t.config_error, message, &[("option", name)])
    })
}

/// `StartError` → `ConfigError` for TLS material, else `TetherError`.
pub(crate) fn start_error(e: StartError) -> PyErr {
    match e {
        StartError::Config(c) => config_error(c),
        StartError::Runtime(r) => runtime_error(r),
        other => with_types(|py, t| make(py, &t.tether_error, other.to_string(), &[])),
    }
}

/// `RuntimeError` (worker thread count) → `InvalidArgument` or `TetherError`.
pub(crate) fn runtime_error(e: RuntimeError) -> PyErr {
    with_types(|py, t| match e {
        RuntimeError::InvalidCount(_) => make(py, &t.invalid_argument, e.to_string(), &[]),
        other => make(py, &t.tether_error, other.to_string(), &[]),
    })
}

/// `SendError` → the exception `send` raises.
pub(crate) fn send_error(e: SendError) -> PyErr {
    with_types(|py, t| {
        let msg = e.to_string();
        match e {
            SendError::Closed => make(py, &t.closed_error, msg, &[]),
            SendError::NotReady => make(py, &t.not_ready_error, msg, &[]),
            SendError::QueueFull { messages, bytes } => make(
                py,
                &t.queue_full_error,
                msg,
                &[
                    ("messages", int(py, messages as u64)),
                    ("bytes", int(py, bytes as u64)),
                ],
            ),
            SendError::TooLarge { size, limit } => make(
                py,
                &t.message_too_large,
                msg,
                &[
                    ("size", int(py, size as u64)),
                    ("limit", int(py, limit as u64)),
                ],
            ),
            other => make(py, &t.tether_error, other.to_string(), &[]),
        }
    })
}

/// `CloseError` → `InvalidArgument` (a `ValueError`).
pub(crate) fn close_error(e: CloseError) -> PyErr {
    with_types(|py, t| make(py, &t.invalid_argument, e.to_string(), &[]))
}

/// A message that will never be delivered → `DeliveryFailed` with `.id` and `.reason`.
pub(crate) fn delivery_failed(py: Python<'_>, id: MessageId, failure: &SendFailure) -> PyErr {
    match types::get(py) {
        Ok(t) => {
            let reason = convert::failure_reason(py, failure).unwrap_or_else(|_| py.None());
            make(
                py,
                &t.delivery_failed,
                format!("message {id} was not delivered: {failure}"),
                &[("id", int(py, id.0)), ("reason", reason)],
            )
        }
        Err(e) => e,
    }
}

/// `DeliveryError` from `wait_acked` → `DeliveryFailed`, `NotSupportedError`, `TimeoutError`.
pub(crate) fn delivery_error(py: Python<'_>, id: MessageId, e: DeliveryError) -> PyErr {
    let t = match types::get(py) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match e {
        DeliveryError::Failed(failure) => delivery_failed(py, id, &failure),
        DeliveryError::NotSupported => not_supported(py),
        DeliveryError::Timeout => timeout(format!("message {id}: timed out waiting for the ack")),
        DeliveryError::Unknown => make(
            py,
            &t.tether_error,
            format!(
                "message id {id} is unknown to this client (never issued, or too old to remember)"
            ),
            &[],
        ),
        other => make(py, &t.tether_error, other.to_string(), &[]),
    }
}

pub(crate) fn not_supported(py: Python<'_>) -> PyErr {
    match types::get(py) {
        Ok(t) => make(
            py,
            &t.not_supported_error,
            "acks need protocol=\"envelope\" (a server that speaks the Tether protocol); in raw mode \
             use receipt.wait_written(), which tells that the message was written to the socket"
                .to_owned(),
            &[],
        ),
        Err(e) => e,
    }
}

pub(crate) fn timeout(message: String) -> PyErr {
    PyTimeoutError::new_err(message)
}

/// The exception class that describes a client that ended for `reason`.
fn disconnect_class<'t>(t: &'t types::Types, reason: &Disconnect) -> &'t Py<PyType> {
    match reason {
        Disconnect::UserClose { .. } | Disconnect::ServerClosed { .. } => &t.closed_error,
        Disconnect::ConnectFailed(_)
        | Disconnect::ConnectionLost(_)
        | Disconnect::HeartbeatTimeout(_)
        | Disconnect::Rejected { .. }
        | Disconnect::HandshakeTimeout(_)
        | Disconnect::HandshakeFailed(_) => &t.connect_error,
        Disconnect::InboundTooLarge { .. } => &t.message_too_large,
        Disconnect::ProtocolError { .. } => &t.protocol_error,
        Disconnect::RetriesExhausted { last, .. } => disconnect_class(t, last),
        _ => &t.tether_error,
    }
}

/// The specific exception for a client that closed for good because of `reason`
/// (`ConnectError`, `ProtocolError`, `MessageTooLarge`, `ClosedError`), with `.reason`.
pub(crate) fn disconnect_error(py: Python<'_>, reason: &Disconnect, context: &str) -> PyErr {
    let t = match types::get(py) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let info = convert::disconnect_reason(py, reason).unwrap_or_else(|_| py.None());
    make(
        py,
        disconnect_class(t, reason),
        format!("{context}: {reason}"),
        &[("reason", info)],
    )
}

/// `ClosedError` for a call on a client that has closed for good; `.reason` says why and,
/// when the cause was not a close, `__cause__` is the specific error (`ConnectError`, ...).
pub(crate) fn closed_error(py: Python<'_>, reason: Option<&Disconnect>) -> PyErr {
    let t = match types::get(py) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let Some(reason) = reason else {
        return make(py, &t.closed_error, "the client is closed".to_owned(), &[]);
    };
    let info = convert::disconnect_reason(py, reason).unwrap_or_else(|_| py.None());
    let err = make(
        py,
        &t.closed_error,
        format!("the client is closed: {reason}"),
        &[("reason", info)],
    );
    if !std::ptr::eq(disconnect_class(t, reason), &t.closed_error) {
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
    v.into_pyobject(py)
        .map(|o| o.into_any().unbind())
        .unwrap_or_else(|_| py.None())
}
