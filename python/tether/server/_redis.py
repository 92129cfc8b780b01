"""The Redis session store (redis-py asyncio): sessions shared by every server instance.

Keys, with the default prefix ``tether:`` (docs/SERVER.md, "Redis layout"):

* ``tether:s:<sid>``   hash: ``ep``, ``cep``, ``last_in``, ``next_out``, ``gen``, ``owner``
* ``tether:out:<sid>`` sorted set: the unacknowledged outbound frames, score = message id
* ``tether:n:<sid>``   hash of counters: ``delivered`` (committed with the de-dup mark),
  ``duplicates`` (resends acked again; best effort)

The sid is always the whole end of a key, so two sids never name the same key.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ._protocol import Frame, frame_from_bytes, frame_to_bytes, new_epoch
from ._store import Commit, SessionFenced, SessionState, SessionStore, StoreUnavailable

# Load (or create) a session and take it over, atomically: the generation bump is what fences
# every earlier link. Returns ep, cep, last_in, next_out, gen, known, created, unacked.
_OPEN = """
-- KEYS: session hash, outbound zset; ARGV: new epoch, client epoch, has-client-epoch, owner, ttl
local created, known = 0, 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'ep', ARGV[1], 'cep', ARGV[2], 'last_in', 0, 'next_out', 1,
             'gen', 0)
  -- outbound frames without a session belong to a stream nobody can resume
  redis.call('DEL', KEYS[2])
  created = 1
elseif ARGV[3] == '1' then
  local cep = redis.call('HGET', KEYS[1], 'cep')
  if cep ~= ARGV[2] then
    -- the client lost its state; a session no revision-2 client opened yet lost nothing
    redis.call('HSET', KEYS[1], 'cep', ARGV[2], 'last_in', 0)
    if cep and cep ~= '' then known = 1 end
  end
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
local s = redis.call('HMGET', KEYS[1], 'ep', 'cep', 'last_in', 'next_out')
return {s[1], s[2], s[3], s[4], gen, known, created,
        redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}
"""

# Commit one batch of a link, atomically, only if the link still holds the session's
# generation (the fence). The handlers' commands run first (pcall: Redis has no rollback, a
# failing one is reported and skipped, as in MULTI/EXEC), then the de-dup mark, the outbound
# frames and the acknowledged ones dropped. Returns 0 when fenced, else the list of errors.
_COMMIT = """
-- KEYS: session hash, outbound zset, counters hash
-- ARGV: gen, last_in, next_out, acked_upto, delivered, ttl, n, n acked ids, m, m (id, frame),
--       k, k commands (nargs, args...)
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
local i = 7
local n = tonumber(ARGV[i])
local acked = {}
for j = 1, n do acked[j] = ARGV[i + j] end
i = i + n + 1
local m = tonumber(ARGV[i])
local outs = i
i = i + 2 * m + 1
local k = tonumber(ARGV[i])
i = i + 1
local errors = {}
for c = 1, k do
  local nargs = tonumber(ARGV[i])
  local r = redis.pcall(unpack(ARGV, i + 1, i + nargs))
  if type(r) == 'table' and r.err then errors[#errors + 1] = r.err end
  i = i + nargs + 1
end
if tonumber(ARGV[4]) > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4]) end
for j = 1, n do redis.call('ZREMRANGEBYSCORE', KEYS[2], acked[j], acked[j]) end
for j = 1, m do
  redis.call('ZADD', KEYS[2], ARGV[outs + 2 * j - 1], ARGV[outs + 2 * j])
end
redis.call('HSET', KEYS[1], 'last_in', ARGV[2], 'next_out', ARGV[3])
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[3], 'delivered', ARGV[5]) end
if tonumber(ARGV[6]) > 0 then
  for j = 1, 3 do redis.call('EXPIRE', KEYS[j], ARGV[6]) end
end
return errors
"""

_log = logging.getLogger("tether.server")


def _encode(value: object) -> bytes:
    """A command argument as redis-py sends it (bytes, str as UTF-8, numbers as repr)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("a bool is no Redis argument (redis-py refuses it too)")
    if isinstance(value, (int, float)):
        return repr(value).encode()
    raise TypeError(f"{type(value).__name__} is no Redis argument")


def _str(b: Union[bytes, str, None]) -> str:
    if b is None:
        return ""
    return b.decode() if isinstance(b, bytes) else b


