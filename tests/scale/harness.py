"""Real parts for the scale-out soak and the demo's second act: one ``redis-server``, several
``tether.server`` instances with the Redis session store, HAProxy in front of them
(round-robin, health-checked), and the Rust client driver ``core/examples/scale_client.rs``.

Everything here is a real process on 127.0.0.1 with a free port; every process this module
starts is registered with a :class:`Processes` and killed (by its own pid) when that is closed,
also when a test fails. Waits are bounded and wait for an event (a ``PORT n`` line, a port that
accepts, HAProxy reporting a server UP), never for a fixed time.

Used by ``python/tests/test_scale_out.py`` and ``tests/scale/demo_act2.py``.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]


def ensure_apt_packages(executables: Dict[str, str]) -> None:
    """Install the Debian packages whose executables are missing (``{"haproxy": "haproxy"}``),
    the way tests/c/run.sh installs cmake: apt-get update, then install, only when needed."""
    missing = sorted({pkg for exe, pkg in executables.items() if shutil.which(exe) is None})
    if not missing:
        return
    sudo: List[str] = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing {' '.join(missing)} from Debian", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    for exe in executables:
        if shutil.which(exe) is None:
            raise RuntimeError(f"{exe} still missing after apt-get install {' '.join(missing)}")


def free_port() -> int:
    """A port that was free a moment ago (for configs that need the port up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: Callable[[], bool], timeout: float, message: str) -> None:
    """Polls ``what`` until true; raises after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} (not within {timeout:.0f} s)")
        time.sleep(0.02)


def accepts(port: int) -> bool:
    """Whether 127.0.0.1:port accepts a TCP connection now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Proc:
    """A child process whose stdout lines are read by a thread (and kept, for waits) and whose
    stderr goes to a file."""

    def __init__(self, argv: Sequence[str], name: str, log_dir: Path, stdin: bool = False) -> None:
        self.name = name
        self.argv = list(argv)
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            cwd=REPO,
        )
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.on_line: Optional[Callable[[str], None]] = None
        threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if self.on_line is not None:
                self.on_line(line)
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_line(self, pattern: str, timeout: float) -> "re.Match[str]":
        """The first stdout line (from here on) matching ``pattern``; raises on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no line matching {pattern!r} in {timeout:.0f} s; "
                                   f"stderr: {self.stderr_tail()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}) before {pattern!r}; "
                                   f"stderr: {self.stderr_tail()}")
            m = re.search(pattern, line)
            if m:
                return m

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; always reaps."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._close_files()

    def _close_files(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._stderr.close()


class Processes:
    """Every process of one run; :meth:`close` stops them all (newest first)."""

    def __init__(self, log_dir: Optional[Path] = None) -> None:
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="tether-scale-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._procs: List[Proc] = []

    def start(self, argv: Sequence[str], name: str, stdin: bool = False) -> Proc:
        p = Proc(argv, name, self.log_dir, stdin=stdin)
        self._procs.append(p)
        return p

    def close(self) -> None:
        for p in reversed(self._procs):
            try:
                p.stop(timeout=3.0)
            except Exception as e:  # cleanup goes on for the others
                print(f"cleanup of {p.name}: {e}", file=sys.stderr)
        self._procs.clear()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Redis:
    """A throw-away ``redis-server`` (no persistence: it is never killed; the servers are)."""

    def __init__(self, procs: Processes) -> None:
        import redis  # the pinned client, from python/requirements-dev.txt

        for _ in range(5):
            self.port = free_port()
            self.proc = procs.start(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(procs.log_dir),
                 "--loglevel", "notice"],
                f"redis-{self.port}",
            )
            try:
                self.proc.wait_line(r"Ready to accept connections", 20)
                break
            except RuntimeError:  # the port was taken after all: try another
                continue
        else:
            raise RuntimeError("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        self.client.ping()

    def lrange(self, key: str) -> List[str]:
        return [str(x) for x in self.client.lrange(key, 0, -1)]

    def server_record(self, sid: str) -> "ServerRecord":
        """What the servers committed for the session (tether.server's Redis layout,
        docs/SERVER.md): the de-dup mark, the outbound numbering, the outbound messages the
        client has not acknowledged, the delivered counter."""
        s = self.client.hgetall(f"tether:s:{sid}")
        n = self.client.hgetall(f"tether:n:{sid}")
        return ServerRecord(
            last_in=int(s.get("last_in", 0)),
            next_out=int(s.get("next_out", 1)),
            unacked_out=int(self.client.zcard(f"tether:out:{sid}")),
            delivered=int(n.get("delivered", 0)),
        )


@dataclass
class ServerRecord:
    """The server side's durable record of one session."""

    last_in: int  #: the de-dup mark: the highest client id delivered
    next_out: int  #: the id the next server message gets
    unacked_out: int  #: server messages the client has not acknowledged
    delivered: int  #: client messages delivered to the application (counter)


