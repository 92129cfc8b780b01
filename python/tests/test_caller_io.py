"""io_driver="caller": the thread that waits on the client runs its I/O (docs/CALLER_IO.md).

Translation checks: the options reach the core, the blocking calls drive the I/O on the
calling thread (with keeper_after=None no thread of Tether's exists, so an echo proves it),
settings that cannot work are refused with ConfigError, and asyncio still works (through the
keeper).
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import tether
from conftest import RustPeer, thread_names, wait_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "min_uptime": 0.1}


def test_blocking_calls_run_the_io_on_the_calling_thread(peer: RustPeer) -> None:
    with tether.Client(peer.url, io_driver="caller", keeper_after=None, **FAST) as client:
        client.wait_ready(10)
        receipts = [client.send(f"m{i}") for i in range(100)]
        receipts[-1].wait_written(10)
        got: List[object] = []
        while len(got) < 100:
            got += client.recv_many(100, timeout=10)
        assert got == [f"m{i}" for i in range(100)]
        assert not [n for n in thread_names() if n.startswith("tether-keeper")]
    assert client.closed


def test_the_keeper_is_a_thread_of_its_own(peer: RustPeer) -> None:
    with tether.Client(peer.url, io_driver="caller", keeper_after=0.005, **FAST) as client:
        client.wait_ready(10)
        # A new thread takes its name once it first runs (until then it shows its parent's).
        wait_until(lambda: "tether-keeper" in thread_names(), message="no keeper thread")
        client.send("kept")
        assert client.recv(timeout=10) == "kept"


def test_settings_that_cannot_work_are_refused(peer: RustPeer) -> None:
    with pytest.raises(tether.ConfigError, match="io_driver"):
        tether.Client(peer.url, io_driver="sideways")
    with pytest.raises(tether.ConfigError, match="poll delivery"):
        tether.Client(peer.url, io_driver="caller", on_message=lambda m: None)
    with pytest.raises(tether.ConfigError, match="keeper_after"):
        tether.Client(peer.url, io_driver="caller", keeper_after=None, overflow="wait")


def test_the_event_loop_runs_the_io_itself(peer: RustPeer) -> None:
    """No keeper: no thread but the loop's exists, so each echo proves the loop drove."""

    async def main() -> List[str]:
        async with tether.connect(peer.url, io_driver="caller", keeper_after=None, **FAST) as ws:
            got = []
            for i in range(50):  # request/response
                await ws.send(f"r{i}")
                got.append(str(await asyncio.wait_for(ws.recv(), 10)))
            for i in range(200):  # pipelined
                await ws.send(f"p{i}")
            for _ in range(200):
                got.append(str(await asyncio.wait_for(ws.recv(), 10)))
            assert not [n for n in thread_names() if n.startswith("tether-keeper")]
            return got

    expected = [f"r{i}" for i in range(50)] + [f"p{i}" for i in range(200)]
    assert asyncio.run(main()) == expected


def test_the_loop_follows_reconnects(peer: RustPeer) -> None:
    async def main() -> None:
        client: tether.AsyncClient[Any] = tether.AsyncClient(
            peer.url, io_driver="caller", keeper_after=None, events=[tether.Disconnected], **FAST
        )
        async with client:
            await client.wait_ready(10)
            client.send("before")
            assert await client.recv(10) == "before"
            peer.cmd("drop")
            event = await client.recv(10)
            assert isinstance(event, tether.Disconnected) and event.will_reconnect
            await client.wait_ready(10)
            client.send("after")
            assert await client.recv(10) == "after"

    asyncio.run(main())


def test_asyncio_works_with_the_keeper(peer: RustPeer) -> None:
    async def main() -> str:
        async with tether.connect(peer.url, io_driver="caller", **FAST) as ws:
            await ws.send("async")
            return str(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(main()) == "async"


def test_the_keeper_keeps_the_heartbeat_while_nobody_waits(peer: RustPeer) -> None:
    options = dict(FAST, ping_interval=0.05, ping_timeout=0.3)
    with tether.Client(
        peer.url, io_driver="caller", keeper_after=0.02, events=[tether.Disconnected], **options
    ) as client:
        client.wait_ready(10)

        def pings() -> int:
            return int(peer.cmd("pings").split()[1])

        before = pings()
        # Nobody waits on the client: only the keeper can send the pings and read the pongs
        # (a missed pong would end the link after 350 ms).
        wait_until(lambda: pings() >= before + 20, message="pings while nobody waited")
        client.send("still here")
        assert client.recv(timeout=10) == "still here"  # no Disconnected came first


def test_a_cancelled_wait_leaves_the_loop_driving(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.AsyncClient(
            peer.url, io_driver="caller", keeper_after=None, **FAST
        ) as client:
            await client.wait_ready(10)
            pending = asyncio.ensure_future(client.recv())
            await asyncio.sleep(0)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            receipt = client.send("after the cancel")
            assert await client.recv(10) == "after the cancel"
            await receipt.written()

    asyncio.run(main())


def test_a_send_is_written_at_the_loops_next_turn(peer: RustPeer) -> None:
    """The client tells the loop when a send waits: it is written at the loop's next turn,
    not at the next timer or keeper run (a burst of sends with no await in between)."""

    async def main() -> int:
        async with tether.AsyncClient(
            peer.url, io_driver="caller", keeper_after=None, **FAST
        ) as client:
            await client.wait_ready(10)
            receipts = [client.send(f"m{i}") for i in range(100)]
            turns = 0
            while receipts[-1].status != "written" and turns < 1000:
                await asyncio.sleep(0)  # one turn of the loop
                turns += 1
            assert [await client.recv(10) for _ in range(100)] == [f"m{i}" for i in range(100)]
            return turns

    assert asyncio.run(main()) <= 10
