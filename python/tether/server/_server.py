"""The Tether protocol server (docs/PROTOCOL.md, revision 2) on ``websockets`` asyncio, with a
pluggable :class:`~tether.server.SessionStore`.

One :class:`_Link` per WebSocket connection: a reader task queues inbound frames, a processor
task takes them in batches (everything already received, up to ``batch_max``), runs the
handler for each new message, commits the batch to the store in one transaction, and only then
queues the acks and the new outbound messages for the writer task. So an ack never leaves
before its de-dup mark (and the handler's effects queued on ``ctx.tx``) is committed, and an
outbound message never leaves before it is stored as unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Tuple, Union

from websockets.asyncio.server import Server as _WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from . import _protocol as P
from ._store import (
    Commit,
    MemoryStore,
    RejectMessage,
    SessionFenced,
    SessionNotHere,
    SessionState,
    SessionStore,
    StoreUnavailable,
)

_log = logging.getLogger("tether.server")

#: An application payload: ``str`` for a text message, ``bytes`` for a binary one.
Data = Union[str, bytes]

#: The application's message handler: called once per new inbound message (never for a
#: duplicate the store already marked), in order per session; may be a coroutine function.
Handler = Callable[["Context"], Union[None, Awaitable[None]]]

_CLOSE_TAKEN_OVER = (1000, "session resumed on a new connection")
_CLOSE_STORE = (1011, "session store unavailable")
_CLOSE_SHUTDOWN = (1001, "server shutting down")
_ACK_COMMIT_INTERVAL = 0.2  # seconds: acks alone are committed at most this often
_CLOSE_WAIT = 10.0  # seconds a closing link may take before its TCP connection is aborted


class Context:
    """One inbound message as the handler sees it.

    ``tx`` is the store's transaction part for this message (a redis-py pipeline with
    :class:`~tether.server.RedisStore`, a :class:`~tether.server.MemoryTransaction` with
    :class:`~tether.server.MemoryStore`): what the handler queues on it is applied in the same
    atomic commit as the message's de-dup mark, so it happens exactly once, or not at all if
    the commit fails (then nothing is acked and the client resends). :meth:`send` queues a
    reply in the same commit.
    """

    __slots__ = ("sid", "id", "data", "instance", "_store", "_tx", "_out")

    def __init__(self, sid: str, id: int, data: Data, store: SessionStore, instance: str) -> None:
        self.sid = sid  #: the session id (``hello.sid``)
        self.id = id  #: the client's message id (in the client's current epoch)
        self.data = data  #: the payload: ``str`` (text message) or ``bytes`` (binary)
        self.instance = instance  #: the name of the server instance delivering it
        self._store = store
        self._tx: Any = None
        self._out: List[Data] = []

    @property
    def tx(self) -> Any:
        """The store transaction part for this message (see the class doc), made on first use."""
        if self._tx is None:
            self._tx = self._store.transaction()
        return self._tx

    def send(self, data: Data) -> None:
        """Queue a message to this session's client, committed with this message's de-dup
        mark (so a redelivery after a lost commit never sends it twice)."""
        if not isinstance(data, (str, bytes)):
            raise TypeError("data must be str or bytes")
        self._out.append(data)


@dataclass
class _Send:
    data: Data
    done: "asyncio.Future[int]"


@dataclass
class _Fence:
    code: int
    reason: str


@dataclass
class Stats:
    """Counters of one :class:`Server` (this process's view, since it started)."""

    links: int = 0  #: WebSocket connections now open
    sessions: int = 0  #: sessions with a live link on this server
    delivered: int = 0  #: messages handed to the handler and committed
    duplicates: int = 0  #: resends acked again without delivery
    rejected_hellos: int = 0  #: hellos refused (token, store unavailable)
    store_errors: int = 0  #: store calls that failed or timed out
    fenced: int = 0  #: links closed because another link took their session
    nacked: int = 0  #: messages refused for good (signature, size, corrupt, handler)


@dataclass
class _Out:
    frames: List[P.Frame] = field(default_factory=list)


class Server:
    """A Tether protocol server: ``await server.start(host, port)``, ``await server.close()``.

    ``handler`` is called for every new inbound message (see :class:`Context`). ``store`` keeps
    the sessions (default: a new :class:`~tether.server.MemoryStore`). ``token``: hellos must
    carry it (else a final reject). ``key``: HMAC-SHA256 key for signed messages, both ways.
    ``max_size``: the largest inbound message (frame and inflated payload).
    ``compression_threshold``: compress outbound payloads of at least this many bytes.
    ``instance``: this instance's name (stored as the session owner; default host:pid).
    ``store_timeout``: seconds a store call may take before it counts as unavailable.
    ``fence_interval``: how often (seconds) live links check that no other instance took their
    session (a takeover is also seen at the link's next commit). ``batch_max``: most inbound
    frames committed in one store transaction.
    """

    def __init__(self, handler: Handler, *, store: Optional[SessionStore] = None,
                 token: Optional[str] = None, key: Optional[bytes] = None,
                 max_size: int = 16 << 20, compression_threshold: Optional[int] = None,
                 instance: Optional[str] = None, hello_timeout: float = 10.0,
                 store_timeout: float = 3.0, fence_interval: float = 0.5,
                 batch_max: int = 512) -> None:
        self.handler = handler
        self.store: SessionStore = store if store is not None else MemoryStore()
        self.token = token
        self.key = key
        self.max_size = max_size
        self.compression_threshold = compression_threshold
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.hello_timeout = hello_timeout
        self.store_timeout = store_timeout
        self.fence_interval = fence_interval
        self.batch_max = batch_max
        self.stats = Stats()
        self._links: Dict[str, _Link] = {}
        self._all: Set[_Link] = set()
        self._ws: Optional[_WsServer] = None
        self._fencer: Optional[asyncio.Task[None]] = None
        self._stopping = False  # close() has begun

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`start`)."""
        if self._ws is None:
            raise RuntimeError("server not started")
        return int(self._ws.sockets[0].getsockname()[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: a free one, see :attr:`port`)."""
        # No library keepalive (the protocol has its own ping); Tether compresses itself.
        self._ws = await serve(self._serve, host, port, compression=None,
                               max_size=self.max_size * 4 // 3 + 1024, ping_interval=None)
        self._fencer = asyncio.ensure_future(self._fence_loop())

    async def close(self, timeout: float = _CLOSE_WAIT) -> None:
        """Stop listening, close every link (1001) and wait for them, at most ``timeout``
        seconds: the TCP connections of links still open then are aborted, so a peer that
        stopped reading cannot hold a deploy up. The store is not closed."""
        self._stopping = True
        if self._fencer is not None:
            self._fencer.cancel()
            # Bounded: see _fence_loop (a swallowed cancel ends at its next flag check).
            await asyncio.wait([self._fencer], timeout=self.fence_interval + self.store_timeout)
        if self._ws is None:
            return
        # Stop accepting; the links are closed by their own writers (the fence queues the
        # close frame), not by websockets' close_connections, whose close() waits for the
        # socket to drain without a bound (a stalled peer kept a server up for minutes).
        self._ws.close(close_connections=False)
        for link in list(self._all):
            link.fence(*_CLOSE_SHUTDOWN)
        ended = [link.ended.wait() for link in self._all]
        if ended:
            _, late = await asyncio.wait([asyncio.ensure_future(e) for e in ended],
                                         timeout=timeout)
            for task in late:
                task.cancel()
        for link in list(self._all):
            link.ws.transport.abort()
        try:
            await asyncio.wait_for(self._ws.wait_closed(), timeout)
        except asyncio.TimeoutError:
            _log.warning("tether.server: %d links did not end after their TCP abort",
                         len(self._all))

    async def send(self, sid: str, data: Data) -> int:
        """Send an application message to session ``sid``, which must have a live link on this
        instance (else :class:`~tether.server.SessionNotHere`). Returns its id once it is
        committed as unacknowledged (it is then resent after reconnects, on any instance, until
        the client acks it). Raises :class:`~tether.server.StoreUnavailable` or
        :class:`~tether.server.SessionFenced` if it could not be committed."""
        if not isinstance(data, (str, bytes)):
            raise TypeError("data must be str or bytes")
        link = self._links.get(sid)
        if link is None or link.closing:
            raise SessionNotHere(sid)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await link.inbox.put(_Send(data, done))
        return await done

    def sessions(self) -> List[str]:
        """The session ids with a live link on this instance."""
        return list(self._links)

    async def _fence_loop(self) -> None:
        # Ends on the flag, not only on cancel: before Python 3.12, wait_for() can swallow a
        # cancel that lands as its inner call completes (CPython gh-86296), and a swallowed
        # cancel kept this loop, and so close(), running for ever.
        while not self._stopping:
            await asyncio.sleep(self.fence_interval)
            if self._stopping:
                return
            links = dict(self._links)
            if not links:
                continue
            try:
                gens = await asyncio.wait_for(self.store.generations(links), self.store_timeout)
            except (StoreUnavailable, asyncio.TimeoutError):
                continue  # the links' own commits will fail and close them
            except Exception:  # noqa: BLE001 - a store bug must not stop fencing
                _log.exception("tether.server: generations() failed")
                continue
            for sid, link in links.items():
                if link.state is not None and gens.get(sid) != link.state.gen:
                    self.stats.fenced += 1
                    link.fence(*_CLOSE_TAKEN_OVER)

    async def _serve(self, ws: ServerConnection) -> None:
        link = _Link(self, ws)
        self._all.add(link)
        self.stats.links += 1
        try:
            await link.run()
        finally:
            self._all.discard(link)
            self.stats.links -= 1
            link.forget()
            link.ended.set()


class _Link:
    """One WebSocket connection serving (at most) one session."""

    def __init__(self, server: Server, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.state: Optional[SessionState] = None
        self.rev = 1
        # Inbound frames, _Send and _Fence items, in order; bounded: the reader waits.
        self.inbox: asyncio.Queue[Union[P.Frame, _Send, _Fence]] = asyncio.Queue(4096)
        self.outbox: asyncio.Queue[Union[P.Frame, Tuple[int, str]]] = asyncio.Queue()
        self.closing = False
        self.ended = asyncio.Event()  # set once the link's handler has returned
        self._acked_upto = 0  # the hello's `last`, when it counts: committed with a batch

    def put(self, item: Union[P.Frame, Tuple[int, str]]) -> None:
        self.outbox.put_nowait(item)

    def fence(self, code: int, reason: str) -> None:
        """Close this link (from any task): queued behind nothing, so no later ack leaves."""
        self.forget()
        if not self.closing:
            self.closing = True
            self.put((code, reason))
            with contextlib.suppress(asyncio.QueueFull):
                self.inbox.put_nowait(_Fence(code, reason))

    def forget(self) -> None:
        """Stop being the server's link for the session (idempotent)."""
        srv = self.server
        if self.state is not None and srv._links.get(self.state.sid) is self:
            del srv._links[self.state.sid]
            srv.stats.sessions -= 1

    async def run(self) -> None:
        writer = asyncio.ensure_future(self._write_all())
        try:
            if await self._handshake():
                reader = asyncio.ensure_future(self._read_all())
                try:
                    await self._process()
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
            try:
                await asyncio.wait_for(self.ws.wait_closed(), _CLOSE_WAIT)
            except asyncio.TimeoutError:
                self.ws.transport.abort()  # a stalled peer: do not keep it forever
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
            self._fail([(s, 0) for s in self._drain_sends()], SessionNotHere("link closed"))
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write_all(self) -> None:
        while True:
            item = await self.outbox.get()
            try:
                if isinstance(item, tuple):
                    await self.ws.close(*item)
                    return
                await self.ws.send(item)
            except ConnectionClosed:
                return

    async def _read_all(self) -> None:
        try:
            async for raw in self.ws:
                await self.inbox.put(raw)
        except ConnectionClosed:
            pass
        if not self.closing:
            # Not closing yet: what was read before the close is still queued and is processed
            # first (messages committed, the client's last acks of our messages recorded); the
            # fence behind it closes the link.
            await self.inbox.put(_Fence(1000, "closed by the client"))

    def _refuse(self, final: Optional[bool], reason: str, code: int) -> None:
        if final is not None:
            self.put(P.frame(t="reject", reason=reason, final=final))
        self.put((code, "rejected" if final is not None else reason))

    async def _handshake(self) -> bool:
        srv = self.server
        try:
            raw = await asyncio.wait_for(self.ws.recv(), srv.hello_timeout)
        except asyncio.TimeoutError:
            self._refuse(None, "no hello", 1008)
            return False
        hello = P.parse_hello(raw)
        if hello is None:
            self._refuse(None, "expected hello", 1002)
            return False
        if srv.token is not None and hello.token != srv.token:
            srv.stats.rejected_hellos += 1
            self._refuse(True, "bad token", 1008)
            return False
        cep = hello.ep if hello.rev >= 2 else None
        try:
            state = await asyncio.wait_for(srv.store.open(hello.sid, cep, srv.instance),
                                           srv.store_timeout)
        except (StoreUnavailable, asyncio.TimeoutError) as e:
            # Transient: the client backs off and retries (PROTOCOL.md, reject final:false).
            _log.warning("tether.server: hello for %r refused: %s", hello.sid, e or "timeout")
            srv.stats.rejected_hellos += 1
            srv.stats.store_errors += 1
            self._refuse(False, "session store unavailable", 1013)
            return False
        old = srv._links.get(hello.sid)
        if old is not None and old.state is not None and old.state.gen > state.gen:
            # Two hellos for one sid raced here and the later open finished first: that link
            # holds the session; this one is already fenced.
            srv.stats.fenced += 1
            self.put(_CLOSE_TAKEN_OVER)
            return False
        self.state = state
        self.rev = hello.rev
        if old is not None:
            old.fence(*_CLOSE_TAKEN_OVER)  # the client came back before we saw the old link die
        srv.stats.sessions += 1
        srv._links[hello.sid] = self
        if hello.rev >= 2:
            extra: Dict[str, Any] = {"known": True} if state.known else {}
            self.put(P.frame(t="welcome", last=state.last_in, rev=2, ep=state.ep, **extra))
            drop = hello.last if hello.sep == state.ep else 0
        else:
            self.put(P.frame(t="welcome", last=state.last_in))
            drop = hello.last
        self._acked_upto = drop  # committed with the next batch
        for id, f in state.unacked:
            if id > drop:
                self.put(f)  # the rest, in order, before anything new
        return True

    async def _process(self) -> None:
        srv, state = self.server, self.state
        assert state is not None
        pending_upto, pending_ids = self._acked_upto, []  # acks not yet committed
        last_commit = 0.0
        while True:
            first = await self.inbox.get()
            batch = [first]
            while len(batch) < srv.batch_max and not self.inbox.empty():
                batch.append(self.inbox.get_nowait())
            commit = Commit(last_in=state.last_in, next_out=state.next_out)
            parts: List[Any] = []
            out: List[P.Frame] = []
            later: List[P.Frame] = []  # nacks: after the commit too (order among acks)
            sends: List[Tuple[_Send, int]] = []
            need_ack = False
            dups = 0
            fence: Optional[_Fence] = None
            for item in batch:
                if isinstance(item, _Fence):
                    fence = item
                    break
                if isinstance(item, _Send):
                    id = commit.next_out
                    commit.next_out += 1
                    f = P.encode_msg(id, item.data, srv.key, srv.compression_threshold)
                    commit.outbound.append((id, f))
                    out.append(f)
                    sends.append((item, id))
                    continue
                try:
                    parsed = P.parse(item)
                    if isinstance(parsed, P.Control):
                        t, fl = parsed.t, parsed.fields
                        if t == "ack":
                            if P.is_int(fl.get("upto")):
                                pending_upto = max(pending_upto, fl["upto"])
                            else:
                                pending_ids.append(fl["id"])
                        elif t == "nack":
                            _log.info("tether.server: %r refused our msg %s: %s", state.sid,
                                      fl["id"], fl.get("reason"))
                            pending_ids.append(fl["id"])
                        elif t == "ping":
                            self.put(P.frame(t="pong", ts=fl["ts"]))
                        continue
                    m = parsed
                    if not P.verify(srv.key, m):
                        raise P.Bad("bad signature", m.id)
                    if m.id <= commit.last_in:
                        dups += 1  # a resend of something committed: ack again only
                        need_ack = True
                        continue
                    data = P.payload(m, srv.max_size)
                    ctx = Context(state.sid, m.id, data, srv.store, srv.instance)
                    try:
                        r = srv.handler(ctx)
                        if inspect.isawaitable(r):
                            await r
                    except RejectMessage as e:
                        raise P.Bad(e.reason, m.id) from None
                    except Exception:  # noqa: BLE001 - a handler bug nacks, never kills
                        _log.exception("tether.server: handler failed on %r msg %s",
                                       state.sid, m.id)
                        raise P.Bad("application error", m.id) from None
                    if ctx._tx is not None:
                        parts.append(ctx._tx)
                    commit.last_in = m.id
                    commit.delivered += 1
                    need_ack = True
                    for d in ctx._out:
                        id = commit.next_out
                        commit.next_out += 1
                        f = P.encode_msg(id, d, srv.key, srv.compression_threshold)
                        commit.outbound.append((id, f))
                        out.append(f)
                except P.Bad as bad:
                    _log.info("tether.server: %r: %s (msg id %s)", state.sid, bad.reason,
                              bad.msg_id)
                    if bad.msg_id is not None:
                        srv.stats.nacked += 1
                        later.append(P.frame(t="nack", id=bad.msg_id, reason=bad.reason))
            srv.stats.duplicates += dups
            # Acks alone are committed lazily (with the next messages, or at most every
            # _ACK_COMMIT_INTERVAL): an ack lost with a crash only makes us resend messages the
            # client has, which it drops as duplicates (same server epoch).
            now = asyncio.get_running_loop().time()
            # A client that closed cleanly is owed its last acks committed: they are the end
            # of its stream (a fence for any other reason came with closing set: no commit).
            acks_due = (pending_upto or pending_ids) and (
                now - last_commit >= _ACK_COMMIT_INTERVAL or len(pending_ids) > 1024
                or fence is not None)
            changed = commit.last_in != state.last_in or commit.outbound or acks_due
            if changed and not self.closing:
                commit.acked_upto, commit.acked_ids = pending_upto, pending_ids
                try:
                    await asyncio.wait_for(srv.store.commit(state, commit, parts),
                                           srv.store_timeout)
                except SessionFenced:
                    srv.stats.fenced += 1
                    self._fail(sends, SessionFenced(state.sid))
                    self.fence(*_CLOSE_TAKEN_OVER)
                    return
                except (StoreUnavailable, asyncio.TimeoutError) as e:
                    # Outcome unknown: ack nothing, close; the client resends, de-dup sorts it.
                    _log.warning("tether.server: commit for %r failed: %s", state.sid,
                                 e or "timeout")
                    srv.stats.store_errors += 1
                    self._fail(sends, StoreUnavailable(str(e) or "timeout"))
                    self.fence(*_CLOSE_STORE)
                    return
                pending_upto, pending_ids = 0, []
                last_commit = now
                srv.stats.delivered += commit.delivered
                state.last_in, state.next_out = commit.last_in, commit.next_out
                for s, id in sends:
                    if not s.done.done():
                        s.done.set_result(id)
            elif changed:
                self._fail(sends, SessionFenced(state.sid))
                return
            if need_ack and not self.closing:
                self.put(P.frame(t="ack", upto=state.last_in))
            if not self.closing:
                for f in out:
                    self.put(f)
                for f in later:
                    self.put(f)
            if fence is not None or self.closing:
                # Anything left (a _Send) is refused; frames are the client's to resend.
                rest = [i for i in batch if isinstance(i, _Send)] + self._drain_sends()
                self._fail([(s, 0) for s in rest if not any(s is x for x, _ in sends)],
                           SessionFenced(state.sid))
                self.fence(fence.code if fence else 1000, fence.reason if fence else "closed")
                return

    def _drain_sends(self) -> List[_Send]:
        rest: List[_Send] = []
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if isinstance(item, _Send):
                rest.append(item)
        return rest

    @staticmethod
    def _fail(sends: List[Tuple[_Send, int]], exc: Exception) -> None:
        for s, _ in sends:
            if not s.done.done():
                s.done.set_exception(exc)
