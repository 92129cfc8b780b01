"""Envelope mode (acks) against the Python reference server of the Tether protocol."""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest

import tether
from conftest import ServerProcess, wait_until

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "min_uptime": 0.1}


def test_receipts_resolve_on_acks(envelope_server: ServerProcess) -> None:
    with tether.Client(envelope_server.url, protocol="envelope", **FAST) as client:
        assert client.protocol == "envelope" and len(client.session_id) > 0
        receipts = [client.send(f"m{i}") for i in range(50)]
        receipts.append(client.send(b"binary"))
        for r in receipts:
            r.wait(10)
            assert r.status == "acked"
        got = [client.recv(10) for _ in range(51)]
        assert got == [f"m{i}" for i in range(50)] + [b"binary"]
        assert client.stats().messages_acked == 51


def test_acked_exactly_once_across_a_drop(envelope_server: ServerProcess) -> None:
    with tether.Client(envelope_server.url, protocol="envelope", **FAST) as client:
        client.wait_ready(10)
        receipts = [client.send(f"m{i}") for i in range(100)]
        envelope_server.cmd("drop")
        for r in receipts:
            r.wait(20)
        # The server's application saw each message once, in order (de-duplicated resends).
        got = [client.recv(10) for _ in range(100)]
        assert got == [f"m{i}" for i in range(100)]


def test_asyncio_await_receipt_and_send_acked(envelope_server: ServerProcess) -> None:
    async def main() -> None:
        async with tether.AsyncClient(envelope_server.url, protocol="envelope", **FAST) as client:
            receipt = client.send("one")
            await receipt
            assert receipt.status == "acked"
            r2 = await client.send_acked("two", timeout=10)
            assert r2 == 2
            receipts = [client.send(f"m{i}") for i in range(200)]
            await asyncio.wait_for(asyncio.gather(*receipts), 20)
            assert await client.recv(10) == "one"

    asyncio.run(main())


def test_wrong_token_is_a_connect_error(
    envelope_server_factory: Callable[..., ServerProcess],
) -> None:
    server = envelope_server_factory("--token", "secret")
    with tether.Client(server.url, protocol="envelope", token="wrong", **FAST) as client:
        with pytest.raises(tether.ConnectError) as info:
            client.wait_ready(10)
        assert info.value.reason is not None and info.value.reason.kind == "rejected"
    with tether.Client(server.url, protocol="envelope", token="secret", **FAST) as client:
        client.wait_ready(10)


def test_bad_signature_fails_the_message(
    envelope_server_factory: Callable[..., ServerProcess],
) -> None:
    server = envelope_server_factory("--key", "server-key")
    with tether.Client(
        server.url, protocol="envelope", signing_key=b"another-key", **FAST
    ) as client:
        receipt = client.send("forged?")
        with pytest.raises(tether.DeliveryFailed) as info:
            receipt.wait(10)
        assert info.value.reason is not None and info.value.reason.kind == "rejected"
    with tether.Client(server.url, protocol="envelope", signing_key="server-key", **FAST) as client:
        client.send("signed").wait(10)
        assert client.recv(10) == "signed"


def test_plain_echo_server_is_not_the_protocol(peer: "ServerProcess") -> None:
    """Envelope mode against a plain echo server: the handshake fails, clearly."""
    with tether.Client(
        peer.url, protocol="envelope", max_reconnect_attempts=1, **FAST,
        events=[tether.Disconnected],
    ) as client:
        event = client.recv(10)
        assert isinstance(event, tether.Disconnected)
        assert event.reason.kind in ("handshake_failed", "protocol_error"), event.reason
        wait_until(lambda: client.closed or client.state is not tether.State.READY)
