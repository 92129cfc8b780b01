//! Error types: one enum per kind of failure a caller can see.
//!
//! * [`ConfigError`]: a [`crate::ConfigBuilder`] refused its input (synchronous, at build time).
//! * [`SendError`]: `send_*` refused a message (synchronous, nothing was queued).
//! * [`CloseError`]: `close` refused its arguments.
//! * [`Disconnect`] and [`ConnectError`]: why a link ended or could not be made (asynchronous,
//!   carried by [`crate::Event::Disconnected`]).
//! * [`SendFailure`]: why a message that *was* accepted will never be delivered (asynchronous,
//!   carried by [`crate::Event::SendFailed`]).

use std::time::Duration;

/// A configuration value was rejected by [`crate::ConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL could not be used; the message names the problem.
    #[error("invalid URL `{url}`: {problem}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A value is out of its allowed range or inconsistent with another one. The text names
    /// options by their ids and values by their names (`protocol="envelope"`), the same in
    /// every binding.
    #[error("invalid value for option `{option}`: {problem}")]
    InvalidValue {
        /// The option's stable id in the option table ([`crate::options::all`]): Python's
        /// keyword; the C setter is the table's `c_setter`.
        option: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// [`crate::ConfigBuilder::set`] was given a name that is not in the option table.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// TLS material (a CA file or PEM text) could not be read or parsed.
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

impl ConfigError {
    /// The id of the option at fault (the option table's, or `url`), when one is.
    pub fn option(&self) -> Option<&'static str> {
        match self {
            ConfigError::InvalidValue { option, .. } => Some(option),
            ConfigError::InvalidUrl { .. } => Some("url"),
            _ => None,
        }
    }
}

/// Why a `send_*` call did not accept a message. Nothing was queued when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The client was closed (by `close`, or because reconnecting stopped).
    #[error("client is closed")]
    Closed,
    /// The link is not ready and the config disables queueing while disconnected.
    #[error("not ready and queueing while disconnected is off")]
    NotReady,
    /// The outbox is full (by count or by bytes) and the overflow policy is `Reject`,
    /// or the `Wait` policy's timeout expired.
    #[error("outbox full ({messages} messages, {bytes} bytes queued)")]
    QueueFull {
        /// Messages queued when the send was refused.
        messages: usize,
        /// Bytes queued when the send was refused.
        bytes: usize,
    },
    /// The message, as it would go on the wire, is larger than `max_message_size`;
    /// nothing went on the wire. In envelope mode that is the whole frame: the envelope's
    /// fields and signature, and the text after JSON escaping.
    #[error("message of {size} bytes on the wire exceeds the outbound limit of {limit} bytes")]
    TooLarge {
        /// Size of the refused message on the wire.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The persistent outbox (`outbox_path`) could not record the message; nothing was
    /// queued. The text names the file and the operating system's error.
    #[error("the message was not queued: {0}")]
    Storage(String),
}

/// Why `close` refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// RFC 6455 lets an endpoint send only 1000 or 3000–4999.
    #[error("close code {0} may not be sent (allowed: 1000 and 3000-4999)")]
    InvalidCode(u16),
    /// The reason must fit in a control frame (123 bytes of UTF-8).
    #[error("close reason is {0} bytes; at most 123 are allowed")]
    ReasonTooLong(usize),
}

/// Why a connection attempt failed before the WebSocket was open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP connect, TLS and the HTTP upgrade together took longer than `connect_timeout`.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// The host name did not resolve.
    #[error("could not resolve host: {0}")]
    Resolve(String),
    /// A socket error (connection refused, reset, unreachable, ...).
    #[error("network error: {0}")]
    Io(String),
    /// The TLS handshake failed (certificate not trusted, name mismatch, ...).
    #[error("TLS error: {0}")]
    Tls(String),
    /// The server answered the upgrade request with a non-101 HTTP status.
    #[error("server refused the upgrade with HTTP {status}{}", location.as_ref().map(|l| format!(" (redirect to {l}, not followed)")).unwrap_or_default())]
    HttpStatus {
        /// The HTTP status code.
        status: u16,
        /// The `Location` header of a redirect, which Tether does not follow.
        location: Option<String>,
    },
    /// The upgrade response was not a valid WebSocket handshake (bad `Sec-WebSocket-Accept`,
    /// unexpected subprotocol, garbage instead of HTTP, ...).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    /// The proxy refused the tunnel or did not speak its protocol. Network errors on the way
    /// to the proxy are [`ConnectError::Io`] naming it.
    #[error("proxy {proxy} {detail}")]
    Proxy {
        /// The proxy as `host:port`.
        proxy: String,
        /// What it answered, for the retry classifier.
        refusal: ProxyRefusal,
        /// The answer in words, for example `answered 407 Proxy Authentication Required`.
        detail: String,
    },
    /// The credentials provider ([`crate::ConfigBuilder::credentials_provider`]) failed,
    /// returned unusable headers, or panicked; the attempt was not made.
    #[error("credentials provider failed: {0}")]
    Credentials(String),
}

