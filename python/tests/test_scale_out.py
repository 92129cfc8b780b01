"""Scale-out soak with real parts: three ``tether.server`` instances with the Redis session
store behind HAProxy (round-robin, so a reconnect lands elsewhere), one ``redis-server``, and 100
Tether clients in envelope mode (the Rust driver ``core/examples/scale_client.rs``), each with
its own session, through in-process fault proxies.

Faults: kill -9 of random instances (each started again on its port), one rolling restart of
every instance (SIGTERM, clean exit, back UP before the next), and client links cut, reset and
stalled (the driver's proxies). At the end the durable records are compared: the application's
effect log in Redis (``tether:app:{sid}:log``) against each client's own log: 0 lost, 0
duplicated, order kept per session, both directions; every id acked or failed exactly once.

CI size: 100 clients x 300 messages, dozens of faults. ``TETHER_SCALE_LONG=1``: 1,000,000
messages and 1,000 faults. The table is printed and written to
``target/tmp/scale-out.json``. Orchestration lives in ``tests/scale/harness.py``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "scale"))

import harness  # noqa: E402

LONG = bool(os.environ.get("TETHER_SCALE_LONG"))

if LONG:
    CLIENTS, MESSAGES, RATE = 100, 10_000, 25.0
    LINK_FAULTS, KILLS, ROLLING = 700, 288, 4  # 700 + 288 + 4 x 3 = 1,000 faults
    DEADLINE = 3 * 3600
else:
    CLIENTS, MESSAGES, RATE = 100, 300, 10.0
    LINK_FAULTS, KILLS, ROLLING = 30, 12, 1  # 30 + 12 + 3 = 45 faults
    DEADLINE = 240
INSTANCES = 3


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[harness.Processes]:
    with harness.Processes(tmp_path / "logs") as p:
        yield p


def table(rows: Dict[str, object]) -> str:
    head = "| " + " | ".join(rows) + " |"
    rule = "|" + "|".join("-" * (len(k) + 1) + ":" for k in rows) + "|"
    body = "| " + " | ".join(str(v) for v in rows.values()) + " |"
    return "\n".join([head, rule, body])


@pytest.mark.timeout(DEADLINE + 300)
def test_scale_out_soak(procs: harness.Processes) -> None:
    try:
        import tether.server.app  # noqa: F401
    except ImportError as e:  # the server library is part of this package
        pytest.fail(f"tether.server.app is not importable: {e}")
    rng = random.Random(0x5CA1E)
    started = time.monotonic()
    cluster = harness.Cluster.start(procs, INSTANCES)
    binary = harness.driver_binary(release=LONG)
    total = CLIENTS * MESSAGES
    driver = harness.Driver(
        procs, binary, cluster.haproxy.url, procs.log_dir / "clients.json",
        ["--clients", str(CLIENTS), "--messages", str(MESSAGES), "--rate", str(RATE),
         "--proxies", "10", "--link-faults", str(LINK_FAULTS), "--seed", "7",
         "--sid-prefix", "scale", "--deadline", str(DEADLINE)],
    )

    # The server faults, spread evenly over the messages sent (between 3% and 90%): kills,
    # with the rolling restarts placed among them.
    schedule: List[str] = ["kill"] * KILLS
    for k in range(ROLLING):
        schedule.insert((k + 1) * len(schedule) // (ROLLING + 1), "rolling")
    kills: List[str] = []
    downtimes: List[float] = []
    rolling_codes: List[int] = []
    exit_seconds: List[float] = []  # how long each SIGTERM took to a clean exit
    for n, fault in enumerate(schedule):
        at = int(total * (0.03 + 0.87 * n / max(1, len(schedule) - 1)))
        driver.wait_sent(at, DEADLINE)
        if fault == "kill":
            name, down = cluster.kill_and_restart(rng)
            kills.append(name)
            downtimes.append(down)
        else:
            for _, code, seconds in cluster.rolling_restart():
                rolling_codes.append(code)
                exit_seconds.append(seconds)
    for inst in cluster.instances:
        cluster.haproxy.wait_up(inst.name)
    driver.finish()
    log = driver.wait_done(DEADLINE + 60)
    elapsed = time.monotonic() - started

    tally = harness.account(log, cluster.redis)
    totals = log["totals"]
    assert isinstance(totals, dict)
    per_instance = cluster.connections_per_instance()
    faults = int(log["link_faults"]) + len(kills) + len(rolling_codes)  # type: ignore[call-overload]
    rows: Dict[str, object] = {
        "clients": CLIENTS,
        "messages": tally.messages,
        "faults": faults,
        "kills": len(kills),
        "restarts (rolling)": len(rolling_codes),
        "link faults": log["link_faults"],
        "acked": tally.acked,
        "failed": tally.failed,
        "lost": tally.lost,
        "duplicated": tally.duplicated,
        "out of order": tally.out_of_order,
        "echoes lost": tally.echo_lost,
        "echoes duplicated": tally.echo_duplicated,
        "echoes out of order": tally.echo_out_of_order,
        "echoes unacked": tally.echo_unacked,
        "resent": totals.get("resent"),
        "reconnects": totals.get("reconnects"),
        "slowest clean exit (s)": f"{max(exit_seconds, default=0.0):.1f}",
        "connections per instance": " / ".join(f"{v}" for v in per_instance.values()),
        "seconds": f"{elapsed:.0f}",
    }
    print()
    print(table(rows))
    report = dict(rows, problems=tally.problems[:50], totals=totals, kills_by_instance={
        name: kills.count(name) for name in sorted(set(kills))},
        max_kill_downtime_s=max(downtimes, default=0.0))
    out = REPO / "target" / "tmp"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("scale-out-long.json" if LONG else "scale-out.json")).write_text(
        json.dumps(report, indent=2))

    assert tally.ok(), f"{len(tally.problems)} problems, first: {tally.problems[:10]}\n{rows}"
    assert tally.messages == total
    assert tally.acked + tally.failed == total
    assert tally.lost == tally.duplicated == tally.out_of_order == 0
    assert tally.echo_lost == tally.echo_duplicated == tally.echo_out_of_order == 0
    assert tally.echo_unacked == 0
    assert rolling_codes and all(code == 0 for code in rolling_codes), rolling_codes
    assert len(kills) == KILLS
    assert int(log["link_faults"]) == LINK_FAULTS  # type: ignore[call-overload]
    # Round-robin really spread the sessions: every instance served connections.
    assert all(v > 0 for v in per_instance.values()), per_instance
