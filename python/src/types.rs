//! The Python classes this module creates instances of (exceptions, events, `State`, `Stats`,
//! ...). They are plain Python (`tether/_types.py`): that gives real multiple inheritance for
//! the exceptions (`ConfigError` is also a `ValueError`), dataclasses for the events, and
//! readable source. `tether/__init__.py` hands the module to `_init` once, at import.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use tether_core::EventKind;

pub(crate) struct Types {
    // exceptions
    pub tether_error: Py<PyType>,
    pub config_error: Py<PyType>,
    pub connect_error: Py<PyType>,
    pub closed_error: Py<PyType>,
    pub not_ready_error: Py<PyType>,
    pub queue_full_error: Py<PyType>,
    pub message_too_large: Py<PyType>,
    pub delivery_failed: Py<PyType>,
    pub protocol_error: Py<PyType>,
    pub not_supported_error: Py<PyType>,
    pub invalid_argument: Py<PyType>,
    // values
    pub states: [Py<PyAny>; 6],
    pub stats: Py<PyType>,
    pub disconnect_reason: Py<PyType>,
    pub failure_reason: Py<PyType>,
    // events
    pub ev_base: Py<PyType>,
    pub ev_state_changed: Py<PyType>,
    pub ev_disconnected: Py<PyType>,
    pub ev_reconnecting: Py<PyType>,
    pub ev_written: Py<PyType>,
    pub ev_acked: Py<PyType>,
    pub ev_send_failed: Py<PyType>,
    pub ev_inbound_rejected: Py<PyType>,
    pub ev_closed: Py<PyType>,
    pub ev_session_reset: Py<PyType>,
    pub ev_other: Py<PyType>,
    // helpers
    pub json_dumps: Py<PyAny>,
    pub logger: Py<PyAny>,
    pub aio: Py<PyAny>,
}

impl Types {
    /// The event classes and the kind each stands for (`OtherEvent`: none).
    pub(crate) fn event_classes(&self) -> impl Iterator<Item = (&Py<PyType>, Option<EventKind>)> {
        [
            (&self.ev_state_changed, Some(EventKind::State)),
            (&self.ev_disconnected, Some(EventKind::Disconnected)),
            (&self.ev_reconnecting, Some(EventKind::Reconnecting)),
            (&self.ev_written, Some(EventKind::Written)),
            (&self.ev_acked, Some(EventKind::Acked)),
            (&self.ev_send_failed, Some(EventKind::SendFailed)),
            (&self.ev_inbound_rejected, Some(EventKind::InboundRejected)),
            (&self.ev_closed, Some(EventKind::Closed)),
            (&self.ev_session_reset, Some(EventKind::SessionReset)),
            (&self.ev_other, None),
        ]
        .into_iter()
    }
}

static TYPES: PyOnceLock<Types> = PyOnceLock::new();

/// The registered classes. `tether/__init__.py` registers them before anything can use this
/// module, so the error only shows if `tether._tether` is loaded without its package.
pub(crate) fn get(py: Python<'_>) -> PyResult<&Types> {
    TYPES.get(py).ok_or_else(|| {
        pyo3::exceptions::PyImportError::new_err(
            "tether._tether is private: import the `tether` package instead",
        )
    })
}

fn class(m: &Bound<'_, PyAny>, name: &str) -> PyResult<Py<PyType>> {
    Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
}

/// Register the Python side: `types` is `tether._types`, `aio` is `tether._aio`.
#[pyfunction]
pub(crate) fn _init(
    py: Python<'_>,
    types: &Bound<'_, PyAny>,
    aio: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let state = class(types, "State")?;
    let st = state.bind(py);
    let member = |name: &str| -> PyResult<Py<PyAny>> { Ok(st.call1((name,))?.unbind()) };
    // Same order as tether_core::State's discriminants.
    let states = [
        member("connecting")?,
        member("open")?,
        member("ready")?,
        member("closing")?,
        member("closed")?,
        member("reconnecting")?,
    ];
    let registered = Types {
        tether_error: class(types, "TetherError")?,
        config_error: class(types, "ConfigError")?,
        connect_error: class(types, "ConnectError")?,
        closed_error: class(types, "ClosedError")?,
        not_ready_error: class(types, "NotReadyError")?,
        queue_full_error: class(types, "QueueFullError")?,
        message_too_large: class(types, "MessageTooLarge")?,
        delivery_failed: class(types, "DeliveryFailed")?,
        protocol_error: class(types, "ProtocolError")?,
        not_supported_error: class(types, "NotSupportedError")?,
        invalid_argument: class(types, "InvalidArgument")?,
        states,
        stats: class(types, "Stats")?,
        disconnect_reason: class(types, "DisconnectReason")?,
        failure_reason: class(types, "FailureReason")?,
        ev_base: class(types, "Event")?,
        ev_state_changed: class(types, "StateChanged")?,
        ev_disconnected: class(types, "Disconnected")?,
        ev_reconnecting: class(types, "Reconnecting")?,
        ev_written: class(types, "Written")?,
        ev_acked: class(types, "Acked")?,
        ev_send_failed: class(types, "SendFailed")?,
        ev_inbound_rejected: class(types, "InboundRejected")?,
        ev_closed: class(types, "Closed")?,
        ev_session_reset: class(types, "SessionReset")?,
        ev_other: class(types, "OtherEvent")?,
        json_dumps: py.import("json")?.getattr("dumps")?.unbind(),
        logger: py
            .import("logging")?
            .getattr("getLogger")?
            .call1(("tether",))?
            .unbind(),
        aio: aio.clone().unbind(),
    };
    // A second `_init` (importlib.reload) keeps the first registration.
    let _ = TYPES.set(py, registered);
    Ok(())
}
