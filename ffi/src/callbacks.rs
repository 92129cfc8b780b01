//! The callbacks struct, and turning core events into callback calls (the same code runs on
//! the dispatcher thread in callback mode and on the polling thread in poll mode).

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tether_core::routing::{self, Slot};
use tether_core::{Classify, Disconnect, Event, IdRange, Message, SessionReset, State};

use crate::status::tether_status;
use crate::util::{c_string, lock};

/// Connection states (the values never change; see `tether_state_str`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_state {
    /// Making a connection (TCP, TLS, HTTP upgrade), first time or after a backoff delay.
    TETHER_STATE_CONNECTING = 0,
    /// The WebSocket is open; the application handshake (envelope mode) is running.
    TETHER_STATE_OPEN = 1,
    /// Ready: queued messages flow. In raw mode this follows OPEN at once.
    TETHER_STATE_READY = 2,
    /// `tether_client_close` was called: draining the outbox and closing; or reconnecting
    /// stopped and what is left is being failed before `TETHER_STATE_CLOSED`.
    TETHER_STATE_CLOSING = 3,
    /// Terminal: the client will not connect again.
    TETHER_STATE_CLOSED = 4,
    /// The link is down; waiting out the backoff delay before the next attempt.
    TETHER_STATE_RECONNECTING = 5,
}

impl From<State> for tether_state {
    fn from(s: State) -> tether_state {
        match s {
            State::Connecting => tether_state::TETHER_STATE_CONNECTING,
            State::Open => tether_state::TETHER_STATE_OPEN,
            State::Ready => tether_state::TETHER_STATE_READY,
            State::Closing => tether_state::TETHER_STATE_CLOSING,
            State::Closed => tether_state::TETHER_STATE_CLOSED,
            State::Reconnecting => tether_state::TETHER_STATE_RECONNECTING,
        }
    }
}

/// The state's name ("connecting", "open", "ready", "closing", "closed", "reconnecting"), or
/// "unknown". Takes an `int` so any value is safe. Static; never NULL; do not free.
///
/// Ownership: returns a static string: never NULL, do not free.
/// Threads: any thread.
/// Errors: none: an unknown value gives "unknown".
#[no_mangle]
pub extern "C" fn tether_state_str(state: c_int) -> *const c_char {
    ffi_boundary!(c"unknown".as_ptr(), {
        let state = u8::try_from(state).ok().and_then(State::from_repr);
        state.map_or(c"unknown", State::as_c_str).as_ptr()
    })
}

/// Kind of an inbound message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_message_type {
    /// A text message: the bytes are valid UTF-8 (not NUL-terminated).
    TETHER_MESSAGE_TEXT = 1,
    /// A binary message.
    TETHER_MESSAGE_BINARY = 2,
}

/// Envelope mode: a side of the session lost its state (see `on_session_reset` and
/// docs/PROTOCOL.md, "Epochs"). An id range is `first..=last`; `first == 0` means "none".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tether_session_reset {
    /// The server's session state is gone (it restarted or evicted the session): its messages
    /// are numbered anew from here on, and delivered.
    pub server_lost_state: bool,
    /// The server held this session id for an earlier client incarnation (a restarted process
    /// reusing its session id): that incarnation's unacknowledged messages are gone.
    pub client_state_lost: bool,
    /// The server's messages from here on may repeat ones an earlier incarnation received.
    pub inbound_may_repeat: bool,
    /// Ids reported `on_acked` that the server no longer remembers (0, 0: none): whether their
    /// effects survive is up to the server's application.
    pub acked_at_risk_first: u64,
    /// Last id of `acked_at_risk` (inclusive).
    pub acked_at_risk_last: u64,
    /// Unacknowledged ids about to be written again that had been written before (0, 0: none):
    /// the server's application may see them twice.
    pub resends_may_duplicate_first: u64,
    /// Last id of `resends_may_duplicate` (inclusive).
    pub resends_may_duplicate_last: u64,
    /// Session revision of the server (1: an old server, found out because it forgot an ack;
    /// 2: stream epochs).
    pub server_revision: u32,
}

