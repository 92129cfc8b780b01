#!/usr/bin/env python3
"""The benchmark harness: one echo server, every client in its own process, the same run.

Started by bench/run.sh (which builds everything first); see docs/BENCHMARKS.md. Writes
bench/RESULTS.md (tables, machine, versions, targets), bench/results.png (bar chart) and
bench/out/results.json (every measurement). Section (g), tether.server's acked messages/s, comes
from bench/server_bench.py, run last; `--only server` runs just that and replaces section (g) in
the existing bench/RESULTS.md (and in bench/out/results.json, if there), leaving the rest as is.

    run.py [--quick] [--runs N] [--duration S] [--clients a,b,...] [--workloads a,b,...]
           [--pin auto|yes|no] [--no-perf] [--idle-conns 1000,10000] [--from-json FILE]
           [--only server]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
RELEASE = BENCH / "target" / "release"
C_CLIENT = BENCH / "target" / "c" / "bench_tether"
LWS_CLIENT = BENCH / "target" / "c" / "bench_lws"
BEAST_CLIENT = BENCH / "target" / "cpp" / "bench_beast"
VENV_PY = BENCH / ".venv" / "bin" / "python"
PY_CLIENTS = BENCH / "python" / "clients.py"
SERVER_BENCH = BENCH / "server_bench.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ workloads and clients


@dataclass
class Workload:
    key: str
    title: str
    unit: str  # what "rate" means in the tables
    args: List[str]
    envelope: bool = False


WORKLOADS = {
    "a": Workload("a", "(a) request/response, 64 B text, 1 in flight", "round trips/s",
                  ["--workload", "rr", "--kind", "text", "--size", "64"]),
    "b": Workload("b", "(b) pipelined 64 B text, up to 1,000 in flight", "messages/s",
                  ["--workload", "pipe", "--kind", "text", "--size", "64", "--window", "1000"]),
    "c": Workload("c", "(c) pipelined 64 KiB binary, up to 1,000 in flight", "MB/s",
                  ["--workload", "pipe", "--kind", "binary", "--size", "65536",
                   "--window", "1000"]),
    "d": Workload("d", "(d) as (b) in envelope mode: acks, Tether only", "messages/s",
                  ["--workload", "pipe", "--kind", "text", "--size", "64", "--window", "1000",
                   "--protocol", "envelope"], envelope=True),
}


@dataclass
class ClientSpec:
    key: str
    label: str
    group: str  # rust, c, cpp, python-tether, python-other
    cmd: Callable[[], List[str]]
    workloads: str  # which of a-d it runs
    available: Callable[[], Optional[str]]  # None if usable, else why not
    extra: str = ""  # which of e (idle memory), f (closing) it runs


def have(path: Path) -> Callable[[], Optional[str]]:
    return lambda: None if path.exists() else f"{path.relative_to(ROOT)} not built"


def python_has(module: str) -> Callable[[], Optional[str]]:
    cache: Dict[str, Optional[str]] = {}

    def check() -> Optional[str]:
        if module not in cache:
            if not VENV_PY.exists():
                cache[module] = "bench/.venv missing"
            else:
                r = subprocess.run([str(VENV_PY), "-c", f"import {module}"],
                                   capture_output=True, text=True, cwd=BENCH)
                cache[module] = None if r.returncode == 0 else f"`import {module}` fails in bench/.venv"
        return cache[module]

    return check


def py_client(name: str) -> Callable[[], List[str]]:
    return lambda: [str(VENV_PY), str(PY_CLIENTS), "--client", name]


CLIENTS = [
    ClientSpec("raw", "tokio-tungstenite (raw)", "rust",
               lambda: [str(RELEASE / "bench-raw")], "abc", have(RELEASE / "bench-raw"), "ef"),
    ClientSpec("tether-rust", "Tether Rust (poll)", "rust",
               lambda: [str(RELEASE / "bench-tether"), "--mode", "poll"], "abcd",
               have(RELEASE / "bench-tether"), "ef"),
    ClientSpec("tether-rust-caller", "Tether Rust (poll, caller I/O)", "rust",
               lambda: [str(RELEASE / "bench-tether"), "--mode", "poll", "--io", "caller"], "abcd",
               have(RELEASE / "bench-tether")),
    ClientSpec("tether-rust-cb", "Tether Rust (callback)", "rust",
               lambda: [str(RELEASE / "bench-tether"), "--mode", "cb"], "abcd",
               have(RELEASE / "bench-tether"), "f"),
    ClientSpec("tether-rust-async", "Tether Rust (async, own runtime)", "rust",
               lambda: [str(RELEASE / "bench-tether"), "--mode", "async"], "abcd",
               have(RELEASE / "bench-tether"), "f"),
    ClientSpec("tether-c-cb", "Tether C (callback)", "c",
               lambda: [str(C_CLIENT), "--mode", "cb"], "abcd", have(C_CLIENT), "f"),
    ClientSpec("tether-c-poll", "Tether C (poll)", "c",
               lambda: [str(C_CLIENT), "--mode", "poll"], "abcd", have(C_CLIENT), "ef"),
    ClientSpec("tether-c-caller", "Tether C (poll, caller I/O)", "c",
               lambda: [str(C_CLIENT), "--mode", "poll", "--io", "caller"], "abcd", have(C_CLIENT)),
    # Peers a Rust, C or C++ user would pick instead (docs/BENCHMARKS.md, "The peers").
    ClientSpec("fastwebsockets", "fastwebsockets (Rust)", "rust",
               lambda: [str(RELEASE / "bench-fastwebsockets")], "abc",
               have(RELEASE / "bench-fastwebsockets"), "ef"),
    ClientSpec("libwebsockets", "libwebsockets (C)", "c",
               lambda: [str(LWS_CLIENT)], "abc", have(LWS_CLIENT), "ef"),
    ClientSpec("beast", "Boost.Beast (C++)", "cpp",
               lambda: [str(BEAST_CLIENT)], "abc", have(BEAST_CLIENT), "ef"),
    ClientSpec("tether-py-sync", "Tether Python (sync)", "python-tether",
               py_client("tether-sync"), "abcd", python_has("tether")),
    ClientSpec("tether-py-sync-caller", "Tether Python (sync, caller I/O)", "python-tether",
               lambda: py_client("tether-sync")() + ["--io", "caller"], "abcd", python_has("tether")),
    ClientSpec("tether-py-async", "Tether Python (asyncio)", "python-tether",
               py_client("tether-async"), "abcd", python_has("tether")),
    ClientSpec("tether-py-connect", "Tether Python (tether.connect)", "python-tether",
               py_client("tether-connect"), "abc", python_has("tether")),
    ClientSpec("tether-py-async-caller", "Tether Python (asyncio, caller I/O)", "python-tether",
               lambda: py_client("tether-async")() + ["--io", "caller"], "abcd", python_has("tether")),
    ClientSpec("tether-py-connect-caller", "Tether Python (tether.connect, caller I/O)", "python-tether",
               lambda: py_client("tether-connect")() + ["--io", "caller"], "abc", python_has("tether")),
    ClientSpec("picows", "picows", "python-other", py_client("picows"), "abc",
               python_has("picows")),
    ClientSpec("websockets", "websockets", "python-other", py_client("websockets"), "abc",
               python_has("websockets")),
    ClientSpec("websocket-client", "websocket-client", "python-other",
               py_client("websocket-client"), "abc", python_has("websocket")),
    ClientSpec("aiohttp", "aiohttp", "python-other", py_client("aiohttp"), "abc",
               python_has("aiohttp")),
]
BY_KEY = {c.key: c for c in CLIENTS}
# (e) cost of an idle poll: the clients measured and the call named in the table.
POLL_COST = {
    "tether-rust": "`Client::poll_event` (Rust)",
    "tether-c-poll": "`tether_client_poll` (C)",
    "tether-rust-caller": "`Client::poll_event` (Rust, caller I/O)",
    "tether-c-caller": "`tether_client_poll` (C, caller I/O)",
}


# ------------------------------------------------------------------ processes and CPU time


def proc_cpu_seconds(pid: int) -> Optional[float]:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Pinning:
    server: List[str]
    client: List[str]
    note: str


def cpu_busy(seconds: float = 1.0) -> List[float]:
    """Share of each CPU that was busy (not idle or iowait) over `seconds`."""

    def sample() -> List[List[int]]:
        rows = []
        for line in open("/proc/stat"):
            if line.startswith("cpu") and line[3].isdigit():
                rows.append([int(x) for x in line.split()[1:]])
        return rows

    a = sample()
    time.sleep(seconds)
    b = sample()
    out = []
    for x, y in zip(a, b):
        d = [j - i for i, j in zip(x, y)]
        total = sum(d) or 1
        out.append(1.0 - (d[3] + d[4]) / total)
    return out


def pinning(mode: str) -> Pinning:
    """`auto`: pin only when both CPUs are free (nothing else uses more than 10% of either);
    on a busy machine pinning would tie each process to a core it shares with other work."""
    ncpu = os.cpu_count() or 1
    taskset = shutil.which("taskset")
    if mode == "no":
        return Pinning([], [], "not pinned (--pin no)")
    if ncpu < 2 or not taskset:
        return Pinning([], [], f"not pinned ({ncpu} CPU(s), taskset {'found' if taskset else 'missing'})")
    if mode == "auto":
        busy = cpu_busy()
        if max(busy) > 0.10:
            shares = ", ".join(f"CPU {i} {b * 100:.0f}%" for i, b in enumerate(busy[:2]))
            return Pinning([], [], f"not pinned: the CPUs were not free at the start ({shares} busy "
                                   "with other work); the scheduler places server and client")
    return Pinning([taskset, "-c", "0"], [taskset, "-c", "1"],
                   "server pinned to CPU 0, each client process to CPU 1 (taskset)")


class Server:
    def __init__(self, pin: Pinning) -> None:
        exe = RELEASE / "bench-server"
        self.proc = subprocess.Popen(pin.server + [str(exe), "--exit-on-stdin-close"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.match(r"LISTENING (\d+)", line)
        if not m:
            raise SystemExit(f"bench-server did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"ws://127.0.0.1:{self.port}/"

    def cpu(self) -> Optional[float]:
        return proc_cpu_seconds(self.proc.pid)

    def rss_kib(self) -> int:
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


PERF_EVENTS = "task-clock,context-switches,raw_syscalls:sys_enter"


def perf_usable() -> bool:
    perf = shutil.which("perf")
    if not perf:
        return False
    r = subprocess.run([perf, "stat", "-x", ";", "-e", PERF_EVENTS, "true"],
                       capture_output=True, text=True)
    return r.returncode == 0 and "not supported" not in r.stderr and "raw_syscalls" in r.stderr


class PerfAttach:
    """`perf stat` attached to a client process for its measured part (MARK start .. end):
    CPU time, context switches and system calls of all its threads."""

    def __init__(self, pid: int) -> None:
        self.out = OUT / f"perf.{pid}.txt"
        self.proc = subprocess.Popen(["perf", "stat", "-x", ";", "-e", PERF_EVENTS, "-p", str(pid),
                                      "-o", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.t0 = time.monotonic()

    def stop(self) -> Dict[str, float]:
        import signal

        wall = time.monotonic() - self.t0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {}
        counts: Dict[str, float] = {"perf_wall": wall}
        try:
            for line in self.out.read_text().splitlines():
                parts = line.split(";")
                if len(parts) < 3 or not parts[0] or parts[0].startswith("<"):
                    continue
                try:
                    value = float(parts[0])
                except ValueError:
                    continue
                event = parts[2]
                if event.startswith("task-clock"):
                    counts["perf_cpu_s"] = value / 1000.0  # msec
                elif event.startswith("context-switches"):
                    counts["perf_ctxsw"] = value
                elif event.startswith("raw_syscalls:sys_enter"):
                    counts["perf_syscalls"] = value
            self.out.unlink()
        except OSError:
            return {}
        return counts


def run_client(cmd: List[str], server: Server, timeout: float, log, use_perf: bool = False) -> Dict[str, Any]:
    """Run one client process; returns its RESULT plus the CPU shares over its measured part
    (and, with perf, per-second counts of CPU time, context switches and system calls)."""
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=BENCH)
    marks: Dict[str, tuple] = {}
    result: Optional[Dict[str, Any]] = None
    perf: Optional[PerfAttach] = None
    counts: Dict[str, float] = {}
    assert proc.stdout is not None
    import threading

    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("MARK "):
                marks[line[5:]] = (time.monotonic(), server.cpu(), proc_cpu_seconds(proc.pid))
                if line == "MARK start" and use_perf:
                    perf = PerfAttach(proc.pid)
                elif line == "MARK end" and perf is not None:
                    counts = perf.stop()
                    perf = None
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        proc.wait()
    finally:
        killer.cancel()
        if perf is not None:
            perf.stop()
    stderr = proc.stderr.read() if proc.stderr else ""
    log.write(f"$ {' '.join(cmd)}\n  rc={proc.returncode} {time.monotonic() - t_start:.2f}s\n")
    if stderr.strip():
        log.write("  stderr: " + stderr.strip()[-2000:].replace("\n", "\n  ") + "\n")
    if result is None:
        why = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {proc.returncode}"
        if time.monotonic() - t_start >= timeout:
            why = f"timed out after {timeout:.0f}s"
        return {"error": why}
    if "start" in marks and "end" in marks:
        (t0, s0, c0), (t1, s1, c1) = marks["start"], marks["end"]
        wall = t1 - t0
        if wall > 0 and s0 is not None and s1 is not None:
            result["server_cpu"] = (s1 - s0) / wall
        if wall > 0 and c0 is not None and c1 is not None:
            result["client_cpu"] = (c1 - c0) / wall
        result["wall"] = wall
    rate = result.get("rate")
    if rate and "client_cpu" in result:
        # CPU time of the whole client process (all threads) per completed message.
        result["cpu_us_per_msg"] = result["client_cpu"] / rate * 1e6
    if counts.get("perf_wall") and rate:
        # Per message: (count per second during the window) / (messages per second).
        w = counts["perf_wall"]
        if "perf_syscalls" in counts:
            result["syscalls_per_msg"] = counts["perf_syscalls"] / w / rate
        if "perf_ctxsw" in counts:
            result["ctxsw_per_msg"] = counts["perf_ctxsw"] / w / rate
    log.write(f"  {json.dumps(result)}\n")
    return result


# ------------------------------------------------------------------ machine description


def sh(cmd: List[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> Dict[str, Any]:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    lock = (BENCH / "Cargo.lock").read_text() if (BENCH / "Cargo.lock").exists() else ""

    def locked(name: str) -> str:
        m = re.search(r'name = "%s"\nversion = "([^"]+)"' % re.escape(name), lock)
        return m.group(1) if m else "?"

    pyver = sh([str(VENV_PY), "-c", "import sys; print(sys.version.split()[0])"])
    pkgs = sh([str(VENV_PY), "-c",
               "import importlib.metadata as m\n"
               "for p in ['tether-ws','picows','websockets','websocket-client','aiohttp','matplotlib']:\n"
               "    try: print(p, m.version(p))\n"
               "    except Exception: print(p, '-')"])
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(),
        "rustc": sh(["rustc", "--version"]),
        "cc": sh(["cc", "--version"]).splitlines()[0] if sh(["cc", "--version"]) else "",
        "python": pyver,
        "tokio-tungstenite": locked("tokio-tungstenite"),
        "tokio": locked("tokio"),
        "fastwebsockets": locked("fastwebsockets"),
        "libwebsockets": sh(["pkg-config", "--modversion", "libwebsockets"]).rstrip("-") or "?",
        "boost": _boost_version(),
        "python_packages": dict(l.split(" ", 1) for l in pkgs.splitlines() if " " in l),
        "git": sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
    }


def _boost_version() -> str:
    """Boost's version from its header (BOOST_LIB_VERSION "1_74"), or "?"."""
    try:
        text = Path("/usr/include/boost/version.hpp").read_text()
    except OSError:
        return "?"
    m = re.search(r'#define BOOST_LIB_VERSION "([^"]+)"', text)
    return m.group(1).replace("_", ".") if m else "?"


