"""The wheel and sdist in dist/ (scripts/wheel.sh), checked as a user without Rust gets them.

Run by tests/wheel/run.sh, which builds dist/ and the Rust echo peer first. The fresh venv is
made by Debian's /usr/bin/python3 under ``env -i`` with PATH=/usr/bin:/bin: no cargo, rustc,
rustup or pyenv is reachable, and pip installs with --no-index, so nothing can be built or
fetched: the wheel alone has to work.
"""

from __future__ import annotations

import email.parser
import os
import queue
import re
import subprocess
import sys
import tarfile
import threading
import tomllib
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("TETHER_DIST", REPO / "dist"))
VERSION = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]
# cp39-abi3: one wheel for every CPython >= 3.9 (pyo3's abi3-py39). manylinux_2_17 (PEP 600;
# manylinux2014 is its older name, for pip < 20.3): the glibc floor scripts/wheel.sh asks for
# (--zig --compatibility manylinux_2_17).
TAGS = ["cp39-abi3-manylinux2014_x86_64", "cp39-abi3-manylinux_2_17_x86_64"]
WHEEL_NAME = f"tether_ws-{VERSION}-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
# The environment of a machine that has Python and nothing else: no Rust, no pyenv shims.
BARE_PATH = "/usr/bin:/bin"
DEFAULT_URL = "ws://127.0.0.1:9001/"


