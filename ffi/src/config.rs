//! `tether_config`: a builder handle. Setters record their value; everything is validated by
//! core when a client is created (or by `tether_config_validate`), except the URL, which
//! `tether_config_set_url` checks at once. Options never set keep core's defaults.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex};

use tether_core::{Config, ConfigBuilder, OverflowPolicy, Protocol, TlsRoots};

use crate::registry::{Registry, TAG_CONFIG};
use crate::status::tether_status::{self, *};
use crate::status::Fail;
use crate::util::{bytes_arg, lock, ms, str_arg, LastError};

/// A client configuration under construction (opaque). Create with `tether_config_new`, free
/// with `tether_config_free`. Not consumed by `tether_client_new`: one config can create
/// several clients, and may be freed as soon as `tether_client_new` returned.
pub struct tether_config {
    _opaque: [u8; 0],
}

/// How a client delivers its callbacks.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_dispatch {
    /// Default: a dispatcher thread owned by the client runs the callbacks.
    TETHER_DISPATCH_THREAD = 0,
    /// The application calls `tether_client_poll*`, which runs the callbacks on its thread.
    TETHER_DISPATCH_POLL = 1,
}

/// What `tether_client_send_*` does when the outbox is full.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_overflow {
    /// Default: refuse the new message with `TETHER_ERR_QUEUE_FULL`.
    TETHER_OVERFLOW_REJECT = 0,
    /// Block the sending thread until there is room, up to a timeout, then
    /// `TETHER_ERR_QUEUE_FULL`. (Do not use with sends from inside callbacks.)
    TETHER_OVERFLOW_WAIT = 1,
    /// Accept the new message and drop the oldest queued one, which gets `on_send_failed`
    /// with `TETHER_ERR_DROPPED`.
    TETHER_OVERFLOW_DROP_OLDEST = 2,
}

/// Which certificate authorities `wss://` trusts (unless a CA file or PEM is set).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_tls_roots {
    /// Default: the operating system's trust store, falling back to the bundled Mozilla roots.
    TETHER_TLS_ROOTS_SYSTEM = 0,
    /// The bundled Mozilla root set: the same on every machine.
    TETHER_TLS_ROOTS_WEBPKI = 1,
}

/// What the client speaks on top of WebSocket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_protocol {
    /// Default: bare WebSocket messages, to any server. No acks (`on_acked` never fires,
    /// `tether_client_wait_acked` gives `TETHER_ERR_NOT_SUPPORTED`).
    TETHER_PROTOCOL_RAW = 0,
    /// The Tether envelope (docs/PROTOCOL.md): handshake, acks, resend, de-duplication,
    /// optional signatures and compression. The server must speak it.
    TETHER_PROTOCOL_ENVELOPE = 1,
}

type Op = Box<dyn Fn(ConfigBuilder) -> ConfigBuilder + Send + Sync>;

struct ConfigState {
    url: Option<String>,
    /// The setters called, in order, replayed on a fresh core builder (so options never set
    /// keep core's defaults).
    ops: Vec<Op>,
    dispatch: tether_dispatch,
}

pub(crate) struct ConfigInner {
    state: Mutex<ConfigState>,
    pub(crate) last_error: LastError,
}

/// What `tether_client_new` needs from a config.
pub(crate) struct Built {
    pub config: Config,
    pub dispatch: tether_dispatch,
}

impl ConfigInner {
    /// Validate everything (in core) and produce a core config.
    pub(crate) fn build(&self) -> Result<Built, Fail> {
        let s = lock(&self.state);
        let Some(url) = &s.url else {
            return Err(Fail::new(
                TETHER_ERR_INVALID_URL,
                "no URL: call tether_config_set_url first",
            ));
        };
        let builder = s
            .ops
            .iter()
            .fold(Config::builder(url.clone()), |b, op| op(b));
        let config = builder.build().map_err(|e| Fail::from(&e))?;
        Ok(Built {
            config,
            dispatch: s.dispatch,
        })
    }
}

pub(crate) static CONFIGS: Registry<ConfigInner> = Registry::new(TAG_CONFIG);

