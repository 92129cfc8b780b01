//! `tether.Client`: the Python handle on a core client.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyGenericAlias, PyMemoryView, PyString, PyTuple, PyType,
};
use pyo3::PyTraverseError;

use tether_core::{
    Bytes, DeliveryError, Disconnect, Event, EventDelivery, MessageId, NotReady, OptionValue,
    State, Want,
};

use crate::errors;
use crate::hub::{self, Hub};
use crate::options;
use crate::receipt::Receipt;
use crate::{convert, types};

/// How long a blocking wait sleeps between two checks for Ctrl-C.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// What the Python client object, its receipts and its asyncio bridge share.
pub(crate) struct Inner {
    pub core: tether_core::Client,
    pub hub: Arc<Hub>,
    pub envelope: bool,
    pub overflow_wait: bool,
}

/// Every live client, so that `atexit` can start closing them.
static LIVE: std::sync::Mutex<Vec<Weak<Inner>>> = std::sync::Mutex::new(Vec::new());

/// Start closing every client that is still alive (at exit; never waits).
pub(crate) fn close_all_live() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for inner in live.iter().filter_map(Weak::upgrade) {
        let _ = inner.start_close(1000, "");
    }
}

impl Inner {
    /// Start a graceful close (never waits). From now on the session only finishes what it
    /// has: it stops holding inbound messages back for room the application may never make
    /// (a full queue would keep the server's closing frame unread).
    pub(crate) fn start_close(&self, code: u16, reason: &str) -> PyResult<()> {
        self.core.close(code, reason).map_err(errors::classified)?;
        self.core.release_backpressure();
        Ok(())
    }

    /// True once nothing will change any more (the core's `is_finished`: closed, and in
    /// callback mode the `Closed` event handled, its callback included).
    pub(crate) fn finished(&self) -> bool {
        self.core.is_finished()
    }

    /// Move up to `max` items for `recv()` into `out`, waiting up to `wait` for the first,
    /// from the core's queue (in callback mode, what no callback took; events nobody
    /// subscribed to are dropped, all that come before the first item). Returns true when the
    /// stream has ended (the core's `take_events`). Call without the GIL to wait.
    pub(crate) fn take(&self, max: usize, wait: Duration, out: &mut Vec<Event>) -> bool {
        self.core
            .take_events(out, max, wait, &|e| self.hub.wanted(e))
    }

    /// `Some(Ok)` when `id` reached `want`, `Some(Err)` when it never will, `None` while
    /// pending (the core's `delivery_outcome`).
    pub(crate) fn outcome(&self, py: Python<'_>, id: u64, want: Want) -> Option<PyResult<()>> {
        let mid = MessageId(id);
        let outcome = self.core.delivery_outcome(mid, want)?;
        Some(outcome.map_err(|e| match e {
            DeliveryError::NotSupported => errors::not_supported(py),
            DeliveryError::Failed(f) => errors::delivery_failed(py, mid, &f),
            _ => errors::unknown_id(py, mid),
        }))
    }

    /// The reason the client closed, once it has.
    pub(crate) fn close_reason(&self) -> Option<Disconnect> {
        self.core.close_reason()
    }

    /// Why `wait_ready` cannot succeed any more (the client closed first: the core's
    /// `wait_ready`), or None.
    fn not_ready_error(&self, py: Python<'_>) -> Option<PyErr> {
        match self.core.wait_ready(Duration::ZERO) {
            Err(NotReady::Closed(reason)) => Some(errors::disconnect_error(
                py,
                &reason,
                "the client closed before it was ready",
            )),
            _ => None,
        }
    }
}

/// The process that created the first client. The I/O runtime's threads do not survive
/// `fork()`: in a child forked after that, a client would never connect, so refuse clearly.
static FIRST_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

fn check_not_forked(py: Python<'_>) -> PyResult<()> {
    let pid = std::process::id();
    if *FIRST_PID.get_or_init(|| pid) == pid {
        return Ok(());
    }
    Err(errors::make(
        py,
        "TetherError",
        "this process was forked from one that had already created tether clients: Tether's \
         I/O threads do not survive fork(). Create clients only in the child (or use the \
         \"spawn\" start method of multiprocessing)"
            .to_owned(),
        &[],
    ))
}

/// A timeout argument in seconds: None (no limit) or a finite number >= 0.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let Some(t) = timeout else { return Ok(None) };
    // Refuses negative, NaN, infinite and too large values.
    let bad = || PyValueError::new_err(format!("timeout must be None or seconds >= 0, got {t}"));
    let d = Duration::try_from_secs_f64(t).map_err(|_| bad())?;
    Ok(Some(Instant::now().checked_add(d).ok_or_else(bad)?))
}

