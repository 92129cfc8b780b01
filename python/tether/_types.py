"""The values Tether hands to Python code: exceptions, events, states, counters, options.

They are plain Python so that they pickle, compare, print and pattern-match like any
dataclass. The native module (``tether._tether``) creates them; nothing here has behaviour.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Callable,
    Collection,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    Union,
)

if TYPE_CHECKING:
    import os

__all__ = [
    "Data",
    "State",
    "Stats",
    "DisconnectReason",
    "FailureReason",
    "Event",
    "StateChanged",
    "Disconnected",
    "Reconnecting",
    "Written",
    "Acked",
    "SendFailed",
    "InboundRejected",
    "Closed",
    "SessionReset",
    "OtherEvent",
    "TetherError",
    "ConfigError",
    "InvalidArgumentError",
    "InvalidArgument",
    "ConnectError",
    "ClosedError",
    "NotReadyError",
    "QueueFullError",
    "MessageTooLargeError",
    "MessageTooLarge",
    "DeliveryFailedError",
    "DeliveryFailed",
    "ProtocolError",
    "NotSupportedError",
    "StorageError",
    "ClientOptions",
    "ConnectionInfo",
    "ConnectAttempt",
    "Credentials",
]

#: A message payload: ``str`` for a text message, ``bytes`` for a binary one.
Data = Union[str, bytes]


class State(str, enum.Enum):
    """The connection state. Every change is a :class:`StateChanged` event."""

    CONNECTING = "connecting"
    """Making a connection (TCP, TLS, HTTP upgrade), first time or after a backoff delay."""
    OPEN = "open"
    """The WebSocket is open; the application handshake (envelope mode) is running."""
    READY = "ready"
    """Queued messages flow."""
    CLOSING = "closing"
    """``close()`` was called: draining the outbox and closing the WebSocket."""
    CLOSED = "closed"
    """Terminal: the client will not connect again."""
    RECONNECTING = "reconnecting"
    """The link is down; waiting out the backoff delay before the next attempt."""

    def __str__(self) -> str:
        return self.value


DisconnectKind = Literal[
    "user_close",
    "server_close",
    "connect_failed",
    "connection_lost",
    "heartbeat_timeout",
    "inbound_too_large",
    "protocol_error",
    "rejected",
    "handshake_timeout",
    "handshake_failed",
    "retries_exhausted",
    "other",
]

FailureKind = Literal[
    "dropped_oldest",
    "closed",
    "connection_failed",
    "ack_timeout",
    "rejected",
    "too_large",
    "other",
]


@dataclass(frozen=True)
class DisconnectReason:
    """Why a link ended, or why the client closed for good."""

    kind: DisconnectKind
    """What happened (``"server_close"``, ``"connect_failed"``, ``"heartbeat_timeout"``, ...)."""
    code: int
    """The WebSocket close code that best describes it (1006 when no close frame was exchanged)."""
    message: str
    """A sentence for people."""
    close_reason: str = ""
    """The reason text of the close frame, for ``user_close`` and ``server_close``."""
    http_status: Optional[int] = None
    """The HTTP status of a refused upgrade (``connect_failed``)."""
    last: Optional[DisconnectReason] = None
    """For ``retries_exhausted``: the last failure."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class FailureReason:
    """Why an accepted message will never be delivered."""

    kind: FailureKind
    message: str

    def __str__(self) -> str:
        return self.message


class Event:
    """Base class of every event (for ``isinstance`` and ``events=[tether.Event]``)."""

    __slots__ = ()


@dataclass(frozen=True)
class StateChanged(Event):
    """The connection state changed."""

    old: State
    new: State


@dataclass(frozen=True)
class Disconnected(Event):
    """A link ended, or a connect attempt failed."""

    reason: DisconnectReason
    will_reconnect: bool


@dataclass(frozen=True)
class Reconnecting(Event):
    """A reconnect attempt is scheduled after ``delay`` seconds."""

    attempt: int
    delay: float


@dataclass(frozen=True)
class Written(Event):
    """Every accepted message up to id ``up_to`` (that has not failed) was written to the socket."""

    up_to: int


@dataclass(frozen=True)
class Acked(Event):
    """Envelope mode: the server acknowledged message ``id``."""

    id: int


@dataclass(frozen=True)
class SendFailed(Event):
    """Accepted message ``id`` will never be delivered."""

    id: int
    reason: FailureReason


@dataclass(frozen=True)
class InboundRejected(Event):
    """Envelope mode: an inbound frame was refused (bad signature, malformed); the link stays up."""

    reason: str


@dataclass(frozen=True)
class Closed(Event):
    """The client closed for good. Always the last event."""

    reason: DisconnectReason
    undelivered: int
    """Messages accepted but never delivered (each also got a :class:`SendFailed`)."""