pub(crate) fn lookup(config: *const tether_config) -> Result<Arc<ConfigInner>, tether_status> {
    if config.is_null() {
        return Err(TETHER_ERR_NULL_PARAMETER);
    }
    CONFIGS.get(config.addr()).ok_or(TETHER_ERR_INVALID_HANDLE)
}

/// The shared body of the setters: look the config up, run `f`, record a failure.
fn update(
    config: *mut tether_config,
    f: impl FnOnce(&mut ConfigState) -> Result<(), Fail>,
) -> tether_status {
    let inner = match lookup(config) {
        Ok(inner) => inner,
        Err(status) => return status,
    };
    let result = f(&mut lock(&inner.state));
    match result {
        Ok(()) => TETHER_OK,
        Err(fail) => inner.last_error.record(fail),
    }
}

/// A setter that only records one core builder call.
fn push(
    config: *mut tether_config,
    op: impl Fn(ConfigBuilder) -> ConfigBuilder + Send + Sync + 'static,
) -> tether_status {
    update(config, |s| {
        s.ops.push(Box::new(op));
        Ok(())
    })
}

fn bad_enum(what: &str, value: c_int) -> Fail {
    Fail::new(
        TETHER_ERR_INVALID_ARGUMENT,
        format!("{value} is not a valid {what}"),
    )
}

/// A new config with Tether's defaults (those of the Rust core) and no URL yet. Returns NULL
/// only if Tether itself failed (a bug). Free with `tether_config_free`.
#[no_mangle]
pub extern "C" fn tether_config_new() -> *mut tether_config {
    ffi_boundary!(std::ptr::null_mut(), {
        let inner = Arc::new(ConfigInner {
            state: Mutex::new(ConfigState {
                url: None,
                ops: Vec::new(),
                dispatch: tether_dispatch::TETHER_DISPATCH_THREAD,
            }),
            last_error: LastError::default(),
        });
        match CONFIGS.insert(inner) {
            Some(token) => std::ptr::without_provenance_mut(token),
            None => std::ptr::null_mut(),
        }
    })
}

/// Free a config. NULL and already-freed configs are ignored. Clients created from it are
/// not affected.
#[no_mangle]
pub extern "C" fn tether_config_free(config: *mut tether_config) {
    ffi_boundary!((), {
        if !config.is_null() {
            drop(CONFIGS.remove(config.addr()));
        }
    })
}

/// Copy the message of the last failed call on this config (a setter, `tether_config_validate`,
/// or a `tether_client_new` that used it) into `buf` as a NUL-terminated string. Same contract
/// as `tether_client_last_error`.
#[no_mangle]
pub extern "C" fn tether_config_last_error(
    config: *const tether_config,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        match lookup(config) {
            // SAFETY: the caller promises `buf` is NULL or writable for `len` bytes and
            // `needed_out` NULL or writable (header contract).
            Ok(inner) => unsafe { inner.last_error.copy_to(buf, len, needed_out) },
            Err(status) => status,
        }
    })
}

/// Check every value now, as `tether_client_new` will: `TETHER_OK`, or
/// `TETHER_ERR_INVALID_URL` / `TETHER_ERR_INVALID_CONFIG` with the reason in
/// `tether_config_last_error`.
#[no_mangle]
pub extern "C" fn tether_config_validate(config: *const tether_config) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let inner = match lookup(config) {
            Ok(inner) => inner,
            Err(status) => return status,
        };
        match inner.build() {
            Ok(_) => TETHER_OK,
            Err(fail) => inner.last_error.record(fail),
        }
    })
}

/// The server URL: `ws://` or `wss://`, a host, an optional port and path. Checked at once:
/// `TETHER_ERR_INVALID_URL` with the reason ("unsupported scheme `http`...", "the host is
/// missing", ...) in `tether_config_last_error`; the previous URL is kept then.
#[no_mangle]
pub extern "C" fn tether_config_set_url(
    config: *mut tether_config,
    url: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or a NUL-terminated string live for the call.
            let url = unsafe { str_arg(url, "url") }.map_err(|f| {
                if f.status == TETHER_ERR_INVALID_ARGUMENT {
                    Fail::new(TETHER_ERR_INVALID_URL, f.message)
                } else {
                    f
                }
            })?;
            tether_core::parse_ws_url(url).map_err(|e| Fail::from(&e))?;
            s.url = Some(url.to_owned());
            Ok(())
        })
    })
}

