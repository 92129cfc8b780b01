//! The hub: what the Python side of one client keeps besides the core client.
//!
//! * Callback mode: the core delivers events routed (`EventDelivery::Routed`) on its
//!   dispatcher thread, to [`Hub::route`]: the user's callback for the event's kind runs
//!   (taking the GIL only around the call; an exception is logged to the `tether` logger and
//!   the client carries on); an event no callback takes but `recv()` wants (a message without
//!   `on_message`, an `events=` kind) goes back to the core, which keeps it for `recv()` (a
//!   message keeps its room in `event_queue_capacity`: inbound messages are buffered once).
//! * The core calls [`Hub::changed`] (its change hook) after every change: it fires the armed
//!   asyncio wake-up (one byte written to the bridge's wake-up socket, no GIL). Blocking waits
//!   sleep on the core's change count (`Client::wait_change`) and re-check the core.
//!
//! Lock discipline: `st` is never held while taking the GIL or running Python code, so a thread
//! that holds the GIL may always take it.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use tether_core::routing::Routes;
use tether_core::wake::WakeWriter;
use tether_core::{Event, EventKind};

use crate::{convert, types, with_python};

/// The callback keywords and the kind each takes; `on_event` (last) is the catch-all (every
/// kind without a callback of its own, except messages: core's `routing::Routes`).
pub(crate) const CALLBACKS: [(&str, Option<EventKind>); 10] = [
    ("on_message", Some(EventKind::Message)),
    ("on_state", Some(EventKind::State)),
    ("on_disconnected", Some(EventKind::Disconnected)),
    ("on_reconnecting", Some(EventKind::Reconnecting)),
    ("on_written", Some(EventKind::Written)),
    ("on_acked", Some(EventKind::Acked)),
    ("on_send_failed", Some(EventKind::SendFailed)),
    ("on_closed", Some(EventKind::Closed)),
    ("on_session_reset", Some(EventKind::SessionReset)),
    ("on_event", None),
];

/// The user's callbacks with their keywords, routed by the core's rules. Immutable once the
/// client is built.
pub(crate) type Callbacks = Routes<(&'static str, Py<PyAny>)>;

#[derive(Default)]
struct HubState {
    /// The Python client is gone: no bridge is installed any more.
    detached: bool,
    /// The asyncio bridge wants one wake-up at the next change.
    waker_armed: bool,
    /// The asyncio bridge (`tether._aio._Bridge`), whose `_wake_threadsafe` is the waker
    /// unless `wake_pipe` is set.
    bridge: Option<Py<PyAny>>,
    /// The write end of the bridge's wake-up socket (the event loop watches the read end).
    wake_pipe: Option<Arc<WakeWriter>>,
    /// The event loop's thread (the one that installed the bridge): a change made there (it
    /// drives a caller-driven client) is a `call_soon`, not a write to the wake-up socket.
    loop_thread: Option<std::thread::ThreadId>,
    callbacks: Option<Arc<Callbacks>>,
}

pub(crate) struct Hub {
    st: Mutex<HubState>,
    /// The `events=` subscription: the kinds besides messages that `recv()` returns.
    subscribed: Vec<EventKind>,
    /// No callbacks: the core runs in poll mode.
    pub(crate) poll: bool,
}

/// Answer of [`Hub::arm`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arm {
    Moved = 0,
    Armed = 1,
    Gone = 2,
}

