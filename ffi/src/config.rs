//! `tether_config`: a builder handle. Setters record their value; everything is validated by
//! core when a client is created (or by `tether_config_validate`), except the URL, which
//! `tether_config_set_url` checks at once. Options never set keep core's defaults.
//!
//! The setters are typed (they are the ABI) but hold no policy: each gives its values to the
//! core's option table (`tether_core::options`) under the option ids, converting only C's
//! conventions (milliseconds, 0 for "unset", enum ints). docs/C_API.md's option table is
//! generated from the same table, and a core test checks every C setter it names exists.

use std::ffi::{c_char, c_int};
use std::sync::{Arc, Mutex};

use tether_core::{options, Config, ConfigBuilder, OptionValue, OverflowPolicy};

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

/// Which thread runs a client's I/O (`tether_config_set_io_driver`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_io_driver {
    /// Default: Tether's shared runtime thread.
    TETHER_IO_DRIVER_RUNTIME = 0,
    /// The application's thread while it waits on the client (poll dispatch only), with a
    /// keeper thread when nobody waits (`tether_config_set_keeper_after_ms`).
    TETHER_IO_DRIVER_CALLER = 1,
}

/// What the persistent outbox (`tether_config_set_outbox_path`) makes durable against a machine
/// crash; a killed process loses nothing in any mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_outbox_sync {
    /// No fdatasync: the OS writes the file back in its own time.
    TETHER_OUTBOX_SYNC_NONE = 0,
    /// Default: one fdatasync per batch, before the batch goes on the wire.
    TETHER_OUTBOX_SYNC_BATCH = 1,
    /// One fdatasync per message, before `tether_client_send*` returns its id.
    TETHER_OUTBOX_SYNC_ALWAYS = 2,
}

pub(crate) struct ConfigState {
    url: Option<String>,
    /// The values set so far (options never set keep core's defaults); its URL is replaced
    /// by `url` at build.
    builder: ConfigBuilder,
    dispatch: tether_dispatch,
    /// The C credentials provider, given to core at build.
    pub(crate) provider: Option<crate::reach::CProvider>,
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
    /// Validate everything (in core) and produce a core config. A value error names the
    /// option by its id and, for C, the setter that sets it.
    pub(crate) fn build(&self) -> Result<Built, Fail> {
        let s = lock(&self.state);
        let Some(url) = &s.url else {
            return Err(Fail::new(
                TETHER_ERR_INVALID_URL,
                "no URL: call tether_config_set_url first",
            ));
        };
        let builder = s.builder.clone().url(url.clone());
        let builder = match s.provider {
            Some(p) => p.install(builder),
            None => builder,
        };
        let config = builder.build().map_err(|e| {
            let mut fail = Fail::from(&e);
            if let Some(spec) = e.option().and_then(options::find) {
                fail.message += &format!(" (set with {})", spec.c_setter);
            }
            fail
        })?;
        Ok(Built {
            config,
            dispatch: s.dispatch,
        })
    }
}

pub(crate) static CONFIGS: Registry<ConfigInner> = Registry::new(TAG_CONFIG);

/// The shared body of the setters, at the boundary (a panic becomes `TETHER_ERR_PANIC`): look
/// the config up (so a bad handle is reported before a bad argument), run `f`, record a failure.
pub(crate) fn update(
    config: *mut tether_config,
    f: impl FnOnce(&mut ConfigState) -> Result<(), Fail>,
) -> tether_status {
    CONFIGS.call(config, |inner| {
        let result = f(&mut lock(&inner.state));
        match result {
            Ok(()) => TETHER_OK,
            Err(fail) => inner.last_error.record(fail),
        }
    })
}

