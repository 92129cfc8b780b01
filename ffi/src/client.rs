//! `tether_client`: create, send, close, poll, inspect, free.

use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tether_core::{Bytes, Client, DeliveryStatus, EventDelivery, MessageId, State};

use crate::callbacks::{tether_callbacks, tether_state, tether_user_data_free, Dispatch};
use crate::config::{self, tether_config, tether_dispatch};
use crate::registry::{Registry, TAG_CLIENT};
use crate::sized;
use crate::status::tether_status::{self, *};
use crate::status::Fail;
use crate::util::{bytes_arg, ms, required, str_arg, to_us, write_opt, LastError};

/// A resilient WebSocket client (opaque). Create with `tether_client_new`, free with
/// `tether_client_free`. The pointer is a handle, not an address: never dereference it.
pub struct tether_client {
    _opaque: [u8; 0],
}

/// A snapshot of a client's counters (`tether_client_stats`). Fields are only ever appended.
/// Initialise it with `TETHER_STATS_INIT` or `tether_stats_init(&stats)` (they set
/// `struct_size`) before passing it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tether_stats {
    /// `sizeof(tether_stats)` as your program was compiled (set by `TETHER_STATS_INIT` and
    /// `tether_stats_init`). The library writes only the fields that fit in it, so a program
    /// built against an older, shorter struct is never overflowed by a newer library. A size
    /// smaller than the first version's fields (0 included) is refused with
    /// `TETHER_ERR_INVALID_ARGUMENT`. Left as it is by `tether_client_stats`.
    pub struct_size: usize,
    /// Messages written and flushed to the socket.
    pub messages_sent: u64,
    /// Payload bytes written and flushed.
    pub bytes_sent: u64,
    /// Data messages received.
    pub messages_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Successful reconnects (opens after the first).
    pub reconnects: u64,
    /// Messages reported with `on_send_failed`.
    pub send_failures: u64,
    /// Envelope mode: messages acknowledged by the server.
    pub messages_acked: u64,
    /// Messages written again (after a reconnect or an ack timeout).
    pub messages_resent: u64,
    /// Envelope mode: inbound duplicates dropped.
    pub duplicates_dropped: u64,
    /// Envelope mode: inbound frames refused (bad signature, malformed).
    pub inbound_rejected: u64,
    /// Envelope mode: messages written and awaiting their ack now.
    pub awaiting_ack: u64,
    /// Messages in the outbox now (including those being written).
    pub outbox_messages: u64,
    /// Bytes in the outbox now.
    pub outbox_bytes: u64,
    /// Highest outbox depth seen, in messages.
    pub outbox_high_water_messages: u64,
    /// Highest outbox depth seen, in bytes.
    pub outbox_high_water_bytes: u64,
    /// Round-trip time of the last answered WebSocket ping, in microseconds; 0 if none yet.
    pub last_rtt_us: u64,
    /// Envelope mode: round-trip time of the last app-level ping, in microseconds; 0 if none.
    pub last_app_rtt_us: u64,
}

/// Where one sent message stands (`tether_client_delivery_status`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_delivery {
    /// Not an id this client issued, or too old to remember.
    TETHER_DELIVERY_UNKNOWN = 0,
    /// Waiting in the outbox.
    TETHER_DELIVERY_QUEUED = 1,
    /// Written to the socket (envelope mode: awaiting the ack).
    TETHER_DELIVERY_WRITTEN = 2,
    /// Acknowledged by the server (envelope mode).
    TETHER_DELIVERY_ACKED = 3,
    /// Will never be delivered (`on_send_failed` tells why).
    TETHER_DELIVERY_FAILED = 4,
}

pub(crate) struct ClientInner {
    /// The core client; taken (None) by `tether_client_free`. Calls hold the read lock only
    /// while they use it, never while a user callback runs (a poll holds a reference
    /// instead, so that a callback may free the client).
    client: RwLock<Option<Arc<Client>>>,
    dispatch: Arc<Dispatch>,
    poll_mode: bool,
    max_outbound: usize,
    last_error: LastError,
}

impl ClientInner {
    /// Run `f` on the core client, or fail with CLOSED if it is being freed.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&Client) -> R) -> Result<R, Fail> {
        let guard: RwLockReadGuard<'_, Option<Arc<Client>>> =
            self.client.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_deref() {
            Some(client) => Ok(f(client)),
            None => Err(Fail::new(TETHER_ERR_CLOSED, "the client is being freed")),
        }
    }

    /// A reference to the core client (for calls that run callbacks), or CLOSED.
    fn core(&self) -> Result<Arc<Client>, Fail> {
        let guard = self.client.read().unwrap_or_else(PoisonError::into_inner);
        guard
            .clone()
            .ok_or_else(|| Fail::new(TETHER_ERR_CLOSED, "the client is being freed"))
    }

    /// `with_core` for a core call that can fail: both levels of failure (being freed, the
    /// call refused) become one `Fail`.
    fn try_core<T, E>(&self, f: impl FnOnce(&Client) -> Result<T, E>) -> Result<T, Fail>
    where
        for<'e> Fail: From<&'e E>,
    {
        self.with_core(f)?.map_err(|e| Fail::from(&e))
    }
}