impl From<&SessionReset> for tether_session_reset {
    fn from(r: &SessionReset) -> tether_session_reset {
        let range = |r: Option<IdRange>| r.map_or((0, 0), |r| (r.first.0, r.last.0));
        let (acked_at_risk_first, acked_at_risk_last) = range(r.acked_at_risk);
        let (resends_may_duplicate_first, resends_may_duplicate_last) =
            range(r.resends_may_duplicate);
        tether_session_reset {
            server_lost_state: r.server_lost_state,
            client_state_lost: r.client_state_lost,
            inbound_may_repeat: r.inbound_may_repeat,
            acked_at_risk_first,
            acked_at_risk_last,
            resends_may_duplicate_first,
            resends_may_duplicate_last,
            server_revision: u32::try_from(r.server_revision).unwrap_or(u32::MAX),
        }
    }
}

/// Finalizer for `user_data`, run exactly once by `tether_client_free` after the last
/// callback (never if `tether_client_new` fails: the caller keeps ownership then).
pub type tether_user_data_free = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// What the client tells the application. Every callback may be NULL ("not interested").
/// Initialise the struct with `TETHER_CALLBACKS_INIT` (C: `tether_callbacks cb =
/// TETHER_CALLBACKS_INIT;`) or `tether_callbacks_init(&cb)`, which zero it and set
/// `struct_size`, then set the callbacks you need; `tether_client_new` copies it.
///
/// All callbacks of one client run serially, never concurrently with each other: on the
/// client's dispatcher thread (`TETHER_DISPATCH_THREAD`) or inside `tether_client_poll*` on
/// the polling thread (`TETHER_DISPATCH_POLL`). They receive the `user_data` given to
/// `tether_client_new`. Pointers passed to a callback (payloads, strings) are borrowed for
/// the duration of the call only: copy what you keep. Strings are NUL-terminated UTF-8.
/// A callback may call `tether_client_send_*`, `_close`, `_state`, `_stats`, `_last_error`
/// and even `tether_client_free` on its own client; it must not throw a C++ exception or
/// `longjmp` out.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct tether_callbacks {
    /// `sizeof(tether_callbacks)` as your program was compiled (set by `TETHER_CALLBACKS_INIT`
    /// and `tether_callbacks_init`). The library reads only the callbacks that fit in it and
    /// treats the rest as NULL, so a program built against an older, shorter struct keeps
    /// working on a newer library. A size smaller than the first version's callbacks (through
    /// `on_closed`; 0 included) is refused with `TETHER_ERR_INVALID_ARGUMENT`.
    pub struct_size: usize,
    /// Every state change, `from` -> `to` (called before `on_open` / `on_ready`).
    pub on_state:
        Option<unsafe extern "C" fn(user_data: *mut c_void, from: tether_state, to: tether_state)>,
    /// The WebSocket opened (each time, reconnects included).
    pub on_open: Option<unsafe extern "C" fn(user_data: *mut c_void)>,
    /// The link is ready: queued messages flow (each time, reconnects included).
    pub on_ready: Option<unsafe extern "C" fn(user_data: *mut c_void)>,
    /// A message from the server: `len` bytes at `data` (never NULL, even when `len` is 0;
    /// not NUL-terminated), text (UTF-8) or binary.
    pub on_message: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            data: *const u8,
            len: usize,
            kind: tether_message_type,
        ),
    >,
    /// A link ended. `code` is the close code exchanged, or 1006 if the link broke without
    /// one (or never opened); `reason` is the close frame's reason, or a description of the
    /// failure. `will_reconnect` tells whether the client will try again (`on_reconnecting`
    /// follows). Abnormal ends are first reported to `on_error`.
    pub on_close: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            code: u16,
            reason: *const c_char,
            will_reconnect: bool,
        ),
    >,
    /// A reconnect attempt (`attempt` from 1 in each outage) starts after `delay_ms`.
    pub on_reconnecting:
        Option<unsafe extern "C" fn(user_data: *mut c_void, attempt: u32, delay_ms: u64)>,
    /// Every accepted message with an id up to and including `up_to` (that has not failed)
    /// has been written to the socket. Cumulative; consecutive reports may coalesce.
    pub on_written: Option<unsafe extern "C" fn(user_data: *mut c_void, up_to: u64)>,
    /// Envelope mode: the server acknowledged message `id` (once per message). Never called
    /// in raw mode.
    pub on_acked: Option<unsafe extern "C" fn(user_data: *mut c_void, id: u64)>,
    /// Message `id` will never be delivered (exactly once per failed message): `status` says
    /// why (`TETHER_ERR_CLOSED`, `_DROPPED`, `_CONNECTION_FAILED`, `_ACK_TIMEOUT`,
    /// `_REJECTED`), `reason` in words.
    pub on_send_failed: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            id: u64,
            status: tether_status,
            reason: *const c_char,
        ),
    >,
    /// An asynchronous failure not tied to one message: a failed connect attempt, a lost
    /// link, a heartbeat timeout, a protocol error, an oversized inbound message, a refused
    /// inbound envelope, reconnecting given up. `status` is the kind, `message` the details.
    pub on_error: Option<
        unsafe extern "C" fn(user_data: *mut c_void, status: tether_status, message: *const c_char),
    >,
    /// The client is closed for good: always the last callback (before `user_data_free`).
    /// `undelivered` messages never went out (each got `on_send_failed`).
    pub on_closed: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            code: u16,
            reason: *const c_char,
            undelivered: usize,
        ),
    >,
    /// Envelope mode: a side of the session lost its state (the server restarted, or this
    /// process reuses the session id of an earlier one): where the delivery guarantee has a
    /// boundary, in `reset` (borrowed for the call). Called right before the `on_ready` of the
    /// link that found out. (Added after the first version of the struct: with a
    /// `struct_size` that ends before it, it reads as NULL.)
    pub on_session_reset:
        Option<unsafe extern "C" fn(user_data: *mut c_void, reset: *const tether_session_reset)>,
}

