//! Core values → Python objects: messages become `str`/`bytes`, events and reasons become the
//! dataclasses of `tether/_types.py`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use pyo3::BoundObject;

use tether_core::{ConnectAttempt, ConnectError, ConnectionInfo, Disconnect, Event, IdRange};
use tether_core::{Message, SendFailure, State, Stats};

use crate::types;

/// A message payload: `str` for text, `bytes` for binary.
pub(crate) fn message(py: Python<'_>, m: &Message) -> Py<PyAny> {
    match m {
        Message::Text(t) => PyString::new(py, t.as_str()).into_any().unbind(),
        Message::Binary(b) => PyBytes::new(py, b).into_any().unbind(),
    }
}

pub(crate) fn state(py: Python<'_>, s: State) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let member = t.states.get(s as usize).map(|m| m.clone_ref(py));
    member.ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown state {s}")))
}

pub(crate) fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> PyResult<Py<PyAny>> {
    Ok(v.into_pyobject(py).map_err(Into::into)?.into_any().unbind())
}

/// `tether.<class>(**fields)`.
fn build(py: Python<'_>, class: &str, fields: &[(&str, Py<PyAny>)]) -> PyResult<Py<PyAny>> {
    let kwargs = PyDict::new(py);
    for (k, v) in fields {
        kwargs.set_item(*k, v)?;
    }
    let cls = types::get(py)?.class(py, class)?;
    Ok(cls.call((), Some(&kwargs))?.unbind())
}

/// `Disconnect` → `tether.DisconnectReason(kind, code, message, close_reason, http_status,
/// last)`.
pub(crate) fn disconnect_reason(py: Python<'_>, d: &Disconnect) -> PyResult<Py<PyAny>> {
    let http_status = match d {
        Disconnect::ConnectFailed(ConnectError::HttpStatus { status, .. }) => obj(py, *status)?,
        _ => py.None(),
    };
    let last = match d {
        Disconnect::RetriesExhausted { last, .. } => disconnect_reason(py, last)?,
        _ => py.None(),
    };
    let close_reason = d.close_reason().unwrap_or_default();
    let fields = [
        ("kind", obj(py, d.kind_id())?),
        ("code", obj(py, d.close_code())?),
        ("message", obj(py, d.to_string())?),
        ("close_reason", obj(py, close_reason)?),
        ("http_status", http_status),
        ("last", last),
    ];
    build(py, "DisconnectReason", &fields)
}

/// `SendFailure` → `tether.FailureReason(kind, message)`.
pub(crate) fn failure_reason(py: Python<'_>, f: &SendFailure) -> PyResult<Py<PyAny>> {
    let fields = [
        ("kind", obj(py, f.kind_id())?),
        ("message", obj(py, f.to_string())?),
    ];
    build(py, "FailureReason", &fields)
}

/// An id range as a Python `range` (`id in reset.acked_at_risk`), or None.
fn range(py: Python<'_>, r: Option<IdRange>) -> PyResult<Py<PyAny>> {
    let Some(r) = r else { return Ok(py.None()) };
    let range = py.import("builtins")?.getattr("range")?;
    Ok(range
        .call1((r.first.0, r.last.0.saturating_add(1)))?
        .unbind())
}

/// An event → its `tether` event dataclass (a message → `str` / `bytes`).
pub(crate) fn event(py: Python<'_>, e: &Event) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let call = |class: &str, args: Vec<Py<PyAny>>| -> PyResult<Py<PyAny>> {
        let args = PyTuple::new(py, args)?;
        Ok(t.class(py, class)?.call1(args)?.unbind())
    };
    match e {
        Event::Message(m) => Ok(message(py, m)),
        Event::State { from, to } => call("StateChanged", vec![state(py, *from)?, state(py, *to)?]),
        Event::Disconnected {
            reason,
            will_reconnect,
        } => call(
            "Disconnected",
            vec![disconnect_reason(py, reason)?, obj(py, *will_reconnect)?],
        ),
        Event::Reconnecting { attempt, delay } => call(
            "Reconnecting",
            vec![obj(py, *attempt)?, obj(py, delay.as_secs_f64())?],
        ),
        Event::Written { up_to } => call("Written", vec![obj(py, up_to.0)?]),
        Event::Acked { id } => call("Acked", vec![obj(py, id.0)?]),
        Event::SendFailed { id, reason } => call(
            "SendFailed",
            vec![obj(py, id.0)?, failure_reason(py, reason)?],
        ),
        Event::InboundRejected { reason } => call("InboundRejected", vec![obj(py, reason)?]),
        Event::Closed {
            reason,
            undelivered,
        } => call(
            "Closed",
            vec![disconnect_reason(py, reason)?, obj(py, *undelivered)?],
        ),
        Event::SessionReset(r) => {
            let fields = [
                ("server_lost_state", obj(py, r.server_lost_state)?),
                ("client_state_lost", obj(py, r.client_state_lost)?),
                ("acked_at_risk", range(py, r.acked_at_risk)?),
                ("resends_may_duplicate", range(py, r.resends_may_duplicate)?),
                ("inbound_may_repeat", obj(py, r.inbound_may_repeat)?),
                ("server_revision", obj(py, r.server_revision)?),
            ];
            build(py, "SessionReset", &fields)
        }
        other => call("OtherEvent", vec![obj(py, format!("{other:?}"))?]),
    }
}

/// `Stats` → `tether.Stats` (durations in seconds, `None` when not measured yet).
pub(crate) fn stats(py: Python<'_>, s: &Stats) -> PyResult<Py<PyAny>> {
    let secs = |d: Option<std::time::Duration>| obj(py, d.map(|d| d.as_secs_f64()));
    let mut fields = Vec::new();
    for (name, v) in s.counters() {
        fields.push((name, obj(py, v)?));
    }
    fields.push(("last_rtt", secs(s.last_rtt)?));
    fields.push(("last_app_rtt", secs(s.last_app_rtt)?));
    build(py, "Stats", &fields)
}

/// `ConnectionInfo` → `tether.ConnectionInfo` (the peer as `ip:port`).
pub(crate) fn connection_info(py: Python<'_>, i: &ConnectionInfo) -> PyResult<Py<PyAny>> {
    let fields = [
        ("connection", obj(py, i.connection)?),
        ("subprotocol", obj(py, i.subprotocol.as_deref())?),
        ("headers", obj(py, PyTuple::new(py, &i.headers)?)?),
        ("proxy", obj(py, i.proxy.as_deref())?),
        ("peer", obj(py, i.peer.map(|p| p.to_string()))?),
    ];
    build(py, "ConnectionInfo", &fields)
}

/// `ConnectAttempt` → `tether.ConnectAttempt`, what the `credentials=` callable is given.
pub(crate) fn connect_attempt(py: Python<'_>, a: &ConnectAttempt) -> PyResult<Py<PyAny>> {
    let last = match &a.last_failure {
        Some(d) => disconnect_reason(py, d)?,
        None => py.None(),
    };
    let fields = [
        ("attempt", obj(py, a.attempt)?),
        ("reconnect", obj(py, a.reconnect)?),
        ("last_failure", last),
    ];
    build(py, "ConnectAttempt", &fields)
}
