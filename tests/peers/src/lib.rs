//! Controllable WebSocket test peers for Tether's integration tests.
//!
//! A [`Peer`] is a small WebSocket server bound to `127.0.0.1` (plain `ws://`
//! or `wss://` with a throw-away certificate, see [`self_signed_identity`]).
//! It echoes what it receives, records everything, and can inject faults on
//! demand: close frames, abrupt TCP drops, stalls, invalid UTF-8, oversized
//! messages, rejected upgrades, and stop/restart on the same port.
//!
//! The API is **synchronous**: each peer owns a background OS thread running
//! its own single-threaded tokio runtime, and every method blocks for a
//! bounded time only. Tests can therefore be plain `#[test]` functions.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_test_peers::Peer;
//!
//! let peer = Peer::start();
//! // ... point a client at `peer.url()` ...
//! assert!(peer.wait_connections(1, Duration::from_secs(5)));
//! peer.close_all(4000, "bye");
//! ```
#![warn(missing_docs)]

mod observed;
pub mod proxy;
mod runtime_thread;
mod server;
pub mod stdin_commands;
mod tasks;
pub mod tether_server;
mod tls;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

pub use proxy::{Direction, Fault, Proxy};
use runtime_thread::RuntimeThread;
use server::{Command, Ctx, OutKind, Shared};
pub use tls::{client_identity, self_signed_identity, TlsIdentity};

/// Default server-side limit on the size of an inbound message (64 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Options for [`Peer::start_with`].
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// TCP port on `127.0.0.1`; `0` picks a free port.
    pub port: u16,
    /// `Some` serves `wss://` with this identity (rustls, ring provider).
    pub tls: Option<TlsIdentity>,
    /// Echo every text/binary message back to its sender (default `true`).
    pub echo: bool,
    /// Answer the HTTP upgrade with this status (e.g. 401, 403, 503) instead
    /// of `101 Switching Protocols`. A status outside 100..=999 is sent as
    /// 500; a 2xx status makes tungstenite drop the connection instead.
    pub reject_upgrade: Option<u16>,
    /// Server-side limit on an inbound message (and frame) size; `None`
    /// means [`DEFAULT_MAX_MESSAGE_SIZE`]. A client exceeding it gets a
    /// close frame with code 1009.
    pub max_message_size: Option<usize>,
    /// With TLS: require a client certificate signed by this CA (PEM); a client without one
    /// or with another fails the TLS handshake (mutual TLS).
    pub client_ca: Option<String>,
    /// Accept each value of this request header once: an upgrade without it, or with a value
    /// seen before, is refused with 401 (a server that takes a token only once).
    pub single_use_header: Option<String>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            port: 0,
            tls: None,
            echo: true,
            reject_upgrade: None,
            max_message_size: None,
            client_ca: None,
            single_use_header: None,
        }
    }
}

/// One data message received by a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Index of the connection it arrived on: 1-based, in the order the
    /// WebSocket upgrades succeeded.
    pub conn: usize,
    /// The message.
    pub msg: ReceivedMsg,
}

/// The payload of a [`Received`] message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceivedMsg {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl ReceivedMsg {
    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ReceivedMsg::Text(text) => Some(text),
            ReceivedMsg::Binary(_) => None,
        }
    }

    /// The bytes, if this is a binary message.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            ReceivedMsg::Text(_) => None,
            ReceivedMsg::Binary(data) => Some(data),
        }
    }
}

/// A controllable WebSocket server on `127.0.0.1`, driven from synchronous
/// code. See the [crate documentation](crate).
///
/// Dropping a `Peer` closes every connection (without close frames), frees
/// the port and joins the background thread (bounded: if the thread does
/// not finish within a few seconds it is detached and a warning printed).
pub struct Peer {
    tls: bool,
    shared: Arc<Shared>,
    /// Shuts the runtime down and joins its thread when the peer is dropped.
    runtime: RuntimeThread<Command>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Starts a plain `ws://` echo peer on a free port.
    ///
    /// # Panics
    ///
    /// Panics if the peer cannot start (see [`Peer::try_start_with`]).
    pub fn start() -> Peer {
        Peer::start_with(PeerOptions::default())
    }

