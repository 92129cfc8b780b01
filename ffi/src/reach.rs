//! Reaching the server, C side: a credentials provider called before every connect attempt,
//! and what the server chose for the connection (core's `ConnectionInfo`).

use std::ffi::{c_char, c_int, c_void};

use tether_core::{ConnectAttempt, ConnectionInfo, Credentials};

use crate::callbacks::UserData;
use crate::client::{call, tether_client};
use crate::config::{tether_config, update};
use crate::status::tether_status::{self, *};
use crate::status::Fail;
use crate::util::{copy_c_message, required, str_arg, write_opt};

/// The credentials of one connect attempt, being filled by a `tether_credentials_provider`
/// (opaque). Valid only during that call: never keep it.
pub struct tether_credentials {
    _opaque: [u8; 0],
}

/// Called before every connect attempt (the first, `attempt` 0, and each reconnect, `attempt`
/// from 1 in each outage; `reconnect` tells whether a connection was up before) on one of
/// Tether's threads, never twice at once for one client; it may block (the time counts
/// against the connect timeout). It fills `credentials` with `tether_credentials_add_header`
/// (a header replaces a configured one of the same name, for this attempt) and
/// `tether_credentials_set_token` (envelope mode: the `hello` token), and returns `TETHER_OK`;
/// any other value fails the attempt (`on_error` with `TETHER_ERR_CREDENTIALS`, then retried
/// with backoff), with the text of `tether_credentials_set_error` if it was called.
pub type tether_credentials_provider = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        attempt: u32,
        reconnect: bool,
        credentials: *mut tether_credentials,
    ) -> c_int,
>;

/// What a provider call fills in (what a `tether_credentials *` points to).
#[derive(Default)]
struct Filling {
    credentials: Credentials,
    error: Option<String>,
}

/// A C provider and its `user_data`, as kept by a config.
#[derive(Clone, Copy)]
pub(crate) struct CProvider {
    f: unsafe extern "C" fn(*mut c_void, u32, bool, *mut tether_credentials) -> c_int,
    user_data: UserData,
}

impl CProvider {
    /// Give the provider to core (which catches a panic and keeps calls apart).
    pub(crate) fn install(self, b: tether_core::ConfigBuilder) -> tether_core::ConfigBuilder {
        b.credentials_provider(move |attempt| self.call(attempt))
    }

    fn call(&self, attempt: &ConnectAttempt) -> Result<Credentials, String> {
        let mut filling = Filling::default();
        let handle = std::ptr::from_mut(&mut filling).cast::<tether_credentials>();
        // SAFETY: the application registered this function with this signature; `handle`
        // points to `filling`, live until the call returns (the header says it is valid for
        // the call only); `user_data` is handed back untouched.
        let status =
            unsafe { (self.f)(self.user_data.0, attempt.attempt, attempt.reconnect, handle) };
        if status == TETHER_OK as c_int {
            return Ok(filling.credentials);
        }
        Err(filling
            .error
            .unwrap_or_else(|| format!("the C callback returned status {status}")))
    }
}

/// Call a credentials provider before every connect attempt (see `tether_credentials_provider`)
/// for fresh headers and an envelope token, like SignalR's `accessTokenFactory`. NULL removes
/// it. The config keeps `provider` and `user_data`; so does every client made from it.
///
/// Ownership: `user_data` stays yours; keep it valid while any client made from this config
/// lives (Tether never frees it).
/// Threads: configure a config from one thread at a time; the provider runs on one of Tether's
/// threads, never twice at once for one client (clients made from one config may call it
/// concurrently).
/// Errors: `TETHER_ERR_NULL_PARAMETER` (`config` NULL), `TETHER_ERR_INVALID_HANDLE` (a freed
/// config).
#[no_mangle]
pub extern "C" fn tether_config_set_credentials_provider(
    config: *mut tether_config,
    provider: tether_credentials_provider,
    user_data: *mut c_void,
) -> tether_status {
    update(config, |s| {
        s.provider = provider.map(|f| CProvider {
            f,
            user_data: UserData(user_data),
        });
        Ok(())
    })
}

/// The filling behind a provider's handle.
///
/// # Safety
/// `credentials` is NULL or the handle of a provider call in progress on this thread.
unsafe fn filling<'a>(credentials: *mut tether_credentials) -> Result<&'a mut Filling, Fail> {
    required(credentials, "credentials")?;
    // SAFETY: by this function's contract it points to the `Filling` of the running call.
    Ok(unsafe { &mut *credentials.cast::<Filling>() })
}

/// Fill a provider's handle: the shared body of the `tether_credentials_*` calls.
fn fill(
    credentials: *mut tether_credentials,
    f: impl FnOnce(&mut Filling) -> Result<(), Fail>,
) -> tether_status {
    ffi_boundary!(TETHER_ERR_PANIC, {
        // SAFETY: header contract: the handle given to the provider call now running.
        match unsafe { filling(credentials) }.and_then(f) {
            Ok(()) => TETHER_OK,
            Err(fail) => fail.status,
        }
    })
}

/// From inside a provider: add a header to this attempt's upgrade request.
///
/// Ownership: `name` and `value` are borrowed for the call (copied).
/// Threads: only inside the provider call that received `credentials`, on its thread.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8). A header
/// that may not be sent fails the attempt with `TETHER_ERR_CREDENTIALS`.
#[no_mangle]
pub extern "C" fn tether_credentials_add_header(
    credentials: *mut tether_credentials,
    name: *const c_char,
    value: *const c_char,
) -> tether_status {
    fill(credentials, |f| {
        // SAFETY: header contract: NUL-terminated strings live for the call.
        let (name, value) = unsafe { (str_arg(name, "name")?, str_arg(value, "value")?) };
        f.credentials
            .headers
            .push((name.to_owned(), value.to_owned()));
        Ok(())
    })
}