static CLIENTS: Registry<ClientInner> = Registry::new(TAG_CLIENT);

/// The frame of most exports: look the client up (a NULL or stale handle returns its status
/// at once: there is no client to record a message on), run `body`, then either pass its
/// value to `on_ok` (which writes the outputs) and return `TETHER_OK`, or record the failure
/// as the client's last error and return its status. A panic becomes `TETHER_ERR_PANIC` (the
/// export's boundary).
pub(crate) fn call<T>(
    client: *const tether_client,
    body: impl FnOnce(&ClientInner) -> Result<T, Fail>,
    on_ok: impl FnOnce(T),
) -> tether_status {
    CLIENTS.call(client, |inner| match body(&inner) {
        Ok(value) => {
            on_ok(value);
            TETHER_OK
        }
        Err(fail) => inner.last_error.record(fail),
    })
}

/// Create a client and start connecting in the background (this call does not block on the
/// network). On success `*client_out` receives the handle, and from then on the callbacks
/// run (never before `*client_out` is written, so it is safe to pass the address of a field
/// your callbacks read). `callbacks` is copied; `user_data` is passed to every callback, and
/// `user_data_free` (may be NULL) runs exactly once, in `tether_client_free`, after the last
/// callback.
///
/// Ownership: borrows `config` (it may be freed right after); copies `*callbacks` (its
/// `struct_size` bytes); `user_data` stays yours until `user_data_free` runs in
/// `tether_client_free` (never if this call fails); the client written to `*client_out` is yours:
/// free it with `tether_client_free`.
/// Threads: any thread; not concurrently with a setter on the same config. The client's callbacks
/// then run on its dispatcher thread or the polling thread, never on the thread of this call before
/// it returns.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config`, `callbacks` or `client_out`),
/// `TETHER_ERR_INVALID_HANDLE` (a freed config), `TETHER_ERR_INVALID_ARGUMENT`
/// (`callbacks->struct_size` 0 or below the first version of the struct), `TETHER_ERR_INVALID_URL`
/// / `TETHER_ERR_INVALID_CONFIG`, `TETHER_ERR_INTERNAL`; the reason is in
/// `tether_config_last_error(config)`. On failure nothing was created and `user_data_free` is not
/// called.
#[no_mangle]
pub extern "C" fn tether_client_new(
    config: *const tether_config,
    callbacks: *const tether_callbacks,
    user_data: *mut c_void,
    user_data_free: tether_user_data_free,
    client_out: *mut *mut tether_client,
) -> tether_status {
    config::CONFIGS.call(config, |cfg| {
        let out = client_out.cast::<MaybeUninit<*mut tether_client>>();
        let user_data = (user_data, user_data_free);
        // SAFETY: the header contract for `callbacks` and `client_out` (NULL is checked).
        match unsafe { new_client(&cfg, callbacks, user_data, out) } {
            Ok(()) => TETHER_OK,
            Err(fail) => cfg.last_error.record(fail),
        }
    })
}

/// The body of `tether_client_new` once the config is found (its failures are recorded on the
/// config).
///
/// # Safety
/// `callbacks` is NULL or a valid `tether_callbacks` of its `struct_size`; `out` is NULL or
/// writable (so readable as memory; it may be uninitialised).
unsafe fn new_client(
    cfg: &config::ConfigInner,
    callbacks: *const tether_callbacks,
    (user_data, user_data_free): (*mut c_void, tether_user_data_free),
    out: *mut MaybeUninit<*mut tether_client>,
) -> Result<(), Fail> {
    if callbacks.is_null() || out.is_null() {
        return Err(Fail::new(
            TETHER_ERR_NULL_PARAMETER,
            "tether_client_new: callbacks and client_out must not be NULL",
        ));
    }
    // SAFETY: non-NULL (checked), and valid for its `struct_size` by this function's contract;
    // it is plain data (function pointers), copied here.
    let callbacks = unsafe { sized::read_callbacks(callbacks) }?;
    let built = cfg.build()?;
    let dispatch = Arc::new(Dispatch::new(callbacks, user_data, user_data_free));
    let poll_mode = built.dispatch == tether_dispatch::TETHER_DISPATCH_POLL;
    let inner = Arc::new(ClientInner {
        client: RwLock::new(None),
        dispatch: dispatch.clone(),
        poll_mode,
        max_outbound: built.config.max_outbound_message_size(),
        last_error: LastError::default(),
    });
    let token = CLIENTS.insert(inner.clone());
    let token = token.ok_or_else(|| Fail::new(TETHER_ERR_INTERNAL, "too many live clients"))?;
    let delivery = if poll_mode {
        EventDelivery::Poll
    } else {
        EventDelivery::callback(move |event| dispatch.deliver(event))
    };
    // The core runs no callback before `connect` returns; the handle must be in `*client_out`
    // by then, and calls made from a callback must find the core client: write the handle
    // first (restored on failure, so outputs change only on success) and hold the slot's write
    // lock until the client is in it.
    // SAFETY: non-NULL (checked) and writable, so readable, by this function's contract.
    let previous = unsafe { out.read() };
    // SAFETY: as above.
    unsafe { out.write(MaybeUninit::new(std::ptr::without_provenance_mut(token))) };
    let mut slot = inner.client.write().unwrap_or_else(PoisonError::into_inner);
    match Client::connect(built.config, delivery) {
        Ok(client) => {
            *slot = Some(Arc::new(client));
            Ok(())
        }
        Err(e) => {
            drop(slot);
            drop(CLIENTS.remove(token));
            // SAFETY: as above; puts back what was there.
            unsafe { out.write(previous) };
            Err(Fail::from(&e))
        }
    }
}

