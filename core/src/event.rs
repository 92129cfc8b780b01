//! What the client reports: connection states, inbound messages, and the [`Event`] stream.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::{Disconnect, SendFailure};

/// Identifies one accepted outbound message. Ids start at 1 and increase by one per accepted
/// message, in send order, for the life of the client (across reconnects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An inclusive range of message ids, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdRange {
    /// The lowest id in the range.
    pub first: MessageId,
    /// The highest id in the range (inclusive).
    pub last: MessageId,
}

impl IdRange {
    /// Whether `id` is in the range.
    pub fn contains(&self, id: MessageId) -> bool {
        self.first <= id && id <= self.last
    }
}

/// Envelope mode: a side of the session lost its state, so the delivery guarantee has a
/// boundary here (reported as [`Event::SessionReset`], right before the `Ready` state event of
/// the link that found out). Nothing is dropped either way: the server's renumbered messages are
/// delivered, and unacknowledged messages are resent. See `docs/PROTOCOL.md`, "Epochs".
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionReset {
    /// The server's session state is gone (it restarted, or evicted the session): a new server
    /// epoch, or a `welcome` whose `last` is below ids it had acknowledged. Its messages are
    /// numbered anew from here on, and delivered.
    pub server_lost_state: bool,
    /// The server held this session id for an earlier client incarnation (`welcome` with
    /// `known: true`): for example a restarted process that reuses its `session_id`. The
    /// earlier incarnation's unacknowledged messages are gone with it.
    pub client_state_lost: bool,
    /// Ids this client saw [`Event::Acked`] for that the server no longer remembers (`None`:
    /// none). Whether their effects survive is up to the server's application (a durable store
    /// keeps them; an in-memory server does not). Ids in the range that had failed instead are
    /// not concerned.
    pub acked_at_risk: Option<IdRange>,
    /// Unacknowledged ids about to be written again that had been written before (`None`:
    /// none): the lost state may have delivered them already, so the server's application may
    /// see them twice.
    pub resends_may_duplicate: Option<IdRange>,
    /// The server's messages from here on may repeat ones an earlier incarnation already
    /// received (it resends what that incarnation never acknowledged). True exactly when
    /// `client_state_lost`.
    pub inbound_may_repeat: bool,
    /// The session revision of the server's `welcome` (1: an old server, detected only because
    /// it forgot an ack; 2: stream epochs).
    pub server_revision: u64,
}

/// The connection state. Every change is reported as [`Event::State`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Making a connection (TCP, TLS, HTTP upgrade), first time or after a backoff delay.
    Connecting = 0,
    /// The WebSocket is open; the application handshake (if any) is running.
    Open = 1,
    /// Ready: queued messages flow. Without an application handshake this follows `Open` at once.
    Ready = 2,
    /// `close` was called: draining the outbox and closing the WebSocket; or reconnecting
    /// stopped and what is left is being failed before `Closed`.
    Closing = 3,
    /// Terminal: the client will not connect again.
    Closed = 4,
    /// The link is down; waiting out the backoff delay before the next attempt.
    Reconnecting = 5,
}

impl State {
    pub(crate) fn from_u8(v: u8) -> State {
        match v {
            0 => State::Connecting,
            1 => State::Open,
            2 => State::Ready,
            3 => State::Closing,
            4 => State::Closed,
            _ => State::Reconnecting,
        }
    }

    /// The state with this number (its `repr(u8)` value, which C's `tether_state` shares), if
    /// there is one.
    pub fn from_repr(v: u8) -> Option<State> {
        (v <= State::Reconnecting as u8).then(|| State::from_u8(v))
    }

    /// The state's name, as used in logs and by the C and Python layers.
    pub fn as_str(self) -> &'static str {
        self.as_c_str().to_str().unwrap_or_default()
    }

    /// The state's name as a static NUL-terminated string (what C's `tether_state_str` returns).
    pub fn as_c_str(self) -> &'static std::ffi::CStr {
        match self {
            State::Connecting => c"connecting",
            State::Open => c"open",
            State::Ready => c"ready",
            State::Closing => c"closing",
            State::Closed => c"closed",
            State::Reconnecting => c"reconnecting",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// UTF-8 text that shares its buffer with the frame it came from (no copy on receive, and no
/// copy on send when built from a `String`).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(pub(crate) Utf8Bytes);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The UTF-8 bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0.into()
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(Utf8Bytes::from(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(Utf8Bytes::from(s))
    }
}

/// One inbound data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8, checked on receipt).
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }
    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The payload bytes (UTF-8 for text).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_str().as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// Everything the client reports, in the order it happened.
///
/// Delivery is bounded: inbound [`Event::Message`]s count against `event_queue_capacity`
/// (when the application falls behind, the client stops reading the socket); consecutive
/// [`Event::Written`] reports coalesce while unconsumed; every other event is one per state
/// change or per failed message. [`Event::Closed`] is always the last event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    State {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// A message from the server.
    Message(Message),
    /// Every accepted message with an id up to and including `up_to` (that has not failed)
    /// has been written to the socket and flushed. Cumulative, like a TCP ack.
    Written {
        /// Highest written id.
        up_to: MessageId,
    },
    /// Envelope mode: the server acknowledged this message. Exactly once per acked message.
    Acked {
        /// The message.
        id: MessageId,
    },
    /// Envelope mode: an inbound frame was refused (bad signature, malformed envelope, unknown
    /// version, ...) and not delivered; the link stays up.
    InboundRejected {
        /// What was wrong.
        reason: String,
    },
    /// An accepted message will never be delivered. Exactly one per failed message.
    SendFailed {
        /// The message.
        id: MessageId,
        /// Why.
        reason: SendFailure,
    },
    /// Envelope mode: a side lost its session state; what that may have cost. Comes right
    /// before the [`Event::State`] change to `Ready` of the link that found out.
    SessionReset(SessionReset),
    /// A link ended (or a connect attempt failed).
    Disconnected {
        /// Why.
        reason: Disconnect,
        /// Whether the client will try again (after an [`Event::Reconnecting`]).
        will_reconnect: bool,
    },
    /// A reconnect attempt is scheduled.
    Reconnecting {
        /// Attempt number in this outage, from 1.
        attempt: u32,
        /// Delay before the attempt starts (backoff with full jitter).
        delay: Duration,
    },
    /// The client is closed for good. Always the last event.
    Closed {
        /// Why the client closed.
        reason: Disconnect,
        /// Messages that were accepted but never written (each also got an
        /// [`Event::SendFailed`]).
        undelivered: usize,
    },
}

