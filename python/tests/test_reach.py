"""Reach (docs/PROXIES.md): the translation of proxies, client certificates, the ``credentials=``
callable and ``connection_info``. The behaviour is the core's (``core/tests/proxy.rs``,
``mtls.rs``, ``credentials.rs``); here one smoke each, through real proxies (Debian's
``tinyproxy`` and ``microsocks``, installed by ``run.sh``) and the Rust test peer.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import tether
from conftest import RustPeer, peer_binary

SOON = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proxy:
    """A proxy daemon on a free port, killed at the end of the test."""

    def __init__(self, argv: List[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:  # a daemon has no readiness signal: poll its port (bounded)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{argv[0]} did not start: {log.read_text()}")
            time.sleep(0.01)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def binary(name: str) -> str:
    for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: python/tests/run.sh installs it (make proxies)")
    return found


def tinyproxy(tmp: Path, auth: Optional[Tuple[str, str]]) -> Proxy:
    port = free_port()
    conf = (
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 16\nLogLevel Info\n"
        f'PidFile "{tmp / "tinyproxy.pid"}"\n'
    )
    if auth:
        conf += f"BasicAuth {auth[0]} {auth[1]}\n"
    (tmp / "tinyproxy.conf").write_text(conf)
    argv = [binary("tinyproxy"), "-d", "-c", str(tmp / "tinyproxy.conf")]
    return Proxy(argv, port, tmp / "tinyproxy.log")


def microsocks(tmp: Path, auth: Tuple[str, str]) -> Proxy:
    port = free_port()
    argv = [binary("microsocks"), "-i", "127.0.0.1", "-p", str(port), "-u", auth[0], "-P", auth[1]]
    return Proxy(argv, port, tmp / "microsocks.log")


@pytest.fixture
def started() -> Iterator[List[object]]:
    """What a test starts (proxies, peers), closed at its end."""
    things: List[object] = []
    try:
        yield things
    finally:
        for t in reversed(things):
            t.close()  # type: ignore[attr-defined]


def start_peer(started: List[object], *args: str) -> RustPeer:
    p = RustPeer([str(peer_binary()), *args], "tether-peer")
    started.append(p)
    return p


def echo(client: "tether.Client[tether.Data]", text: str) -> None:
    client.send(text)
    assert client.recv(timeout=SOON) == text


@pytest.mark.parametrize("kind", ["http", "socks5h"])
def test_through_a_real_proxy_with_credentials(
    tmp_path: Path, started: List[object], kind: str
) -> None:
    peer = start_peer(started)
    auth = ("alice", "s3cret")
    proxy = tinyproxy(tmp_path, auth) if kind == "http" else microsocks(tmp_path, auth)
    started.append(proxy)
    url = f"{kind}://alice:s3cret@{proxy.addr}"
    with tether.Client(peer.url, proxy=url, subprotocols=["chat.v2", "chat"]) as client:
        client.wait_ready(timeout=SOON)
        echo(client, f"via {kind}")
        info = client.connection_info
        assert info is not None
        assert (info.proxy, info.peer) == (proxy.addr, proxy.addr)
        assert info.subprotocol == "chat.v2"
        assert info.connection == 1 and info.header("X-Tether-Connection") == "1"
        assert ("sec-websocket-protocol", "chat.v2") in info.headers


def test_a_proxy_refusal_is_a_final_connect_error_naming_the_proxy(
    tmp_path: Path, started: List[object]
) -> None:
    peer = start_peer(started)
    proxy = tinyproxy(tmp_path, ("alice", "s3cret"))
    started.append(proxy)
    client = tether.Client(peer.url, proxy=f"http://alice:wrong@{proxy.addr}")
    with pytest.raises(tether.ConnectError) as info:
        client.wait_ready(timeout=SOON)
    assert f"proxy {proxy.addr} answered 40" in str(info.value), info.value
    assert info.value.reason.kind == "connect_failed"  # type: ignore[attr-defined]
    assert client.stats().reconnects == 0
    assert client.connection_info is None


def test_a_proxy_option_of_the_wrong_shape_names_the_option() -> None:
    with pytest.raises(tether.ConfigError) as info:
        tether.Client("ws://127.0.0.1:9/", proxy="socks4://127.0.0.1:1080")
    assert info.value.option == "proxy"  # type: ignore[attr-defined]


def mtls_peer(tmp_path: Path, started: List[object]) -> RustPeer:
    args = ["--tls-self-signed", str(tmp_path / "ca.pem")]
    return start_peer(started, *args, "--mtls-client-out", str(tmp_path / "client"))


def test_a_client_certificate_is_accepted_from_files_and_pem(
    tmp_path: Path, started: List[object]
) -> None:
    peer = mtls_peer(tmp_path, started)
    url = f"wss://localhost:{peer.port}/"
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    for options in [
        {"client_cert_file": cert, "client_key_file": str(key)},
        {"client_cert_pem": cert.read_bytes(), "client_key_pem": key.read_text()},
    ]:
        with tether.Client(url, ca_file=tmp_path / "ca.pem", **options) as client:  # type: ignore[arg-type]
            client.wait_ready(timeout=SOON)
            echo(client, "mutual")


def test_a_custom_ca_wins_over_the_named_roots_and_a_ca_file_over_pem(
    tmp_path: Path, started: List[object]
) -> None:
    # Core's one TLS rule (the same in C): set together, these are not an error.
    peer = mtls_peer(tmp_path, started)
    url = f"wss://localhost:{peer.port}/"
    ca = tmp_path / "ca.pem"
    mtls = {"client_cert_file": tmp_path / "client.pem", "client_key_file": tmp_path / "client.key"}
    for tls in [
        {"tls_roots": "webpki", "ca_pem": ca.read_bytes()},
        {"ca_file": ca, "ca_pem": b"not a pem", "tls_roots": "system"},
    ]:
        with tether.Client(url, **tls, **mtls) as client:  # type: ignore[arg-type]
            client.wait_ready(timeout=SOON)
            echo(client, "trusted")


def test_no_client_certificate_is_a_final_tls_error(
    tmp_path: Path, started: List[object]
) -> None:
    peer = mtls_peer(tmp_path, started)
    client = tether.Client(f"wss://localhost:{peer.port}/", ca_file=tmp_path / "ca.pem")
    with pytest.raises(tether.ConnectError, match="TLS error"):
        client.wait_ready(timeout=SOON)
    assert client.stats().reconnects == 0


def test_a_key_of_another_certificate_is_a_config_error(
    tmp_path: Path, started: List[object]
) -> None:
    mtls_peer(tmp_path, started)
    other = tmp_path / "other"
    start_peer(started, "--tls-self-signed", str(tmp_path / "ca2.pem"), "--mtls-client-out", str(other))
    with pytest.raises(tether.ConfigError, match="does not belong"):
        tether.Client(
            "wss://localhost:9/",
            client_cert_file=tmp_path / "client.pem",
            client_key_file=Path(f"{other}.key"),
        )


def test_fresh_credentials_per_attempt_against_a_server_that_takes_each_token_once(
    started: List[object], caplog: pytest.LogCaptureFixture
) -> None:
    peer = start_peer(started, "--single-use-header", "authorization")
    attempts: List[tether.ConnectAttempt] = []
    threads: List[str] = []

    def fresh(attempt: tether.ConnectAttempt) -> tether.Credentials:
        attempts.append(attempt)
        threads.append(threading.current_thread().name)
        if len(attempts) == 2:
            raise RuntimeError("token service down")
        return {"headers": {"Authorization": f"Bearer t{len(attempts)}"}}

    client = tether.Client(
        peer.url,
        headers={"Authorization": "Bearer static"},
        credentials=fresh,
        events=[tether.Disconnected],
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    with client, caplog.at_level(logging.ERROR, logger="tether"):
        client.wait_ready(timeout=SOON)
        for n in range(2, 4):
            peer.cmd("drop")
            lost = client.recv(timeout=SOON)
            assert isinstance(lost, tether.Disconnected) and lost.will_reconnect
            if n == 2:  # the callable raised: a retryable connect failure, logged
                failed = client.recv(timeout=SOON)
                assert isinstance(failed, tether.Disconnected) and failed.will_reconnect
                assert failed.reason.kind == "connect_failed"
                assert "credentials provider failed" in failed.reason.message
                assert "token service down" in failed.reason.message
            client.wait_ready(timeout=SOON)
            echo(client, f"after drop {n}")
            info = client.connection_info
            assert info is not None and info.connection == n
    assert [(a.attempt, a.reconnect) for a in attempts[:2]] == [(0, False), (1, True)]
    assert attempts[0].last_failure is None
    assert attempts[1].last_failure is not None
    assert attempts[1].last_failure.kind == "connection_lost"
    assert all(a.reconnect and a.attempt >= 1 for a in attempts[1:])
    assert threading.current_thread().name not in threads
    assert any("credentials callback" in r.getMessage() for r in caplog.records)


def test_a_static_token_is_refused_on_reconnect(started: List[object]) -> None:
    peer = start_peer(started, "--single-use-header", "authorization")
    client = tether.Client(peer.url, headers={"Authorization": "Bearer static"})
    client.wait_ready(timeout=SOON)
    peer.cmd("drop")
    with pytest.raises(tether.ClosedError) as info:
        client.recv(timeout=SOON)
    assert info.value.reason.http_status == 401  # type: ignore[attr-defined]


def test_credentials_of_the_wrong_shape_fail_the_attempt_and_are_logged(
    peer: RustPeer, caplog: pytest.LogCaptureFixture
) -> None:
    answers: List[object] = ["a str", {"tokn": "x"}, None]

    def provider(attempt: tether.ConnectAttempt) -> Optional[tether.Credentials]:
        return answers.pop(0) if answers else None  # type: ignore[return-value]

    with pytest.raises(tether.ConfigError, match="a callable"):
        tether.Client(peer.url, credentials="token")  # type: ignore[typeddict-item]
    with caplog.at_level(logging.ERROR, logger="tether"):
        with tether.Client(
            peer.url, credentials=provider, backoff_initial=0.01, events=[tether.Disconnected]
        ) as client:
            for want in ["expected a dict", "unknown key \"tokn\""]:
                failed = client.recv(timeout=SOON)
                assert isinstance(failed, tether.Disconnected), failed
                assert want in failed.reason.message
            client.wait_ready(timeout=SOON)
    assert sum("credentials callback" in r.getMessage() for r in caplog.records) == 2


def test_async_client_connection_info_and_credentials(peer: RustPeer) -> None:
    calls: List[int] = []

    def provider(attempt: tether.ConnectAttempt) -> tether.Credentials:
        calls.append(attempt.attempt)
        return {"headers": [("X-Token", "t")]}

    async def main() -> None:
        async with tether.AsyncClient(peer.url, credentials=provider) as client:
            assert client.connection_info is None or client.connection_info.connection == 1
            await client.wait_ready(timeout=SOON)
            info = client.connection_info
            assert info is not None and info.peer == f"127.0.0.1:{peer.port}"
            assert info.proxy is None and info.subprotocol is None

    asyncio.run(main())
    assert calls == [0]
