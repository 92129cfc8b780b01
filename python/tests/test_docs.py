"""The documentation's quickstarts and the examples run, and say what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO, RustPeer, ServerProcess

EXAMPLES = REPO / "python" / "examples"
DOC = REPO / "docs" / "PYTHON.md"
README = REPO / "README.md"


def doc_blocks(doc: Path) -> list[tuple[str, str]]:
    """(file, code) for every `<!-- file: X -->` marker followed by a python block."""
    text = doc.read_text(encoding="utf-8")
    return re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("doc", [DOC, README], ids=["PYTHON.md", "README.md"])
def test_doc_quickstarts_are_the_example_files(doc: Path) -> None:
    blocks = doc_blocks(doc)
    expected = {"python/examples/quickstart_sync.py", "python/examples/quickstart_async.py"}
    if doc == README:
        expected.add("python/examples/server_quickstart.py")
    assert {name for name, _ in blocks} == expected
    for name, code in blocks:
        assert (REPO / name).read_text(encoding="utf-8") == code, f"{name} differs from {doc}"


def run_example(name: str, url: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_quickstart_sync(peer: RustPeer) -> None:
    out = run_example("quickstart_sync.py", peer.url)
    assert out.splitlines() == ["got hello", 'got {"greeting":"hello","n":1}', "sent 2"]


def test_quickstart_sync_on_python_websockets(py_peer: ServerProcess) -> None:
    out = run_example("quickstart_sync.py", py_peer.url)
    assert out.splitlines()[0] == "got hello"


def test_quickstart_async(peer: RustPeer) -> None:
    assert run_example("quickstart_async.py", peer.url).splitlines() == ["got hello"]


def test_tour(peer: RustPeer) -> None:
    out = run_example("tour.py", peer.url)
    for expected in (
        "config error: ping_interval",
        "state: connecting -> open",
        "message: through the stream",
        "callback got b'\\x01\\x02'",
        "closed: user_close undelivered: 0",
        "too large: 2048 > 1024",
        "outbox full after",
    ):
        assert expected in out, out


def test_acks(envelope_server_factory: Callable[..., ServerProcess]) -> None:
    server = envelope_server_factory()
    out = run_example("acks.py", server.url)
    assert "acked 1" in out and "all 100 acked" in out and "stats: 101" in out, out


@pytest.mark.parametrize("module", ["tether", "tether._tether"])
def test_help_works(module: str) -> None:
    code = f"import {module} as m; help(m)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        env={"PAGER": "cat", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr


def test_server_quickstart(tmp_path: Path) -> None:
    from test_server import RedisProc

    redis = RedisProc(tmp_path)
    try:
        out = run_example("server_quickstart.py", redis.url)
    finally:
        redis.close()
    assert out.splitlines() == ["reply: ok", "orders: [b'one pizza']"]
