#!/usr/bin/env python3
"""Acked messages/s of one ``tether.server`` instance (``python -m tether.server.app``: every
message recorded in the store's transaction and echoed back), with the memory store and with
Redis, pipelined, beside a raw-mode baseline. Prints a Markdown table; ``make bench``
(``bench/run.sh``, through ``bench/run.py``) puts it into bench/RESULTS.md as section (g).

    .venv/bin/python bench/server_bench.py [--duration S] [--clients N] [--window W]
                                           [--size BYTES] [--stores raw,memory,redis] [--runs R]
                                           [--json FILE]

The raw-mode baseline (``raw``) is the same server stack without Tether's protocol: one Python
process (``server_bench.py --serve-raw``) running a ``websockets`` asyncio server with
tether.server's settings (no compression, no pings, the same frame limit) that echoes every
frame as is: no envelope, no store, no acks. Its clients are the same Tether Python clients in
raw mode, with the same window; a message counts once its echo came back.

Needs Tether's Python package with its server extra (``pip install ./python[server]``, or the
root ``.venv`` made by ``python/tests/run.sh``) and, for the Redis figure, Debian's
``redis-server`` (started here on a free port in a temp dir, append-only file with
``appendfsync everysec``, the usual production setting).

The clients are Tether's Python client (envelope mode), one connection and one process each:
each keeps ``window`` messages in flight (sends a window, waits for its last receipt, repeats;
receipts resolve in order) and drains the echoes. A message counts once its receipt is
*acked*: the server committed its de-dup mark, its record and its echo. In raw mode a client
sends a window and waits for its ``window`` echoes, then repeats. The server process
is meant to be the bottleneck (one Python process, one core); its CPU share and CPU time per
message are printed beside the figure (below 100%, the clients or a busy machine limited it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import tether


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(dir: Path) -> Tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(dir),
                             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                             "--daemonize", "no", "--logfile", str(dir / "redis.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)


# tether.server's frame limit for its default max_size (16 MiB of payload, base64 in JSON).
RAW_MAX_SIZE = (16 << 20) * 4 // 3 + 1024


async def serve_raw() -> None:
    """The raw-mode baseline server: ``websockets`` asyncio with tether.server's settings,
    echoing every frame; prints ``PORT n``, serves until SIGTERM or SIGINT."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        try:
            async for msg in ws:
                await ws.send(msg)
        except ConnectionClosed:
            pass

    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=RAW_MAX_SIZE,
                     ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def start_app(store: str) -> Tuple[subprocess.Popen[str], int]:
    """``store``: ``raw`` (the baseline server), ``memory`` or a redis:// URL (the app)."""
    if store == "raw":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-raw"]
    else:
        cmd = [sys.executable, "-m", "tether.server.app", "--port", "0", "--store", store,
               "--instance", "bench"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the app did not start: {line!r}")
    return proc, int(line.split()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(url: str, raw: bool, window: int, size: int, stop_at: float, count: Any,
            err: Any) -> None:
    """One client process: windows of ``window`` messages until ``stop_at`` (monotonic)."""
    payload = "x" * size
    try:
        if raw:
            with tether.Client(url, protocol="raw", outbox_max_messages=window * 2) as r:
                r.wait_ready(20)
                while time.monotonic() < stop_at:
                    for _ in range(window):
                        r.send(payload)
                    echoed = 0
                    while echoed < window:  # each call waits at most 60 s
                        echoed += len(r.recv_many(max=window - echoed, timeout=60))
                    with count.get_lock():
                        count.value += window
            return
        with tether.Client(url, protocol="envelope", outbox_max_messages=window * 2) as c:
            c.wait_ready(20)
            while time.monotonic() < stop_at:
                receipts = [c.send(payload) for _ in range(window)]
                receipts[-1].wait(60)  # receipts resolve in order
                if receipts[-1].status != "acked":
                    raise RuntimeError(f"receipt {receipts[-1].status}")
                with count.get_lock():
                    count.value += window
                try:
                    c.recv_many(max=window * 4, timeout=0)  # the echoes so far
                except TimeoutError:
                    pass
    except BaseException as e:  # noqa: BLE001 - reported by the parent
        err.value = 1
        print(f"bench client failed: {e!r}", file=sys.stderr)


def drive(url: str, raw: bool, clients: int, window: int, size: int, duration: float,
          warmup: float, server_pid: int) -> Tuple[float, float]:
    """(acked messages/s, or echoed ones with ``raw``; server CPU share) over ``duration``
    after ``warmup``; the clients are processes (no GIL shared between them and the
    measurement)."""
    ctx = multiprocessing.get_context("spawn")
    count, err = ctx.Value("q", 0), ctx.Value("i", 0)
    start = time.monotonic()
    end = start + 5 + warmup + duration  # spawn time, then the phases below
    procs = [ctx.Process(target=_client, args=(url, raw, window, size, end, count, err))
             for _ in range(clients)]
    for pr in procs:
        pr.start()
    deadline = start + 30
    while count.value == 0 and not err.value and time.monotonic() < deadline:
        time.sleep(0.01)  # every phase is timed from the first ack
    time.sleep(warmup)
    cpu0, t0, c0 = cpu_seconds(server_pid), time.monotonic(), count.value
    time.sleep(min(duration, max(0.5, end - time.monotonic() - 0.5)))
    cpu1, t1, c1 = cpu_seconds(server_pid), time.monotonic(), count.value
    for pr in procs:
        pr.join(120)
    if err.value or c1 == c0:
        raise SystemExit("bench client failed")
    return (c1 - c0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0)


LABELS = {
    "raw": "raw mode: `websockets` echo, no envelope, no store (no acks: echoes counted)",
    "memory": "memory store",
    "redis": "Redis store (AOF everysec)",
}


def table(res: Dict[str, Any]) -> str:
    """The Markdown report of :func:`measure`'s result: a caption line, the table, a note."""
    a = res["args"]
    L = [f"One server process (`python -m tether.server.app`; raw mode: `server_bench.py "
         f"--serve-raw`), {a['clients']} clients x window {a['window']}, "
         f"{a['size']}-byte text, {a['runs']} run(s) of {a['duration']:g} s after "
         f"{a['warmup']:g} s warm-up (median [min–max])", "",
         "| server | acked messages/s per instance | server CPU | server CPU µs/msg |",
         "|---|---:|---:|---:|"]
    for row in res["rows"]:
        rates, cpus = row["rates"], row["cpus"]
        label = LABELS.get(row["store"], row["store"])
        spread = (f"{statistics.median(rates):,.0f}" if len(rates) == 1 else
                  f"{statistics.median(rates):,.0f} [{min(rates):,.0f}–{max(rates):,.0f}]")
        per_msg = statistics.median(c / r * 1e6 for c, r in zip(cpus, rates))
        L.append(f"| {label} | {spread} | {statistics.median(cpus):.0%} | {per_msg:.0f} |")
    L += ["", "The server's CPU per message is the steadier figure on a busy machine: one core "
          "saturated is about 1e6 / (µs/msg) messages/s. A CPU share well below 100% means the "
          "clients or other work on the machine limited the rate."]
    return "\n".join(L)


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Every store in ``args.stores``, ``args.runs`` times each: rates and server CPU shares."""
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis: Optional[subprocess.Popen[bytes]] = None
        rport = 0
        try:
            for store in args.stores.split(","):
                if store not in LABELS:
                    raise SystemExit(f"--stores: raw, memory, redis; not {store!r}")
                url = store
                if store == "redis":
                    if redis is None:
                        redis, rport = start_redis(Path(tmp))
                    url = f"redis://127.0.0.1:{rport}/0"
                rates, cpus = [], []
                for _ in range(args.runs):
                    app, port = start_app(url)
                    try:
                        rate, cpu = drive(f"ws://127.0.0.1:{port}/", store == "raw",
                                          args.clients, args.window, args.size, args.duration,
                                          args.warmup, app.pid)
                    finally:
                        app.terminate()
                        app.wait(10)
                    rates.append(rate)
                    cpus.append(cpu)
                rows.append({"store": store, "rates": rates, "cpus": cpus})
        finally:
            if redis is not None:
                redis.kill()
                redis.wait()
    keys = ("clients", "window", "size", "runs", "duration", "warmup")
    return {"args": {k: getattr(args, k) for k in keys}, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--stores", default="raw,memory,redis",
                   help="comma-separated from raw (the baseline), memory, redis")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", metavar="FILE",
                   help="also write the result (and its table, key 'table') to FILE")
    p.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_raw:
        asyncio.run(serve_raw())
        return
    res = measure(args)
    res["table"] = table(res)
    print(res["table"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
