"""Act 2 of ``make demo``: durable sessions across server instances.

Two ``tether.server`` instances share one Redis session store behind HAProxy (round-robin). A
client streams acked messages through the load balancer; mid-stream the instance that holds its
link is killed with kill -9. The client reconnects, HAProxy sends it to the other instance, the
session resumes from Redis, and the tally is the same as in act 1: lost 0, duplicated 0. The
tally is taken from the durable records: the application's effect log in Redis against the
client's own log of acks and echoes.

Run by scripts/demo-act2.sh (which installs what it needs), from the repository root.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

MESSAGES = 3000
RATE = 300.0


def main() -> int:
    binary = harness.driver_binary(release=True)
    with harness.Processes() as procs:
        cluster = harness.Cluster.start(procs, 2)
        started = time.monotonic()  # the driver's clock starts about now, too

        def say(what: str) -> None:
            print(f"[{time.monotonic() - started:>6.2f}s] {what}", flush=True)

        a, b = cluster.instances
        say(f"redis-server on 127.0.0.1:{cluster.redis.port}; tether.server instances {a.name} "
            f"on :{a.port} and {b.name} on :{b.port}, both with the Redis store; HAProxy "
            f"(round-robin, health checks every 200 ms) on :{cluster.haproxy.port}")
        driver = harness.Driver(
            procs, binary, cluster.haproxy.url, procs.log_dir / "client.json",
            ["--clients", "1", "--messages", str(MESSAGES), "--rate", str(RATE),
             "--proxies", "0", "--link-faults", "0", "--sid-prefix", "demo-act2",
             "--narrate", "--deadline", "60"],
            on_line=lambda line: print(line, flush=True) if line.startswith("[") else None,
        )
        driver.wait_sent(MESSAGES // 2, 60)
        holders = [name for name, row in cluster.haproxy.servers().items()
                   if int(row.get("scur", "0") or 0) > 0]
        victim = next((i for i in cluster.instances if i.name in holders), a)
        say(f">>> fault: kill -9 of {victim.name}, which holds the client's link "
            f"({driver.progress.acked} acked so far)")
        victim.kill9()
        driver.finish()
        log = driver.wait_done(90)
        record = cluster.redis.lrange("tether:app:demo-act2-0:log")
        tally = harness.account(log, cluster.redis)
        session = log["sessions"]["demo-act2-0"]  # type: ignore[index]
        per_instance = cluster.connections_per_instance()

    print()
    print("| sent | acked | failed | resent | lost | duplicated | out of order | echoes lost "
          "| echoes duplicated | reconnects | effect log in Redis |")
    print("|-----:|------:|-------:|-------:|-----:|-----------:|-------------:|------------:"
          "|------------------:|-----------:|--------------------:|")
    print(f"| {tally.messages} | {tally.acked} | {tally.failed} | {session['resent']} "
          f"| {tally.lost} | {tally.duplicated} | {tally.out_of_order} | {tally.echo_lost} "
          f"| {tally.echo_duplicated} | {session['reconnects']} | {len(record)} entries |")
    print()
    print("connections per instance (HAProxy): "
          + ", ".join(f"{k} {v}" for k, v in per_instance.items()))
    print(f"sent {tally.messages}, acked {tally.acked}, lost {tally.lost}, duplicated "
          f"{tally.duplicated}, across a kill -9 of the instance that held the session")
    if not tally.ok():
        print("delivery guarantees violated:", *tally.problems[:10], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