/// Add an HTTP header to the upgrade request (for example `Authorization`). Name and value
/// are checked when the config is built.
#[no_mangle]
pub extern "C" fn tether_config_add_header(
    config: *mut tether_config,
    name: *const c_char,
    value: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or NUL-terminated strings live for the call.
            let (name, value) = unsafe { (str_arg(name, "name")?, str_arg(value, "value")?) };
            let (name, value) = (name.to_owned(), value.to_owned());
            s.ops
                .push(Box::new(move |b| b.header(name.clone(), value.clone())));
            Ok(())
        })
    })
}

/// Offer a subprotocol (`Sec-WebSocket-Protocol`); may be called several times.
#[no_mangle]
pub extern "C" fn tether_config_add_subprotocol(
    config: *mut tether_config,
    protocol: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or a NUL-terminated string live for the call.
            let protocol = unsafe { str_arg(protocol, "protocol") }?.to_owned();
            s.ops
                .push(Box::new(move |b| b.subprotocol(protocol.clone())));
            Ok(())
        })
    })
}

/// Time allowed for TCP connect, TLS and the HTTP upgrade together. Default 10000 ms.
#[no_mangle]
pub extern "C" fn tether_config_set_connect_timeout_ms(
    config: *mut tether_config,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.connect_timeout(ms(timeout_ms)))
    })
}

/// Happy Eyeballs (RFC 8305) connection attempt delay, in milliseconds. When the host has
/// several addresses (from DNS or `tether_config_add_resolve`), the first is tried; if it has
/// not connected within this delay the next is started alongside it (a refused address hands
/// over at once), and the first TCP connection to succeed wins. `connect_timeout` still bounds
/// the whole attempt. Default 250 ms.
///
/// A value set here must be at least 10 ms (the RFC's floor) and below the connect timeout:
/// checked when the config is built (`tether_config_validate`, `tether_client_new`), which then
/// returns `TETHER_ERR_INVALID_CONFIG` naming `happy_eyeballs_delay`. Returns `TETHER_OK`, or
/// `TETHER_ERR_NULL_PARAMETER` / `TETHER_ERR_INVALID_HANDLE` for a bad `config`. Like every
/// config setter: configure a config from one thread at a time.
#[no_mangle]
pub extern "C" fn tether_config_set_happy_eyeballs_delay_ms(
    config: *mut tether_config,
    delay_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.happy_eyeballs_delay(ms(delay_ms)))
    })
}

/// Connect to `address` for `host` instead of asking DNS (like curl's `--resolve`): pin a
/// name to known addresses, or test address fallback. Call it once per address, in the order
/// to try them (they are then tried the Happy Eyeballs way, see
/// `tether_config_set_happy_eyeballs_delay_ms`); once any is given, DNS is not asked at all.
///
/// `host` must be the URL's host (compared without case; an IPv6 host with or without
/// brackets). `address` is an IP address (`"10.0.0.7"`, `"::1"`: the URL's port is used) or an
/// IP and port (`"10.0.0.7:8443"`, `"[::1]:8443"`); names are not accepted. The URL's host is
/// still what the upgrade request's `Host` header, the TLS server name and the certificate
/// check use.
///
/// Both strings are NUL-terminated UTF-8, borrowed for the call only (copied). Returns
/// `TETHER_OK`; `TETHER_ERR_NULL_PARAMETER` if `config`, `host` or `address` is NULL;
/// `TETHER_ERR_INVALID_HANDLE` for a freed config; `TETHER_ERR_INVALID_ARGUMENT` if a string is
/// not UTF-8. The values themselves are checked when the config is built
/// (`tether_config_validate`, `tether_client_new`): another host than the URL's, or an
/// address that is not an IP (with a port other than 0), gives `TETHER_ERR_INVALID_CONFIG`
/// naming `resolve`, the reason in `tether_config_last_error`. Like every config setter:
/// configure a config from one thread at a time.
#[no_mangle]
pub extern "C" fn tether_config_add_resolve(
    config: *mut tether_config,
    host: *const c_char,
    address: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or NUL-terminated strings live for the call.
            let (host, address) = unsafe { (str_arg(host, "host")?, str_arg(address, "address")?) };
            let (host, address) = (host.to_owned(), address.to_owned());
            s.ops.push(Box::new(move |b| {
                b.resolve(host.clone(), [address.clone()])
            }));
            Ok(())
        })
    })
}

