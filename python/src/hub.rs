//! The hub: where the core's events land, in one of two ways:
//!
//! * **callback mode** (the client has callbacks): the core's dispatcher thread calls
//!   [`Hub::dispatch`] for every event, one at a time, in order;
//! * **poll mode** (no callbacks): there is no dispatcher thread. Whoever waits drives: a thread
//!   blocked in `recv()`, `wait_ready()`, `close()` or a receipt wait takes a batch of events
//!   from the core itself ([`Hub::drive`], GIL released, one hub lock per batch) and routes
//!   them; others wait for it. This saves a thread hop per batch. For asyncio, which cannot
//!   block, a pump thread drives (started with the first asyncio wait on the client).
//!
//! Either way the hub
//!
//! * calls the user's callback for the event's kind, if one was given (taking the GIL only
//!   around the call; an exception is logged to the `tether` logger and the client carries on);
//! * otherwise queues data messages, and the events the user subscribed to with `events=`, for
//!   `recv()` / iteration / `async for` (bounded: when `capacity` messages wait, the dispatcher
//!   waits too — in poll mode nobody takes more from the core —, the core's own queue fills,
//!   and the core stops reading the socket: TCP backpressure instead of unbounded memory);
//! * notes what the blocking waits need (closed, last disconnect) and which watched receipts
//!   an event touched, bumps a generation counter, wakes blocked threads, and fires the armed
//!   asyncio waker once (one byte written to the bridge's wake-up socket per batch, not per
//!   event; no GIL needed).
//!
//! Lock discipline: `st` is never held while taking the GIL or running Python code, so a thread
//! that holds the GIL may always take it.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use tether_core::{Disconnect, Event, Message};

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

/// What receipts wait for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum WatchKind {
    Written,
    Acked,
}

/// One entry of the queue read by `recv()`.
pub(crate) enum Item {
    Message(Message),
    Event(Event),
}

impl Item {
    pub(crate) fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Item::Message(m) => Ok(convert::message(py, &m)),
            Item::Event(e) => convert::event(py, &e),
        }
    }
}

/// Answer of [`Hub::arm`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arm {
    Moved = 0,
    Armed = 1,
    Gone = 2,
}

/// What `try_pop` found.
pub(crate) enum Popped {
    Item(Item),
    Empty,
    /// Closed for good and nothing left to read.
    Closed(Option<Disconnect>),
}

struct HubState {
    queue: VecDeque<Item>,
    queued_messages: usize,
    /// Bumped on every event the dispatcher handles and on every local change a waiter cares
    /// about; waiters sleep until it moves.
    generation: u64,
    /// Threads sleeping on `changed` (notify only when someone sleeps).
    sleepers: usize,
    /// `changed` was notified since the last thread went to sleep on it: every sleeper will
    /// see the generation moved, so further events need no (system call) notify until one
    /// goes to sleep again.
    notified: bool,
    /// Threads sleeping on `space` (the queue is full): the dispatcher, or a driver.
    space_waiters: usize,
    /// `space` was notified since the last thread went to sleep on it.
    space_notified: bool,
    /// Poll mode: a thread is taking events from the core (see `Hub::drive`).
    driving: bool,
    /// Bumped each time the drive role is released (sleepers may take it over).
    drive_epoch: u64,
    /// `Event::Closed` was seen: (reason, undelivered).
    closed: Option<(Disconnect, usize)>,
    /// `Event::Closed` was fully handled, its callback included: nothing will run any more.
    finished: bool,
    /// The last `Event::Disconnected` reason (for messages of `wait_ready`).
    last_disconnect: Option<Disconnect>,
    /// The Python client is gone: stop queueing and never block.
    detached: bool,
    /// The session has ended: the core can produce only what it already queued, so the
    /// dispatcher no longer waits for room.
    unblocked: bool,
    watch_written: BTreeSet<u64>,
    watch_acked: BTreeSet<u64>,
    /// Watched ids an event touched since the last `take_resolved`.
    resolved: Vec<(u64, WatchKind)>,
    /// The asyncio bridge wants one wake-up at the next change.
    waker_armed: bool,
    /// The asyncio bridge (`tether._aio._Bridge`), whose `_wake_threadsafe` is the waker
    /// unless `wake_pipe` is set.
    bridge: Option<Py<PyAny>>,
    /// The write end of the bridge's wake-up socket (the event loop watches the read end):
    /// the wake-up is then one `write` without the GIL instead of a `call_soon_threadsafe`.
    wake_pipe: Option<Arc<WakeWriter>>,
    callbacks: Option<Arc<Callbacks>>,
}

