"""Envelope mode (acks) against the Python reference server of the Tether protocol."""

from __future__ import annotations

import asyncio
import json
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


# ---- durable sessions (protocol revision 2): a side that lost its state is reported, and ----
# ---- nothing is dropped as a false duplicate.                                            ----


def _send_five(client: "tether.Client[object]", prefix: str) -> None:
    """Send five texts, wait for their acks and the server's echoes."""
    texts = [f"{prefix}-{i}" for i in range(5)]
    for r in [client.send(t) for t in texts]:
        r.wait(10)
        assert r.status == "acked"
    assert [client.recv(10) for _ in texts] == texts


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_session_reset_when_the_server_is_killed(
    ref_server_factory: Callable[..., ServerProcess], kind: str
) -> None:
    """The server process is killed (SIGKILL) and a fresh one starts on the same port: every
    message it sends afterwards arrives (the old client dropped the first ones as duplicates of
    the lost stream's ids), and SessionReset reports the loss once, before anything else."""
    server = ref_server_factory(kind)
    sid = f"py-durable-server-{kind}"
    with tether.Client(
        server.url, protocol="envelope", session_id=sid, events=[tether.SessionReset], **FAST
    ) as client:
        client.wait_ready(10)
        _send_five(client, "before")
        server.kill_and_restart()
        reset = client.recv(10)
        assert isinstance(reset, tether.SessionReset), reset
        assert reset.server_lost_state and not reset.client_state_lost
        assert not reset.inbound_may_repeat
        assert reset.acked_at_risk == range(1, 6) and 5 in reset.acked_at_risk
        assert reset.resends_may_duplicate is None
        assert reset.server_revision == 2
        assert client.server_epoch is not None and len(client.server_epoch) == 16
        after = [f"after-{i}" for i in range(300)]
        for text in after:
            server.cmd(f"send {sid} {text}")
        assert [client.recv(10) for _ in after] == after
        assert client.stats().duplicates_dropped == 0


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_session_reset_when_a_second_client_reuses_the_session_id(
    ref_server_factory: Callable[..., ServerProcess], kind: str
) -> None:
    """A second client with the same session_id (what a restarted process does): the server's
    application gets its messages (it used to take them for duplicates and drop them), and
    SessionReset says the earlier client's state was lost."""
    server = ref_server_factory(kind)
    sid = f"py-durable-client-{kind}"
    with tether.Client(
        server.url, protocol="envelope", session_id=sid, events=[tether.SessionReset], **FAST
    ) as first:
        first.wait_ready(10)
        _send_five(first, "first")
        first_epoch = first.epoch
    with tether.Client(
        server.url, protocol="envelope", session_id=sid, events=[tether.SessionReset], **FAST
    ) as second:
        assert second.epoch != first_epoch and len(second.epoch) == 16
        reset = second.recv(10)
        assert isinstance(reset, tether.SessionReset), reset
        assert reset.client_state_lost and reset.inbound_may_repeat
        assert not reset.server_lost_state
        assert reset.acked_at_risk is None and reset.resends_may_duplicate is None
        texts = [f"second-{i}" for i in range(5)]
        for r in [second.send(t) for t in texts]:
            r.wait(10)
        # Our echoes, possibly after repeats of echoes the first client had not acked yet.
        got = [second.recv(10) for _ in range(len(texts))]
        for _ in range(5):
            if len([g for g in got if str(g).startswith("second-")]) == len(texts):
                break
            got.append(second.recv(10))
        assert [g for g in got if str(g).startswith("second-")] == texts
        assert all(str(g).startswith(("first-", "second-")) for g in got), got
    stats = json.loads(server.cmd("stats")[3:])["sessions"][sid]
    assert stats["delivered"] == 10 and stats["duplicates"] == 0, stats


def test_a_message_the_server_refuses_as_too_large_fails_and_the_queue_moves_on(
    envelope_server_factory: Callable[..., ServerProcess],
) -> None:
    """Within our limit but over the server's: the server closes with 1009 each time it
    arrives. After three refusals the message fails with ``too_large`` and the one queued
    behind it is acked (issue 12: it used to block the session, reconnecting forever)."""
    server = envelope_server_factory("--max-size", "65536")
    with tether.Client(
        server.url, protocol="envelope", max_message_size=1 << 20, **FAST,
        events=[tether.SendFailed, tether.Disconnected],
    ) as client:
        client.wait_ready(10)
        big = client.send("x" * 200_000)
        after = client.send("after")
        after.wait(20)
        assert after.status == "acked"
        with pytest.raises(tether.DeliveryFailed) as info:
            big.wait(10)
        assert info.value.id == big
        reason = info.value.reason
        assert reason is not None and reason.kind == "too_large", reason
        assert "1009" in reason.message, reason.message
        assert big.status == "failed"
        refusals, failed, echoed = 0, False, False
        for _ in range(20):
            item = client.recv(10)
            if isinstance(item, tether.Disconnected):
                assert item.reason.kind == "server_close" and item.reason.code == 1009, item
                refusals += 1
            elif isinstance(item, tether.SendFailed):
                assert item.id == big and item.reason.kind == "too_large", item
                failed = True
            else:
                assert item == "after", item  # the server echoes what it delivered
                echoed = True
            if failed and echoed:
                break
        assert failed and echoed
        assert refusals == 3
