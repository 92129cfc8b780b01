//! `tether_client`: create, send, close, poll, inspect, free.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tether_core::{Client, DeliveryStatus, EventDelivery, MessageId, State};

use crate::callbacks::{
    in_callback_of, tether_callbacks, tether_state, tether_user_data_free, Dispatch,
};
use crate::config::{self, tether_config, tether_dispatch};
use crate::registry::{Registry, TAG_CLIENT};
use crate::status::tether_status::{self, *};
use crate::status::Fail;
use crate::util::{bytes_arg, ms, str_arg, to_us, write_opt, LastError};

/// A resilient WebSocket client (opaque). Create with `tether_client_new`, free with
/// `tether_client_free`. The pointer is a handle, not an address: never dereference it.
pub struct tether_client {
    _opaque: [u8; 0],
}

/// A snapshot of a client's counters (`tether_client_stats`). Fields are only ever appended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct tether_stats {
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

/// What `tether_client_free` waits for beyond the configured close timeout.
const FREE_MARGIN: Duration = Duration::from_secs(2);

pub(crate) struct ClientInner {
    /// The core client; taken (None) by `tether_client_free`. Calls hold the read lock only
    /// while they use it, never while a user callback runs.
    client: RwLock<Option<Client>>,
    dispatch: Arc<Dispatch>,
    poll_mode: bool,
    /// A `tether_client_poll*` call is running.
    polling: AtomicBool,
    close_timeout: Duration,
    max_outbound: usize,
    last_error: LastError,
}

impl ClientInner {
    /// Run `f` on the core client, or fail with CLOSED if it is being freed.
    fn with_core<R>(&self, f: impl FnOnce(&Client) -> R) -> Result<R, Fail> {
        let guard: RwLockReadGuard<'_, Option<Client>> =
            self.client.read().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(client) => Ok(f(client)),
            None => Err(Fail::new(TETHER_ERR_CLOSED, "the client is being freed")),
        }
    }

    fn finish<T>(&self, result: Result<T, Fail>, on_ok: impl FnOnce(T)) -> tether_status {
        match result {
            Ok(value) => {
                on_ok(value);
                TETHER_OK
            }
            Err(fail) => self.last_error.record(fail),
        }
    }
}

static CLIENTS: Registry<ClientInner> = Registry::new(TAG_CLIENT);

fn lookup(client: *const tether_client) -> Result<Arc<ClientInner>, tether_status> {
    if client.is_null() {
        return Err(TETHER_ERR_NULL_PARAMETER);
    }
    CLIENTS.get(client.addr()).ok_or(TETHER_ERR_INVALID_HANDLE)
}

