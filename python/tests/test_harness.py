"""The test harness itself (conftest.py): what the other tests rely on to be free of races."""

from __future__ import annotations

from conftest import RustPeer, peer_binary


def test_closing_a_server_process_joins_its_pipe_readers() -> None:
    """close() returns only once the stdout and stderr readers have finished: a reader still
    iterating over a pipe that close() shuts would raise in its thread, and pytest reports
    that against whatever test runs next."""
    for _ in range(20):
        peer = RustPeer([str(peer_binary())], "tether-peer")
        peer.cmd("count")
        peer.close()
        alive = [t.name for t in peer._readers if t.is_alive()]
        assert alive == [], alive