    /// Starts a peer with `opts`; returns once it is listening.
    ///
    /// # Panics
    ///
    /// Panics if the peer cannot start (see [`Peer::try_start_with`]).
    pub fn start_with(opts: PeerOptions) -> Peer {
        match Peer::try_start_with(opts) {
            Ok(peer) => peer,
            Err(e) => panic!("tether test peer failed to start: {e}"),
        }
    }

    /// Like [`Peer::start_with`], but returns an error instead of panicking
    /// when the TLS identity is invalid, the port cannot be bound, or the
    /// runtime thread cannot be started.
    pub fn try_start_with(opts: PeerOptions) -> io::Result<Peer> {
        let tls_acceptor = match &opts.tls {
            Some(identity) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
                identity,
                opts.client_ca.as_deref(),
            )?)),
            None => None,
        };
        let limit = opts.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        let mut shared = Shared::new(opts.echo, opts.reject_upgrade);
        shared.single_use_header = opts.single_use_header.map(|h| h.to_ascii_lowercase());
        let shared = Arc::new(shared);
        let thread_shared = shared.clone();
        let requested_port = opts.port;
        let runtime = RuntimeThread::start(
            "tether test peer",
            move || server::bind(requested_port),
            move |listener, port, commands| {
                let ctx = Arc::new(Ctx::new(port, thread_shared, tls_acceptor, ws_config));
                server::controller(ctx, listener, commands)
            },
        )?;
        Ok(Peer {
            tls: opts.tls.is_some(),
            shared,
            runtime,
        })
    }

    /// The TCP port the peer listens on (stable across [`Peer::restart`]).
    pub fn port(&self) -> u16 {
        self.runtime.port()
    }

    /// `ws://127.0.0.1:PORT/`, or `wss://localhost:PORT/` with TLS.
    pub fn url(&self) -> String {
        if self.tls {
            format!("wss://localhost:{}/", self.port())
        } else {
            format!("ws://127.0.0.1:{}/", self.port())
        }
    }

    /// Total number of successful WebSocket upgrades since start.
    ///
    /// An upgrade is counted when the peer accepts the request, just before
    /// it writes the `101` response, so a client that sees its connection
    /// open can rely on it being counted (and reached by `send_*_all`,
    /// `close_all`, ...). Rejected upgrades are not counted.
    pub fn connections_accepted(&self) -> usize {
        self.shared.lock().accepted
    }

    /// Number of upgraded connections currently open on the server side.
    ///
    /// A connection closed by the client is counted until the server has
    /// noticed; use [`Peer::wait_open_connections`] to synchronise.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open
    }

    /// Blocks until [`Peer::connections_accepted`] `>= n`; `false` on timeout.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| (s.accepted >= n).then_some(()))
            .is_some()
    }

    /// Blocks until [`Peer::open_connections`] `== n`; `false` on timeout.
    pub fn wait_open_connections(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| (s.open == n).then_some(()))
            .is_some()
    }

    /// Every data message received so far, from all connections, in arrival
    /// order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Blocks until at least `n` data messages have been received; `false`
    /// on timeout.
    pub fn wait_received(&self, n: usize, timeout: Duration) -> bool {
        self.shared
            .wait_until(timeout, |s| (s.received.len() >= n).then_some(()))
            .is_some()
    }

    /// Headers of the most recent WebSocket upgrade request (names lower-case), in order.
    pub fn last_request_headers(&self) -> Vec<(String, String)> {
        self.shared
            .last_request_headers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Number of ping frames received (each was answered with a pong).
    pub fn pings_received(&self) -> usize {
        self.shared.lock().pings
    }

    /// The most recent close frame a client sent (code, reason), on any
    /// connection. A close frame without a status is reported as 1005. After
    /// [`Peer::close_all`], this is the client's reply.
    pub fn last_close_received(&self) -> Option<(u16, String)> {
        self.shared.lock().last_close.clone()
    }

    /// Blocks until [`Peer::last_close_received`] is `Some` and returns it;
    /// `None` on timeout. (A close received earlier returns immediately.)
    pub fn wait_close_received(&self, timeout: Duration) -> Option<(u16, String)> {
        self.shared.wait_until(timeout, |s| s.last_close.clone())
    }

    /// Sends a close frame with `code` and `reason` on every open
    /// connection, then lets the client complete the closing handshake (the
    /// TCP connection is dropped when the client's reply arrives, or after
    /// 5 s). Returns once the close frames are written (bounded).
    ///
    /// `reason` should stay within 123 bytes to form a valid close frame.
    pub fn close_all(&self, code: u16, reason: &str) {
        self.broadcast("close_all", OutKind::close(code, reason));
    }

    /// Drops every connection's TCP stream at once, without any close frame
    /// (also connections still in their opening handshake). Returns once
    /// the sockets are closed.
    pub fn drop_all(&self) {
        self.runtime
            .request("drop_all", |reply| Command::DropAll { reply });
    }

    /// Stops (`true`) or resumes (`false`) all socket I/O on current and
    /// future connections: nothing is read (so pings get no pong and
    /// messages no echo, and new connections get no handshake answer) and
    /// nothing is written; TCP connections stay open. Frames sent by
    /// `send_*_all`/`close_all` while stalled are queued until resumed, and
    /// those methods then return without waiting.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.stall.send_replace(stalled);
    }

    /// Sends a text message on every open connection (returns once written,
    /// bounded).
    pub fn send_text_all(&self, text: &str) {
        let kind = OutKind::Msg(Message::text(text));
        self.broadcast("send_text_all", kind);
    }

    /// Sends a binary message on every open connection (returns once
    /// written, bounded).
    pub fn send_binary_all(&self, data: &[u8]) {
        let kind = OutKind::Msg(Message::binary(Bytes::copy_from_slice(data)));
        self.broadcast("send_binary_all", kind);
    }

    /// Sends a single final TEXT frame whose payload (`ff fe fd`) is not
    /// valid UTF-8 on every open connection.
    pub fn send_invalid_utf8_all(&self) {
        self.broadcast("send_invalid_utf8_all", OutKind::invalid_utf8_text());
    }

    /// Sends a binary message of `len` bytes (a repeating `0..=255`
    /// pattern) on every open connection, to exercise client size limits.
    pub fn send_oversized_all(&self, len: usize) {
        let data: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
        let kind = OutKind::Msg(Message::binary(data));
        self.broadcast("send_oversized_all", kind);
    }

    /// Turns echoing of received text/binary messages on or off.
    pub fn set_echo(&self, echo: bool) {
        self.shared.echo.store(echo, Ordering::SeqCst);
    }

    /// Rejects future upgrades with this HTTP status (`Some`), or accepts
    /// them again (`None`). See [`PeerOptions::reject_upgrade`].
    pub fn set_reject_upgrade(&self, status: Option<u16>) {
        self.shared.set_reject_status(status);
    }

    /// Stops listening and drops every connection without close frames. The
    /// port is free when this returns. No-op if already stopped.
    pub fn stop(&self) {
        self.runtime
            .request("stop", |reply| Command::Stop { reply });
    }

    /// Listens again on the same port after [`Peer::stop`]; blocks until
    /// listening. No-op if already listening.
    ///
    /// # Panics
    ///
    /// Panics if the port cannot be bound again within a few seconds (see
    /// [`Peer::try_restart`]).
    pub fn restart(&self) {
        if let Err(e) = self.try_restart() {
            panic!(
                "tether test peer: cannot listen again on port {}: {e}",
                self.port()
            );
        }
    }

    /// Like [`Peer::restart`], but returns the bind error (e.g. the port was
    /// taken by another process meanwhile).
    pub fn try_restart(&self) -> io::Result<()> {
        self.runtime
            .request("restart", |reply| Command::Restart { reply })
    }

    fn broadcast(&self, what: &str, kind: OutKind) {
        self.runtime
            .request(what, |reply| Command::Broadcast { kind, reply });
    }
}
