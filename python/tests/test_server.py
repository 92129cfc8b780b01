"""tether.server: the protocol server library, its memory and Redis session stores, and the
durable echo app (``python -m tether.server.app``).

Real parts only: a real ``redis-server`` (Debian's, started here on a free port in a temp dir,
append-only file fsynced on every write so a SIGKILL of Redis loses nothing), server instances
in this process or as app subprocesses killed with SIGKILL, and as clients Tether's own client
or raw ``websockets`` where a test needs to write exact protocol frames.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import tether
from tether.server import MemoryStore, RejectMessage, Server, SessionNotHere
from tether.server.app import EchoApp, log_key

FAST = {"backoff_initial": 0.05, "backoff_max": 0.3, "min_uptime": 0.1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProc:
    """A real redis-server on 127.0.0.1:<free port>, data in ``dir`` (AOF, fsync always)."""

    def __init__(self, dir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            if os.environ.get("TETHER_REQUIRE_REDIS"):
                pytest.fail("redis-server is missing (python/tests/run.sh installs it)")
            pytest.skip("redis-server is not installed (python/tests/run.sh installs it)")
        self.exe = exe
        self.dir = dir
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start: {log}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL (the AOF is fsynced on every write: nothing committed is lost)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProc]:
    r = RedisProc(tmp_path)
    try:
        yield r
    finally:
        r.close()


class App:
    """``python -m tether.server.app`` in a subprocess (the installed package)."""

    def __init__(self, store: str, *args: str, port: int = 0, instance: str = "A") -> None:
        argv = [sys.executable, "-m", "tether.server.app", "--port", str(port), "--store", store,
                "--instance", instance, "--store-timeout", "1", *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.stderr: List[str] = []
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def read_out() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line.strip())
            lines.put(None)

        def read_err() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr.append(line)

        self.readers = [threading.Thread(target=read_out, daemon=True),
                        threading.Thread(target=read_err, daemon=True)]
        for t in self.readers:
            t.start()
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            first = None
        if not first or not first.startswith("PORT "):
            self.kill()
            raise RuntimeError(f"app did not start: {first!r} {''.join(self.stderr)}")
        self.port = int(first.split()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_dead(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipes()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for t in self.readers:
            t.join(5)  # they end at EOF, now that the process is gone
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def apps() -> Iterator[List[App]]:
    started: List[App] = []
    try:
        yield started
    finally:
        for a in started:
            a.kill()


def hello(sid: str, ep: str, last: int = 0, sep: Optional[str] = None) -> str:
    f: Dict[str, Any] = {"v": 1, "t": "hello", "sid": sid, "last": last, "rev": 2, "ep": ep}
    if sep is not None:
        f["sep"] = sep
    return json.dumps(f)


def msg(id: int, d: str) -> str:
    return json.dumps({"v": 1, "t": "msg", "id": id, "d": d})


async def recv_json(ws: ClientConnection, timeout: float = 10) -> Dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str)
    f = json.loads(raw)
    assert isinstance(f, dict)
    return f


async def read_until_acked(ws: ClientConnection, upto: int, timeout: float = 10) -> List[Any]:
    """Frames until an ``ack`` covering ``upto``; returns the ``msg`` frames seen meanwhile."""
    msgs: List[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        f = await recv_json(ws, max(0.1, deadline - time.monotonic()))
        if f["t"] == "msg":
            msgs.append(f)
        elif f["t"] == "ack" and f.get("upto", 0) >= upto:
            return msgs


async def closed(ws: ClientConnection, timeout: float = 10) -> None:
    """Wait for the server to close ``ws`` (reading and discarding frames meanwhile)."""
    async def drain() -> None:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass

    await asyncio.wait_for(drain(), timeout)


# ---- memory store ----


def test_memory_store_dedup_resume_and_new_client_epoch() -> None:
    async def main() -> None:
        app = EchoApp(redis=False)
        server = Server(app)
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/"
        try:
            async with connect(url) as ws:
                await ws.send(hello("s1", "c1"))
                w = await recv_json(ws)
                assert (w["t"], w["last"], w["rev"], w.get("known")) == ("welcome", 0, 2, None)
                for i in (1, 2, 3, 2):  # the second 2 is a resend
                    await ws.send(msg(i, f"m{i}"))
                echoes = await read_until_acked(ws, 3)
                echoes += [await recv_json(ws) for _ in range(3 - len(echoes))]
                assert [(e["id"], e["d"]) for e in echoes] == [(1, "m1"), (2, "m2"), (3, "m3")]
                await ws.send(json.dumps({"v": 1, "t": "ack", "upto": 1}))
                await ws.send(msg(2, "m2"))  # one more resend: acked again, not delivered
                await read_until_acked(ws, 3)
            assert app.logs == {"s1": ["m1", "m2", "m3"]}
            # Resume with the same client epoch: the de-dup mark and the unacked echoes are
            # kept; the client's `last` (in our epoch) drops what it has.
            async with connect(url) as ws:
                await ws.send(hello("s1", "c1", last=2, sep=w["ep"]))
                w2 = await recv_json(ws)
                assert (w2["last"], w2["ep"], w2.get("known")) == (3, w["ep"], None)
                resent = await recv_json(ws)
                assert (resent["id"], resent["d"]) == (3, "m3")
            # The same sid from a client that lost its state: a new stream, never duplicates.
            async with connect(url) as ws:
                await ws.send(hello("s1", "c2"))
                w3 = await recv_json(ws)
                assert (w3["last"], w3["ep"], w3["known"]) == (0, w["ep"], True)
                await ws.send(msg(1, "again"))
                await read_until_acked(ws, 1)
            assert app.logs == {"s1": ["m1", "m2", "m3", "again"]}
            assert server.stats.duplicates == 2 and server.stats.delivered == 4
        finally:
            await server.close()

    asyncio.run(main())


def test_memory_store_revision_1_client_and_bad_hellos() -> None:
    async def main() -> None:
        app = EchoApp(redis=False)
        server = Server(app)
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/"
        try:
            async with connect(url) as ws:  # revision 1: a revision-1 welcome, same rules
                await ws.send(json.dumps({"v": 1, "t": "hello", "sid": "r1", "last": 0}))
                assert await recv_json(ws) == {"v": 1, "t": "welcome", "last": 0}
                await ws.send(msg(1, "old"))
                await ws.send(msg(1, "old"))
                await read_until_acked(ws, 1)
            for bad in ({"v": 1, "t": "hello", "sid": "r2", "last": 0, "rev": 2},  # no ep
                        {"v": 1, "t": "hello", "sid": "", "last": 0},
                        {"v": 1, "t": "msg", "id": 1, "d": "no hello"}):
                async with connect(url) as ws:
                    await ws.send(json.dumps(bad))
                    await closed(ws)
                    assert ws.close_code == 1002, bad
            assert app.logs == {"r1": ["old"]}
        finally:
            await server.close()

    asyncio.run(main())


def test_memory_store_tether_client_resumes_across_a_server_restart() -> None:
    async def main() -> None:
        store = MemoryStore()
        app = EchoApp(redis=False)
        server = Server(app, store=store)
        await server.start()
        port = server.port
        resets: List[tether.SessionReset] = []
        async with tether.AsyncClient(f"ws://127.0.0.1:{port}/", protocol="envelope",
                                      on_session_reset=resets.append, **FAST) as client:
            first = [client.send(f"a{i}") for i in range(200)]
            await asyncio.wait_for(asyncio.gather(*first), 20)
            # A new Server (a deploy) on the same port and the same store: the client resumes.
            await server.close()
            server = Server(app, store=store)
            await server.start("127.0.0.1", port)
            second = [client.send(f"b{i}") for i in range(200)]
            await asyncio.wait_for(asyncio.gather(*second), 20)
            got = [await client.recv(10) for _ in range(400)]
            assert got == [f"a{i}" for i in range(200)] + [f"b{i}" for i in range(200)]
            assert all(r.status == "acked" for r in first + second)
        await server.close()
        assert resets == []
        assert app.logs[client.session_id] == got

    asyncio.run(main())


def test_memory_store_token_signature_reject_and_send() -> None:
    async def main() -> None:
        def handler(ctx: Any) -> None:
            if ctx.data == "refuse":
                raise RejectMessage("not today")
            ctx.send("re:" + ctx.data)

        server = Server(handler, token="t0k", key=b"k3y")
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/"
        try:
            async with connect(url) as ws:
                await ws.send(json.dumps({"v": 1, "t": "hello", "sid": "s", "last": 0,
                                          "token": "wrong"}))
                r = await recv_json(ws)
                assert (r["t"], r["final"]) == ("reject", True)
                await closed(ws)
                assert ws.close_code == 1008
            with pytest.raises(SessionNotHere):
                await server.send("s", "nobody there")
            async with tether.AsyncClient(url, protocol="envelope", token="t0k", signing_key="k3y",
                                          **FAST) as client:
                await client.send_acked("hi", timeout=10)
                assert await client.recv(10) == "re:hi"
                refused = client.send("refuse")
                with pytest.raises(tether.DeliveryFailed):
                    await asyncio.wait_for(refused, 10)
                sid = client.session_id
                assert await server.send(sid, "pushed") == 2
                assert await client.recv(10) == "pushed"
            assert server.stats.nacked == 1
        finally:
            await server.close()

    asyncio.run(main())


# ---- Redis store ----


def test_redis_resume_on_another_instance_and_fencing(redis_server: RedisProc) -> None:
    from tether.server import RedisStore

    async def main() -> None:
        a_store, b_store = RedisStore(redis_server.url), RedisStore(redis_server.url)
        # Long fence poll: the takeover must be seen by the old link's own commit.
        a = Server(EchoApp(redis=True), store=a_store, instance="A", fence_interval=60)
        b = Server(EchoApp(redis=True), store=b_store, instance="B", fence_interval=60)
        await a.start()
        await b.start()
        try:
            ws_a = await connect(f"ws://127.0.0.1:{a.port}/")
            await ws_a.send(hello("s1", "c1"))
            w = await recv_json(ws_a)
            for i in (1, 2, 3):
                await ws_a.send(msg(i, f"m{i}"))
            echoes = await read_until_acked(ws_a, 3)
            # The client reconnects to B (A's link still open): B has the session from Redis.
            async with connect(f"ws://127.0.0.1:{b.port}/") as ws_b:
                await ws_b.send(hello("s1", "c1", last=1, sep=w["ep"]))
                wb = await recv_json(ws_b)
                assert (wb["last"], wb["ep"], wb.get("known")) == (3, w["ep"], None)
                resent = [await recv_json(ws_b) for _ in range(2)]
                assert [(f["id"], f["d"]) for f in resent] == [(2, "m2"), (3, "m3")]
                # A late write on the old link is refused: not acked, not recorded, link closed.
                await ws_a.send(msg(4, "late"))
                late = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        late.append(await recv_json(ws_a))
                assert ws_a.close_code == 1000
                assert not [f for f in late if f["t"] == "ack" and f["upto"] >= 4]
                await ws_b.send(msg(4, "m4"))
                more = await read_until_acked(ws_b, 4)
                assert [f["d"] for f in more] in (["m4"], [])
            r = redis_server.client()
            assert r.lrange(log_key("s1"), 0, -1) == [b"m1", b"m2", b"m3", b"m4"]
            assert r.hget("tether:s:s1", "owner") == b"B"
            assert len(echoes) <= 3
        finally:
            await a.close()
            await b.close()
            await a_store.close()
            await b_store.close()

    asyncio.run(main())


def test_redis_fence_poll_closes_an_idle_old_link(redis_server: RedisProc) -> None:
    from tether.server import RedisStore

    async def main() -> None:
        a_store, b_store = RedisStore(redis_server.url), RedisStore(redis_server.url)
        a = Server(EchoApp(redis=True), store=a_store, instance="A", fence_interval=0.1)
        b = Server(EchoApp(redis=True), store=b_store, instance="B", fence_interval=0.1)
        await a.start()
        await b.start()
        try:
            async with connect(f"ws://127.0.0.1:{a.port}/") as ws_a:
                await ws_a.send(hello("s2", "c1"))
                await recv_json(ws_a)
                async with connect(f"ws://127.0.0.1:{b.port}/") as ws_b:
                    await ws_b.send(hello("s2", "c1"))
                    await recv_json(ws_b)
                    await closed(ws_a)  # without writing anything, A's link is closed
                    assert (ws_a.close_code, a.stats.fenced) == (1000, 1)
                    assert a.sessions() == [] and b.sessions() == ["s2"]
        finally:
            await a.close()
            await b.close()
            await a_store.close()
            await b_store.close()

    asyncio.run(main())


def stream(client: "tether.Client[Any]", n: int, prefix: str) -> List[tether.Receipt]:
    return [client.send(f"{prefix}{i}") for i in range(n)]


def check_exact(redis_server: RedisProc, client: "tether.Client[Any]",
                receipts: List[tether.Receipt], sent: List[str]) -> None:
    """Every receipt acked; the durable record and the echoes: each message once, in order."""
    for r in receipts:
        r.wait(60)
        assert r.status == "acked"
    echoes = [client.recv(30) for _ in range(len(sent))]
    assert echoes == sent
    log = redis_server.client().lrange(log_key(client.session_id), 0, -1)
    assert [x.decode() for x in log] == sent


@pytest.mark.parametrize("when", ["before", "after"])
def test_redis_app_kill9_around_the_commit(redis_server: RedisProc, apps: List[App],
                                           when: str) -> None:
    """SIGKILL of the app between a handler run and its commit ("before": the effect was
    queued, nothing committed) or between the commit and its ack ("after": the client never
    saw the ack and resends): a second instance on the same port resumes the session from
    Redis; the record holds every message exactly once, in order."""
    a = App(redis_server.url, f"--crash-{when}-commit", "300", instance="A")
    apps.append(a)
    resets: List[tether.SessionReset] = []
    with tether.Client(a.url, protocol="envelope", on_session_reset=resets.append,
                       **FAST) as client:
        receipts = stream(client, 600, "m")
        assert a.wait_dead() == -signal.SIGKILL
        b = App(redis_server.url, port=a.port, instance="B")
        apps.append(b)
        receipts += stream(client, 400, "n")
        sent = [f"m{i}" for i in range(600)] + [f"n{i}" for i in range(400)]
        check_exact(redis_server, client, receipts, sent)
    assert resets == []  # the session's state survived in Redis: nothing to report
    assert b.alive()


def test_redis_stopped_and_restarted_mid_run(redis_server: RedisProc, apps: List[App]) -> None:
    """Redis killed mid-stream: commits fail (nothing acked), new hellos get a transient
    reject, the app stays up; Redis restarted from its AOF: the stream completes exactly."""
    a = App(redis_server.url, instance="A")
    apps.append(a)
    resets: List[tether.SessionReset] = []
    with tether.Client(a.url, protocol="envelope", on_session_reset=resets.append,
                       **FAST) as client:
        receipts = stream(client, 300, "x")
        receipts[100].wait(30)
        redis_server.kill()
        receipts += stream(client, 300, "y")

        async def probe() -> Dict[str, Any]:
            async with connect(a.url) as ws:
                await ws.send(hello("probe", "p1"))
                f = await recv_json(ws, 20)
                await closed(ws)
                f["code"] = ws.close_code
                return f

        r = asyncio.run(probe())
        assert (r["t"], r["final"], r["code"]) == ("reject", False, 1013)
        assert a.alive()
        redis_server.start()
        sent = [f"x{i}" for i in range(300)] + [f"y{i}" for i in range(300)]
        check_exact(redis_server, client, receipts, sent)
    assert resets == [] and a.alive()


def test_redis_paused_is_a_transient_reject_not_a_hang(redis_server: RedisProc,
                                                       apps: List[App]) -> None:
    """A Redis that stops answering (SIGSTOP): the hello is refused after the store timeout
    (transient), the app stays up and serves again once Redis answers."""
    a = App(redis_server.url, instance="A")
    apps.append(a)

    async def once(sid: str) -> Dict[str, Any]:
        async with connect(a.url) as ws:
            await ws.send(hello(sid, "p1"))
            return await recv_json(ws, 30)

    redis_server.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        r = asyncio.run(once("slow"))
        assert (r["t"], r["final"]) == ("reject", False)
        assert time.monotonic() - started < 15
        assert a.alive()
    finally:
        redis_server.signal(signal.SIGCONT)
    assert asyncio.run(once("slow"))["t"] == "welcome"


def test_close_is_bounded_when_a_peer_stops_reading() -> None:
    """A peer that stops reading while the server has megabytes to send it: ``close(timeout)``
    aborts its TCP connection after ``timeout`` instead of waiting for the socket to drain
    (websockets' own close has no bound there; a rolling restart once waited minutes)."""
    async def main() -> None:
        server = Server(EchoApp(redis=False))
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/"
        # max_queue=1: the client stops reading from the socket once one message waits.
        async with connect(url, max_queue=1, max_size=None) as ws:
            await ws.send(hello("stuck", "c1"))
            await recv_json(ws)
            payload = "x" * (64 << 10)
            for i in range(1, 201):  # 12.8 MB of echoes, far beyond the socket buffers
                await asyncio.wait_for(ws.send(msg(i, payload)), 10)
            # Wait until the server's writer is actually stuck (its queue keeps growing).
            link = next(iter(server._all))
            deadline = time.monotonic() + 10
            while link.outbox.qsize() < 10 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert link.outbox.qsize() >= 10, "the server's writer never stalled"
            started = time.monotonic()
            await asyncio.wait_for(server.close(timeout=1.0), 30)
            took = time.monotonic() - started
            assert took < 4.0, f"close took {took:.1f} s with a 1 s bound"
            assert not server._all
    asyncio.run(main())


def test_memory_app_echoes(apps: List[App]) -> None:
    a = App("memory")
    apps.append(a)
    with tether.Client(a.url, protocol="envelope", **FAST) as client:
        receipts = stream(client, 100, "e")
        for r in receipts:
            r.wait(20)
        assert [client.recv(10) for _ in range(100)] == [f"e{i}" for i in range(100)]
    a.stop()
    assert a.proc.returncode == 0


def test_redis_session_id_reused_by_a_new_client_is_a_new_stream(redis_server: RedisProc,
                                                                 apps: List[App]) -> None:
    """A second client process reusing the first one's session_id (it lost its state): its
    messages, numbered from 1 again, are delivered and recorded, never taken for duplicates;
    it is told (SessionReset, client_state_lost)."""
    a = App(redis_server.url, instance="A")
    apps.append(a)
    with tether.Client(a.url, protocol="envelope", **FAST) as first:
        for r in stream(first, 20, "f"):
            r.wait(30)
        sid = first.session_id
    resets: List[tether.SessionReset] = []
    with tether.Client(a.url, protocol="envelope", session_id=sid,
                       on_session_reset=resets.append, **FAST) as second:
        for r in stream(second, 20, "s"):
            r.wait(30)
            assert r.status == "acked"
    log = redis_server.client().lrange(log_key(sid), 0, -1)
    assert [x.decode() for x in log] == [f"f{i}" for i in range(20)] + [f"s{i}" for i in range(20)]
    assert len(resets) == 1 and resets[0].client_state_lost and not resets[0].server_lost_state