impl Hub {
    pub(crate) fn new(subscribed: Vec<EventKind>, callbacks: Callbacks) -> Hub {
        let poll = callbacks.is_empty();
        let st = HubState {
            callbacks: (!poll).then(|| Arc::new(callbacks)),
            ..HubState::default()
        };
        Hub {
            st: Mutex::new(st),
            subscribed,
            poll,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the state inconsistent in a way that
        // matters more than losing the client: carry on with the data.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `recv()` returns `event`: a message, or an event of a subscribed kind.
    pub(crate) fn wanted(&self, event: &Event) -> bool {
        let kind = event.kind();
        kind == EventKind::Message || self.subscribed.contains(&kind)
    }

    /// Callback mode: run the callback for `event`, or hand it back for `recv()` if wanted.
    /// Runs on the core's dispatcher thread, in event order.
    pub(crate) fn route(&self, event: Event) -> Option<Event> {
        let callbacks = self.lock().callbacks.clone();
        let mut taken = false;
        for (_, (name, callback)) in callbacks.iter().flat_map(|c| c.targets(&event)) {
            call_user(name, callback, &event);
            taken = true;
        }
        (!taken && self.wanted(&event)).then_some(event)
    }

    /// Something changed (the core's hook): wake the asyncio side if armed. `closed`: nothing
    /// will change any more; the asyncio side is then woken (always with a wake-up socket, so
    /// that the bridge stops watching it) and let go of (holding it would keep a cycle hub →
    /// bridge → handle → hub).
    pub(crate) fn changed(&self, closed: bool) {
        let mut st = self.lock();
        let armed = std::mem::take(&mut st.waker_armed);
        let fire = st.bridge.is_some() && (armed || (closed && st.wake_pipe.is_some()));
        drop(st);
        if fire {
            self.fire_waker();
        }
        if closed {
            let bridge = self.lock().bridge.take();
            drop(bridge);
        }
    }

    fn fire_waker(&self) {
        let (pipe, on_loop) = {
            let st = self.lock();
            (st.wake_pipe.clone(), self.on_loop_thread(&st))
        };
        if let (Some(pipe), false) = (pipe, on_loop) {
            pipe.wake();
            return;
        }
        // On the loop's own thread (it drives the client) the loop is awake: `call_soon`.
        self.call_bridge(if on_loop {
            "_wake_soon"
        } else {
            "_wake_threadsafe"
        });
    }

    /// Caller-driven I/O: a send waits for a driver. An asyncio bridge schedules a pass on its
    /// loop (`call_soon` from the loop's thread, else thread-safely); without a bridge the
    /// next blocking wait drives.
    pub(crate) fn io_wanted(&self) {
        let on_loop = {
            let st = self.lock();
            if st.bridge.is_none() {
                return;
            }
            self.on_loop_thread(&st)
        };
        self.call_bridge(if on_loop { "_kick" } else { "_kick_threadsafe" });
    }

    /// Whether this thread is the event loop's (the one that installed the bridge).
    fn on_loop_thread(&self, st: &HubState) -> bool {
        st.loop_thread == Some(std::thread::current().id())
    }

    /// Call `method` of the asyncio bridge, if one is installed; a failure (the loop is closed
    /// or gone: nothing waits any more) is logged at debug level.
    fn call_bridge(&self, method: &str) {
        with_python(|py| {
            let bridge = self.lock().bridge.as_ref().map(|b| b.clone_ref(py));
            if let Some(bridge) = bridge {
                if let Err(e) = bridge.call_method0(py, method) {
                    log(py, "debug", &format!("asyncio {method} failed: {e}"));
                }
            }
        });
    }

    // ----- asyncio ---------------------------------------------------------------------------

    /// Install the asyncio bridge (replacing an older one, e.g. of a closed loop). Refused
    /// (`Err` gives it back) once `closed` or the Python client is gone: every wait is then
    /// answered at once and no wake-up will ever be needed.
    pub(crate) fn set_bridge(
        &self,
        bridge: Py<PyAny>,
        closed: bool,
    ) -> Result<Option<Py<PyAny>>, Py<PyAny>> {
        let mut st = self.lock();
        if closed || st.detached {
            return Err(bridge);
        }
        st.waker_armed = false;
        st.loop_thread = Some(std::thread::current().id());
        Ok(st.bridge.replace(bridge))
    }

    /// Wake the bridge through `pipe` from now on (None: through `_wake_threadsafe`).
    pub(crate) fn set_wake_pipe(&self, pipe: Option<Arc<WakeWriter>>) {
        self.lock().wake_pipe = pipe;
    }

    pub(crate) fn bridge(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.lock().bridge.as_ref().map(|b| b.clone_ref(py))
    }

    /// Ask for one wake-up at the next change after the core's change count `seen` (`now`
    /// reads it; under our lock, and the core counts before it calls the hook, so no change is
    /// missed): `Armed`; `Moved` if it already moved (re-check at once); `Gone` if no bridge
    /// is installed any more (closed: every condition can be decided now).
    pub(crate) fn arm(&self, seen: u64, now: impl FnOnce() -> u64) -> Arm {
        let mut st = self.lock();
        if st.bridge.is_none() {
            return Arm::Gone;
        }
        if now() != seen {
            return Arm::Moved;
        }
        st.waker_armed = true;
        Arm::Armed
    }

    // ----- lifetime ----------------------------------------------------------------------------

    /// The Python client is gone: drop the Python objects we hold (callbacks; the bridge once
    /// `closed`, else it stays until the close this starts, so that waits elsewhere are
    /// answered). Returns the objects so the caller drops them while attached.
    pub(crate) fn detach(&self, closed: bool) -> (Option<Arc<Callbacks>>, Option<Py<PyAny>>) {
        let mut st = self.lock();
        st.detached = true;
        let bridge = if closed { st.bridge.take() } else { None };
        (st.callbacks.take(), bridge)
    }

    /// GC support: visit the Python objects held (only from the owning `Client`).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in a GC pass: if the dispatcher holds the lock right now, report nothing
        // (the collector then only keeps these objects alive a little longer).
        let Ok(st) = self.st.try_lock() else {
            return Ok(());
        };
        for (_, c) in st.callbacks.iter().flat_map(|cb| cb.iter()) {
            visit.call(c)?;
        }
        visit.call(&st.bridge)?;
        Ok(())
    }

    /// GC support: break cycles through our Python objects.
    pub(crate) fn clear(&self) -> (Option<Arc<Callbacks>>, Option<Py<PyAny>>) {
        let mut st = self.lock();
        st.waker_armed = false;
        (st.callbacks.take(), st.bridge.take())
    }
}

/// Call a user callback with the event, attached; log (never raise) what it raises.
fn call_user(name: &str, callback: &Py<PyAny>, event: &Event) {
    with_python(|py| {
        let result = convert::event(py, event).and_then(|arg| callback.call1(py, (arg,)));
        if let Err(err) = result {
            log_exception(py, name, err);
        }
    });
}

/// Log an exception from a user callback to the `tether` logger, with its traceback.
pub(crate) fn log_exception(py: Python<'_>, name: &str, err: PyErr) {
    let logged = types::get(py).and_then(|t| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exc_info", err.value(py))?;
        t.logger.call_method(
            py,
            "error",
            (
                "exception in %s callback (ignored; the client carries on)",
                name,
            ),
            Some(&kwargs),
        )
    });
    if logged.is_err() {
        err.print(py);
    }
}

/// Log `message` to the `tether` logger at `level` ("debug", "warning", ...).
pub(crate) fn log(py: Python<'_>, level: &str, message: &str) {
    if let Ok(t) = types::get(py) {
        let _ = t.logger.call_method1(py, level, ("%s", message));
    }
}
