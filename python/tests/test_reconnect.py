"""Reconnect, the outbox across outages, and dead-link detection by heartbeat."""

from __future__ import annotations

import time

import tether
from conftest import RustPeer, ServerProcess, wait_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "min_uptime": 0.1}


def test_reconnect_after_server_restart(peer: RustPeer) -> None:
    with tether.Client(peer.url, events=[tether.Disconnected, tether.Reconnecting], **FAST) as client:
        client.send("before")
        assert client.recv(10) == "before"
        peer.cmd("stop")  # stops listening and drops the connections
        disconnected = client.recv(10)
        assert isinstance(disconnected, tether.Disconnected) and disconnected.will_reconnect
        # A few refused attempts (awaited, not slept through): attempt 3 is scheduled.
        while True:
            item = client.recv(10)
            assert isinstance(item, (tether.Disconnected, tether.Reconnecting)), item
            if isinstance(item, tether.Reconnecting) and item.attempt >= 3:
                break
        peer.cmd("restart")
        client.send("after")
        while True:
            item = client.recv(10)
            if item == "after":
                break
            assert isinstance(item, (tether.Disconnected, tether.Reconnecting)), item
        assert client.stats().reconnects == 1
        assert peer.count()[0] == 2


def test_outbox_flushes_in_order_after_outage(peer: RustPeer) -> None:
    with tether.Client(peer.url, **FAST) as client:
        client.wait_ready(10)
        peer.cmd("stop")
        wait_until(lambda: client.state is not tether.State.READY)
        receipts = [client.send(f"m{i:03}") for i in range(200)]
        assert client.stats().outbox_messages == 200
        peer.cmd("restart")
        got = [client.recv(10) for _ in range(200)]
        assert got == [f"m{i:03}" for i in range(200)]
        receipts[-1].wait_written(10)
        assert all(r.status == "written" for r in receipts)


def test_reconnect_after_python_server_closes_and_drops(py_peer: ServerProcess) -> None:
    with tether.Client(py_peer.url, **FAST) as client:
        client.send("one")
        assert client.recv(10) == "one"
        # Raw mode has no acks: a message written just before the link breaks may be lost
        # (the receipt says "written", not "delivered"). So send once the client reconnected.
        py_peer.cmd("close 1012 restarting")
        wait_until(lambda: client.stats().reconnects == 1)
        client.send("two")
        assert client.recv(10) == "two"
        py_peer.cmd("drop")
        wait_until(lambda: client.stats().reconnects == 2)
        client.send("three")
        assert client.recv(10) == "three"
        accepted = int(py_peer.cmd("count").split()[1])
        assert accepted == 3


def test_final_close_code_stops_the_client(peer: RustPeer) -> None:
    with tether.Client(peer.url, **FAST) as client:
        client.wait_ready(10)
        peer.cmd("close 4500 go away")
        wait_until(lambda: client.closed)
        try:
            client.recv(5)
        except tether.ClosedError as e:
            assert e.reason is not None
            assert e.reason.kind == "server_close" and e.reason.code == 4500
            assert e.reason.close_reason == "go away"
        else:
            raise AssertionError("recv() on a closed client must raise ClosedError")


def test_heartbeat_detects_a_dead_link(peer: RustPeer) -> None:
    interval, timeout = 0.2, 0.3
    with tether.Client(
        peer.url, ping_interval=interval, ping_timeout=timeout, events=[tether.Disconnected], **FAST
    ) as client:
        client.wait_ready(10)
        peer.cmd("stall on")
        started = time.monotonic()
        event = client.recv(10)
        elapsed = time.monotonic() - started
        assert isinstance(event, tether.Disconnected)
        assert event.reason.kind == "heartbeat_timeout" and event.will_reconnect
        # Found within interval + timeout (plus slack for a loaded machine), not by TCP,
        # which would take minutes.
        assert elapsed < interval + timeout + 2.0, elapsed
        peer.cmd("stall off")
        client.send("alive again")
        assert client.recv(10) == "alive again"


def test_inbound_too_large_and_invalid_utf8_are_reported(peer: RustPeer) -> None:
    with tether.Client(
        peer.url, max_inbound_message_size=1000, max_inbound_frame_size=1000,
        events=[tether.Disconnected], **FAST
    ) as client:
        client.wait_ready(10)
        peer.cmd("send-oversized 5000")
        event = client.recv(10)
        assert isinstance(event, tether.Disconnected)
        assert event.reason.kind == "inbound_too_large" and event.reason.code == 1009
        client.wait_ready(10)
        peer.cmd("send-invalid-utf8")
        event = client.recv(10)
        assert isinstance(event, tether.Disconnected)
        assert event.reason.kind == "protocol_error" and event.reason.code == 1007
        client.send("still fine")
        assert client.recv(10) == "still fine"
