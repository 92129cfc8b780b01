#!/usr/bin/env python3
"""A WebSocket echo server on the Python `websockets` library, for Tether's interop tests.

Prints `PORT <n>` once listening on 127.0.0.1, then reads commands from stdin, one per line,
answering each with `OK` (or `ERR <why>`):

  close <code> [reason]   close every open connection with that code
  drop                    abort every connection's TCP stream (no close frame)
  count                   `OK <connections accepted> <messages received>`
  quit                    exit (also on end of stdin)
"""

import argparse
import asyncio
import sys

from websockets.asyncio.server import serve

connections = set()
accepted = 0
received = 0


async def echo(ws):
    global accepted, received
    accepted += 1
    connections.add(ws)
    try:
        async for message in ws:
            received += 1
            await ws.send(message)
    except Exception:
        pass  # a dropped link ends the handler; that is what the tests do on purpose
    finally:
        connections.discard(ws)


async def command(line):
    words = line.split()
    if not words:
        return "ERR empty"
    if words[0] == "close" and len(words) >= 2:
        reason = " ".join(words[2:])
        await asyncio.gather(*(ws.close(int(words[1]), reason) for ws in list(connections)))
        return "OK"
    if words[0] == "drop":
        for ws in list(connections):
            ws.transport.abort()
        return "OK"
    if words[0] == "count":
        return f"OK {accepted} {received}"
    return f"ERR unknown command {words[0]!r}"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    async with serve(echo, "127.0.0.1", args.port, max_size=64 << 20) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line or line.strip() == "quit":
                return
            print(await command(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
