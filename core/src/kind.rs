//! One classification of every failure: [`ErrorKind`], what kind of failure an error, an
//! abnormal disconnect or an undelivered message is. The bindings translate a kind (C to a
//! `tether_status`, Python to an exception class) instead of each matching the error enums'
//! variants, so a new variant is classified here, once, and every binding follows.

use crate::client::StartError;
use crate::dispatch::DispatchError;
use crate::error::{
    CloseError, ConfigError, ConnectError, DeliveryError, Disconnect, NotReady, SendError,
    SendFailure,
};
use crate::runtime::RuntimeError;

/// What kind of failure it is ([`Classify::kind`], [`Disconnect::error_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A failure inside Tether or the OS (the runtime or a thread could not start).
    Internal,
    /// The URL is not a usable `ws://` or `wss://` URL.
    InvalidUrl,
    /// A config value is out of range or inconsistent, or TLS material is unreadable.
    InvalidConfig,
    /// An argument is invalid: a close code or reason that may not be sent, an unknown message
    /// id, a thread count out of range.
    InvalidArgument,
    /// The call is not possible any more (the runtime already runs).
    InvalidState,
    /// The outbox is full; nothing was queued.
    QueueFull,
    /// A message over a size limit: refused at send, closed with 1009 inbound, or refused by
    /// the server as too large.
    TooLarge,
    /// The client is closed or closing.
    Closed,
    /// Not ready, and queueing while disconnected is off.
    NotReady,
    /// The operation needs another mode (acks in raw mode).
    NotSupported,
    /// A bounded wait ended first.
    Timeout,
    /// A connection attempt failed (refused, DNS, TLS, HTTP status, timeout).
    ConnectFailed,
    /// The link broke, or the server closed it with a code that is not a normal end.
    ConnectionLost,
    /// Nothing arrived within the heartbeat deadline.
    HeartbeatTimeout,
    /// The server violated the WebSocket protocol.
    Protocol,
    /// Envelope mode: the application handshake failed or timed out.
    Handshake,
    /// Envelope mode: the server rejected the session or a message.
    Rejected,
    /// Envelope mode: an inbound frame was refused (bad signature, malformed envelope) and not
    /// delivered; the link stays up ([`crate::Event::InboundRejected`]).
    InboundRejected,
    /// Reconnecting stopped: the attempt or time limit ran out.
    RetriesExhausted,
    /// The connection ended for good with the message undelivered.
    ConnectionFailed,
    /// The message was dropped from a full outbox (drop-oldest policy).
    Dropped,
    /// Envelope mode: no ack after the configured attempts.
    AckTimeout,
    /// A connection attempt failed at the proxy: it refused the tunnel or did not speak its
    /// protocol ([`crate::ConnectError::Proxy`]).
    Proxy,
    /// A connection attempt was not made: the credentials provider failed
    /// ([`crate::ConnectError::Credentials`]). Retried with backoff.
    Credentials,
    /// A call from inside one of the same client's handlers that may not be made there, or
    /// while another thread makes it ([`crate::DispatchError::Reentered`] / `Busy`).
    Reentrant,
    /// The call needs another delivery mode ([`crate::DispatchError::CallbackMode`]).
    WrongMode,
    /// The persistent outbox file could not be opened, read or written
    /// ([`crate::StoreError`], [`crate::SendError::Storage`]).
    Storage,
    /// The client ended before the message was delivered; it stays in the persistent outbox
    /// file for the next client ([`crate::SendFailure::Kept`]).
    Kept,
}

/// An error with an [`ErrorKind`]; every error a client call returns is one.
pub trait Classify: std::fmt::Display {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
}

impl Classify for SendError {
    fn kind(&self) -> ErrorKind {
        match self {
            SendError::Closed => ErrorKind::Closed,
            SendError::NotReady => ErrorKind::NotReady,
            SendError::QueueFull { .. } => ErrorKind::QueueFull,
            SendError::TooLarge { .. } => ErrorKind::TooLarge,
            SendError::Storage(_) => ErrorKind::Storage,
        }
    }
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            _ => ErrorKind::InvalidConfig,
        }
    }
}

impl Classify for StartError {
    fn kind(&self) -> ErrorKind {
        match self {
            StartError::Config(c) => c.kind(),
            StartError::Runtime(r) => r.kind(),
            StartError::Store(_) => ErrorKind::Storage,
            StartError::Thread(_) => ErrorKind::Internal,
            // Settings that cannot work together (a misuse, not a fault).
            StartError::Blocking(_) => ErrorKind::InvalidConfig,
        }
    }
}

impl Classify for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::AlreadyStarted(_) => ErrorKind::InvalidState,
            RuntimeError::InvalidCount(_) => ErrorKind::InvalidArgument,
            RuntimeError::Start(_) => ErrorKind::Internal,
        }
    }
}

impl Classify for CloseError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl Classify for DeliveryError {
    fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::NotSupported => ErrorKind::NotSupported,
            DeliveryError::Failed(reason) => reason.kind(),
            DeliveryError::Timeout => ErrorKind::Timeout,
            DeliveryError::Unknown => ErrorKind::InvalidArgument,
        }
    }
}