/// The kind of an [`Event`], for code that routes or subscribes to events by kind (a
/// binding's callbacks, an `events=` filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// [`Event::State`].
    State,
    /// [`Event::Message`].
    Message,
    /// [`Event::Written`].
    Written,
    /// [`Event::Acked`].
    Acked,
    /// [`Event::InboundRejected`].
    InboundRejected,
    /// [`Event::SendFailed`].
    SendFailed,
    /// [`Event::SessionReset`].
    SessionReset,
    /// [`Event::Disconnected`].
    Disconnected,
    /// [`Event::Reconnecting`].
    Reconnecting,
    /// [`Event::Closed`].
    Closed,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::State,
        EventKind::Message,
        EventKind::Written,
        EventKind::Acked,
        EventKind::InboundRejected,
        EventKind::SendFailed,
        EventKind::SessionReset,
        EventKind::Disconnected,
        EventKind::Reconnecting,
        EventKind::Closed,
    ];
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::State { .. } => EventKind::State,
            Event::Message(_) => EventKind::Message,
            Event::Written { .. } => EventKind::Written,
            Event::Acked { .. } => EventKind::Acked,
            Event::InboundRejected { .. } => EventKind::InboundRejected,
            Event::SendFailed { .. } => EventKind::SendFailed,
            Event::SessionReset(_) => EventKind::SessionReset,
            Event::Disconnected { .. } => EventKind::Disconnected,
            Event::Reconnecting { .. } => EventKind::Reconnecting,
            Event::Closed { .. } => EventKind::Closed,
        }
    }
}

/// A snapshot of the client's counters, readable at any time with `Client::stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
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
    /// Messages reported with `SendFailed`.
    pub send_failures: u64,
    /// Envelope mode: messages acknowledged by the server.
    pub messages_acked: u64,
    /// Messages written again (after a reconnect or an ack timeout).
    pub messages_resent: u64,
    /// Envelope mode: inbound messages dropped as duplicates of ones already delivered.
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
    /// Round-trip time of the last answered WebSocket ping.
    pub last_rtt: Option<Duration>,
    /// Envelope mode: round-trip time of the last answered app-level ping.
    pub last_app_rtt: Option<Duration>,
}

impl Stats {
    /// Every counter with its field name, in declaration order (the durations `last_rtt` and
    /// `last_app_rtt` are not counters): for bindings and exporters that name them.
    pub fn counters(&self) -> [(&'static str, u64); 15] {
        [
            ("messages_sent", self.messages_sent),
            ("bytes_sent", self.bytes_sent),
            ("messages_received", self.messages_received),
            ("bytes_received", self.bytes_received),
            ("reconnects", self.reconnects),
            ("send_failures", self.send_failures),
            ("messages_acked", self.messages_acked),
            ("messages_resent", self.messages_resent),
            ("duplicates_dropped", self.duplicates_dropped),
            ("inbound_rejected", self.inbound_rejected),
            ("awaiting_ack", self.awaiting_ack),
            ("outbox_messages", self.outbox_messages),
            ("outbox_bytes", self.outbox_bytes),
            (
                "outbox_high_water_messages",
                self.outbox_high_water_messages,
            ),
            ("outbox_high_water_bytes", self.outbox_high_water_bytes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_counters_are_named_like_their_fields() {
        let stats = Stats {
            bytes_sent: 7,
            outbox_high_water_bytes: 9,
            ..Stats::default()
        };
        let counters = stats.counters();
        assert_eq!(counters[1], ("bytes_sent", 7));
        assert_eq!(counters[14], ("outbox_high_water_bytes", 9));
        let debug = format!("{stats:?}");
        for (name, value) in counters {
            assert!(debug.contains(&format!("{name}: {value}")), "{name}");
        }
    }

    #[test]
    fn states_round_trip_through_their_numbers_and_names() {
        for v in 0..=5u8 {
            let state = State::from_repr(v).expect("a state");
            assert_eq!(state as u8, v);
            assert_eq!(state.as_str().as_bytes(), state.as_c_str().to_bytes());
        }
        assert_eq!(State::from_repr(6), None);
        assert_eq!(State::Reconnecting.as_str(), "reconnecting");
    }

    #[test]
    fn every_kind_is_listed_once_and_events_report_theirs() {
        let mut kinds = EventKind::ALL.to_vec();
        kinds.dedup();
        assert_eq!(kinds.len(), EventKind::ALL.len());
        let closed = Event::Closed {
            reason: crate::Disconnect::HeartbeatTimeout(Duration::from_secs(1)),
            undelivered: 0,
        };
        assert_eq!(closed.kind(), EventKind::Closed);
        let written = Event::Written {
            up_to: MessageId(1),
        };
        assert_eq!(written.kind(), EventKind::Written);
    }
}
