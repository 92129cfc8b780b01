#!/usr/bin/env python3
"""Acked messages/s of one ``tether.server`` instance (``python -m tether.server.app``: every
message recorded in the store's transaction and echoed back), with the memory store and with
Redis, pipelined. Prints a Markdown table; not part of ``make bench`` (``bench/run.sh``).

    .venv/bin/python bench/server_bench.py [--duration S] [--clients N] [--window W]
                                           [--size BYTES] [--stores memory,redis] [--runs R]

Needs Tether's Python package with its server extra (``pip install ./python[server]``, or the
root ``.venv`` made by ``python/tests/run.sh``) and, for the Redis figure, Debian's
``redis-server`` (started here on a free port in a temp dir, append-only file with
``appendfsync everysec``, the usual production setting).

The clients are Tether's Python client (envelope mode), one connection and one process each:
each keeps ``window`` messages in flight (sends a window, waits for its last receipt, repeats;
receipts resolve in order) and drains the echoes. A message counts once its receipt is
*acked*: the server committed its de-dup mark, its record and its echo. The server process
is meant to be the bottleneck (one Python process, one core); its CPU share and CPU time per
message are printed beside the figure (below 100%, the clients or a busy machine limited it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

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


def start_app(store: str) -> Tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "tether.server.app", "--port", "0",
                             "--store", store, "--instance", "bench"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the app did not start: {line!r}")
    return proc, int(line.split()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(url: str, window: int, size: int, stop_at: float, count: Any, err: Any) -> None:
    """One client process: windows of ``window`` messages until ``stop_at`` (monotonic)."""
    payload = "x" * size
    try:
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


def drive(url: str, clients: int, window: int, size: int, duration: float,
          warmup: float, server_pid: int) -> Tuple[float, float]:
    """(acked messages/s, server CPU share) over ``duration`` after ``warmup``; the clients
    are processes (no GIL shared between them and the measurement)."""
    ctx = multiprocessing.get_context("spawn")
    count, err = ctx.Value("q", 0), ctx.Value("i", 0)
    start = time.monotonic()
    end = start + 5 + warmup + duration  # spawn time, then the phases below
    procs = [ctx.Process(target=_client, args=(url, window, size, end, count, err))
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--stores", default="memory,redis")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rows: List[Tuple[str, List[float], List[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis: Optional[subprocess.Popen[bytes]] = None
        try:
            for store in args.stores.split(","):
                url = "memory"
                if store == "redis":
                    if redis is None:
                        redis, rport = start_redis(Path(tmp))
                    url = f"redis://127.0.0.1:{rport}/0"
                rates, cpus = [], []
                for _ in range(args.runs):
                    app, port = start_app(url)
                    try:
                        rate, cpu = drive(f"ws://127.0.0.1:{port}/", args.clients, args.window,
                                          args.size, args.duration, args.warmup, app.pid)
                    finally:
                        app.terminate()
                        app.wait(10)
                    rates.append(rate)
                    cpus.append(cpu)
                rows.append((store, rates, cpus))
        finally:
            if redis is not None:
                redis.kill()
                redis.wait()
    print(f"tether.server app, {args.clients} clients x window {args.window}, "
          f"{args.size}-byte text, {args.runs} runs of {args.duration:g} s "
          f"(median [min-max])\n")
    print("| store | acked messages/s per instance | server CPU | server CPU µs/msg |")
    print("|---|---:|---:|---:|")
    for store, rates, cpus in rows:
        label = {"memory": "memory", "redis": "Redis (AOF everysec)"}.get(store, store)
        per_msg = statistics.median(c / r * 1e6 for c, r in zip(cpus, rates))
        print(f"| {label} | {statistics.median(rates):,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]"
              f" | {statistics.median(cpus):.0%} | {per_msg:.0f} |")
    print("\nThe server's CPU per message is the steadier figure on a busy machine: one core "
          "saturated is about 1e6 / (µs/msg) acked messages/s.")


if __name__ == "__main__":
    main()