/// A setter through the option table: `values` (run after the config is looked up, so a bad
/// handle is reported before a bad argument) gives (option id, value) pairs.
fn set<const N: usize>(
    config: *mut tether_config,
    values: impl FnOnce() -> Result<[(&'static str, OptionValue); N], Fail>,
) -> tether_status {
    update(config, |s| {
        for (name, value) in values()? {
            s.builder.set(name, value).map_err(|e| Fail::from(&e))?;
        }
        Ok(())
    })
}

fn dur(millis: u64) -> OptionValue {
    OptionValue::Duration(ms(millis))
}

/// C's 0 means "unset" (off, unlimited) for these options.
fn dur_or_unset(millis: u64) -> OptionValue {
    if millis == 0 {
        OptionValue::Unset
    } else {
        dur(millis)
    }
}

fn int(n: usize) -> OptionValue {
    OptionValue::Int(n as u64)
}

fn int_or_unset(n: usize) -> OptionValue {
    if n == 0 {
        OptionValue::Unset
    } else {
        int(n)
    }
}

fn text(s: &str) -> OptionValue {
    OptionValue::Text(s.to_owned())
}

/// The option value for an enum int: the name at index `value` of `names`.
fn choice(value: c_int, what: &str, names: &[&str]) -> Result<OptionValue, Fail> {
    let name = usize::try_from(value).ok().and_then(|i| names.get(i));
    name.map(|n| text(n)).ok_or_else(|| bad_enum(what, value))
}

fn bad_enum(what: &str, value: c_int) -> Fail {
    Fail::new(
        TETHER_ERR_INVALID_ARGUMENT,
        format!("{value} is not a valid {what}"),
    )
}

/// A new config with Tether's defaults (those of the Rust core) and no URL yet. Returns NULL
/// only if Tether itself failed (a bug). Free with `tether_config_free`.
///
/// Ownership: the config is yours: free it with `tether_config_free` (clients copy it, so it may be
/// freed right after `tether_client_new`).
/// Threads: any thread.
/// Errors: none: returns NULL only if Tether itself failed (a bug, or too many live configs).
#[no_mangle]
pub extern "C" fn tether_config_new() -> *mut tether_config {
    ffi_boundary!(std::ptr::null_mut(), {
        let inner = Arc::new(ConfigInner {
            state: Mutex::new(ConfigState {
                url: None,
                builder: ConfigBuilder::new(""),
                dispatch: tether_dispatch::TETHER_DISPATCH_THREAD,
                provider: None,
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
///
/// Ownership: consumes the handle (invalid afterwards); clients made from it keep their copy.
/// Threads: any thread, not concurrently with another call on the same config.
/// Errors: none: NULL and already-freed handles are ignored.
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
///
/// Ownership: copies into your `buf`; the stored message stays the config's.
/// Threads: any thread (the message is per config, not per thread).
/// Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy, `*needed_out` set),
/// `TETHER_ERR_NULL_PARAMETER` (`config` NULL, or `buf` NULL with a non-zero `len`),
/// `TETHER_ERR_INVALID_HANDLE` (a freed config).
#[no_mangle]
pub extern "C" fn tether_config_last_error(
    config: *const tether_config,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    // SAFETY: the caller promises `buf` is NULL or writable for `len` bytes and `needed_out`
    // NULL or writable (header contract).
    CONFIGS.call(config, |inner| unsafe {
        inner.last_error.copy_to(buf, len, needed_out)
    })
}

/// Check every value now, as `tether_client_new` will: `TETHER_OK`, or
/// `TETHER_ERR_INVALID_URL` / `TETHER_ERR_INVALID_CONFIG` with the reason in
/// `tether_config_last_error`.
///
/// Ownership: borrows `config`; nothing is created.
/// Threads: configure a config from one thread at a time (not concurrently with another call on the
/// same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
/// without affecting the clients made from it.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_INVALID_URL` /
/// `TETHER_ERR_INVALID_CONFIG` (the reason in `tether_config_last_error`).
#[no_mangle]
pub extern "C" fn tether_config_validate(config: *const tether_config) -> tether_status {
    CONFIGS.call(config, |inner| match inner.build() {
        Ok(_) => TETHER_OK,
        Err(fail) => inner.last_error.record(fail),
    })
}

/// The server URL: `ws://` or `wss://`, a host, an optional port and path. Checked at once:
/// `TETHER_ERR_INVALID_URL` with the reason ("unsupported scheme `http`...", "the host is
/// missing", ...) in `tether_config_last_error`; the previous URL is kept then.
///
/// Ownership: borrows `config`; the string arguments are borrowed for the call only (copied).
/// Threads: configure a config from one thread at a time (not concurrently with another call on the
/// same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
/// without affecting the clients made from it.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config` or `url` NULL), `TETHER_ERR_INVALID_HANDLE` (a
/// freed config), `TETHER_ERR_INVALID_URL` (not UTF-8, or not a ws:// or wss:// URL; the previous
/// URL is kept), the reason in `tether_config_last_error`.
#[no_mangle]
pub extern "C" fn tether_config_set_url(
    config: *mut tether_config,
    url: *const c_char,
) -> tether_status {
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
}

/// What sends do when the outbox is full: a `tether_overflow` value. `wait_timeout_ms` is
/// used by `TETHER_OVERFLOW_WAIT` only.
///
/// Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
/// Threads: configure a config from one thread at a time (not concurrently with another call on the
/// same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
/// without affecting the clients made from it.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
/// config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept),
/// the reason in `tether_config_last_error`.
#[no_mangle]
pub extern "C" fn tether_config_set_overflow_policy(
    config: *mut tether_config,
    policy: c_int,
    wait_timeout_ms: u64,
) -> tether_status {
    // The builder method, not the table: a later policy replaces the wait timeout, where the
    // table keeps `overflow_timeout` apart (and refuses it beside another policy).
    update(config, |s| {
        let policy = match policy {
            0 => OverflowPolicy::Reject,
            1 => OverflowPolicy::Wait(ms(wait_timeout_ms)),
            2 => OverflowPolicy::DropOldest,
            other => return Err(bad_enum("tether_overflow", other)),
        };
        s.builder = s.builder.clone().overflow_policy(policy);
        Ok(())
    })
}

/// How callbacks are delivered: a `tether_dispatch` value (default
/// `TETHER_DISPATCH_THREAD`).
///
/// Ownership: borrows `config`; takes nothing over (plain values are recorded in the config).
/// Threads: configure a config from one thread at a time (not concurrently with another call on the
/// same config); it is copied by `tether_client_new`, so it may change or be freed afterwards
/// without affecting the clients made from it.
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
/// config), `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is kept),
/// the reason in `tether_config_last_error`.
#[no_mangle]
pub extern "C" fn tether_config_set_dispatch(
    config: *mut tether_config,
    mode: c_int,
) -> tether_status {
    update(config, |s| {
        s.dispatch = match mode {
            0 => tether_dispatch::TETHER_DISPATCH_THREAD,
            1 => tether_dispatch::TETHER_DISPATCH_POLL,
            other => return Err(bad_enum("tether_dispatch", other)),
        };
        Ok(())
    })
}

/// Set the number of worker threads of Tether's internal I/O runtime (1 to 64; default 1),
/// shared by all clients of the process. Only before the first client is created:
/// afterwards `TETHER_ERR_INVALID_STATE`. Out of range: `TETHER_ERR_INVALID_ARGUMENT`.
///
/// Ownership: no pointers.
/// Threads: any thread, before the first `tether_client_new` of the process.
/// Errors: `TETHER_ERR_INVALID_ARGUMENT` (`count` outside 1..=64), `TETHER_ERR_INVALID_STATE` (a
/// client was created already: the runtime runs).
#[no_mangle]
pub extern "C" fn tether_runtime_set_worker_threads(count: usize) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        match tether_core::runtime::set_worker_threads(count) {
            Ok(()) => TETHER_OK,
            Err(e) => tether_core::Classify::kind(&e).into(),
        }
    })
}

/// A setter of the table below, as the header generator (`ffi/examples/c_setters.rs`) and the
/// tests see it.
#[doc(hidden)]
pub struct TableSetter {
    /// The C name.
    pub name: &'static str,
    /// The row's summary (its `///` lines).
    pub doc: &'static str,
    /// The arguments after `config`: (name, Rust type as written in the row).
    pub args: &'static [(&'static str, &'static str)],
    /// The option ids it sets, in argument order.
    pub options: &'static [&'static str],
}

/// The setters that only hand their arguments to core's option table, one row each: the C
/// name, the arguments after `config`, and the (option id => value) pairs. cbindgen does not
/// expand macros: `ffi/gen-header.sh` appends their declarations from `TABLE_SETTERS`, with
/// the row's summary, each option's doc and default from core's table, and the Ownership /
/// Threads / Errors lines that follow from the argument types.
macro_rules! table_setters {
    ($(
        $(#[doc = $doc:literal])*
        fn $name:ident($($arg:ident: $ty:ty),*) { $($id:literal => $value:expr),+ $(,)? }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[doc = ""]
            #[doc = concat!("Sets", $(" `", $id, "`"),+, " of core's option table.")]
            #[no_mangle]
            #[allow(unused_unsafe)]
            pub extern "C" fn $name(config: *mut tether_config, $($arg: $ty),*) -> tether_status {
                // SAFETY: header contract: a string argument is NULL or NUL-terminated and a
                // buffer NULL or `len` readable bytes, live and unmodified for the call.
                set(config, || Ok([$(($id, unsafe { $value })),+]))
            }
        )*
        /// Every setter of the table, in header order.
        #[doc(hidden)]
        pub const TABLE_SETTERS: &[TableSetter] = &[$(TableSetter {
            name: stringify!($name),
            doc: concat!($($doc, "\n"),*),
            args: &[$((stringify!($arg), stringify!($ty))),*],
            options: &[$($id),+],
        }),*];
    };
}

fn pairs(
    name: *const c_char,
    value: *const c_char,
    what: [&str; 2],
) -> Result<(String, String), Fail> {
    // SAFETY: forwarded from the table setter's contract (both NULL or NUL-terminated).
    let (name, value) = unsafe { (str_arg(name, what[0])?, str_arg(value, what[1])?) };
    Ok((name.to_owned(), value.to_owned()))
}

table_setters! {
    /// The proxy to connect through (`http://`, `socks5://`, `socks5h://`, with optional
    /// `user:password@`), or `"none"` for a direct connection. Unset: the environment decides.
    fn tether_config_set_proxy(proxy: *const c_char) { "proxy" => text(str_arg(proxy, "proxy")?) }
    fn tether_config_add_header(name: *const c_char, value: *const c_char) {
        "headers" => OptionValue::Pairs(vec![pairs(name, value, ["name", "value"])?]),
    }
    /// Offer a subprotocol (`Sec-WebSocket-Protocol`); may be called several times.
    fn tether_config_add_subprotocol(protocol: *const c_char) {
        "subprotocols" => OptionValue::List(vec![str_arg(protocol, "protocol")?.to_owned()]),
    }
    fn tether_config_set_connect_timeout_ms(timeout_ms: u64) {
        "connect_timeout" => dur(timeout_ms),
    }
    /// Happy Eyeballs (RFC 8305) connection attempt delay, for hosts with several addresses
    /// (from DNS or `tether_config_add_resolve`); the first TCP connection to succeed wins.
    fn tether_config_set_happy_eyeballs_delay_ms(delay_ms: u64) {
        "happy_eyeballs_delay" => dur(delay_ms),
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
    /// check use. Another host than the URL's, or an address that is not an IP (with a port
    /// other than 0), is refused when the config is built.
    fn tether_config_add_resolve(host: *const c_char, address: *const c_char) {
        "resolve" => {
            let (host, address) = pairs(host, address, ["host", "address"])?;
            OptionValue::Resolve(vec![(host, vec![address])])
        },
    }
    /// Which CAs `wss://` trusts: a `tether_tls_roots` value (default `TETHER_TLS_ROOTS_SYSTEM`).
    /// A CA file or PEM, when one is set, wins over it, whatever the order of the calls.
    fn tether_config_set_tls_roots(roots: c_int) {
        "tls_roots" => choice(roots, "tether_tls_roots", &["system", "webpki"])?,
    }
    /// Trust only the CA certificates in this PEM file (read and parsed when the config is built;
    /// takes precedence over the other TLS root settings).
    fn tether_config_set_tls_ca_file(path: *const c_char) { "ca_file" => text(str_arg(path, "path")?) }
    /// Trust only the CA certificates in this PEM text (`len` bytes, copied; takes precedence
    /// over the named root set, and a CA file over it).
    fn tether_config_set_tls_ca_pem(pem: *const u8, len: usize) {
        "ca_pem" => OptionValue::Bytes(bytes_arg(pem, len, "pem")?.to_vec()),
    }
    /// Mutual TLS: the client certificate chain from this PEM file (read when the config is built).
    fn tether_config_set_client_cert_file(path: *const c_char) {
        "client_cert_file" => text(str_arg(path, "path")?),
    }
    /// Mutual TLS: the client certificate's private key from this PEM file.
    fn tether_config_set_client_key_file(path: *const c_char) {
        "client_key_file" => text(str_arg(path, "path")?),
    }
    /// Mutual TLS: the client certificate chain as PEM text (`len` bytes, copied).
    fn tether_config_set_client_cert_pem(pem: *const u8, len: usize) {
        "client_cert_pem" => OptionValue::Bytes(bytes_arg(pem, len, "pem")?.to_vec()),
    }
    /// Mutual TLS: the client certificate's private key as PEM text (`len` bytes, copied).
    fn tether_config_set_client_key_pem(pem: *const u8, len: usize) {
        "client_key_pem" => OptionValue::Bytes(bytes_arg(pem, len, "pem")?.to_vec()),
    }
    fn tether_config_set_danger_accept_invalid_certs(accept: bool) {
        "tls_insecure" => OptionValue::Bool(accept),
    }
    fn tether_config_set_reconnect_enabled(enabled: bool) {
        "reconnect" => OptionValue::Bool(enabled),
    }
    /// Reconnect backoff.
    fn tether_config_set_backoff(initial_ms: u64, max_ms: u64, multiplier: f64) {
        "backoff_initial" => dur(initial_ms),
        "backoff_max" => dur(max_ms),
        "backoff_multiplier" => OptionValue::Float(multiplier),
    }
    fn tether_config_set_max_reconnect_attempts(attempts: u32) {
        "max_reconnect_attempts" => int_or_unset(attempts as usize),
    }
    fn tether_config_set_max_retry_duration_ms(duration_ms: u64) {
        "max_retry_duration" => dur_or_unset(duration_ms),
    }
    fn tether_config_set_min_uptime_ms(uptime_ms: u64) { "min_uptime" => dur(uptime_ms) }
    /// Heartbeat: a WebSocket ping every `interval_ms`; if nothing arrives within `timeout_ms`
    /// of a ping, the link is dead and is reconnected. `interval_ms` 0 turns it off.
    fn tether_config_set_heartbeat(interval_ms: u64, timeout_ms: u64) {
        "ping_interval" => dur_or_unset(interval_ms),
        "ping_timeout" => dur(timeout_ms),
    }
    /// Outbox bounds, in messages and bytes (including the batch being written).
    fn tether_config_set_outbox_limits(max_messages: usize, max_bytes: usize) {
        "outbox_max_messages" => int(max_messages),
        "outbox_max_bytes" => int(max_bytes),
    }
    fn tether_config_set_queue_while_disconnected(queue: bool) {
        "queue_while_disconnected" => OptionValue::Bool(queue),
    }
    fn tether_config_set_max_outbound_message_size(bytes: usize) {
        "max_message_size" => int(bytes),
    }
    /// Largest inbound message and frame, in bytes. A bigger one closes the link with 1009
    /// (`on_error` with `TETHER_ERR_TOO_LARGE`).
    fn tether_config_set_max_inbound_size(message_bytes: usize, frame_bytes: usize) {
        "max_inbound_message_size" => int(message_bytes),
        "max_inbound_frame_size" => int(frame_bytes),
    }
    /// Time `tether_client_close` spends draining the outbox and closing.
    /// `tether_client_free` waits at most this plus 2 s.
    fn tether_config_set_close_timeout_ms(timeout_ms: u64) { "close_timeout" => dur(timeout_ms) }
    fn tether_config_set_event_queue_capacity(capacity: usize) {
        "event_queue_capacity" => int(capacity),
    }
    fn tether_config_set_read_buffer_size(bytes: usize) { "read_buffer_size" => int(bytes) }
    fn tether_config_set_write_batch_bytes(bytes: usize) { "write_batch_bytes" => int(bytes) }
    /// Raw WebSocket (`TETHER_PROTOCOL_RAW`, default) or the Tether envelope with acks
    /// (`TETHER_PROTOCOL_ENVELOPE`): a `tether_protocol` value.
    fn tether_config_set_protocol(protocol: c_int) {
        "protocol" => choice(protocol, "tether_protocol", &["raw", "envelope"])?,
    }
    fn tether_config_set_session_id(id: *const c_char) { "session_id" => text(str_arg(id, "id")?) }
    /// Keep the outbox in the file at `path` (created if missing; copied): queued and
    /// unacknowledged messages, the id sequence and the session survive the process, and a
    /// client created again with the same path resumes the session (docs/PERSISTENCE.md). One
    /// live client per file: a second gets `TETHER_ERR_STORAGE` from `tether_client_new`.
    fn tether_config_set_outbox_path(path: *const c_char) {
        "outbox_path" => text(str_arg(path, "path")?),
    }
    /// What the persistent outbox makes durable against a machine crash: a
    /// `tether_outbox_sync` value (default `TETHER_OUTBOX_SYNC_BATCH`).
    fn tether_config_set_outbox_sync(sync: c_int) {
        "outbox_sync" => choice(sync, "tether_outbox_sync", &["none", "batch", "always"])?,
    }
    fn tether_config_set_auth_token(token: *const c_char) {
        "token" => text(str_arg(token, "token")?),
    }
    fn tether_config_set_signing_key(key: *const u8, len: usize) {
        "signing_key" => OptionValue::Bytes(bytes_arg(key, len, "key")?.to_vec()),
    }
    fn tether_config_set_compression_threshold(bytes: usize) {
        "compression_threshold" => int_or_unset(bytes),
    }
    /// Envelope mode: wait `timeout_ms` for an ack before writing a message again, and report it
    /// failed (`TETHER_ERR_ACK_TIMEOUT`) after `retries` such timeouts.
    fn tether_config_set_ack_timeout(timeout_ms: u64, retries: u32) {
        "ack_timeout" => dur(timeout_ms),
        "ack_retries" => OptionValue::Int(retries.into()),
    }
    fn tether_config_set_handshake_timeout_ms(timeout_ms: u64) {
        "handshake_timeout" => dur(timeout_ms),
    }
    fn tether_config_set_app_ping(on: bool) { "app_ping" => OptionValue::Bool(on) }
    /// Which thread runs the client's I/O: a `tether_io_driver` value (default
    /// `TETHER_IO_DRIVER_RUNTIME`). `TETHER_IO_DRIVER_CALLER` needs `TETHER_DISPATCH_POLL`
    /// (else `tether_client_new` fails with `TETHER_ERR_INVALID_CONFIG`): the thread in
    /// `tether_client_poll*` and the `tether_client_wait_*` calls then reads and writes the
    /// socket itself (docs/CALLER_IO.md).
    fn tether_config_set_io_driver(driver: c_int) {
        "io_driver" => choice(driver, "tether_io_driver", &["runtime", "caller"])?,
    }
    /// With `TETHER_IO_DRIVER_CALLER`: after `after_ms` without a thread waiting on the client,
    /// a keeper thread runs its I/O (heartbeats, reconnects) until one waits again; 0: no
    /// keeper, no thread besides yours (nothing happens between your polls).
    fn tether_config_set_keeper_after_ms(after_ms: u64) {
        "keeper_after" => dur_or_unset(after_ms),
    }
}