class Instance:
    """One ``python -m tether.server.app`` with the Redis store, on a port of its own that it
    keeps across restarts (HAProxy's config names it)."""

    def __init__(self, procs: Processes, name: str, store: str, python: str = sys.executable,
                 port: Optional[int] = None) -> None:
        self.procs = procs
        self.name = name
        self.store = store
        self.python = python
        self.port = port or free_port()
        self.starts = 0
        self.proc: Optional[Proc] = None
        self.start()

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        self.proc = self.procs.start(
            [self.python, "-m", "tether.server.app", "--host", "127.0.0.1",
             "--port", str(self.port), "--store", self.store, "--instance", self.name],
            f"{self.name}-{self.starts}",
        )
        m = self.proc.wait_line(r"^PORT (\d+)", timeout)
        if int(m.group(1)) != self.port:
            raise RuntimeError(f"{self.name} listens on {m.group(1)}, not {self.port}")

    def kill9(self) -> None:
        """kill -9: no cleanup of any kind, as in a crash."""
        assert self.proc is not None
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code. tether.server's shutdown
        is bounded by twice its close timeout (10 s), plus a margin for a loaded machine. On a
        timeout the error carries the instance's stderr, where the app prints its tasks' and
        threads' stacks when a shutdown runs long."""
        assert self.proc is not None
        self.proc.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{self.proc.name} did not exit {timeout:.0f} s after SIGTERM; "
                               f"stderr:\n{self.proc.stderr_tail(200)}") from e