/// Close the client and release it. NULL and already-freed handles are ignored.
///
/// From any thread other than the client's callbacks: starts a graceful close (code 1000)
/// if none is under way, waits for it (at most the close timeout plus 2 s), joins the
/// dispatcher thread, then runs `user_data_free`. Callbacks still due run during the close
/// (on the dispatcher thread: `on_send_failed` for undelivered messages, then `on_closed`);
/// none runs after this returns. In poll mode, events not yet polled are discarded (to see
/// them: `tether_client_close`, poll until `on_closed`, then free).
///
/// From inside one of this client's callbacks: does not wait; starts the close, no further
/// callback is called, and `user_data_free` runs right after the current callback returns.
///
/// Calls racing with free on other threads are safe: they complete, or fail with
/// `TETHER_ERR_CLOSED` / `TETHER_ERR_INVALID_HANDLE`; free waits for calls in progress
/// (`tether_client_wait_acked` or a `TETHER_OVERFLOW_WAIT` send may make it wait up to their
/// timeout).
///
/// Ownership: consumes the handle (invalid afterwards: later calls get
/// `TETHER_ERR_INVALID_HANDLE`); runs `user_data_free` exactly once.
/// Threads: any thread, including from inside one of the client's own callbacks (then it does not
/// wait); from elsewhere it blocks for the close, so do not hold a lock your callbacks take.
/// Errors: none: NULL and already-freed handles are ignored.
#[no_mangle]
pub extern "C" fn tether_client_free(client: *mut tether_client) {
    ffi_boundary!((), {
        if client.is_null() {
            return;
        }
        let token = client.addr();
        let Some(inner) = CLIENTS.remove(token) else {
            return;
        };
        // Close first, so that blocked calls (wait_acked, waiting sends) resolve and release
        // their read locks.
        let _ = inner.with_core(|c| c.close(1000, ""));
        let core = inner
            .client
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(core) = core else {
            inner.dispatch.finalize();
            return;
        };
        if core.in_handler() {
            // The core stops further callbacks; the current one is the last. The graceful
            // close goes on in the background.
            core.shutdown(Duration::ZERO);
            inner.dispatch.freed_in_callback();
        } else {
            // Joins the dispatcher after it delivered Closed (unless the wait timed out),
            // waits for a callback still running elsewhere, and stops all further ones.
            core.shutdown(core.close_bound());
            inner.dispatch.finalize();
        }
    })
}

/// Queue a text message of `len` bytes of UTF-8 at `text` (not necessarily NUL-terminated;
/// may be NULL when `len` is 0). The bytes are copied before this returns. On success
/// `*id_out` (may be NULL) receives the message id (1, 2, 3... in send order); the message's
/// fate is reported later by `on_written` / `on_acked` or `on_send_failed`.
///
/// Ownership: `text` is borrowed for the call only (copied before it returns); `*id_out` is written
/// on success.
/// Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
/// `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or the data NULL with a non-zero `len`),
/// `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8), `TETHER_ERR_TOO_LARGE`,
/// `TETHER_ERR_QUEUE_FULL`, `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued, the
/// reason is in `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_send_text(
    client: *mut tether_client,
    text: *const c_char,
    len: usize,
    id_out: *mut u64,
) -> tether_status {
    call(
        client,
        |inner| {
            check_buffer(text.cast(), len, inner.max_outbound)?;
            // SAFETY: header contract: `len` readable bytes at `text` for the call.
            let bytes = unsafe { bytes_arg(text.cast(), len, "text") }?;
            let text = std::str::from_utf8(bytes).map_err(|e| {
                Fail::new(
                    TETHER_ERR_INVALID_ARGUMENT,
                    format!("text is not valid UTF-8: {e}"),
                )
            })?;
            inner.try_core(|c| c.send_text(text.to_owned()))
        },
        // SAFETY: header contract: `id_out` is NULL or writable.
        |id| unsafe { write_opt(id_out, id.0) },
    )
}