pub(crate) struct Hub {
    st: Mutex<HubState>,
    changed: Condvar,
    space: Condvar,
    /// Messages queued for `recv()` before the dispatcher waits (poll mode: before the driver
    /// stops taking events from the core).
    capacity: usize,
    /// `events=` subscription bits.
    subscribed: u32,
    dispatcher: OnceLock<ThreadId>,
    /// Poll mode: no callbacks, so no dispatcher thread; waiting threads drive (`drive`).
    poll: bool,
    /// Poll mode: a pump thread drives the hub for asyncio.
    pumped: std::sync::atomic::AtomicBool,
}

/// Most events one `Hub::drive` takes from the core at once.
const DRIVE_BATCH: usize = 1024;

/// What a batch of events can change, as bits: what a wait is interested in
/// ([`Hub::drive`]), and whether the asyncio side needs waking.
pub(crate) mod interest {
    use super::Kind;

    /// Something was queued for `recv()`.
    pub(crate) const QUEUED: u8 = 1;
    /// The connection state (`wait_ready`).
    pub(crate) const STATE: u8 = 2;
    /// A message's fate (receipt waits).
    pub(crate) const DELIVERY: u8 = 4;
    /// The client closed for good.
    pub(crate) const CLOSED: u8 = 8;
    /// Any change.
    pub(crate) const ALL: u8 = QUEUED | STATE | DELIVERY | CLOSED;

    pub(crate) fn of(kind: Kind) -> u8 {
        match kind {
            Kind::State | Kind::Disconnected | Kind::Reconnecting => STATE,
            Kind::Written | Kind::Acked | Kind::SendFailed => DELIVERY,
            Kind::Closed => CLOSED | STATE | DELIVERY,
            Kind::Message | Kind::InboundRejected | Kind::SessionReset | Kind::Other => 0,
        }
    }

    /// The asyncio bridge waits for the queue, the state, the close, and the receipts it
    /// watches (`resolved`): a `Written` report that resolves no watched receipt is none of
    /// these.
    pub(crate) fn wakes_asyncio(changes: u8, resolved: bool) -> bool {
        resolved || changes & (QUEUED | STATE | CLOSED) != 0
    }
}

