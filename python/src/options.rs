//! `tether.Client(url, **options)`: keyword options → `tether_core::ConfigBuilder`.
//!
//! This module only checks Python types and shapes (a number of seconds, a bool, one of a few
//! strings); every range and consistency rule is the core's (`ConfigBuilder::build`), whose
//! errors are re-worded with the Python option names. The table of options, their defaults and
//! meaning is `docs/PYTHON.md`; `tether/_types.py` has the same list as a `TypedDict`.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyMapping, PyString, PyType};

use tether_core::{
    defaults, Config, ConfigBuilder, OverflowPolicy, Protocol, ReconnectPolicy, TlsRoots,
};

use crate::errors::{config_error, option_error};
use crate::hub::{Callbacks, Kind};
use crate::types;

/// `overflow="wait"` without `overflow_timeout`: how long `send` may block.
const DEFAULT_OVERFLOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Every option `Client` accepts (for the "unknown option" message).
pub(crate) const NAMES: &[&str] = &[
    "headers",
    "subprotocols",
    "connect_timeout",
    "happy_eyeballs_delay",
    "resolve",
    "tls_roots",
    "ca_file",
    "ca_pem",
    "tls_insecure",
    "reconnect",
    "backoff_initial",
    "backoff_max",
    "backoff_multiplier",
    "max_reconnect_attempts",
    "max_retry_duration",
    "min_uptime",
    "ping_interval",
    "ping_timeout",
    "outbox_max_messages",
    "outbox_max_bytes",
    "overflow",
    "overflow_timeout",
    "queue_while_disconnected",
    "max_message_size",
    "max_inbound_message_size",
    "max_inbound_frame_size",
    "close_timeout",
    "event_queue_capacity",
    "read_buffer_size",
    "write_batch_bytes",
    "protocol",
    "token",
    "session_id",
    "signing_key",
    "compression_threshold",
    "ack_timeout",
    "ack_retries",
    "handshake_timeout",
    "app_ping",
    "events",
    "on_message",
    "on_state",
    "on_disconnected",
    "on_reconnecting",
    "on_written",
    "on_acked",
    "on_send_failed",
    "on_closed",
    "on_session_reset",
    "on_event",
];

/// The outcome of parsing: a validated core config plus what the binding itself needs.
pub(crate) struct Parsed {
    pub config: Config,
    /// Messages queued for `recv()` before the dispatcher waits (= `event_queue_capacity`).
    pub capacity: usize,
    pub subscribed: u32,
    pub callbacks: Callbacks,
    pub overflow_wait: bool,
    pub envelope: bool,
}