/// The application's `user_data` pointer.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);

// SAFETY: Tether never dereferences `user_data`; it only hands it back to the application's
// callbacks and finalizer. The header tells the application that these run on the
// dispatcher thread (callback mode) or the polling thread (poll mode), serially, so making
// what it points to safe to use from there is the application's side of the contract.
unsafe impl Send for UserData {}
// SAFETY: as above; shared references to a UserData only copy the pointer.
unsafe impl Sync for UserData {}

/// A valid pointer for empty payloads, so C code may pass it to memcpy.
static EMPTY: [u8; 1] = [0];

/// One client's callbacks, `user_data` and finalizer. When they may run (never before
/// `tether_client_new` stored the client, never after `tether_client_free`, one at a time)
/// is the core's handler lifecycle; this only translates events into calls.
pub(crate) struct Dispatch {
    callbacks: tether_callbacks,
    user_data: UserData,
    /// Taken by the one `finalize` that runs it.
    user_data_free: Mutex<tether_user_data_free>,
    /// Set when the client was freed from inside one of its callbacks: no further callback
    /// for the same event, and finalize once the callback returns.
    freed_in_callback: AtomicBool,
}

impl Dispatch {
    pub(crate) fn new(
        callbacks: tether_callbacks,
        user_data: *mut c_void,
        user_data_free: tether_user_data_free,
    ) -> Dispatch {
        Dispatch {
            callbacks,
            user_data: UserData(user_data),
            user_data_free: Mutex::new(user_data_free),
            freed_in_callback: AtomicBool::new(false),
        }
    }

    /// From inside a callback (the core already stopped further ones): finalize when the
    /// current one returns.
    pub(crate) fn freed_in_callback(&self) {
        self.freed_in_callback.store(true, Ordering::SeqCst);
    }

    /// Run `user_data_free`, exactly once over the client's life.
    pub(crate) fn finalize(&self) {
        let free = lock(&self.user_data_free).take();
        if let Some(free) = free {
            let user_data = self.user_data.0;
            // SAFETY: the application gave us this finalizer for this pointer; it runs once
            // (taken above), after the last callback.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe { free(user_data) }));
        }
    }

    /// Deliver one event to the application's callbacks (the core's handler: on the
    /// dispatcher thread, or inside `tether_client_poll*`).
    pub(crate) fn deliver(&self, event: Event) {
        if catch_unwind(AssertUnwindSafe(|| self.translate(event))).is_err() {
            tracing::error!("panic while delivering an event to C callbacks; event dropped");
        }
        if self.freed_in_callback.load(Ordering::SeqCst) {
            self.finalize();
        }
    }

