//! `tether.Client(url, **options)`: keyword options → `tether_core::ConfigBuilder`, through the
//! core's option table (`tether_core::options`).
//!
//! Each keyword is looked up in the table, its Python value converted by the option's kind (a
//! number of seconds, a bool, a str, ...; `None` where the option may be unset) and applied; the
//! range and consistency rules, the error texts and the option ids are all the core's. Only the
//! binding's own keywords (`events=` and the callbacks) are handled here. The option tables of
//! `docs/PYTHON.md` and the `ClientOptions` TypedDict in `tether/_types.py` are generated from
//! the same table (`cargo run -p tether-core --example options_doc -- --write`).

use pyo3::prelude::*;
use pyo3::type_object::PyTypeCheck;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyMapping, PyString, PyType};

use tether_core::routing::Slot;
use tether_core::{options, Config, ConfigBuilder, EventKind, OptionKind, OptionSpec, OptionValue};
use tether_core::{ConnectAttempt, Credentials, OverflowPolicy, Protocol};

use crate::convert;
use crate::errors::{config_error, option_error};
use crate::hub::{log_exception, Callbacks, CALLBACKS};
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
        } else if name == "credentials" {
            if let Some(f) = callback(name, &v)? {
                b = b.credentials_provider(move |a| provider(&f, a));
            }
        } else if let Some((name, kind)) = CALLBACKS.iter().find(|(n, _)| *n == name) {
            let Some(f) = callback(name, &v)? else {
                continue;
            };
            match kind {
                Some(kind) => callbacks.set(Slot::Kind(*kind), (*name, f)),
                None => callbacks.set_catch_all((*name, f)),
            }
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

/// A Python value → the core's value for `spec` (a shape error names the option; ranges are
/// the core's check, durations included: they go as a number of seconds).
fn convert(py: Python<'_>, spec: &OptionSpec, v: &Bound<'_, PyAny>) -> PyResult<OptionValue> {
    let name = spec.name;
    if spec.nullable && v.is_none() {
        return Ok(OptionValue::Unset);
    }
    Ok(match spec.kind {
        OptionKind::Bool => OptionValue::Bool(typed::<PyBool, _>(name, v, "True or False")?),
        OptionKind::Count => OptionValue::Int(count(name, v)?),
        OptionKind::Number | OptionKind::Duration => OptionValue::Float(number(name, v)?),
        OptionKind::Text | OptionKind::Choice(_) => OptionValue::Text(string(name, v)?),
        OptionKind::Path => {
            let fspath = py.import("os")?.getattr("fspath")?;
            let path = fspath
                .call1((v,))
                .map_err(|_| option_error(name, "expected a path (str or os.PathLike)"))?;
            OptionValue::Text(string(name, &path)?)
        }
        OptionKind::Bytes => match v.cast::<PyBytes>() {
            Ok(b) => OptionValue::Bytes(b.as_bytes().to_vec()),
            Err(_) => OptionValue::Text(typed::<PyString, _>(name, v, "bytes or str")?),
        },
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
    let ours = CALLBACKS.iter().map(|(n, _)| *n);
    let ours = ours.chain(["events", "credentials"]);
    let hint = match options::closest(name, ours) {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    };
    crate::errors::config_message(
        name,
        format!(
            "unknown option `{name}`{hint}; the options are listed in help(tether.ClientOptions)"
        ),
    )
}

/// "expected `what`, got <type of v>".
fn expected(name: &str, what: &str, v: &Bound<'_, PyAny>) -> PyErr {
    let got = v
        .get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string());
    option_error(name, format!("expected {what}, got {got}"))
}

/// `v` as a `T` if it is an instance of `P` (exactly the Python type asked for).
fn typed<P: PyTypeCheck, T: for<'a, 'py> FromPyObject<'a, 'py>>(
    name: &str,
    v: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<T> {
    if !v.is_instance_of::<P>() {
        return Err(expected(name, what, v));
    }
    v.extract::<T>().map_err(Into::into)
}

fn number(name: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if v.is_instance_of::<PyBool>()
        || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>())
    {
        return Err(expected(name, "a number", v));
    }
    v.extract::<f64>()
        .map_err(|_| option_error(name, "expected a number"))
}

fn count(name: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
        return Err(expected(name, "an int", v));
    }
    v.extract::<u64>()
        .map_err(|_| option_error(name, format!("{v} is not a count (an int >= 0)")))
}

fn string(name: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    typed::<PyString, _>(name, v, "a str")
}

fn strings(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if v.is_instance_of::<PyString>() {
        return Err(option_error(
            name,
            "expected a list of str, not a single str",
        ));
    }
    let items = v
        .try_iter()
        .map_err(|_| expected(name, "a list of str", v))?;
    items.map(|item| string(name, &item?)).collect()
}

/// `resolve=`: a mapping of host to a list of addresses (`{"example.com": ["10.0.0.7"]}`);
/// which host and which addresses are valid is the core's check.
fn resolve_entries(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Vec<String>)>> {
    let what = "a dict of host to a list of addresses";
    let m = v.cast::<PyMapping>().map_err(|_| expected(name, what, v))?;
    let mut out = Vec::new();
    for item in m.items()?.try_iter()? {
        let (host, addrs): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        out.push((string(name, &host)?, strings(name, &addrs)?));
    }
    Ok(out)
}

/// Headers: a mapping, or an iterable of (name, value) pairs (for repeated names).
fn pairs(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let items = match v.cast::<PyMapping>() {
        Ok(m) => m.items()?.into_any(),
        Err(_) => v.clone(),
    };
    let bad = || {
        option_error(
            name,
            "expected a dict of str to str, or a list of (name, value) pairs",
        )
    };
    let mut out = Vec::new();
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
        return Err(expected(name, "a callable", v));
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
        let is = |name: &str| t.class(py, name).is_ok_and(|c| cls.is(&c));
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

/// `credentials=`: call the Python callable for one attempt (on the core's worker thread,
/// attached only for the call). What it raises, or returns that is not credentials, is logged
/// and fails the attempt (the core retries it).
fn provider(f: &Py<PyAny>, attempt: &ConnectAttempt) -> Result<Credentials, String> {
    let called = crate::with_python(|py| {
        let answer = convert::connect_attempt(py, attempt)
            .and_then(|a| f.call1(py, (a,)))
            .and_then(|c| credentials(c.bind(py)));
        answer.map_err(|e| {
            let text = e.to_string();
            log_exception(py, "credentials", e);
            text
        })
    });
    called.unwrap_or_else(|| Err("the interpreter is shutting down".into()))
}

/// A `tether.Credentials` mapping (`headers`, `token`), or None (nothing for this attempt).
fn credentials(v: &Bound<'_, PyAny>) -> PyResult<Credentials> {
    let mut out = Credentials::new();
    if v.is_none() {
        return Ok(out);
    }
    let m = v.cast::<PyMapping>().map_err(|_| {
        expected(
            "credentials",
            "a dict with \"headers\" and/or \"token\", or None",
            v,
        )
    })?;
    for item in m.items()?.try_iter()? {
        let (key, value): (String, Bound<'_, PyAny>) = item?.extract()?;
        match key.as_str() {
            "headers" => out.headers = pairs("credentials", &value)?,
            "token" => out.token = Some(string("credentials", &value)?),
            other => {
                return Err(option_error(
                    "credentials",
                    format!("unknown key {other:?}"),
                ))
            }
        }
    }
    Ok(out)
}
