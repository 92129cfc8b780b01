"""Fixtures: test servers in subprocesses, always cleaned up.

* ``peer``: the Rust test peer ``tether-peer`` (echo by default; commands close, drop, stall,
  send-text, send-invalid-utf8, send-oversized, echo, reject, stop, restart, count, open,
  pings, last-close). Built by ``python/tests/run.sh`` (``cargo build -p tether-test-peers``);
  found at ``$TETHER_PEER`` or ``<repo>/target/debug/tether-peer``.
* ``py_peer``: the Python ``websockets`` echo server ``tests/peers/python/echo_server.py``.
* ``envelope_server``: the Python reference server of the Tether protocol
  ``tests/peers/python/tether_server.py`` (acks).
* ``ref_server_factory``: a reference server by language (``"python"``, or ``"rust"``: the
  ``tether-ref-server`` binary, ``$TETHER_REF_SERVER`` or ``<repo>/target/debug/``), with extra
  arguments; ``ServerProcess.kill_and_restart`` makes it lose its state like a crash does.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / "tests" / "peers"


class ServerProcess:
    """A server in a subprocess that prints ``PORT <n>`` and then answers stdin commands."""

    def __init__(self, argv: List[str], name: str) -> None:
        self.argv = argv
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._stderr: List[str] = []
        # Joined by close() before it closes the pipes: a reader still iterating over a pipe
        # that close() shuts raises "I/O operation on closed file" in its thread, which pytest
        # then reports against whichever test runs at that moment.
        self._readers = [
            threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout"),
            threading.Thread(target=self._read_err, daemon=True, name=f"{name}-stderr"),
        ]
        for reader in self._readers:
            reader.start()
        first = self._next_line(20.0)
        m = re.fullmatch(r"PORT (\d+)", first or "")
        if not m:
            self.close()
            raise RuntimeError(f"{name} did not start: {first!r}; stderr: {''.join(self._stderr)}")
        self.port = int(m.group(1))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass  # closed under us: only if close() gave up waiting for the end of file
        self._lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                self._stderr.append(line)
        except (OSError, ValueError):
            pass

    def _next_line(self, timeout: float) -> Optional[str]:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def cmd(self, line: str, timeout: float = 15.0) -> str:
        """Send one command; return the answer (``OK ...``), raising on ``ERR``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._next_line(timeout)
        if answer is None or not answer.startswith("OK"):
            raise RuntimeError(f"{self.name}: {line!r} -> {answer!r}")
        return answer

    def wait_for(self, what: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: condition not met within {timeout}s")
            time.sleep(0.02)

    def kill_and_restart(self) -> None:
        """Lose every session state the way a crash or a deploy does: SIGKILL the process (no
        close frames, nothing saved) and start a fresh one on the same port."""
        port = self.port
        self.proc.kill()
        self.proc.wait()
        self.close()
        ServerProcess.__init__(self, self.argv + ["--port", str(port)], self.name)
        assert self.port == port, f"{self.name} restarted on port {self.port}, not {port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The process is gone: its pipes reach end of file and the readers finish.
        for reader in self._readers:
            if reader is not threading.current_thread():
                reader.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class RustPeer(ServerProcess):
    def count(self) -> "tuple[int, int]":
        _, accepted, received = self.cmd("count").split()
        return int(accepted), int(received)

    def open_connections(self) -> int:
        return int(self.cmd("open").split()[1])


def peer_binary() -> Path:
    path = Path(os.environ.get("TETHER_PEER", REPO / "target" / "debug" / "tether-peer"))
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build -p tether-test-peers --bin tether-peer` "
            "(python/tests/run.sh does)"
        )
    return path


@pytest.fixture
def peer() -> Iterator[RustPeer]:
    p = RustPeer([str(peer_binary())], "tether-peer")
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def py_peer() -> Iterator[ServerProcess]:
    p = ServerProcess([sys.executable, str(PEERS / "python" / "echo_server.py")], "echo_server.py")
    try:
        yield p
    finally:
        p.close()


ENVELOPE_SERVER = PEERS / "python" / "tether_server.py"


@pytest.fixture
def envelope_server_factory() -> Iterator[Callable[..., ServerProcess]]:
    if not ENVELOPE_SERVER.exists():
        pytest.skip(f"{ENVELOPE_SERVER} is not in this checkout")
    started: List[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        p = ServerProcess([sys.executable, str(ENVELOPE_SERVER), *args], "tether_server.py")
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.close()


@pytest.fixture
def envelope_server(envelope_server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return envelope_server_factory()


def ref_server_binary() -> Path:
    default = REPO / "target" / "debug" / "tether-ref-server"
    path = Path(os.environ.get("TETHER_REF_SERVER", default))
    if not path.exists():
        pytest.fail(
            f"{path} is missing: build it with `cargo build -p tether-test-peers --bin "
            "tether-ref-server` (python/tests/run.sh does)"
        )
    return path


@pytest.fixture
def ref_server_factory() -> Iterator[Callable[..., ServerProcess]]:
    started: List[ServerProcess] = []

    def start(kind: str, *args: str) -> ServerProcess:
        if kind == "rust":
            p = ServerProcess([str(ref_server_binary()), *args], "tether-ref-server")
        else:
            if not ENVELOPE_SERVER.exists():
                pytest.skip(f"{ENVELOPE_SERVER} is not in this checkout")
            argv = [sys.executable, str(ENVELOPE_SERVER), *args]
            p = ServerProcess(argv, "tether_server.py")
        started.append(p)
        return p

    try:
        yield start
    finally:
        for p in started:
            p.close()


def thread_names() -> List[str]:
    """Names of this process's threads (Linux: /proc/self/task)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return names


def tether_threads() -> List[str]:
    """Names of this process's dispatcher threads (one per client in callback mode)."""
    return [n for n in thread_names() if n.startswith("tether-dispatch")]


def wait_until(what: Callable[[], bool], timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(0.02)