/// Which CAs `wss://` trusts: `TETHER_TLS_ROOTS_SYSTEM` (default) or `_WEBPKI`.
#[no_mangle]
pub extern "C" fn tether_config_set_tls_roots(
    config: *mut tether_config,
    roots: c_int,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            let roots = match roots {
                0 => TlsRoots::System,
                1 => TlsRoots::WebPki,
                other => return Err(bad_enum("tether_tls_roots", other)),
            };
            s.ops.push(Box::new(move |b| b.tls_roots(roots.clone())));
            Ok(())
        })
    })
}

/// Trust only the CA certificates in this PEM file (read and parsed when the config is built;
/// takes precedence over the other TLS root settings).
#[no_mangle]
pub extern "C" fn tether_config_set_tls_ca_file(
    config: *mut tether_config,
    path: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or a NUL-terminated string live for the call.
            let path = unsafe { str_arg(path, "path") }?.to_owned();
            s.ops.push(Box::new(move |b| b.tls_ca_file(path.clone())));
            Ok(())
        })
    })
}

/// Trust only the CA certificates in this PEM text (`len` bytes, copied).
#[no_mangle]
pub extern "C" fn tether_config_set_tls_ca_pem(
    config: *mut tether_config,
    pem: *const u8,
    len: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: `len` readable bytes at `pem` for the call.
            let pem = unsafe { bytes_arg(pem, len, "pem") }?.to_vec();
            s.ops.push(Box::new(move |b| {
                b.tls_roots(TlsRoots::CustomCa(pem.clone()))
            }));
            Ok(())
        })
    })
}

/// Accept any server certificate. For tests only: it removes all protection TLS gives.
#[no_mangle]
pub extern "C" fn tether_config_set_danger_accept_invalid_certs(
    config: *mut tether_config,
    accept: bool,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.danger_accept_invalid_certs(accept))
    })
}

/// Turn automatic reconnect on (default) or off.
#[no_mangle]
pub extern "C" fn tether_config_set_reconnect_enabled(
    config: *mut tether_config,
    enabled: bool,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.reconnect_enabled(enabled))
    })
}

/// Backoff: the delay before attempt n is uniform in
/// `[0, min(max_ms, initial_ms * multiplier^(n-1))]`. Defaults 500 ms, 30000 ms, 2.0.
#[no_mangle]
pub extern "C" fn tether_config_set_backoff(
    config: *mut tether_config,
    initial_ms: u64,
    max_ms: u64,
    multiplier: f64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| {
            b.backoff(ms(initial_ms), ms(max_ms), multiplier)
        })
    })
}

/// Reconnect attempts allowed per outage; 0 (default) means unlimited.
#[no_mangle]
pub extern "C" fn tether_config_set_max_reconnect_attempts(
    config: *mut tether_config,
    attempts: u32,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let attempts = (attempts != 0).then_some(attempts);
        push(config, move |b| b.max_reconnect_attempts(attempts))
    })
}

/// Cap on the time spent retrying in one outage; 0 (default) means unlimited.
#[no_mangle]
pub extern "C" fn tether_config_set_max_retry_duration_ms(
    config: *mut tether_config,
    duration_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let cap = (duration_ms != 0).then(|| ms(duration_ms));
        push(config, move |b| b.max_retry_duration(cap))
    })
}

/// How long a connection must stay up before the backoff resets. Default 5000 ms.
#[no_mangle]
pub extern "C" fn tether_config_set_min_uptime_ms(
    config: *mut tether_config,
    uptime_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.min_uptime(ms(uptime_ms)))
    })
}

/// Heartbeat: a WebSocket ping every `interval_ms`; if nothing arrives within `timeout_ms`
/// of a ping, the link is dead and is reconnected. `interval_ms` 0 turns it off. Defaults
/// 15000 ms and 10000 ms.
#[no_mangle]
pub extern "C" fn tether_config_set_heartbeat(
    config: *mut tether_config,
    interval_ms: u64,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let interval = (interval_ms != 0).then(|| ms(interval_ms));
        push(config, move |b| b.heartbeat(interval, ms(timeout_ms)))
    })
}

