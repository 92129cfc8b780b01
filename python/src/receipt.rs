//! `tether.Receipt`: the message id `send` returns, and the ways to wait for its fate.

use std::sync::{Arc, Weak};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use tether_core::{MessageId, Want};

use crate::client::{block_until, Handle, Inner};
use crate::errors;
use crate::types;

/// The id of an accepted message (1, 2, 3, ... in send order), usable as an `int`, and the
/// ways to learn its fate: `wait()` / `await receipt.acked()` for the server's ack (envelope
/// mode), `wait_written()` / `await receipt.written()` for "written to the socket" (both
/// modes); `await receipt` for the strongest of the two the mode gives.
#[pyclass(module = "tether", name = "Receipt", frozen)]
pub(crate) struct Receipt {
    id: u64,
    inner: Weak<Inner>,
}

impl Receipt {
    pub(crate) fn new(id: u64, inner: Weak<Inner>) -> Receipt {
        Receipt { id, inner }
    }

    fn inner(&self, py: Python<'_>) -> PyResult<Arc<Inner>> {
        self.inner
            .upgrade()
            .ok_or_else(|| errors::closed_error(py, None))
    }

    fn future<'py>(&self, py: Python<'py>, want: Want) -> PyResult<Bound<'py, PyAny>> {
        let t = types::get(py)?;
        let handle = Handle::for_inner(&self.inner(py)?);
        t.aio.bind(py).call_method1(
            "_receipt_future",
            (handle, self.id, u8::from(want == Want::Acked)),
        )
    }

    /// Block (GIL released) until the message reaches `want` or never will.
    fn block(&self, py: Python<'_>, timeout: Option<f64>, what: &str, want: Want) -> PyResult<()> {
        let inner = self.inner(py)?;
        let id = MessageId(self.id);
        let timed_out = || match want {
            Want::Acked => format!("message {id}: timed out waiting for the ack"),
            _ => format!("{what} timed out"),
        };
        block_until(py, &inner, (timeout, timed_out), what, |py| {
            inner.outcome(py, self.id, want).transpose()
        })
    }
}

#[pymethods]
impl Receipt {
    /// The message id.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    /// "queued", "written", "acked", "failed" or "unknown" (too old to remember, or the
    /// client is gone).
    #[getter]
    fn status(&self) -> &'static str {
        let status = self
            .inner
            .upgrade()
            .map(|i| i.core.delivery_status(MessageId(self.id)));
        status.map_or("unknown", |s| s.as_str())
    }

    /// Block until the server acknowledges the message (envelope mode), up to `timeout`
    /// seconds. Raises `DeliveryFailed` (with `.reason`) if it never will be, `TimeoutError`,
    /// or `NotSupportedError` in raw mode (use `wait_written()` there).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        if self.inner(py)?.core.in_handler() {
            return Err(errors::in_callback("Receipt.wait()"));
        }
        self.block(py, timeout, "Receipt.wait()", Want::Acked)
    }

    /// Block until the message has been written to the socket (both modes), up to `timeout`
    /// seconds. Raises `DeliveryFailed` if it never will be, or `TimeoutError`. Written is not
    /// delivered: the link may still break before the server reads it.
    #[pyo3(signature = (timeout=None))]
    fn wait_written(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.block(py, timeout, "Receipt.wait_written()", Want::Written)
    }

    /// An awaitable that resolves when the server acknowledges the message (envelope mode;
    /// `await receipt` is the same there). Raises like `wait()`. Call it inside a running event loop.
    fn acked<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.future(py, Want::Acked)
    }

    /// An awaitable that resolves when the message has been written (both modes).
    fn written<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.future(py, Want::Written)
    }

    /// `await receipt`: the strongest guarantee the mode gives (the core's `Want::Acked`):
    /// acked by the server in envelope mode, written to the socket in raw mode.
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let want = if self.inner(py)?.envelope {
            Want::Acked
        } else {
            Want::Written
        };
        self.future(py, want)?.call_method0("__await__")
    }

    fn __int__(&self) -> u64 {
        self.id
    }

    fn __index__(&self) -> u64 {
        self.id
    }

    fn __hash__(&self) -> u64 {
        // Equal to hash(int(self)) for ids below 2**61 - 1 (the modulus of int hashing).
        self.id
    }

    /// Compares like the id as an `int` (with receipts and ints; bool is no id).
    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let other = match other.cast::<Receipt>() {
            Ok(r) => r.get().id.into_pyobject(py)?.into_any(),
            Err(_) if other.is_instance_of::<PyInt>() && !other.is_instance_of::<PyBool>() => {
                other.clone()
            }
            Err(_) => return Ok(py.NotImplemented()),
        };
        let me = self.id.into_pyobject(py)?;
        Ok(me.rich_compare(other, op)?.unbind())
    }

    fn __repr__(&self) -> String {
        format!("Receipt({})", self.id)
    }
}
