"""Envelope mode: the server acknowledges every message, and receipts resolve on the ack.

Needs a server that speaks the Tether protocol (docs/PROTOCOL.md), for example
    python tests/peers/python/tether_server.py --port 9002
then
    python python/examples/acks.py ws://127.0.0.1:9002/
"""

from __future__ import annotations

import asyncio
import sys

import tether

url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9002/"

# Blocking: wait for the ack of one message.
with tether.Client(url, protocol="envelope", ack_timeout=5, ack_retries=2) as client:
    receipt = client.send("important")
    try:
        receipt.wait(timeout=10)
        print("acked", receipt.id)
    except tether.DeliveryFailed as e:
        print("not delivered:", e.reason)


# asyncio: many messages in flight, each awaited.
async def main() -> None:
    async with tether.AsyncClient(url, protocol="envelope") as client:
        receipts = [client.send(f"event {i}") for i in range(100)]
        await asyncio.gather(*receipts)  # a Receipt is awaitable: resolves on the ack
        print("all", len(receipts), "acked")
        confirmed = await client.send_acked("one more", timeout=10)
        print("acked", int(confirmed), "stats:", client.stats().messages_acked)


asyncio.run(main())
