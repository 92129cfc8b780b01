"""The ``websockets`` shape for asyncio: ``async with tether.connect(url) as ws``.

A ``websockets`` user's first lines work as written::

    async with tether.connect("ws://127.0.0.1:9001/") as ws:
        await ws.send("hello")
        print(await ws.recv())

What differs, because Tether keeps the link up by itself: the connection *survives* drops
(``recv`` and iteration go on across reconnects; ``events()`` says what happened), and it is
closed for good only by ``close()``, a stop rule or the attempt limit. What this module adds
to :class:`AsyncClient` is shape, not behaviour: it opens on entry, ``send`` waits for room
instead of raising ``QueueFullError``, messages and events come through separate streams, and
``await receipt`` is the strongest guarantee of the mode (written in raw mode, acked in
envelope mode).

Messages and events share the core's one ordered queue. Each stream takes from it what comes
and leaves the other's items in a small per-stream buffer: messages taken on behalf of
``events()`` are capped at :data:`MESSAGE_SPILL` (then ``events()`` waits for ``recv`` to make
room, so the core's ``event_queue_capacity`` still bounds memory), and events nobody reads are
capped at :data:`EVENT_BACKLOG` (the oldest are dropped with a warning in the log).
"""

from __future__ import annotations

import collections
import logging
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Collection,
    Deque,
    Dict,
    Generator,
    Optional,
    Tuple,
    Union,
)