@dataclass(frozen=True)
class SessionReset(Event):
    """Envelope mode: a side of the session lost its state, so the delivery guarantee has a
    boundary here. Comes right before the ``ready`` state change of the link that found out.
    Nothing is dropped either way: the server's renumbered messages are delivered and
    unacknowledged messages are resent. Id ranges are Python ``range`` objects
    (``id in reset.acked_at_risk``), or ``None``."""

    server_lost_state: bool
    """The server's session state is gone (it restarted, or evicted the session)."""
    client_state_lost: bool
    """The server held this session id for an earlier client incarnation: a restarted process
    reusing its ``session_id``. That incarnation's unacknowledged messages are gone."""
    acked_at_risk: Optional[range]
    """Ids reported :class:`Acked` that the server no longer remembers: whether their effects
    survive is up to the server's application."""
    resends_may_duplicate: Optional[range]
    """Unacknowledged ids about to be resent that were written before: the server's
    application may see them twice."""
    inbound_may_repeat: bool
    """The server's messages from here on may repeat ones an earlier incarnation received."""
    server_revision: int
    """The server's session revision (1: an old server, found out because it forgot an ack;
    2: stream epochs)."""


@dataclass(frozen=True)
class OtherEvent(Event):
    """An event this version of the Python package does not know yet."""

    description: str


@dataclass(frozen=True)
class Stats:
    """A snapshot of a client's counters (``client.stats()``). Durations are in seconds."""

    messages_sent: int
    bytes_sent: int
    messages_received: int
    bytes_received: int
    reconnects: int
    send_failures: int
    messages_acked: int
    messages_resent: int
    duplicates_dropped: int
    inbound_rejected: int
    awaiting_ack: int
    outbox_messages: int
    outbox_bytes: int
    outbox_high_water_messages: int
    outbox_high_water_bytes: int
    last_rtt: Optional[float]
    last_app_rtt: Optional[float]


@dataclass(frozen=True)
class ConnectionInfo:
    """What the last connection negotiated (``client.connection_info``; None before the first)."""

    connection: int
    """1 for the client's first connection, one more for each connection after it."""
    subprotocol: Optional[str]
    """The subprotocol the server chose from ``subprotocols`` (``Sec-WebSocket-Protocol``)."""
    headers: Tuple[Tuple[str, str], ...]
    """The headers of the server's 101 answer, names in lower case, in order."""
    proxy: Optional[str]
    """The proxy the connection went through (``host:port``), if any."""
    peer: Optional[str]
    """The TCP peer (``ip:port``): the server, or the proxy."""

    def header(self, name: str) -> Optional[str]:
        """The first value of the response header ``name`` (any case), or None."""
        return next((v for k, v in self.headers if k == name.lower()), None)


@dataclass(frozen=True)
class ConnectAttempt:
    """What the ``credentials=`` callable is told before each connect attempt."""

    attempt: int
    """0 for the first connect; then the reconnect attempt's number (as in ``Reconnecting``)."""
    reconnect: bool
    """True when a connection was up before (this is a reconnect)."""
    last_failure: Optional[DisconnectReason]
    """Why the previous connection or attempt ended (an HTTP 401: refresh the token)."""


class Credentials(TypedDict, total=False):
    """What the ``credentials=`` callable returns for one attempt (or None: nothing extra)."""

    headers: Union[Mapping[str, str], Sequence[Tuple[str, str]]]
    """Headers for this attempt's upgrade request; one named like a configured header
    replaces it."""
    token: str
    """Envelope mode: the ``hello`` token for this attempt instead of ``token``."""


# ----- exceptions ----------------------------------------------------------------------------


class TetherError(Exception):
    """Root of every error Tether raises (besides ``TimeoutError`` and argument ``TypeError``)."""


class ConfigError(TetherError, ValueError):
    """An option or the URL was rejected when the client was built. ``option`` names it."""

    option: Optional[str] = None


class InvalidArgumentError(TetherError, ValueError):
    """An argument of a call was rejected (for example a close code that may not be sent)."""


class ConnectError(TetherError):
    """The client could not connect, or lost the link, and gave up (``reason`` says why)."""

    reason: Optional[DisconnectReason] = None


class ClosedError(TetherError):
    """The client is closed. ``reason`` says why (``None`` when the object is gone);
    ``close_code`` and ``close_reason`` are its close code and reason text, as ``websockets``'
    ``ConnectionClosed`` has them."""

    reason: Optional[DisconnectReason] = None

    @property
    def close_code(self) -> Optional[int]:
        """The close code the client ended with (1006 when no close frame was exchanged)."""
        return None if self.reason is None else self.reason.code

    @property
    def close_reason(self) -> Optional[str]:
        """The reason text of the close frame the client ended with (``""`` if none)."""
        return None if self.reason is None else self.reason.close_reason