/// Queue a binary message of `len` bytes at `data` (may be NULL when `len` is 0). Same
/// contract as `tether_client_send_text`, without the UTF-8 check. The bytes are copied; to
/// hand over a large buffer without a copy, see `tether_client_send_binary_owned`.
///
/// Ownership: `data` is borrowed for the call only (copied before it returns); `*id_out` is written
/// on success.
/// Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
/// `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or the data NULL with a non-zero `len`),
/// `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_TOO_LARGE`, `TETHER_ERR_QUEUE_FULL`,
/// `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued, the reason is in
/// `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_send_binary(
    client: *mut tether_client,
    data: *const u8,
    len: usize,
    id_out: *mut u64,
) -> tether_status {
    call(
        client,
        |inner| {
            check_buffer(data, len, inner.max_outbound)?;
            // SAFETY: header contract: `len` readable bytes at `data` for the call.
            let bytes = unsafe { bytes_arg(data, len, "data") }?;
            inner.try_core(|c| c.send_binary(bytes.to_vec()))
        },
        // SAFETY: header contract: `id_out` is NULL or writable.
        |id| unsafe { write_opt(id_out, id.0) },
    )
}

/// Releases a buffer handed over with `tether_client_send_binary_owned`: called with the
/// `free_ctx`, `data` and `len` given to that call, exactly once. It may run on any thread
/// (yours, inside the send call; one of Tether's I/O threads; another thread sending on the
/// same client), concurrently with your other code and with other release calls. It must
/// return normally (no C++ exception, no `longjmp`), should be quick, and must not call any
/// `tether_` function (Tether may hold a client's internal lock while it runs).
pub type tether_buffer_free =
    Option<unsafe extern "C" fn(free_ctx: *mut c_void, data: *mut u8, len: usize)>;

/// Queue a binary message of `len` bytes at `data` without copying them: Tether takes the
/// buffer over and writes from it directly. Worth it for large messages (several KiB and
/// up); for small ones the copy costs little and `tether_client_send_binary` needs no
/// release function.
///
/// **The buffer is always consumed, whatever this returns.** From the call on it belongs to
/// Tether: do not write to it or free it yourself. Tether calls `free_fn(free_ctx, data,
/// len)` exactly once, when it no longer needs the bytes:
/// - on `TETHER_OK`, after the message was written (raw mode) or acknowledged (envelope
///   mode), or once it failed (`on_send_failed`), or when the client's session ends (which
///   may be after `tether_client_free` returns, if the close timed out); possibly before this
///   call returns, and on any thread (see `tether_buffer_free`);
/// - on any error (`TETHER_ERR_NULL_PARAMETER` for a NULL `client`, or `data` NULL with a
///   non-zero `len`; `_INVALID_HANDLE`; `_TOO_LARGE`; `_QUEUE_FULL`; `_NOT_READY`; `_CLOSED`),
///   before this call returns, on the calling thread: nothing was queued. Even
///   `TETHER_ERR_PANIC` (a bug in Tether) releases it, at the latest when the session ends.
///
/// So the caller never frees the buffer after handing it over, on any path; to retry after
/// `TETHER_ERR_QUEUE_FULL`, fill a buffer again (a `free_fn` that returns buffers to a pool
/// makes that cheap). If the process exits while messages are still queued, their `free_fn`
/// is not called.
///
/// `free_fn` may be NULL: the bytes are then never released and must stay valid and
/// unchanged for the rest of the process (static data, such as a constant table or a string
/// literal); `free_ctx` is ignored. `data` may be NULL when `len` is 0 (`free_fn` still runs,
/// with NULL). Reading the buffer while Tether owns it is fine. On success `*id_out` (may be
/// NULL) receives the message id; the message's fate is reported as for
/// `tether_client_send_text`. Thread-safe; callable from callbacks.
///
/// Ownership: takes `data` over on every path, errors included: `free_fn(free_ctx, data, len)` runs
/// exactly once (see above); `*id_out` is written on success.
/// Threads: any thread, concurrently, and from inside callbacks. Never blocks, except with
/// `TETHER_OVERFLOW_WAIT` (up to its timeout); never runs a callback itself. `free_fn` may run on
/// any thread.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or `data` NULL with a non-zero `len`),
/// `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_TOO_LARGE`, `TETHER_ERR_QUEUE_FULL`,
/// `TETHER_ERR_NOT_READY`, `TETHER_ERR_CLOSED`; nothing was queued and the buffer is released
/// before the call returns.
#[no_mangle]
pub extern "C" fn tether_client_send_binary_owned(
    client: *mut tether_client,
    data: *mut u8,
    len: usize,
    free_fn: tether_buffer_free,
    free_ctx: *mut c_void,
    id_out: *mut u64,
) -> tether_status {
    // First, before anything that can fail or panic: from here on every way out drops
    // `buffer` (or the `Bytes` made of it) exactly once, and its Drop calls `free_fn`.
    // A panic in `call` unwinds through the closure that owns it, so `_PANIC` releases it too.
    let buffer = OwnedBuffer {
        data,
        len,
        free_fn,
        free_ctx,
    };
    call(
        client,
        move |inner| {
            check_buffer(buffer.data, buffer.len, inner.max_outbound)?;
            // No copy: the Bytes points into the caller's buffer and owns `buffer`.
            let bytes = Bytes::from_owner(buffer);
            inner.try_core(|c| c.send_binary(bytes))
        },
        // SAFETY: header contract: `id_out` is NULL or writable.
        |id| unsafe { write_opt(id_out, id.0) },
    )
}