from ._aio import AsyncClient, _aclose_quietly, _Bridge, _deadline, _wait
from ._types import (
    Closed,
    ConfigError,
    ConnectError,
    ConnectionInfo,
    Data,
    Disconnected,
    DisconnectReason,
    Event,
    InboundRejected,
    QueueFullError,
    Reconnecting,
    SendFailed,
    SessionReset,
    State,
    StateChanged,
    Stats,
    TetherError,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._tether import Receipt
    from ._types import ClientOptions

__all__ = ["connect", "Connection", "LIFECYCLE_EVENTS", "MESSAGE_SPILL", "EVENT_BACKLOG"]

_log = logging.getLogger("tether")

#: The events ``events()`` yields unless ``events=`` says otherwise: every change of the
#: connection's life, not the per-message ``Written`` / ``Acked`` (receipts answer those).
LIFECYCLE_EVENTS: Tuple[type[Event], ...] = (
    StateChanged,
    Disconnected,
    Reconnecting,
    SendFailed,
    InboundRejected,
    SessionReset,
    Closed,
)

#: Messages ``events()`` may take off the shared queue for a later ``recv`` before it waits.
MESSAGE_SPILL = 1024
#: Events kept for a later ``events()`` read; beyond it the oldest are dropped (logged).
EVENT_BACKLOG = 1024

_TAKE = 256
_UNSET: Any = object()


class Connection:
    """An open Tether connection in the shape of ``websockets``' ``ClientConnection``.

    Made by :func:`connect`. ``await send(message)`` queues a message (``str``: text,
    bytes-like: binary), waiting while the outbox is full, and returns its :class:`Receipt`;
    ``await recv()`` and ``async for message in ws`` give messages only (``str`` or ``bytes``);
    ``events()`` is the stream of what happened to the link. The full API of the underlying
    :class:`AsyncClient` (stats, options, ``send_acked``, ...) is at :attr:`client`.

    Iteration ends quietly when the client was closed normally (``close()``, or a server
    close 1000/1001 that ended it); otherwise it raises ``ClosedError``, whose ``close_code``
    and ``close_reason`` say how it ended, as ``recv`` does in every case.
    """

    __slots__ = ("_client", "_handle", "_messages", "_events", "_dropped", "__weakref__")

    def __init__(self, client: AsyncClient[Any]) -> None:
        self._client = client
        self._handle = client._handle
        self._messages: Deque[Data] = collections.deque()
        self._events: Deque[Event] = collections.deque()
        self._dropped = 0

    # ----- the shared queue --------------------------------------------------------------

    def _take(self, most: int = _TAKE) -> None:
        """Move up to ``most`` items off the core's queue into the two buffers."""
        events = self._events
        for item in self._handle.drain(most):
            if isinstance(item, Event):
                if len(events) >= EVENT_BACKLOG:
                    events.popleft()
                    self._dropped += 1
                    if self._dropped == 1 or self._dropped % EVENT_BACKLOG == 0:
                        _log.warning(
                            "%d events dropped: nobody reads Connection.events() "
                            "(pass events=() to connect() to subscribe to none)",
                            self._dropped,
                        )
                events.append(item)
            else:
                self._messages.append(item)

    def _bridge(self) -> _Bridge:
        return self._client._loop_bridge()

    def _recheck(self) -> None:
        """Let waiters of the other stream see what this one moved (or the room it made)."""
        bridge = self._client._bridge
        if bridge is not None:
            bridge._process()

    # ----- sending -----------------------------------------------------------------------

    async def send(self, message: Union[str, bytes, bytearray, memoryview]) -> Receipt:
        """Queue ``message`` and return its receipt, waiting while the outbox is full.

        ``await receipt`` then waits for the strongest guarantee of the mode: written to the
        socket (raw mode) or acknowledged by the server (envelope mode). Raises
        ``ClosedError`` once closed, ``MessageTooLargeError`` or ``NotReadyError``
        (``queue_while_disconnected=False``) without queueing anything. Cancelling the wait
        for room queues nothing.
        """
        try:
            return self._client.send(message)  # no further frame while there is room
        except QueueFullError:
            return await self._when_room(self._client.send, message)

    async def send_json(self, obj: object) -> Receipt:
        """``send(json.dumps(obj))`` (compact), waiting for room like :meth:`send`."""
        try:
            return self._client.send_json(obj)
        except QueueFullError:
            return await self._when_room(self._client.send_json, obj)

    async def _when_room(self, send: Callable[[Any], Receipt], arg: Any) -> Receipt:
        """``send(arg)``, again after each change for as long as the outbox is full."""
        handle = self._handle
        bridge: Optional[_Bridge] = None
        while True:
            seen = handle.generation()
            try:
                return send(arg)
            except QueueFullError:
                pass
            # Room comes with a change (a message written, acked or failed); the count was
            # read before trying, so a change in between is not missed.
            if bridge is None:
                bridge = self._bridge()
            await bridge.wait(lambda: handle.generation() != seen)  # noqa: B023

    # ----- receiving ---------------------------------------------------------------------

    async def recv(self, timeout: Optional[float] = None) -> Data:
        """The next message (``str`` or ``bytes``). Raises ``TimeoutError`` after ``timeout``
        seconds, or ``ClosedError`` (with ``close_code`` / ``close_reason``) once the client is
        closed and every message was read."""
        message = self._ready_message()
        if message is None:
            message = await self._next_message(timeout)
            if message is None:
                raise self._handle.closed_error()
        return message

    def _ready_message(self) -> Optional[Data]:
        """A message already taken, or in the core's queue now; None if there is none."""
        messages = self._messages
        if not messages:
            had = len(self._events)
            self._take()
            if len(self._events) != had:
                self._recheck()  # events for events()
            if not messages:
                return None
        message = messages.popleft()
        if len(messages) == MESSAGE_SPILL - 1:
            self._recheck()  # room again: events() may take from the queue
        return message

    async def _next_message(self, timeout: Optional[float]) -> Optional[Data]:
        """The next message, or None once closed with nothing left."""
        messages, handle = self._messages, self._handle
        bridge: Optional[_Bridge] = None
        deadline: Optional[float] = None
        while True:
            message = self._ready_message()
            if message is not None:
                return message
            if handle.finished() is not None:
                return None
            if bridge is None:
                bridge = self._bridge()
                deadline = _deadline(bridge._loop, timeout)
            ready = bridge.wait(lambda: bool(messages) or handle.readable())
            await _wait(ready, deadline, timeout, "recv()")

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Data:
        message = self._ready_message()
        if message is None:
            message = await self._next_message(None)
        if message is not None:
            return message
        if self._handle.finished():
            raise StopAsyncIteration
        raise self._handle.closed_error()

    def events(self) -> _Events:
        """The stream of events (``async for event in ws.events()``), in the order they
        happened, ending after the ``Closed`` event. Which events: ``connect(events=...)``,
        by default :data:`LIFECYCLE_EVENTS`. Best read in a task of its own."""
        return _Events(self)

    async def _next_event(self) -> Optional[Event]:
        """The next event, or None once closed with nothing left."""
        events, messages, handle = self._events, self._messages, self._handle

        def ready() -> bool:
            if events or handle.finished() is not None:
                return True
            return len(messages) < MESSAGE_SPILL and handle.readable()

        bridge: Optional[_Bridge] = None
        while True:
            if not events and len(messages) < MESSAGE_SPILL:
                had = len(messages)
                # No more than the spill allows: the message buffer never exceeds it.
                self._take(min(_TAKE, MESSAGE_SPILL - had))
                if len(messages) != had:
                    self._recheck()  # messages for recv()
            if events:
                return events.popleft()
            if handle.finished() is not None:
                return None
            if bridge is None:
                bridge = self._bridge()
            await bridge.wait(ready)

    # ----- closing -----------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close gracefully: deliver what is queued (up to ``close_timeout``), then the
        closing handshake. Returns when the client is closed."""
        await self._client.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the client is closed for good (by ``close()``, a stop rule or the
        attempt limit), without closing it."""
        handle = self._handle
        if handle.is_closed():
            return
        await self._bridge().wait(handle.is_closed)

    def _close_reason(self) -> Optional[DisconnectReason]:
        if not self._handle.is_closed():
            return None
        return getattr(self._handle.closed_error(), "reason", None)

    @property
    def close_code(self) -> Optional[int]:
        """The close code the client ended with (``None`` while open); 1006 when no close
        frame was exchanged, as in ``websockets``."""
        reason = self._close_reason()
        return None if reason is None else reason.code

    @property
    def close_reason(self) -> Optional[str]:
        """The reason text of the close frame the client ended with (``None`` while open)."""
        reason = self._close_reason()
        return None if reason is None else reason.close_reason

    # ----- what it is --------------------------------------------------------------------

    @property
    def client(self) -> AsyncClient[Any]:
        """The underlying :class:`AsyncClient` (every other call and property)."""
        return self._client

    @property
    def state(self) -> State:
        """The connection state now (``READY`` while the link is up and ready)."""
        return self._client.state

    @property
    def closed(self) -> bool:
        """True once the client is closed for good."""
        return self._client.closed

    @property
    def url(self) -> str:
        """The server URL."""
        return self._client.url

    @property
    def subprotocol(self) -> Optional[str]:
        """The subprotocol the server chose on the last connection (``None``: none)."""
        info = self._client.connection_info
        return None if info is None else info.subprotocol

    @property
    def connection_info(self) -> Optional[ConnectionInfo]:
        """What the last connection negotiated (subprotocol, the 101 headers, proxy, peer)."""
        return self._client.connection_info

    @property
    def latency(self) -> float:
        """The last heartbeat round trip in seconds (0 before the first), as ``websockets``."""
        rtt = self._client.stats().last_rtt
        return 0.0 if rtt is None else rtt

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return self._client.stats()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)

    def __repr__(self) -> str:
        return f"<tether.Connection {self.url} {self.state}>"