impl Classify for SendFailure {
    fn kind(&self) -> ErrorKind {
        match self {
            SendFailure::DroppedOldest => ErrorKind::Dropped,
            SendFailure::Closed => ErrorKind::Closed,
            SendFailure::ConnectionFailed(_) => ErrorKind::ConnectionFailed,
            SendFailure::AckTimeout { .. } => ErrorKind::AckTimeout,
            SendFailure::Rejected(_) => ErrorKind::Rejected,
            SendFailure::RefusedTooLarge { .. } => ErrorKind::TooLarge,
            SendFailure::Kept(_) => ErrorKind::Kept,
        }
    }
}

impl Classify for DispatchError {
    fn kind(&self) -> ErrorKind {
        match self {
            DispatchError::Reentered | DispatchError::Busy => ErrorKind::Reentrant,
            DispatchError::CallbackMode => ErrorKind::WrongMode,
        }
    }
}

impl Classify for NotReady {
    fn kind(&self) -> ErrorKind {
        match self {
            NotReady::Timeout { .. } => ErrorKind::Timeout,
            // The end's own kind; a normal end before ready means the client is closed.
            NotReady::Closed(reason) => reason.error_kind().unwrap_or(ErrorKind::Closed),
        }
    }
}

impl Classify for ConnectError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConnectError::Proxy { .. } => ErrorKind::Proxy,
            ConnectError::Credentials(_) => ErrorKind::Credentials,
            _ => ErrorKind::ConnectFailed,
        }
    }
}

impl Disconnect {
    /// The kind of an abnormal end, None for a normal one ([`Disconnect::is_normal`]): what a
    /// binding reports as an error when a link ends.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        Some(match self {
            d if d.is_normal() => return None,
            Disconnect::ConnectFailed(e) => e.kind(),
            Disconnect::UserClose { .. }
            | Disconnect::ConnectionLost(_)
            | Disconnect::ServerClosed { .. } => ErrorKind::ConnectionLost,
            Disconnect::HeartbeatTimeout(_) => ErrorKind::HeartbeatTimeout,
            Disconnect::InboundTooLarge { .. } => ErrorKind::TooLarge,
            Disconnect::ProtocolError { .. } => ErrorKind::Protocol,
            Disconnect::Rejected { .. } => ErrorKind::Rejected,
            Disconnect::HandshakeTimeout(_) | Disconnect::HandshakeFailed(_) => {
                ErrorKind::Handshake
            }
            Disconnect::RetriesExhausted { .. } => ErrorKind::RetriesExhausted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn normal_ends_have_no_kind_and_other_server_codes_are_a_lost_connection() {
        let server = |code| Disconnect::ServerClosed {
            code,
            reason: String::new(),
        };
        let user = Disconnect::UserClose {
            code: 4000,
            reason: String::new(),
        };
        assert_eq!(user.error_kind(), None);
        assert_eq!(server(4000).close_reason(), Some(""));
        assert_eq!(server(1000).error_kind(), None);
        assert_eq!(server(1001).error_kind(), None);
        assert_eq!(server(1011).error_kind(), Some(ErrorKind::ConnectionLost));
        assert_eq!(server(4000).error_kind(), Some(ErrorKind::ConnectionLost));
        let stalled = Disconnect::HeartbeatTimeout(Duration::from_secs(1));
        assert_eq!(stalled.error_kind(), Some(ErrorKind::HeartbeatTimeout));
        assert_eq!(stalled.close_reason(), None);
        let gave_up = Disconnect::RetriesExhausted {
            reason: "max attempts".into(),
            last: Box::new(server(1011)),
        };
        assert_eq!(gave_up.error_kind(), Some(ErrorKind::RetriesExhausted));
        let refused = Disconnect::ConnectFailed(crate::ConnectError::Credentials("no".into()));
        assert_eq!(refused.error_kind(), Some(ErrorKind::Credentials));
        assert_eq!(DispatchError::Busy.kind(), ErrorKind::Reentrant);
        assert_eq!(DispatchError::CallbackMode.kind(), ErrorKind::WrongMode);
        let io = Disconnect::ConnectFailed(crate::ConnectError::Io("refused".into()));
        assert_eq!(io.error_kind(), Some(ErrorKind::ConnectFailed));
    }

    #[test]
    fn a_failed_delivery_has_the_kind_of_its_failure() {
        let failed = DeliveryError::Failed(SendFailure::AckTimeout { attempts: 3 });
        assert_eq!(failed.kind(), ErrorKind::AckTimeout);
        assert_eq!(DeliveryError::Unknown.kind(), ErrorKind::InvalidArgument);
        let too_large = SendFailure::RefusedTooLarge { attempts: 3 };
        assert_eq!(too_large.kind(), ErrorKind::TooLarge);
        assert_eq!(SendError::NotReady.kind(), ErrorKind::NotReady);
        assert_eq!(
            RuntimeError::AlreadyStarted(1).kind(),
            ErrorKind::InvalidState
        );
        assert_eq!(
            CloseError::InvalidCode(1005).kind(),
            ErrorKind::InvalidArgument
        );
    }
}