/// A C buffer handed over by `tether_client_send_binary_owned`, released by its Drop.
///
/// Invariant (the caller's side of the contract, in the header): unless `data` is NULL,
/// `data` points to `len` readable bytes that nobody writes or frees until `free_fn` runs.
/// The export turns it into `Bytes` only after `check_buffer` (non-NULL when `len > 0`,
/// `len` within the outbound limit, itself far below `isize::MAX`).
struct OwnedBuffer {
    data: *mut u8,
    len: usize,
    free_fn: tether_buffer_free,
    free_ctx: *mut c_void,
}

// SAFETY: Tether only reads the bytes (shared `&[u8]` from whatever thread writes or drops
// the message) and hands `free_ctx` back to `free_fn` untouched; the header tells the caller
// that the buffer must not be written or freed while Tether owns it, and that `free_fn` may
// run on any thread. Nothing here is tied to the thread that made it.
unsafe impl Send for OwnedBuffer {}
// SAFETY: as above: through `&OwnedBuffer` only the bytes are read (never written).
unsafe impl Sync for OwnedBuffer {}

impl AsRef<[u8]> for OwnedBuffer {
    fn as_ref(&self) -> &[u8] {
        // The checks mirror `check_buffer`, so that even a misuse inside this crate could not
        // build a slice from a NULL pointer or an impossible length.
        if self.len == 0 || self.data.is_null() || self.len > isize::MAX as usize {
            return &[];
        }
        // SAFETY: non-NULL, len <= isize::MAX, and by the type's invariant `len` readable
        // bytes that stay valid and unmodified until Drop (which needs `&mut self`, so no
        // borrow from here outlives it). u8 has no alignment requirement.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for OwnedBuffer {
    fn drop(&mut self) {
        if let Some(free_fn) = self.free_fn {
            // SAFETY: the caller gave us this function for exactly these arguments; Drop runs
            // once per value, and the value is never copied (no Clone), so this is the one
            // call the header promises. It is C code and cannot unwind into Rust.
            unsafe { free_fn(self.free_ctx, self.data, self.len) }
        }
    }
}

/// Refuse NULL-with-length and oversized buffers before touching (or copying) any byte.
fn check_buffer(ptr: *const u8, len: usize, limit: usize) -> Result<(), Fail> {
    if ptr.is_null() && len > 0 {
        return Err(Fail::new(
            TETHER_ERR_NULL_PARAMETER,
            format!("message pointer is NULL with a length of {len}"),
        ));
    }
    if len > limit {
        return Err(Fail::new(
            TETHER_ERR_TOO_LARGE,
            format!("message of {len} bytes exceeds the outbound limit of {limit} bytes"),
        ));
    }
    Ok(())
}

/// Start a graceful close: refuse new sends, drain the outbox (up to the close timeout),
/// send a close frame with `code` (1000 or 3000-4999) and `reason` (NUL-terminated UTF-8, at
/// most 123 bytes; NULL means empty), wait for the server's. Returns at once; the end is
/// reported by `on_closed` (after `on_send_failed` for each message left). Closing again is a
/// no-op.
///
/// Ownership: `reason` is borrowed for the call only (copied).
/// Threads: any thread, concurrently, and from inside callbacks. Returns at once (never waits for
/// the network).
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_ARGUMENT`
/// (code or reason), `TETHER_ERR_CLOSED` (being freed); the reason in `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_close(
    client: *mut tether_client,
    code: u16,
    reason: *const c_char,
) -> tether_status {
    call(
        client,
        |inner| {
            let reason = if reason.is_null() {
                ""
            } else {
                // SAFETY: header contract: a NUL-terminated string live for the call.
                unsafe { str_arg(reason, "reason") }?
            };
            inner.try_core(|c| c.close(code, reason))
        },
        |()| {},
    )
}

/// The current state.
///
/// Ownership: borrows the handle only.
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: none: a NULL or freed handle reads as `TETHER_STATE_CLOSED`.
#[no_mangle]
pub extern "C" fn tether_client_state(client: *const tether_client) -> tether_state {
    ffi_boundary!(tether_state::TETHER_STATE_CLOSED, {
        CLIENTS
            .lookup(client)
            .ok()
            .and_then(|inner| inner.with_core(|c| c.state()).ok())
            .unwrap_or(State::Closed)
            .into()
    })
}

/// Write a snapshot of the counters to `*stats_out`.
///
/// Ownership: writes your `*stats_out`, only its first `struct_size` bytes (`struct_size` itself is
/// left as you set it).
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`client` or `stats_out`), `TETHER_ERR_INVALID_HANDLE`,
/// `TETHER_ERR_INVALID_ARGUMENT` (`stats_out->struct_size` 0 or below the first version of the
/// struct: nothing written), `TETHER_ERR_CLOSED` (being freed); the reason in
/// `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_stats(
    client: *const tether_client,
    stats_out: *mut tether_stats,
) -> tether_status {
    call(
        client,
        |inner| {
            required(stats_out, "stats_out")?;
            // SAFETY: non-NULL (checked); the caller promises a valid `tether_stats`.
            let size = unsafe { sized::stats_size(stats_out) }?;
            inner.with_core(|c| (size, c.stats()))
        },
        |(size, s)| {
            let out = tether_stats {
                struct_size: size,
                messages_sent: s.messages_sent,
                bytes_sent: s.bytes_sent,
                messages_received: s.messages_received,
                bytes_received: s.bytes_received,
                reconnects: s.reconnects,
                send_failures: s.send_failures,
                messages_acked: s.messages_acked,
                messages_resent: s.messages_resent,
                duplicates_dropped: s.duplicates_dropped,
                inbound_rejected: s.inbound_rejected,
                awaiting_ack: s.awaiting_ack,
                outbox_messages: s.outbox_messages,
                outbox_bytes: s.outbox_bytes,
                outbox_high_water_messages: s.outbox_high_water_messages,
                outbox_high_water_bytes: s.outbox_high_water_bytes,
                last_rtt_us: s.last_rtt.map_or(0, |d| to_us(d).max(1)),
                last_app_rtt_us: s.last_app_rtt.map_or(0, |d| to_us(d).max(1)),
            };
            // SAFETY: non-NULL (checked); the caller promises `struct_size` writable bytes.
            unsafe { sized::write_stats(stats_out, out, size) }
        },
    )
}