/// What a proxy answered when it refused a tunnel ([`ConnectError::Proxy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyRefusal {
    /// HTTP `CONNECT` answered with this non-2xx status (407: proxy authentication required).
    HttpStatus(u16),
    /// SOCKS5 answered the connect request with this reply code (RFC 1928 §6).
    SocksReply(u8),
    /// SOCKS5: none of the offered authentication methods is acceptable to the proxy.
    SocksNoAcceptableMethod,
    /// SOCKS5: the user name and password were refused (RFC 1929).
    SocksAuthFailed,
    /// The answer was not the proxy protocol (not HTTP, not SOCKS5, too long).
    Malformed,
}

/// Why a link ended (or could not be made). Carried by [`crate::Event::Disconnected`] and
/// [`crate::Event::Closed`], and the input of the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Disconnect {
    /// The application called `close`.
    #[error("closed by the application with code {code}")]
    UserClose {
        /// The close code that was sent.
        code: u16,
        /// The reason that was sent.
        reason: String,
    },
    /// The server sent a close frame (code 1005 when it carried no status).
    #[error("server closed the connection with code {code} ({reason:?})")]
    ServerClosed {
        /// Close code from the server's frame.
        code: u16,
        /// Reason text from the server's frame.
        reason: String,
    },
    /// The connection could not be made.
    #[error("connect failed: {0}")]
    ConnectFailed(ConnectError),
    /// The TCP connection broke without a close frame (EOF, reset, write error).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No frame arrived within the heartbeat deadline: the link was declared dead and dropped.
    #[error("heartbeat timeout: nothing received for {0:?} after a ping")]
    HeartbeatTimeout(Duration),
    /// The server sent a message or frame over the inbound limit; the client closed with 1009.
    #[error(
        "inbound message of {size} bytes exceeds the limit of {limit} bytes (closed with 1009)"
    )]
    InboundTooLarge {
        /// Size announced or reached by the oversized message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The server violated the WebSocket protocol (for example invalid UTF-8 in a text frame:
    /// closed with 1007; other violations: 1002).
    #[error("protocol error (closed with {code}): {detail}")]
    ProtocolError {
        /// The close code the client sent.
        code: u16,
        /// What was wrong.
        detail: String,
    },
    /// Envelope mode: the server answered `hello` with `reject`.
    #[error("server rejected the session: {reason}{}", if *is_final { " (final)" } else { "" })]
    Rejected {
        /// The server's reason.
        reason: String,
        /// True when retrying cannot help (the client stops reconnecting).
        is_final: bool,
    },
    /// Envelope mode: no `welcome` within `handshake_timeout`.
    #[error("no welcome from the server within {0:?}")]
    HandshakeTimeout(Duration),
    /// Envelope mode: the server answered `hello` with something that is not the Tether
    /// protocol (for example a plain echo server echoing the hello back).
    #[error("application handshake failed: {0}")]
    HandshakeFailed(String),
    /// Reconnecting stopped because `max_attempts` or `max_retry_duration` ran out; `last` is the
    /// failure that would have been retried.
    #[error("gave up reconnecting: {reason}; last failure: {last}")]
    RetriesExhausted {
        /// Which limit ran out.
        reason: String,
        /// The last failure.
        last: Box<Disconnect>,
    },
}

impl Disconnect {
    /// True for a normal end, the one definition every binding uses (for example to decide
    /// whether to report an error): a close the application asked for, or a server close
    /// with 1000 (normal) or 1001 (going away). Anything else is not normal: other server
    /// codes (1011, 4000, ...), transport errors, heartbeat and handshake failures, refusals,
    /// and giving up reconnecting.
    pub fn is_normal(&self) -> bool {
        match self {
            Disconnect::UserClose { .. } => true,
            Disconnect::ServerClosed { code, .. } => matches!(code, 1000 | 1001),
            _ => false,
        }
    }

