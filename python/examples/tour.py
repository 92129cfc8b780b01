"""A tour of the API against any echo server: events, callbacks, errors, counters.

    python python/examples/tour.py ws://127.0.0.1:9001/
"""

from __future__ import annotations

import logging
import sys
import threading

import tether

logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"

# 1. Options are checked when the client is built; problems are ValueErrors that name them.
try:
    tether.Client(url, ping_interval=0)
except tether.ConfigError as e:
    print("config error:", e.option, "-", e)

# 2. Events in the same stream as messages (events=...), in the order they happened.
with tether.Client(
    url, events=[tether.StateChanged, tether.Disconnected, tether.Closed]
) as watcher:
    watcher.send("through the stream")
    for item in watcher:
        if isinstance(item, tether.StateChanged):
            print("state:", item.old, "->", item.new)
        elif isinstance(item, tether.Disconnected):
            print("disconnected:", item.reason.kind, item.reason)
        elif isinstance(item, (str, bytes)):
            print("message:", item)
            break

# 3. Callbacks instead of polling: they run on the client's dispatcher thread.
done = threading.Event()


def on_message(message: tether.Data) -> None:
    print("callback got", message)
    done.set()


def on_closed(event: tether.Closed) -> None:
    print("closed:", event.reason.kind, "undelivered:", event.undelivered)


listener = tether.Client(url, on_message=on_message, on_closed=on_closed)
listener.send(b"\x01\x02")
done.wait(10)
listener.close(timeout=10)

# 4. Every refusal is precise, and nothing is queued when send raises.
with tether.Client(url, outbox_max_messages=2, max_message_size=1024) as client:
    try:
        client.send(b"x" * 2048)
    except tether.MessageTooLarge as e:
        print("too large:", e.size, ">", e.limit)
    client.wait_ready(timeout=10)
    receipts: list[tether.Receipt] = []
    try:
        for i in range(1000):
            receipts.append(client.send(f"burst {i}"))
    except tether.QueueFullError as e:
        print(f"outbox full after {len(receipts)} messages ({e.messages} queued)")
    for r in receipts:
        r.wait_written(timeout=10)
    stats: tether.Stats = client.stats()
    print("written:", stats.messages_sent, "high water:", stats.outbox_high_water_messages)
