"""The Python clients of the benchmark, one per process (bench/run.py starts them).

    python clients.py --client NAME --url URL --workload rr|pipe [--protocol raw|envelope]
                      [--kind text|binary] [--size N] [--window N] [--duration S] [--warmup S]

NAME: picows, websockets, websocket-client, aiohttp (the libraries people use), tether-sync,
tether-async (Tether's Python API). Each is used the way its documentation shows, with its
defaults, on the default asyncio event loop; every client hands the application a ``str`` for a
text message and ``bytes`` for a binary one (picows: ``get_payload_as_utf8_text()`` /
``get_payload_as_bytes()``), so all pay for the same objects.

Workloads (the same rules as the Rust and C clients):
* rr: one message in flight: send, wait for the echo, repeat for ``duration``; RTT percentiles.
* pipe: keep up to ``window`` messages in flight (sent, not yet echoed; in envelope mode also
  not yet acked) until ``duration`` has passed, then wait for the rest. Rate = completed
  messages / (start .. last completion).

Output protocol: ``MARK start``, ``MARK end``, ``RESULT {json}`` on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any, Callable, List

perf = time.perf_counter_ns


def mark(what: str) -> None:
    print(f"MARK {what}", flush=True)


def emit(**fields: Any) -> None:
    print("RESULT " + json.dumps(fields), flush=True)


def percentile(sorted_ns: List[int], p: float) -> int:
    if not sorted_ns:
        return 0
    rank = int(-(-p / 100.0 * len(sorted_ns) // 1))
    rank = min(max(rank, 1), len(sorted_ns))
    return sorted_ns[rank - 1]


def rr_result(samples: List[int], elapsed_ns: int) -> dict:
    samples.sort()
    s = elapsed_ns / 1e9
    return dict(
        count=len(samples),
        seconds=s,
        rate=len(samples) / s,
        p50_us=percentile(samples, 50) / 1e3,
        p99_us=percentile(samples, 99) / 1e3,
        max_us=(samples[-1] if samples else 0) / 1e3,
    )


def pipe_result(done: int, nbytes: int, elapsed_ns: int, window: int, acked: int = 0) -> dict:
    s = elapsed_ns / 1e9
    return dict(count=done, seconds=s, rate=done / s, mbps=nbytes / s / 1e6, window=window,
                acked=acked)


class Pipe:
    """Window accounting shared by every pipelined client.

    The reader side calls ``completed`` for each echo (and ``acked`` for each ack in envelope
    mode); the writer side asks ``room()`` how many it may send. The reader decides when the
    measured time is over (``stop``); the writer then stops sending, and the reader waits for
    the echoes of everything that was sent.
    """

    def __init__(self, window: int, duration_s: float, envelope: bool = False) -> None:
        self.window = window
        self.envelope = envelope
        self.sent = 0
        self.received = 0
        self.acks = 0
        self.nbytes = 0
        self.start = perf()
        self.deadline = self.start + int(duration_s * 1e9)
        self.last = self.start
        self.stop = False

    def done(self) -> int:
        return min(self.received, self.acks) if self.envelope else self.received

    def room(self) -> int:
        return 0 if self.stop else self.window - (self.sent - self.done())

    def completed(self, n: int, nbytes: int) -> None:
        self.received += n
        self.nbytes += nbytes
        self._tick()

    def acked(self, n: int) -> None:
        self.acks += n
        self._tick()

    def _tick(self) -> None:
        now = perf()
        self.last = now
        if now >= self.deadline:
            self.stop = True

    def finished(self) -> bool:
        return self.stop and self.done() >= self.sent


# ------------------------------------------------------------------ asyncio libraries


async def async_pipe(send: Callable[[], Any], recv: Callable[[], Any], p: Pipe) -> None:
    """Pipelining with an awaitable ``send()`` and ``recv()`` (websockets, aiohttp).

    A message counts as sent before its ``send()`` is awaited, so a send held up by
    backpressure keeps the reader reading (the echoes it waits for unblock the server).
    """
    room = asyncio.Event()

    async def writer() -> None:
        while not p.stop:
            if p.room() <= 0:
                room.clear()
                await room.wait()
                continue
            p.sent += 1
            await send()

    task = asyncio.ensure_future(writer())
    while not (p.stop and p.done() >= p.sent):
        n = await recv()
        p.completed(1, n)
        room.set()
    room.set()
    await task


def payload(args: argparse.Namespace) -> Any:
    data = bytes((ord("a") + i % 26) for i in range(args.size))
    return data if args.kind == "binary" else data.decode()


async def run_websockets(args: argparse.Namespace) -> dict:
    from websockets.asyncio.client import connect

    msg = payload(args)
    async with connect(args.url) as ws:
        async def send() -> None:
            await ws.send(msg)

        async def recv() -> int:
            return len(await ws.recv())

        return await async_workload(args, send, recv)


async def run_aiohttp(args: argparse.Namespace) -> dict:
    import aiohttp

    msg = payload(args)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(args.url) as ws:
            if isinstance(msg, str):
                async def send() -> None:
                    await ws.send_str(msg)
            else:
                async def send() -> None:
                    await ws.send_bytes(msg)

            async def recv() -> int:
                m = await ws.receive()
                if m.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raise RuntimeError(f"unexpected {m.type}")
                return len(m.data)

            return await async_workload(args, send, recv)


async def async_workload(args: argparse.Namespace, send: Callable[[], Any],
                         recv: Callable[[], Any]) -> dict:
    if args.workload == "rr":
        async def once() -> None:
            await send()
            await recv()

        end = perf() + int(args.warmup * 1e9)
        while perf() < end:
            await once()
        samples: List[int] = []
        mark("start")
        start = perf()
        end = start + int(args.duration * 1e9)
        while True:
            t0 = perf()
            await once()
            t1 = perf()
            samples.append(t1 - t0)
            if t1 >= end:
                break
        mark("end")
        return rr_result(samples, perf() - start)
    await async_pipe(send, recv, Pipe(args.window, args.warmup))
    p = Pipe(args.window, args.duration)
    mark("start")
    await async_pipe(send, recv, p)
    mark("end")
    return pipe_result(p.done(), p.nbytes, p.last - p.start, args.window)


async def run_picows(args: argparse.Namespace) -> dict:
    from picows import WSListener, WSMsgType, ws_connect

    msg = payload(args)
    mtype = WSMsgType.BINARY if isinstance(msg, bytes) else WSMsgType.TEXT
    raw = msg if isinstance(msg, bytes) else msg.encode()
    loop = asyncio.get_running_loop()

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.transport: Any = None
            self.waiter: Any = None
            self.pipe: Any = None
            self.t0 = 0
            self.samples: List[int] = []
            self.rr_end = 0

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport

        def top_up(self) -> None:
            p = self.pipe
            for _ in range(p.room()):
                self.transport.send(mtype, raw)
                p.sent += 1

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                n = len(frame.get_payload_as_utf8_text())
            elif frame.msg_type == WSMsgType.BINARY:
                n = len(frame.get_payload_as_bytes())
            else:
                return
            if self.pipe is None:  # rr
                now = perf()
                self.samples.append(now - self.t0)
                if now >= self.rr_end:
                    self.waiter.set_result(now)
                else:
                    self.t0 = perf()
                    transport.send(mtype, raw)
                return
            p = self.pipe
            p.completed(1, n)
            if p.finished():
                self.waiter.set_result(p.last)
            else:
                self.top_up()

        def rr(self, seconds: float) -> "asyncio.Future[int]":
            self.pipe = None
            self.samples = []
            self.waiter = loop.create_future()
            self.rr_end = perf() + int(seconds * 1e9)
            self.t0 = perf()
            self.transport.send(mtype, raw)
            return self.waiter

        def run_pipe(self, p: Pipe) -> "asyncio.Future[int]":
            self.pipe = p
            self.waiter = loop.create_future()
            self.top_up()
            return self.waiter

    transport, listener = await ws_connect(Listener, args.url)
    try:
        if args.workload == "rr":
            await listener.rr(args.warmup)
            mark("start")
            start = perf()
            await listener.rr(args.duration)
            mark("end")
            return rr_result(listener.samples, perf() - start)
        await listener.run_pipe(Pipe(args.window, args.warmup))
        p = Pipe(args.window, args.duration)
        mark("start")
        await listener.run_pipe(p)
        mark("end")
        return pipe_result(p.done(), p.nbytes, p.last - p.start, args.window)
    finally:
        transport.send_close()
        transport.disconnect()


# ------------------------------------------------------------------ websocket-client (sync)


def run_websocket_client(args: argparse.Namespace) -> dict:
    import websocket

    msg = payload(args)
    ws = websocket.create_connection(args.url, enable_multithread=True)
    send = ws.send_binary if isinstance(msg, bytes) else ws.send
    try:
        if args.workload == "rr":
            def once() -> None:
                send(msg)
                ws.recv()

            end = perf() + int(args.warmup * 1e9)
            while perf() < end:
                once()
            samples: List[int] = []
            mark("start")
            start = perf()
            end = start + int(args.duration * 1e9)
            while True:
                t0 = perf()
                once()
                t1 = perf()
                samples.append(t1 - t0)
                if t1 >= end:
                    break
            mark("end")
            return rr_result(samples, perf() - start)

        def pipe(p: Pipe, started: Callable[[], None] = lambda: None) -> None:
            # A writer thread and this (reader) thread: a blocking client cannot do both in one.
            cv = threading.Condition()

            def writer() -> None:
                while True:
                    with cv:
                        while p.room() <= 0 and not p.stop:
                            cv.wait()
                        if p.stop:
                            return
                        p.sent += 1  # before the send: see async_pipe
                    send(msg)

            t = threading.Thread(target=writer)
            t.start()
            started()
            while True:
                with cv:
                    if p.stop and p.done() >= p.sent:
                        cv.notify()
                        break
                n = len(ws.recv())
                with cv:
                    p.completed(1, n)
                    cv.notify()
            t.join()

        pipe(Pipe(args.window, args.warmup))
        p = Pipe(args.window, args.duration)
        # The mark comes once the writer thread runs, so that `perf stat -p` sees it.
        pipe(p, lambda: mark("start"))
        mark("end")
        return pipe_result(p.done(), p.nbytes, p.last - p.start, args.window)
    finally:
        ws.close()


# ------------------------------------------------------------------ Tether


def tether_options(args: argparse.Namespace) -> dict:
    # Tether's defaults, except the outbox bound: 1,000 x 64 KiB must fit in flight.
    opts: dict = dict(outbox_max_messages=8192, outbox_max_bytes=128 << 20)
    if args.io == "caller":  # the waiting thread runs the I/O (docs/CALLER_IO.md)
        opts.update(io_driver="caller")
    if args.protocol == "envelope":
        import tether

        opts.update(protocol="envelope", events=[tether.Acked])
    return opts


def tether_url(args: argparse.Namespace) -> str:
    return args.url.rstrip("/") + "/tether" if args.protocol == "envelope" else args.url


def run_tether_sync(args: argparse.Namespace) -> dict:
    import tether

    msg = payload(args)
    envelope = args.protocol == "envelope"
    client = tether.Client(tether_url(args), **tether_options(args))
    try:
        client.wait_ready(timeout=20)
        if args.workload == "rr":
            def once() -> None:
                client.send(msg)
                client.recv(timeout=20)

            end = perf() + int(args.warmup * 1e9)
            while perf() < end:
                once()
            samples: List[int] = []
            mark("start")
            start = perf()
            end = start + int(args.duration * 1e9)
            while True:
                t0 = perf()
                once()
                t1 = perf()
                samples.append(t1 - t0)
                if t1 >= end:
                    break
            mark("end")
            return rr_result(samples, perf() - start)

        def pipe(p: Pipe) -> None:
            while not p.finished():
                for _ in range(p.room()):
                    client.send(msg)
                    p.sent += 1
                n = nb = a = 0
                for item in client.recv_many(4096, timeout=20):
                    if isinstance(item, (str, bytes)):
                        n += 1
                        nb += len(item)
                    else:
                        a += 1
                if a:
                    p.acked(a)
                if n:
                    p.completed(n, nb)

        pipe(Pipe(args.window, args.warmup, envelope))
        p = Pipe(args.window, args.duration, envelope)
        mark("start")
        pipe(p)
        mark("end")
        return pipe_result(p.done(), p.nbytes, p.last - p.start, args.window, p.acks)
    finally:
        client.close(timeout=10)


async def run_tether_async(args: argparse.Namespace) -> dict:
    import tether

    msg = payload(args)
    envelope = args.protocol == "envelope"
    async with tether.AsyncClient(tether_url(args), **tether_options(args)) as client:
        await client.wait_ready(timeout=20)
        if args.workload == "rr":
            async def once() -> None:
                client.send(msg)
                await client.recv(timeout=20)

            end = perf() + int(args.warmup * 1e9)
            while perf() < end:
                await once()
            samples: List[int] = []
            mark("start")
            start = perf()
            end = start + int(args.duration * 1e9)
            while True:
                t0 = perf()
                await once()
                t1 = perf()
                samples.append(t1 - t0)
                if t1 >= end:
                    break
            mark("end")
            return rr_result(samples, perf() - start)

        async def pipe(p: Pipe) -> None:
            for _ in range(p.room()):
                client.send(msg)
                p.sent += 1
            async for item in client:
                if isinstance(item, (str, bytes)):
                    p.completed(1, len(item))
                else:
                    p.acked(1)
                if p.finished():
                    break
                for _ in range(p.room()):
                    client.send(msg)
                    p.sent += 1

        await pipe(Pipe(args.window, args.warmup, envelope))
        p = Pipe(args.window, args.duration, envelope)
        mark("start")
        await pipe(p)
        mark("end")
        return pipe_result(p.done(), p.nbytes, p.last - p.start, args.window, p.acks)


async def run_tether_connect(args: argparse.Namespace) -> dict:
    """The ``websockets`` shape (``tether.connect``): the same workload code as websockets."""
    import tether

    msg = payload(args)
    async with tether.connect(tether_url(args), open_timeout=20, **tether_options(args)) as ws:
        async def send() -> None:
            await ws.send(msg)

        async def recv() -> int:
            return len(await ws.recv())

        return await async_workload(args, send, recv)


RUNNERS = {
    "picows": run_picows,
    "websockets": run_websockets,
    "websocket-client": run_websocket_client,
    "aiohttp": run_aiohttp,
    "tether-sync": run_tether_sync,
    "tether-async": run_tether_async,
    "tether-connect": run_tether_connect,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True, choices=sorted(RUNNERS))
    ap.add_argument("--url", default="ws://127.0.0.1:9001/")
    ap.add_argument("--workload", default="rr", choices=["rr", "pipe"])
    ap.add_argument("--protocol", default="raw", choices=["raw", "envelope"])
    ap.add_argument("--io", default="runtime", choices=["runtime", "caller"])
    ap.add_argument("--kind", default="text", choices=["text", "binary"])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.2)
    args = ap.parse_args()
    if args.protocol == "envelope" and not args.client.startswith("tether"):
        sys.exit("envelope mode is Tether's")
    runner = RUNNERS[args.client]
    if asyncio.iscoroutinefunction(runner):
        result = asyncio.run(runner(args))
    else:
        result = runner(args)
    emit(client=args.client, workload=args.workload, protocol=args.protocol, **result)


if __name__ == "__main__":
    main()