    /// Call `f` with the callback `cb` unless it is NULL or the client was freed from an
    /// earlier callback for the same event.
    fn call<F>(&self, cb: Option<F>, f: impl FnOnce(F)) {
        if let Some(cb) = cb.filter(|_| !self.freed_in_callback.load(Ordering::SeqCst)) {
            f(cb);
        }
    }

    /// Call the application's callbacks for `event`: each slot the core routes it to
    /// (`tether_core::routing`), in order.
    fn translate(&self, event: Event) {
        for slot in routing::slots(&event) {
            self.call_slot(slot, &event);
        }
    }

    fn call_slot(&self, slot: Slot, event: &Event) {
        let cb = &self.callbacks;
        let ud = self.user_data.0;
        // SAFETY (every `unsafe` call below): the application passed these function pointers
        // in `tether_callbacks` with these exact signatures and promised they are valid for
        // the client's life; `ud` is handed back untouched; every pointer argument points to
        // memory that lives until the call returns (borrowed for the call only, as the header
        // documents).
        match (slot, event) {
            (Slot::Error(kind), _) => self.call(cb.on_error, |f| {
                let text = c_string(&routing::error_text(event));
                unsafe { f(ud, kind.into(), text.as_ptr()) }
            }),
            (Slot::Open, _) => self.call(cb.on_open, |f| unsafe { f(ud) }),
            (Slot::Ready, _) => self.call(cb.on_ready, |f| unsafe { f(ud) }),
            (_, Event::State { from, to }) => {
                self.call(cb.on_state, |f| unsafe {
                    f(ud, (*from).into(), (*to).into())
                });
            }
            (_, Event::Message(message)) => self.call(cb.on_message, |f| {
                let (bytes, kind) = match message {
                    Message::Text(t) => (t.as_bytes(), tether_message_type::TETHER_MESSAGE_TEXT),
                    Message::Binary(b) => (&b[..], tether_message_type::TETHER_MESSAGE_BINARY),
                };
                let ptr = if bytes.is_empty() {
                    EMPTY.as_ptr()
                } else {
                    bytes.as_ptr()
                };
                unsafe { f(ud, ptr, bytes.len(), kind) }
            }),
            (_, Event::Written { up_to }) => {
                self.call(cb.on_written, |f| unsafe { f(ud, up_to.0) })
            }
            (_, Event::Acked { id }) => self.call(cb.on_acked, |f| unsafe { f(ud, id.0) }),
            (_, Event::SendFailed { id, reason }) => self.call(cb.on_send_failed, |f| {
                let text = c_string(&reason.to_string());
                unsafe { f(ud, id.0, reason.kind().into(), text.as_ptr()) }
            }),
            (
                _,
                Event::Disconnected {
                    reason,
                    will_reconnect,
                },
            ) => self.call(cb.on_close, |f| {
                let text = c_string(&close_reason(reason));
                unsafe { f(ud, reason.close_code(), text.as_ptr(), *will_reconnect) }
            }),
            (_, Event::Reconnecting { attempt, delay }) => self
                .call(cb.on_reconnecting, |f| unsafe {
                    f(ud, *attempt, crate::util::to_ms(*delay))
                }),
            (
                _,
                Event::Closed {
                    reason,
                    undelivered,
                },
            ) => self.call(cb.on_closed, |f| {
                let text = c_string(&close_reason(reason));
                unsafe { f(ud, reason.close_code(), text.as_ptr(), *undelivered) }
            }),
            (_, Event::SessionReset(reset)) => self.call(cb.on_session_reset, |f| {
                let reset = tether_session_reset::from(reset);
                unsafe { f(ud, &reset) }
            }),
            // No C callback for this kind (inbound rejections are reported as errors), or a
            // kind this version does not know (Event is non-exhaustive).
            _ => {}
        }
    }
}

/// The reason text for `on_close` / `on_closed`: the close frame's reason when one was
/// exchanged, otherwise a description of what happened.
fn close_reason(d: &Disconnect) -> String {
    d.close_reason()
        .map_or_else(|| d.to_string(), str::to_owned)
}