/// Outbox bounds, in messages and bytes (including the batch being written). Defaults 4096
/// messages and 16 MiB.
#[no_mangle]
pub extern "C" fn tether_config_set_outbox_limits(
    config: *mut tether_config,
    max_messages: usize,
    max_bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.outbox_limits(max_messages, max_bytes))
    })
}

/// What sends do when the outbox is full: a `tether_overflow` value. `wait_timeout_ms` is
/// used by `TETHER_OVERFLOW_WAIT` only.
#[no_mangle]
pub extern "C" fn tether_config_set_overflow_policy(
    config: *mut tether_config,
    policy: c_int,
    wait_timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            let policy = match policy {
                0 => OverflowPolicy::Reject,
                1 => OverflowPolicy::Wait(ms(wait_timeout_ms)),
                2 => OverflowPolicy::DropOldest,
                other => return Err(bad_enum("tether_overflow", other)),
            };
            s.ops.push(Box::new(move |b| b.overflow_policy(policy)));
            Ok(())
        })
    })
}

/// Queue messages while not ready (default: true) or refuse them with
/// `TETHER_ERR_NOT_READY`.
#[no_mangle]
pub extern "C" fn tether_config_set_queue_while_disconnected(
    config: *mut tether_config,
    queue: bool,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.queue_while_disconnected(queue))
    })
}

/// Largest message a send accepts, in bytes (default 4 MiB, or the outbox byte bound if
/// smaller; must not exceed it).
#[no_mangle]
pub extern "C" fn tether_config_set_max_outbound_message_size(
    config: *mut tether_config,
    bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.max_outbound_message_size(bytes))
    })
}

/// Largest inbound message and frame, in bytes (default 16 MiB each). A bigger one closes
/// the link with 1009 (`on_error` with `TETHER_ERR_TOO_LARGE`).
#[no_mangle]
pub extern "C" fn tether_config_set_max_inbound_size(
    config: *mut tether_config,
    message_bytes: usize,
    frame_bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| {
            b.max_inbound_size(message_bytes, frame_bytes)
        })
    })
}

/// Time `tether_client_close` spends draining the outbox and closing. Default 5000 ms.
/// `tether_client_free` waits at most this plus 2 s.
#[no_mangle]
pub extern "C" fn tether_config_set_close_timeout_ms(
    config: *mut tether_config,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            s.ops
                .push(Box::new(move |b| b.close_timeout(ms(timeout_ms))));
            Ok(())
        })
    })
}

/// Inbound messages buffered for the application before the client stops reading the socket
/// (backpressure). Default 1024.
#[no_mangle]
pub extern "C" fn tether_config_set_event_queue_capacity(
    config: *mut tether_config,
    capacity: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.event_queue_capacity(capacity))
    })
}

/// Socket read buffer size in bytes (at least 1024). Default 32 KiB.
#[no_mangle]
pub extern "C" fn tether_config_set_read_buffer_size(
    config: *mut tether_config,
    bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.read_buffer_size(bytes))
    })
}

/// Bytes written per batch before one flush. Default 256 KiB.
#[no_mangle]
pub extern "C" fn tether_config_set_write_batch_bytes(
    config: *mut tether_config,
    bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.write_batch_bytes(bytes))
    })
}

/// How callbacks are delivered: a `tether_dispatch` value (default
/// `TETHER_DISPATCH_THREAD`).
#[no_mangle]
pub extern "C" fn tether_config_set_dispatch(
    config: *mut tether_config,
    mode: c_int,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            s.dispatch = match mode {
                0 => tether_dispatch::TETHER_DISPATCH_THREAD,
                1 => tether_dispatch::TETHER_DISPATCH_POLL,
                other => return Err(bad_enum("tether_dispatch", other)),
            };
            Ok(())
        })
    })
}