/// Copy the message of the last failed call on this client into `buf` (`len` bytes) as a
/// NUL-terminated UTF-8 string; empty if no call failed yet. The message is stored per
/// client (not per thread); calls that succeed leave it unchanged, and with several threads
/// failing at once it is one of their messages. `*needed_out` (may be NULL) receives the
/// buffer size that holds all of it, NUL included. Returns `TETHER_OK`, or
/// `TETHER_ERR_BUFFER_TOO_SMALL` with a truncated (still NUL-terminated, unless `len` is 0)
/// copy; `buf` may be NULL when `len` is 0 (a size query).
///
/// Ownership: copies into your `buf`; the stored message stays the client's.
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy, `*needed_out` set),
/// `TETHER_ERR_NULL_PARAMETER` (`client` NULL, or `buf` NULL with a non-zero `len`),
/// `TETHER_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_last_error(
    client: *const tether_client,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    // SAFETY: header contract: `buf` NULL or writable for `len` bytes, `needed_out` NULL or
    // writable.
    CLIENTS.call(client, |inner| unsafe {
        inner.last_error.copy_to(buf, len, needed_out)
    })
}

/// Poll mode: run the callbacks of up to `max_events` pending events on this thread, without
/// waiting (0 means all the events pending now; events arriving meanwhile wait for the next
/// call). `*ran_out` (may be NULL) receives the number of events handled (an event whose
/// callback is NULL counts too). Cheap when nothing is pending. If a callback frees the
/// client, the call returns `TETHER_OK` right after that callback, and the events it had
/// already taken are discarded.
///
/// Ownership: borrows the handle; what a callback receives is borrowed for that call only.
/// Threads: the calling thread runs the callbacks; one poller at a time per client, never from
/// inside its own callbacks. Does not wait.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_WRONG_MODE` (a
/// callback-mode client), `TETHER_ERR_REENTRANT` (called from inside one of this client's
/// callbacks, or while another thread polls it); the reason in `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_poll(
    client: *mut tether_client,
    max_events: usize,
    ran_out: *mut usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        poll(client, max_events, Duration::ZERO, ran_out)
    })
}

