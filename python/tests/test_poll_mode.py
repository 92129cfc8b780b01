"""A client without callbacks has no dispatcher thread: readers take the core's events.

`recv()`, `recv_many()` and iteration read the core's queue (poll mode); `wait_ready()`,
`close()` and the receipt waits take no events (they re-check the core when it reports a
change); the event loop is woken through a socket it watches.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import tether
from conftest import RustPeer, ServerProcess, tether_threads, wait_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "min_uptime": 0.1}


def test_receipts_resolve_when_the_application_only_waits_on_them(
    envelope_server: ServerProcess,
) -> None:
    base = len(tether_threads())
    with tether.Client(envelope_server.url, protocol="envelope", **FAST) as client:
        receipts = [client.send(f"m{i}") for i in range(300)]
        for r in receipts:  # nobody calls recv(): the waits take the events
            r.wait(10)
            assert r.status == "acked"
        assert len(tether_threads()) == base
        # The echoes are all still there, in order.
        got = client.recv_many(1000, timeout=10)
        while len(got) < 300:
            got += client.recv_many(1000, timeout=10)
        assert got == [f"m{i}" for i in range(300)]


def test_wait_written_and_wait_ready_drive_without_a_reader(peer: RustPeer) -> None:
    base = len(tether_threads())
    with tether.Client(peer.url, events=[tether.Disconnected], **FAST) as client:
        receipts = [client.send(f"m{i}") for i in range(500)]
        receipts[-1].wait_written(10)
        assert all(r.status == "written" for r in receipts)
        wait_until(lambda: client.stats().messages_received == 500)  # echoed, not read
        peer.cmd("drop")
        wait_until(lambda: client.stats().reconnects >= 1)
        client.wait_ready(10)
        assert len(tether_threads()) == base
        got: List[Any] = []
        while len(got) < 501:
            got += client.recv_many(1000, timeout=10)
        messages = [m for m in got if isinstance(m, str)]
        events = [e for e in got if isinstance(e, tether.Disconnected)]
        assert messages == [f"m{i}" for i in range(500)]
        assert len(events) == 1 and events[0].will_reconnect
        assert got.index(events[0]) == 500  # in the order things happened


def test_threads_share_the_events(peer: RustPeer) -> None:
    """One thread iterates while another waits on receipts and closes: each gets its part."""
    client = tether.Client(peer.url)
    got: List[Any] = []
    failed: List[BaseException] = []

    def reader() -> None:
        try:
            for message in client:
                got.append(message)
        except BaseException as e:  # pragma: no cover - reported below
            failed.append(e)

    t = threading.Thread(target=reader)
    t.start()
    receipts = [client.send(f"m{i}") for i in range(2000)]
    receipts[-1].wait_written(10)
    client.wait_ready(10)
    wait_until(lambda: len(got) == 2000)
    client.close(timeout=10)
    t.join(10)
    assert not t.is_alive() and not failed
    assert got == [f"m{i}" for i in range(2000)]


def test_backpressure_without_a_reader_and_recovery(peer: RustPeer) -> None:
    """Nobody reads: the core holds `event_queue_capacity` messages and stops reading the
    socket; reading again takes them all, in order."""
    with tether.Client(peer.url, event_queue_capacity=16) as client:
        for i in range(200):
            client.send(f"m{i}")
        wait_until(lambda: client.stats().messages_received >= 17)
        received = client.stats().messages_received
        assert received < 200
        got = [client.recv(10) for _ in range(200)]
        assert got == [f"m{i}" for i in range(200)]


def test_sync_client_awaited_from_asyncio_needs_no_thread(peer: RustPeer) -> None:
    base = len(tether_threads())

    async def main() -> None:
        client = tether.Client(peer.url)
        assert len(tether_threads()) == base
        await client.send("x").written()
        # The loop is woken by the core's change hook: no thread of ours takes events, and
        # the awaited receipt took none: a blocking read on the same client gets the echo.
        assert len(tether_threads()) == base
        assert client.recv(10) == "x"
        async with client:
            pass
        assert client.closed

    asyncio.run(main())
    assert len(tether_threads()) == base


def registered_fds(loop: asyncio.AbstractEventLoop) -> int:
    selector: Any = getattr(loop, "_selector", None)
    return len(selector.get_map()) if selector is not None else 0


def test_the_loop_stops_watching_the_wake_socket_after_close(peer: RustPeer) -> None:
    async def unregistered(loop: asyncio.AbstractEventLoop, count: int) -> bool:
        # The Closed wake-up may still be on its way to the loop.
        for _ in range(200):
            if registered_fds(loop) == count:
                return True
            await asyncio.sleep(0.01)
        return False

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = registered_fds(loop)
        for _ in range(3):
            async with tether.AsyncClient(peer.url) as client:
                client.send("x")
                assert await client.recv(10) == "x"
                assert registered_fds(loop) == before + 1
            assert await unregistered(loop, before)
        # Closed while nothing waited: the Closed wake-up still unregisters the socket.
        client2 = tether.AsyncClient(peer.url)
        await client2.wait_ready(10)
        client2._handle.start_close(1000, "")
        wait_until(lambda: client2.closed)
        assert await unregistered(loop, before)

    asyncio.run(main())


def test_asyncio_timeouts_without_wait_for(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.AsyncClient(peer.url) as client:
            await client.wait_ready(10)
            for _ in range(3):
                try:
                    await client.recv(timeout=0.05)
                except TimeoutError as e:
                    assert str(e) == "recv() timed out after 0.05s"
                else:  # pragma: no cover
                    raise AssertionError("recv() did not time out")
            # A timed-out wait leaves nothing behind: the next message is the next one.
            client.send("after")
            assert await client.recv(timeout=10) == "after"
            # The timer of a wait that succeeded does not fire later.
            client.send("y")
            assert await client.recv(timeout=0.5) == "y"
            await asyncio.sleep(0.6)

    asyncio.run(main())


def test_many_waiters_on_one_client(peer: RustPeer) -> None:
    """Several threads in recv() at once: each message goes to exactly one of them."""
    client = tether.Client(peer.url)
    got: List[Any] = []
    lock = threading.Lock()

    def reader() -> None:
        while True:
            try:
                m = client.recv(10)
            except tether.ClosedError:
                return
            with lock:
                got.append(m)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(1000):
        client.send(f"m{i}")
    wait_until(lambda: len(got) == 1000)
    client.close(timeout=10)
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert sorted(got, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(1000)]