/// Raw WebSocket (`TETHER_PROTOCOL_RAW`, default) or the Tether envelope with acks
/// (`TETHER_PROTOCOL_ENVELOPE`).
#[no_mangle]
pub extern "C" fn tether_config_set_protocol(
    config: *mut tether_config,
    protocol: c_int,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            let protocol = match protocol {
                0 => Protocol::Raw,
                1 => Protocol::Envelope,
                other => return Err(bad_enum("tether_protocol", other)),
            };
            s.ops.push(Box::new(move |b| b.protocol(protocol)));
            Ok(())
        })
    })
}

/// Envelope mode: the session id sent in the handshake (1 to 128 printable ASCII characters).
/// Default: random, new per client; stable across reconnects. Reusing it in a new process does
/// not resume the old process's messages (they lived in its memory): the server starts the
/// session over and `on_session_reset` reports `client_state_lost`.
#[no_mangle]
pub extern "C" fn tether_config_set_session_id(
    config: *mut tether_config,
    id: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or a NUL-terminated string live for the call.
            let id = unsafe { str_arg(id, "id") }?.to_owned();
            s.ops.push(Box::new(move |b| b.session_id(id.clone())));
            Ok(())
        })
    })
}

/// Envelope mode: the token sent in the handshake for the server to check.
#[no_mangle]
pub extern "C" fn tether_config_set_auth_token(
    config: *mut tether_config,
    token: *const c_char,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: NULL or a NUL-terminated string live for the call.
            let token = unsafe { str_arg(token, "token") }?.to_owned();
            s.ops.push(Box::new(move |b| b.auth_token(token.clone())));
            Ok(())
        })
    })
}

/// Envelope mode: sign every message with HMAC-SHA256 under this key (`len` bytes, copied),
/// and refuse inbound messages without a valid signature.
#[no_mangle]
pub extern "C" fn tether_config_set_signing_key(
    config: *mut tether_config,
    key: *const u8,
    len: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        update(config, |s| {
            // SAFETY: header contract: `len` readable bytes at `key` for the call.
            let key = unsafe { bytes_arg(key, len, "key") }?.to_vec();
            s.ops.push(Box::new(move |b| b.signing_key(key.clone())));
            Ok(())
        })
    })
}

/// Envelope mode: compress payloads of at least `bytes` bytes when that makes them smaller;
/// 0 (default) never compresses.
#[no_mangle]
pub extern "C" fn tether_config_set_compression_threshold(
    config: *mut tether_config,
    bytes: usize,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        let threshold = (bytes != 0).then_some(bytes);
        push(config, move |b| b.compression_threshold(threshold))
    })
}

/// Envelope mode: wait `timeout_ms` for an ack before writing a message again, and report it
/// failed (`TETHER_ERR_ACK_TIMEOUT`) after `retries` such timeouts. Defaults 10000 ms, 2.
#[no_mangle]
pub extern "C" fn tether_config_set_ack_timeout(
    config: *mut tether_config,
    timeout_ms: u64,
    retries: u32,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.ack_timeout(ms(timeout_ms), retries))
    })
}

/// Envelope mode: time allowed for the application handshake. Default 10000 ms.
#[no_mangle]
pub extern "C" fn tether_config_set_handshake_timeout_ms(
    config: *mut tether_config,
    timeout_ms: u64,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        push(config, move |b| b.handshake_timeout(ms(timeout_ms)))
    })
}

/// Envelope mode: also send app-level pings with each heartbeat (default: on in envelope
/// mode). Turning it on in raw mode is a config error.
#[no_mangle]
pub extern "C" fn tether_config_set_app_ping(
    config: *mut tether_config,
    on: bool,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, { push(config, move |b| b.app_ping(on)) })
}

/// Set the number of worker threads of Tether's internal I/O runtime (1 to 64; default 1),
/// shared by all clients of the process. Only before the first client is created:
/// afterwards `TETHER_ERR_INVALID_STATE`. Out of range: `TETHER_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_runtime_set_worker_threads(count: usize) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        use tether_core::runtime::{set_worker_threads, RuntimeError};
        match set_worker_threads(count) {
            Ok(()) => TETHER_OK,
            Err(RuntimeError::InvalidCount(_)) => TETHER_ERR_INVALID_ARGUMENT,
            Err(RuntimeError::AlreadyStarted(_)) => TETHER_ERR_INVALID_STATE,
            Err(_) => TETHER_ERR_INTERNAL,
        }
    })
}
