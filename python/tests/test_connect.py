"""The `websockets` shape: `async with tether.connect(url) as ws`, `await ws.send`, `events()`,
`close_code` / `close_reason`, the `Error`-suffixed names and `max_size` (issue 14)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine, List, TypeVar

import pytest

import tether
import tether._connect
from conftest import RustPeer, ServerProcess, tether_threads, wait_until

T = TypeVar("T")
FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "min_uptime": 0.1}
# Cancellation is checked with the I/O on Tether's runtime and on the event loop itself.
IO_DRIVERS = pytest.mark.parametrize("io_driver", ["runtime", "caller"])


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def next_event_of(ws: tether.Connection, kind: type, limit: int = 50) -> Any:
    """The next event of type `kind` from `ws.events()` (the ones before it are passed over)."""
    events = ws.events()
    for _ in range(limit):
        event = await asyncio.wait_for(events.__anext__(), 10)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} in {limit} events")


def test_open_on_entry_send_recv_and_iteration(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.connect(peer.url) as ws:
            assert ws.state is tether.State.READY
            assert ws.close_code is None and ws.close_reason is None
            assert ws.subprotocol is None and ws.latency >= 0.0
            receipt = await ws.send("a")
            assert isinstance(receipt, tether.Receipt) and receipt == 1
            await receipt  # raw mode: the strongest guarantee is "written"
            assert receipt.status == "written"
            await ws.send(b"b")
            await ws.send_json({"n": 1})
            assert await ws.recv(10) == "a"
            got = []
            async for message in ws:
                got.append(message)
                if len(got) == 2:
                    break
            assert got == [b"b", '{"n":1}']
            with pytest.raises(TimeoutError):
                await ws.recv(0.1)
        assert ws.closed and ws.close_code == 1000
        with pytest.raises(tether.ClosedError) as info:
            await ws.recv(1)
        assert info.value.close_code == 1000 and info.value.close_reason == ""

    run(main())


def test_await_connect_and_the_sync_receipt_calls_unchanged(peer: RustPeer) -> None:
    async def main() -> None:
        ws = await tether.connect(peer.url)
        try:
            receipt = await ws.send("x")
            with pytest.raises(tether.NotSupportedError):
                await receipt.acked()  # names acks: raw mode has none
            await receipt.written()
            assert await ws.recv(10) == "x"
        finally:
            await ws.close()
        # Iteration ends quietly after a normal close.
        assert [m async for m in ws] == []

    run(main())


def test_await_receipt_is_the_ack_in_envelope_mode(envelope_server: ServerProcess) -> None:
    async def main() -> None:
        async with tether.connect(envelope_server.url, protocol="envelope", **FAST) as ws:
            receipts = [await ws.send(f"m{i}") for i in range(20)]
            for receipt in receipts:
                await receipt
                assert receipt.status == "acked"

    run(main())


def test_a_refused_open_raises_connect_error_and_leaves_nothing_running(peer: RustPeer) -> None:
    base = len(tether_threads())
    peer.cmd("reject 401")

    async def main() -> None:
        with pytest.raises(tether.ConnectError, match="401") as info:
            async with tether.connect(peer.url):
                raise AssertionError("entered a connection that was refused")
        assert info.value.reason is not None and info.value.reason.http_status == 401
        with pytest.raises(tether.ConnectError, match="401"):
            await tether.connect(peer.url)

    run(main())
    wait_until(lambda: len(tether_threads()) == base, message="a client thread was left")


@IO_DRIVERS
def test_open_timeout_and_a_cancelled_open(peer: RustPeer, io_driver: str) -> None:
    base = len(tether_threads())
    peer.cmd("stop")

    async def main() -> None:
        with pytest.raises(tether.ConnectError, match="could not open"):
            await tether.connect(peer.url, open_timeout=0.3, io_driver=io_driver, **FAST)
        opening = asyncio.ensure_future(tether.connect(peer.url, open_timeout=None, io_driver=io_driver, **FAST))
        done, _ = await asyncio.wait([opening], timeout=0.2)
        assert not done, "opened a connection to a stopped server"
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening

    run(main())
    wait_until(lambda: len(tether_threads()) == base, message="a client thread was left")


async def full_outbox(peer: RustPeer, ws: tether.Connection) -> None:
    """Take the link down (the peer stops listening) and fill the 2-message outbox."""
    peer.cmd("stop")
    peer.cmd("drop")
    await next_event_of(ws, tether.Disconnected)
    assert await ws.send("a") == 1
    assert await ws.send("b") == 2
    with pytest.raises(tether.QueueFullError):
        ws.client.send("refused")  # the AsyncClient's send refuses; nothing queued


def test_send_waits_for_room_and_keeps_order(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, outbox_max_messages=2, **FAST) as ws:
            await full_outbox(peer, ws)
            third = asyncio.ensure_future(ws.send("c"))
            done, _ = await asyncio.wait([third], timeout=0.3)
            assert not done, "send() returned while the outbox was full"
            peer.cmd("restart")
            assert await asyncio.wait_for(third, 10) == 3
            assert [await ws.recv(10) for _ in range(3)] == ["a", "b", "c"]

    run(main())


@IO_DRIVERS
def test_a_cancelled_send_queues_nothing(peer: RustPeer, io_driver: str) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, outbox_max_messages=2, io_driver=io_driver, **FAST) as ws:
            await full_outbox(peer, ws)
            waiting = asyncio.ensure_future(ws.send("cancelled"))
            done, _ = await asyncio.wait([waiting], timeout=0.2)
            assert not done
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            peer.cmd("restart")
            assert await ws.send("d") == 3  # the cancelled message took no id
            assert [await ws.recv(10) for _ in range(3)] == ["a", "b", "d"]

    run(main())


def test_events_stream_apart_from_messages(peer: RustPeer) -> None:
    async def main() -> None:
        seen: List[tether.Event] = []
        async with tether.connect(peer.url, **FAST) as ws:

            async def read_events() -> None:
                async for event in ws.events():
                    seen.append(event)

            reader = asyncio.ensure_future(read_events())
            await ws.send("before")
            assert await ws.recv(10) == "before"
            peer.cmd("drop")
            # The messages stream goes on across the reconnect.
            await ws.send("after")
            assert await ws.recv(10) == "after"
        await asyncio.wait_for(reader, 10)  # events() ends after Closed
        kinds = [type(e) for e in seen]
        assert tether.Disconnected in kinds and tether.Reconnecting in kinds
        assert kinds[-1] is tether.Closed
        assert not any(isinstance(e, (tether.Written, tether.Acked)) for e in seen)

    run(main())


@IO_DRIVERS
def test_a_cancelled_recv_and_events_wait_lose_nothing(peer: RustPeer, io_driver: str) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, io_driver=io_driver, **FAST) as ws:
            # The events of the open come first; then there is nothing to wait for.
            while True:
                event = await next_event_of(ws, tether.StateChanged)
                if event.new is tether.State.READY:
                    break
            for waiter in (asyncio.ensure_future(ws.recv()),
                           asyncio.ensure_future(ws.events().__anext__())):
                done, _ = await asyncio.wait([waiter], timeout=0.1)
                assert not done
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            await ws.send("still here")
            assert await ws.recv(10) == "still here"
            peer.cmd("drop")
            assert isinstance(await next_event_of(ws, tether.Disconnected), tether.Disconnected)

    run(main())


def test_unread_events_are_bounded_and_messages_flow(
    peer: RustPeer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tether._connect, "EVENT_BACKLOG", 3)

    async def main() -> None:
        async with tether.connect(peer.url, **FAST) as ws:
            for round_ in range(3):
                peer.cmd("drop")
                # Nobody reads events(); recv still gets every message, in order.
                wait_until(lambda: ws.stats().reconnects == round_ + 1)
                await ws.send(f"m{round_}")
                assert await ws.recv(10) == f"m{round_}"
            kept = []
            events = ws.events()
            while ws._events:
                kept.append(await events.__anext__())
            assert 0 < len(kept) <= 3
            assert isinstance(kept[-1], tether.StateChanged)

    with caplog.at_level(logging.WARNING, logger="tether"):
        run(main())
    assert any("events dropped" in r.getMessage() for r in caplog.records)


def test_close_code_and_reason_of_a_server_close(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, **FAST) as ws:
            peer.cmd("close 4500 go away")
            with pytest.raises(tether.ClosedError) as info:
                async for _ in ws:
                    pass
            assert info.value.close_code == 4500
            assert info.value.close_reason == "go away"
            assert (ws.close_code, ws.close_reason) == (4500, "go away")
            await ws.wait_closed()

    run(main())


def test_max_size_is_the_inbound_limit(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, max_size=1024, **FAST) as ws:
            await ws.send("x" * 2048)  # echoed back: over the limit
            event = await next_event_of(ws, tether.Disconnected)
            assert event.reason.code == 1009
            await ws.send("small")
            assert await ws.recv(10) == "small"

    run(main())
    with pytest.raises(tether.ConfigError, match="max_size") as info:
        tether.connect(peer.url, max_size=None)
    assert info.value.option == "max_size"
    with pytest.raises(tether.ConfigError, match="same limit"):
        tether.connect(peer.url, max_size=10, max_inbound_message_size=20)


def test_error_names_with_the_suffix_and_the_old_names() -> None:
    assert tether.InvalidArgument is tether.InvalidArgumentError
    assert tether.MessageTooLarge is tether.MessageTooLargeError
    assert tether.DeliveryFailed is tether.DeliveryFailedError
    assert tether.MessageTooLargeError.__name__ == "MessageTooLargeError"
    assert repr(tether.DeliveryFailedError) == "<class 'tether.DeliveryFailedError'>"


def test_too_large_raises_the_suffixed_class(peer: RustPeer) -> None:
    async def main() -> None:
        async with tether.connect(peer.url, max_message_size=16) as ws:
            with pytest.raises(tether.MessageTooLargeError) as info:
                await ws.send("x" * 17)
            assert type(info.value) is tether.MessageTooLarge

    run(main())
