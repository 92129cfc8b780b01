"""Tether: a resilient, ack-aware WebSocket client.

It reconnects by itself (exponential backoff with jitter), finds dead links by heartbeat, keeps
messages in a bounded, ordered outbox while the link is down, and never drops a message
silently: ``send`` returns a :class:`Receipt` (the message id) or raises why not, and every
accepted message is later written or reported failed. With ``protocol="envelope"`` (a server
that speaks the Tether protocol) messages are acknowledged by the server and receipts can be
awaited.

Sync::

    import tether

    with tether.Client("ws://127.0.0.1:9001/") as client:
        client.send("hello")
        for message in client:      # str or bytes
            print(message)
            break

asyncio, in the shape of ``websockets`` (open on entry; ``await ws.send`` waits for room)::

    async with tether.connect("ws://127.0.0.1:9001/") as ws:
        await ws.send("hello")
        async for message in ws:
            print(message)
            break

(:class:`AsyncClient` is the same client with the whole API: ``send`` only queues.)

Log records go to the ``logging`` logger ``"tether"``. See docs/PYTHON.md for every option.
"""

from __future__ import annotations

import atexit
import logging

from . import _aio, _types
from . import _tether
from ._types import (
    Acked,
    ClientOptions,
    Closed,
    ClosedError,
    ConfigError,
    ConnectAttempt,
    ConnectError,
    ConnectionInfo,
    Credentials,
    Data,
    DeliveryFailed,
    DeliveryFailedError,
    Disconnected,
    DisconnectReason,
    Event,
    FailureReason,
    InboundRejected,
    InvalidArgument,
    InvalidArgumentError,
    MessageTooLarge,
    MessageTooLargeError,
    NotReadyError,
    NotSupportedError,
    OtherEvent,
    ProtocolError,
    QueueFullError,
    StorageError,
    Reconnecting,
    SendFailed,
    SessionReset,
    State,
    StateChanged,
    Stats,
    TetherError,
    Written,
)

_tether._init(_types, _aio)
atexit.register(_tether._atexit)
# A library's logger gets only a NullHandler: the application decides where records go.
logging.getLogger("tether").addHandler(logging.NullHandler())

from ._aio import AsyncClient  # noqa: E402
from ._connect import LIFECYCLE_EVENTS, Connection, connect  # noqa: E402
from ._tether import Client, Receipt, set_worker_threads  # noqa: E402

__version__: str = _tether.__version__

__all__ = [
    "connect",
    "Connection",
    "LIFECYCLE_EVENTS",
    "Client",
    "AsyncClient",
    "Receipt",
    "set_worker_threads",
    "ClientOptions",
    "ConnectionInfo",
    "ConnectAttempt",
    "Credentials",
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
]

# Public classes print and pickle as `tether.X`, where users find them.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("tether."):
        _obj.__module__ = "tether"
del _name, _obj
