"""asyncio support: :class:`AsyncClient`, awaitable receipts, and ``async with`` on ``Client``.

How events reach the event loop without blocking it, and without a thread per ``await``:
the core counts every change (a batch of events, a status raised, the end) and reports it to
the native hub. A per-client, per-loop :class:`_Bridge` keeps the futures that coroutines wait
on (``recv``, ``wait_ready``, ``close``, receipts). When it has any, it *arms* a one-shot
wake-up in the hub for the next change after the count it saw; that change fires it, and the bridge, now on the
loop, settles every future whose condition holds (reading the core's queue, state and delivery
statuses) and re-arms if some are left. The wake-up is one byte written to a socket the loop
watches (``loop.add_reader``): no GIL is needed for it. Where the loop cannot watch a socket it
is ``loop.call_soon_threadsafe`` instead. Under load one wake-up covers many events, and
``async for`` takes queued messages in batches.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Collection,
    Deque,
    Generic,
    List,
    Literal,
    Optional,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import _tether
from ._types import ConfigError, ConnectionInfo, Data, Event, NotSupportedError, State, Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._tether import Receipt, _Handle, _WakeReader
    from ._types import ClientOptions

__all__ = ["AsyncClient"]

_T = TypeVar("_T")
_R = TypeVar("_R")

_WRITTEN = 0
_ACKED = 1
_MOVED, _ARMED, _GONE = 0, 1, 2

_log = logging.getLogger("tether")


def _settle(fut: asyncio.Future[None], outcome: object) -> None:
    if fut.done():
        return
    if outcome is True:
        fut.set_result(None)
    elif isinstance(outcome, BaseException):
        fut.set_exception(outcome)


class _Bridge:
    """The futures of one client on one event loop, woken when the client changes."""

    __slots__ = (
        "_handle", "_loop", "_waiters", "_receipts", "_armed", "_wake", "_caller", "_keeper",
        "_io", "_kicked", "_tick",
    )

    def __init__(self, handle: _Handle, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = handle
        self._loop = loop
        self._waiters: List[Tuple[asyncio.Future[None], Callable[[], bool]]] = []
        self._receipts: List[Tuple[asyncio.Future[None], int, int]] = []
        self._armed = False
        self._wake: Optional[_WakeReader] = None
        # io_driver="caller": the loop runs the client's I/O (see _watch_io).
        driven = handle.caller_driven()
        self._caller = driven != 0
        self._keeper = driven == 1
        self._io: Optional[Tuple[int, int]] = None  # (link number, our duplicate of its socket)
        self._kicked = False
        self._tick: Optional[asyncio.TimerHandle] = None

    # ----- caller-driven I/O: the loop runs the client's I/O -----------------------------
    #
    # The loop watches a duplicate of the live link's socket and runs a non-blocking pass of
    # the client's I/O on its own thread when it is readable, and soon after a send (no thread
    # hop per message). Timers (heartbeat, reconnect backoff) run on the client's keeper thread
    # whenever the loop has not driven for `keeper_after`; the loop takes the runtime back at
    # its next pass. Without a keeper (keeper_after=None) the loop also runs a pass on a timer
    # of its own: every millisecond while no link is up (connecting, backoff), every 20 ms
    # while one is (heartbeats, ack timeouts). While reading is paused for room (the
    # application does not take its messages) the socket stays readable, so it is not watched.

    def _watch_io(self) -> None:
        handle = self._handle
        send_pending, paused = handle.io_wants()
        want = None if paused else handle.io_link()
        current = self._io
        if (current[0] if current else None) != want:
            self._unwatch_io()
            got = handle.io_socket() if want is not None else None
            if got is not None:
                try:
                    self._loop.add_reader(got[1], self._on_io)
                except NotImplementedError:  # e.g. the Windows proactor loop: the keeper drives
                    os.close(got[1])
                    self._caller = False
                    return
                self._io = got
        if send_pending:
            self._kick()
        if not self._keeper and self._tick is None:
            period = 0.001 if self._io is None else 0.02
            self._tick = self._loop.call_later(period, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._on_io()

    def _unwatch_io(self) -> None:
        tick, self._tick = self._tick, None
        if tick is not None:
            tick.cancel()
        current, self._io = self._io, None
        if current is not None:
            if not self._loop.is_closed():
                self._loop.remove_reader(current[1])
            os.close(current[1])

    def _kick(self) -> None:
        """Run a pass soon: a send waits to be written (also called by the client on a send)."""
        if not self._kicked and self._caller:
            self._kicked = True
            self._loop.call_soon(self._on_kick)

    # Called by the client when a send on another thread waits to be written.
    def _kick_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(self._kick)

    def _on_kick(self) -> None:
        self._kicked = False
        self._on_io()

    def _on_io(self) -> None:
        self._handle.drive()
        self._process()

    def _watch_wake_pipe(self) -> None:
        """Be woken through a socket the loop watches (no GIL needed to wake us)."""
        wake = self._handle.wake_pipe()
        if wake is None:
            return
        try:
            self._loop.add_reader(wake.fileno(), self._on_wake_pipe)
        except NotImplementedError:  # e.g. the Windows proactor loop
            self._handle.drop_wake_pipe()
            return
        self._wake = wake
        if self._handle.is_closed():
            # Closed before the socket was in place: no wake-up will come to remove it.
            self._unwatch_wake_pipe()

    def _unwatch_wake_pipe(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not self._loop.is_closed():
            self._loop.remove_reader(wake.fileno())

    # Called on a Tether thread (holding the GIL) when the armed wake-up fires and there is no
    # wake-up socket.
    def _wake_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(self._on_wake)

    # Called on the loop's own thread (holding the GIL) when it drove the client and that made
    # a change: the loop is awake, no wake-up socket is needed.
    def _wake_soon(self) -> None:
        self._loop.call_soon(self._on_wake)

    def _on_wake(self) -> None:
        self._armed = False
        self._process()

    def _on_wake_pipe(self) -> None:
        wake = self._wake
        if wake is None:
            return
        wake.drain()
        self._armed = False
        self._process()
        if self._handle.is_closed():
            # Nothing will change any more: stop watching (the loop would keep us alive).
            self._finish()

    def wait(self, ready: Callable[[], bool]) -> asyncio.Future[None]:
        """A future that resolves once ``ready()`` is true (checked after every change)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((fut, ready))
        self._process()
        return fut

    def watch(self, id_: int, kind: int) -> asyncio.Future[None]:
        """A future that resolves when message ``id_`` is written (kind 0) or acked (kind 1)."""
        fut: asyncio.Future[None] = self._loop.create_future()
        outcome = self._handle.outcome(id_, kind)
        if outcome is not None:
            _settle(fut, outcome)
            return fut
        self._receipts.append((fut, id_, kind))
        self._process()
        return fut

    def _process(self) -> None:
        handle = self._handle
        while True:
            seen = handle.generation()
            if self._caller:
                self._watch_io()
            if self._receipts:
                left = []
                for fut, id_, kind in self._receipts:
                    if fut.done():
                        continue  # cancelled, or timed out by wait_for
                    outcome = handle.outcome(id_, kind)
                    if outcome is None:
                        left.append((fut, id_, kind))
                    else:
                        _settle(fut, outcome)
                self._receipts = left
            if self._waiters:
                pending = []
                for fut, ready in self._waiters:
                    if fut.done():
                        continue  # cancelled, or timed out by wait_for
                    if ready():
                        fut.set_result(None)
                    else:
                        pending.append((fut, ready))
                self._waiters = pending
            if not self._waiters and not self._receipts and not self._caller:
                return
            # (A caller-driven client's bridge stays armed: every change may be a new link.)
            if self._armed:
                return  # the wake-up is armed (or already on its way)
            answer = handle.arm(seen)
            if answer == _ARMED:
                self._armed = True
                return
            if answer == _GONE:
                self._finish()
                return
            # _MOVED: something changed while we looked; look again.

    def _finish(self) -> None:
        """The client is closed for good: settle everything now."""
        self._unwatch_wake_pipe()
        self._unwatch_io()
        self._caller = False
        waiters, self._waiters = self._waiters, []
        for fut, ready in waiters:
            if not fut.done():
                if ready():
                    fut.set_result(None)
                else:
                    exc = self._handle.closed_error()
                    fut.set_exception(exc)
        receipts, self._receipts = self._receipts, []
        for fut, id_, kind in receipts:
            outcome = self._handle.outcome(id_, kind)
            if fut.done():
                continue
            if outcome is None:
                fut.set_exception(self._handle.closed_error())
            else:
                _settle(fut, outcome)


