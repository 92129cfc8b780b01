"""``tether.server``: a Tether protocol server (docs/PROTOCOL.md, revision 2) with a pluggable
session store, on ``websockets`` asyncio. Install with the extra: ``pip install tether-ws[server]``.

::

    from tether.server import Server, RedisStore

    async def handler(ctx):                      # once per new inbound message, in order
        ctx.tx.rpush(f"orders:{ctx.sid}", ctx.data)   # committed with the de-dup mark
        ctx.send("ok")                                # the reply, committed with it too

    server = Server(handler, store=RedisStore("redis://127.0.0.1:6379/0"))
    await server.start("127.0.0.1", 9001)

The guarantee (docs/SERVER.md): a message is acked only after its de-dup mark is committed to
the store. Effects the handler queues on ``ctx.tx`` are committed in the same atomic
transaction, so they happen exactly once per (session, client epoch, id); effects it makes
elsewhere happen at least once, and a redelivery carries the same (session, id).

:class:`RedisStore` needs the ``redis`` package (the extra installs it); it is imported on
first use, so the memory store works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._server import Context, Data, Handler, Server, Stats
from ._store import (
    Commit,
    MemoryStore,
    MemoryTransaction,
    RejectMessage,
    ServerError,
    SessionFenced,
    SessionNotHere,
    SessionState,
    SessionStore,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from ._redis import RedisStore

__all__ = [
    "Commit",
    "Context",
    "Data",
    "Handler",
    "MemoryStore",
    "MemoryTransaction",
    "RedisStore",
    "RejectMessage",
    "Server",
    "ServerError",
    "SessionFenced",
    "SessionNotHere",
    "SessionState",
    "SessionStore",
    "Stats",
    "StoreUnavailable",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
