//! The hub: what the waits of one Python client share besides the core client.
//!
//! * The core calls [`Hub::changed`] (its change hook, see `Client::start`) after every batch
//!   of events and at the end. The hub bumps a generation counter, wakes the threads blocked
//!   in a wait (GIL released) and fires the armed asyncio wake-up (one byte written to the
//!   bridge's wake-up socket, no GIL). Waits then re-check the core itself: its state, a
//!   message's delivery status, its event queue. So no wait takes events it does not return,
//!   and in poll mode (no callbacks) inbound messages wait in one place, the core's queue.
//! * Callback mode (the client has callbacks): the core's dispatcher thread calls
//!   [`Hub::dispatch`] for each event. The user's callback for its kind runs (taking the GIL
//!   only around the call; an exception is logged to the `tether` logger and the client
//!   carries on); an event no callback takes (a message without `on_message`, an `events=`
//!   kind) is queued for `recv()`, bounded by `capacity` (the dispatcher waits for room).
//!
//! Lock discipline: `st` is never held while taking the GIL or running Python code, so a thread
//! that holds the GIL may always take it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use tether_core::Event;

use crate::{convert, types, with_python};

/// Event kinds, as bits of the `events=` subscription.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Message = 0,
    State = 1,
    Disconnected = 2,
    Reconnecting = 3,
    Written = 4,
    Acked = 5,
    SendFailed = 6,
    InboundRejected = 7,
    Closed = 8,
    Other = 9,
    SessionReset = 10,
}

impl Kind {
    pub(crate) fn of(e: &Event) -> Kind {
        match e {
            Event::Message(_) => Kind::Message,
            Event::State { .. } => Kind::State,
            Event::Disconnected { .. } => Kind::Disconnected,
            Event::Reconnecting { .. } => Kind::Reconnecting,
            Event::Written { .. } => Kind::Written,
            Event::Acked { .. } => Kind::Acked,
            Event::SendFailed { .. } => Kind::SendFailed,
            Event::InboundRejected { .. } => Kind::InboundRejected,
            Event::Closed { .. } => Kind::Closed,
            Event::SessionReset(_) => Kind::SessionReset,
            _ => Kind::Other,
        }
    }

    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// All event kinds (not messages).
    pub(crate) const ALL_EVENTS: u32 = 0b111_1111_1110;
}

/// The user's callbacks (`on_message=`, ...). Immutable once the client is built.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub on_message: Option<Py<PyAny>>,
    pub on_state: Option<Py<PyAny>>,
    pub on_disconnected: Option<Py<PyAny>>,
    pub on_reconnecting: Option<Py<PyAny>>,
    pub on_written: Option<Py<PyAny>>,
    pub on_acked: Option<Py<PyAny>>,
    pub on_send_failed: Option<Py<PyAny>>,
    pub on_closed: Option<Py<PyAny>>,
    pub on_session_reset: Option<Py<PyAny>>,
    /// Every event kind without a callback of its own (not messages).
    pub on_event: Option<Py<PyAny>>,
}