/// From inside a provider: the envelope `hello` token for this attempt (instead of the
/// configured one).
///
/// Ownership: `token` is borrowed for the call (copied).
/// Threads: only inside the provider call that received `credentials`, on its thread.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8).
#[no_mangle]
pub extern "C" fn tether_credentials_set_token(
    credentials: *mut tether_credentials,
    token: *const c_char,
) -> tether_status {
    fill(credentials, |f| {
        // SAFETY: header contract: a NUL-terminated string live for the call.
        f.credentials.token = Some(unsafe { str_arg(token, "token") }?.to_owned());
        Ok(())
    })
}

/// From inside a provider that is about to return a failure: the text the failure reports
/// (`on_error` with `TETHER_ERR_CREDENTIALS`).
///
/// Ownership: `message` is borrowed for the call (copied).
/// Threads: only inside the provider call that received `credentials`, on its thread.
/// Errors: `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_ARGUMENT` (not UTF-8).
#[no_mangle]
pub extern "C" fn tether_credentials_set_error(
    credentials: *mut tether_credentials,
    message: *const c_char,
) -> tether_status {
    fill(credentials, |f| {
        // SAFETY: header contract: a NUL-terminated string live for the call.
        f.error = Some(unsafe { str_arg(message, "message") }?.to_owned());
        Ok(())
    })
}

/// Which text `tether_client_connection_info` copies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tether_info {
    /// The subprotocol the server chose; empty if none.
    TETHER_INFO_SUBPROTOCOL = 0,
    /// The name of the 101 answer's header at `index` (lower case).
    TETHER_INFO_HEADER_NAME = 1,
    /// The value of the 101 answer's header at `index`.
    TETHER_INFO_HEADER_VALUE = 2,
    /// The proxy the connection went through (`host:port`); empty if none.
    TETHER_INFO_PROXY = 3,
    /// The TCP peer (`ip:port`: the server, or the proxy); empty if unknown.
    TETHER_INFO_PEER = 4,
}

fn pick(info: &ConnectionInfo, what: c_int, index: usize) -> Result<String, Fail> {
    let header = |i: usize| {
        info.headers
            .get(index)
            .map(|h| if i == 0 { &h.0 } else { &h.1 })
            .cloned()
            .ok_or_else(|| {
                let n = info.headers.len();
                Fail::new(
                    TETHER_ERR_INVALID_ARGUMENT,
                    format!("header index {index}: the answer has {n}"),
                )
            })
    };
    match what {
        0 => Ok(info.subprotocol.clone().unwrap_or_default()),
        1 => header(0),
        2 => header(1),
        3 => Ok(info.proxy.clone().unwrap_or_default()),
        4 => Ok(info.peer.map(|p| p.to_string()).unwrap_or_default()),
        other => Err(Fail::new(
            TETHER_ERR_INVALID_ARGUMENT,
            format!("{other} is not a valid tether_info"),
        )),
    }
}

fn info(client: &crate::client::ClientInner) -> Result<ConnectionInfo, Fail> {
    client
        .with_core(|c| c.connection_info())?
        .ok_or_else(|| Fail::new(TETHER_ERR_NOT_READY, "no connection was made yet"))
}

/// What the server chose on the last connection made: copies the text `what` (a
/// `tether_info`; `index` selects the header for the header kinds, else ignored) into `buf` as
/// a NUL-terminated string, as `tether_client_last_error` does. The values are set before that
/// connection's `on_open` and stay after the link is lost.
///
/// Ownership: copies into your `buf`; `*needed_out` (may be NULL) gets the size needed.
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: `TETHER_ERR_BUFFER_TOO_SMALL` (a truncated copy), `TETHER_ERR_NOT_READY` (no
/// connection made yet), `TETHER_ERR_INVALID_ARGUMENT` (`what` or `index` out of range),
/// `TETHER_ERR_NULL_PARAMETER`, `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_CLOSED` (being freed).
#[no_mangle]
pub extern "C" fn tether_client_connection_info(
    client: *const tether_client,
    what: c_int,
    index: usize,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> tether_status {
    let mut copied = TETHER_OK;
    let status = call(
        client,
        |inner| pick(&info(inner)?, what, index),
        // SAFETY: header contract: `buf` NULL or writable for `len` bytes, `needed_out` NULL
        // or writable.
        |text| copied = unsafe { copy_c_message(&text, buf, len, needed_out) },
    );
    if status == TETHER_OK {
        copied
    } else {
        status
    }
}

/// The last connection's number (1 for the client's first, one more per connection made) to
/// `*connection_out` and the number of headers of its 101 answer to `*header_count_out` (both
/// may be NULL).
///
/// Ownership: writes your outputs on success.
/// Threads: any thread, concurrently, and from inside callbacks.
/// Errors: `TETHER_ERR_NOT_READY` (no connection made yet), `TETHER_ERR_NULL_PARAMETER`,
/// `TETHER_ERR_INVALID_HANDLE`, `TETHER_ERR_CLOSED` (being freed).
#[no_mangle]
pub extern "C" fn tether_client_connection_counts(
    client: *const tether_client,
    connection_out: *mut u64,
    header_count_out: *mut usize,
) -> tether_status {
    call(
        client,
        |inner| info(inner).map(|i| (i.connection, i.headers.len())),
        // SAFETY: header contract: each output NULL or writable.
        |(n, h)| unsafe {
            write_opt(connection_out, n);
            write_opt(header_count_out, h);
        },
    )
}