def only(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {DIST}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return only(f"tether_ws-{VERSION}-*.whl")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return only(f"tether_ws-{VERSION}.tar.gz")


def test_wheel_tags(wheel: Path) -> None:
    assert wheel.name == WHEEL_NAME
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(f"tether_ws-{VERSION}.dist-info/WHEEL").decode()
        pkg = email.parser.Parser().parsestr(z.read(f"tether_ws-{VERSION}.dist-info/METADATA").decode())
    assert re.findall(r"^Tag: (\S+)$", meta, flags=re.M) == TAGS
    assert "Root-Is-Purelib: false" in meta
    assert pkg["Name"] == "tether-ws" and pkg["Version"] == VERSION
    assert pkg["Requires-Python"] == ">=3.9"


def test_auditwheel_agrees(wheel: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", str(wheel)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # auditwheel wraps its text: compare with the line breaks taken out.
    out = " ".join(done.stdout.split())
    assert 'is consistent with the following platform tag: "manylinux_2_17_x86_64"' in out, out
    # Only libraries the manylinux policy lets a wheel take from the system.
    assert "system-provided shared libraries" in out, out
    assert "external shared library" not in out, out
    for lib in re.findall(r"(\S+\.so[.\d]*) with versions", out):
        assert lib in {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2"}, out


def test_wheel_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for needed in (
        "tether/__init__.py",
        "tether/_tether.abi3.so",
        "tether/_tether.pyi",
        "tether/py.typed",
        "tether/server/__init__.py",
    ):
        assert needed in names, sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")], sorted(names)
    assert [n for n in names if n.endswith(".so")] == ["tether/_tether.abi3.so"]


def test_sdist_files(sdist: Path) -> None:
    root = f"tether_ws-{VERSION}/"
    with tarfile.open(sdist) as t:
        names = {m.name for m in t.getmembers()}
        pkg_info = t.extractfile(root + "PKG-INFO")
        assert pkg_info is not None
        pkg = email.parser.Parser().parsestr(pkg_info.read().decode())
    assert all(n.startswith(root) for n in names)
    rel = {n[len(root) :] for n in names}
    # What a build from it needs: the workspace (with its lockfile), core, the binding, the
    # Python package with its stubs.
    for needed in (
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "core/Cargo.toml",
        "core/src/lib.rs",
        "python/Cargo.toml",
        "python/src/lib.rs",
        "tether/__init__.py",
        "tether/_tether.pyi",
        "tether/py.typed",
    ):
        assert needed in rel, sorted(rel)
    # Nothing of a work tree or a build.
    for n in rel:
        assert not re.match(r"(target|dist|build|\.venv|\.git|node_modules)(/|$)", n), n
        assert "__pycache__" not in n and not n.endswith((".so", ".pyc", ".whl")), n
    assert pkg["Name"] == "tether-ws" and pkg["Version"] == VERSION
    assert sdist.stat().st_size < 2_000_000


def bare_env(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": BARE_PATH, "LANG": "C.UTF-8"}


def run_bare(argv: list[str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=bare_env(cwd), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of Debian's python3 with only the wheel in it; returns its python."""
    home = tmp_path_factory.mktemp("bare")
    # The machine's path has no Rust: the premise of the test, checked rather than assumed.
    which = subprocess.run(
        ["/bin/sh", "-c", "command -v cargo rustc rustup pyenv || true"],
        env=bare_env(home),
        capture_output=True,
        text=True,
    )
    assert which.stdout == "", f"{BARE_PATH} has {which.stdout!r}"
    run_bare(["/usr/bin/python3", "-m", "venv", str(home / "venv")], home)
    py = home / "venv" / "bin" / "python"
    run_bare(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
         "--only-binary", ":all:", str(wheel)],
        home,
    )
    return py


def test_import_and_version(fresh: Path) -> None:
    out = run_bare(
        [str(fresh), "-c", "import sys, tether; print(tether.__version__); print(tether.__file__);"
         " print(sys.version_info >= (3, 9))"],
        fresh.parents[2],
    )
    version, where, new_enough = out.splitlines()
    assert version == VERSION
    # Imported from the fresh venv, not from the work tree.
    assert where.startswith(str(fresh.parents[1])), where
    assert new_enough == "True"


def test_typing_files_installed(fresh: Path) -> None:
    out = run_bare([str(fresh), "-c", "import tether; print(tether.__file__)"], fresh.parents[2])
    package = Path(out.strip()).parent
    assert (package / "py.typed").is_file()
    assert "class Client" in (package / "_tether.pyi").read_text()


class EchoPeer:
    """target/debug/tether-peer (tests/peers): prints ``PORT <n>``, answers stdin commands."""

    def __init__(self) -> None:
        binary = Path(os.environ.get("TETHER_PEER", REPO / "target" / "debug" / "tether-peer"))
        assert binary.exists(), f"{binary} missing (tests/wheel/run.sh builds it)"
        self.proc = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self._lines = lines

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        try:
            first = lines.get(timeout=20)
        except queue.Empty:
            first = None
        m = re.fullmatch(r"PORT (\d+)", first or "")
        if not m:
            self.close()
            raise RuntimeError(f"tether-peer did not start: {first!r}")
        self.url = f"ws://127.0.0.1:{m.group(1)}/"

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self.proc.stdout.close()


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    p = EchoPeer()
    try:
        yield p
    finally:
        p.close()


def readme_block(name: str) -> str:
    """The README's Python block marked ``<!-- file: python/examples/NAME -->``, as pasted."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(rf"<!-- file: python/examples/{re.escape(name)} -->\n```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, f"README has {len(blocks)} blocks for {name}"
    return str(blocks[0])


def run_quickstart(fresh: Path, name: str, url: str) -> list[str]:
    code = readme_block(name)
    # The one adaptation: the server's address (the README's default port is taken here).
    assert code.count(DEFAULT_URL) == 1, code
    script = fresh.parents[2] / name
    script.write_text(code.replace(DEFAULT_URL, url), encoding="utf-8")
    return run_bare([str(fresh), str(script)], script.parent, timeout=60).splitlines()


def test_readme_quickstart_sync(fresh: Path, peer: EchoPeer) -> None:
    out = run_quickstart(fresh, "quickstart_sync.py", peer.url)
    assert out == ["got hello", 'got {"greeting":"hello","n":1}', "sent 2"]


def test_readme_quickstart_async(fresh: Path, peer: EchoPeer) -> None:
    assert run_quickstart(fresh, "quickstart_async.py", peer.url) == ["got hello"]
