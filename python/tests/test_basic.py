"""Send and receive against the Rust test peer and the Python `websockets` echo server."""

from __future__ import annotations

import json
import time

import pytest

import tether
from conftest import RustPeer, ServerProcess, wait_until


def test_echo_text_and_binary(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        client.wait_ready(10)
        assert client.state is tether.State.READY
        r1 = client.send("hello")
        r2 = client.send(b"\x00\x01binary")
        r3 = client.send(bytearray(b"ba"))
        r4 = client.send(memoryview(b"mv"))
        assert [int(r) for r in (r1, r2, r3, r4)] == [1, 2, 3, 4]
        assert client.recv(10) == "hello"
        assert client.recv(10) == b"\x00\x01binary"
        assert client.recv(10) == b"ba"
        assert client.recv(10) == b"mv"
    assert client.closed
    assert client.state == "closed"


def test_echo_python_websockets_server(py_peer: ServerProcess) -> None:
    with tether.Client(py_peer.url) as client:
        for i in range(100):
            client.send(f"m{i}")
        got = [client.recv(10) for _ in range(100)]
        assert got == [f"m{i}" for i in range(100)]
        assert py_peer.cmd("count") == "OK 1 100"


def test_send_json_and_iteration(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        client.send_json({"a": [1, 2], "é": None})
        client.send("two")
        seen = []
        for message in client:
            seen.append(message)
            if len(seen) == 2:
                break
        assert json.loads(seen[0]) == {"a": [1, 2], "é": None}
        assert seen[0] == '{"a":[1,2],"é":null}'
        assert seen[1] == "two"


def test_receipt_behaves_like_the_id(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        r = client.send("x")
        assert r == 1 and r.id == 1 and int(r) == 1
        assert ["a", "b"][r] == "b"  # __index__
        assert hash(r) == hash(1) and {1: "one"}[r.id] == "one"
        assert repr(r) == "Receipt(1)"
        assert r < 2 and r >= 1 and r != 2 and r != "1"
        r2 = client.send("y")
        assert r2 > r and r2 == 2
        assert r.status in ("queued", "written")
        r.wait_written(10)
        assert r.status == "written"
        with pytest.raises(tether.NotSupportedError, match="envelope"):
            r.wait(1)


def test_recv_timeout_and_recv_many(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.recv(0.2)
        assert 0.15 < time.monotonic() - started < 2
        for i in range(50):
            client.send(str(i))
        got: list[str | bytes] = []
        while len(got) < 50:
            got.extend(client.recv_many(timeout=10))
        assert got == [str(i) for i in range(50)]


def test_recv_after_close_raises_closed_and_iteration_ends(peer: RustPeer) -> None:
    client = tether.Client(peer.url)
    client.send("last words")
    assert client.recv(10) == "last words"
    client.close(timeout=10)
    assert client.closed
    with pytest.raises(tether.ClosedError) as info:
        client.recv(1)
    assert info.value.reason is not None and info.value.reason.kind == "user_close"
    assert list(client) == []
    with pytest.raises(tether.ClosedError):
        client.send("too late")
    client.close()  # closing twice is fine


def test_server_message_and_events_subscription(peer: RustPeer) -> None:
    with tether.Client(peer.url, events=True) as client:
        items = [client.recv(10) for _ in range(2)]
        assert items[0] == tether.StateChanged(tether.State.CONNECTING, tether.State.OPEN)
        assert items[1] == tether.StateChanged(tether.State.OPEN, tether.State.READY)
        peer.cmd("send-text from server")
        assert client.recv(10) == "from server"
        client.send("x")
        kinds = []
        while True:
            item = client.recv(10)
            kinds.append(type(item))
            if item == "x":
                break
        assert tether.Written in kinds or client.stats().messages_sent == 1
    # After the close: the remaining events, the last one Closed, then the end.
    rest = list(client)
    assert isinstance(rest[-1], tether.Closed)
    assert rest[-1].reason.kind == "user_close" and rest[-1].undelivered == 0


def test_events_filter_by_class(peer: RustPeer) -> None:
    with tether.Client(peer.url, events=[tether.Disconnected, tether.Reconnecting]) as client:
        client.wait_ready(10)
        peer.cmd("drop")
        first = client.recv(10)
        assert isinstance(first, tether.Disconnected)
        assert first.will_reconnect and first.reason.kind == "connection_lost"
        second = client.recv(10)
        assert isinstance(second, tether.Reconnecting) and second.attempt == 1
        client.send("after")
        assert client.recv(10) == "after"


def test_stats(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        for _ in range(10):
            client.send("12345")
        for _ in range(10):
            client.recv(10)
        stats = client.stats()
        assert isinstance(stats, tether.Stats)
        assert stats.messages_sent == 10 and stats.bytes_sent == 50
        assert stats.messages_received == 10 and stats.bytes_received == 50
        assert stats.reconnects == 0 and stats.send_failures == 0


def test_state_and_repr(peer: RustPeer) -> None:
    client = tether.Client(peer.url)
    try:
        client.wait_ready(10)
        assert client.url == peer.url
        assert client.protocol == "raw"
        assert "ready" in repr(client)
        assert str(client.state) == "ready"
    finally:
        client.close(timeout=10)
    wait_until(lambda: peer.open_connections() == 0)
