"""Callbacks on the dispatcher thread, exceptions in them, and logging."""

from __future__ import annotations

import logging
import threading
from typing import List

import pytest

import tether
from conftest import RustPeer, wait_until


def test_callbacks_receive_messages_and_events(peer: RustPeer) -> None:
    messages: List[tether.Data] = []
    states: List[tether.StateChanged] = []
    closed: List[tether.Closed] = []
    threads = set()
    done = threading.Event()

    def on_message(m: tether.Data) -> None:
        threads.add(threading.current_thread().ident)
        messages.append(m)
        if len(messages) == 3:
            done.set()

    client = tether.Client(
        peer.url, on_message=on_message, on_state=states.append, on_closed=closed.append
    )
    for m in ("a", b"b", "c"):
        client.send(m)
    assert done.wait(10)
    assert messages == ["a", b"b", "c"]
    assert threading.get_ident() not in threads  # not the caller's thread
    client.close(timeout=10)
    wait_until(lambda: len(closed) == 1)
    assert [(s.old, s.new) for s in states][:2] == [
        (tether.State.CONNECTING, tether.State.OPEN),
        (tether.State.OPEN, tether.State.READY),
    ]
    assert states[-1].new is tether.State.CLOSED
    assert closed[0].reason.kind == "user_close"
    # Messages went to the callback, not to the queue.
    with pytest.raises(tether.ClosedError):
        client.recv(1)


def test_exception_in_callback_is_logged_and_client_survives(
    peer: RustPeer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: List[tether.Data] = []

    def on_message(m: tether.Data) -> None:
        seen.append(m)
        if m == "boom":
            raise RuntimeError("user bug")

    caplog.set_level(logging.ERROR, logger="tether")
    with tether.Client(peer.url, on_message=on_message) as client:
        client.send("boom")
        client.send("after")
        wait_until(lambda: seen == ["boom", "after"])
        assert client.state is tether.State.READY
    records = [r for r in caplog.records if r.name == "tether" and "on_message" in r.getMessage()]
    assert records, caplog.records
    assert records[0].exc_info is not None and "user bug" in str(records[0].exc_info[1])


def test_send_and_close_from_inside_a_callback(peer: RustPeer) -> None:
    replies: List[tether.Data] = []
    holder: List[tether.Client[tether.Data]] = []

    def on_message(m: tether.Data) -> None:
        replies.append(m)
        client = holder[0]
        if m == "ping":
            client.send("pong")  # only queues: fine on the dispatcher thread
        elif m == "pong":
            client.close()  # only starts the close here
            with pytest.raises(RuntimeError, match="inside a tether callback"):
                client.recv(1)

    client = tether.Client(peer.url, on_message=on_message)
    holder.append(client)
    client.send("ping")
    wait_until(lambda: client.closed)
    assert replies == ["ping", "pong"]
    holder.clear()


def test_on_event_catch_all(peer: RustPeer) -> None:
    events: List[tether.Event] = []
    with tether.Client(peer.url, on_event=events.append) as client:
        client.wait_ready(10)
    wait_until(lambda: any(isinstance(e, tether.Closed) for e in events))
    assert isinstance(events[0], tether.StateChanged)
    assert isinstance(events[-1], tether.Closed)


def test_core_log_records_reach_the_tether_logger(
    peer: RustPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    with tether.Client(peer.url) as client:
        client.wait_ready(10)
        peer.cmd("drop")
        wait_until(
            lambda: any("disconnected" in r.getMessage() for r in caplog.records),
            message=f"no 'disconnected' record in {[r.getMessage() for r in caplog.records]}",
        )
    assert any(r.name == "tether" and r.levelno == logging.WARNING for r in caplog.records)
    assert any("connected" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
