"""The persistent outbox from Python: a client process killed with SIGKILL mid-stream and started
again with the same `outbox_path` delivers every message it accepted, exactly once, in order
(the soak itself, with 100 kills, is core/tests/persistence.rs; this checks the translation)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Tuple

import pytest

import tether
from conftest import ServerProcess

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "scale"))

import harness  # noqa: E402

SID = "py-persisted"
CHILD = r"""
import sys, tether
url, path, round_, last = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
client = tether.Client(url, protocol="envelope", session_id="py-persisted", outbox_path=path,
                       outbox_sync="none", overflow="wait", overflow_timeout=30,
                       backoff_initial=0.05, backoff_max=0.2)
receipt = None
for i in range(40 if last else 100000):
    payload = f"r{round_}-{i}"
    receipt = client.send(payload)
    print("ACCEPTED", receipt.id, payload, flush=True)
    try:
        while True:
            client.recv(0)  # the echoes: keep the inbound queue moving
    except TimeoutError:
        pass
if receipt is not None:
    import time
    deadline = time.monotonic() + 60
    while receipt.status != "acked" and time.monotonic() < deadline:
        try:
            client.recv(0.1)
        except TimeoutError:
            pass
    assert receipt.status == "acked", receipt.status
client.close()
print("DONE", flush=True)
"""


def run_child(url: str, path: Path, round_: int, kill_after: "int | None") -> List[Tuple[int, str]]:
    last = "1" if kill_after is None else "0"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(path), str(round_), last],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    accepted: List[Tuple[int, str]] = []
    done = False
    try:
        for line in proc.stdout:
            parts = line.split()
            if line.endswith("\n") and len(parts) == 3 and parts[0] == "ACCEPTED":
                # (A line cut by the kill is a send that returned but was not reported.)
                _, mid, payload = parts
                accepted.append((int(mid), payload))
                if kill_after is not None and len(accepted) == kill_after:
                    proc.kill()  # SIGKILL; what it printed before dying is read on
            elif line.strip() == "DONE":
                done = True
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    if kill_after is None:
        assert proc.returncode == 0 and done, f"the last child failed: {proc.returncode}"
    return accepted


def delivered(server: ServerProcess, tmp: Path) -> List[str]:
    dump = tmp / "dump.json"
    server.cmd(f"dump {dump}")
    return list(json.loads(dump.read_text()).get(SID, []))


@pytest.mark.parametrize("kind", ["rust", "python"])
def test_a_killed_process_restarted_with_the_file_loses_and_repeats_nothing(
    ref_server_factory: Callable[..., ServerProcess], kind: str
) -> None:
    server = ref_server_factory(kind)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "outbox"
        accepted: List[Tuple[int, str]] = []
        rounds = 4
        for round_ in range(rounds):
            accepted += run_child(server.url, path, round_, random.randint(1, 300))
        accepted += run_child(server.url, path, rounds, None)
        check_delivered(accepted, delivered(server, tmp), rounds)

def check_delivered(accepted: List[Tuple[int, str]], got: List[str], kills: int) -> None:
    ids = [mid for mid, _ in accepted]
    assert ids == sorted(set(ids)), "ids continue across processes, strictly increasing"
    assert len(set(got)) == len(got), "a message was delivered twice"
    position = {p: i for i, p in enumerate(got)}
    lost = [p for _, p in accepted if p not in position]
    assert not lost, f"accepted messages were lost: {lost[:5]}"
    order = [position[p] for _, p in accepted]
    assert order == sorted(order), "delivered out of order"
    # Delivered but never reported: only a send that returned just before a kill.
    assert len(got) - len(accepted) <= kills


def test_killed_clients_and_killed_servers_with_redis_behind_haproxy(tmp_path: Path) -> None:
    """Both sides lose their process: the client is SIGKILLed and restarted with its file, and a
    tether.server instance (Redis session store, two instances behind HAProxy) is SIGKILLed
    and restarted between client rounds. The application's effect log in Redis holds every
    accepted message once, in order."""
    rng = random.Random(0x0B0B)
    with harness.Processes(tmp_path / "logs") as procs:
        cluster = harness.Cluster.start(procs, 2)
        path = tmp_path / "outbox"
        accepted: List[Tuple[int, str]] = []
        rounds = 4
        for round_ in range(rounds):
            accepted += run_child(cluster.haproxy.url, path, round_, rng.randint(1, 300))
            cluster.kill_and_restart(rng)
        accepted += run_child(cluster.haproxy.url, path, rounds, None)
        got = cluster.redis.lrange(f"tether:app:{SID}:log")
        check_delivered(accepted, got, rounds)


def test_a_file_held_by_a_live_client_is_refused_with_storage_error(peer: ServerProcess) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "outbox")
        with tether.Client(peer.url, outbox_path=path) as first:
            with pytest.raises(tether.StorageError, match="in use"):
                tether.Client(peer.url, outbox_path=Path(path))
            first.close()
        # Free again once the first client closed.
        with tether.Client(peer.url, outbox_path=path) as again:
            again.wait_ready(10)