class RedisStore(SessionStore):
    """Sessions in Redis, shared by every :class:`Server` instance that uses the same Redis.

    ``url`` is a redis-py URL (``redis://host:port/db``), or pass ``client`` (a
    ``redis.asyncio.Redis`` with ``decode_responses=False``). Every call is bounded by
    ``socket_timeout`` seconds; redis-py's own retries are off (a retried transaction could
    not be told from a first one), the server's callers retry instead: a refused hello is
    retried by the client, an unacked message is resent.

    ``ttl``: seconds a session's keys live after its last open or commit (None: forever).

    ``Context.tx`` is a redis-py pipeline that the handler never executes: the commands it
    queues on it (``ctx.tx.rpush(key, value)``) run inside the one Lua script that commits the
    batch's de-dup mark, after the script checked the session's generation (the fence), so
    they are applied atomically with the mark, exactly once, or not at all. Their replies are
    not returned; scripts and transactions (``EVAL``, ``MULTI``) cannot be queued.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "tether:",
                 socket_timeout: float = 2.0, ttl: Optional[int] = None,
                 client: Optional["aioredis.Redis"] = None) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self.redis: aioredis.Redis = client if client is not None else aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=False)
        self._open = self.redis.register_script(_OPEN)
        self._commit = self.redis.register_script(_COMMIT)

    def session_key(self, sid: str) -> str:
        """The session hash (``ep``, ``cep``, ``last_in``, ``next_out``, ``gen``, ``owner``)."""
        return f"{self.prefix}s:{sid}"

    def outbound_key(self, sid: str) -> str:
        """The sorted set of unacknowledged outbound frames (score: message id)."""
        return f"{self.prefix}out:{sid}"

    def counters_key(self, sid: str) -> str:
        """The hash of per-session counters (``delivered``, ``duplicates``)."""
        return f"{self.prefix}n:{sid}"

    async def open(self, sid: str, cep: Optional[str], owner: str) -> SessionState:
        try:
            r = await self._open(keys=[self.session_key(sid), self.outbound_key(sid)],
                                 args=[new_epoch(), cep or "", "1" if cep is not None else "0",
                                       owner, self.ttl or 0])
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"session store unavailable: {e}") from e
        flat: List[Any] = list(r[7])
        unacked: List[Tuple[int, Frame]] = [
            (int(float(_str(flat[i + 1]))), frame_from_bytes(bytes(flat[i])))
            for i in range(0, len(flat), 2)]
        return SessionState(sid, _str(r[0]), _str(r[1]), int(r[2]), int(r[3]), int(r[4]),
                            bool(r[5]), bool(r[6]), unacked)

    def transaction(self) -> Pipeline:
        # Never executed itself: its queued commands are run by the commit script.
        return self.redis.pipeline(transaction=True)

    async def commit(self, state: SessionState, commit: Commit, parts: Sequence[Any]) -> None:
        args: List[Any] = [state.gen, commit.last_in, commit.next_out, commit.acked_upto,
                           commit.delivered, self.ttl or 0, len(commit.acked_ids),
                           *commit.acked_ids, len(commit.outbound)]
        for id, f in commit.outbound:
            args += [id, frame_to_bytes(f)]
        cmds: List[List[bytes]] = []
        for part in parts:
            for cmd_args, _options in part.command_stack:
                name, rest = cmd_args[0], cmd_args[1:]
                words = name.split() if isinstance(name, (str, bytes)) else [name]
                cmds.append([_encode(a) for a in (*words, *rest)])
        args.append(len(cmds))
        for c in cmds:
            args += [len(c), *c]
        keys = [self.session_key(state.sid), self.outbound_key(state.sid),
                self.counters_key(state.sid)]
        try:
            r = await self._commit(keys=keys, args=args)
        except (RedisError, OSError) as e:
            # Includes a timeout whose script may have run: the caller acks nothing and
            # closes the link; the client resends and the stored de-dup mark sorts it out.
            raise StoreUnavailable(f"session store unavailable: {e}") from e
        if r == 0:
            raise SessionFenced(state.sid)
        if isinstance(r, list) and r:
            # Redis has no rollback: a handler command that failed at run time (wrong type,
            # a command scripts may not run) is skipped; the rest of the commit is applied.
            _log.error("tether.server: %s handler command(s) failed in the commit of %r: %s",
                       len(r), state.sid, [_str(e) for e in r])

    async def generations(self, sids: Iterable[str]) -> Dict[str, Optional[int]]:
        order = list(sids)
        if not order:
            return {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in order:
                    pipe.hget(self.session_key(sid), "gen")
                gens = await pipe.execute()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"session store unavailable: {e}") from e
        return {sid: (int(g) if g is not None else None) for sid, g in zip(order, gens)}

    async def count_duplicates(self, sid: str, n: int) -> None:
        """Best effort: add ``n`` to the session's ``duplicates`` counter."""
        try:
            await self.redis.hincrby(self.counters_key(sid), "duplicates", n)
        except (RedisError, OSError):
            pass

    async def close(self) -> None:
        await self.redis.aclose()