class NotReadyError(TetherError):
    """Not ready, and the client was built with ``queue_while_disconnected=False``."""


class QueueFullError(TetherError):
    """The outbox is full (``overflow="reject"``, or the ``"wait"`` timeout expired)."""

    messages: int = 0
    bytes: int = 0


class MessageTooLargeError(TetherError):
    """A message exceeds a size limit: outbound (``size``, ``limit``), or inbound (``reason``)."""

    size: int = 0
    limit: int = 0
    reason: Optional[DisconnectReason] = None


class DeliveryFailedError(TetherError):
    """Message ``id`` will never be delivered; ``reason`` says why."""

    id: int = 0
    reason: Optional[FailureReason] = None


class ProtocolError(TetherError):
    """The server violated the WebSocket protocol (or the Tether envelope)."""

    reason: Optional[DisconnectReason] = None


class NotSupportedError(TetherError):
    """The operation needs ``protocol="envelope"`` (acks in raw mode)."""


class StorageError(TetherError):
    """The persistent outbox file (``outbox_path``) could not be used: another live client holds
    it, it is damaged, of another session or mode, or an I/O error; the message names the file
    (docs/PERSISTENCE.md). A failed send writing to it raises this too."""


#: The names before the ``Error`` suffix (kept: the same classes).
InvalidArgument = InvalidArgumentError
MessageTooLarge = MessageTooLargeError
DeliveryFailed = DeliveryFailedError


# ----- options (typing only) -------------------------------------------------------------------


class ClientOptions(TypedDict, total=False):
    """Keyword options of :class:`tether.Client` and :class:`tether.AsyncClient`.

    Durations are in seconds (int or float); sizes in bytes. See docs/PYTHON.md for defaults.
    The options down to the callbacks come from the core's option table.
    """

    # BEGIN generated from core/src/options.rs by core/examples/options_doc.rs
    # connection
    headers: Union[Mapping[str, str], Sequence[Tuple[str, str]]]
    subprotocols: Sequence[str]
    connect_timeout: float
    happy_eyeballs_delay: float
    resolve: Optional[Mapping[str, Sequence[str]]]
    proxy: Optional[str]
    # TLS
    tls_roots: Literal["system", "webpki"]
    ca_file: Union[str, os.PathLike[str], None]
    ca_pem: Union[bytes, str, None]
    tls_insecure: bool
    client_cert_file: Union[str, os.PathLike[str], None]
    client_key_file: Union[str, os.PathLike[str], None]
    client_cert_pem: Union[bytes, str, None]
    client_key_pem: Union[bytes, str, None]
    # reconnect
    reconnect: bool
    backoff_initial: float
    backoff_max: float
    backoff_multiplier: float
    max_reconnect_attempts: Optional[int]
    max_retry_duration: Optional[float]
    min_uptime: float
    # heartbeat
    ping_interval: Optional[float]
    ping_timeout: float
    # outbox
    outbox_max_messages: int
    outbox_max_bytes: int
    overflow: Literal["reject", "drop_oldest", "wait"]
    overflow_timeout: float
    outbox_path: Union[str, os.PathLike[str], None]
    outbox_sync: Literal["none", "batch", "always"]
    queue_while_disconnected: bool
    # limits
    max_message_size: int
    max_inbound_message_size: int
    max_inbound_frame_size: int
    close_timeout: float
    # tuning
    event_queue_capacity: int
    read_buffer_size: int
    write_batch_bytes: int
    # envelope mode
    protocol: Literal["raw", "envelope"]
    token: Optional[str]
    session_id: Optional[str]
    signing_key: Union[bytes, str, None]
    compression_threshold: Optional[int]
    ack_timeout: float
    ack_retries: int
    handshake_timeout: float
    app_ping: bool
    # I/O
    io_driver: Literal["runtime", "caller"]
    keeper_after: Optional[float]
    # END generated
    # callbacks (run on the client's dispatcher thread)
    on_message: Optional[Callable[[Data], object]]
    on_state: Optional[Callable[[StateChanged], object]]
    on_disconnected: Optional[Callable[[Disconnected], object]]
    on_reconnecting: Optional[Callable[[Reconnecting], object]]
    on_written: Optional[Callable[[Written], object]]
    on_acked: Optional[Callable[[Acked], object]]
    on_send_failed: Optional[Callable[[SendFailed], object]]
    on_closed: Optional[Callable[[Closed], object]]
    on_session_reset: Optional[Callable[[SessionReset], object]]
    on_event: Optional[Callable[[Event], object]]
    # called before each connect attempt, on a worker thread (may block)
    credentials: Optional[Callable[[ConnectAttempt], Optional[Credentials]]]


#: The ``events=`` option: which events ``recv()``/iteration yield besides messages.
EventsOption = Union[bool, None, Collection[type]]