#[derive(Default)]
struct Raw {
    backoff_initial: Option<Duration>,
    backoff_max: Option<Duration>,
    backoff_multiplier: Option<f64>,
    ping_interval: Option<Option<Duration>>,
    ping_timeout: Option<Duration>,
    outbox_max_messages: Option<usize>,
    outbox_max_bytes: Option<usize>,
    overflow: Option<String>,
    overflow_timeout: Option<Duration>,
    max_inbound_message_size: Option<usize>,
    max_inbound_frame_size: Option<usize>,
    ack_timeout: Option<Duration>,
    ack_retries: Option<u32>,
    tls_roots: Option<String>,
    ca_file: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

pub(crate) fn parse(
    py: Python<'_>,
    url: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Parsed> {
    let mut b = ConfigBuilder::new(url);
    let mut raw = Raw::default();
    let mut subscribed = 0u32;
    let mut callbacks = Callbacks::default();
    let mut envelope = false;
    let mut capacity = defaults::EVENT_QUEUE_CAPACITY;

    if let Some(options) = options {
        for (key, value) in options.iter() {
            let key: String = key.extract()?;
            let name = key.as_str();
            let v = &value;
            match name {
                "headers" => {
                    for (k, val) in pairs(name, v)? {
                        b = b.header(k, val);
                    }
                }
                "subprotocols" => {
                    for p in strings(name, v)? {
                        b = b.subprotocol(p);
                    }
                }
                "connect_timeout" => b = b.connect_timeout(seconds(name, v)?),
                "happy_eyeballs_delay" => b = b.happy_eyeballs_delay(seconds(name, v)?),
                "resolve" => {
                    if !v.is_none() {
                        for (host, addrs) in resolve_entries(name, v)? {
                            b = b.resolve(host, addrs);
                        }
                    }
                }
                "tls_roots" => raw.tls_roots = Some(string(name, v)?),
                "ca_file" => {
                    if !v.is_none() {
                        let path =
                            py.import("os")?
                                .getattr("fspath")?
                                .call1((v,))
                                .map_err(|_| {
                                    option_error(name, "expected a path (str or os.PathLike)")
                                })?;
                        raw.ca_file = Some(string(name, &path)?);
                    }
                }
                "ca_pem" => {
                    if !v.is_none() {
                        raw.ca_pem = Some(bytes_or_str(name, v)?);
                    }
                }
                "tls_insecure" => b = b.danger_accept_invalid_certs(boolean(name, v)?),
                "reconnect" => b = b.reconnect_enabled(boolean(name, v)?),
                "backoff_initial" => raw.backoff_initial = Some(seconds(name, v)?),
                "backoff_max" => raw.backoff_max = Some(seconds(name, v)?),
                "backoff_multiplier" => raw.backoff_multiplier = Some(number(name, v)?),
                "max_reconnect_attempts" => {
                    let n = opt(v, |v| uint(name, v))?;
                    let n = n
                        .map(|n| u32::try_from(n).map_err(|_| option_error(name, "too large")))
                        .transpose()?;
                    b = b.max_reconnect_attempts(n);
                }
                "max_retry_duration" => b = b.max_retry_duration(opt(v, |v| seconds(name, v))?),
                "min_uptime" => b = b.min_uptime(seconds(name, v)?),
                "ping_interval" => raw.ping_interval = Some(opt(v, |v| seconds(name, v))?),
                "ping_timeout" => raw.ping_timeout = Some(seconds(name, v)?),
                "outbox_max_messages" => raw.outbox_max_messages = Some(uint(name, v)?),
                "outbox_max_bytes" => raw.outbox_max_bytes = Some(uint(name, v)?),
                "overflow" => raw.overflow = Some(string(name, v)?),
                "overflow_timeout" => raw.overflow_timeout = Some(seconds(name, v)?),
                "queue_while_disconnected" => b = b.queue_while_disconnected(boolean(name, v)?),
                "max_message_size" => b = b.max_outbound_message_size(uint(name, v)?),
                "max_inbound_message_size" => raw.max_inbound_message_size = Some(uint(name, v)?),
                "max_inbound_frame_size" => raw.max_inbound_frame_size = Some(uint(name, v)?),
                "close_timeout" => b = b.close_timeout(seconds(name, v)?),
                "event_queue_capacity" => {
                    capacity = uint(name, v)?;
                    b = b.event_queue_capacity(capacity);
                }
                "read_buffer_size" => b = b.read_buffer_size(uint(name, v)?),
                "write_batch_bytes" => b = b.write_batch_bytes(uint(name, v)?),
                "protocol" => {
                    let p = string(name, v)?;
                    let protocol = match p.as_str() {
                        "raw" => Protocol::Raw,
                        "envelope" => Protocol::Envelope,
                        other => {
                            return Err(option_error(
                                name,
                                format!("{other:?}: expected \"raw\" or \"envelope\""),
                            ))
                        }
                    };
                    envelope = protocol == Protocol::Envelope;
                    b = b.protocol(protocol);
                }
                "token" => {
                    if !v.is_none() {
                        b = b.auth_token(string(name, v)?);
                    }
                }
                "session_id" => {
                    if !v.is_none() {
                        b = b.session_id(string(name, v)?);
                    }
                }
                "signing_key" => {
                    if !v.is_none() {
                        b = b.signing_key(bytes_or_str(name, v)?);
                    }
                }
                "compression_threshold" => b = b.compression_threshold(opt(v, |v| uint(name, v))?),
                "ack_timeout" => raw.ack_timeout = Some(seconds(name, v)?),
                "ack_retries" => {
                    let n = uint(name, v)?;
                    raw.ack_retries =
                        Some(u32::try_from(n).map_err(|_| option_error(name, "too large"))?);
                }
                "handshake_timeout" => b = b.handshake_timeout(seconds(name, v)?),
                "app_ping" => b = b.app_ping(boolean(name, v)?),
                "events" => subscribed = events(py, v)?,
                "on_message" => callbacks.on_message = callback(name, v)?,
                "on_state" => callbacks.on_state = callback(name, v)?,
                "on_disconnected" => callbacks.on_disconnected = callback(name, v)?,
                "on_reconnecting" => callbacks.on_reconnecting = callback(name, v)?,
                "on_written" => callbacks.on_written = callback(name, v)?,
                "on_acked" => callbacks.on_acked = callback(name, v)?,
                "on_send_failed" => callbacks.on_send_failed = callback(name, v)?,
                "on_closed" => callbacks.on_closed = callback(name, v)?,
                "on_session_reset" => callbacks.on_session_reset = callback(name, v)?,
                "on_event" => callbacks.on_event = callback(name, v)?,
                other => return Err(unknown(other)),
            }
        }
    }

    // Options that the core sets in groups: fill the unset members with the core defaults.
    if raw.backoff_initial.is_some()
        || raw.backoff_max.is_some()
        || raw.backoff_multiplier.is_some()
    {
        let d = ReconnectPolicy::default();
        b = b.backoff(
            raw.backoff_initial.unwrap_or(d.initial_delay),
            raw.backoff_max.unwrap_or(d.max_delay),
            raw.backoff_multiplier.unwrap_or(d.multiplier),
        );
    }
    if raw.ping_interval.is_some() || raw.ping_timeout.is_some() {
        b = b.heartbeat(
            raw.ping_interval.unwrap_or(Some(defaults::PING_INTERVAL)),
            raw.ping_timeout.unwrap_or(defaults::PONG_TIMEOUT),
        );
    }
    if raw.outbox_max_messages.is_some() || raw.outbox_max_bytes.is_some() {
        b = b.outbox_limits(
            raw.outbox_max_messages
                .unwrap_or(defaults::OUTBOX_MAX_MESSAGES),
            raw.outbox_max_bytes.unwrap_or(defaults::OUTBOX_MAX_BYTES),
        );
    }
    if raw.max_inbound_message_size.is_some() || raw.max_inbound_frame_size.is_some() {
        b = b.max_inbound_size(
            raw.max_inbound_message_size
                .unwrap_or(defaults::MAX_INBOUND_MESSAGE_SIZE),
            raw.max_inbound_frame_size
                .unwrap_or(defaults::MAX_INBOUND_FRAME_SIZE),
        );
    }
    if raw.ack_timeout.is_some() || raw.ack_retries.is_some() {
        b = b.ack_timeout(
            raw.ack_timeout.unwrap_or(defaults::ACK_TIMEOUT),
            raw.ack_retries.unwrap_or(defaults::ACK_RETRIES),
        );
    }
    let overflow_wait = match (raw.overflow.as_deref(), raw.overflow_timeout) {
        (None | Some("reject"), None) => false,
        (Some("drop_oldest"), None) => {
            b = b.overflow_policy(OverflowPolicy::DropOldest);
            false
        }
        (Some("wait"), timeout) => {
            b = b.overflow_policy(OverflowPolicy::Wait(
                timeout.unwrap_or(DEFAULT_OVERFLOW_TIMEOUT),
            ));
            true
        }
        (None | Some("reject" | "drop_oldest"), Some(_)) => {
            return Err(option_error(
                "overflow_timeout",
                "only meaningful with overflow=\"wait\"",
            ))
        }
        (Some(other), _) => {
            return Err(option_error(
                "overflow",
                format!("{other:?}: expected \"reject\", \"drop_oldest\" or \"wait\""),
            ))
        }
    };
    match (raw.tls_roots.as_deref(), raw.ca_file, raw.ca_pem) {
        (_, Some(_), Some(_)) => {
            return Err(option_error("ca_pem", "give ca_file or ca_pem, not both"))
        }
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(option_error(
                "tls_roots",
                "a custom CA (ca_file or ca_pem) replaces the root set; leave tls_roots out",
            ))
        }
        (_, Some(file), None) => b = b.tls_ca_file(file),
        (_, None, Some(pem)) => b = b.tls_roots(TlsRoots::CustomCa(pem)),
        (None, None, None) => {}
        (Some(r), None, None) => {
            let roots = match r {
                "system" => TlsRoots::System,
                "webpki" => TlsRoots::WebPki,
                other => {
                    let problem = format!("{other:?}: expected \"system\" or \"webpki\"");
                    return Err(option_error("tls_roots", problem));
                }
            };
            b = b.tls_roots(roots);
        }
    }
    let config = b.build().map_err(config_error)?;
    Ok(Parsed {
        config,
        capacity,
        subscribed,
        callbacks,
        overflow_wait,
        envelope,
    })
}

fn unknown(name: &str) -> PyErr {
    let best = NAMES
        .iter()
        .map(|n| (distance(name, n), *n))
        .min()
        .filter(|(d, _)| *d <= 3);
    let hint = match best {
        Some((_, n)) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    };
    crate::errors::config_message(
        name,
        format!(
            "unknown option `{name}`{hint}; the options are listed in help(tether.ClientOptions)"
        ),
    )
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn opt<T>(
    v: &Bound<'_, PyAny>,
    f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Option<T>> {
    if v.is_none() {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}

fn number(name: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(option_error(
            name,
            format!("expected a number, got {}", type_name(v)),
        ));
    }
    v.extract::<f64>()
        .map_err(|_| option_error(name, "expected a number"))
}

/// A duration in seconds (int or float, finite, >= 0).
pub(crate) fn seconds(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s = number(name, v)?;
    if !s.is_finite() || s < 0.0 {
        return Err(option_error(
            name,
            format!("{s} is not a duration in seconds (a finite number >= 0)"),
        ));
    }
    Duration::try_from_secs_f64(s)
        .map_err(|_| option_error(name, format!("{s} seconds is too long")))
}

fn uint(name: &str, v: &Bound<'_, PyAny>) -> PyResult<usize> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(option_error(
            name,
            format!("expected an int, got {}", type_name(v)),
        ));
    }
    v.extract::<usize>()
        .map_err(|_| option_error(name, format!("{v} is not a count (an int >= 0)")))
}