def load_note() -> str:
    try:
        la = open("/proc/loadavg").read().split()[:3]
    except OSError:
        return "?"
    return f"{la[0]} / {la[1]} / {la[2]} (1 / 5 / 15 min)"


def busy_processes() -> List[str]:
    """Other processes using CPU right now (what makes the figures noisy)."""
    out = sh(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"])
    rows = []
    for line in out.splitlines()[:8]:
        parts = line.split(None, 1)
        if len(parts) == 2:
            try:
                if float(parts[0]) >= 10:
                    rows.append(f"{parts[1]} {parts[0]}%")
            except ValueError:
                pass
    return rows


# ------------------------------------------------------------------ statistics


def med(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_num(x: float, digits: int = 0) -> str:
    if x != x:  # nan
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_spread(xs: List[float], digits: int = 0, scale: float = 1.0) -> str:
    """median [min–max]"""
    if not xs:
        return "–"
    xs = [x * scale for x in xs]
    if len(xs) == 1:
        return fmt_num(xs[0], digits)
    return f"{fmt_num(med(xs), digits)} [{fmt_num(min(xs), digits)}–{fmt_num(max(xs), digits)}]"


def fmt_ratio(xs: List[float]) -> str:
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{med(xs):.3f} [{min(xs):.3f}–{max(xs):.3f}]"


def pct(xs: List[float]) -> str:
    """Median (max) share of one core; a dagger once the server came near saturation."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    flag = " †" if max(xs) >= 0.8 else ""
    return (f"{med(xs) * 100:.0f}% (max {max(xs) * 100:.0f}%){flag}" if len(xs) > 1
            else f"{xs[0] * 100:.0f}%{flag}")


# ------------------------------------------------------------------ (g) tether.server


G_TITLE = "(g) tether.server: acked messages/s per instance"


def run_server_bench(args: argparse.Namespace, log: Any) -> Dict[str, Any]:
    """bench/server_bench.py with the run's sizes: its JSON result (with its Markdown table
    under "table"), or {"error": why}; with the load average around it."""
    quick = bool(args.quick)
    runs = args.runs or (1 if quick else 3)
    duration = args.duration or (1.0 if quick else 5.0)
    warmup = 0.3 if quick else 1.0
    started = dict(date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), load_start=load_note(),
                   busy_start=busy_processes(), quick=quick)
    why = python_has("tether.server")() or python_has("redis")()
    if why is None and not shutil.which("redis-server"):
        why = "redis-server not installed (make bench installs it)"
    if why is not None:
        print(f"bench: skipping (g): {why}")
        return dict(started, error=why)
    out = OUT / "server.json"
    out.unlink(missing_ok=True)
    cmd = [str(VENV_PY), str(SERVER_BENCH), "--runs", str(runs), "--duration", str(duration),
           "--warmup", str(warmup), "--json", str(out)]
    # Per run: client spawn allowance (5 s), warm-up, measured part, teardown; 3 servers.
    timeout = 3 * runs * (duration + warmup + 30) + 60
    print(f"bench: (g) tether.server, {runs} run(s) of {duration:g} s per server", flush=True)
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
        rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, stdout, stderr = -1, str(e.stdout or ""), f"timed out after {timeout:.0f}s"
    log.write(f"$ {' '.join(cmd)}\n  rc={rc} {time.monotonic() - t0:.2f}s\n")
    if stderr.strip():
        log.write("  stderr: " + stderr.strip()[-2000:].replace("\n", "\n  ") + "\n")
    res: Dict[str, Any] = dict(started, load_end=load_note(), busy_end=busy_processes())
    if rc != 0 or not out.exists():
        lines = stderr.strip().splitlines()
        res["error"] = lines[-1] if lines else f"exit code {rc}"
        print(f"  (g) failed: {res['error']}", flush=True)
        return res
    res.update(json.loads(out.read_text()))
    print("\n".join("  " + line for line in stdout.strip().splitlines()), flush=True)
    return res


def server_section(res: Dict[str, Any]) -> str:
    """Section (g) of RESULTS.md from run_server_bench's result."""
    L = [f"## {G_TITLE}\n",
         "One `tether.server` process (`python -m tether.server.app`, the durable echo app: "
         "every message is recorded in the store's transaction with its de-dup mark and echoed "
         "as a new server message committed with it), with the memory store and with Redis (a "
         "local Debian `redis-server`, append-only file, `appendfsync everysec`). The clients "
         "are Tether Python clients in envelope mode, one process and connection each, each "
         "pipelining a window of messages; a message counts once its receipt is *acked*. "
         "Beside them, the raw-mode figure: the same Python server stack (a `websockets` "
         "asyncio server in its own process, tether.server's settings) echoing every frame "
         "with no envelope, no store and no acks, driven by the same clients in raw mode with "
         "the same window; there a message counts once its echo came back. The server "
         "process is meant to be the bottleneck (one Python process, one core); its CPU share "
         "and CPU time per message are beside each figure. From `bench/server_bench.py` "
         "(method in its header); not pinned.\n"]
    load = f"load average {res['load_start']} at the start"
    if "load_end" in res:
        load += f", {res['load_end']} at the end"
    busy = ", ".join(res.get("busy_start") or []) or "none"
    L.append(f"Measured on {res['date']}{' (quick)' if res.get('quick') else ''}; {load}; "
             f"other busy processes at the start: {busy}.\n")
    if "error" in res:
        L.append(f"Not measured: {res['error']}.\n")
    else:
        L.append(res["table"] + "\n")
    return "\n".join(L)


def replace_server_section(text: str, section: str) -> str:
    """``text`` (a RESULTS.md) with its section (g) replaced by ``section``, or ``section``
    inserted before "## Targets" (at the end if there is none)."""
    head = f"## {G_TITLE}"
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        end = len(text) if nxt < 0 else nxt + 1
        return text[:start] + section + "\n" + text[end:].lstrip("\n")
    at = text.find("## Targets")
    if at < 0:
        return text.rstrip("\n") + "\n\n" + section
    return text[:at] + section + "\n" + text[at:]


def only_server(args: argparse.Namespace) -> None:
    """--only server: measure (g) and splice it into the existing report."""
    OUT.mkdir(exist_ok=True)
    with open(OUT / "run.log", "a", buffering=1) as log:
        res = run_server_bench(args, log)
    results = Path(args.results)
    text = results.read_text() if results.exists() else "# Tether benchmark results\n\n"
    results.write_text(replace_server_section(text, server_section(res)))
    saved = OUT / "results.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        data["server"] = res
        saved.write_text(json.dumps(data, indent=1))
    print(f"bench: replaced section (g) of {_rel(results)}")
    if "error" in res:
        raise SystemExit(f"bench: (g) not measured: {res['error']}")


# ------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, short phases (smoke test)")
    ap.add_argument("--runs", type=int, help="runs per figure (default 5; quick 1)")
    ap.add_argument("--duration", type=float, help="measured seconds per phase (default 2; quick 0.5)")
    ap.add_argument("--clients", help="comma-separated client keys (default: all available)")
    ap.add_argument("--workloads", default="a,b,c,d,e,f,g",
                    help="comma-separated from a,b,c,d,e (idle),f (free),g (tether.server) "
                         "(default: all)")
    ap.add_argument("--idle-conns", help="idle connection counts (default 1000,10000)")
    ap.add_argument("--pin", choices=["auto", "yes", "no"], default="auto",
                    help="pin server to CPU 0 and clients to CPU 1: auto (default) only when both CPUs are free")
    ap.add_argument("--no-perf", action="store_true",
                    help="do not attach `perf stat` (CPU time, syscalls, context switches per message)")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: rewrite the report and chart from a results.json")
    ap.add_argument("--only", choices=["server"],
                    help="server: only (g), replacing that section of the existing RESULTS.md")
    ap.add_argument("--results", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--chart", default=str(BENCH / "results.png"))
    args = ap.parse_args()

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        keys = data["meta"]["clients"]
        report = Report(data, [BY_KEY[k] for k in keys])
        Path(args.results).write_text(report.markdown())
        report.chart(Path(args.chart))
        print(f"bench: wrote {args.results} and {args.chart} from {args.from_json}")
        print(report.summary())
        return

    if args.only == "server":
        only_server(args)
        return

    runs = args.runs or (1 if args.quick else 5)
    duration = args.duration or (0.5 if args.quick else 2.0)
    warmup = 0.1 if args.quick else 0.3
    wanted = set(args.workloads.split(","))
    idle_counts = [int(x) for x in (args.idle_conns or "1000,10000").split(",")]
    free_iters = 10 if args.quick else 30
    OUT.mkdir(exist_ok=True)
    log = open(OUT / "run.log", "w", buffering=1)

    # Clients: what is there.
    keys = args.clients.split(",") if args.clients else [c.key for c in CLIENTS]
    clients: List[ClientSpec] = []
    missing: Dict[str, str] = {}
    for k in keys:
        spec = BY_KEY.get(k)
        if spec is None:
            raise SystemExit(f"unknown client {k}; known: {', '.join(BY_KEY)}")
        why = spec.available()
        if why:
            missing[spec.label] = why
        else:
            clients.append(spec)
    if "raw" not in [c.key for c in clients]:
        raise SystemExit("the raw tokio-tungstenite client is needed: every ratio is against it")

    pin = pinning(args.pin)
    use_perf = not args.no_perf and perf_usable()
    load_start = load_note()
    busy_start = busy_processes()
    info = machine()
    nofile = _nofile()
    print(f"bench: {len(clients)} clients, {runs} run(s) of {duration}s per figure; {pin.note}")
    print(f"bench: load average at start {load_start}; open-file limit {nofile}")
    for label, why in missing.items():
        print(f"bench: skipping {label}: {why}")

    server = Server(pin)
    print(f"bench: server on {server.url} (pid {server.proc.pid})")
    data: Dict[str, Any] = {"runs": [], "idle": [], "poll": [], "free": []}
    t_begin = time.monotonic()

    def timed(extra: List[str]) -> List[str]:
        return extra + ["--url", server.url, "--duration", str(duration), "--warmup", str(warmup)]

    # (a)-(d): every run goes through every workload and client; the client order rotates
    # from run to run so that no client always runs first or last.
    try:
        for r in range(runs):
            order = clients[r % len(clients):] + clients[:r % len(clients)]
            for wk in "abcd":
                if wk not in wanted:
                    continue
                w = WORKLOADS[wk]
                for spec in order:
                    if wk not in spec.workloads:
                        continue
                    cmd = pin.client + spec.cmd() + timed(w.args)
                    res = run_client(cmd, server, timeout=duration * 3 + 60, log=log,
                                     use_perf=use_perf)
                    res.update(run=r, workload=wk, client=spec.key)
                    data["runs"].append(res)
                    status = res.get("error") or _short(wk, res)
                    print(f"  run {r + 1}/{runs} ({wk}) {spec.label:26s} {status}", flush=True)

        rust_c = [c for c in clients if "e" in c.extra]
        if "e" in wanted:
            limit = nofile - 200
            for n in idle_counts:
                conns = min(n, limit)
                for r in range(min(runs, 3)):
                    for spec in rust_c:
                        cmd = pin.client + spec.cmd() + ["--url", server.url, "--workload", "idle",
                                                         "--conns", str(conns)]
                        res = run_client(cmd, server, timeout=300, log=log)
                        res.update(run=r, client=spec.key, requested=n, server_rss_kib=server.rss_kib())
                        data["idle"].append(res)
                        status = res.get("error") or f"{res['rss_per_conn_kib']:.1f} KiB/conn, connected in {res['connect_seconds']:.2f}s"
                        print(f"  idle {conns} ({r + 1}) {spec.label:26s} {status}", flush=True)
                    time.sleep(1.0)  # let the server drop the last batch of connections
            for r in range(min(runs, 3)):
                for spec in clients:
                    if spec.key not in POLL_COST:
                        continue
                    cmd = pin.client + spec.cmd() + ["--url", server.url, "--workload", "poll",
                                                     "--iters", "2000000" if args.quick else "10000000"]
                    res = run_client(cmd, server, timeout=120, log=log)
                    res.update(run=r, client=spec.key)
                    data["poll"].append(res)
                    status = res.get("error") or f"{res['poll_ns']:.1f} ns per idle poll"
                    print(f"  poll ({r + 1}) {spec.label:26s} {status}", flush=True)
        if "f" in wanted:
            for r in range(min(runs, 3)):
                for spec in clients:
                    if "f" not in spec.extra:
                        continue
                    cmd = pin.client + spec.cmd() + ["--url", server.url, "--workload", "free",
                                                     "--iters", str(free_iters)]
                    res = run_client(cmd, server, timeout=120, log=log)
                    res.update(run=r, client=spec.key)
                    data["free"].append(res)
                    status = res.get("error") or f"p50 {res['free_p50_us']:.0f} µs, max {res['free_max_us']:.0f} µs"
                    print(f"  free ({r + 1}) {spec.label:26s} {status}", flush=True)
    finally:
        server.stop()
    if "g" in wanted:
        # Last, on its own: it starts its own servers (and redis-server).
        data["server"] = run_server_bench(args, log)

    elapsed = time.monotonic() - t_begin
    data["meta"] = dict(
        machine=info, pinning=pin.note, runs=runs, duration=duration, warmup=warmup,
        load_start=load_start, load_end=load_note(), busy_start=busy_start,
        busy_end=busy_processes(), elapsed_s=elapsed, quick=args.quick, missing=missing,
        nofile=nofile, perf=use_perf, date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        clients=[c.key for c in clients],
    )
    (OUT / "results.json").write_text(json.dumps(data, indent=1))
    report = Report(data, clients)
    Path(args.results).write_text(report.markdown())
    print(f"bench: wrote {_rel(Path(args.results))} and {_rel(OUT / 'results.json')} in {elapsed:.0f}s")
    try:
        report.chart(Path(args.chart))
        print(f"bench: wrote {_rel(Path(args.chart))}")
    except ImportError as e:
        print(f"bench: no chart ({e}); run with bench/.venv/bin/python")
    print(report.summary())


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _short(wk: str, res: Dict[str, Any]) -> str:
    cpu = f"server CPU {res['server_cpu'] * 100:.0f}%" if "server_cpu" in res else ""
    if wk == "a":
        return f"{res['rate']:>11,.0f} rt/s  p50 {res['p50_us']:.1f} µs  p99 {res['p99_us']:.1f} µs  {cpu}"
    if wk == "c":
        return f"{res['mbps']:>11,.1f} MB/s  {cpu}"
    return f"{res['rate']:>11,.0f} msg/s  {cpu}"


# ------------------------------------------------------------------ report


class Report:
    def __init__(self, data: Dict[str, Any], clients: List[ClientSpec]) -> None:
        self.d = data
        self.meta = data["meta"]
        self.clients = clients
        self.runs = self.meta["runs"]

    # per (workload, client): list over runs of a metric
    def values(self, wk: str, key: str, metric: str) -> List[float]:
        return [r[metric] for r in self.d["runs"]
                if r["workload"] == wk and r["client"] == key and "error" not in r and metric in r]

    def errors(self, wk: str, key: str) -> List[str]:
        return [r["error"] for r in self.d["runs"]
                if r["workload"] == wk and r["client"] == key and "error" in r]

    def ratios(self, wk: str, key: str, metric: str, inverse: bool = False,
               base_wk: Optional[str] = None, base_key: str = "raw") -> List[float]:
        """metric(client) / metric(base) within each run."""
        out = []
        for r in range(self.runs):
            a = [x[metric] for x in self.d["runs"] if x["run"] == r and x["workload"] == wk
                 and x["client"] == key and "error" not in x]
            b = [x[metric] for x in self.d["runs"] if x["run"] == r
                 and x["workload"] == (base_wk or wk) and x["client"] == base_key and "error" not in x]
            if a and b and a[0] and b[0]:
                out.append(b[0] / a[0] if inverse else a[0] / b[0])
        return out

    def main_metric(self, wk: str) -> str:
        return "mbps" if wk == "c" else "rate"

    def markdown(self) -> str:
        m = self.meta
        mi = m["machine"]
        L: List[str] = []
        L.append("# Tether benchmark results\n")
        L.append(f"Generated by `bench/run.sh{' --quick' if m['quick'] else ''}` on {m['date']} "
                 f"({m['elapsed_s']:.0f} s). Method and how to read this: "
                 "[docs/BENCHMARKS.md](../docs/BENCHMARKS.md).\n")
        L.append("## Machine and load\n")
        L.append(f"- CPU: {mi['cpu']}, {mi['nproc']} logical CPUs; {mi['memory_gib']} GiB; Linux {mi['kernel']}")
        L.append(f"- Pinning: {m['pinning']}")
        L.append(f"- Load average: {m['load_start']} at the start, {m['load_end']} at the end")
        if m["busy_start"] or m["busy_end"]:
            L.append(f"- Other busy processes at the start: {', '.join(m['busy_start']) or 'none'}; "
                     f"at the end: {', '.join(m['busy_end']) or 'none'}")
        noisy = float(m["load_start"].split()[0]) > 1.5 or float(m["load_end"].split()[0]) > 1.5
        if noisy:
            L.append("- **The machine was busy with other work during this run: the figures are "
                     "noisy (load above 1.5 on 2 cores). Ratios within one run are more "
                     "trustworthy than absolute numbers.**")
        L.append(f"- Runs: {self.runs} per figure, {m['duration']} s measured per phase after "
                 f"{m['warmup']} s warm-up; each cell is the median [min–max] over runs; each "
                 "ratio is computed within a run, then the median is taken")
        L.append(f"- Versions: {mi['rustc']}; tokio-tungstenite {mi['tokio-tungstenite']}, tokio "
                 f"{mi['tokio']}, fastwebsockets {mi.get('fastwebsockets', '?')}; libwebsockets "
                 f"{mi.get('libwebsockets', '?')}, Boost.Beast (Boost {mi.get('boost', '?')}); "
                 f"{mi['cc']}; Python {mi['python']}; "
                 + ", ".join(f"{k} {v}" for k, v in mi["python_packages"].items())
                 + f"; tether at `{mi['git']}`")
        if m["missing"]:
            L.append("- Not measured: " + "; ".join(f"{k} ({v})" for k, v in m["missing"].items()))
        L.append("")

        L.append("Columns: the figure (median [min–max] over runs) and its ratio to the raw "
                 "tokio-tungstenite client in the same run (higher is better); then the client "
                 "process's cost per message (per round trip in (a)), which depends much less on "
                 "how busy the machine is: CPU time of all its threads (from /proc, utime+stime) "
                 "and its ratio to raw (lower is better), system calls and context switches "
                 "(`perf stat` attached for the measured part); last, the server's CPU share "
                 "during the measured part (the server is the bottleneck only near 100%; † marks a "
                 "run where it reached 80%: that figure may be limited by the server).\n")
        for wk in "abc":
            if not any(r["workload"] == wk for r in self.d["runs"]):
                continue
            w = WORKLOADS[wk]
            L.append(f"## {w.title}\n")
            metric = self.main_metric(wk)
            unit = {"a": "round trips/s", "b": "messages/s", "c": "MB/s"}[wk]
            extra = " p50 RTT µs | p99 RTT µs |" if wk == "a" else ""
            L.append(f"| client | {unit} | ratio vs raw |{extra} CPU µs/msg | CPU vs raw | syscalls/msg | ctx switches/msg | server CPU |")
            L.append("|---|---:|---:|" + ("---:|---:|" if wk == "a" else "") + "---:|---:|---:|---:|---:|")
            for spec in self.clients:
                if wk not in spec.workloads:
                    continue
                vals = self.values(wk, spec.key, metric)
                errs = self.errors(wk, spec.key)
                if not vals:
                    L.append(f"| {spec.label} | failed: {errs[0] if errs else 'no result'} |")
                    continue
                ratio = "1" if spec.key == "raw" else fmt_ratio(self.ratios(wk, spec.key, metric))
                cpu_ratio = "1" if spec.key == "raw" else fmt_ratio(self.ratios(wk, spec.key, "cpu_us_per_msg"))
                note = f" ({len(errs)} failed)" if errs else ""
                cells = [f"{spec.label}{note}", fmt_spread(vals, 1 if wk == "c" else 0), ratio]
                if wk == "a":
                    cells += [fmt_spread(self.values(wk, spec.key, "p50_us"), 1),
                              fmt_spread(self.values(wk, spec.key, "p99_us"), 1)]
                digits = 1 if wk in "ac" else 2
                cells += [fmt_spread(self.values(wk, spec.key, "cpu_us_per_msg"), digits), cpu_ratio,
                          fmt_spread(self.values(wk, spec.key, "syscalls_per_msg"), 2),
                          fmt_spread(self.values(wk, spec.key, "ctxsw_per_msg"), 2),
                          pct(self.values(wk, spec.key, "server_cpu"))]
                L.append("| " + " | ".join(cells) + " |")
            L.append("")

        if any(r["workload"] == "d" for r in self.d["runs"]):
            L.append(f"## {WORKLOADS['d'].title}\n")
            L.append("A message counts when its echo *and* its ack have arrived; the window is on "
                     "messages not yet complete. Beside it, the same client's raw-mode figure from "
                     "(b) in the same runs.\n")
            L.append("| client | envelope messages/s | raw mode (b) messages/s | envelope / raw | envelope vs raw tokio-tungstenite (b) | CPU µs/msg envelope | CPU µs/msg raw mode (b) | server CPU |")
            L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for spec in self.clients:
                if "d" not in spec.workloads:
                    continue
                vals = self.values("d", spec.key, "rate")
                if not vals:
                    errs = self.errors("d", spec.key)
                    L.append(f"| {spec.label} | failed: {errs[0] if errs else 'no result'} | | | | |")
                    continue
                L.append(f"| {spec.label} | {fmt_spread(vals)} | {fmt_spread(self.values('b', spec.key, 'rate'))} | "
                         f"{fmt_ratio(self.ratios('d', spec.key, 'rate', base_wk='b', base_key=spec.key))} | "
                         f"{fmt_ratio(self.ratios('d', spec.key, 'rate', base_wk='b'))} | "
                         f"{fmt_spread(self.values('d', spec.key, 'cpu_us_per_msg'), 2)} | "
                         f"{fmt_spread(self.values('b', spec.key, 'cpu_us_per_msg'), 2)} | "
                         f"{pct(self.values('d', spec.key, 'server_cpu'))} |")
            L.append("")

        if self.d["idle"]:
            L.append("## (e) idle connections: memory\n")
            L.append("One process holds N connected, idle clients (all Ready, events drained); "
                     "RSS growth divided by N.\n")
            L.append("| client | connections | KiB per connection | ratio vs raw | process RSS MiB | connect time s |")
            L.append("|---|---:|---:|---:|---:|---:|")
            for n in sorted({x["requested"] for x in self.d["idle"]}):
                for spec in self.clients:
                    rows = [x for x in self.d["idle"] if x["client"] == spec.key and x["requested"] == n]
                    if not rows:
                        continue
                    ok = [x for x in rows if "error" not in x]
                    if not ok:
                        L.append(f"| {spec.label} | {n:,} | failed: {rows[0]['error']} | | | |")
                        continue
                    conns = ok[0]["conns"]
                    raw = {x["run"]: x["rss_per_conn_kib"] for x in self.d["idle"]
                           if x["client"] == "raw" and x["requested"] == n and "error" not in x}
                    rat = [x["rss_per_conn_kib"] / raw[x["run"]] for x in ok if raw.get(x["run"])]
                    shown = f"{conns:,}" + ("" if conns == n else f" (of {n:,}: fd limit)")
                    L.append(f"| {spec.label} | {shown} | {fmt_spread([x['rss_per_conn_kib'] for x in ok], 1)} | "
                             f"{'1' if spec.key == 'raw' else fmt_ratio(rat)} | "
                             f"{fmt_spread([x['rss_after_kib'] for x in ok], 1, 1 / 1024)} | "
                             f"{fmt_spread([x['connect_seconds'] for x in ok], 2)} |")
            L.append("")
        if self.d["poll"]:
            L.append("## (e) cost of an idle poll\n")
            L.append("A connected client with nothing pending, polled in a loop (median of 5 batches per run).\n")
            L.append("| call | ns per call |")
            L.append("|---|---:|")
            for key, name in POLL_COST.items():
                vals = [x["poll_ns"] for x in self.d["poll"] if x["client"] == key and "error" not in x]
                if vals:
                    L.append(f"| {name} | {fmt_spread(vals, 1)} |")
            L.append("")
        if self.d["free"]:
            L.append("## (f) closing a live connection\n")
            L.append("A connected, idle, Ready client is closed and released; time of the one call "
                     "(close handshake with the server included). The raw row is "
                     "`close()` + reading to the end of the stream; the peers' rows are their "
                     "own close handshake.\n")
            L.append("| call | p50 µs | p90 µs | max µs |")
            L.append("|---|---:|---:|---:|")
            names = {"raw": "tokio-tungstenite `close` + drain", "tether-rust": "`Client::shutdown` (poll mode)",
                     "tether-rust-cb": "`Client::shutdown` (callback mode: joins the dispatcher)",
                     "tether-c-poll": "`tether_client_free` (poll mode)",
                     "tether-c-cb": "`tether_client_free` (callback mode: joins the dispatcher)",
                     "fastwebsockets": "fastwebsockets close frame + read to the server's close",
                     "libwebsockets": "libwebsockets `lws_close_reason` + `return -1` (closes once its close frame is out: does not wait for the server's)",
                     "beast": "Boost.Beast `ws.close()`"}
            for key, name in names.items():
                ok = [x for x in self.d["free"] if x["client"] == key and "error" not in x]
                if ok:
                    L.append(f"| {name} | {fmt_spread([x['free_p50_us'] for x in ok], 0)} | "
                             f"{fmt_spread([x['free_p90_us'] for x in ok], 0)} | "
                             f"{fmt_spread([x['free_max_us'] for x in ok], 0)} |")
            L.append("")
        if self.d.get("server"):
            L.append(server_section(self.d["server"]))
        L.append("## Targets\n")
        L.append("| target | measured | verdict |")
        L.append("|---|---|---|")
        for row in self.targets():
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        return "\n".join(L)

    def targets(self) -> List[List[str]]:
        rows: List[List[str]] = []

        def verdict(ok: Optional[bool]) -> str:
            return "–" if ok is None else ("met" if ok else "**missed**")

        def ratio_target(label: str, key: str, floor: float) -> None:
            for wk in "abc":
                rs = self.ratios(wk, key, self.main_metric(wk))
                if not rs:
                    continue
                cpu = self.ratios(wk, key, "cpu_us_per_msg")
                extra = f"; CPU per message {med(cpu):.2f} × raw's" if cpu else ""
                rows.append([f"{label} ≥ {floor:.2f} × raw on ({wk})", fmt_ratio(rs) + extra,
                             verdict(med(rs) >= floor)])

        for key, label in (("tether-rust", "Tether Rust (poll)"), ("tether-rust-async", "Tether Rust (async, own runtime)"),
                           ("tether-rust-caller", "Tether Rust (poll, caller I/O)")):
            if key in [c.key for c in self.clients]:
                ratio_target(label, key, 0.97)
        for key, label in (("tether-c-cb", "Tether C (callback)"), ("tether-c-poll", "Tether C (poll)"),
                           ("tether-c-caller", "Tether C (poll, caller I/O)")):
            if key in [c.key for c in self.clients]:
                ratio_target(label, key, 0.95)
        for key, label in (("tether-py-sync", "Tether Python (sync)"), ("tether-py-sync-caller", "Tether Python (sync, caller I/O)"),
                           ("tether-py-async", "Tether Python (asyncio)"),
                           ("tether-py-async-caller", "Tether Python (asyncio, caller I/O)"),
                           ("tether-py-connect-caller", "Tether Python (tether.connect, caller I/O)"),
                           ("tether-py-connect", "Tether Python (tether.connect)")):
            for other, factor in (("picows", 2.0), ("websockets", 10.0)):
                rs = self.ratios("b", key, "rate", base_key=other)
                if rs:
                    cpu = self.ratios("b", key, "cpu_us_per_msg", inverse=True, base_key=other)
                    extra = f"; {other} uses {med(cpu):.2f} × its CPU per message" if cpu else ""
                    rows.append([f"{label} ≥ {factor:g} × {other} on (b)", fmt_ratio(rs) + " ×" + extra,
                                 verdict(med(rs) >= factor)])
        # Request/response from Python: at least picows' round trips/s (issue 14, target (a)).
        for key, label in (("tether-py-sync", "Tether Python (sync)"),
                           ("tether-py-sync-caller", "Tether Python (sync, caller I/O)"),
                           ("tether-py-async", "Tether Python (asyncio)"),
                           ("tether-py-async-caller", "Tether Python (asyncio, caller I/O)"),
                           ("tether-py-connect-caller", "Tether Python (tether.connect, caller I/O)")):
            rs = self.ratios("a", key, "rate", base_key="picows")
            if rs:
                rows.append([f"{label} ≥ 1 × picows on (a)", fmt_ratio(rs) + " ×",
                             verdict(med(rs) >= 1.0)])
        # The C API against the C and C++ peers on (b): ahead of each (ratio ≥ 1).
        for key, label in (("tether-c-cb", "Tether C (callback)"), ("tether-c-poll", "Tether C (poll)"),
                           ("tether-c-caller", "Tether C (poll, caller I/O)")):
            for other, name in (("libwebsockets", "libwebsockets"), ("beast", "Boost.Beast")):
                rs = self.ratios("b", key, "rate", base_key=other)
                if rs:
                    cpu = self.ratios("b", key, "cpu_us_per_msg", inverse=True, base_key=other)
                    extra = f"; {name} uses {med(cpu):.2f} × its CPU per message" if cpu else ""
                    rows.append([f"{label} ahead of {name} on (b)", fmt_ratio(rs) + " ×" + extra,
                                 verdict(med(rs) >= 1.0)])
        for key, name in POLL_COST.items():
            vals = [x["poll_ns"] for x in self.d["poll"] if x["client"] == key and "error" not in x]
            if vals:
                rows.append([f"idle {name} < 100 ns", f"{med(vals):.1f} ns", verdict(med(vals) < 100)])
        for key, name in (("tether-c-poll", "`tether_client_free` (poll)"), ("tether-c-cb", "`tether_client_free` (callback)"),
                          ("tether-rust", "`Client::shutdown` (poll)")):
            ok = [x for x in self.d["free"] if x["client"] == key and "error" not in x]
            if ok:
                p50 = med([x["free_p50_us"] for x in ok])
                mx = max(x["free_max_us"] for x in ok)
                rows.append([f"{name} < 1 ms", f"p50 {p50:.0f} µs, max {mx:.0f} µs",
                             verdict(p50 < 1000) + ("" if mx < 1000 else " (p50; max over)")])
        for key, name in (("tether-rust", "Tether Rust"), ("tether-c-poll", "Tether C")):
            for n in sorted({x["requested"] for x in self.d["idle"]}):
                ok = [x for x in self.d["idle"] if x["client"] == key and x["requested"] == n and "error" not in x]
                if ok:
                    v = med([x["rss_per_conn_kib"] for x in ok])
                    rows.append([f"{name}: < 64 KiB RSS per idle connection ({n:,})", f"{v:.1f} KiB",
                                 verdict(v < 64)])
        return rows

    def summary(self) -> str:
        lines = ["", "Targets:"]
        for row in self.targets():
            lines.append(f"  {row[2]:12s} {row[0]}: {row[1]}")
        return "\n".join(lines)

    def chart(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels: List[Any] = [(wk, WORKLOADS[wk]) for wk in "abcd" if any(r["workload"] == wk for r in self.d["runs"])]
        if not panels:
            return
        if any(r["workload"] == "b" and "cpu_us_per_msg" in r for r in self.d["runs"]):
            panels.append(("b-cpu", Workload("b-cpu", "(b) client CPU time per message, all threads — lower is better",
                                             "µs per message", [])))
        colors = {"rust": "#d35400", "c": "#2874a6", "cpp": "#7d3c98", "python-tether": "#229954",
                  "python-other": "#7f8c8d"}
        fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels) + 0.8))
        if len(panels) == 1:
            axes = [axes]
        for ax, (wk, w) in zip(axes, panels):
            metric = self.main_metric(wk)
            if wk == "b-cpu":
                wk, metric = "b", "cpu_us_per_msg"
            labels, vals, lo, hi, cols = [], [], [], [], []
            for spec in self.clients:
                if wk not in spec.workloads:
                    continue
                v = self.values(wk, spec.key, metric)
                if not v:
                    continue
                labels.append(spec.label)
                vals.append(med(v))
                lo.append(med(v) - min(v))
                hi.append(max(v) - med(v))
                cols.append(colors[spec.group])
            if wk == "d" and metric == "rate":
                # Show the raw-mode (b) figure of the same clients beside it.
                for spec in self.clients:
                    if "d" in spec.workloads and self.values("b", spec.key, "rate"):
                        v = self.values("b", spec.key, "rate")
                        labels.append(spec.label + " — raw mode (b)")
                        vals.append(med(v))
                        lo.append(med(v) - min(v))
                        hi.append(max(v) - med(v))
                        cols.append("#d5d8dc")
            y = list(range(len(labels)))[::-1]
            ax.barh(y, vals, xerr=[lo, hi], color=cols, capsize=2)
            ax.set_yticks(y)
            ax.set_yticklabels(labels, fontsize=8)
            ax.set_title(f"{w.title} — {w.unit} (bars: median, whiskers: min–max)", fontsize=9)
            for yi, v, h in zip(y, vals, hi):
                ax.text(v + h, yi, f" {v:,.0f}" if v >= 100 else (f" {v:,.1f}" if v >= 10 else f" {v:,.2f}"),
                        va="center", fontsize=7)
            ax.grid(axis="x", which="both", alpha=0.3)
        m = self.meta
        fig.suptitle(f"Tether vs tokio-tungstenite, Rust/C/C++ peers and Python clients, same server, same run\n"
                     f"{m['runs']} run(s); load average {m['load_start'].split()[0]} at the start; {m['pinning']}",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