class _Events:
    """``async for event in ws.events()``."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Event:
        event = await self._connection._next_event()
        if event is None:
            raise StopAsyncIteration
        return event


class connect:
    """Open a connection: ``async with tether.connect(url, **options) as ws`` or
    ``ws = await tether.connect(url, **options)``.

    Open on entry: it returns once the client is ready (the handshake done in envelope
    mode), or raises ``ConnectError`` (with ``reason``) when the client gave up first (a
    refused upgrade, a stop rule, the attempt limit) or ``open_timeout`` seconds passed; then
    nothing is left running. Attempts before that follow the backoff options; pass
    ``max_reconnect_attempts=0`` to fail on the first refused attempt.

    ``max_size`` is the inbound limit as in ``websockets`` (bytes; a larger message closes
    the link with 1009); Tether's own ``max_inbound_message_size`` is the same option, and
    the default stays Tether's 16 MiB. ``events=`` chooses what :meth:`Connection.events`
    yields (default :data:`LIFECYCLE_EVENTS`; ``()`` for none). Every other keyword is a
    :class:`tether.Client` option. ``overflow="wait"`` is refused: ``send`` waits already.
    """

    __slots__ = ("_url", "_options", "_open_timeout", "_connection")

    def __init__(
        self,
        uri: str,
        *,
        open_timeout: Optional[float] = 10.0,
        max_size: Optional[int] = _UNSET,
        events: Collection[type[Event]] = LIFECYCLE_EVENTS,
        **options: Unpack[ClientOptions],
    ) -> None:
        opts: Dict[str, Any] = dict(options)
        if max_size is not _UNSET:
            _apply_max_size(opts, max_size)
        opts["events"] = tuple(events)
        self._url = uri
        self._options = opts
        self._open_timeout = open_timeout
        self._connection: Optional[Connection] = None

    async def _open(self) -> Connection:
        client = AsyncClient(self._url, **self._options)
        try:
            await client.wait_ready(self._open_timeout)
        except TimeoutError as e:
            await _aclose_quietly(client._handle)
            raise ConnectError(f"could not open {self._url}: {e}") from None
        except TetherError:
            # ConnectError / ClosedError: the client gave up; it is closed already.
            await _aclose_quietly(client._handle)
            raise
        except BaseException:
            # Cancelled (or interrupted): start closing, do not await anything more.
            client._handle.start_close(1000, "")
            raise
        return Connection(client)

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        self._connection = await self._open()
        return self._connection

    async def __aexit__(self, *exc: object) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.__aexit__(*exc)


def _apply_max_size(opts: Dict[str, Any], max_size: Optional[int]) -> None:
    """``max_size`` (websockets' name) as ``max_inbound_message_size``."""
    if max_size is None:
        exc = ConfigError(
            "invalid value for option `max_size`: Tether always bounds inbound messages "
            "(a hostile server must not exhaust memory); give a size in bytes"
        )
        exc.option = "max_size"
        raise exc
    if opts.get("max_inbound_message_size", max_size) != max_size:
        exc = ConfigError(
            "options `max_size` and `max_inbound_message_size` are the same limit; give one"
        )
        exc.option = "max_size"
        raise exc
    opts["max_inbound_message_size"] = max_size
    # One frame cannot be larger than the message it carries; a larger frame limit than the
    # default would otherwise refuse a message `max_size` allows.
    opts.setdefault("max_inbound_frame_size", max_size)

