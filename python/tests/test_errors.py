"""Configuration errors, send errors, and the exception hierarchy."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import tether
from conftest import RustPeer


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_hierarchy() -> None:
    for cls in (
        tether.ConfigError,
        tether.InvalidArgument,
        tether.ConnectError,
        tether.ClosedError,
        tether.NotReadyError,
        tether.QueueFullError,
        tether.MessageTooLarge,
        tether.DeliveryFailed,
        tether.ProtocolError,
        tether.NotSupportedError,
    ):
        assert issubclass(cls, tether.TetherError), cls
        assert cls.__module__ == "tether"
    assert issubclass(tether.ConfigError, ValueError)
    assert issubclass(tether.InvalidArgument, ValueError)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com/", "did you mean ws://"),
        ("https://example.com/", "did you mean wss://"),
        ("example.com", "no scheme"),
        ("", "empty"),
        ("ws://", "host"),
        ("ws://h:0/", "port 0"),
        ("ws://h:99999/", "port"),
        ("ws://h/#frag", "fragment"),
        ("ws://user:pw@h/", "credentials"),
    ],
)
def test_bad_url(url: str, problem: str) -> None:
    with pytest.raises(tether.ConfigError, match=problem) as info:
        tether.Client(url)
    assert isinstance(info.value, ValueError)
    assert info.value.option == "url"


@pytest.mark.parametrize(
    ("options", "option", "problem"),
    [
        ({"ping_interval": 0}, "ping_interval", "greater than zero"),
        ({"ping_interval": -1}, "ping_interval", "duration"),
        ({"ping_interval": float("nan")}, "ping_interval", "duration"),
        ({"ping_interval": "15"}, "ping_interval", "expected a number"),
        ({"connect_timeout": True}, "connect_timeout", "expected a number"),
        ({"reconnect": 1}, "reconnect", "True or False"),
        ({"outbox_max_messages": 0}, "outbox_max_messages", "greater than zero"),
        ({"outbox_max_messages": -3}, "outbox_max_messages", "count"),
        ({"outbox_max_messages": 1.5}, "outbox_max_messages", "expected an int"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier", ">= 1.0"),
        ({"backoff_initial": 2, "backoff_max": 1}, "backoff_max", "below the initial"),
        ({"max_reconnect_attempts": 0}, "max_reconnect_attempts", "turn reconnect off"),
        ({"max_message_size": 100, "outbox_max_bytes": 10}, "max_message_size", "outbox byte bound"),
        ({"overflow": "block"}, "overflow", "expected"),
        ({"overflow_timeout": 1}, "overflow_timeout", "overflow=\"wait\""),
        ({"protocol": "json"}, "protocol", "raw"),
        ({"token": "t"}, "token", 'protocol="envelope"'),
        ({"signing_key": b"k"}, "signing_key", 'protocol="envelope"'),
        ({"headers": {"bad name": "v"}}, "headers", "header"),
        ({"headers": "x"}, "headers", "dict"),
        ({"subprotocols": "chat"}, "subprotocols", "single str"),
        ({"subprotocols": ["a b"]}, "subprotocols", "HTTP token"),
        ({"tls_roots": "mine"}, "tls_roots", "system"),
        ({"ca_file": "/nonexistent/ca.pem"}, None, "cannot read CA file"),
        ({"ca_pem": "not a pem"}, None, "TLS"),
        ({"on_message": 3}, "on_message", "callable"),
        ({"events": [int]}, "events", "not a tether event class"),
        ({"events": 3}, "events", "collection of event classes"),
        ({"ping_intervall": 3}, "ping_intervall", "did you mean `ping_interval`"),
        ({"read_buffer_size": 10}, "read_buffer_size", "minimum"),
    ],
)
def test_bad_options(options: dict[str, Any], option: str | None, problem: str) -> None:
    with pytest.raises(tether.ConfigError, match=problem) as info:
        tether.Client("ws://127.0.0.1:1/", **options)
    assert isinstance(info.value, ValueError)
    assert info.value.option == option


def test_async_client_refuses_overflow_wait() -> None:
    with pytest.raises(tether.ConfigError, match="block the event loop"):
        tether.AsyncClient("ws://127.0.0.1:1/", overflow="wait")


def test_message_too_large(peer: RustPeer) -> None:
    with tether.Client(peer.url, max_message_size=1000) as client:
        with pytest.raises(tether.MessageTooLarge) as info:
            client.send(b"x" * 1001)
        assert info.value.size == 1001 and info.value.limit == 1000
        assert int(client.send(b"x" * 1000)) == 1  # nothing was queued for the refused one


def test_queue_full_while_disconnected() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    with tether.Client(url, outbox_max_messages=3, backoff_initial=0.05, backoff_max=0.1) as client:
        receipts = [client.send(f"m{i}") for i in range(3)]
        with pytest.raises(tether.QueueFullError) as info:
            client.send("one too many")
        assert info.value.messages == 3
        assert [r.status for r in receipts] == ["queued"] * 3
    # Closing while disconnected fails the queue at once: each receipt reports it.
    for r in receipts:
        assert r.status in ("failed", "unknown")


def test_not_ready_when_queueing_is_off() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    with tether.Client(url, queue_while_disconnected=False) as client:
        with pytest.raises(tether.NotReadyError):
            client.send("x")


def test_delivery_failed_on_close_while_disconnected() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    client = tether.Client(url, backoff_initial=0.05, backoff_max=0.1)
    receipt = client.send("never written")
    client.close(timeout=10)
    with pytest.raises(tether.DeliveryFailed) as info:
        receipt.wait_written(5)
    assert info.value.id == 1
    assert info.value.reason is not None and info.value.reason.kind == "closed"


def test_invalid_close_arguments(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        with pytest.raises(tether.InvalidArgument, match="close code 1001"):
            client.close(1001)
        with pytest.raises(tether.InvalidArgument, match="123"):
            client.close(1000, "x" * 124)
        with pytest.raises(ValueError, match="timeout"):
            client.recv(-1)


def test_send_wrong_type(peer: RustPeer) -> None:
    with tether.Client(peer.url) as client:
        with pytest.raises(TypeError, match="send_json"):
            client.send(42)  # type: ignore[arg-type]


def test_connect_error_when_refused_for_good(peer: RustPeer) -> None:
    peer.cmd("reject 403")
    with tether.Client(peer.url) as client:
        with pytest.raises(tether.ConnectError, match="403") as info:
            client.wait_ready(10)
        assert info.value.reason is not None
        assert info.value.reason.kind == "connect_failed" and info.value.reason.http_status == 403
        with pytest.raises(tether.ClosedError) as closed:
            client.recv(5)
        assert isinstance(closed.value.__cause__, tether.ConnectError)
        with pytest.raises(tether.ClosedError):
            for _ in client:
                pass


def test_wait_ready_timeout_names_the_last_failure() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    with tether.Client(url, backoff_initial=0.05, backoff_max=0.1) as client:
        with pytest.raises(TimeoutError, match="refused"):
            client.wait_ready(0.5)


def test_retries_exhausted(peer: RustPeer) -> None:
    peer.cmd("stop")
    with tether.Client(
        peer.url, max_reconnect_attempts=2, backoff_initial=0.02, backoff_max=0.05
    ) as client:
        with pytest.raises(tether.ConnectError) as info:
            client.wait_ready(10)
        reason = info.value.reason
        assert reason is not None and reason.kind == "retries_exhausted"
        assert reason.last is not None and reason.last.kind == "connect_failed"


def test_overflow_wait_blocks_without_the_gil() -> None:
    import threading
    import time

    url = f"ws://127.0.0.1:{free_port()}/"
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    with tether.Client(
        url, outbox_max_messages=1, overflow="wait", overflow_timeout=0.3, backoff_initial=0.05
    ) as client:
        client.send("fills the outbox")
        counter = threading.Thread(target=count)
        counter.start()
        started = time.monotonic()
        try:
            with pytest.raises(tether.QueueFullError):
                client.send("waits, then gives up")
        finally:
            stop.set()
            counter.join()
        assert 0.25 < time.monotonic() - started < 3
        assert ticks > 20  # the other thread ran while send() waited