/// The time left before `deadline`, capped at one slice; `None` once it has passed.
fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()));
    (!left.is_zero()).then(|| left.min(SLICE))
}

/// Wait until `check` answers, sleeping without the GIL until the core reports a change and
/// checking for signals (Ctrl-C) between slices; `TimeoutError(timed_out())` when `timeout`
/// runs out. Consumes no events.
pub(crate) fn block_until<T>(
    py: Python<'_>,
    inner: &Inner,
    (timeout, timed_out): (Option<f64>, impl FnOnce() -> String),
    what: &str,
    mut check: impl FnMut(Python<'_>) -> PyResult<Option<T>>,
) -> PyResult<T> {
    let deadline = deadline(timeout)?;
    loop {
        let seen = inner.core.changes();
        if let Some(v) = check(py)? {
            return Ok(v);
        }
        if inner.core.in_handler() {
            return Err(errors::in_callback(what));
        }
        let Some(slice) = next_slice(deadline) else {
            return Err(errors::timeout(timed_out()));
        };
        py.detach(|| inner.core.wait_change(seen, slice));
        py.check_signals()?;
    }
}

/// Read up to `max` items for `recv()`: `Ok(items)` (at least one), or `Err(reason)` once
/// the client is finished and everything has been read.
fn read(
    py: Python<'_>,
    inner: &Inner,
    timeout: Option<f64>,
    what: &str,
    max: usize,
) -> PyResult<Result<Vec<Event>, Option<Disconnect>>> {
    let deadline = deadline(timeout)?;
    let on_dispatcher = inner.core.in_handler();
    let mut out = Vec::new();
    loop {
        let slice = next_slice(deadline);
        let wait = slice.filter(|_| !on_dispatcher).unwrap_or(Duration::ZERO);
        let finished = if wait.is_zero() {
            inner.take(max, wait, &mut out)
        } else {
            py.detach(|| inner.take(max, wait, &mut out))
        };
        if !out.is_empty() {
            return Ok(Ok(out));
        }
        if finished {
            return Ok(Err(inner.close_reason()));
        }
        if on_dispatcher {
            return Err(errors::in_callback(what));
        }
        if slice.is_none() {
            return Err(errors::timeout(format!("{what} timed out")));
        }
        py.check_signals()?;
    }
}

fn to_py(py: Python<'_>, items: Vec<Event>) -> PyResult<Vec<Py<PyAny>>> {
    items.iter().map(|e| convert::event(py, e)).collect()
}

/// Whether iteration ends quietly for a client closed for `reason`: a normal end (the core's
/// one definition), or no reason known.
fn ends_quietly(reason: Option<&Disconnect>) -> bool {
    reason.is_none_or(Disconnect::is_normal)
}

/// Payload of `send`: `str` → text; `bytes`, `bytearray`, `memoryview` → binary.
pub(crate) enum Payload {
    Text(String),
    Binary(Bytes),
}

impl Payload {
    pub(crate) fn from_py(data: &Bound<'_, PyAny>) -> PyResult<Payload> {
        if let Ok(s) = data.cast::<PyString>() {
            return Ok(Payload::Text(s.to_cow()?.into_owned()));
        }
        if data.is_instance_of::<PyBytes>() || data.is_instance_of::<PyByteArray>() {
            // Zero copy for `bytes`: the core writes straight from the Python object.
            let backed: PyBackedBytes = data.extract()?;
            return Ok(Payload::Binary(Bytes::from_owner(backed)));
        }
        if data.is_instance_of::<PyMemoryView>() {
            let b = data.call_method0("tobytes")?;
            let backed: PyBackedBytes = b.extract()?;
            return Ok(Payload::Binary(Bytes::from_owner(backed)));
        }
        Err(PyTypeError::new_err(format!(
            "send() takes str (a text message) or bytes, bytearray, memoryview (a binary message), \
             not {}; use send_json() for other objects",
            data.get_type().name()?
        )))
    }
}

/// A resilient WebSocket client (blocking API; `tether.AsyncClient` is the asyncio one).
///
/// It starts connecting at once, in the background, and reconnects by itself. `send(data)`
/// queues a message (`str`: text, bytes-like: binary) and returns its `Receipt` (the message
/// id), or raises why nothing was queued. `recv()`, `recv_many()` and iteration return
/// messages (`str` or `bytes`) and, with `events=`, event objects. `wait_ready()`,
/// `close()`, `stats()`, `state`; `with` closes on exit. Blocking calls release the GIL and
/// can be interrupted with Ctrl-C.
///
/// Options (keywords; durations in seconds): see `help(tether.ClientOptions)` and
/// docs/PYTHON.md. A bad URL or option raises `tether.ConfigError` (a `ValueError`).
#[pyclass(module = "tether", name = "Client", frozen, subclass, weakref)]
pub(crate) struct Client {
    pub(crate) inner: Arc<Inner>,
    url: String,
}

impl Client {
    pub(crate) fn start(
        py: Python<'_>,
        url: &str,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Arc<Inner>> {
        check_not_forked(py)?;
        let parsed = options::parse(py, url, options)?;
        crate::log::refresh_level(py);
        let hub = Arc::new(Hub::new(parsed.subscribed, parsed.callbacks));
        let delivery = if hub.poll {
            EventDelivery::Poll
        } else {
            let routing_hub = hub.clone();
            EventDelivery::routed(move |event| routing_hub.route(event))
        };
        let core =
            tether_core::Client::connect(parsed.config, delivery).map_err(errors::start_error)?;
        let inner = Arc::new(Inner {
            core,
            hub: hub.clone(),
            envelope: parsed.envelope,
            overflow_wait: parsed.overflow_wait,
        });
        // The core's cue to re-check: wakes the waits and the asyncio side (no GIL). Once the
        // Python client is gone there is nothing left to wait for but the end.
        let weak = Arc::downgrade(&inner);
        let io_hub = hub.clone();
        inner.core.set_change_hook(Some(Arc::new(move || {
            hub.changed(weak.upgrade().is_none_or(|i| i.finished()))
        })));
        inner
            .core
            .set_io_hook(Some(Arc::new(move || io_hub.io_wanted())));
        let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&inner));
        drop(live);
        Ok(inner)
    }

    pub(crate) fn send_payload(&self, py: Python<'_>, payload: Payload) -> PyResult<Receipt> {
        let inner = &self.inner;
        let send = || match payload {
            Payload::Text(t) => inner.core.send_text(t),
            Payload::Binary(b) => inner.core.send_binary(b),
        };
        // `overflow="wait"` may block until there is room: without the GIL.
        let sent = if inner.overflow_wait {
            py.detach(send)
        } else {
            send()
        };
        let id = sent.map_err(errors::send_error)?;
        Ok(Receipt::new(id.0, Arc::downgrade(inner)))
    }

    /// The next item for `recv()`, or the reason the client closed.
    fn next_item(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Result<Py<PyAny>, Option<Disconnect>>> {
        Ok(match read(py, &self.inner, timeout, "recv()", 1)? {
            Ok(items) => Ok(convert::event(py, &items[0])?),
            Err(reason) => Err(reason),
        })
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (url, **options))]
    fn new(py: Python<'_>, url: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let inner = Client::start(py, url, options)?;
        Ok(Client {
            inner,
            url: url.trim().to_owned(),
        })
    }

    /// `Client[str | bytes]` in annotations evaluated at run time.
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyGenericAlias::new(cls.py(), cls.as_any(), item)?.into_any())
    }

    /// The server URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The connection state now (a `tether.State`).
    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::state(py, self.inner.core.state())
    }

    /// True once the client is closed for good.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.core.state() == State::Closed
    }

    /// "raw" or "envelope".
    #[getter]
    fn protocol(&self) -> &'static str {
        if self.inner.envelope {
            "envelope"
        } else {
            "raw"
        }
    }

    /// The envelope session id (stable across reconnects).
    #[getter]
    fn session_id(&self) -> &str {
        self.inner.core.config().session_id()
    }

    /// Envelope mode: this client's stream epoch (16 hex digits, new for every client).
    #[getter]
    fn epoch(&self) -> &str {
        self.inner.core.epoch()
    }

    /// Envelope mode: the server's stream epoch from the last welcome (None before the first
    /// one, and with a revision-1 server).
    #[getter]
    fn server_epoch(&self) -> Option<String> {
        self.inner.core.server_epoch()
    }

    /// Queue a message: `str` is sent as a text message, `bytes`/`bytearray`/`memoryview` as a
    /// binary one. Returns its `Receipt` (the message id), or raises why nothing was queued.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Receipt> {
        self.send_payload(py, Payload::from_py(data)?)
    }

    /// `send(json.dumps(obj))` as a text message (compact separators, UTF-8 kept as is).
    fn send_json(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Receipt> {
        let t = types::get(py)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("separators", (",", ":"))?;
        kwargs.set_item("ensure_ascii", false)?;
        let text = t.json_dumps.bind(py).call((obj,), Some(&kwargs))?;
        let text = text.cast::<PyString>()?.to_cow()?.into_owned();
        self.send_payload(py, Payload::Text(text))
    }

    /// The next message (`str` or `bytes`) or subscribed event, waiting up to `timeout`
    /// seconds (None: no limit). Raises `TimeoutError`, or `ClosedError` once the client is
    /// closed and everything queued has been read.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        match self.next_item(py, timeout)? {
            Ok(item) => Ok(item),
            Err(reason) => Err(errors::closed_error(py, reason.as_ref())),
        }
    }

    /// Like `recv`, but returns every item already queued (at least one, at most `max`) as a
    /// list: fewer calls when messages arrive fast.
    #[pyo3(signature = (max=1024, timeout=None))]
    fn recv_many(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        match read(py, &self.inner, timeout, "recv_many()", max.max(1))? {
            Ok(items) => to_py(py, items),
            Err(reason) => Err(errors::closed_error(py, reason.as_ref())),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.next_item(py, None)? {
            Ok(item) => Ok(Some(item)),
            Err(reason) if ends_quietly(reason.as_ref()) => Ok(None),
            Err(reason) => Err(errors::closed_error(py, reason.as_ref())),
        }
    }

    /// Wait until the client is ready (connected, handshake done), up to `timeout` seconds.
    /// Raises `TimeoutError`, or `ConnectError` (or `ClosedError`) if the client closed for
    /// good first. Sending does not need this: messages queue until the link is ready.
    #[pyo3(signature = (timeout=None))]
    fn wait_ready(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let inner = &self.inner;
        let timed_out = || {
            let why = inner.core.last_disconnect();
            let why = why
                .map(|d| format!("; last failure: {d}"))
                .unwrap_or_default();
            let state = inner.core.state();
            format!(
                "not ready within {}s (state: {state}){why}",
                timeout.unwrap_or_default()
            )
        };
        block_until(
            py,
            inner,
            (timeout, timed_out),
            "wait_ready()",
            |py| match inner.core.wait_ready(Duration::ZERO) {
                Ok(()) => Ok(Some(())),
                Err(_) => inner.not_ready_error(py).map_or(Ok(None), Err),
            },
        )
    }

    /// Close gracefully: refuse new sends, drain the outbox (up to `close_timeout`), send a
    /// close frame with `code` (1000 or 3000-4999) and `reason`, and wait up to `timeout`
    /// seconds (None: as long as it takes) for the close to finish. Messages that could not
    /// be written are reported (`SendFailed` events, failed receipts). Closing twice is fine.
    /// Inside a callback this only starts the close.
    #[pyo3(signature = (code=1000, reason="", timeout=None))]
    fn close(&self, py: Python<'_>, code: u16, reason: &str, timeout: Option<f64>) -> PyResult<()> {
        let inner = &self.inner;
        deadline(timeout)?; // a bad timeout is refused before anything starts
        inner.start_close(code, reason)?;
        if inner.core.in_handler() {
            return Ok(());
        }
        // Wait for the Closed event to be fully handled (its callback included): after this
        // returns no callback of this client runs any more.
        let timed_out = || "close() timed out; the close goes on in the background".into();
        block_until(py, inner, (timeout, timed_out), "close()", |_| {
            Ok(inner.finished().then_some(()))
        })
    }

    /// What the last connection negotiated (a `tether.ConnectionInfo`), None before the first.
    #[getter]
    fn connection_info(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let info = self.inner.core.connection_info();
        info.map(|i| convert::connection_info(py, &i)).transpose()
    }

    /// A snapshot of the counters (a `tether.Stats`).
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        convert::stats(py, &self.inner.core.stats())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let wait = self.inner.core.close_bound().as_secs_f64();
        match self.close(py, 1000, "", Some(wait)) {
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) => {
                let url = &self.url;
                let message = format!(
                    "close of {url} did not finish within {wait:.1}s; it goes on in the background"
                );
                hub::log(py, "warning", &message);
                Ok(false)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(false),
        }
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let t = types::get(slf.py())?;
        t.aio.bind(slf.py()).call_method1("_aenter", (slf,))
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = types::get(slf.py())?;
        let handle = Handle::for_inner(&slf.get().inner);
        t.aio.bind(slf.py()).call_method1("_aexit", (handle,))
    }

    /// The handle the asyncio layer uses (private).
    fn _handle(&self) -> Handle {
        Handle::for_inner(&self.inner)
    }

    fn __repr__(&self) -> String {
        format!("<tether.Client {} {}>", self.url, self.inner.core.state())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.inner.hub.traverse(&visit)
    }

    fn __clear__(&self) {
        let _dropped = self.inner.hub.clear();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The Python object is gone: release its Python objects and let the dispatcher run
        // free; dropping the core handle (with the last Arc) starts a graceful close.
        let _dropped = self.inner.hub.detach(self.inner.finished());
    }
}