fn boolean(name: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !v.is_instance_of::<PyBool>() {
        return Err(option_error(
            name,
            format!("expected True or False, got {}", type_name(v)),
        ));
    }
    v.extract::<bool>()
}

fn string(name: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    if !v.is_instance_of::<PyString>() {
        return Err(option_error(
            name,
            format!("expected a str, got {}", type_name(v)),
        ));
    }
    v.extract::<String>()
}

fn bytes_or_str(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if v.is_instance_of::<PyString>() {
        return Ok(v.extract::<String>()?.into_bytes());
    }
    Err(option_error(
        name,
        format!("expected bytes or str, got {}", type_name(v)),
    ))
}

fn strings(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if v.is_instance_of::<PyString>() {
        return Err(option_error(
            name,
            "expected a list of str, not a single str",
        ));
    }
    let mut out = Vec::new();
    for item in v.try_iter().map_err(|_| {
        option_error(
            name,
            format!("expected a list of str, got {}", type_name(v)),
        )
    })? {
        out.push(string(name, &item?)?);
    }
    Ok(out)
}

/// `resolve=`: a mapping of host to a list of addresses (`{"example.com": ["10.0.0.7"]}`);
/// which host and which addresses are valid is the core's check.
fn resolve_entries(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<String>)>> {
    let m = v.cast::<PyMapping>().map_err(|_| {
        option_error(
            name,
            format!(
                "expected a dict of host to a list of addresses, got {}",
                type_name(v)
            ),
        )
    })?;
    let mut out = Vec::new();
    for item in m.items()?.try_iter()? {
        let (host, addrs): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.push((string(name, &host)?, strings(name, &addrs)?));
    }
    Ok(out)
}

