"""The session store interface and the in-memory store (the default).

A store keeps, per session id, what docs/PROTOCOL.md says a server that survives restarts keeps:
the server's stream epoch ``ep``, the client's stream epoch ``cep``, ``last_in`` (the de-dup
mark), ``next_out`` and the unacknowledged outbound frames, plus a fencing generation ``gen``
that makes exactly one link at a time the session's writer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ._protocol import Frame, new_epoch


class ServerError(Exception):
    """Base class of the errors of :mod:`tether.server`."""


class StoreUnavailable(ServerError):
    """The session store could not be reached, timed out, or failed: nothing was committed
    (or, for a commit whose answer was lost, the outcome is unknown; it is then treated as not
    committed: nothing is acked, the link is closed, the client resends, de-dup sorts it out)."""


class SessionFenced(ServerError):
    """A newer link (on this or another instance) took the session over: this link's writes
    are refused and the link is closed."""


class SessionNotHere(ServerError):
    """:meth:`Server.send` for a session that has no live link on this server instance."""


class RejectMessage(ServerError):
    """Raised by a handler to refuse a message for good: the server nacks it with ``reason``
    (the client reports it failed and never resends it); nothing the handler queued is kept."""

    def __init__(self, reason: str = "rejected by the application") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SessionState:
    """A session as :meth:`SessionStore.open` loaded it for one link (the link's view)."""

    sid: str
    ep: str  #: the server's stream epoch for this session
    cep: str  #: the client's stream epoch ("" until a revision-2 client opened it)
    last_in: int  #: highest client message id delivered to the application (in ``cep``)
    next_out: int  #: id of the next server message
    gen: int  #: the fencing generation this link holds
    known: bool  #: revision 2: the client epoch changed at this open (``welcome.known``)
    created: bool  #: the store had no state for this sid (a new server epoch was picked)
    unacked: List[Tuple[int, Frame]] = field(default_factory=list)  #: in id order


@dataclass
class Commit:
    """What one store transaction of a link writes, atomically, if the link still holds
    ``gen``: the new de-dup mark, new outbound messages, and acknowledged ones dropped."""

    last_in: int
    next_out: int
    outbound: List[Tuple[int, Frame]] = field(default_factory=list)
    acked_upto: int = 0  #: drop unacked messages with ``id <= acked_upto``
    acked_ids: List[int] = field(default_factory=list)  #: and these (ack id, nack id)
    delivered: int = 0  #: messages delivered to the application by this commit (a counter)


class SessionStore(abc.ABC):
    """Where sessions live. The server calls these methods; an implementation must make
    :meth:`open` and :meth:`commit` atomic (all or nothing) and must refuse a :meth:`commit`
    whose ``state.gen`` is no longer the session's current generation.

    Errors: raise :class:`StoreUnavailable` when the backend cannot answer (the server turns it
    into a transient ``reject`` for a hello, and into "not acked, link closed" for a commit),
    :class:`SessionFenced` when the generation check fails.
    """

    @abc.abstractmethod
    async def open(self, sid: str, cep: Optional[str], owner: str) -> SessionState:
        """Load the session ``sid`` (create it with a new server epoch if absent) and take it
        over: bump its generation, so every earlier link's later commits are refused.

        ``cep`` is the client's epoch (revision 2) or None (revision 1: the stored client
        epoch is kept). When it differs from the stored one, the client lost its state: store
        it, reset ``last_in`` to 0 and report ``known=True``. ``owner`` names the instance (for
        operators; the generation is what fences).
        """

    @abc.abstractmethod
    def transaction(self) -> Any:
        """A fresh, empty transaction part for one handler call (``Context.tx``). Its type is
        the store's: :class:`MemoryTransaction` here, a redis-py pipeline for
        :class:`RedisStore`. Parts of the messages that the handler accepted are passed to
        :meth:`commit` and applied atomically with it."""

    @abc.abstractmethod
    async def commit(self, state: SessionState, commit: Commit, parts: Sequence[Any]) -> None:
        """Apply ``commit`` and the handlers' transaction ``parts`` atomically, only if the
        session's generation is still ``state.gen`` (else raise :class:`SessionFenced`, applying
        nothing)."""

    @abc.abstractmethod
    async def generations(self, sids: Iterable[str]) -> Dict[str, Optional[int]]:
        """The current generation of each session (None: no state). The server calls it
        periodically to close links fenced by a link elsewhere that has not written yet."""

    async def close(self) -> None:
        """Release the store's resources (connections). The server does not call it: whoever
        created the store closes it."""


class MemoryTransaction:
    """``Context.tx`` with :class:`MemoryStore`: callables run at commit, in order, atomically
    with the de-dup mark (nothing else runs on the event loop in between), and only if the
    commit succeeds."""

    def __init__(self) -> None:
        self.ops: List[Callable[[], None]] = []

    def add(self, op: Callable[[], None]) -> None:
        """Run ``op()`` when (and only if) the message's commit is applied. It must not raise."""
        self.ops.append(op)


@dataclass
class _Record:
    ep: str
    cep: str
    last_in: int = 0
    next_out: int = 1
    gen: int = 0
    owner: str = ""
    delivered: int = 0
    out: Dict[int, Frame] = field(default_factory=dict)


class MemoryStore(SessionStore):
    """Sessions in this process's memory (the default store). Several :class:`Server`
    instances in one process may share one; the state is lost when the process exits, which
    revision-2 clients are told (a new server epoch)."""

    def __init__(self) -> None:
        self._sessions: Dict[str, _Record] = {}

    async def open(self, sid: str, cep: Optional[str], owner: str) -> SessionState:
        rec = self._sessions.get(sid)
        created = rec is None
        known = False
        if rec is None:
            rec = self._sessions[sid] = _Record(ep=new_epoch(), cep=cep or "")
        elif cep is not None and rec.cep != cep:
            # The client lost its state (its ids start again). A session no revision-2 client
            # opened yet ("" ) lost nothing: not reported as known.
            known = rec.cep != ""
            rec.cep, rec.last_in = cep, 0
        rec.gen += 1
        rec.owner = owner
        return SessionState(sid, rec.ep, rec.cep, rec.last_in, rec.next_out, rec.gen, known,
                            created, sorted(rec.out.items()))

    def transaction(self) -> MemoryTransaction:
        return MemoryTransaction()

    async def commit(self, state: SessionState, commit: Commit, parts: Sequence[Any]) -> None:
        rec = self._sessions.get(state.sid)
        if rec is None or rec.gen != state.gen:
            raise SessionFenced(state.sid)
        # No await from here on: atomic for every coroutine of this process.
        for part in parts:
            for op in part.ops:
                op()
        for id in [i for i in rec.out if i <= commit.acked_upto]:
            del rec.out[id]
        for id in commit.acked_ids:
            rec.out.pop(id, None)
        for id, f in commit.outbound:
            rec.out[id] = f
        rec.last_in = commit.last_in
        rec.next_out = commit.next_out
        rec.delivered += commit.delivered

    async def generations(self, sids: Iterable[str]) -> Dict[str, Optional[int]]:
        return {sid: (r.gen if (r := self._sessions.get(sid)) else None) for sid in sids}

    def snapshot(self, sid: str) -> Optional[Dict[str, Any]]:
        """The stored state of ``sid`` (for tests and tools), or None."""
        r = self._sessions.get(sid)
        if r is None:
            return None
        return {"ep": r.ep, "cep": r.cep, "last_in": r.last_in, "next_out": r.next_out,
                "gen": r.gen, "owner": r.owner, "delivered": r.delivered,
                "unacked": sorted(r.out)}
