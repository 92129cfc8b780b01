//! `tether.Client(url, **options)`: keyword options → `tether_core::ConfigBuilder`, through the
//! core's option table (`tether_core::options`).
//!
//! Each keyword is looked up in the table, its Python value converted by the option's kind (a
//! number of seconds, a bool, a str, ...; `None` where the option may be unset) and applied; the
//! range and consistency rules, the error texts and the option ids are all the core's. Only the
//! binding's own keywords (`events=` and the callbacks) are handled here. The option tables of
//! `docs/PYTHON.md` and the `ClientOptions` TypedDict in `tether/_types.py` are generated from
//! the same table (`cargo run -p tether-core --example options_doc -- --write`).

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyMapping, PyString, PyType};

use tether_core::{options, Config, ConfigBuilder, EventKind, OptionKind, OptionSpec, OptionValue};
use tether_core::{OverflowPolicy, Protocol};

use crate::errors::{config_error, option_error};
use crate::hub::{Callbacks, CALLBACKS};
use crate::types::{self, EVENT_CLASSES};

/// The outcome of parsing: a validated core config plus what the binding itself needs.
pub(crate) struct Parsed {
    pub config: Config,
    pub subscribed: Vec<EventKind>,
    pub callbacks: Callbacks,
    pub overflow_wait: bool,
    pub envelope: bool,
}

pub(crate) fn parse(
    py: Python<'_>,
    url: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<Parsed> {
    let mut b = ConfigBuilder::new(url);
    let mut subscribed = Vec::new();
    let mut callbacks = Callbacks::default();
    for (key, v) in options.into_iter().flat_map(|o| o.iter()) {
        let key: String = key.extract()?;
        let name = key.as_str();
        if let Some(spec) = options::find(name) {
            let value = convert(py, spec, &v)?;
            spec.apply(&mut b, value).map_err(config_error)?;
        } else if name == "events" {
            subscribed = events(py, &v)?;
        } else if let Some(i) = CALLBACKS.iter().position(|(n, _)| *n == name) {
            callbacks.0[i] = callback(name, &v)?;
        } else {
            return Err(unknown(name));
        }
    }
    let config = b.build().map_err(config_error)?;
    Ok(Parsed {
        subscribed,
        callbacks,
        overflow_wait: matches!(config.overflow_policy(), OverflowPolicy::Wait(_)),
        envelope: config.protocol() == Protocol::Envelope,
        config,
    })
}

/// A Python value → the core's value for `spec` (a shape error names the option).
fn convert(py: Python<'_>, spec: &OptionSpec, v: &Bound<'_, PyAny>) -> PyResult<OptionValue> {
    let name = spec.name;
    if spec.nullable && v.is_none() {
        return Ok(OptionValue::Unset);
    }
    Ok(match spec.kind {
        OptionKind::Bool => OptionValue::Bool(boolean(name, v)?),
        OptionKind::Count => OptionValue::Int(uint(name, v)? as u64),
        OptionKind::Number => OptionValue::Float(number(name, v)?),
        OptionKind::Duration => OptionValue::Duration(seconds(name, v)?),
        OptionKind::Text | OptionKind::Choice(_) => OptionValue::Text(string(name, v)?),
        OptionKind::Path => {
            let path = py
                .import("os")?
                .getattr("fspath")?
                .call1((v,))
                .map_err(|_| option_error(name, "expected a path (str or os.PathLike)"))?;
            OptionValue::Text(string(name, &path)?)
        }
        OptionKind::Bytes => OptionValue::Bytes(bytes_or_str(name, v)?),
        OptionKind::TextList => OptionValue::List(strings(name, v)?),
        OptionKind::Headers => OptionValue::Pairs(pairs(name, v)?),
        OptionKind::Resolve => OptionValue::Resolve(resolve_entries(name, v)?),
        _ => {
            return Err(option_error(
                name,
                "is not supported by this version of tether",
            ))
        }
    })
}

fn unknown(name: &str) -> PyErr {
    let best = options::all()
        .iter()
        .map(|o| o.name)
        .chain(CALLBACKS.iter().map(|(n, _)| *n))
        .chain(["events"])
        .map(|n| (distance(name, n), n))
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
fn events(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<EventKind>> {
    let every = || {
        EventKind::ALL
            .into_iter()
            .filter(|k| *k != EventKind::Message)
    };
    if v.is_none() || v.is_instance_of::<PyBool>() {
        return Ok(if v.is_truthy()? {
            every().collect()
        } else {
            Vec::new()
        });
    }
    let t = types::get(py)?;
    let bad = || {
        option_error(
            "events",
            "expected True, False, or a collection of event classes (tether.Disconnected, ...)",
        )
    };
    let mut kinds = Vec::new();
    for item in v.try_iter().map_err(|_| bad())? {
        let item = item?;
        let cls = item.cast::<PyType>().map_err(|_| bad())?;
        let is = |name: &str| t.class(py, name).is_ok_and(|c| cls.is(c));
        if is("Event") {
            // tether.Event, the base class: every event.
            kinds.extend(every());
        } else if let Some((_, kind)) = EVENT_CLASSES.iter().find(|(name, _)| is(name)) {
            kinds.extend(kind);
        } else {
            return Err(option_error(
                "events",
                format!("{} is not a tether event class", cls.name()?),
            ));
        }
    }
    Ok(kinds)
}
