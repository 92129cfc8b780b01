"""Ctrl-C during blocking calls, garbage collection without close, interpreter exit."""

from __future__ import annotations

import _thread
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from typing import Callable, Iterator, List

import pytest

import tether
from conftest import REPO, RustPeer, tether_threads, wait_until


@pytest.fixture(autouse=True)
def default_sigint_handler() -> Iterator[None]:
    """Python's own Ctrl-C handler, as in a terminal. A test run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python then installs no handler: Ctrl-C
    (and ``interrupt_main``) would do nothing, whatever Tether does."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


@pytest.mark.parametrize("call", ["recv", "iterate", "wait_ready", "wait_written", "recv_many"])
def test_ctrl_c_interrupts_blocking_calls(peer: RustPeer, call: str) -> None:
    peer.cmd("echo off")
    if call in ("wait_ready", "wait_written"):
        peer.cmd("stall on")  # the upgrade never completes: never ready, nothing written
    with tether.Client(peer.url, ping_interval=None) as client:
        receipt = client.send("x")
        actions: dict[str, Callable[[], object]] = {
            "recv": lambda: client.recv(),
            "iterate": lambda: next(iter(client)),
            "wait_ready": lambda: client.wait_ready(),
            "wait_written": lambda: receipt.wait_written(),
            "recv_many": lambda: client.recv_many(),
        }
        timer = interrupt_after(0.3)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            actions[call]()
        elapsed = time.monotonic() - started
        timer.join()
        assert elapsed < 1.5, f"KeyboardInterrupt took {elapsed:.2f}s"
        peer.cmd("stall off")


CHILD = """
import signal, sys, tether
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see the fixture)
client = tether.Client(sys.argv[1])
client.wait_ready(10)
print("BLOCKING", flush=True)
for message in client:
    print("unexpected", message, flush=True)
"""


def main_thread_state(pid: int) -> str:
    """The scheduler state of process `pid`'s main thread (Linux: /proc/PID/stat, field 3)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"


def test_real_sigint_in_a_subprocess(peer: RustPeer) -> None:
    """A real SIGINT (as from Ctrl-C in a terminal) reaches a process blocked in iteration."""
    peer.cmd("echo off")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, peer.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "BLOCKING"
        # Awaited, not slept: the child's main thread is asleep (state S in /proc), i.e. in the
        # blocking wait of the iteration it enters right after printing.
        wait_until(lambda: main_thread_state(child.pid) == "S", message="child never blocked")
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "KeyboardInterrupt" in err, err
    assert elapsed < 2.0, f"exit took {elapsed:.2f}s"


def dispatch_threads() -> int:
    return len(tether_threads())


def test_gc_of_an_unclosed_client_frees_its_thread_and_connection(peer: RustPeer) -> None:
    base = dispatch_threads()
    # With a callback the client has a dispatcher thread (without, see the next test).
    client = tether.Client(peer.url, on_state=lambda e: None)
    client.wait_ready(10)
    # The dispatcher names itself when it starts running, which may be after ready.
    wait_until(lambda: dispatch_threads() == base + 1)
    assert peer.open_connections() == 1
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None
    wait_until(lambda: dispatch_threads() == base, message="dispatcher thread leaked")
    wait_until(lambda: peer.open_connections() == 0, message="connection left open")
    last = peer.cmd("last-close")
    assert last.startswith("OK 1000"), last  # a graceful close, not a dropped socket


def test_a_client_without_callbacks_has_no_dispatcher_thread(peer: RustPeer) -> None:
    """Poll mode: the thread that waits takes the events itself; GC still closes gracefully,
    even with unread messages queued."""
    base = dispatch_threads()
    client = tether.Client(peer.url, event_queue_capacity=4)
    client.wait_ready(10)
    for i in range(20):
        client.send(f"m{i}")
    assert client.recv(10) == "m0"
    # One read, four queued in the core (nobody takes them: no thread runs for this client),
    # and the core stops reading the socket.
    wait_until(lambda: client.stats().messages_received >= 5)
    assert dispatch_threads() == base
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None
    wait_until(lambda: peer.open_connections() == 0, message="connection left open")
    last = peer.cmd("last-close")
    assert last.startswith("OK 1000"), last
    assert dispatch_threads() == base