/// Poll mode: like `tether_client_poll`, but if no event is pending, wait up to `timeout_ms`
/// for the first one (then handle it and, with `max_events` 0, all that are pending by then).
/// Returns `TETHER_OK` (with `*ran_out` 0 if none came).
///
/// Ownership: borrows the handle; what a callback receives is borrowed for that call only.
/// Threads: the calling thread runs the callbacks; one poller at a time per client, never from
/// inside its own callbacks. Blocks up to `timeout_ms` when nothing is pending.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_WRONG_MODE` (a
/// callback-mode client), `TETHER_ERR_REENTRANT` (called from inside one of this client's
/// callbacks, or while another thread polls it); the reason in `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_client_poll_timeout(
    client: *mut tether_client,
    max_events: usize,
    timeout_ms: u64,
    ran_out: *mut usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        poll(client, max_events, ms(timeout_ms), ran_out)
    })
}

fn poll(
    client: *mut tether_client,
    max_events: usize,
    wait: Duration,
    ran_out: *mut usize,
) -> tether_status {
    if wait.is_zero() && is_idle(client) {
        // SAFETY: header contract: `ran_out` is NULL or writable.
        unsafe { write_opt(ran_out, 0) };
        return TETHER_OK;
    }
    call(
        client,
        |inner| {
            // A reference, not the read lock: a callback may free the client.
            let core = inner.core()?;
            core.dispatch(max_events, wait, &mut |event| inner.dispatch.deliver(event))
                .map_err(|e| {
                    let fail = Fail::from(&e);
                    Fail::new(fail.status, format!("tether_client_poll: {}", fail.message))
                })
        },
        // SAFETY: header contract: `ran_out` is NULL or writable.
        |ran| unsafe { write_opt(ran_out, ran) },
    )
}

/// The idle poll's fast path: true when `client` is a live poll-mode client that nobody polls
/// and that has no event pending, so that a poll would do nothing. It runs under the
/// registry's read lock (no reference count taken), reads the event queue's length without
/// taking anything from it, and never blocks there: the core's lock is only tried (a free
/// holding or awaiting it would otherwise make every handle lookup in the process wait
/// behind this one). Anything else (an error to report, an event, a poll running here or on
/// another thread, a busy lock) is left to the full path, which checks again.
fn is_idle(client: *const tether_client) -> bool {
    !client.is_null()
        && CLIENTS
            .with(client.addr(), |inner| {
                inner.poll_mode
                    && inner
                        .client
                        .try_read()
                        .is_ok_and(|core| core.as_ref().is_some_and(|c| c.poll_is_idle()))
            })
            .unwrap_or(false)
}

/// Wait up to `timeout_ms` until the client is closed (after `tether_client_close`, or when
/// reconnecting stopped for good): `TETHER_OK`, or `TETHER_ERR_TIMEOUT`. In callback mode
/// `on_closed` may still be about to run on the dispatcher thread when this returns.
///
/// Ownership: borrows the handle only.
/// Threads: any thread; blocks up to `timeout_ms` (from inside a callback it holds up the client's
/// other callbacks).
/// Errors: `TETHER_ERR_TIMEOUT`, `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`,
/// `TETHER_ERR_CLOSED` (being freed).
#[no_mangle]
pub extern "C" fn tether_client_wait_closed(
    client: *const tether_client,
    timeout_ms: u64,
) -> tether_status {
    call(
        client,
        |inner| {
            if inner.with_core(|c| c.wait_closed(ms(timeout_ms)))? {
                Ok(())
            } else {
                Err(Fail::new(
                    TETHER_ERR_TIMEOUT,
                    "the client did not close within the timeout",
                ))
            }
        },
        |()| {},
    )
}

/// Envelope mode: block until the server acknowledges message `id` (`TETHER_OK`), the
/// message fails (its `on_send_failed` status, e.g. `TETHER_ERR_ACK_TIMEOUT`), or
/// `timeout_ms` passes (`TETHER_ERR_TIMEOUT`; the message is still pending). Raw mode:
/// `TETHER_ERR_NOT_SUPPORTED`. Unknown id: `TETHER_ERR_INVALID_ARGUMENT`. Blocking: avoid
/// calling it from a callback (it would hold up the other callbacks).
///
/// Ownership: borrows the handle only.
/// Threads: any thread; blocks up to `timeout_ms` (from inside a callback it holds up the client's
/// other callbacks).
/// Errors: `TETHER_ERR_TIMEOUT` (still pending), the message's `on_send_failed` status
/// (`TETHER_ERR_ACK_TIMEOUT`, `_CLOSED`, `_DROPPED`, `_CONNECTION_FAILED`, `_REJECTED`),
/// `TETHER_ERR_NOT_SUPPORTED` (raw mode), `TETHER_ERR_INVALID_ARGUMENT` (an unknown id),
/// `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_client_wait_acked(
    client: *const tether_client,
    id: u64,
    timeout_ms: u64,
) -> tether_status {
    call(
        client,
        |inner| inner.try_core(|c| c.wait_acked(MessageId(id), ms(timeout_ms))),
        |()| {},
    )
}

