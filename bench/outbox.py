#!/usr/bin/env python3
"""The cost of the persistent outbox (docs/PERSISTENCE.md), side by side with the in-memory
outbox in one run: workload (d) of bench/run.py (pipelined 64 B text, up to 1,000 in flight,
envelope mode with acks, Tether's Rust client against bench-server) with `outbox_path` unset,
then with `outbox_sync` none / batch / always. The variants are interleaved round by round so
a change in machine load hits them all alike; prints a table (median [min-max] of the rounds)
and writes it to bench/OUTBOX.md.

    python3 bench/outbox.py [--rounds N] [--duration S] [--dir DIR]

`--dir` is where the outbox files go (default bench/target/outbox-bench, on the disk the
repository is on: a tmpfs would make fdatasync free and the figures meaningless)."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

BENCH = Path(__file__).resolve().parent
RELEASE = BENCH / "target" / "release"
VARIANTS = [("in memory (baseline)", None), ("file, sync none", "none"),
            ("file, sync batch (default)", "batch"), ("file, sync always", "always")]


def start_server() -> "tuple[subprocess.Popen[str], str]":
    proc = subprocess.Popen([str(RELEASE / "bench-server"), "--exit-on-stdin-close"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    m = re.match(r"LISTENING (\d+)", proc.stdout.readline())
    if not m:
        proc.kill()
        raise SystemExit("bench-server did not start")
    return proc, f"ws://127.0.0.1:{m.group(1)}/"


def run(url: str, sync: Optional[str], path: Path, duration: float) -> Dict[str, float]:
    cmd = [str(RELEASE / "bench-tether"), "--url", url, "--workload", "pipe", "--kind", "text",
           "--size", "64", "--window", "1000", "--protocol", "envelope",
           "--duration", str(duration), "--warmup", "1"]
    if sync is not None:
        cmd += ["--outbox-path", str(path), "--outbox-sync", sync]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"bench-tether failed ({out.returncode}): {out.stderr[-2000:]}")


def fs_type(path: Path) -> str:
    try:
        return subprocess.run(["df", "-T", str(path)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--dir", type=Path, default=BENCH / "target" / "outbox-bench")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "-q", "--release", "--bin", "bench-tether", "--bin",
                    "bench-server"], cwd=BENCH, check=True)
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "outbox"
    server, url = start_server()
    rates: Dict[str, List[float]] = {name: [] for name, _ in VARIANTS}
    rss: Dict[str, List[float]] = {name: [] for name, _ in VARIANTS}
    try:
        for r in range(args.rounds):
            for name, sync in VARIANTS:
                res = run(url, sync, path, args.duration)
                rates[name].append(float(res["rate"]))
                rss[name].append(float(res.get("rss_kib", 0)) / 1024)
                print(f"round {r + 1}/{args.rounds}: {name}: {res['rate']:,.0f} messages/s",
                      file=sys.stderr)
    finally:
        server.kill()
        server.wait()
        path.unlink(missing_ok=True)
    base = statistics.median(rates[VARIANTS[0][0]])
    lines = [
        "# Persistent outbox: cost beside the in-memory outbox",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench-outbox` (bench/outbox.py): "
        "workload (d) of bench/RESULTS.md (pipelined 64 B text, up to 1,000 in flight, envelope "
        "mode with acks; Tether's Rust client in poll mode against bench-server), "
        f"{args.rounds} interleaved rounds of {args.duration:g} s each; outbox file on "
        f"{fs_type(args.dir)}, {os.cpu_count()} CPUs. Median [min-max] of the rounds.",
        "",
        "| outbox | acked messages/s | vs in memory |",
        "|---|---|---|",
    ]
    for name, _ in VARIANTS:
        xs = rates[name]
        med = statistics.median(xs)
        lines.append(f"| {name} | {med:,.0f} [{min(xs):,.0f}-{max(xs):,.0f}] | "
                     f"{med / base:.2f}x |")
    lines += ["", "`always` does one fdatasync per message before `send` returns; `batch` one per "
              "batch written to the socket; `none` only writes (a killed process loses nothing "
              "in any mode; the modes differ on a machine crash: docs/PERSISTENCE.md).", ""]
    text = "\n".join(lines)
    print(text)
    (BENCH / "OUTBOX.md").write_text(text)


if __name__ == "__main__":
    main()
