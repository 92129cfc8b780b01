#!/usr/bin/env python3
"""Instruction counts per message with callgrind: where a client spends its user-space work.

    bench/.venv/bin/python bench/profile.py CLIENT WORKLOAD [--short S] [--long S] [--top N]

CLIENT is a key of bench/run.py (raw, tether-rust, tether-c-poll, picows, ...); WORKLOAD one of
a, b, c, d. Starts its own bench-server (not under valgrind), runs the client under
`valgrind --tool=callgrind` twice, for a short and a long measured phase, and reports

    (Ir(long) - Ir(short)) / (messages(long) - messages(short))

so that start-up, connect, warm-up and shutdown cancel out. Instruction counts do not depend
on how busy the machine is, which makes them the right tool on a shared 2-core box (this
machine's perf has no hardware counters; `perf stat -e instructions` is not supported).
Caveats: valgrind runs one thread at a time, so batching between threads differs from a
native run; kernel work (system calls) is not counted. Writes the long run's profile to
bench/out/callgrind.CLIENT.WORKLOAD.out and prints the top functions (callgrind_annotate,
inclusive and self).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def callgrind(cmd, out: Path):
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                          capture_output=True, text=True, cwd=bench.BENCH, timeout=900)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    if result is None:
        raise SystemExit(f"no result from {' '.join(cmd)}:\n{proc.stderr[-3000:]}")
    total = 0
    for f in [out] + sorted(out.parent.glob(out.name + "-*")):
        m = re.search(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"), re.M)
        if m:
            total += int(m.group(1))
    return total, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("client", choices=sorted(bench.BY_KEY))
    ap.add_argument("workload", choices=list("abcd"))
    ap.add_argument("--short", type=float, default=2.0, help="short measured phase, s (under valgrind)")
    ap.add_argument("--long", type=float, default=6.0, help="long measured phase, s")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    spec = bench.BY_KEY[args.client]
    why = spec.available()
    if why:
        raise SystemExit(why)
    w = bench.WORKLOADS[args.workload]
    bench.OUT.mkdir(exist_ok=True)
    server = bench.Server(bench.Pinning([], [], ""))
    try:
        base = spec.cmd() + w.args + ["--url", server.url, "--warmup", "0.5"]
        tag = f"{args.client}.{args.workload}"
        short_out = bench.OUT / f"callgrind.{tag}.short.out"
        long_out = bench.OUT / f"callgrind.{tag}.out"
        ir1, r1 = callgrind(base + ["--duration", str(args.short)], short_out)
        ir2, r2 = callgrind(base + ["--duration", str(args.long)], long_out)
    finally:
        server.stop()
    n1, n2 = r1["count"], r2["count"]
    if n2 <= n1:
        raise SystemExit(f"the long run did not complete more messages ({n1} vs {n2})")
    per = (ir2 - ir1) / (n2 - n1)
    print(f"{spec.label}, workload ({args.workload}): {per:,.0f} instructions per message "
          f"(user space; {n1:,} and {n2:,} messages under valgrind; totals {ir1:,} and {ir2:,})")
    for f in short_out.parent.glob(short_out.name + "*"):
        f.unlink()
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(long_out)],
                         capture_output=True, text=True).stdout
    print("\n--- inclusive (long run) ---")
    print("\n".join(_table(ann, args.top)))
    ann = subprocess.run(["callgrind_annotate", str(long_out)], capture_output=True, text=True).stdout
    print("\n--- self (long run) ---")
    print("\n".join(_table(ann, args.top)))
    print(f"\nprofile: {long_out.relative_to(bench.ROOT)} (callgrind_annotate / kcachegrind)")


def _table(annotate: str, top: int):
    lines = annotate.splitlines()
    out, started = [], False
    for line in lines:
        if re.match(r"^-+$", line) and started and out:
            break
        if "file:function" in line:
            started = True
            continue
        if started and line.strip() and not re.match(r"^-+$", line):
            out.append(line[:220])
            if len(out) >= top:
                break
    return out


if __name__ == "__main__":
    main()
