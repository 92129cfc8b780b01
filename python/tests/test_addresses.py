"""Address fallback (Happy Eyeballs, RFC 8305) through the ``resolve`` option, and messages
queued for a server that refuses the upgrade for good failing at once."""

from __future__ import annotations

import socket
import time
from typing import Any, Iterator, List, Union

import pytest

import tether
from conftest import RustPeer

HOST = "tether-test.invalid"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port where TCP connects hang, as at a firewalled address: a listener with a
    full accept backlog that never accepts (Linux then drops further SYNs). Connects until one
    hangs, which proves it rather than assuming how the kernel sizes the backlog."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fill: List[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(0.3)
            try:
                s.connect(("127.0.0.1", port))
            except TimeoutError:
                s.close()
                break
            except OSError:
                s.close()
                raise
            fill.append(s)
        else:
            pytest.fail(f"the backlog of 127.0.0.1:{port} never filled: connects do not hang here")
        yield port
    finally:
        for s in fill:
            s.close()
        listener.close()


def test_a_black_holed_first_address_falls_back_to_the_live_one(
    peer: RustPeer, black_hole: int
) -> None:
    connect_timeout, delay = 10.0, 1.0
    started = time.monotonic()
    with tether.Client(
        f"ws://{HOST}:{peer.port}/",
        # The black hole first; the live one without a port (the URL's: the peer's).
        resolve={HOST: [f"127.0.0.1:{black_hole}", "127.0.0.1"]},
        connect_timeout=connect_timeout,
        happy_eyeballs_delay=delay,
        events=[tether.Disconnected],
        backoff_initial=0.05,
        backoff_max=0.2,
        min_uptime=0.1,
    ) as client:
        # Well within the connect timeout: one address after the other would spend all of it
        # in the black hole.
        client.wait_ready(5)
        took = time.monotonic() - started
        # The black hole (first in the list) was tried first, for one attempt delay.
        assert took >= delay, f"ready after {took:.3f} s, before the {delay} s delay"
        client.send("first")
        assert client.recv(5) == "first"  # no Disconnected before it: the first connect won

        # After a drop the address that worked goes first: no delay spent on the black hole.
        peer.cmd("drop")
        lost = client.recv(5)
        assert isinstance(lost, tether.Disconnected) and lost.will_reconnect, lost
        again = time.monotonic()
        client.send("again")
        assert client.recv(5) == "again"
        took_again = time.monotonic() - again
        assert took_again < delay, f"the reconnect took {took_again:.3f} s: black hole first?"
        assert peer.count()[0] == 2


def test_resolve_and_happy_eyeballs_delay_are_checked() -> None:
    url = f"ws://{HOST}:9/"

    def refused(option: str, match: str, **options: Any) -> None:
        with pytest.raises(tether.ConfigError, match=match) as info:
            tether.Client(url, **options)
        assert info.value.option == option

    refused("resolve", "not the URL's host", resolve={"other.invalid": ["127.0.0.1"]})
    refused("resolve", "not an IP address", resolve={HOST: ["localhost"]})
    refused("resolve", "no addresses", resolve={HOST: []})
    refused("resolve", "dict of host", resolve=["127.0.0.1"])
    refused("resolve", "single str", resolve={HOST: "127.0.0.1"})
    refused("happy_eyeballs_delay", "minimum", happy_eyeballs_delay=0.005)
    refused("happy_eyeballs_delay", "connect_timeout", happy_eyeballs_delay=2, connect_timeout=1)
    refused("happy_eyeballs_delay", "expected a number", happy_eyeballs_delay="1")
    tether.Client(
        url, resolve={HOST.upper(): ["127.0.0.1", "[::1]:9"]}, happy_eyeballs_delay=0.1
    ).close()
    tether.Client(url, resolve=None).close()


def test_final_refusal_fails_queued_messages_at_once(peer: RustPeer) -> None:
    # Stalled, the peer does not answer the upgrade yet: the messages are certainly queued
    # before the refusal arrives.
    peer.cmd("stall on")
    peer.cmd("reject 403")
    # A long backoff and a large retry budget: had the 403 been retried, the messages would
    # have waited for it, well past the bound below.
    with tether.Client(
        peer.url,
        backoff_initial=5,
        backoff_max=30,
        max_reconnect_attempts=10,
        events=[tether.SendFailed, tether.Closed, tether.Reconnecting, tether.Disconnected],
    ) as client:
        receipts = [client.send(f"queued-{i}") for i in range(20)]
        assert all(r.status == "queued" for r in receipts)
        peer.cmd("stall off")
        refused_at = time.monotonic()
        events: List[Union[tether.Data, tether.Event]] = []
        while not (events and isinstance(events[-1], tether.Closed)):
            assert time.monotonic() - refused_at < 2.0, f"not closed 2 s after the refusal: {events}"
            events.append(client.recv(2.0))
        took = time.monotonic() - refused_at

        failed = [e for e in events if isinstance(e, tether.SendFailed)]
        assert [e.id for e in failed] == [r.id for r in receipts]
        for e in failed:
            assert e.reason.kind == "connection_failed" and "403" in e.reason.message, e
        assert not [e for e in events if isinstance(e, tether.Reconnecting)], events
        disconnects = [e for e in events if isinstance(e, tether.Disconnected)]
        assert len(disconnects) == 1 and not disconnects[0].will_reconnect, disconnects
        closed = events[-1]
        assert isinstance(closed, tether.Closed)
        assert closed.reason.kind == "connect_failed" and closed.reason.http_status == 403
        assert closed.undelivered == len(receipts)
        for r in receipts:
            assert r.status == "failed"
            with pytest.raises(tether.DeliveryFailed, match="403"):
                r.wait_written(0)
        with pytest.raises(tether.ClosedError):
            client.send("late")
        assert took < 2.0
