"""A durable echo application on :mod:`tether.server`, for demos, tests and benchmarks.

    python -m tether.server.app --host H --port P --store memory|redis://HOST:PORT/DB
                                [--instance NAME] [--token T] [--key K] [--max-size N]

Every delivered message is appended to a durable record, in the same store transaction as its
de-dup mark (so the record holds each message exactly once), and echoed back as a new server
message committed in that transaction too:

* Redis: the list ``tether:app:{sid}:log`` (text as is, binary as ``b64:`` + base64);
* memory: a list in this process (gone with it).

Prints ``PORT n`` on stdout once listening (``--port 0``: a free port), then serves until
SIGTERM or SIGINT.

For crash tests, ``--crash-before-commit N`` / ``--crash-after-commit N`` make the process kill
itself with SIGKILL when a commit would take (or took) the number of messages it delivered to
at least N: the handler ran but nothing was committed, or everything was committed but no ack
was written.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import faulthandler
import logging
import os
import signal
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

from . import Commit, Context, MemoryStore, Server, SessionState, SessionStore


def record(data: object) -> str:
    """How the app records a payload: text as is, binary as ``b64:`` + base64."""
    if isinstance(data, bytes):
        return "b64:" + base64.b64encode(data).decode()
    assert isinstance(data, str)
    return data


def log_key(sid: str, prefix: str = "tether:") -> str:
    """The Redis list holding the session's delivered messages, in order."""
    return f"{prefix}app:{sid}:log"


class EchoApp:
    """The handler: record (atomically with the de-dup mark), then echo."""

    def __init__(self, redis: bool, prefix: str = "tether:") -> None:
        self.redis = redis
        self.prefix = prefix
        self.logs: Dict[str, List[str]] = {}  # the memory store's record

    def __call__(self, ctx: Context) -> None:
        entry = record(ctx.data)
        if self.redis:
            ctx.tx.rpush(log_key(ctx.sid, self.prefix), entry)
        else:
            ctx.tx.add(lambda: self.logs.setdefault(ctx.sid, []).append(entry))
        ctx.send(ctx.data)


class CrashingStore(SessionStore):
    """A store that SIGKILLs this process around the commit that reaches ``before`` or
    ``after`` delivered messages (crash tests; every other call goes to ``inner``)."""

    def __init__(self, inner: SessionStore, before: Optional[int], after: Optional[int]) -> None:
        self.inner = inner
        self.before = before
        self.after = after
        self.delivered = 0

    async def open(self, sid: str, cep: Optional[str], owner: str) -> SessionState:
        return await self.inner.open(sid, cep, owner)

    def transaction(self) -> Any:
        return self.inner.transaction()

    async def commit(self, state: SessionState, commit: Commit, parts: Sequence[Any]) -> None:
        total = self.delivered + commit.delivered
        if self.before is not None and total >= self.before:
            os.kill(os.getpid(), signal.SIGKILL)
        await self.inner.commit(state, commit, parts)
        self.delivered = total
        if self.after is not None and total >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)

    async def generations(self, sids: Iterable[str]) -> Dict[str, Optional[int]]:
        return await self.inner.generations(sids)

    async def close(self) -> None:
        await self.inner.close()


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tether.server.app", description=__doc__.split(
        "\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--store", default="memory", help="memory, or a redis:// URL")
    p.add_argument("--instance", help="this instance's name (stored as the session owner)")
    p.add_argument("--token", help="hellos must carry this token")
    p.add_argument("--key", help="HMAC-SHA256 key (UTF-8): verify and sign every msg")
    p.add_argument("--max-size", type=int, default=16 << 20, help="largest inbound message")
    p.add_argument("--compression-threshold", type=int, help="compress payloads >= N bytes")
    p.add_argument("--store-timeout", type=float, default=3.0,
                   help="seconds a store call may take before it counts as unavailable")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--crash-before-commit", type=int, metavar="N", help=argparse.SUPPRESS)
    p.add_argument("--crash-after-commit", type=int, metavar="N", help=argparse.SUPPRESS)
    return p.parse_args(argv)


async def main(argv: Optional[List[str]] = None) -> None:
    """Run the app until SIGTERM/SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    store: SessionStore
    if args.store == "memory":
        store = MemoryStore()
    elif args.store.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisStore

        store = RedisStore(args.store, socket_timeout=args.store_timeout)
    else:
        raise SystemExit(f"--store: memory or redis://..., not {args.store!r}")
    if args.crash_before_commit is not None or args.crash_after_commit is not None:
        store = CrashingStore(store, args.crash_before_commit, args.crash_after_commit)
    app = EchoApp(redis=args.store != "memory")
    server = Server(app, store=store, token=args.token,
                    key=args.key.encode() if args.key is not None else None,
                    max_size=args.max_size, compression_threshold=args.compression_threshold,
                    instance=args.instance, store_timeout=args.store_timeout)
    await server.start(args.host, args.port)
    print(f"PORT {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Should the shutdown ever take long, say where it hangs: the tasks' stacks at 15 s, every
    # thread's at 25 s (covers asyncio.run's own cleanup after main returns).
    watchdog = asyncio.ensure_future(_report_slow_shutdown(15.0))
    faulthandler.dump_traceback_later(25.0, exit=False)
    await server.close()
    try:
        await asyncio.wait_for(store.close(), args.store_timeout)
    except asyncio.TimeoutError:
        logging.getLogger("tether.server").warning("the store did not close in time")
    watchdog.cancel()


async def _report_slow_shutdown(after: float) -> None:
    await asyncio.sleep(after)
    print(f"tether.server: shutdown still running after {after:.0f} s; tasks:",
          file=sys.stderr, flush=True)
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    asyncio.run(main())