impl Callbacks {
    fn for_kind(&self, kind: Kind) -> Option<(&'static str, &Py<PyAny>)> {
        let specific = match kind {
            Kind::Message => return self.on_message.as_ref().map(|c| ("on_message", c)),
            Kind::State => self.on_state.as_ref().map(|c| ("on_state", c)),
            Kind::Disconnected => self
                .on_disconnected
                .as_ref()
                .map(|c| ("on_disconnected", c)),
            Kind::Reconnecting => self
                .on_reconnecting
                .as_ref()
                .map(|c| ("on_reconnecting", c)),
            Kind::Written => self.on_written.as_ref().map(|c| ("on_written", c)),
            Kind::Acked => self.on_acked.as_ref().map(|c| ("on_acked", c)),
            Kind::SendFailed => self.on_send_failed.as_ref().map(|c| ("on_send_failed", c)),
            Kind::Closed => self.on_closed.as_ref().map(|c| ("on_closed", c)),
            Kind::SessionReset => self
                .on_session_reset
                .as_ref()
                .map(|c| ("on_session_reset", c)),
            Kind::InboundRejected | Kind::Other => None,
        };
        specific.or_else(|| self.on_event.as_ref().map(|c| ("on_event", c)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all().iter().all(|c| c.is_none())
    }

    fn all(&self) -> [&Option<Py<PyAny>>; 10] {
        [
            &self.on_message,
            &self.on_state,
            &self.on_disconnected,
            &self.on_reconnecting,
            &self.on_written,
            &self.on_acked,
            &self.on_send_failed,
            &self.on_closed,
            &self.on_session_reset,
            &self.on_event,
        ]
    }
}

struct HubState {
    /// Callback mode: the events no callback takes, for `recv()`.
    queue: VecDeque<Event>,
    /// Poll mode: the item an asyncio readiness check took from the core to learn that there
    /// is one (read first by the next `recv()`).
    peeked: Option<Event>,
    queued_messages: usize,
    /// Bumped on every change a wait may care about; waits sleep until it moves.
    generation: u64,
    /// Threads sleeping on `changed` (notify only when someone sleeps).
    sleepers: usize,
    /// Callback mode: the `Closed` event was fully handled, its callback included.
    finished: bool,
    /// The Python client is gone: stop queueing and never block.
    detached: bool,
    /// The session is ending: the dispatcher no longer waits for room.
    unblocked: bool,
    /// The asyncio bridge wants one wake-up at the next change.
    waker_armed: bool,
    /// The asyncio bridge (`tether._aio._Bridge`), whose `_wake_threadsafe` is the waker
    /// unless `wake_pipe` is set.
    bridge: Option<Py<PyAny>>,
    /// The write end of the bridge's wake-up socket (the event loop watches the read end).
    wake_pipe: Option<Arc<WakeWriter>>,
    callbacks: Option<Arc<Callbacks>>,
}

pub(crate) struct Hub {
    st: Mutex<HubState>,
    changed: Condvar,
    space: Condvar,
    /// Callback mode: messages queued for `recv()` before the dispatcher waits.
    capacity: usize,
    /// `events=` subscription bits.
    subscribed: u32,
    /// No callbacks: the core runs in poll mode and `recv()` reads its queue.
    poll: bool,
}

/// Answer of [`Hub::arm`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arm {
    Moved = 0,
    Armed = 1,
    Gone = 2,
}

impl Hub {
    pub(crate) fn new(capacity: usize, subscribed: u32, callbacks: Callbacks) -> Hub {
        let poll = callbacks.is_empty();
        Hub {
            st: Mutex::new(HubState {
                queue: VecDeque::new(),
                peeked: None,
                queued_messages: 0,
                generation: 0,
                sleepers: 0,
                finished: false,
                detached: false,
                unblocked: false,
                waker_armed: false,
                bridge: None,
                wake_pipe: None,
                callbacks: (!poll).then(|| Arc::new(callbacks)),
            }),
            changed: Condvar::new(),
            space: Condvar::new(),
            capacity: capacity.max(1),
            subscribed,
            poll,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the state inconsistent in a way that
        // matters more than losing the client: carry on with the data.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True in poll mode (no callbacks): `recv()` reads the core's queue.
    pub(crate) fn polls(&self) -> bool {
        self.poll
    }

    /// Whether `recv()` returns `event`: a message, or an event of a subscribed kind.
    pub(crate) fn wanted(&self, event: &Event) -> bool {
        let kind = Kind::of(event);
        kind == Kind::Message || self.subscribed & kind.bit() != 0
    }

    /// Something changed (the core's hook, or the queue of callback mode): wake the waits, and
    /// the asyncio side if armed. `closed`: nothing will change any more; the asyncio side is
    /// then woken (always with a wake-up socket, so that the bridge stops watching it) and let
    /// go of (holding it would keep a cycle hub → bridge → handle → hub).
    pub(crate) fn changed(&self, closed: bool) {
        let mut st = self.lock();
        st.generation += 1;
        let armed = std::mem::take(&mut st.waker_armed);
        let fire = st.bridge.is_some() && (armed || (closed && st.wake_pipe.is_some()));
        let notify = st.sleepers > 0;
        drop(st);
        if notify {
            self.changed.notify_all();
        }
        if fire {
            self.fire_waker();
        }
        if closed {
            let bridge = self.lock().bridge.take();
            drop(bridge);
        }
    }

    /// Callback mode: route one event. Runs on the core's dispatcher thread, in event order.
    pub(crate) fn dispatch(&self, event: Event) {
        let kind = Kind::of(&event);
        let mut st = self.lock();
        let callbacks = st.callbacks.clone();
        let callback = callbacks.as_ref().and_then(|c| c.for_kind(kind));
        let mut event = Some(event);
        if callback.is_none() && event.as_ref().is_some_and(|e| self.wanted(e)) {
            while kind == Kind::Message
                && st.queued_messages >= self.capacity
                && !st.detached
                && !st.unblocked
            {
                st = self.space.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if let (Some(e), false) = (event.take(), st.detached) {
                Self::enqueue(&mut st, e);
            }
            drop(st);
            self.changed(false);
        } else {
            drop(st);
        }
        if let (Some((name, callback)), Some(event)) = (callback, &event) {
            call_user(name, callback, event);
        }
        if kind == Kind::Closed {
            // The last event, callback included, is done: `close()` may return now (no
            // callback runs after it), and the asyncio side learns it.
            self.lock().finished = true;
            self.changed(true);
        }
    }

    /// Put an event at the back of the queue read by `recv()`.
    fn enqueue(st: &mut HubState, event: Event) {
        match event {
            // Written reports are cumulative: one waiting at the back of the queue is raised
            // instead of adding another (as the core does in its own queue).
            Event::Written { up_to } => match st.queue.back_mut() {
                Some(Event::Written { up_to: last }) => *last = up_to,
                _ => st.queue.push_back(Event::Written { up_to }),
            },
            other => {
                st.queued_messages += usize::from(matches!(other, Event::Message(_)));
                st.queue.push_back(other);
            }
        }
    }

    /// Callback mode: take up to `max` queued events into `out`.
    pub(crate) fn drain(&self, max: usize, out: &mut Vec<Event>) {
        let mut st = self.lock();
        let n = max.min(st.queue.len());
        let st = &mut *st;
        let before = st.queued_messages;
        for event in st.queue.drain(..n) {
            st.queued_messages -= usize::from(matches!(event, Event::Message(_)));
            out.push(event);
        }
        if st.queued_messages != before {
            self.space.notify_all();
        }
    }

    pub(crate) fn has_items(&self) -> bool {
        let st = self.lock();
        !st.queue.is_empty() || st.peeked.is_some()
    }

    /// Poll mode: take the peeked item, if any.
    pub(crate) fn take_peeked(&self) -> Option<Event> {
        self.lock().peeked.take()
    }

    /// Poll mode: keep `event` for the next `recv()`.
    pub(crate) fn set_peeked(&self, event: Event) {
        self.lock().peeked = Some(event);
    }

    /// Callback mode: true once the `Closed` event has been fully handled.
    pub(crate) fn finished(&self) -> bool {
        self.lock().finished
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Sleep until the generation moves past `seen`, or `timeout`. Call without the GIL.
    pub(crate) fn wait_changed(&self, seen: u64, timeout: Duration) {
        let mut st = self.lock();
        if st.generation != seen {
            return;
        }
        st.sleepers += 1;
        let (mut st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.generation == seen)
            .unwrap_or_else(|p| p.into_inner());
        st.sleepers -= 1;
    }

    /// The session is ending: let the dispatcher run through what is left without waiting
    /// for `recv()` to make room.
    pub(crate) fn unblock(&self) {
        self.lock().unblocked = true;
        self.space.notify_all();
    }

    fn fire_waker(&self) {
        let pipe = self.lock().wake_pipe.clone();
        if let Some(pipe) = pipe {
            pipe.wake();
            return;
        }
        with_python(|py| {
            let bridge = self.lock().bridge.as_ref().map(|b| b.clone_ref(py));
            if let Some(bridge) = bridge {
                if let Err(e) = bridge.call_method0(py, "_wake_threadsafe") {
                    // The loop is closed or gone: nothing is waiting any more.
                    log_debug(py, &format!("asyncio wake-up failed: {e}"));
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
        Ok(st.bridge.replace(bridge))
    }

    /// Wake the bridge through `pipe` from now on (None: through `_wake_threadsafe`).
    pub(crate) fn set_wake_pipe(&self, pipe: Option<Arc<WakeWriter>>) {
        self.lock().wake_pipe = pipe;
    }

    pub(crate) fn bridge(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.lock().bridge.as_ref().map(|b| b.clone_ref(py))
    }

    /// Ask for one wake-up at the next change after generation `seen`: `Armed`; `Moved` if it
    /// already moved (re-check at once); `Gone` if no bridge is installed any more (closed:
    /// every condition can be decided now).
    pub(crate) fn arm(&self, seen: u64) -> Arm {
        let mut st = self.lock();
        if st.bridge.is_none() {
            return Arm::Gone;
        }
        if st.generation != seen {
            return Arm::Moved;
        }
        st.waker_armed = true;
        Arm::Armed
    }

    // ----- lifetime ----------------------------------------------------------------------------

    /// The Python client is gone: drop the Python objects we hold (callbacks; the bridge once
    /// `closed`, else it stays until the close this starts, so that waits elsewhere are
    /// answered), stop queueing, and never make the dispatcher wait again. Returns the objects
    /// so the caller drops them while attached.
    pub(crate) fn detach(&self, closed: bool) -> (Option<Arc<Callbacks>>, Option<Py<PyAny>>) {
        let mut st = self.lock();
        st.detached = true;
        st.queue.clear();
        st.peeked = None;
        st.queued_messages = 0;
        let bridge = if closed { st.bridge.take() } else { None };
        let taken = (st.callbacks.take(), bridge);
        drop(st);
        self.space.notify_all();
        self.changed.notify_all();
        taken
    }

    /// GC support: visit the Python objects held (only from the owning `Client`).
    pub(crate) fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in a GC pass: if the dispatcher holds the lock right now, report nothing
        // (the collector then only keeps these objects alive a little longer).
        let Ok(st) = self.st.try_lock() else {
            return Ok(());
        };
        if let Some(cb) = &st.callbacks {
            for c in cb.all() {
                visit.call(c)?;
            }
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

/// The write end of an asyncio bridge's wake-up socket (non-blocking). Unix only; elsewhere
/// the bridge is woken with `call_soon_threadsafe`.
pub(crate) struct WakeWriter {
    #[cfg(unix)]
    pub(crate) stream: std::os::unix::net::UnixStream,
}

impl WakeWriter {
    fn wake(&self) {
        #[cfg(unix)]
        {
            use std::io::Write;
            // A full socket already holds a wake-up the loop has not read: nothing to add.
            let _ = (&self.stream).write(&[1]);
        }
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

fn log_debug(py: Python<'_>, message: &str) {
    if let Ok(t) = types::get(py) {
        let _ = t.logger.call_method1(py, "debug", ("%s", message));
    }
}

/// Registry of live clients, so that `atexit` can start closing them.
static LIVE: Mutex<Vec<std::sync::Weak<dyn Closable>>> = Mutex::new(Vec::new());

/// What `close_all_live` needs from a client.
pub(crate) trait Closable: Send + Sync {
    fn close_for_exit(&self);
}

pub(crate) fn register_live(c: std::sync::Weak<dyn Closable>) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|w| w.strong_count() > 0);
    live.push(c);
}

pub(crate) fn close_all_live() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for c in live.iter().filter_map(|w| w.upgrade()) {
        c.close_for_exit();
    }
}