/// Where message `id` stands now, written to `*delivery_out` (a `tether_delivery`). Never
/// blocks.
///
/// Ownership: writes your `*delivery_out` on success.
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`client` or `delivery_out`), `TETHER_ERR_INVALID_HANDLE`,
/// `TETHER_ERR_CLOSED` (being freed).
#[no_mangle]
pub extern "C" fn tether_client_delivery_status(
    client: *const tether_client,
    id: u64,
    delivery_out: *mut tether_delivery,
) -> tether_status {
    call(
        client,
        |inner| {
            required(delivery_out, "delivery_out")?;
            inner.with_core(|c| match c.delivery_status(MessageId(id)) {
                DeliveryStatus::Unknown => tether_delivery::TETHER_DELIVERY_UNKNOWN,
                DeliveryStatus::Queued => tether_delivery::TETHER_DELIVERY_QUEUED,
                DeliveryStatus::Written => tether_delivery::TETHER_DELIVERY_WRITTEN,
                DeliveryStatus::Acked => tether_delivery::TETHER_DELIVERY_ACKED,
                DeliveryStatus::Failed(_) => tether_delivery::TETHER_DELIVERY_FAILED,
                // Should core learn a new status, report it as unknown rather than break.
                #[allow(unreachable_patterns)]
                _ => tether_delivery::TETHER_DELIVERY_UNKNOWN,
            })
        },
        // SAFETY: non-NULL (checked); the caller promises it is writable.
        |d| unsafe { delivery_out.write(d) },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts release calls in the context it is given, and checks the arguments.
    unsafe extern "C" fn count_release(ctx: *mut c_void, data: *mut u8, len: usize) {
        // SAFETY: the tests pass a pointer to a live AtomicUsize as the context.
        let calls = unsafe { &*ctx.cast::<AtomicUsize>() };
        calls.fetch_add(1, Ordering::SeqCst);
        assert!(len == 0 || !data.is_null());
    }

    fn owned(data: &mut [u8], calls: &AtomicUsize) -> OwnedBuffer {
        OwnedBuffer {
            data: data.as_mut_ptr(),
            len: data.len(),
            free_fn: Some(count_release),
            free_ctx: std::ptr::from_ref(calls).cast_mut().cast(),
        }
    }

    #[test]
    fn an_owned_buffer_is_released_once_after_the_last_clone() {
        let calls = AtomicUsize::new(0);
        let mut data = *b"payload";
        let bytes = Bytes::from_owner(owned(&mut data, &calls));
        assert_eq!(&bytes[..], b"payload");
        assert_eq!(bytes.as_ptr(), data.as_ptr(), "no copy");
        let clone = bytes.clone();
        let slice = bytes.slice(1..3);
        drop(bytes);
        drop(clone);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "a clone is still alive");
        // The last reference may go away on another thread (an I/O thread, in real use).
        std::thread::spawn(move || drop(slice)).join().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_owned_buffer_never_made_into_bytes_is_released_too() {
        let calls = AtomicUsize::new(0);
        let mut data = [1u8, 2, 3];
        drop(owned(&mut data, &calls));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // NULL with a length never becomes a slice; NULL free_fn is never called.
        let none = OwnedBuffer {
            data: std::ptr::null_mut(),
            len: 5,
            free_fn: None,
            free_ctx: std::ptr::null_mut(),
        };
        assert!(none.as_ref().is_empty());
        drop(Bytes::from_owner(none));
    }

    #[test]
    fn send_owned_on_a_null_or_stale_handle_releases_the_buffer() {
        let calls = AtomicUsize::new(0);
        let ctx = std::ptr::from_ref(&calls).cast_mut().cast();
        let mut data = *b"abc";
        let mut id = 0u64;
        let forged = std::ptr::without_provenance_mut::<tether_client>(0x1235);
        for (n, (client, want)) in [
            (std::ptr::null_mut(), TETHER_ERR_NULL_PARAMETER),
            (forged, TETHER_ERR_INVALID_HANDLE),
        ]
        .into_iter()
        .enumerate()
        {
            let (ptr, len) = (data.as_mut_ptr(), data.len());
            let st = tether_client_send_binary_owned(
                client,
                ptr,
                len,
                Some(count_release),
                ctx,
                &mut id,
            );
            assert_eq!(st, want);
            assert_eq!(
                calls.load(Ordering::SeqCst),
                n + 1,
                "released before returning"
            );
        }
        assert_eq!(id, 0, "outputs untouched on failure");
    }
}