def _bridge_for(handle: _Handle, loop: asyncio.AbstractEventLoop) -> _Bridge:
    bridge = handle.bridge()
    if isinstance(bridge, _Bridge) and bridge._loop is loop:
        return bridge
    if isinstance(bridge, _Bridge):
        bridge._unwatch_wake_pipe()  # its loop is closed or no longer used with this client
        bridge._unwatch_io()
        bridge._caller = False
    bridge = _Bridge(handle, loop)
    # Refused once the client is closed: the bridge then settles every wait at once.
    if handle.set_bridge(bridge):
        bridge._watch_wake_pipe()
        if bridge._caller:
            bridge._process()
    return bridge


def _receipt_future(handle: _Handle, id_: int, kind: int) -> asyncio.Future[None]:
    """``receipt.acked()`` / ``receipt.written()`` / ``await receipt``."""
    return _bridge_for(handle, asyncio.get_running_loop()).watch(id_, kind)


class _Expired(Exception):
    """Set on a future whose wait ran out (turned into ``TimeoutError`` by ``_wait``)."""


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _deadline(loop: asyncio.AbstractEventLoop, timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else loop.time() + timeout


async def _wait(
    fut: asyncio.Future[_R], deadline: Optional[float], timeout: Optional[float], what: str
) -> _R:
    """Await ``fut`` until the loop time ``deadline``; then raise ``TimeoutError``.

    A timer on the future itself rather than ``asyncio.wait_for``: no task per wait, and fewer
    turns of the loop for a wait that is answered quickly (``recv`` in a request/response loop).
    """
    if deadline is None or fut.done():
        return await fut
    timer = fut.get_loop().call_at(deadline, _expire, fut)
    try:
        return await fut
    except _Expired:
        raise TimeoutError(f"{what} timed out after {timeout}s") from None
    finally:
        timer.cancel()


async def _aclose(handle: _Handle, code: int, reason: str, timeout: Optional[float]) -> None:
    handle.start_close(code, reason)
    if handle.is_closed():
        return
    loop = asyncio.get_running_loop()
    bridge = _bridge_for(handle, loop)
    await _wait(bridge.wait(handle.is_closed), _deadline(loop, timeout), timeout, "close()")


async def _aclose_quietly(handle: _Handle) -> None:
    limit = handle.close_bound()
    try:
        await _aclose(handle, 1000, "", limit)
    except TimeoutError:
        _log.warning("close did not finish within %.1fs; it goes on in the background", limit)


# `async with tether.Client(...)`: the sync client closes without blocking the loop.
async def _aenter(client: Any) -> Any:
    return client


async def _aexit(handle: _Handle) -> None:
    await _aclose_quietly(handle)


class AsyncClient(Generic[_T]):
    """A resilient WebSocket client for asyncio.

    Same options and behaviour as :class:`tether.Client`; the waiting calls are coroutines
    that never block the event loop. ``send`` only queues, so it stays a plain method.
    ``async for message in client`` yields messages (``str`` or ``bytes``) and the events
    chosen with ``events=``, and ends when the client is closed by ``close()``.

    ``send(data)`` queues a message (``str``: text, bytes-like: binary) and returns its
    :class:`Receipt` at once: ``await receipt`` waits for the strongest guarantee of the mode
    (the server's ack in envelope mode, the write in raw mode), ``await receipt.written()`` for
    the write to the socket. It raises ``QueueFullError``, ``MessageTooLargeError``,
    ``ClosedError`` or ``NotReadyError`` if nothing was queued. (:func:`tether.connect` gives
    the ``websockets`` shape: ``await ws.send()`` waits for room instead.)
    ``send_json(obj)`` queues ``json.dumps(obj)`` as a text message.

    Callbacks (``on_message=``, ...) run on the client's dispatcher thread, not on the loop.
    ``overflow="wait"`` is refused: it would block the loop in ``send``.
    """

    # `send` and `send_json` are the native client's own methods, stored per instance: no
    # Python frame per message.
    __slots__ = ("_client", "_handle", "_bridge", "_buffer", "send", "send_json", "__weakref__")

    send: Callable[[Union[str, bytes, bytearray, memoryview]], Receipt]
    send_json: Callable[[object], Receipt]

    @overload
    def __init__(
        self: AsyncClient[Data],
        url: str,
        *,
        events: Literal[False, None] = None,
        **options: Unpack[ClientOptions],
    ) -> None: ...

    @overload
    def __init__(
        self: AsyncClient[Union[Data, Event]],
        url: str,
        *,
        events: Union[Literal[True], Collection[type[Event]]],
        **options: Unpack[ClientOptions],
    ) -> None: ...

    def __init__(self, url: str, **options: Any) -> None:
        if options.get("overflow") == "wait":
            exc = ConfigError(
                'invalid value for option `overflow`: "wait" blocks the caller of send(), '
                'which would block the event loop; use "reject" (QueueFullError) or "drop_oldest"'
            )
            exc.option = "overflow"
            raise exc
        self._client: _tether.Client[Any] = _tether.Client(url, **options)
        self.send = self._client.send
        self.send_json = self._client.send_json
        self._handle = self._client._handle()
        self._bridge: Optional[_Bridge] = None
        self._buffer: Deque[Any] = collections.deque()
        if self._handle.caller_driven():
            # io_driver="caller": the running loop watches the socket from the start.
            try:
                self._loop_bridge()
            except RuntimeError:  # no running loop yet: the first await installs the bridge
                pass

    def _loop_bridge(self) -> _Bridge:
        loop = asyncio.get_running_loop()
        bridge = self._bridge
        if bridge is None or bridge._loop is not loop:
            bridge = self._bridge = _bridge_for(self._handle, loop)
        return bridge

    @property
    def url(self) -> str:
        """The server URL."""
        return self._client.url

    @property
    def state(self) -> State:
        """The connection state now."""
        return self._client.state

    @property
    def closed(self) -> bool:
        """True once the client is closed for good."""
        return self._client.closed

    @property
    def protocol(self) -> str:
        """``"raw"`` or ``"envelope"``."""
        return self._client.protocol

    @property
    def session_id(self) -> str:
        """The envelope session id (stable across reconnects)."""
        return self._client.session_id

    @property
    def epoch(self) -> str:
        """Envelope mode: this client's stream epoch (16 hex digits, new for every client)."""
        return self._client.epoch

    @property
    def server_epoch(self) -> Optional[str]:
        """Envelope mode: the server's stream epoch from the last welcome (None before the
        first one, and with a revision-1 server)."""
        return self._client.server_epoch

    @property
    def connection_info(self) -> Optional[ConnectionInfo]:
        """What the last connection negotiated; see :attr:`tether.Client.connection_info`."""
        return self._client.connection_info

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return self._client.stats()

    async def send_acked(
        self, data: Union[str, bytes, bytearray, memoryview], timeout: Optional[float] = None
    ) -> Receipt:
        """Send and wait for the server's ack (envelope mode). Raises ``DeliveryFailedError``,
        ``TimeoutError``, or ``NotSupportedError`` in raw mode (before sending anything)."""
        if self._client.protocol != "envelope":
            # Refuse before sending anything (awaiting a raw-mode receipt raises the same).
            raise NotSupportedError(
                'send_acked() needs protocol="envelope" (acks); in raw mode use '
                "send() and await receipt.written()"
            )
        receipt = self._client.send(data)
        fut = receipt.acked()
        deadline = _deadline(fut.get_loop(), timeout)
        await _wait(fut, deadline, timeout, f"ack of message {int(receipt)}")
        return receipt

    async def recv(self, timeout: Optional[float] = None) -> _T:
        """The next message or subscribed event. Raises ``TimeoutError``, or ``ClosedError``
        once the client is closed and everything queued has been read."""
        if self._buffer:
            return self._buffer.popleft()  # type: ignore[no-any-return]
        handle = self._handle
        items = handle.drain(1)
        if items:
            return items[0]  # type: ignore[no-any-return]
        bridge = self._loop_bridge()
        deadline = _deadline(bridge._loop, timeout)
        while True:
            await _wait(bridge.wait(handle.readable), deadline, timeout, "recv()")
            items = handle.drain(1)
            if items:
                return items[0]  # type: ignore[no-any-return]
            if handle.finished() is not None:
                raise handle.closed_error()

    def _fill(self) -> bool:
        """Take a batch of what is queued into the buffer; False if there was none."""
        items = self._handle.drain(256)
        self._buffer.extend(items)
        return bool(items)

    def __aiter__(self) -> AsyncClient[_T]:
        return self

    async def __anext__(self) -> _T:
        buffer = self._buffer
        if buffer:
            return buffer.popleft()  # type: ignore[no-any-return]
        handle = self._handle
        while True:
            if self._fill():
                return buffer.popleft()  # type: ignore[no-any-return]
            finished = handle.finished()
            if finished is not None:
                if finished:
                    raise StopAsyncIteration
                raise handle.closed_error()
            await self._loop_bridge().wait(handle.readable)

    async def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Wait until the client is ready. Raises ``TimeoutError``, or ``ConnectError`` (or
        ``ClosedError``) if it closed for good first."""
        handle = self._handle
        if handle.ready():
            return
        bridge = self._loop_bridge()
        deadline = _deadline(bridge._loop, timeout)
        try:
            while not handle.ready():
                fut = bridge.wait(handle.ready_or_closed)
                await _wait(fut, deadline, timeout, "wait_ready()")
        except TimeoutError:
            last = handle.last_disconnect()
            why = f"; last failure: {last}" if last else ""
            raise TimeoutError(
                f"not ready within {timeout}s (state: {handle.state_name()}){why}"
            ) from None

    async def close(
        self, code: int = 1000, reason: str = "", timeout: Optional[float] = None
    ) -> None:
        """Close gracefully (see ``Client.close``) without blocking the loop."""
        await _aclose(self._handle, code, reason, timeout)

    async def __aenter__(self) -> AsyncClient[_T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await _aclose_quietly(self._handle)

    def __repr__(self) -> str:
        return f"<tether.AsyncClient {self.url} {self.state}>"