def test_gc_breaks_a_cycle_through_a_callback(peer: RustPeer) -> None:
    base = dispatch_threads()
    received: List[tether.Data] = []

    def make() -> "weakref.ref[tether.Client[tether.Data]]":
        holder: List[tether.Client[tether.Data]] = []

        def on_message(m: tether.Data) -> None:
            received.append(m)
            holder[0].stats()  # the callback refers to its own client: a cycle

        client = tether.Client(peer.url, on_message=on_message)
        holder.append(client)
        client.send("x")
        wait_until(lambda: received == ["x"])
        return weakref.ref(client)

    ref = make()
    gc.collect()
    wait_until(lambda: ref() is None and dispatch_threads() == base, message="cycle not collected")
    wait_until(lambda: peer.open_connections() == 0)


def test_gc_while_the_dispatcher_waits_for_room(peer: RustPeer) -> None:
    """A client whose reader stopped reading (queue full, dispatcher waiting) still goes away."""
    base = dispatch_threads()
    client = tether.Client(peer.url, event_queue_capacity=4)
    for i in range(100):
        client.send(f"m{i}")
    wait_until(lambda: client.stats().messages_received >= 4)
    del client
    gc.collect()
    wait_until(lambda: dispatch_threads() == base, message="dispatcher thread leaked")


def test_many_clients_created_and_dropped(peer: RustPeer) -> None:
    base = dispatch_threads()
    for _ in range(20):
        c = tether.Client(peer.url)
        c.send("x")
        del c
    gc.collect()
    wait_until(lambda: dispatch_threads() == base, timeout=20, message="dispatcher threads leaked")
    wait_until(lambda: peer.open_connections() == 0, timeout=20)


EXIT_CHILD = """
import signal, sys, tether
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (see the fixture)
received = []
a = tether.Client(sys.argv[1], on_message=received.append)
b = tether.Client(sys.argv[1])
a.wait_ready(10); b.wait_ready(10)
for i in range(1000):
    a.send(f"a{i}"); b.send(f"b{i}")
print("EXITING", flush=True)
# No close: the interpreter exits with both clients open and messages in flight.
"""


def test_interpreter_exit_with_open_clients(peer: RustPeer) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD, peer.url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    assert "EXITING" in done.stdout
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr
    assert time.monotonic() - started < 10


EXIT_STRESS_CHILD = """
import logging, sys, tether
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # keep the log thread busy
seen = []
clients = [tether.Client(sys.argv[1], on_message=seen.append, on_state=seen.append)
           for _ in range(4)]
for c in clients:
    for i in range(200):
        c.send(f"m{i}")
while len(seen) < 50:
    pass
print("EXITING", flush=True)
"""


EXIT_ASYNC_CHILD = """
import asyncio, logging, sys, tether
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
async def main():
    async with tether.AsyncClient(sys.argv[1]) as client:
        client.send("x")
        await client.recv(10)
    print("EXITING", flush=True)
asyncio.run(main())
"""


@pytest.mark.parametrize("child", [EXIT_STRESS_CHILD, EXIT_ASYNC_CHILD], ids=["sync", "asyncio"])
def test_interpreter_exit_while_callbacks_and_logs_run(peer: RustPeer, child: str) -> None:
    """Exit while dispatcher and log threads are busy taking the GIL: no crash, no hang."""
    for _ in range(6):
        done = subprocess.run(
            [sys.executable, "-c", child, peer.url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Fatal Python error" not in done.stderr, done.stderr[-3000:]
        assert "EXITING" in done.stdout


def test_import_time_and_no_threads_before_a_client() -> None:
    code = (
        "import os, tether;"
        "names=[open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')];"
        "print(sorted(n for n in names if n.startswith('tether')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
        env={**os.environ, "PYTHONPATH": str(REPO / "python" / "tests")},
    )
    assert out.returncode == 0, out.stderr
    # Only the log forwarder: no runtime, no dispatcher until a client exists.
    assert out.stdout.strip() == "['tether-log']"


FORK_CHILD = """
import os, sys, tether
parent = tether.Client(sys.argv[1])
parent.wait_ready(10)
pid = os.fork()
if pid == 0:
    try:
        tether.Client(sys.argv[1])
    except tether.TetherError as e:
        os._exit(0 if "fork" in str(e) else 2)
    os._exit(1)
_, status = os.waitpid(pid, 0)
parent.close(timeout=10)
print("CHILD", os.waitstatus_to_exitcode(status))
"""


def test_clients_refused_in_a_forked_child(peer: RustPeer) -> None:
    """The I/O threads do not survive fork(): a forked child gets a clear error, not a hang."""
    done = subprocess.run(
        [sys.executable, "-c", FORK_CHILD, peer.url], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CHILD 0", (done.stdout, done.stderr)