/// Create a client and start connecting in the background (this call does not block on the
/// network). On success `*client_out` receives the handle, and from then on the callbacks
/// run (never before `*client_out` is written, so it is safe to pass the address of a field
/// your callbacks read). `callbacks` is copied; `user_data` is passed to every callback, and
/// `user_data_free` (may be NULL) runs exactly once, in `tether_client_free`, after the last
/// callback.
///
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config`, `callbacks` or `client_out`),
/// `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_URL` / `TETHER_ERR_INVALID_CONFIG` (the
/// reason is in `tether_config_last_error(config)`), `TETHER_ERR_INTERNAL`. On failure
/// nothing was created and `user_data_free` is not called.
#[no_mangle]
pub extern "C" fn tether_client_new(
    config: *const tether_config,
    callbacks: *const tether_callbacks,
    user_data: *mut c_void,
    user_data_free: tether_user_data_free,
    client_out: *mut *mut tether_client,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let cfg = match config::lookup(config) {
            Ok(cfg) => cfg,
            Err(status) => return status,
        };
        if callbacks.is_null() || client_out.is_null() {
            return cfg.last_error.record(Fail::new(
                TETHER_ERR_NULL_PARAMETER,
                "tether_client_new: callbacks and client_out must not be NULL",
            ));
        }
        let built = match cfg.build() {
            Ok(built) => built,
            Err(fail) => return cfg.last_error.record(fail),
        };
        // SAFETY: non-NULL (checked), and the caller promises it points to a valid
        // `tether_callbacks` for the call; it is plain data (function pointers), copied here.
        let callbacks = unsafe { callbacks.read() };
        let dispatch = Arc::new(Dispatch::new(callbacks, user_data, user_data_free));
        let poll_mode = built.dispatch == tether_dispatch::TETHER_DISPATCH_POLL;
        let inner = Arc::new(ClientInner {
            client: RwLock::new(None),
            dispatch: dispatch.clone(),
            poll_mode,
            polling: AtomicBool::new(false),
            close_timeout: built.close_timeout,
            max_outbound: built.config.max_outbound_message_size(),
            last_error: LastError::default(),
        });
        let Some(token) = CLIENTS.insert(inner.clone()) else {
            return cfg
                .last_error
                .record(Fail::new(TETHER_ERR_INTERNAL, "too many live clients"));
        };
        dispatch.set_handle(token);
        let delivery = if poll_mode {
            EventDelivery::Poll
        } else {
            let d = dispatch.clone();
            EventDelivery::callback(move |event| d.deliver(event))
        };
        match Client::connect(built.config, delivery) {
            Ok(client) => {
                *inner.client.write().unwrap_or_else(PoisonError::into_inner) = Some(client);
                // SAFETY: non-NULL (checked); the caller promises it is writable.
                unsafe { client_out.write(std::ptr::without_provenance_mut(token)) };
                dispatch.start();
                TETHER_OK
            }
            Err(e) => {
                drop(CLIENTS.remove(token));
                // Should a dispatcher thread exist anyway, let it run down without calling
                // anything (the caller keeps ownership of user_data).
                dispatch.stop();
                dispatch.start();
                cfg.last_error.record(Fail::from(&e))
            }
        }
    })
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
        if in_callback_of(token) {
            inner.dispatch.stop_from_callback();
            // The graceful close goes on in the background; the dispatcher thread (if any)
            // exits by itself after the last event, delivering nothing more.
            drop(core);
        } else {
            if let Some(core) = core {
                // Joins the dispatcher after it delivered Closed (unless the wait timed out).
                core.shutdown(inner.close_timeout + FREE_MARGIN);
            }
            // Waits for a callback still running (only after a timeout above, or a poll on
            // another thread), and stops all further ones.
            inner.dispatch.stop();
            inner.dispatch.finalize();
        }
    })
}

/// Queue a text message of `len` bytes of UTF-8 at `text` (not necessarily NUL-terminated;
/// may be NULL when `len` is 0). The bytes are copied before this returns. On success
/// `*id_out` (may be NULL) receives the message id (1, 2, 3... in send order); the message's
/// fate is reported later by `on_written` / `on_acked` or `on_send_failed`.
///
/// Errors (nothing queued): `TETHER_ERR_NULL_PARAMETER`, `_INVALID_HANDLE`,
/// `_INVALID_ARGUMENT` (not UTF-8), `_TOO_LARGE`, `_QUEUE_FULL`, `_NOT_READY`, `_CLOSED`.
/// Thread-safe; callable from callbacks. Never blocks, except with `TETHER_OVERFLOW_WAIT`.
#[no_mangle]
pub extern "C" fn tether_client_send_text(
    client: *mut tether_client,
    text: *const c_char,
    len: usize,
    id_out: *mut u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        let result = (|| {
            check_buffer(text.cast(), len, inner.max_outbound)?;
            // SAFETY: header contract: `len` readable bytes at `text` for the call.
            let bytes = unsafe { bytes_arg(text.cast(), len, "text") }?;
            let text = std::str::from_utf8(bytes).map_err(|e| {
                Fail::new(
                    TETHER_ERR_INVALID_ARGUMENT,
                    format!("text is not valid UTF-8: {e}"),
                )
            })?;
            inner
                .with_core(|c| c.send_text(text.to_owned()))?
                .map_err(|e| Fail::from(&e))
        })();
        // SAFETY: header contract: `id_out` is NULL or writable.
        inner.finish(result, |id: MessageId| unsafe { write_opt(id_out, id.0) })
    })
}

/// Queue a binary message of `len` bytes at `data` (may be NULL when `len` is 0). Same
/// contract as `tether_client_send_text`, without the UTF-8 check.
#[no_mangle]
pub extern "C" fn tether_client_send_binary(
    client: *mut tether_client,
    data: *const u8,
    len: usize,
    id_out: *mut u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        let result = (|| {
            check_buffer(data, len, inner.max_outbound)?;
            // SAFETY: header contract: `len` readable bytes at `data` for the call.
            let bytes = unsafe { bytes_arg(data, len, "data") }?;
            inner
                .with_core(|c| c.send_binary(bytes.to_vec()))?
                .map_err(|e| Fail::from(&e))
        })();
        // SAFETY: header contract: `id_out` is NULL or writable.
        inner.finish(result, |id: MessageId| unsafe { write_opt(id_out, id.0) })
    })
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
/// no-op. Errors: `TETHER_ERR_NULL_PARAMETER`, `_INVALID_HANDLE`, `_INVALID_ARGUMENT` (code
/// or reason), `_CLOSED` (being freed). Thread-safe; callable from callbacks.
#[no_mangle]
pub extern "C" fn tether_client_close(
    client: *mut tether_client,
    code: u16,
    reason: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        let result = (|| {
            let reason = if reason.is_null() {
                ""
            } else {
                // SAFETY: header contract: a NUL-terminated string live for the call.
                unsafe { str_arg(reason, "reason") }?
            };
            inner
                .with_core(|c| c.close(code, reason))?
                .map_err(|e| Fail::from(&e))
        })();
        inner.finish(result, |()| {})
    })
}

/// The current state. A NULL or freed handle reads as `TETHER_STATE_CLOSED`. Thread-safe.
#[no_mangle]
pub extern "C" fn tether_client_state(client: *const tether_client) -> tether_state {
    ffi_boundary!(tether_state::TETHER_STATE_CLOSED, {
        lookup(client)
            .ok()
            .and_then(|inner| inner.with_core(|c| c.state()).ok())
            .unwrap_or(State::Closed)
            .into()
    })
}

/// Write a snapshot of the counters to `*stats_out`. Thread-safe.
#[no_mangle]
pub extern "C" fn tether_client_stats(
    client: *const tether_client,
    stats_out: *mut tether_stats,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        if stats_out.is_null() {
            return inner
                .last_error
                .record(Fail::new(TETHER_ERR_NULL_PARAMETER, "stats_out is NULL"));
        }
        let result = inner.with_core(|c| c.stats());
        inner.finish(result, |s| {
            let out = tether_stats {
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
            // SAFETY: non-NULL (checked); the caller promises it is writable.
            unsafe { stats_out.write(out) }
        })
    })
}

/// Copy the message of the last failed call on this client into `buf` (`len` bytes) as a
/// NUL-terminated UTF-8 string; empty if no call failed yet. The message is stored per
/// client (not per thread); calls that succeed leave it unchanged, and with several threads
/// failing at once it is one of their messages. `*needed_out` (may be NULL) receives the
/// buffer size that holds all of it, NUL included. Returns `TETHER_OK`, or
/// `TETHER_ERR_BUFFER_TOO_SMALL` with a truncated (still NUL-terminated, unless `len` is 0)
/// copy; `buf` may be NULL when `len` is 0 (a size query).
#[no_mangle]
pub extern "C" fn tether_client_last_error(
    client: *const tether_client,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        match lookup(client) {
            // SAFETY: header contract: `buf` NULL or writable for `len` bytes, `needed_out`
            // NULL or writable.
            Ok(inner) => unsafe { inner.last_error.copy_to(buf, len, needed_out) },
            Err(status) => status,
        }
    })
}

/// Poll mode: run the callbacks of up to `max_events` pending events on this thread, without
/// waiting (0 means all the events pending now; events arriving meanwhile wait for the next
/// call). `*ran_out` (may be NULL) receives the number of events handled (an event whose
/// callback is NULL counts too). Cheap when nothing is pending. Errors:
/// `TETHER_ERR_NULL_PARAMETER`, `_INVALID_HANDLE`, `_WRONG_MODE` (callback mode), `_REENTRANT`
/// (called from inside one of this client's callbacks, or while another thread polls it).
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

/// Resets the polling flag when a poll ends.
struct PollGuard<'a>(&'a AtomicBool);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn poll(
    client: *mut tether_client,
    max_events: usize,
    wait: Duration,
    ran_out: *mut usize,
) -> tether_status {
    let inner = match lookup(client) {
        Ok(inner) => inner,
        Err(status) => return status,
    };
    if !inner.poll_mode {
        return inner.last_error.record(Fail::new(
            TETHER_ERR_WRONG_MODE,
            "tether_client_poll needs TETHER_DISPATCH_POLL; this client runs its callbacks on a dispatcher thread",
        ));
    }
    if in_callback_of(client.addr()) {
        return inner.last_error.record(Fail::new(
            TETHER_ERR_REENTRANT,
            "tether_client_poll called from inside one of the same client's callbacks",
        ));
    }
    if inner.polling.swap(true, Ordering::SeqCst) {
        return inner.last_error.record(Fail::new(
            TETHER_ERR_REENTRANT,
            "tether_client_poll called while another thread polls the same client",
        ));
    }
    let _guard = PollGuard(&inner.polling);
    // With max_events 0 the bound is the number of events pending once the first one is in
    // hand (after the wait, if any), so a steady stream cannot keep the caller forever.
    let mut limit = if max_events == 0 { 1 } else { max_events };
    let mut ran = 0usize;
    while ran < limit && !inner.dispatch.is_stopped() {
        // The read lock is held only to take the event, never while a callback runs, so a
        // callback may free the client.
        let first_wait = if ran == 0 { wait } else { Duration::ZERO };
        let event = inner
            .with_core(|c| {
                if first_wait.is_zero() {
                    c.poll_event()
                } else {
                    c.next_event(first_wait)
                }
            })
            .ok()
            .flatten();
        let Some(event) = event else { break };
        if max_events == 0 && ran == 0 {
            limit = 1 + inner.with_core(|c| c.pending_events()).unwrap_or(0);
        }
        inner.dispatch.deliver(event);
        ran += 1;
    }
    // SAFETY: header contract: `ran_out` is NULL or writable.
    unsafe { write_opt(ran_out, ran) };
    TETHER_OK
}

/// Wait up to `timeout_ms` until the client is closed (after `tether_client_close`, or when
/// reconnecting stopped for good): `TETHER_OK`, or `TETHER_ERR_TIMEOUT`. In callback mode
/// `on_closed` may still be about to run on the dispatcher thread when this returns.
#[no_mangle]
pub extern "C" fn tether_client_wait_closed(
    client: *const tether_client,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        let result = inner
            .with_core(|c| c.wait_closed(ms(timeout_ms)))
            .and_then(|closed| {
                if closed {
                    Ok(())
                } else {
                    Err(Fail::new(
                        TETHER_ERR_TIMEOUT,
                        "the client did not close within the timeout",
                    ))
                }
            });
        inner.finish(result, |()| {})
    })
}

/// Envelope mode: block until the server acknowledges message `id` (`TETHER_OK`), the
/// message fails (its `on_send_failed` status, e.g. `TETHER_ERR_ACK_TIMEOUT`), or
/// `timeout_ms` passes (`TETHER_ERR_TIMEOUT`; the message is still pending). Raw mode:
/// `TETHER_ERR_NOT_SUPPORTED`. Unknown id: `TETHER_ERR_INVALID_ARGUMENT`. Blocking: avoid
/// calling it from a callback (it would hold up the other callbacks).
#[no_mangle]
pub extern "C" fn tether_client_wait_acked(
    client: *const tether_client,
    id: u64,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        let result = inner
            .with_core(|c| c.wait_acked(MessageId(id), ms(timeout_ms)))
            .and_then(|r| r.map_err(|e| Fail::from(&e)));
        inner.finish(result, |()| {})
    })
}

/// Where message `id` stands now, written to `*delivery_out` (a `tether_delivery`). Never
/// blocks. Thread-safe.
#[no_mangle]
pub extern "C" fn tether_client_delivery_status(
    client: *const tether_client,
    id: u64,
    delivery_out: *mut tether_delivery,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(client) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        if delivery_out.is_null() {
            return inner
                .last_error
                .record(Fail::new(TETHER_ERR_NULL_PARAMETER, "delivery_out is NULL"));
        }
        let result = inner.with_core(|c| match c.delivery_status(MessageId(id)) {
            DeliveryStatus::Unknown => tether_delivery::TETHER_DELIVERY_UNKNOWN,
            DeliveryStatus::Queued => tether_delivery::TETHER_DELIVERY_QUEUED,
            DeliveryStatus::Written => tether_delivery::TETHER_DELIVERY_WRITTEN,
            DeliveryStatus::Acked => tether_delivery::TETHER_DELIVERY_ACKED,
            DeliveryStatus::Failed(_) => tether_delivery::TETHER_DELIVERY_FAILED,
            // Should core learn a new status, report it as unknown rather than break.
            #[allow(unreachable_patterns)]
            _ => tether_delivery::TETHER_DELIVERY_UNKNOWN,
        });
        // SAFETY: non-NULL (checked); the caller promises it is writable.
        inner.finish(result, |d| unsafe { delivery_out.write(d) })
    })
}
