//! The Python classes this module creates instances of (exceptions, events, `State`, `Stats`,
//! ...). They are plain Python (`tether/_types.py`): that gives real multiple inheritance for
//! the exceptions (`ConfigError` is also a `ValueError`), dataclasses for the events, and
//! readable source. `tether/__init__.py` hands the module to `_init` once, at import.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use tether_core::{EventKind, State};

/// The event classes and the kind each stands for (`OtherEvent`: none).
pub(crate) const EVENT_CLASSES: [(&str, Option<EventKind>); 10] = [
    ("StateChanged", Some(EventKind::State)),
    ("Disconnected", Some(EventKind::Disconnected)),
    ("Reconnecting", Some(EventKind::Reconnecting)),
    ("Written", Some(EventKind::Written)),
    ("Acked", Some(EventKind::Acked)),
    ("SendFailed", Some(EventKind::SendFailed)),
    ("InboundRejected", Some(EventKind::InboundRejected)),
    ("Closed", Some(EventKind::Closed)),
    ("SessionReset", Some(EventKind::SessionReset)),
    ("OtherEvent", None),
];

pub(crate) struct Types {
    /// `tether._types`.
    module: Py<PyAny>,
    /// `tether.State` members, in the order of `tether_core::State`'s discriminants.
    pub states: Vec<Py<PyAny>>,
    pub json_dumps: Py<PyAny>,
    pub logger: Py<PyAny>,
    pub aio: Py<PyAny>,
}

impl Types {
    /// The class `tether._types.<name>`.
    pub(crate) fn class<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
        Ok(self.module.bind(py).getattr(name)?.cast_into::<PyType>()?)
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

/// Register the Python side: `types` is `tether._types`, `aio` is `tether._aio`.
#[pyfunction]
pub(crate) fn _init(
    py: Python<'_>,
    types: &Bound<'_, PyAny>,
    aio: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let state = types.getattr("State")?;
    let states = (0..)
        .map_while(State::from_repr)
        .map(|s| Ok(state.call1((s.as_str(),))?.unbind()))
        .collect::<PyResult<Vec<_>>>()?;
    let logging = py.import("logging")?;
    let registered = Types {
        module: types.clone().unbind(),
        states,
        json_dumps: py.import("json")?.getattr("dumps")?.unbind(),
        logger: logging.getattr("getLogger")?.call1(("tether",))?.unbind(),
        aio: aio.clone().unbind(),
    };
    // A second `_init` (importlib.reload) keeps the first registration.
    let _ = TYPES.set(py, registered);
    Ok(())
}