/// Headers: a mapping, or an iterable of (name, value) pairs (for repeated names).
fn pairs(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = if let Ok(m) = v.cast::<PyMapping>() {
        m.items()?.into_any()
    } else {
        v.clone()
    };
    let mut out = Vec::new();
    let bad = || {
        option_error(
            name,
            "expected a dict of str to str, or a list of (name, value) pairs",
        )
    };
    for item in items.try_iter().map_err(|_| bad())? {
        let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract().map_err(|_| bad())?;
        out.push((string(name, &k)?, string(name, &val)?));
    }
    Ok(out)
}

fn callback(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    if v.is_none() {
        return Ok(None);
    }
    if !v.is_callable() {
        return Err(option_error(
            name,
            format!("expected a callable, got {}", type_name(v)),
        ));
    }
    Ok(Some(v.clone().unbind()))
}

/// `events=`: False/None (messages only), True (every event), or a collection of event classes.
fn events(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<u32> {
    if v.is_none() {
        return Ok(0);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(if v.extract::<bool>()? {
            Kind::ALL_EVENTS
        } else {
            0
        });
    }
    let t = types::get(py)?;
    let table: [(&Py<PyType>, u32); 10] = [
        (&t.ev_state_changed, Kind::State.bit()),
        (&t.ev_disconnected, Kind::Disconnected.bit()),
        (&t.ev_reconnecting, Kind::Reconnecting.bit()),
        (&t.ev_written, Kind::Written.bit()),
        (&t.ev_acked, Kind::Acked.bit()),
        (&t.ev_send_failed, Kind::SendFailed.bit()),
        (&t.ev_inbound_rejected, Kind::InboundRejected.bit()),
        (&t.ev_closed, Kind::Closed.bit()),
        (&t.ev_session_reset, Kind::SessionReset.bit()),
        (&t.ev_other, Kind::Other.bit()),
    ];
    let bad = || {
        option_error(
            "events",
            "expected True, False, or a collection of event classes (tether.Disconnected, ...)",
        )
    };
    let mut bits = 0;
    for item in v.try_iter().map_err(|_| bad())? {
        let item = item?;
        let cls = item.cast::<PyType>().map_err(|_| bad())?;
        if cls.is(t.ev_base.bind(py)) {
            // tether.Event, the base class: every event.
            bits |= Kind::ALL_EVENTS;
            continue;
        }
        match table.iter().find(|(c, _)| cls.is(c.bind(py))) {
            Some((_, bit)) => bits |= bit,
            None => {
                return Err(option_error(
                    "events",
                    format!("{} is not a tether event class", cls.name()?),
                ))
            }
        }
    }
    Ok(bits)
}