/// What `tether/_aio.py` uses: non-blocking checks and the bridge's wake-up, with the client
/// held weakly so an asyncio bridge never keeps a client alive.
#[pyclass(module = "tether._tether", name = "_Handle", frozen)]
pub(crate) struct Handle {
    hub: Arc<Hub>,
    inner: Weak<Inner>,
}

impl Handle {
    pub(crate) fn for_inner(inner: &Arc<Inner>) -> Handle {
        Handle {
            hub: inner.hub.clone(),
            inner: Arc::downgrade(inner),
        }
    }

    fn inner(&self, py: Python<'_>) -> PyResult<Arc<Inner>> {
        self.inner
            .upgrade()
            .ok_or_else(|| errors::closed_error(py, None))
    }
}

#[pymethods]
impl Handle {
    /// The core's change count (0 once the client is gone).
    fn generation(&self) -> u64 {
        self.inner.upgrade().map_or(0, |i| i.core.changes())
    }

    /// Arm the bridge's one-shot wake-up for the next change after `seen`: 1 armed, 0 there
    /// already was a change (re-check now), 2 no bridge any more (closed, or the client gone).
    fn arm(&self, seen: u64) -> u8 {
        let answer = match self.inner.upgrade() {
            Some(inner) => self.hub.arm(seen, || inner.core.changes()),
            None => hub::Arm::Gone,
        };
        answer as u8
    }