    /// A stable id of the variant ("user_close", "server_close", "connect_failed",
    /// "connection_lost", "heartbeat_timeout", "inbound_too_large", "protocol_error",
    /// "rejected", "handshake_timeout", "handshake_failed", "retries_exhausted"), for bindings
    /// that report the kind as data (Python's `DisconnectReason.kind`); [`Disconnect::error_kind`]
    /// is the failure classification.
    pub fn kind_id(&self) -> &'static str {
        match self {
            Disconnect::UserClose { .. } => "user_close",
            Disconnect::ServerClosed { .. } => "server_close",
            Disconnect::ConnectFailed(_) => "connect_failed",
            Disconnect::ConnectionLost(_) => "connection_lost",
            Disconnect::HeartbeatTimeout(_) => "heartbeat_timeout",
            Disconnect::InboundTooLarge { .. } => "inbound_too_large",
            Disconnect::ProtocolError { .. } => "protocol_error",
            Disconnect::Rejected { .. } => "rejected",
            Disconnect::HandshakeTimeout(_) => "handshake_timeout",
            Disconnect::HandshakeFailed(_) => "handshake_failed",
            Disconnect::RetriesExhausted { .. } => "retries_exhausted",
        }
    }

    /// The WebSocket close code that best describes this disconnect, as reported to C
    /// (`on_close`) and Python: the real code when a close frame was exchanged, 1006 when the
    /// link broke without one (or never opened).
    pub fn close_code(&self) -> u16 {
        match self {
            Disconnect::UserClose { code, .. } | Disconnect::ServerClosed { code, .. } => *code,
            Disconnect::InboundTooLarge { .. } => 1009,
            Disconnect::ProtocolError { code, .. } => *code,
            Disconnect::RetriesExhausted { last, .. } => last.close_code(),
            Disconnect::Rejected { is_final: true, .. } => 1008,
            Disconnect::Rejected {
                is_final: false, ..
            } => 1013,
            Disconnect::HandshakeFailed(_) => 1002,
            Disconnect::ConnectFailed(_)
            | Disconnect::ConnectionLost(_)
            | Disconnect::HeartbeatTimeout(_)
            | Disconnect::HandshakeTimeout(_) => 1006,
        }
    }

    /// The reason text of the close frame that ended the link (the application's or the
    /// server's), None when it ended without one.
    pub fn close_reason(&self) -> Option<&str> {
        match self {
            Disconnect::UserClose { reason, .. } | Disconnect::ServerClosed { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// Why a message accepted by `send_*` will never be delivered. Each accepted message gets at
/// most one [`crate::Event::SendFailed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendFailure {
    /// The outbox was full, the policy is `DropOldest`, and this was the oldest queued message.
    #[error("dropped from a full outbox (drop-oldest policy)")]
    DroppedOldest,
    /// The client closed before the message could be written (close timeout, or closed while
    /// disconnected).
    #[error("client closed before the message was written")]
    Closed,
    /// Reconnecting stopped for good (final close code or retry limit) with the message unsent
    /// (or, in envelope mode, unacknowledged).
    #[error("connection ended for good before the message was delivered: {0}")]
    ConnectionFailed(String),
    /// Envelope mode: no ack arrived after the message was written `attempts` times, each
    /// followed by `ack_timeout` of silence.
    #[error("no ack after {attempts} attempts")]
    AckTimeout {
        /// Times the message was written.
        attempts: u32,
    },
    /// Envelope mode: the server refused the message (`nack`), for example a bad signature.
    #[error("rejected by the server: {0}")]
    Rejected(String),
    /// The server closed the link with 1009 ("message too big") each of the `attempts` times
    /// this message was the largest one in flight: it exceeds the server's size limit, so it
    /// is given up and the messages behind it go on (see [`crate::TOO_LARGE_STRIKES`]).
    #[error("the server refused the message as too large (close 1009) {attempts} times")]
    RefusedTooLarge {
        /// Links the server closed with 1009 while this message was in flight.
        attempts: u32,
    },
    /// This client ended (for the reason given) before the message was delivered, and the
    /// message stays in the persistent outbox file: a client started with the same
    /// `outbox_path` delivers it (`docs/PERSISTENCE.md`).
    #[error("not delivered by this client ({0}); kept in the outbox file for the next client started with it")]
    Kept(String),
}

impl SendFailure {
    /// A stable id of the variant ("dropped_oldest", "closed", "connection_failed",
    /// "ack_timeout", "rejected", "too_large", "kept"), for bindings that report the kind as data.
    pub fn kind_id(&self) -> &'static str {
        match self {
            SendFailure::DroppedOldest => "dropped_oldest",
            SendFailure::Closed => "closed",
            SendFailure::ConnectionFailed(_) => "connection_failed",
            SendFailure::AckTimeout { .. } => "ack_timeout",
            SendFailure::Rejected(_) => "rejected",
            SendFailure::RefusedTooLarge { .. } => "too_large",
            SendFailure::Kept(_) => "kept",
        }
    }
}

/// Why [`crate::Client::wait_ready`] returned without the client being ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The timeout passed first.
    #[error("not ready (state: {state}){}", last.as_ref().map(|d| format!("; last failure: {d}")).unwrap_or_default())]
    Timeout {
        /// The state then.
        state: crate::State,
        /// The reason of the latest lost link or failed attempt, if any.
        last: Option<Disconnect>,
    },
    /// The client closed for good before it was ready: why.
    #[error("the client closed before it was ready: {0}")]
    Closed(Disconnect),
}

/// Why waiting for a message's delivery ended without an ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// Raw mode has no acks: only envelope mode can tell that the server got a message.
    #[error("acks are not available in raw mode (they need protocol=\"envelope\")")]
    NotSupported,
    /// The message will never be delivered.
    #[error("delivery failed: {0}")]
    Failed(SendFailure),
    /// The wait timed out; the message is still pending.
    #[error("timed out waiting for the ack")]
    Timeout,
    /// Not an id this client issued, or too old to remember.
    #[error("unknown message id")]
    Unknown,
}
