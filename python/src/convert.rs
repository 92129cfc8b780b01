//! Core values → Python objects: messages become `str`/`bytes`, events and reasons become the
//! dataclasses of `tether/_types.py`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use pyo3::BoundObject;

use tether_core::{ConnectError, Disconnect, Event, Message, SendFailure, State, Stats};

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
    Ok(t.states[s as usize].clone_ref(py))
}

fn kwargs<'py>(py: Python<'py>, items: &[(&str, Py<PyAny>)]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(*k, v)?;
    }
    Ok(d)
}

fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> PyResult<Py<PyAny>> {
    Ok(v.into_pyobject(py).map_err(Into::into)?.into_any().unbind())
}

/// `Disconnect` → `tether.DisconnectReason(kind, code, message, http_status, last)`.
pub(crate) fn disconnect_reason(py: Python<'_>, d: &Disconnect) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let kind = match d {
        Disconnect::UserClose { .. } => "user_close",
        Disconnect::ServerClosed { .. } => "server_close",
        Disconnect::ConnectFailed(_) => "connect_failed",
        Disconnect::ConnectionLost(_) => "connection_lost",
        Disconnect::HeartbeatTimeout(_) => "heartbeat_timeout",
        Disconnect::InboundTooLarge { .. } => "inbound_too_large",
        Disconnect::ProtocolError { .. } => "protocol_error",
        Disconnect::Rejected { .. } => "rejected",
        Disconnect::HandshakeTimeout(_) => "handshake_timeout",
        Disconnect::HandshakeFailed(_) => "handshake_failed",
        Disconnect::RetriesExhausted { .. } => "retries_exhausted",
        _ => "other",
    };
    let http_status = match d {
        Disconnect::ConnectFailed(ConnectError::HttpStatus { status, .. }) => obj(py, *status)?,
        _ => py.None(),
    };
    let last = match d {
        Disconnect::RetriesExhausted { last, .. } => disconnect_reason(py, last)?,
        _ => py.None(),
    };
    let close_reason = match d {
        Disconnect::UserClose { reason, .. } | Disconnect::ServerClosed { reason, .. } => {
            obj(py, reason.as_str())?
        }
        _ => obj(py, "")?,
    };
    let kw = kwargs(
        py,
        &[
            ("kind", obj(py, kind)?),
            ("code", obj(py, d.close_code())?),
            ("message", obj(py, d.to_string())?),
            ("close_reason", close_reason),
            ("http_status", http_status),
            ("last", last),
        ],
    )?;
    Ok(t.disconnect_reason.bind(py).call((), Some(&kw))?.unbind())
}

/// `SendFailure` → `tether.FailureReason(kind, message)`.
pub(crate) fn failure_reason(py: Python<'_>, f: &SendFailure) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let kind = match f {
        SendFailure::DroppedOldest => "dropped_oldest",
        SendFailure::Closed => "closed",
        SendFailure::ConnectionFailed(_) => "connection_failed",
        SendFailure::AckTimeout { .. } => "ack_timeout",
        SendFailure::Rejected(_) => "rejected",
        SendFailure::RefusedTooLarge { .. } => "too_large",
        _ => "other",
    };
    Ok(t.failure_reason
        .bind(py)
        .call1((kind, f.to_string()))?
        .unbind())
}

/// Any non-message event → its `tether` event dataclass.
pub(crate) fn event(py: Python<'_>, e: &Event) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let made = match e {
        Event::Message(m) => return Ok(message(py, m)),
        Event::State { from, to } => t
            .ev_state_changed
            .bind(py)
            .call1((state(py, *from)?, state(py, *to)?))?,
        Event::Disconnected {
            reason,
            will_reconnect,
        } => t
            .ev_disconnected
            .bind(py)
            .call1((disconnect_reason(py, reason)?, *will_reconnect))?,
        Event::Reconnecting { attempt, delay } => t
            .ev_reconnecting
            .bind(py)
            .call1((*attempt, delay.as_secs_f64()))?,
        Event::Written { up_to } => t.ev_written.bind(py).call1((up_to.0,))?,
        Event::Acked { id } => t.ev_acked.bind(py).call1((id.0,))?,
        Event::SendFailed { id, reason } => t
            .ev_send_failed
            .bind(py)
            .call1((id.0, failure_reason(py, reason)?))?,
        Event::InboundRejected { reason } => {
            t.ev_inbound_rejected.bind(py).call1((reason.as_str(),))?
        }
        Event::Closed {
            reason,
            undelivered,
        } => t
            .ev_closed
            .bind(py)
            .call1((disconnect_reason(py, reason)?, *undelivered))?,
        Event::SessionReset(r) => {
            // An id range as a Python `range` (`id in reset.acked_at_risk`), or None.
            let range = |r: Option<tether_core::IdRange>| -> PyResult<Py<PyAny>> {
                match r {
                    None => Ok(py.None()),
                    Some(r) => Ok(py
                        .import("builtins")?
                        .getattr("range")?
                        .call1((r.first.0, r.last.0.saturating_add(1)))?
                        .unbind()),
                }
            };
            let kw = kwargs(
                py,
                &[
                    ("server_lost_state", obj(py, r.server_lost_state)?),
                    ("client_state_lost", obj(py, r.client_state_lost)?),
                    ("acked_at_risk", range(r.acked_at_risk)?),
                    ("resends_may_duplicate", range(r.resends_may_duplicate)?),
                    ("inbound_may_repeat", obj(py, r.inbound_may_repeat)?),
                    ("server_revision", obj(py, r.server_revision)?),
                ],
            )?;
            t.ev_session_reset.bind(py).call((), Some(&kw))?
        }
        other => t.ev_other.bind(py).call1((format!("{other:?}"),))?,
    };
    Ok(made.unbind())
}

/// `Stats` → `tether.Stats` (durations in seconds, `None` when not measured yet).
pub(crate) fn stats(py: Python<'_>, s: &Stats) -> PyResult<Py<PyAny>> {
    let t = types::get(py)?;
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let kw = kwargs(
        py,
        &[
            ("messages_sent", obj(py, s.messages_sent)?),
            ("bytes_sent", obj(py, s.bytes_sent)?),
            ("messages_received", obj(py, s.messages_received)?),
            ("bytes_received", obj(py, s.bytes_received)?),
            ("reconnects", obj(py, s.reconnects)?),
            ("send_failures", obj(py, s.send_failures)?),
            ("messages_acked", obj(py, s.messages_acked)?),
            ("messages_resent", obj(py, s.messages_resent)?),
            ("duplicates_dropped", obj(py, s.duplicates_dropped)?),
            ("inbound_rejected", obj(py, s.inbound_rejected)?),
            ("awaiting_ack", obj(py, s.awaiting_ack)?),
            ("outbox_messages", obj(py, s.outbox_messages)?),
            ("outbox_bytes", obj(py, s.outbox_bytes)?),
            (
                "outbox_high_water_messages",
                obj(py, s.outbox_high_water_messages)?,
            ),
            (
                "outbox_high_water_bytes",
                obj(py, s.outbox_high_water_bytes)?,
            ),
            ("last_rtt", obj(py, secs(s.last_rtt))?),
            ("last_app_rtt", obj(py, secs(s.last_app_rtt))?),
        ],
    )?;
    Ok(t.stats.bind(py).call((), Some(&kw))?.unbind())
}