class HAProxy:
    """HAProxy in TCP mode, round-robin over ``backends``, health-checked every 200 ms (one
    failed check takes a server out, one good check brings it back), with an admin socket for
    ``show stat``."""

    def __init__(self, procs: Processes, backends: Dict[str, int]) -> None:
        self.port = free_port()
        self.socket_path = procs.log_dir / "haproxy.sock"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}" for name, port in backends.items()
        )
        config = f"""\
global
    maxconn 4096
    stats socket {self.socket_path} mode 600 level admin

defaults
    mode tcp
    timeout connect 500ms
    timeout client 60s
    timeout server 60s
    timeout client-fin 5s
    timeout server-fin 5s
    # a connect refused by a dead instance that is not yet marked down goes elsewhere
    retries 3
    option redispatch 1

frontend tether
    bind 127.0.0.1:{self.port}
    default_backend instances

backend instances
    balance roundrobin
    # a killed instance's connections are gone anyway; a stopped one's close with it
    default-server check inter 200ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}
"""
        self.config_path = procs.log_dir / "haproxy.cfg"
        self.config_path.write_text(config)
        self.proc = procs.start(["haproxy", "-f", str(self.config_path), "-db"], "haproxy")
        wait_until(lambda: accepts(self.port) or not self.proc.alive(), 20,
                   "HAProxy's port accepts")
        if not self.proc.alive():
            raise RuntimeError(f"haproxy exited: {self.proc.stderr_tail()}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def servers(self) -> Dict[str, Dict[str, str]]:
        """``show stat`` rows of the backend's servers, by server name."""
        text = self.command("show stat")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        header = lines[0].lstrip("# ").split(",")
        rows: Dict[str, Dict[str, str]] = {}
        for ln in lines[1:]:
            row = dict(zip(header, ln.split(",")))
            if row.get("pxname") == "instances" and row.get("svname") not in ("BACKEND", None):
                rows[row["svname"]] = row
        return rows

    def wait_up(self, name: str, timeout: float = 20.0) -> None:
        wait_until(lambda: self.servers().get(name, {}).get("status", "").startswith("UP"),
                   timeout, f"HAProxy sees {name} UP")


def driver_binary(release: bool) -> Path:
    """Builds the Rust client driver (core/examples/scale_client.rs) and returns its path."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    argv = ["cargo", "build", "-q", "-p", "tether-core", "--example", "scale_client"]
    if release:
        argv.append("--release")
    subprocess.run(argv, check=True, cwd=REPO)
    return target / ("release" if release else "debug") / "examples" / "scale_client"


@dataclass
class Progress:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    echoes: int = 0
    link_faults: int = 0


class Driver:
    """The client driver process: reads its PROGRESS/FAULT lines as they come."""

    def __init__(self, procs: Processes, binary: Path, url: str, out: Path,
                 args: Sequence[str], on_line: Optional[Callable[[str], None]] = None) -> None:
        self.out = out
        self.progress = Progress()
        self.fault_lines: List[str] = []
        self.user_on_line = on_line
        self.proc = procs.start([str(binary), "--url", url, "--out", str(out), *args],
                                "scale_client", stdin=True)
        self.proc.on_line = self._line
        self.proc.wait_line(r"^READY \d+", 60)

    def _line(self, line: str) -> None:
        if line.startswith("PROGRESS "):
            parts = [int(x) for x in line.split()[1:]]
            self.progress = Progress(*parts)
        else:
            if line.startswith("FAULT "):
                self.fault_lines.append(line)
            if self.user_on_line is not None:
                self.user_on_line(line)

    def wait_sent(self, n: int, timeout: float) -> None:
        wait_until(lambda: self.progress.sent >= n or not self.proc.alive(), timeout,
                   f"the clients sent {n} messages")
        if not self.proc.alive() and self.progress.sent < n:
            raise RuntimeError(f"driver exited early: {self.proc.stderr_tail()}")

    def finish(self) -> None:
        self.proc.write("finish")

    def wait_done(self, timeout: float) -> Dict[str, object]:
        self.proc.wait_line(r"^DONE ", timeout)
        self.proc.wait(timeout=30)
        return json.loads(self.out.read_text())  # type: ignore[no-any-return]


def parse_seq(entry: str, sid: str) -> Optional[int]:
    prefix = sid + ":"
    if entry.startswith(prefix) and entry[len(prefix):].isdigit():
        return int(entry[len(prefix):])
    return None


def out_of_order(seqs: Sequence[int]) -> int:
    return sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a)


@dataclass
class Tally:
    """The accounting of one run, from the durable records."""

    sessions: int = 0
    messages: int = 0
    acked: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unresolved: int = 0
    resolved_twice: int = 0
    phantom: int = 0
    echo_lost: int = 0
    echo_duplicated: int = 0
    echo_out_of_order: int = 0
    echo_unacked: int = 0
    problems: List[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.problems


def account(log: Dict[str, object], redis: Redis) -> Tally:
    """Checks the client driver's log against the servers' durable records in Redis.

    Per session, client to server: every sent id acked or failed exactly once (client log); the
    effect log ``tether:app:{sid}:log`` holds exactly the acked messages (plus, at most, failed
    ones the server did get), each once, in send order; the servers' de-dup mark and delivered
    counter agree with it. Server to client: the servers numbered one message per effect (an
    echo is committed with its effect), the client acknowledged every one of them (none left
    unacknowledged in the store), and the echoes the client received are the effect log, each
    once, in order."""
    t = Tally()
    sessions = log["sessions"]
    assert isinstance(sessions, dict)
    for sid, s in sessions.items():
        t.sessions += 1
        sent = int(s["sent"])
        t.messages += sent
        acked_ids: List[int] = list(s["acked"])
        failed_ids = [int(f[0]) for f in s["failed"]]
        t.acked += len(acked_ids)
        t.failed += len(failed_ids)
        if not s["complete"]:
            t.problems.append(f"{sid}: did not complete")
        if not s["ids_match_seq"]:
            t.problems.append(f"{sid}: message ids do not follow the send order")
        if s["send_errors"]:
            t.problems.append(f"{sid}: send errors {s['send_errors'][:3]}")
        if s["foreign_echoes"]:
            t.problems.append(f"{sid}: echoes of other sessions {s['foreign_echoes'][:3]}")
        resolutions = acked_ids + failed_ids
        twice = len(resolutions) - len(set(resolutions))
        t.resolved_twice += twice
        unresolved = set(range(1, sent + 1)) - set(resolutions)
        t.unresolved += len(unresolved)
        acked_seqs = {i - 1 for i in acked_ids}
        failed_seqs = {i - 1 for i in failed_ids}

        raw = redis.lrange(f"tether:app:{sid}:log")
        effects = [parse_seq(e, sid) for e in raw]
        foreign = [e for e, q in zip(raw, effects) if q is None]
        if foreign:
            t.problems.append(f"{sid}: effect log entries of no message of this session "
                              f"{foreign[:3]}")
        seqs = [q for q in effects if q is not None]
        seen = set(seqs)
        lost = len(acked_seqs - seen)
        duplicated = len(seqs) - len(seen)
        ooo = out_of_order(seqs)
        phantom = len(seen - acked_seqs - failed_seqs)
        t.lost += lost
        t.duplicated += duplicated
        t.out_of_order += ooo
        t.phantom += phantom

        echoes: List[int] = list(s["echoes"])
        echo_lost = len(seen - set(echoes))
        echo_dup = len(echoes) - len(set(echoes))
        echo_ooo = out_of_order(echoes)
        t.echo_lost += echo_lost
        t.echo_duplicated += echo_dup
        t.echo_out_of_order += echo_ooo
        if echoes != seqs and not (echo_lost or echo_dup or echo_ooo):
            t.problems.append(f"{sid}: echoes of messages the application never recorded")
        rec = redis.server_record(sid)
        if rec.last_in != len(seqs) or rec.delivered != len(seqs):
            t.problems.append(f"{sid}: the servers' de-dup mark {rec.last_in} and delivered "
                              f"counter {rec.delivered} are not the effect log's {len(seqs)}")
        echo_numbered = rec.next_out - 1
        t.echo_unacked += rec.unacked_out
        if echo_numbered != len(seqs):
            t.problems.append(f"{sid}: the servers numbered {echo_numbered} messages for "
                              f"{len(seqs)} effects")
        for what, n in (("resolved twice", twice),
                        ("server messages the client never acknowledged", rec.unacked_out), ("unresolved", len(unresolved)),
                        ("lost", lost), ("duplicated", duplicated), ("out of order", ooo),
                        ("delivered but neither acked nor failed", phantom),
                        ("echoes lost", echo_lost), ("echoes duplicated", echo_dup),
                        ("echoes out of order", echo_ooo)):
            if n:
                t.problems.append(f"{sid}: {n} {what}")
    return t


@dataclass
class Cluster:
    """Redis, the instances and HAProxy of one run."""

    procs: Processes
    redis: Redis
    instances: List[Instance]
    haproxy: HAProxy

    @staticmethod
    def start(procs: Processes, n: int, python: str = sys.executable) -> "Cluster":
        ensure_apt_packages({"haproxy": "haproxy", "redis-server": "redis-server"})
        redis = Redis(procs)
        instances = [Instance(procs, f"i{k}", redis.url, python=python) for k in range(n)]
        haproxy = HAProxy(procs, {i.name: i.port for i in instances})
        cluster = Cluster(procs, redis, instances, haproxy)
        for i in instances:
            haproxy.wait_up(i.name)
        return cluster

    def kill_and_restart(self, rng: random.Random) -> Tuple[str, float]:
        """kill -9 of a random instance, then the same instance started again on its port.
        Returns its name and how long it was down."""
        inst = rng.choice(self.instances)
        t0 = time.monotonic()
        inst.kill9()
        inst.start()
        return inst.name, time.monotonic() - t0

    def rolling_restart(self) -> List[Tuple[str, int, float]]:
        """SIGTERM each instance in turn; each must exit cleanly and be back (HAProxy sees it UP)
        before the next one goes. Returns (name, exit code, seconds to exit) per instance."""
        codes = []
        for inst in self.instances:
            t0 = time.monotonic()
            code = inst.terminate()
            codes.append((inst.name, code, time.monotonic() - t0))
            inst.start()
            self.haproxy.wait_up(inst.name)
        return codes

    def connections_per_instance(self) -> Dict[str, int]:
        return {name: int(row.get("stot", "0") or 0)
                for name, row in self.haproxy.servers().items()}