    fn bridge(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.hub.bridge(py)
    }

    /// Install `bridge`; False if refused (closed: no wake-up will be needed).
    fn set_bridge(&self, bridge: Py<PyAny>) -> bool {
        // Whatever is dropped here is dropped while attached (we are in a Python call).
        self.hub.set_bridge(bridge, self.is_closed()).is_ok()
    }

    /// Wake the bridge through a new socket from now on: returns its read end for the event
    /// loop to watch (`loop.add_reader`), or None where there is no such socket (not Unix).
    fn wake_pipe(&self) -> PyResult<Option<WakeReader>> {
        match tether_core::wake::wake_pipe() {
            Ok((reader, writer)) => {
                self.hub.set_wake_pipe(Some(Arc::new(writer)));
                Ok(Some(WakeReader(reader)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(None),
            Err(e) => Err(pyo3::exceptions::PyOSError::new_err(e.to_string())),
        }
    }

    /// Wake the bridge with `_wake_threadsafe` again (the loop cannot watch a socket).
    fn drop_wake_pipe(&self) {
        self.hub.set_wake_pipe(None);
    }

    /// Something to read, or finished (`drain` would find something, or nothing ever). An
    /// event nobody subscribed to counts too: the `drain` it wakes drops it.
    fn readable(&self) -> bool {
        self.inner
            .upgrade()
            .is_none_or(|i| i.core.pending_events() > 0 || i.finished())
    }

    /// Ready, or closed for good (`ready()` then answers or raises).
    fn ready_or_closed(&self) -> bool {
        self.inner
            .upgrade()
            .is_none_or(|i| i.core.state() == State::Ready || i.finished())
    }

    /// How long a graceful close may take, in seconds (the core's `close_bound`).
    fn close_bound(&self) -> f64 {
        self.inner
            .upgrade()
            .map_or(0.0, |i| i.core.close_bound().as_secs_f64())
    }

    /// Up to `max` items for `recv()` (possibly none), without waiting.
    fn drain(&self, py: Python<'_>, max: usize) -> PyResult<Vec<Py<PyAny>>> {
        let mut out = Vec::new();
        if let Some(inner) = self.inner.upgrade() {
            inner.take(max, Duration::ZERO, &mut out);
        }
        to_py(py, out)
    }

    /// Closed for good with nothing left to read: None while open or while items remain;
    /// else True when iteration should end quietly, False when it should raise
    /// (`closed_error()` builds the exception).
    fn finished(&self) -> Option<bool> {
        let inner = self.inner.upgrade()?;
        inner
            .core
            .is_drained()
            .then(|| ends_quietly(inner.close_reason().as_ref()))
    }

    fn closed_error(&self, py: Python<'_>) -> Py<PyAny> {
        let reason = self.inner.upgrade().and_then(|i| i.close_reason());
        errors::closed_error(py, reason.as_ref())
            .into_value(py)
            .into_any()
    }

    /// True when ready, False if not yet; raises if the client closed before it was ready.
    fn ready(&self, py: Python<'_>) -> PyResult<bool> {
        let inner = self.inner(py)?;
        match inner.not_ready_error(py) {
            Some(e) => Err(e),
            None => Ok(inner.core.state() == State::Ready),
        }
    }

    fn last_disconnect(&self) -> Option<String> {
        let inner = self.inner.upgrade()?;
        inner.core.last_disconnect().map(|d| d.to_string())
    }

    fn state_name(&self) -> &'static str {
        match self.inner.upgrade() {
            Some(i) => i.core.state().as_str(),
            None => "closed",
        }
    }

    /// True once nothing will change any more (see `Inner::finished`), or the client is gone.
    fn is_closed(&self) -> bool {
        self.inner.upgrade().is_none_or(|i| i.finished())
    }

    #[pyo3(signature = (code=1000, reason=""))]
    fn start_close(&self, code: u16, reason: &str) -> PyResult<()> {
        match self.inner.upgrade() {
            Some(inner) => inner.start_close(code, reason),
            // The client object is gone and its close already started.
            None => Ok(()),
        }
    }

    /// Caller-driven I/O (`io_driver="caller"`): 0 no, 1 with a keeper thread, 2 without one
    /// (then only the event loop runs the client's timers).
    fn caller_driven(&self) -> u8 {
        let Some(inner) = self.inner.upgrade() else {
            return 0;
        };
        let keeper = inner.core.config().get("keeper_after") != Some(OptionValue::Unset);
        match (inner.core.is_caller_driven(), keeper) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => 2,
        }
    }

    /// The live link's number, or None (see `Client::io_link`).
    fn io_link(&self) -> Option<u64> {
        self.inner.upgrade().and_then(|i| i.core.io_link())
    }

    /// `(link number, fd)`: a duplicate of the live link's socket, the caller's to watch and
    /// to `os.close` (see `Client::io_socket`); None while no link is up, or not on Unix.
    fn io_socket(&self) -> Option<(u64, i64)> {
        #[cfg(unix)]
        {
            use std::os::fd::IntoRawFd;
            let (link, fd) = self.inner.upgrade()?.core.io_socket()?;
            Some((link, i64::from(fd.into_raw_fd())))
        }
        #[cfg(not(unix))]
        None
    }

    /// Run one non-blocking I/O pass on this thread now (see `Client::drive_now`).
    fn drive(&self) -> bool {
        self.inner.upgrade().is_some_and(|i| i.core.drive_now())
    }

    /// A send waits for a driver; reading is paused for room (see the core's methods).
    fn io_wants(&self) -> (bool, bool) {
        self.inner.upgrade().map_or((false, false), |i| {
            (i.core.send_pending(), i.core.reading_paused())
        })
    }

    /// Where receipt `id` stands for `want` (0 written, 1 acked): None while pending, True
    /// when done, or the exception to raise.
    fn outcome(&self, py: Python<'_>, id: u64, want: u8) -> Option<Py<PyAny>> {
        let want = [Want::Written, Want::Acked][usize::from(want != 0)];
        let outcome = match self.inner.upgrade() {
            Some(inner) => inner.outcome(py, id, want)?,
            None => Err(errors::closed_error(py, None)),
        };
        Some(match outcome {
            Ok(()) => PyBool::new(py, true).to_owned().into_any().unbind(),
            Err(e) => e.into_value(py).into_any(),
        })
    }
}

/// The read end of an asyncio bridge's wake-up socket (see `Handle.wake_pipe`).
#[pyclass(module = "tether._tether", name = "_WakeReader", frozen)]
pub(crate) struct WakeReader(tether_core::wake::WakeReader);

#[pymethods]
impl WakeReader {
    fn fileno(&self) -> i64 {
        self.0.fd()
    }

    /// Read every pending wake-up byte (never blocks).
    fn drain(&self) {
        self.0.drain();
    }
}
