"""asyncio: AsyncClient, awaitable receipts, cancellation, many clients, a loop never blocked."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any, Coroutine, List, TypeVar

import pytest

import tether
from conftest import RustPeer, ServerProcess, tether_threads, wait_until

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_send_recv_and_async_for(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.AsyncClient(peer.url) as client:
            await client.wait_ready(10)
            assert client.state is tether.State.READY
            for i in range(10):
                client.send(f"m{i}")
            assert await client.recv(10) == "m0"
            got = []
            async for message in client:
                got.append(message)
                if len(got) == 9:
                    break
            assert got == [f"m{i}" for i in range(1, 10)]
            receipt = client.send(b"bin")
            await receipt.written()
            assert receipt.status == "written"
            assert await client.recv(10) == b"bin"
        assert client.closed

    run(main())


def test_async_for_ends_after_close(peer: RustPeer) -> None:
    async def main() -> List[tether.Data]:
        client = tether.AsyncClient(peer.url)
        client.send("a")
        client.send("b")
        got = []
        async for message in client:
            got.append(message)
            if message == "b":
                await client.close(timeout=10)
        return got

    assert run(main()) == ["a", "b"]


def test_recv_timeout_and_raw_mode_acks(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.AsyncClient(peer.url) as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.recv(0.2)
            assert time.monotonic() - started < 2
            receipt = client.send("x")
            with pytest.raises(tether.NotSupportedError):
                await receipt.acked()
            await receipt  # the strongest guarantee of raw mode: written
            assert receipt.status == "written"
            with pytest.raises(tether.NotSupportedError):
                await client.send_acked("y")
            assert await client.recv(10) == "x"

    run(main())


def test_the_loop_keeps_running_while_waiting(peer: RustPeer) -> None:
    peer.cmd("echo off")

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        async with tether.AsyncClient(peer.url) as client:
            with pytest.raises(TimeoutError):
                await client.recv(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ticks

    assert run(main()) >= 10  # about 50 when nothing else runs


@pytest.mark.parametrize("io_driver", ["runtime", "caller"])
def test_cancellation_is_clean(peer: RustPeer, io_driver: str) -> None:
    async def main() -> None:
        async with tether.AsyncClient(peer.url, io_driver=io_driver) as client:
            peer.cmd("echo off")
            waiter = asyncio.ensure_future(client.recv())
            await asyncio.sleep(0.1)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            # Nothing was lost or stuck: the client still works.
            peer.cmd("echo on")
            client.send("after cancel")
            assert await client.recv(10) == "after cancel"
            # wait_ready on a client that cannot connect, cancelled by a timeout.
            peer.cmd("stop")
            peer.cmd("drop")
            # The client notices the lost link (awaited: a fixed sleep may be too short).
            for _ in range(1000):
                if client.state is not tether.State.READY:
                    break
                await asyncio.sleep(0.01)
            assert client.state is not tether.State.READY
            ready = asyncio.ensure_future(client.wait_ready())
            # A receipt wait for a message that cannot be written while the link is down.
            receipt = client.send("queued")
            written = receipt.written()
            await asyncio.sleep(0.1)
            assert not written.done()
            for waiter in (ready, written):
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            peer.cmd("restart")
            await client.wait_ready(10)
            # The cancelled waits left the message alone: it goes out after the reconnect.
            await receipt.written()
            assert await client.recv(10) == "queued"

    run(main())


def test_many_concurrent_clients(peer: RustPeer) -> None:
    clients, per_client = 50, 40

    async def one(n: int) -> None:
        async with tether.AsyncClient(peer.url) as client:
            receipts = [client.send(f"{n}:{i}") for i in range(per_client)]
            got = [await client.recv(20) for _ in range(per_client)]
            assert got == [f"{n}:{i}" for i in range(per_client)]
            await receipts[-1].written()

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(clients))), 60)

    base = len(tether_threads())
    run(main())
    assert peer.count() == (clients, clients * per_client)
    wait_until(lambda: len(tether_threads()) == base, message="dispatcher threads leaked")


def test_many_concurrent_receipts_and_readers(py_peer: ServerProcess) -> None:
    async def main() -> None:
        async with tether.AsyncClient(py_peer.url) as client:
            receipts = [client.send(f"m{i}") for i in range(500)]
            await asyncio.gather(*(r.written() for r in receipts))
            got = await asyncio.gather(*(client.recv(10) for _ in range(500)))
            assert sorted(got) == sorted(f"m{i}" for i in range(500))

    run(main())


def test_sync_client_in_async_with(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.Client(peer.url) as client:
            r = client.send("x")
            await r.written()
        assert client.closed

    run(main())


def test_wait_ready_raises_connect_error(peer: RustPeer) -> None:
    peer.cmd("reject 401")

    async def main() -> None:
        async with tether.AsyncClient(peer.url) as client:
            with pytest.raises(tether.ConnectError, match="401"):
                await client.wait_ready(10)
            with pytest.raises(tether.ClosedError):
                await client.recv(5)

    run(main())


def test_receipt_fails_when_closed_while_disconnected(peer: RustPeer) -> None:
    peer.cmd("stop")

    async def main() -> None:
        client = tether.AsyncClient(peer.url, backoff_initial=0.05, backoff_max=0.1)
        receipt = client.send("never")
        pending = asyncio.ensure_future(receipt.written())
        await asyncio.sleep(0.1)
        await client.close(timeout=10)
        with pytest.raises(tether.DeliveryFailed) as info:
            await pending
        assert info.value.reason is not None and info.value.reason.kind == "closed"

    run(main())


def test_async_client_dropped_without_close(peer: RustPeer) -> None:
    base = len(tether_threads())

    async def main() -> "weakref.ref[tether.AsyncClient[tether.Data]]":
        client = tether.AsyncClient(peer.url)
        client.send("x")
        assert await client.recv(10) == "x"
        return weakref.ref(client)

    ref = run(main())
    gc.collect()
    assert ref() is None
    wait_until(lambda: len(tether_threads()) == base, message="dispatcher thread leaked")
    wait_until(lambda: peer.open_connections() == 0)


def test_events_in_async_for(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.AsyncClient(peer.url, events=[tether.Disconnected]) as client:
            await client.wait_ready(10)
            peer.cmd("drop")
            event = await client.recv(10)
            assert isinstance(event, tether.Disconnected)
            client.send("back")
            async for item in client:
                assert item == "back"
                break

    run(main())