impl Hub {
    pub(crate) fn new(capacity: usize, subscribed: u32, callbacks: Callbacks) -> Hub {
        let poll = callbacks.is_empty();
        Hub {
            st: Mutex::new(HubState {
                queue: VecDeque::new(),
                queued_messages: 0,
                generation: 0,
                sleepers: 0,
                notified: false,
                space_waiters: 0,
                space_notified: false,
                driving: false,
                drive_epoch: 0,
                closed: None,
                finished: false,
                last_disconnect: None,
                detached: false,
                unblocked: false,
                watch_written: BTreeSet::new(),
                watch_acked: BTreeSet::new(),
                resolved: Vec::new(),
                waker_armed: false,
                bridge: None,
                wake_pipe: None,
                callbacks: (!callbacks.is_empty()).then(|| Arc::new(callbacks)),
            }),
            changed: Condvar::new(),
            space: Condvar::new(),
            capacity: capacity.max(1),
            subscribed,
            dispatcher: OnceLock::new(),
            poll,
            pumped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the state inconsistent in a way that
        // matters more than losing the client: carry on with the data.
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True on the dispatcher thread (inside a user callback).
    pub(crate) fn on_dispatcher_thread(&self) -> bool {
        self.dispatcher.get() == Some(&std::thread::current().id())
    }

    // ----- producers -------------------------------------------------------------------------

    /// The bookkeeping of one event (watched receipts, closed, last disconnect). Returns
    /// whether it goes to the queue read by `recv()`: no callback takes it, and it is a message
    /// or of a subscribed kind.
    fn note(&self, st: &mut HubState, event: &Event, kind: Kind, has_callback: bool) -> bool {
        match event {
            Event::Written { up_to } => {
                let rest = st.watch_written.split_off(&(up_to.0 + 1));
                let done = std::mem::replace(&mut st.watch_written, rest);
                st.resolved
                    .extend(done.into_iter().map(|id| (id, WatchKind::Written)));
            }
            Event::Acked { id } if st.watch_acked.remove(&id.0) => {
                st.resolved.push((id.0, WatchKind::Acked));
            }
            Event::SendFailed { id, .. } => {
                if st.watch_written.remove(&id.0) {
                    st.resolved.push((id.0, WatchKind::Written));
                }
                if st.watch_acked.remove(&id.0) {
                    st.resolved.push((id.0, WatchKind::Acked));
                }
            }
            Event::Disconnected { reason, .. } => st.last_disconnect = Some(reason.clone()),
            Event::Closed {
                reason,
                undelivered,
            } => {
                st.closed = Some((reason.clone(), *undelivered));
                let written = std::mem::take(&mut st.watch_written);
                let acked = std::mem::take(&mut st.watch_acked);
                st.resolved
                    .extend(written.into_iter().map(|id| (id, WatchKind::Written)));
                st.resolved
                    .extend(acked.into_iter().map(|id| (id, WatchKind::Acked)));
            }
            _ => {}
        }
        !has_callback && (kind == Kind::Message || self.subscribed & kind.bit() != 0)
    }

    /// Put an event at the back of the queue read by `recv()` (dropped once detached).
    fn enqueue(st: &mut HubState, event: Event) {
        if st.detached {
            return;
        }
        match event {
            Event::Message(m) => {
                st.queued_messages += 1;
                st.queue.push_back(Item::Message(m));
            }
            // Written reports are cumulative: one waiting at the back of the queue is raised
            // instead of adding another (as the core does in its own queue).
            Event::Written { up_to } => match st.queue.back_mut() {
                Some(Item::Event(Event::Written { up_to: last })) => *last = up_to,
                _ => st.queue.push_back(Item::Event(Event::Written { up_to })),
            },
            other => st.queue.push_back(Item::Event(other)),
        }
    }

    /// After routing events under the lock: release it, wake the threads sleeping on `changed`
    /// (if any need it), and say whether to wake the asyncio side: it is armed, and something
    /// its waits can see changed (`resolved_before`: receipts resolved before this change).
    /// On `closing` the asyncio side is woken later, once the close is fully handled.
    fn release_and_wake(
        &self,
        mut st: MutexGuard<'_, HubState>,
        changes: u8,
        resolved_before: usize,
        closing: bool,
    ) -> bool {
        let fire = !closing
            && interest::wakes_asyncio(changes, st.resolved.len() > resolved_before)
            && st.bridge.is_some()
            && std::mem::take(&mut st.waker_armed);
        let notify = Self::take_notify(&mut st);
        drop(st);
        if notify {
            self.changed.notify_all();
        }
        fire
    }

    /// Wake the threads sleeping on `changed`, once per round of sleeping (a notify is a
    /// system call even when nobody sleeps). Returns whether to call `changed.notify_all()`.
    fn take_notify(st: &mut HubState) -> bool {
        let notify = st.sleepers > 0 && !st.notified;
        st.notified |= notify;
        notify
    }

    /// Callback mode: route one event. Runs on the core's dispatcher thread, in event order.
    pub(crate) fn dispatch(&self, event: Event) {
        let _ = self.dispatcher.get_or_init(|| std::thread::current().id());
        let kind = Kind::of(&event);
        let mut st = self.lock();
        let callbacks = st.callbacks.clone();
        let has_callback = callbacks
            .as_ref()
            .is_some_and(|c| c.for_kind(kind).is_some());
        let resolved = st.resolved.len();
        let queue = self.note(&mut st, &event, kind, has_callback);
        let mut changes = interest::of(kind);
        let mut event = Some(event);
        if queue {
            if kind == Kind::Message {
                while st.queued_messages >= self.capacity && !st.detached && !st.unblocked {
                    st = self.wait_space(st, None);
                }
            }
            if let Some(event) = event.take() {
                changes |= interest::QUEUED;
                Self::enqueue(&mut st, event);
            }
        }
        st.generation += 1;
        let closing = kind == Kind::Closed;
        // The asyncio side is woken for Closed only once it is fully handled (below), and for
        // nothing its waits cannot see (a `Written` report no receipt waits for).
        let fire = self.release_and_wake(st, changes, resolved, closing);
        if let (Some(callbacks), Some(event)) = (callbacks, event) {
            if let Some((name, callback)) = callbacks.for_kind(kind) {
                call_user(name, callback, &event);
            }
        }
        if closing {
            // The last event, callback included, is done: `close()` may return now (no
            // callback runs after it), and the asyncio side learns it.
            let mut st = self.lock();
            st.finished = true;
            st.generation += 1;
            drop(st);
            self.changed.notify_all();
            self.closed_handled();
        } else if fire {
            self.fire_waker();
        }
    }

    /// `Closed` has been handled (`finished` is set): wake the asyncio side (always with a
    /// wake-up socket, so that the bridge stops watching it; else if armed) and let go of the
    /// bridge: nothing can change any more, and holding it would keep a cycle hub → bridge →
    /// handle → hub.
    fn closed_handled(&self) {
        let mut st = self.lock();
        let armed = std::mem::take(&mut st.waker_armed);
        let fire = st.bridge.is_some() && (armed || st.wake_pipe.is_some());
        drop(st);
        if fire {
            self.fire_waker();
        }
        let bridge = self.lock().bridge.take();
        drop(bridge);
    }

    /// Sleep on `space` until a reader makes room (or `timeout`; None: no limit).
    fn wait_space<'a>(
        &self,
        mut st: MutexGuard<'a, HubState>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, HubState> {
        st.space_waiters += 1;
        st.space_notified = false;
        let mut st = match timeout {
            None => self.space.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(t) => {
                self.space
                    .wait_timeout(st, t)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
        st.space_waiters -= 1;
        st
    }

    /// After a reader took messages: wake whoever waits for room (once per round of waiting).
    fn made_room(&self, st: &mut HubState) {
        if st.space_waiters > 0 && !st.space_notified {
            st.space_notified = true;
            self.space.notify_all();
        }
    }

    /// Poll mode ("whoever waits drives"): take what the core has, waiting up to `wait` for
    /// the first event, and route it — one lock for the whole batch. A batch that changes
    /// nothing in `interest` (the caller's [`interest`] bits) does not end the call: it takes
    /// the next one (so a `recv()` does not return to Python for the `Written` report of its
    /// own message). If another thread is taking events, or the queue is full, sleep instead
    /// until something changes (up to `wait`). Returns at once if the generation already moved
    /// past `seen`. Call without the GIL.
    pub(crate) fn drive(
        &self,
        core: &tether_core::Client,
        seen: u64,
        wait: Duration,
        interest: u8,
    ) {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        if st.generation != seen {
            return;
        }
        let mut wait = wait;
        let mut events = Vec::new();
        loop {
            if st.driving || st.finished {
                self.sleep(st, seen, wait);
                return;
            }
            let room = if st.unblocked || st.detached {
                DRIVE_BATCH
            } else {
                self.capacity
                    .saturating_sub(st.queued_messages)
                    .min(DRIVE_BATCH)
            };
            if room == 0 {
                // Never more than `capacity` messages queued: the core keeps the rest, and
                // stops reading the socket once its own queue is full.
                drop(self.wait_space(st, Some(wait)));
                return;
            }
            st.driving = true;
            drop(st);
            core.next_events(&mut events, room, wait);
            st = self.lock();
            st.driving = false;
            st.drive_epoch += 1;
            if events.is_empty() {
                // Nothing happened, but a thread that waited for the drive role may take it.
                let notify = Self::take_notify(&mut st);
                drop(st);
                if notify {
                    self.changed.notify_all();
                }
                return;
            }
            let resolved = st.resolved.len();
            let mut changes = 0;
            for event in events.drain(..) {
                let kind = Kind::of(&event);
                changes |= interest::of(kind);
                if self.note(&mut st, &event, kind, false) {
                    changes |= interest::QUEUED;
                    Self::enqueue(&mut st, event);
                }
            }
            let closed = changes & interest::CLOSED != 0;
            st.finished |= closed;
            st.generation += 1;
            let fire = self.release_and_wake(st, changes, resolved, closed);
            if closed {
                self.closed_handled();
                return;
            }
            if fire {
                self.fire_waker();
            }
            if changes & interest != 0 {
                return;
            }
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => wait = left,
                _ => return,
            }
            st = self.lock();
        }
    }

    /// True in poll mode (no callbacks): waiting threads drive the hub (see `drive`).
    pub(crate) fn polls(&self) -> bool {
        self.poll
    }

    /// Poll mode: whether a pump thread drives the hub (started for asyncio). Marks it started.
    pub(crate) fn start_pump(&self) -> bool {
        !self.pumped.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// The pump thread could not be started (a later asyncio wait tries again).
    pub(crate) fn pump_failed(&self) {
        self.pumped
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn pumped(&self) -> bool {
        self.pumped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// True once the `Closed` event has been fully handled (its callback returned).
    pub(crate) fn finished(&self) -> bool {
        self.lock().finished
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

    // ----- consumers ------------------------------------------------------------------------

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Take the next queued item.
    pub(crate) fn try_pop(&self) -> Popped {
        let mut st = self.lock();
        match st.queue.pop_front() {
            Some(item) => {
                if matches!(item, Item::Message(_)) {
                    st.queued_messages -= 1;
                    self.made_room(&mut st);
                }
                Popped::Item(item)
            }
            None => match &st.closed {
                Some((reason, _)) => Popped::Closed(Some(reason.clone())),
                None => Popped::Empty,
            },
        }
    }

    /// Take up to `max` queued items.
    pub(crate) fn drain(&self, max: usize, out: &mut Vec<Item>) {
        let mut st = self.lock();
        let n = max.min(st.queue.len());
        let st = &mut *st;
        let before = st.queued_messages;
        for item in st.queue.drain(..n) {
            if matches!(item, Item::Message(_)) {
                st.queued_messages -= 1;
            }
            out.push(item);
        }
        if st.queued_messages != before {
            self.made_room(st);
        }
    }

    pub(crate) fn has_items(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    /// Something to read, or closed for good (`recv` would not wait).
    pub(crate) fn readable(&self) -> bool {
        let st = self.lock();
        !st.queue.is_empty() || st.closed.is_some()
    }

    pub(crate) fn closed(&self) -> Option<(Disconnect, usize)> {
        self.lock().closed.clone()
    }

    pub(crate) fn last_disconnect(&self) -> Option<Disconnect> {
        self.lock().last_disconnect.clone()
    }

    /// Sleep until the generation moves past `seen`, or `timeout`. Call without the GIL.
    pub(crate) fn wait_changed(&self, seen: u64, timeout: Duration) {
        let st = self.lock();
        if st.generation != seen {
            return;
        }
        self.sleep(st, seen, timeout);
    }

    /// Sleep on `changed` until the generation moves past `seen`, the drive role is released
    /// (poll mode), or `timeout`.
    fn sleep(&self, mut st: MutexGuard<'_, HubState>, seen: u64, timeout: Duration) {
        let epoch = st.drive_epoch;
        st.sleepers += 1;
        st.notified = false;
        let (mut st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| {
                s.generation == seen && s.drive_epoch == epoch
            })
            .unwrap_or_else(|p| p.into_inner());
        st.sleepers -= 1;
    }

    /// The session has ended: let the dispatcher run through what is left without waiting
    /// for `recv()` to make room.
    pub(crate) fn unblock(&self) {
        let mut st = self.lock();
        st.unblocked = true;
        drop(st);
        self.space.notify_all();
    }

    // ----- asyncio ---------------------------------------------------------------------------

    /// Install the asyncio bridge (replacing an older one, e.g. of a closed loop). Refused
    /// (`Err` gives it back) once the client is closed or its Python object gone: every wait
    /// is then answered at once and no wake-up will ever be needed.
    pub(crate) fn set_bridge(&self, bridge: Py<PyAny>) -> Result<Option<Py<PyAny>>, Py<PyAny>> {
        let mut st = self.lock();
        if st.closed.is_some() || st.detached {
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

    /// Ask for one wake-up (the bridge's `_wake_threadsafe`) at the next change after
    /// generation `seen`: `Armed`; `Moved` if it already moved (re-check at once); `Gone` if
    /// no bridge is installed any more (closed: every condition can be decided now).
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

    /// Watch `id` for `kind`; the caller must then check the core's status for `id` (an event
    /// handled before the watch was set would otherwise be missed).
    pub(crate) fn watch(&self, id: u64, kind: WatchKind) {
        let mut st = self.lock();
        if st.closed.is_some() {
            st.resolved.push((id, kind));
            return;
        }
        match kind {
            WatchKind::Written => st.watch_written.insert(id),
            WatchKind::Acked => st.watch_acked.insert(id),
        };
    }

    pub(crate) fn unwatch(&self, id: u64, kind: WatchKind) {
        let mut st = self.lock();
        match kind {
            WatchKind::Written => st.watch_written.remove(&id),
            WatchKind::Acked => st.watch_acked.remove(&id),
        };
    }

    pub(crate) fn take_resolved(&self) -> Vec<(u64, WatchKind)> {
        std::mem::take(&mut self.lock().resolved)
    }

    // ----- lifetime ----------------------------------------------------------------------------

    /// The Python client is gone: drop the Python objects we hold (callbacks, bridge), stop
    /// queueing, and never make the dispatcher wait again. Returns the objects so the caller
    /// drops them while attached.
    ///
    /// An installed asyncio bridge stays until `Closed` (the close this starts) so that
    /// receipts still awaited elsewhere are answered.
    pub(crate) fn detach(&self) -> (Option<Arc<Callbacks>>, Option<Py<PyAny>>) {
        let mut st = self.lock();
        st.detached = true;
        st.queue.clear();
        st.queued_messages = 0;
        let bridge = if st.closed.is_some() {
            st.waker_armed = false;
            st.bridge.take()
        } else {
            None
        };
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
